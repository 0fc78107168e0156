"""Read row data into one Arrow table: JSONL / JSON / Parquet / CSV files (optionally `.gz`), a folder
of such files, or a Hugging Face hub id (through `datasets.load_dataset`).

A folder whose files are all named after splits (`train.jsonl`, `eval_clean.jsonl`, `test-00000.parquet`)
is one dataset with splits: `--split` picks the files (default `train`), and the folder is the source.
Any other folder is one source per file.

The fast path parses with `pyarrow.json` / `pyarrow.parquet`; given a schema (the fields a builder
needs) it streams JSON Lines in blocks, skips other fields and stops after `limit` rows. When it fails
(a malformed line, a value whose type differs from earlier rows), the file is scanned line by
line so the error names the file, the line and the field, as a user needs to fix it.

Every returned table carries two bookkeeping columns, `__file` (index into `inputs`) and `__row`
(0-based row inside that file), so builders can point errors and sources back at the input.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate.extras import lazy_module

from .errors import ConfigError, InputError
from .ids import file_fingerprint, fingerprint
from .nesting import DepthGuard, TooDeep

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pacsv = lazy_module("pyarrow.csv")
    pajson = lazy_module("pyarrow.json")
    pq = lazy_module("pyarrow.parquet")

# Accepted file names, longest suffix first.
SUFFIXES = (
    ".jsonl.gz",
    ".ndjson.gz",
    ".json.gz",
    ".csv.gz",
    ".jsonl",
    ".ndjson",
    ".json",
    ".parquet",
    ".csv",
)
# File stems that name a split rather than a source: `train`, `eval_clean`, `test-00000-of-00001`.
SPLIT_STEM = re.compile(r"^(train|test|eval|validation|valid|dev)(?:[-_.].*)?$", re.IGNORECASE)
ACCEPTED = ", ".join(SUFFIXES)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FILE_COL, ROW_COL = "__file", "__row"
_BLOCK = 1 << 24  # pyarrow.json block size: large enough for long UltraFeedback rows
_STREAM_BLOCK = 1 << 22  # a row longer than this falls back to the (slow) line scan
_UNREADABLE = (OSError, EOFError, zlib.error)  # truncated or non-gzip `.gz`, unreadable files


@dataclass
class InputFile:
    """One input as recorded in a manifest."""

    path: str  # file path, or the hub id
    fingerprint: str
    source: str  # file stem (folder inputs) or dataset name (hub)
    rows: int = 0
    hub: bool = False
    split: str | None = None

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "fingerprint": self.fingerprint, "rows": self.rows}
        if self.hub:
            entry["hub"] = True
            entry["split"] = self.split
        return entry


@dataclass
class Loaded:
    table: pa.Table  # the rows of all inputs, with FILE_COL and ROW_COL
    inputs: list[InputFile] = field(default_factory=list)

    def locate(self, index: int) -> tuple[str, int | None, int | None]:
        """(path, line, row) of table row `index` for error messages (line for JSON Lines files)."""
        file_idx = self.table.column(FILE_COL)[index].as_py()
        row = self.table.column(ROW_COL)[index].as_py()
        inp = self.inputs[file_idx]
        if not inp.hub and _suffix(Path(inp.path)) in (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"):
            return inp.path, _line_of_row(Path(inp.path), row), None
        return inp.path, None, row

    def error(self, index: int, field_name: str, message: str) -> InputError:
        path, line, row = self.locate(index)
        return InputError(message, path=path, line=line, row=row, field=field_name)

    _pending: list[tuple[InputFile, Future]] = field(default_factory=list, repr=False)

    def start_fingerprints(self) -> None:
        """Hash the files whose fingerprint is missing, in a background thread."""
        todo = [i for i in self.inputs if not i.fingerprint]
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=1)
        self._pending = [(i, pool.submit(file_fingerprint, i.path)) for i in todo]
        pool.shutdown(wait=False)  # queued hashes still run

    def finish_fingerprints(self) -> None:
        for inp, fut in self._pending:
            inp.fingerprint = fut.result()
        self._pending = []
        for inp in self.inputs:
            if not inp.fingerprint:
                inp.fingerprint = file_fingerprint(inp.path)

    @property
    def fingerprint(self) -> str:
        self.finish_fingerprints()
        return fingerprint([i.fingerprint for i in self.inputs])


def local_fingerprints(source: str | Path) -> list[str] | None:
    """`stem:content hash` of a local file or folder's files (None for a hub id or a missing path).

    As `InputFile.source` + `InputFile.fingerprint`: the stem is the default source column."""
    path = Path(str(source)).expanduser()
    if not path.exists():
        return None
    return [f"{stem(f)}:{file_fingerprint(str(f))}" for f in list_files(path)]


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def stem(path: Path) -> str:
    """File name without any accepted suffix: `harmless-base.jsonl.gz` -> `harmless-base`."""
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not Path(text).exists()


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def unreadable(path: Path, exc: BaseException) -> InputError:
    """One line for a file that cannot be read as text (bad gzip, truncated, permissions)."""
    if isinstance(exc, EOFError) or "runcated" in str(exc):
        why = "truncated file (the compressed stream ends early)"
    elif isinstance(exc, gzip.BadGzipFile | zlib.error) or "incorrect header" in str(exc):
        why = "not a gzip file, though named .gz"
    else:
        why = f"cannot read ({getattr(exc, 'strerror', None) or exc})"
    return InputError(why, path=path)


def _decode_line(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", path=path, line=number
        ) from None


def _check_encodable(obj: Any, path: Path, number: int | None, row: int | None = None) -> None:
    """Reject lone surrogates (`"\\ud800"` is valid JSON but no UTF-8 text can hold it)."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise InputError(
            f"invalid Unicode: lone surrogate escape '{bad}' (not representable as UTF-8 text)",
            path=path,
            line=number,
            row=row,
        ) from None


def _line_of_row(path: Path, row: int) -> int:
    """1-based line number of the row-th non-blank line (blank lines are skipped by readers)."""
    seen = -1
    with _open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                seen += 1
                if seen == row:
                    return number
    return row + 1


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _check_types(rows: list[dict[str, Any]], path: Path, lines: list[int] | None) -> None:
    """Find the first value whose JSON type differs from earlier rows' (nested fields as `a.b`, `a[].b`)."""
    seen: dict[str, tuple[str, int]] = {}

    def check(name: str, value: Any, where: int) -> None:
        if value is None:
            return
        kind = _type_name(value)
        first = seen.setdefault(name, (kind, where))
        if first[0] != kind:
            line = lines[where] if lines else None
            raise InputError(
                f"expected {first[0]} (as in earlier rows), got {kind}",
                path=path,
                line=line,
                row=None if lines else where,
                field=name,
            )
        if isinstance(value, dict):
            visit(f"{name}.", value, where)
        elif isinstance(value, list):
            for item in value:
                check(f"{name}[]", item, where)

    def visit(prefix: str, obj: dict[str, Any], where: int) -> None:
        for key, value in obj.items():
            check(f"{prefix}{key}", value, where)

    for i, row in enumerate(rows):
        visit("", row, i)


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; bad bytes, JSON or nesting name the line."""
    try:
        with _open_binary(path) as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                text = _decode_line(raw, path, number)
                try:
                    obj = json.loads(text.rstrip())
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"malformed JSON ({exc.msg} at column {exc.colno})", path=path, line=number
                    ) from None
                except RecursionError:
                    raise InputError("JSON nested too deeply to read", path=path, line=number) from None
                if not isinstance(obj, dict):
                    raise InputError(
                        f"expected a JSON object per line, got {_type_name(obj)}", path=path, line=number
                    )
                _check_encodable(obj, path, number)
                yield number, obj
    except _UNREADABLE as exc:
        raise unreadable(path, exc) from None


def _scan_jsonl(path: Path) -> pa.Table:
    """Slow path: parse line by line, naming the first bad line."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, obj in iter_json_lines(path):
        rows.append(obj)
        lines.append(number)
    if not rows:
        raise InputError("empty file: no rows", path=path)
    return _from_rows(rows, path, lines)


def _from_rows(rows: list[dict[str, Any]], path: Path, lines: list[int] | None) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        _check_types(rows, path, lines)
        raise InputError(f"rows do not fit one table ({exc})", path=path) from None


def _read_json_document(path: Path) -> pa.Table:
    """A JSON array of objects, or an object of equal-length lists (columns), or one object."""
    with _open_binary(path) as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", path=path, line=line) from None
    if not text.strip():
        raise InputError("empty file: no rows", path=path)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise InputError("JSON nested too deeply to read", path=path) from None
    except json.JSONDecodeError as exc:
        # Maybe it is JSON Lines with a .json name.
        if exc.msg == "Extra data":
            return _read_jsonl(path)
        raise InputError(
            f"malformed JSON ({exc.msg} at column {exc.colno})", path=path, line=exc.lineno
        ) from None
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        lengths = {len(v) for v in doc.values()}
        if len(lengths) != 1:
            raise InputError(
                "object of lists with different lengths (expected one list per column)", path=path
            )
        doc = [dict(zip(doc, values, strict=False)) for values in zip(*doc.values(), strict=False)]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise InputError(
            f"expected an array of objects or an object of lists, got {_type_name(doc)}", path=path
        )
    if not doc:
        raise InputError("empty file: no rows", path=path)
    for i, row in enumerate(doc):
        if not isinstance(row, dict):
            raise InputError(f"expected an object, got {_type_name(row)}", path=path, row=i)
        _check_encodable(row, path, None, i)
    return _from_rows(doc, path, None)


def _read_jsonl(path: Path, schema: pa.Schema | None = None, limit: int | None = None) -> pa.Table:
    # With a schema, fields outside it are skipped while parsing (less memory, faster); a value
    # of another type fails the fast path and the scan below names it.
    parse = (
        pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore") if schema else None
    )
    guard = DepthGuard(_open_binary(path))
    try:
        stream = pa.PythonFile(guard, mode="r")
        if limit is not None:
            # Stream in small blocks and stop once `limit` rows are in.
            reader = pajson.open_json(
                stream, read_options=pajson.ReadOptions(block_size=_STREAM_BLOCK), parse_options=parse
            )
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows >= limit:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        else:
            # The whole file: blocks parse in parallel. Known schema: small blocks, so the parse
            # buffers stay small (peak memory).
            block = _STREAM_BLOCK if schema is not None else _BLOCK
            table = pajson.read_json(
                stream, read_options=pajson.ReadOptions(block_size=block), parse_options=parse
            )
        # pyarrow.json passes bytes through: invalid UTF-8 and lone surrogates make strings that
        # fail later, far from the input. Full validation checks UTF-8; the scan names the line.
        table.validate(full=True)
    except TooDeep:
        return _scan_jsonl(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _scan_jsonl(path)
    finally:
        guard.close()
    if table.num_rows == 0:
        raise InputError("empty file: no rows", path=path)
    return table


def read_file(path: Path, schema: pa.Schema | None = None, limit: int | None = None) -> pa.Table:
    """One file into an Arrow table (no bookkeeping columns).

    `schema` (optional) names the fields a builder needs: JSON Lines and Parquet inputs read
    only those (other files are read whole); absent fields come back as nulls or absent columns.
    """
    suffix = _suffix(path)
    if suffix is None:
        raise InputError(f"unknown file format (accepted: {ACCEPTED})", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file: no rows", path=path)
    if suffix == ".parquet":
        try:
            columns = None
            if schema is not None:
                have = set(pq.read_schema(path).names)
                columns = [n for n in schema.names if n in have]
            table = pq.read_table(path, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"not a readable Parquet file ({exc})", path=path) from None
        if table.num_rows == 0:
            raise InputError("empty file: no rows", path=path)
        return table
    try:
        if suffix in (".json", ".json.gz"):
            return _read_json_document(path)
        if suffix in (".csv", ".csv.gz"):
            try:
                table = pacsv.read_csv(path)  # header row, types inferred; .gz decompressed by pyarrow
            except pa.ArrowInvalid as exc:
                raise InputError(f"not a readable CSV file ({str(exc).splitlines()[0]})", path=path) from None
            if table.num_rows == 0:
                raise InputError("empty file: no rows", path=path)
            return table
        return _read_jsonl(path, schema, limit)
    except _UNREADABLE as exc:
        raise unreadable(path, exc) from None


def _with_bookkeeping(table: pa.Table, file_idx: int) -> pa.Table:
    n = table.num_rows
    table = table.append_column(FILE_COL, pa.array(np.full(n, file_idx, dtype=np.int32)))
    return table.append_column(ROW_COL, pa.array(np.arange(n, dtype=np.int64)))


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"the files in this folder do not share one schema ({exc})") from None


def list_files(path: Path) -> list[Path]:
    """The data files of a folder (sorted by name), or the file itself."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _suffix(p) and not p.name.startswith("."))
        if not files:
            raise InputError(f"folder holds no data files (accepted: {ACCEPTED})", path=path)
        return files
    return [path]


def split_files(path: Path, files: list[Path], split: str) -> list[Path] | None:
    """The files of `split` when every file of the folder is named after a split, else None."""
    if not path.is_dir() or not files:
        return None
    matches = [SPLIT_STEM.match(stem(f)) for f in files]
    if not all(matches):
        return None
    chosen = [f for f, m in zip(files, matches, strict=True) if m and m.group(1).lower() == split.lower()]
    if not chosen:
        have = sorted({m.group(1).lower() for m in matches if m})
        raise ConfigError(
            f"{path} has no {split!r} split (its files are splits: {', '.join(have)}); pass --split"
        )
    return chosen


def load(
    source: str | Path,
    *,
    split: str = "train",
    limit: int | None = None,
    limit_per_file: int | None = None,
    schema: pa.Schema | None = None,
    defer_fingerprints: bool = False,
    hub_config: str | None = None,
    hub_data_dir: str | None = None,
) -> Loaded:
    """Read a file, a folder of files, or a hub id (when no such local path exists).

    `limit` caps the rows in all; `limit_per_file` caps each file of a folder (a balanced sample
    when each file is one source, as in HH-RLHF's subsets).

    With `defer_fingerprints`, file hashes are left for `Loaded.start_fingerprints()` /
    `finish_fingerprints()`, so they can run in a thread while the caller works on the rows.
    """
    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        if looks_like_hub_id(text):
            return load_hub(text, split=split, limit=limit, config=hub_config, data_dir=hub_data_dir)
        raise InputError("no such file or folder (nor a hub id like owner/name)", path=text)
    if hub_config or hub_data_dir:
        raise ConfigError(f"--config and --data-dir are for hub ids; {text} is a local path")
    tables: list[pa.Table] = []
    inputs: list[InputFile] = []
    remaining = limit
    files = list_files(path)
    of_split = split_files(path, files, split)
    for idx, file in enumerate(of_split or files):
        if remaining is not None and remaining <= 0:
            break
        cap = min((c for c in (remaining, limit_per_file) if c is not None), default=None)
        table = read_file(file, schema, cap)
        if cap is not None:
            table = table.slice(0, cap)
        if remaining is not None:
            remaining -= table.num_rows
        fp = "" if defer_fingerprints else file_fingerprint(str(file))
        source_name = path.name if of_split else stem(file)  # split files: one source, the folder
        inputs.append(InputFile(str(file), fp, source_name, table.num_rows))
        tables.append(_with_bookkeeping(table, idx))
    return Loaded(_concat(tables), inputs)


def table_from_dataset(ds: Any) -> pa.Table:
    """The Arrow table behind a `datasets.Dataset` (flattening its indices mapping, if any)."""
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()
    data = ds.data
    return data.table if hasattr(data, "table") else pa.table(data)


def load_hub(
    hub_id: str,
    *,
    split: str = "train",
    limit: int | None = None,
    config: str | None = None,
    data_dir: str | None = None,
) -> Loaded:
    """Load a Hugging Face hub dataset split through `datasets.load_dataset` (`config` is its `name`,
    e.g. a subset; `data_dir` a folder inside the repo, e.g. HH-RLHF's `harmless-base`)."""
    import datasets  # core dependency, but slow to import: only when a hub id is used

    from .hub import datasets_offline, probe

    split_expr = f"{split}[:{limit}]" if limit is not None else split
    reach = probe(hub_id)
    what = (
        hub_id + (f" (config {config})" if config else "") + (f" (data dir {data_dir})" if data_dir else "")
    )
    try:
        if reach.reachable:
            ds = datasets.load_dataset(hub_id, name=config, data_dir=data_dir, split=split_expr)
        else:
            with datasets_offline():  # the local cache or nothing, without a minute of retries
                ds = datasets.load_dataset(hub_id, name=config, data_dir=data_dir, split=split_expr)
    except Exception as exc:  # network, missing dataset or split: one line for the user
        if not reach.reachable:
            raise ConfigError(
                f"cannot reach the Hugging Face hub for {what} ({reach.reason}) and it is not in the local "
                "cache; download it where the hub is reachable and pass the file or folder: --from FILE"
            ) from None
        raise ConfigError(f"cannot load hub dataset {what} split {split!r}: {exc}".splitlines()[0]) from None
    table = table_from_dataset(ds)
    fp = fingerprint(
        {
            "hub": hub_id,
            "split": split_expr,
            **({"config": config} if config else {}),
            **({"data_dir": data_dir} if data_dir else {}),
            "dataset_fingerprint": getattr(ds, "_fingerprint", None),
        }
    )
    inp = InputFile(hub_id, fp, hub_id.split("/")[-1], table.num_rows, hub=True, split=split)
    if table.num_rows == 0:
        raise InputError("empty dataset: no rows", path=hub_id)
    return Loaded(_with_bookkeeping(table, 0), [inp])
