"""vLLM backend for log-prob scoring (extra `vllm`, CUDA GPU): same values through `prompt_logprobs`.

The token ids are made exactly as in the transformers backend (prefcurate.models.encoding.encode: chat
template, completion span, keep-start truncation) and handed to vLLM as token prompts, so both
backends score the same tokens. vLLM returns, for every prompt position, the log-prob of the actual
token (``prompt_logprobs=0``, raw model log-probs); the completion's positions are summed in float64.
Imported only when ``--backend vllm`` is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefcurate.errors import ConfigError
from prefcurate.extras import require
from prefcurate.models.dtypes import resolve_dtype
from prefcurate.models.encoding import Encoded, encode, template_mode

VLLM_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def model_source(spec: str | None) -> str:
    """What vLLM loads for a prefcurate model spec: a checkpoint folder (GGUF files are converted once)."""
    from prefcurate.models import bundled_checkpoint, gguf_checkpoint, is_checkpoint

    if spec is None:
        return str(bundled_checkpoint())
    path = Path(spec).expanduser()
    if path.is_dir() and is_checkpoint(path):
        return str(path)
    if path.is_file() and path.suffix == ".gguf":
        return str(gguf_checkpoint(path))
    return str(spec).partition("@")[0]


class VllmScorer:
    """Sums of completion-token log-probs through vLLM; the interface of LogprobScorer."""

    backend = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, *, max_length: int, dtype: str) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.dtype = dtype
        self.template = template_mode(tokenizer)

    @classmethod
    def open(cls, spec: str | None, *, dtype: str = "auto", max_length: int = 512) -> VllmScorer:
        torch = require("torch", "the vLLM backend")
        if not torch.cuda.is_available():
            raise ConfigError(
                "--backend vllm needs a CUDA GPU and none is visible here; use --backend transformers"
            )
        vllm = require("vllm", "the vLLM backend")
        transformers = require("transformers", "the vLLM backend")
        resolved, _why = resolve_dtype(dtype, "cuda")
        source = model_source(spec)
        is_hub = spec is not None and not Path(spec).expanduser().exists()
        revision = (str(spec).partition("@")[2] or None) if is_hub else None
        llm = vllm.LLM(
            model=source,
            revision=revision,
            dtype=VLLM_DTYPES[resolved],
            seed=0,
            # +1: vLLM generates one token after the prompt; prefix caching would skip prompt log-probs.
            max_model_len=max_length + 1,
            enable_prefix_caching=False,
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, revision=revision)
        return cls(llm, tokenizer, max_length=max_length, dtype=resolved)

    def encode(self, prompt: Sequence[Mapping[str, str]], completion: str) -> Encoded:
        return encode(self.tokenizer, prompt, completion, max_length=self.max_length, template=self.template)

    def score(
        self, items: Sequence[Encoded], on_batch: Callable[[int, int], None] | None = None
    ) -> list[float | None]:
        vllm = require("vllm", "the vLLM backend")
        from vllm.inputs import TokensPrompt

        todo = [i for i, it in enumerate(items) if it.n_tokens > 0]
        results: list[float | None] = [None] * len(items)
        if todo:
            params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
            prompts = [TokensPrompt(prompt_token_ids=list(items[i].input_ids)) for i in todo]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for i, output in zip(todo, outputs, strict=True):
                results[i] = completion_sum(items[i], output.prompt_logprobs)
        if on_batch is not None:
            on_batch(len(items), sum(len(it.input_ids) for it in items))
        return results


def completion_sum(item: Encoded, prompt_logprobs: Sequence[Mapping[int, Any] | None]) -> float:
    """Sum of the actual tokens' log-probs over the completion positions of one vLLM prompt result."""
    total = 0.0
    for pos in range(max(item.start, 1), len(item.input_ids)):
        entry = prompt_logprobs[pos]
        if entry is None:
            raise ConfigError(f"vLLM returned no log-prob for prompt position {pos}")
        token = item.input_ids[pos]
        lp = entry[token]
        total += float(getattr(lp, "logprob", lp))
    return total
