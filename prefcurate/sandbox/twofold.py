"""One source, two runtimes: a statement's closure factory written once, made into a plain
version and a generator version.

A statement inside a generator function that contains `yield` must itself be a Python
generator (so `send`/`throw`/`close` reach the interpreted `yield`), while everywhere else a
plain closure is faster. Writing each statement twice let the copies drift (`with 5:` raised
AttributeError inside generators, TypeError elsewhere). So each factory is written once, as
ordinary Python in which running a child closure is spelled `step(child, env)`; `twofold`
compiles its source two ways: `step(f, env)` becomes `f(env)` in the plain version and
`(yield from f(env))` in the generator version. Only the host's own factory source is
compiled here, once, at import time.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any


def step(child: Callable[[Any], Any], env: Any) -> Any:
    """Run a child closure (rewritten away by `twofold`; kept so the source reads as Python)."""
    return child(env)


class _Rewrite(ast.NodeTransformer):
    def __init__(self, generator: bool) -> None:
        self.generator = generator

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        if self.generator and _yields(node):
            # A StopIteration leaving this frame would become RuntimeError: carry it out
            # (`StopCarrier`, runtime.py; the factory's module imports it).
            body = node.body
            node.body = ast.parse(
                "try:\n    pass\nexcept StopIteration as stop:\n    raise StopCarrier(stop) from None\n"
            ).body
            node.body[0].body = body  # type: ignore[attr-defined]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "step":
            call = ast.Call(func=node.args[0], args=node.args[1:], keywords=[])
            return ast.YieldFrom(value=call) if self.generator else call
        return node


def _yields(fn: ast.FunctionDef) -> bool:
    """Whether `fn` itself (not a function nested in it) is a generator."""
    stack: list[ast.AST] = list(fn.body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(n, (ast.FunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(n))
    return False


def twofold(factory: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(plain, generator) versions of a closure factory whose inner functions use `step`."""
    source = textwrap.dedent(inspect.getsource(factory))
    filename = inspect.getsourcefile(factory) or "<twofold>"
    first_line = factory.__code__.co_firstlineno
    out = []
    for generator in (False, True):
        tree = ast.parse(source)
        fn = tree.body[0]
        assert isinstance(fn, ast.FunctionDef)
        fn.decorator_list = []
        tree = ast.fix_missing_locations(_Rewrite(generator).visit(tree))
        ast.increment_lineno(tree, first_line - 1)
        namespace: dict[str, Any] = {}
        exec(compile(tree, filename, "exec"), factory.__globals__, namespace)  # noqa: S102 - our own source
        made = namespace[factory.__name__]
        made.__qualname__ = factory.__qualname__ + ("_gen" if generator else "")
        out.append(made)
    return out[0], out[1]
