"""Adversarial suite: escape attempts against both layers of the sandbox.

Every attempt tries to have an effect outside the sandbox (create a marker file, read
/etc/passwd, reach a host module) and must fail with the stated status; afterwards the pool
still runs ordinary programs and the host process is untouched. Resource attacks use short
deadlines so the whole file stays fast.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox.result import RunResult

OK_PROGRAM = "def add(a, b):\n    return a + b\n"
OK_TESTS = ["assert add(1, 2) == 3", "assert add('a', 'b') == 'ab'"]


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, timeout=2.0) as p:
        yield p


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    # World-writable folder: even a worker running as `nobody` could create the file if it escaped.
    os.chmod(tmp_path, 0o777)
    return tmp_path / "escaped"


def _attack(
    pool: SandboxPool, source: str, marker: Path, tests: list[str] = (), timeout: float | None = None
) -> RunResult:
    res = pool.run(source.replace("MARKER", str(marker)), list(tests), timeout=timeout)
    assert not marker.exists(), "the program created a file outside the sandbox"
    assert "root:" not in res.stdout and "root:" not in res.reason, "the program read /etc/passwd"
    healthy = pool.run(OK_PROGRAM, OK_TESTS)
    assert (healthy.status, healthy.passed, healthy.total) == ("ok", 2, 2), "the pool is unhealthy afterwards"
    return res


def _refused(res: RunResult, what: str) -> None:
    assert res.status == "refused", res
    assert what in res.reason, res.reason


# ---------------------------------------------------------------------------------------------
# Layer 1: the interpreter's policy

OBJECT_GRAPH = {
    "class_base_subclasses": ("().__class__.__base__.__subclasses__()", "'__class__'"),
    "mro_walk": ("type(()).mro()[-1].__subclasses__()", "'__subclasses__'"),
    "object_subclasses": ("object.__subclasses__()", "'__subclasses__'"),
    "function_globals": ("(lambda: 0).__globals__['__builtins__']", "'__globals__'"),
    "builtin_self": ("print.__self__", "'__self__'"),
    "method_func_globals": ("[].append.__self__", "'__self__'"),
    "dict_of_type": ("int.__dict__", "'__dict__'"),
    "getattribute": ("object.__getattribute__(1, '__class__')", "'__getattribute__'"),
    "reduce_ex": ("(1).__reduce_ex__(2)", "'__reduce_ex__'"),
    "code_object": ("(lambda: 0).__code__", "'__code__'"),
    "closure_cells": ("(lambda: print).__closure__", "'__closure__'"),
    "operator_dunder": ("list.__add__([1], [2])", "'__add__'"),
    "init_globals": ("(lambda: 0).__init__.__globals__", "'__globals__'"),
    "type_call_dunder": ("type.__call__", "'__call__'"),
    "module_dict": ("import math\nmath.__dict__", "'__dict__'"),
}


@pytest.mark.parametrize("name", sorted(OBJECT_GRAPH))
def test_object_graph_walks_are_refused(pool: SandboxPool, marker: Path, name: str) -> None:
    expr, what = OBJECT_GRAPH[name]
    *setup, last = expr.split("\n")
    src = "\n".join(setup) + f"\nx = {last}\nopen('MARKER', 'w')\n"
    _refused(_attack(pool, src, marker), what)


FRAMES = {
    "gi_frame": "g = (i for i in [1])\nf = g.gi_frame\nf.f_globals['__builtins__']",
    "gi_code": "def gen():\n    yield 1\nc = gen().gi_code",
    "gi_yieldfrom": "def gen():\n    yield 1\nc = gen().gi_yieldfrom",
    "traceback_frame": "try:\n    1/0\nexcept Exception as e:\n    tb = e.__traceback__\n    tb.tb_frame.f_back",
    "with_traceback_attr": "try:\n    1/0\nexcept Exception as e:\n    e.with_traceback(None).__traceback__",
    "tb_frame_by_getattr": "try:\n    1/0\nexcept Exception as e:\n    getattr(e, '__trace' + 'back__')",
    "f_back_on_anything": "x = (1).f_back",
    "exception_context": "try:\n    try:\n        1/0\n    except Exception:\n        raise ValueError\nexcept ValueError as e:\n    e.__context__",
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frame_and_traceback_walks_are_refused(pool: SandboxPool, marker: Path, name: str) -> None:
    res = _attack(pool, FRAMES[name] + "\nopen('MARKER', 'w')\n", marker)
    assert res.status == "refused", res
    assert "not allowed in the sandbox" in res.reason


def test_sys_has_no_frame_or_exception_access(pool: SandboxPool, marker: Path) -> None:
    for attr in (
        "_getframe",
        "exc_info",
        "modules",
        "meta_path",
        "path",
        "settrace",
        "gettrace",
        "exception",
    ):
        res = _attack(pool, f"import sys\nsys.{attr}\n", marker)
        assert (res.status, res.reason) == (
            "failed",
            f"AttributeError: 'ModuleProxy' object has no attribute '{attr}'",
        )


FORMAT = {
    "format_attr": "'{0.__class__}'.format(1)",
    "format_nested_attr": "'{0.__class__.__base__.__subclasses__}'.format(())",
    "format_index_then_attr": "'{0[0].__class__}'.format([1])",
    "format_in_spec": "'{0:{1.__class__}}'.format(1, 2)",
    "format_map": "'{x.__class__}'.format_map({'x': 1})",
    "format_unbound": "str.format('{0.__globals__}', print)",
    "format_by_getattr": "getattr('{0.__class__}', 'format')(1)",
    "format_methodcaller": "import operator\noperator.methodcaller('format', 1)('{0.__class__}')",
    "format_in_map": "list(map('{0.__class__}'.format, [1]))",
    "format_str_subclass": "class S(str):\n    pass\nS('{0.__class__}').format(1)",
    "format_generator_frame": "'{0.gi_frame}'.format(i for i in [])",
    "format_private": "import random\n'{0._os}'.format(random.Random())",
    "fstring": "f'{(1).__class__}'",
}


@pytest.mark.parametrize("name", sorted(FORMAT))
def test_format_string_traversal_is_refused(pool: SandboxPool, marker: Path, name: str) -> None:
    res = _attack(pool, f"{FORMAT[name]}\nopen('MARKER', 'w')\n", marker)
    assert res.status == "refused", res
    assert "not allowed in the sandbox" in res.reason


def test_string_formatter_is_not_available(pool: SandboxPool, marker: Path) -> None:
    res = _attack(pool, "import string\nstring.Formatter().format('{0.__class__}', 1)\n", marker)
    assert (res.status, res.reason) == (
        "failed",
        "AttributeError: 'ModuleProxy' object has no attribute 'Formatter'",
    )
    res = _attack(pool, "from string import Formatter\n", marker)
    assert (res.status, res.reason) == (
        "failed",
        "ImportError: cannot import name 'Formatter' from 'string' (sandbox proxy)",
    )


COMPUTED = {
    "getattr_concat": ("getattr((), '__cl' + 'ass__')", "'__class__'"),
    "getattr_join": ("getattr(1, ''.join(['_', '_', 'class', '_', '_']))", "'__class__'"),
    "getattr_default": ("getattr(1, '__class__', None)", "'__class__'"),
    "attrgetter": ("import operator\noperator.attrgetter('__class__')(1)", "'__class__'"),
    "attrgetter_dotted": ("import operator\noperator.attrgetter('real.__class__')(1)", "'__class__'"),
    "methodcaller": ("import operator\noperator.methodcaller('__reduce_ex__', 2)(1)", "'__reduce_ex__'"),
    "setattr_dunder": ("class A: pass\nsetattr(A, '__init__', print)", "'__init__'"),
    "setattr_host_class": ("setattr(int, 'x', 1)", "'x' on a int"),
    "delattr_host": ("import math\ndelattr(math.sqrt, 'x')", "'x' on a builtin_function_or_method"),
    "vars": ("vars(1)", "'vars'"),
    "globals": ("globals()", "'globals'"),
    "locals": ("locals()", "'locals'"),
    "dir_no_args": ("dir()", "dir() without arguments"),
    "match_class_keyword": ("match 1:\n    case int(__class__=c):\n        pass", "'__class__'"),
    "private_of_host": ("import random\nrandom.Random()._randbelow(5)", "'_randbelow'"),
    "private_by_getattr": ("import enum\ngetattr(enum.Enum, '_member_map_')", "'_member_map_'"),
}


@pytest.mark.parametrize("name", sorted(COMPUTED))
def test_computed_attribute_names_are_refused(pool: SandboxPool, marker: Path, name: str) -> None:
    code, what = COMPUTED[name]
    _refused(_attack(pool, f"{code}\nopen('MARKER', 'w')\n", marker), what)


def test_getattr_with_str_subclass_name_is_a_type_error(pool: SandboxPool, marker: Path) -> None:
    # A str subclass could lie to the policy's name check through its own __eq__/__hash__.
    src = "class N(str):\n    pass\ngetattr(1, N('__class__'))\n"
    res = _attack(pool, src, marker)
    assert (res.status, res.reason) == ("failed", "TypeError: attribute name must be string")


REEXPORTED = {
    "random_os": (
        "import random\nrandom._os.system('touch MARKER')",
        "AttributeError: 'ModuleProxy' object has no attribute '_os'",
    ),
    "from_random_import_os": ("from random import _os", None),
    "collections_sys": (
        "import collections\ncollections._sys",
        "AttributeError: 'ModuleProxy' object has no attribute '_sys'",
    ),
    "typing_sys": (
        "import typing\ntyping.sys.modules['os']",
        "AttributeError: 'ModuleProxy' object has no attribute 'sys'",
    ),
    "re_compiler": (
        "import re\nre._compiler",
        "AttributeError: 'ModuleProxy' object has no attribute '_compiler'",
    ),
    "json_decoder": (
        "import json\njson.decoder",
        "AttributeError: 'ModuleProxy' object has no attribute 'decoder'",
    ),
    "functools_module_globals": ("import functools\nfunctools.reduce.__module__", None),
    "typing_get_type_hints": (
        "import typing\ntyping.get_type_hints",
        "AttributeError: 'ModuleProxy' object has no attribute 'get_type_hints'",
    ),
    "decimal_default_context": (
        "import decimal\ndecimal.DefaultContext",
        "AttributeError: 'ModuleProxy' object has no attribute 'DefaultContext'",
    ),
    "time_module_of_function": ("import time\ntime.sleep.__self__", None),
}


@pytest.mark.parametrize("name", sorted(REEXPORTED))
def test_dangerous_attributes_of_allowed_modules(pool: SandboxPool, marker: Path, name: str) -> None:
    code, reason = REEXPORTED[name]
    res = _attack(pool, f"{code}\nopen('MARKER', 'w')\n", marker)
    if reason is None:
        assert res.status == "refused", res
    else:
        assert (res.status, res.reason) == ("failed", reason)


IMPORTS = [
    "os",
    "sys.os",
    "subprocess",
    "ctypes",
    "_ctypes",
    "pickle",
    "marshal",
    "importlib",
    "builtins",
    "gc",
    "inspect",
    "types",
    "socket",
    "threading",
    "io",
    "pathlib",
    "shutil",
    "signal",
    "posix",
    "_posixsubprocess",
    "__main__",
    "os.path",
    "multiprocessing",
    "code",
    "runpy",
    "dataclasses",
]


@pytest.mark.parametrize("module", IMPORTS)
def test_import_machinery(pool: SandboxPool, marker: Path, module: str) -> None:
    for src in (f"import {module}\n", f"from {module} import *\n"):
        res = _attack(pool, src + "open('MARKER', 'w')\n", marker)
        if module == "sys.os":
            assert (res.status, res.reason) == ("failed", "ModuleNotFoundError: No module named 'sys.os'")
        else:
            _refused(res, f"import of module '{module}' is not allowed in the sandbox")


@pytest.mark.parametrize(
    "src",
    [
        "__import__('os').system('touch MARKER')",
        "__builtins__['__import__']('os')",
        "__loader__.load_module('os')",
        "__spec__",
        "import sys\nsys.modules['os'].system('touch MARKER')",
    ],
)
def test_import_hooks_are_absent(pool: SandboxPool, marker: Path, src: str) -> None:
    res = _attack(pool, src + "\n", marker)
    assert res.status in ("refused", "failed"), res
    if res.status == "failed":
        assert res.reason.startswith(("NameError", "AttributeError")), res.reason


def test_unknown_module_is_a_catchable_module_not_found_error(pool: SandboxPool, marker: Path) -> None:
    src = "try:\n    import numpy\nexcept ImportError as e:\n    print(type(e).__name__, e)\n"
    res = _attack(pool, src, marker)
    assert (res.status, res.stdout) == (
        "ok",
        "ModuleNotFoundError No module named 'numpy' (the sandbox has no third-party packages)\n",
    )


SINKS = {
    "exec": ("exec(\"open('MARKER', 'w')\")", "the builtin 'exec'"),
    "compile": ("compile('1', '', 'eval')", "the builtin 'compile'"),
    "eval_dunder": ("eval('().__class__')", "'__class__'"),
    "eval_import": ("eval(\"__import__('os')\")", "the builtin '__import__'"),
    "eval_with_globals": ("eval('x.__class__', {'x': 1})", "'__class__'"),
    "eval_in_map": ('list(map(eval, [\'open("MARKER", "w")\']))', "the builtin 'open'"),
    "open": ("open('/etc/passwd').read()", "the builtin 'open'"),
    "breakpoint": ("breakpoint()", "the builtin 'breakpoint'"),
    "input": ("input()", "the builtin 'input'"),
    "memoryview": ("memoryview(b'x')", "the builtin 'memoryview'"),
    "string_annotation": (
        "from __future__ import annotations\ndef f(x: __import__('os')): pass\nf.__annotations__",
        "'__annotations__'",
    ),
    "deepcopy_reduce": (
        'import copy\nclass E:\n    def __reduce__(self):\n        return (eval, (\'open("MARKER", "w")\',))\ncopy.deepcopy(E())',
        "the builtin 'open'",
    ),
    "metaclass": ("class M(type): pass\nclass C(metaclass=M): pass", "custom metaclasses"),
    "abc_register_host": (
        "import numbers\nnumbers.Number.register(str)",
        "'register' on built-in or library classes",
    ),
}


@pytest.mark.parametrize("name", sorted(SINKS))
def test_string_evaluating_sinks(pool: SandboxPool, marker: Path, name: str) -> None:
    code, what = SINKS[name]
    _refused(_attack(pool, code + "\n", marker), what)


def test_annotations_of_strings_are_never_evaluated(pool: SandboxPool, marker: Path) -> None:
    src = 'import typing\ndef f(x: \'open("MARKER", "w")\') -> \'x\':\n    return x\nT = typing.Optional[\'open("MARKER", "w")\']\nprint(f(2))\n'
    res = _attack(pool, src, marker)
    assert (res.status, res.stdout) == ("ok", "2\n")


# ---------------------------------------------------------------------------------------------
# Poisoning shared state between runs


@pytest.mark.parametrize(
    "poison, probe, expected",
    [
        (
            "import math\nmath.pi = 3\nmath.sqrt = abs",
            "import math\nprint(math.pi, math.sqrt(4))",
            "3.141592653589793 2.0",
        ),
        (
            "import hashlib\nhashlib.algorithms_guaranteed.add('evil')",
            "import hashlib\nprint('evil' in hashlib.algorithms_guaranteed)",
            "False",
        ),
        (
            "import decimal\ndecimal.getcontext().prec = 3",
            "import decimal\nprint(decimal.Decimal(1) / 7)",
            "0.1428571428571428571428571429",
        ),
        (
            "import random\nrandom.seed(1)\nrandom.random = lambda: 0.5",
            "import random\nprint(random.random())",
            "0.8444218515250481",
        ),
        (
            "import string\nstring.ascii_lowercase = 'x'",
            "import string\nprint(string.ascii_lowercase[:3])",
            "abc",
        ),
        (
            "import sys\nsys.maxsize = 1\nsys.argv.append('x')",
            "import sys\nprint(sys.maxsize > 1, sys.argv)",
            "True ['']",
        ),
        (
            "import functools\nfunctools.WRAPPER_ASSIGNMENTS = ()",
            "import functools\nprint(len(functools.WRAPPER_ASSIGNMENTS))",
            "5",
        ),
        ("print = None\nlen = None", "print(len([1]))", "1"),
        (
            "import collections\ncollections.Counter = dict",
            "import collections\nprint(collections.Counter('aa'))",
            "Counter({'a': 2})",
        ),
    ],
)
def test_module_state_does_not_leak_between_runs(
    marker: Path, poison: str, probe: str, expected: str
) -> None:
    with SandboxPool(workers=1, timeout=2.0) as one:  # one worker: both runs share its process
        first = one.run(poison)
        assert first.status == "ok", first
        second = one.run(probe)
        assert (second.status, second.stdout) == ("ok", expected + "\n")


@pytest.mark.parametrize(
    "code, what",
    [
        ("list.append = None", "'append' on a list"),
        ("int.real = 5", "'real' on a int"),
        ("import math\nmath.sqrt.cache = {}", "'cache' on a builtin_function_or_method"),
        ("import enum\nenum.Enum._member_map_['X'] = 1", "'_member_map_'"),
        ("import collections\ncollections.OrderedDict.move_to_end = print", "'move_to_end' on a OrderedDict"),
    ],
)
def test_host_classes_and_functions_cannot_be_mutated(
    pool: SandboxPool, marker: Path, code: str, what: str
) -> None:
    _refused(_attack(pool, code + "\n", marker), what)


# ---------------------------------------------------------------------------------------------
# Test forgery: pass/fail is decided from plain data in the parent


def test_always_equal_object_does_not_pass(pool: SandboxPool, marker: Path) -> None:
    src = (
        "class Eq:\n    def __eq__(self, o):\n        return True\n    def __ne__(self, o):\n        return False\n"
        "    __hash__ = None\n    def __bool__(self):\n        return True\n"
        "def solve(x):\n    return Eq()\n"
    )
    tests = [
        "assert solve(1) == 2",
        "assert solve(1)",
        "assert not solve(1) != 2",
        "assert solve(1) in [3]",
        "assert [solve(1)] == [4]",
    ]
    res = _attack(pool, src, marker, tests)
    assert res.status == "ok"
    assert [u.status for u in res.units] == ["failed"] * 5
    assert res.units[0].message.startswith("AssertionError: test operand is not plain data (a Eq object)")


def test_subclass_of_builtin_with_lying_eq_does_not_pass(pool: SandboxPool, marker: Path) -> None:
    src = "class L(list):\n    def __eq__(self, o):\n        return True\ndef solve():\n    return L([0])\n"
    res = _attack(pool, src, marker, ["assert solve() == [1, 2]", "assert solve() == [0]"])
    assert [u.status for u in res.units] == ["failed", "failed"]


@pytest.mark.parametrize(
    "exit_code",
    [
        "sys.exit(0)",
        "raise SystemExit",
        "raise SystemExit(0)",
        "exit()",
        "quit(0)",
        "raise KeyboardInterrupt",
        "raise GeneratorExit",
        "raise BaseException('x')",
    ],
)
def test_exit_and_base_exceptions_are_failures(pool: SandboxPool, marker: Path, exit_code: str) -> None:
    # In the program: the run fails. Inside the tested function: that unit errors, others still count.
    res = _attack(pool, f"import sys\n{exit_code}\n", marker, ["assert True"])
    assert res.status == "failed" and res.passed == 0, res
    src = f"import sys\ndef solve(x):\n    if x:\n        {exit_code}\n    return 1\n"
    res = _attack(pool, src, marker, ["assert solve(1) == 1", "assert solve(0) == 1"])
    assert [u.status for u in res.units] == ["errored", "passed"], res


def test_printed_pass_text_is_ignored(pool: SandboxPool, marker: Path) -> None:
    src = (
        "import sys\nprint('PASSED 3/3')\nsys.stdout.write('{\"t\": \"done\"}\\n')\ndef f():\n    return 0\n"
    )
    res = _attack(pool, src, marker, ["assert f() == 1", "print('passed')\nassert f() == 2"])
    assert (res.status, res.passed, res.failed) == ("ok", 0, 2)
    assert res.stdout == 'PASSED 3/3\n{"t": "done"}\npassed\n'


def test_exceptions_that_bypass_except_exception(pool: SandboxPool, marker: Path) -> None:
    # The candidate cannot swallow the sandbox's own aborts (refusals, the step budget).
    src = (
        "def f():\n    try:\n        ().__class__\n    except BaseException:\n        return 'swallowed'\n"
        "    finally:\n        print('finally ran')\n"
        "def g():\n    while True:\n        try:\n            while True:\n                pass\n        except BaseException:\n            pass\n"
    )
    res = _attack(pool, src, marker, ["assert f() == 'swallowed'"])
    assert (res.status, res.units[0].status) == ("refused", "errored")
    with SandboxPool(workers=1, timeout=5.0, max_steps=200_000) as small:
        res = small.run(src, ["assert g()"])
        assert (res.status, res.reason, res.units[0].status) == (
            "timeout",
            "step budget of 200,000 exceeded",
            "timeout",
        )


def test_context_manager_cannot_swallow_a_refusal(pool: SandboxPool, marker: Path) -> None:
    src = "class CM:\n    def __enter__(self):\n        return self\n    def __exit__(self, *a):\n        return True\nwith CM():\n    ().__class__\nprint('after')\n"
    res = _attack(pool, src, marker)
    assert res.status == "refused" and res.stdout == ""


def test_forged_trace_from_a_worker_never_passes() -> None:
    # The parent recomputes every comparison from the plain values of the trace.
    from prefcurate.sandbox.pool import judge_unit

    forged = {"status": "passed", "asserts": [["cmp", [1, 2], ["Eq"]]]}
    assert judge_unit(forged).status == "failed"
    assert judge_unit({"status": "passed", "asserts": [["val", 0]]}).status == "failed"
    assert (
        judge_unit({"status": "passed", "asserts": [["cmp", [["I", "0x10"], 16], ["Eq"]]]}).status == "passed"
    )
    assert judge_unit({"status": "passed", "asserts": [["bogus"]]}).status == "failed"
    assert judge_unit({"status": "passed", "asserts": [["and", [["val", 0], ["val", 1]]]]}).status == "failed"


# ---------------------------------------------------------------------------------------------
# Layer 2: OS limits, the deadline, replacement of killed workers

RUNAWAY = {
    "huge_power": ("x = 9**9**9", "timeout"),
    "huge_list": ("x = [0] * 10**10", "resource_limit"),
    "catastrophic_regex": ("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", "timeout"),
    "sleep": ("import time\ntime.sleep(100)", "timeout"),
    "infinite_loop": ("while True:\n    pass", "timeout"),
    "huge_string": ("s = 'x'\nwhile True:\n    s += s", "resource_limit"),
    "string_repeat": ("s = 'ab' * 10**12", "resource_limit"),
    "sorted_huge_range": ("sorted(range(10**12))", "resource_limit"),
}


@pytest.mark.parametrize("name", sorted(RUNAWAY))
def test_runaway_programs_end_at_the_limit(marker: Path, name: str) -> None:
    code, status = RUNAWAY[name]
    # A step budget no machine exhausts in 1 s: the deadline ends the loop on any machine
    # (with the default budget a fast machine ends `while True: pass` by steps instead).
    # Only the runaway program has the 1 s deadline; the memory limit and the healthy job
    # get room for a slow or loaded machine, so no outcome depends on its speed.
    with SandboxPool(workers=2, timeout=60.0, memory_mb=256, max_steps=10**15) as small:
        first = {w.proc.pid for w in small._all}
        bad_program = code + "\nopen('MARKER', 'w')\n".replace("MARKER", str(marker))
        with ThreadPoolExecutor(2) as ex:
            bad_run = ex.submit(
                small.run, bad_program, ["assert True"], timeout=1.0 if status == "timeout" else 60.0
            )
            good_run = ex.submit(small.run, OK_PROGRAM, OK_TESTS)
            bad, good = bad_run.result(), good_run.result()
        assert bad.status == status, bad
        assert bad.units[0].status in ("timeout", "errored")
        assert (good.status, good.passed) == ("ok", 2)  # the other job on the other worker
        after = small.run(OK_PROGRAM, OK_TESTS)  # the killed worker was replaced
        assert (after.status, after.passed) == ("ok", 2)
        if status == "timeout":
            assert bad.reason == "wall-clock deadline of 1s exceeded"
            assert {w.proc.pid for w in small._all} != first
    assert not marker.exists()


def test_deep_recursion_is_a_recursion_error(pool: SandboxPool, marker: Path) -> None:
    res = _attack(pool, "def f(n):\n    return f(n + 1)\nf(0)\n", marker)
    assert (res.status, res.reason) == ("failed", "RecursionError: maximum recursion depth exceeded")
    # Deep but finite recursion works, as in CPython (limit 1000 frames).
    res = _attack(pool, "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(900))\n", marker)
    assert (res.status, res.stdout) == ("ok", "900\n")


def test_recursion_through_host_callbacks_is_bounded(pool: SandboxPool, marker: Path) -> None:
    src = "class R:\n    def __repr__(self):\n        return repr(self)\nrepr(R())\n"
    res = _attack(pool, src, marker)
    assert (res.status, res.reason) == ("failed", "RecursionError: maximum recursion depth exceeded")


def test_output_flood_is_capped(pool: SandboxPool, marker: Path) -> None:
    # A deadline with room for a loaded machine: the cap, not the deadline, is under test.
    res = _attack(pool, "for i in range(300000):\n    print('x' * 20)\n", marker, timeout=60.0)
    assert res.status == "ok"
    assert len(res.stdout) <= (1 << 20) + 64


def test_worker_os_limits_and_descriptors() -> None:
    with SandboxPool(workers=1, timeout=2.0, memory_mb=300) as one:
        one.run("x = 1")
        (w,) = one._all
        pid = w.proc.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        fds = sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd"))
        # Layer 2 holds even if layer 1 failed: no processes, no file writes, few descriptors.
        assert _limit(limits, "Max processes") == "0"
        assert _limit(limits, "Max file size") == "0"
        assert _limit(limits, "Max open files") == "16"
        assert _limit(limits, "Max core file size") == "0"
        assert int(_limit(limits, "Max address space")) < 2 * 1024**3
        assert len(fds) <= 6  # stdin/stdout/stderr on /dev/null, two protocol pipes, one /dev/null
        if os.getuid() == 0:
            status = Path(f"/proc/{pid}/status").read_text()
            assert "\nUid:\t65534\t65534\t65534\t65534\n" in status


def _limit(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name):
            return line[len(name) :].split()[0]
    raise AssertionError(name)


def test_host_process_is_untouched(pool: SandboxPool, marker: Path) -> None:
    before = dict(os.environ), os.getcwd()
    _attack(pool, "import sys\nsys.argv.clear()\nimport os\n", marker)
    assert (dict(os.environ), os.getcwd()) == before


def test_no_module_frame_or_code_object_is_reachable_by_allowed_attributes() -> None:
    # Walk, in this process, everything a program can reach from its builtins and allowed
    # modules through attribute names the policy lets through (private names included: they
    # are allowed on the program's own subclasses of library classes), three levels deep.
    # A real module object there would give `os` back; frames/code/cells give globals.
    import types

    from prefcurate.sandbox import policy
    from prefcurate.sandbox.interpreter import Interpreter
    from prefcurate.sandbox.modules import ALLOWED_MODULES

    ctx = Interpreter().ctx
    frontier = [(f"builtins.{k}", v) for k, v in ctx.builtins.items()]
    for m in ALLOWED_MODULES:
        frontier += [(f"{m}.{k}", v) for k, v in vars(ctx.import_module(m)).items()]
    seen: set[int] = set()
    alive = []  # keeps visited objects alive so their ids are not reused during the walk
    found = []
    for _depth in range(3):
        nxt = []
        for path, obj in frontier:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            alive.append(obj)
            if isinstance(
                obj, (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType, types.CellType)
            ):
                found.append(path)
                continue
            try:
                names = dir(obj)
            except Exception:  # noqa: BLE001 - anything without a usable dir() has nothing to walk
                continue
            for n in names:
                if (policy.is_dunder(n) and n not in policy.READABLE_DUNDERS) or n in policy.BLOCKED_ATTRS:
                    continue
                try:
                    nxt.append((f"{path}.{n}", getattr(obj, n)))
                except Exception:  # noqa: BLE001, S112 - properties that raise reach nothing
                    continue
        frontier = nxt
    assert len(seen) > 50_000
    assert found == []
