"""Two writers of one store at once: both succeed (the second reuses the first one's version) or one
fails with a one-line message; nothing is lost and identical work is published once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from prefcurate.store import Store

ROOT = Path(__file__).resolve().parents[1]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "prefcurate", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def both(args: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Start two identical commands together; (exit code, stdout, stderr) of each."""
    procs = [start(*args), start(*args)]
    outs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, *o) for p, o in zip(procs, outs, strict=True)]


def test_two_identical_pair_builds_publish_one_version(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(2000)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "s"
    args = ("build", "pairs", str(data), "--name", "d", "--store", str(store))
    results = both(args)
    for code, _, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    outs = " ".join(" ".join(out.split()) for _, out, _ in results)
    assert outs.count("Wrote pairs/d/v1: 2,000 pairs") == 1 and outs.count("Reused pairs/d/v1") == 1
    st = Store(store)
    assert [r.version for r in st.versions("pairs", "d")] == ["v1"]
    assert st.get("pairs", "d").read().num_rows == 2000


def test_two_code_builds_of_one_name_both_succeed(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    rows = [
        {
            "prompt": f"Write f{i}(a) returning a + 1.",
            "completions": [f"def f{i}(a):\n    return a + 1\n", f"def f{i}(a):\n    return a\n"],
            "tests": [f"assert f{i}(1) == 2", f"assert f{i}(0) == 1"],
            "entry_point": f"f{i}",
        }
        for i in range(6)
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "s"
    args = (
        "build",
        "code",
        str(samples),
        "--input-format",
        "generic",
        "--name",
        "c",
        "--workers",
        "1",
        "--store",
        str(store),
    )
    results = both(args)
    for code, _, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    st = Store(store)
    assert [r.version for r in st.versions("pairs", "c")] == ["v1"]
    table = pq.read_table(st.get("pairs", "c").parquet_files()[0])
    assert table.num_rows == 6
    assert not (store / ".work" / "pairs" / "c").exists() or not any(
        (store / ".work" / "pairs" / "c").iterdir()
    )


def test_a_writer_waiting_for_the_lock_says_so(tmp_path: Path) -> None:
    st = Store(tmp_path / "s")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}) + "\n")
    with st.lock("pairs", "d"):
        proc = start("build", "pairs", str(data), "--name", "d", "--store", str(st.root))
        # the child blocks on the lock we hold: it prints that it waits, and publishes nothing yet
        line = proc.stderr.readline()
        assert line == "waiting for another writer of pairs/d ...\n"
        assert st.versions("pairs", "d") == []
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert [r.version for r in st.versions("pairs", "d")] == ["v1"]


def test_a_writer_killed_with_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    import fcntl
    import signal

    st = Store(tmp_path / "s")
    code = (
        "import sys, time; from prefcurate.store import Store\n"
        f"with Store({str(st.root)!r}).lock('pairs', 'd'):\n"
        "    print('locked', flush=True); time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "locked\n"
    lock_file = st.root / ".locks" / "pairs" / "d.lock"
    with open(lock_file) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the lock was free while its holder ran")
        except BlockingIOError:
            pass
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    with open(lock_file) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again: no stale lock to clear by hand
