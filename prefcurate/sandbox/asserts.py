"""Compiling the asserts of test code: operands must be plain data, the comparison runs on
those values (never a candidate-defined method), and a trace goes to the parent, which
recomputes it (`plain.evaluate_trace`) before a unit counts as passed."""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Callable
from typing import Any

from . import plain
from .compiler_parts import CompilerBase
from .runtime import Env, Fn

_NOT_ENCODED = object()
# Exact host types whose truth value never runs candidate code: always true (match objects,
# compiled patterns, functions, iterators) or their length (range, dict views).
_HOST_TRUTHY = frozenset(
    {
        re.Match,
        re.Pattern,
        range,
        type({}.keys()),
        type({}.values()),
        type({}.items()),
        types.FunctionType,
        types.BuiltinFunctionType,
        types.GeneratorType,
        map,
        filter,
        zip,
        enumerate,
        reversed,
        type(iter([])),
        type(iter(())),
        type(iter("")),
        type(iter(range(0))),
    }
)


def _plain(v: Any) -> Any:
    try:
        return plain.encode(v)
    except plain.NotPlain as exc:
        raise AssertionError(
            f"test operand is not plain data ({exc}): the sandbox decides tests on builtin values only"
        ) from None


class AssertCompiler(CompilerBase):
    """Mixin of `Compiler`: `assert` statements, plain or trusted (test code)."""

    def s_Assert(self, node: ast.Assert) -> Fn:
        msg = self.expr(node.msg) if node.msg is not None else None
        if self.trusted:
            return self._trusted_assert(node, msg)
        test = self.expr(node.test)

        def assert_(env: Env) -> None:
            if not test(env):
                if msg is not None:
                    raise AssertionError(msg(env))
                raise AssertionError

        return assert_

    def _trusted_assert(self, node: ast.Assert, msg: Fn | None) -> Fn:
        """An assert in test code: operands must be plain data, the comparison runs on them
        (never a candidate-defined method), and a trace goes to the parent for re-checking."""
        trace = self._trace(node.test)
        ctx = self.ctx
        source = ast.unparse(node.test)
        if len(source) > 200:
            source = source[:200] + "..."

        def trusted_assert(env: Env) -> None:
            ok, tr = trace(env)
            if not ok:
                if msg is not None:
                    raise AssertionError(msg(env))
                raise AssertionError(f"assert {source}")
            ctx.asserts.append(tr)

        return trusted_assert

    def _trace(self, node: ast.expr) -> Callable[[Env], tuple[bool, Any]]:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._trace(node.operand)

            def not_(env: Env) -> tuple[bool, Any]:
                ok, tr = inner(env)
                return (not ok), ["not", tr]

            return not_
        if isinstance(node, ast.BoolOp):
            parts = tuple(self._trace(v) for v in node.values)
            is_and = isinstance(node.op, ast.And)
            kind = "and" if is_and else "or"

            def boolop(env: Env) -> tuple[bool, Any]:
                trs = []
                ok = is_and
                for p in parts:
                    ok, tr = p(env)
                    trs.append(tr)
                    if ok != is_and:
                        break
                return ok, [kind, trs]

            return boolop
        if isinstance(node, ast.Compare):
            left = self.expr(node.left)
            ops = tuple(type(o).__name__ for o in node.ops)
            rights = tuple(self.expr(c) for c in node.comparators)

            def compare(env: Env) -> tuple[bool, Any]:
                a = left(env)
                ea: Any = _NOT_ENCODED
                vals: list = []
                trace_ops: list = []
                ok = True
                for opname, rf in zip(ops, rights, strict=False):
                    b = rf(env)
                    if opname in ("Is", "IsNot"):
                        r = (a is b) if opname == "Is" else (a is not b)
                        if ea is _NOT_ENCODED:
                            vals.append(None)
                        else:
                            vals.append(ea)
                        trace_ops.append(["id", bool(r)])
                        eb: Any = _NOT_ENCODED
                    else:
                        if ea is _NOT_ENCODED:
                            ea = _plain(a)
                        eb = _plain(b)
                        vals.append(ea)
                        r = plain.COMPARE[opname](a, b)
                        trace_ops.append(opname)
                    ok = bool(r)
                    if not ok:
                        vals.append(eb if eb is not _NOT_ENCODED else None)
                        break
                    a, ea = b, eb
                else:
                    vals.append(ea if ea is not _NOT_ENCODED else None)
                return ok, ["cmp", vals, trace_ops]

            return compare
        value = self.expr(node)

        def truth(env: Env) -> tuple[bool, Any]:
            v = value(env)
            if type(v) in _HOST_TRUTHY:
                # A library object whose truth the library defines (`assert re.search(...)`):
                # decided here by host code, sent as a plain bool.
                b = bool(v)
                return b, ["val", b]
            enc = _plain(v)
            return bool(v), ["val", enc]

        return truth
