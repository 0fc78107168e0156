"""The nesting guard of the JSON fast path: pyarrow.json hangs at ~10,000 levels of nesting and
crashes the process (SIGSEGV) at ~30,000, so a file holding a line whose bracket depth (counted
naively, brackets in strings included) exceeds MAX_FAST_DEPTH is parsed by readers' Python scan
instead, which fails cleanly."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, BinaryIO

from prefcurate.extras import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")

MAX_FAST_DEPTH = 512
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}\n")  # dropped before counting depth


@functools.cache
def _bracket_delta() -> np.ndarray:
    """Depth change per byte value: +1 for an opening bracket, -1 for a closing one."""
    delta = np.zeros(256, np.int8)
    delta[[ord("["), ord("{")]] = 1
    delta[[ord("]"), ord("}")]] = -1
    return delta


class TooDeep(Exception):
    """A line nests brackets deeper than MAX_FAST_DEPTH: read this file with the Python scan."""


class DepthGuard:
    """The file's bytes on their way into pyarrow.json, each block checked for nesting depth before
    the parser sees it (one pass over the file; the parser's threads work on earlier blocks
    meanwhile). Raises TooDeep for a line deeper than MAX_FAST_DEPTH (an over-estimate: brackets inside strings count too)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._carry = 0  # depth at the block start, relative to the last newline
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        block = self._fh.read(size)
        # Keep only brackets and newlines (bytes.translate runs at memory speed), then count.
        a = np.frombuffer(block.translate(None, _NOT_BRACKETS), np.uint8)
        if a.size:
            depth = np.cumsum(_bracket_delta()[a], dtype=np.int32) + self._carry
            last = np.maximum.accumulate(np.where(a == 10, np.arange(a.size), -1))
            base = np.where(last >= 0, depth[np.maximum(last, 0)], 0)
            if int((depth - base).max(initial=0)) > MAX_FAST_DEPTH:
                raise TooDeep
            self._carry = int(depth[-1] - base[-1])
        return block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._fh.close()
        self.closed = True
