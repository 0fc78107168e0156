"""Unit-test jobs as resumable shards: one table row per (program, suite), the same shard function
for `build code` and `score --by tests`, locally or on Ray actors (each holding its own sandbox)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefcurate.extras import lazy_module

from .codetests import LazySuiteRunner, SuiteRunner, TestSuite

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")


def run_schema() -> pa.Schema:
    """One sandbox run of a sample against its problem's tests."""
    return pa.schema(
        [
            ("passed", pa.int32()),
            ("failed", pa.int32()),
            ("errored", pa.int32()),
            ("timed_out", pa.int32()),
            ("total", pa.int32()),
            ("status", pa.string()),
            ("reason", pa.string()),
        ]
    )


def jobs_table(jobs: Sequence[tuple[str, TestSuite]]) -> pa.Table:
    """Everything a worker needs to run each job, so shards can travel to other machines."""
    return pa.table(
        {
            "job": pa.array(range(len(jobs)), pa.int64()),
            "program": [p for p, _ in jobs],
            "setup": [s.setup for _, s in jobs],
            "units": pa.array([list(s.units) for _, s in jobs], pa.list_(pa.string())),
        }
    )


def run_suite_shard(run: SuiteRunner, shard: pa.Table, report: Callable[[float], None]) -> pa.Table:
    """`job` plus run_schema() for each row of a `jobs_table` shard."""
    cols = [shard.column(c).to_pylist() for c in ("program", "setup", "units")]
    jobs = [(p, TestSuite(tuple(u), s)) for p, s, u in zip(*cols, strict=True)]
    results = run(jobs)
    report(len(results))
    return pa.Table.from_pylist([r.to_dict() for r in results], schema=run_schema()).add_column(
        0, "job", shard.column("job")
    )


class SuiteShards:
    """A shard function over one sandbox pool; `info()` reports its isolation for the manifest."""

    def __init__(self, runner: LazySuiteRunner) -> None:
        self.runner = runner

    def __call__(self, shard: pa.Table, report: Callable[[float], None], /) -> pa.Table:
        return run_suite_shard(self.runner, shard, report)

    def info(self) -> dict[str, Any]:
        return {"sandbox_isolation": self.runner.isolation}

    def close(self) -> None:
        self.runner.close()


@dataclass(frozen=True)
class SuiteWork:
    """What a Ray actor needs to start its own sandbox pool: `threads` sandbox workers per actor
    (else `workers`, else the actor's CPU count). The local executor runs `open(None)`'s function."""

    workers: int | None
    timeout: float
    require_isolation: bool = False
    gpu: bool = False
    max_steps: int | None = None  # None: the sandbox's default step budget

    def open(self, threads: int | None) -> SuiteShards:
        # The pool's processes die with the actor (PR_SET_PDEATHSIG), so nothing outlives the run.
        runner = LazySuiteRunner(
            threads or self.workers, self.timeout, self.require_isolation, self.max_steps
        )
        return SuiteShards(runner)
