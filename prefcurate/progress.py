"""One progress bar helper for every long step: Rich when stderr is a TTY, silent otherwise."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_enabled() -> bool:
    if os.environ.get("PREFCURATE_PROGRESS") == "0":
        return False
    if os.environ.get("PREFCURATE_PROGRESS") == "1":
        return True
    return sys.stderr.isatty()


class Bar:
    """Handle returned by `progress_bar`: `advance(n, **fields)` updates count and extra fields."""

    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: float = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)

    def update(self, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, **fields)


@contextmanager
def progress_bar(description: str, total: float | None, *, rate_field: str | None = None) -> Iterator[Bar]:
    """A bar with count, ETA and optionally a free-text rate (e.g. tokens/s) shown via `rate_field`."""
    if not progress_enabled():
        yield Bar(None, None)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    if rate_field:
        columns.append(TextColumn("{task.fields[" + rate_field + "]}"))
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        extra: dict[str, Any] = {rate_field: ""} if rate_field else {}
        task = progress.add_task(description, total=total, **extra)
        yield Bar(progress, task)
