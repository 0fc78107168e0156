"""The zygote: a warm, pre-imported, pre-limited process that forks one child per job.

The zygote never runs untrusted code. It is started once per pool (`python -s -S -P`, a scrubbed
environment, fds 0-2 on /dev/null, root dropped to `nobody`, no core dumps, not dumpable),
imports everything a program may use, freezes its objects out of the collector's sight, and then
serves requests on one SOCK_SEQPACKET control socket:

  {"op": "fork", ...} + one socket fd  ->  {"pid": N}   a child now owns that socket
  {"op": "reap", "pid": N}            ->  {"status": S}  SIGKILL (if still running), then waitpid

It is the only reaper of its children, so a pid the parent names can never be a recycled one.
Backstops that hold without the parent: each child is killed at its deadline plus a grace
period; when the parent dies (control socket EOF, or a new parent pid) every child is killed
and the zygote exits; each child has PR_SET_PDEATHSIG=SIGKILL on the zygote.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from typing import Any

# Deep interpreted recursion runs on the host's C stack (the interpreter's closures call each
# other): the zygote re-executes itself once with this stack limit, which its children inherit.
STACK_BYTES = 256 * 1024 * 1024
HOST_RECURSION = 60_000
GRACE_S = 2.0
_JOB_FD = 3
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from prefcurate.sandbox.zygote import main; main()"


_WARM = """
import re, math, collections, json, itertools, functools, heapq, string
re.compile('a+').findall('aaa')
def f(xs):
    return sorted(x for x in xs if x % 1 == 0)
class C:
    def __init__(self, x):
        self.y = x * 2
s = {k: v for k, v in [(1, 2)]}
t = [i * i for i in range(10)] + list(map(str, range(3)))
try:
    raise ValueError('x')
except ValueError as e:
    u = f'{e!r} {1:>3}'
while t:
    t.pop()
"""


def _with_big_stack(argv: list[str]) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = STACK_BYTES if hard == resource.RLIM_INFINITY else min(hard, STACK_BYTES)
    if soft != resource.RLIM_INFINITY and soft < want and os.environ.get("PREFCURATE_ZYGOTE_STACK") != "1":
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
        os.environ["PREFCURATE_ZYGOTE_STACK"] = "1"
        os.execv(sys.executable, [sys.executable, "-s", "-S", "-P", *argv])
    return want if soft == resource.RLIM_INFINITY else max(soft, want)


def _warm() -> None:
    import _strptime  # noqa: F401 - time.strptime / datetime.strptime import it lazily
    import encodings
    import importlib
    import pkgutil

    # Codecs are imported on first use (`.encode('cp1252')`); a child can open no file, so all
    # of them are imported here.
    for info in pkgutil.iter_modules(encodings.__path__):
        try:
            importlib.import_module("encodings." + info.name)
        except Exception:  # a codec of another platform (mbcs, oem)
            pass

    # A child imports only what is already in memory. The pool's own imports (threading, queue,
    # logging, traceback, subprocess, concurrent.futures) came with `import prefcurate.sandbox` until
    # the package init left the pool to first use (so the CLI starts without it): `pool` is imported
    # here, so the modules a program finds stay the same.
    from . import interpreter, isolation, pool, worker  # noqa: F401

    # Warm the interpreter's code paths (and their lazy imports) while files can be opened, so
    # that a child starts from warm caches (what it touches, it copies: fork is copy-on-write).
    for _ in range(2):
        interp = interpreter.Interpreter(max_steps=100_000)
        interp.run(_WARM)
        interp.run(
            "assert f([3, 1, 2]) == [1, 2, 3]\nassert C(2).y == 4\nassert s == {1: 2}", trusted_asserts=True
        )
        interp.close()


def _child(zygote: int, job_fd: int, req: dict[str, Any], stack: int, escaped: bool) -> None:
    from . import isolation, worker
    from .channel import Channel

    code = 3
    try:
        os.setsid()  # its own process group and session, no controlling terminal
        lib = isolation.libc()
        if not isolation.set_parent_death_signal(lib, signal.SIGKILL, zygote):
            os._exit(1)
        if job_fd != _JOB_FD:
            os.dup2(job_fd, _JOB_FD)
        os.closerange(_JOB_FD + 1, 1 << 16)  # the control socket and anything else the zygote holds
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        report = isolation.confine(int(req["memory_mb"]), float(req["timeout"]), stack)
        chan = Channel(_JOB_FD)
        chan.send({"t": "ready", "isolation": report})  # before any program text is read
        job = chan.recv()
        if isinstance(job, dict):
            (worker.run_escaped if escaped else worker.run_job)(chan, job)
            socket.socket(fileno=_JOB_FD).shutdown(socket.SHUT_WR)  # EOF now, not after teardown
        code = 0
    except BaseException:
        code = 2
    os._exit(code)


def serve(ctrl: socket.socket, stack: int, escaped: bool) -> None:
    parent = os.getppid()
    zygote = os.getpid()
    deadlines: dict[int, float] = {}
    dying: set[int] = set()
    try:
        while True:
            for pid in list(dying):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    dying.discard(pid)
                    del deadlines[pid]
            now = time.monotonic()
            for pid, at in list(deadlines.items()):
                if at <= now:  # the parent did not reap it in time: kill it, keep it for `reap`
                    _kill(pid)
                    deadlines[pid] = float("inf")
            wait = min([0.5 if not dying else 0.01, *(at - now for at in deadlines.values())])
            ready, _, _ = select.select([ctrl], [], [], max(wait, 0.0))
            if os.getppid() != parent:
                return
            if not ready:
                continue
            try:
                data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 1)
            except OSError:
                return
            if not data:
                for fd in fds:
                    os.close(fd)
                return
            req = json.loads(data)
            op, pid = req.get("op"), int(req.get("pid", 0))
            known = pid in deadlines and pid not in dying
            if op == "fork" and len(fds) == 1:
                pid = os.fork()
                if pid == 0:
                    _child(zygote, fds[0], req, stack, escaped)
                os.close(fds[0])
                deadlines[pid] = float("inf")  # until the parent hands it a job ("arm")
                ctrl.send(json.dumps({"pid": pid}).encode())
                continue
            for fd in fds:
                os.close(fd)
            if op == "arm" and known:  # no reply
                deadlines[pid] = time.monotonic() + float(req["timeout"]) + GRACE_S
            elif op == "drop" and known:  # no reply: collected above once it is gone
                _kill(pid)
                deadlines[pid] = float("inf")
                dying.add(pid)
            elif op == "reap":  # the parent waits for the wait status
                status, killed = None, False
                if known:
                    status, killed = _collect(pid)
                    del deadlines[pid]
                ctrl.send(json.dumps({"status": status, "killed": killed}).encode())
            elif op == "fork":
                ctrl.send(json.dumps({"error": "fork needs one descriptor"}).encode())
    finally:
        for pid in deadlines:
            _kill(pid)
        for pid in deadlines:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _kill(pid: int) -> None:
    # The child leads its own process group (setsid): anything it might have started goes too.
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _collect(pid: int) -> tuple[int, bool]:
    """(wait status, killed): a child whose channel closed is normally exiting; give it 200 ms."""
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return status, False
        time.sleep(0.002)
    _kill(pid)
    return os.waitpid(pid, 0)[1], True


def _drop(unraisable: Any) -> None:
    """An exception in a finalizer (a program's `__del__`) is not reported anywhere."""


def main() -> None:
    """argv: package root, control fd, "escaped" or "interpreter", layers to leave out or "-"."""
    stack = _with_big_stack(["-c", BOOT, *sys.argv[1:]])
    ctrl = socket.socket(fileno=int(sys.argv[2]))
    escaped = sys.argv[3] == "escaped"
    from . import isolation

    isolation.SKIP.update(x for x in sys.argv[4].split(",") if x in isolation.SKIPPABLE)
    # Stray host prints go nowhere, and never onto the job channel (fd 3 in a child): fds 0-2
    # are /dev/null and sys.* streams write to 1 and 2 only; unraisable reports are dropped.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc]  # the fallbacks too
    sys.unraisablehook = _drop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal: the parent decides
    import warnings

    warnings.simplefilter("ignore")
    sys.setrecursionlimit(HOST_RECURSION)
    _warm()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if "unprivileged" not in isolation.SKIP:
        isolation.drop_root()
    isolation.prepare_zygote()
    isolation.libc().prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: no ptrace or /proc/PID/mem by peers
    if not escaped:
        from . import worker

        worker.prepare()
    # Everything alive now is the zygote's: its children's gc.collect() scans only what a job made.
    gc.collect()
    gc.freeze()
    ctrl.send(b'{"up":true}')
    serve(ctrl, stack, escaped)
    os._exit(0)
