"""The worker process: confines itself, then runs one program at a time for the parent.

Start-up order matters: protocol pipes are moved off fds 0/1 (which then point at /dev/null),
every other descriptor is closed, allowed modules are imported, root drops to `nobody`, the
interpreter thread (with a large stack, for deep interpreted recursion) is started, and only
then the limits that would stop that are set: no new processes or threads (RLIMIT_NPROC=0),
address space, no file writes (RLIMIT_FSIZE=0), few descriptors, no core dumps.
Each job gets a fresh Interpreter (fresh builtins, module proxies, globals, random state,
decimal context) and everything it created is dropped (finalizers included) before "done".
"""

from __future__ import annotations

import decimal
import gc
import json
import os
import re
import resource
import struct
import sys
import threading
import typing
import warnings
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
THREAD_STACK = 256 * 1024 * 1024
HOST_RECURSION = 60_000


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Channel:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.r = os.fdopen(rfd, "rb", buffering=0)
        self.w = os.fdopen(wfd, "wb", buffering=0)

    def recv(self) -> dict | None:
        head = _read_exact(self.r, 4)
        if head is None:
            return None
        (size,) = _HEADER.unpack(head)
        body = _read_exact(self.r, size)
        return None if body is None else json.loads(body)

    def send(self, obj: dict) -> None:
        data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
        self.w.write(_HEADER.pack(len(data)) + data)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # a candidate __str__ that fails or loops out of budget
        text = "<unprintable>"
    text = text if len(text) <= 500 else text[:500] + "..."
    return f"{name}: {text}" if text else name


def _vm_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _confine_early() -> Channel:
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    # Move protocol fds low and close everything else inherited.
    keep = {0, 1, 2, rfd, wfd}
    os.closerange(3, min(rfd, wfd))
    for fd in range(3, 256):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - stray host prints go nowhere
    warnings.simplefilter("ignore")
    return Channel(rfd, wfd)


def _drop_privileges() -> None:
    if os.getuid() == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        except OSError:
            pass


def _set_limits(memory_mb: int) -> None:
    def lim(which: int, value: int) -> None:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    lim(resource.RLIMIT_NPROC, 0)
    lim(resource.RLIMIT_FSIZE, 0)
    lim(resource.RLIMIT_CORE, 0)
    lim(resource.RLIMIT_NOFILE, 16)
    lim(resource.RLIMIT_AS, _vm_bytes() + memory_mb * 1024 * 1024)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def _cpu_limit_for(timeout: float) -> None:
    # Cumulative CPU seconds: allow this job its timeout plus slack; the wall-clock deadline
    # in the parent is the real limit, this is a backstop if the parent were to stall.
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (int(spent + timeout) + 2, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def run_job(chan: Channel, job: dict) -> bool:
    """Run one program and its tests, streaming results. Returns False if the worker should exit."""
    from .interpreter import Interpreter
    from .policy import PolicyError, StepLimit

    _cpu_limit_for(float(job.get("timeout", 5.0)))
    decimal.setcontext(decimal.Context())
    interp = Interpreter(max_steps=int(job.get("max_steps", 10_000_000)))
    ctx = interp.ctx
    recycle = False

    def out() -> str:
        return ctx.take_output()

    def prog(status: str, reason: str) -> None:
        chan.send({"t": "prog", "status": status, "reason": reason, "out": out()})

    try:
        try:
            interp.run(job["program"])
        except PolicyError as exc:
            prog("refused", f"refused: {exc}")
            return True
        except StepLimit as exc:
            prog("timeout", str(exc))
            return True
        except MemoryError:
            prog("resource_limit", "MemoryError: the program exceeded its memory limit")
            return False
        except RecursionError as exc:
            prog("failed", _describe(exc))
            return True
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit included
            prog("failed", _describe(exc))
            return True
        prog("ok", "")
        for i, test in enumerate(job.get("tests", [])):
            ctx.asserts = []
            msg: dict[str, Any] = {"t": "unit", "i": i}
            stop: tuple[str, str] | None = None
            try:
                interp.run(test, trusted_asserts=True)
                msg.update(status="passed", asserts=ctx.asserts)
            except AssertionError as exc:
                msg.update(status="failed", message=_describe(exc))
            except PolicyError as exc:
                msg.update(status="errored", message=f"refused: {exc}")
                stop = ("refused", f"refused: {exc}")
            except StepLimit as exc:
                msg.update(status="timeout", message=str(exc))
                stop = ("timeout", str(exc))
            except MemoryError:
                msg.update(status="errored", message="MemoryError: memory limit exceeded")
                stop = ("resource_limit", "MemoryError: the program exceeded its memory limit")
                recycle = True
            except BaseException as exc:
                msg.update(status="errored", message=_describe(exc))
            msg["out"] = out()
            chan.send(msg)
            if stop is not None:
                prog(*stop)
                return not recycle
        interp.close()
        ctx.steps = min(ctx.steps, 100_000)  # finalizers get a small budget of their own
        gc.collect()
        chan.send({"t": "done", "out": out(), "recycle": recycle})
        return not recycle
    finally:
        try:
            interp.close()
            for clear in getattr(typing, "_cleanups", []):
                clear()
            # The regex cache keeps the program's pattern strings (and so their interning)
            # alive; dropping it keeps a job's result independent of the jobs before it.
            re.purge()
            gc.collect()
        except BaseException:
            pass


def serve(chan: Channel) -> None:
    sys.setrecursionlimit(HOST_RECURSION)
    while True:
        try:
            job = chan.recv()
        except (OSError, ValueError):
            break
        if job is None:
            break
        try:
            keep = run_job(chan, job)
        except MemoryError:
            try:
                chan.send(
                    {
                        "t": "prog",
                        "status": "resource_limit",
                        "reason": "MemoryError in the sandbox worker",
                        "out": "",
                    }
                )
            except BaseException:
                pass
            keep = False
        except BaseException as exc:  # a sandbox bug: report it, then exit so a fresh worker replaces us
            try:
                chan.send(
                    {
                        "t": "prog",
                        "status": "error",
                        "reason": f"sandbox internal error: {_describe(exc)}",
                        "out": "",
                    }
                )
            except BaseException:
                pass
            keep = False
        if not keep:
            break
    os._exit(0)


def main(memory_mb: int = 512) -> None:
    chan = _confine_early()
    # Import everything a program may use now, while files can still be opened.
    import _strptime  # noqa: F401 - time.strptime / datetime.strptime import it lazily
    import encodings.idna  # noqa: F401

    from . import interpreter  # noqa: F401

    interpreter.Interpreter(max_steps=10).ctx.import_module("re")  # warm the proxies' code paths
    # Everything alive now is the worker's own and lives as long as it: move it out of the
    # collector's sight, so the per-job gc.collect() (which runs a program's finalizers
    # inside its own job) scans only what that job created (~5 ms -> <1 ms per program).
    gc.collect()
    gc.freeze()
    _drop_privileges()
    threading.stack_size(THREAD_STACK)
    # The serving thread must exist before RLIMIT_NPROC=0 (which also forbids new threads), but it
    # must not read a job until every limit is in place: it waits for this event.
    limits_set = threading.Event()

    def serve_when_confined() -> None:
        limits_set.wait()
        serve(chan)

    t = threading.Thread(target=serve_when_confined, daemon=False)
    t.start()
    _set_limits(memory_mb)
    limits_set.set()
    t.join()
    os._exit(0)
