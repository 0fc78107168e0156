"""The interpreter's generated host code (fastexpr: whole blocks, native loops, function bodies
with native locals) against plain CPython and against the closures it replaces.

Each program runs three ways in this process: plain `exec` (the programs are ours, so
trusted), the interpreter as it is, and the interpreter with every fast path turned off (the
closure compiler alone). Output and the raised exception must equal CPython's, and the steps
charged must equal the closures' exactly: the step budget means the same with or without the
generated code (issue 16)."""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest

from prefcurate.sandbox import fastexpr, interpreter
from prefcurate.sandbox.interpreter import Interpreter
from prefcurate.sandbox.policy import SandboxAbort, StepLimit

PROGRAMS: dict[str, str] = {
    "nested_loops_break_continue_return": """
        def is_prime(n):
            for j in range(2, n):
                if n % j == 0:
                    return False
            return True
        def triples(a):
            for i in range(2, 30):
                if not is_prime(i): continue
                for j in range(2, 30):
                    if not is_prime(j):
                        continue
                    for k in range(2, 30):
                        if not is_prime(k): continue
                        if i * j * k == a: return (i, j, k)
            return None
        print(triples(30), triples(8), triples(31))
    """,
    "loop_else_in_functions": """
        def first_even(xs):
            for x in xs:
                if x % 2 == 0:
                    break
            else:
                return 'none'
            return x
        def count_down(n):
            seen = []
            while n > 0:
                n -= 1
                if n == 2:
                    continue
                seen.append(n)
            else:
                seen.append('else')
            return seen
        print(first_even([1, 3, 4]), first_even([1, 3]), count_down(5))
    """,
    "targets_and_displays": """
        def fib(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a
        def table(n):
            grid = [[0] * n for _ in range(n)]
            d = {}
            for i in range(n):
                for j in range(n):
                    grid[i][j] += i * j
                    d[i, j] = grid[i][j]
            total = x = y = 0
            for (i, j), v in d.items():
                total += v
            return grid, total, [x, y], (n,), {'n': n}
        print(fib(30), table(3))
    """,
    "unpack_errors": """
        def bad_for():
            for a, b in [(1, 2), (1, 2, 3)]:
                pass
        def bad_assign():
            a, b = [1]
        for f in (bad_for, bad_assign):
            try:
                f()
            except ValueError as e:
                print(type(e).__name__, e)
    """,
    "unbound_locals_native": """
        def late():
            total = 0
            for i in range(3):
                total += i
            return total + later
            later = 1
        def cond(flag):
            if flag:
                v = 1
            return v
        print(cond(True))
        for f in (late, lambda: cond(False)):
            try:
                f()
            except UnboundLocalError as e:
                print(e)
    """,
    "signatures_of_native_functions": """
        def f(a, b=2, *rest, c=3, **kw):
            return a + b + c + len(rest) + len(kw)
        def g(x, y):
            return x * y
        print(f(1), f(1, 2, 3, 4, c=5, d=6), g(3, y=4), g(y=2, x=5))
        for call in (lambda: g(1), lambda: g(1, 2, 3), lambda: g(1, z=2)):
            try:
                call()
            except TypeError as e:
                print(e)
    """,
    "recursion_and_depth": """
        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)
        def depth(n):
            return 0 if n == 0 else 1 + depth(n - 1)
        print(fact(20), depth(150))
    """,
    "reserved_and_common_local_names": """
        def h(l, g):
            _l = l * 2
            f = g + 1
            env = [_l, f]
            for _p0 in range(2):
                env.append(_p0)
            return env
        def k(steps, zip, range):
            out = 0
            for s in steps:
                out += s
            return out, zip, range
        print(h(1, 2), k([1, 2], 'z', 'r'))
    """,
    "comprehensions_over_native_locals": """
        def primes(limit):
            found = [n for n in range(2, limit) if all(n % d for d in range(2, n))]
            squares = {n * n for n in found if n > 3}
            return found, sorted(squares)
        def amicable(limit):
            total = 0
            for num in range(2, limit):
                s = sum([f for f in range(1, num) if num % f == 0])
                s2 = sum([f for f in range(1, s) if s % f == 0])
                if num == s2 and num != s:
                    total += num
            return total
        print(primes(20), amicable(300))
    """,
    "globals_and_builtins_from_native_code": """
        SCALE = 3
        def scaled(xs):
            out = []
            for x in xs:
                out.append(x * SCALE + len(out))
            return out
        print(scaled([1, 2]))
        SCALE = 4
        print(scaled([1, 2]))
        def missing():
            for i in range(1):
                return undefined_name
        try:
            missing()
        except NameError as e:
            print(e)
    """,
    "exceptions_inside_native_loops": """
        def div(xs):
            out = []
            for x in xs:
                out.append(10 // x)
            return out
        try:
            div([1, 2, 0, 4])
        except ZeroDivisionError as e:
            print('zero', e)
        def index(xs, i):
            while True:
                return xs[i]
        try:
            index([1], 5)
        except IndexError as e:
            print(e)
    """,
    "augmented_assignment_of_native_locals": """
        def build(n):
            s = ''
            xs = []
            k = 1
            for i in range(n):
                s += str(i)
                xs += [i]
                k *= 3
                k //= 2
            return s, xs, k
        def unbound():
            for i in range(1):
                total += i
            total = 0
        print(build(12))
        try:
            unbound()
        except UnboundLocalError as e:
            print(e)
    """,
    "attributes_of_the_programs_objects": """
        class Counter:
            def __init__(self, start):
                self.n = start
                self._hits = 0
                self.log = []
            def inc(self, by=1):
                self.n += by
                self._hits += 1
                self.log += [self.n]
                return self._hits
        def run():
            c = Counter(10)
            for i in range(5):
                c.inc(i)
            c.label = 'x'
            return c.n, c._hits, c.log, c.label
        print(run())
    """,
    "docstring_and_pass": """
        def f(x):
            "doc"
            for i in range(x):
                pass
            return f.__doc__ if False else x
        print(f(3))
    """,
    # A local named `_` read inside a generated comprehension (the review's a_underscore.py).
    "underscore_local_in_comprehension": """
        def f(xs):
            _ = 10**9 + 7
            return [x % _ for x in xs]
        def g(xs):
            _ = 2
            return [_ for x in xs if x > _], {_ + x for x in xs}
        def h(xs):
            _s = 3
            return [x * _s for x in xs]
        print(f([5, 10**10]), g([1, 2, 3, 4]), h([1, 2]))
    """,
    # 97 nested blocks: valid for CPython; the generated code (two levels deeper) is not, so
    # the closures take over (the review's a_indent.py).
    "deeply_nested_blocks": "def f(x):\n"
    + "".join("    " * (i + 1) + "if x:\n" for i in range(97))
    + "    " * 98
    + "return 2\n"
    + "    return 1\nprint(f(1), f(0))\n",
}


def _cpython(source: str) -> tuple[str, str | None]:
    buf = io.StringIO()
    error = None
    with contextlib.redirect_stdout(buf):
        try:
            exec(compile(source, "<program>", "exec"), {"__name__": "__sandbox__"})  # noqa: S102 - ours
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we compare
            error = f"{type(exc).__name__}: {exc}"
    return buf.getvalue(), error


def _sandbox(source: str, max_steps: int = 10_000_000) -> tuple[str, str | None, int]:
    interp = Interpreter(max_steps=max_steps)
    error = None
    try:
        interp.run(source)
    except SandboxAbort:
        raise
    except BaseException as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    out = interp.ctx.take_output()
    return out, error, max_steps - interp.ctx.steps


@pytest.fixture()
def closures_only(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The interpreter with every generated-code path off: the closure compiler alone."""

    def off(self: object) -> bool:
        return False

    def no_fast(*args: object, **kwargs: object) -> None:
        return None

    def patch() -> None:
        monkeypatch.setattr(interpreter.Compiler, "_hot", off)
        monkeypatch.setattr(interpreter, "compile_fast_function", no_fast)

    return patch


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_generated_code_matches_cpython_and_the_closures(name: str, closures_only) -> None:  # noqa: ANN001
    source = textwrap.dedent(PROGRAMS[name]).strip() + "\n"
    expected = _cpython(source)
    out, error, steps = _sandbox(source)
    assert (out, error) == expected
    closures_only()
    out_c, error_c, steps_c = _sandbox(source)
    assert (out_c, error_c) == expected
    assert steps == steps_c, "the generated code charges other steps than the closures"


def test_the_generated_paths_are_used() -> None:
    """The programs above do run generated function bodies and native loops (else the test
    above would compare the closures with themselves)."""
    src = "def f(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\nprint(f(4))\n"
    interp = Interpreter()
    interp.run(src)
    assert interp.ctx.take_output() == "6\n"
    # A function body with native locals: its parameters are the generated function's own.
    native = [k for k in fastexpr._SHAPES if "_g, _up, n:" in k and "for i in " in k and "t = " in k]
    assert native, "the function body was not generated with native locals"


@pytest.mark.parametrize("name", ["nested_loops_break_continue_return", "comprehensions_over_native_locals"])
def test_the_budget_runs_out_at_the_same_step(name: str, closures_only) -> None:  # noqa: ANN001
    """With a budget one step short of what the program needs, both compilers stop it."""
    source = textwrap.dedent(PROGRAMS[name]).strip() + "\n"
    needed = _sandbox(source)[2]
    with pytest.raises(StepLimit):
        _sandbox(source, needed - 1)
    assert _sandbox(source, needed)[1] is None
    closures_only()
    with pytest.raises(StepLimit):
        _sandbox(source, needed - 1)
    assert _sandbox(source, needed)[1] is None


REFUSED = {
    "private_read_of_a_library_object": "def f():\n    d = {}\n    for i in range(1):\n        return d._x\nf()\n",
    "dunder_store": "class C:\n    pass\ndef f():\n    c = C()\n    for i in range(1):\n        c.__dict__ = {}\nf()\n",
    "store_on_a_host_object": "def f():\n    xs = []\n    for i in range(1):\n        xs.n = 1\nf()\n",
    "aug_store_on_a_module": "import math\ndef f():\n    for i in range(1):\n        math.pi += 1\n    return math.pi\nprint(f())\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_policy_decides_the_same_in_generated_code(name: str, closures_only) -> None:  # noqa: ANN001
    """Attribute reads and writes in generated code go through the same policy calls as the
    closures: the same refusal (or the same result) either way."""

    def outcome() -> tuple[str, str]:
        interp = Interpreter()
        try:
            interp.run(REFUSED[name])
        except SandboxAbort as exc:
            return type(exc).__name__, str(exc)
        return "ok", interp.ctx.take_output()

    fast = outcome()
    closures_only()
    assert fast == outcome()
    if name != "aug_store_on_a_module":  # a module proxy of this run may be written
        assert fast[0] == "PolicyError", fast
