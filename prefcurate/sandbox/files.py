"""Run a program file (and a test file) under the sandbox: what `prefcurate sandbox run` does."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .policy import DEFAULT_MAX_STEPS
from .pool import SandboxPool, validate_limits
from .result import RunResult


@dataclass(frozen=True)
class FileRun:
    """A run of a program file: the result, the source of each test unit (for display), and the
    isolation layers that were active for it."""

    result: RunResult
    units: tuple[str, ...]
    program: Path
    isolation: dict | None = None


def _read(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path, field=field) from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, field=field
        ) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), path=path, field=field) from None


def split_test_source(
    source: str, entry_point: str | None = None, where: str = "<tests>", program: str = ""
) -> tuple[str, tuple[str, ...]]:
    """(setup, units) of a test file, split as `build code` splits tests (prefcurate.sandbox.codetests).

    A HumanEval-style file (`def check(candidate): ...`) is split per assert of `check`, with
    `entry_point` bound to `candidate` (default: the program's only top-level function).
    Otherwise every top-level statement holding an assert is a unit; statements without one
    run with the next unit."""
    from . import codetests  # here, not at import time: codetests imports the sandbox

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(f"test file does not parse: {exc.msg} (line {exc.lineno})", path=where) from None
    except (RecursionError, MemoryError) as exc:
        raise InputError(
            f"test file does not parse: {type(exc).__name__} (nested too deeply)", path=where
        ) from None
    if any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
        entry_point = entry_point or _only_function(program)
        if not entry_point:
            raise InputError(
                "the test file defines check(candidate): give --entry-point (the program does not define "
                "exactly one top-level function)",
                path=where,
            )
        suite = codetests.split_check(source, entry_point, where=where)
    else:
        suite = codetests.split_asserts([source], where=where)
    return suite.setup, suite.units


def _only_function(program: str) -> str | None:
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # the sandbox reports why
        return None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names[0] if len(names) == 1 else None


def run_file(
    program: Path,
    tests: Path | None = None,
    *,
    timeout: float = 5.0,
    entry_point: str | None = None,
    memory_mb: int = 512,
    max_steps: int = DEFAULT_MAX_STEPS,
    require_isolation: bool = False,
) -> FileRun:
    """Run `program` (then the units of `tests`) in a one-worker sandbox pool."""
    validate_limits(timeout, memory_mb, max_steps)
    source = _read(program, "program")
    setup: str = ""
    units: tuple[str, ...] = ()
    if tests is not None:
        setup, units = split_test_source(_read(tests, "tests"), entry_point, where=str(tests), program=source)
    with SandboxPool(
        workers=1,
        timeout=timeout,
        memory_mb=memory_mb,
        max_steps=max_steps,
        require_isolation=require_isolation,
    ) as pool:
        result = pool.run(source, list(units), setup=setup)
        iso = pool.isolation
    return FileRun(result=result, units=tuple(units), program=program, isolation=iso)
