"""A short training run for `prefcurate demo`: a handful of steps per stage, so the pipeline runs end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from prefcurate.store import Store

from .buckets import Bucket, BucketSet, load_buckets, load_holdout
from .runner import run


def demo_run(
    store: Store,
    buckets_name: str,
    out_dir: str | Path,
    model: str | None = None,
    steps: int = 4,
    *,
    schedule: str = "stepwise",
    batch_size: int = 2,
    max_length: int = 256,
    holdout: Any = None,
    eval_pairs: int = 16,
    echo: Any = None,
    **overrides: Any,
) -> pa.Table:
    """Train `steps` optimizer steps per bucket (stepwise by default) and return the per-stage table.

    Each bucket is cut to the pairs those steps consume, so TRL's reference pass stays small too.
    """
    full = load_buckets(buckets_name, store)
    per_bucket = steps * batch_size
    cut = BucketSet(
        [Bucket(b.bucket, b.table.slice(0, per_bucket)) for b in full.buckets],
        source=f"{full.source} (first {per_bucket} pairs per bucket)",
        dataset=full.dataset,
        ref_logps=full.ref_logps,
        info=full.info,
    )
    held, _ = load_holdout(holdout, store, full.dataset)
    result = run(
        cut,
        out_dir,
        store=store,
        holdout=held.slice(0, eval_pairs) if held is not None else None,
        model=model,
        schedule=schedule,
        batch_size=batch_size,
        max_length=max_length,
        max_steps_per_stage=steps,
        learning_rate=overrides.pop("learning_rate", 5e-6),
        order="sequential",
        echo=echo,
        **overrides,
    )
    return result.summary()
