"""Compiling expressions: constants, operators, containers, calls, attributes (through the
policy), f-strings and lambdas. Names and assignment targets are in names.py,
comprehensions in comprehensions.py, CPython's folded set constants in constants.py."""

from __future__ import annotations

import ast
import operator
from typing import Any

from . import policy
from .compiler_parts import CompilerBase
from .constants import _folded_set
from .policy import PolicyError, checked_getattr, is_dunder
from .runtime import Env, Fn, _refuse
from .safe_builtins import _eval

BINOPS: dict[type, Fn] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
    ast.MatMult: operator.matmul,
}
INPLACE: dict[type, Fn] = {
    ast.Add: operator.iadd,
    ast.Sub: operator.isub,
    ast.Mult: operator.imul,
    ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv,
    ast.Mod: operator.imod,
    ast.Pow: operator.ipow,
    ast.LShift: operator.ilshift,
    ast.RShift: operator.irshift,
    ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor,
    ast.BitAnd: operator.iand,
    ast.MatMult: operator.imatmul,
}
CMPOPS: dict[type, Fn] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
UNARY: dict[type, Fn] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}


class ExpressionCompiler(CompilerBase):
    """Mixin of `Compiler`: `e_<Node>` methods."""

    # -- expressions -------------------------------------------------------------------------
    def e_Constant(self, node: ast.Constant) -> Fn:
        v = node.value
        return lambda env: v

    def e_Name(self, node: ast.Name) -> Fn:
        return self.load_name(node.id, node)

    def e_NamedExpr(self, node: ast.NamedExpr) -> Fn:
        value = self.expr(node.value)
        store = self.store_name(node.target.id)

        def walrus(env: Env) -> Any:
            v = value(env)
            store(env, v)
            return v

        return walrus

    def _local(self, node: ast.expr) -> str | None:
        """The name, if `node` is a function-local variable (read straight from `env.l`)."""
        if isinstance(node, ast.Name) and self.scope.resolve(node.id)[0] == "local":
            return node.id
        return None

    def _binary(self, op: Fn, lnode: ast.expr, rnode: ast.expr) -> Fn:
        """`op(left, right)`, specialised for the hot shapes of loops (`n % j`, `x + 1`, `i < n`):
        a constant or local operand is read inline, saving a closure call each. Evaluation
        order and errors are those of the general form."""
        ln, rn = self._local(lnode), self._local(rnode)
        rconst = isinstance(rnode, ast.Constant)
        if ln is not None and (rn is not None or rconst):
            lmsg = f"cannot access local variable '{ln}' where it is not associated with a value"
            if rconst:
                c = rnode.value  # type: ignore[attr-defined]

                def local_const(env: Env) -> Any:
                    try:
                        a = env.l[ln]
                    except KeyError:
                        raise UnboundLocalError(lmsg) from None
                    return op(a, c)

                return local_const
            rmsg = f"cannot access local variable '{rn}' where it is not associated with a value"

            def local_local(env: Env) -> Any:
                loc = env.l
                try:
                    a = loc[ln]
                except KeyError:
                    raise UnboundLocalError(lmsg) from None
                try:
                    b = loc[rn]
                except KeyError:
                    raise UnboundLocalError(rmsg) from None
                return op(a, b)

            return local_local
        left = self.expr(lnode)
        if rconst:
            c = rnode.value  # type: ignore[attr-defined]
            return lambda env: op(left(env), c)
        right = self.expr(rnode)
        return lambda env: op(left(env), right(env))

    def e_BinOp(self, node: ast.BinOp) -> Fn:
        return self._binary(BINOPS[type(node.op)], node.left, node.right)

    def e_UnaryOp(self, node: ast.UnaryOp) -> Fn:
        op = UNARY[type(node.op)]
        operand = self.expr(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        return lambda env: op(operand(env))

    def e_BoolOp(self, node: ast.BoolOp) -> Fn:
        values = tuple(self.expr(v) for v in node.values)
        if isinstance(node.op, ast.And):

            def and_(env: Env) -> Any:
                v = None
                for f in values:
                    v = f(env)
                    if not v:
                        return v
                return v

            return and_

        def or_(env: Env) -> Any:
            v = None
            for f in values:
                v = f(env)
                if v:
                    return v
            return v

        return or_

    def e_Compare(self, node: ast.Compare) -> Fn:
        if len(node.ops) == 1:
            return self._binary(CMPOPS[type(node.ops[0])], node.left, node.comparators[0])
        left = self.expr(node.left)
        ops = tuple(CMPOPS[type(o)] for o in node.ops)
        rights = tuple(self.expr(c) for c in node.comparators)

        def chain(env: Env) -> Any:
            a = left(env)
            r: Any = True
            for op, rf in zip(ops, rights, strict=False):
                b = rf(env)
                r = op(a, b)
                if not r:
                    return r
                a = b
            return r

        return chain

    def e_IfExp(self, node: ast.IfExp) -> Fn:
        test, body, orelse = self.expr(node.test), self.expr(node.body), self.expr(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def _elements(self, elts: list[ast.expr]) -> Fn:
        """Closure returning a list of the values, expanding *starred elements."""
        if not any(isinstance(e, ast.Starred) for e in elts):
            fns = tuple(self.expr(e) for e in elts)
            return lambda env: [f(env) for f in fns]
        parts = tuple(
            (isinstance(e, ast.Starred), self.expr(e.value if isinstance(e, ast.Starred) else e))
            for e in elts
        )

        def build(env: Env) -> list:
            out: list = []
            for star, f in parts:
                if star:
                    out.extend(f(env))
                else:
                    out.append(f(env))
            return out

        return build

    def e_List(self, node: ast.List) -> Fn:
        return self._elements(node.elts)

    def e_Tuple(self, node: ast.Tuple) -> Fn:
        elems = self._elements(node.elts)
        return lambda env: tuple(elems(env))

    def iter_expr(self, node: ast.expr) -> Fn:
        """The iterable of a `for` or comprehension: a set of constants there is CPython's
        frozenset constant (see `_folded_set`)."""
        folded = _folded_set(node, "iter", self.frozen)
        if folded is not None:
            return lambda env: folded
        return self.expr(node)

    def e_Set(self, node: ast.Set) -> Fn:
        folded = _folded_set(node, "display", self.frozen)
        if folded is not None:
            return lambda env: set(folded)
        elems = self._elements(node.elts)
        return lambda env: set(elems(env))

    def e_Dict(self, node: ast.Dict) -> Fn:
        items = tuple(
            (None if k is None else self.expr(k), self.expr(v))
            for k, v in zip(node.keys, node.values, strict=False)
        )

        def build(env: Env) -> dict:
            d: dict = {}
            for k, v in items:
                if k is None:
                    d.update(v(env))
                else:
                    key = k(env)
                    d[key] = v(env)
            return d

        return build

    def e_JoinedStr(self, node: ast.JoinedStr) -> Fn:
        parts = tuple(self.expr(v) for v in node.values)
        return lambda env: "".join([p(env) for p in parts])

    def e_FormattedValue(self, node: ast.FormattedValue) -> Fn:
        value = self.expr(node.value)
        conv = {-1: None, 115: str, 114: repr, 97: ascii}[node.conversion]
        spec = self.expr(node.format_spec) if node.format_spec is not None else None

        def fmt(env: Env) -> str:
            v = value(env)
            if conv is not None:
                v = conv(v)
            return format(v, spec(env) if spec is not None else "")

        return fmt

    def e_Attribute(self, node: ast.Attribute) -> Fn:
        name = node.attr
        value = self.expr(node.value)
        if is_dunder(name) and name not in policy.READABLE_DUNDERS or name in policy.BLOCKED_ATTRS:
            err = _refuse(node, f"access to attribute '{name}' is not allowed in the sandbox")

            def refused(env: Env) -> Any:
                value(env)
                raise PolicyError(str(err))

            return refused
        if name in ("format", "format_map") or name in policy.BLOCKED_ON_HOST_TYPES:
            return lambda env: checked_getattr(value(env), name)
        if policy.is_private(name):

            def private(env: Env) -> Any:
                obj = value(env)
                policy.check_private(obj, name)
                return getattr(obj, name)

            return private
        return lambda env: getattr(value(env), name)

    def e_Subscript(self, node: ast.Subscript) -> Fn:
        value, index = self.expr(node.value), self.expr(node.slice)
        return lambda env: value(env)[index(env)]

    def e_Slice(self, node: ast.Slice) -> Fn:
        lo = self.expr(node.lower) if node.lower else None
        hi = self.expr(node.upper) if node.upper else None
        st = self.expr(node.step) if node.step else None
        return lambda env: slice(lo(env) if lo else None, hi(env) if hi else None, st(env) if st else None)

    def e_Starred(self, node: ast.Starred) -> Fn:
        raise _refuse(node, "a starred expression is not allowed here")

    def e_Yield(self, node: ast.AST) -> Fn:
        raise _refuse(
            node,
            "'yield' inside a larger expression is not supported by the sandbox "
            "(use it as a statement, an assignment value or a return value)",
        )

    e_YieldFrom = e_Yield

    def e_Await(self, node: ast.AST) -> Fn:
        raise _refuse(node, "async code (await) is not supported by the sandbox")

    def e_Call(self, node: ast.Call) -> Fn:
        func = self.expr(node.func)
        simple = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if isinstance(node.func, ast.Name) and node.func.id in ("super", "eval"):
            return self._special_call(node, func)
        if simple:
            args = tuple(self.expr(a) for a in node.args)
            n = len(args)
            if n == 0:
                return lambda env: func(env)()
            if n == 1:
                a0 = args[0]
                return lambda env: func(env)(a0(env))
            if n == 2:
                a0, a1 = args
                return lambda env: func(env)(a0(env), a1(env))
            if n == 3:
                a0, a1, a2 = args
                return lambda env: func(env)(a0(env), a1(env), a2(env))
            return lambda env: func(env)(*[a(env) for a in args])
        pos = self._elements(node.args)
        kws = tuple((k.arg, self.expr(k.value)) for k in node.keywords)

        def call(env: Env) -> Any:
            f = func(env)
            args = pos(env)
            kwargs: dict = {}
            for name, vf in kws:
                if name is None:
                    mapping = vf(env)
                    for key in mapping.keys():
                        if key in kwargs:
                            raise TypeError(f"got multiple values for keyword argument '{key}'")
                        kwargs[key] = mapping[key]
                else:
                    if name in kwargs:
                        raise TypeError(f"got multiple values for keyword argument '{name}'")
                    kwargs[name] = vf(env)
            return f(*args, **kwargs)

        return call

    def _special_call(self, node: ast.Call, func: Fn) -> Fn:
        """`super()` needs the class cell and first argument; `eval(s)` needs the caller's
        scope. Both are decided at run time: only when the name really is the builtin."""
        name = node.func.id  # type: ignore[attr-defined]
        pos = self._elements(node.args)
        kws = tuple((k.arg, self.expr(k.value)) for k in node.keywords)
        ctx = self.ctx
        firstarg = self.scope.firstarg
        B = self.names

        def args_of(env: Env) -> tuple[list, dict]:
            kwargs: dict = {}
            for k, vf in kws:
                if k is None:
                    kwargs.update(vf(env))
                else:
                    kwargs[k] = vf(env)
            return pos(env), kwargs

        def special(env: Env) -> Any:
            f = func(env)
            args, kwargs = args_of(env)
            if name == "super" and f is super and not args and not kwargs:
                cell = env.cls
                if cell is None or cell[0] is None:
                    raise RuntimeError("super(): __class__ cell not found")
                if firstarg is None or firstarg not in env.l:
                    raise RuntimeError("super(): no arguments")
                return super(cell[0], env.l[firstarg])
            if name == "eval" and f is B.get("eval"):
                return _eval(ctx, env, *args, names=B, **kwargs)
            return f(*args, **kwargs)

        return special

    def e_Lambda(self, node: ast.Lambda) -> Fn:
        body: list[ast.stmt] = [ast.Return(value=node.body, lineno=node.lineno, col_offset=node.col_offset)]
        return self.function(node, "<lambda>", node.args, body, [], is_lambda=True)
