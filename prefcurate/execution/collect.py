"""Shards whose outputs the caller keeps in memory (no resume folder): the executor computes them,
this process collects them in shard order, so the result does not depend on where they ran."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from prefcurate.errors import PrefcurateError
from prefcurate.progress import progress_bar

from .options import WorkKind
from .work import Executor, ShardFn, ShardJob, ShardWork

if TYPE_CHECKING:
    import pyarrow as pa


def collect_shards(
    executor: Executor,
    table: pa.Table,
    fn: ShardFn | None,
    work: ShardWork | None,
    *,
    kind: WorkKind,
    shard_rows: int,
    description: str,
    on_shard: Callable[[int, pa.Table], None] | None = None,
    missing: list[int] | None = None,
    rate: Callable[[], str] | None = None,
) -> dict[int, pa.Table]:
    """Every shard of `table` (or the `missing` ones) -> its output, with a progress bar counting rows.

    `on_shard(i, out)` runs in this process as each shard arrives (any order), once per shard: a
    duplicate delivery (a retried remote task) is skipped. `rate()` is shown after each shard.
    """
    n_shards = max(1, math.ceil(table.num_rows / shard_rows))
    job = ShardJob(
        table, shard_rows, list(range(n_shards)) if missing is None else missing, fn, work, description, kind
    )
    outputs: dict[int, pa.Table] = {}
    total = sum(job.shard(i).num_rows for i in job.missing)
    with progress_bar(description, total, rate_field="rate" if rate else None) as bar:
        inside = {"rows": 0.0}

        def report(n: float) -> None:
            inside["rows"] += n
            bar.advance(n)

        def deliver(i: int, out: pa.Table) -> None:
            rows = job.shard(i).num_rows
            if out.num_rows != rows:
                raise PrefcurateError(f"{description}: shard {i} gave {out.num_rows} rows for {rows} inputs")
            if i in outputs:
                return
            outputs[i] = out
            if on_shard is not None:
                on_shard(i, out)
            bar.advance(max(rows - inside["rows"], 0.0), **({"rate": rate()} if rate else {}))
            inside["rows"] = 0.0  # within-shard reports only come from the one local shard running

        if job.missing and table.num_rows:
            executor.run(job, deliver, report)
    if table.num_rows and (left := [i for i in job.missing if i not in outputs]):
        raise PrefcurateError(f"{description}: the executor returned without shard {left[0]}")
    return outputs
