"""`prefcurate report`: a self-contained HTML page about a dataset, a bucket set or training runs."""

from pathlib import Path
from typing import Annotated

import typer

from prefcurate.errors import ConfigError

from .base import StoreOpt, app, get_store, out


@app.command()
def report(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="A dataset, a bucket set (NAME or NAME@vN), or one or more training run folders (with run.json): several runs are overlaid, the first as the control.",
            show_default=False,
        ),
    ],
    out_html: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
) -> None:
    """Write one self-contained HTML report about a dataset, a bucket set or training runs.

    For a dataset or bucket set: signal histograms and ECDFs per bucket, signal correlation, per-source
    counts, means and accuracy, length bias, example pairs, drops by reason. For a run folder: its
    training curves per stage, learning rate and grad norm, held-out and `eval run` results. For several
    run folders (curriculum, shuffled, plain...): the same curves overlaid and the eval table against the
    first run.
    """
    runs = [Path(t).expanduser() for t in targets if (Path(t).expanduser() / "run.json").is_file()]
    if len(targets) > 1 and len(runs) < len(targets):
        others = [t for t in targets if not (Path(t).expanduser() / "run.json").is_file()]
        raise ConfigError(
            f"several targets are overlaid only as training runs; not a run folder (no run.json): {', '.join(others)}"
        )
    if len(runs) > 1:
        from trainers import write_runs_report

        path = write_runs_report(runs, out_html)
        out.print(f"Wrote {path} ({len(runs)} training runs overlaid)", soft_wrap=True)
        return
    if runs:
        from trainers import write_run_report  # the trainers package renders its own runs

        path = write_run_report(runs[0], out_html)
        out.print(f"Wrote {path} (training run {runs[0]})", soft_wrap=True)
        return
    from prefcurate.explore.page import write_report  # imported when the command runs: --help stays light

    path = write_report(get_store(store), targets[0], out_html)
    out.print(f"Wrote {path} ({path.stat().st_size:,} bytes)", soft_wrap=True)
