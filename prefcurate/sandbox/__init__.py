"""Run untrusted Python safely: a tree-walking interpreter over `ast.parse` output with its own
policy (allowed modules and builtins only, no dunder access, step budget, recursion limit),
each program in its own process forked from a warm zygote and confined by the OS (rlimits,
no_new_privs, Landlock, seccomp, a network namespace), with a parent-enforced deadline.

    with SandboxPool(workers=4, timeout=5) as pool:
        result = pool.run(program, ["assert f(1) == 2", "assert f(2) == 3"])
        result.status, result.passed, result.total

See docs/sandbox.md for the threat model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .result import RunResult, UnitResult

if TYPE_CHECKING:
    from .pool import SandboxPool


def __getattr__(name: str) -> Any:
    # The pool (processes, seccomp, Landlock) loads on first use: `import prefcurate.sandbox.policy` for
    # a default, as the CLI does at start-up, does not pull it in (tests/test_startup.py).
    if name == "SandboxPool":
        from .pool import SandboxPool

        globals()["SandboxPool"] = SandboxPool  # later reads are plain lookups
        return SandboxPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_program(program: str, tests: Sequence[str] = (), **kw: Any) -> RunResult:
    """One-shot convenience: start a one-slot pool, run, shut it down (slow: prefer a pool)."""
    from .pool import SandboxPool

    timeout = kw.pop("timeout", 5.0)
    kw.setdefault("workers", 1)
    with SandboxPool(timeout=timeout, **kw) as pool:
        return pool.run(program, tests)


__all__ = ["RunResult", "SandboxPool", "UnitResult", "run_program"]
