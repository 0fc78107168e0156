"""Compiling functions (argument binding with CPython's rules and messages, the recursion
limit; a generator function's body is a generator closure, see statements.py) and classes
(real classes, made by the host's metaclasses)."""

from __future__ import annotations

import ast
import types
from collections.abc import Callable
from typing import Any

from .compiler_parts import CompilerBase
from .policy import check_bases, check_metaclass
from .runtime import RETURN, Env, Fn, StopCarrier, _refuse
from .scope import Scope, _contains_yield, collect_scope


class FunctionCompiler(CompilerBase):
    """Mixin of `Compiler`: functions, lambdas' bodies, classes, generator bodies."""

    scope: Scope
    in_class_body: bool
    gen_body: bool

    # -- functions and classes ---------------------------------------------------------------
    def s_FunctionDef(self, node: ast.FunctionDef) -> Fn:
        make = self.function(node, node.name, node.args, node.body, node.decorator_list, returns=node.returns)
        store = self.store_name(node.name)

        def def_(env: Env) -> None:
            store(env, make(env))

        return def_

    def function(
        self,
        node: ast.AST,
        name: str,
        args: ast.arguments,
        body: list[ast.stmt],
        decorators: list[ast.expr],
        is_lambda: bool = False,
        returns: ast.expr | None = None,
    ) -> Fn:
        ctx = self.ctx
        decos = tuple(self.expr(d) for d in decorators)
        defaults = tuple(self.expr(d) for d in args.defaults)
        kw_defaults = tuple(
            (a.arg, self.expr(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=False)
            if d is not None
        )
        # Annotations are evaluated at definition time, as CPython does (and then dropped).
        ann_nodes = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation]
        for star in (args.vararg, args.kwarg):
            if star is not None and star.annotation is not None:
                ann_nodes.append(star.annotation)
        if returns is not None:
            ann_nodes.append(returns)
        anns = () if self.scope.future_annotations else tuple(self.expr(a) for a in ann_nodes)

        outer = self.scope
        scope = Scope("function", outer)
        params = [a.arg for a in (*args.posonlyargs, *args.args)]
        kwonly = [a.arg for a in args.kwonlyargs]
        scope.assigned.update(params, kwonly)
        if args.vararg:
            scope.assigned.add(args.vararg.arg)
        if args.kwarg:
            scope.assigned.add(args.kwarg.arg)
        scope.firstarg = params[0] if params else (args.vararg.arg if args.vararg else None)
        extra = [a.arg for a in (args.vararg, args.kwarg) if a is not None]
        collect_scope(scope, body)
        for p in (*params, *kwonly):
            if p in scope.globals or p in scope.nonlocals:
                raise _refuse(node, f"name '{p}' is parameter and global/nonlocal")
        is_gen = _contains_yield(body)
        qual = ".".join([*self.qual, name])
        self.scope = scope
        self.qual.append(name if is_lambda else name)
        self.qual.append("<locals>")
        in_class, in_gen = self.in_class_body, self.gen_body
        self.in_class_body, self.gen_body = False, is_gen
        try:
            code = self.function_block(body, is_gen, [*params, *kwonly, *extra])
        finally:
            self.scope = outer
            self.qual.pop()
            self.qual.pop()
            self.in_class_body, self.gen_body = in_class, in_gen
        doc = None
        if (
            not is_lambda
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            if isinstance(body[0].value.value, str):
                doc = body[0].value.value
        binder_factory = _binder(qual, args)  # CPython names the qualified name in call errors
        pos_names = tuple(a.arg for a in args.args)
        simple_sig = not (args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg)
        parent_fn_like = outer.fn_like
        max_depth = ctx.max_depth
        modname = ctx.module_name
        native = getattr(code, "native", False)

        def make(env: Env) -> Any:
            decorators = [d(env) for d in decos]
            dvals = tuple(d(env) for d in defaults)
            kwd = {k: f(env) for k, f in kw_defaults}
            for a in anns:
                a(env)
            bind = binder_factory(dvals, kwd)
            up = (env.l,) + env.up if parent_fn_like else env.up
            g = env.g
            cls = env.cls
            if is_gen:

                def gen_run(e: Env) -> Any:
                    try:
                        r = yield from code(e)
                    except StopCarrier as c:
                        raise c.stop from None  # here Python makes it CPython's RuntimeError
                    return e.ret if r is RETURN else None

                def fn(*a: Any, **k: Any) -> Any:
                    return gen_run(Env(bind(a, k), up, g, cls))

            elif native:  # the body is one host function taking the parameters (fastexpr)
                npos = len(pos_names)

                def fn(*a: Any, **k: Any) -> Any:
                    if k or not simple_sig or len(a) != npos:
                        a, k = (), bind(a, k)  # every parameter by name
                    ctx.depth += 1
                    if ctx.depth > max_depth:
                        ctx.depth -= 1
                        raise RecursionError("maximum recursion depth exceeded")
                    try:
                        return code(g, up, *a, **k)
                    finally:
                        ctx.depth -= 1

            elif simple_sig:
                npos = len(pos_names)

                def fn(*a: Any, **k: Any) -> Any:
                    # The binder's fast path, inlined: plain positional calls are the hot case.
                    loc = dict(zip(pos_names, a, strict=False)) if not k and len(a) == npos else bind(a, k)
                    e = Env(loc, up, g, cls)
                    ctx.depth += 1
                    if ctx.depth > max_depth:
                        ctx.depth -= 1
                        raise RecursionError("maximum recursion depth exceeded")
                    try:
                        r = code(e)
                    finally:
                        ctx.depth -= 1
                    return e.ret if r is RETURN else None

            else:

                def fn(*a: Any, **k: Any) -> Any:
                    e = Env(bind(a, k), up, g, cls)
                    ctx.depth += 1
                    if ctx.depth > max_depth:
                        ctx.depth -= 1
                        raise RecursionError("maximum recursion depth exceeded")
                    try:
                        r = code(e)
                    finally:
                        ctx.depth -= 1
                    return e.ret if r is RETURN else None

            fn.__name__ = name
            fn.__qualname__ = qual
            fn.__doc__ = doc
            fn.__module__ = modname
            ctx.functions.add(fn)
            result: Any = fn
            for d in reversed(decorators):
                result = d(result)
            return result

        return make

    def s_ClassDef(self, node: ast.ClassDef) -> Fn:
        ctx = self.ctx
        if any(isinstance(b, ast.Starred) for b in node.bases):
            raise _refuse(node, "starred base classes are not supported by the sandbox")
        for k in node.keywords:
            if k.arg == "metaclass" or k.arg is None:
                raise _refuse(node, "custom metaclasses are not allowed in the sandbox")
        bases = tuple(self.expr(b) for b in node.bases)
        kwds = tuple((k.arg, self.expr(k.value)) for k in node.keywords if k.arg is not None)  # None: refused
        decos = tuple(self.expr(d) for d in node.decorator_list)
        outer = self.scope
        scope = Scope("class", outer)
        collect_scope(scope, node.body)
        name = node.name
        qual = ".".join([*self.qual, name])
        self.scope = scope
        self.qual.append(name)
        in_class, in_gen = self.in_class_body, self.gen_body
        self.in_class_body, self.gen_body = True, False
        try:
            body = self.block(node.body)
        finally:
            self.scope = outer
            self.qual.pop()
            self.in_class_body, self.gen_body = in_class, in_gen
        doc = None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            if isinstance(node.body[0].value.value, str):
                doc = node.body[0].value.value
        store = self.store_name(name)
        parent_fn_like = outer.fn_like
        modname = ctx.module_name

        def class_(env: Env) -> None:
            decorators = [d(env) for d in decos]
            orig_bases = tuple(b(env) for b in bases)
            kw = {k: v(env) for k, v in kwds}
            check_bases(orig_bases)
            resolved = types.resolve_bases(orig_bases)
            meta = types._calculate_meta(type, resolved)  # type: ignore[attr-defined]
            check_metaclass(meta, resolved)
            meta, ns, kw = types.prepare_class(name, resolved, kw)
            ns["__module__"] = modname
            ns["__qualname__"] = qual
            if doc is not None:
                ns["__doc__"] = doc
            cell: list = [None]
            up = (env.l,) + env.up if parent_fn_like else env.up
            r = body(Env(ns, up, env.g, cell))
            if r is not None:
                raise SyntaxError("'return' outside function")
            if resolved is not orig_bases:
                ns["__orig_bases__"] = orig_bases
            cls = meta(name, resolved, ns, **kw)
            cell[0] = cls
            ctx.classes.add(cls)
            for d in reversed(decorators):
                cls = d(cls)
            store(env, cls)

        return class_


def _binder(fname: str, args: ast.arguments) -> Callable[[tuple, dict], Callable[[tuple, dict], dict]]:
    """Argument binding with CPython's rules and messages (positional-only, defaults,
    *args, keyword-only, **kwargs); a fast path for plain positional calls."""
    posonly = [a.arg for a in args.posonlyargs]
    pos = posonly + [a.arg for a in args.args]
    npos = len(pos)
    kwonly = [a.arg for a in args.kwonlyargs]
    vararg = args.vararg.arg if args.vararg else None
    kwarg = args.kwarg.arg if args.kwarg else None
    keywordable = set(pos[len(posonly) :]) | set(kwonly)
    simple = not posonly and not kwonly and not vararg and not kwarg
    pos_t = tuple(pos)

    def factory(defaults: tuple, kwdefaults: dict) -> Callable[[tuple, dict], dict]:
        ndef = len(defaults)
        first_default = npos - ndef

        def slow(a: tuple, k: dict) -> dict:
            n = len(a)
            if n > npos and vararg is None:
                given = "was" if n == 1 else "were"
                takes = f"{npos}" if not ndef else f"from {first_default} to {npos}"
                raise TypeError(
                    f"{fname}() takes {takes} positional argument{'s' if npos != 1 else ''} but {n} {given} given"
                )
            loc = dict(zip(pos_t, a, strict=False))
            if vararg is not None:
                loc[vararg] = tuple(a[npos:])
            extra: dict | None = {} if kwarg is not None else None
            for key, v in k.items():
                if key in keywordable:
                    if key in loc:
                        raise TypeError(f"{fname}() got multiple values for argument '{key}'")
                    loc[key] = v
                elif extra is not None:
                    extra[key] = v
                elif key in posonly:
                    raise TypeError(
                        f"{fname}() got some positional-only arguments passed as keyword arguments: '{key}'"
                    )
                else:
                    raise TypeError(f"{fname}() got an unexpected keyword argument '{key}'")
            missing = []
            for i in range(n, npos):
                p = pos_t[i]
                if p not in loc:
                    if i >= first_default:
                        loc[p] = defaults[i - first_default]
                    else:
                        missing.append(p)
            if missing:
                names = (
                    " and ".join(f"'{m}'" for m in missing)
                    if len(missing) <= 2
                    else ", ".join(f"'{m}'" for m in missing)
                )
                raise TypeError(
                    f"{fname}() missing {len(missing)} required positional argument{'s' if len(missing) > 1 else ''}: {names}"
                )
            kmissing = []
            for p in kwonly:
                if p not in loc:
                    if p in kwdefaults:
                        loc[p] = kwdefaults[p]
                    else:
                        kmissing.append(p)
            if kmissing:
                raise TypeError(
                    f"{fname}() missing {len(kmissing)} required keyword-only argument{'s' if len(kmissing) > 1 else ''}: "
                    + " and ".join(f"'{m}'" for m in kmissing)
                )
            if extra is not None:
                loc[kwarg] = extra  # type: ignore[index]
            return loc

        if simple:

            def fast(a: tuple, k: dict) -> dict:
                if not k and len(a) == npos:
                    return dict(zip(pos_t, a, strict=False))
                return slow(a, k)

            return fast
        return slow

    return factory
