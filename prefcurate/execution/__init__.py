"""Where shard work runs: in this process (`LocalExecutor`) or on a Ray cluster (`RayExecutor`).

The unit of work is prefcurate's own shard (see `RunContext.map_shards`): the same rows in the same
order whatever the executor, so the values, and the published Parquet, are the same on one machine
or many. The driver is the only writer of shard files; executors only compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .local import LocalExecutor
from .options import ExecutionOptions, ExecutorKind, WorkKind
from .work import Executor, ShardFn, ShardJob, ShardWork

__all__ = [
    "ExecutionOptions",
    "Executor",
    "ExecutorKind",
    "LocalExecutor",
    "ShardFn",
    "ShardJob",
    "ShardWork",
    "WorkKind",
    "open_executor",
]


@contextmanager
def open_executor(options: ExecutionOptions | None = None) -> Iterator[Executor]:
    """The executor for `options`, closed (a cluster it started shut down) when the block ends."""
    options = options or ExecutionOptions()
    executor: Executor
    if options.kind is ExecutorKind.ray:
        from .ray_executor import RayExecutor

        executor = RayExecutor(options)
    else:
        executor = LocalExecutor(options)
    try:
        yield executor
    finally:
        executor.close()
