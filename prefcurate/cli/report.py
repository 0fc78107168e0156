"""`prefcurate report`: a self-contained HTML page about a dataset, a bucket set or a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import StoreOpt, app, get_store, out


@app.command()
def report(
    target: Annotated[
        str,
        typer.Argument(
            help="A dataset, a bucket set (NAME or NAME@vN), or a training run folder (with run.json)."
        ),
    ],
    out_html: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
) -> None:
    """Write one self-contained HTML report about a dataset, a bucket set or a training run.

    For a dataset or bucket set: signal histograms overall and per bucket, signal correlation, per-source
    counts and means, length bias, drops by reason. For a run folder: its training curves per stage.
    """
    run_dir = Path(target).expanduser()
    if (run_dir / "run.json").is_file():
        from trainers import write_run_report  # the trainers package renders its own runs

        path = write_run_report(run_dir, out_html)
        out.print(f"Wrote {path} (training run {run_dir})", soft_wrap=True)
        return
    from prefcurate.explore.page import write_report  # imported when the command runs: --help stays light

    path = write_report(get_store(store), target, out_html)
    out.print(f"Wrote {path} ({path.stat().st_size:,} bytes)", soft_wrap=True)
