"""Compiling comprehensions and generator expressions: each in a scope of its own, the first
iterable evaluated in the enclosing scope, one step per item."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from .compiler_parts import CompilerBase
from .policy import StepLimit
from .runtime import Env, Fn, _refuse
from .scope import Scope, _target_names


class ComprehensionCompiler(CompilerBase):
    """Mixin of `Compiler`: list, set and dict comprehensions and generator expressions."""

    scope: Scope

    # -- comprehensions ----------------------------------------------------------------------
    def _comprehension(self, node: Any) -> tuple[Fn, Callable[[Env], Env], tuple[Fn, Any, tuple[Any, ...]]]:
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
            levels: list[tuple[Any, ...]] = []
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
                    out: list[Any] = []
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
