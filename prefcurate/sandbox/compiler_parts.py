"""The typing contract of the compiler mixins (`interpreter.Compiler` combines them): the state
and the methods one part of the compiler uses of the others. For the type checker only: at
run time the mixins derive from `object`, and `Compiler` is what provides all of it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .runtime import Ctx, Env, Fn, Names
from .scope import Scope


class CompilerParts(Protocol):
    ctx: Ctx
    names: Names
    scope: Scope
    frozen: dict
    trusted: bool
    in_class_body: bool
    gen_body: bool  # compiling the statements of a generator function
    loop_depth: int  # compiling inside a loop body (code that runs many times)
    qual: list[str]

    def expr(self, node: ast.expr) -> Fn: ...

    def stmt(self, node: ast.stmt, gen: bool = False) -> Fn: ...

    def block(self, stmts: list[ast.stmt], gen: bool = False) -> Fn: ...

    def function_block(self, body: list[ast.stmt], gen: bool, params: list[str]) -> Fn: ...

    def load_name(self, name: str, node: ast.AST | None = None) -> Fn: ...

    def store_name(self, name: str) -> Fn: ...

    def del_name(self, name: str) -> Fn: ...

    def assign_target(self, node: ast.expr) -> Callable[[Env, Any], None]: ...

    def iter_expr(self, node: ast.expr) -> Fn: ...

    def pattern(self, p: ast.pattern) -> Callable[[Env, Any], bool]: ...

    def gen_value(self, node: ast.expr) -> Fn: ...

    def function(
        self,
        node: ast.AST,
        name: str,
        args: ast.arguments,
        body: list[ast.stmt],
        decorators: list[ast.expr],
        is_lambda: bool = False,
        returns: ast.expr | None = None,
    ) -> Fn: ...


if TYPE_CHECKING:
    CompilerBase = CompilerParts
else:
    CompilerBase = object
