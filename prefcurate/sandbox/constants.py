"""CPython's constant folding where it shows: set displays of constants become frozenset
constants, whose iteration order the interpreter takes from CPython's own compilation."""

from __future__ import annotations

import ast
import types
from typing import Any


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
