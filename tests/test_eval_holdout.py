"""`eval holdout RUN_DIR`: per-pair held-out accuracy of every stage of real (tiny) train runs, equal
to the run's own reported accuracy, written as folders `eval compare` pairs with exact McNemar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.evaluate.compare import compare
from prefcurate.evaluate.holdout import holdout_results

from .test_eval_trainers import pairs

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trainers  # noqa: E402


def train(run_dir: Path, model: str, schedule: str, holdout: bool = True) -> object:
    return trainers.run(
        [pairs(0, 4), pairs(4, 4)],
        run_dir,
        model=model,
        schedule=schedule,
        holdout=pairs(20, 6) if holdout else None,
        batch_size=2,
        max_length=48,
        learning_rate=5e-3,
        dtype="fp32",
        order="sequential",
        run_name=run_dir.name,
        publish=False,
    )


def test_holdout_accuracy_per_pair_and_compare(tmp_path: Path, make_tiny_model) -> None:
    model = make_tiny_model(seed=31)
    cur = train(tmp_path / "cur", model, "curriculum")
    train(tmp_path / "plain", model, "plain")
    rows = holdout_results(tmp_path / "cur", n_resamples=500)
    reported = {r["stage"]: r for r in cur.summary().to_pylist()}  # type: ignore[attr-defined]
    assert [r["stage"] for r in rows] == ["stage-1", "stage-2"]
    for row in rows:
        assert row["pairs"] == 6
        assert row["holdout_accuracy"] == pytest.approx(reported[int(row["stage"][-1])]["holdout_accuracy"])
        assert row["holdout_accuracy_low"] <= row["holdout_accuracy"] <= row["holdout_accuracy_high"]
        lines = (
            (tmp_path / "cur" / "evals" / "holdout" / row["stage"] / "pairs.jsonl").read_text().splitlines()
        )
        assert {json.loads(x)["correct"] for x in lines} <= {0.0, 1.0} and len(lines) == 6
    res = CliRunner().invoke(app, ["eval", "holdout", str(tmp_path / "plain"), "--format", "json"])
    assert res.exit_code == 0, res.output
    table = compare(
        [tmp_path / "cur" / "evals" / "holdout", tmp_path / "plain" / "evals" / "holdout"],
        control="plain",
        n_resamples=500,
    )
    final = next(r for r in table if r["arm"] == "cur" and r["stage"] == "stage-2")
    # Same total steps (8 pairs, batch 2): the final curriculum stage pairs with plain's one stage.
    assert final["metric"] == "holdout_acc" and final["test"] == "mcnemar" and final["flag"] == ""
    assert final["n"] == 6 and final["diff"] is not None


def test_holdout_needs_held_out_pairs(tmp_path: Path, make_tiny_model) -> None:
    train(tmp_path / "bare", make_tiny_model(seed=31), "plain", holdout=False)
    with pytest.raises(ConfigError, match="without held-out pairs"):
        holdout_results(tmp_path / "bare")
