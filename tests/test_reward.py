"""reward_margin_v1 on a tiny random reward model (LlamaForSequenceClassification, one output) built in-process.

- chosen/rejected equal a direct computation (one sequence at a time, no padding, the model's own forward);
- margin = chosen - rejected exactly; `correct` is strict (an identical chosen/rejected pair is not correct);
- batching and packing do not change the scores; each distinct completion is scored once;
- an interrupted run resumes from its finished shards and gives the uninterrupted result;
- the manifest records model fingerprint, dtype, chat template hash, max length and truncation;
- truncation keeps the end; clear one-line errors for a missing or wrong model; the CLI output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from prefcurate import ids
from prefcurate.errors import ConfigError
from prefcurate.schema import PAIR_SCHEMA
from prefcurate.score import run_signal
from prefcurate.store import Store

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prefcurate.models.reward import RewardModel, load_reward_model, pack_batches  # noqa: E402
from prefcurate.score.reward_margin import RewardMargin  # noqa: E402


def make_model(folder: Path, tokenizer_dir: str, *, num_labels: int = 1, causal: bool = False) -> str:
    """A random 2-layer Llama (reward head scaled up so scores are O(1)) with the SmolLM2 tokenizer."""
    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=num_labels,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    if causal:
        model = transformers.LlamaForCausalLM(config)
    else:
        model = transformers.LlamaForSequenceClassification(config)
        torch.nn.init.normal_(model.score.weight, std=1.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: str) -> str:
    """A random reward model with the SmolLM2 tokenizer (conftest's session fixture)."""
    torch.set_num_threads(2)
    return make_model(tmp_path_factory.mktemp("tiny-rm"), smollm2_tokenizer_dir)


def pair(prompt: list[dict[str, str]], chosen: str, rejected: str, source: str = "s") -> dict[str, object]:
    pid = ids.prompt_id(prompt)
    cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
    return {
        "pair_id": ids.pair_id(pid, cid, rid),
        "prompt_id": pid,
        "dataset": "toy",
        "source": source,
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_id": cid,
        "rejected_id": rid,
        "chosen_score": None,
        "rejected_score": None,
        "chosen_model": None,
        "rejected_model": None,
        "meta": None,
    }


def toy_pairs() -> pa.Table:
    q1 = [{"role": "user", "content": "Name a river in Europe."}]
    q2 = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is bread made of?"},
        {"role": "assistant", "content": "Flour, water, yeast, salt."},
        {"role": "user", "content": "And sourdough?"},
    ]
    q3 = [{"role": "user", "content": "Tell me about owls " * 6}]
    rows = [
        pair(q1, "The Danube.", "I do not know any rivers, sorry."),
        pair(q1, "The Danube.", "Rivers are wet."),  # shares its chosen completion with the first pair
        pair(q2, "A starter of wild yeast replaces the yeast.", "Sourdough is sour dough. " * 5),
        pair(q2, "Same text.", "Same text.", source="t"),  # a tie: identical completions
        pair(
            q3,
            "Owls are nocturnal birds of prey with excellent hearing and silent flight.",
            "Owls.",
            source="t",
        ),
    ]
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


def make_store(root: Path, table: pa.Table | None = None) -> Store:
    store = Store(root)
    table = toy_pairs() if table is None else table
    with store.publish("pairs", "toy", {"counts": {"kept": table.num_rows}, "fingerprint": "toy-fp"}) as pub:
        pub.write_table(table)
    return store


def direct_scorer(model_dir: str) -> Callable[..., float]:
    """Reference: the model's own forward on one unpadded sequence at a time, float32."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32
    ).eval()

    def score(prompt: list[dict[str, str]], completion: str, max_length: int = 10_000) -> float:
        text = tok.apply_chat_template(
            [*prompt, {"role": "assistant", "content": completion}], tokenize=False
        )
        input_ids = tok(text)["input_ids"][-max_length:]
        with torch.no_grad():
            return float(model(torch.tensor([input_ids])).logits[0, 0])

    return score


def signal_rows(store: Store, **options: object) -> tuple[list[dict[str, object]], dict[str, object]]:
    ref, _ = run_signal(store, "toy", RewardMargin(**options))
    return ref.read().to_pylist(), ref.manifest


def test_margins_equal_direct_computation_and_correct_is_strict(tiny_rm: str, tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    rows, _ = signal_rows(store, model=tiny_rm, dtype="fp32", batch_tokens=160)  # several packed batches
    pairs = toy_pairs().to_pylist()
    direct_score = direct_scorer(tiny_rm)
    assert [r["pair_id"] for r in rows] == [p["pair_id"] for p in pairs]
    for p, r in zip(pairs, rows, strict=True):
        assert r["reward_margin_v1__chosen"] == pytest.approx(
            direct_score(p["prompt"], p["chosen"]), abs=1e-5
        )
        assert r["reward_margin_v1__rejected"] == pytest.approx(
            direct_score(p["prompt"], p["rejected"]), abs=1e-5
        )
        assert (
            r["reward_margin_v1__margin"] == r["reward_margin_v1__chosen"] - r["reward_margin_v1__rejected"]
        )
        assert r["reward_margin_v1__correct"] is (
            r["reward_margin_v1__chosen"] > r["reward_margin_v1__rejected"]
        )
    tie = rows[3]
    assert tie["reward_margin_v1__margin"] == 0.0 and tie["reward_margin_v1__correct"] is False
    # the random model is not trivially all-correct or all-wrong on the rest
    assert {r["reward_margin_v1__correct"] for r in rows[:3] + rows[4:]} == {True, False}


def test_batch_packing_does_not_change_scores(tiny_rm: str) -> None:
    rm = load_reward_model(tiny_rm, "fp32")
    seqs = [
        rm.encode(p["prompt"], p[s], 512).input_ids
        for p in toy_pairs().to_pylist()
        for s in ("chosen", "rejected")
    ]
    alone = rm.score(seqs, batch_tokens=1)  # every sequence in a batch of its own
    packed = rm.score(seqs, batch_tokens=10_000)  # all in one padded batch
    assert packed == pytest.approx(alone, abs=1e-5)
    assert alone[6] == alone[7]  # the tie pair's identical completions


def test_pack_batches_longest_first_under_budget() -> None:
    assert pack_batches([3, 9, 5, 5, 2], batch_tokens=10) == [[1], [2, 3], [0, 4]]
    assert pack_batches([4, 4, 4], batch_tokens=12) == [[0, 1, 2]]
    assert pack_batches([20], batch_tokens=5) == [[0]]


def test_each_completion_once_and_resume_after_interrupt(
    tiny_rm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[int] = []
    original = RewardModel.score_batch

    def counting(self: RewardModel, sequences: list[list[int]]) -> list[float]:
        if len(scored) >= 4:
            raise KeyboardInterrupt
        scored.extend(len(s) for s in sequences)
        return original(self, sequences)

    monkeypatch.setattr(RewardMargin, "shard_rows", 2)
    monkeypatch.setattr(RewardModel, "score_batch", counting)
    store = make_store(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        run_signal(store, "toy", RewardMargin(model=tiny_rm, dtype="fp32", batch_tokens=1))
    assert len(scored) == 4  # two shards of two completions finished before the interrupt
    monkeypatch.setattr(
        RewardModel,
        "score_batch",
        lambda self, seqs: (scored.extend(len(s) for s in seqs), original(self, seqs))[1],
    )
    resumed, manifest = signal_rows(store, model=tiny_rm, dtype="fp32", batch_tokens=1)
    distinct = 8  # 10 completions: "The Danube." shared by two pairs, "Same text." on both sides
    assert len(scored) == distinct and manifest["completions"]["distinct"] == distinct
    monkeypatch.setattr(RewardModel, "score_batch", original)
    clean, _ = signal_rows(make_store(tmp_path / "clean"), model=tiny_rm, dtype="fp32", batch_tokens=1)
    assert resumed == clean


def test_manifest_records_what_determines_the_values(tiny_rm: str, tmp_path: Path) -> None:
    from prefcurate.models import model_fingerprint
    from prefcurate.models.encoding import chat_template_hash

    _, m = signal_rows(make_store(tmp_path / "store"), model=tiny_rm, dtype="fp32", max_length=256)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_rm)
    assert m["model"] == {
        "spec": tiny_rm,
        "fingerprint": model_fingerprint(tiny_rm),
        "dtype": "fp32",
        "dtype_reason": "asked for",
        "device": "cpu",
        "template": "chat",
        "chat_template_hash": chat_template_hash(tok),
        "max_length": 256,
        "truncation": "left",
        "pad_token_id": 2,
    }
    assert m["model_fingerprint"] == model_fingerprint(tiny_rm) and m["resolved_dtype"] == "fp32"
    assert m["fields"] == ["chosen", "rejected", "margin", "correct"]
    assert m["completions"]["truncated"] == 0


def test_truncation_keeps_the_end(tiny_rm: str, tmp_path: Path) -> None:
    rows, m = signal_rows(make_store(tmp_path / "store"), model=tiny_rm, dtype="fp32", max_length=24)
    assert m["completions"]["truncated"] == 8  # every templated conversation here is longer than 24 tokens
    p = toy_pairs().to_pylist()[4]
    assert rows[4]["reward_margin_v1__chosen"] == pytest.approx(
        direct_scorer(tiny_rm)(p["prompt"], p["chosen"], 24), abs=1e-5
    )


def test_plain_concatenation_without_chat_template(tiny_rm: str) -> None:
    rm = load_reward_model(tiny_rm, "fp32")
    rm.tokenizer.chat_template = None
    assert rm.template == "plain" and rm.chat_template_hash is None
    assert rm.format([{"role": "user", "content": "Hi?"}], "Hello.") == "Hi?\n\nHello."


def test_errors_are_one_line(tiny_rm: str, smollm2_tokenizer_dir: str, tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    with pytest.raises(ConfigError) as exc:
        run_signal(store, "toy", RewardMargin())
    assert str(exc.value) == (
        "--by reward needs --model: a reward model (AutoModelForSequenceClassification with one output, "
        "e.g. Skywork/Skywork-Reward-V2-Llama-3.1-8B or a local folder)"
    )
    with pytest.raises(ConfigError, match=r"^--dtype 'fp16' is not one of: auto, bf16, fp32$"):
        RewardMargin(model=tiny_rm, dtype="fp16")
    two = make_model(tmp_path / "two", smollm2_tokenizer_dir, num_labels=2)
    with pytest.raises(
        ConfigError, match=r"is not a reward model with one output: its head has num_labels=2$"
    ):
        load_reward_model(two, "fp32")
    causal = make_model(tmp_path / "causal", smollm2_tokenizer_dir, causal=True)
    with pytest.raises(
        ConfigError, match=r"is not a reward model: its checkpoint has no classification head \(score.weight"
    ):
        load_reward_model(causal, "fp32")
    with pytest.raises(ConfigError, match=r"^cannot load reward model '.*nowhere'"):
        load_reward_model(str(tmp_path / "nowhere"), "fp32")


def test_cli_score_reward(tiny_rm: str, tmp_path: Path) -> None:
    from prefcurate.cli import app

    store = make_store(tmp_path / "store")
    args = [
        "score",
        "toy",
        "--by",
        "reward",
        "--model",
        tiny_rm,
        "--dtype",
        "fp32",
        "--store",
        str(store.root),
    ]
    wide = CliRunner(env={"COLUMNS": "200"})  # Rich would wrap the line at 80 columns
    res = wide.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cols = "reward_margin_v1__chosen, reward_margin_v1__rejected, reward_margin_v1__margin, reward_margin_v1__correct"
    assert res.stdout == f"Wrote scores/toy/reward_margin_v1/v1: 5 pairs, columns {cols}\n"
    res = wide.invoke(app, args, catch_exceptions=False)
    assert res.stdout == f"Reused scores/toy/reward_margin_v1/v1: 5 pairs, columns {cols}\n"
    res = CliRunner().invoke(app, ["score", "toy", "--by", "reward", "--store", str(store.root)])
    assert res.exit_code == 1 and res.stderr.startswith("Error: --by reward needs --model: a reward model")
    res = CliRunner().invoke(
        app,
        ["score", "toy", "--by", "reward", "--model", tiny_rm, "--beta", "0.1", "--store", str(store.root)],
    )
    assert res.exit_code == 1
    assert (
        res.stderr
        == "Error: --beta does not apply to --by reward (it takes: --batch-tokens, --dtype, --max-length, --model)\n"
    )


def test_bos_written_by_the_template_is_not_doubled(tiny_rm: str) -> None:
    rm = load_reward_model(tiny_rm, "fp32")
    rm.tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    bos = rm.tokenizer.bos_token
    rm.__dict__["_adds_bos"] = True  # as for a Llama-3 tokenizer, which adds BOS itself
    assert rm.format([{"role": "user", "content": "Hi?"}], "Hello.") == "user: Hi?\nassistant: Hello.\n"
    rm.__dict__["_adds_bos"] = False  # the SmolLM2 tokenizer adds nothing: the template's BOS stays
    assert rm.format([{"role": "user", "content": "Hi?"}], "Hello.") == f"{bos}user: Hi?\nassistant: Hello.\n"
    assert rm.__dict__.pop("_adds_bos") is False and rm._adds_bos is False  # the real SmolLM2 tokenizer
