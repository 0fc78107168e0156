"""The OS layer on its own: programs run with plain `exec`, the real `os`, `socket` and builtins
(the model of an escaped interpreter; a test-only switch), and every attempt to reach outside
must fail. Judged by effects outside the sandbox: marker files, a listening socket that
receives nothing, a signal handler that never runs, a zygote that survives.

Children normally drop root; the attacks below keep the uid of the test (root here) so that
file permissions would allow every attempt, and only the OS layers can stop it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox import pool as pool_module
from prefcurate.sandbox.isolation import LAYERS

ROOT = Path(__file__).resolve().parents[1]


def _pool(skip: frozenset[str], workers: int = 2) -> SandboxPool:
    old = pool_module._ESCAPED_FOR_TESTS, pool_module._SKIP_LAYERS_FOR_TESTS
    pool_module._ESCAPED_FOR_TESTS, pool_module._SKIP_LAYERS_FOR_TESTS = True, skip
    try:
        return SandboxPool(workers=workers, timeout=10.0).start()  # the zygote reads the switches now
    finally:
        pool_module._ESCAPED_FOR_TESTS, pool_module._SKIP_LAYERS_FOR_TESTS = old


def _active(p: SandboxPool) -> dict[str, bool]:
    assert p.isolation is not None
    return p.isolation["layers"]


@pytest.fixture(scope="module")
def escaped() -> Iterator[SandboxPool]:
    p = _pool(frozenset({"unprivileged"}))
    yield p
    p.close()


# Each configuration that must hold alone: everything, Landlock without seccomp, seccomp
# without Landlock. The uid is the test's own in all of them.
CONFIGS = {
    "all_layers": frozenset({"unprivileged"}),
    "landlock_alone": frozenset({"unprivileged", "seccomp"}),
    "seccomp_alone": frozenset({"unprivileged", "landlock"}),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> Iterator[tuple[str, SandboxPool]]:
    p = _pool(CONFIGS[request.param])
    layer = {"landlock_alone": "landlock", "seccomp_alone": "seccomp"}.get(request.param)
    if layer and not _active(p)[layer]:
        p.close()
        pytest.skip(f"{layer} is not available on this kernel: {p.isolation['inactive'][layer]}")
    yield request.param, p
    p.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A directory the child could write to and a secret it could read, but for the OS layers."""
    d = tmp_path / "store"
    d.mkdir()
    (d / "secret.txt").write_text("the store's secret\n")
    return d


def _attempt(p: SandboxPool, body: str) -> tuple[str, str]:
    """Run `body` (which sets `outcome`) in the sandbox; (unit status, message)."""
    program = "import os, socket, signal, sys\n" + textwrap.dedent(body)
    res = p.run(program, ["raise AssertionError(repr(outcome))"])
    assert res.status == "ok", res
    return res.units[0].status, res.units[0].message


def _healthy(p: SandboxPool) -> None:
    res = p.run("def f(x):\n    return x + 1\n", ["assert f(1) == 2", "assert f(1) == 3"])
    assert (res.status, [u.status for u in res.units]) == ("ok", ["passed", "failed"])


def test_escaped_mode_really_is_escaped(escaped: SandboxPool) -> None:
    # The switch works: real builtins and `os` (an interpreted program cannot import os).
    res = escaped.run("import os\npid = os.getpid()\nopen\n", ["assert pid > 0 and os.getppid() > 0"])
    assert (res.status, res.passed) == ("ok", 1)


def test_read_host_files(config: tuple[str, SandboxPool], store: Path) -> None:
    _, p = config
    for path in ("/etc/passwd", str(store / "secret.txt"), "/proc/self/environ", "/proc/1/cmdline"):
        status, message = _attempt(
            p,
            f"""
            try:
                outcome = open({path!r}).read()[:40]
            except OSError as e:
                outcome = 'blocked ' + type(e).__name__
            """,
        )
        assert (status, message) == ("failed", "AssertionError: 'blocked PermissionError'"), path
    _healthy(p)


def test_create_files(config: tuple[str, SandboxPool], store: Path) -> None:
    _, p = config
    store.chmod(0o777)
    targets = [store / "created", store / "made_dir", store / "fifo", store / "link"]
    status, message = _attempt(
        p,
        f"""
        results = []
        for make in (
            lambda: open({str(targets[0])!r}, 'w').write('x'),
            lambda: os.mkdir({str(targets[1])!r}),
            lambda: os.mkfifo({str(targets[2])!r}),
            lambda: os.symlink('/etc/passwd', {str(targets[3])!r}),
            lambda: os.rename({str(store / "secret.txt")!r}, {str(store / "moved")!r}),
            lambda: os.unlink({str(store / "secret.txt")!r}),
        ):
            try:
                make()
                results.append('made')
            except OSError as e:
                results.append(type(e).__name__)
        outcome = results
        """,
    )
    assert status == "failed" and "made" not in message, message
    assert sorted(x.name for x in store.iterdir()) == ["secret.txt"]
    assert (store / "secret.txt").read_text() == "the store's secret\n"


def test_sockets(config: tuple[str, SandboxPool]) -> None:
    _, p = config
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        status, message = _attempt(
            p,
            f"""
            results = []
            for family, address in ((socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_UNIX, '\\0x')):
                try:
                    s = socket.socket(family, socket.SOCK_STREAM)
                    s.settimeout(2)
                    s.connect(address)
                    results.append('connected')
                except OSError as e:
                    results.append(type(e).__name__)
            outcome = results
            """,
        )
        assert status == "failed" and "connected" not in message, message
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing ever reached the host's loopback
            server.accept()


def test_exec_and_fork(config: tuple[str, SandboxPool], store: Path) -> None:
    name, p = config
    store.chmod(0o777)
    marker = store / "marker"
    status, message = _attempt(
        p,
        f"""
        import threading
        results = []
        for start in (
            lambda: os.execv('/bin/sh', ['sh', '-c', 'echo x > {marker}']),
            lambda: os.posix_spawn('/bin/sh', ['sh', '-c', 'echo x > {marker}'], {{}}),
            lambda: os.fork() or os._exit(0),
            lambda: threading.Thread(target=lambda: None).start(),
        ):
            try:
                start()
                results.append('started')
            except (OSError, RuntimeError) as e:
                results.append(type(e).__name__)
        outcome = results
        """,
    )
    assert status == "failed", message
    exec_outcomes, start_outcomes = message.split(", ")[:2], message.split(", ")[2:]
    assert "started" not in exec_outcomes, message
    if name != "landlock_alone":
        # Landlock does not govern fork/threads: seccomp does, and RLIMIT_NPROC=0 for a
        # non-root uid (this configuration keeps root's uid on purpose).
        assert "started" not in start_outcomes, message
    assert not marker.exists()
    _healthy(p)


def test_signals_to_the_host(config: tuple[str, SandboxPool]) -> None:
    _, p = config
    received: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda *a: received.append(1))
    zygote_pid = p._zygote.proc.pid
    try:
        status, message = _attempt(
            p,
            f"""
            results = []
            for pid, sig in (({os.getpid()}, signal.SIGUSR1), (os.getppid(), signal.SIGKILL),
                             ({zygote_pid}, signal.SIGKILL), (-{os.getpgid(0)}, signal.SIGUSR1)):
                try:
                    os.kill(pid, sig)
                    results.append('sent')
                except OSError as e:
                    results.append(type(e).__name__)
            outcome = results
            """,
        )
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert status == "failed" and "sent" not in message, message
    assert received == []
    assert p._zygote.proc.poll() is None and p._zygote.proc.pid == zygote_pid
    _healthy(p)


def test_the_deadline_holds_against_a_program_that_ignores_signals(escaped: SandboxPool) -> None:
    res = escaped.run(
        "import signal, time\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)\n",
        ["assert True"],
        timeout=1.0,
    )
    assert (res.status, res.reason) == ("timeout", "wall-clock deadline of 1s exceeded")
    _healthy(escaped)


def test_each_job_is_a_fresh_process(escaped: SandboxPool) -> None:
    # State left by one program (a patched builtin, a module attribute) is gone for the next.
    first = escaped.run(
        "import builtins, math\nbuiltins.abs = lambda x: 0\nbuiltins.left_over = 1\nmath.pi = 3\n",
        ["assert abs(-1) == 0 and math.pi == 3 and left_over == 1"],
    )
    second = escaped.run(
        "import math\n", ["assert abs(-1) == 1 and math.pi > 3.14 and 'left_over' not in dir(__builtins__)"]
    )
    assert (first.passed, second.passed) == (1, 1)


def test_a_forged_result_stays_in_its_own_job(escaped: SandboxPool) -> None:
    # With the interpreter escaped a program can lie about its own units (the threat model says
    # so), but it cannot answer for another job: it is gone when its job ends.
    forge = (
        "import json, os, struct\n"
        "def frame(o):\n    d = json.dumps(o).encode()\n    return struct.pack('>I', len(d)) + d\n"
        "os.write(3, frame({'t': 'prog', 'status': 'ok', 'reason': '', 'out': ''}))\n"
        "os.write(3, frame({'t': 'unit', 'i': 0, 'status': 'passed', 'asserts': [], 'out': ''}))\n"
        "os.write(3, frame({'t': 'done', 'out': ''}))\n"
        "for _ in range(50):\n"
        "    os.write(3, frame({'t': 'prog', 'status': 'ok', 'reason': '', 'out': ''}))\n"
        "os._exit(0)\n"
    )
    res = escaped.run(forge, ["assert False"])
    assert res.status == "error" and "after the final frame" in res.reason
    later = escaped.run("def f():\n    return 1\n", ["assert f() == 2"])
    assert (later.status, later.units[0].status) == ("ok", "failed")


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("struct.pack('>I', 10) + b'not json!!'", "malformed frame"),
        ("struct.pack('>I', 1 << 30)", "oversized frame"),
        ("frame({'t': 'prog', 'status': 'ok', 'out': ''}) + frame({'t': 'unit', 'i': 5, 'status': 'passed', "
         "'asserts': [], 'out': ''})", "unit 5 out of order"),
        ("frame({'t': 'prog', 'status': 'ok', 'out': ''}) + frame({'t': 'done', 'out': ''})", "done after 0 of 1"),
        ("frame({'t': 'prog', 'status': 'ok', 'out': ''}) + frame({'t': 'unit', 'i': 0, 'status': 'passed', "
         "'asserts': [], 'out': ''}) * 2", "unit 0 out of order"),
        ("frame([1, 2])", "malformed frame"),
        ("frame({'t': 'prog', 'status': 'ok', 'out': ''}) * 2", "unexpected prog frame 'ok'"),
        ("frame({'t': 'prog', 'status': 'ok', 'out': 'x' * (9 << 20)})", "oversized frame"),
    ],
    ids=["not_json", "oversized", "unit_never_sent", "missing_units", "duplicate", "not_an_object", "twice", "huge"],
)  # fmt: skip
def test_malformed_frames_fail_the_run(escaped: SandboxPool, payload: str, why: str) -> None:
    program = (
        "import json, os, struct, time\n"
        "def frame(o):\n    d = json.dumps(o).encode()\n    return struct.pack('>I', len(d)) + d\n"
        f"data = {payload}\n"
        "while data:\n    data = data[os.write(3, data):]\n"
        "time.sleep(30)\n"
    )
    res = escaped.run(program, ["assert True"], timeout=8.0)
    assert res.status == "error" and why in res.reason, res
    assert [u.status for u in res.units] == ["errored"]


def test_the_parent_reads_at_most_8_mib_from_a_job(escaped: SandboxPool) -> None:
    # Every frame is valid and small; together they exceed the job's budget.
    program = (
        "import json, os, struct, time\n"
        "def frame(o):\n    d = json.dumps(o).encode()\n    return struct.pack('>I', len(d)) + d\n"
        "data = frame({'t': 'prog', 'status': 'ok', 'out': ''})\n"
        "for i in range(40):\n"
        "    data += frame({'t': 'unit', 'i': i, 'status': 'passed', 'asserts': [], 'out': 'x' * (1 << 20)})\n"
        "while data:\n    data = data[os.write(3, data):]\n"
        "time.sleep(30)\n"
    )
    res = escaped.run(program, ["assert True"] * 40, timeout=8.0)
    assert res.status == "error" and "more than 8 MiB" in res.reason, res.reason
    assert res.passed == 0 and len(res.stdout) <= 1 << 20


def test_a_child_that_dies_is_a_failure(escaped: SandboxPool) -> None:
    res = escaped.run("import os\nos._exit(0)\n", ["assert True"])
    assert (res.status, res.passed) == ("error", 0)
    res = escaped.run("import os, signal\nos.abort()\n", ["assert True"])
    assert res.passed == 0 and res.status in ("error", "resource_limit")


def test_isolation_report_names_every_layer(escaped: SandboxPool) -> None:
    iso = escaped.isolation
    assert iso is not None and set(iso["layers"]) == set(LAYERS)
    assert iso["layers"]["unprivileged"] is False and iso["inactive"]["unprivileged"] == "left out by a test"


PARENT_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox import pool as pool_module
pool_module._ESCAPED_FOR_TESTS = True
p = SandboxPool(workers=1, timeout=600).start()
print(p._zygote.proc.pid, flush=True)
p.run("import time\\nwhile True:\\n    time.sleep(1)\\n")
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_gone(pids: list[int]) -> list[int]:
    """The pids still alive after up to 60 s (a bounded wait for an event, not a timing check)."""
    import time

    end = time.monotonic() + 60
    while time.monotonic() < end:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_nothing_outlives_a_parent_killed_with_sigkill() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    zygote = int(proc.stdout.readline())
    children: list[int] = []
    while not children and proc.poll() is None:  # the child running the job
        children = _children(zygote)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert children and _wait_gone([zygote, *children]) == []


NOBODY_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from prefcurate.sandbox import SandboxPool
from prefcurate.sandbox import pool as pool_module
pool_module._ESCAPED_FOR_TESTS = True
with SandboxPool(workers=1, timeout=10).start() as p:
    res = p.run(
        "import os, socket\\n"
        "out = []\\n"
        "for f in (lambda: open('/etc/passwd').read(), os.fork, lambda: socket.socket().connect(('127.0.0.1', 1))):\\n"
        "    try:\\n        f()\\n        out.append('done')\\n"
        "    except OSError as e:\\n        out.append(type(e).__name__)\\n",
        ["assert out == ['PermissionError'] * 3, out"],
    )
    print(json.dumps({"uid": os.getuid(), "isolation": p.isolation, "status": res.status, "passed": res.passed,
                      "message": res.units[0].message if res.units else ""}))
"""


def _python_for_nobody() -> str | None:
    """An interpreter user nobody may run: this one, or the system's (a pyenv under /root is not)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        try:
            ok = subprocess.run(
                [exe, "-c", "import sys; assert sys.version_info >= (3, 11)"], user=65534, check=False
            )
        except OSError:
            continue
        if ok.returncode == 0:
            return exe
    return None


@pytest.mark.skipif(os.getuid() != 0, reason="already an ordinary user: every test here runs unprivileged")
def test_the_pool_works_for_an_ordinary_user() -> None:
    exe = _python_for_nobody()
    if exe is None:
        pytest.skip("no Python >= 3.11 that user nobody may execute")
    out = subprocess.run(
        [exe, "-c", NOBODY_SCRIPT, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["uid"] == 65534
    assert (data["status"], data["passed"]) == ("ok", 1), data["message"]
    # Everything holds for an ordinary user (where the kernel offers it, as the root run shows).
    assert data["isolation"]["layers"]["unprivileged"] is True
    assert {k for k, on in data["isolation"]["layers"].items() if not on} <= set(
        data["isolation"]["inactive"]
    )
