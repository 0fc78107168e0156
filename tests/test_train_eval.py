"""`train --eval`: each checkpoint is evaluated as its stage finishes (before the next stage starts),
a resumed run does not evaluate a stage twice, one store entry per suite is published at the end;
`--save-at-steps` checkpoints get held-out log-probs during training and are paired by global step
in `eval compare`. Tiny random-weight models, two HumanEval-shaped problems, a few tokens each."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.evaluate.compare import compare
from prefcurate.evaluate.holdout import holdout_results
from prefcurate.evaluate.run import RunEvalOptions
from prefcurate.store import Store
from prefcurate.store.views import run_sql

from .test_eval_trainers import pairs

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trainers  # noqa: E402

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
BUCKETS = [pairs(0, 4), pairs(4, 4)]  # batch 2: 2 optimizer steps per bucket


def suite_data(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    with gzip.open(data / "HumanEval.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in PROBLEMS)
    return data


def options(data: Path) -> RunEvalOptions:
    return RunEvalOptions(max_new_tokens=4, workers=1, timeout=60.0, data_dir=str(data))


def run_args(model: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        model=model,
        batch_size=2,
        max_length=48,
        learning_rate=5e-3,
        dtype="fp32",
        order="sequential",
        publish=False,
    )
    base.update(kw)
    return base


class _Interrupt(Exception):
    pass


def _stop_in_stage_2() -> object:
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if "stage-2" in args.output_dir:
                raise _Interrupt()

    return Stop()


def _events() -> tuple[list[str], object]:
    """A list of what happened, in order: the run log's lines and each stage's training start."""
    from transformers import TrainerCallback

    events: list[str] = []

    class Starts(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            events.append("train " + Path(args.output_dir).parent.name)

    return events, Starts()


def test_each_stage_is_evaluated_before_the_next_starts_and_resume_skips_it(
    tmp_path: Path, make_tiny_model
) -> None:
    data = suite_data(tmp_path)
    model = make_tiny_model(seed=41)
    run_dir = tmp_path / "cur"
    store = Store(tmp_path / "store")

    events, starts = _events()
    with pytest.raises(_Interrupt):
        trainers.run(
            BUCKETS,
            run_dir,
            schedule="curriculum",
            callbacks=[starts, _stop_in_stage_2()],
            echo=events.append,
            eval_suites="humaneval",
            eval_options=options(data),
            store=store,
            **{**run_args(model), "publish": True},
        )
    evaluated = [e.split()[2] for e in events if e.startswith("humaneval: evaluating")]
    assert evaluated == ["start", "stage-1"]  # stage 2 was cut short: nothing of it evaluated
    # Stage 1 was evaluated after its training and before stage 2's began.
    assert events.index("train stage-1") < events.index(
        next(e for e in events if e.startswith("humaneval: evaluating stage-1"))
    )
    assert events.index(next(e for e in events if e.startswith("humaneval: stage-1 pass@1"))) < events.index(
        "train stage-2"
    )
    folder = run_dir / "evals" / "humaneval" / "stage-1"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["tags"] == {"arm": "cur", "stage": "stage-1", "step": 2, "epochs": 0.5, "pairs_seen": 4}
    assert store.versions("evals", "cur") == []  # published once, at the end of the run
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    stamp = (folder / "generations.jsonl").stat().st_mtime_ns

    events2, starts2 = _events()
    result = trainers.run(
        BUCKETS,
        run_dir,
        schedule="curriculum",
        callbacks=[starts2],
        echo=events2.append,
        eval_suites="humaneval",
        eval_options=options(data),
        store=store,
        **{**run_args(model), "publish": True},
    )
    assert result.resumed_stages == [1]
    assert [e.split()[2] for e in events2 if e.startswith("humaneval: evaluating")] == ["stage-2"]
    assert "humaneval: stage-1 (global step 2) evaluated earlier, reused" in events2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == kept
    assert (folder / "generations.jsonl").stat().st_mtime_ns == stamp
    assert events2.index("train stage-2") < events2.index(
        next(e for e in events2 if e.startswith("humaneval: evaluating stage-2"))
    )

    # One entry, from the per-stage results kept in the run folder.
    assert result.eval_labels == ["evals/cur/v1"]
    ref = store.get("evals", "cur")
    assert set(ref.manifest["stages"]) == {"start", "stage-1", "stage-2"}
    rows = run_sql(store, "select stage, step, count(*) n from evals group by 1, 2 order by 2").to_pylist()
    assert [(r["stage"], r["step"], r["n"]) for r in rows] == [
        ("start", 0, 2),
        ("stage-1", 2, 2),
        ("stage-2", 4, 2),
    ]
    # `eval run` afterwards reuses every evaluation and the version that holds them.
    res = CliRunner().invoke(
        app,
        ["eval", "run", str(run_dir), "--suite", "humaneval", "--data", str(data), "--store", str(store.root)]
        + ["--max-new-tokens", "4", "--workers", "1", "--timeout", "60"],
    )
    assert res.exit_code == 0, res.output
    assert "evaluating" not in res.stderr and res.stderr.count("evaluated earlier, reused") == 3
    assert [r.version for r in store.versions("evals", "cur")] == ["v1"]


def test_step_checkpoints_get_held_out_rows_and_pair_by_global_step(tmp_path: Path, make_tiny_model) -> None:
    data = suite_data(tmp_path)
    model = make_tiny_model(seed=43)
    held = pairs(20, 6)
    cur = trainers.run(BUCKETS, tmp_path / "cur", schedule="curriculum", holdout=held, **run_args(model))
    # The plain arm (one stage of 4 steps) checkpointed where the curriculum's stage 1 ends.
    plain = trainers.run(
        BUCKETS,
        tmp_path / "plain",
        schedule="plain",
        holdout=held,
        save_at_steps=(2,),
        eval_suites=["humaneval"],
        eval_options=options(data),
        **run_args(model),
    )
    assert [s.steps for s in cur.stages] == [2, 2] and plain.stages[0].steps == 4
    logps = pq.read_table(tmp_path / "plain" / "eval" / "step-2.parquet")
    assert logps.column("pair_id").to_pylist() == held.column("pair_id").to_pylist()
    m = plain.metrics.filter(pa.compute.equal(plain.metrics.column("kind"), "eval_step")).to_pylist()
    assert [(r["stage"], r["step"], r["global_step"], r["holdout_pairs"]) for r in m] == [(1, 2, 2, 6)]

    rows = {r["stage"]: r for r in holdout_results(tmp_path / "plain", n_resamples=500)}
    assert [(k, r["step"]) for k, r in rows.items()] == [("step-2", 2), ("stage-1", 4)]
    assert rows["step-2"]["holdout_accuracy"] == pytest.approx(m[0]["holdout_accuracy"])
    assert rows["stage-1"]["holdout_accuracy"] == pytest.approx(plain.stages[0].holdout_accuracy)
    # Suites evaluate the step checkpoint too, tagged with its global step.
    tags = json.loads((tmp_path / "plain" / "evals" / "humaneval" / "step-2" / "summary.json").read_text())[
        "tags"
    ]
    assert tags["stage"] == "step-2" and tags["step"] == 2 and tags["epochs"] == 0.5

    holdout_results(tmp_path / "cur", n_resamples=500)
    table = compare(
        [tmp_path / "cur" / "evals" / "holdout", tmp_path / "plain" / "evals" / "holdout"],
        control="plain",
        n_resamples=500,
    )
    by_stage = {r["stage"]: r for r in table if r["arm"] == "cur"}
    # Curriculum stage 1 (step 2) against plain's step-2; stage 2 (step 4) against plain's end.
    assert by_stage["stage-1"]["step"] == 2 and by_stage["stage-1"]["flag"] == ""
    assert by_stage["stage-1"]["control_value"] == pytest.approx(rows["step-2"]["holdout_accuracy"])
    assert by_stage["stage-2"]["step"] == 4 and by_stage["stage-2"]["flag"] == ""
    assert by_stage["stage-2"]["control_value"] == pytest.approx(rows["stage-1"]["holdout_accuracy"])
    assert by_stage["stage-1"]["test"] == "mcnemar" and by_stage["stage-1"]["n"] == 6


def test_bad_suite_names_are_refused_before_training(tmp_path: Path, make_tiny_model) -> None:
    data = suite_data(tmp_path)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="'mbpp:bogus' is not one of"):
        trainers.run(
            BUCKETS, run_dir, eval_suites="humaneval,mbpp:bogus", **run_args(make_tiny_model(seed=41))
        )
    with pytest.raises(ConfigError, match="no mbpp file in it"):  # the data is checked up front too
        trainers.run(
            BUCKETS,
            run_dir,
            eval_suites="mbpp",
            eval_options=options(data),
            **run_args(make_tiny_model(seed=41)),
        )
    assert not run_dir.exists()
    bucket = tmp_path / "bucket.jsonl"
    bucket.write_text("".join(json.dumps(r) + "\n" for r in pairs(0, 4).to_pylist()))
    res = CliRunner().invoke(app, ["train", str(bucket), "--out", str(run_dir), "--eval", "humaneval,nope"])
    assert res.exit_code == 1 and "'nope' is not one of" in res.stderr
    assert not run_dir.exists()


def test_cli_train_eval_publishes_per_suite(tmp_path: Path, make_tiny_model, monkeypatch) -> None:
    monkeypatch.setenv("PREFCURATE_EVAL_DATA", str(suite_data(tmp_path)))
    bucket = tmp_path / "bucket.jsonl"
    bucket.write_text("".join(json.dumps(r) + "\n" for r in pairs(0, 4).to_pylist()))
    store = tmp_path / "store"
    args = ["train", str(bucket), "--out", str(tmp_path / "run"), "--schedule", "plain"]
    args += [
        "--model",
        make_tiny_model(seed=41),
        "--batch-size",
        "2",
        "--max-length",
        "48",
        "--dtype",
        "fp32",
    ]
    res = CliRunner().invoke(app, [*args, "--eval", "humaneval", "--store", str(store), "--name", "p"])
    assert res.exit_code == 0, res.output
    assert "evaluations: evals/p/v1" in res.stderr
    assert "humaneval: evaluating start" in res.stderr and "humaneval: evaluating stage-1" in res.stderr
    assert set(Store(store).get("evals", "p").manifest["stages"]) == {"start", "stage-1"}
