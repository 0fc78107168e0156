"""`prefcurate demo`: the whole pipeline on the bundled real data and the bundled model.

Each stage is a small function; a stage whose optional extra is missing is skipped with a
note saying what to install, so the demo also runs on a core-only install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from prefcurate.demo.context import DemoContext, demo_data_dir
from prefcurate.demo.stages import STAGES
from prefcurate.errors import MissingExtraError
from prefcurate.store import Store

Stage = Callable[[DemoContext], None]


def run_demo(
    store: Store,
    out: Path,
    *,
    quick: bool = False,
    console: Console | None = None,
    stages: list[tuple[str, Stage]] | None = None,
) -> DemoContext:

    console = console or Console()
    if not console.is_terminal and console.width < 140:
        console.width = 140  # logs and CI: the tables are wide; do not squeeze them to 80 columns
    ctx = DemoContext(store=store, data=demo_data_dir(), out=out, console=console, quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    for title, stage in stages or STAGES:
        ctx.console.rule(f"[bold]{title}")
        try:
            stage(ctx)
        except MissingExtraError as exc:
            ctx.console.print(f"[yellow]skipped:[/yellow] {exc}")
            ctx.notes.append(f"{title}: skipped ({exc})")
    return ctx
