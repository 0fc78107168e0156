"""The `prefcurate` command line: a thin layer that parses options, calls one library
function, renders the result and turns library errors into one-line messages.

Each module below registers its commands on the shared Typer app in `app.py`.
"""

from __future__ import annotations

# One module per command family; importing registers the commands. Explicit imports, so a renamed
# module fails loudly instead of silently dropping its commands.
from . import (  # noqa: E402, F401
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
from .app import app  # noqa: E402


def main() -> None:
    app(prog_name="prefcurate")


__all__ = ["app", "main"]
