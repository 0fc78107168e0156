"""What the user chose about where work runs (`--executor`, `--ray-address`, `--workers`, `--threads`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from prefcurate.errors import ConfigError


class ExecutorKind(str, Enum):
    """Where shards are computed."""

    local = "local"
    ray = "ray"


class WorkKind(str, Enum):
    """What a command's shards do: it decides what `--workers` / `--threads` mean locally."""

    model = "model"  # a model forward pass: threads are torch intra-op threads
    sandbox = "sandbox"  # programs in the sandbox: locally --workers is the sandbox pool size


@dataclass(frozen=True)
class ExecutionOptions:
    """Defaults live here, once. None means "decided from the cluster"."""

    kind: ExecutorKind = ExecutorKind.local
    address: str | None = None  # Ray: "auto", "ray://host:10001", "host:6379"; None starts a local cluster
    workers: int | None = None  # Ray: actors (default: what fits with one CPU left free)
    threads: int | None = None  # per process: torch threads (model) or sandbox workers per actor (sandbox)
    retries: int = 2  # Ray: extra attempts for a shard that failed (and actor restarts)
    shard_timeout_s: float = 1800.0  # Ray: end the run when no shard finishes for this long
    # Ray: CPUs kept free of actors so Ray's own tasks can run (ray#44687: a pool holding every CPU hangs).
    free_cpus: int = 1

    def check(self, work: WorkKind) -> None:
        """Refuse options that do not apply, with the flag named."""
        for flag, value in (("--workers", self.workers), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {self.retries}")
        if self.shard_timeout_s <= 0:
            raise ConfigError(f"the shard timeout must be positive, got {self.shard_timeout_s}")
        if self.kind is ExecutorKind.local:
            if self.address is not None:
                raise ConfigError("--ray-address applies only to --executor ray")
            if self.workers is not None and work is WorkKind.model:
                raise ConfigError(
                    "--workers applies to --executor ray (actors) for model work; locally one process runs the model"
                )
            if self.threads is not None and work is WorkKind.sandbox:
                raise ConfigError(
                    "--threads applies to --executor ray for tests (sandbox workers per actor); "
                    "locally use --workers for the sandbox pool"
                )

    def record(self) -> dict[str, object]:
        """For the manifest's `execution` block (never hashed into a fingerprint)."""
        return {
            "executor": self.kind.value,
            "address": self.address,
            "workers": self.workers,
            "threads": self.threads,
        }
