"""implicit_reward_v1: beta * (log pi_policy - log pi_ref) from the shared per-completion log-probs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefcurate.errors import ConfigError  # noqa: E402
from prefcurate.models.logprob import LogprobScorer  # noqa: E402
from prefcurate.score import run_signal  # noqa: E402
from prefcurate.score.implicit_reward import ImplicitReward  # noqa: E402
from prefcurate.score.logprob_margin import LogprobMargin  # noqa: E402

MAX_LENGTH = 64


def implicit(policy: str, reference: str, beta: float = 0.1) -> ImplicitReward:
    return ImplicitReward(policy=policy, reference=reference, beta=beta, dtype="fp32", max_length=MAX_LENGTH)


def test_exactly_zero_when_policy_is_reference(tiny_model, pair_store) -> None:
    store = pair_store()
    ref, _ = run_signal(store, "toy", implicit(tiny_model, tiny_model))
    t = ref.read()
    for field in ("chosen", "rejected", "margin"):
        assert set(t.column(f"implicit_reward_v1__{field}").to_pylist()) == {0.0}
    assert set(t.column("implicit_reward_v1__correct").to_pylist()) == {False}  # a tie is never correct
    assert ref.manifest["policy"]["model_fingerprint"] == ref.manifest["reference"]["model_fingerprint"]


def test_publishes_nothing_under_the_log_prob_margin_name(tiny_model, make_tiny_model, pair_store) -> None:
    # The policy's log-probs must never become the dataset's newest logprob_margin_v1 (rank, partition
    # and export read that as the reference margin by default).
    store = pair_store()
    run_signal(store, "toy", implicit(make_tiny_model(1), tiny_model))
    assert store.names("scores") == ["toy/implicit_reward_v1"]


def test_equals_direct_computation_and_reuses_log_prob_runs(
    tiny_model, make_tiny_model, pair_store, monkeypatch
) -> None:
    policy = make_tiny_model(1)
    store = pair_store()
    lp = {
        m: run_signal(store, "toy", LogprobMargin(model=m, dtype="fp32", max_length=MAX_LENGTH))[0]
        .read()
        .to_pylist()
        for m in (policy, tiny_model)
    }
    calls: list[int] = []
    monkeypatch.setattr(
        LogprobScorer, "score", lambda self, items, on_batch=None: calls.append(len(items)) or []
    )
    ref, _ = run_signal(store, "toy", implicit(policy, tiny_model, beta=0.25))
    assert calls == []  # both log-prob runs were reused, nothing scored again
    assert ref.manifest["policy"]["completions"]["scored"] == 0
    assert ref.manifest["reference"]["completions"]["scored"] == 0
    assert ref.manifest["reference"]["model_fingerprint"]["model"] == tiny_model
    rows = ref.read().to_pylist()
    for row, p, r in zip(rows, lp[policy], lp[tiny_model], strict=True):
        c = 0.25 * (p["logprob_margin_v1__chosen_logp"] - r["logprob_margin_v1__chosen_logp"])
        j = 0.25 * (p["logprob_margin_v1__rejected_logp"] - r["logprob_margin_v1__rejected_logp"])
        assert row["implicit_reward_v1__chosen"] == c and row["implicit_reward_v1__rejected"] == j
        assert row["implicit_reward_v1__margin"] == c - j
        assert row["implicit_reward_v1__correct"] is (c > j)
    assert (
        len({row["implicit_reward_v1__correct"] for row in rows}) == 2
    )  # random models: both outcomes occur


def test_needs_a_policy_and_a_positive_beta() -> None:
    with pytest.raises(ConfigError, match="--by implicit-reward needs --policy MODEL"):
        ImplicitReward()
    with pytest.raises(ConfigError, match="--beta must be a positive number, got 0"):
        ImplicitReward(policy="x", beta=0)


def test_rank_partition_and_export_defaults_stay_on_the_reference_margin(
    tiny_model, make_tiny_model, pair_store, tmp_path
) -> None:
    from prefcurate.bucket.export import export
    from prefcurate.bucket.partition import PartitionSpec, partition
    from prefcurate.explore.ranking import rank_pairs

    store = pair_store()
    reference, _ = run_signal(
        store, "toy", LogprobMargin(model=tiny_model, dtype="fp32", max_length=MAX_LENGTH)
    )
    want = {r["pair_id"]: r for r in reference.read().to_pylist()}
    run_signal(store, "toy", implicit(make_tiny_model(1), tiny_model))  # computes the policy's log-probs too
    newest = store.get("scores", "toy/logprob_margin_v1")
    assert newest.version == reference.version and newest.manifest == reference.manifest
    ranked, ref, _ = rank_pairs(store, "toy", "logprob-margin")
    assert ref.label == reference.label
    assert {r["pair_id"]: r["margin"] for r in ranked.to_pylist()} == {
        k: v["logprob_margin_v1__margin"] for k, v in want.items()
    }
    result = partition(store, PartitionSpec("toy", "lp", by="logprob_margin_v1__margin", buckets=2))
    assert result.manifest["inputs"]["signals"]["logprob_margin_v1"]["version"] == reference.version
    exported = export(store, "lp", tmp_path / "out", fmt="parquet", with_ref_logps="logprob_margin_v1")
    import pyarrow.parquet as pq

    for entry in exported.order["buckets"]:
        for row in pq.read_table(tmp_path / "out" / entry["files"][0]).to_pylist():
            assert row["ref_chosen_logps"] == want[row["pair_id"]]["logprob_margin_v1__chosen_logp"]
            assert row["ref_rejected_logps"] == want[row["pair_id"]]["logprob_margin_v1__rejected_logp"]


def test_bf16_says_why_it_is_risky(tiny_model, pair_store, capsys) -> None:
    store = pair_store()
    spec = ImplicitReward(policy=tiny_model, reference=tiny_model, dtype="bf16", max_length=MAX_LENGTH)
    ref, _ = run_signal(store, "toy", spec)
    err = capsys.readouterr().err
    assert "Warning: implicit reward in bf16 is risky" in err and "use --dtype fp32" in err
    assert ref.manifest["dtype_warning"].startswith("implicit reward in bf16 is risky")
    run_signal(store, "toy", implicit(tiny_model, tiny_model), force=True)  # fp32: no warning
    assert "Warning" not in capsys.readouterr().err
