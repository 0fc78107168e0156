"""Builders: turn raw rated data into preference pairs in the store.

What every builder shares: the result type, the manifest layout (options, inputs, counts,
fingerprint) and publishing with reuse of an identical earlier build.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefcurate.errors import ConfigError, InputError
from prefcurate.extras import lazy_module
from prefcurate.ids import fingerprint
from prefcurate.progress import progress_bar
from prefcurate.store import Store, VersionRef, check_name

# The readers, the pair schema and the thread pool load where a build runs: the CLI imports the
# builders' choice modules (`build/*_options.py`) at start-up, and with them this package.
if TYPE_CHECKING:
    import pyarrow as pa

    from prefcurate.readers import Loaded
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")


@dataclass
class BuildResult:
    ref: VersionRef
    reused: bool
    counts: dict[str, Any] = field(default_factory=dict)


def build_fingerprint(command: str, options: dict[str, Any], input_fingerprints: list[str]) -> str:
    """Same command, options and input contents -> same fingerprint (a rerun reuses the version).

    The `source` option is how the user spelled the input (relative, absolute, via a link): it is
    kept in the manifest but left out here; each input counts by its name (the default source
    column) and content hash.
    """
    opts = {k: v for k, v in options.items() if k != "source"}
    return fingerprint({"command": command, "options": opts, "inputs": input_fingerprints, "by": "content"})


def _same_options(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    drop = {"source"}
    return a is not None and {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }


def empty_message(counts: dict[str, Any]) -> str:
    """`every row was dropped` with the drop counts (the reasons tell what to change)."""
    dropped = counts.get("dropped") or {}
    detail = ", ".join(f"{k}={v:,}" for k, v in sorted(dropped.items()) if v) or "no usable rows"
    return f"0 pairs from {counts.get('read', 0):,} rows: every row was dropped ({detail})"


def check_empty(counts: dict[str, Any], fail_on_empty: bool, source: str) -> None:
    """With `fail_on_empty`, refuse to publish a build that kept no pair (exit 1, nothing published)."""
    if fail_on_empty and not counts.get("kept"):
        raise InputError(empty_message(counts) + "; nothing published (--fail-on-empty)", path=source)


def reuse(store: Store, dataset: str, fp: str, force: bool) -> BuildResult | None:
    existing = store.reusable("pairs", dataset, fp, force=force)
    if existing is None:
        return None
    return BuildResult(existing, True, existing.manifest.get("counts", {}))


def publish_pairs(
    store: Store,
    dataset: str,
    tables: pa.Table | Iterable[pa.Table],
    *,
    command: str,
    options: dict[str, Any],
    loaded: Loaded,
    counts: dict[str, Any],
    fp: str,
) -> BuildResult:
    from concurrent.futures import Future, ThreadPoolExecutor

    from prefcurate.schema import conform_pairs

    manifest = {
        "builder": command,
        "options": options,
        "inputs": [i.manifest_entry() for i in loaded.inputs],
        "counts": counts,
        "fingerprint": fp,
    }
    if isinstance(tables, pa.Table):
        tables = [tables]
    with (
        progress_bar(f"writing pairs/{dataset}", counts.get("kept")) as bar,
        store.publish("pairs", dataset, manifest) as pub,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        # A part compresses in a thread (zstd releases the GIL) while the next part is built; at
        # most one part waits (each holds ~190 MB of texts at 50,000 pairs: a second waiting part
        # raised peak RSS by 50-180 MB and saved no time, benchmarks/RESULTS.md).
        pending: list[Future] = []
        index = -1
        for index, table in enumerate(tables):
            bar.advance(table.num_rows)
            pending.append(pool.submit(pub.write_table, conform_pairs(table), f"part-{index:05d}.parquet"))
            if len(pending) > 1:
                pending.pop(0).result()
        if index < 0:  # no pairs: one empty part keeps the version readable
            from prefcurate.schema import PAIR_SCHEMA

            pending.append(pool.submit(pub.write_table, PAIR_SCHEMA.empty_table(), "part-00000.parquet"))
        for fut in pending:
            fut.result()
    ref = VersionRef("pairs", dataset, pub.manifest["version"], pub.path)
    return BuildResult(ref, False, counts)


def run_build(
    store: Store,
    dataset: str,
    *,
    command: str,
    options: dict[str, Any],
    source: str,
    load: Callable[[], Loaded],
    build: Callable[[Loaded], tuple[pa.Table | Iterable[pa.Table], dict[str, Any]]],
    force: bool,
    fail_on_empty: bool = False,
) -> BuildResult:
    """Load inputs, reuse an identical earlier build or build and publish a new version.

    When a version with the same options exists, inputs are hashed first and a match is reused
    without reading them. Otherwise hashing runs in a thread while `build` pairs the rows.
    """
    check_name(dataset, "dataset name")
    with store.lock("pairs", dataset):  # a second identical build waits, then reuses this one's version
        return _run_build(store, dataset, command, options, source, load, build, force, fail_on_empty)


def _run_build(
    store: Store,
    dataset: str,
    command: str,
    options: dict[str, Any],
    source: str,
    load: Callable[[], Loaded],
    build: Callable[[Loaded], tuple[pa.Table | Iterable[pa.Table], dict[str, Any]]],
    force: bool,
    fail_on_empty: bool,
) -> BuildResult:
    from prefcurate.readers import local_fingerprints

    if not force and any(
        r.manifest.get("builder") == command and _same_options(r.manifest.get("options"), options)
        for r in store.versions("pairs", dataset)
    ):
        fps = local_fingerprints(source)
        if fps is not None:
            found = reuse(store, dataset, build_fingerprint(command, options, fps), force)
            if found is not None:
                check_empty(found.counts, fail_on_empty, source)
                return found
    use_retaining_pool()
    loaded = load()
    loaded.start_fingerprints()
    tables, counts = build(loaded)
    loaded.finish_fingerprints()
    fp = build_fingerprint(command, options, [f"{i.source}:{i.fingerprint}" for i in loaded.inputs])
    check_empty(counts, fail_on_empty, source)
    found = reuse(store, dataset, fp, force)
    if found is not None:
        return found
    return publish_pairs(
        store, dataset, tables, command=command, options=options, loaded=loaded, counts=counts, fp=fp
    )


@functools.cache
def use_retaining_pool() -> None:
    """Make jemalloc Arrow's default memory pool, unless the user chose one (ARROW_DEFAULT_MEMORY_POOL).

    A build allocates and frees GBs of Arrow buffers, part after part. pyarrow's default mimalloc pool
    hands freed pages back to the OS at once, so every part faults fresh pages in again; jemalloc keeps
    them for reuse (64,000 UltraFeedback prompts: system time 4.6 -> 1.9 s, the output takes 2.4 -> 0.6
    s CPU, peak RSS 170 MB lower; benchmarks/RESULTS.md). Where pyarrow has no jemalloc, nothing changes.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pass


def meta_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def pick_source(positional: str | None, from_option: str | None, default: str | None = None) -> str:
    """Every build command takes its input as `SOURCE` or `--from SOURCE` (users type both)."""
    if positional is not None and from_option is not None and positional != from_option:
        raise ConfigError(f"give the input once: SOURCE {positional!r} or --from {from_option!r}, not both")
    chosen = positional if positional is not None else from_option
    if chosen is None:
        if default is None:
            raise ConfigError("no input: give SOURCE or --from SOURCE (a file, a folder or a hub id)")
        return default
    return chosen
