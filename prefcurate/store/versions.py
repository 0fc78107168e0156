"""The versioned store (DESIGN.md "The store").

    pairs/<dataset>/<version>/part-*.parquet              + <version>.manifest.json beside the folder
    scores/<dataset>/<signal>/<version>/part-*.parquet
    buckets/<name>/<version>/bucket=<k>/part-*.parquet    (every row also carries its `bucket`)
    runs/<name>/<version>/...                             (training metrics)
    evals/<run>/<version>/...                             (outcome evaluations of a run: `eval run`)
    <kind>/<name>/LATEST                                  the newest version's name (`v3`), one line

A version folder holds only Parquet, so `pl.scan_parquet(folder)`, `pyarrow.dataset.dataset(folder,
partitioning="hive")` and DuckDB's `read_parquet('folder/**/*.parquet')` read it as it is (polars refuses a
folder holding any other file, even a hidden one; hence the manifest beside it). Stores written before
this layout keep `manifest.json` inside the folder and stay readable. The latest pointer is a text
file, not a symlink: DuckDB's and Python's `**` globs follow symlinks and would count that version twice.
Caches and resumable shards (`.cache/`, `.work/`) end in `.parquet.cache`, so `**/*.parquet` over the
store sees only data.

Versions are `v1`, `v2`, ... and immutable once published. Publishing writes into
`.tmp/<random>` inside the store and renames the finished folder into place, then writes the
manifest, so a crash never leaves a version that looks complete but is not: a version exists only
if its folder and its manifest exist.

Long jobs keep resumable shards under `.work/<kind>/<name>/<fingerprint>/`.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded where data is read or written, not for `prefcurate ls`
    import pyarrow as pa

from prefcurate import __version__
from prefcurate.errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; publishing stays atomic, reuse may race
    fcntl = None  # type: ignore[assignment]

KINDS = ("pairs", "scores", "buckets", "runs", "evals")
DEFAULT_STORE = "prefstore"
_VERSION_RE = re.compile(r"^v(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 100  # well under the 255-byte file-name limit, leaving room for suffixes

_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}

MANIFEST_SUFFIX = ".manifest.json"  # <version>.manifest.json, beside the version folder
LEGACY_MANIFEST = "manifest.json"  # inside the version folder (stores written before the scannable layout)
_MANIFEST_FILE_RE = re.compile(r"^v(\d+)\.manifest\.json$")
LATEST = "LATEST"
CACHE_SUFFIX = ".parquet.cache"  # Parquet that is not data (caches, shards): out of `**/*.parquet` globs


def manifest_path(folder: Path) -> Path | None:
    """Where a version folder's manifest is (beside it, or inside it in older stores), or None."""
    beside = folder.parent / f"{folder.name}{MANIFEST_SUFFIX}"
    if beside.is_file():
        return beside
    inside = folder / LEGACY_MANIFEST
    return inside if inside.is_file() else None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def point_latest(base: Path) -> None:
    """Write `base/LATEST`: the newest version that has a manifest (for other tools; the store itself
    lists the folders). Recomputed from the folders, so concurrent publishers converge on the newest."""
    versions = [
        int(m.group(1))
        for p in base.iterdir()
        if (m := _VERSION_RE.match(p.name)) and p.is_dir() and manifest_path(p) is not None
    ]
    if versions:
        _write_text_atomic(base / LATEST, f"v{max(versions)}\n")


# Fixed writer options so the same table always gives byte-identical files.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 50_000, "write_statistics": True}


def check_name(name: str, what: str = "name") -> str:
    """A store name: one path component (no `/`, `..`), so it can never reach outside the store."""
    if not _NAME_RE.match(name or ""):
        raise StoreError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if "__" in name:
        raise StoreError(
            f"invalid {what} {name!r}: '__' separates the parts of SQL view names and signal columns"
        )
    if len(name) > MAX_NAME:
        raise StoreError(f"invalid {what} {name[:20]!r}...: {len(name)} characters (at most {MAX_NAME})")
    return name


def parse_ref(text: str) -> tuple[str, str | None]:
    """`NAME` or `NAME@vN` -> (NAME, "vN" or None): the one parser of version references."""
    name, sep, version = str(text).partition("@")
    if sep and not _VERSION_RE.match(version):
        raise StoreError(
            f"{text!r}: a version is written NAME@vN (e.g. {name}@v1), got {version!r} after '@'"
        )
    return name, version or None


def check_ref_name(kind: str, name: str) -> str:
    """`dataset` (pairs, buckets, runs) or `dataset/signal` (scores), each part a valid name."""
    parts = name.split("/") if kind == "scores" else [name]
    if kind == "scores" and len(parts) != 2:
        raise StoreError(f"invalid signal name {name!r}: expected <dataset>/<signal>")
    what = {"pairs": "dataset name", "buckets": "bucket set name", "runs": "run name"}.get(
        kind, "dataset name"
    )
    for part, label in zip(parts, (what, "signal name"), strict=False):
        check_name(part, label)
    return name


def _valid(kind: str, name: str) -> bool:
    try:
        check_ref_name(kind, name)
    except StoreError:
        return False
    return True


def kinds_for(name: str) -> tuple[str, ...]:
    """The kinds a user-given name can refer to (`a/b` is a signal), after checking it is a valid name."""
    kinds = ("scores",) if "/" in name else ("pairs", "buckets", "runs")
    check_ref_name(kinds[0], name)
    return kinds


def write_error(root: Path, exc: OSError) -> StoreError:
    """One line for a store that cannot be written (read-only, full disk, permissions)."""
    why = exc.strerror or str(exc)
    return StoreError(f"cannot write to store {root}: {why}; nothing was published")


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one Parquet file deterministically, via a temporary name and a rename."""
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    os.replace(tmp, path)


def command_line() -> str:
    """The command as the user typed it (for manifests)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("prefcurate"):
        argv[0] = "prefcurate"
    return " ".join(argv)


@dataclass(frozen=True)
class VersionRef:
    """One published version: kind (`pairs`...), name (`ultrafeedback` or `ultrafeedback/score_gap_v1`)."""

    kind: str
    name: str
    version: str
    path: Path

    @property
    def manifest(self) -> dict[str, Any]:
        found = manifest_path(self.path)
        if found is None:
            raise StoreError(f"{self.label} has no manifest")
        return json.loads(found.read_text())

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}/{self.version}"

    # -- typed views of the manifest (one place that knows its layout) ---------------------------
    @property
    def fingerprint(self) -> str:
        """What a rerun compares for reuse; the label for versions written without one."""
        return str(self.manifest.get("fingerprint") or self.label)

    @property
    def pairs_version(self) -> str | None:
        """The pairs version a signal or bucket set was computed on."""
        return ((self.manifest.get("inputs") or {}).get("pairs") or {}).get("version")

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped by reason (builds and partitions)."""
        return dict((self.manifest.get("counts") or {}).get("dropped") or {})

    def parquet_files(self) -> list[Path]:
        """Data files in a stable order (bucket folders, then part numbers)."""
        return sorted(p for p in self.path.rglob("*.parquet") if not p.name.startswith("."))

    def read(self, columns: list[str] | None = None) -> pa.Table:
        files = self.parquet_files()
        if not files:
            raise StoreError(f"{self.label} holds no Parquet files")
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


@dataclass
class Publication:
    """A version being written: files go to `path` (a temporary folder) until the `with` ends."""

    store: Store
    kind: str
    name: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    def write_table(self, table: pa.Table, relpath: str = "part-00000.parquet") -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, target)
        return target


class Store:
    """A folder of versioned pair, score, bucket and run data (see module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        root = root or os.environ.get("PREFCURATE_STORE") or DEFAULT_STORE
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"--store {self.root} is a file, not a store folder")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- reading -------------------------------------------------------------------------------
    def _base(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise StoreError(f"unknown store kind {kind!r}; expected one of {', '.join(KINDS)}")
        return self.root / kind / check_ref_name(kind, name)

    def names(self, kind: str) -> list[str]:
        """Names with at least one version (`dataset/signal` for scores)."""
        base = self.root / kind
        if not base.is_dir():
            return []
        found = {
            str(p.parent.relative_to(base))
            for p in base.rglob(f"v*{MANIFEST_SUFFIX}")
            if _MANIFEST_FILE_RE.match(p.name)
            and p.parent != base
            and (p.parent / p.name[: -len(MANIFEST_SUFFIX)]).is_dir()
        }
        found |= {  # older stores: manifest.json inside the version folder
            str(p.parent.parent.relative_to(base))
            for p in base.rglob(LEGACY_MANIFEST)
            if _VERSION_RE.match(p.parent.name) and p.parent.parent != base
        }
        return sorted(n for n in found if _valid(kind, n))  # a folder made by hand with a bad name: skipped

    def dataset_or_only(self, dataset: str | None) -> str:
        """`dataset`, or the store's only dataset when none is given (else say which ones there are)."""
        if dataset:
            return dataset
        have = self.names("pairs")
        if len(have) == 1:
            return have[0]
        if not have:
            raise StoreError(
                f"no dataset in store {self.root}: build one first (prefcurate build pairs FILE)"
            )
        raise StoreError(f"the store holds {len(have)} datasets; name one: {', '.join(have)}")

    def versions(self, kind: str, name: str) -> list[VersionRef]:
        base = self._base(kind, name)
        if not base.is_dir():
            return []
        refs = [
            VersionRef(kind, name, p.name, p)
            for p in base.iterdir()
            if _VERSION_RE.match(p.name)
            and p.is_dir()
            and not p.is_symlink()
            and manifest_path(p) is not None
        ]
        return sorted(refs, key=lambda r: int(r.version[1:]))

    def get(self, kind: str, name: str, version: str | None = None) -> VersionRef:
        """A version (latest when `version` is None); raises StoreError saying what exists."""
        refs = self.versions(kind, name)
        if not refs:
            have = self.names(kind)
            hint = f" (have: {', '.join(have)})" if have else ""
            what = {
                "pairs": "dataset",
                "scores": "signal",
                "buckets": "bucket set",
                "runs": "run",
                "evals": "eval",
            }[kind]
            raise StoreError(f"no {what} {name!r} in store {self.root}{hint}")
        if version is None:
            return refs[-1]
        for ref in refs:
            if ref.version == version:
                return ref
        raise StoreError(
            f"{kind}/{name} has no version {version!r} (have: {', '.join(r.version for r in refs)})"
        )

    def resolve(self, kind: str, text: str, version: str | None = None) -> VersionRef:
        """A version by `NAME`, `NAME@vN`, or a name plus a separate version."""
        name, at = parse_ref(text)
        if at and version and at != version:
            raise StoreError(f"{text!r} names version {at} but the version option says {version}")
        return self.get(kind, name, version or at)

    def reusable(self, kind: str, name: str, fingerprint: str, *, force: bool = False) -> VersionRef | None:
        """The version a rerun reuses instead of publishing (builds, signals, partitions, runs):
        the newest with this fingerprint, unless `force`."""
        return None if force else self.find_fingerprint(kind, name, fingerprint)

    def find_fingerprint(self, kind: str, name: str, fingerprint: str) -> VersionRef | None:
        """The newest version whose manifest carries this fingerprint, if any (for reuse)."""
        for ref in reversed(self.versions(kind, name)):
            if ref.manifest.get("fingerprint") == fingerprint:
                return ref
        return None

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def publish(self, kind: str, name: str, manifest: dict[str, Any] | None = None) -> Iterator[Publication]:
        """Write a new version atomically.

        Inside the `with`, write files into `pub.path` and fill `pub.manifest`. On a clean
        exit the manifest is written last and the folder is renamed to the next free `vN`;
        on an exception the temporary folder is removed and nothing is published.
        """
        self._base(kind, name)  # validates the name before anything is written
        tmp = self.root / ".tmp" / f"{kind}-{uuid.uuid4().hex}"
        try:
            tmp.mkdir(parents=True)
        except OSError as exc:
            raise write_error(self.root, exc) from None
        pub = Publication(self, kind, name, tmp, dict(manifest or {}))
        try:
            try:
                yield pub
            except OSError as exc:
                if exc.errno in _WRITE_ERRNOS:
                    raise write_error(self.root, exc) from None
                raise
            base = self._base(kind, name)
            base.mkdir(parents=True, exist_ok=True)
            while True:
                existing = [int(m.group(1)) for p in base.iterdir() if (m := _VERSION_RE.match(p.name))]
                version = f"v{max(existing, default=0) + 1}"
                doc = {
                    "kind": kind,
                    "name": name,
                    "version": version,
                    "command": command_line(),
                    "prefcurate_version": __version__,
                    "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    **pub.manifest,
                }
                doc["files"] = [
                    {"path": str(p.relative_to(tmp)), "bytes": p.stat().st_size}
                    for p in sorted(tmp.rglob("*.parquet"))
                ]
                try:
                    os.rename(tmp, base / version)  # atomic on one filesystem; fails if taken
                except OSError:
                    if (base / version).exists():
                        continue  # a concurrent publisher took this number: try the next one
                    raise
                # Manifest last: until it exists the folder is not a version (readers skip it).
                _write_text_atomic(
                    base / f"{version}{MANIFEST_SUFFIX}",
                    json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n",
                )
                point_latest(base)
                pub.path = base / version
                pub.manifest = doc
                break
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @contextmanager
    def lock(self, kind: str, name: str) -> Iterator[None]:
        """Hold the writer lock of (kind, name): the reuse check, the work and the publish run alone.

        A second writer of the same name waits here, then finds the first one's version and reuses it,
        so two identical builds started together publish one version. An advisory `flock`: it goes away
        with the process, so a kill -9 never leaves a stale lock.
        """
        self._base(kind, name)
        path = self.root / ".locks" / kind / f"{name.replace('/', '--')}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")  # noqa: SIM115  # held until the `with` ends
        except OSError as exc:
            raise write_error(self.root, exc) from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print(f"waiting for another writer of {kind}/{name} ...", file=sys.stderr, flush=True)
                    fcntl.flock(fh, fcntl.LOCK_EX)
            yield
        finally:
            fh.close()  # closing releases the lock

    def work_dir(self, kind: str, name: str, fingerprint: str) -> Path:
        """Folder for resumable shards of a long job; same fingerprint, same folder."""
        path = self.root / ".work" / kind / self._base(kind, name).relative_to(self.root / kind) / fingerprint
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.root, exc) from None
        return path

    def clear_work_dir(self, kind: str, name: str, fingerprint: str) -> None:
        shutil.rmtree(
            self.root / ".work" / kind / check_ref_name(kind, name) / fingerprint, ignore_errors=True
        )
