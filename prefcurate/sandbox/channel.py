"""Length-prefixed JSON frames over one socket: the only thing a job's process and the parent share.

The parent side (`Conn`) reads with a deadline and a byte budget for the whole job, decodes
with `json.loads` only (never pickle), and treats anything it cannot decode as a dead child.
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
# What one job's process may send back in all (results, traces, stdout): bounds the parent.
MAX_RESULT_BYTES = 8 * 1024 * 1024
# What the parent may send (the program and its tests).
MAX_JOB_BYTES = 256 * 1024 * 1024


class ChildDied(Exception):
    """The job's process closed its end of the channel."""


class Violation(Exception):
    """The job's process sent too much, something that is not a frame, or data after the end."""


class Deadline(Exception):
    pass


def encode(obj: object) -> bytes:
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    return HEADER.pack(len(data)) + data


class Channel:
    """The child's side: blocking reads and writes on fd `fd`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _read_exact(self, n: int) -> bytes | None:
        parts, got = [], 0
        while got < n:
            chunk = os.read(self.fd, min(n - got, 1 << 20))
            if not chunk:
                return None
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def recv(self) -> Any:
        head = self._read_exact(4)
        if head is None:
            return None
        body = self._read_exact(HEADER.unpack(head)[0])
        return None if body is None else json.loads(body)

    def send(self, obj: object) -> None:
        view = memoryview(encode(obj))
        while view:
            view = view[os.write(self.fd, view) :]


class Conn:
    """The parent's side of one job: every call takes the job's absolute deadline."""

    def __init__(self, sock: socket.socket, budget: int = MAX_RESULT_BYTES) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.budget = budget
        self._buf = bytearray()

    def _wait(self, deadline: float, write: bool = False) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Deadline
        # poll, not select: a parent with many open files has descriptors above FD_SETSIZE.
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT if write else select.POLLIN)
        if not poller.poll(max(1, math.ceil(remaining * 1000))):
            raise Deadline

    def _fill(self, deadline: float) -> bool:
        """Read what is there (waiting until the deadline); False at EOF."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                self._wait(deadline)
                continue
            except OSError:
                return False
            if not chunk:
                return False
            self.budget -= len(chunk)
            if self.budget < 0:
                raise Violation(f"the job sent more than {MAX_RESULT_BYTES >> 20} MiB of results")
            self._buf += chunk
            return True

    def recv(self, deadline: float) -> dict:
        """The next frame (a JSON object). Raises Deadline, ChildDied or Violation."""
        while True:
            if len(self._buf) >= 4:
                size = HEADER.unpack_from(self._buf)[0]
                if size > MAX_RESULT_BYTES:
                    raise Violation("oversized frame")
                if len(self._buf) >= 4 + size:
                    data = bytes(self._buf[4 : 4 + size])
                    del self._buf[: 4 + size]
                    try:
                        msg = json.loads(data)
                    except (ValueError, RecursionError):
                        raise Violation("malformed frame") from None
                    if not isinstance(msg, dict):
                        raise Violation("malformed frame")
                    return msg
            if not self._fill(deadline):
                raise ChildDied("the job's process exited")

    def expect_eof(self, deadline: float) -> None:
        """After the last frame, nothing more may come: extra bytes are a protocol violation."""
        while not self._buf:
            if not self._fill(deadline):
                return
        raise Violation("data after the final frame")

    def send(self, obj: object, deadline: float) -> None:
        view = memoryview(encode(obj))
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                self._wait(deadline, write=True)
            except OSError as exc:
                raise ChildDied(f"the job's process closed its end ({exc.strerror})") from None

    def close(self) -> None:
        self.sock.close()
