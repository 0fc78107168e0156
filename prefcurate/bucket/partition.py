"""Partition a dataset's pairs into versioned easy-to-hard buckets (DESIGN.md "The store").

    buckets/<name>/<version>/bucket=<k>/part-00000.parquet (+ <version>.manifest.json beside the folder)

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefcurate.bucket.spec import SOURCE_STATS, STRATEGIES, PartitionSpec, _fmt_list, parse_like
from prefcurate.bucket.strategies import ASSIGNERS, _r, _stats, equal_sizes
from prefcurate.errors import ConfigError, PrefcurateError
from prefcurate.extras import lazy_module
from prefcurate.ids import fingerprint
from prefcurate.progress import progress_bar
from prefcurate.score.base import computed_on
from prefcurate.store import Store, VersionRef, check_name
from prefcurate.store.views import to_arrow

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    duckdb = lazy_module("duckdb")
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")

SPLIT_SIGNAL = "split_v1"


def bucket_schema() -> pa.Schema:
    """A bucket row: the pair, its signal value, its position in training order and its bucket.

    `bucket` is in the rows as well as the folder name, so a file read on its own (or by a tool that
    does not parse hive folders) still knows its bucket; int32 is what hive partitioning infers for
    `bucket=<k>`."""
    from prefcurate.schema import PAIR_SCHEMA

    return pa.schema(
        [
            *PAIR_SCHEMA,
            pa.field("signal_value", pa.float64()),
            pa.field("position", pa.int64()),
            pa.field("bucket", pa.int32()),
        ]
    )


_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def signal_on(store: Store, dataset: str, signal: str, pairs_ref: VersionRef) -> VersionRef:
    """The newest version of a signal computed on exactly this pairs version."""
    name = f"{dataset}/{signal}"
    refs = store.versions("scores", name)
    if not refs:
        raise ConfigError(
            f"dataset {dataset!r} has no signal {signal!r}; compute it with `prefcurate score {dataset} --by ...`"
        )
    for ref in reversed(refs):
        if computed_on(ref, pairs_ref):
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


# -- the work ----------------------------------------------------------------------------------------


def partition(store: Store, spec: PartitionSpec, *, force: bool = False) -> PartitionResult:
    """Assign the dataset's pairs to buckets by `spec` and publish `buckets/<name>/<version>`.

    The same spec over the same input versions reuses the existing version unless `force`.
    """
    spec.check()
    check_name(spec.dataset, "dataset name")
    check_name(spec.name, "bucket set name")
    with store.lock("buckets", spec.name):
        return _partition(store, spec, force)


def _resolve_like(store: Store, spec: PartitionSpec) -> VersionRef | None:
    """`--like`: the reference bucket set, whose pairs version, pool and signal the spec takes on."""
    if not spec.like:
        return None
    like_name, like_version = parse_like(spec.like)
    like_ref = store.get("buckets", like_name, like_version)
    lm = like_ref.manifest
    if lm.get("dataset") != spec.dataset:
        raise ConfigError(
            f"--like {spec.like!r} partitions dataset {lm.get('dataset')!r}, not {spec.dataset!r}"
        )
    ref_pairs = lm.get("inputs", {}).get("pairs", {}).get("version")
    if spec.pairs_version and spec.pairs_version != ref_pairs:
        raise ConfigError(f"--like {spec.like!r} was built on pairs {ref_pairs}, not {spec.pairs_version}")
    spec.pairs_version = ref_pairs
    spec.keep_holdout = bool(lm.get("spec", {}).get("keep_holdout", False))  # same pool as the reference
    if spec.by is None:
        spec.by = lm.get("spec", {}).get("by")  # report the reference's signal across the random buckets
    return like_ref


def _input_doc(
    spec: PartitionSpec, pairs_ref: VersionRef, inputs: _Inputs, like_ref: VersionRef | None
) -> dict[str, Any]:
    """The input versions, as the manifest records them (and the fingerprint covers them)."""
    doc: dict[str, Any] = {
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
        doc["like"] = {
            "name": like_ref.name,
            "version": like_ref.version,
            "fingerprint": like_ref.manifest.get("fingerprint"),
        }
    return doc


@dataclass
class _Candidates:
    """Every pair of the input (sorted by pair_id) with its value and source, and which are kept."""

    ids: np.ndarray
    values: np.ndarray
    sources: np.ndarray
    keep: np.ndarray
    dropped: dict[str, int]
    extremes: list[float] | None
    is_bool: bool


def _filter(
    spec: PartitionSpec, inputs: _Inputs, pairs_ref: VersionRef, like_ref: VersionRef | None
) -> _Candidates:
    """The filters, in their fixed order; every dropped pair is counted under one reason."""
    value_sql, is_bool = inputs.value_expr() if spec.by else ("CAST(NULL AS DOUBLE)", False)
    where_sql = f"coalesce(({spec.where}), false)" if spec.where else "true"
    holdout_sql = f"coalesce({SPLIT_SIGNAL}__split = 'holdout', false)" if inputs.holdout else "false"
    base = inputs.sql(
        f"SELECT pair_id, source, {value_sql} AS value, {where_sql} AS keep_where, {holdout_sql} AS holdout "
        "FROM candidates ORDER BY pair_id",
        f"--where {spec.where!r}" if spec.where else f"--by {spec.by!r}",
    )
    ids = np.asarray(base.column("pair_id").to_pylist(), dtype=object)
    if len(set(ids.tolist())) != len(ids):
        raise PrefcurateError(f"{pairs_ref.label} has duplicate pair_id values; rebuild the dataset")
    values = np.asarray(base.column("value").to_numpy(zero_copy_only=False), dtype=float)
    sources = np.asarray(base.column("source").to_pylist(), dtype=object)
    keep = np.ones(len(ids), dtype=bool)
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
        # An infinite value would sort as the easiest (or hardest) pair of all: not a difficulty.
        if np.isinf(values).any():  # recorded only when it happens: older manifests keep their counts
            drop("non_finite_signal", np.isinf(values))
    if spec.strategy == "source":
        drop("null_source", np.array([s is None for s in sources.tolist()], dtype=bool))
    extremes: list[float] | None = None
    if spec.drop_extremes is not None and keep.any():
        lo, hi = np.percentile(values[keep], list(spec.drop_extremes))
        extremes = [_r(lo), _r(hi)]
        drop("extreme_low", values < lo)
        drop("extreme_high", values > hi)
    return _Candidates(ids, values, sources, keep, dropped, extremes, is_bool)


def _check_left(
    spec: PartitionSpec,
    cand: _Candidates,
    kept: np.ndarray,
    pairs_ref: VersionRef,
    like_ref: VersionRef | None,
) -> None:
    """Pairs are left to partition (and, with --like, exactly the reference's)."""
    if kept.size == 0:
        detail = ", ".join(f"{k}={v}" for k, v in cand.dropped.items() if v) or "no pairs"
        raise ConfigError(f"no pairs left to partition in {pairs_ref.label} (dropped: {detail})")
    if like_ref is not None and kept.size != sum(int(b["rows"]) for b in like_ref.manifest["buckets"]):
        detail = ", ".join(f"{k}={v}" for k, v in cand.dropped.items() if v)
        raise ConfigError(
            f"--like {spec.like!r} holds {sum(int(b['rows']) for b in like_ref.manifest['buckets'])} pairs but only "
            f"{kept.size} of them are left here (dropped: {detail}); was the split made after {like_ref.label}?"
        )


def _bucket_order(
    spec: PartitionSpec, cand: _Candidates, assign: list[np.ndarray], labels: list[str], extra: dict[Any, Any]
) -> tuple[list[dict[str, Any]], pa.Table]:
    """Each bucket's manifest entry, and the assignment (pair_id, bucket, position, value) in each
    bucket's fixed order (positions are 0..rows-1 inside a bucket)."""
    order_rows = []
    bucket_entries = []
    for k in range(len(labels)):
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
            "signal": _stats(cand.values[members]),
        }
        bucket_entries.append(entry)
        order_rows += [
            (cand.ids[i], k, pos, None if math.isnan(cand.values[i]) else float(cand.values[i]))
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
    return bucket_entries, assignment


def _write_buckets(
    store: Store, spec: PartitionSpec, inputs: _Inputs, manifest: dict[str, Any], n_buckets: int
) -> tuple[VersionRef, dict[str, Any]]:
    """Publish the version: each bucket's full pair rows in the assignment's order."""
    from prefcurate.schema import PAIR_COLUMNS

    cols = ", ".join(f"p.{c}" for c in PAIR_COLUMNS)
    schema = bucket_schema()
    with (
        store.publish("buckets", spec.name, manifest) as pub,
        progress_bar("writing buckets", n_buckets) as bar,
    ):
        for k in range(n_buckets):
            table = inputs.sql(
                f"SELECT {cols}, a.value AS signal_value, a.position, a.bucket FROM pairs_in p JOIN assignment a USING (pair_id) "
                f"WHERE a.bucket = {k} ORDER BY a.position",
                f"writing bucket {k}",
            )
            pub.write_table(table.select(schema.names).cast(schema), f"bucket={k}/part-00000.parquet")
            bar.advance(1)
    return VersionRef("buckets", spec.name, pub.manifest["version"], pub.path), pub.manifest


def _partition(store: Store, spec: PartitionSpec, force: bool) -> PartitionResult:
    like_ref = _resolve_like(store, spec)
    pairs_ref = store.get("pairs", spec.dataset, spec.pairs_version)
    inputs = _Inputs(store, spec, pairs_ref)
    input_doc = _input_doc(spec, pairs_ref, inputs, like_ref)
    manifest_spec = spec.to_manifest()
    fp = fingerprint({"spec": {k: v for k, v in manifest_spec.items() if k != "name"}, "inputs": input_doc})
    if existing := store.reusable("buckets", spec.name, fp, force=force):
        return PartitionResult(existing, True, existing.manifest)

    cand = _filter(spec, inputs, pairs_ref, like_ref)
    kept = np.flatnonzero(cand.keep)
    _check_left(spec, cand, kept, pairs_ref, like_ref)
    assign, labels, extra = ASSIGNERS[spec.strategy](
        spec, inputs, cand.ids, cand.values, cand.sources, kept, like_ref, cand.is_bool
    )
    bucket_entries, assignment = _bucket_order(spec, cand, assign, labels, extra)
    inputs.con.register("assignment", assignment)
    manifest = {
        "dataset": spec.dataset,
        "spec": manifest_spec,
        "direction": f"bucket 0 = easiest; easy = {spec.easy} values of {spec.by or 'the order statistic'}",
        "inputs": input_doc,
        "counts": {"input": len(cand.ids), "kept": int(kept.size), "dropped": cand.dropped},
        "buckets": bucket_entries,
        "signal": _stats(cand.values[kept]) if spec.by else None,
        "fingerprint": fp,
    }
    if cand.extremes is not None:
        manifest["extremes"] = {"low": cand.extremes[0], "high": cand.extremes[1]}
    if spec.strategy in ("percentiles", "thresholds"):
        manifest["cut_values"] = extra.get("_cuts")
    for entry in bucket_entries:
        entry.pop("_cuts", None)
    ref, published = _write_buckets(store, spec, inputs, manifest, len(labels))
    inputs.con.close()
    return PartitionResult(ref, False, published)


__all__ = ["SOURCE_STATS", "STRATEGIES", "PartitionResult", "PartitionSpec", "equal_sizes", "partition"]
