"""Run a program file (and a test file) under the sandbox: what `prefcurate sandbox run` does."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .pool import SandboxPool
from .result import RunResult


@dataclass(frozen=True)
class FileRun:
    """A run of a program file: the result, plus the source of each test unit (for display)."""

    result: RunResult
    units: tuple[str, ...]
    program: Path


def _read(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path, field=field) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, field=field) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), path=path, field=field) from None


def split_test_source(source: str, entry_point: str | None = None, where: str = "<tests>") -> tuple[str, tuple[str, ...]]:
    """(setup, units) of a test file: HumanEval style `def check(candidate)` files are split per
    assert of `check` (with `--entry-point` bound to `candidate`); otherwise every top-level
    statement holding an assert is a unit, other statements run before the next unit."""
    try:
        from .. import codetests
    except ImportError:  # the test-splitting module is optional for the sandbox
        codetests = None  # type: ignore[assignment]
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(f"test file does not parse: {exc.msg} (line {exc.lineno})", path=where) from None
    has_check = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
    if codetests is not None:
        if has_check and entry_point:
            suite = codetests.split_check(source, entry_point, where=where)
        else:
            suite = codetests.split_asserts([source], where=where)
        return suite.setup, suite.units
    lines = source.splitlines()
    units = [
        "\n".join(lines[n.lineno - 1 : (n.end_lineno or n.lineno)]) if n.col_offset == 0 else ast.unparse(n)
        for n in tree.body
    ]
    return "", tuple(units)


def run_file(
    program: Path,
    tests: Path | None = None,
    *,
    timeout: float = 5.0,
    entry_point: str | None = None,
    memory_mb: int = 512,
    max_steps: int = 10_000_000,
) -> FileRun:
    """Run `program` (then the units of `tests`) in a one-worker sandbox pool."""
    source = _read(program, "program")
    setup, units = ("", ())
    if tests is not None:
        setup, units = split_test_source(_read(tests, "tests"), entry_point, where=str(tests))
    if setup:
        source = source + ("" if source.endswith("\n") else "\n") + setup + "\n"
    with SandboxPool(workers=1, timeout=timeout, memory_mb=memory_mb, max_steps=max_steps) as pool:
        result = pool.run(source, list(units))
    return FileRun(result=result, units=tuple(units), program=program)
