"""The worker pool (reuse, replacement, ordering, determinism) and the plain-data boundary."""

from __future__ import annotations

import collections
import decimal
import fractions
import os
import signal
import subprocess
import sys

import pytest

from prefcurate.sandbox import SandboxPool, plain, run_program
from prefcurate.sandbox.judge import JobState, judge_unit
from prefcurate.sandbox.result import RunResult, UnitResult


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, timeout=3.0) as p:
        yield p


def test_units_share_the_namespace_and_stream_in_order(pool: SandboxPool) -> None:
    res = pool.run(
        "xs = []\n",
        [
            "xs.append(1)\nassert xs == [1]",
            "assert xs == [1, 2]",
            "xs.append(2)\nprint(xs)\nassert len(xs) == 2",
        ],
    )
    assert [u.status for u in res.units] == ["passed", "failed", "passed"]
    assert res.units[1] == UnitResult("failed", "AssertionError: assert xs == [1, 2]")
    assert (res.stdout, res.passed, res.failed, res.total) == ("[1, 2]\n", 2, 1, 3)


def test_step_budget_inside_a_unit_stops_the_rest() -> None:
    with SandboxPool(workers=1, timeout=5.0, max_steps=50_000) as small:
        res = small.run(
            "def spin():\n    while True:\n        pass\n", ["assert 1 == 1", "spin()", "assert 2 == 2"]
        )
    assert (res.status, res.reason) == ("timeout", "step budget of 50,000 exceeded")
    assert res.units == (
        UnitResult("passed"),
        UnitResult("timeout", "step budget of 50,000 exceeded"),
        UnitResult("timeout", "not run: step budget of 50,000 exceeded"),
    )


def test_map_keeps_input_order_and_matches_run(pool: SandboxPool) -> None:
    jobs = [
        (f"def f():\n    return {i}\n", [f"assert f() == {i}", f"assert f() == {i + 1}"]) for i in range(40)
    ]
    jobs[7] = ("while True:\n    pass\n", ["assert True"])
    results = list(pool.map(jobs, timeout=1.0))
    assert [r.passed for r in results] == [0 if i == 7 else 1 for i in range(40)]
    assert results[7].status == "timeout"
    assert pool.run(*jobs[3]).units == results[3].units


def test_killed_zygote_is_replaced() -> None:
    with SandboxPool(workers=1, timeout=2.0) as one:
        assert one.run("x = 1").status == "ok"
        old = one._zygote.proc
        os.kill(old.pid, signal.SIGKILL)
        old.wait()
        res = one.run("print('fresh')")
        assert (res.status, res.stdout) == ("ok", "fresh\n")
        assert one._zygote.proc.pid != old.pid


def test_closed_pool_refuses_work() -> None:
    p = SandboxPool(workers=1)
    p.start()
    proc = p._zygote.proc
    p.close()
    assert proc.poll() is not None
    with pytest.raises(RuntimeError, match="SandboxPool is closed"):
        p.run("x = 1")


def test_run_program_one_shot() -> None:
    res = run_program("def sq(x):\n    return x * x\n", ["assert sq(3) == 9"], timeout=3)
    assert (res.status, res.passed, res.total) == ("ok", 1, 1)


def test_hash_seed_and_random_are_fixed_across_worker_processes() -> None:
    src = "import random\nprint(hash('abc'), list(set('sandbox determinism'.split())), random.random())\n"
    outs = []
    for _ in range(2):
        with SandboxPool(workers=1) as one:
            outs.append(one.run(src).stdout)
    expected_hash = subprocess.run(
        [sys.executable, "-c", "print(hash('abc'))"],
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "0"},
        check=True,
    ).stdout.strip()
    assert outs[0] == outs[1]
    assert outs[0].split()[0] == expected_hash


def test_result_counts_and_dict() -> None:
    res = RunResult(
        "ok",
        "",
        (UnitResult("passed"), UnitResult("failed", "m"), UnitResult("errored"), UnitResult("timeout")),
        "out",
        0.1234567,
    )
    assert (res.passed, res.failed, res.errored, res.timed_out, res.total) == (1, 1, 1, 1, 4)
    assert res.to_dict() == {
        "status": "ok",
        "reason": "",
        "passed": 1,
        "failed": 1,
        "errored": 1,
        "timed_out": 1,
        "total": 4,
        "duration_s": 0.123457,
        "stdout": "out",
        "units": [
            {"status": "passed", "message": ""},
            {"status": "failed", "message": "m"},
            {"status": "errored", "message": ""},
            {"status": "timeout", "message": ""},
        ],
    }


# ---------------------------------------------------------------------------------------------
# Plain data: what crosses from the worker to the parent


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -5,
        2**80,
        -(2**70),
        1.5,
        float("inf"),
        -0.0,
        1 + 2j,
        "s",
        b"\x00\xff",
        [1, [2]],
        (1, "a"),
        {1: "x", "k": [1.0]},
        {1, 2},
        frozenset({"a"}),
        collections.Counter("aab"),
        collections.OrderedDict(a=1),
        collections.deque([1, 2]),
        fractions.Fraction(3, 7),
        decimal.Decimal("1.10"),
        collections.defaultdict(int, {"a": 1}),
    ],
)
def test_plain_round_trip(value: object) -> None:
    back = plain.decode(plain.encode(value))
    assert back == value and type(back) is type(value)


def test_plain_nan_round_trips() -> None:
    back = plain.decode(plain.encode(float("nan")))
    assert back != back


class _Sub(int):
    pass


@pytest.mark.parametrize(
    "value, why",
    [
        (_Sub(1), "a _Sub object"),
        (object(), "a object object"),
        (print, "a builtin_function_or_method object"),
        ([1, {2: {3: bytearray()}}], "a bytearray object"),
    ],
)
def test_not_plain(value: object, why: str) -> None:
    with pytest.raises(plain.NotPlain, match=why):
        plain.encode(value)


def test_cycles_and_size_are_not_plain() -> None:
    cyc: list = []
    cyc.append(cyc)
    with pytest.raises(plain.NotPlain, match="nested too deeply"):
        plain.encode(cyc)
    with pytest.raises(plain.NotPlain, match="too large"):
        plain.encode(list(range(plain.MAX_NODES + 1)))


def test_evaluate_trace() -> None:
    assert plain.evaluate_trace(["cmp", [1, 2, 3], ["Lt", "Lt"]]) is True
    assert plain.evaluate_trace(["cmp", [1, 2, 2], ["Lt", "Lt"]]) is False
    assert plain.evaluate_trace(["cmp", [None, None], [["id", True]]]) is True
    assert plain.evaluate_trace(["not", ["val", ["L", []]]]) is True
    assert plain.evaluate_trace(["or", [["val", 0], ["val", 1]]]) is True
    assert plain.evaluate_trace(["cmp", [1, ["L", [1, 2]]], ["In"]]) is True
    with pytest.raises(ValueError, match="inconsistent short-circuit"):
        plain.evaluate_trace(["or", [["val", 1], ["val", 1]]])
    with pytest.raises(ValueError, match="malformed comparison"):
        plain.evaluate_trace(["cmp", [1], ["Eq"]])
    with pytest.raises(ValueError, match="unknown plain tag"):
        plain.decode(["ZZ", 1])


# -- the parent's judgement of a job's frames (no processes involved) -------------------------


def _frames(n_tests: int, *frames: dict) -> RunResult | None:
    job = JobState(["assert True"] * n_tests, 5.0)
    result = None
    for frame in frames:
        result = job.take({"out": "", **frame})
        if result is not None:
            return result
    return result


PROG_OK = {"t": "prog", "status": "ok", "reason": ""}


def _unit(i: int, status: str = "passed") -> dict:
    return {"t": "unit", "i": i, "status": status, "asserts": []}


def test_judge_accepts_exactly_the_units_it_sent() -> None:
    res = _frames(2, PROG_OK, _unit(0), _unit(1, "failed"), {"t": "done"})
    assert res is not None and (res.status, [u.status for u in res.units]) == ("ok", ["passed", "failed"])


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        ([_unit(0)], "unit 0 out of order"),  # a unit before the program's outcome
        ([PROG_OK, _unit(1)], "unit 1 out of order"),
        ([PROG_OK, _unit(0), _unit(0)], "unit 0 out of order"),
        ([PROG_OK, _unit(0), _unit(1), _unit(2)], "a result for unit 2, which was never sent"),
        ([PROG_OK, _unit(0), {"t": "done"}], "done after 1 of 2 units"),
        ([PROG_OK, PROG_OK], "unexpected prog frame 'ok'"),
        ([PROG_OK, {"t": "prog", "status": "passed"}], "unexpected prog frame 'passed'"),
        ([PROG_OK, _unit(0, "timeout"), {"t": "done"}], "done after 1 of 2 units"),
        ([PROG_OK, _unit(0, "timeout"), {"t": "prog", "status": "failed"}], "unexpected prog frame 'failed'"),
        ([{"t": "hello"}], "unexpected frame 'hello'"),
        ([{"t": "prog", "status": "ok", "out": 5}], "output is not text"),
        ([PROG_OK, {"t": "unit", "i": "0", "status": "passed"}], "unit '0' out of order"),
    ],
)
def test_judge_fails_any_other_sequence(frames: list[dict], why: str) -> None:
    res = _frames(2, *frames)
    assert res is not None and res.status == "error", res
    assert res.reason == f"sandbox protocol violation: {why}"
    assert [u.status for u in res.units] == ["errored", "errored"]


def test_judge_a_budget_stop_then_its_terminal_frame() -> None:
    res = _frames(
        3, PROG_OK, _unit(0), _unit(1, "timeout"), {"t": "prog", "status": "timeout", "reason": "r"}
    )
    assert res is not None and res.status == "timeout"
    assert [u.status for u in res.units] == ["passed", "timeout", "timeout"]


def test_a_passed_unit_needs_its_traces() -> None:
    assert judge_unit({"status": "passed"}).status == "failed"
    assert judge_unit({"status": "passed", "asserts": []}).status == "passed"
