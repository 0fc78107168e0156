"""`prefcurate stats accuracy DATASET --signal COLUMN --by source`: per-source accuracy with counts."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import Format, FormatOpt, StoreOpt, get_store, out, render, stats_app

# prefcurate.explore.stats.DEFAULT_SIGNAL (a literal so `--help` needs no duckdb; a test checks they match)
DEFAULT_SIGNAL = "logprob_margin_v1__correct"


@stats_app.command("accuracy")
def accuracy_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name in the store (see `prefcurate ls`).")],
    signal: Annotated[
        str,
        typer.Option(
            "--signal",
            help="Signal column <signal>__<field>: a margin (> 0 correct, = 0 tie) or a boolean such as "
            f"reward_margin_v1__correct (default: {DEFAULT_SIGNAL}, the reference-free accuracy).",
            show_default=False,
        ),
    ] = DEFAULT_SIGNAL,
    by: Annotated[
        str, typer.Option("--by", help="Group by source, or dataset for one overall row.")
    ] = "source",
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Accuracy of a signal per data source: correct, wrong, ties (never correct), missing.

    Rows are sorted by accuracy, highest first: sDPO's easy-to-hard order of the sources.
    accuracy = correct / (correct + wrong + ties); ci_low/ci_high is its Wilson 95% interval.
    """
    from prefcurate.explore.stats import accuracy

    table = accuracy(get_store(store), dataset, signal, by)
    table = table.drop_columns(["dataset"])  # one dataset per call
    render(table, format, title=f"Accuracy of {signal} by {by} (easiest first)")
    if format is Format.table and by == "source" and table.num_rows:
        out.print(
            "Order, easiest first: " + " > ".join(str(s) for s in table.column("source").to_pylist()),
            soft_wrap=True,
        )
