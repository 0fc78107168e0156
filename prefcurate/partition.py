"""Partition a dataset's pairs into versioned easy-to-hard buckets (DESIGN.md "The store").

    buckets/<name>/<version>/bucket=<k>/part-00000.parquet + manifest.json

Bucket 0 is the easiest. Each bucket file holds the full pair rows (the pair schema) plus
`signal_value` (the `--by` value as a double) and `position` (0-based order inside the bucket,
easiest first), so export and SQL need nothing else.

The work happens in three steps:
1. DuckDB joins the pairs version with the signal versions computed on it (only the signals that
   `--by`, `--where` and `--order-by` mention, plus `split_v1` to drop held-out pairs);
2. filters run in a fixed order and every dropped pair is counted under one reason
   (`holdout`, `where`, `null_signal`, `null_source`, `extreme_low`, `extreme_high`, `not_in_reference`);
3. a strategy assigns the kept pairs to buckets, and each bucket is written in a fixed row order,
   so the same inputs and spec give byte-identical files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from .errors import ConfigError, PrefcurateError
from .ids import fingerprint
from .progress import progress_bar
from .query import to_arrow
from .schema import PAIR_COLUMNS, PAIR_SCHEMA
from .store import Store, VersionRef

STRATEGIES = ("quantile", "percentiles", "thresholds", "source", "random")
SOURCE_STATS = ("accuracy", "mean", "count")
BUCKET_SCHEMA = pa.schema(
    [*PAIR_SCHEMA, pa.field("signal_value", pa.float64()), pa.field("position", pa.int64())]
)
SPLIT_SIGNAL = "split_v1"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        if self.easy not in ("high", "low"):
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


@dataclass
class PartitionResult:
    ref: VersionRef
    reused: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    def bucket_table(self) -> pa.Table:
        """One row per bucket: bucket, rows, label and the signal's summary statistics."""
        rows = self.manifest["buckets"]
        return pa.table(
            {
                "bucket": pa.array([b["bucket"] for b in rows], pa.int64()),
                "rows": pa.array([b["rows"] for b in rows], pa.int64()),
                "label": [b["label"] for b in rows],
                "min": pa.array([b["signal"]["min"] for b in rows], pa.float64()),
                "mean": pa.array([b["signal"]["mean"] for b in rows], pa.float64()),
                "max": pa.array([b["signal"]["max"] for b in rows], pa.float64()),
            }
        )


# -- inputs ------------------------------------------------------------------------------------------


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _files(ref: VersionRef) -> str:
    return "[" + ", ".join(_q(str(p)) for p in ref.parquet_files()) + "]"


def _fmt_list(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def signal_on(store: Store, dataset: str, signal: str, pairs_ref: VersionRef) -> VersionRef:
    """The newest version of a signal computed on exactly this pairs version."""
    name = f"{dataset}/{signal}"
    refs = store.versions("scores", name)
    if not refs:
        raise ConfigError(
            f"dataset {dataset!r} has no signal {signal!r}; compute it with `prefcurate score {dataset} --by ...`"
        )
    for ref in reversed(refs):
        if ref.manifest.get("inputs", {}).get("pairs", {}).get("version") == pairs_ref.version:
            return ref
    raise ConfigError(
        f"scores/{name} has no version computed on {pairs_ref.label}; rescore with `prefcurate score {dataset} --by ...`"
    )


def available_signal_columns(store: Store, dataset: str, pairs_ref: VersionRef) -> list[str]:
    """Every `<signal>__<field>` column computed on this pairs version (for error messages)."""
    cols = []
    for name in store.names("scores"):
        if name.startswith(dataset + "/"):
            signal = name.partition("/")[2]
            try:
                ref = signal_on(store, dataset, signal, pairs_ref)
            except ConfigError:
                continue
            cols += [f"{signal}__{f}" for f in ref.manifest.get("fields", [])]
    return cols


def _mentioned_signals(store: Store, dataset: str, texts: Sequence[str | None]) -> list[str]:
    """Signals of the dataset whose columns (`<signal>__...`) appear in --by / --where / --order-by."""
    blob = " ".join(t for t in texts if t)
    have = sorted(n.partition("/")[2] for n in store.names("scores") if n.startswith(dataset + "/"))
    return [s for s in have if re.search(rf"\b{re.escape(s)}__", blob)]


class _Inputs:
    """A DuckDB connection with `pairs_in` (the pairs version) and `candidates` (pairs + signals)."""

    def __init__(self, store: Store, spec: PartitionSpec, pairs_ref: VersionRef) -> None:
        self.store, self.spec, self.pairs_ref = store, spec, pairs_ref
        self.con = duckdb.connect()
        self.con.execute(f"CREATE VIEW pairs_in AS SELECT * FROM read_parquet({_files(pairs_ref)})")
        wanted = _mentioned_signals(store, spec.dataset, [spec.by, spec.where, spec.order_by])
        self.holdout = False
        if not spec.keep_holdout and store.versions("scores", f"{spec.dataset}/{SPLIT_SIGNAL}"):
            try:
                signal_on(store, spec.dataset, SPLIT_SIGNAL, pairs_ref)
                self.holdout = True
                if SPLIT_SIGNAL not in wanted:
                    wanted.append(SPLIT_SIGNAL)
            except ConfigError:
                raise ConfigError(
                    f"the held-out split of {spec.dataset!r} was made on another pairs version; rerun "
                    f"`prefcurate split {spec.dataset}` or pass --keep-holdout"
                ) from None
        self.signals: dict[str, VersionRef] = {
            s: signal_on(store, spec.dataset, s, pairs_ref) for s in wanted
        }
        joins = ""
        for i, (_, ref) in enumerate(sorted(self.signals.items())):
            self.con.execute(f"CREATE VIEW s{i} AS SELECT * FROM read_parquet({_files(ref)})")
            joins += f" LEFT JOIN s{i} USING (pair_id)"
        self.con.execute(f"CREATE VIEW candidates AS SELECT * FROM pairs_in{joins}")

    def columns(self) -> list[str]:
        return [r[0] for r in self.con.sql("DESCRIBE candidates").fetchall()]

    def sql(self, query: str, what: str) -> pa.Table:
        try:
            return to_arrow(self.con.sql(query))
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{what}: {msg}") from None

    def value_expr(self) -> tuple[str, bool]:
        """SQL for the --by value as DOUBLE, and whether the column is boolean."""
        by = self.spec.by
        assert by is not None
        cols = self.columns()
        if _IDENT_RE.match(by) and by not in cols:
            signal_cols = available_signal_columns(self.store, self.spec.dataset, self.pairs_ref) or [
                "none: score the dataset first"
            ]
            raise ConfigError(
                f"--by {by!r}: no such column for dataset {self.spec.dataset!r} (signal columns: {', '.join(signal_cols)})"
            )
        kind = self.sql(f"SELECT typeof({by}) AS t FROM candidates LIMIT 1", f"--by {by!r}")
        type_name = kind.column("t")[0].as_py() if kind.num_rows else "DOUBLE"
        is_bool = type_name == "BOOLEAN"
        numeric = (
            is_bool
            or type_name
            in {
                "TINYINT",
                "SMALLINT",
                "INTEGER",
                "BIGINT",
                "HUGEINT",
                "UTINYINT",
                "USMALLINT",
                "UINTEGER",
                "UBIGINT",
                "FLOAT",
                "DOUBLE",
                "NULL",
            }
            or type_name.startswith("DECIMAL")
        )
        if not numeric:
            raise ConfigError(f"--by {by!r} is {type_name}; it must be numeric or boolean")
        return f"CAST(({by}) AS DOUBLE)", is_bool


# -- strategies --------------------------------------------------------------------------------------


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


# -- the work ----------------------------------------------------------------------------------------


def parse_like(like: str) -> tuple[str, str | None]:
    name, _, version = like.partition("@")
    return name, version or None


def partition(store: Store, spec: PartitionSpec, *, force: bool = False) -> PartitionResult:
    """Assign the dataset's pairs to buckets by `spec` and publish `buckets/<name>/<version>`.

    The same spec over the same input versions reuses the existing version unless `force`.
    """
    spec.check()
    like_ref: VersionRef | None = None
    if spec.like:
        like_name, like_version = parse_like(spec.like)
        like_ref = store.get("buckets", like_name, like_version)
        lm = like_ref.manifest
        if lm.get("dataset") != spec.dataset:
            raise ConfigError(
                f"--like {spec.like!r} partitions dataset {lm.get('dataset')!r}, not {spec.dataset!r}"
            )
        ref_pairs = lm.get("inputs", {}).get("pairs", {}).get("version")
        if spec.pairs_version and spec.pairs_version != ref_pairs:
            raise ConfigError(
                f"--like {spec.like!r} was built on pairs {ref_pairs}, not {spec.pairs_version}"
            )
        spec.pairs_version = ref_pairs
        spec.keep_holdout = bool(lm.get("spec", {}).get("keep_holdout", False))  # same pool as the reference
        if spec.by is None:
            spec.by = lm.get("spec", {}).get("by")  # report the reference's signal across the random buckets
    pairs_ref = store.get("pairs", spec.dataset, spec.pairs_version)
    inputs = _Inputs(store, spec, pairs_ref)
    input_doc: dict[str, Any] = {
        "pairs": {
            "dataset": spec.dataset,
            "version": pairs_ref.version,
            "fingerprint": pairs_ref.manifest.get("fingerprint", pairs_ref.label),
        },
        "signals": {
            s: {"version": r.version, "fingerprint": r.manifest.get("fingerprint", r.label)}
            for s, r in sorted(inputs.signals.items())
        },
    }
    if like_ref is not None:
        input_doc["like"] = {
            "name": like_ref.name,
            "version": like_ref.version,
            "fingerprint": like_ref.manifest.get("fingerprint"),
        }
    manifest_spec = spec.to_manifest()
    fp = fingerprint({"spec": {k: v for k, v in manifest_spec.items() if k != "name"}, "inputs": input_doc})
    if not force and (existing := store.find_fingerprint("buckets", spec.name, fp)):
        return PartitionResult(existing, True, existing.manifest)

    value_sql, is_bool = inputs.value_expr() if spec.by else ("CAST(NULL AS DOUBLE)", False)
    where_sql = f"coalesce(({spec.where}), false)" if spec.where else "true"
    holdout_sql = f"coalesce({SPLIT_SIGNAL}__split = 'holdout', false)" if inputs.holdout else "false"
    base = inputs.sql(
        f"SELECT pair_id, source, {value_sql} AS value, {where_sql} AS keep_where, {holdout_sql} AS holdout "
        "FROM candidates ORDER BY pair_id",
        f"--where {spec.where!r}" if spec.where else f"--by {spec.by!r}",
    )
    ids = np.asarray(base.column("pair_id").to_pylist(), dtype=object)
    n_input = len(ids)
    if len(set(ids.tolist())) != n_input:
        raise PrefcurateError(f"{pairs_ref.label} has duplicate pair_id values; rebuild the dataset")
    values = np.asarray(base.column("value").to_numpy(zero_copy_only=False), dtype=float)
    sources = np.asarray(base.column("source").to_pylist(), dtype=object)
    keep = np.ones(n_input, dtype=bool)
    dropped: dict[str, int] = {}

    def drop(reason: str, mask: np.ndarray) -> None:
        hit = keep & mask
        dropped[reason] = int(hit.sum())
        keep[hit] = False

    if inputs.holdout:
        drop("holdout", np.asarray(base.column("holdout").to_pylist(), dtype=bool))
    if like_ref is not None:
        pool = set(like_ref.read(["pair_id"]).column("pair_id").to_pylist())
        drop("not_in_reference", np.array([pid not in pool for pid in ids.tolist()], dtype=bool))
    if spec.where:
        drop("where", ~np.asarray(base.column("keep_where").to_pylist(), dtype=bool))
    if spec.strategy in ("quantile", "percentiles", "thresholds") or spec.drop_extremes:
        drop("null_signal", np.isnan(values))
    if spec.strategy == "source":
        drop("null_source", np.array([s is None for s in sources.tolist()], dtype=bool))
    extremes: list[float] | None = None
    if spec.drop_extremes is not None and keep.any():
        lo, hi = np.percentile(values[keep], list(spec.drop_extremes))
        extremes = [_r(lo), _r(hi)]
        drop("extreme_low", values < lo)
        drop("extreme_high", values > hi)

    kept = np.flatnonzero(keep)
    if kept.size == 0:
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items() if v) or "no pairs"
        raise ConfigError(f"no pairs left to partition in {pairs_ref.label} (dropped: {detail})")

    if like_ref is not None and kept.size != sum(int(b["rows"]) for b in like_ref.manifest["buckets"]):
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items() if v)
        raise ConfigError(
            f"--like {spec.like!r} holds {sum(int(b['rows']) for b in like_ref.manifest['buckets'])} pairs but only "
            f"{kept.size} of them are left here (dropped: {detail}); was the split made after {like_ref.label}?"
        )
    assign, labels, extra = _assign(spec, inputs, ids, values, sources, kept, like_ref, is_bool)

    # Write each bucket in its fixed order (positions are 0..rows-1 inside a bucket).
    n_buckets = len(labels)
    order_rows = []
    bucket_entries = []
    for k in range(n_buckets):
        members = assign[k]
        if members.size == 0:
            raise ConfigError(
                f"bucket {k} ({labels[k]}) would be empty with --strategy {spec.strategy}"
                + (f" --cuts {_fmt_list(spec.cuts)}" if spec.cuts else "")
                + "; choose other cuts or fewer buckets"
            )
        entry = {
            "bucket": k,
            "rows": int(members.size),
            "label": labels[k],
            **extra.get(k, {}),
            "signal": _stats(values[members]),
        }
        bucket_entries.append(entry)
        order_rows += [
            (ids[i], k, pos, None if math.isnan(values[i]) else float(values[i]))
            for pos, i in enumerate(members)
        ]
    assignment = pa.table(
        {
            "pair_id": pa.array([r[0] for r in order_rows], pa.string()),
            "bucket": pa.array([r[1] for r in order_rows], pa.int64()),
            "position": pa.array([r[2] for r in order_rows], pa.int64()),
            "value": pa.array([r[3] for r in order_rows], pa.float64()),
        }
    )
    inputs.con.register("assignment", assignment)
    manifest = {
        "dataset": spec.dataset,
        "spec": manifest_spec,
        "direction": f"bucket 0 = easiest; easy = {spec.easy} values of {spec.by or 'the order statistic'}",
        "inputs": input_doc,
        "counts": {"input": n_input, "kept": int(kept.size), "dropped": dropped},
        "buckets": bucket_entries,
        "signal": _stats(values[kept]) if spec.by else None,
        "fingerprint": fp,
    }
    if extremes is not None:
        manifest["extremes"] = {"low": extremes[0], "high": extremes[1]}
    if spec.strategy in ("percentiles", "thresholds"):
        manifest["cut_values"] = extra.get("_cuts")
    for entry in bucket_entries:
        entry.pop("_cuts", None)
    cols = ", ".join(f"p.{c}" for c in PAIR_COLUMNS)
    with (
        store.publish("buckets", spec.name, manifest) as pub,
        progress_bar("writing buckets", n_buckets) as bar,
    ):
        for k in range(n_buckets):
            table = inputs.sql(
                f"SELECT {cols}, a.value AS signal_value, a.position FROM pairs_in p JOIN assignment a USING (pair_id) "
                f"WHERE a.bucket = {k} ORDER BY a.position",
                f"writing bucket {k}",
            )
            pub.write_table(
                table.select(BUCKET_SCHEMA.names).cast(BUCKET_SCHEMA), f"bucket={k}/part-00000.parquet"
            )
            bar.advance(1)
    inputs.con.close()
    return PartitionResult(
        VersionRef("buckets", spec.name, pub.manifest["version"], pub.path), False, pub.manifest
    )


def _assign(
    spec: PartitionSpec,
    inputs: _Inputs,
    ids: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    kept: np.ndarray,
    like_ref: VersionRef | None,
    is_bool: bool,
) -> tuple[list[np.ndarray], list[str], dict[Any, Any]]:
    """Bucket members (indices into ids, in bucket order), a label per bucket, extra manifest fields."""
    s = spec.strategy
    extra: dict[Any, Any] = {}
    if s == "quantile":
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

    if s in ("percentiles", "thresholds"):
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

    if s == "source":
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
        cond = f"({by})" if is_bool else f"({by}) > 0"
        return f"avg(CASE WHEN ({by}) IS NULL THEN NULL WHEN {cond} THEN 1.0 ELSE 0.0 END)", name
    if name == "mean":
        return f"avg({by})", name
    if name == "count":
        return "count(*)", name
    return name, name
