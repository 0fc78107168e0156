"""The Typer application and what every command shares: the store option, output rendering,
and one-line error messages for library errors (no tracebacks)."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table
from typer import Exit
from typer.core import TyperGroup

from ..errors import PrefcurateError
from ..store import Store

# `prefcurate --help` lists commands in pipeline order, not in the order modules register them.
COMMAND_ORDER = (
    "build",
    "score",
    "rank",
    "stats",
    "split",
    "partition",
    "export",
    "report",
    "train",
    "eval",
    "sql",
    "ls",
    "info",
    "sandbox",
    "demo",
)


class FriendlyGroup(TyperGroup):
    """Turns library errors into `Error: <message>` and exit code 1."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PrefcurateError as exc:
            # One plain line on stderr (no box, no traceback), exit code 1.
            print(f"Error: {exc}", file=sys.stderr)
            raise Exit(1) from None
        except KeyboardInterrupt:
            print("Interrupted: rerun the same command to resume from the finished shards.", file=sys.stderr)
            raise Exit(130) from None


def _typer(help: str) -> typer.Typer:
    return typer.Typer(
        help=help,
        cls=FriendlyGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _typer(
    "Curate preference data for DPO: build pairs, score their difficulty, bucket them easy to hard, "
    "explore with SQL, and train in order."
)
build_app = _typer("Build preference pairs from raw data into the store (pairs/<dataset>/<version>).")
app.add_typer(build_app, name="build")
sandbox_app = _typer("Run untrusted Python under the sandboxed AST interpreter.")
app.add_typer(sandbox_app, name="sandbox")
stats_app = _typer("Summary statistics over pairs and signals.")
app.add_typer(stats_app, name="stats")

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="PREFCURATE_STORE",
        help="Store folder (default: ./prefstore, or $PREFCURATE_STORE).",
        show_default=False,
    ),
]


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format: table, csv or json.")]


def get_store(path: Path | None) -> Store:
    return Store(path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render(
    table: pa.Table,
    fmt: Format = Format.table,
    title: str | None = None,
    max_rows: int = 200,
    console: Console | None = None,
) -> None:
    """Print an Arrow table as a Rich table, CSV or JSON (one object per row, in a list)."""
    console = console or out
    rows = table.to_pylist()
    if fmt is Format.json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str, indent=2) + "\n")
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow(
                [_cell(row[c]) if not isinstance(row[c], str) else row[c] for c in table.column_names]
            )
        sys.stdout.write(buf.getvalue())
        return
    rich_table = Table(title=title, show_lines=False, header_style="bold cyan")
    for name in table.column_names:
        numeric = pa.types.is_integer(table.schema.field(name).type) or pa.types.is_floating(
            table.schema.field(name).type
        )
        rich_table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows[:max_rows]:
        rich_table.add_row(*(_cell(row[c]) for c in table.column_names))
    console.print(rich_table)
    if len(rows) > max_rows:
        console.print(f"[dim]... {len(rows) - max_rows} more rows (use --format csv or json for all)[/dim]")


def parse_key_values(items: list[str] | None, what: str = "--param") -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PrefcurateError(f"{what} expects NAME=VALUE, got {item!r}")
        result[key.strip()] = value
    return result
