"""CPython semantics of the sandbox interpreter, checked differentially.

Every snippet runs twice: in plain CPython (in-process `exec`: the snippets are ours, so
trusted) and in the sandbox pool. The printed output must be identical, and where CPython
raises, the sandbox run must fail with the same exception type and message.

Each snippet runs in three contexts, the three kinds of body the statement compiler
compiles: at module level, as the body of a function, and as the body of a generator
function with a `yield` first in every block (so every compound statement is compiled the
generator way).
"""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
import textwrap

import pytest

from prefcurate.sandbox import SandboxPool

SNIPPETS: dict[str, str] = {
    "for_else": """
        for i in range(3):
            if i == 5:
                break
        else:
            print("no break", i)
        for i in range(10):
            if i == 2:
                break
        else:
            print("unreachable")
        print("broke at", i)
    """,
    "while_else_continue": """
        n, seen = 0, []
        while n < 6:
            n += 1
            if n % 2:
                continue
            seen.append(n)
        else:
            print("done", seen)
    """,
    "closures_late_binding": """
        fs = [lambda: i for i in range(3)]
        print([f() for f in fs])
        gs = [lambda i=i: i for i in range(3)]
        print([g() for g in gs])
        def counter():
            count = 0
            def inc(step=1):
                nonlocal count
                count += step
                return count
            return inc
        c = counter()
        c(); c(5)
        print(c())
    """,
    "global_statement": """
        total = 0
        def add(x):
            global total
            total += x
        for k in range(4):
            add(k)
        print(total)
        def shadow():
            total = -1
            return total
        print(shadow(), total)
    """,
    "unbound_local": """
        x = 1
        def f():
            print(x)
            x = 2
        f()
    """,
    "decorators": """
        import functools
        def trace(tag):
            def deco(fn):
                @functools.wraps(fn)
                def wrapper(*a, **k):
                    print(tag, fn.__name__, a, sorted(k.items()))
                    return fn(*a, **k)
                return wrapper
            return deco
        @trace("A")
        @trace("B")
        def add(x, y=10, *, z=0):
            "adds"
            return x + y + z
        print(add(1, z=3), add.__name__, add.__doc__)
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        print(fib(80), fib.cache_info().hits)
    """,
    "default_args_mutable": """
        def app(x, acc=[]):
            acc.append(x)
            return acc
        app(1); app(2)
        print(app(3))
        def kw(a, b=2, *args, c, d=4, **kw):
            return (a, b, args, c, d, sorted(kw.items()))
        print(kw(1, c=3))
        print(kw(1, 2, 3, 4, c=5, e=6, f=7))
        def posonly(a, b, /, c):
            return a, b, c
        print(posonly(1, 2, c=3))
    """,
    "call_errors": """
        def f(a, b):
            return a
        try:
            f(1)
        except TypeError as e:
            print(e)
        try:
            f(1, 2, 3)
        except TypeError as e:
            print(e)
        try:
            f(1, c=2)
        except TypeError as e:
            print(e)
        f(1, a=2)
    """,
    "star_args": """
        def f(*args, **kwargs):
            return args, kwargs
        xs = [1, 2]
        d = {"k": 3}
        print(f(*xs, 0, *xs, **d, z=1))
        a, *rest = range(5)
        *init, last = "abc"
        print(a, rest, init, last)
        (p, q), r = (1, 2), 3
        print(p, q, r, [*xs, *"ab"], {**d, "m": 1}, {*xs, 5})
        first, second = [1, 2, 3]
    """,
    "comprehension_scoping": """
        x = "outer"
        squares = [x * x for x in range(4)]
        print(x, squares)
        print({k: v for k, v in zip("abc", range(3)) if v})
        print({c.upper() for c in "aab"} == {"A", "B"})
        print([(i, j) for i in range(3) for j in range(i) if (i + j) % 2])
        gen = (i * 2 for i in range(3))
        print(next(gen), list(gen))
        class K:
            base = 10
            vals = [base for _ in range(2)] if False else None
        print(K.vals)
        y = 5
        print([y + i for i in range(2)])
        print([last := i for i in range(3)], last)
    """,
    "comprehension_class_scope_error": """
        class K:
            base = 10
            vals = [base + i for i in range(2)]
    """,
    "try_except_finally": """
        def f(n):
            try:
                if n == 0:
                    raise ValueError("zero")
                if n == 1:
                    return 1 / 0
                return "fine"
            except ValueError as e:
                return f"value: {e}"
            except (KeyError, ZeroDivisionError) as e:
                return f"{type(e).__name__}: {e}"
            else:
                print("unreachable")
            finally:
                print("finally", n)
        print(f(0)); print(f(1)); print(f(2))
        def g():
            for i in range(3):
                try:
                    if i == 1:
                        continue
                    if i == 2:
                        break
                finally:
                    print("cleanup", i)
            return i
        print(g())
        def h():
            try:
                return "try"
            finally:
                return "finally"
        print(h())
        try:
            try:
                {}["k"]
            except KeyError:
                raise ValueError("wrapped")
        except ValueError as e:
            print(repr(e), type(e.args))
        try:
            raise LookupError("base")
        except IndexError:
            print("wrong")
        except LookupError as e:
            print("right", e)
        try:
            pass
        except Exception:
            pass
        else:
            print("else runs")
    """,
    "exception_name_unbound_after_except": """
        try:
            1 / 0
        except ZeroDivisionError as err:
            pass
        print(err)
    """,
    "raise_from_and_bare_raise": """
        class MyError(Exception):
            def __init__(self, code):
                super().__init__(f"code {code}")
                self.code = code
        try:
            try:
                raise MyError(7)
            except MyError:
                raise
        except Exception as e:
            print(type(e).__name__, e, e.code, isinstance(e, Exception))
        try:
            raise RuntimeError("outer") from KeyError("inner")
        except RuntimeError as e:
            print(e)
        raise MyError(3)
    """,
    "generators_send_throw_close": """
        def acc():
            total = 0
            while True:
                x = yield total
                if x is None:
                    break
                total += x
            return total
        g = acc()
        print(next(g), g.send(5), g.send(10))
        try:
            g.send(None)
        except StopIteration as e:
            print("returned", e.value)
        def inner():
            yield 1
            got = yield 2
            return got * 10
        def outer():
            r = yield from inner()
            yield r
        o = outer()
        print(next(o), next(o), o.send(4))
        def guarded():
            try:
                yield "a"
                yield "b"
            finally:
                print("closed")
        gg = guarded()
        print(next(gg))
        gg.close()
        def catcher():
            while True:
                try:
                    yield
                except ValueError as e:
                    print("caught", e)
        c = catcher(); next(c); c.throw(ValueError("boom"))
        print(list(zip(range(3), (ch for ch in "xyz"))))
    """,
    "generator_return_in_loop": """
        def take(n, it):
            for i, x in enumerate(it):
                if i >= n:
                    return
                yield x
        def nat():
            n = 0
            while True:
                yield n
                n += 1
        print(list(take(5, nat())), sum(take(100, nat())))
    """,
    "classes_inheritance_super": """
        class Shape:
            sides = 0
            def __init__(self, name):
                self.name = name
            def describe(self):
                return f"{self.name} with {self.sides} sides"
            def __repr__(self):
                return f"{type(self).__name__}({self.name!r})"
        class Square(Shape):
            sides = 4
            def __init__(self, size):
                super().__init__("square")
                self.size = size
            def area(self):
                return self.size ** 2
            def describe(self):
                return super().describe() + f", area {self.area()}"
        s = Square(3)
        print(s.describe(), repr(s), isinstance(s, Shape), issubclass(Square, Shape))
        class A:
            def who(self): return "A"
        class B(A):
            def who(self): return "B" + super().who()
        class C(A):
            def who(self): return "C" + super().who()
        class D(B, C):
            def who(self): return "D" + super().who()
        print(D().who(), [k.__name__ for k in D.mro()])
        class P:
            def __init__(self, v): self._v = v
            @property
            def v(self): return self._v
            @v.setter
            def v(self, x): self._v = x * 2
            @staticmethod
            def s(x): return x + 1
            @classmethod
            def make(cls, v): return cls(v)
        p = P.make(2); p.v = 5
        print(p.v, P.s(1))
    """,
    "dunder_methods_and_operators": """
        class V:
            def __init__(self, x, y): self.x, self.y = x, y
            def __add__(self, o): return V(self.x + o.x, self.y + o.y)
            def __eq__(self, o): return (self.x, self.y) == (o.x, o.y)
            def __hash__(self): return hash((self.x, self.y))
            def __lt__(self, o): return (self.x, self.y) < (o.x, o.y)
            def __len__(self): return 2
            def __getitem__(self, i): return (self.x, self.y)[i]
            def __iter__(self): return iter((self.x, self.y))
            def __repr__(self): return f"V({self.x}, {self.y})"
            def __bool__(self): return bool(self.x or self.y)
            def __contains__(self, v): return v in (self.x, self.y)
            def __call__(self, k): return self.x * k
        a, b = V(1, 2), V(3, 4)
        print(a + b, a == V(1, 2), sorted([b, a]), len(a), a[1], list(a), bool(V(0, 0)), 2 in a, a(10))
        print({a: 1}[V(1, 2)], max([a, b]), [1, 2] + [3], (1,) * 2)
    """,
    "augmented_assignment_targets": """
        d = {"a": [1]}
        d["a"] += [2]
        d["b"] = d.get("b", 0) + 1
        d["b"] *= 10
        class O: pass
        o = O(); o.n = 1; o.n += 4; o.n **= 2
        xs = [1, 2, 3]; xs[1] -= 10; xs[-1] //= 2
        t = (1, 2); t += (3,)
        s = "ab"; s *= 2
        m = [[0] * 2 for _ in range(2)]; m[1][0] |= 6; m[1][0] ^= 3
        print(d, o.n, xs, t, s, m)
        tt = (1, [2])
        try:
            tt[1] += [3]
        except TypeError as e:
            print("TypeError", e, tt)
    """,
    "fstrings": """
        x, name, pi = 42, "Ann", 3.14159265
        print(f"{x:>6}|{x:<4}|{x:^7}|{x:06d}|{x:x}|{x:#b}|{x:,}|{1234567:_}")
        print(f"{pi:.2f} {pi:10.3e} {pi:%} {0.5:.0%} {name!r} {name!s:>5} {name!a}")
        width = 8
        print(f"{name:{width}}|{pi:{width}.{2}f}|{'nested'}|{x + 1 = }")
        print(f"{{literal}} {[1, 2][0]} {dict(a=1)['a']} {'%d' % 5}")
        print("{:>5}|{:<5}|{}".format(1, "a", [1]), "{0}{1}{0}".format("x", "y"), "{k}".format(k=3))
        print("%s %5.2f %-4d| %r %x" % ("s", 2.5, 7, "q", 255))
    """,
    "match_statement": """
        def classify(v):
            match v:
                case 0 | 1:
                    return "bit"
                case int(n) if n < 0:
                    return f"negative {n}"
                case int():
                    return "int"
                case [x, y]:
                    return f"pair {x} {y}"
                case [first, *rest]:
                    return f"seq {first} +{len(rest)}"
                case {"kind": "pt", "x": x, **others}:
                    return f"point {x} {sorted(others)}"
                case str() as s:
                    return "str " + s
                case None:
                    return "none"
                case _:
                    return "other"
        for v in [1, -5, 9, [1, 2], (3, 4, 5), {"kind": "pt", "x": 1, "z": 2}, "hi", None, 2.5]:
            print(classify(v))
        class Pt:
            __match_args__ = ("x", "y")
            def __init__(self, x, y): self.x, self.y = x, y
        match Pt(1, 2):
            case Pt(1, y=yy):
                print("matched", yy)
    """,
    "walrus_lambda_sorted": """
        data = [("b", 2), ("a", 2), ("c", 1)]
        print(sorted(data, key=lambda t: (t[1], t[0])))
        print(sorted(data, key=lambda t: t[1], reverse=True))
        print(min(data, key=lambda t: t[0]), max("hello", key="hello".count))
        if (n := len(data)) > 2:
            print("n", n)
        vals = [y for x in range(6) if (y := x * x) % 2]
        print(vals, y)
        f = lambda *a, k=1, **kw: (a, k, kw)
        print(f(1, 2, k=3, z=4))
        print(list(map(lambda x, y: x * y, [1, 2], [3, 4])), list(filter(None, [0, 1, "", "a"])))
    """,
    "exception_messages": """
        import math
        tests = [
            lambda: [1][5], lambda: {}["k"], lambda: int("x1"), lambda: 1 / 0, lambda: None.attr,
            lambda: "a" + 1, lambda: math.sqrt(-1), lambda: [].pop(), lambda: undefined_name,
            lambda: (1, 2).index(3), lambda: int(None), lambda: iter(5), lambda: next(iter([])),
            lambda: "abc".index("z"), lambda: float("nan") < "x", lambda: {}.popitem(), lambda: divmod(1, 0),
        ]
        for t in tests:
            try:
                t()
            except Exception as e:
                print(type(e).__name__, str(e))
    """,
    "with_statement": """
        class CM:
            def __init__(self, name): self.name = name
            def __enter__(self):
                print("enter", self.name); return self.name.upper()
            def __exit__(self, et, ev, tb):
                print("exit", self.name, et.__name__ if et else None, ev)
                return et is KeyError
        with CM("a") as A, CM("b") as B:
            print("body", A, B)
        with CM("s"):
            raise KeyError("swallowed")
        print("after")
        with CM("p"):
            raise ValueError("propagates")
    """,
    "builtins_behaviour": """
        print(sum([0.1] * 10), round(2.5), round(3.5), round(2.675, 2), divmod(-7, 2), -7 // 2, -7 % 2)
        print(int("0x1f", 16), int("  12 "), float("1e3"), bin(10), oct(8), hex(255), chr(65), ord("a"))
        print(abs(-3), pow(2, 10, 1000), pow(2, -1), 10 ** 20, 2 ** 0.5, 7 / 2, True + True)
        print(list(zip("ab", [1, 2, 3])), list(enumerate("xy", 1)), list(reversed([1, 2, 3])))
        print(any([]), all([]), sorted("bca"), "".join(sorted({"b": 1, "a": 2})), isinstance(True, int))
        print(str(1.0), repr(0.1 + 0.2), 1e16, 1.5e-7, float("inf"), -0.0, 3 == 3.0, hash(1) == hash(1.0))
        print(" a b ".split(), "a,b,,c".split(","), "Hello".swapcase(), "abc"[::-1], "x".join("123"))
        print(list(range(10, 0, -3)), range(5)[1:3], slice(1, 5, 2), [1, 2, 3, 4][::2], "%.3f" % 2 ** 0.5)
        print(bytes([65, 66]), b"ab" + b"c", bytearray(b"xy"), "é".encode(), sorted([3, 1, 2], reverse=True))
        print(type(1).__name__, type("") is str, callable(len), id(1) == id(1), format(0.5, ".1%"))
    """,
    "stdlib_modules": """
        import collections, heapq, itertools, functools, math, re, string, bisect, statistics
        from collections import Counter, defaultdict, deque, OrderedDict
        c = Counter("abracadabra")
        print(c.most_common(2), c["z"], sorted(c.elements())[:3])
        dd = defaultdict(list); dd["x"].append(1); print(dict(dd))
        dq = deque([1, 2, 3], maxlen=3); dq.append(4); dq.appendleft(0); print(dq)
        h = [5, 1, 4]; heapq.heapify(h); heapq.heappush(h, 0); print(heapq.heappop(h), heapq.nsmallest(2, h))
        print(list(itertools.permutations("abc", 2))[:3], list(itertools.accumulate([1, 2, 3])))
        print(list(itertools.groupby("aabbbc")) != [], [k for k, _ in itertools.groupby("aabbbc")])
        print(functools.reduce(lambda a, b: a * b, range(1, 6)), math.gcd(12, 18), math.comb(5, 2), math.inf)
        print(re.findall(r"\\d+", "a1b22c333"), re.sub(r"(\\w)(\\d)", r"\\2\\1", "a1b2"), bool(re.match("a", "ab")))
        print(string.ascii_lowercase[:5], bisect.bisect_left([1, 3, 5], 3), statistics.median([3, 1, 2]))
        print(OrderedDict(a=1, b=2), collections.namedtuple("P", "x y")(1, 2))
        import random
        random.seed(42); print(random.randint(1, 100), random.choice("abc"))
    """,
    "nested_functions_and_recursion": """
        def outer(n):
            def rec(k):
                return 1 if k <= 1 else k * rec(k - 1)
            return rec(n)
        print(outer(20))
        def hanoi(n, a="A", b="B", c="C", moves=None):
            moves = [] if moves is None else moves
            if n:
                hanoi(n - 1, a, c, b, moves); moves.append((a, c)); hanoi(n - 1, b, a, c, moves)
            return moves
        print(len(hanoi(8)))
        def deep(n):
            return 0 if n == 0 else 1 + deep(n - 1)
        print(deep(500))
    """,
    "recursion_error": """
        def forever(n):
            return forever(n + 1)
        try:
            forever(0)
        except RecursionError as e:
            print("caught", e)
    """,
    "del_and_names": """
        a = [1, 2, 3, 4]
        del a[0], a[-1]
        d = {"x": 1, "y": 2}; del d["x"]
        b = 5; del b
        print(a, d)
        print(b)
    """,
    "class_attributes_and_private_names": """
        class Account:
            count = 0
            __secret = "s"
            def __init__(self):
                Account.count += 1
                self.__balance = 10
            def peek(self):
                return self.__balance, self.__secret, self._Account__balance
        a = Account(); Account()
        print(Account.count, a.peek(), hasattr(a, "__balance"))
    """,
    "int_str_conversions": """
        print(str(10 ** 50), int("9" * 40) + 1, 2 ** 100 % 97, (-2) ** 3, 7 // -2, round(-0.5), round(1234.5678, -2))
        print("%d items" % 3, f"{1/3:.5f}", 1 / 3, 2 / 3, 10 / 4, 1e300 * 1e10, -(2 ** 63))
    """,
    "fast_paths_for_locals_and_loops": """
        def divisors(n):
            out = []
            for j in range(2, n):
                if n % j == 0 and j * j <= n:
                    out.append(j)
            return out
        print(divisors(36), divisors(13))
        def unbound_right():
            a = 1
            return a + b
            b = 2
        def unbound_left():
            return c < 1
            c = 0
        for fn in (unbound_right, unbound_left):
            try:
                fn()
            except UnboundLocalError as e:
                print(e)
        class K:
            for q in range(3):
                pass
        print(K.q)
        def h():
            global gv
            for gv in "ab":
                pass
        h()
        print(gv)
        for m in []:
            pass
        else:
            print("empty else")
        print(m)
    """,
    "yield_as_value_in_every_statement": """
        def g():
            total = 0
            x = yield "first"
            total += yield x
            y: int = yield total
            for i in range(2):
                try:
                    next(iter([]))
                except StopIteration:
                    sent = yield ("stop", i)
                    total += sent or 0
            with open_ctx() as c:
                match c:
                    case [a, b]:
                        got = yield from inner(a, b)
            return (yield (y, got))

        class open_ctx:
            def __enter__(self):
                return [1, 2]
            def __exit__(self, *exc):
                print("exit", exc[0])
                return False

        def inner(a, b):
            r = yield a
            yield b
            return r

        it = g()
        out = [next(it)]
        for v in (10, 20, 30, None, 5, "ri", None, "fin"):
            try:
                out.append(it.send(v))
            except StopIteration as e:
                out.append(("returned", e.value))
        print(out)
        def stops():
            yield 1
            next(iter([]))
        try:
            list(stops())
        except RuntimeError as e:
            print(type(e).__name__, e)
    """,
    "fast_expression_paths": """
        class V:
            def __init__(self, v):
                self.v = v
            def __mod__(self, o):
                print("mod", self.v, o)
                return V(self.v % o)
            def __eq__(self, o):
                return self.v == o
        def f(n, items):
            a = n % 3 == 0 or n < 0 < 1 and not items
            b = [x * 2 for x in items if x % 2] + sorted({y for y in items})
            c = V(n) % 4 == n % 4
            d = items[1:][::-1][0] if items else len(str(n))
            e = [[p + q for q in range(2)] for p in range(2)]
            return a, b, c, d, e, abs(-n), n // 2 ** 2
        print(f(9, [3, 1, 2]), f(-4, []))
        def unbound(flag):
            if flag:
                late = 1
            return flag and late + 1
        print(unbound(False), unbound(True))
        def free():
            def inner():
                return missing_later * 2
            r = inner()
            missing_later = 3
            return r
        try:
            free()
        except NameError as exc:
            print(exc)
        print([q for q in range(3) if undefined_name] if False else "skipped")
        try:
            print([q for q in range(3) if undefined_name])
        except NameError as exc:
            print(exc)
        print(f(1, [1]) + None)
    """,
    "system_exit_is_failure": """
        print("before")
        raise SystemExit(0)
    """,
}


SET_ORDER = """
print(list({"banana", "apple", "cherry", "fig"}), [x for x in {"k", "j", "z", "q"}])
for w in {"one", "two", "three"}:
    print(w)
print(list({3, 1, 2, -7, 100}), list(set("hello world".split())), sorted({"b", "a"}))
"""


def test_set_order_matches_cpython_with_fixed_hash_seed() -> None:
    # Workers run with PYTHONHASHSEED=0, so iterating a set of strings gives the order a
    # `PYTHONHASHSEED=0 python` gives, on every run (pass counts must be reproducible).
    plain = subprocess.run(
        [sys.executable, "-s", "-P", "-c", SET_ORDER],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
    ).stdout
    outs = []
    for _ in range(2):  # two fresh pools: fresh worker processes
        with SandboxPool(workers=1, timeout=5) as pool:
            outs.append(pool.run(SET_ORDER).stdout)
    assert outs == [plain, plain]


def _cpython(source: str) -> tuple[str, str | None]:
    """Output and 'Type: message' (or None) of a trusted snippet in plain CPython."""
    buf = io.StringIO()
    error = None
    with contextlib.redirect_stdout(buf):
        try:
            exec(compile(source, "<snippet>", "exec"), {"__name__": "__sandbox__"})
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we compare
            text = str(exc)
            error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return buf.getvalue(), error


CONTEXTS = ("module", "function", "generator")
_BLOCKS = ("body", "orelse", "finalbody")


class _YieldFirst(ast.NodeTransformer):
    """A `yield` first in every block of the snippet's own statements (not in the bodies of
    the functions and classes it defines)."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return node
        super().generic_visit(node)
        if isinstance(node, ast.stmt) or isinstance(node, (ast.excepthandler, ast.match_case)):
            for field in _BLOCKS:
                block = getattr(node, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    block.insert(0, ast.Expr(ast.Yield(None)))
        return node


def in_context(source: str, context: str) -> str | None:
    """The snippet as a module, a function body or a generator body; None where CPython does
    not compile it there (`import *` inside a function)."""
    if context == "module":
        return source
    tree = ast.parse(source)
    body = tree.body
    if context == "generator":
        body = [ast.Expr(ast.Yield(None)), *(_YieldFirst().visit(stmt) for stmt in body)]
    fn = ast.FunctionDef(
        name="snippet_body", args=ast.arguments([], [], None, [], [], None, []), body=body, decorator_list=[]
    )
    run = "snippet_body()" if context == "function" else "for _ in snippet_body():\n    pass"
    wrapped = ast.unparse(ast.fix_missing_locations(ast.Module([fn], []))) + "\n" + run + "\n"
    try:
        compile(wrapped, "<snippet>", "exec")
    except SyntaxError:
        return None
    return wrapped


@pytest.fixture(scope="module")
def results() -> dict:
    sources = {}
    for k, v in SNIPPETS.items():
        for context in CONTEXTS:
            src = in_context(textwrap.dedent(v).strip() + "\n", context)
            if src is not None:
                sources[k, context] = src
    with SandboxPool(workers=2, timeout=10) as pool:
        ran = list(pool.map((src, []) for src in sources.values()))
    return {k: (src, res) for (k, src), res in zip(sources.items(), ran, strict=False)}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_same_as_cpython(name: str, context: str, results: dict) -> None:
    if (name, context) not in results:
        pytest.skip(f"CPython does not compile this snippet as a {context} body")
    source, res = results[name, context]
    expected_out, expected_err = _cpython(source)
    assert res.stdout == expected_out
    if expected_err is None:
        assert (res.status, res.reason) == ("ok", "")
    else:
        assert (res.status, res.reason) == ("failed", expected_err)


def test_most_snippets_run_in_every_context(results: dict) -> None:
    for context in CONTEXTS:
        assert sum(1 for _, c in results if c == context) >= len(SNIPPETS) - 3, context


def test_snippets_exercise_both_outcomes(results: dict) -> None:
    # The harness compares failures too: these snippets must raise in CPython.
    failing = {k for (k, c), (src, _) in results.items() if c == "module" and _cpython(src)[1] is not None}
    assert failing == {
        "call_errors",
        "comprehension_class_scope_error",
        "del_and_names",
        "exception_name_unbound_after_except",
        "fast_expression_paths",
        "fast_paths_for_locals_and_loops",
        "raise_from_and_bare_raise",
        "star_args",
        "system_exit_is_failure",
        "unbound_local",
        "with_statement",
    }


# Steps each program costs in the closure compiler (one per statement run, one per loop or
# comprehension item), measured before the fast paths existed; they must cost the same.
STEP_COSTS = {
    "x = [i for i in range(100)]": 101,
    "x = [i for i in range(100) if (lambda: 1)()]": 201,
    "for i in range(10):\n    if i % 2:\n        x = i\n    else:\n        pass\n": 21,
    "def f():\n    for i in range(10):\n        if i % 2:\n            x = i\n        else:\n            pass\nf()\n": 23,
    "i = 0\nwhile i < 10:\n    i += 1\n    if i > 100:\n        break\n": 22,
}


@pytest.mark.parametrize("source", sorted(STEP_COSTS))
def test_fast_paths_charge_the_step_budget_like_the_closures(source: str) -> None:
    from prefcurate.sandbox.interpreter import Interpreter
    from prefcurate.sandbox.policy import StepLimit

    cost = STEP_COSTS[source]
    ok = Interpreter(max_steps=cost)
    ok.run(source)
    assert ok.ctx.steps == 0
    with pytest.raises(StepLimit):
        Interpreter(max_steps=cost - 1).run(source)


def test_refused_construct_says_so() -> None:
    with SandboxPool(workers=1, timeout=5) as pool:
        res = pool.run("async def f():\n    await g()\n")
        assert res.status == "refused"
        assert res.reason == "refused: async code is not supported by the sandbox (line 1)"
        res = pool.run("x = [1]\nprint(x.__len__())\n")
        assert (res.status, res.reason) == (
            "refused",
            "refused: access to attribute '__len__' is not allowed in the sandbox (line 2)",
        )
        assert pool.run("print([1] + [2], len([1]))\n").stdout == "[1, 2] 1\n"
