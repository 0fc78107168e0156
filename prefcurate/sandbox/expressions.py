"""Compiling expressions: names, operators, containers, calls, attributes (through the
policy), f-strings, comprehensions, lambdas and assignment targets."""

from __future__ import annotations

import ast
import operator
import types
from collections.abc import Callable
from typing import Any

from . import policy
from .policy import PolicyError, StepLimit, checked_getattr, is_dunder
from .runtime import Ctx, Env, Fn, Names, _refuse, _unpack, owned_setattr
from .safe_builtins import _eval
from .scope import Scope, _target_names

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


class ExpressionCompiler:
    """Mixin of `Compiler`: `e_<Node>` methods, names, comprehensions, assignment targets."""

    ctx: Ctx
    names: Names
    scope: Scope
    frozen: dict

    # -- names -------------------------------------------------------------------------------
    def load_name(self, name: str, node: ast.AST | None = None) -> Fn:
        res = self.scope.resolve(name)
        B = self.names
        kind = res[0]
        if kind == "local":
            msg = f"cannot access local variable '{name}' where it is not associated with a value"

            def load_local(env: Env) -> Any:
                try:
                    return env.l[name]
                except KeyError:
                    raise UnboundLocalError(msg) from None

            return load_local
        if kind == "free":
            d = res[1]

            def load_free(env: Env) -> Any:
                try:
                    return env.up[d][name]
                except KeyError:
                    raise NameError(
                        f"cannot access free variable '{name}' where it is not associated with a value in enclosing scope"
                    ) from None

            return load_free
        if kind == "global":

            def load_global(env: Env) -> Any:
                try:
                    return env.g[name]
                except KeyError:
                    try:
                        return B[name]
                    except KeyError:
                        raise NameError(f"name '{name}' is not defined") from None

            return load_global
        if kind == "class":
            fallback = self._fallback_loader(name, res[1])

            def load_class(env: Env) -> Any:
                try:
                    return env.l[name]
                except KeyError:
                    return fallback(env)

            return load_class

        def load_dynamic(env: Env) -> Any:
            if name in env.l:
                return env.l[name]
            for d in env.up:
                if name in d:
                    return d[name]
            if name in env.g:
                return env.g[name]
            try:
                return B[name]
            except KeyError:
                raise NameError(f"name '{name}' is not defined") from None

        return load_dynamic

    def _fallback_loader(self, name: str, res: tuple) -> Fn:
        B = self.names
        if res[0] == "free":
            d = res[1]

            def free(env: Env) -> Any:
                try:
                    return env.up[d][name]
                except KeyError:
                    raise NameError(f"name '{name}' is not defined") from None

            return free

        def glob(env: Env) -> Any:
            try:
                return env.g[name]
            except KeyError:
                try:
                    return B[name]
                except KeyError:
                    raise NameError(f"name '{name}' is not defined") from None

        return glob

    def store_name(self, name: str) -> Fn:
        res = self.scope.resolve(name)
        kind = res[0]
        if kind in ("local", "class", "dynamic"):

            def store_local(env: Env, v: Any) -> None:
                env.l[name] = v

            return store_local
        if kind == "free":
            d = res[1]

            def store_free(env: Env, v: Any) -> None:
                env.up[d][name] = v

            return store_free

        def store_global(env: Env, v: Any) -> None:
            env.g[name] = v

        return store_global

    def del_name(self, name: str) -> Fn:
        res = self.scope.resolve(name)
        kind = res[0]

        def target(env: Env) -> dict:
            if kind in ("local", "class", "dynamic"):
                return env.l
            if kind == "free":
                return env.up[res[1]]
            return env.g

        def delete(env: Env) -> None:
            try:
                del target(env)[name]
            except KeyError:
                if kind == "local":
                    raise UnboundLocalError(
                        f"cannot access local variable '{name}' where it is not associated with a value"
                    ) from None
                raise NameError(f"name '{name}' is not defined") from None

        return delete

    # -- expressions -------------------------------------------------------------------------
    def e_Constant(self, node: ast.Constant) -> Fn:
        v = node.value
        return lambda env: v

    def e_Name(self, node: ast.Name) -> Fn:
        return self.load_name(node.id, node)

    def e_NamedExpr(self, node: ast.NamedExpr) -> Fn:
        value = self.expr(node.value)
        store = self.store_name(node.target.id)  # type: ignore[attr-defined]

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
        body = [ast.Return(value=node.body, lineno=node.lineno, col_offset=node.col_offset)]
        return self.function(node, "<lambda>", node.args, body, [], is_lambda=True)

    # -- comprehensions ----------------------------------------------------------------------
    def _comprehension(self, node: Any) -> tuple[Fn, Callable[[Env], Env], Fn]:
        """Returns (first_iter, make_env, combos) where combos(cenv, it) yields once per
        innermost binding, with the comprehension's own scope."""
        gens = node.generators
        for g in gens:
            if g.is_async:
                raise _refuse(node, "async comprehensions are not supported by the sandbox")
        first = self.iter_expr(gens[0].iter)
        outer = self.scope
        scope = Scope("comp", outer)
        for g in gens:
            _target_names(g.target, scope.assigned)
        self.scope = scope
        try:
            levels = []
            for i, g in enumerate(gens):
                it = None if i == 0 else self.iter_expr(g.iter)
                assign = self.assign_target(g.target)
                ifs = tuple(self.expr(c) for c in g.ifs)
                levels.append((it, assign, ifs))
            compiled = self._comp_body(node)
        finally:
            self.scope = outer
        parent_fn_like = outer.fn_like
        ctx = self.ctx
        levels_t = tuple(levels)
        last = len(levels_t) - 1

        def make_env(env: Env) -> Env:
            up = (env.l,) + env.up if parent_fn_like else env.up
            return Env({}, up, env.g, env.cls)

        def over() -> None:
            raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")

        def combos(cenv: Env, it0: Any) -> Any:
            def rec(i: int, it: Any) -> Any:
                _, assign, ifs = levels_t[i]
                for x in it:
                    ctx.steps -= 1
                    if ctx.steps < 0:
                        over()
                    assign(cenv, x)
                    ok = True
                    for c in ifs:
                        if not c(cenv):
                            ok = False
                            break
                    if ok:
                        if i == last:
                            yield None
                        else:
                            yield from rec(i + 1, levels_t[i + 1][0](cenv))

            return rec(0, it0)

        return first, make_env, (combos, compiled, levels_t)

    def _comp_body(self, node: Any) -> Any:
        if isinstance(node, ast.DictComp):
            return (self.expr(node.key), self.expr(node.value))
        return self.expr(node.elt)

    def _fast_single(self, levels: tuple) -> bool:
        return len(levels) == 1

    def e_ListComp(self, node: ast.ListComp) -> Fn:
        first, make_env, (combos, elt, levels) = self._comprehension(node)
        ctx = self.ctx
        if len(levels) == 1:
            _, assign, ifs = levels[0]

            def over() -> None:
                raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")

            gen0 = node.generators[0]
            if isinstance(gen0.target, ast.Name) and len(ifs) <= 1:
                # `[elt for name in it if cond]`: the name is stored straight into the
                # comprehension's own scope, the one condition called directly.
                name = gen0.target.id
                cond = ifs[0] if ifs else None

                def listcomp_name(env: Env) -> list:
                    it = iter(first(env))
                    cenv = make_env(env)
                    loc = cenv.l
                    out = []
                    append = out.append
                    for x in it:
                        ctx.steps -= 1
                        if ctx.steps < 0:
                            over()
                        loc[name] = x
                        if cond is None or cond(cenv):
                            append(elt(cenv))
                    return out

                return listcomp_name

            def listcomp1(env: Env) -> list:
                it = iter(first(env))
                cenv = make_env(env)
                out = []
                for x in it:
                    ctx.steps -= 1
                    if ctx.steps < 0:
                        over()
                    assign(cenv, x)
                    for c in ifs:
                        if not c(cenv):
                            break
                    else:
                        out.append(elt(cenv))
                return out

            return listcomp1

        def listcomp(env: Env) -> list:
            it = iter(first(env))
            cenv = make_env(env)
            return [elt(cenv) for _ in combos(cenv, it)]

        return listcomp

    def e_SetComp(self, node: ast.SetComp) -> Fn:
        first, make_env, (combos, elt, _levels) = self._comprehension(node)

        def setcomp(env: Env) -> set:
            it = iter(first(env))
            cenv = make_env(env)
            return {elt(cenv) for _ in combos(cenv, it)}

        return setcomp

    def e_DictComp(self, node: ast.DictComp) -> Fn:
        first, make_env, (combos, (key, value), _levels) = self._comprehension(node)

        def dictcomp(env: Env) -> dict:
            it = iter(first(env))
            cenv = make_env(env)
            out = {}
            for _ in combos(cenv, it):
                k = key(cenv)
                out[k] = value(cenv)
            return out

        return dictcomp

    def e_GeneratorExp(self, node: ast.GeneratorExp) -> Fn:
        first, make_env, (combos, elt, _levels) = self._comprehension(node)

        def genexp(env: Env) -> Any:
            it = iter(first(env))
            cenv = make_env(env)

            def gen() -> Any:
                for _ in combos(cenv, it):
                    yield elt(cenv)

            return gen()

        return genexp

    # -- assignment targets ------------------------------------------------------------------
    def assign_target(self, node: ast.expr) -> Callable[[Env, Any], None]:
        if isinstance(node, ast.Name):
            return self.store_name(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            return self._unpack_target(node.elts, node)
        if isinstance(node, ast.Attribute):
            obj = self.expr(node.value)
            name = node.attr
            ctx = self.ctx
            return lambda env, v: owned_setattr(ctx, obj(env), name, v)
        if isinstance(node, ast.Subscript):
            obj, index = self.expr(node.value), self.expr(node.slice)

            def setitem(env: Env, v: Any) -> None:
                o = obj(env)
                o[index(env)] = v

            return setitem
        if isinstance(node, ast.Starred):
            raise _refuse(node, "a starred assignment target must be in a list or tuple")
        raise _refuse(node, f"cannot assign to {type(node).__name__}")

    def _unpack_target(self, elts: list[ast.expr], node: ast.AST) -> Callable[[Env, Any], None]:
        stars = [i for i, e in enumerate(elts) if isinstance(e, ast.Starred)]
        if len(stars) > 1:
            raise _refuse(node, "multiple starred expressions in assignment")
        if not stars:
            targets = tuple(self.assign_target(e) for e in elts)
            n = len(targets)

            def unpack(env: Env, value: Any) -> None:
                for t, v in zip(targets, _unpack(value, n), strict=False):
                    t(env, v)

            return unpack
        k = stars[0]
        before = tuple(self.assign_target(e) for e in elts[:k])
        star = self.assign_target(elts[k].value)  # type: ignore[attr-defined]
        after = tuple(self.assign_target(e) for e in elts[k + 1 :])

        def unpack_star(env: Env, value: Any) -> None:
            vals = list(value)
            need = len(before) + len(after)
            if len(vals) < need:
                raise ValueError(f"not enough values to unpack (expected at least {need}, got {len(vals)})")
            for t, v in zip(before, vals, strict=False):
                t(env, v)
            star(env, vals[len(before) : len(vals) - len(after)])
            for t, v in zip(after, vals[len(vals) - len(after) :], strict=False):
                t(env, v)

        return unpack_star


def _is_literal(node: ast.expr) -> bool:
    """A constant after CPython's AST folding: a literal, a signed number, a tuple of those."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float, complex)
    if isinstance(node, ast.Tuple):
        return all(_is_literal(e) for e in node.elts)
    return False


def _folded_set(node: ast.expr, how: str, frozen: dict) -> frozenset | None:
    """The frozenset constant CPython's compiler makes of a set display of constants, or None.

    CPython folds `{"a", "b", "c"}` (3+ constants) into a frozenset constant copied into a new
    set, and a set iterated by `for`/a comprehension (any size) into a frozenset constant used
    as is; equal constants of one compilation unit share the first one made. Their table
    histories differ from adding items one by one, so iteration order does too. `frozen` holds
    the frozensets of CPython's own compilation of the unit (`Interpreter.compile` compiles it
    anyway, for its SyntaxErrors), so `list({"a", "b", "c"})` iterates as in plain CPython."""
    if not isinstance(node, ast.Set) or not all(_is_literal(e) for e in node.elts):
        return None
    if how == "display" and len(node.elts) < 3:
        return None
    value = frozenset(ast.literal_eval(e) for e in node.elts)
    found = frozen.get(_const_key(value))
    if found is not None:
        return found
    src = ast.unparse(node)  # not in the unit's constants (an `eval` string): build it alone
    code = compile(f"for _ in {src}: pass" if how == "iter" else f"({src})", "<set>", "exec")
    for c in code.co_consts:
        if type(c) is frozenset:
            return c
    return None


def _const_key(v: Any) -> Any:
    """Equality that also tells 1, 1.0 and True apart, as CPython's constant cache does."""
    if type(v) in (tuple, frozenset):
        return (type(v), type(v)(_const_key(x) for x in v))
    return (type(v), v)


def frozen_constants(code: types.CodeType) -> dict:
    """Every frozenset constant of a compiled unit and its nested code objects, by `_const_key`."""
    out: dict = {}
    stack = [code]
    while stack:
        co = stack.pop()
        for c in co.co_consts:
            if type(c) is frozenset:
                out.setdefault(_const_key(c), c)
            elif isinstance(c, types.CodeType):
                stack.append(c)
    return out
