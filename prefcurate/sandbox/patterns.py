"""Compiling `match` patterns into closures `(env, subject) -> bool` that bind names as
CPython does; class patterns read attributes through the policy."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .compiler_parts import CompilerBase
from .policy import checked_getattr
from .runtime import Env, _refuse

_SPECIAL_CLASS_MATCH = (bool, bytearray, bytes, dict, float, frozenset, int, list, set, str, tuple)


class PatternCompiler(CompilerBase):
    """Mixin of `Compiler`: `match` patterns."""

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
