"""The contract between shard producers (signals, `build code`) and executors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

from .options import ExecutorKind, WorkKind

# Progress inside a shard: called with the weight (rows or tokens) just finished.
Report = Callable[[float], None]


class ShardFn(Protocol):
    """Compute one shard: `shard` rows in, one output row per input row, in order."""

    def __call__(self, shard: pa.Table, report: Report, /) -> pa.Table: ...


class ShardWork(Protocol):
    """A picklable recipe for a `ShardFn`: what a Ray actor builds once (loads the model, starts its
    sandbox) and then applies to every shard it is given. It must build exactly what the local path
    uses, so that a shard's values do not depend on where it ran."""

    @property
    def gpu(self) -> bool:
        """Needs a GPU (vLLM); model work takes one anyway when the cluster has them."""
        ...

    def open(self, threads: int | None) -> ShardFn: ...


@dataclass
class ShardJob:
    """One `map_shards` call as an executor sees it."""

    table: pa.Table
    shard_rows: int
    missing: list[int]  # shard indices not on disk yet, ascending
    fn: ShardFn | None  # built by the caller for the local executor (its model is already loaded)
    work: ShardWork | None  # for remote executors; None: this step cannot leave the process
    description: str
    kind: WorkKind = WorkKind.model

    def shard(self, i: int) -> pa.Table:
        return self.table.slice(i * self.shard_rows, self.shard_rows)


Deliver = Callable[[int, "pa.Table"], None]  # (shard index, output): the driver writes it


class Executor(Protocol):
    kind: ExecutorKind

    def run(self, job: ShardJob, deliver: Deliver, report: Report) -> None:
        """Compute every `job.missing` shard and `deliver` each as it finishes (any order)."""
        ...

    def record(self) -> dict[str, Any]:
        """The manifest's `execution` block: how this command ran (not part of any fingerprint)."""
        ...

    def close(self) -> None: ...
