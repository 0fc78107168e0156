"""Training data: the buckets in training order, the held-out pairs, and injectable reference log-probs.

Buckets come from (a) an export folder written by `prefcurate export --layout trl` (`order.json` plus
`data/bucket_<k>.parquet`; older exports: `bucket-<k>/train.parquet`), (b) a bucket set in the store (exported on the fly), or (c) Python: a list
of Arrow tables (or `(bucket, table)` pairs) in TRL's conversational explicit-prompt form
(`prompt` message list, `chosen` / `rejected` one assistant message each, `pair_id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefcurate.bucket.export import REF_COLUMNS  # the columns `prefcurate export --with-ref-logps` writes
from prefcurate.errors import ConfigError, InputError, PrefcurateError
from prefcurate.store import Store, parse_ref

REQUIRED = ("prompt", "chosen", "rejected", "pair_id")

# Columns a stage's dataset keeps (TRL reads prompt/chosen/rejected and the optional reference columns).
KEEP = ("pair_id", "prompt", "chosen", "rejected", *REF_COLUMNS)


@dataclass
class Bucket:
    bucket: int
    table: pa.Table

    @property
    def rows(self) -> int:
        return self.table.num_rows


@dataclass
class BucketSet:
    """Buckets in training order (bucket 0 first) and where they came from."""

    buckets: list[Bucket]
    source: str  # "export:<dir>", "store:<name>/<version>" or "python"
    dataset: str | None = None  # the pairs dataset, when known (to find a split or a log-prob signal)
    ref_logps: dict[str, Any] | None = None  # order.json's ref_logps: signal version and manifest
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[dict[str, Any]]:
        return [{"bucket": b.bucket, "rows": b.rows} for b in self.buckets]

    @property
    def has_ref_logps(self) -> bool:
        return bool(self.buckets) and all(
            all(c in b.table.column_names for c in REF_COLUMNS) for b in self.buckets
        )


def check_table(table: pa.Table, where: str) -> pa.Table:
    """Validate one TRL-form table; returns it with only the columns training uses."""
    for name in REQUIRED:
        if name not in table.column_names:
            raise InputError(
                f"missing column (have: {', '.join(table.column_names)}); expected TRL's conversational form "
                "prompt/chosen/rejected plus pair_id (see `prefcurate export --layout trl`)",
                path=where,
                field=name,
            )
    ids = table.column("pair_id")
    if ids.null_count:
        row = pc.index(pc.is_null(ids), True).as_py()
        raise InputError("pair_id is empty", path=where, row=row, field="pair_id")
    for name in REF_COLUMNS:
        if name in table.column_names and table.column(name).null_count:
            row = pc.index(pc.is_null(table.column(name)), True).as_py()
            raise InputError("reference log-prob missing", path=where, row=row, field=name)
    return table.select([c for c in KEEP if c in table.column_names])


def _read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix in (".jsonl", ".json"):
        rows = []
        with path.open() as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"not JSON ({exc.msg})", path=path, line=line_no) from None
        if not rows:
            raise InputError("no rows", path=path)
        return pa.Table.from_pylist(rows)
    raise InputError("expected a .parquet or .jsonl file in TRL's conversational form", path=path)


def load_export(folder: Path) -> BucketSet:
    """An export folder (`order.json` + the files it lists per bucket) in training order."""
    order_path = folder / "order.json"
    try:
        order = json.loads(order_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg})", path=order_path, line=exc.lineno) from None
    if order.get("format", "trl") != "trl":
        raise InputError(
            f"the trainers read --layout trl exports, this one is {order.get('format')!r}",
            path=order_path,
            field="format",
        )
    entries = order.get("buckets")
    if not isinstance(entries, list) or not entries:
        raise InputError("no buckets listed", path=order_path, field="buckets")
    buckets = []
    for entry in entries:
        sub = folder / entry.get("path", f"bucket-{entry.get('bucket')}")
        listed = [folder / f for f in entry.get("files", []) if str(f).endswith((".parquet", ".jsonl"))]
        candidates = [*listed, sub / "train.parquet", sub / "train.jsonl"]  # the last two: older exports
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(f"bucket {entry.get('bucket')} has no Parquet or JSONL file", path=sub)
        buckets.append(Bucket(int(entry["bucket"]), check_table(_read_table(found), str(found))))
    return BucketSet(
        buckets,
        source=f"export:{folder}",
        dataset=order.get("dataset") or order.get("pairs_dataset"),
        ref_logps=order.get("ref_logps"),
        info={"name": order.get("name"), "version": order.get("version")},
    )


def load_store_buckets(store: Store, name: str, version: str | None = None) -> BucketSet:
    """A bucket set in the store, converted with the export module's TRL conversion."""
    from prefcurate.bucket.export import bucket_tables

    ref = store.get("buckets", name, version)
    tables = bucket_tables(store, name, version)
    buckets = [Bucket(int(k), check_table(t, f"{ref.label} bucket {k}")) for k, t in tables]
    manifest = ref.manifest
    dataset = manifest.get("dataset") or (manifest.get("inputs", {}).get("pairs", {}) or {}).get("dataset")
    return BucketSet(
        buckets, source=f"store:{ref.label}", dataset=dataset, info={"name": name, "version": ref.version}
    )


def load_buckets(buckets: Any, store: Store | None = None) -> BucketSet:
    """Resolve what the user passed: an export folder, a store bucket-set name, or Arrow tables."""
    if isinstance(buckets, BucketSet):
        return buckets
    if isinstance(buckets, (list, tuple)):
        items = []
        for i, item in enumerate(buckets):
            k, table = item if isinstance(item, tuple) else (i, item)
            items.append(Bucket(int(k), check_table(table, f"<bucket {k}>")))
        if not items:
            raise ConfigError("no buckets given")
        return _checked(BucketSet(items, source="python"))
    if isinstance(buckets, (str, Path)):
        path = Path(buckets).expanduser()
        if (path / "order.json").is_file():
            return _checked(load_export(path))
        if path.is_file() and path.suffix in (".parquet", ".jsonl"):
            return _checked(
                BucketSet([Bucket(0, check_table(_read_table(path), str(path)))], source=f"file:{path}")
            )
        name, version = parse_ref(str(buckets))
        store = store or Store()
        if "/" not in name and store.versions("buckets", name):
            return _checked(load_store_buckets(store, name, version))
        have = store.names("buckets")
        hint = f"; bucket sets in {store.root}: {', '.join(have)}" if have else ""
        raise ConfigError(
            f"{str(buckets)!r} is neither an export folder (with order.json) nor a bucket set in the store{hint}"
        )
    raise ConfigError(
        f"buckets must be an export folder, a bucket-set name or a list of tables, got {type(buckets).__name__}"
    )


def _checked(bucket_set: BucketSet) -> BucketSet:
    seen: dict[str, int] = {}
    for b in bucket_set.buckets:
        if b.rows == 0:
            raise PrefcurateError(f"bucket {b.bucket} of {bucket_set.source} is empty")
        for pid in b.table.column("pair_id").to_pylist():
            if pid in seen:
                raise InputError(
                    f"pair {pid} is in bucket {seen[pid]} and bucket {b.bucket}",
                    path=bucket_set.source,
                    field="pair_id",
                )
            seen[pid] = b.bucket
    return bucket_set


def load_holdout(
    holdout: Any, store: Store | None = None, dataset: str | None = None
) -> tuple[pa.Table | None, str]:
    """Held-out pairs (TRL form) and a description of where they came from.

    `holdout`: a table, a .parquet/.jsonl file, an export folder (all its buckets), or None; with None
    and a known `dataset` in the store, the pairs marked `holdout` by `prefcurate split` are used.
    """
    if isinstance(holdout, pa.Table):
        return check_table(holdout, "<holdout>"), "python"
    if holdout is not None:
        path = Path(holdout).expanduser()
        if (path / "order.json").is_file():
            tables = [b.table for b in load_export(path).buckets]
            return pa.concat_tables(tables, promote_options="default"), f"export:{path}"
        if path.is_file():
            return check_table(_read_table(path), str(path)), f"file:{path}"
        if store is not None and store.versions("pairs", str(holdout)):
            return split_holdout(store, str(holdout))
        raise ConfigError(
            f"--holdout {str(holdout)!r} is not a file, an export folder or a dataset in the store"
        )
    if store is not None and dataset and store.versions("scores", f"{dataset}/split_v1"):
        return split_holdout(store, dataset)
    return None, "none"


def split_holdout(store: Store, dataset: str) -> tuple[pa.Table, str]:
    """The pairs of `dataset` that `prefcurate split` marked `holdout` (signal split_v1)."""
    from prefcurate.bucket.export import trl_table
    from prefcurate.score import load_signal_columns

    if not store.versions("scores", f"{dataset}/split_v1"):
        raise ConfigError(
            f"dataset {dataset!r} has no held-out split: run `prefcurate split {dataset} --holdout 0.05`"
        )
    pairs_ref = store.get("pairs", dataset)
    pairs = pairs_ref.read()
    split = load_signal_columns(store, dataset, ["split_v1__split"])
    # Membership instead of a join: Arrow's join cannot carry the list<struct> `prompt` column.
    held_ids = split.filter(pc.equal(split.column("split_v1__split"), "holdout")).column("pair_id")
    held = pairs.filter(pc.is_in(pairs.column("pair_id"), value_set=held_ids.combine_chunks()))
    if held.num_rows == 0:
        raise ConfigError(f"the split of dataset {dataset!r} marks no pair as holdout")
    order = pc.sort_indices(held, [("pair_id", "ascending")])
    return check_table(
        trl_table(held.take(order)), f"{pairs_ref.label} holdout"
    ), f"store:{pairs_ref.label} split_v1 holdout"
