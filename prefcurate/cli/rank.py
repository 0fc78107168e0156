"""`prefcurate rank DATASET --by SIGNAL`: show (and optionally save) the pairs ordered by a signal."""

from pathlib import Path
from typing import Annotated

import typer

from .base import Format, FormatOpt, StoreOpt, app, get_store, out, render


@app.command()
def rank(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset name in the store (see `prefcurate ls`); optional when it holds only one.",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    *,  # the options after an optional DATASET need no defaults (Typer passes them by name)
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Signal (e.g. logprob-margin, score-gap, reward) or a column such as logprob_margin_v1__margin_per_token.",
        ),
    ],
    field: Annotated[
        str | None, typer.Option("--field", help="Signal field to sort by (default: margin, or gap).")
    ] = None,
    ascending: Annotated[
        bool,
        typer.Option(
            "--ascending", help="Smallest first (default: largest first, i.e. easiest first for margins)."
        ),
    ] = False,
    top: Annotated[
        int | None,
        typer.Option("--top", help="Keep only the first N pairs of the ordering (shown and written)."),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the ordering to FILE (.parquet, .csv or .jsonl).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="Signal version such as v2 (default: latest).")
    ] = None,
    excerpt: Annotated[int, typer.Option(help="Characters of the prompt to show.")] = 60,
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Order a dataset's pairs by a signal: prompt excerpt, chosen and rejected scores, and the margin.

    Pairs without a value (e.g. a prompt longer than --max-length) come last; ties keep pair_id order.
    """
    from prefcurate.explore.ranking import (  # imported when the command runs: --help stays light
        rank_pairs,
        write_ranking,
    )

    table, ref, field_name = rank_pairs(
        get_store(store),
        get_store(store).dataset_or_only(dataset),
        by,
        field=field,
        ascending=ascending,
        top=top,
        version=version,
        excerpt=excerpt,
    )
    if out_file is not None:
        write_ranking(table, out_file)
    direction = "ascending" if ascending else "descending"
    title = f"{ref.label} by {field_name} ({direction})"
    render(table, format, title=title, max_rows=top or 200)
    if out_file is not None and format is Format.table:
        out.print(f"Wrote {table.num_rows:,} rows to {out_file}")
