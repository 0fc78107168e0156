"""`prefcurate sandbox run`: every status, test counts, captured output, the three formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.sandbox.isolation import LAYERS

runner = CliRunner()

PROGRAM = 'def add(a, b):\n    print("adding", a, b)\n    return a + b\n'
CHECK = (
    "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    '    assert candidate(2, 2) == 5, "two and two"\n'
    '    assert candidate("a", 1) == "a1"\n'
)


def sandbox(tmp_path: Path, program: str, tests: str | None = None, *args: str):
    prog = tmp_path / "prog.py"
    prog.write_text(program)
    argv = ["sandbox", "run", str(prog)]
    if tests is not None:
        (tmp_path / "tests.py").write_text(tests)
        argv += ["--tests", str(tmp_path / "tests.py")]
    return runner.invoke(app, [*argv, *args], catch_exceptions=False)


def test_check_file_units_counts_and_output(tmp_path: Path) -> None:
    res = sandbox(tmp_path, PROGRAM, CHECK)
    assert res.exit_code == 2
    assert res.stdout == (
        "status: ok\n"
        "tests: 1/3 passed, 1 failed, 1 errored, 0 timed out\n"
        "  1 passed  assert candidate(1, 2) == 3\n"
        '  2 failed  assert candidate(2, 2) == 5, "two and two"\n'
        "            AssertionError: two and two\n"
        '  3 errored assert candidate("a", 1) == "a1"\n'
        '            TypeError: can only concatenate str (not "int") to str\n'
        "output:\n"
        "  adding 1 2\n"
        "  adding 2 2\n"
        "  adding a 1\n"
    )


def test_all_passing_exits_zero_and_asserts_file_with_setup(tmp_path: Path) -> None:
    tests = "import math\nassert add(1, 2) == 3\nx = add(0.1, 0.2)\nassert math.isclose(x, 0.3)\n"
    res = sandbox(tmp_path, PROGRAM, tests)
    assert res.exit_code == 0
    assert res.stdout == (
        "status: ok\n"
        "tests: 2/2 passed, 0 failed, 0 errored, 0 timed out\n"
        "  1 passed  import math ...\n"
        "  2 passed  x = add(0.1, 0.2) ...\n"
        "output:\n"
        "  adding 1 2\n"
        "  adding 0.1 0.2\n"
    )


def test_program_without_tests(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "print('hi')\nprint(sorted({3, 1, 2}))\n")
    assert (res.exit_code, res.stdout) == (0, "status: ok\noutput:\n  hi\n  [1, 2, 3]\n")


def test_failed_program_leaves_units_not_run(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "print('start')\nx = 1 / 0\n", "assert x == 1\n")
    assert res.exit_code == 2
    assert res.stdout == (
        "status: failed\n"
        "reason: ZeroDivisionError: division by zero\n"
        "tests: 0/1 passed, 0 failed, 1 errored, 0 timed out\n"
        "  1 errored assert x == 1\n"
        "            not run: ZeroDivisionError: division by zero\n"
        "output:\n"
        "  start\n"
    )


def test_refused_with_reason(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "import os\nos.system('true')\n")
    assert res.exit_code == 2
    assert res.stdout.startswith(
        "status: refused\nreason: refused: import of module 'os' is not allowed in the sandbox (allowed: abc, array,"
    )
    res = sandbox(tmp_path, "x = ().__class__\n")
    assert (
        res.stdout
        == "status: refused\nreason: refused: access to attribute '__class__' is not allowed in the sandbox (line 1)\n"
    )


def test_system_exit_is_a_failure(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "import sys\nprint('PASS')\nsys.exit(0)\n", "assert True\n")
    assert res.exit_code == 2
    assert res.stdout == (
        "status: failed\nreason: SystemExit: 0\n"
        "tests: 0/1 passed, 0 failed, 1 errored, 0 timed out\n"
        "  1 errored assert True\n            not run: SystemExit: 0\n"
        "output:\n  PASS\n"
    )


def test_timeout_and_step_budget(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "while True:\n    pass\n", "assert True\n", "--timeout", "0.5")
    assert res.exit_code == 2
    assert res.stdout == (
        "status: timeout\nreason: wall-clock deadline of 0.5s exceeded\n"
        "tests: 0/1 passed, 0 failed, 0 errored, 1 timed out\n"
        "  1 timeout assert True\n            not run: wall-clock deadline of 0.5s exceeded\n"
    )
    res = sandbox(tmp_path, "n = 0\nwhile True:\n    n += 1\n", None, "--max-steps", "1000")
    assert res.stdout == "status: timeout\nreason: step budget of 1,000 exceeded\n"


def test_resource_limit(tmp_path: Path) -> None:
    res = sandbox(tmp_path, "x = [0] * 10**10\n", None, "--memory-mb", "128")
    assert (res.exit_code, res.stdout) == (
        2,
        "status: resource_limit\nreason: MemoryError: the program exceeded its memory limit\n",
    )


def test_json_format(tmp_path: Path) -> None:
    res = sandbox(tmp_path, PROGRAM, CHECK, "--format", "json")
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data.pop("duration_s") > 0
    iso = data.pop("isolation")
    assert set(iso["layers"]) == set(LAYERS) and iso["layers"]["fork_per_job"] is True
    assert iso["all_active"] == all(iso["layers"].values())
    assert set(iso["inactive"]) == {k for k, on in iso["layers"].items() if not on}
    assert data == {
        "status": "ok",
        "reason": "",
        "passed": 1,
        "failed": 1,
        "errored": 1,
        "timed_out": 0,
        "total": 3,
        "stdout": "adding 1 2\nadding 2 2\nadding a 1\n",
        "program": str(tmp_path / "prog.py"),
        "units": [
            {"status": "passed", "message": "", "test": "assert candidate(1, 2) == 3"},
            {
                "status": "failed",
                "message": "AssertionError: two and two",
                "test": 'assert candidate(2, 2) == 5, "two and two"',
            },
            {
                "status": "errored",
                "message": 'TypeError: can only concatenate str (not "int") to str',
                "test": 'assert candidate("a", 1) == "a1"',
            },
        ],
    }


def test_csv_format(tmp_path: Path) -> None:
    res = sandbox(tmp_path, PROGRAM, "assert add(1, 1) == 2\nassert add(1, 1) == 3\n", "-f", "csv")
    assert res.stdout == (
        "unit,status,message,test,run_status,run_reason\n"
        '1,passed,,"assert add(1, 1) == 2",ok,\n'
        '2,failed,"AssertionError: assert add(1, 1) == 3","assert add(1, 1) == 3",ok,\n'
    )


def test_always_equal_object_does_not_pass(tmp_path: Path) -> None:
    program = "class A:\n    def __eq__(self, other):\n        return True\ndef f():\n    return A()\n"
    res = sandbox(tmp_path, program, "assert f() == 1\n")
    assert res.exit_code == 2
    assert res.stdout == (
        "status: ok\ntests: 0/1 passed, 1 failed, 0 errored, 0 timed out\n"
        "  1 failed  assert f() == 1\n"
        "            AssertionError: test operand is not plain data (a A object): the sandbox decides tests on builtin values only\n"
    )


def test_input_errors_are_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sandbox", "run", str(tmp_path / "missing.py")])
    assert res.exit_code == 1
    assert res.stderr == f"Error: {tmp_path / 'missing.py'}: field 'program': file not found\n"
    res = sandbox(tmp_path, "def a(): pass\ndef b(): pass\n", CHECK)
    assert res.exit_code == 1
    assert res.stderr == (
        f"Error: {tmp_path / 'tests.py'}: the test file defines check(candidate): give --entry-point "
        "(the program does not define exactly one top-level function)\n"
    )
    res = sandbox(tmp_path, "def a(): pass\ndef b(x, y): return x + y\n", CHECK, "--entry-point", "b")
    assert res.stdout.startswith("status: ok\ntests: 1/3 passed")
    res = sandbox(tmp_path, PROGRAM, "assert (\n")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: {tmp_path / 'tests.py'}: test file does not parse:")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timeout", "inf", "--timeout must be a finite number, got inf"),
        ("--timeout", "nan", "--timeout must be a finite number, got nan"),
        ("--timeout", "-1", "--timeout must be positive, got -1.0"),
        ("--memory-mb", "-100000", "--memory-mb must be positive, got -100000"),
        ("--memory-mb", "0", "--memory-mb must be positive, got 0"),
        ("--max-steps", "0", "--max-steps must be positive, got 0"),
    ],
)
def test_limits_are_validated_before_anything_runs(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    marker = tmp_path / "ran"
    res = runner.invoke(app, ["sandbox", "run", str(tmp_path / "missing.py"), option, value])
    # One line, no traceback, and checked before the program file is even read.
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: {message}"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "program",
    ["x = " + "1+" * 200_000 + "1\n", "x = " + "-" * 100_000 + "1\n", "x = ((((((((((((" * 30_000 + "\n"],
    ids=["400k_additions", "100k_unary_minus", "deep_parens"],
)
def test_unparseable_programs_fail_with_a_reason(tmp_path: Path, program: str) -> None:
    res = sandbox(tmp_path, program, None, "--format", "json")
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data["status"] == "failed"
    assert data["reason"]


def test_require_isolation_runs_only_when_every_layer_is_active(tmp_path: Path) -> None:
    plain = json.loads(sandbox(tmp_path, "print('x')\n", None, "--format", "json").stdout)["isolation"]
    res = sandbox(tmp_path, "print('x')\n", None, "--format", "json", "--require-isolation")
    if not plain["all_active"]:  # e.g. a container without user namespaces: refused, on one line
        assert res.exit_code == 1 and res.output.count("\n") == 1
        assert "--require-isolation: sandbox isolation layers not active" in res.output
        return
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["isolation"]["all_active"] is True
