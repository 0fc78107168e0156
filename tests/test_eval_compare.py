"""`eval compare`: rows per arm and stage, differences to the control at the same step, the right test,
Holm across rows, and flags when steps or epochs differ."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.evaluate.compare import compare
from prefcurate.evaluate.paired import binom_two_sided, holm, sign_flip_test


def write_result(folder: Path, tags: dict, counts: list[tuple[int, int]], suite: str = "humaneval") -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"suite": suite, "tags": tags}))
    (folder / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_id": f"T/{i}", "n": n, "c": c}) + "\n" for i, (n, c) in enumerate(counts))
    )
    return folder


def test_greedy_pass_at_1_uses_exact_mcnemar(tmp_path: Path) -> None:
    # 40 tasks: the curriculum solves 9 the control misses, the control 2 the curriculum misses.
    ctrl = [(1, 1)] * 15 + [(1, 0)] * 9 + [(1, 1)] * 2 + [(1, 0)] * 14
    curr = [(1, 1)] * 15 + [(1, 1)] * 9 + [(1, 0)] * 2 + [(1, 0)] * 14
    write_result(tmp_path / "shuffled" / "stage1", {"arm": "shuffled", "stage": "1", "step": 50}, ctrl)
    write_result(tmp_path / "curriculum" / "stage1", {"arm": "curriculum", "stage": "1", "step": 50}, curr)
    rows = compare([tmp_path / "curriculum", tmp_path / "shuffled"], control="shuffled", n_resamples=2000)
    by_arm = {r["arm"]: r for r in rows}
    row = by_arm["curriculum"]
    assert row["test"] == "mcnemar" and row["n"] == 40 and row["flag"] == ""
    assert row["value"] == pytest.approx(24 / 40) and row["control_value"] == pytest.approx(17 / 40)
    assert row["diff"] == pytest.approx(7 / 40)
    assert row["p"] == pytest.approx(binom_two_sided(9, 11))
    assert row["diff_low"] < row["diff"] < row["diff_high"]
    assert by_arm["shuffled"]["diff"] is None and math.isnan(by_arm["shuffled"]["p"])
    # Not significant at 40 problems: the verdict says so, with the interval's half-width.
    assert row["verdict"].startswith("cannot tell: 95% CI ±")


def test_samples_per_task_use_sign_flip_and_holm_across_rows(tmp_path: Path) -> None:
    base = [(10, c) for c in (0, 3, 5, 10, 2, 7, 1, 4)]
    write_result(tmp_path / "plain" / "s1", {"arm": "plain", "stage": "s1", "step": 10}, base)
    write_result(tmp_path / "plain" / "s2", {"arm": "plain", "stage": "s2", "step": 20}, base)
    better = [(10, min(10, c + 3)) for _, c in base]
    write_result(tmp_path / "curr" / "s1", {"arm": "curr", "stage": "s1", "step": 10}, better)
    write_result(tmp_path / "curr" / "s2", {"arm": "curr", "stage": "s2", "step": 20, "epochs": 2}, base)
    rows = compare([tmp_path / "plain", tmp_path / "curr"], control="plain", n_resamples=2000)
    compared = [r for r in rows if r["diff"] is not None]
    assert [r["stage"] for r in compared] == ["s1", "s2"] and all(r["test"] == "sign-flip" for r in compared)
    diffs = [min(10, c + 3) / 10 - c / 10 for _, c in base]
    assert compared[0]["p"] == pytest.approx(sign_flip_test(diffs))
    assert compared[1]["p"] == 1.0 and compared[1]["diff"] == 0.0
    assert [r["p_holm"] for r in compared] == pytest.approx(holm([r["p"] for r in compared]))
    assert compared[0]["verdict"] == "better"  # every problem improved (exact p = 2/256)


def test_rows_at_different_steps_or_epochs_are_flagged(tmp_path: Path) -> None:
    counts = [(1, 1), (1, 0)] * 5
    write_result(
        tmp_path / "plain" / "final", {"arm": "plain", "stage": "final", "step": 30, "epochs": 1}, counts
    )
    write_result(
        tmp_path / "curr" / "final", {"arm": "curr", "stage": "final", "step": 36, "epochs": 2}, counts
    )
    rows = compare([tmp_path / "plain", tmp_path / "curr"], control="plain", n_resamples=500)
    flag = next(r for r in rows if r["arm"] == "curr")["flag"]
    assert "steps differ (36 vs control 30)" in flag and "epochs differ (2 vs 1)" in flag


def test_cli_table_and_json(tmp_path: Path) -> None:
    write_result(tmp_path / "a", {"arm": "a", "step": 5}, [(1, 1), (1, 0), (1, 1)])
    write_result(tmp_path / "b", {"arm": "b", "step": 5}, [(1, 0), (1, 0), (1, 1)])
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--control", "a"],
        env={"COLUMNS": "300"},
    )
    assert res.exit_code == 0, res.output
    assert "mcnemar" in res.stdout and "cannot tell" in res.stdout
    res = runner.invoke(
        app,
        ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--control", "a", "--format", "json"],
    )
    rows = json.loads(res.stdout)
    assert {r["arm"] for r in rows} == {"a", "b"} and rows[1]["diff"] == pytest.approx(-1 / 3)
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), "--control", "zzz"])
    assert res.exit_code == 1 and "--control 'zzz'" in res.stderr
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "no eval results" in res.stderr


def test_win_rates_compare_per_prompt_with_sign_flip(tmp_path: Path) -> None:
    def write(folder: Path, arm: str, wins: list[float]) -> None:
        folder.mkdir()
        (folder / "summary.json").write_text(
            json.dumps({"suite": "winrate", "tags": {"arm": arm, "step": 4}})
        )
        (folder / "prompts.jsonl").write_text(
            "".join(
                json.dumps({"prompt_id": f"p{i}", "win": w, "soft_win": 0.5 + (w - 0.5) / 2}) + "\n"
                for i, w in enumerate(wins)
            )
        )

    write(tmp_path / "a", "a", [1, 0.5, 0, 1, 1, 0])
    write(tmp_path / "b", "b", [0, 0.5, 0, 1, 0, 0])
    rows = compare([tmp_path / "a", tmp_path / "b"], control="b", n_resamples=500)
    win = next(r for r in rows if r["arm"] == "a" and r["metric"] == "win")
    assert win["test"] == "sign-flip" and win["diff"] == pytest.approx(2 / 6)
    assert win["p"] == pytest.approx(sign_flip_test([1, 0, 0, 0, 1, 0]))
    assert {r["metric"] for r in rows} == {"win", "soft_win"}
