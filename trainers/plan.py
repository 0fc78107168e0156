"""The types a run and its stages share: the plan of each stage, its result, the run log, the metric
schema, and the context a stage is trained in. The orchestrator (`runner`) and the stage trainer
(`stage`) both import them; neither owns the other's types."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefcurate.store import Store

from .buckets import BucketSet
from .config import TrainConfig

INITIAL = "start"  # label of model 0 in plans and logs


@dataclass
class StagePlan:
    stage: int  # 1-based
    buckets: list[int]
    start: str  # "start" or "stage-<t-1>"
    reference: str  # "start" or "stage-<t-1>"
    epochs: int


@dataclass
class StageResult:
    stage: int
    buckets: list[int]
    pairs: int
    steps: int
    epochs: int
    start: str
    reference: str
    ref_logps: str  # "injected" or "computed"
    ref_detail: str
    final_loss: float | None
    holdout_accuracy: float | None
    holdout_gamma: float | None
    holdout_pairs: int
    seconds: float


class RunLog:
    """Appends timestamped lines to RUN_DIR/run.log and echoes them (the CLI prints them)."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None) -> None:
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as fh:
            fh.write(f"{stamp} {message}\n")
        if self.echo:
            self.echo(message)


METRIC_SCHEMA = pa.schema(
    [
        # "step" (training), "eval" (held-out, end of stage; stage 0 = start) or "eval_step" (held-out,
        # a --save-at-steps checkpoint inside the stage: global_step says where)
        ("kind", pa.string()),
        ("schedule", pa.string()),
        ("stage", pa.int64()),
        ("bucket", pa.int64()),  # null when a stage mixes buckets (plain)
        ("step", pa.int64()),  # optimizer step within the stage
        ("global_step", pa.int64()),  # across the run
        ("epoch", pa.float64()),
        ("loss", pa.float64()),
        ("rewards_chosen", pa.float64()),
        ("rewards_rejected", pa.float64()),
        ("rewards_margins", pa.float64()),
        ("rewards_accuracies", pa.float64()),
        ("logps_chosen", pa.float64()),
        ("logps_rejected", pa.float64()),
        ("learning_rate", pa.float64()),
        ("grad_norm", pa.float64()),
        ("holdout_accuracy", pa.float64()),
        ("holdout_gamma", pa.float64()),
        ("holdout_pairs", pa.int64()),
    ]
)


def finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class StageContext:
    config: TrainConfig
    run_dir: Path
    bucket_set: BucketSet
    holdout: pa.Table | None
    store: Store | None
    log: RunLog
    callbacks: list[Any] = field(default_factory=list)
    dtype: str = "fp32"  # resolved from config.dtype ("auto")
    start_logps: tuple[list[float], list[float]] | None = None
    steps_before: int = 0  # optimizer steps of the finished stages (global step = this + stage step)
