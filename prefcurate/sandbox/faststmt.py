"""Generated host code for statements (the statement half of `fastexpr`): simple statements,
`if`/`else`, native `for`/`while` loops, whole blocks, and whole function bodies whose locals
are the generated function's own Python locals. Each charges exactly the steps the closures
charge (`tests/test_sandbox_native.py` compares both, and CPython)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

from .fastexpr import _BIN, _INPLACE, MAX_BLOCK_NODES, ROOTS, _build, _Shape, plain_attribute
from .policy import StepLimit, checked_getattr
from .runtime import owned_setattr


class StatementShape(_Shape):
    """A `_Shape` that also generates statements."""

    def _target(self, node: ast.expr) -> str | None:
        """An assignment target: a name, a subscript, or a tuple/list of those (no star)."""
        if isinstance(node, ast.Name):
            return self._store(node.id)
        if isinstance(node, ast.Subscript):
            value, index = self.gen(node.value), self._slice(node.slice)
            return None if value is None or index is None else f"{value}[{index}]"
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts:
            parts = [self._target(e) for e in node.elts]
            if any(p is None for p in parts):
                return None
            return "(" + "".join(f"{p}, " for p in parts) + ")"
        return None

    def _attribute_store(self, node: ast.Assign | ast.AugAssign) -> list[str] | None:
        """`o.name = v` and `o.name op= v` through the policy's `owned_setattr`, in the
        closures' order: `v` then `o` for `=`; `o`, the policy's read, `v` for `op=`."""
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        assert isinstance(target, ast.Attribute)
        if self.ctx is None:
            return None
        obj, value = self.gen(target.value), self.gen(node.value)
        if obj is None or value is None:
            return None
        setter, name = self._param(_attr_setter(self.ctx)), self._param(target.attr)
        if isinstance(node, ast.Assign):
            return [f"{setter}({value}, {obj}, {name})"]
        if type(node.op) not in _INPLACE:
            return None
        op = self._param(_INPLACE[type(node.op)])
        # `checked_getattr` reads a plain name exactly as `getattr` does
        read = (
            f"_o.{target.attr}"
            if plain_attribute(target.attr)
            else f"{self._param(checked_getattr)}(_o, {name})"
        )
        return ["_o = " + obj, f"{setter}({op}({read}, {value}), _o, {name})"]

    def stmt(self, node: ast.stmt) -> list[str] | None:
        """Lines of a statement (see `compile_fast_stmt`), or None."""
        ret, brk, cnt = self.signals
        if isinstance(node, ast.Pass):
            return []
        if isinstance(node, ast.Break):
            return ["break" if self.loops else f"return {brk}"]
        if isinstance(node, ast.Continue):
            return ["continue" if self.loops else f"return {cnt}"]
        if isinstance(node, ast.Return):
            value = "None" if node.value is None else self.gen(node.value)
            if value is None:
                return None
            return [f"return {value}"] if self.direct else [f"_env.ret = {value}", f"return {ret}"]
        if isinstance(node, ast.Expr):
            value = self.gen(node.value)
            return None if value is None else [value]
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            stores = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(stores) == 1 and isinstance(stores[0], ast.Attribute):
                return self._attribute_store(node)
        if isinstance(node, ast.Assign):
            value = self.gen(node.value)  # evaluated first, then the targets left to right
            targets = [self._target(t) for t in node.targets] if value is not None else [None]
            if any(t is None for t in targets):
                return None
            return [" = ".join([*targets, value])]  # type: ignore[list-item]
        if isinstance(node, ast.AugAssign):
            if type(node.op) not in _INPLACE:
                return None
            if isinstance(node.target, ast.Subscript):  # o[i] op= v: CPython's own order
                target, value = self._target(node.target), self.gen(node.value)
                if target is None or value is None:
                    return None
                return [f"{target} {_BIN[type(node.op)]}= {value}"]
            if not isinstance(node.target, ast.Name):
                return None
            if node.target.id in self.native_locals and self.resolve(node.target.id)[0] == "local":
                # Native `x += v`: CPython's own order and its in-place `str` concatenation
                # (a loop of `s += t` stays linear, as in CPython).
                value = self.gen(node.value)
                return None if value is None else [f"{node.target.id} {_BIN[type(node.op)]}= {value}"]
            load = self.gen(node.target)  # read first, as in CPython
            value = self.gen(node.value)
            op = self._param(_INPLACE[type(node.op)])
            target = self._store(node.target.id) if load is not None and value is not None else None
            return None if target is None else [f"{target} = {op}({load}, {value})"]
        if isinstance(node, ast.If):
            test = self.gen(node.test)
            branches = [self.block(b) for b in (node.body, node.orelse) if b]
            if test is None or any(b is None for b in branches):
                return None
            lines = [f"if {test}:", *_indent(branches[0])]  # type: ignore[arg-type]
            if len(branches) == 2:
                lines += ["else:", *_indent(branches[1])]  # type: ignore[arg-type]
            return lines
        if isinstance(node, (ast.For, ast.While)):
            return self._loop(node)
        return None

    def _loop(self, node: ast.For | ast.While) -> list[str] | None:
        """A native loop: each iteration charges its body's block, as the closures do; `break`
        and `continue` in the body are native, `else` runs as Python runs it."""
        if isinstance(node, ast.For):
            if node.type_comment or isinstance(node.iter, ast.Set):  # a folded frozenset constant
                return None
            it, target = self.gen(node.iter), self._target(node.target)
            head = None if it is None or target is None else f"for {target} in {it}:"
        else:
            test = self.gen(node.test)
            head = None if test is None else f"while {test}:"
        if head is None:
            return None
        self.loops += 1
        try:
            body = self.block(node.body)
        finally:
            self.loops -= 1
        orelse = self.block(node.orelse) if node.orelse else []  # `break` there is the outer loop's
        if body is None or orelse is None:
            return None
        return [head, *_indent(body), *(["else:", *_indent(orelse)] if orelse else [])]

    def block(self, stmts: list[ast.stmt]) -> list[str] | None:
        """A statement list: its step charge (one per statement, on entry, as `block` charges
        it), then the statements."""
        lines: list[str] = []
        for s in stmts:
            inner = self.stmt(s)
            if inner is None:
                return None
            lines += inner
        c, over = self.charge
        return [f"{c}.steps -= {len(stmts)}", f"if {c}.steps < 0:", f"    {over}({c})", *lines]


def _attr_setter(ctx: Any) -> Callable[[Any, Any, str], None]:
    def set_attr(value: Any, obj: Any, name: str) -> None:
        owned_setattr(ctx, obj, name, value)

    return set_attr


def _indent(lines: list[str]) -> list[str]:
    return ["    " + x for x in lines]


def compile_fast_stmt(
    node: ast.stmt, resolve: Callable[[str], tuple], builtins: Mapping[str, Any], ctx: Any, signals: tuple
) -> Any:
    """A host function for a simple statement (`x = e`, `x += e`, `e`, `return e`, `break`,
    `continue`, `pass`, and `if e:` whose branches are one such statement each), with the
    step each branch's block charges; None for any other statement."""
    shape = StatementShape(resolve)
    shape.signals = tuple(shape._param(s) for s in signals)
    shape.charge = (shape._param(ctx), shape._param(_over_budget))
    shape.ctx = ctx
    if isinstance(node, (ast.For, ast.While, ast.If)):
        shape.max_nodes = MAX_BLOCK_NODES
    lines = shape.stmt(node)
    if lines is None or (isinstance(node, ast.Expr) and not isinstance(node.value, ROOTS)):
        return None
    return _build(shape, [*lines, "return None"], builtins, ctx)


def compile_fast_block(
    stmts: list[ast.stmt],
    resolve: Callable[[str], tuple],
    builtins: Mapping[str, Any],
    ctx: Any,
    signals: tuple,
) -> Any:
    """A host function for a whole statement list (a function body, a loop body) made of the
    statements above and `for`/`while` loops of them, charging what `block` charges; None when
    any statement is of another kind."""
    shape = StatementShape(resolve)
    shape.signals = tuple(shape._param(s) for s in signals)
    shape.charge = (shape._param(ctx), shape._param(_over_budget))
    shape.ctx = ctx
    shape.max_nodes = MAX_BLOCK_NODES
    lines = shape.block(stmts)
    if lines is None:
        return None
    return _build(shape, [*lines, "return None"], builtins, ctx)


# Identifiers of the generated code; a local of the same name cannot be a native local.
_RESERVED = re.compile(r"_(l|g|o|s|up|env|f|make|zip|steps|U|G|F|K|B|[puv]\d+)\Z")


def compile_fast_function(
    body: list[ast.stmt],
    resolve: Callable[[str], tuple],
    builtins: Mapping[str, Any],
    ctx: Any,
    signals: tuple,
    local_names: set[str],
    params: list[str],
) -> Any:
    """A whole function body as one host function `f(globals, enclosing, *parameters)` whose
    locals are its own Python locals, returning the function's value (`native`). Only for a
    body with no nested scope that could read `env.l` (no def, lambda, class, generator
    expression; native list/set comprehensions are Python's own closures over the locals);
    the statements and step charges are those of `compile_fast_block`."""
    if any(_RESERVED.match(n) for n in local_names):
        return None
    shape = StatementShape(resolve)
    shape.native_locals = frozenset(local_names)
    shape.direct = True
    shape.signals = tuple(shape._param(s) for s in signals)
    shape.charge = (shape._param(ctx), shape._param(_over_budget))
    shape.ctx = ctx
    shape.max_nodes = MAX_BLOCK_NODES
    lines = shape.block(body)
    if lines is None:
        return None
    fn = _build(shape, [*lines, "return None"], builtins, ctx, "_g, _up, " + ", ".join(params))
    if fn is None:
        return None
    fn.native = True
    return fn


def _over_budget(ctx: Any) -> None:
    raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")
