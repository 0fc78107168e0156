"""Safe versions of the library functions that do attribute work for the program from host code.

`functools.update_wrapper(obj, f, assigned=(NAME,))` reads and writes any attribute named as
data; `total_ordering` writes methods onto whatever class it is given; `copy`/`deepcopy`
call a program's `__reduce_ex__` and then apply the state it returns, with `setattr`, to
whatever object its constructor returned (a host class, a module). The versions here keep
CPython's results for ordinary programs and go through the policy for the rest.
"""

from __future__ import annotations

import copy as _copy
import copyreg
import functools
import re as _re
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .policy import PolicyError, check_read, is_class, is_private, owns

# The only names `update_wrapper`/`wraps` may copy: the defaults (all plain metadata).
_WRAPPER_NAMES = frozenset(functools.WRAPPER_ASSIGNMENTS) | frozenset(functools.WRAPPER_UPDATES)


def _names(names: Iterable[Any], what: str) -> tuple[str, ...]:
    out = tuple(names)
    for n in out:
        if type(n) is not str:
            raise TypeError(f"{what}: attribute names must be strings")
        if n not in _WRAPPER_NAMES:
            raise PolicyError(
                f"{what}: copying the attribute '{n}' is not allowed in the sandbox "
                f"(allowed: {', '.join(sorted(_WRAPPER_NAMES))})"
            )
    return out


def update_wrapper(
    wrapper: Any,
    wrapped: Any,
    assigned: Iterable[str] = functools.WRAPPER_ASSIGNMENTS,
    updated: Iterable[str] = functools.WRAPPER_UPDATES,
) -> Any:
    assigned = _names(assigned, "update_wrapper")
    updated = _names(updated, "update_wrapper")
    if "__dict__" in updated and not owns(wrapped):
        # A library object's __dict__ holds its private state: copy the public names only.
        updated = tuple(n for n in updated if n != "__dict__")
        functools.update_wrapper(wrapper, wrapped, assigned, updated)
        source = getattr(wrapped, "__dict__", {})
        target = wrapper.__dict__
        for key in list(source):
            if type(key) is str and not key.startswith("_"):
                target[key] = source[key]
        return wrapper
    return functools.update_wrapper(wrapper, wrapped, assigned, updated)


def wraps(
    wrapped: Any,
    assigned: Iterable[str] = functools.WRAPPER_ASSIGNMENTS,
    updated: Iterable[str] = functools.WRAPPER_UPDATES,
) -> Callable[[Any], Any]:
    assigned = _names(assigned, "wraps")
    updated = _names(updated, "wraps")
    return functools.partial(update_wrapper, wrapped=wrapped, assigned=assigned, updated=updated)


def total_ordering(cls: Any) -> Any:
    if not (is_class(cls) and owns(cls)):
        raise PolicyError("functools.total_ordering is allowed on the program's own classes only")
    return functools.total_ordering(cls)


# -- copy and deepcopy -------------------------------------------------------------------------

_host_classes: dict[int, type] = {}


def register_host_classes(values: Iterable[Any]) -> None:
    """Remember the library's classes (by identity): their reductions are host code. A class
    the program made with `type(name, bases, ns)` is never among them."""
    for v in values:
        for c in (v, type(v)):
            if is_class(c):
                for m in type.__dict__["__mro__"].__get__(c):
                    _host_classes[id(m)] = m


def _is_host_class(cls: type) -> bool:
    return _host_classes.get(id(cls)) is cls


_ATOMIC = {
    id(t): t
    for t in (
        type(None),
        type(Ellipsis),
        type(NotImplemented),
        int,
        float,
        bool,
        complex,
        bytes,
        str,
        types.CodeType,
        type,
        range,
        types.BuiltinFunctionType,
        types.FunctionType,
        weakref.ref,
        property,
    )
}


def copy(x: Any) -> Any:
    cls = type(x)
    if _is_host_class(cls):
        return _copy.copy(x)  # a shallow copy of a library object runs only library code
    if is_class(x):
        return x
    copier = getattr(cls, "__copy__", None)
    if copier is not None:
        return copier(x)
    rv = _reduce(x, cls)
    if isinstance(rv, str):
        return x
    return _reconstruct(x, None, False, *rv)


def deepcopy(x: Any, memo: dict | None = None, _nil: Any = []) -> Any:  # noqa: B006 - a sentinel
    if memo is None:
        memo = {}
    d = id(x)
    y = memo.get(d, _nil)
    if y is not _nil:
        return y
    cls = type(x)
    if _ATOMIC.get(id(cls)) is cls or is_class(x):
        y = x
    elif cls is list:
        y = []
        memo[d] = y
        for a in x:
            y.append(deepcopy(a, memo))
    elif cls is tuple:
        items = [deepcopy(a, memo) for a in x]
        y = memo.get(d, _nil)  # the tuple may have been copied while copying its items
        if y is _nil:
            y = x if all(a is b for a, b in zip(items, x, strict=True)) else tuple(items)
    elif cls is dict:
        y = {}
        memo[d] = y
        for key, value in x.items():
            y[deepcopy(key, memo)] = deepcopy(value, memo)
    elif cls is types.MethodType:
        y = types.MethodType(x.__func__, deepcopy(x.__self__, memo))
    else:
        host = _is_host_class(cls)
        copier = getattr(x, "__deepcopy__", None)
        if copier is not None:
            y = copier(memo)
        else:
            rv = _reduce(x, cls)
            y = x if isinstance(rv, str) else _reconstruct(x, memo, host, *rv)
    if y is not x:
        memo[d] = y
        try:
            memo[id(memo)].append(x)  # keep x alive while memo refers to its id
        except KeyError:
            memo[id(memo)] = [x]
    return y


def _reduce(x: Any, cls: type) -> Any:
    reductor = copyreg.dispatch_table.get(cls) if _is_host_class(cls) else None
    if reductor is not None:
        return reductor(x)
    reductor = getattr(x, "__reduce_ex__", None)
    if reductor is not None:
        return reductor(4)
    reductor = getattr(x, "__reduce__", None)
    if reductor is not None:
        return reductor()
    raise _copy.Error(f"un(deep)copyable object of type {cls}")


def _reconstruct(
    x: Any,
    memo: dict | None,
    trusted: bool,
    func: Callable[..., Any],
    args: tuple,
    state: Any = None,
    listiter: Any = None,
    dictiter: Any = None,
) -> Any:
    """`copy._reconstruct`; the state of a reduction the program wrote is applied only to an
    object the program owns, and never to a dunder or a library's private attribute."""
    deep = memo is not None
    if deep and args:
        args = deepcopy(args, memo)
    y = func(*args)
    if memo is not None:
        memo[id(x)] = y
    if (state is not None or listiter is not None or dictiter is not None) and not trusted and not owns(y):
        raise PolicyError(
            f"copy: a reduction that changes a {type(y).__name__} object is not allowed in the sandbox"
        )
    if state is not None:
        if deep:
            state = deepcopy(state, memo)
        if hasattr(y, "__setstate__"):
            y.__setstate__(state)
        else:
            if isinstance(state, tuple) and len(state) == 2:
                state, slotstate = state
            else:
                slotstate = None
            if state is not None:
                y.__dict__.update(state)
            if slotstate is not None:
                for key, value in slotstate.items():
                    if not trusted:
                        check_read(key)
                        if is_private(key) and not owns(y):
                            raise PolicyError(f"copy: setting '{key}' is not allowed in the sandbox")
                    setattr(y, key, value)
    if listiter is not None:
        if deep:
            for item in listiter:
                y.append(deepcopy(item, memo))
        else:
            for item in listiter:
                y.append(item)
    if dictiter is not None:
        if deep:
            for key, value in dictiter:
                y[deepcopy(key, memo)] = deepcopy(value, memo)
        else:
            for key, value in dictiter:
                y[key] = value
    return y


# `re` with the DEBUG flag prints the compiled pattern to the host's stdout: refused. The
# position of `flags` in each function's arguments.
_RE_FLAGS_AT = {
    "compile": 1,
    "search": 2,
    "match": 2,
    "fullmatch": 2,
    "findall": 2,
    "finditer": 2,
    "split": 3,
    "sub": 4,
    "subn": 4,
}


def _no_re_debug(fn: Callable[..., Any], at: int) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        flags = args[at] if len(args) > at else kwargs.get("flags", 0)
        if not isinstance(flags, int):  # sre would test `flags & DEBUG` with the object's own `&`
            raise TypeError(f"flags must be an int, not {type(flags).__name__}")
        flags = int.__int__(flags)  # the plain value: an int subclass's own `&` is not asked
        if flags & _re.DEBUG:
            raise ValueError("re.DEBUG is not available in the sandbox")
        if len(args) > at:
            args = (*args[:at], flags, *args[at + 1 :])
        elif "flags" in kwargs:
            kwargs["flags"] = flags
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


def re_functions() -> dict[str, Callable[..., Any]]:
    """The `re` functions that take `flags`, refusing re.DEBUG."""
    return {name: _no_re_debug(getattr(_re, name), at) for name, at in _RE_FLAGS_AT.items()}
