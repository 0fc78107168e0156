"""`eval winrate RUN_DIR --judge RM --prompts holdout:<dataset>`: every stage of a real (tiny) train
run generates on the held-out prompts and is judged against the start model by a tiny random reward
model; per-stage wins equal the file form on the same files; results are published and readable by
`eval compare`; a circular judge is refused before anything is generated."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.evaluate.compare import compare
from prefcurate.evaluate.winrate import judge
from prefcurate.store import Store
from prefcurate.store.views import run_sql

from .helpers import rich_store
from .test_eval_trainers import pairs
from .test_eval_winrate import tiny_rm  # noqa: F401  (the module-scoped fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trainers  # noqa: E402


@pytest.fixture
def tiny_run(tmp_path: Path, make_tiny_model) -> Path:
    run_dir = tmp_path / "run"
    trainers.run(
        [pairs(0, 4), pairs(4, 4)],
        run_dir,
        model=make_tiny_model(seed=21),
        schedule="curriculum",
        batch_size=2,
        max_length=48,
        learning_rate=5e-2,  # large: the stages' responses must differ from the start model's
        dtype="fp32",
        order="sequential",
        run_name="cur",
        publish=False,
    )
    return run_dir


def winrate_args(run_dir: Path, judge_dir: str, store: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "winrate",
        str(run_dir),
        "--judge",
        judge_dir,
        "--prompts",
        "holdout:uf",
        "--store",
        str(store),
        "--max-new-tokens",
        "6",
        "--dtype",
        "fp32",
        *extra,
    ]


def test_winrate_run_judges_every_stage_against_start(tmp_path: Path, tiny_run: Path, tiny_rm: str) -> None:  # noqa: F811
    store_dir = tmp_path / "store"
    rich_store(store_dir)
    res = CliRunner().invoke(app, winrate_args(tiny_run, tiny_rm, store_dir, "--format", "json"))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["baseline"] == "start" and [s["stage"] for s in out["stages"]] == ["stage-1", "stage-2"]
    root = tiny_run / "evals" / "winrate-uf"
    base_file = root / "start" / "generations.jsonl"
    prompts = len(base_file.read_text().splitlines())
    assert prompts > 0
    for row in out["stages"]:
        assert row["prompts"] == prompts
        assert row["win_rate_low"] <= row["win_rate"] <= row["win_rate_high"]
        assert row["soft_win_rate_low"] <= row["soft_win_rate"] <= row["soft_win_rate_high"]
        assert 0.0 <= row["win_rate_p"] <= 1.0 and 0.0 <= row["lc_win_rate"] <= 1.0
        folder = root / row["stage"]
        # The run form's per-prompt wins are the file form's on the same two files.
        direct = judge(folder / "generations.jsonl", base_file, tiny_rm, dtype="fp32")
        assert direct.metrics["win_rate"] == pytest.approx(row["win_rate"])
        assert direct.metrics["soft_win_rate"] == pytest.approx(row["soft_win_rate"], abs=1e-6)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["tags"]["stage"] == row["stage"] and summary["tags"]["baseline"] == "start"
    # Same prompts, same seed per prompt: the baseline and stages answered the same prompt ids.
    ids = {json.loads(x)["task_id"] for x in base_file.read_text().splitlines()}
    stage_file = root / "stage-2" / "generations.jsonl"
    assert {json.loads(x)["task_id"] for x in stage_file.read_text().splitlines()} == ids

    store = Store(store_dir)
    ref = store.get("evals", "cur")
    assert ref.manifest["suite"] == "winrate:uf" and ref.manifest["judge"]["spec"] == tiny_rm
    assert set(ref.manifest["model_fingerprints"]) == {"start", "stage-1", "stage-2"}
    view = run_sql(store, "select stage, count(*) n, avg(win) w from evals group by stage order by stage")
    got = {r["stage"]: (r["n"], r["w"]) for r in view.to_pylist()}
    assert set(got) == {"stage-1", "stage-2"} and all(n == prompts for n, _ in got.values())
    assert got["stage-2"][1] == pytest.approx(out["stages"][1]["win_rate"])
    rows = compare([root], n_resamples=200)
    assert {(r["stage"], r["metric"]) for r in rows} >= {("stage-1", "win"), ("stage-2", "soft_win")}

    table = CliRunner().invoke(
        app, winrate_args(tiny_run, tiny_rm, store_dir)
    )  # rerun resumes: no new tokens
    assert table.exit_code == 0, table.output
    assert "evals/cur/v2: win rate vs start" in table.stdout
    assert len(base_file.read_text().splitlines()) == prompts


def test_winrate_run_refuses_a_circular_judge_before_generating(
    tmp_path: Path,
    tiny_run: Path,
    tiny_rm: str,  # noqa: F811
) -> None:
    from prefcurate.models import model_fingerprint

    store_dir = tmp_path / "store"
    store = rich_store(store_dir)
    with store.publish(
        "scores", "uf/reward_margin_v1", {"model": {"fingerprint": model_fingerprint(tiny_rm)}}
    ) as pub:
        pub.write_table(pa.table({"pair_id": ["x"]}))
    res = CliRunner().invoke(app, winrate_args(tiny_run, tiny_rm, store_dir))
    assert res.exit_code == 1 and "--allow-circular" in res.stderr
    assert not (tiny_run / "evals").exists()
    res = CliRunner().invoke(app, winrate_args(tiny_run, tiny_rm, store_dir, "--baseline", "nope"))
    assert res.exit_code == 1 and "start, stage-1, stage-2" in res.stderr


def test_winrate_forms_are_told_apart(tmp_path: Path, tiny_run: Path, tiny_rm: str) -> None:  # noqa: F811
    cand = tmp_path / "c.jsonl"
    cand.write_text(json.dumps({"prompt_id": "a", "prompt": "Q?", "completion": "A."}) + "\n")
    res = CliRunner().invoke(app, ["eval", "winrate", str(cand), "--judge", tiny_rm])
    assert res.exit_code == 1 and "--baseline BASELINE.jsonl" in res.stderr
    res = CliRunner().invoke(app, ["eval", "winrate", str(tiny_run), "--judge", tiny_rm])
    assert res.exit_code == 1 and "--prompts holdout:<dataset>" in res.stderr
    res = CliRunner().invoke(
        app,
        ["eval", "winrate", str(tiny_run), "--judge", tiny_rm, "--prompts", "uf", "--store", str(tmp_path)],
    )
    assert res.exit_code == 1 and "holdout:<dataset>" in res.stderr
