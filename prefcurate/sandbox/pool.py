"""The OS layer: a pool of pre-started, resource-limited worker processes.

Each worker is a fresh `python -s -S -P` process (PYTHONHASHSEED=0) (started with subprocess, close_fds, its own session,
stderr to /dev/null, a scrubbed environment) that talks length-prefixed JSON over its stdin and
stdout pipes only. The parent enforces the wall-clock deadline: a worker that overruns is killed
(SIGKILL to its process group) and replaced, so a single runaway C-level operation (`9**9**9`,
a catastrophic regex, `time.sleep`) ends at the deadline. The parent never unpickles anything
from a worker: frames are JSON and plain values are rebuilt from tagged JSON (`plain.py`), and
the parent recomputes every test comparison itself from those plain values.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import plain
from .result import (
    ERROR,
    ERRORED,
    FAILED,
    OK,
    PASSED,
    RESOURCE_LIMIT,
    RUN_TIMEOUT,
    SKIPPED,
    TIMEOUT,
    RunResult,
    UnitResult,
)

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# Workers serve this many programs, then are replaced (bounds anything that might accumulate).
MAX_RUNS_PER_WORKER = 1000


class WorkerDied(Exception):
    pass


def encode_frame(obj: object) -> bytes:
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    return _HEADER.pack(len(data)) + data


class Worker:
    """One worker process and its pipes."""

    def __init__(self, memory_mb: int) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from prefcurate.sandbox.worker import main; main(int(sys.argv[2]))"
        )
        self.proc = subprocess.Popen(
            # Not -I: it implies -E, which ignores PYTHONHASHSEED (the order of a set of strings
            # must not change between runs). -s -S -P give the same isolation of sys.path and the
            # environment is built here from scratch, so no other PYTHON* variable reaches it.
            [sys.executable, "-s", "-S", "-P", "-c", code, _PACKAGE_ROOT, str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            env=env,
            cwd="/",
        )
        self.runs = 0
        self._buf = b""

    def send(self, obj: object) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode_frame(obj))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(str(exc)) from None

    def recv(self, deadline: float) -> dict | None:
        """Next frame, or None at the deadline. Raises WorkerDied on EOF or a malformed frame."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            if len(self._buf) >= 4:
                (size,) = _HEADER.unpack(self._buf[:4])
                if size > MAX_FRAME:
                    raise WorkerDied("oversized frame")
                if len(self._buf) >= 4 + size:
                    data, self._buf = self._buf[4 : 4 + size], self._buf[4 + size :]
                    try:
                        msg = json.loads(data)
                    except ValueError:
                        raise WorkerDied("malformed frame") from None
                    if not isinstance(msg, dict):
                        raise WorkerDied("malformed frame")
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerDied("worker exited")
            self._buf += chunk

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def close(self) -> None:
        """Ask politely (EOF on stdin), then kill."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class SandboxPool:
    """Pre-started sandbox workers reused across programs. Use as a context manager."""

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_steps: int = 10_000_000,
    ) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.max_steps = int(max_steps)
        self._idle: queue.SimpleQueue[Worker | None] = queue.SimpleQueue()
        self._all: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> SandboxPool:
        if not self._started:
            self._started = True
            for _ in range(self.size):
                self._idle.put(self._spawn())
        return self

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort: never leave orphans behind
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for w in workers:
            w.close()

    def _spawn(self) -> Worker:
        w = Worker(self.memory_mb)
        with self._lock:
            self._all.add(w)
        return w

    def _retire(self, w: Worker, kill: bool = True) -> None:
        with self._lock:
            self._all.discard(w)
        if kill:
            w.kill()
        else:
            w.close()

    def _checkout(self) -> Worker:
        if self._closed:
            raise RuntimeError("SandboxPool is closed")
        self.start()
        w = self._idle.get()
        if w is None or w.proc.poll() is not None:
            if w is not None:
                self._retire(w)
            w = self._spawn()
        return w

    def _checkin(self, w: Worker | None) -> None:
        if self._closed:
            if w is not None:
                self._retire(w, kill=False)
            return
        if w is not None and w.runs >= MAX_RUNS_PER_WORKER:
            self._retire(w, kill=False)
            w = None
        # A retired worker's slot is refilled lazily by the next checkout.
        self._idle.put(w)

    # -- running ---------------------------------------------------------------------
    def run(self, program: str, tests: Sequence[str] = (), *, timeout: float | None = None) -> RunResult:
        """Run `program`, then each test string in the same namespace; one deadline for all."""
        tests = list(tests)
        limit = self.timeout if timeout is None else float(timeout)
        w = self._checkout()
        try:
            result, healthy = self._run_on(w, program, tests, limit)
        except BaseException:
            self._retire(w)
            self._checkin(None)
            raise
        if healthy:
            self._checkin(w)
        else:
            self._retire(w)
            self._checkin(None)
        return result

    def map(
        self, jobs: Iterable[tuple[str, Sequence[str]]], *, timeout: float | None = None
    ) -> Iterator[RunResult]:
        """Run many (program, tests) jobs in parallel on the pool; results in input order."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="sandbox")
        executor = self._executor
        pending: list = []
        it = iter(jobs)
        window = self.size * 4
        for job in it:
            pending.append(executor.submit(self.run, job[0], job[1], timeout=timeout))
            if len(pending) >= window:
                break
        while pending:
            fut = pending.pop(0)
            for job in it:
                pending.append(executor.submit(self.run, job[0], job[1], timeout=timeout))
                break
            yield fut.result()

    def _run_on(self, w: Worker, program: str, tests: list[str], limit: float) -> tuple[RunResult, bool]:
        start = time.monotonic()
        deadline = start + limit
        w.runs += 1
        units: list[UnitResult | None] = [None] * len(tests)
        out: list[str] = []
        status, reason = OK, ""

        def finish(status: str, reason: str, fill: str) -> RunResult:
            # Units the run never reached get the run's reason.
            done = tuple(
                u if u is not None else UnitResult(fill, "not run: " + reason if reason else "")
                for u in units
            )
            return RunResult(status, reason, done, "".join(out), time.monotonic() - start)

        try:
            w.send({"program": program, "tests": tests, "max_steps": self.max_steps, "timeout": limit})
            while True:
                msg = w.recv(deadline)
                if msg is None:
                    return finish(RUN_TIMEOUT, f"wall-clock deadline of {limit:g}s exceeded", TIMEOUT), False
                out.append(str(msg.get("out", ""))[: plain.MAX_STDOUT])
                kind = msg.get("t")
                if kind == "prog":
                    status, reason = str(msg.get("status")), str(msg.get("reason", ""))
                    if status != OK:
                        fill = TIMEOUT if status == RUN_TIMEOUT else ERRORED
                        healthy = status not in (RESOURCE_LIMIT, ERROR)
                        return finish(status, reason, fill), healthy
                elif kind == "unit":
                    i = int(msg["i"])
                    units[i] = judge_unit(msg)
                    if msg.get("status") in (TIMEOUT, RESOURCE_LIMIT):
                        # The budget ran out inside this unit: the rest cannot run.
                        fill = TIMEOUT if msg.get("status") == TIMEOUT else ERRORED
                        for j in range(i + 1, len(units)):
                            units[j] = UnitResult(fill, "not run: " + str(msg.get("message", "")))
                elif kind == "done":
                    res = finish(OK, "", SKIPPED)
                    healthy = not msg.get("recycle", False)
                    return res, healthy
                else:
                    raise WorkerDied(f"unexpected frame {kind!r}")
        except WorkerDied as exc:
            code = w.proc.poll()
            if code is None:
                w.kill()
                code = w.proc.poll()
            if code is not None and code < 0 and -code in (signal.SIGXCPU, signal.SIGKILL, signal.SIGSEGV):
                return finish(
                    RESOURCE_LIMIT, f"worker killed by signal {signal.Signals(-code).name}", ERRORED
                ), False
            return finish(ERROR, f"sandbox worker failed: {exc} (exit code {code})", ERRORED), False
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            return finish(ERROR, f"sandbox protocol error: {exc}", ERRORED), False


def judge_unit(msg: dict) -> UnitResult:
    """Decide a unit in the parent: the worker's outcome, re-checked against the assertion traces.

    A unit passes only if it raised nothing and every trusted assert it evaluated holds when the
    parent recomputes the comparison from the plain operand values.
    """
    status = str(msg.get("status"))
    message = str(msg.get("message", ""))
    traces = msg.get("asserts") or []
    if status == PASSED:
        for trace in traces:
            try:
                holds = plain.evaluate_trace(trace)
            except Exception as exc:  # a trace the parent cannot evaluate: never a pass
                return UnitResult(FAILED, f"assertion could not be checked: {exc}")
            if not holds:
                return UnitResult(FAILED, "assertion failed (recomputed by the parent)")
        return UnitResult(PASSED, "")
    if status in (FAILED, ERRORED, TIMEOUT, SKIPPED):
        return UnitResult(status, message)
    if status == RESOURCE_LIMIT:
        return UnitResult(ERRORED, message)
    return UnitResult(ERRORED, message or f"unknown unit status {status!r}")
