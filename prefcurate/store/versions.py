"""The versioned store (DESIGN.md "The store").

    pairs/<dataset>/<version>/part-*.parquet + manifest.json
    scores/<dataset>/<signal>/<version>/part-*.parquet + manifest.json
    buckets/<name>/<version>/bucket=<k>/part-*.parquet + manifest.json
    runs/<name>/<version>/...                          (training metrics)

Versions are `v1`, `v2`, ... and immutable once published. Publishing writes into
`.tmp/<random>` inside the store and renames the finished folder into place, so a
crash never leaves a version that looks complete but is not: a version exists only
if its folder (with manifest.json, written last) exists.

Long jobs keep resumable shards under `.work/<kind>/<name>/<fingerprint>/`.
"""

from __future__ import annotations

import datetime as _dt
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

KINDS = ("pairs", "scores", "buckets", "runs")
DEFAULT_STORE = "prefstore"
_VERSION_RE = re.compile(r"^v(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Fixed writer options so the same table always gives byte-identical files.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 50_000, "write_statistics": True}


def check_name(name: str, what: str = "name") -> str:
    if not _NAME_RE.match(name or ""):
        raise StoreError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


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
        return json.loads((self.path / "manifest.json").read_text())

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}/{self.version}"

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

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- reading -------------------------------------------------------------------------------
    def _base(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise StoreError(f"unknown store kind {kind!r}; expected one of {', '.join(KINDS)}")
        return self.root / kind / name

    def names(self, kind: str) -> list[str]:
        """Names with at least one version (`dataset/signal` for scores)."""
        base = self.root / kind
        if not base.is_dir():
            return []
        found = {
            str(p.parent.parent.relative_to(base))
            for p in base.rglob("manifest.json")
            if _VERSION_RE.match(p.parent.name) and p.parent.parent != base
        }
        return sorted(found)

    def versions(self, kind: str, name: str) -> list[VersionRef]:
        base = self._base(kind, name)
        if not base.is_dir():
            return []
        refs = [
            VersionRef(kind, name, p.name, p)
            for p in base.iterdir()
            if p.is_dir() and _VERSION_RE.match(p.name) and (p / "manifest.json").is_file()
        ]
        return sorted(refs, key=lambda r: int(r.version[1:]))

    def get(self, kind: str, name: str, version: str | None = None) -> VersionRef:
        """A version (latest when `version` is None); raises StoreError saying what exists."""
        refs = self.versions(kind, name)
        if not refs:
            have = self.names(kind)
            hint = f" (have: {', '.join(have)})" if have else ""
            what = {"pairs": "dataset", "scores": "signal", "buckets": "bucket set", "runs": "run"}[kind]
            raise StoreError(f"no {what} {name!r} in store {self.root}{hint}")
        if version is None:
            return refs[-1]
        for ref in refs:
            if ref.version == version:
                return ref
        raise StoreError(
            f"{kind}/{name} has no version {version!r} (have: {', '.join(r.version for r in refs)})"
        )

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
        for part in name.split("/"):
            check_name(part)
        tmp = self.root / ".tmp" / f"{kind}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        pub = Publication(self, kind, name, tmp, dict(manifest or {}))
        try:
            yield pub
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
                (tmp / "manifest.json").write_text(
                    json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"
                )
                try:
                    os.rename(tmp, base / version)  # atomic on one filesystem; fails if taken
                except OSError:
                    if (base / version).exists():
                        continue  # a concurrent publisher took this number: try the next one
                    raise
                pub.path = base / version
                pub.manifest = doc
                break
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def work_dir(self, kind: str, name: str, fingerprint: str) -> Path:
        """Folder for resumable shards of a long job; same fingerprint, same folder."""
        path = self.root / ".work" / kind / name / fingerprint
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_work_dir(self, kind: str, name: str, fingerprint: str) -> None:
        shutil.rmtree(self.root / ".work" / kind / name / fingerprint, ignore_errors=True)
