"""score_gap_v1: chosen_score - rejected_score (large gap = easy, as in Curri-DPO)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from prefcurate.score.base import Computed, RunContext, Signal, register


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
