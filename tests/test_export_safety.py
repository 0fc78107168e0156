"""`export --overwrite` deletes only an earlier export: never the store, a folder holding it, or
the user's files; and a kill -9 at any point of an overwrite leaves a complete export."""

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

from prefcurate.bucket.export import export, is_export
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.store import Store

from .helpers import rich_store

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return rich_store(tmp_path / "proj" / "store")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def complete(out: Path) -> bool:
    """An export whose order.json lists only files that exist."""
    if not is_export(out):
        return False
    order = json.loads((out / "order.json").read_text())
    return all((out / e.get("path", ".") / f).exists() for e in order["buckets"] for f in e["files"])


@pytest.mark.parametrize("where", ["store", "inside", "contains", "project"])
def test_out_that_is_contains_or_lies_inside_the_store_is_refused(store: Store, where: str) -> None:
    out = {
        "store": store.root,
        "inside": store.root / "pairs",
        "contains": store.root.parent,
        "project": store.root.parent.parent,
    }[where]
    (store.root.parent / "notes.txt").write_text("mine")
    before = snapshot(store.root.parent)
    result = runner.invoke(
        app, ["export", "uf-cur", "--out", str(out), "--overwrite", "--store", str(store.root)]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: --out {out} is, contains or lies inside the store")
    assert snapshot(store.root.parent) == before  # nothing deleted or added


def test_overwrite_refuses_a_folder_that_is_not_an_export(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="holds files that are not a prefcurate export"):
        export(store, "uf-cur", out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"
    # an earlier export with a stray file of the user's is refused too
    exp = tmp_path / "exp"
    export(store, "uf-cur", exp, fmt="parquet")
    (exp / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match="not a prefcurate export"):
        export(store, "uf-cur", exp, overwrite=True)
    assert (exp / "notes.md").exists()


def test_overwrite_replaces_an_earlier_export(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    export(store, "uf-cur", out, fmt="jsonl")
    export(store, "uf-cur", out, fmt="parquet", overwrite=True)
    assert json.loads((out / "order.json").read_text())["format"] == "parquet"
    assert not list(out.rglob("*.jsonl"))
    assert complete(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside


CHILD = """
import os, shutil, sys, time
from pathlib import Path
import prefcurate.bucket.export as ex
from prefcurate.store import Store

point, marker = sys.argv[1], Path(sys.argv[2])
calls = {"rename": 0, "write": 0}

def hang():
    marker.write_text("ready")
    time.sleep(600)  # until SIGKILL

real_rename, real_rmtree, real_write = os.rename, shutil.rmtree, ex.write_parquet

def rename(a, b):
    calls["rename"] += 1
    if point == f"rename{calls['rename']}":
        hang()
    real_rename(a, b)

def rmtree(p, **kw):
    if point == "rmtree-old" and ".old-" in str(p):
        hang()
    real_rmtree(p, **kw)

def write(table, path):
    calls["write"] += 1
    real_write(table, path)
    if point == "mid-write" and calls["write"] == 2:
        hang()

ex.os.rename, ex.shutil.rmtree, ex.write_parquet = rename, rmtree, write
ex.export(Store(sys.argv[3]), "uf-cur", sys.argv[4], fmt="parquet", overwrite=True)
marker.write_text("finished")
"""


@pytest.mark.parametrize("point", ["mid-write", "rename1", "rename2", "rmtree-old"])
def test_kill_9_during_overwrite_leaves_a_complete_export(store: Store, tmp_path: Path, point: str) -> None:
    out = tmp_path / "exp"
    export(store, "uf-cur", out, fmt="jsonl")  # the earlier export being overwritten
    old = snapshot(out)
    reference = tmp_path / "reference"
    export(store, "uf-cur", reference, fmt="parquet")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), point, str(marker), str(store.root), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not marker.exists() and child.poll() is None:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert marker.read_text() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    # Killed: `out` holds the old export or the new one, complete; only between the two renames is
    # it absent, with the old export intact beside it.
    if point == "rename2":
        assert not out.exists()
        aside = [p for p in tmp_path.iterdir() if p.name.startswith(".exp.old-")]
        assert len(aside) == 1 and snapshot(aside[0]) == old
    else:
        assert complete(out)
        assert snapshot(out) in (old, snapshot(reference))
    # The rerun completes, gives the same bytes as an export that was never killed, and clears leftovers.
    export(store, "uf-cur", out, fmt="parquet", overwrite=True)
    assert snapshot(out) == snapshot(reference)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exp.")]


def test_ref_logps_missing_because_the_prompt_fills_max_length_says_so(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from prefcurate.bucket.partition import PartitionSpec, partition
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap

    from .helpers import GAP, fake_logprob, make_pairs, publish_dataset, publish_signal

    st = Store(tmp_path / "s")
    pairs = make_pairs()
    publish_dataset(st, pairs)
    run_signal(st, "uf", ScoreGap())
    partition(st, PartitionSpec("uf", "cur", by=GAP, buckets=2))
    values = fake_logprob(pairs, missing=3)
    # as the real signal writes them: no value where no completion token is left
    no_value = pc.is_null(values.column("logprob_margin_v1__chosen_logp"))
    tokens = pc.if_else(no_value, 0, values.column("logprob_margin_v1__chosen_tokens"))
    idx = values.column_names.index("logprob_margin_v1__chosen_tokens")
    values = values.set_column(idx, "logprob_margin_v1__chosen_tokens", tokens.cast(pa.int64()))
    publish_signal(st, "uf", "logprob_margin_v1", values, extra={"spec": {"max_length": 64}})
    with pytest.raises(ConfigError) as exc:
        export(st, "cur", tmp_path / "out", with_ref_logps="logprob_margin_v1")
    msg = str(exc.value)
    assert "they were scored, but the prompt fills --max-length 64 so no completion token is left" in msg
    assert (
        '--where "logprob_margin_v1__chosen_logp IS NOT NULL AND logprob_margin_v1__rejected_logp IS NOT NULL"'
        in msg
    )
    assert "score them first" not in msg
