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
"""

from __future__ import annotations

import ast
import builtins as _host_builtins
import itertools
import operator
import types
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from . import plain, policy
from .modules import ModuleProxy, _StdStream, _sys_exit, build_factories, refuse_module
from .policy import PolicyError, StepLimit, SandboxAbort, check_read, checked_getattr, is_dunder

BREAK = ("break",)
CONTINUE = ("continue",)
RETURN = ("return",)

Fn = Callable[..., Any]


class Ctx:
    """Per-run interpreter state: budgets, captured output, owned objects, module proxies."""

    __slots__ = (
        "steps", "max_steps", "depth", "max_depth", "out", "out_len", "truncated", "classes",
        "functions", "modules", "factories", "builtins", "asserts", "stdout_stream", "module_name",
    )

    def __init__(self, max_steps: int, max_depth: int, module_name: str) -> None:
        self.steps = max_steps
        self.max_steps = max_steps
        self.depth = 0
        self.max_depth = max_depth
        self.out: list[str] = []
        self.out_len = 0
        self.truncated = False
        self.classes: weakref.WeakSet = weakref.WeakSet()
        self.functions: weakref.WeakSet = weakref.WeakSet()
        self.modules: dict[str, ModuleProxy] = {}
        self.asserts: list = []
        self.module_name = module_name
        self.stdout_stream = _StdStream(self.write)
        self.factories = build_factories(self)
        self.builtins: dict[str, Any] = {}

    def write(self, text: str) -> None:
        if self.out_len >= plain.MAX_STDOUT:
            self.truncated = True
            return
        self.out.append(text)
        self.out_len += len(text)

    def take_output(self) -> str:
        text = "".join(self.out)
        self.out.clear()
        return text

    def import_module(self, name: str) -> ModuleProxy:
        mod = self.modules.get(name)
        if mod is None:
            if name == "collections.abc":
                return getattr(self.import_module("collections"), "abc")
            factory = self.factories.get(name)
            if factory is None:
                raise refuse_module(name)
            mod = self.modules[name] = factory()
        return mod


class Env:
    """One activation: locals dict, enclosing function scopes (innermost first), globals, the
    return value slot and the `super()` class cell."""

    __slots__ = ("l", "up", "g", "ret", "cls")

    def __init__(self, l: dict, up: tuple, g: dict, cls: list | None = None) -> None:
        self.l = l
        self.up = up
        self.g = g
        self.ret = None
        self.cls = cls


# ---------------------------------------------------------------------------------------------
# Scope analysis


class Scope:
    def __init__(self, kind: str, parent: "Scope | None") -> None:
        self.kind = kind  # module | function | class | comp | eval
        self.parent = parent
        self.assigned: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.firstarg: str | None = None
        self.future_annotations = parent.future_annotations if parent else False

    @property
    def fn_like(self) -> bool:
        return self.kind in ("function", "comp", "eval")

    def resolve(self, name: str) -> tuple:
        if self.kind == "module":
            return ("global",)
        if self.kind == "eval":
            return ("dynamic",)
        if name in self.globals:
            return ("global",)
        if self.kind == "class":
            if name in self.assigned:
                return ("class", self._free(name))
            return ("class", self._free(name))
        if name in self.assigned and name not in self.nonlocals:
            return ("local",)
        return self._free(name)

    def _free(self, name: str) -> tuple:
        depth = 0
        p = self.parent
        while p is not None:
            if p.kind == "class":
                p = p.parent
                continue
            if p.kind == "module":
                return ("global",)
            if p.kind == "eval":
                return ("dynamic",)
            if name in p.globals:
                return ("global",)
            if name in p.assigned and name not in p.nonlocals:
                return ("free", depth)
            depth += 1
            p = p.parent
        return ("global",)


_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _walrus_targets(node: ast.AST, out: set[str]) -> None:
    for child in ast.walk(node):
        if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
            out.add(child.target.id)


def _target_names(node: ast.AST, out: set[str]) -> None:
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            out.add(child.id)


def collect_scope(scope: Scope, body: list[ast.AST]) -> None:
    """Fill scope.assigned/globals/nonlocals from the statements of one scope (not descending
    into nested functions, lambdas, classes or comprehensions, whose own names stay theirs)."""
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, _FUNCS):
            scope.assigned.add(n.name)
            stack.extend(n.decorator_list)
            stack.extend(n.args.defaults)
            stack.extend(d for d in n.args.kw_defaults if d is not None)
            continue
        if isinstance(n, ast.ClassDef):
            scope.assigned.add(n.name)
            stack.extend(n.bases)
            stack.extend(k.value for k in n.keywords)
            stack.extend(n.decorator_list)
            continue
        if isinstance(n, ast.Lambda):
            stack.extend(n.args.defaults)
            stack.extend(d for d in n.args.kw_defaults if d is not None)
            continue
        if isinstance(n, _COMPS):
            stack.append(n.generators[0].iter)
            _walrus_targets(n, scope.assigned)
            continue
        if isinstance(n, ast.Name):
            if not isinstance(n.ctx, ast.Load):
                scope.assigned.add(n.id)
            continue
        if isinstance(n, ast.Global):
            scope.globals.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            scope.nonlocals.update(n.names)
        elif isinstance(n, ast.NamedExpr):
            scope.assigned.add(n.target.id)  # type: ignore[attr-defined]
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                if alias.name != "*":
                    scope.assigned.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            scope.assigned.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            scope.assigned.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            scope.assigned.add(n.rest)
        stack.extend(ast.iter_child_nodes(n))


class _Mangler(ast.NodeTransformer):
    """CPython's private-name mangling: `__x` inside `class C` becomes `_C__x`."""

    def __init__(self) -> None:
        self.cls: str | None = None

    def m(self, name: str | None) -> str | None:
        if self.cls and name and name.startswith("__") and not name.endswith("__") and "." not in name:
            stripped = self.cls.lstrip("_")
            return f"_{stripped}{name}" if stripped else name
        return name

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self.m(node.name)  # type: ignore[assignment]
        for field in ("bases", "keywords", "decorator_list"):
            for child in getattr(node, field):
                self.visit(child)
        outer, self.cls = self.cls, node.name
        node.body = [self.visit(s) for s in node.body]
        self.cls = outer
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.m(node.id)  # type: ignore[assignment]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        node.attr = self.m(node.attr)  # type: ignore[assignment]
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.m(node.arg)  # type: ignore[assignment]
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self.m(node.name)  # type: ignore[assignment]
        self.generic_visit(node)
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self.m(n) for n in node.names]  # type: ignore[misc]
        return node

    visit_Nonlocal = visit_Global  # type: ignore[assignment]


def _contains_yield(body: list[ast.AST]) -> bool:
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(n, (*_FUNCS, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


# ---------------------------------------------------------------------------------------------
# Operators

BINOPS: dict[type, Fn] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.MatMult: operator.matmul,
}
INPLACE: dict[type, Fn] = {
    ast.Add: operator.iadd, ast.Sub: operator.isub, ast.Mult: operator.imul, ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv, ast.Mod: operator.imod, ast.Pow: operator.ipow,
    ast.LShift: operator.ilshift, ast.RShift: operator.irshift, ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor, ast.BitAnd: operator.iand, ast.MatMult: operator.imatmul,
}
CMPOPS: dict[type, Fn] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
UNARY: dict[type, Fn] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Invert: operator.invert, ast.Not: operator.not_,
}

_SPECIAL_CLASS_MATCH = (bool, bytearray, bytes, dict, float, frozenset, int, list, set, str, tuple)


def _refuse(node: ast.AST | None, what: str) -> PolicyError:
    line = getattr(node, "lineno", None)
    where = f" (line {line})" if line else ""
    return PolicyError(f"{what}{where}")


def _unpack(value: Any, n: int) -> list:
    it = iter(value)
    vals = list(itertools.islice(it, n + 1))
    if len(vals) != n:
        if len(vals) > n:
            raise ValueError(f"too many values to unpack (expected {n})")
        raise ValueError(f"not enough values to unpack (expected {n}, got {len(vals)})")
    return vals


def owned_setattr(ctx: Ctx, obj: Any, name: str, value: Any, delete: bool = False) -> None:
    """Attribute writes: only on objects this program created (its classes, their instances,
    its functions) and on its module proxies; never dunders; never on host classes or modules."""
    if type(name) is not str:
        raise TypeError("attribute name must be string")
    if is_dunder(name):
        raise PolicyError(f"setting dunder attribute '{name}' is not allowed in the sandbox")
    t = type(obj)
    owned = ctx.classes
    if not (t in owned or obj in ctx.functions or t is ModuleProxy or (isinstance(obj, type) and obj in owned)):
        kind = obj.__name__ if isinstance(obj, type) else t.__name__
        raise PolicyError(
            f"setting attribute '{name}' on a {kind} object is not allowed in the sandbox "
            "(only on the program's own classes, instances and functions)"
        )
    if delete:
        delattr(obj, name)
    else:
        setattr(obj, name, value)


# ---------------------------------------------------------------------------------------------
# The compiler: AST -> closures


class Compiler:
    def __init__(self, ctx: Ctx, trusted_asserts: bool = False) -> None:
        self.ctx = ctx
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

    def block(self, stmts: list[ast.stmt]) -> Fn:
        fns = tuple(self.stmt(s) for s in stmts)
        ctx = self.ctx
        n = len(fns)

        def over() -> None:
            raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")

        if n == 1:
            s0 = fns[0]

            def run1(env: Env) -> Any:
                ctx.steps -= 1
                if ctx.steps < 0:
                    over()
                return s0(env)

            return run1
        if n == 2:
            s0, s1 = fns

            def run2(env: Env) -> Any:
                ctx.steps -= 2
                if ctx.steps < 0:
                    over()
                r = s0(env)
                if r is not None:
                    return r
                return s1(env)

            return run2

        def run(env: Env) -> Any:
            ctx.steps -= n
            if ctx.steps < 0:
                over()
            for s in fns:
                r = s(env)
                if r is not None:
                    return r
            return None

        return run

    # -- names -------------------------------------------------------------------------------
    def load_name(self, name: str, node: ast.AST | None = None) -> Fn:
        res = self.scope.resolve(name)
        B = self.ctx.builtins
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
        B = self.ctx.builtins
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

    # -- expressions -------------------------------------------------------------------------
    def e_Constant(self, node: ast.Constant) -> Fn:
        v = node.value
        return lambda env: v

    def e_Name(self, node: ast.Name) -> Fn:
        return self.load_name(node.id, node)

    def e_NamedExpr(self, node: ast.NamedExpr) -> Fn:
        value = self.expr(node.value)
        store = self.store_name(node.target.id)  # type: ignore[attr-defined]

        def walrus(env: Env) -> Any:
            v = value(env)
            store(env, v)
            return v

        return walrus

    def e_BinOp(self, node: ast.BinOp) -> Fn:
        op = BINOPS[type(node.op)]
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda env: op(left(env), right(env))

    def e_UnaryOp(self, node: ast.UnaryOp) -> Fn:
        op = UNARY[type(node.op)]
        operand = self.expr(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        return lambda env: op(operand(env))

    def e_BoolOp(self, node: ast.BoolOp) -> Fn:
        values = tuple(self.expr(v) for v in node.values)
        if isinstance(node.op, ast.And):

            def and_(env: Env) -> Any:
                v = None
                for f in values:
                    v = f(env)
                    if not v:
                        return v
                return v

            return and_

        def or_(env: Env) -> Any:
            v = None
            for f in values:
                v = f(env)
                if v:
                    return v
            return v

        return or_

    def e_Compare(self, node: ast.Compare) -> Fn:
        left = self.expr(node.left)
        ops = tuple(CMPOPS[type(o)] for o in node.ops)
        rights = tuple(self.expr(c) for c in node.comparators)
        if len(ops) == 1:
            op, right = ops[0], rights[0]
            return lambda env: op(left(env), right(env))

        def chain(env: Env) -> Any:
            a = left(env)
            r: Any = True
            for op, rf in zip(ops, rights):
                b = rf(env)
                r = op(a, b)
                if not r:
                    return r
                a = b
            return r

        return chain

    def e_IfExp(self, node: ast.IfExp) -> Fn:
        test, body, orelse = self.expr(node.test), self.expr(node.body), self.expr(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def _elements(self, elts: list[ast.expr]) -> Fn:
        """Closure returning a list of the values, expanding *starred elements."""
        if not any(isinstance(e, ast.Starred) for e in elts):
            fns = tuple(self.expr(e) for e in elts)
            return lambda env: [f(env) for f in fns]
        parts = tuple((isinstance(e, ast.Starred), self.expr(e.value if isinstance(e, ast.Starred) else e)) for e in elts)

        def build(env: Env) -> list:
            out: list = []
            for star, f in parts:
                if star:
                    out.extend(f(env))
                else:
                    out.append(f(env))
            return out

        return build

    def e_List(self, node: ast.List) -> Fn:
        return self._elements(node.elts)

    def e_Tuple(self, node: ast.Tuple) -> Fn:
        elems = self._elements(node.elts)
        return lambda env: tuple(elems(env))

    def e_Set(self, node: ast.Set) -> Fn:
        elems = self._elements(node.elts)
        return lambda env: set(elems(env))

    def e_Dict(self, node: ast.Dict) -> Fn:
        items = tuple((None if k is None else self.expr(k), self.expr(v)) for k, v in zip(node.keys, node.values))

        def build(env: Env) -> dict:
            d: dict = {}
            for k, v in items:
                if k is None:
                    d.update(v(env))
                else:
                    key = k(env)
                    d[key] = v(env)
            return d

        return build

    def e_JoinedStr(self, node: ast.JoinedStr) -> Fn:
        parts = tuple(self.expr(v) for v in node.values)
        return lambda env: "".join([p(env) for p in parts])

    def e_FormattedValue(self, node: ast.FormattedValue) -> Fn:
        value = self.expr(node.value)
        conv = {-1: None, 115: str, 114: repr, 97: ascii}[node.conversion]
        spec = self.expr(node.format_spec) if node.format_spec is not None else None

        def fmt(env: Env) -> str:
            v = value(env)
            if conv is not None:
                v = conv(v)
            return format(v, spec(env) if spec is not None else "")

        return fmt

    def e_Attribute(self, node: ast.Attribute) -> Fn:
        name = node.attr
        value = self.expr(node.value)
        if is_dunder(name) and name not in policy.READABLE_DUNDERS or name in policy.BLOCKED_ATTRS:
            err = _refuse(node, f"access to attribute '{name}' is not allowed in the sandbox")

            def refused(env: Env) -> Any:
                value(env)
                raise PolicyError(str(err))

            return refused
        if name in ("format", "format_map") or name in policy.BLOCKED_ON_HOST_TYPES:
            return lambda env: checked_getattr(value(env), name)
        return lambda env: getattr(value(env), name)

    def e_Subscript(self, node: ast.Subscript) -> Fn:
        value, index = self.expr(node.value), self.expr(node.slice)
        return lambda env: value(env)[index(env)]

    def e_Slice(self, node: ast.Slice) -> Fn:
        lo = self.expr(node.lower) if node.lower else None
        hi = self.expr(node.upper) if node.upper else None
        st = self.expr(node.step) if node.step else None
        return lambda env: slice(lo(env) if lo else None, hi(env) if hi else None, st(env) if st else None)

    def e_Starred(self, node: ast.Starred) -> Fn:
        raise _refuse(node, "a starred expression is not allowed here")

    def e_Yield(self, node: ast.AST) -> Fn:
        raise _refuse(node, "'yield' inside a larger expression is not supported by the sandbox "
                            "(use it as a statement, an assignment value or a return value)")

    e_YieldFrom = e_Yield

    def e_Await(self, node: ast.AST) -> Fn:
        raise _refuse(node, "async code (await) is not supported by the sandbox")

    def e_Call(self, node: ast.Call) -> Fn:
        func = self.expr(node.func)
        simple = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if isinstance(node.func, ast.Name) and node.func.id in ("super", "eval"):
            return self._special_call(node, func)
        if simple:
            args = tuple(self.expr(a) for a in node.args)
            n = len(args)
            if n == 0:
                return lambda env: func(env)()
            if n == 1:
                a0 = args[0]
                return lambda env: func(env)(a0(env))
            if n == 2:
                a0, a1 = args
                return lambda env: func(env)(a0(env), a1(env))
            if n == 3:
                a0, a1, a2 = args
                return lambda env: func(env)(a0(env), a1(env), a2(env))
            return lambda env: func(env)(*[a(env) for a in args])
        pos = self._elements(node.args)
        kws = tuple((k.arg, self.expr(k.value)) for k in node.keywords)

        def call(env: Env) -> Any:
            f = func(env)
            args = pos(env)
            kwargs: dict = {}
            for name, vf in kws:
                if name is None:
                    mapping = vf(env)
                    for key in mapping.keys():
                        if key in kwargs:
                            raise TypeError(f"got multiple values for keyword argument '{key}'")
                        kwargs[key] = mapping[key]
                else:
                    if name in kwargs:
                        raise TypeError(f"got multiple values for keyword argument '{name}'")
                    kwargs[name] = vf(env)
            return f(*args, **kwargs)

        return call

    def _special_call(self, node: ast.Call, func: Fn) -> Fn:
        """`super()` needs the class cell and first argument; `eval(s)` needs the caller's
        scope. Both are decided at run time: only when the name really is the builtin."""
        name = node.func.id  # type: ignore[attr-defined]
        pos = self._elements(node.args)
        kws = tuple((k.arg, self.expr(k.value)) for k in node.keywords)
        ctx = self.ctx
        firstarg = self.scope.firstarg
        B = ctx.builtins

        def args_of(env: Env) -> tuple[list, dict]:
            kwargs: dict = {}
            for k, vf in kws:
                if k is None:
                    kwargs.update(vf(env))
                else:
                    kwargs[k] = vf(env)
            return pos(env), kwargs

        def special(env: Env) -> Any:
            f = func(env)
            args, kwargs = args_of(env)
            if name == "super" and f is super and not args and not kwargs:
                cell = env.cls
                if cell is None or cell[0] is None:
                    raise RuntimeError("super(): __class__ cell not found")
                if firstarg is None or firstarg not in env.l:
                    raise RuntimeError("super(): no arguments")
                return super(cell[0], env.l[firstarg])
            if name == "eval" and f is B.get("eval"):
                return _eval(ctx, env, *args, **kwargs)
            return f(*args, **kwargs)

        return special

    def e_Lambda(self, node: ast.Lambda) -> Fn:
        body = [ast.Return(value=node.body, lineno=node.lineno, col_offset=node.col_offset)]
        return self.function(node, "<lambda>", node.args, body, [], is_lambda=True)

    # -- comprehensions ----------------------------------------------------------------------
    def _comprehension(self, node: Any) -> tuple[Fn, Callable[[Env], Env], Fn]:
        """Returns (first_iter, make_env, combos) where combos(cenv, it) yields once per
        innermost binding, with the comprehension's own scope."""
        gens = node.generators
        for g in gens:
            if g.is_async:
                raise _refuse(node, "async comprehensions are not supported by the sandbox")
        first = self.expr(gens[0].iter)
        outer = self.scope
        scope = Scope("comp", outer)
        for g in gens:
            _target_names(g.target, scope.assigned)
        self.scope = scope
        try:
            levels = []
            for i, g in enumerate(gens):
                it = None if i == 0 else self.expr(g.iter)
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
                for t, v in zip(targets, _unpack(value, n)):
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
            for t, v in zip(before, vals):
                t(env, v)
            star(env, vals[len(before) : len(vals) - len(after)])
            for t, v in zip(after, vals[len(vals) - len(after) :]):
                t(env, v)

        return unpack_star

    # -- statements --------------------------------------------------------------------------
    def s_Expr(self, node: ast.Expr) -> Fn:
        value = self.expr(node.value)

        def expr_stmt(env: Env) -> None:
            value(env)

        return expr_stmt

    def s_Pass(self, node: ast.Pass) -> Fn:
        return lambda env: None

    def s_Break(self, node: ast.Break) -> Fn:
        return lambda env: BREAK

    def s_Continue(self, node: ast.Continue) -> Fn:
        return lambda env: CONTINUE

    def s_Return(self, node: ast.Return) -> Fn:
        if node.value is None:

            def ret_none(env: Env) -> Any:
                env.ret = None
                return RETURN

            return ret_none
        value = self.expr(node.value)

        def ret(env: Env) -> Any:
            env.ret = value(env)
            return RETURN

        return ret

    def s_Assign(self, node: ast.Assign) -> Fn:
        value = self.expr(node.value)
        targets = tuple(self.assign_target(t) for t in node.targets)
        if len(targets) == 1:
            t0 = targets[0]

            def assign1(env: Env) -> None:
                t0(env, value(env))

            return assign1

        def assign(env: Env) -> None:
            v = value(env)
            for t in targets:
                t(env, v)

        return assign

    def s_AugAssign(self, node: ast.AugAssign) -> Fn:
        op = INPLACE[type(node.op)]
        value = self.expr(node.value)
        target = node.target
        if isinstance(target, ast.Name):
            load, store = self.load_name(target.id), self.store_name(target.id)

            def aug_name(env: Env) -> None:
                store(env, op(load(env), value(env)))

            return aug_name
        if isinstance(target, ast.Attribute):
            obj = self.expr(target.value)
            name = target.attr
            ctx = self.ctx

            def aug_attr(env: Env) -> None:
                o = obj(env)
                owned_setattr(ctx, o, name, op(checked_getattr(o, name), value(env)))

            return aug_attr
        if isinstance(target, ast.Subscript):
            obj, index = self.expr(target.value), self.expr(target.slice)

            def aug_item(env: Env) -> None:
                o = obj(env)
                i = index(env)
                o[i] = op(o[i], value(env))

            return aug_item
        raise _refuse(node, "unsupported augmented assignment target")

    def s_AnnAssign(self, node: ast.AnnAssign) -> Fn:
        evaluate_annotation = (
            self.scope.kind in ("module", "class") and not self.scope.future_annotations and node.simple
        )
        ann = self.expr(node.annotation) if evaluate_annotation else None
        is_class = self.scope.kind == "class"
        name = node.target.id if isinstance(node.target, ast.Name) else None
        value = self.expr(node.value) if node.value is not None else None
        target = self.assign_target(node.target) if value is not None else None

        def ann_assign(env: Env) -> None:
            if value is not None:
                target(env, value(env))  # type: ignore[misc]
            if ann is not None:
                a = ann(env)
                if is_class and name is not None:
                    env.l.setdefault("__annotations__", {})[name] = a

        return ann_assign

    def s_If(self, node: ast.If) -> Fn:
        test, body = self.expr(node.test), self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None
        if orelse is None:

            def if_(env: Env) -> Any:
                if test(env):
                    return body(env)
                return None

            return if_

        def if_else(env: Env) -> Any:
            if test(env):
                return body(env)
            return orelse(env)

        return if_else

    def s_While(self, node: ast.While) -> Fn:
        test, body = self.expr(node.test), self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None

        def while_(env: Env) -> Any:
            while test(env):
                r = body(env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(env)
            return None

        return while_

    def s_For(self, node: ast.For) -> Fn:
        it = self.expr(node.iter)
        assign = self.assign_target(node.target)
        body = self.block(node.body)
        orelse = self.block(node.orelse) if node.orelse else None

        def for_(env: Env) -> Any:
            for x in it(env):
                assign(env, x)
                r = body(env)
                if r is not None:
                    if r is BREAK:
                        return None
                    if r is CONTINUE:
                        continue
                    return r
            if orelse is not None:
                return orelse(env)
            return None

        return for_

    def s_AsyncFor(self, node: ast.AST) -> Fn:
        raise _refuse(node, "async code is not supported by the sandbox")

    s_AsyncWith = s_AsyncFor
    s_AsyncFunctionDef = s_AsyncFor

    def s_TryStar(self, node: ast.AST) -> Fn:
        raise _refuse(node, "'except*' is not supported by the sandbox")

    def s_Global(self, node: ast.AST) -> Fn:
        return lambda env: None

    s_Nonlocal = s_Global

    def s_Delete(self, node: ast.Delete) -> Fn:
        fns = tuple(self._delete_target(t) for t in node.targets)

        def delete(env: Env) -> None:
            for f in fns:
                f(env)

        return delete

    def _delete_target(self, node: ast.expr) -> Fn:
        if isinstance(node, ast.Name):
            return self.del_name(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            fns = tuple(self._delete_target(e) for e in node.elts)

            def del_all(env: Env) -> None:
                for f in fns:
                    f(env)

            return del_all
        if isinstance(node, ast.Subscript):
            obj, index = self.expr(node.value), self.expr(node.slice)

            def del_item(env: Env) -> None:
                o = obj(env)
                del o[index(env)]

            return del_item
        if isinstance(node, ast.Attribute):
            obj = self.expr(node.value)
            name = node.attr
            ctx = self.ctx
            return lambda env: owned_setattr(ctx, obj(env), name, None, delete=True)
        raise _refuse(node, f"cannot delete {type(node).__name__}")

    def s_Raise(self, node: ast.Raise) -> Fn:
        if node.exc is None:

            def reraise(env: Env) -> None:
                raise  # noqa: PLE0704 - re-raises the exception being handled, as in CPython

            return reraise
        exc = self.expr(node.exc)
        cause = self.expr(node.cause) if node.cause is not None else None

        def make(v: Any) -> BaseException:
            if isinstance(v, type) and issubclass(v, BaseException):
                return v()
            if isinstance(v, BaseException):
                return v
            raise TypeError("exceptions must derive from BaseException")

        def raise_(env: Env) -> None:
            e = make(exc(env))
            if cause is not None:
                c = cause(env)
                c = None if c is None else make(c)
                raise e from c
            raise e

        return raise_

    def _handlers(self, node: Any) -> tuple:
        handlers = []
        for h in node.handlers:
            typ = self.expr(h.type) if h.type is not None else None
            store = self.store_name(h.name) if h.name else None
            delete = self.del_name(h.name) if h.name else None
            handlers.append((typ, store, delete, self.block(h.body)))
        return tuple(handlers)

    def s_Try(self, node: ast.Try) -> Fn:
        body = self.block(node.body)
        handlers = self._handlers(node)
        orelse = self.block(node.orelse) if node.orelse else None
        final = self.block(node.finalbody) if node.finalbody else None

        def handle(env: Env, e: BaseException) -> Any:
            """Run the matching handler; returns (matched, signal)."""
            for typ, store, delete, hbody in handlers:
                if typ is not None and not _matches(e, typ(env)):
                    continue
                if store is not None:
                    store(env, e)
                    try:
                        return True, hbody(env)
                    finally:
                        try:
                            delete(env)  # type: ignore[misc]
                        except NameError:
                            pass
                return True, hbody(env)
            return False, None

        def try_(env: Env) -> Any:
            try:
                r = body(env)
            except SandboxAbort:
                raise
            except BaseException as e:
                if not handlers:
                    raise
                matched, r = handle(env, e)
                if not matched:
                    raise
                return r
            if r is not None:
                return r
            if orelse is not None:
                return orelse(env)
            return None

        if final is None:
            return try_

        def try_finally(env: Env) -> Any:
            try:
                r = try_(env)
            except SandboxAbort:
                raise
            except BaseException:
                f = final(env)
                if f is not None:
                    return f  # return/break/continue in `finally` swallows the exception
                raise
            f = final(env)
            return f if f is not None else r

        return try_finally

    def s_Assert(self, node: ast.Assert) -> Fn:
        msg = self.expr(node.msg) if node.msg is not None else None
        if self.trusted:
            return self._trusted_assert(node, msg)
        test = self.expr(node.test)

        def assert_(env: Env) -> None:
            if not test(env):
                if msg is not None:
                    raise AssertionError(msg(env))
                raise AssertionError

        return assert_

    def _trusted_assert(self, node: ast.Assert, msg: Fn | None) -> Fn:
        """An assert in test code: operands must be plain data, the comparison runs on them
        (never a candidate-defined method), and a trace goes to the parent for re-checking."""
        trace = self._trace(node.test)
        ctx = self.ctx
        source = ast.unparse(node.test)
        if len(source) > 200:
            source = source[:200] + "..."

        def trusted_assert(env: Env) -> None:
            ok, tr = trace(env)
            if not ok:
                if msg is not None:
                    raise AssertionError(msg(env))
                raise AssertionError(f"assert {source}")
            ctx.asserts.append(tr)

        return trusted_assert

    def _trace(self, node: ast.expr) -> Callable[[Env], tuple[bool, Any]]:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._trace(node.operand)

            def not_(env: Env) -> tuple[bool, Any]:
                ok, tr = inner(env)
                return (not ok), ["not", tr]

            return not_
        if isinstance(node, ast.BoolOp):
            parts = tuple(self._trace(v) for v in node.values)
            is_and = isinstance(node.op, ast.And)
            kind = "and" if is_and else "or"

            def boolop(env: Env) -> tuple[bool, Any]:
                trs = []
                ok = is_and
                for p in parts:
                    ok, tr = p(env)
                    trs.append(tr)
                    if ok != is_and:
                        break
                return ok, [kind, trs]

            return boolop
        if isinstance(node, ast.Compare):
            left = self.expr(node.left)
            ops = tuple(type(o).__name__ for o in node.ops)
            rights = tuple(self.expr(c) for c in node.comparators)

            def compare(env: Env) -> tuple[bool, Any]:
                a = left(env)
                ea: Any = _NOT_ENCODED
                vals: list = []
                trace_ops: list = []
                ok = True
                for opname, rf in zip(ops, rights):
                    b = rf(env)
                    if opname in ("Is", "IsNot"):
                        r = (a is b) if opname == "Is" else (a is not b)
                        if ea is _NOT_ENCODED:
                            vals.append(None)
                        else:
                            vals.append(ea)
                        trace_ops.append(["id", bool(r)])
                        eb: Any = _NOT_ENCODED
                    else:
                        if ea is _NOT_ENCODED:
                            ea = _plain(a)
                        eb = _plain(b)
                        vals.append(ea)
                        r = plain.COMPARE[opname](a, b)
                        trace_ops.append(opname)
                    ok = bool(r)
                    if not ok:
                        vals.append(eb if eb is not _NOT_ENCODED else None)
                        break
                    a, ea = b, eb
                else:
                    vals.append(ea if ea is not _NOT_ENCODED else None)
                return ok, ["cmp", vals, trace_ops]

            return compare
        value = self.expr(node)

        def truth(env: Env) -> tuple[bool, Any]:
            v = value(env)
            enc = _plain(v)
            return bool(v), ["val", enc]

        return truth

    def s_Import(self, node: ast.Import) -> Fn:
        ctx = self.ctx
        items = []
        for alias in node.names:
            top = alias.name.split(".")[0]
            store = self.store_name(alias.asname or top)
            items.append((alias.name, top, bool(alias.asname), store))

        def import_(env: Env) -> None:
            for full, top, has_as, store in items:
                mod = ctx.import_module(full)
                store(env, mod if has_as else ctx.import_module(top))

        return import_

    def s_ImportFrom(self, node: ast.ImportFrom) -> Fn:
        if node.level:
            raise _refuse(node, "relative imports are not allowed in the sandbox")
        module = node.module or ""
        if module == "__future__":
            return lambda env: None
        ctx = self.ctx
        if any(a.name == "*" for a in node.names):
            if self.scope.kind != "module":
                raise _refuse(node, "'import *' is only allowed at module level")

            def import_star(env: Env) -> None:
                mod = ctx.import_module(module)
                for k, v in vars(mod).items():
                    if not k.startswith("_"):
                        env.g[k] = v

            return import_star
        items = [(a.name, self.store_name(a.asname or a.name)) for a in node.names]

        def import_from(env: Env) -> None:
            mod = ctx.import_module(module)
            for name, store in items:
                if is_dunder(name) or name.startswith("_"):
                    raise PolicyError(f"importing private name '{name}' from '{module}' is not allowed in the sandbox")
                try:
                    v = getattr(mod, name)
                except AttributeError:
                    raise ImportError(f"cannot import name '{name}' from '{module}' (sandbox proxy)") from None
                store(env, v)

        return import_from

    def s_With(self, node: ast.With) -> Fn:
        body = self.block(node.body)
        for item in reversed(node.items):
            body = self._with_item(item, body)
        return body

    def _with_item(self, item: ast.withitem, body: Fn) -> Fn:
        mgr_fn = self.expr(item.context_expr)
        target = self.assign_target(item.optional_vars) if item.optional_vars is not None else None

        def with_(env: Env) -> Any:
            mgr = mgr_fn(env)
            t = type(mgr)
            try:
                enter, exit_ = t.__enter__, t.__exit__
            except AttributeError:
                raise TypeError(f"'{t.__name__}' object does not support the context manager protocol") from None
            v = enter(mgr)
            if target is not None:
                target(env, v)
            try:
                r = body(env)
            except SandboxAbort:
                raise
            except BaseException as e:
                # The traceback is not passed on: it would expose frames.
                if not exit_(mgr, type(e), e, None):
                    raise
                return None
            exit_(mgr, None, None, None)
            return r

        return with_

    # -- match -------------------------------------------------------------------------------
    def s_Match(self, node: ast.Match) -> Fn:
        subject = self.expr(node.subject)
        cases = tuple(
            (self.pattern(c.pattern), self.expr(c.guard) if c.guard is not None else None, self.block(c.body))
            for c in node.cases
        )

        def match(env: Env) -> Any:
            s = subject(env)
            for pat, guard, body in cases:
                if pat(env, s) and (guard is None or guard(env)):
                    return body(env)
            return None

        return match

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
                for k, pat in zip(ks, pats):
                    if k not in s or not pat(env, s[k]):
                        return False
                if rest is not None:
                    rest(env, {k: v for k, v in s.items() if k not in ks})
                return True

            return mapping
        if isinstance(p, ast.MatchClass):
            cls_fn = self.expr(p.cls)
            pos = tuple(self.pattern(x) for x in p.patterns)
            kw = tuple((name, self.pattern(x)) for name, x in zip(p.kwd_attrs, p.kwd_patterns))

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
                            raise TypeError(f"{cls.__name__}() accepts {len(names)} positional sub-patterns ({len(pos)} given)")
                        for name, pat in zip(names, pos):
                            if not hasattr(s, name) or not pat(env, checked_getattr(s, name)):
                                return False
                for name, pat in kw:
                    check_read(name)
                    if not hasattr(s, name) or not pat(env, getattr(s, name)):
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
                return all(pat(env, v) for pat, v in zip(pats, s))  # type: ignore[misc]

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
            for pat, v in zip(before, vals):
                if not pat(env, v):  # type: ignore[misc]
                    return False
            tail = vals[len(vals) - len(after) :] if after else []
            for pat, v in zip(after, tail):
                if not pat(env, v):  # type: ignore[misc]
                    return False
            if star_store is not None:
                star_store(env, vals[len(before) : len(vals) - len(after)])
            return True

        return seq_star

    # -- functions and classes ---------------------------------------------------------------
    def s_FunctionDef(self, node: ast.FunctionDef) -> Fn:
        make = self.function(node, node.name, node.args, node.body, node.decorator_list, returns=node.returns)
        store = self.store_name(node.name)

        def def_(env: Env) -> None:
            store(env, make(env))

        return def_

    def function(
        self,
        node: ast.AST,
        name: str,
        args: ast.arguments,
        body: list[ast.stmt],
        decorators: list[ast.expr],
        is_lambda: bool = False,
        returns: ast.expr | None = None,
    ) -> Fn:
        ctx = self.ctx
        decos = tuple(self.expr(d) for d in decorators)
        defaults = tuple(self.expr(d) for d in args.defaults)
        kw_defaults = tuple((a.arg, self.expr(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
        # Annotations are evaluated at definition time, as CPython does (and then dropped).
        ann_nodes = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation]
        for extra in (args.vararg, args.kwarg):
            if extra is not None and extra.annotation is not None:
                ann_nodes.append(extra.annotation)
        if returns is not None:
            ann_nodes.append(returns)
        anns = () if self.scope.future_annotations else tuple(self.expr(a) for a in ann_nodes)

        outer = self.scope
        scope = Scope("function", outer)
        params = [a.arg for a in (*args.posonlyargs, *args.args)]
        kwonly = [a.arg for a in args.kwonlyargs]
        scope.assigned.update(params, kwonly)
        if args.vararg:
            scope.assigned.add(args.vararg.arg)
        if args.kwarg:
            scope.assigned.add(args.kwarg.arg)
        scope.firstarg = params[0] if params else (args.vararg.arg if args.vararg else None)
        collect_scope(scope, body)
        for p in (*params, *kwonly):
            if p in scope.globals or p in scope.nonlocals:
                raise _refuse(node, f"name '{p}' is parameter and global/nonlocal")
        is_gen = _contains_yield(body)
        qual = ".".join([*self.qual, name])
        self.scope = scope
        self.qual.append(name if is_lambda else name)
        self.qual.append("<locals>")
        in_class = self.in_class_body
        self.in_class_body = False
        try:
            code = self.gen_block(body) if is_gen else self.block(body)
        finally:
            self.scope = outer
            self.qual.pop()
            self.qual.pop()
            self.in_class_body = in_class
        doc = None
        if not is_lambda and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                doc = body[0].value.value
        binder_factory = _binder(name, args)
        parent_fn_like = outer.fn_like
        max_depth = ctx.max_depth
        modname = ctx.module_name

        def make(env: Env) -> Any:
            decorators = [d(env) for d in decos]
            dvals = tuple(d(env) for d in defaults)
            kwd = {k: f(env) for k, f in kw_defaults}
            for a in anns:
                a(env)
            bind = binder_factory(dvals, kwd)
            up = (env.l,) + env.up if parent_fn_like else env.up
            g = env.g
            cls = env.cls
            if is_gen:

                def gen_run(e: Env) -> Any:
                    r = yield from code(e)
                    return e.ret if r is RETURN else None

                def fn(*a: Any, **k: Any) -> Any:
                    return gen_run(Env(bind(a, k), up, g, cls))

            else:

                def fn(*a: Any, **k: Any) -> Any:
                    e = Env(bind(a, k), up, g, cls)
                    ctx.depth += 1
                    if ctx.depth > max_depth:
                        ctx.depth -= 1
                        raise RecursionError("maximum recursion depth exceeded")
                    try:
                        r = code(e)
                    finally:
                        ctx.depth -= 1
                    return e.ret if r is RETURN else None

            fn.__name__ = name
            fn.__qualname__ = qual
            fn.__doc__ = doc
            fn.__module__ = modname
            ctx.functions.add(fn)
            result: Any = fn
            for d in reversed(decorators):
                result = d(result)
            return result

        return make

    def s_ClassDef(self, node: ast.ClassDef) -> Fn:
        ctx = self.ctx
        if any(isinstance(b, ast.Starred) for b in node.bases):
            raise _refuse(node, "starred base classes are not supported by the sandbox")
        for k in node.keywords:
            if k.arg == "metaclass" or k.arg is None:
                raise _refuse(node, "custom metaclasses are not allowed in the sandbox")
        bases = tuple(self.expr(b) for b in node.bases)
        kwds = tuple((k.arg, self.expr(k.value)) for k in node.keywords)
        decos = tuple(self.expr(d) for d in node.decorator_list)
        outer = self.scope
        scope = Scope("class", outer)
        collect_scope(scope, node.body)
        name = node.name
        qual = ".".join([*self.qual, name])
        self.scope = scope
        self.qual.append(name)
        in_class = self.in_class_body
        self.in_class_body = True
        try:
            body = self.block(node.body)
        finally:
            self.scope = outer
            self.qual.pop()
            self.in_class_body = in_class
        doc = None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            if isinstance(node.body[0].value.value, str):
                doc = node.body[0].value.value
        store = self.store_name(name)
        parent_fn_like = outer.fn_like
        modname = ctx.module_name

        def class_(env: Env) -> None:
            decorators = [d(env) for d in decos]
            orig_bases = tuple(b(env) for b in bases)
            kw = {k: v(env) for k, v in kwds}
            resolved = types.resolve_bases(orig_bases)
            meta, ns, kw = types.prepare_class(name, resolved, kw)
            ns["__module__"] = modname
            ns["__qualname__"] = qual
            if doc is not None:
                ns["__doc__"] = doc
            cell: list = [None]
            up = (env.l,) + env.up if parent_fn_like else env.up
            r = body(Env(ns, up, env.g, cell))
            if r is not None:
                raise SyntaxError("'return' outside function")
            if resolved is not orig_bases:
                ns["__orig_bases__"] = orig_bases
            cls = meta(name, resolved, ns, **kw)
            cell[0] = cls
            ctx.classes.add(cls)
            for d in reversed(decorators):
                cls = d(cls)
            store(env, cls)

        return class_

    # -- generator bodies --------------------------------------------------------------------
    def gen_block(self, stmts: list[ast.stmt]) -> Fn:
        """Compile statements into a Python generator function; statements that contain no
        yield run as ordinary closures inside it."""
        items = tuple((_contains_yield([s]), self.gen_stmt(s) if _contains_yield([s]) else self.stmt(s)) for s in stmts)
        ctx = self.ctx
        n = len(items)

        def run(env: Env) -> Any:
            ctx.steps -= n
            if ctx.steps < 0:
                raise StepLimit(f"step budget of {ctx.max_steps:,} exceeded")
            for is_gen, s in items:
                if is_gen:
                    r = yield from s(env)
                else:
                    r = s(env)
                if r is not None:
                    return r
            return None

        return run

    def gen_value(self, node: ast.expr) -> Fn:
        """A generator closure producing the value of a yield / yield from expression."""
        if isinstance(node, ast.Yield):
            value = self.expr(node.value) if node.value is not None else None

            def yield_(env: Env) -> Any:
                sent = yield (value(env) if value is not None else None)
                return sent

            return yield_
        if isinstance(node, ast.YieldFrom):
            source = self.expr(node.value)

            def yield_from(env: Env) -> Any:
                return (yield from source(env))

            return yield_from
        raise _refuse(node, "'yield' inside a larger expression is not supported by the sandbox "
                            "(use it as a statement, an assignment value or a return value)")

    def gen_stmt(self, node: ast.stmt) -> Fn:
        if isinstance(node, ast.Expr):
            value = self.gen_value(node.value)

            def expr_stmt(env: Env) -> Any:
                yield from value(env)
                return None

            return expr_stmt
        if isinstance(node, ast.Assign):
            value = self.gen_value(node.value)
            targets = tuple(self.assign_target(t) for t in node.targets)

            def assign(env: Env) -> Any:
                v = yield from value(env)
                for t in targets:
                    t(env, v)
                return None

            return assign
        if isinstance(node, ast.Return) and node.value is not None:
            value = self.gen_value(node.value)

            def ret(env: Env) -> Any:
                env.ret = yield from value(env)
                return RETURN

            return ret
        if isinstance(node, ast.If):
            test = self.expr(node.test)
            body = self.gen_block(node.body)
            orelse = self.gen_block(node.orelse) if node.orelse else None

            def if_(env: Env) -> Any:
                if test(env):
                    return (yield from body(env))
                if orelse is not None:
                    return (yield from orelse(env))
                return None

            return if_
        if isinstance(node, (ast.For, ast.While)):
            is_for = isinstance(node, ast.For)
            head = self.expr(node.iter if is_for else node.test)  # type: ignore[union-attr]
            assign = self.assign_target(node.target) if is_for else None  # type: ignore[union-attr]
            body = self.gen_block(node.body)
            orelse = self.gen_block(node.orelse) if node.orelse else None

            def loop(env: Env) -> Any:
                if is_for:
                    for x in head(env):
                        assign(env, x)  # type: ignore[misc]
                        r = yield from body(env)
                        if r is not None:
                            if r is BREAK:
                                return None
                            if r is CONTINUE:
                                continue
                            return r
                else:
                    while head(env):
                        r = yield from body(env)
                        if r is not None:
                            if r is BREAK:
                                return None
                            if r is CONTINUE:
                                continue
                            return r
                if orelse is not None:
                    return (yield from orelse(env))
                return None

            return loop
        if isinstance(node, ast.Try):
            body = self.gen_block(node.body)
            handlers = tuple(
                (self.expr(h.type) if h.type is not None else None, self.store_name(h.name) if h.name else None,
                 self.gen_block(h.body))
                for h in node.handlers
            )
            orelse = self.gen_block(node.orelse) if node.orelse else None
            final = self.gen_block(node.finalbody) if node.finalbody else None

            def try_(env: Env) -> Any:
                try:
                    r = yield from body(env)
                except SandboxAbort:
                    raise
                except BaseException as e:
                    for typ, store, hbody in handlers:
                        if typ is None or _matches(e, typ(env)):
                            if store is not None:
                                store(env, e)
                            return (yield from hbody(env))
                    raise
                if r is not None:
                    return r
                if orelse is not None:
                    return (yield from orelse(env))
                return None

            if final is None:
                return try_

            def try_finally(env: Env) -> Any:
                try:
                    r = yield from try_(env)
                except SandboxAbort:
                    raise
                except BaseException:
                    f = yield from final(env)  # type: ignore[misc]
                    if f is not None:
                        return f
                    raise
                f = yield from final(env)  # type: ignore[misc]
                return f if f is not None else r

            return try_finally
        if isinstance(node, ast.With):
            if len(node.items) != 1:
                raise _refuse(node, "'yield' inside a multi-item 'with' is not supported by the sandbox")
            item = node.items[0]
            mgr_fn = self.expr(item.context_expr)
            target = self.assign_target(item.optional_vars) if item.optional_vars is not None else None
            body = self.gen_block(node.body)

            def with_(env: Env) -> Any:
                mgr = mgr_fn(env)
                t = type(mgr)
                enter, exit_ = t.__enter__, t.__exit__
                v = enter(mgr)
                if target is not None:
                    target(env, v)
                try:
                    r = yield from body(env)
                except SandboxAbort:
                    raise
                except BaseException as e:
                    if not exit_(mgr, type(e), e, None):
                        raise
                    return None
                exit_(mgr, None, None, None)
                return r

            return with_
        raise _refuse(node, f"'yield' inside a '{type(node).__name__}' statement is not supported by the sandbox")


_NOT_ENCODED = object()


def _plain(v: Any) -> Any:
    try:
        return plain.encode(v)
    except plain.NotPlain as exc:
        raise AssertionError(
            f"test operand is not plain data ({exc}): the sandbox decides tests on builtin values only"
        ) from None


def _matches(e: BaseException, typ: Any) -> bool:
    if isinstance(typ, tuple):
        for t in typ:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    elif not (isinstance(typ, type) and issubclass(typ, BaseException)):
        raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    return isinstance(e, typ)


def _binder(fname: str, args: ast.arguments) -> Callable[[tuple, dict], Callable[[tuple, dict], dict]]:
    """Argument binding with CPython's rules and messages (positional-only, defaults,
    *args, keyword-only, **kwargs); a fast path for plain positional calls."""
    posonly = [a.arg for a in args.posonlyargs]
    pos = posonly + [a.arg for a in args.args]
    npos = len(pos)
    kwonly = [a.arg for a in args.kwonlyargs]
    vararg = args.vararg.arg if args.vararg else None
    kwarg = args.kwarg.arg if args.kwarg else None
    keywordable = set(pos[len(posonly):]) | set(kwonly)
    simple = not posonly and not kwonly and not vararg and not kwarg
    pos_t = tuple(pos)

    def factory(defaults: tuple, kwdefaults: dict) -> Callable[[tuple, dict], dict]:
        ndef = len(defaults)
        first_default = npos - ndef

        def slow(a: tuple, k: dict) -> dict:
            n = len(a)
            if n > npos and vararg is None:
                given = "was" if n == 1 else "were"
                takes = f"{npos}" if not ndef else f"from {first_default} to {npos}"
                raise TypeError(
                    f"{fname}() takes {takes} positional argument{'s' if npos != 1 else ''} but {n} {given} given"
                )
            loc = dict(zip(pos_t, a))
            if vararg is not None:
                loc[vararg] = tuple(a[npos:])
            extra: dict | None = {} if kwarg is not None else None
            for key, v in k.items():
                if key in keywordable:
                    if key in loc:
                        raise TypeError(f"{fname}() got multiple values for argument '{key}'")
                    loc[key] = v
                elif extra is not None:
                    extra[key] = v
                elif key in posonly:
                    raise TypeError(f"{fname}() got some positional-only arguments passed as keyword arguments: '{key}'")
                else:
                    raise TypeError(f"{fname}() got an unexpected keyword argument '{key}'")
            missing = []
            for i in range(n, npos):
                p = pos_t[i]
                if p not in loc:
                    if i >= first_default:
                        loc[p] = defaults[i - first_default]
                    else:
                        missing.append(p)
            if missing:
                names = " and ".join(f"'{m}'" for m in missing) if len(missing) <= 2 else ", ".join(f"'{m}'" for m in missing)
                raise TypeError(
                    f"{fname}() missing {len(missing)} required positional argument{'s' if len(missing) > 1 else ''}: {names}"
                )
            kmissing = []
            for p in kwonly:
                if p not in loc:
                    if p in kwdefaults:
                        loc[p] = kwdefaults[p]
                    else:
                        kmissing.append(p)
            if kmissing:
                raise TypeError(
                    f"{fname}() missing {len(kmissing)} required keyword-only argument{'s' if len(kmissing) > 1 else ''}: "
                    + " and ".join(f"'{m}'" for m in kmissing)
                )
            if extra is not None:
                loc[kwarg] = extra  # type: ignore[index]
            return loc

        if simple:

            def fast(a: tuple, k: dict) -> dict:
                if not k and len(a) == npos:
                    return dict(zip(pos_t, a))
                return slow(a, k)

            return fast
        return slow

    return factory


# ---------------------------------------------------------------------------------------------
# eval, builtins and the program runner


def _eval(ctx: Ctx, env: Env | None, source: Any, globals_: Any = None, locals_: Any = None) -> Any:
    """`eval` of an expression string, by re-entering this interpreter (never host eval)."""
    if not isinstance(source, str):
        raise TypeError("eval() arg 1 must be a string in the sandbox")
    if globals_ is not None and type(globals_) is not dict:
        raise TypeError("globals must be a dict")
    if locals_ is not None and not isinstance(locals_, Mapping):
        raise TypeError("locals must be a mapping")
    tree = ast.parse(source.lstrip(" \t"), "<string>", mode="eval")
    code = Compiler(ctx).eval_expression(tree)
    if globals_ is not None:
        e = Env(locals_ if locals_ is not None else globals_, (), globals_)
    elif env is not None:
        e = Env(locals_ if locals_ is not None else env.l, env.up if locals_ is None else (), env.g)
    else:
        e = Env(locals_ if locals_ is not None else {}, (), _current_globals[0])
    return code(e)


_current_globals: list = [{}]

_SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex",
    "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "object", "oct", "ord", "pow", "property", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "staticmethod", "str", "sum", "super", "tuple", "type", "zip", "Ellipsis",
    "NotImplemented", "None", "True", "False",
)
_REFUSED_BUILTINS = (
    "open", "exec", "compile", "input", "breakpoint", "globals", "locals", "vars", "help",
    "__import__", "memoryview", "aiter", "anext", "__build_class__",
)


def _refused_builtin(name: str) -> Fn:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PolicyError(f"the builtin '{name}' is not allowed in the sandbox")

    refused.__name__ = name
    return refused


def make_builtins(ctx: Ctx) -> dict[str, Any]:
    b: dict[str, Any] = {name: getattr(_host_builtins, name) for name in _SAFE_BUILTINS}
    for name in dir(_host_builtins):
        obj = getattr(_host_builtins, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            b[name] = obj
    for name in _REFUSED_BUILTINS:
        b[name] = _refused_builtin(name)

    def print_(*args: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: bool = False) -> None:
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        if not isinstance(end, str):
            raise TypeError(f"end must be None or a string, not {type(end).__name__}")
        text = sep.join([str(a) for a in args]) + end
        if file is None or file is ctx.stdout_stream:
            ctx.write(text)
        else:
            checked_getattr(file, "write")(text)

    def getattr_(obj: Any, name: Any, *default: Any) -> Any:
        if len(default) > 1:
            raise TypeError(f"getattr expected at most 3 arguments, got {2 + len(default)}")
        return checked_getattr(obj, name, *default)

    def hasattr_(obj: Any, name: Any) -> bool:
        if type(name) is not str:
            raise TypeError("hasattr(): attribute name must be string")
        # A yes/no answer reveals no object; reading the value goes through the policy.
        try:
            getattr(obj, name)
        except AttributeError:
            return False
        return True

    def setattr_(obj: Any, name: Any, value: Any) -> None:
        owned_setattr(ctx, obj, name, value)

    def delattr_(obj: Any, name: Any) -> None:
        owned_setattr(ctx, obj, name, None, delete=True)

    def eval_(source: Any, globals_: Any = None, locals_: Any = None) -> Any:
        return _eval(ctx, None, source, globals_, locals_)

    def dir_(*args: Any) -> list:
        if not args:
            raise PolicyError("dir() without arguments is not supported by the sandbox")
        return dir(args[0])

    b.update({
        "print": print_, "getattr": getattr_, "hasattr": hasattr_, "setattr": setattr_,
        "delattr": delattr_, "eval": eval_, "dir": dir_, "exit": _sys_exit, "quit": _sys_exit,
    })
    return b


class Interpreter:
    """One program's interpreter: fresh builtins, module proxies and globals."""

    def __init__(self, max_steps: int = 10_000_000, max_depth: int = 1000, module_name: str = "__sandbox__") -> None:
        self.ctx = Ctx(max_steps, max_depth, module_name)
        self.ctx.builtins.update(make_builtins(self.ctx))
        self.globals: dict[str, Any] = {"__name__": module_name, "__doc__": None}
        policy._owned_classes = self.ctx.classes
        _current_globals[0] = self.globals

    def compile(self, source: str, trusted_asserts: bool = False, filename: str = "<program>") -> Fn:
        tree = ast.parse(source, filename)
        # CPython's compiler also rejects `return` outside a function, `break` outside a loop,
        # bad `nonlocal`...: compile the tree only to get the same SyntaxErrors (never run).
        compile(tree, filename, "exec", dont_inherit=True)
        return Compiler(self.ctx, trusted_asserts).module(tree)

    def execute(self, code: Fn) -> None:
        policy._owned_classes = self.ctx.classes
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
