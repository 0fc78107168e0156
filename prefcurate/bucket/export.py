"""Export a bucket set for training, bucket by bucket in training order (bucket 0 = easiest first).

    OUT/order.json                  {"format", "name", "version", "dataset", "buckets": [...], "ref_logps"}
    OUT/README.md                   a dataset card whose `configs` make `load_dataset(OUT)` give one split
                                    per bucket, in order: bucket_0, bucket_1, ...
    OUT/data/bucket_<k>.parquet     (trl, parquet) only Parquet here: `load_dataset("parquet", data_dir=OUT/data)`
    OUT/jsonl/bucket_<k>.jsonl      (trl, jsonl) the same rows as JSON lines
    OUT/dataset/                    (trl) a `DatasetDict` for `datasets.load_from_disk`: splits bucket_0, ...

Every row carries its `bucket`. `--format jsonl|parquet` write flat rows for other trainers instead
(prompt messages, chosen and rejected as plain strings, plus source, scores and the bucketing value).

TRL form: `prompt` is the message list up to the assistant turn; `chosen` and `rejected` are each
a one-message list `[{"role": "assistant", "content": text}]`. With `--with-ref-logps SIGNAL` the
columns `ref_chosen_logps` / `ref_rejected_logps` come from a log-prob signal computed on the
same pairs version, and the export is refused unless every exported pair has both values; the dtype
they were computed in is recorded in order.json and in the `DatasetDict`'s info (see
`trainers.PrecomputedRefDPOTrainer`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate import render
from prefcurate.bucket.export_options import DEFAULT_LAYOUT, LAYOUTS
from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module
from prefcurate.ids import fingerprint
from prefcurate.progress import progress_bar
from prefcurate.score.base import computed_on
from prefcurate.store import Store, VersionRef, parse_ref, write_parquet

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")
    pq = lazy_module("pyarrow.parquet")

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
# Fields of a log-prob signal that hold the sequence log-probs of the two completions.
LOGP_FIELDS = ("chosen_logp", "rejected_logp")
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
    from prefcurate.schema import MESSAGE

    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    n = len(texts)
    roles = pa.array(["assistant"] * n, pa.string())
    structs = pa.StructArray.from_arrays([roles, texts.cast(pa.string())], fields=list(MESSAGE))
    offsets = pa.array(range(n + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, structs, type=pa.list_(MESSAGE))


def trl_table(pairs: pa.Table) -> pa.Table:
    """Pairs (or bucket rows) in TRL's conversational explicit-prompt form, keeping the reference columns."""
    from prefcurate.schema import MESSAGE

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


def split_name(bucket: int) -> str:
    return f"bucket_{bucket}"


def save_dataset_dict(tables: list[tuple[int, pa.Table]], folder: Path, description: str) -> None:
    """A `datasets.load_from_disk` folder holding a `DatasetDict` (bucket_0, bucket_1, ... in order), with
    fingerprints derived from the rows (not random) so the same export gives the same bytes."""
    import datasets
    from datasets.table import InMemoryTable

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # our own bar covers the export; theirs would print one per bucket
    try:
        splits = {}
        for k, table in tables:
            fp = fingerprint(table.column("pair_id").to_pylist())[:16]
            info = datasets.DatasetInfo(description=description)
            splits[split_name(k)] = datasets.Dataset(InMemoryTable(table), info=info, fingerprint=fp)
        datasets.DatasetDict(splits).save_to_disk(str(folder))
    finally:
        if was_on:
            datasets.enable_progress_bars()


def dataset_card(name: str, version: str, splits: list[tuple[str, str]]) -> str:
    """README.md whose YAML `configs` list one split per bucket (datasets keeps this order)."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, path in splits:
        lines += [f"  - split: {split}", f"    path: {path}"]
    lines += ["---", "", f"# {name} {version}", "", "Exported by `prefcurate export`: one split per bucket, "]
    lines += ["bucket 0 = easiest; train in split order. `order.json` records how the buckets were made.", ""]
    return "\n".join(lines)


def ref_dtype(manifest: dict[str, Any]) -> str | None:
    """The dtype a log-prob signal was computed in (its manifest's reference or spec)."""
    ref = manifest.get("reference") or manifest
    return ref.get("dtype") or manifest.get("spec", {}).get("dtype")


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
    fmt: str = DEFAULT_LAYOUT,
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
    tables = [(k, t.append_column("bucket", pa.array([k] * t.num_rows, pa.int64()))) for k, t in tables]
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    entries, files = [], []
    try:
        with progress_bar(f"exporting {ref.label}", len(tables)) as bar:
            for k, table in tables:
                written = []
                if fmt in ("trl", "parquet"):
                    (tmp / "data").mkdir(exist_ok=True)
                    write_parquet(table, tmp / "data" / f"{split_name(k)}.parquet")
                    written.append(f"data/{split_name(k)}.parquet")
                if fmt in ("trl", "jsonl"):
                    (tmp / "jsonl").mkdir(exist_ok=True)
                    write_jsonl(table, tmp / "jsonl" / f"{split_name(k)}.jsonl")
                    written.append(f"jsonl/{split_name(k)}.jsonl")
                entries.append(
                    {"bucket": k, "split": split_name(k), "rows": table.num_rows, "files": written}
                )
                files += [out / w for w in written]
                bar.advance(1)
        if ref_info is not None:
            ref_info["dtype"] = ref_dtype(ref_info["manifest"])
        if fmt == "trl":
            description = json.dumps(
                {"prefcurate": {"name": ref.name, "version": ref.version, "ref_logps": _brief(ref_info)}}
            )
            save_dataset_dict(tables, tmp / "dataset", description)
            files.append(out / "dataset")
        card = dataset_card(ref.name, ref.version, [(e["split"], e["files"][0]) for e in entries])
        (tmp / "README.md").write_text(card)
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
    """Whether a folder holds only what `export` writes: order.json, README.md, data/, jsonl/, dataset/
    and the bucket folders it lists."""
    try:
        order = json.loads((folder / "order.json").read_text())
        listed = {str(e["path"]) for e in order["buckets"] if "path" in e}
        listed |= {Path(f).parts[0] for e in order["buckets"] for f in e.get("files", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    ours = {"order.json", "README.md", "data", "jsonl", "dataset"}  # the layout export writes
    return all(p.name in ours or (p.is_dir() and p.name in listed) for p in folder.iterdir())


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


def _brief(ref_info: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a trainer needs to know about the reference columns (not the whole signal manifest)."""
    if ref_info is None:
        return None
    return {"signal_version": ref_info["signal_version"], "dtype": ref_info.get("dtype")}


def push_to_hub(out: Path, repo_id: str, *, private: bool = False) -> str:
    """Upload an export's `DatasetDict` (splits bucket_0, bucket_1, ...) and its order.json to the hub.

    `datasets` writes the dataset card with one split per bucket, so `load_dataset(repo_id)` gives the
    buckets in order. Returns the dataset's URL.
    """
    from prefcurate.hub import probe

    folder = Path(out) / "dataset"
    if not folder.is_dir():
        raise ConfigError(f"--push-to-hub uploads a --layout trl export; {out} has no dataset/ folder")
    reach = probe(repo_id)
    if not reach.reachable:
        raise ConfigError(f"--push-to-hub {repo_id}: cannot reach the Hugging Face hub ({reach.reason})")
    import datasets
    from huggingface_hub import HfApi

    try:
        datasets.load_from_disk(str(folder)).push_to_hub(repo_id, private=private)
        HfApi().upload_file(
            path_or_fileobj=str(Path(out) / "order.json"),
            path_in_repo="order.json",
            repo_id=repo_id,
            repo_type="dataset",
        )
    except Exception as exc:  # auth, permissions, network: one line for the user
        raise ConfigError(
            f"--push-to-hub {repo_id}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    return f"https://huggingface.co/datasets/{repo_id}"
