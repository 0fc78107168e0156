"""The run-time closures of statements, each factory written once and made both plain and
generator by `twofold` (statements.py chooses: a statement holding a `yield` of its generator
function gets the generator version). Running a child closure is spelled `step(child, env)`."""

from __future__ import annotations

from typing import Any

from .policy import SandboxAbort, StepLimit, checked_getattr
from .runtime import BREAK, CONTINUE, RETURN, Ctx, Env, Fn, StopCarrier, _matches, owned_setattr, unstop
from .twofold import step, twofold

__all__ = ["StopCarrier"]  # the generator versions raise it (see twofold)


def _expr_factory(value: Fn) -> Fn:
    def expr_stmt(env: Env) -> None:
        step(value, env)

    return expr_stmt


def _assign_factory(value: Fn, targets: tuple) -> Fn:
    if len(targets) == 1:
        t0 = targets[0]

        def assign1(env: Env) -> None:
            t0(env, step(value, env))

        return assign1

    def assign(env: Env) -> None:
        v = step(value, env)
        for t in targets:
            t(env, v)

    return assign


def _return_factory(value: Fn) -> Fn:
    def ret(env: Env) -> Any:
        env.ret = step(value, env)
        return RETURN

    return ret


def _aug_factory(kind: str, op: Fn, value: Fn, a: Any, b: Any, ctx: Ctx) -> Fn:
    """`target op= value`: the target is read before the value is computed, as in CPython."""
    if kind == "name":
        load, store = a, b

        def aug_name(env: Env) -> None:
            store(env, op(load(env), step(value, env)))

        return aug_name
    if kind == "attr":
        obj, name = a, b

        def aug_attr(env: Env) -> None:
            o = obj(env)
            owned_setattr(ctx, o, name, op(checked_getattr(o, name), step(value, env)))

        return aug_attr
    obj, index = a, b

    def aug_item(env: Env) -> None:
        o = obj(env)
        i = index(env)
        o[i] = op(o[i], step(value, env))

    return aug_item


def _ann_assign_factory(value: Fn | None, target: Fn | None, ann: Fn | None, is_class: bool, name: Any) -> Fn:
    def ann_assign(env: Env) -> None:
        if value is not None:
            target(env, step(value, env))  # type: ignore[misc]
        if ann is not None:
            a = ann(env)
            if is_class and name is not None:
                env.l.setdefault("__annotations__", {})[name] = a

    return ann_assign


def _if_factory(test: Fn, body: Fn, orelse: Fn | None) -> Fn:
    if orelse is None:

        def if_(env: Env) -> Any:
            if test(env):
                return step(body, env)
            return None

        return if_

    def if_else(env: Env) -> Any:
        if test(env):
            return step(body, env)
        return step(orelse, env)

    return if_else


def _while_factory(test: Fn, body: Fn, orelse: Fn | None, single: Fn | None, ctx: Ctx) -> Fn:
    if single is not None:  # a one-statement body, inlined as in `for_name1`

        def while1(env: Env) -> Any:
            while test(env):
                ctx.steps -= 1
                if ctx.steps < 0:
                    over_budget(ctx)
                r = step(single, env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return step(orelse, env)
            return None

        return while1

    def while_(env: Env) -> Any:
        while test(env):
            r = step(body, env)
            if r is not None:
                if r is BREAK:
                    return None
                if r is CONTINUE:
                    continue
                return r
        if orelse is not None:
            return step(orelse, env)
        return None

    return while_


def over_budget(ctx: Ctx) -> None:
    raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")


def _for_factory(
    it: Fn,
    assign: Fn,
    body: Fn,
    orelse: Fn | None,
    name: str | None,
    in_globals: bool,
    single: Fn | None,
    ctx: Ctx,
) -> Fn:
    if name is not None and single is not None:
        # `for name in ...:` with a one-statement body: the body's block (its step charge and
        # the call of its one statement) is inlined, a call less per iteration.

        def for_name1(env: Env) -> Any:
            ns = env.g if in_globals else env.l
            for x in it(env):
                ns[name] = x
                ctx.steps -= 1
                if ctx.steps < 0:
                    over_budget(ctx)
                r = step(single, env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return step(orelse, env)
            return None

        return for_name1
    if name is not None:
        # The common `for name in ...`: bind straight into the namespace dict.

        def for_name(env: Env) -> Any:
            ns = env.g if in_globals else env.l
            for x in it(env):
                ns[name] = x
                r = step(body, env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return step(orelse, env)
            return None

        return for_name

    def for_(env: Env) -> Any:
        for x in it(env):
            assign(env, x)
            r = step(body, env)
            if r is not None:
                if r is BREAK:
                    return None
                if r is CONTINUE:
                    continue
                return r
        if orelse is not None:
            return step(orelse, env)
        return None

    return for_


def _try_factory(body: Fn, handlers: tuple, orelse: Fn | None, final: Fn | None) -> Fn:
    def try_(env: Env) -> Any:
        try:
            r = step(body, env)
        except SandboxAbort:
            raise
        except BaseException as exc:
            e = unstop(exc)
            for typ, store, delete, hbody in handlers:
                if typ is not None and not _matches(e, typ(env)):
                    continue
                if store is None:
                    return step(hbody, env)
                store(env, e)
                try:
                    return step(hbody, env)
                finally:
                    try:
                        delete(env)
                    except NameError:
                        pass
            raise
        if r is not None:
            return r
        if orelse is not None:
            return step(orelse, env)
        return None

    if final is None:
        return try_

    def try_finally(env: Env) -> Any:
        try:
            r = step(try_, env)
        except SandboxAbort:
            raise
        except BaseException:
            f = step(final, env)
            if f is not None:
                return f  # return/break/continue in `finally` swallows the exception
            raise
        f = step(final, env)
        return f if f is not None else r

    return try_finally


def _enter_exit(mgr: Any) -> tuple[Fn, Fn]:
    t = type(mgr)
    try:
        return t.__enter__, t.__exit__
    except AttributeError:
        raise TypeError(f"'{t.__name__}' object does not support the context manager protocol") from None


def _with_factory(mgr_fn: Fn, target: Fn | None, body: Fn) -> Fn:
    def with_(env: Env) -> Any:
        mgr = mgr_fn(env)
        enter, exit_ = _enter_exit(mgr)
        v = enter(mgr)
        if target is not None:
            target(env, v)
        try:
            r = step(body, env)
        except SandboxAbort:
            raise
        except BaseException as exc:
            e = unstop(exc)
            # The traceback is not passed on: it would expose frames.
            if not exit_(mgr, type(e), e, None):
                raise
            return None
        exit_(mgr, None, None, None)
        return r

    return with_


def _match_factory(subject: Fn, cases: tuple) -> Fn:
    def match(env: Env) -> Any:
        s = subject(env)
        for pat, guard, body in cases:
            if pat(env, s) and (guard is None or guard(env)):
                return step(body, env)
        return None

    return match


EXPR = twofold(_expr_factory)
ASSIGN = twofold(_assign_factory)
RETURN_VALUE = twofold(_return_factory)
AUG_ASSIGN = twofold(_aug_factory)
ANN_ASSIGN = twofold(_ann_assign_factory)
IF = twofold(_if_factory)
WHILE = twofold(_while_factory)
FOR = twofold(_for_factory)
TRY = twofold(_try_factory)
WITH = twofold(_with_factory)
MATCH = twofold(_match_factory)
