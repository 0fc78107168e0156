"""The `prefcurate` command line: a thin layer that parses options, calls one library
function, renders the result and turns library errors into one-line messages.

Each command module registers its commands on the shared Typer app in `base.py`. A process that runs
one command (`prefcurate ls`, `prefcurate build pairs ...`) imports only the modules of that command
(`base.COMMANDS`); `--help`, no command or an unknown one imports all of them, and so does reading
`prefcurate.cli.app` (tests, `cli/docs.py`).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .base import COMMANDS

if TYPE_CHECKING:
    from .base import app


def load_all() -> None:
    """Import every command module (importing registers the commands). Explicit imports, so a renamed
    module fails loudly instead of silently dropping its commands."""
    from . import (  # noqa: F401
        buckets,
        build,
        build_code,
        demo,
        eval,
        rank,
        report,
        sandbox,
        score,
        sql,
        stats,
        store,
        train,
    )


def load_for(args: list[str]) -> None:
    """Import the modules of the command that `args` (the command line after `prefcurate`) runs: its
    first word. Every module when there is none, it is unknown, or a root option (`--help`, `--version`)
    comes first: the root's help and its "No such command" suggestions list every command."""
    if not args or args[0].startswith("-") or args[0] not in COMMANDS:
        load_all()
        return
    for module in COMMANDS[args[0]]:
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole application, for callers other than `main`
        load_all()
        from .base import app

        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    load_for(sys.argv[1:])
    from .base import app

    app(prog_name="prefcurate")


__all__ = ["app", "load_all", "load_for", "main"]
