"""kill -9 during `build pairs`, `score` and `partition` (while parts are written, and just before
the version is renamed into place): no half-published version, and the rerun publishes files
byte-identical to a run that was never killed. (`export --overwrite`: tests/test_export_safety.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.store import KINDS, Store

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

CHILD = """
import os, re, sys, time
from pathlib import Path
import prefcurate.store.versions as versions

point, marker, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
writes = 0
real_write, real_rename = versions.write_parquet, os.rename

def hang():
    marker.write_text("ready")
    time.sleep(600)  # until SIGKILL

def write(table, path):
    global writes
    writes += 1
    if point == f"write{writes}":
        hang()
    real_write(table, path)

def rename(src, dst):
    if point == "publish" and re.fullmatch(r"v\\d+", Path(dst).name):
        hang()
    real_rename(src, dst)

versions.write_parquet, versions.os.rename = write, rename
from prefcurate.cli import app
sys.argv = ["prefcurate", *args]
app()
"""


def data_file(tmp: Path) -> Path:
    path = tmp / "d.jsonl"
    rows = [
        {
            "prompt": f"Q{i}",
            "chosen": f"good {i}",
            "rejected": f"bad {i}",
            "score_chosen": 2.0 + i % 7,
            "score_rejected": 1.0,
        }
        for i in range(300)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def steps(data: Path) -> list[list[str]]:
    return [
        ["build", "pairs", str(data), "--name", "d"],
        ["score", "d", "--by", "score-gap"],
        ["partition", "d", "--name", "b", "--by", "score_gap_v1__gap", "--buckets", "3"],
    ]


def published(store: Path) -> dict[str, bytes]:
    """Every Parquet file of every published version, by path inside the store."""
    st = Store(store)
    out = {}
    for kind in KINDS:
        for name in st.names(kind):
            for ref in st.versions(kind, name):
                manifest = ref.manifest
                for f in manifest["files"]:  # a version lists only files that exist
                    assert (ref.path / f["path"]).stat().st_size == f["bytes"]
                out.update({str(p.relative_to(store)): p.read_bytes() for p in ref.parquet_files()})
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("reference")
    data = data_file(tmp)
    for args in steps(data):
        assert runner.invoke(app, [*args, "--store", str(tmp / "s")]).exit_code == 0
    return published(tmp / "s")


KILLS = [  # (step, where): before the first part, between bucket parts, before the publish rename
    (0, "write1"),
    (0, "publish"),
    (1, "publish"),
    (2, "write2"),
    (2, "publish"),
]


@pytest.mark.parametrize(
    "step,point", KILLS, ids=[f"{['build', 'score', 'partition'][s]}-{p}" for s, p in KILLS]
)
def test_kill_9_then_rerun(tmp_path: Path, reference: dict[str, bytes], step: int, point: str) -> None:
    data = data_file(tmp_path)
    store = tmp_path / "s"
    plan = steps(data)
    for args in plan[:step]:
        assert runner.invoke(app, [*args, "--store", str(store)]).exit_code == 0
    before = published(store)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, str(script), point, str(marker), *plan[step], "--store", str(store)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not marker.exists() and child.poll() is None:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert published(store) == before  # nothing half-published
    for args in plan[step:]:
        res = runner.invoke(app, [*args, "--store", str(store)])
        assert res.exit_code == 0, res.output
    assert published(store) == reference  # byte-identical to a run never killed
