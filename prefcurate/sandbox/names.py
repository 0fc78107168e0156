"""Compiling names (loads, stores and deletes resolved to local, enclosing, class-body, global
or dynamic lookups at compile time) and assignment targets (names, attributes through the
policy, subscripts, unpacking)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from .compiler_parts import CompilerBase
from .runtime import Env, Fn, _refuse, _unpack, owned_setattr


class NameCompiler(CompilerBase):
    """Mixin of `Compiler`: names and assignment targets."""

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
