"""The parent side: one zygote per pool, one forked, confined process per job.

`SandboxPool.run` hands a job out by asking the zygote to fork a child that owns one end of a
fresh socket pair; from that moment the job's deadline runs (fork, confinement, sending the
program, running it, reading the results). At the deadline the child is killed (SIGKILL through
the zygote, which reaps it). The parent decides from plain data only: frames are length-prefixed
JSON inside a byte budget, the frame sequence must be exactly `ready`, `prog`, one `unit` per
test sent (in order), `done`, then EOF; anything else (a dead child, a malformed, extra or
missing frame) fails the whole run. Test comparisons are recomputed by the parent (`plain.py`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import isolation
from .channel import ChildDied, Conn, Deadline, Violation
from .judge import JobState as _Job
from .judge import judge_unit  # noqa: F401 - part of this module's interface
from .policy import DEFAULT_MAX_STEPS, DEFAULT_MEMORY_MB
from .result import (
    ERROR,
    ERRORED,
    RUN_TIMEOUT,
    TIMEOUT,
    RunResult,
)
from .zygote import BOOT

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# TEST ONLY (requirement: test the OS layer alone): children run programs with plain `exec` and
# the real builtins, the model of an escaped interpreter. Only the test suite sets it; it is read
# when a zygote starts and is not reachable from the CLI or any public function.
_ESCAPED_FOR_TESTS = False
# TEST ONLY, likewise: isolation layers a test leaves out to show that the others hold alone.
_SKIP_LAYERS_FOR_TESTS: frozenset[str] = frozenset()
_ZYGOTE_START_S = 120.0


class ZygoteDied(Exception):
    pass


def validate_limits(timeout: float, memory_mb: float, max_steps: float, workers: int | None = None) -> None:
    """Refuse limits that are not positive and finite, before anything runs."""
    for name, value in (("--timeout", timeout), ("--memory-mb", memory_mb), ("--max-steps", max_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    if timeout > 86_400:
        raise ConfigError(f"--timeout must be at most 86400 seconds, got {timeout!r}")
    if memory_mb > 1 << 20:
        raise ConfigError(f"--memory-mb must be at most {1 << 20}, got {memory_mb!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")


class Zygote:
    """Handle on the zygote process: fork and reap requests, one at a time."""

    def __init__(self, escaped: bool, skip: frozenset[str] = frozenset()) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        try:
            # Not -I: it implies -E, which ignores PYTHONHASHSEED (the order of a set of strings must
            # not change between runs); -s -S -P and an environment built here give the same isolation.
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-S", "-P", "-c", BOOT, _PACKAGE_ROOT, str(theirs.fileno()),
                 "escaped" if escaped else "interpreter", ",".join(sorted(skip)) or "-"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env=env,
                cwd="/",
            )  # fmt: skip
        finally:
            theirs.close()
        self.ctrl = ours
        self.lock = threading.Lock()
        self.ctrl.settimeout(_ZYGOTE_START_S)
        try:
            up = self.ctrl.recv(64)
        except OSError:
            up = b""
        if up != b'{"up":true}':
            self.kill()
            raise ZygoteDied("the sandbox zygote did not start")
        self.ctrl.settimeout(30.0)

    def _ask(self, req: dict[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        with self.lock:
            try:
                if fds:
                    socket.send_fds(self.ctrl, [json.dumps(req).encode()], list(fds))
                else:
                    self.ctrl.send(json.dumps(req).encode())
                data = self.ctrl.recv(1 << 16)
            except OSError as exc:
                raise ZygoteDied(str(exc)) from None
        if not data:
            raise ZygoteDied("the sandbox zygote exited")
        return json.loads(data)

    def fork(self, sock: socket.socket, timeout: float, memory_mb: int) -> int:
        reply = self._ask({"op": "fork", "timeout": timeout, "memory_mb": memory_mb}, [sock.fileno()])
        if "pid" not in reply:
            raise ZygoteDied(f"fork refused: {reply}")
        return int(reply["pid"])

    def reap(self, pid: int) -> tuple[int | None, bool]:
        """Collect `pid` (killing it if it is still running shortly after): (wait status or None,
        whether it had to be killed)."""
        try:
            reply = self._ask({"op": "reap", "pid": pid})
        except ZygoteDied:
            return None, False
        status = reply.get("status")
        return (status if type(status) is int else None), reply.get("killed") is True

    def arm(self, pid: int, timeout: float) -> None:
        """The job is handed out: the zygote's own backstop kills the child at timeout + grace."""
        self._tell({"op": "arm", "pid": pid, "timeout": timeout})

    def _tell(self, req: dict[str, Any]) -> None:
        with self.lock:
            try:
                self.ctrl.send(json.dumps(req).encode())
            except OSError:
                pass

    def drop(self, pid: int) -> None:
        """Kill (if still running) and forget `pid`; the zygote collects it without a reply."""
        self._tell({"op": "drop", "pid": pid})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.ctrl.close()  # EOF: the zygote kills its children and exits
            self.proc.wait(timeout=5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for target in (lambda: os.killpg(self.proc.pid, signal.SIGKILL), self.proc.kill):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()


class _Child:
    """A forked child that confines itself, reports its isolation (`report`, None until read)
    and waits for its one job."""

    def __init__(
        self, zygote: Zygote, pid: int, conn: Conn, timeout: float, report: dict[str, Any] | None
    ) -> None:
        self.zygote, self.pid, self.conn, self.timeout, self.report = zygote, pid, conn, timeout, report
        self.proc = self  # `.proc.pid`, like a subprocess handle

    def discard(self) -> None:
        self.conn.close()
        self.zygote.drop(self.pid)


class SandboxPool:
    """Runs programs concurrently, each in a fresh confined process. Use as a context manager.

    One child per slot is forked and confined ahead of time (it has sent its isolation report
    and waits for a program), so a job's deadline is spent on the job, not on start-up."""

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 5.0,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_steps: int = DEFAULT_MAX_STEPS,
        require_isolation: bool = False,
    ) -> None:
        validate_limits(timeout, memory_mb, max_steps, workers)
        self.size = max(1, workers or os.cpu_count() or 1)
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.max_steps = int(max_steps)
        self.require_isolation = require_isolation
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._zygote: Zygote | None = None
        self._closed = False
        self._started = False
        self._executor: ThreadPoolExecutor | None = None
        self._isolation: dict[str, Any] | None = None
        self._ready: list[_Child] = []
        self._cond = threading.Condition(self._lock)
        self._pending = 0
        self._spawner: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> SandboxPool:
        """Start the zygote and the first children (not charged to any job); learn which
        isolation layers hold; with `require_isolation`, refuse to go on without all of them."""
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            if self._started:
                return self
            self._started = True
        for _ in range(self.size):
            child = self._spawn(self.timeout, time.monotonic() + _ZYGOTE_START_S)
            if isinstance(child, RunResult):
                raise ZygoteDied(f"the sandbox does not start: {child.reason}")
            with self._lock:
                self._ready.append(child)
        if self.require_isolation and self._isolation is not None:
            isolation.check_required(self._isolation)
        self._spawner = threading.Thread(
            target=_keep_spares, args=(weakref.ref(self),), name="sandbox-spawner", daemon=True
        )
        self._spawner.start()
        return self

    @property
    def isolation(self) -> dict[str, Any] | None:
        """The layers active for every child so far (`layers`, `all_active`, `inactive` reasons)."""
        return self._isolation

    @property
    def _all(self) -> set[_Child]:
        """The idle children, confined and waiting for a program (for tests and debugging:
        waits until every slot has one and each has reported its isolation)."""
        end = time.monotonic() + _ZYGOTE_START_S
        while True:
            with self._cond:
                ready = list(self._ready)
                if len(ready) >= self.size or self._closed or time.monotonic() > end:
                    break
                self._cond.wait(0.2)
        for child in ready:
            if self._await_ready(child, end) is not None:
                with self._lock:
                    if child in self._ready:
                        self._ready.remove(child)
        with self._lock:
            return {c for c in self._ready if c.report is not None}

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort: never leave processes behind
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            zygote, self._zygote = self._zygote, None
            ready, self._ready = self._ready, []
            self._cond.notify_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for child in ready:
            child.conn.close()
        if zygote is not None:
            zygote.kill()
        if self._spawner is not None and self._spawner is not threading.current_thread():
            self._spawner.join(timeout=10.0)

    def _get_zygote(self) -> Zygote:
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.kill()
                for child in self._ready:  # children of a dead zygote are dead too
                    child.conn.close()
                self._ready = []
                self._zygote = Zygote(_ESCAPED_FOR_TESTS, _SKIP_LAYERS_FOR_TESTS)
            return self._zygote

    def _spawn(self, limit: float, deadline: float) -> _Child | RunResult:
        """Fork and confine a child; wait for its isolation report. A RunResult if that failed."""
        child = self._fork(limit)
        if isinstance(child, _Child):
            failed = self._await_ready(child, deadline)
            if failed is not None:
                return failed
        return child

    def _fork(self, limit: float) -> _Child | RunResult:
        """Ask the zygote for a child (which confines itself and reports while we go on)."""
        job = _Job([], limit)
        try:
            zygote = self._get_zygote()
        except ZygoteDied as exc:
            return job.finish(ERROR, f"sandbox zygote failed: {exc}", ERRORED)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = zygote.fork(theirs, limit, self.memory_mb)
        except ZygoteDied as exc:
            ours.close()
            return job.finish(ERROR, f"sandbox zygote failed: {exc}", ERRORED)
        finally:
            theirs.close()
        return _Child(zygote, pid, Conn(ours), limit, None)

    def _await_ready(self, child: _Child, deadline: float) -> RunResult | None:
        """Read the child's isolation report (sent before it reads any program); None if fine."""
        if child.report is not None:
            return None
        try:
            ready = child.conn.recv(deadline)
        except Deadline:
            ready = {"t": "late"}
        except (ChildDied, Violation) as exc:
            ready = {"t": str(exc)}
        if ready.get("t") != "ready":
            child.conn.close()
            job = _Job([], child.timeout)
            job.why_dead = f"no isolation report: {ready.get('t')}"
            return job.died(*child.zygote.reap(child.pid))
        child.report = isolation.parse_report(ready.get("isolation"))
        with self._lock:
            self._isolation = isolation.merge(self._isolation, child.report)
        return None

    def _take(self, limit: float) -> _Child | None:
        """A spare child (waiting for one, not charged to the job); None for another timeout."""
        if limit != self.timeout:
            return None
        end = time.monotonic() + _ZYGOTE_START_S
        while True:
            zygote = self._zygote
            if zygote is not None and not zygote.alive():
                self._get_zygote()  # a new zygote; the children of the old one died with it
            with self._cond:
                for i, child in enumerate(self._ready):
                    if child.zygote is self._zygote:
                        self._cond.notify_all()  # the spawner makes the next one meanwhile
                        return self._ready.pop(i)
                if self._closed or time.monotonic() > end:
                    return None
                self._cond.wait(0.2)

    def _spare_one(self) -> bool:
        """One round of the spawner thread (one spare child per slot, forked while jobs run);
        False once the pool is closed."""
        with self._cond:
            if not self._closed and len(self._ready) + self._pending >= self.size:
                self._cond.wait(1.0)
                return True
            if self._closed:
                return False
            self._pending += 1
        try:
            child = self._fork(self.timeout)  # its report is read by the job that takes it
        except RuntimeError:  # closed meanwhile
            child = None
        with self._cond:
            self._pending -= 1
            if isinstance(child, _Child) and not self._closed and child.zygote is self._zygote:
                self._ready.append(child)
                self._cond.notify_all()
                return True
        if isinstance(child, _Child):
            child.discard()
        elif self._closed:
            return False
        else:
            time.sleep(0.05)  # the zygote cannot fork right now: do not spin
        return True

    # -- running ---------------------------------------------------------------------
    def run(
        self, program: str, tests: Sequence[str] = (), *, setup: str = "", timeout: float | None = None
    ) -> RunResult:
        """Run `program`, then the tests' `setup` and each test string; one deadline for all.

        The setup and the tests run in a namespace of their own (see docs/sandbox.md, "What a
        test unit sees"); a setup that raises fails the run as the program would."""
        tests = [str(t) for t in tests]
        limit = self.timeout if timeout is None else float(timeout)
        validate_limits(limit, self.memory_mb, self.max_steps)
        self.start()
        with self._slots:
            return self._run_one(str(program), tests, limit, str(setup))

    def map(
        self,
        jobs: Iterable[tuple[str, Sequence[str]] | tuple[str, Sequence[str], str]],
        *,
        timeout: float | None = None,
    ) -> Iterator[RunResult]:
        """Run many (program, tests) or (program, tests, setup) jobs in parallel on the pool;
        results in input order."""
        self.start()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="sandbox")
        executor = self._executor
        pending: list = []
        it = iter(jobs)
        window = self.size * 4
        for job in it:
            pending.append(self._submit(executor, job, timeout))
            if len(pending) >= window:
                break
        while pending:
            fut = pending.pop(0)
            for job in it:
                pending.append(self._submit(executor, job, timeout))
                break
            yield fut.result()

    def _submit(self, executor: ThreadPoolExecutor, job: tuple, timeout: float | None) -> Any:
        setup = job[2] if len(job) > 2 else ""
        return executor.submit(self.run, job[0], job[1], setup=setup, timeout=timeout)

    def _run_one(self, program: str, tests: list[str], limit: float, setup: str = "") -> RunResult:
        child = self._take(limit)
        if child is not None and self._await_ready(child, time.monotonic() + _ZYGOTE_START_S) is not None:
            child = None  # it died before reporting: not this job's fault
        job = _Job(tests, limit)  # the deadline starts now: the job is handed out
        if child is None:  # none waiting (or made for another timeout): start-up is on this job
            spawned = self._spawn(limit, job.deadline)
            if isinstance(spawned, RunResult):
                return job.finish(spawned.status, spawned.reason, ERRORED)
            child = spawned
        child.zygote.arm(child.pid, limit)
        pid = child.pid
        try:
            report = child.report or {}
            if self.require_isolation and not report.get("all_active"):
                missing = ", ".join(report.get("inactive", {}))
                return job.finish(ERROR, f"isolation layers not active: {missing}", ERRORED)
            result = self._talk(child.conn, job, program, setup)
            if result is None:  # the child died before its final frame: its wait status says why
                child.conn.close()
                reaped = child.zygote.reap(pid)
                pid = 0
                result = job.died(*reaped)
            return result
        finally:
            child.conn.close()
            if pid:
                child.zygote.drop(pid)

    def _talk(self, conn: Conn, job: _Job, program: str, setup: str) -> RunResult | None:
        try:
            msg = {"program": program, "setup": setup, "tests": job.tests, "max_steps": self.max_steps}
            conn.send(msg, job.deadline)
            while True:
                result = job.take(conn.recv(job.deadline))
                if result is not None:
                    break
            if job.violated:
                return result
        except Deadline:
            return job.finish(RUN_TIMEOUT, f"wall-clock deadline of {job.limit:g}s exceeded", TIMEOUT)
        except ChildDied as exc:
            job.why_dead = str(exc)
            return None
        except Violation as exc:
            return job._violate(str(exc))
        try:
            conn.expect_eof(job.deadline)  # the final frame is the last thing a job may send
        except Deadline:
            return job.finish(RUN_TIMEOUT, f"wall-clock deadline of {job.limit:g}s exceeded", TIMEOUT)
        except Violation as exc:
            return job._violate(str(exc))
        return result


def _keep_spares(ref: weakref.ref[SandboxPool]) -> None:
    # A weak reference: a pool nobody closed can still be collected (its __del__ closes it).
    while (pool := ref()) is not None and pool._spare_one():
        del pool
