"""The interpreter's policy: which attribute names may be read or written, safe replacements for
the few builtins and methods that take attribute names as data, and the abort exceptions.

Aborts derive from BaseException and are never matched by an interpreted `except` clause, so
candidate code cannot swallow a refusal or an exhausted step budget.
"""

from __future__ import annotations

import _string
from typing import Any

# Dunder names that may be read: the methods behind operators and protocols (`list.__add__`,
# `s.__contains__`: real solutions pass them to map/sorted), which give nothing the operator
# itself does not; harmless metadata; and base-class initialisers (`super().__init__(...)`).
# Everything else dunder (`__class__`, `__dict__`, `__globals__`, `__subclasses__`,
# `__getattribute__`, `__setattr__`, `__reduce_ex__`, `__self__`, `__code__`...) is refused.
_OPERATOR_DUNDERS = """
add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv rfloordiv ifloordiv
mod rmod imod pow rpow ipow divmod rdivmod lshift rlshift ilshift rshift rrshift irshift and rand
iand or ror ior xor rxor ixor matmul rmatmul imatmul neg pos abs invert round floor ceil trunc
index int float complex bool str repr format hash bytes len length_hint iter next reversed
contains getitem setitem delitem missing eq ne lt le gt ge enter exit sizeof call
"""
READABLE_DUNDERS = frozenset(
    {f"__{n}__" for n in _OPERATOR_DUNDERS.split()} | {"__init__", "__name__", "__qualname__", "__doc__"}
)

# Non-dunder attributes that expose interpreter internals (frames, code, generator state).
BLOCKED_ATTRS = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "gi_suspended",
    "cr_frame", "cr_code", "cr_await", "cr_origin", "cr_running", "cr_suspended",
    "ag_frame", "ag_code", "ag_await", "ag_running",
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "f_lasti", "f_lineno",
    "f_trace_lines", "f_trace_opcodes", "tb_frame", "tb_next", "tb_lasti", "tb_lineno",
    "co_code", "co_consts", "co_names", "co_varnames", "co_filename",
})
# Methods of host classes that mutate process-wide state (ABC registries).
BLOCKED_ON_HOST_TYPES = frozenset({"register"})


class SandboxAbort(BaseException):
    """Stops the interpreted program; never caught by interpreted code."""


class PolicyError(SandboxAbort):
    """The program did something the sandbox refuses; the message says what and why."""


class StepLimit(SandboxAbort):
    """The step budget ran out."""


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


def is_str_like(obj: Any) -> bool:
    """True for str instances, str subclasses' instances, and the str type or its subclasses,
    decided from the true type (never from a candidate-defined `__class__`)."""
    t = type(obj)
    if str in _mro(t):
        return True
    return type in _mro(t) and str in _mro(obj)


def check_format_string(fmt: str) -> None:
    """Refuse `str.format` field paths that read attributes the policy forbids
    (`'{0.__class__}'`), including fields nested in format specs."""
    for _literal, field, spec, _conv in _string.formatter_parser(fmt):
        if field is not None:
            _first, rest = _string.formatter_field_name_split(field)
            for is_attr, key in rest:
                if is_attr:
                    check_read(key)
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


def checked_getattr(obj: Any, name: str, *default: Any) -> Any:
    """`getattr` under the policy: what `obj.name` does in interpreted code."""
    if type(name) is not str:
        raise TypeError("attribute name must be string")
    check_read(name)
    if name in ("format", "format_map") and is_str_like(obj):
        bound = safe_format if name == "format" else safe_format_map
        if isinstance(obj, type):
            return bound
        return bound.__get__(obj)
    if name in BLOCKED_ON_HOST_TYPES and isinstance(obj, type) and not getattr_static_owned(obj):
        raise PolicyError(f"'{name}' on built-in or library classes is not allowed in the sandbox")
    if default:
        return getattr(obj, name, default[0])
    return getattr(obj, name)


# Set by the interpreter for the current run: classes the candidate created.
_owned_classes: Any = None


def getattr_static_owned(cls: type) -> bool:
    owned = _owned_classes
    return owned is not None and cls in owned
