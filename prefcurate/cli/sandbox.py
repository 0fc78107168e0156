"""`prefcurate sandbox run FILE.py [--tests TESTS.py]`: see why a sample passes or fails."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefcurate.extras import lazy_module

from ..render import json_text, to_csv
from ..sandbox.policy import DEFAULT_MAX_STEPS
from .base import Format, FormatOpt, sandbox_app

if TYPE_CHECKING:
    import pyarrow as pa

    from ..sandbox.files import FileRun
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

# Exit codes: 0 = the program ran and every test unit passed; 2 = anything else it reports
# (a failing unit, a refusal, a timeout...); 1 = the command itself failed (missing file).
EXIT_NOT_ALL_PASSED = 2


@sandbox_app.command("run")
def run(
    program: Annotated[
        Path, typer.Argument(help="Python file to run (untrusted code is fine).", show_default=False)
    ],
    tests: Annotated[
        Path | None,
        typer.Option(
            "--tests",
            "-t",
            show_default=False,
            help="Test file: every top-level statement holding an assert is one unit (statements without "
            "one run with the next unit); a HumanEval file defining check(candidate) is split per assert.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Wall-clock seconds for the program and all its tests.")
    ] = 5.0,
    entry_point: Annotated[
        str | None,
        typer.Option(
            "--entry-point",
            show_default=False,
            help="Function bound to `candidate` for a check(candidate) test file "
            "(default: the program's only top-level function).",
        ),
    ] = None,
    memory_mb: Annotated[
        int, typer.Option("--memory-mb", help="Address space the program may add, MiB.")
    ] = 512,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Interpreter step budget (statements and loop iterations).")
    ] = DEFAULT_MAX_STEPS,
    require_isolation: Annotated[
        bool,
        typer.Option(
            "--require-isolation",
            help="Refuse to run unless every OS isolation layer is active (see docs/sandbox.md).",
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run one program (and its tests) under the sandbox; print status, test counts and output.

    Status is one of: ok (the program ran; see the tests), failed (the program raised),
    refused (the sandbox policy stopped it; the reason says what), timeout (wall-clock
    deadline or step budget), resource_limit (memory), error (a sandbox fault).
    Exit code 0 when the status is ok and every test passed, 2 otherwise. Each program runs in
    its own process, confined by every OS layer the kernel allows (`--format json` lists them).
    """
    from ..sandbox.files import run_file  # the pool (fork, seccomp, Landlock) loads when a program runs

    done = run_file(
        program,
        tests,
        timeout=timeout,
        entry_point=entry_point,
        memory_mb=memory_mb,
        max_steps=max_steps,
        require_isolation=require_isolation,
    )
    if fmt is Format.json:
        sys.stdout.write(json_text(as_json(done)))
    elif fmt is Format.csv:
        sys.stdout.write(as_csv(done))
    else:
        sys.stdout.write(as_text(done))
    res = done.result
    if not (res.status == "ok" and res.passed == res.total):
        raise typer.Exit(EXIT_NOT_ALL_PASSED)


def as_json(done: "FileRun") -> dict:
    data = done.result.to_dict()
    data["program"] = str(done.program)
    data["isolation"] = done.isolation
    for unit, source in zip(data["units"], done.units, strict=False):
        unit["test"] = source
    return data


def as_csv(done: "FileRun") -> str:
    """One row per test unit (the run's status and reason repeated on each)."""
    res = done.result
    rows = [
        {
            "unit": i,
            "status": u.status,
            "message": u.message,
            "test": src,
            "run_status": res.status,
            "run_reason": res.reason,
        }
        for i, (u, src) in enumerate(zip(res.units, done.units, strict=False), 1)
    ]
    names = ["unit", "status", "message", "test", "run_status", "run_reason"]
    schema = pa.schema([("unit", pa.int64()), *((n, pa.string()) for n in names[1:])])
    return to_csv(pa.Table.from_pylist(rows, schema=schema))  # the one CSV dialect (render.py)


def as_text(done: "FileRun") -> str:
    """Plain text for people: status, reason, counts, one line per unit, then the output."""
    res = done.result
    lines = [f"status: {res.status}"]
    if res.reason:
        lines.append(f"reason: {res.reason}")
    if done.isolation is not None and not done.isolation.get("all_active"):
        lines.append("isolation: inactive layers: " + ", ".join(done.isolation.get("inactive", {})))
    if res.total:
        lines.append(
            f"tests: {res.passed}/{res.total} passed, {res.failed} failed, {res.errored} errored, "
            f"{res.timed_out} timed out"
        )
        width = len(str(res.total))
        for i, (unit, source) in enumerate(zip(res.units, done.units, strict=False), 1):
            first = source.strip().splitlines()[0] if source.strip() else ""
            more = " ..." if len(source.strip().splitlines()) > 1 else ""
            lines.append(f"  {i:>{width}} {unit.status:<7} {first}{more}")
            if unit.message:
                lines.append(f"  {'':>{width}}         {unit.message}")
    if res.stdout:
        lines.append("output:")
        lines.extend("  " + line for line in res.stdout.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"
