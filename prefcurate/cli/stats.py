"""`prefcurate stats accuracy DATASET --signal COLUMN --by source`: per-source accuracy with counts."""

from typing import Annotated

import typer

from prefcurate.explore.stats import DEFAULT_SIGNAL, Grouping, accuracy

from .base import Format, FormatOpt, StoreOpt, default_of, get_store, out, render, stats_app


@stats_app.command("accuracy")
def accuracy_cmd(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset name in the store (see `prefcurate ls`); optional when it holds only one.",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    signal: Annotated[
        str,
        typer.Option(
            "--signal",
            help="Signal column <signal>__<field>: a margin (> 0 correct, = 0 tie) or a boolean such as "
            f"reward_margin_v1__correct (default: {DEFAULT_SIGNAL}, the reference-free accuracy).",
            show_default=False,
        ),
    ] = default_of(accuracy, "column"),
    by: Annotated[
        Grouping, typer.Option("--by", help="Group by source, or dataset for one overall row.")
    ] = Grouping(default_of(accuracy, "by")),
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Accuracy of a signal per data source: correct, wrong, ties (never correct), missing.

    Rows are sorted by accuracy, highest first: sDPO's easy-to-hard order of the sources.
    accuracy = correct / (correct + wrong + ties); ci_low/ci_high is its Wilson 95% interval.
    """
    table = accuracy(get_store(store), get_store(store).dataset_or_only(dataset), signal, by.value)
    table = table.drop_columns(["dataset"])  # one dataset per call
    render(table, format, title=f"Accuracy of {signal} by {by.value} (easiest first)")
    if format is Format.table and by.value == "source" and table.num_rows:
        out.print(
            "Order, easiest first: " + " > ".join(str(s) for s in table.column("source").to_pylist()),
            soft_wrap=True,
        )
