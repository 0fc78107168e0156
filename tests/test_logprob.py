"""The log-prob path: exact against a straightforward float32 reference and against TRL's own
reference pass, independent of batch size, padding side and order; the completion span; truncation;
dtype choice; model fingerprints."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pyarrow as pa
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefcurate.errors import ConfigError  # noqa: E402
from prefcurate.models import model_fingerprint  # noqa: E402
from prefcurate.models.dtypes import decide_dtype  # noqa: E402
from prefcurate.models.encoding import chat_template_hash, encode, pack  # noqa: E402
from prefcurate.models.logprob import LogprobScorer  # noqa: E402
from prefcurate.models.logprob_vllm import completion_sum  # noqa: E402

from .helpers import naive_logp, pairs_table  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "Name a river."}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Why is the sky blue? " * 3}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about owls and clocks."},
    ],
    [{"role": "user", "content": "Count: " + " ".join(str(i) for i in range(10))}],
]
COMPLETIONS = ["The Nile.", "Rayleigh scattering " * 12, "Owls give a hoot about time.", "41 42 43"]
MAX_LENGTH = 72


def items(tok, max_length: int = MAX_LENGTH):
    return [
        encode(tok, p, c, max_length=max_length, template="chat")
        for p, c in zip(PROMPTS, COMPLETIONS, strict=True)
    ]


def test_completion_span_is_everything_after_the_generation_prompt(tiny_fp32) -> None:
    _, tok = tiny_fp32
    enc = encode(tok, PROMPTS[0], "The Nile.", max_length=512, template="chat")
    assert tok.decode(list(enc.input_ids[enc.start :])) == "The Nile.<|im_end|>\n"
    assert tok.decode(list(enc.input_ids[: enc.start])).endswith("<|im_start|>assistant\n")
    assert enc.n_tokens == len(enc.input_ids) - enc.start and not enc.truncated


def test_equals_naive_reference_for_every_batch_size_padding_side_and_order(tiny_fp32) -> None:
    model, tok = tiny_fp32
    want = [naive_logp(model, tok, p, c, MAX_LENGTH) for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    assert all(w is not None for w in want)
    encoded = items(tok)
    assert encoded[1].truncated  # the long one is cut at MAX_LENGTH (keep the start)
    for side in ("right", "left"):
        for budget in (1, 150, 100_000):
            scorer = LogprobScorer(model, tok, max_length=MAX_LENGTH, batch_tokens=budget, padding_side=side)
            got = scorer.score(encoded)
            assert got == pytest.approx(want, abs=1e-4), (side, budget)
            got_reversed = scorer.score(encoded[::-1])[::-1]
            assert got_reversed == pytest.approx(want, abs=1e-4), (side, budget, "reversed")


# Several completions per prompt (the UltraFeedback shape): the prefix-reuse path. Prompt 1 is long, so
# some of its completions are cut at MAX_LENGTH; prompt 3 has one completion (scored alone).
SHARED = [
    (0, "The Nile."),
    (0, "The Amazon, the longest river in South America."),
    (0, "Danube"),
    (1, "Rayleigh scattering " * 12),
    (1, "Because of the air."),
    (2, "Owls give a hoot about time."),
    (2, "Tick tock, whoo?"),
    (3, "41 42 43"),
]


def test_prefix_reuse_equals_naive_reference_for_every_batch_size_padding_side_and_order(tiny_fp32) -> None:
    from prefcurate.models.logprob import prefix_groups

    model, tok = tiny_fp32
    want = [naive_logp(model, tok, PROMPTS[p], c, MAX_LENGTH) for p, c in SHARED]
    encoded = [encode(tok, PROMPTS[p], c, max_length=MAX_LENGTH, template="chat") for p, c in SHARED]
    groups, alone = prefix_groups(encoded)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3, 4], [5, 6]] and alone == [7]
    assert any(encoded[i].truncated for i in (3, 4))
    for side in ("right", "left"):
        for budget in (1, 120, 100_000):
            scorer = LogprobScorer(model, tok, max_length=MAX_LENGTH, batch_tokens=budget, padding_side=side)
            assert scorer.score(encoded) == pytest.approx(want, abs=1e-4), (side, budget)
            assert scorer.score(encoded[::-1])[::-1] == pytest.approx(want, abs=1e-4), (side, budget, "rev")
            assert scorer.prefix_reuse  # the cache of this (Llama) model was reused, not bypassed
    whole = LogprobScorer(model, tok, max_length=MAX_LENGTH, prefix_reuse=False).score(encoded)
    assert whole == pytest.approx(want, abs=1e-4)


def test_prefix_groups_leave_out_empty_and_unshared_items(tiny_fp32) -> None:
    from prefcurate.models.encoding import Encoded
    from prefcurate.models.logprob import prefix_groups

    items = [
        Encoded((1, 2, 3, 4), start=2, truncated=False),  # prefix (1,)
        Encoded((1, 2, 5), start=2, truncated=False),  # same prefix
        Encoded((1, 2), start=2, truncated=True),  # no completion token left: alone, scores None
        Encoded((9, 4), start=0, truncated=False),  # first token has no context: prefix length 0
        Encoded((7, 8, 9), start=2, truncated=False),  # prefix (7,) has no partner
    ]
    assert prefix_groups(items) == ([[0, 1]], [2, 3, 4])
    model, tok = tiny_fp32
    values = LogprobScorer(model, tok, max_length=8).score(items)
    assert values[2] is None and all(v is not None for i, v in enumerate(values) if i != 2)
    assert values == pytest.approx(LogprobScorer(model, tok, max_length=8, prefix_reuse=False).score(items))


def test_prompt_filling_max_length_scores_none(tiny_fp32) -> None:
    model, tok = tiny_fp32
    enc = encode(tok, PROMPTS[3], "41", max_length=20, template="chat")
    assert enc.truncated and enc.n_tokens == 0
    ok = encode(tok, PROMPTS[0], "The Nile.", max_length=20, template="chat")
    values = LogprobScorer(model, tok, max_length=20).score([enc, ok])
    assert values[0] is None and values[1] == pytest.approx(
        naive_logp(model, tok, PROMPTS[0], "The Nile.", 20), abs=1e-4
    )


def test_plain_template_is_prompt_then_completion_then_eos(make_tiny_model) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = make_tiny_model(0, chat_template=False)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert not tok.chat_template
    scorer = LogprobScorer(model, tok, max_length=64)
    assert scorer.template == "plain" and chat_template_hash(tok) is None
    enc = scorer.encode(PROMPTS[2], "Hoot.")
    assert (
        tok.decode(list(enc.input_ids))
        == "Hi\n\nHello! How can I help?\n\nTell me a joke about owls and clocks.Hoot." + tok.eos_token
    )
    ids = list(enc.input_ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    want = (
        torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[enc.start - 1 :, 0].sum()
    )
    assert scorer.score([enc])[0] == pytest.approx(float(want), abs=1e-4)


def test_equals_trl_reference_pass(tiny_model: str, tiny_fp32, tmp_path: Path) -> None:
    """TRL's DPOTrainer(precompute_ref_log_probs=True) on the same pairs gives the same sums (fp32)."""
    pytest.importorskip("trl")
    from trainers.config import TrainConfig
    from trainers.evaluate import holdout_logps

    rows = [
        (p, c, "I do not know. " * (1 + i)) for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS, strict=True))
    ]
    # TRL's conversational form: chosen/rejected are one assistant message each.
    table = pairs_table(rows).select(["pair_id", "prompt"])
    for side, k in (("chosen", 1), ("rejected", 2)):
        table = table.append_column(side, pa.array([[{"role": "assistant", "content": r[k]}] for r in rows]))
    trl_chosen, trl_rejected = holdout_logps(
        tiny_model, table, TrainConfig(max_length=MAX_LENGTH), "fp32", tmp_path / "trl"
    )
    model, tok = tiny_fp32
    scorer = LogprobScorer(model, tok, max_length=MAX_LENGTH)
    ours = scorer.score([scorer.encode(p, c) for p, c, _ in rows] + [scorer.encode(p, r) for p, _, r in rows])
    assert ours[: len(rows)] == pytest.approx(trl_chosen, abs=1e-4)
    assert ours[len(rows) :] == pytest.approx(trl_rejected, abs=1e-4)


def test_bf16_is_close_to_fp32(tiny_model: str, tiny_fp32) -> None:
    from transformers import AutoModelForCausalLM

    model, tok = tiny_fp32
    bf16 = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).eval()
    a = LogprobScorer(model, tok, max_length=MAX_LENGTH).score(items(tok))
    b_scorer = LogprobScorer(bf16, tok, max_length=MAX_LENGTH)
    assert b_scorer.dtype == "bf16"
    b = b_scorer.score(items(tok))
    assert all(math.isclose(x, y, rel_tol=0.02) for x, y in zip(a, b, strict=True))


def test_pack_respects_the_token_budget() -> None:
    assert pack([50, 40, 40, 10, 10, 10], 100) == [[0, 1], [2, 3], [4, 5]]
    assert pack([300, 20], 100) == [[0], [1]]  # longer than the budget: alone
    assert pack([], 100) == []


def test_dtype_auto_decision() -> None:
    never = lambda: pytest.fail("an AVX2-only CPU must not need a probe")  # noqa: E731
    assert decide_dtype(cuda_bf16=None, cpu_flags={"avx", "avx2", "fma"}, speedup=never)[0] == "fp32"
    assert decide_dtype(cuda_bf16=None, cpu_flags={"avx2", "avx512_bf16"}, speedup=lambda: 2.0)[0] == "bf16"
    assert decide_dtype(cuda_bf16=None, cpu_flags={"avx2", "amx_bf16"}, speedup=lambda: 1.1)[0] == "fp32"
    assert decide_dtype(cuda_bf16=True, cpu_flags=set(), speedup=never)[0] == "bf16"
    assert decide_dtype(cuda_bf16=False, cpu_flags=set(), speedup=never)[0] == "fp32"


def test_bad_scorer_options(tiny_fp32) -> None:
    model, tok = tiny_fp32
    with pytest.raises(ConfigError, match="--max-length must be a whole number of tokens >= 2, got 1"):
        LogprobScorer(model, tok, max_length=1)
    with pytest.raises(ConfigError, match="--batch-tokens must be a positive whole number of tokens, got 0"):
        LogprobScorer(model, tok, max_length=8, batch_tokens=0)


def test_fingerprint_matches_the_trainers_and_follows_the_weights(
    tiny_model: str, make_tiny_model, tiny_fp32, monkeypatch
) -> None:
    from trainers.checkpoint import chat_template_hash as trainers_hash
    from trainers.checkpoint import fingerprint_of

    fp = model_fingerprint(tiny_model)
    assert fp == fingerprint_of(tiny_model, None, None) == model_fingerprint(tiny_model)
    assert fp["model"] == tiny_model and len(fp["model_sha256"]) == 64
    assert model_fingerprint(make_tiny_model(1))["model_sha256"] != fp["model_sha256"]
    # a relative spelling of the same folder is the same model
    parent = Path(tiny_model).parent
    monkeypatch.chdir(parent)
    assert (
        model_fingerprint(f"./{Path(tiny_model).name}")
        == fp
        == fingerprint_of(Path(tiny_model).name, None, None)
    )
    _, tok = tiny_fp32
    assert chat_template_hash(tok) == trainers_hash(tok) and len(chat_template_hash(tok)) == 16


def test_fingerprint_of_files_and_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFCURATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF not really")
    assert model_fingerprint(f) == {
        "model": "m.gguf",
        "model_sha256": hashlib.sha256(b"GGUF not really").hexdigest(),
    }
    assert model_fingerprint("org/some-model@0123456789012345678901234567890123456789") == {
        "model": "org/some-model",
        "revision": "0123456789012345678901234567890123456789",
    }
    (tmp_path / "junk").mkdir()
    with pytest.raises(ConfigError, match="neither a checkpoint folder"):
        model_fingerprint(tmp_path / "junk")


def test_vllm_completion_sum_reads_the_completion_positions() -> None:
    from prefcurate.models.encoding import Encoded

    class LP:
        def __init__(self, v: float) -> None:
            self.logprob = v

    item = Encoded((5, 6, 7, 8, 9), start=3, truncated=False)
    prompt_logprobs = [None, {6: LP(-1.0)}, {7: LP(-2.0)}, {8: LP(-0.5), 1: LP(-0.1)}, {9: LP(-0.25)}]
    assert completion_sum(item, prompt_logprobs) == -0.75


def test_vllm_backend_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefcurate.models.logprob_vllm import VllmScorer

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the no-GPU message cannot be shown")
    with pytest.raises(ConfigError, match="--backend vllm needs a CUDA GPU and none is visible here"):
        VllmScorer.open(None)


@pytest.mark.gpu
def test_vllm_equals_transformers(tiny_model: str, tiny_fp32) -> None:
    pytest.importorskip("vllm", reason="vllm is not installed (extra: prefcurate[vllm])")
    if not torch.cuda.is_available():
        pytest.skip("vllm backend needs a CUDA GPU")
    from prefcurate.models.logprob_vllm import VllmScorer

    model, tok = tiny_fp32
    want = LogprobScorer(model, tok, max_length=MAX_LENGTH).score(items(tok))
    got = VllmScorer.open(tiny_model, dtype="fp32", max_length=MAX_LENGTH).score(items(tok))
    assert got == pytest.approx(want, abs=1e-3)


def test_fingerprints_stream_weight_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 48 MB weight file is hashed with a few MB of Python memory: never read whole (an 8B
    model's 16 GB would otherwise be held at once)."""
    import os
    import tracemalloc

    monkeypatch.setenv("PREFCURATE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shard = os.urandom(1 << 20) * 48
    (folder / "model.safetensors").write_bytes(shard)
    (folder / "config.json").write_text("{}")
    gguf = tmp_path / "big.gguf"
    gguf.write_bytes(shard)
    expected = hashlib.sha256(b"model.safetensors" + shard + b"config.json" + b"{}").hexdigest()
    gguf_expected = hashlib.sha256(shard).hexdigest()
    del shard
    tracemalloc.start()
    try:
        folder_fp = model_fingerprint(folder)
        _, folder_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        gguf_fp = model_fingerprint(gguf)
        _, gguf_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert folder_fp["model_sha256"] == expected
    assert gguf_fp["model_sha256"] == gguf_expected
    assert folder_peak < 12 << 20, folder_peak
    assert gguf_peak < 12 << 20, gguf_peak
