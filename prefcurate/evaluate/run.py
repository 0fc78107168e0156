"""`eval run RUN_DIR --suite S`: evaluate the start model and every finished checkpoint of a
`prefcurate train` run, and publish the results as a store entry `evals/<run>/<version>`.

Per model: `eval generate` into RUN_DIR/evals/<suite>/<stage>/generations.jsonl (resumable), then
`eval code` into the same folder (summary.json, tasks.jsonl, samples.jsonl, tagged with arm =
run name, stage, global step, epochs and pairs seen, so `eval compare` reads the folders as
they are), then entry.json, written last: the checkpoint's result as the store entry records it
(pass@k, model fingerprint, excluded tasks, sandbox) and the settings that decided it. A
checkpoint whose entry.json holds the same settings is not evaluated again: `train --eval`
evaluates each stage as it finishes, and a rerun (a resumed run, or `eval run` afterwards) reuses
what is there.

The store entry is published once per suite, from the entries of the checkpoints asked for: one
row per (stage, task) and a manifest with the suite, the sampling settings, the backend, each
model's fingerprint and the sandbox's isolation report. Publishing the same results again reuses
the version that holds them (same fingerprint).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from ..ids import fingerprint
from ..store import Store, VersionRef
from .code import DEFAULT_KS, evaluate_samples
from .generate import GenerateOptions, generate
from .suites import load_suite, parse_suite_name

# The columns every per-checkpoint result row starts with (`eval run`, `eval winrate RUN_DIR`): the
# `evals` view and `eval compare` line arms up on them.
CHECKPOINT_FIELDS = [
    ("run", pa.string()),
    ("stage", pa.string()),
    ("step", pa.int64()),
    ("epochs", pa.float64()),
    ("pairs_seen", pa.int64()),
    ("suite", pa.string()),
    ("task_id", pa.string()),
]

EVAL_SCHEMA = pa.schema(
    [
        *CHECKPOINT_FIELDS,
        ("n", pa.int64()),
        ("c", pa.int64()),
        ("pass_at_1", pa.float64()),
    ]
)
ENTRY = "entry.json"  # a checkpoint's finished evaluation (written last)


@dataclass(frozen=True)
class Checkpoint:
    stage: str  # "start", "stage-1", ..., "step-<N>"
    model: str | None  # a model spec (None = the bundled model)
    step: int  # global optimizer steps before this checkpoint
    epochs: float  # passes over the run's training pairs (see `checkpoints`)
    pairs_seen: int  # pairs consumed (pairs x epochs), summed


@dataclass(frozen=True)
class RunEvalOptions:
    """How each checkpoint is generated and scored: `eval run`'s options, and what `train --eval`
    uses (the defaults of both are these)."""

    n: int = 1
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 384
    batch_size: int = 16
    backend: str = "transformers"
    dtype: str = "fp32"
    timeout: float = 5.0
    workers: int | None = None
    limit: int | None = None
    data_dir: str | None = None

    def generate_options(self, model: str | None, suite: str, out: str) -> GenerateOptions:
        return GenerateOptions(
            model=model,
            suite=suite,
            out=out,
            n=self.n,
            temperature=self.temperature,
            seed=self.seed,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            backend=self.backend,
            dtype=self.dtype,
            limit=self.limit,
            data_dir=self.data_dir,
        )

    def validate(self) -> None:
        self.generate_options(None, "humaneval", "-").validate()
        if self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")

    def result_key(self, suite: str) -> dict[str, Any]:
        """What decides a checkpoint's results (batch size, workers and the data folder do not)."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "workers", "data_dir")}
        return {"suite": suite, **keep}


def check_suites(suites: str | Sequence[str], options: RunEvalOptions, flag: str = "--suite") -> list[str]:
    """The suites' canonical names, each loaded once so a bad name or missing data fails now
    (before a training run spends hours), with the options checked too."""
    names = [s.strip() for s in suites.split(",")] if isinstance(suites, str) else [s.strip() for s in suites]
    names = [s for s in names if s]
    if not names:
        raise ConfigError(f"{flag} expects suite names such as humaneval,mbpp, got {suites!r}")
    for name in names:  # every name before any data is read
        parse_suite_name(name, flag)
    options.validate()
    labels: list[str] = []
    for name in names:
        label = load_suite(name, options.data_dir).name
        if label not in labels:
            labels.append(label)
    return labels


def checkpoints(run_dir: Path) -> tuple[str, list[Checkpoint]]:
    """The run's name and its models in order: the start model, then each finished stage."""
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise ConfigError(f"{run_dir} is not a prefcurate train run (no run.json)")
    meta = json.loads(meta_path.read_text())
    name = str(meta.get("name") or run_dir.name)
    out = [Checkpoint("start", (meta.get("config") or {}).get("model"), 0, 0.0, 0)]
    step = pairs = 0
    epochs = 0.0
    for plan in meta.get("plan") or []:
        t = int(plan["stage"])
        done = run_dir / f"stage-{t}" / "DONE"
        if not done.is_file():
            break  # stages run in order: the rest are not trained yet
        res = json.loads(done.read_text())
        step += int(res.get("steps") or 0)
        epochs += float(res.get("epochs") or plan.get("epochs") or 0)
        pairs += int(res.get("pairs") or 0) * int(res.get("epochs") or plan.get("epochs") or 1)
        out.append(Checkpoint(f"stage-{t}", str(run_dir / f"stage-{t}" / "model"), step, epochs, pairs))
    # `train --save-at-steps`: extra checkpoints at given global steps (a plain arm at stage boundaries).
    for done in run_dir.glob("step-*/DONE"):
        info = json.loads(done.read_text())
        at = int(info["step"])
        if any(c.step == at for c in out):
            continue  # a stage boundary is already there
        ckpt = Checkpoint(
            f"step-{at}",
            str(done.parent / "model"),
            at,
            float(info.get("epochs") or 0),
            int(info.get("pairs_seen") or 0),
        )
        out.append(ckpt)
    out.sort(key=lambda c: c.step)
    # Epochs as passes over the run's whole training data (pairs seen / pairs in the plan), so a
    # curriculum's last stage and a plain arm over the same pairs both read 1 epoch, and an
    # intermediate checkpoint its fraction; runs without bucket sizes keep the per-stage sum.
    rows = {int(b["bucket"]): int(b["rows"]) for b in meta.get("buckets") or [] if "rows" in b}
    used = {int(b) for plan in meta.get("plan") or [] for b in plan.get("buckets") or []}
    total = sum(rows.get(b, 0) for b in used) if used and used <= set(rows) else 0
    if total:
        out = [replace(c, epochs=round(c.pairs_seen / total, 6)) for c in out]
    return name, out


def result_folder(run_dir: Path, suite: str, stage: str) -> Path:
    return run_dir / "evals" / suite.replace(":", "-") / stage


def _tags(name: str, ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "arm": name,
        "stage": ckpt.stage,
        "step": ckpt.step,
        "epochs": ckpt.epochs,
        "pairs_seen": ckpt.pairs_seen,
    }


def read_entry(run_dir: Path, suite: str, ckpt: Checkpoint, options: RunEvalOptions) -> dict[str, Any] | None:
    """The checkpoint's finished evaluation when it was made with these settings, else None."""
    path = result_folder(run_dir, suite, ckpt.stage) / ENTRY
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cut by a kill: evaluated again
    ok = entry.get("key") == options.result_key(suite) and entry.get("model") == ckpt.model
    return entry if ok and (path.parent / "tasks.jsonl").is_file() else None


def evaluate_checkpoint(
    run_dir: Path,
    name: str,
    ckpt: Checkpoint,
    suite: str,
    options: RunEvalOptions,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate and score one checkpoint into its result folder, unless its entry.json already
    holds a result with these settings; returns the entry (see the module doc)."""
    say = log or (lambda _line: None)
    if (entry := read_entry(run_dir, suite, ckpt, options)) is not None:
        say(f"{suite}: {ckpt.stage} (global step {ckpt.step}) evaluated earlier, reused")
        return entry
    folder = result_folder(run_dir, suite, ckpt.stage)
    folder.mkdir(parents=True, exist_ok=True)
    say(f"{suite}: evaluating {ckpt.stage} (global step {ckpt.step}): generate, then run in the sandbox")
    started = time.perf_counter()
    opts = options.generate_options(ckpt.model, suite, str(folder / "generations.jsonl"))
    gen = generate(opts)
    tags = _tags(name, ckpt)
    result = evaluate_samples(
        opts.out,
        suite,
        ks=DEFAULT_KS,
        timeout=options.timeout,
        workers=options.workers,
        data_dir=options.data_dir,
        tags=tags,
    )
    result.write(folder)
    entry = {
        "key": options.result_key(suite),
        "model": ckpt.model,
        "sampling": gen.meta["generation"],
        "stage": {
            **result.metrics,
            **{k: v for k, v in tags.items() if k != "arm"},
            "model_fingerprint": gen.meta["model_fingerprint"],
            "excluded": result.excluded,
            "sandbox": result.sandbox,
        },
    }
    tmp = folder / (ENTRY + ".tmp")
    tmp.write_text(json.dumps(entry, indent=2) + "\n")
    os.replace(tmp, folder / ENTRY)
    p1 = result.metrics.get("pass@1")
    shown = "-" if p1 is None else f"{p1:.3f}"
    say(
        f"{suite}: {ckpt.stage} pass@1 = {shown} over {len(result.tasks)} tasks "
        f"({time.perf_counter() - started:.0f}s; {folder})"
    )
    return entry


def _rows(folder: Path, name: str, ckpt: Checkpoint, suite: str) -> list[dict[str, Any]]:
    rows = []
    for line in (folder / "tasks.jsonl").read_text().splitlines():
        if line.strip():
            t = json.loads(line)
            rows.append(
                {
                    "run": name,
                    "stage": ckpt.stage,
                    "step": ckpt.step,
                    "epochs": ckpt.epochs,
                    "pairs_seen": ckpt.pairs_seen,
                    "suite": suite,
                    "task_id": t["task_id"],
                    "n": t["n"],
                    "c": t["c"],
                    "pass_at_1": t["c"] / t["n"],
                }
            )
    return rows


def publish_run(
    store: Store,
    run_dir: str | Path,
    suite: str,
    options: RunEvalOptions,
    models: list[Checkpoint] | None = None,
) -> tuple[VersionRef, pa.Table]:
    """Publish `evals/<run>/<version>` for one suite from the checkpoints' entries (each must be
    evaluated with `options`); reuses a version holding the same results."""
    run_dir = Path(run_dir).resolve()
    name, found = checkpoints(run_dir)
    rows: list[dict[str, Any]] = []
    per_stage: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for ckpt in found if models is None else models:
        entry = read_entry(run_dir, suite, ckpt, options)
        if entry is None:
            raise ConfigError(
                f"{result_folder(run_dir, suite, ckpt.stage)}: {ckpt.stage} is not evaluated yet"
            )
        sampling = entry["sampling"]
        per_stage[ckpt.stage] = entry["stage"]
        rows.extend(_rows(result_folder(run_dir, suite, ckpt.stage), name, ckpt, suite))
    table = pa.Table.from_pylist(rows, schema=EVAL_SCHEMA)
    sandbox = next(iter(per_stage.values()))["sandbox"] if per_stage else {}
    manifest = {
        "run": name,
        "run_dir": str(run_dir.resolve()),
        "suite": suite,
        "sampling": {k: v for k, v in sampling.items() if k not in ("model", "suite", "backend", "dtype")},
        "backend": options.backend,
        "dtype": options.dtype,
        "stages": per_stage,
        "sandbox": sandbox,
        "sandbox_isolation": sandbox.get("isolation"),
        "counts": {"rows": table.num_rows},
    }
    fp = fingerprint({k: v for k, v in manifest.items() if k != "sandbox"} | {"rows": rows})
    manifest["fingerprint"] = fp
    if (ref := store.find_fingerprint("evals", name, fp)) is not None:
        return ref, table  # the same rows: a resumed run, or `eval run` after `train --eval`
    with store.publish("evals", name, manifest) as pub:
        pub.write_table(table)
    return VersionRef("evals", name, pub.manifest["version"], pub.path), table


def evaluate_run(
    store: Store,
    run_dir: str | Path,
    suite: str,
    options: RunEvalOptions | None = None,
    *,
    stages: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[VersionRef, pa.Table]:
    """Generate and score every checkpoint of a run (see the module doc); publish; return the rows."""
    options = options or RunEvalOptions()
    run_dir = Path(run_dir).resolve()  # checkpoint paths as `train` records them (it resolves --out)
    label = check_suites([suite], options)[0]
    name, models = checkpoints(run_dir)
    if stages:
        models = [m for m in models if m.stage in stages]
        if not models:
            raise ConfigError(f"--stage {','.join(stages)}: no such finished stage in {run_dir}")
    for ckpt in models:
        evaluate_checkpoint(run_dir, name, ckpt, label, options, log)
    return publish_run(store, run_dir, label, options, models)
