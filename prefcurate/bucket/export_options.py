"""`export`: its layouts and the default one, in a module the CLI can import at start-up (no pyarrow,
no signals); `bucket/export.py` reads them from here, so each is written once."""

from __future__ import annotations

from enum import Enum


class Layout(str, Enum):
    """What `export` writes per bucket."""

    trl = "trl"
    jsonl = "jsonl"
    parquet = "parquet"


LAYOUTS = tuple(m.value for m in Layout)
DEFAULT_LAYOUT = Layout.trl.value
