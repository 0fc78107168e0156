"""`prefcurate demo`: the whole pipeline on bundled real data and the bundled model."""

from pathlib import Path
from typing import Annotated

import typer

from .base import StoreOpt, app, get_store, out


@app.command()
def demo(
    store: StoreOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the export, report and training run.")
    ] = Path("demo-out"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller model stages (fewer pairs, fewer steps).")
    ] = False,
) -> None:
    """Run the whole pipeline on the bundled real data: build, SQL, score, bucket, export, report, train."""
    from prefcurate.demo.run import run_demo  # imported when the command runs: --help stays light

    ctx = run_demo(get_store(store), out_dir, quick=quick, console=out)
    out.rule("[bold]done")
    out.print(f"Store: {ctx.store.root}  (try: prefcurate ls, prefcurate sql overview)")
    for note in ctx.notes:
        out.print(f"[yellow]note:[/yellow] {note}")
