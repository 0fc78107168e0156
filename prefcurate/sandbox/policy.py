"""The interpreter's policy: which attribute names may be read or written, safe replacements for
the few builtins and methods that take attribute names as data, and the abort exceptions.

Aborts derive from BaseException and are never matched by an interpreted `except` clause, so
candidate code cannot swallow a refusal or an exhausted step budget.
"""

from __future__ import annotations

import _string
import types
import weakref
from typing import Any

# Dunder names that may be read, by any route. Everything else dunder (`__class__`, `__dict__`,
# `__globals__`, `__subclasses__`, `__getattribute__`, `__reduce_ex__`, `__self__`, `__code__`,
# and the operator methods such as `list.__add__`: use `a + b` or `operator.add`) is refused.
# `__init__` is what `super().__init__(...)` / `Base.__init__(self)` need; it yields a method
# whose own dunders are refused in turn. The names are plain strings.
READABLE_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__"})

# Non-dunder attributes that expose interpreter internals (frames, code, generator state).
BLOCKED_ATTRS = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "gi_running",
        "gi_suspended",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "cr_running",
        "cr_suspended",
        "ag_frame",
        "ag_code",
        "ag_await",
        "ag_running",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "f_trace",
        "f_lasti",
        "f_lineno",
        "f_trace_lines",
        "f_trace_opcodes",
        "tb_frame",
        "tb_next",
        "tb_lasti",
        "tb_lineno",
        "co_code",
        "co_consts",
        "co_names",
        "co_varnames",
        "co_filename",
    }
)
# Single-underscore names are the private state of whoever defined them. The program may use
# its own (`self._cache`, `f._memo`), never a library's (`random._os`, `Enum._member_map_`):
# a host object's private attributes reach modules and process-wide mutable state. These few
# are public API despite the underscore (namedtuple classes are made by the host).
PUBLIC_PRIVATES = frozenset({"_asdict", "_replace", "_fields", "_make"})
# Methods of host classes that mutate process-wide state (ABC registries).
BLOCKED_ON_HOST_TYPES = frozenset({"register"})


class SandboxAbort(BaseException):
    """Stops the interpreted program; never caught by interpreted code."""


class PolicyError(SandboxAbort):
    """The program did something the sandbox refuses; the message says what and why."""


class StepLimit(SandboxAbort):
    """The step budget ran out."""


# A step is one statement run (a block charges its statements when it is entered) or one
# iteration of a loop or comprehension; generated host code charges exactly what the
# closures charge. The default is above what every HumanEval/MBPP reference solution needs
# (mbpp/123: about 83M) and, at the interpreter's speed, of the order of the default 5 s
# deadline: the deadline is the usual limit, the budget a bound that does not depend on the
# machine's speed.
DEFAULT_MAX_STEPS = 200_000_000
DEFAULT_MEMORY_MB = 512  # address-space limit of one program's process


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def check_read(name: str) -> None:
    if is_dunder(name):
        if name not in READABLE_DUNDERS:
            raise PolicyError(f"access to dunder attribute '{name}' is not allowed in the sandbox")
    elif name in BLOCKED_ATTRS:
        raise PolicyError(f"access to interpreter internals ('{name}') is not allowed in the sandbox")


def _mro(cls: type) -> tuple[type, ...]:
    return type.__dict__["__mro__"].__get__(cls)


def _among(x: Any, items: Any) -> bool:
    """`x in items` by identity: `in` would call a program class's `__eq__`."""
    for item in items:
        if item is x:
            return True
    return False


def is_str_like(obj: Any) -> bool:
    """True for str instances, str subclasses' instances, and the str type or its subclasses,
    decided from the true type (never from a candidate-defined `__class__`)."""
    t = type(obj)
    if _among(str, _mro(t)):
        return True
    return _among(type, _mro(t)) and _among(str, _mro(obj))


def is_private(name: str) -> bool:
    return name.startswith("_") and not is_dunder(name) and name not in PUBLIC_PRIVATES


def owns(obj: Any) -> bool:
    """True if `obj` is the program's own: one of its functions, one of its classes (or a class
    derived from one), an instance of those, or a module proxy. Decided from the true types."""
    classes = current.classes
    if classes is None:
        return False
    t = type(obj)
    if t is current.proxy_type or obj in current.functions:
        return True
    for c in _mro(t):
        if c in classes:
            return True
    if _among(type, _mro(t)):
        for c in _mro(obj):
            if c in classes:
                return True
    return False


def check_private(obj: Any, name: str) -> None:
    if not owns(obj):
        raise PolicyError(
            f"access to private attribute '{name}' of a {type(obj).__name__} object is not allowed in the "
            "sandbox (only on the program's own classes, instances and functions)"
        )


def check_format_string(fmt: str) -> None:
    """Refuse `str.format` field paths that read attributes the policy forbids
    (`'{0.__class__}'`, `'{0._private}'`), including fields nested in format specs."""
    for _literal, field, spec, _conv in _string.formatter_parser(fmt):
        if field is not None:
            _first, rest = _string.formatter_field_name_split(field)
            for is_attr, key in rest:
                if is_attr:
                    check_read(key)
                    if is_private(key):
                        raise PolicyError(
                            f"private attribute '{key}' in a format string is not allowed in the sandbox"
                        )
        if spec:
            check_format_string(spec)


def safe_format(self: Any, *args: Any, **kwargs: Any) -> str:
    if not isinstance(self, str):
        raise TypeError("descriptor 'format' requires a 'str' object")
    check_format_string(self)
    return str.format(self, *args, **kwargs)


def safe_format_map(self: Any, mapping: Any) -> str:
    if not isinstance(self, str):
        raise TypeError("descriptor 'format_map' requires a 'str' object")
    check_format_string(self)
    return str.format_map(self, mapping)


def _user_string_format(self: Any, *args: Any, **kwargs: Any) -> str:
    return safe_format(self.data, *args, **kwargs)


def _user_string_format_map(self: Any, mapping: Any) -> str:
    return safe_format_map(self.data, mapping)


def safe_format_function(value: Any) -> Any:
    """`value`, or its safe version when it is a format function of the library (`str.format`
    bound or not, `UserString.format`), however it was reached."""
    import collections

    if value is str.format:
        return safe_format
    if value is str.format_map:
        return safe_format_map
    if type(value) is types.BuiltinMethodType and value.__name__ in ("format", "format_map"):
        self = value.__self__
        if is_str_like(self):
            return (safe_format if value.__name__ == "format" else safe_format_map).__get__(self)
    func = value.__func__ if type(value) is types.MethodType else value
    user = collections.UserString
    for lib, safe in ((user.format, _user_string_format), (user.format_map, _user_string_format_map)):
        if func is lib:
            return safe.__get__(value.__self__) if func is not value else safe
    return value


def checked_getattr(obj: Any, name: str, *default: Any) -> Any:
    """`getattr` under the policy: what `obj.name` does in interpreted code."""
    if type(name) is not str:
        raise TypeError("attribute name must be string")
    check_read(name)
    if is_private(name):
        check_private(obj, name)
    if name in ("format", "format_map"):
        if is_str_like(obj):
            bound = safe_format if name == "format" else safe_format_map
            if isinstance(obj, type):
                return bound
            return bound.__get__(obj)
        # `super().format`, `UserString(...).format`: decided by the function resolved.
        return safe_format_function(getattr(obj, name, *default))
    if name in BLOCKED_ON_HOST_TYPES and isinstance(obj, type) and not getattr_static_owned(obj):
        raise PolicyError(f"'{name}' on built-in or library classes is not allowed in the sandbox")
    if default:
        return getattr(obj, name, default[0])
    return getattr(obj, name)


class Owned:
    """A set of objects decided by identity, never by `__hash__`/`__eq__` (a WeakSet asks the
    object, and a program class can make its instances hash and compare equal to `type`).
    Entries are weak: an object the program dropped is forgotten when it dies."""

    __slots__ = ("_refs", "__weakref__")

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, obj: Any) -> None:
        key = id(obj)
        refs = self._refs

        # The callback runs while the object dies, before its id can be reused.
        def forget(_r: object, key: int = key, refs: dict = refs) -> None:
            refs.pop(key, None)

        refs[key] = weakref.ref(obj, forget)

    def __contains__(self, obj: Any) -> bool:
        ref = self._refs.get(id(obj))
        return ref is not None and ref() is obj

    def __len__(self) -> int:
        return len(self._refs)


def _host_metaclasses() -> frozenset:
    import abc
    import enum
    import typing

    names = ("_ProtocolMeta", "NamedTupleMeta", "_TypedDictMeta", "_AnyMeta")
    return frozenset(
        {type, abc.ABCMeta, enum.EnumMeta, *(getattr(typing, n) for n in names if hasattr(typing, n))}
    )


# The metaclasses a class statement may end up calling: the host's own. A class statement
# calls `type(base)(name, bases, ns)`, so an instance or a program-made metaclass as a base
# would hand the class body to whatever its type is.
HOST_METACLASSES = _host_metaclasses()


def is_class(obj: Any) -> bool:
    """A real class, decided from the true type (never from `__class__` or `isinstance`)."""
    return _among(type, _mro(type(obj)))


def check_bases(bases: tuple) -> None:
    """Bases of a class statement: classes, or the host's `__mro_entries__` objects
    (`Generic[T]`, `typing.NamedTuple`), never an instance of the program's classes."""
    for b in bases:
        if is_class(b):
            if _among(type, _mro(b)):
                raise PolicyError("a class deriving from 'type' (a metaclass) is not allowed in the sandbox")
        elif owns(b) or not hasattr(b, "__mro_entries__"):
            raise PolicyError(
                f"a base class must be a class, not a {type(b).__name__} object, in the sandbox"
            )


def check_metaclass(meta: Any, resolved: tuple) -> None:
    for b in resolved:
        if not is_class(b) or _among(type, _mro(b)):
            raise PolicyError("a base class must be a class (not a metaclass) in the sandbox")
    if not _among(meta, HOST_METACLASSES):
        raise PolicyError(f"the metaclass '{getattr(meta, '__name__', '?')}' is not allowed in the sandbox")


class _Current:
    """What the running program owns; set by the interpreter before it runs code."""

    classes: Any = None  # Owned: classes made by `class` statements
    functions: Any = ()  # Owned: the program's functions
    proxy_type: Any = None  # the ModuleProxy class


current = _Current()


def getattr_static_owned(cls: type) -> bool:
    owned = current.classes
    return owned is not None and cls in owned
