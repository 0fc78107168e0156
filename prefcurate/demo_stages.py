"""The stages of `prefcurate demo`, in order (see demo.py)."""

from __future__ import annotations

from .cli.app import render
from .demo import DemoContext
from .query import run_named, run_sql


def build_stage(ctx: DemoContext) -> None:
    from .builders.pairs import build_pairs
    from .builders.ultrafeedback import build_ultrafeedback

    uf = build_pairs(ctx.store, str(ctx.data / "ultrafeedback_binarized.jsonl"), dataset="ultrafeedback")
    hh = build_pairs(ctx.store, str(ctx.data / "hh_rlhf"), dataset="hh-rlhf")
    raw = build_ultrafeedback(ctx.store, str(ctx.data / "ultrafeedback_raw"), dataset="ultrafeedback-raw")
    for result in (uf, hh, raw):
        counts = result.counts
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(counts.get("dropped", {}).items())) or "none"
        verb = "reused" if result.reused else "built"
        ctx.console.print(f"{verb} {result.ref.label}: {counts.get('kept', 0)} pairs (dropped: {dropped})")


def sql_stage(ctx: DemoContext) -> None:
    render(run_named(ctx.store, "overview"), title="sql overview: pairs per dataset")
    render(run_named(ctx.store, "sources"), title="sql sources: pairs and mean score gap per source")
    render(
        run_sql(
            ctx.store,
            "SELECT source, round(avg(length(chosen) - length(rejected)), 1) AS chosen_minus_rejected_chars, "
            "count(*) AS pairs FROM pairs WHERE dataset = 'hh-rlhf' GROUP BY 1 ORDER BY 1",
        ),
        title="length bias per HH-RLHF source",
    )


STAGES = [
    ("1. build pairs from bundled real data", build_stage),
    ("2. explore with SQL", sql_stage),
]
