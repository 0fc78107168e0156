"""Allowed modules, exposed as per-run proxies holding only an explicit list of public names.

A proxy is a fresh object for every program, so `math.pi = 3` in one run is invisible to the
next. The values inside are the host's own functions and classes, chosen because they are
pure (no file, process, network or interpreter access) and reveal nothing dangerous through
non-dunder attributes (dunder access is refused by the interpreter). Stateful modules get
per-run state: `random` is bound to a fresh `random.Random()`, `decimal`'s context is reset
by the worker before each run, `sys` is a small fake.
"""

from __future__ import annotations

import abc
import array
import bisect
import cmath
import collections
import collections.abc
import copy
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import heapq
import itertools
import json
import math
import numbers
import operator
import random
import re
import statistics
import string
import sys
import textwrap
import time
import typing
import unicodedata
from collections.abc import Callable
from typing import Any

from . import policy, safe_library
from .policy import PolicyError, checked_getattr


class ModuleProxy:
    """A stand-in for an allowed module: a plain attribute bag, private names never present."""

    def __init__(self, name: str, attrs: dict[str, Any]) -> None:
        object.__setattr__(self, "_sandbox_name", name)
        self.__dict__.update(attrs)
        self.__dict__["__name__"] = name  # `math.__name__`, as in CPython

    def __repr__(self) -> str:
        return f"<module '{object.__getattribute__(self, '_sandbox_name')}' (sandbox proxy)>"

    if typing.TYPE_CHECKING:  # its attributes are the module's names, set at run time

        def __getattr__(self, name: str) -> Any: ...


policy.current.proxy_type = ModuleProxy


_PUBLIC_CACHE: dict[tuple, dict[str, Any]] = {}


def _public(module: Any, names: list[str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The listed (default: all public) names of a host module; computed once per process
    (callers copy the dict, and `_fresh` copies mutable values, for each run)."""
    key = (module.__name__, None if names is None else tuple(names), drop)
    attrs = _PUBLIC_CACHE.get(key)
    if attrs is None:
        if names is None:
            names = [n for n in dir(module) if not n.startswith("_")]
        attrs = _PUBLIC_CACHE[key] = {
            n: getattr(module, n) for n in names if n not in drop and hasattr(module, n)
        }
    return attrs


def _fresh(value: Any) -> Any:
    return value.copy() if type(value) in (list, dict, set, bytearray) else value


def _attrgetter(*paths: str) -> Callable[[Any], Any]:
    for p in paths:
        if not isinstance(p, str):
            raise TypeError("attribute name must be a string")
    split = [p.split(".") for p in paths]

    def get_one(obj: Any, parts: list[str]) -> Any:
        for part in parts:
            obj = checked_getattr(obj, part)
        return obj

    if len(split) == 1:
        return lambda obj: get_one(obj, split[0])
    return lambda obj: tuple(get_one(obj, parts) for parts in split)


def _methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    if not isinstance(name, str):
        raise TypeError("method name must be a string")
    return lambda obj: checked_getattr(obj, name)(*args, **kwargs)


_TYPING = [
    "Any",
    "AnyStr",
    "Callable",
    "ClassVar",
    "Counter",
    "DefaultDict",
    "Deque",
    "Dict",
    "Final",
    "FrozenSet",
    "Generator",
    "Generic",
    "Hashable",
    "Iterable",
    "Iterator",
    "List",
    "Literal",
    "Mapping",
    "MutableMapping",
    "MutableSequence",
    "MutableSet",
    "NamedTuple",
    "NewType",
    "NoReturn",
    "Optional",
    "OrderedDict",
    "Protocol",
    "Sequence",
    "Set",
    "Sized",
    "SupportsFloat",
    "SupportsInt",
    "Text",
    "Tuple",
    "Type",
    "TypeVar",
    "TypedDict",
    "Union",
    "TYPE_CHECKING",
    "cast",
    "overload",
    "Collection",
    "Container",
    "Reversible",
    "ChainMap",
    "Awaitable",
    "Coroutine",
    "AsyncIterator",
    "AsyncIterable",
    "ByteString",
    "SupportsAbs",
    "SupportsRound",
    "SupportsIndex",
    "Pattern",
    "Match",
    "no_type_check",
    "final",
    "runtime_checkable",
]
_RE = [
    "compile",
    "search",
    "match",
    "fullmatch",
    "split",
    "findall",
    "finditer",
    "sub",
    "subn",
    "escape",
    "purge",
    "error",
    "Pattern",
    "Match",
    "A",
    "ASCII",
    "I",
    "IGNORECASE",
    "L",
    "LOCALE",
    "M",
    "MULTILINE",
    "S",
    "DOTALL",
    "X",
    "VERBOSE",
    "U",
    "UNICODE",
    "NOFLAG",
    "RegexFlag",
]
_RANDOM_METHODS = [
    "random",
    "uniform",
    "triangular",
    "randint",
    "choice",
    "randrange",
    "sample",
    "shuffle",
    "choices",
    "normalvariate",
    "lognormvariate",
    "expovariate",
    "vonmisesvariate",
    "gammavariate",
    "gauss",
    "betavariate",
    "paretovariate",
    "weibullvariate",
    "getrandbits",
    "seed",
    "randbytes",
]
_SYS_MAXSIZE = sys.maxsize


class _StdStream:
    """`sys.stdout` / `sys.stderr` inside the sandbox: writes go to the captured output."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._write(text)
        return len(text)

    def flush(self) -> None:
        return None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)


def _sys_exit(code: Any = None) -> None:
    raise SystemExit(code)


def _setrecursionlimit(limit: int) -> None:
    # Accepted and ignored: the interpreter's own depth limit applies.
    if not isinstance(limit, int):
        raise TypeError("an integer is required")


def build_factories(ctx: Any) -> dict[str, Callable[[], ModuleProxy]]:
    """Module name -> factory of a fresh proxy for this run (`ctx` gives output and limits)."""

    def sys_proxy() -> ModuleProxy:
        return ModuleProxy(
            "sys",
            {
                "maxsize": _SYS_MAXSIZE,
                "float_info": sys.float_info,
                "int_info": sys.int_info,
                "hash_info": sys.hash_info,
                "version_info": sys.version_info,
                "version": sys.version,
                "byteorder": sys.byteorder,
                "platform": "sandbox",
                "argv": [""],
                "maxunicode": sys.maxunicode,
                "float_repr_style": sys.float_repr_style,
                "setrecursionlimit": _setrecursionlimit,
                "getrecursionlimit": lambda: ctx.max_depth,
                "exit": _sys_exit,
                "stdout": ctx.stdout_stream,
                "stderr": ctx.stdout_stream,
                "getsizeof": sys.getsizeof,
                "intern": sys.intern,
                "set_int_max_str_digits": lambda n: None,
                "get_int_max_str_digits": sys.get_int_max_str_digits,
            },
        )

    def random_proxy() -> ModuleProxy:
        # A fixed seed per run: pass counts of programs that use `random` without seeding are
        # reproducible (CPython would seed from the OS; `random.seed()` still does).
        rng = random.Random(0)
        attrs = {n: getattr(rng, n) for n in _RANDOM_METHODS if hasattr(rng, n)}
        attrs["Random"] = random.Random
        attrs["SystemRandom"] = random.SystemRandom
        return ModuleProxy("random", attrs)

    def operator_proxy() -> ModuleProxy:
        attrs = dict(_public(operator, drop=("attrgetter", "methodcaller")))
        attrs["attrgetter"] = _attrgetter
        attrs["methodcaller"] = _methodcaller
        return ModuleProxy("operator", attrs)

    def collections_proxy() -> ModuleProxy:
        attrs = dict(_public(collections, drop=("abc",)))
        attrs["abc"] = ModuleProxy("collections.abc", _public(collections.abc))
        return ModuleProxy("collections", attrs)

    def decimal_proxy() -> ModuleProxy:
        # The shared template contexts are mutable: not exposed.
        return ModuleProxy(
            "decimal", _public(decimal, drop=("DefaultContext", "BasicContext", "ExtendedContext"))
        )

    def time_proxy() -> ModuleProxy:
        return ModuleProxy(
            "time",
            _public(
                time,
                [
                    "time",
                    "time_ns",
                    "perf_counter",
                    "perf_counter_ns",
                    "monotonic",
                    "monotonic_ns",
                    "process_time",
                    "sleep",
                    "gmtime",
                    "localtime",
                    "mktime",
                    "strftime",
                    "strptime",
                    "asctime",
                    "ctime",
                    "struct_time",
                ],
            ),
        )

    def simple(
        module: Any,
        names: list[str] | None = None,
        drop: tuple[str, ...] = (),
        safe: dict[str, Any] | None = None,
    ) -> Callable[[], ModuleProxy]:
        attrs = dict(_public(module, names, drop))
        if safe:
            attrs.update(safe)  # the library function replaced by its safe version
        name = module.__name__
        # Mutable module-level values (`hashlib.algorithms_guaranteed` is a set) are copied
        # per run, so one program cannot change what the next one sees.
        return lambda: ModuleProxy(name, {k: _fresh(v) for k, v in attrs.items()})

    return {
        "math": simple(math),
        "cmath": simple(cmath),
        "re": simple(re, _RE, safe=safe_library.re_functions()),
        "string": simple(string, drop=("Formatter",)),
        "typing": simple(typing, _TYPING),
        "heapq": simple(heapq),
        "itertools": simple(itertools),
        "bisect": simple(bisect),
        "array": simple(array, ["array", "typecodes", "ArrayType"]),
        "copy": simple(copy, ["Error"], safe={"copy": safe_library.copy, "deepcopy": safe_library.deepcopy}),
        "functools": simple(
            functools,
            [
                "reduce",
                "partial",
                "partialmethod",
                "lru_cache",
                "cache",
                "cached_property",
                "cmp_to_key",
                "total_ordering",
                "wraps",
                "update_wrapper",
                "WRAPPER_ASSIGNMENTS",
                "WRAPPER_UPDATES",
            ],
            drop=("wraps", "update_wrapper", "total_ordering"),
            safe={
                "wraps": safe_library.wraps,
                "update_wrapper": safe_library.update_wrapper,
                "total_ordering": safe_library.total_ordering,
            },
        ),
        "statistics": simple(
            statistics,
            [
                "mean",
                "fmean",
                "geometric_mean",
                "harmonic_mean",
                "median",
                "median_low",
                "median_high",
                "median_grouped",
                "mode",
                "multimode",
                "pstdev",
                "pvariance",
                "stdev",
                "variance",
                "quantiles",
                "StatisticsError",
                "correlation",
                "covariance",
                "linear_regression",
                "NormalDist",
            ],
        ),
        "fractions": simple(fractions, ["Fraction"]),
        "datetime": simple(
            datetime, ["date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MINYEAR", "MAXYEAR"]
        ),
        "hashlib": simple(
            hashlib,
            [
                "md5",
                "sha1",
                "sha224",
                "sha256",
                "sha384",
                "sha512",
                "sha3_224",
                "sha3_256",
                "sha3_384",
                "sha3_512",
                "blake2b",
                "blake2s",
                "algorithms_guaranteed",
            ],
        ),
        "json": simple(json, ["dumps", "loads", "JSONDecodeError"]),
        "textwrap": simple(textwrap, ["wrap", "fill", "shorten", "dedent", "indent"]),
        "unicodedata": simple(unicodedata),
        "numbers": simple(numbers, ["Number", "Complex", "Real", "Rational", "Integral"]),
        "abc": simple(abc, ["ABC", "abstractmethod", "ABCMeta"]),
        "enum": simple(enum, ["Enum", "IntEnum", "Flag", "IntFlag", "auto", "unique"]),
        "collections": collections_proxy,
        "operator": operator_proxy,
        "random": random_proxy,
        "decimal": decimal_proxy,
        "time": time_proxy,
        "sys": sys_proxy,
    }


ALLOWED_MODULES = (
    "abc",
    "array",
    "bisect",
    "cmath",
    "collections",
    "collections.abc",
    "copy",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "json",
    "math",
    "numbers",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "sys",
    "textwrap",
    "time",
    "typing",
    "unicodedata",
)


def refuse_module(name: str) -> BaseException:
    """The error for importing a module the sandbox does not provide. A standard-library module
    (or the sandbox's own package) is a refusal that ends the run; any other name is, as in a
    Python without that package installed, a catchable ModuleNotFoundError (programs do
    `try: import numpy except ImportError: ...`). Nothing is imported either way."""
    top = name.split(".")[0]
    if top in ALLOWED_MODULES:
        return ModuleNotFoundError(f"No module named '{name}'")
    if top in sys.stdlib_module_names or top.startswith("_") or top == "prefcurate":
        return PolicyError(
            f"import of module '{name}' is not allowed in the sandbox (allowed: {', '.join(ALLOWED_MODULES)})"
        )
    return ModuleNotFoundError(f"No module named '{name}' (the sandbox has no third-party packages)")


def _register_host_classes() -> None:
    import builtins

    values: list[Any] = [getattr(builtins, n) for n in dir(builtins)]
    for name in ALLOWED_MODULES:
        module = sys.modules[name]
        values.extend(getattr(module, n) for n in dir(module) if not n.startswith("__"))
    safe_library.register_host_classes(values)


_register_host_classes()
