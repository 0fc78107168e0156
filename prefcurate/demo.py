"""`prefcurate demo`: the whole pipeline on the bundled real data and the bundled model.

Each stage is a small function; a stage whose optional extra is missing is skipped with a
note saying what to install, so the demo also runs on a core-only install.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from .errors import MissingExtraError, PrefcurateError
from .store import Store


def demo_data_dir() -> Path:
    """examples/data beside the package (repository checkout) or in the working folder."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "examples" / "data",
        Path.cwd() / "examples" / "data",
    ):
        if candidate.is_dir():
            return candidate
    raise PrefcurateError(
        "demo data not found: run `prefcurate demo` from a checkout of the repository (examples/data/)"
    )


@dataclass
class DemoContext:
    store: Store
    data: Path
    out: Path
    console: Console
    quick: bool = False
    notes: list[str] = field(default_factory=list)


Stage = Callable[[DemoContext], None]


def run_demo(
    store: Store,
    out: Path,
    *,
    quick: bool = False,
    console: Console | None = None,
    stages: list[tuple[str, Stage]] | None = None,
) -> DemoContext:
    from .demo_stages import STAGES

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
