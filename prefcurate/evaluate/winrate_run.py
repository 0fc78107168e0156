"""`eval winrate RUN_DIR --judge RM --prompts holdout:<dataset>`: win rate of every stage of a
`prefcurate train` run against a baseline checkpoint (the start model by default), per stage.

Per checkpoint: `eval generate` on the held-out prompts of the dataset into
RUN_DIR/evals/winrate-<dataset>/<stage>/generations.jsonl (resumable; the same seed per prompt
for every checkpoint, so sampled arms differ only by their weights). The judge is loaded once;
the baseline's responses are scored once; each other stage is judged against them per prompt
(`winrate.judged`) and written next to its generations (summary.json + prompts.jsonl, tagged
like `eval run`'s folders, so `eval compare` reads them as they are). Every stage also gets
95% paired bootstrap intervals of its win and soft win over prompts and a sign-flip test of
"no difference to the baseline" (win - 0.5, soft win - 0.5), from the `paired` machinery.

The judge is refused when it scored the training pairs (of the run's dataset or the prompts'
dataset) with the same weights, unless `allow_circular`. Results are published like `eval run`'s:
one row per (stage, prompt) in `evals/<run>/<version>` (suite `winrate:<dataset>`), in the
DuckDB view `evals`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from ..store import Store, VersionRef
from .generate import GenerateOptions, generate
from .paired import bootstrap_ci, sign_flip_test
from .run import CHECKPOINT_FIELDS, checkpoints
from .winrate import WinRateResult, judged, read_responses, refuse_circular, score_responses

WINRATE_SCHEMA = pa.schema(
    [
        *CHECKPOINT_FIELDS,  # task_id holds the prompt id
        ("baseline", pa.string()),
        ("reward_candidate", pa.float64()),
        ("reward_baseline", pa.float64()),
        ("win", pa.float64()),
        ("soft_win", pa.float64()),
        ("len_candidate", pa.int64()),
        ("len_baseline", pa.int64()),
    ]
)


@dataclass(frozen=True)
class WinRateRunOptions:
    judge: str  # reward model spec
    prompts: str  # holdout:<dataset>
    baseline: str = "start"  # the checkpoint every other stage is judged against
    allow_circular: bool = False
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 256
    batch_size: int = 16
    backend: str = "transformers"
    dtype: str = "fp32"  # the policy's
    judge_dtype: str = "auto"
    limit: int | None = None  # first N held-out prompts
    stages: tuple[str, ...] = ()  # only these (the baseline is always generated)
    max_length: int = 2048  # judge's tokens per (prompt, response)
    batch_tokens: int = 16384
    n_resamples: int = 10_000


def holdout_dataset(prompts: str) -> str:
    kind, _, dataset = prompts.partition(":")
    if kind != "holdout" or not dataset:
        raise ConfigError(f"--prompts {prompts!r}: expected holdout:<dataset> (the pairs `split` held out)")
    return dataset


def with_intervals(res: WinRateResult, n_resamples: int, seed: int) -> WinRateResult:
    """Add 95% bootstrap intervals and a sign-flip p-value against 0.5 for win and soft win."""
    for metric, key in (("win", "win_rate"), ("soft_win", "soft_win_rate")):
        vals = [float(p[metric]) for p in res.prompts]
        low, high = bootstrap_ci(vals, n_resamples=n_resamples, seed=seed)
        res.metrics[f"{key}_low"], res.metrics[f"{key}_high"] = low, high
        res.metrics[f"{key}_p"] = sign_flip_test([v - 0.5 for v in vals], n_resamples=n_resamples, seed=seed)
    return res


def winrate_run(
    store: Store, run_dir: str | Path, opts: WinRateRunOptions
) -> tuple[VersionRef, list[dict[str, Any]]]:
    """Generate, judge and publish (see the module doc); returns the entry and one summary row per stage."""
    from prefcurate.models.reward import load_reward_model

    from ..models import model_fingerprint

    run_dir = Path(run_dir)
    dataset = holdout_dataset(opts.prompts)
    name, models = checkpoints(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    by_stage = {c.stage: c for c in models}
    if opts.baseline not in by_stage:
        raise ConfigError(
            f"--baseline {opts.baseline!r} is not a finished checkpoint of {run_dir} ({', '.join(by_stage)})"
        )
    fp = model_fingerprint(opts.judge)
    # Before any generation: a circular judge wastes nothing.
    refuse_circular(store, [str(meta.get("dataset") or ""), dataset], opts.judge, fp, opts.allow_circular)
    wanted = [c for c in models if c.stage != opts.baseline and (not opts.stages or c.stage in opts.stages)]
    if not wanted:
        raise ConfigError(f"no checkpoint of {run_dir} to judge against --baseline {opts.baseline}")

    root = run_dir / "evals" / f"winrate-{dataset}"
    files: dict[str, Path] = {}
    sampling: dict[str, Any] = {}
    fingerprints: dict[str, Any] = {}
    for ckpt in [by_stage[opts.baseline], *wanted]:
        out = root / ckpt.stage / "generations.jsonl"
        gen = generate(
            GenerateOptions(
                model=ckpt.model,
                suite=opts.prompts,
                out=str(out),
                temperature=opts.temperature,
                seed=opts.seed,
                max_new_tokens=opts.max_new_tokens,
                batch_size=opts.batch_size,
                backend=opts.backend,
                dtype=opts.dtype,
                limit=opts.limit,
                store=str(store.root),
            )
        )
        files[ckpt.stage] = out
        sampling = gen.meta["generation"]
        fingerprints[ckpt.stage] = gen.meta["model_fingerprint"]

    rm = load_reward_model(opts.judge, opts.judge_dtype, fingerprint=fp)
    base = read_responses(files[opts.baseline])
    ids = list(base)
    rb = score_responses(rm, ids, base, max_length=opts.max_length, batch_tokens=opts.batch_tokens)
    info = {"spec": opts.judge, "fingerprint": fp, "dtype": rm.dtype, "allow_circular": opts.allow_circular}
    label = f"winrate:{dataset}"
    summaries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for ckpt in wanted:
        cand = read_responses(files[ckpt.stage])
        if set(cand) != set(ids):  # same prompts; file order follows batching
            raise ConfigError(
                f"{files[ckpt.stage]}: other prompts than the baseline's {files[opts.baseline]}"
            )
        rc = score_responses(rm, ids, cand, max_length=opts.max_length, batch_tokens=opts.batch_tokens)
        tags = {
            "arm": name,
            "stage": ckpt.stage,
            "step": ckpt.step,
            "epochs": ckpt.epochs,
            "pairs_seen": ckpt.pairs_seen,
            "baseline": opts.baseline,
        }
        res = judged(
            ids,
            cand,
            base,
            rc,
            rb,
            info,
            tags,
            {"candidate": str(files[ckpt.stage]), "baseline": str(files[opts.baseline])},
        )
        with_intervals(res, opts.n_resamples, opts.seed).write(files[ckpt.stage].parent)
        summaries.append({"stage": ckpt.stage, "step": ckpt.step, "epochs": ckpt.epochs, **res.metrics})
        common = {k: v for k, v in tags.items() if k not in ("arm",)}
        rows += [
            {"run": name, **common, "suite": label, "task_id": p.pop("prompt_id"), **p}
            for p in (dict(r) for r in res.prompts)
        ]
    table = pa.Table.from_pylist(rows, schema=WINRATE_SCHEMA)
    manifest = {
        "run": name,
        "run_dir": str(run_dir.resolve()),
        "suite": label,
        "prompts": opts.prompts,
        "baseline": opts.baseline,
        "judge": info,
        "sampling": {k: v for k, v in sampling.items() if k not in ("model", "suite", "backend", "dtype")},
        "backend": opts.backend,
        "dtype": opts.dtype,
        "model_fingerprints": fingerprints,
        "stages": {s["stage"]: s for s in summaries},
        "counts": {"rows": table.num_rows},
    }
    with store.publish("evals", name, manifest) as pub:
        pub.write_table(table)
    return VersionRef("evals", name, pub.manifest["version"], pub.path), summaries


__all__ = ["WINRATE_SCHEMA", "WinRateRunOptions", "holdout_dataset", "winrate_run"]
