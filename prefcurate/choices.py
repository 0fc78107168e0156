"""Choice types for the command line, made from the library's own tuples of allowed values.

The library keeps one tuple per choice (`PAIRINGS`, `STRATEGIES`, `DTYPE_CHOICES`...) and validates
against it; the CLI types its options with `choice_enum(...)` of the same tuple, so `--help` lists the
values and a bad value fails before any work starts. Nothing is spelled twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any


def choice_enum(name: str, values: Sequence[str]) -> Any:
    """A `str` Enum whose member values are exactly `values`, in order."""
    return Enum(name, [(v.replace("-", "_").replace(".", "_"), v) for v in values], type=str)


def value_of(choice: Any) -> Any:
    """The plain string of an Enum member (None and plain values pass through)."""
    return choice.value if isinstance(choice, Enum) else choice
