"""Bucket strategies: each assigns the kept pairs to buckets, easiest first (bucket 0).

`ASSIGNERS` maps a `--strategy` name to its function; each returns the bucket members (indices into
`ids`, in bucket order), a label per bucket and extra manifest fields. Ties are broken by pair_id
everywhere, so the same inputs give the same buckets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefcurate.bucket.spec import PartitionSpec
from prefcurate.errors import ConfigError
from prefcurate.explore.stats import accuracy_sql
from prefcurate.extras import lazy_module
from prefcurate.store import VersionRef

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")

Assignment = tuple[list["np.ndarray"], list[str], dict[Any, Any]]


def _difficulty_order(ids: np.ndarray, values: np.ndarray, easy: str) -> np.ndarray:
    """Indices from easiest to hardest; ties by pair_id; missing values last."""
    key = -values if easy == "high" else values
    key = np.where(np.isnan(key), np.inf, key)
    return np.lexsort((ids, key))


def equal_sizes(n: int, k: int) -> list[int]:
    """k sizes summing to n that differ by at most one (the first n % k get the extra pair)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _cut_buckets(values: np.ndarray, cuts: list[float], easy: str) -> np.ndarray:
    """Interval index by value ((c_i-1, c_i]: a value equal to a cut goes below it), numbered from the easy end."""
    idx = np.searchsorted(np.asarray(cuts, dtype=float), values, side="left")
    return (len(cuts) - idx) if easy == "high" else idx


def _interval_label(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return f"<= {hi:.4g}"
    if hi is None:
        return f"> {lo:.4g}"
    return f"({lo:.4g}, {hi:.4g}]"


def _stats(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    out: dict[str, Any] = {"count": int(present.size), "nulls": int(values.size - present.size)}
    if present.size:
        out.update(
            min=_r(present.min()),
            max=_r(present.max()),
            mean=_r(present.mean()),
            median=_r(np.median(present)),
            std=_r(present.std()),
        )
    else:
        out.update(min=None, max=None, mean=None, median=None, std=None)
    return out


def _r(x: float) -> float:
    return float(round(float(x), 6))


def assign_quantile(
    spec: PartitionSpec,
    inputs: Any,
    ids: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    kept: np.ndarray,
    like_ref: VersionRef | None,
    is_bool: bool,
) -> Assignment:
    """K equal-sized buckets by the value, easiest first."""
    extra: dict[Any, Any] = {}
    order = kept[_difficulty_order(ids[kept], values[kept], spec.easy)]
    k = spec.buckets or 1
    if order.size < k:
        raise ConfigError(f"only {order.size} pairs left for --buckets {k}")
    members, start = [], 0
    for size in equal_sizes(order.size, k):
        members.append(order[start : start + size])
        start += size
    labels = [f"[{values[m].min():.4g}, {values[m].max():.4g}]" for m in members]
    return members, labels, extra


def assign_cuts(
    spec: PartitionSpec,
    inputs: Any,
    ids: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    kept: np.ndarray,
    like_ref: VersionRef | None,
    is_bool: bool,
) -> Assignment:
    """Buckets between cut values (`thresholds`) or between percentiles of the value (`percentiles`)."""
    s = spec.strategy
    extra: dict[Any, Any] = {}
    cuts = [float(c) for c in spec.cuts or []]
    if s == "percentiles":
        cuts = [_r(v) for v in np.percentile(values[kept], cuts)]
    extra["_cuts"] = cuts
    which = _cut_buckets(values[kept], cuts, spec.easy)
    order = _difficulty_order(ids[kept], values[kept], spec.easy)
    n = len(cuts) + 1
    members = [kept[order[which[order] == b]] for b in range(n)]
    bounds = [(None if i == 0 else cuts[i - 1], None if i == len(cuts) else cuts[i]) for i in range(n)]
    if spec.easy == "high":
        bounds = bounds[::-1]
    return members, [_interval_label(lo, hi) for lo, hi in bounds], extra


def assign_source(
    spec: PartitionSpec,
    inputs: Any,
    ids: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    kept: np.ndarray,
    like_ref: VersionRef | None,
    is_bool: bool,
) -> Assignment:
    """One bucket per source, ordered by a per-source statistic (sDPO: easiest source first)."""
    extra: dict[Any, Any] = {}
    stat_sql, stat_name = _source_stat_sql(spec, is_bool)
    kept_ids = pa.table({"pair_id": pa.array(ids[kept].tolist(), pa.string())})
    inputs.con.register("kept_ids", kept_ids)
    stats = inputs.sql(
        f"SELECT source, CAST(({stat_sql}) AS DOUBLE) AS stat FROM candidates "
        "WHERE pair_id IN (SELECT pair_id FROM kept_ids) GROUP BY source",
        f"--order-by {stat_name!r}",
    ).to_pylist()
    desc = spec.easy == "high"
    # Highest statistic first for --easy high; missing statistics last; ties by source name.
    stats.sort(
        key=lambda r: (
            r["stat"] is None,
            -(r["stat"] or 0.0) if desc else (r["stat"] or 0.0),
            r["source"],
        )
    )
    by_source: dict[str, list[int]] = {}
    for i in kept.tolist():
        by_source.setdefault(sources[i], []).append(i)
    members, labels = [], []
    for k, row in enumerate(stats):
        idx = np.asarray(by_source[row["source"]], dtype=np.int64)
        if spec.by:
            idx = idx[_difficulty_order(ids[idx], values[idx], spec.easy)]
        else:
            idx = idx[np.argsort(ids[idx], kind="stable")]
        members.append(idx)
        labels.append(row["source"])
        extra[k] = {
            "source": row["source"],
            "order_stat": None if row["stat"] is None else _r(row["stat"]),
        }
    return members, labels, extra


def assign_random(
    spec: PartitionSpec,
    inputs: Any,
    ids: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    kept: np.ndarray,
    like_ref: VersionRef | None,
    is_bool: bool,
) -> Assignment:
    """A seeded permutation cut into K buckets, or into the sizes of the `--like` set (the control arm)."""
    extra: dict[Any, Any] = {}
    # random: a seeded permutation of the kept pairs (sorted by pair_id, so input order does not matter)
    pool = kept[np.argsort(ids[kept], kind="stable")]
    if like_ref is not None:
        sizes = [int(b["rows"]) for b in like_ref.manifest["buckets"]]
    else:
        k = spec.buckets or 1
        if pool.size < k:
            raise ConfigError(f"only {pool.size} pairs left for --buckets {k}")
        sizes = equal_sizes(pool.size, k)
    perm = pool[np.random.default_rng(spec.seed).permutation(pool.size)]
    members, start = [], 0
    for size in sizes:
        members.append(perm[start : start + size])
        start += size
    return members, [f"random (seed {spec.seed})"] * len(sizes), extra


def _source_stat_sql(spec: PartitionSpec, is_bool: bool) -> tuple[str, str]:
    """The per-source statistic as a SQL aggregate. `accuracy` is what `prefcurate stats accuracy`
    reports: correct / pairs with a value, so a tie (0) is never correct and a missing value (a
    prompt longer than max_length) does not count at all."""
    name = spec.order_by or "accuracy"
    by = spec.by
    if name == "accuracy":
        return accuracy_sql(str(by), is_bool), name
    if name == "mean":
        return f"avg({by})", name
    if name == "count":
        return "count(*)", name
    return name, name


Assigner = Callable[..., Assignment]
ASSIGNERS: dict[str, Assigner] = {
    "quantile": assign_quantile,
    "percentiles": assign_cuts,
    "thresholds": assign_cuts,
    "source": assign_source,
    "random": assign_random,
}
