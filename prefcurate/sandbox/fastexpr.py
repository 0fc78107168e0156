"""Fast paths for expressions the policy has nothing to say about: one host function per
expression instead of one closure per node.

An expression built only of operators (`n % j == 0`, `i * j * k == a`, `not x or y < 3`),
constants, local and global names, subscripts and slices, calls of a name or a plain
attribute, and attribute reads the policy passes unchanged (public, non-dunder names other
than `format`, `format_map`, `register`) is evaluated by these nodes exactly as the closures
would: the closures call `operator.mod(a, b)`, `getattr(o, name)`, `f(*args)`, which is what
the host's `a % b`, `o.name`, `f(a)` do. So such an expression is compiled once into a
small host function whose code is fixed by the expression's *shape*: every name, constant
and attribute value is a parameter (the attribute names are identifiers, the only program
text in the generated source), and a shape is compiled once per process and cached.
Names read as the closures read them: a missing local raises UnboundLocalError, a missing
global falls back to the unit's builtins, then NameError, with CPython's messages.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .policy import (
    BLOCKED_ATTRS,
    BLOCKED_ON_HOST_TYPES,
    StepLimit,
    check_private,
    is_dunder,
    is_private,
)

_BIN = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_CMP = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_UNARY = {ast.UAdd: "+", ast.USub: "-", ast.Invert: "~", ast.Not: "not "}
_CONST_TYPES = (int, float, complex, str, bytes, bool, type(None))
MAX_NODES = 60  # larger expressions keep the closures (and the generated code stays small)
MAX_BLOCK_NODES = 400  # the same for a whole block
ROOTS = (
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.BoolOp,
    ast.Subscript,
    ast.Call,
    ast.IfExp,
    ast.ListComp,
    ast.SetComp,
)

_SHAPES: dict[str, Callable[..., Callable[[Any], Any]]] = {}
_INPLACE = {
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
}


def plain_attribute(name: str) -> bool:
    """An attribute read the policy passes unchanged (`getattr(obj, name)` in e_Attribute)."""
    return not (
        is_dunder(name)
        or name in BLOCKED_ATTRS
        or name in ("format", "format_map")
        or name in BLOCKED_ON_HOST_TYPES
        or is_private(name)
    )


class _Shape:
    """Generated source for one expression, its parameters in order."""

    def __init__(self, resolve: Callable[[str], tuple]) -> None:
        self.resolve = resolve
        self.params: list[Any] = []
        self.uses_l = self.uses_g = False
        self.up: set[int] = set()  # depths of the enclosing scopes read
        self.native: dict[str, str] = {}  # comprehension variables, native locals here
        self.signals: tuple[str, ...] = ()  # parameters holding RETURN, BREAK, CONTINUE
        self.charge: tuple[str, str] = ("", "")  # parameters holding the Ctx and its overrun
        self.nodes = 0
        self.loops = 0  # native loops around the statement being generated
        self.max_nodes = MAX_NODES
        # Locals held as the generated function's own (a whole function body, see
        # `compile_fast_function`): read and written natively, not through `env.l`.
        self.native_locals: frozenset[str] = frozenset()
        self.direct = False  # `return v` returns v itself (no RETURN signal, no env.ret)
        self.ctx: Any = None  # the run's Ctx, for attribute stores (statements only)

    def _param(self, value: Any) -> str:
        self.params.append(value)
        return f"_p{len(self.params) - 1}"

    def gen(self, node: ast.expr) -> str | None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            return None
        if isinstance(node, ast.Constant):
            if type(node.value) not in _CONST_TYPES:
                return None
            return self._param(node.value)
        if isinstance(node, ast.Name):
            if node.id in self.native:
                return self.native[node.id]
            kind = self.resolve(node.id)[0]
            p = self._param(node.id)
            if kind == "local":
                if node.id in self.native_locals:
                    self.params.pop()
                    return node.id
                self.uses_l = True
                return f"(_l[{p}] if {p} in _l else _U({p}))"
            if kind == "global":
                self.uses_g = True
                return f"(_g[{p}] if {p} in _g else _B[{p}] if {p} in _B else _G({p}))"
            if kind == "free":
                d = self.resolve(node.id)[1]
                self.up.add(d)
                return f"(_u{d}[{p}] if {p} in _u{d} else _F({p}))"
            return None
        if isinstance(node, (ast.ListComp, ast.SetComp)):
            return self._comprehension(node)
        if isinstance(node, (ast.Tuple, ast.List)):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return None
            elts = [self.gen(e) for e in node.elts]
            if any(e is None for e in elts):
                return None
            inner = "".join(f"{e}, " for e in elts)
            return f"({inner})" if isinstance(node, ast.Tuple) else f"[{inner}]"
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                return None
            keys = [self.gen(k) for k in node.keys]  # type: ignore[arg-type]
            values = [self.gen(v) for v in node.values]
            if any(x is None for x in (*keys, *values)):
                return None
            return "{" + "".join(f"{k}: {v}, " for k, v in zip(keys, values, strict=True)) + "}"
        if isinstance(node, ast.BinOp):
            op = _BIN.get(type(node.op))
            return self._join(op, node.left, node.right)
        if isinstance(node, ast.UnaryOp):
            operand = self.gen(node.operand)
            return None if operand is None else f"({_UNARY[type(node.op)]}{operand})"
        if isinstance(node, ast.BoolOp):
            parts = [self.gen(v) for v in node.values]
            if any(p is None for p in parts):
                return None
            word = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + word.join(parts) + ")"  # type: ignore[arg-type]
        if isinstance(node, ast.Compare):
            terms: list[str | None] = [self.gen(node.left)]
            for cmp, right in zip(node.ops, node.comparators, strict=True):
                terms += [_CMP[type(cmp)], self.gen(right)]
            if any(p is None for p in terms):
                return None
            return "(" + " ".join(terms) + ")"  # type: ignore[arg-type]
        if isinstance(node, ast.IfExp):
            test, body, orelse = self.gen(node.test), self.gen(node.body), self.gen(node.orelse)
            if test is None or body is None or orelse is None:
                return None
            return f"({body} if {test} else {orelse})"
        if isinstance(node, ast.Subscript):
            value = self.gen(node.value)
            index = self._slice(node.slice)
            return None if value is None or index is None else f"{value}[{index}]"
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not (plain_attribute(name) or _private_readable(name)):
                return None
            value = self.gen(node.value)
            if value is None:
                return None
            if plain_attribute(name):
                return f"{value}.{name}"
            return f"{self._param(_private_read)}({value}, {self._param(name)})"  # as e_Attribute
        if isinstance(node, ast.Call):
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                return None
            if isinstance(node.func, ast.Name) and node.func.id in ("super", "eval"):
                return None  # they need the caller's scope (e_Call's special path)
            func = self.gen(node.func)
            args = [self.gen(a) for a in node.args]
            if func is None or any(a is None for a in args):
                return None
            return f"{func}({', '.join(args)})"  # type: ignore[arg-type]
        return None

    def _comprehension(self, node: ast.ListComp | ast.SetComp) -> str | None:
        """`[elt for name in it if cond]` as a native comprehension; each iteration is
        charged one step by a C iterator zipped with `it` (`charged`), as the closures
        charge it: the item is taken, then the step, then the condition and element run."""
        if len(node.generators) != 1:
            return None
        comp = node.generators[0]
        if comp.is_async or not isinstance(comp.target, ast.Name):
            return None
        it = self.gen(comp.iter)  # evaluated in the enclosing scope, as in CPython
        if it is None:
            return None
        var = f"_v{len(self.native)}"
        saved = self.native.get(comp.target.id)
        self.native[comp.target.id] = var
        try:
            conds = [self.gen(c) for c in comp.ifs]
            elt = self.gen(node.elt)
        finally:
            if saved is None:
                del self.native[comp.target.id]
            else:
                self.native[comp.target.id] = saved
        if elt is None or any(c is None for c in conds):
            return None
        ifs = "".join(f" if {c}" for c in conds)
        opening, closing = ("[", "]") if isinstance(node, ast.ListComp) else ("{", "}")
        return f"_K(lambda _steps: {opening}{elt} for {var}, _s in _zip({it}, _steps){ifs}{closing})"

    def _store(self, name: str) -> str | None:
        kind = self.resolve(name)
        if kind[0] == "local" and name in self.native_locals:
            return name
        p = self._param(name)
        if kind[0] == "local":
            self.uses_l = True
            return f"_l[{p}]"
        if kind[0] == "global":
            self.uses_g = True
            return f"_g[{p}]"
        if kind[0] == "free":
            self.up.add(kind[1])
            return f"_u{kind[1]}[{p}]"
        return None

    def _join(self, op: str | None, left: ast.expr, right: ast.expr) -> str | None:
        if op is None:
            return None
        a, b = self.gen(left), self.gen(right)
        return None if a is None or b is None else f"({a} {op} {b})"

    def _slice(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Slice):
            parts = []
            for part in (node.lower, node.upper, node.step):
                if part is None:
                    parts.append("")
                else:
                    p = self.gen(part)
                    if p is None:
                        return None
                    parts.append(p)
            return ":".join(parts)
        return self.gen(node)


def _private_readable(name: str) -> bool:
    """A private name `e_Attribute` reads through `check_private` (owned objects only)."""
    return is_private(name) and not is_dunder(name) and name not in BLOCKED_ATTRS


def _private_read(obj: Any, name: str) -> Any:
    check_private(obj, name)
    return getattr(obj, name)


def _unbound(name: str) -> Any:
    raise UnboundLocalError(f"cannot access local variable '{name}' where it is not associated with a value")


def _unbound_free(name: str) -> Any:
    raise NameError(
        f"cannot access free variable '{name}' where it is not associated with a value in enclosing scope"
    )


def _charger(ctx: Any) -> Callable[[Callable[[Any], Any]], Any]:
    """Runs a native comprehension with a step iterator: one step per item, as many as the
    budget has left, then a StepLimit. Steps are settled when the comprehension ends (an
    element that calls interpreted code charges its own steps meanwhile; an overrun that
    only shows when both are added is raised then)."""

    def over() -> Any:
        raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")
        yield  # a generator: raises when the comprehension asks for the step past the budget

    def charged(run: Callable[[Any], Any]) -> Any:
        budget = max(ctx.steps, 0)
        steps = itertools.repeat(None, budget)
        try:
            result = run(itertools.chain(steps, over()))
        finally:
            ctx.steps -= budget - operator.length_hint(steps)
        if ctx.steps < 0:
            over().send(None)
        return result

    return charged


def compile_fast(
    node: ast.expr, resolve: Callable[[str], tuple], builtins: Mapping[str, Any], ctx: Any
) -> Any:
    """A host function `f(env)` for `node`, or None when the node is not of the kinds above."""
    shape = _Shape(resolve)
    src = shape.gen(node)
    if src is None:
        return None
    return _build(shape, [f"return {src}"], builtins, ctx)


def _build(shape: _Shape, body: list[str], builtins: Mapping[str, Any], ctx: Any, args: str = "") -> Any:
    key = f"{int(shape.uses_l)}{int(shape.uses_g)}{sorted(shape.up)}{len(shape.params)}{args}:" + "\n".join(
        body
    )
    factory = _SHAPES.get(key)
    if factory is None:
        params = "".join(f"_p{i}, " for i in range(len(shape.params)))
        lines = [f"def _make({params}_U, _G, _F, _K, _zip, _B):", f"    def _f({args or '_env'}):"]
        if shape.uses_l:
            lines.append("        _l = _env.l")
        if shape.uses_g and not args:
            lines.append("        _g = _env.g")
        for d in sorted(shape.up):
            lines.append(f"        _u{d} = {'_up' if args else '_env.up'}[{d}]")
        lines += ["        " + line for line in body]
        lines.append("    return _f")
        namespace: dict[str, Any] = {}
        try:
            code = compile("\n".join(lines), "<sandbox expression>", "exec")
        except (SyntaxError, RecursionError, MemoryError):
            # Source CPython accepts can exceed the host compiler's limits once generated (97
            # nested blocks plus `_make`/`_f` pass the 100 indentation levels): the closures run it.
            return None
        exec(code, {"__builtins__": {}}, namespace)  # noqa: S102
        factory = _SHAPES[key] = namespace["_make"]

    # The global loader and step charger of this unit's names: made once per Names (the
    # program's, or a test unit's), not once per expression.
    helpers = getattr(builtins, "fast_helpers", None)
    if helpers is None:
        helpers = (_global_loader(builtins), _charger(ctx))
        builtins.fast_helpers = helpers  # type: ignore[attr-defined]
    return factory(*shape.params, _unbound, helpers[0], _unbound_free, helpers[1], zip, builtins)


def _global_loader(builtins: Mapping[str, Any]) -> Callable[[str], Any]:
    def glob(name: str) -> Any:
        try:
            return builtins[name]
        except KeyError:
            raise NameError(f"name '{name}' is not defined") from None

    return glob
