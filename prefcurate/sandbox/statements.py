"""Compiling statements: blocks (the step budget), assignment, control flow, try/except,
with, imports (per-run module proxies) and match patterns."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .expressions import INPLACE
from .policy import PolicyError, SandboxAbort, StepLimit, checked_getattr, is_dunder
from .runtime import BREAK, CONTINUE, RETURN, Ctx, Env, Fn, Names, _matches, _refuse, owned_setattr
from .scope import Scope

_SPECIAL_CLASS_MATCH = (bool, bytearray, bytes, dict, float, frozenset, int, list, set, str, tuple)


class StatementCompiler:
    """Mixin of `Compiler`: `s_<Node>` methods, blocks and match patterns."""

    ctx: Ctx
    names: Names
    scope: Scope

    def block(self, stmts: list[ast.stmt]) -> Fn:
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

    # -- statements --------------------------------------------------------------------------
    def s_Expr(self, node: ast.Expr) -> Fn:
        value = self.expr(node.value)

        def expr_stmt(env: Env) -> None:
            value(env)

        return expr_stmt

    def s_Pass(self, node: ast.Pass) -> Fn:
        return lambda env: None

    def s_Break(self, node: ast.Break) -> Fn:
        return lambda env: BREAK

    def s_Continue(self, node: ast.Continue) -> Fn:
        return lambda env: CONTINUE

    def s_Return(self, node: ast.Return) -> Fn:
        if node.value is None:

            def ret_none(env: Env) -> Any:
                env.ret = None
                return RETURN

            return ret_none
        value = self.expr(node.value)

        def ret(env: Env) -> Any:
            env.ret = value(env)
            return RETURN

        return ret

    def s_Assign(self, node: ast.Assign) -> Fn:
        value = self.expr(node.value)
        targets = tuple(self.assign_target(t) for t in node.targets)
        if len(targets) == 1:
            t0 = targets[0]

            def assign1(env: Env) -> None:
                t0(env, value(env))

            return assign1

        def assign(env: Env) -> None:
            v = value(env)
            for t in targets:
                t(env, v)

        return assign

    def s_AugAssign(self, node: ast.AugAssign) -> Fn:
        op = INPLACE[type(node.op)]
        value = self.expr(node.value)
        target = node.target
        if isinstance(target, ast.Name):
            load, store = self.load_name(target.id), self.store_name(target.id)

            def aug_name(env: Env) -> None:
                store(env, op(load(env), value(env)))

            return aug_name
        if isinstance(target, ast.Attribute):
            obj = self.expr(target.value)
            name = target.attr
            ctx = self.ctx

            def aug_attr(env: Env) -> None:
                o = obj(env)
                owned_setattr(ctx, o, name, op(checked_getattr(o, name), value(env)))

            return aug_attr
        if isinstance(target, ast.Subscript):
            obj, index = self.expr(target.value), self.expr(target.slice)

            def aug_item(env: Env) -> None:
                o = obj(env)
                i = index(env)
                o[i] = op(o[i], value(env))

            return aug_item
        raise _refuse(node, "unsupported augmented assignment target")

    def s_AnnAssign(self, node: ast.AnnAssign) -> Fn:
        evaluate_annotation = (
            self.scope.kind in ("module", "class") and not self.scope.future_annotations and node.simple
        )
        ann = self.expr(node.annotation) if evaluate_annotation else None
        is_class = self.scope.kind == "class"
        name = node.target.id if isinstance(node.target, ast.Name) else None
        value = self.expr(node.value) if node.value is not None else None
        target = self.assign_target(node.target) if value is not None else None

        def ann_assign(env: Env) -> None:
            if value is not None:
                target(env, value(env))  # type: ignore[misc]
            if ann is not None:
                a = ann(env)
                if is_class and name is not None:
                    env.l.setdefault("__annotations__", {})[name] = a

        return ann_assign

    def s_If(self, node: ast.If) -> Fn:
        test, body = self.expr(node.test), self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None
        if orelse is None:

            def if_(env: Env) -> Any:
                if test(env):
                    return body(env)
                return None

            return if_

        def if_else(env: Env) -> Any:
            if test(env):
                return body(env)
            return orelse(env)

        return if_else

    def s_While(self, node: ast.While) -> Fn:
        test, body = self.expr(node.test), self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None

        def while_(env: Env) -> Any:
            while test(env):
                r = body(env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(env)
            return None

        return while_

    def s_For(self, node: ast.For) -> Fn:
        it = self.iter_expr(node.iter)
        assign = self.assign_target(node.target)
        body = self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None

        target = node.target
        kind = self.scope.resolve(target.id)[0] if isinstance(target, ast.Name) else None
        if kind in ("local", "class", "dynamic", "global"):
            # The common `for name in ...`: bind straight into the namespace dict.
            name = target.id  # type: ignore[union-attr]
            in_globals = kind == "global"

            def for_name(env: Env) -> Any:
                ns = env.g if in_globals else env.l
                for x in it(env):
                    ns[name] = x
                    r = body(env)
                    if r is not None:
                        if r is BREAK:
                            return None
                        if r is CONTINUE:
                            continue
                        return r
                if orelse is not None:
                    return orelse(env)
                return None

            return for_name

        def for_(env: Env) -> Any:
            for x in it(env):
                assign(env, x)
                r = body(env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(env)
            return None

        return for_

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

    def _handlers(self, node: Any) -> tuple:
        handlers = []
        for h in node.handlers:
            typ = self.expr(h.type) if h.type is not None else None
            store = self.store_name(h.name) if h.name else None
            delete = self.del_name(h.name) if h.name else None
            handlers.append((typ, store, delete, self.block(h.body)))
        return tuple(handlers)

    def s_Try(self, node: ast.Try) -> Fn:
        body = self.block(node.body)
        handlers = self._handlers(node)
        orelse = self.block(node.orelse) if node.orelse else None
        final = self.block(node.finalbody) if node.finalbody else None

        def handle(env: Env, e: BaseException) -> Any:
            """Run the matching handler; returns (matched, signal)."""
            for typ, store, delete, hbody in handlers:
                if typ is not None and not _matches(e, typ(env)):
                    continue
                if store is not None:
                    store(env, e)
                    try:
                        return True, hbody(env)
                    finally:
                        try:
                            delete(env)  # type: ignore[misc]
                        except NameError:
                            pass
                return True, hbody(env)
            return False, None

        def try_(env: Env) -> Any:
            try:
                r = body(env)
            except SandboxAbort:
                raise
            except BaseException as e:
                if not handlers:
                    raise
                matched, r = handle(env, e)
                if not matched:
                    raise
                return r
            if r is not None:
                return r
            if orelse is not None:
                return orelse(env)
            return None

        if final is None:
            return try_

        def try_finally(env: Env) -> Any:
            try:
                r = try_(env)
            except SandboxAbort:
                raise
            except BaseException:
                f = final(env)
                if f is not None:
                    return f  # return/break/continue in `finally` swallows the exception
                raise
            f = final(env)
            return f if f is not None else r

        return try_finally

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

    def s_With(self, node: ast.With) -> Fn:
        body = self.block(node.body)
        for item in reversed(node.items):
            body = self._with_item(item, body)
        return body

    def _with_item(self, item: ast.withitem, body: Fn) -> Fn:
        mgr_fn = self.expr(item.context_expr)
        target = self.assign_target(item.optional_vars) if item.optional_vars is not None else None

        def with_(env: Env) -> Any:
            mgr = mgr_fn(env)
            t = type(mgr)
            try:
                enter, exit_ = t.__enter__, t.__exit__
            except AttributeError:
                raise TypeError(
                    f"'{t.__name__}' object does not support the context manager protocol"
                ) from None
            v = enter(mgr)
            if target is not None:
                target(env, v)
            try:
                r = body(env)
            except SandboxAbort:
                raise
            except BaseException as e:
                # The traceback is not passed on: it would expose frames.
                if not exit_(mgr, type(e), e, None):
                    raise
                return None
            exit_(mgr, None, None, None)
            return r

        return with_

    # -- match -------------------------------------------------------------------------------
    def s_Match(self, node: ast.Match) -> Fn:
        subject = self.expr(node.subject)
        cases = tuple(
            (self.pattern(c.pattern), self.expr(c.guard) if c.guard is not None else None, self.block(c.body))
            for c in node.cases
        )

        def match(env: Env) -> Any:
            s = subject(env)
            for pat, guard, body in cases:
                if pat(env, s) and (guard is None or guard(env)):
                    return body(env)
            return None

        return match

    def pattern(self, p: ast.pattern) -> Callable[[Env, Any], bool]:
        if isinstance(p, ast.MatchValue):
            value = self.expr(p.value)
            return lambda env, s: s == value(env)
        if isinstance(p, ast.MatchSingleton):
            v = p.value
            return lambda env, s: s is v
        if isinstance(p, ast.MatchAs):
            store = self.store_name(p.name) if p.name else None
            inner = self.pattern(p.pattern) if p.pattern is not None else None

            def as_(env: Env, s: Any) -> bool:
                if inner is not None and not inner(env, s):
                    return False
                if store is not None:
                    store(env, s)
                return True

            return as_
        if isinstance(p, ast.MatchOr):
            alts = tuple(self.pattern(a) for a in p.patterns)
            return lambda env, s: any(a(env, s) for a in alts)
        if isinstance(p, ast.MatchSequence):
            return self._match_sequence(p)
        if isinstance(p, ast.MatchMapping):
            keys = tuple(self.expr(k) for k in p.keys)
            pats = tuple(self.pattern(x) for x in p.patterns)
            rest = self.store_name(p.rest) if p.rest else None

            def mapping(env: Env, s: Any) -> bool:
                if not isinstance(s, Mapping):
                    return False
                ks = [k(env) for k in keys]
                for k, pat in zip(ks, pats, strict=False):
                    if k not in s or not pat(env, s[k]):
                        return False
                if rest is not None:
                    rest(env, {k: v for k, v in s.items() if k not in ks})
                return True

            return mapping
        if isinstance(p, ast.MatchClass):
            cls_fn = self.expr(p.cls)
            pos = tuple(self.pattern(x) for x in p.patterns)
            kw = tuple((name, self.pattern(x)) for name, x in zip(p.kwd_attrs, p.kwd_patterns, strict=False))

            def class_(env: Env, s: Any) -> bool:
                cls = cls_fn(env)
                if not isinstance(cls, type):
                    raise TypeError("called match pattern must be a class")
                if not isinstance(s, cls):
                    return False
                if pos:
                    if cls in _SPECIAL_CLASS_MATCH and len(pos) == 1:
                        if not pos[0](env, s):
                            return False
                    else:
                        names = getattr(cls, "__match_args__", ())
                        if len(pos) > len(names):
                            raise TypeError(
                                f"{cls.__name__}() accepts {len(names)} positional sub-patterns ({len(pos)} given)"
                            )
                        for name, pat in zip(names, pos, strict=False):
                            if not hasattr(s, name) or not pat(env, checked_getattr(s, name)):
                                return False
                for name, pat in kw:
                    if not hasattr(s, name) or not pat(env, checked_getattr(s, name)):
                        return False
                return True

            return class_
        raise _refuse(p, f"the pattern '{type(p).__name__}' is not supported by the sandbox")

    def _match_sequence(self, p: ast.MatchSequence) -> Callable[[Env, Any], bool]:
        stars = [i for i, x in enumerate(p.patterns) if isinstance(x, ast.MatchStar)]
        pats = [self.pattern(x) if not isinstance(x, ast.MatchStar) else None for x in p.patterns]
        if not stars:
            n = len(pats)

            def seq(env: Env, s: Any) -> bool:
                if not isinstance(s, Sequence) or isinstance(s, (str, bytes, bytearray)):
                    return False
                if len(s) != n:
                    return False
                return all(pat(env, v) for pat, v in zip(pats, s, strict=False))  # type: ignore[misc]

            return seq
        k = stars[0]
        star_name = p.patterns[k].name  # type: ignore[attr-defined]
        star_store = self.store_name(star_name) if star_name else None
        before, after = pats[:k], pats[k + 1 :]

        def seq_star(env: Env, s: Any) -> bool:
            if not isinstance(s, Sequence) or isinstance(s, (str, bytes, bytearray)):
                return False
            vals = list(s)
            if len(vals) < len(before) + len(after):
                return False
            for pat, v in zip(before, vals, strict=False):
                if not pat(env, v):  # type: ignore[misc]
                    return False
            tail = vals[len(vals) - len(after) :] if after else []
            for pat, v in zip(after, tail, strict=False):
                if not pat(env, v):  # type: ignore[misc]
                    return False
            if star_store is not None:
                star_store(env, vals[len(before) : len(vals) - len(after)])
            return True

        return seq_star
