"""`prefcurate demo` without its model stages: build, SQL, model-free signals, buckets, export, report."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from prefcurate.demo.run import run_demo
from prefcurate.demo.stages import STAGES, buckets_stage, build_stage, model_free_signals_stage, sql_stage
from prefcurate.store import Store


def test_stage_order_covers_the_pipeline():
    assert [fn.__name__ for _, fn in STAGES] == [
        "build_stage",
        "sql_stage",
        "model_free_signals_stage",
        "logprob_stage",
        "accuracy_stage",
        "buckets_stage",
        "train_stage",
    ]


def test_model_free_demo_builds_buckets_export_and_report(tmp_path):
    buf = io.StringIO()
    store = Store(tmp_path / "store")
    stages = [
        ("build", build_stage),
        ("sql", sql_stage),
        ("signals", model_free_signals_stage),
        ("buckets", buckets_stage),
    ]
    ctx = run_demo(store, tmp_path / "out", console=Console(file=buf, width=200), stages=stages)
    text = buf.getvalue()
    assert ctx.notes == []
    assert "built pairs/ultrafeedback/v1: 180 pairs (dropped: tie=20)" in text
    assert "built pairs/humaneval-codet/v1: 19 pairs" in text
    # without the model stages the curriculum is cut from the full UltraFeedback sample by score gap
    ref = store.get("buckets", "uf-curriculum")
    assert [b["rows"] for b in ref.manifest["buckets"]] == [54, 54, 54]  # 180 pairs less 18 held out
    order = json.loads((tmp_path / "out" / "export-uf-curriculum" / "order.json").read_text())
    assert [b["bucket"] for b in order["buckets"]] == [0, 1, 2] and order["ref_logps"] is None
    assert (tmp_path / "out" / "report-uf-curriculum.html").stat().st_size > 10_000
    # a rerun reuses every version instead of publishing new ones
    run_demo(store, tmp_path / "out", console=Console(file=io.StringIO()), stages=stages)
    assert [v.version for v in store.versions("buckets", "uf-curriculum")] == ["v1"]
    assert [v.version for v in store.versions("pairs", "ultrafeedback")] == ["v1"]


@pytest.mark.slow
def test_whole_demo_quick_with_the_bundled_model(tmp_path):
    """`prefcurate demo --quick`: every stage, the real bundled model, a short stepwise run."""
    pytest.importorskip("trl")
    from typer.testing import CliRunner

    from prefcurate.cli import app

    res = CliRunner().invoke(
        app, ["demo", "--quick", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    assert "note:" not in res.output  # no stage was skipped for a missing extra
    assert "sDPO order (easiest source first):" in res.output
    assert "reference log-probs injected from the export" in res.output
    run = json.loads((tmp_path / "out" / "run-stepwise" / "run.json").read_text())
    assert run["config"]["schedule"] == "stepwise"
    assert Store(tmp_path / "store").versions("runs", "run-stepwise")
