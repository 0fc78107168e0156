"""Scope analysis: which names of a function are local, enclosing, class-body or global
(CPython's rules, decided before the program runs), and private-name mangling."""

from __future__ import annotations

import ast
from collections.abc import Sequence


class Scope:
    def __init__(self, kind: str, parent: Scope | None) -> None:
        self.kind = kind  # module | function | class | comp | eval
        self.parent = parent
        self.assigned: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.firstarg: str | None = None
        self.future_annotations: bool = parent.future_annotations if parent else False

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


def collect_scope(scope: Scope, body: Sequence[ast.AST]) -> None:
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
            scope.assigned.add(n.target.id)
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


def _contains_yield(body: Sequence[ast.AST]) -> bool:
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(n, (*_FUNCS, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False
