"""`--executor`, `--ray-address`, `--threads` (and what `--workers` means with them), shared by the
commands that compute shards: `score`, `build code`, `eval code` and `eval generate`."""

from typing import Annotated

import typer

from prefcurate.errors import ConfigError
from prefcurate.execution import ExecutionOptions, ExecutorKind, WorkKind

ExecutorOpt = Annotated[
    ExecutorKind,
    typer.Option(
        "--executor",
        help="Where shards run: this process, or Ray actors (a local cluster for the command unless --ray-address).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="--executor ray: an existing cluster (auto, HOST:6379 or ray://HOST:10001); default: start one for this command.",
        show_default=False,
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="Threads per process: torch threads for model signals; with --executor ray, CPUs (and sandbox workers) per actor.",
        show_default=False,
    ),
]
WORKERS_HELP = (
    "--executor ray: Ray actors (default: what fits with one CPU left free). "
    "Locally, for tests: sandbox worker processes (default: CPU count)."
)


def execution_options(
    executor: ExecutorKind,
    ray_address: str | None,
    workers: int | None,
    threads: int | None,
    work: WorkKind | None,
) -> tuple[ExecutionOptions, int | None]:
    """The checked options, and what is left of `--workers` for a local sandbox pool."""
    if work is None:
        if executor is not ExecutorKind.local or ray_address is not None or threads is not None:
            raise ConfigError(
                "--executor, --ray-address and --threads apply only to signals computed in shards"
            )
        return ExecutionOptions(), workers
    local_sandbox = executor is ExecutorKind.local and work is WorkKind.sandbox
    options = ExecutionOptions(
        kind=executor, address=ray_address, workers=None if local_sandbox else workers, threads=threads
    )
    options.check(work)
    return options, workers if local_sandbox else None
