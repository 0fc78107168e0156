"""score_gap_v1: chosen_score - rejected_score (large gap = easy, as in Curri-DPO)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefcurate.extras import lazy_module
from prefcurate.score.base import Computed, RunContext, Signal, register

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")


@register
@dataclass
class ScoreGap(Signal):
    name = "score_gap_v1"
    cli_name = "score-gap"
    fields = ("gap",)
    description = "chosen_score - rejected_score; null where either rating is missing"

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        gap = pc.subtract(pairs.column("chosen_score"), pairs.column("rejected_score"))
        return Computed(pa.table({"pair_id": pairs.column("pair_id"), self.column("gap"): gap}))
