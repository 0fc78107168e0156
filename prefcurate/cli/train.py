"""`prefcurate train BUCKETS --schedule plain|curriculum|stepwise --out RUN_DIR`: the trainers package."""

from pathlib import Path
from typing import Annotated

import typer

from prefcurate.errors import ConfigError
from trainers.config import LrScheduler, Order, RefLogps, Schedule, TrainConfig, parse_epochs, parse_steps
from trainers.config import TrainDtype as Dtype
from trainers.trl_options import parse_trl_args

from .base import Format, FormatOpt, StoreOpt, app, err, get_store, out, render

D = TrainConfig()  # the defaults: written once, in the config dataclass


@app.command(context_settings={"max_content_width": 110})
def train(
    buckets: Annotated[
        str,
        typer.Argument(
            help="Export folder (`prefcurate export --layout trl`, with order.json) or a bucket-set name in the store (NAME or NAME@vN)."
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Run folder: checkpoints per stage, run.json, run.log, metrics. Rerun to resume."
        ),
    ],
    schedule: Annotated[
        Schedule,
        typer.Option(
            help="plain (all buckets at once, shuffled), curriculum (bucket by bucket, reference = starting model) or stepwise (sDPO: reference = previous stage's model)."
        ),
    ] = Schedule(D.schedule),
    model: Annotated[
        str | None,
        typer.Option(
            help="Starting model: local folder, .gguf file or hub id (default: the bundled SmolLM2-135M-Instruct)."
        ),
    ] = None,
    epochs_per_stage: Annotated[
        str,
        typer.Option(
            "--epochs-per-stage", help="Epochs per stage: one value, or one per stage (e.g. 1,5,5)."
        ),
    ] = ",".join(map(str, D.epochs_per_stage)),
    beta: Annotated[float, typer.Option(help="DPO beta (trl.DPOConfig.beta).")] = D.beta,
    lr: Annotated[
        float, typer.Option("--lr", help="Learning rate (trl.DPOConfig.learning_rate).")
    ] = D.learning_rate,
    max_length: Annotated[
        int,
        typer.Option(
            help="Truncate prompt+completion to this many tokens, keeping the start (trl.DPOConfig.max_length; 512 = the log-prob signal's, so its values can be injected)."
        ),
    ] = D.max_length,
    order: Annotated[
        Order,
        typer.Option(
            help="Order within a stage: shuffle (seeded, within the bucket) or sequential (the exported order)."
        ),
    ] = Order(D.order),
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for shuffling and initialisation (trl.DPOConfig.seed; 0 as in every other step)."
        ),
    ] = D.seed,
    max_steps_per_stage: Annotated[
        int | None, typer.Option("--max-steps-per-stage", help="Stop each stage after N optimizer steps.")
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(help="Pairs per micro-batch (trl.DPOConfig.per_device_train_batch_size; 4 for a CPU)."),
    ] = D.batch_size,
    grad_accum: Annotated[
        int,
        typer.Option(help="Micro-batches per optimizer step (trl.DPOConfig.gradient_accumulation_steps)."),
    ] = D.grad_accum,
    dtype: Annotated[
        Dtype,
        typer.Option(
            help="auto (bf16 on a GPU or a CPU with fast native bf16, else fp32), bf16 (mixed precision, fp32 master weights) or fp32."
        ),
    ] = Dtype(D.dtype),
    lr_scheduler: Annotated[
        LrScheduler,
        typer.Option(help="Learning-rate schedule, restarting each stage (trl.DPOConfig.lr_scheduler_type)."),
    ] = LrScheduler(
        D.lr_scheduler or "linear"
    ),  # no TRL (core install): train cannot run; help still renders
    warmup_ratio: Annotated[
        float,
        typer.Option(
            help="Share of each stage's steps spent warming up (trl.DPOConfig.warmup_steps below 1)."
        ),
    ] = D.warmup_ratio,
    ref_logps: Annotated[
        RefLogps,
        typer.Option(
            "--ref-logps",
            help="auto: inject a matching log-prob signal's values as reference log-probs, else compute; compute: always compute; require: fail if they cannot be injected.",
        ),
    ] = RefLogps(D.ref_logps),
    holdout: Annotated[
        str | None,
        typer.Option(
            help="Held-out pairs for per-stage evaluation: a .parquet/.jsonl file, an export folder, or a dataset in the store (its `prefcurate split` holdout)."
        ),
    ] = None,
    eval_dataset: Annotated[
        str | None,
        typer.Option(
            "--eval-dataset",
            help="Dataset in the store whose `prefcurate split` holdout pairs are the evaluation set.",
        ),
    ] = None,
    eval_max_pairs: Annotated[
        int | None, typer.Option("--eval-max-pairs", help="Evaluate on at most this many held-out pairs.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Run name in the store (runs/<name>/vN); default: the --out folder's name."),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the run report (HTML) here.")] = None,
    save_at_steps: Annotated[
        str | None,
        typer.Option(
            "--save-at-steps",
            help="Also checkpoint at these global steps (e.g. a plain arm at the curriculum's stage boundaries).",
            show_default=False,
        ),
    ] = None,
    eval_suites: Annotated[
        str | None,
        typer.Option(
            "--eval",
            help="Evaluate every checkpoint on these suites (humaneval, mbpp, mbpp:train|validation|all; comma-separated) as its stage finishes, with `eval run`'s defaults; published as evals/<run>/vN at the end. Names and data are checked before training.",
            show_default=False,
        ),
    ] = None,
    report_to: Annotated[
        str,
        typer.Option(
            "--report-to",
            help="Also log to these TRL/transformers integrations, comma-separated (wandb, tensorboard, mlflow, trackio, ...; all; none).",
        ),
    ] = D.report_to,
    trl_args: Annotated[
        list[str] | None,
        typer.Option(
            "--trl",
            help="Any other trl.DPOConfig option as KEY=VALUE, repeatable (--trl loss_type=ipo --trl weight_decay=0.01); VALUE is read as JSON when it parses.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    store: StoreOpt = None,
) -> None:
    """Train DPO over buckets in bucket order (plain, curriculum or stepwise) on TRL's DPOTrainer.

    Each stage writes a checkpoint to RUN_DIR/stage-<t>/; rerunning the same command resumes after the last finished stage.
    Per-step metrics go to the store (`prefcurate sql "select * from runs"`).
    """
    if holdout and eval_dataset:
        raise ConfigError(
            f"give --holdout or --eval-dataset, not both (got {holdout!r} and {eval_dataset!r})"
        )
    import trainers  # lazy: torch/transformers/trl load only when training starts

    config = trainers.TrainConfig(
        schedule=schedule.value,
        model=model,
        beta=beta,
        learning_rate=lr,
        epochs_per_stage=parse_epochs(epochs_per_stage),
        order=order.value,
        seed=seed,
        max_steps_per_stage=max_steps_per_stage,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        dtype=dtype.value,
        lr_scheduler=lr_scheduler.value,
        warmup_ratio=warmup_ratio,
        ref_logps=ref_logps.value,
        eval_max_pairs=eval_max_pairs,
        save_at_steps=parse_steps(save_at_steps),
        report_to=report_to,
        trl=parse_trl_args(trl_args),
    )
    result = trainers.run(
        buckets,
        out_dir,
        config,
        store=get_store(store),
        holdout=holdout or eval_dataset,
        run_name=name,
        echo=lambda line: err.print(line, markup=False, highlight=False),
        eval_suites=eval_suites,
    )
    render(
        result.summary(),
        fmt,
        title=f"{config.schedule} run {result.run_dir.name}: per-stage held-out evaluation",
    )
    if result.store_label:
        err.print(
            f"metrics: {result.store_label}; run folder: {result.run_dir}", markup=False, highlight=False
        )
    for label in result.eval_labels:
        err.print(f"evaluations: {label} (prefcurate sql evals)", markup=False, highlight=False)
    if report is not None:
        path = trainers.write_run_report(result.run_dir, report)
        out.print(f"report: {path}")
