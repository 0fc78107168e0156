"""The builtins a program sees: an explicit list of the host's harmless ones, refusals for
the dangerous ones, and safe versions of those that take names or source as data
(`getattr`, `setattr`, `hasattr`, `eval`, `print`, `dir`)."""

from __future__ import annotations

import ast
import builtins as _host_builtins
from collections.abc import Mapping
from typing import Any, cast

from .modules import _sys_exit
from .policy import PolicyError, checked_getattr
from .runtime import Ctx, Env, Fn, Names, owned_setattr


def _eval(
    ctx: Ctx,
    env: Env | None,
    source: Any,
    globals_: Any = None,
    locals_: Any = None,
    *,
    names: Names | None = None,
) -> Any:
    """`eval` of an expression string, by re-entering this interpreter (never host eval)."""
    if not isinstance(source, str):
        raise TypeError("eval() arg 1 must be a string in the sandbox")
    if globals_ is not None and type(globals_) is not dict:
        raise TypeError("globals must be a dict")
    if locals_ is not None and not isinstance(locals_, Mapping):
        raise TypeError("locals must be a mapping")
    from .interpreter import Compiler  # here: the compiler's expressions call back into eval

    tree = ast.parse(source.lstrip(" \t"), "<string>", mode="eval")
    code = Compiler(ctx, names=names).eval_expression(tree)
    # A mapping works as locals, as in CPython's eval (only item access is used on it).
    loc = cast(dict, locals_)
    if globals_ is not None:
        e = Env(loc if loc is not None else globals_, (), globals_)
    elif env is not None:
        e = Env(loc if loc is not None else env.l, env.up if loc is None else (), env.g)
    else:
        e = Env(loc if loc is not None else {}, (), _current_globals[0])
    return code(e)


_current_globals: list = [{}]

_SAFE_BUILTINS = (
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hash",
    "hex",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "ord",
    "pow",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "zip",
    "Ellipsis",
    "NotImplemented",
    "None",
    "True",
    "False",
)
_REFUSED_BUILTINS = (
    "open",
    "exec",
    "compile",
    "input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "help",
    "__import__",
    "memoryview",
    "aiter",
    "anext",
    "__build_class__",
)


def _refused_builtin(name: str) -> Fn:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PolicyError(f"the builtin '{name}' is not allowed in the sandbox")

    refused.__name__ = name
    return refused


def _static_builtins() -> dict[str, Any]:
    b: dict[str, Any] = {name: getattr(_host_builtins, name) for name in _SAFE_BUILTINS}
    for name in dir(_host_builtins):
        obj = getattr(_host_builtins, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            b[name] = obj
    for name in _REFUSED_BUILTINS:
        b[name] = _refused_builtin(name)
    return b


_STATIC = _static_builtins()


def make_builtins(ctx: Ctx, names: Names | None = None) -> dict[str, Any]:
    """Fresh builtins; `names` is the mapping they will live in (what `eval` compiles with)."""
    b = dict(_STATIC)  # the host's own harmless builtins and the refusals (never per-run state)

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
        return _eval(ctx, None, source, globals_, locals_, names=names)

    def dir_(*args: Any) -> list:
        if not args:
            raise PolicyError("dir() without arguments is not supported by the sandbox")
        return dir(args[0])

    b.update(
        {
            "print": print_,
            "getattr": getattr_,
            "hasattr": hasattr_,
            "setattr": setattr_,
            "delattr": delattr_,
            "eval": eval_,
            "dir": dir_,
            "exit": _sys_exit,
            "quit": _sys_exit,
        }
    )
    return b
