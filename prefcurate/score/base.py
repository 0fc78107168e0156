"""Difficulty signals (DESIGN.md "Signals"), dolma-style.

Each signal is a small class registered under a versioned name (`score_gap_v1`). It
computes a sidecar table keyed by `pair_id` with columns `<signal>__<field>`; `run_signal`
publishes that table as `scores/<dataset>/<signal>/<version>` with a manifest recording
what determines the values. Changing a formula means a new class with a new version,
never an edit, so buckets built on old values stay meaningful.

Long signals process shards through `RunContext.map_shards`: finished shards are kept
under the store's work folder, keyed by the run's fingerprint, so rerunning the same
command after an interruption resumes instead of restarting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from prefcurate.errors import ConfigError, PrefcurateError
from prefcurate.execution import Executor, LocalExecutor, ShardFn, ShardJob, ShardWork, WorkKind
from prefcurate.extras import lazy_module
from prefcurate.ids import fingerprint
from prefcurate.progress import progress_bar
from prefcurate.store import Store, VersionRef, write_parquet
from prefcurate.store.versions import CACHE_SUFFIX

from .subset import Subset
from .subset import select as select_subset

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pq = lazy_module("pyarrow.parquet")

REGISTRY: dict[str, type[Signal]] = {}


def register(cls: type[Signal]) -> type[Signal]:
    """Class decorator: make a signal available by its versioned name and its CLI name."""
    for key in (cls.name, cls.cli_name):
        if key in REGISTRY and REGISTRY[key] is not cls:
            raise RuntimeError(f"signal name {key!r} registered twice")
        REGISTRY[key] = cls
    return cls


class Signal:
    """Base class. Subclasses are dataclasses whose fields are their options."""

    name: ClassVar[str]  # versioned: "score_gap_v1"
    cli_name: ClassVar[str]  # what `--by` takes: "score-gap"
    fields: ClassVar[tuple[str, ...]]  # output fields: ("gap",) -> column score_gap_v1__gap
    description: ClassVar[str] = ""
    # What its shards do (None: not computed in shards, so `--executor` does not apply).
    shards: ClassVar[WorkKind | None] = None

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else ()

    @classmethod
    def from_options(cls, **options: Any) -> Signal:
        """Build from CLI/library options; options that do not apply are an error, not ignored."""
        given = {k: v for k, v in options.items() if v is not None}
        allowed = set(cls.option_names())
        extra = sorted(set(given) - allowed)
        if extra:
            flag = "--" + extra[0].replace("_", "-")
            raise ConfigError(
                f"{flag} does not apply to --by {cls.cli_name} "
                f"(it takes: {', '.join('--' + a.replace('_', '-') for a in sorted(allowed)) or 'no options'})"
            )
        return cls(**given)

    def column(self, field: str) -> str:
        return f"{self.name}__{field}"

    @property
    def columns(self) -> list[str]:
        return [self.column(f) for f in self.fields]

    def spec(self) -> dict[str, Any]:
        """Everything that determines the values (recorded in the manifest, hashed for resume)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} if is_dataclass(self) else {}

    def identity(self) -> dict[str, Any]:
        """What determines the values besides the options, known before any work: the content
        fingerprint of a model's weights, the resolved dtype... Hashed into the run's fingerprint, so
        a folder whose weights changed gives a new version instead of reusing the old one."""
        return {}

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        """`pair_id` plus `self.columns`, one row per input pair, in input order, and the manifest
        entries known only after computing."""
        raise NotImplementedError


@dataclass
class Computed:
    """What `Signal.compute` returns: the sidecar table and extra manifest entries."""

    table: pa.Table
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """One distinct completion of a pairs table: its id and where it first appears."""

    id: str
    row: int  # the first pair row holding it
    side: str  # "chosen" or "rejected" in that row


def distinct_completions(pairs: pa.Table) -> list[Completion]:
    """Every chosen and rejected completion once, sorted by completion id: the one order in which
    per-completion signals (log-probs, rewards, unit tests) enumerate their work, so shards are the
    same whatever the pair order."""
    first: dict[str, Completion] = {}
    for side in ("chosen", "rejected"):
        for row, cid in enumerate(pairs.column(f"{side}_id").to_pylist()):
            if cid not in first or (row, side) < (first[cid].row, first[cid].side):
                first[cid] = Completion(cid, row, side)
    return [first[k] for k in sorted(first)]


@dataclass
class RunContext:
    """What a signal gets while computing: the store, its resumable work folder, progress, and the
    executor that computes shards (this process by default, or a Ray cluster)."""

    store: Store
    dataset: str
    work_dir: Path
    pairs_ref: VersionRef
    executor: Executor = field(default_factory=LocalExecutor)

    def map_shards(
        self,
        table: pa.Table,
        fn: ShardFn,
        *,
        work: ShardWork | None = None,
        kind: WorkKind = WorkKind.model,
        shard_rows: int = 1024,
        description: str = "scoring",
        tag: str = "shards",
        weight: Callable[[pa.Table], float] | None = None,
        rate: Callable[[pa.Table, float], str] | None = None,
    ) -> pa.Table:
        """Apply `fn(shard, report)` to consecutive slices of `table`, keeping each finished slice on disk.

        A rerun with the same table and shard size skips the slices already on disk, so an
        interrupted job resumes where it stopped and gives the same result. `table` must be in
        a deterministic order. `weight` sizes the progress bar (e.g. tokens instead of rows);
        `fn` may call `report(weight_done)` inside a shard so the bar moves before the shard ends.
        `work` is the picklable recipe of `fn` a remote executor builds on its workers.

        Whatever the executor, this process alone writes shard files (temporary name, then rename):
        a shard file is the completion marker, and a second delivery of a shard is skipped.
        """
        import time

        folder = self.work_dir / tag
        folder.mkdir(parents=True, exist_ok=True)
        plan = {"rows": table.num_rows, "shard_rows": shard_rows, "schema": str(table.schema)}
        plan_path = folder / "plan.json"
        if plan_path.exists() and json.loads(plan_path.read_text()) != plan:
            for stale in [*folder.glob("shard-*.parquet"), *folder.glob(f"shard-*{CACHE_SUFFIX}")]:
                stale.unlink()
        plan_path.write_text(json.dumps(plan))
        n_shards = max(1, math.ceil(table.num_rows / shard_rows))
        total = weight(table) if weight else table.num_rows
        job = ShardJob(table, shard_rows, [], fn, work, description, kind)

        def path_of(i: int) -> Path:
            legacy = folder / f"shard-{i:05d}.parquet"  # shards of a job started before CACHE_SUFFIX
            return (
                legacy if legacy.exists() else folder / f"shard-{i:05d}{CACHE_SUFFIX}"
            )  # out of `**/*.parquet`

        def size_of(shard: pa.Table) -> float:
            return weight(shard) if weight else shard.num_rows

        outputs: dict[int, pa.Table] = {}
        with progress_bar(description, total, rate_field="rate" if rate else None) as bar:
            for i in range(n_shards):
                if path_of(i).exists():
                    outputs[i] = pq.read_table(path_of(i))
                    bar.advance(size_of(job.shard(i)))
                else:
                    job.missing.append(i)
            started, progress = time.perf_counter(), {"done": 0.0, "inside": 0.0}

            def report(n: float) -> None:
                progress["inside"] += n
                bar.advance(n)

            def deliver(i: int, out: pa.Table) -> None:
                shard = job.shard(i)
                if out.num_rows != shard.num_rows:
                    raise PrefcurateError(
                        f"{description}: shard {i} gave {out.num_rows} rows for {shard.num_rows} inputs"
                    )
                if i in outputs:  # a duplicate delivery (a retried remote task): the first one stands
                    return
                write_parquet(out, folder / f"shard-{i:05d}{CACHE_SUFFIX}")
                outputs[i] = out
                size = size_of(shard)
                progress["done"] += size
                per_s = progress["done"] / max(time.perf_counter() - started, 1e-9)
                bar.advance(
                    max(size - progress["inside"], 0.0), **({"rate": rate(shard, per_s)} if rate else {})
                )
                progress["inside"] = 0.0  # within-shard reports only come from the one local shard running

            if job.missing:
                self.executor.run(job, deliver, report)
        missing = [i for i in range(n_shards) if i not in outputs]
        if missing:
            raise PrefcurateError(f"{description}: the executor returned without shard {missing[0]}")
        if not outputs:
            return table.schema.empty_table()
        return pa.concat_tables([outputs[i] for i in range(n_shards)], promote_options="default")


def computed_on(sig_ref: VersionRef, pairs_ref: VersionRef) -> bool:
    """Whether a signal version holds values for exactly these pairs: the same version, or another
    version with the same content fingerprint (`build --force` republishes identical rows), which is
    also what `run_signal` reuses on. Reuse and staleness must agree, or the user loops."""
    on = sig_ref.manifest.get("inputs", {}).get("pairs", {})
    if on.get("version") == pairs_ref.version:
        return True
    fp = pairs_ref.manifest.get("fingerprint")
    return fp is not None and on.get("fingerprint") == fp


def run_signal(
    store: Store,
    dataset: str,
    signal: Signal,
    *,
    pairs_version: str | None = None,
    force: bool = False,
    subset: Subset | None = None,
    executor: Executor | None = None,
) -> tuple[VersionRef, bool]:
    """Compute `signal` for a dataset's pairs (or a `subset` of them) and publish it. Returns (version, reused).

    The same signal spec over the same pairs content (and subset) is reused unless `force`, whatever
    the executor: where shards ran is recorded in the manifest's `execution` block, never hashed.
    """
    with store.lock("scores", f"{dataset}/{signal.name}"):
        return _run_signal(store, dataset, signal, pairs_version, force, subset, executor or LocalExecutor())


def _run_signal(
    store: Store,
    dataset: str,
    signal: Signal,
    pairs_version: str | None,
    force: bool,
    subset: Subset | None,
    executor: Executor,
) -> tuple[VersionRef, bool]:
    subset = subset if subset is not None and subset.active else None
    pairs_ref = store.get("pairs", dataset, pairs_version)
    pairs_fp = pairs_ref.manifest.get("fingerprint", pairs_ref.label)
    spec = signal.spec()
    identity = signal.identity()
    # `identity` joins the hash only when a signal has one, so option-only signals keep their fingerprints.
    fp = fingerprint(
        {
            "signal": signal.name,
            "spec": spec,
            "pairs": pairs_fp,
            **({"identity": identity} if identity else {}),
            **({"subset": subset.spec()} if subset else {}),
        }
    )
    name = f"{dataset}/{signal.name}"
    if existing := store.reusable("scores", name, fp, force=force):
        return existing, True
    work_dir = store.work_dir("scores", name, fp)
    pairs = pairs_ref.read()
    total_pairs = pairs.num_rows
    if subset:
        pairs = select_subset(pairs, subset)
    ctx = RunContext(store, dataset, work_dir, pairs_ref, executor)
    computed = signal.compute(pairs, ctx)
    out = computed.table
    expected = ["pair_id", *signal.columns]
    if out.column_names[: len(expected)] != expected:
        raise PrefcurateError(
            f"signal {signal.name} returned columns {out.column_names}, expected {expected}"
        )
    if out.num_rows != pairs.num_rows or not out.column("pair_id").equals(pairs.column("pair_id")):
        raise PrefcurateError(f"signal {signal.name} must return one row per pair, in pair order")
    counts = {"rows": out.num_rows, "nulls": {c: out.column(c).null_count for c in signal.columns}}
    manifest = {
        "signal": signal.name,
        "dataset": dataset,
        "spec": spec,
        "fields": list(signal.fields),
        "inputs": {"pairs": {"version": pairs_ref.version, "fingerprint": pairs_fp}},
        "counts": counts,
        "fingerprint": fp,
        **({"subset": {**subset.spec(), "pairs": pairs.num_rows, "of": total_pairs}} if subset else {}),
        **identity,
        **computed.manifest,
        "execution": executor.record(),  # not in the fingerprint: a local rerun reuses a Ray run
    }
    with store.publish("scores", name, manifest) as pub:
        pub.write_table(out)
    store.clear_work_dir("scores", name, fp)
    return VersionRef("scores", name, pub.manifest["version"], pub.path), False


def load_signal_columns(store: Store, dataset: str, columns: list[str]) -> pa.Table:
    """pair_id plus the named `<signal>__<field>` columns from each signal's latest version."""
    by_signal: dict[str, list[str]] = {}
    for col in columns:
        signal, sep, _ = col.partition("__")
        if not sep:
            raise ConfigError(
                f"{col!r} is not a signal column; expected <signal>__<field>, e.g. score_gap_v1__gap"
            )
        by_signal.setdefault(signal, []).append(col)
    result: pa.Table | None = None
    for signal, cols in by_signal.items():
        ref = store.get("scores", f"{dataset}/{signal}")
        table = ref.read()
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            have = [c for c in table.column_names if c != "pair_id"]
            raise ConfigError(f"{ref.label} has no column {missing[0]!r} (have: {', '.join(have)})")
        table = table.select(["pair_id", *cols])
        result = table if result is None else result.join(table, "pair_id", join_type="left outer")
    assert result is not None
    return result
