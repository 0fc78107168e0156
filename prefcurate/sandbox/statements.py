"""Compiling statements: blocks (the step budget), assignment, control flow, try/except, with,
imports (per-run module proxies) and match.

One compiler for module, function and generator bodies: a statement that contains `yield`
inside a generator function is compiled by the same `s_<Node>` method with `gen=True`, and
its run-time closure comes from the same factory (`twofold.py`), made into a generator."""

from __future__ import annotations

import ast
from typing import Any

from .compiler_parts import CompilerBase
from .expressions import INPLACE
from .policy import PolicyError, StepLimit, is_dunder
from .runtime import (
    BREAK,
    CONTINUE,
    RETURN,
    Env,
    Fn,
    StopCarrier,
    _refuse,
    owned_setattr,
)
from .scope import _contains_yield
from .statement_closures import (
    ANN_ASSIGN,
    ASSIGN,
    AUG_ASSIGN,
    EXPR,
    FOR,
    IF,
    MATCH,
    RETURN_VALUE,
    TRY,
    WHILE,
    WITH,
)

# Statements that may hold a `yield` of their generator function (elsewhere it is refused).
GEN_STATEMENTS = frozenset(
    {"Expr", "Assign", "AugAssign", "AnnAssign", "Return", "If", "While", "For", "Try", "With", "Match"}
)


class StatementCompiler(CompilerBase):
    """Mixin of `Compiler`: `s_<Node>` methods, blocks and generator values."""

    def block(self, stmts: list[ast.stmt], gen: bool = False) -> Fn:
        """A statement list; inside a generator function, a generator closure when it holds a
        `yield` (or `gen`: a sibling block does, and the parent runs both the same way)."""
        if self.gen_body and (gen or _contains_yield(stmts)):
            return self._gen_block(stmts)
        fns = tuple(self.stmt(s) for s in stmts)
        ctx = self.ctx
        n = len(fns)

        def over() -> None:
            raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")

        if n == 1:
            s0 = fns[0]

            def run1(env: Env) -> Any:
                ctx.steps -= 1
                if ctx.steps < 0:
                    over()
                return s0(env)

            run1.single = s0  # type: ignore[attr-defined]
            return run1
        if n == 2:
            s0, s1 = fns

            def run2(env: Env) -> Any:
                ctx.steps -= 2
                if ctx.steps < 0:
                    over()
                r = s0(env)
                if r is not None:
                    return r
                return s1(env)

            return run2

        def run(env: Env) -> Any:
            ctx.steps -= n
            if ctx.steps < 0:
                over()
            for s in fns:
                r = s(env)
                if r is not None:
                    return r
            return None

        return run

    def _gen_block(self, stmts: list[ast.stmt]) -> Fn:
        """The same block as a generator: statements with a `yield` run with `yield from`, the
        others as plain closures; the same step charge."""
        items = tuple((y, self.stmt(s, gen=y)) for s in stmts for y in (_contains_yield([s]),))
        ctx = self.ctx
        n = len(items)

        def run(env: Env) -> Any:
            ctx.steps -= n
            if ctx.steps < 0:
                raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")
            try:
                for is_gen, s in items:
                    r = (yield from s(env)) if is_gen else s(env)
                    if r is not None:
                        return r
            except StopIteration as stop:
                raise StopCarrier(stop) from None
            return None

        return run

    def _value(self, node: ast.expr, gen: bool) -> Fn:
        return self.gen_value(node) if gen else self.expr(node)

    def gen_value(self, node: ast.expr) -> Fn:
        """A generator closure producing the value of a yield / yield from expression."""
        if isinstance(node, ast.Yield):
            value = self.expr(node.value) if node.value is not None else None

            def yield_(env: Env) -> Any:
                try:
                    v = value(env) if value is not None else None
                except StopIteration as stop:
                    raise StopCarrier(stop) from None
                return (yield v)

            return yield_
        if isinstance(node, ast.YieldFrom):
            source = self.expr(node.value)

            def yield_from(env: Env) -> Any:
                try:
                    it = source(env)
                except StopIteration as stop:
                    raise StopCarrier(stop) from None
                return (yield from it)

            return yield_from
        raise _refuse(
            node,
            "'yield' inside a larger expression is not supported by the sandbox "
            "(use it as a statement, an assignment value or a return value)",
        )

    # -- statements --------------------------------------------------------------------------
    def s_Expr(self, node: ast.Expr, gen: bool = False) -> Fn:
        return EXPR[gen](self._value(node.value, gen))

    def s_Pass(self, node: ast.Pass) -> Fn:
        return lambda env: None

    def s_Break(self, node: ast.Break) -> Fn:
        return lambda env: BREAK

    def s_Continue(self, node: ast.Continue) -> Fn:
        return lambda env: CONTINUE

    def s_Return(self, node: ast.Return, gen: bool = False) -> Fn:
        if node.value is None:

            def ret_none(env: Env) -> Any:
                env.ret = None
                return RETURN

            return ret_none
        return RETURN_VALUE[gen](self._value(node.value, gen))

    def s_Assign(self, node: ast.Assign, gen: bool = False) -> Fn:
        value = self._value(node.value, gen)
        targets = tuple(self.assign_target(t) for t in node.targets)
        return ASSIGN[gen](value, targets)

    def s_AugAssign(self, node: ast.AugAssign, gen: bool = False) -> Fn:
        op = INPLACE[type(node.op)]
        target = node.target
        a: Any
        b: Any
        if isinstance(target, ast.Name):
            kind, a, b = "name", self.load_name(target.id), self.store_name(target.id)
        elif isinstance(target, ast.Attribute):
            kind, a, b = "attr", self.expr(target.value), target.attr
        elif isinstance(target, ast.Subscript):
            kind, a, b = "item", self.expr(target.value), self.expr(target.slice)
        else:
            raise _refuse(node, "unsupported augmented assignment target")
        return AUG_ASSIGN[gen](kind, op, self._value(node.value, gen), a, b, self.ctx)

    def s_AnnAssign(self, node: ast.AnnAssign, gen: bool = False) -> Fn:
        evaluate_annotation = (
            self.scope.kind in ("module", "class") and not self.scope.future_annotations and node.simple
        )
        ann = self.expr(node.annotation) if evaluate_annotation else None
        is_class = self.scope.kind == "class"
        name = node.target.id if isinstance(node.target, ast.Name) else None
        value = self._value(node.value, gen) if node.value is not None else None
        target = self.assign_target(node.target) if value is not None else None
        return ANN_ASSIGN[gen](value, target, ann, is_class, name)

    def s_If(self, node: ast.If, gen: bool = False) -> Fn:
        test, body = self.expr(node.test), self.block(node.body, gen)
        orelse = self.block(node.orelse, gen) if node.orelse else None
        return IF[gen](test, body, orelse)

    def _single(self, body: Fn, gen: bool) -> Fn | None:
        """The closure of a loop body's one statement (from `block`), for loops that inline
        the body's block."""
        return None if gen else getattr(body, "single", None)

    def _loop_body(self, stmts: list[ast.stmt], gen: bool) -> Fn:
        self.loop_depth += 1
        try:
            return self.block(stmts, gen)
        finally:
            self.loop_depth -= 1

    def s_While(self, node: ast.While, gen: bool = False) -> Fn:
        self.loop_depth += 1  # the test runs once per iteration too
        try:
            test = self.expr(node.test)
        finally:
            self.loop_depth -= 1
        body = self._loop_body(node.body, gen)
        orelse = self.block(node.orelse, gen) if node.orelse else None
        return WHILE[gen](test, body, orelse, self._single(body, gen), self.ctx)

    def s_For(self, node: ast.For, gen: bool = False) -> Fn:
        it = self.iter_expr(node.iter)
        assign = self.assign_target(node.target)
        body = self._loop_body(node.body, gen)
        orelse = self.block(node.orelse, gen) if node.orelse else None
        target = node.target
        kind = self.scope.resolve(target.id)[0] if isinstance(target, ast.Name) else None
        name = (
            target.id
            if isinstance(target, ast.Name) and kind in ("local", "class", "dynamic", "global")
            else None
        )
        single = self._single(body, gen) if name is not None else None
        return FOR[gen](it, assign, body, orelse, name, kind == "global", single, self.ctx)

    def s_AsyncFor(self, node: ast.AST) -> Fn:
        raise _refuse(node, "async code is not supported by the sandbox")

    s_AsyncWith = s_AsyncFor
    s_AsyncFunctionDef = s_AsyncFor

    def s_TryStar(self, node: ast.AST) -> Fn:
        raise _refuse(node, "'except*' is not supported by the sandbox")

    def s_Global(self, node: ast.AST) -> Fn:
        return lambda env: None

    s_Nonlocal = s_Global

    def s_Delete(self, node: ast.Delete) -> Fn:
        fns = tuple(self._delete_target(t) for t in node.targets)

        def delete(env: Env) -> None:
            for f in fns:
                f(env)

        return delete

    def _delete_target(self, node: ast.expr) -> Fn:
        if isinstance(node, ast.Name):
            return self.del_name(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            fns = tuple(self._delete_target(e) for e in node.elts)

            def del_all(env: Env) -> None:
                for f in fns:
                    f(env)

            return del_all
        if isinstance(node, ast.Subscript):
            obj, index = self.expr(node.value), self.expr(node.slice)

            def del_item(env: Env) -> None:
                o = obj(env)
                del o[index(env)]

            return del_item
        if isinstance(node, ast.Attribute):
            obj = self.expr(node.value)
            name = node.attr
            ctx = self.ctx
            return lambda env: owned_setattr(ctx, obj(env), name, None, delete=True)
        raise _refuse(node, f"cannot delete {type(node).__name__}")

    def s_Raise(self, node: ast.Raise) -> Fn:
        if node.exc is None:

            def reraise(env: Env) -> None:
                raise  # noqa: PLE0704 - re-raises the exception being handled, as in CPython

            return reraise
        exc = self.expr(node.exc)
        cause = self.expr(node.cause) if node.cause is not None else None

        def make(v: Any) -> BaseException:
            if isinstance(v, type) and issubclass(v, BaseException):
                return v()
            if isinstance(v, BaseException):
                return v
            raise TypeError("exceptions must derive from BaseException")

        def raise_(env: Env) -> None:
            e = make(exc(env))
            if cause is not None:
                c = cause(env)
                c = None if c is None else make(c)
                raise e from c
            raise e

        return raise_

    def _handlers(self, node: Any, gen: bool) -> tuple:
        handlers = []
        for h in node.handlers:
            typ = self.expr(h.type) if h.type is not None else None
            store = self.store_name(h.name) if h.name else None
            delete = self.del_name(h.name) if h.name else None
            handlers.append((typ, store, delete, self.block(h.body, gen)))
        return tuple(handlers)

    def s_Try(self, node: ast.Try, gen: bool = False) -> Fn:
        body = self.block(node.body, gen)
        handlers = self._handlers(node, gen)
        orelse = self.block(node.orelse, gen) if node.orelse else None
        final = self.block(node.finalbody, gen) if node.finalbody else None
        return TRY[gen](body, handlers, orelse, final)

    def s_Import(self, node: ast.Import) -> Fn:
        import_module = self.names.import_module
        items = []
        for alias in node.names:
            top = alias.name.split(".")[0]
            store = self.store_name(alias.asname or top)
            items.append((alias.name, top, bool(alias.asname), store))

        def import_(env: Env) -> None:
            for full, top, has_as, store in items:
                mod = import_module(full)
                store(env, mod if has_as else import_module(top))

        return import_

    def s_ImportFrom(self, node: ast.ImportFrom) -> Fn:
        if node.level:
            raise _refuse(node, "relative imports are not allowed in the sandbox")
        module = node.module or ""
        if module == "__future__":
            return lambda env: None
        import_module = self.names.import_module
        if any(a.name == "*" for a in node.names):
            if self.scope.kind != "module":
                raise _refuse(node, "'import *' is only allowed at module level")

            def import_star(env: Env) -> None:
                mod = import_module(module)
                for k, v in vars(mod).items():
                    if not k.startswith("_"):
                        env.g[k] = v

            return import_star
        items = [(a.name, self.store_name(a.asname or a.name)) for a in node.names]

        def import_from(env: Env) -> None:
            mod = import_module(module)
            for name, store in items:
                if is_dunder(name) or name.startswith("_"):
                    raise PolicyError(
                        f"importing private name '{name}' from '{module}' is not allowed in the sandbox"
                    )
                try:
                    v = getattr(mod, name)
                except AttributeError:
                    raise ImportError(
                        f"cannot import name '{name}' from '{module}' (sandbox proxy)"
                    ) from None
                store(env, v)

        return import_from

    def s_With(self, node: ast.With, gen: bool = False) -> Fn:
        body = self.block(node.body, gen)
        for item in reversed(node.items):
            mgr = self.expr(item.context_expr)
            target = self.assign_target(item.optional_vars) if item.optional_vars is not None else None
            body = WITH[gen](mgr, target, body)
        return body

    def s_Match(self, node: ast.Match, gen: bool = False) -> Fn:
        subject = self.expr(node.subject)
        cases = tuple(
            (
                self.pattern(c.pattern),
                self.expr(c.guard) if c.guard is not None else None,
                self.block(c.body, gen),
            )
            for c in node.cases
        )
        return MATCH[gen](subject, cases)
