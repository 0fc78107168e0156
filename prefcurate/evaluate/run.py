"""`eval run RUN_DIR --suite S`: evaluate the start model and every finished stage checkpoint of a
`prefcurate train` run, and publish the results as a store entry `evals/<run>/<version>`.

Per model: `eval generate` into RUN_DIR/evals/<suite>/<stage>/samples.jsonl (resumable), then
`eval code` into the same folder (summary.json, tasks.jsonl, samples.jsonl, tagged with arm =
run name, stage, global step, epochs and pairs seen, so `eval compare` reads the folders as
they are). The store entry holds one row per (stage, task) and a manifest with the suite, the
sampling settings, the backend, each model's fingerprint and the sandbox's isolation report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from ..store import Store, VersionRef
from .code import DEFAULT_KS, evaluate_samples
from .generate import GenerateOptions, generate
from .suites import load_suite

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


@dataclass(frozen=True)
class Checkpoint:
    stage: str  # "start", "stage-1", ...
    model: str | None  # a model spec (None = the bundled model)
    step: int  # global optimizer steps before this checkpoint
    epochs: float  # passes over the run's training pairs (see `checkpoints`)
    pairs_seen: int  # pairs consumed (pairs x epochs), summed


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


def evaluate_run(
    store: Store,
    run_dir: str | Path,
    suite: str,
    *,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    max_new_tokens: int = 384,
    batch_size: int = 16,
    backend: str = "transformers",
    dtype: str = "fp32",
    timeout: float = 5.0,
    workers: int | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    stages: list[str] | None = None,
) -> tuple[VersionRef, pa.Table]:
    """Generate and score every checkpoint of a run (see the module doc); publish; return the rows."""
    run_dir = Path(run_dir)
    name, models = checkpoints(run_dir)
    if stages:
        models = [m for m in models if m.stage in stages]
        if not models:
            raise ConfigError(f"--stage {','.join(stages)}: no such finished stage in {run_dir}")
    label = load_suite(suite, data_dir).name
    rows: list[dict[str, Any]] = []
    per_stage: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for ckpt in models:
        folder = run_dir / "evals" / label.replace(":", "-") / ckpt.stage
        folder.mkdir(parents=True, exist_ok=True)
        opts = GenerateOptions(
            model=ckpt.model,
            suite=suite,
            out=str(folder / "generations.jsonl"),
            n=n,
            temperature=temperature,
            seed=seed,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            backend=backend,
            dtype=dtype,
            limit=limit,
            data_dir=data_dir,
        )
        gen = generate(opts)
        sampling = gen.meta["generation"]
        tags = {
            "arm": name,
            "stage": ckpt.stage,
            "step": ckpt.step,
            "epochs": ckpt.epochs,
            "pairs_seen": ckpt.pairs_seen,
        }
        result = evaluate_samples(
            opts.out, suite, ks=DEFAULT_KS, timeout=timeout, workers=workers, data_dir=data_dir, tags=tags
        )
        result.write(folder)
        per_stage[ckpt.stage] = {
            **result.metrics,
            **{k: v for k, v in tags.items() if k != "arm"},
            "model_fingerprint": gen.meta["model_fingerprint"],
            "excluded": result.excluded,
            "sandbox": result.sandbox,
        }
        for t in result.tasks:
            rows.append(
                {
                    "run": name,
                    "stage": ckpt.stage,
                    "step": ckpt.step,
                    "epochs": ckpt.epochs,
                    "pairs_seen": ckpt.pairs_seen,
                    "suite": label,
                    "task_id": t.task_id,
                    "n": t.n,
                    "c": t.c,
                    "pass_at_1": t.c / t.n,
                }
            )
    table = pa.Table.from_pylist(rows, schema=EVAL_SCHEMA)
    sandbox = next(iter(per_stage.values()))["sandbox"] if per_stage else {}
    manifest = {
        "run": name,
        "run_dir": str(run_dir.resolve()),
        "suite": label,
        "sampling": {k: v for k, v in sampling.items() if k not in ("model", "suite", "backend", "dtype")},
        "backend": backend,
        "dtype": dtype,
        "stages": per_stage,
        "sandbox": sandbox,
        "sandbox_isolation": sandbox.get("isolation"),
        "counts": {"rows": table.num_rows},
    }
    with store.publish("evals", name, manifest) as pub:
        pub.write_table(table)
    return VersionRef("evals", name, pub.manifest["version"], pub.path), table
