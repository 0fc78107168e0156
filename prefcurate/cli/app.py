"""The Typer application and what every command shares: the store option, output rendering,
and one-line error messages for library errors (no tracebacks)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer import Exit
from typer.core import TyperGroup

from prefcurate import __version__
from prefcurate.errors import PrefcurateError
from prefcurate.render import Format, render

if TYPE_CHECKING:
    from prefcurate.store import Store

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


def _print_version(value: bool) -> None:
    if value:
        print(f"prefcurate {__version__}")
        raise Exit(0)


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options for every command."""


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


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format: table, csv or json.")]


def get_store(path: Path | None) -> Store:
    from prefcurate.store import Store  # pyarrow: imported when a command runs, not for --help

    return Store(path)


def parse_key_values(items: list[str] | None, what: str = "--param") -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PrefcurateError(f"{what} expects NAME=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


__all__ = ["Format", "render"]  # re-exported for the command modules
