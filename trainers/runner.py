"""`trainers.run`: plain, curriculum and stepwise DPO over buckets, one TRL `DPOTrainer` per stage.

Run folder:

    RUN_DIR/run.json            the config, the data, the stage plan and status
    RUN_DIR/run.log             what happened, in words (which reference log-probs were used...)
    RUN_DIR/metrics.parquet     per-step training metrics and per-stage held-out evaluation
    RUN_DIR/eval/start.parquet  held-out log-probs of the starting model
    RUN_DIR/stage-<t>/model/    the checkpoint after stage t (t = 1..T)
    RUN_DIR/stage-<t>/order.parquet      pair_ids consumed per optimizer step
    RUN_DIR/stage-<t>/ref_logps.parquet  the reference log-probs the stage trained against
    RUN_DIR/stage-<t>/metrics.parquet    this stage's rows of metrics.parquet
    RUN_DIR/stage-<t>/DONE      written last: a stage without it is redone on resume
    RUN_DIR/step-<N>/model/     with --save-at-steps: the model at global step N (DONE: step, stage, epochs)
    RUN_DIR/eval/<ckpt>.parquet held-out log-probs of each stage-<t> and step-<N> checkpoint
    RUN_DIR/evals/<suite>/<ckpt>/  with eval_suites (`train --eval`): each checkpoint's outcome evaluation,
                                made as its stage finishes (trainers/suite_evals.py)

Schedules (stage t = 1..T, model 0 = the starting model):
    plain       one stage over all buckets; start = reference = model 0
    curriculum  stage t trains bucket t-1; start = model t-1, reference = model 0 (Curri-DPO, non-iterative)
    stepwise    stage t trains bucket t-1; start = reference = model t-1 (sDPO / iterative Curri-DPO)
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from prefcurate.errors import ConfigError
from prefcurate.ids import fingerprint
from prefcurate.store import Store, check_name, write_parquet

from .buckets import BucketSet, load_buckets, load_holdout
from .config import NOT_RECORDED_FOR_RESUME, TrainConfig, resolve_dtype
from .plan import INITIAL, METRIC_SCHEMA, RunLog, StageContext, StagePlan, StageResult

if TYPE_CHECKING:
    from prefcurate.evaluate.run import RunEvalOptions


@dataclass
class RunResult:
    run_dir: Path
    config: TrainConfig
    stages: list[StageResult]
    start_gamma: float | None
    holdout_pairs: int
    metrics: pa.Table
    store_label: str | None = None
    resumed_stages: list[int] = field(default_factory=list)
    eval_labels: list[str] = field(default_factory=list)  # evals/<run>/<version>, one per suite

    def summary(self) -> pa.Table:
        """One row per stage (row 0 = the starting model): held-out accuracy and mean gamma."""
        rows: list[dict[str, Any]] = [
            {
                "stage": 0,
                "buckets": "-",
                "pairs": 0,
                "steps": 0,
                "reference": "-",
                "ref_logps": "-",
                "final_loss": None,
                "holdout_accuracy": None,
                "holdout_gamma": self.start_gamma,
            }
        ]
        for s in self.stages:
            rows.append(
                {
                    "stage": s.stage,
                    "buckets": ",".join(map(str, s.buckets)),
                    "pairs": s.pairs,
                    "steps": s.steps,
                    "reference": s.reference,
                    "ref_logps": s.ref_logps,
                    "final_loss": s.final_loss,
                    "holdout_accuracy": s.holdout_accuracy,
                    "holdout_gamma": s.holdout_gamma,
                }
            )
        schema = pa.schema(
            [
                ("stage", pa.int64()),
                ("buckets", pa.string()),
                ("pairs", pa.int64()),
                ("steps", pa.int64()),
                ("reference", pa.string()),
                ("ref_logps", pa.string()),
                ("final_loss", pa.float64()),
                ("holdout_accuracy", pa.float64()),
                ("holdout_gamma", pa.float64()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)


def plan_stages(config: TrainConfig, bucket_set: BucketSet) -> list[StagePlan]:
    ids = [b.bucket for b in bucket_set.buckets]
    if config.schedule == "plain":
        return [StagePlan(1, ids, INITIAL, INITIAL, config.epochs_for(1, 1))]
    plans = []
    for t, k in enumerate(ids, start=1):
        previous = INITIAL if t == 1 else f"stage-{t - 1}"
        reference = INITIAL if config.schedule == "curriculum" else previous
        plans.append(StagePlan(t, [k], previous, reference, config.epochs_for(t, len(ids))))
    return plans


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _data_fingerprint(bucket_set: BucketSet) -> str:
    return fingerprint(
        {
            "buckets": [[b.bucket, b.table.column("pair_id").to_pylist()] for b in bucket_set.buckets],
            "ref_logps": bucket_set.has_ref_logps,
        }
    )


def run(
    buckets: Any,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    store: Store | None = None,
    holdout: Any = None,
    run_name: str | None = None,
    echo: Callable[[str], None] | None = None,
    callbacks: list[Any] | None = None,
    publish: bool = True,
    eval_suites: str | Sequence[str] | None = None,
    eval_options: RunEvalOptions | None = None,
    **overrides: Any,
) -> RunResult:
    """Train over `buckets` (export folder, store bucket-set name, or TRL-form Arrow tables) into `out_dir`.

    Rerunning with the same arguments resumes: finished stages (with their DONE marker) are skipped.
    `overrides` are TrainConfig fields (`schedule="stepwise", beta=0.1, ...`). `eval_suites`
    ("humaneval,mbpp"): every checkpoint is evaluated on them as its stage finishes
    (`eval_options`: how; `eval run`'s defaults), and `evals/<run>/<version>` is published per suite
    at the end (see trainers/suite_evals.py). Suite names and their data are checked first.
    """
    config = replace(config, **overrides) if config is not None else TrainConfig(**overrides)
    suite_evals = None
    if eval_suites:
        from .suite_evals import SuiteEvals

        suite_evals = SuiteEvals(eval_suites, eval_options)  # a bad name fails before any training
    run_dir = Path(out_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    bucket_set = load_buckets(buckets, store)
    holdout_table, holdout_source = load_holdout(holdout, store, bucket_set.dataset)
    if holdout_table is not None and config.eval_max_pairs is not None:
        holdout_table = holdout_table.slice(0, config.eval_max_pairs)
    name = run_name or run_dir.name
    check_name(name, "run name")
    plans = plan_stages(config, bucket_set)
    log = RunLog(run_dir / "run.log", echo)

    data_fp = _data_fingerprint(bucket_set)
    meta_path = run_dir / "run.json"
    resumed = meta_path.is_file()
    if resumed:
        previous = json.loads(meta_path.read_text())
        old_config = previous.get("config", {})
        for key, value in config.to_dict().items():
            if key in NOT_RECORDED_FOR_RESUME:
                continue
            if old_config.get(key) != value:
                raise ConfigError(
                    f"{run_dir} holds a run with {key}={old_config.get(key)!r}, not {value!r}: "
                    "use a new --out folder (or delete this one) to train with different settings"
                )
        if previous.get("data_fingerprint") != data_fp:
            raise ConfigError(
                f"{run_dir} holds a run over different buckets ({previous.get('buckets_source')}): use a new --out folder"
            )
    meta: dict[str, Any] = {
        "name": name,
        "config": config.to_dict(),
        "buckets_source": bucket_set.source,
        "buckets": bucket_set.describe(),
        "dataset": bucket_set.dataset,
        "data_fingerprint": data_fp,
        "holdout": {
            "source": holdout_source,
            "pairs": 0 if holdout_table is None else holdout_table.num_rows,
        },
        "plan": [asdict(p) for p in plans],
        "status": "running",
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_json(meta_path, meta)
    log(
        f"{'resuming' if resumed else 'starting'} run {name!r}: schedule {config.schedule}, {len(plans)} stage(s) over "
        f"{sum(b.rows for b in bucket_set.buckets)} pairs in {len(bucket_set.buckets)} bucket(s) from {bucket_set.source}"
    )

    from .stage import evaluate_start, train_stage

    dtype = resolve_dtype(config.dtype)
    if dtype != config.dtype:
        log(
            f"dtype auto -> {dtype} ({'bf16 matrix products are fast here' if dtype == 'bf16' else 'bf16 is slow on this CPU'})"
        )
    meta["dtype"] = dtype
    _write_json(meta_path, meta)
    ctx = StageContext(
        config=config,
        run_dir=run_dir,
        bucket_set=bucket_set,
        holdout=holdout_table,
        store=store,
        log=log,
        callbacks=list(callbacks or []),
        dtype=dtype,
    )
    start_gamma = evaluate_start(ctx) if holdout_table is not None else None
    if holdout_table is None:
        log("no held-out pairs (give --holdout, or run `prefcurate split`): per-stage evaluation skipped")
    if suite_evals is not None:
        log(f"outcome evaluation ({', '.join(suite_evals.suites)}) of each checkpoint as its stage finishes")
        suite_evals.after_stage(run_dir, 0, log)  # the start model, before training

    results: list[StageResult] = []
    skipped: list[int] = []
    for plan in plans:
        stage_dir = run_dir / f"stage-{plan.stage}"
        done = stage_dir / "DONE"
        if done.is_file():
            results.append(StageResult(**json.loads(done.read_text())))
            skipped.append(plan.stage)
            log(f"stage {plan.stage}/{len(plans)}: finished earlier, skipped")
            if suite_evals is not None:  # evaluations cut short by an interruption are finished now
                suite_evals.after_stage(run_dir, sum(r.steps for r in results), log)
            continue
        if stage_dir.exists():
            log(
                f"stage {plan.stage}/{len(plans)}: unfinished folder from an interrupted run, redoing the stage"
            )
            shutil.rmtree(stage_dir)
        ctx.steps_before = sum(r.steps for r in results)
        results.append(train_stage(ctx, plan, len(plans)))
        gc.collect()
        if suite_evals is not None:  # this stage's checkpoints, before the next stage starts
            suite_evals.after_stage(run_dir, sum(r.steps for r in results), log)

    metrics = collect_metrics(run_dir, config, plans, start_gamma, holdout_table)
    write_parquet(metrics, run_dir / "metrics.parquet")
    label = None
    if publish:
        store = store or Store()
        with store.publish(
            "runs",
            name,
            {"run_dir": str(run_dir), "config": config.to_dict(), "counts": {"rows": metrics.num_rows}},
        ) as pub:
            pub.write_table(metrics, "metrics.parquet")
        label = f"runs/{name}/{pub.manifest['version']}"
        log(
            f"metrics published as {label} (query: prefcurate sql \"select * from runs where run = '{name}'\")"
        )
    eval_labels: list[str] = []
    if suite_evals is not None and publish:
        eval_labels = suite_evals.publish(store or Store(), run_dir, log)
    meta.update(
        status="done",
        finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        stages=[asdict(r) for r in results],
        start_gamma=start_gamma,
        store_version=label,
        evals=eval_labels,
    )
    _write_json(meta_path, meta)
    return RunResult(
        run_dir,
        config,
        results,
        start_gamma,
        0 if holdout_table is None else holdout_table.num_rows,
        metrics,
        label,
        skipped,
        eval_labels,
    )


def collect_metrics(
    run_dir: Path,
    config: TrainConfig,
    plans: list[StagePlan],
    start_gamma: float | None,
    holdout: pa.Table | None,
) -> pa.Table:
    tables = []
    if holdout is not None:
        tables.append(
            pa.Table.from_pylist(
                [
                    {
                        "kind": "eval",
                        "schedule": config.schedule,
                        "stage": 0,
                        "step": 0,
                        "global_step": 0,
                        "holdout_gamma": start_gamma,
                        "holdout_pairs": holdout.num_rows,
                    }
                ],
                schema=METRIC_SCHEMA,
            )
        )
    offset = 0
    for plan in plans:
        table = pq.read_table(run_dir / f"stage-{plan.stage}" / "metrics.parquet").cast(METRIC_SCHEMA)
        steps = table.filter(pa.compute.equal(table.column("kind"), "step"))
        globals_ = [s + offset for s in table.column("step").to_pylist()]
        table = table.set_column(
            table.schema.get_field_index("global_step"), "global_step", pa.array(globals_, pa.int64())
        )
        offset += max(steps.column("step").to_pylist(), default=0)
        tables.append(table)
    return pa.concat_tables(tables)


__all__ = ["RunResult", "StagePlan", "StageResult", "plan_stages", "run"]
