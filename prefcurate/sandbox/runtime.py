"""Run-time state shared by the compiled closures: the per-run context (budgets, output,
owned objects, module proxies), activations, control signals, and the few helpers every
part of the compiler uses (refusals, unpacking, attribute writes, exception matching)."""

from __future__ import annotations

import ast
import decimal
import itertools
from collections.abc import Callable
from typing import Any

from . import plain
from .modules import ModuleProxy, _StdStream, build_factories, refuse_module
from .policy import Owned, PolicyError, is_dunder

BREAK = ("break",)
CONTINUE = ("continue",)
RETURN = ("return",)

Fn = Callable[..., Any]


class Ctx:
    """Per-run interpreter state: budgets, captured output, owned objects, module proxies."""

    __slots__ = (
        "steps",
        "max_steps",
        "depth",
        "max_depth",
        "out",
        "out_len",
        "truncated",
        "classes",
        "functions",
        "modules",
        "factories",
        "builtins",
        "asserts",
        "stdout_stream",
        "module_name",
    )

    def __init__(self, max_steps: int, max_depth: int, module_name: str) -> None:
        self.steps = max_steps
        self.max_steps = max_steps
        self.depth = 0
        self.max_depth = max_depth
        self.out: list[str] = []
        self.out_len = 0
        self.truncated = False
        self.classes = Owned()
        self.functions = Owned()
        self.modules: dict[str, ModuleProxy] = {}
        self.asserts: list = []
        self.module_name = module_name
        self.stdout_stream = _StdStream(self.write)
        self.factories = build_factories(self)
        self.builtins = Names(self.import_module)

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
                return self.import_module("collections").abc
            factory = self.factories.get(name)
            if factory is None:
                raise refuse_module(name)  # refused, or ModuleNotFoundError for unknown names
            mod = self.modules[name] = factory()
        return mod


class Names(dict):
    """The builtins a compilation unit sees (a dict: `B[name]` in the hot name loads), with the
    importer its `import` statements use. Test code gets its own (`Interpreter.test_names`):
    fresh builtins and module proxies the program never touched, then the program's globals."""

    def __init__(
        self, import_module: Callable[[str], Any], fallback: Callable[[str], Any] | None = None
    ) -> None:
        super().__init__()
        self.import_module = import_module
        self.fallback = fallback

    def __missing__(self, name: str) -> Any:
        if self.fallback is None:
            raise KeyError(name)
        return self.fallback(name)


class Env:
    """One activation: locals dict, enclosing function scopes (innermost first), globals, the
    return value slot and the `super()` class cell."""

    __slots__ = ("l", "up", "g", "ret", "cls")

    def __init__(self, l: dict, up: tuple, g: dict, cls: list | None = None) -> None:  # noqa: E741 - hot path
        self.l = l
        self.up = up
        self.g = g
        self.ret = None
        self.cls = cls


class StopCarrier(Exception):  # noqa: N818 - carries, is not an error of its own
    """A StopIteration on its way out of one of the interpreter's generator closures.

    Python turns a StopIteration that leaves a generator frame into RuntimeError (PEP 479);
    the interpreter's statement closures inside an interpreted generator are generator frames
    of their own, so an interpreted `next(it)` inside `try: ... except StopIteration:` would
    be seen as RuntimeError. The closures carry it out in this wrapper instead; handlers see
    the StopIteration itself (`unstop`), and the interpreted generator's own frame raises
    it, where Python makes it the RuntimeError CPython gives."""

    def __init__(self, stop: StopIteration) -> None:
        super().__init__()
        self.stop = stop


def unstop(exc: BaseException) -> BaseException:
    return exc.stop if type(exc) is StopCarrier else exc


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
    its functions), its module proxies and decimal contexts (`getcontext().prec = 50`; each run
    has a fresh one); never dunders; never on host classes or modules. Ownership is decided by
    identity (`Owned`), never by the object's `__hash__`/`__eq__`."""
    if type(name) is not str:
        raise TypeError("attribute name must be string")
    if is_dunder(name):
        raise PolicyError(f"setting dunder attribute '{name}' is not allowed in the sandbox")
    t = type(obj)
    owned = ctx.classes
    if not (t in owned or obj in ctx.functions or t is ModuleProxy or t is decimal.Context or obj in owned):
        kind = obj.__name__ if isinstance(obj, type) else t.__name__
        raise PolicyError(
            f"setting attribute '{name}' on a {kind} object is not allowed in the sandbox "
            "(only on the program's own classes, instances and functions)"
        )
    if delete:
        delattr(obj, name)
    else:
        setattr(obj, name, value)


def _matches(e: BaseException, typ: Any) -> bool:
    if isinstance(typ, tuple):
        for t in typ:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    elif not (isinstance(typ, type) and issubclass(typ, BaseException)):
        raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    return isinstance(e, typ)
