"""One stage of a run: pick the start and reference models, decide whether reference log-probs can be
injected, train with `BucketDPOTrainer`, checkpoint, record the consumed order, evaluate on held-out pairs
(the stage's model, and the `--save-at-steps` checkpoints saved during the stage).
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from prefcurate.errors import PrefcurateError
from prefcurate.extras import require
from prefcurate.progress import progress_bar
from prefcurate.store import write_parquet

from .buckets import REF_COLUMNS
from .checkpoint import forget_results, load_for_training, save_checkpoint
from .plan import INITIAL, METRIC_SCHEMA, StageContext, StagePlan, StageResult, finite
from .reference import ReferenceCheck, find_injectable, spot_check

STEP_KEYS = {
    "loss": "loss",
    "rewards/chosen": "rewards_chosen",
    "rewards/rejected": "rewards_rejected",
    "rewards/margins": "rewards_margins",
    "rewards/accuracies": "rewards_accuracies",
    "logps/chosen": "logps_chosen",
    "logps/rejected": "logps_rejected",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
}


def model_path(ctx: StageContext, label: str) -> str | None:
    """Where model `label` ("start" or "stage-<t>") is loaded from."""
    if label == INITIAL:
        return ctx.config.model
    return str(ctx.run_dir / label / "model")


# -- evaluation ------------------------------------------------------------------------------------


def _holdout_logps(ctx: StageContext, spec: str | None) -> tuple[list[float | None], list[float | None]]:
    from .evaluate import holdout_logps

    assert ctx.holdout is not None
    return holdout_logps(spec, ctx.holdout, ctx.config, ctx.dtype, ctx.run_dir / "eval" / "trainer")


def evaluate_start(ctx: StageContext) -> float | None:
    """Held-out log-probs of the starting model (cached in eval/start.parquet); returns its mean gamma."""
    assert ctx.holdout is not None
    path = ctx.run_dir / "eval" / "start.parquet"
    ids = ctx.holdout.column("pair_id").to_pylist()
    if path.is_file() and pq.read_table(path, columns=["pair_id"]).column("pair_id").to_pylist() == ids:
        table = pq.read_table(path)
        ctx.log(
            f"held-out: {len(ids)} pairs; starting model's log-probs reused from {path.relative_to(ctx.run_dir)}"
        )
    else:
        with quiet(), progress_bar("held-out log-probs (starting model)", None):
            chosen, rejected = _holdout_logps(ctx, ctx.config.model)
        table = pa.table({"pair_id": ids, "chosen_logp": chosen, "rejected_logp": rejected})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, path)
    chosen, rejected = table.column("chosen_logp").to_pylist(), table.column("rejected_logp").to_pylist()
    ctx.start_logps = (chosen, rejected)
    gamma = _mean([c - r for c, r in zip(chosen, rejected, strict=True) if c is not None and r is not None])
    ctx.log(f"held-out ({len(ids)} pairs): starting model mean gamma = {gamma:.4f}")
    return gamma


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def evaluate_stage(ctx: StageContext, checkpoint: Path) -> tuple[float | None, float | None]:
    """(implicit-reward accuracy against the starting model, mean gamma of this model as a reference)."""
    assert ctx.holdout is not None and ctx.start_logps is not None
    chosen, rejected = _holdout_logps(ctx, str(checkpoint))
    # Per pair, next to the start model's: `prefcurate eval holdout` pairs arms on these.
    ids = ctx.holdout.column("pair_id").to_pylist()
    write_parquet(
        pa.table(
            {
                "pair_id": ids,
                "chosen_logp": pa.array(chosen, pa.float64()),
                "rejected_logp": pa.array(rejected, pa.float64()),
            }
        ),
        ctx.run_dir / "eval" / f"{checkpoint.parent.name}.parquet",
    )
    c0, r0 = ctx.start_logps
    rows = [
        (c, r, a, b)
        for c, r, a, b in zip(chosen, rejected, c0, r0, strict=True)
        if c is not None and r is not None and a is not None and b is not None
    ]
    # Implicit reward r(y) = beta * (log pi(y|x) - log pi_0(y|x)); beta > 0 does not change the sign.
    wins = [(c - a) > (r - b) for c, r, a, b in rows]
    accuracy = sum(wins) / len(wins) if wins else None
    return accuracy, _mean([c - r for c, r, _, _ in rows])


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _evaluate_saved_steps(
    ctx: StageContext, plan: StagePlan, head: str, saved: list[int], steps: int, single: int | None
) -> list[dict[str, Any]]:
    """Held-out evaluation of the `--save-at-steps` checkpoints saved during this stage (after its
    training: an evaluation inside TRL's loop would build a Trainer there, which reseeds the RNG and
    changes the run), as metric rows of kind "eval_step" and RUN_DIR/eval/step-<N>.parquet, the
    per-pair log-probs `eval holdout` reads. A checkpoint at the stage's last step is the stage's
    own model: it is evaluated once, as the stage."""
    rows: list[dict[str, Any]] = []
    for at in sorted(set(saved)):
        if at == ctx.steps_before + steps:
            continue
        with progress_bar(f"{head} held-out log-probs (step-{at})", None):
            accuracy, gamma = evaluate_stage(ctx, ctx.run_dir / f"step-{at}" / "model")
        ctx.log(
            f"{head}: step-{at} held-out implicit-reward accuracy = {_f(accuracy, 3)}, mean gamma = {_f(gamma, 4)}"
        )
        rows.append(
            {
                "kind": "eval_step",
                "schedule": ctx.config.schedule,
                "stage": plan.stage,
                "bucket": single,
                "step": at - ctx.steps_before,
                "holdout_accuracy": accuracy,
                "holdout_gamma": gamma,
                "holdout_pairs": ctx.holdout.num_rows if ctx.holdout is not None else 0,
            }
        )
    return rows


# -- training --------------------------------------------------------------------------------------


def _stage_table(ctx: StageContext, plan: StagePlan) -> tuple[pa.Table, list[int]]:
    """The stage's pairs in bucket order with a row_index column, and the bucket of each row."""
    parts, bucket_of = [], []
    for b in ctx.bucket_set.buckets:
        if b.bucket in plan.buckets:
            parts.append(b.table)
            bucket_of.extend([b.bucket] * b.rows)
    table = pa.concat_tables(parts, promote_options="default")
    return table.append_column("row_index", pa.array(range(table.num_rows), pa.int64())), bucket_of


def _dpo_args(ctx: StageContext, plan: StagePlan, stage_dir: Path) -> Any:
    trl = require("trl", "training")
    c = ctx.config
    # TRL's own options (beta, learning rate, batch size..., --trl KEY=VALUE), over two defaults of ours
    options = {"gradient_checkpointing": False, "dataloader_num_workers": 0, **c.dpo_kwargs()}
    return trl.DPOConfig(
        **options,
        output_dir=str(stage_dir / "trainer"),
        num_train_epochs=plan.epochs,
        max_steps=c.max_steps_per_stage or -1,
        truncation_mode="keep_start",
        precompute_ref_log_probs=True,  # reference log-probs once per stage (or injected): no reference model kept
        precompute_ref_batch_size=max(c.batch_size, 8),
        bf16=ctx.dtype == "bf16",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        data_seed=c.seed,
        use_cpu=not _cuda(),
    )


def _cuda() -> bool:
    torch = require("torch", "training")
    return bool(torch.cuda.is_available())


def _make_trainer(
    ctx: StageContext,
    plan: StagePlan,
    stage_dir: Path,
    model: Any,
    tokenizer: Any,
    dataset: Any,
    ref_model: Any,
) -> Any:
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from .dpo import BucketDPOTrainer, IndexedPreferenceCollator

    args = _dpo_args(ctx, plan, stage_dir)
    collator = IndexedPreferenceCollator(
        DataCollatorForPreference(
            pad_token_id=tokenizer.pad_token_id,
            max_length=args.max_length,
            truncation_mode=args.truncation_mode,
        )
    )
    trainer = BucketDPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        data_collator=collator,
        train_dataset=dataset,
        processing_class=tokenizer,
        order=ctx.config.order,
        sampler_seed=ctx.config.seed * 7919 + plan.stage,
    )
    trainer.ref_model = None  # reference log-probs are in the dataset now: free the reference model
    return trainer


def _to_dataset(table: pa.Table) -> Any:
    datasets = require("datasets", "training")
    return datasets.Dataset(table)


@contextmanager
def quiet() -> Iterator[Any]:
    """Our progress bars and run log replace the libraries' bars, prints and deprecation chatter."""
    transformers = require("transformers", "training")
    require("datasets", "training").disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        yield transformers


def train_stage(ctx: StageContext, plan: StagePlan, n_stages: int) -> StageResult:
    with quiet() as transformers:
        return _train_stage(ctx, plan, n_stages, transformers)


@dataclass
class _Reference:
    """Where a stage's reference log-probs come from, and the trainer built for that."""

    trainer: Any
    model: Any
    tokenizer: Any
    injected: bool
    detail: str  # for the log and the StageResult


def _with_reference(
    ctx: StageContext,
    plan: StagePlan,
    stage_dir: Path,
    head: str,
    table: pa.Table,
    model: Any,
    tokenizer: Any,
) -> _Reference:
    """Reference log-probs: inject when the reference is model 0 and a matching log-prob signal exists
    (checked by fingerprint, then by a spot check against TRL's own computation); else TRL computes them."""
    c = ctx.config
    check: ReferenceCheck | None = None
    plain_table = table.drop_columns([col for col in REF_COLUMNS if col in table.column_names])
    trainer = None
    if plan.reference == INITIAL and c.ref_logps != "compute":
        check = find_injectable(ctx, table, tokenizer)
        if check.ok:
            assert check.values is not None
            injected_table = plain_table.append_column(REF_COLUMNS[0], check.values[0]).append_column(
                REF_COLUMNS[1], check.values[1]
            )
            trainer = _make_trainer(ctx, plan, stage_dir, model, tokenizer, _to_dataset(injected_table), None)
            if plan.start == INITIAL:
                check = spot_check(trainer, trainer.model, check, ctx.dtype)
            else:
                from trl.trainer.utils import add_fused_lm_head

                reference = load_for_training(c.model)[0]
                add_fused_lm_head(reference)
                check = spot_check(trainer, reference, check, ctx.dtype)
                del reference
            if not check.ok:  # start again from a fresh model: TRL patched this one's forward
                del trainer
                trainer = None
                model, tokenizer = load_for_training(model_path(ctx, plan.start))
        if not check.ok and c.ref_logps == "require":
            raise PrefcurateError(
                f"{head}: --ref-logps require, but the reference log-probs cannot be injected: {check.reason}"
            )
    injected = check is not None and check.ok
    if trainer is None:
        ref_model = None
        if plan.reference != plan.start:  # curriculum after stage 1: model 0 is the reference
            ref_model = load_for_training(model_path(ctx, plan.reference))[0]
        with progress_bar(f"{head} reference log-probs", None):
            trainer = _make_trainer(
                ctx, plan, stage_dir, model, tokenizer, _to_dataset(plain_table), ref_model
            )
        del ref_model
    if injected:
        assert check is not None
        detail = f"injected from {check.source} ({check.reason}): reference forward pass skipped"
    else:
        why = (
            check.reason
            if check is not None
            else (
                "--ref-logps compute"
                if c.ref_logps == "compute"
                else f"the reference is the {plan.reference} model"
            )
        )
        detail = f"computed by TRL with the {plan.reference} model ({why})"
    return _Reference(trainer, model, tokenizer, injected, detail)


def _write_records(
    stage_dir: Path, table: pa.Table, bucket_of: list[int], trainer: Any, injected: bool
) -> None:
    """Records: consumed order, reference log-probs."""
    pair_ids = table.column("pair_id").to_pylist()
    order_rows = [
        {
            "step": step,
            "micro_batch": micro,
            "position": pos,
            "row_index": r,
            "pair_id": pair_ids[r],
            "bucket": bucket_of[r],
        }
        for step, micro, rows in trainer.consumed
        for pos, r in enumerate(rows)
    ]
    write_parquet(pa.Table.from_pylist(order_rows, schema=ORDER_SCHEMA), stage_dir / "order.parquet")
    ds = trainer.train_dataset
    ref_rows = ds.select_columns(["row_index", *REF_COLUMNS]).to_dict()
    write_parquet(
        pa.table(
            {
                "pair_id": [pair_ids[r] for r in ref_rows["row_index"]],
                "ref_chosen_logps": pa.array(ref_rows[REF_COLUMNS[0]], pa.float64()),
                "ref_rejected_logps": pa.array(ref_rows[REF_COLUMNS[1]], pa.float64()),
                "origin": ["injected" if injected else "computed"] * len(ref_rows["row_index"]),
            }
        ),
        stage_dir / "ref_logps.parquet",
    )


def _train_stage(ctx: StageContext, plan: StagePlan, n_stages: int, transformers: Any) -> StageResult:
    started = time.perf_counter()
    stage_dir = ctx.run_dir / f"stage-{plan.stage}"
    stage_dir.mkdir(parents=True)
    forget_results(ctx.run_dir, stage_dir.name)
    c = ctx.config
    table, bucket_of = _stage_table(ctx, plan)
    head = f"stage {plan.stage}/{n_stages}"
    what = (
        f"bucket {plan.buckets[0]}"
        if len(plan.buckets) == 1
        else f"buckets {','.join(map(str, plan.buckets))}"
    )
    ctx.log(
        f"{head}: {what}, {table.num_rows} pairs, {plan.epochs} epoch(s), order {c.order}; "
        f"start = {plan.start} model, reference = {plan.reference} model"
    )
    model, tokenizer = load_for_training(model_path(ctx, plan.start))
    ref = _with_reference(ctx, plan, stage_dir, head, table, model, tokenizer)
    trainer, model, tokenizer, injected, detail = (
        ref.trainer,
        ref.model,
        ref.tokenizer,
        ref.injected,
        ref.detail,
    )
    del ref  # the models are freed at the stage's end
    ctx.log(f"{head}: reference log-probs {detail}")
    kept = len(trainer.train_dataset)
    if kept < table.num_rows:
        ctx.log(
            f"{head}: TRL dropped {table.num_rows - kept} pair(s) whose prompt alone fills --max-length {c.max_length}"
        )

    collector = _Collector(ctx, plan, bucket_of)
    trainer.remove_callback(transformers.PrinterCallback)
    trainer.add_callback(collector)
    saver = _SaveAtSteps(ctx, plan, tokenizer)
    if c.save_at_steps:
        trainer.add_callback(saver)
    for cb in ctx.callbacks:
        trainer.add_callback(cb)
    with progress_bar(f"{head} training", None, rate_field="rate") as bar:
        collector.bar = bar
        trainer.train()
    save_checkpoint(trainer.model, tokenizer, stage_dir / "model")

    _write_records(stage_dir, table, bucket_of, trainer, injected)
    steps = trainer.state.global_step
    accuracy = gamma = None
    single = plan.buckets[0] if len(plan.buckets) == 1 else None
    step_rows = []  # the --save-at-steps checkpoints of this stage first, in step order
    if ctx.holdout is not None:
        step_rows = _evaluate_saved_steps(ctx, plan, head, saver.saved, steps, single)
    if ctx.holdout is not None:
        with progress_bar(f"{head} held-out log-probs", None):
            accuracy, gamma = evaluate_stage(ctx, stage_dir / "model")
        ctx.log(f"{head}: held-out implicit-reward accuracy = {_f(accuracy, 3)}, mean gamma = {_f(gamma, 4)}")
    rows = collector.rows + step_rows
    if ctx.holdout is not None:
        rows.append(
            {
                "kind": "eval",
                "schedule": c.schedule,
                "stage": plan.stage,
                "bucket": single,
                "step": steps,
                "holdout_accuracy": accuracy,
                "holdout_gamma": gamma,
                "holdout_pairs": ctx.holdout.num_rows,
            }
        )
    write_parquet(pa.Table.from_pylist(rows, schema=METRIC_SCHEMA), stage_dir / "metrics.parquet")
    shutil.rmtree(stage_dir / "trainer", ignore_errors=True)  # TRL's output_dir: nothing we keep
    losses = [r["loss"] for r in collector.rows if r["kind"] == "step" and r.get("loss") is not None]
    result = StageResult(
        stage=plan.stage,
        buckets=plan.buckets,
        pairs=kept,
        steps=steps,
        epochs=plan.epochs,
        start=plan.start,
        reference=plan.reference,
        ref_logps="injected" if injected else "computed",
        ref_detail=detail,
        final_loss=finite(losses[-1]) if losses else None,
        holdout_accuracy=accuracy,
        holdout_gamma=gamma,
        holdout_pairs=0 if ctx.holdout is None else ctx.holdout.num_rows,
        seconds=round(time.perf_counter() - started, 1),
    )
    del trainer, model
    gc.collect()
    # The marker is written last: a stage folder without it is redone on resume.
    tmp = stage_dir / "DONE.tmp"
    tmp.write_text(json.dumps(asdict(result), indent=2) + "\n")
    tmp.replace(stage_dir / "DONE")
    ctx.log(f"{head}: done in {result.seconds:.0f}s ({steps} steps, final loss {result.final_loss})")
    return result


ORDER_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("micro_batch", pa.int64()),
        ("position", pa.int64()),
        ("row_index", pa.int64()),
        ("pair_id", pa.string()),
        ("bucket", pa.int64()),
    ]
)


def _collector_base() -> type:
    transformers = require("transformers", "training")
    return transformers.TrainerCallback


class _Collector(_collector_base()):  # type: ignore[misc]
    """Turns TRL's per-step logs into metric rows and drives the progress bar."""

    def __init__(self, ctx: StageContext, plan: StagePlan, bucket_of: list[int]) -> None:
        self.ctx, self.plan = ctx, plan
        self.single = plan.buckets[0] if len(plan.buckets) == 1 else None
        self.rows: list[dict[str, Any]] = []
        self.bar: Any = None
        self._total_set = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(total=state.max_steps)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if not logs or "loss" not in logs or "train_runtime" in logs:
            return
        row: dict[str, Any] = {
            "kind": "step",
            "schedule": self.ctx.config.schedule,
            "stage": self.plan.stage,
            "bucket": self.single,
            "step": state.global_step,
        }
        for key, column in STEP_KEYS.items():
            if key in logs:
                row[column] = float(logs[key])
        self.rows.append(row)
        if self.bar is not None:
            self.bar.advance(1, rate=f"loss {row['loss']:.4f}")


class _SaveAtSteps(_collector_base()):  # type: ignore[misc]
    """`--save-at-steps`: a checkpoint at given global steps (e.g. a plain arm saved at the
    curriculum's stage boundaries, for equal-step comparisons), in RUN_DIR/step-<N>/."""

    def __init__(self, ctx: StageContext, plan: StagePlan, tokenizer: Any) -> None:
        self.ctx, self.plan, self.tokenizer = ctx, plan, tokenizer
        self.steps = set(ctx.config.save_at_steps)
        self.saved: list[int] = []  # global steps saved during this stage

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = self.ctx.steps_before + state.global_step
        folder = self.ctx.run_dir / f"step-{step}"
        if step not in self.steps or kwargs.get("model") is None:
            return
        shutil.rmtree(folder, ignore_errors=True)  # a redone stage replaces its earlier checkpoint
        forget_results(self.ctx.run_dir, folder.name)
        save_checkpoint(kwargs["model"], self.tokenizer, folder / "model")
        self.saved.append(step)
        c = self.ctx.config
        info = {
            "step": step,
            "stage": self.plan.stage,
            "epochs": float(state.epoch or 0.0),
            "pairs_seen": step * c.batch_size * c.grad_accum,
        }
        (folder / "DONE").write_text(json.dumps(info) + "\n")
        self.ctx.log(f"stage {self.plan.stage}: checkpoint at global step {step} saved to {folder}")


__all__ = ["StageContext", "evaluate_start", "train_stage"]
