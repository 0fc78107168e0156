"""A tree-walking interpreter for untrusted Python, with the sandbox policy built in.

How it walks the tree: each node of `ast.parse`'s output is turned once into a Python closure
(closure compilation) and the closures call each other; dispatch per node type is resolved
before the program runs, so running costs one Python call per node, not a lookup. Statements
return None, or a control signal (BREAK, CONTINUE, RETURN) that loops and functions consume;
control flow never uses exceptions, so interpreted `try` blocks cannot intercept it.

Scoping follows CPython: a symbol pass finds each function's locals, `global`/`nonlocal`
declarations, comprehension scopes and walrus targets; names resolve at compile time to local,
enclosing (by depth), class-body or global lookups. Private names in class bodies are mangled.

Generators: a generator function's body is compiled a second way, into Python generator
functions (`yield from` between nested statements), so a call returns a real Python generator
and `send`/`throw`/`close`/`yield from` behave exactly as in CPython, including `finally` blocks
on close. `yield` is supported as a statement, as the value of an assignment or `return`;
elsewhere inside an expression it is refused with a clear message.

Objects are real Python objects: interpreted functions are host functions (so they bind as
methods, work with `sorted(key=...)`, `functools`, properties), classes are made with the
real metaclass, exceptions are real exceptions. The policy sits at the points where the
program can reach new objects: attribute access (no dunders except a few harmless ones, no
frames/code/generator internals), imports (per-run proxies of allowed modules), builtins
(an explicit list, with safe `getattr`/`setattr`/`eval`/`print`), and `str.format` field paths.

Layout: `Compiler` (here) combines one mixin per part of the language: expressions.py
(names, operators, calls, attributes, comprehensions, targets), statements.py (blocks and the
step budget, control flow, try, with, imports, match), asserts.py (trusted test asserts),
functions.py (functions, classes, generator bodies); scope.py does the symbol pass,
runtime.py holds the per-run state, safe_builtins.py the builtins, policy.py the rules.
"""

from __future__ import annotations

import ast
from typing import Any

from . import policy
from .asserts import AssertCompiler
from .expressions import ExpressionCompiler, frozen_constants
from .functions import FunctionCompiler
from .runtime import Ctx, Env, Fn, _refuse
from .safe_builtins import _current_globals, make_builtins
from .scope import Scope, _Mangler
from .statements import StatementCompiler

__all__ = ["Compiler", "Ctx", "Env", "Interpreter"]


class Compiler(ExpressionCompiler, StatementCompiler, AssertCompiler, FunctionCompiler):
    """AST -> closures. Each part of the language lives in its mixin's module."""

    def __init__(self, ctx: Ctx, trusted_asserts: bool = False, frozen: dict | None = None) -> None:
        self.ctx = ctx
        # CPython's frozenset constants of this compilation unit (see `_folded_set`).
        self.frozen = frozen or {}
        self.trusted = trusted_asserts
        self.scope: Scope = Scope("module", None)
        self.in_class_body = False
        self.qual: list[str] = []

    # -- entry points ------------------------------------------------------------------------
    def module(self, tree: ast.Module) -> Fn:
        tree = _Mangler().visit(tree)
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                if any(a.name == "annotations" for a in node.names):
                    self.scope.future_annotations = True
        return self.block(tree.body)

    def eval_expression(self, tree: ast.Expression) -> Fn:
        tree = _Mangler().visit(tree)
        self.scope = Scope("eval", None)
        return self.expr(tree.body)

    # -- dispatch ----------------------------------------------------------------------------
    def expr(self, node: ast.expr) -> Fn:
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            raise _refuse(node, f"the expression '{type(node).__name__}' is not supported by the sandbox")
        return method(node)

    def stmt(self, node: ast.stmt) -> Fn:
        method = getattr(self, "s_" + type(node).__name__, None)
        if method is None:
            raise _refuse(node, f"the statement '{type(node).__name__}' is not supported by the sandbox")
        return method(node)


class Interpreter:
    """One program's interpreter: fresh builtins, module proxies and globals."""

    def __init__(
        self, max_steps: int = 10_000_000, max_depth: int = 1000, module_name: str = "__sandbox__"
    ) -> None:
        self.ctx = Ctx(max_steps, max_depth, module_name)
        self.ctx.builtins.update(make_builtins(self.ctx))
        self.globals: dict[str, Any] = {"__name__": module_name, "__doc__": None}
        policy.current.classes = self.ctx.classes
        policy.current.functions = self.ctx.functions
        _current_globals[0] = self.globals

    def compile(self, source: str, trusted_asserts: bool = False, filename: str = "<program>") -> Fn:
        tree = ast.parse(source, filename)
        # CPython's compiler also rejects `return` outside a function, `break` outside a loop,
        # bad `nonlocal`...: compile the tree only to get the same SyntaxErrors (never run).
        code = compile(tree, filename, "exec", dont_inherit=True)
        return Compiler(self.ctx, trusted_asserts, frozen_constants(code)).module(tree)

    def execute(self, code: Fn) -> None:
        policy.current.classes = self.ctx.classes
        policy.current.functions = self.ctx.functions
        _current_globals[0] = self.globals
        code(Env(self.globals, (), self.globals))

    def run(self, source: str, trusted_asserts: bool = False) -> None:
        self.execute(self.compile(source, trusted_asserts))

    def close(self) -> None:
        """Drop everything the program created (finalizers run now, inside this run)."""
        self.globals.clear()
        self.ctx.modules.clear()
        self.ctx.asserts = []
        _current_globals[0] = {}
