"""Held-out log-probs of a model: sum of log pi(completion | prompt) for chosen and rejected.

Computed by TRL's own reference pass (`DPOTrainer(precompute_ref_log_probs=True)` on the held-out
pairs, with the model as its own reference), so the values are exactly the quantity the DPO loss
uses: same chat template, same completion span, same keep-start truncation. Pairs TRL drops (prompt
alone fills max_length) come back as None and are left out of the means.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefcurate.extras import require

from .checkpoint import load_for_training
from .config import TrainConfig


def holdout_logps(
    spec: str | Path | None, table: pa.Table, config: TrainConfig, dtype: str, work_dir: Path
) -> tuple[list[float | None], list[float | None]]:
    """(chosen, rejected) log-prob sums under the model at `spec` (a checkpoint folder or model spec)."""
    trl = require("trl", "evaluation")
    require("datasets", "evaluation").disable_progress_bars()
    from .dpo import BucketDPOTrainer

    model, tokenizer = load_for_training(spec)  # a fresh copy: TRL patches the forward of the model it gets
    data = table.select(["pair_id", "prompt", "chosen", "rejected"]).append_column(
        "row_index", pa.array(range(table.num_rows), pa.int64())
    )
    import datasets

    args = trl.DPOConfig(
        output_dir=str(work_dir),
        per_device_train_batch_size=1,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=max(1, min(32, config.eval_batch_tokens // max(config.max_length, 1))),
        max_length=config.max_length,
        truncation_mode="keep_start",
        bf16=dtype == "bf16",
        gradient_checkpointing=False,
        report_to=[],
        disable_tqdm=True,
        save_strategy="no",
        use_cpu=not require("torch", "evaluation").cuda.is_available(),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        trainer = BucketDPOTrainer(
            model=model,
            args=args,
            train_dataset=datasets.Dataset(data),
            processing_class=tokenizer,
            order="sequential",
        )
    prepared: Any = trainer.train_dataset  # tokenized by TRL, with our columns kept
    ds = prepared.select_columns(["row_index", "ref_chosen_logps", "ref_rejected_logps"]).to_dict()
    chosen: list[float | None] = [None] * table.num_rows
    rejected: list[float | None] = [None] * table.num_rows
    for r, c, j in zip(ds["row_index"], ds["ref_chosen_logps"], ds["ref_rejected_logps"], strict=True):
        chosen[r], rejected[r] = float(c), float(j)
    del trainer, model
    return chosen, rejected


def completion_logps(*args: Any, **kwargs: Any) -> Any:
    return holdout_logps(*args, **kwargs)
