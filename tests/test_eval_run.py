"""`eval run RUN_DIR`: every finished checkpoint of a train run generated and scored, published as
evals/<run>/<version> with a manifest, the DuckDB view `evals`, the canned query, and result folders
`eval compare` reads as they are."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.evaluate.compare import compare
from prefcurate.evaluate.run import checkpoints
from prefcurate.store import Store
from prefcurate.store.views import canned_queries, resolve_params, run_sql

PROBLEMS = [
    {
        "task_id": f"HumanEval/{i}",
        "prompt": f"def f{i}():\n",
        "canonical_solution": f"    return {i}\n",
        "test": f"def check(candidate):\n    assert candidate() == {i}\n",
        "entry_point": f"f{i}",
    }
    for i in range(2)
]


def fake_run(root: Path, start_model: str, stage_model: str) -> Path:
    run_dir = root / "run"
    (run_dir / "stage-1").mkdir(parents=True)
    (run_dir / "stage-2").mkdir()
    plan = [{"stage": 1, "epochs": 1}, {"stage": 2, "epochs": 1}]
    (run_dir / "run.json").write_text(
        json.dumps({"name": "cur", "config": {"model": start_model}, "plan": plan})
    )
    shutil.copytree(stage_model, run_dir / "stage-1" / "model")
    (run_dir / "stage-1" / "DONE").write_text(json.dumps({"stage": 1, "steps": 3, "pairs": 6, "epochs": 1}))
    return run_dir  # stage 2 has no DONE: not trained yet, not evaluated


def test_eval_run_publishes_and_compares(tmp_path: Path, make_tiny_model) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "HumanEval.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in PROBLEMS)
    run_dir = fake_run(tmp_path, make_tiny_model(seed=7), make_tiny_model(seed=8))
    name, models = checkpoints(run_dir)
    assert name == "cur" and [(m.stage, m.step, m.pairs_seen) for m in models] == [
        ("start", 0, 0),
        ("stage-1", 3, 6),
    ]

    store_dir = tmp_path / "store"
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "run",
            str(run_dir),
            "--suite",
            "humaneval",
            "--data",
            str(data),
            "--store",
            str(store_dir),
            "--max-new-tokens",
            "4",
            "--workers",
            "1",
            "--timeout",
            "60",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert [r["stage"] for r in json.loads(res.stdout)] == ["start", "stage-1"]
    store = Store(store_dir)
    ref = store.get("evals", "cur")
    m = ref.manifest
    assert (
        m["suite"] == "humaneval" and m["sampling"]["temperature"] == 0.0 and m["backend"] == "transformers"
    )
    assert (
        set(m["stages"]) == {"start", "stage-1"}
        and "model_sha256" in m["stages"]["stage-1"]["model_fingerprint"]
    )
    assert "sandbox_isolation" in m and m["sandbox"]["kind"] == "prefcurate.sandbox"
    rows = run_sql(store, "select stage, step, task_id, n from evals order by step, task_id").to_pylist()
    assert [(r["stage"], r["step"], r["n"]) for r in rows] == [("start", 0, 1)] * 2 + [("stage-1", 3, 1)] * 2
    q = canned_queries()["evals"]
    table = run_sql(store, q.sql, resolve_params(q, {"run": "cur"}))
    assert table.column("stage").to_pylist() == ["start", "stage-1"] and table.column(
        "tasks"
    ).to_pylist() == [2, 2]
    # The result folders are `eval compare` input: start vs stage-1 of the same arm.
    cmp = compare([run_dir / "evals" / "humaneval"], n_resamples=200)
    assert {(r["arm"], r["stage"], r["step"]) for r in cmp} == {("cur", "start", 0), ("cur", "stage-1", 3)}
    # The run report's section: the table and one plot per suite and metric.
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prefcurate.evaluate.report import eval_section
    from trainers.report import _png

    section = eval_section(run_dir, plt, _png)
    assert "Outcome evaluation" in section and "<td>stage-1</td><td>3</td>" in section
    assert section.count("data:image/png;base64,") == 1


def test_eval_run_rejects_a_folder_without_run_json(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["eval", "run", str(tmp_path), "--suite", "humaneval", "--store", str(tmp_path / "s")]
    )
    assert res.exit_code == 1 and "not a prefcurate train run" in res.stderr


@pytest.mark.parametrize("kind", ["evals"])
def test_store_kind_exists(tmp_path: Path, kind: str) -> None:
    with pytest.raises(Exception, match="no eval 'x'"):
        Store(tmp_path).get(kind, "x")
