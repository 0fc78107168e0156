"""split_v1: `train` / `holdout` per pair, grouped by prompt (see prefcurate/split.py for the rule)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..split import assign_split, check_fraction
from . import RunContext, Signal, register


@register
@dataclass
class Split(Signal):
    name = "split_v1"
    cli_name = "split"
    fields = ("split",)
    description = "held-out split by prompt_id: 'train' or 'holdout' (all pairs of a prompt on one side)"

    holdout: float = 0.05  # fraction of distinct prompts held out
    seed: int = 0

    def __post_init__(self) -> None:
        check_fraction(self.holdout)

    def compute(self, pairs: pa.Table, ctx: RunContext) -> pa.Table:
        split = assign_split(pairs.column("prompt_id").to_pylist(), self.holdout, self.seed)
        return pa.table({"pair_id": pairs.column("pair_id"), self.column("split"): split})
