"""Export a bucket set for training, bucket by bucket in training order (bucket 0 = easiest first).

    OUT/order.json                  {"format", "name", "version", "dataset", "buckets": [...], "ref_logps"}
    OUT/bucket-<k>/train.parquet    --format trl: TRL's conversational explicit-prompt form
    OUT/bucket-<k>/train.jsonl      the same rows as JSON lines
    OUT/bucket-<k>/dataset/         the same rows as a `datasets.load_from_disk` folder

`--format jsonl|parquet` write flat rows for other trainers instead (prompt messages, chosen and
rejected as plain strings, plus source, scores and the bucketing value).

TRL form: `prompt` is the message list up to the assistant turn; `chosen` and `rejected` are each
a one-message list `[{"role": "assistant", "content": text}]`. With `--with-ref-logps SIGNAL` the
columns `ref_chosen_logps` / `ref_rejected_logps` come from a log-prob signal computed on the
same pairs version, and the export is refused unless every exported pair has both values.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefcurate import render
from prefcurate.errors import ConfigError
from prefcurate.ids import fingerprint
from prefcurate.progress import progress_bar
from prefcurate.schema import MESSAGE
from prefcurate.score.base import computed_on
from prefcurate.store import Store, VersionRef, parse_ref, write_parquet


class Layout(str, Enum):
    """What `export` writes per bucket."""

    trl = "trl"
    jsonl = "jsonl"
    parquet = "parquet"


LAYOUTS = tuple(m.value for m in Layout)
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
# Fields of a log-prob signal that hold the sequence log-probs of the two completions.
LOGP_FIELDS = ("chosen_logp", "rejected_logp")
ONE_MESSAGE = pa.list_(MESSAGE)
FLAT_COLUMNS = (
    "pair_id",
    "prompt_id",
    "source",
    "prompt",
    "chosen",
    "rejected",
    "chosen_score",
    "rejected_score",
    "signal_value",
)


def _assistant(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each text as a one-element list [{"role": "assistant", "content": text}]."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    n = len(texts)
    roles = pa.array(["assistant"] * n, pa.string())
    structs = pa.StructArray.from_arrays([roles, texts.cast(pa.string())], fields=list(MESSAGE))
    offsets = pa.array(range(n + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, structs, type=ONE_MESSAGE)


def trl_table(pairs: pa.Table) -> pa.Table:
    """Pairs (or bucket rows) in TRL's conversational explicit-prompt form, keeping the reference columns."""
    for name in ("pair_id", "prompt", "chosen", "rejected"):
        if name not in pairs.column_names:
            raise ConfigError(
                f"cannot convert to TRL form: no column {name!r} (have: {', '.join(pairs.column_names)})"
            )
    columns: dict[str, Any] = {
        "pair_id": pairs.column("pair_id").cast(pa.string()),
        "prompt": pairs.column("prompt").cast(pa.list_(MESSAGE)),
        "chosen": _assistant(pairs.column("chosen")),
        "rejected": _assistant(pairs.column("rejected")),
    }
    for name in REF_COLUMNS:
        if name in pairs.column_names:
            columns[name] = pairs.column(name).cast(pa.float64())
    return pa.table(columns)


def bucket_files(ref: VersionRef) -> list[tuple[int, list[Path]]]:
    """(bucket, Parquet files) in bucket order: numeric, so bucket=10 follows bucket=9."""
    found: dict[int, list[Path]] = {}
    for path in ref.parquet_files():
        folder = path.parent.name
        if not folder.startswith("bucket="):
            continue
        found.setdefault(int(folder.split("=", 1)[1]), []).append(path)
    if not found:
        raise ConfigError(f"{ref.label} holds no bucket=<k> folders")
    return [(k, sorted(found[k])) for k in sorted(found)]


def read_buckets(ref: VersionRef) -> list[tuple[int, pa.Table]]:
    """The stored bucket rows (pair columns, signal_value, position) in bucket order."""
    return [(k, pa.concat_tables([pq.read_table(f) for f in files])) for k, files in bucket_files(ref)]


def resolve(store: Store, name: str, version: str | None = None) -> VersionRef:
    """A bucket set by `NAME`, `NAME@vN` or name plus version."""
    return store.resolve("buckets", name, version)


def bucket_tables(store: Store, name: str, version: str | None = None) -> list[tuple[int, pa.Table]]:
    """Each bucket of a stored bucket set in TRL form, in bucket order (the trainers' entry point)."""
    ref = resolve(store, name, version)
    return [(k, trl_table(t)) for k, t in read_buckets(ref)]


def ref_logps_for(
    store: Store, ref: VersionRef, signal: str, tables: list[tuple[int, pa.Table]]
) -> tuple[VersionRef, list[pa.Table]]:
    """Add ref_chosen_logps / ref_rejected_logps from `signal` (`logprob_margin_v1` or `...@vN`) to each bucket.

    Refuses when the signal was computed on another pairs version or lacks a value for any exported pair.
    """
    manifest = ref.manifest
    dataset = manifest["dataset"]
    pairs_version = ref.pairs_version
    sig, sig_version = parse_ref(signal)
    sig_ref = store.get("scores", f"{dataset}/{sig}", sig_version)
    on = sig_ref.pairs_version
    if not computed_on(sig_ref, store.get("pairs", dataset, pairs_version)):
        raise ConfigError(
            f"--with-ref-logps {signal}: {sig_ref.label} was computed on pairs {on}, the buckets on pairs {pairs_version}"
        )
    cols = [f"{sig}__{f}" for f in LOGP_FIELDS]
    values = sig_ref.read()
    missing = [c for c in cols if c not in values.column_names]
    if missing:
        have = [c for c in values.column_names if c != "pair_id"]
        raise ConfigError(
            f"--with-ref-logps {signal}: {sig_ref.label} has no column {missing[0]!r} (have: {', '.join(have)})"
        )
    tokens = [c for c in (f"{sig}__chosen_tokens", f"{sig}__rejected_tokens") if c in values.column_names]
    values = values.select(["pair_id", *cols, *tokens]).rename_columns(["pair_id", *REF_COLUMNS, *tokens])
    values = values.append_column("_scored", pa.array([True] * values.num_rows, pa.bool_()))
    out = []
    for k, table in tables:
        joined = table.select(["pair_id"]).append_column("_row", pa.array(range(table.num_rows), pa.int64()))
        joined = joined.join(values, "pair_id", join_type="left outer").sort_by("_row")
        for col in REF_COLUMNS:
            nulls = joined.column(col).null_count
            if nulls:
                raise _missing_ref_error(signal, sig_ref, joined, col, k, table.num_rows)
        for col in REF_COLUMNS:
            table = table.append_column(col, joined.column(col).cast(pa.float64()))
        out.append(table)
    return sig_ref, out


def _missing_ref_error(
    signal: str, sig_ref: VersionRef, joined: pa.Table, col: str, bucket: int, rows: int
) -> ConfigError:
    """Why some pairs lack a reference log-prob: never scored, or scored with no completion token left."""
    missing = joined.filter(pc.is_null(joined.column(col)))
    what = col.removeprefix("ref_").removesuffix("s")
    first = missing.column("pair_id")[0].as_py()
    head = f"--with-ref-logps {signal}: {sig_ref.label} has no {what} for {missing.num_rows} of {rows} pairs in bucket {bucket}"
    token_cols = [c for c in missing.column_names if c.endswith(("__chosen_tokens", "__rejected_tokens"))]
    # The signal leaves a value out where the prompt fills --max-length: zero completion tokens.
    no_tokens = [
        any(n == 0 for n in ns)
        for ns in zip(*(missing.column(c).to_pylist() for c in token_cols), strict=True)
    ]
    if missing.column("_scored").null_count or not token_cols or not all(no_tokens):
        return ConfigError(f"{head} (first: pair {first}); score them first")
    max_length = sig_ref.manifest.get("spec", {}).get("max_length")
    sig = sig_ref.name.partition("/")[2]
    where = f"{sig}__chosen_logp IS NOT NULL AND {sig}__rejected_logp IS NOT NULL"
    return ConfigError(
        f"{head} (first: pair {first}): they were scored, but the prompt fills --max-length {max_length} so no "
        f'completion token is left; exclude them with `prefcurate partition ... --where "{where}"` '
        "or rescore with a larger --max-length"
    )


def flat_table(rows: pa.Table) -> pa.Table:
    """Flat rows for other trainers: prompt messages, chosen/rejected strings, scores, the bucketing value."""
    keep = [c for c in (*FLAT_COLUMNS, *REF_COLUMNS) if c in rows.column_names]
    return rows.select(keep)


def write_jsonl(table: pa.Table, path: Path) -> None:
    """One JSON object per line, keys in column order (deterministic bytes)."""
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    with tmp.open("w", encoding="utf-8") as fh:
        render.write_jsonl(table, fh)  # strict JSON: NaN/Inf as null
    os.replace(tmp, path)


def save_dataset(table: pa.Table, folder: Path) -> None:
    """A `datasets.load_from_disk` folder, with a fingerprint derived from the rows (not random)."""
    import datasets
    from datasets.table import InMemoryTable

    fp = fingerprint(table.column("pair_id").to_pylist())[:16]
    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # our own bar covers the export; theirs would print one per bucket
    try:
        datasets.Dataset(InMemoryTable(table), fingerprint=fp).save_to_disk(str(folder))
    finally:
        if was_on:
            datasets.enable_progress_bars()


@dataclass
class ExportResult:
    out: Path
    order: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def export(
    store: Store,
    name: str,
    out: str | Path,
    *,
    fmt: str = "trl",
    version: str | None = None,
    with_ref_logps: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write a bucket set to `out` (see module docstring). The folder appears complete or not at all."""
    if fmt not in LAYOUTS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of: {', '.join(LAYOUTS)}")
    ref = resolve(store, name, version)
    out = check_out(store, Path(out), overwrite)
    manifest = ref.manifest
    stored = read_buckets(ref)
    tables = [(k, trl_table(t) if fmt == "trl" else flat_table(t)) for k, t in stored]
    ref_info: dict[str, Any] | None = None
    if with_ref_logps:
        sig_ref, with_ref = ref_logps_for(store, ref, with_ref_logps, tables)
        tables = [(k, t) for (k, _), t in zip(tables, with_ref, strict=True)]
        ref_info = {"signal_version": sig_ref.label, "manifest": sig_ref.manifest}
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    entries, files = [], []
    try:
        with progress_bar(f"exporting {ref.label}", len(tables)) as bar:
            for k, table in tables:
                sub = tmp / f"bucket-{k}"
                sub.mkdir()
                written = []
                if fmt in ("trl", "parquet"):
                    write_parquet(table, sub / "train.parquet")
                    written.append("train.parquet")
                if fmt in ("trl", "jsonl"):
                    write_jsonl(table, sub / "train.jsonl")
                    written.append("train.jsonl")
                if fmt == "trl":
                    save_dataset(table, sub / "dataset")
                    written.append("dataset")
                entries.append({"bucket": k, "path": f"bucket-{k}", "rows": table.num_rows, "files": written})
                files += [out / f"bucket-{k}" / w for w in written]
                bar.advance(1)
        spec = manifest.get("spec", {})
        order = {
            "format": fmt,
            "name": ref.name,
            "version": ref.version,
            "dataset": manifest.get("dataset"),
            "pairs_version": ref.pairs_version,
            "strategy": spec.get("strategy"),
            "by": spec.get("by"),
            "easy": spec.get("easy"),
            "fingerprint": manifest.get("fingerprint"),
            "buckets": entries,
            "ref_logps": ref_info,
        }
        (tmp / "order.json").write_text(json.dumps(order, indent=2, default=str) + "\n")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, order, files)


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def is_export(folder: Path) -> bool:
    """Whether a folder holds only what `export` writes: order.json and the bucket-<k> folders it lists."""
    try:
        order = json.loads((folder / "order.json").read_text())
        listed = {str(e["path"]) for e in order["buckets"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(p.name == "order.json" or (p.is_dir() and p.name in listed) for p in folder.iterdir())


def check_out(store: Store, out: Path, overwrite: bool) -> Path:
    """The export folder, refused where --overwrite could delete anything but an earlier export."""
    out = out.expanduser().resolve()
    root = store.root
    if _inside(out, root) or _inside(root, out):
        raise ConfigError(
            f"--out {out} is, contains or lies inside the store {root}; choose a folder outside it"
        )
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        _clean_stale(out)
        return out
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    if not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; choose another folder or pass --overwrite")
    if not is_export(out):
        raise ConfigError(
            f"--out {out} holds files that are not a prefcurate export (no order.json, or files it does not "
            "list); --overwrite replaces only an earlier export: choose another folder"
        )
    _clean_stale(out)
    return out


def _clean_stale(out: Path) -> None:
    """Remove what an export killed mid-way left beside `out` (our own hidden names only)."""
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for p in out.parent.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def replace_folder(new: Path, out: Path) -> None:
    """Put `new` at `out`: an earlier `out` is moved aside first and deleted only once `new` is in place.

    A kill leaves the old export or the new one at `out` (for the instant between the two renames,
    the old one beside it as `.NAME.old-*`), never half of one; the next export clears the leftovers."""
    if not out.exists():
        os.rename(new, out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)  # put the old export back
        raise
    shutil.rmtree(old, ignore_errors=True)
