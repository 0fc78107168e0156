"""Shards in this process, one after another: the reference every other executor must match."""

from __future__ import annotations

from typing import Any

from prefcurate.errors import ConfigError

from .options import ExecutionOptions, ExecutorKind
from .runtime import runtime_identity, set_torch_threads
from .work import Deliver, Report, ShardJob


class LocalExecutor:
    kind = ExecutorKind.local

    def __init__(self, options: ExecutionOptions | None = None) -> None:
        self.options = options or ExecutionOptions()
        self.shards = {"run": 0}

    def run(self, job: ShardJob, deliver: Deliver, report: Report) -> None:
        if job.fn is None:
            raise ConfigError(f"{job.description}: no local shard function")
        if self.options.threads is not None:
            set_torch_threads(self.options.threads)
        for i in job.missing:
            deliver(i, job.fn(job.shard(i), report))
            self.shards["run"] += 1

    def record(self) -> dict[str, Any]:
        return {**self.options.record(), "shards_run": self.shards["run"], "processes": [runtime_identity()]}

    def close(self) -> None:
        pass
