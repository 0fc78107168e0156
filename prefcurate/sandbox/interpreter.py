"""A tree-walking interpreter for untrusted Python, with the sandbox policy built in.

How it walks the tree: each node of `ast.parse`'s output is turned once into a Python closure
(closure compilation) and the closures call each other; dispatch per node type is resolved
before the program runs, so running costs one Python call per node, not a lookup. Statements
return None, or a control signal (BREAK, CONTINUE, RETURN) that loops and functions consume;
control flow never uses exceptions, so interpreted `try` blocks cannot intercept it.

Scoping follows CPython: a symbol pass finds each function's locals, `global`/`nonlocal`
declarations, comprehension scopes and walrus targets; names resolve at compile time to local,
enclosing (by depth), class-body or global lookups. Private names in class bodies are mangled.

Generators: in a generator function, the statements that hold a `yield` are compiled by the
same statement methods into Python generator functions (`yield from` between nested
statements; each statement's closure factory is written once and made both ways, see
twofold.py), so a call returns a real Python generator and `send`/`throw`/`close`/`yield from`
behave exactly as in CPython, including `finally` blocks on close. `yield` is supported as a statement, as the value of an assignment or `return`;
elsewhere inside an expression it is refused with a clear message.

Objects are real Python objects: interpreted functions are host functions (so they bind as
methods, work with `sorted(key=...)`, `functools`, properties), classes are made with the
real metaclass, exceptions are real exceptions. The policy sits at the points where the
program can reach new objects: attribute access (no dunders except a few harmless ones, no
frames/code/generator internals), imports (per-run proxies of allowed modules), builtins
(an explicit list, with safe `getattr`/`setattr`/`eval`/`print`), and `str.format` field paths.

Layout: `Compiler` (here) combines one mixin per part of the language: names.py (names and
assignment targets), expressions.py (operators, calls, attributes, f-strings, lambdas),
comprehensions.py, statements.py (blocks and the step budget, control flow, try, with,
imports, match), patterns.py (match patterns), asserts.py (trusted test asserts),
functions.py (functions, classes, generator bodies); compiler_parts.py is their typing
contract (a Protocol), fastexpr.py and faststmt.py the generated host code for hot code
(expressions; statements, loops, blocks, function bodies), constants.py
CPython's folded set constants; scope.py does the symbol pass, runtime.py holds the per-run
state, safe_builtins.py the builtins, policy.py the rules.
"""

from __future__ import annotations

import ast
from typing import Any

from . import policy
from .asserts import AssertCompiler
from .comprehensions import ComprehensionCompiler
from .constants import frozen_constants
from .expressions import ExpressionCompiler
from .fastexpr import ROOTS, compile_fast
from .faststmt import compile_fast_block, compile_fast_function, compile_fast_stmt
from .functions import FunctionCompiler
from .modules import ModuleProxy, refuse_module
from .names import NameCompiler
from .patterns import PatternCompiler
from .runtime import BREAK, CONTINUE, RETURN, Ctx, Env, Fn, Names, _refuse
from .safe_builtins import _current_globals, _eval, make_builtins
from .scope import Scope, _Mangler
from .statements import GEN_STATEMENTS, StatementCompiler

__all__ = ["Compiler", "Ctx", "Env", "Interpreter"]

# Simple statements that may run as one host function (fastexpr.compile_fast_stmt).
_FAST_STATEMENTS = frozenset(
    {"Assign", "AugAssign", "Expr", "Return", "If", "Break", "Continue", "For", "While"}
)


class Compiler(
    NameCompiler,
    ExpressionCompiler,
    ComprehensionCompiler,
    StatementCompiler,
    PatternCompiler,
    AssertCompiler,
    FunctionCompiler,
):
    """AST -> closures. Each part of the language lives in its mixin's module."""

    def __init__(
        self, ctx: Ctx, trusted_asserts: bool = False, frozen: dict | None = None, names: Names | None = None
    ) -> None:
        self.ctx = ctx
        # Builtins and importer of this unit: the program's, or a test unit's own.
        self.names = names if names is not None else ctx.builtins
        # CPython's frozenset constants of this compilation unit (see `_folded_set`).
        self.frozen = frozen or {}
        self.trusted = trusted_asserts
        self.scope: Scope = Scope("module", None)
        self.in_class_body = False
        self.gen_body = False
        self.loop_depth = 0
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
    def function_block(self, body: list[ast.stmt], gen: bool, params: list[str]) -> Fn:
        """A function's body: one host function with native locals where it allows it
        (`fastexpr.compile_fast_function`), else a block."""
        if not gen:
            resolve = self.scope.resolve
            local_names = {n for n in self.scope.assigned if resolve(n) == ("local",)}
            signals = (RETURN, BREAK, CONTINUE)
            fast = compile_fast_function(body, resolve, self.names, self.ctx, signals, local_names, params)
            if fast is not None:
                return fast
        return self.block(body, gen)

    def block(self, stmts: list[ast.stmt], gen: bool = False) -> Fn:
        """A statement list as one host function where every statement allows it (a hot
        function or loop body, see `fastexpr`), else the closures (`StatementCompiler.block`)."""
        if not gen and not self.gen_body and self._hot():
            fast = compile_fast_block(
                stmts, self.scope.resolve, self.names, self.ctx, (RETURN, BREAK, CONTINUE)
            )
            if fast is not None:
                return fast
        return super().block(stmts, gen)

    def _hot(self) -> bool:
        """Code that may run many times: function bodies, comprehensions, loop bodies. Code run
        once (a module's or a test unit's top level) keeps the closures, which cost less to
        make than a fast path (`fastexpr`) saves on one run."""
        return self.loop_depth > 0 or self.scope.kind in ("function", "comp")

    def expr(self, node: ast.expr) -> Fn:
        if isinstance(node, ROOTS) and self._hot():  # one host function for the expression
            fast = compile_fast(node, self.scope.resolve, self.names, self.ctx)
            if fast is not None:
                return fast
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            raise _refuse(node, f"the expression '{type(node).__name__}' is not supported by the sandbox")
        return method(node)

    def stmt(self, node: ast.stmt, gen: bool = False) -> Fn:
        kind = type(node).__name__
        method = getattr(self, "s_" + kind, None)
        if method is None:
            raise _refuse(node, f"the statement '{kind}' is not supported by the sandbox")
        if not gen and kind in _FAST_STATEMENTS and self._hot():
            fast = compile_fast_stmt(
                node, self.scope.resolve, self.names, self.ctx, (RETURN, BREAK, CONTINUE)
            )
            if fast is not None:
                return fast
        if gen:  # holds a `yield` of the generator function being compiled
            if kind not in GEN_STATEMENTS:
                raise _refuse(node, f"'yield' inside a '{kind}' statement is not supported by the sandbox")
            return method(node, gen=True)
        return method(node)


class Interpreter:
    """One program's interpreter: fresh builtins, module proxies and globals.

    Test units (`run(..., trusted_asserts=True)`) run in a namespace of their own: what they
    assign never becomes a global the program can read (a `check(candidate)` body's locals
    stay its own), and they get fresh builtins and module proxies, so a program that sets
    `math.isclose = lambda *a: True` or defines `abs` does not change what its tests use.
    They still see the program's own definitions (the function under test, the prompt's
    helpers, `candidate`) through a fall-back to the program's globals."""

    def __init__(
        self,
        max_steps: int = policy.DEFAULT_MAX_STEPS,
        max_depth: int = 1000,
        module_name: str = "__sandbox__",
    ) -> None:
        self.ctx = ctx = Ctx(max_steps, max_depth, module_name)
        ctx.builtins.update(make_builtins(ctx, ctx.builtins))
        self.globals: dict[str, Any] = {"__name__": module_name, "__doc__": None}
        # `e = eval; e("x")` evaluates in the program's globals, even while a test runs.
        ctx.builtins["eval"] = _eval_in(ctx, ctx.builtins, self.globals)
        self.test_globals: dict[str, Any] = {"__name__": module_name, "__doc__": None}
        self._test_modules: dict[str, ModuleProxy] = {}
        self._test_builtins: dict[str, Any] | None = None
        policy.current.classes = ctx.classes
        policy.current.functions = ctx.functions
        _current_globals[0] = self.globals

    # -- the test units' names ---------------------------------------------------------------
    def _test_import(self, name: str) -> ModuleProxy:
        mod = self._test_modules.get(name)
        if mod is None:
            if name == "collections.abc":
                return self._test_import("collections").abc
            factory = self.ctx.factories.get(name)
            if factory is None:
                raise refuse_module(name)
            mod = self._test_modules[name] = factory()
        return mod

    def _program_name(self, name: str) -> Any:
        value = self.globals[name]
        if type(value) is ModuleProxy:  # the program's `import math`: the test's own math
            return self._test_import(object.__getattribute__(value, "_sandbox_name"))
        return value

    def prepare_tests(self) -> dict[str, Any]:
        """The test units' fresh builtins (made once per run, on first use)."""
        if self._test_builtins is None:
            fresh = Names(self._test_import)
            fresh.update(make_builtins(self.ctx, fresh))
            self._test_builtins = dict(fresh)
        return self._test_builtins

    def test_names(self, tree: ast.AST) -> Names:
        """A test unit's builtins: fresh ones, then the program's globals. A builtin name the
        program redefines (mbpp/126 tests a function named `sum`) is the program's only when
        the unit uses no other name of the program (nor a test name bound to one of its objects,
        `candidate`): then it is the function under test, not a helper wrapped around the
        candidate's result (`abs(candidate(x) - y) < 1e-6`)."""
        test_builtins = self.prepare_tests()
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        program = {n for n in used if n in self.globals and n not in self.test_globals}
        # A test name bound to the program's object (`candidate = truncate_number`) is the
        # function under test too: `abs(candidate(x) - y)` keeps the tests' own `abs`.
        values = {id(v) for v in self.globals.values()}
        program |= {n for n in used if n in self.test_globals and id(self.test_globals[n]) in values}
        shadowing = {n for n in program if n in test_builtins}
        names = Names(self._test_import, self._program_name)
        names.update(test_builtins)
        if shadowing and shadowing == program:
            for n in shadowing:
                del names[n]
        names["eval"] = _eval_in(self.ctx, names, self.test_globals)
        return names

    # -- running -----------------------------------------------------------------------------
    def compile(self, source: str, trusted_asserts: bool = False, filename: str = "<program>") -> Fn:
        tree = ast.parse(source, filename)
        # CPython's compiler also rejects `return` outside a function, `break` outside a loop,
        # bad `nonlocal`...: compile the tree only to get the same SyntaxErrors (never run).
        code = compile(tree, filename, "exec", dont_inherit=True)
        names = self.test_names(tree) if trusted_asserts else None
        return Compiler(self.ctx, trusted_asserts, frozen_constants(code), names).module(tree)

    def execute(self, code: Fn, globals_: dict[str, Any] | None = None) -> None:
        g = self.globals if globals_ is None else globals_
        policy.current.classes = self.ctx.classes
        policy.current.functions = self.ctx.functions
        _current_globals[0] = g
        code(Env(g, (), g))

    def run(self, source: str, trusted_asserts: bool = False) -> None:
        code = self.compile(source, trusted_asserts, "<test>" if trusted_asserts else "<program>")
        self.execute(code, self.test_globals if trusted_asserts else None)

    def close(self) -> None:
        """Drop everything the program created (finalizers run now, inside this run)."""
        self.globals.clear()
        self.test_globals.clear()
        self.ctx.modules.clear()
        self._test_modules.clear()
        self.ctx.asserts = []
        _current_globals[0] = {}


def _eval_in(ctx: Ctx, names: Names, globals_of: dict[str, Any]) -> Fn:
    """The `eval` builtin of one namespace (`eval(s)` by name gets the caller's scope instead)."""

    def eval_(source: Any, globals_: Any = None, locals_: Any = None) -> Any:
        if globals_ is None:
            globals_ = globals_of
        return _eval(ctx, None, source, globals_, locals_, names=names)

    eval_.__name__ = "eval"
    return eval_
