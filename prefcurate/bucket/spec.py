"""What a bucket version is made from: the partition spec, checked up front (DESIGN.md "Buckets")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from prefcurate.errors import ConfigError
from prefcurate.store import parse_ref


class Strategy(str, Enum):
    """How kept pairs are assigned to buckets."""

    quantile = "quantile"
    percentiles = "percentiles"
    thresholds = "thresholds"
    source = "source"
    random = "random"


STRATEGIES = tuple(m.value for m in Strategy)


class Easy(str, Enum):
    """Which end of the signal is easy."""

    high = "high"
    low = "low"


EASY = tuple(m.value for m in Easy)  # which end of the signal is easy
SOURCE_STATS = ("accuracy", "mean", "count")


def _fmt_list(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def parse_like(like: str) -> tuple[str, str | None]:
    return parse_ref(like)


@dataclass
class PartitionSpec:
    """Everything that determines a bucket version (recorded in its manifest as `spec`)."""

    dataset: str
    name: str
    strategy: str = "quantile"
    by: str | None = None  # a signal column (`score_gap_v1__gap`) or a SQL expression over pairs and signals
    easy: str = "high"  # high: a large value is easy (score gap, log-prob margin); low: a small value is easy
    buckets: int | None = None  # quantile, random without --like
    cuts: list[float] | None = None  # percentiles: percents; thresholds: signal values
    order_by: str | None = None  # source: accuracy | mean | count | a SQL aggregate expression
    where: str | None = None  # SQL predicate over pair and signal columns: keep rows where it is true
    drop_extremes: tuple[float, float] | None = None  # percentiles of the signal; outside them is dropped
    like: str | None = None  # random: the reference bucket set NAME[@vN] whose sizes (and pairs) to reuse
    seed: int = 0  # random
    pairs_version: str | None = None
    keep_holdout: bool = False  # keep pairs that `prefcurate split` marked holdout

    def check(self) -> None:
        s = self.strategy
        if s not in STRATEGIES:
            raise ConfigError(f"unknown --strategy {s!r}; choose one of: {', '.join(STRATEGIES)}")
        if self.easy not in EASY:
            raise ConfigError(f"--easy must be 'high' or 'low', got {self.easy!r}")
        if s in ("quantile", "percentiles", "thresholds") and not self.by:
            raise ConfigError(f"--strategy {s} needs --by SIGNAL_COLUMN (e.g. score_gap_v1__gap)")
        if s == "quantile":
            if self.buckets is None or self.buckets < 1:
                raise ConfigError(f"--strategy quantile needs --buckets K with K >= 1, got {self.buckets!r}")
        elif self.buckets is not None and s != "random":
            raise ConfigError(f"--buckets does not apply to --strategy {s}")
        if s in ("percentiles", "thresholds"):
            if not self.cuts:
                example = "10,50,90" if s == "percentiles" else "1.0,2.5"
                raise ConfigError(f"--strategy {s} needs --cuts (e.g. --cuts {example})")
            if any(b <= a for a, b in zip(self.cuts, self.cuts[1:], strict=False)):
                raise ConfigError(f"--cuts must be strictly increasing, got {_fmt_list(self.cuts)}")
            if s == "percentiles" and not all(0 < c < 100 for c in self.cuts):
                raise ConfigError(
                    f"--cuts for percentiles are percents between 0 and 100 (exclusive), got {_fmt_list(self.cuts)}"
                )
            if not all(math.isfinite(c) for c in self.cuts):
                raise ConfigError(f"--cuts must be finite numbers, got {_fmt_list(self.cuts)}")
        elif self.cuts:
            raise ConfigError(f"--cuts does not apply to --strategy {s}")
        if s == "source":
            order = self.order_by or "accuracy"
            if order in ("accuracy", "mean") and not self.by:
                raise ConfigError(
                    f"--order-by {order} needs --by SIGNAL_COLUMN (the per-pair value it aggregates)"
                )
        elif self.order_by:
            raise ConfigError("--order-by applies to --strategy source only")
        if s == "random":
            if self.like and self.buckets is not None:
                raise ConfigError(
                    "--strategy random takes either --like NAME (its bucket sizes) or --buckets K, not both"
                )
            if not self.like and (self.buckets is None or self.buckets < 1):
                raise ConfigError(
                    "--strategy random needs --like NAME[@vN] (a bucket set whose sizes to copy) or --buckets K"
                )
            if self.like and (self.where or self.drop_extremes):
                raise ConfigError(
                    "--strategy random --like reuses the reference set's pairs; --where and --drop-extremes do not apply"
                )
        elif self.like:
            raise ConfigError("--like applies to --strategy random only")
        if self.drop_extremes is not None:
            lo, hi = self.drop_extremes
            if not self.by:
                raise ConfigError("--drop-extremes needs --by (the signal whose extremes to drop)")
            if not (0 <= lo < hi <= 100):
                raise ConfigError(
                    f"--drop-extremes takes LOW,HIGH percents with 0 <= LOW < HIGH <= 100, got {lo:g},{hi:g}"
                )

    def to_manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d["drop_extremes"] = list(self.drop_extremes) if self.drop_extremes else None
        d["order_by"] = (self.order_by or "accuracy") if self.strategy == "source" else None
        return d
