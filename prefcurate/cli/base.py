"""The Typer application and what every command shares: the store option, output rendering,
and one-line error messages for library errors (no tracebacks).

`prefcurate --help` imports every command module and Typer reads every command's signature (a process
that runs one command imports only its modules, see `COMMANDS`), so a command module imports at its top
only what declares its options (choice Enums and defaults from light library modules) and the library
inside the command body; and it does without `from __future__ import annotations`, whose string
annotations Typer would compile on every start.
"""

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer import Exit
from typer.core import TyperGroup

from prefcurate import __version__
from prefcurate.errors import PrefcurateError
from prefcurate.render import Format, render
from prefcurate.store import Store

# Every top-level command and the command modules that register it, in pipeline order: the order
# `prefcurate --help` lists them in (not the order modules register them), and what a process that runs
# one command imports (`prefcurate.cli.main`).
COMMANDS: dict[str, tuple[str, ...]] = {
    "build": ("build", "build_code"),
    "score": ("score",),
    "rank": ("rank",),
    "stats": ("stats",),
    "split": ("buckets",),
    "partition": ("buckets",),
    "export": ("buckets",),
    "report": ("report",),
    "train": ("train",),
    "eval": ("eval",),
    "sql": ("sql",),
    "ls": ("store",),
    "info": ("store",),
    "sandbox": ("sandbox",),
    "demo": ("demo",),
}
COMMAND_ORDER = tuple(COMMANDS)


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
        except OSError as exc:
            # Last net for what the library did not name itself (a disk, a permission, a device).
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"Error: {where}{exc.strerror or exc}", file=sys.stderr)
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


FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output: a table for people, exact CSV or JSON for programs.")
]


def default_of(func: Callable[..., Any], name: str) -> Any:
    """A library function's own default for one keyword, so the CLI never restates it."""
    return inspect.signature(func).parameters[name].default


def field_default(cls: type, name: str) -> Any:
    """An options dataclass's own default for one field, so the CLI never restates it."""
    return cls.__dataclass_fields__[name].default  # type: ignore[attr-defined]


def get_store(path: Path | None) -> Store:
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
