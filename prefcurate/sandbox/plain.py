"""Plain data: exact builtin values that cross the worker/parent boundary as tagged JSON.

Only exact types (never subclasses) are plain: int, float, complex, str, bytes, bool, None and
list, tuple, dict, set, frozenset of plain values, plus the standard library's Counter,
defaultdict, OrderedDict, deque, Fraction and Decimal (host classes: their comparisons are
the library's, rebuilt in the parent). Checking `type(x) is ...` calls no method of
the value, so validating a candidate's result never runs candidate code.
"""

from __future__ import annotations

import collections
import decimal
import fractions
import operator
from typing import Any

MAX_STDOUT = 1 << 20
MAX_NODES = 2_000_000
MAX_DEPTH = 200
_SMALL_INT = 1 << 53


class NotPlain(Exception):
    """A value that is not plain data (a candidate object, a function, a cycle, too big)."""


def encode(value: Any) -> Any:
    """Plain value -> JSON-able structure. Containers become ["L"|"T"|"D"|"S"|"F", ...]."""
    budget = [MAX_NODES]
    return _encode(value, 0, budget)


def _encode(v: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlain("value too large to check")
    if depth > MAX_DEPTH:
        raise NotPlain("value nested too deeply (or a cycle)")
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        return v if -_SMALL_INT < v < _SMALL_INT else ["I", hex(v)]
    if t is float:
        return ["R", v.hex()]  # exact, and nan/inf survive
    if t is list or t is tuple or t is set or t is frozenset:
        tag = _SEQUENCE_TAGS[t]
        return [tag, [_encode(x, depth + 1, budget) for x in v]]
    if t is dict:
        return ["D", [[_encode(k, depth + 1, budget), _encode(x, depth + 1, budget)] for k, x in v.items()]]
    if t is bytes:
        return ["B", v.hex()]
    if t in _MAPPINGS:
        return [
            _MAPPINGS[t],
            [[_encode(k, depth + 1, budget), _encode(x, depth + 1, budget)] for k, x in dict.items(v)],
        ]
    if t is collections.deque:
        return ["DQ", [_encode(x, depth + 1, budget) for x in v]]
    if t is fractions.Fraction:
        return ["FR", _encode(v.numerator, depth + 1, budget), _encode(v.denominator, depth + 1, budget)]
    if t is decimal.Decimal:
        return ["DE", str(v)]
    if t is complex:
        return ["C", v.real.hex(), v.imag.hex()]
    raise NotPlain(f"a {t.__name__!s} object")


_SEQUENCE_TAGS: dict[type, str] = {list: "L", tuple: "T", set: "S", frozenset: "F"}
_MAPPINGS: dict[type, str] = {
    collections.Counter: "CT",
    collections.defaultdict: "DD",
    collections.OrderedDict: "OD",
}


def check(value: Any) -> None:
    """Raise NotPlain unless `value` is plain data (used before comparing in the worker)."""
    encode(value)


def decode(data: Any) -> Any:
    """Tagged JSON -> host values of exact builtin types."""
    if data is None or type(data) in (bool, str, int):
        return data
    if type(data) is not list or len(data) < 2 or type(data[0]) is not str:
        raise ValueError("malformed plain value")
    tag = data[0]
    if tag == "I":
        return int(data[1], 16)
    if tag == "R":
        return float.fromhex(data[1])
    if tag == "C":
        return complex(float.fromhex(data[1]), float.fromhex(data[2]))
    if tag == "B":
        return bytes.fromhex(data[1])
    if tag == "L":
        return [decode(x) for x in data[1]]
    if tag == "T":
        return tuple(decode(x) for x in data[1])
    if tag == "S":
        return {decode(x) for x in data[1]}
    if tag == "F":
        return frozenset(decode(x) for x in data[1])
    if tag == "D":
        return {decode(k): decode(v) for k, v in data[1]}
    if tag in ("CT", "DD", "OD"):
        items = [(decode(k), decode(v)) for k, v in data[1]]
        if tag == "CT":
            return collections.Counter(dict(items))
        if tag == "OD":
            return collections.OrderedDict(items)
        return collections.defaultdict(None, items)
    if tag == "DQ":
        return collections.deque(decode(x) for x in data[1])
    if tag == "FR":
        return fractions.Fraction(decode(data[1]), decode(data[2]))
    if tag == "DE":
        return decimal.Decimal(data[1])
    raise ValueError(f"unknown plain tag {tag!r}")


COMPARE = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": operator.lt,
    "LtE": operator.le,
    "Gt": operator.gt,
    "GtE": operator.ge,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
}


def evaluate_trace(trace: Any) -> bool:
    """Recompute an assertion from its trace. Only evaluated parts are in the trace:

    ["val", v]                   truthiness of a plain value
    ["cmp", [v0, v1, ...], ops]  a (chained) comparison; an op is a name from COMPARE or
                                 ["id", bool] for `is`/`is not` (identity was decided in the worker)
    ["not", t], ["and", [t...]], ["or", [t...]]
    """
    kind = trace[0]
    if kind == "val":
        return bool(decode(trace[1]))
    if kind == "cmp":
        values = [decode(v) for v in trace[1]]
        ops = trace[2]
        if len(values) != len(ops) + 1:
            raise ValueError("malformed comparison trace")
        for i, op in enumerate(ops):
            if isinstance(op, list):
                ok = bool(op[1])
            else:
                ok = bool(COMPARE[op](values[i], values[i + 1]))
            if not ok:
                return False
        return True
    if kind == "not":
        return not evaluate_trace(trace[1])
    if kind in ("and", "or"):
        parts = trace[1]
        if not parts:
            raise ValueError("empty boolean trace")
        want_continue = kind == "and"
        for t in parts[:-1]:
            if evaluate_trace(t) != want_continue:
                raise ValueError("inconsistent short-circuit trace")
        return evaluate_trace(parts[-1])
    raise ValueError(f"unknown trace kind {kind!r}")
