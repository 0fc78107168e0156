"""The `prefcurate` command line: a thin layer that parses options, calls one library
function, renders the result and turns library errors into one-line messages.

Each module below registers its commands on the shared Typer app in `app.py`.
"""

from __future__ import annotations

import importlib

from .app import app

# One module per command family; importing registers the commands.
_COMMANDS = (
    "build",
    "build_code",
    "sql",
    "store",
    "score",
    "rank",
    "stats",
    "sandbox",
    "buckets",
    "report",
    "train",
    "eval",
    "demo",
)
for _module in _COMMANDS:
    try:
        importlib.import_module(f"{__name__}.{_module}")
    except ModuleNotFoundError as _exc:  # a command family not written yet
        if _exc.name != f"{__name__}.{_module}":
            raise


def main() -> None:
    app(prog_name="prefcurate")


__all__ = ["app", "main"]
