"""`eval winrate` with a tiny random reward model: per-prompt wins equal direct scoring, ties count
0.5, the length-controlled rate is the logistic fit at zero length difference, circular judges refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.evaluate.winrate import fit_logistic, judge, length_controlled, win_stats
from prefcurate.store import Store

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: str) -> str:
    folder = tmp_path_factory.mktemp("tiny-rm")
    tok = transformers.AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForSequenceClassification(config)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # scores O(1), so wins are not all ties
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def write_responses(path: Path, texts: dict[str, str]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt_id": p, "prompt": f"Question {p}?", "completion": t}) + "\n"
            for p, t in texts.items()
        )
    )
    return path


def test_win_stats_ties_and_soft_win() -> None:
    metrics, win, soft = win_stats(
        [1.0, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 1.0], [10, 10, 10, 10], [10, 10, 10, 10]
    )
    assert win == [1.0, 0.5, 0.0, 0.0] and metrics["win_rate"] == pytest.approx(0.375)
    assert soft[0] == pytest.approx(1 / (1 + np.exp(-1.0))) and soft[1] == 0.5
    # Equal lengths everywhere: length control changes nothing (the fit is the plain mean).
    assert metrics["lc_win_rate"] == pytest.approx(0.375, abs=1e-6)


def test_logistic_fit_matches_scipy_minimize() -> None:
    optimize = pytest.importorskip("scipy.optimize", reason="scipy (dev extra) is not installed")
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    y[::7] = 0.5  # ties as soft labels

    def loss(w: np.ndarray) -> float:
        p = 1 / (1 + np.exp(-(w[0] + w[1] * x)))
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    ref = optimize.minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    assert fit_logistic(x, y) == pytest.approx(tuple(ref), abs=1e-4)


def test_length_control_removes_a_pure_length_preference() -> None:
    # The judge prefers whichever answer is longer; at equal length it is a coin flip.
    rng = np.random.default_rng(1)
    diff = rng.normal(40, 60, size=400).round()
    wins = (rng.random(400) < 1 / (1 + np.exp(-diff / 30))).astype(float)
    base = np.full(400, 200)
    raw = wins.mean()
    lc = length_controlled(wins, base + diff, base)
    assert raw > 0.6 and abs(lc - 0.5) < 0.1


def test_judge_with_tiny_reward_model(tmp_path: Path, tiny_rm: str) -> None:
    from prefcurate.models.reward import load_reward_model

    cand = write_responses(tmp_path / "c.jsonl", {"a": "Yes, it is.", "b": "No.", "c": "Same answer"})
    base = write_responses(
        tmp_path / "b.jsonl",
        {"a": "Maybe not", "b": "Absolutely, because of many reasons.", "c": "Same answer"},
    )
    res = judge(cand, base, tiny_rm, dtype="fp32")
    rm = load_reward_model(tiny_rm, "fp32")
    for row in res.prompts:
        p = row["prompt_id"]
        prompt = [{"role": "user", "content": f"Question {p}?"}]
        rc = rm.score(
            [
                rm.encode(
                    prompt,
                    json.loads((tmp_path / "c.jsonl").read_text().splitlines()["abc".index(p)])["completion"],
                    2048,
                ).input_ids
            ],
            4096,
        )[0]
        assert row["reward_candidate"] == pytest.approx(rc, abs=1e-4)
        assert row["win"] == (
            1.0
            if row["reward_candidate"] > row["reward_baseline"]
            else 0.5
            if row["reward_candidate"] == row["reward_baseline"]
            else 0.0
        )
    assert next(r for r in res.prompts if r["prompt_id"] == "c")["win"] == 0.5  # identical answers tie
    assert res.metrics["prompts"] == 3 and res.metrics["mean_len_baseline"] == pytest.approx(
        (9 + 36 + 11) / 3
    )
    folder = res.write(tmp_path / "out")
    assert len((folder / "prompts.jsonl").read_text().splitlines()) == 3


def test_circular_judge_is_refused(tmp_path: Path, tiny_rm: str) -> None:
    from prefcurate.models import model_fingerprint

    store = Store(tmp_path / "store")
    with store.publish(
        "scores", "uf/reward_margin_v1", {"model": {"fingerprint": model_fingerprint(tiny_rm)}}
    ) as pub:
        pub.write_table(pa.table({"pair_id": ["x"]}))
    cand = write_responses(tmp_path / "c.jsonl", {"a": "one"})
    base = write_responses(tmp_path / "b.jsonl", {"a": "two"})
    with pytest.raises(ConfigError, match="also scored the training pairs"):
        judge(cand, base, tiny_rm, store=store, dataset="uf", dtype="fp32")
    assert judge(cand, base, tiny_rm, store=store, dataset="uf", allow_circular=True, dtype="fp32").judge[
        "allow_circular"
    ]
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "winrate",
            str(cand),
            "--baseline",
            str(base),
            "--judge",
            tiny_rm,
            "--dataset",
            "uf",
            "--store",
            str(tmp_path / "store"),
            "--dtype",
            "fp32",
        ],
    )
    assert res.exit_code == 1 and "--allow-circular" in res.stderr
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "winrate",
            str(cand),
            "--baseline",
            str(base),
            "--judge",
            tiny_rm,
            "--dtype",
            "fp32",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)) >= {"win_rate", "soft_win_rate", "lc_win_rate", "mean_len_candidate"}


def test_holdout_prompts_generate_then_winrate(tmp_path: Path, tiny_rm: str, make_tiny_model) -> None:
    """holdout:<dataset> prompts (the pairs `split` held out) -> two models' responses -> win rate."""
    from prefcurate.evaluate.generate import GenerateOptions, generate
    from prefcurate.evaluate.suites import load_holdout_suite

    from .test_partition import rich_store

    store = rich_store(tmp_path / "store")
    suite = load_holdout_suite(store, "uf")
    assert suite.problems and all(p.messages and p.chat for p in suite.problems)
    assert len({p.task_id for p in suite.problems}) == len(suite.problems)
    outs = []
    for seed in (1, 2):
        out = tmp_path / f"m{seed}.jsonl"
        generate(
            GenerateOptions(
                model=make_tiny_model(seed=seed),
                suite="holdout:uf",
                out=str(out),
                max_new_tokens=5,
                store=str(tmp_path / "store"),
            )
        )
        outs.append(out)
    first = json.loads(outs[0].read_text().splitlines()[0])
    assert first["prompt"][0]["role"] == "user" and first["task_id"] == suite.problems[0].task_id
    res = judge(outs[1], outs[0], tiny_rm, dtype="fp32")
    assert res.metrics["prompts"] == len(suite.problems)
    assert 0.0 <= res.metrics["win_rate"] <= 1.0
