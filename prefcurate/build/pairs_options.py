"""`build pairs`: its choices and defaults, in a module the CLI can import at start-up (no pyarrow, no
readers); `build/pairs.py` reads them from here, so each is written once."""

from __future__ import annotations

from enum import Enum


class InputFormat(str, Enum):
    """The shape of pairwise input rows."""

    auto = "auto"
    flat = "flat"
    conversational = "conversational"
    hh_rlhf = "hh-rlhf"


FORMATS = tuple(m.value for m in InputFormat)
DEFAULT_FORMAT = InputFormat.auto.value  # detected from the column types
