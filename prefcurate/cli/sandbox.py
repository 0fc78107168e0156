"""`prefcurate sandbox run FILE.py [--tests TESTS.py]`: see why a sample passes or fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..sandbox.files import run_file
from .app import Format, FormatOpt, out, sandbox_app

_STYLE = {
    "ok": "green", "passed": "green", "failed": "red", "errored": "red", "refused": "magenta",
    "timeout": "yellow", "resource_limit": "yellow", "error": "red", "skipped": "dim",
}


@sandbox_app.command("run")
def run(
    program: Annotated[Path, typer.Argument(help="Python file to run (untrusted code is fine).")],
    tests: Annotated[
        Path | None,
        typer.Option("--tests", "-t", help="Test file: each top-level statement with an assert is one unit; "
                     "a HumanEval `def check(candidate)` file is split per assert (give --entry-point)."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Wall-clock seconds for the program and all its tests.")] = 5.0,
    entry_point: Annotated[
        str | None, typer.Option("--entry-point", help="Function bound to `candidate` in a `check(candidate)` test file.")
    ] = None,
    memory_mb: Annotated[int, typer.Option("--memory-mb", help="Address space the program may use, MiB.")] = 512,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Interpreter step budget.")] = 10_000_000,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run one program (and its tests) under the sandbox; print status, test counts and output.

    Exit code 0 when the program ran and every test passed, 2 otherwise.
    """
    done = run_file(program, tests, timeout=timeout, entry_point=entry_point, memory_mb=memory_mb, max_steps=max_steps)
    res = done.result
    if fmt is Format.json or fmt is Format.csv:
        data = res.to_dict()
        data["program"] = str(program)
        for unit, source in zip(data["units"], done.units):
            unit["source"] = source
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        style = _STYLE.get(res.status, "white")
        out.print(f"[bold]status[/bold]: [{style}]{res.status}[/{style}]  ({res.duration_s:.3f}s)", highlight=False)
        if res.reason:
            out.print(f"[bold]reason[/bold]: {escape(res.reason)}", highlight=False)
        if res.total:
            out.print(
                f"[bold]tests[/bold]: {res.passed}/{res.total} passed, {res.failed} failed, "
                f"{res.errored} errored, {res.timed_out} timed out",
                highlight=False,
            )
            table = Table(header_style="bold cyan")
            for col in ("#", "status", "test", "message"):
                table.add_column(col, overflow="fold")
            for i, (unit, source) in enumerate(zip(res.units, done.units), 1):
                first = source.strip().splitlines()[0] if source.strip() else ""
                s = _STYLE.get(unit.status, "white")
                table.add_row(str(i), f"[{s}]{unit.status}[/{s}]", escape(first[:80]), escape(unit.message))
            out.print(table)
        if res.stdout:
            out.print("[bold]output[/bold]:")
            out.print(escape(res.stdout.rstrip("\n")), highlight=False, markup=True)
    if not (res.status == "ok" and res.passed == res.total):
        raise typer.Exit(2)
