"""Escape families that the process layer answers (issue 11: 2, 4, 8, 10), through the real
interpreter and the real commands, judged by effects: a later job's result, a build that
finishes, a deadline that holds, a parent that stays bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefcurate.build.code import CodeBuildOptions, build_code
from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox.codetests import build_program
from prefcurate.store import Store

# A probe whose result depends on process-wide state a previous program could have changed.
PROBE = (
    "import decimal, re, collections, collections.abc, copy, typing, math\n"
    "def probe():\n"
    "    return (decimal.getcontext().prec, isinstance({}, collections.abc.Sequence),\n"
    "            collections.Counter('aab').most_common(1), math.isclose(1.0, 2.0), abs(-3),\n"
    "            re.sub('a', 'b', 'aa'), copy.deepcopy([1, [2]]))\n"
)
PROBE_TEST = "assert probe() == (28, False, [('a', 2)], False, 3, 'bb', [1, [2]])"

HOSTILE = {
    "decimal_context_with_finalizer": (
        "import decimal\n"
        "class C(decimal.Context):\n"
        "    def __del__(self):\n"
        "        decimal.getcontext().prec = 2\n"
        "decimal.setcontext(C(prec=3))\n"
        "decimal.getcontext().prec = 5\n"
    ),
    "abc_registration": "import collections.abc\ncollections.abc.Sequence.register(dict)\n",
    "host_class_writes": (
        "import collections, math\n"
        "collections.Counter.most_common = lambda self, n=None: []\n"
        "type(math).isclose = property(lambda self: lambda *a, **k: True)\n"
        "math.isclose = lambda *a, **k: True\n"
    ),
    "cache_finalizers": (
        "import re, typing\n"
        "class S(str):\n"
        "    def __del__(self):\n"
        "        re.sub = lambda *a, **k: 'forged'\n"
        "re.compile(S('a+'))\n"
        "typing.List[S]\n"
    ),
    "builtins_patch": "import builtins\nbuiltins.abs = lambda x: 0\nabs = lambda x: 0\n",
    "copy_protocol": (
        "import copy\n"
        "class D:\n"
        "    def __deepcopy__(self, memo):\n"
        "        copy.deepcopy = lambda *a, **k: 'forged'\n"
        "        return self\n"
        "copy.deepcopy(D())\n"
    ),
}


@pytest.fixture(scope="module")
def one() -> SandboxPool:
    # One slot: every job of this module runs right after the previous one, as on one worker.
    with SandboxPool(workers=1, timeout=5.0) as p:
        yield p


def test_probe_passes_in_a_fresh_pool(one: SandboxPool) -> None:
    assert one.run(PROBE, [PROBE_TEST]).passed == 1


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_state_of_one_job_never_reaches_the_next(one: SandboxPool, name: str) -> None:
    # Family 4 (and the persistence half of family 3): whatever the hostile program managed,
    # refused or not, the next program on the same pool sees a fresh process.
    one.run(HOSTILE[name], ["assert True"])
    after = one.run(PROBE, [PROBE_TEST])
    assert (after.status, after.passed) == ("ok", 1), after


def test_a_later_job_is_answered_by_its_own_process(one: SandboxPool) -> None:
    # Family 2: a program cannot keep answering later jobs (its process ends with its job).
    one.run("def f():\n    return 1\n", ["assert f() == 1"])
    later = one.run("def g():\n    return 2\n", ["assert g() == 3"])
    assert (later.status, later.units[0].status) == ("ok", "failed")


PATHOLOGICAL = {
    "400k_additions": "def add(a, b):\n    return " + "1+" * 200_000 + "1\n",
    "100k_unary_minus": "def add(a, b):\n    return " + "-" * 100_000 + "1\n",
    "null_byte": "def add(a, b):\n    return a + b\x00\n",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_unparseable_samples_are_failed_samples(one: SandboxPool, name: str) -> None:
    # Family 8, in the parent: the prompt-prefix re-indentation parses, and must not crash.
    program = build_program(PATHOLOGICAL[name], prefix="def add(a, b):\n    '''Add.'''\n")
    res = one.run(program, ["assert add(1, 2) == 3"])
    assert (res.status, res.passed) == ("failed", 0) and res.reason


def test_build_code_finishes_with_unparseable_samples(tmp_path: Path) -> None:
    # Family 8, end to end: the build goes on, those samples count as failed, the good one wins.
    rows = [
        {
            "task_id": "toy/add",
            "prompt": "Write add(a, b).",
            "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
            "completions": ["def add(a, b):\n    return a + b\n", *PATHOLOGICAL.values()],
        }
    ]
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = build_code(Store(tmp_path / "store"), CodeBuildOptions(path=str(path), timeout=5.0, workers=1))
    assert result.counts["run_status"] == {"failed": 3, "ok": 1}
    (pair,) = result.ref.read().to_pylist()
    assert (pair["chosen_score"], pair["rejected_score"]) == (2.0, 0.0)
    iso = result.ref.manifest["sandbox_isolation"]
    assert iso is not None and iso["layers"]["fork_per_job"] is True


def test_the_deadline_covers_sending_the_program(one: SandboxPool) -> None:
    # Family 10: an 80 MB program with a 1 s timeout ends at the deadline, whatever phase it is in.
    # It also never finishes running, so no machine is fast enough to end it any other way.
    program = "x = 1\n" + "#" * (80 << 20) + "\nwhile True:\n    pass\n"
    res = one.run(program, ["assert x == 1"], timeout=1.0)
    assert (res.status, res.reason) == ("timeout", "wall-clock deadline of 1s exceeded")
    assert one.run("y = 2\n", ["assert y == 2"]).passed == 1


def test_huge_test_values_fail_instead_of_flooding_the_parent(one: SandboxPool) -> None:
    # Family 10: values a candidate returns cross to the parent only up to a bound.
    res = one.run(
        "def f():\n    return 'x' * 3_000_000\n", ["assert f() == 'x' * 3_000_000", "assert 1 == 1"]
    )
    assert [(u.status, u.message) for u in res.units] == [
        ("failed", "test values too large to check"),
        ("passed", ""),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": float("inf")}, "--timeout must be a finite number, got inf"),
        ({"memory_mb": -100000}, "--memory-mb must be positive, got -100000"),
        ({"workers": 0}, "--workers must be a positive integer, got 0"),
        ({"max_steps": float("nan")}, "--max-steps must be a finite number, got nan"),
    ],
)
def test_limits_are_validated_by_the_library_too(kwargs: dict, message: str) -> None:
    from prefcurate.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        SandboxPool(**kwargs)
    assert str(err.value) == message


def test_what_is_loaded_lazily_works_in_a_confined_child(one: SandboxPool) -> None:
    # A child can open no file: codecs and `strptime`, which CPython imports on first use, were
    # imported by the zygote.
    program = (
        "import datetime, hashlib, unicodedata\n"
        "out = ('é'.encode('cp1252'), 'a'.encode('utf-16-le'), 'x'.encode('idna'), b'\\x82'.decode('cp437'),\n"
        "       datetime.datetime.strptime('2020-01-02', '%Y-%m-%d').year, unicodedata.name('a'),\n"
        "       hashlib.sha256(b'a').hexdigest()[:6])\n"
    )
    res = one.run(
        program, ["assert out == (b'\\xe9', b'a\\x00', b'x', 'é', 2020, 'LATIN SMALL LETTER A', 'ca9781')"]
    )
    assert (res.status, res.passed) == ("ok", 1), res
