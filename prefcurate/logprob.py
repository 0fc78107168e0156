"""The one log-prob path: tokenize a completion after its prompt, and score many of them fast.

What is scored is exactly TRL's DPO completion span (trl 1.x ``DPOTrainer._prepare_dataset`` and
``DataCollatorForPreference``), so the sums can be handed to a trainer as ``ref_chosen_logps`` /
``ref_rejected_logps``:

- chat template (``template="chat"``): the prompt messages are rendered with
  ``add_generation_prompt=True``; prompt + assistant message is rendered once as a whole; the
  completion starts where the two token lists diverge (normally right after the prompt), so it
  includes the template's end-of-turn tokens (``<|im_end|>\\n`` for SmolLM2). The completion is never
  tokenized alone, so the token boundary between prompt and completion is the one the model sees.
- no chat template (``template="plain"``): the message contents joined by blank lines, then the
  completion text plus the EOS token (TRL adds EOS to plain completions), tokenized as one string.
- prompt + completion is cut to ``max_length`` tokens keeping the start (TRL's ``keep_start``).
  A completion left with no token (the prompt fills ``max_length``) scores ``None``; TRL drops it.

Speed (``LogprobScorer``): sequences are sorted by length and packed into batches under a token
budget, the backbone runs once under ``torch.inference_mode``, and only the hidden states of the
scored positions go through the LM head, in row chunks, with the target logit gathered and a
float32 logsumexp per chunk: a full float32 ``[batch, length, vocabulary]`` log-softmax is never made.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .extras import require

TRUNCATION = "keep_start"
HEAD_CHUNK_ROWS = 512  # rows of logits per LM-head chunk: 512 x 49k vocab x 4 bytes = 100 MB at most


@dataclass(frozen=True)
class Encoded:
    """One completion after its prompt, ready to score."""

    input_ids: tuple[int, ...]  # prompt + completion, already cut to max_length
    start: int  # index of the first completion token in input_ids
    truncated: bool  # prompt + completion was longer than max_length

    @property
    def n_tokens(self) -> int:
        """Completion tokens scored: positions max(start, 1) .. end (token 0 has no context)."""
        return max(0, len(self.input_ids) - max(self.start, 1))


def chat_template_hash(tokenizer: Any) -> str | None:
    """First 16 hex chars of sha256(chat template); same recipe as trainers.checkpoint.chat_template_hash."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if not isinstance(template, str):
        template = json.dumps(template, sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def template_mode(tokenizer: Any) -> str:
    """'chat' when the tokenizer has a chat template, else 'plain' concatenation."""
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _ids(result: Any) -> list[int]:
    ids = result["input_ids"] if isinstance(result, Mapping) or hasattr(result, "keys") else result
    return list(ids)


def plain_prompt(messages: Iterable[Mapping[str, str]]) -> str:
    return "\n\n".join(m["content"] for m in messages)


def encode(
    tokenizer: Any, prompt: Sequence[Mapping[str, str]], completion: str, *, max_length: int, template: str
) -> Encoded:
    """Token ids of prompt + completion and where the completion starts (see the module docstring)."""
    if template == "chat":
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        prompt_ids = _ids(
            tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        )
        full = _ids(
            tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": completion}], tokenize=True, return_dict=True
            )
        )
    else:
        text = plain_prompt(prompt)
        eos = tokenizer.eos_token or ""
        body = completion if completion.endswith(eos) else completion + eos
        prompt_ids = _ids(tokenizer(text=text))
        full = _ids(tokenizer(text=text + body))
    start = _common_prefix(prompt_ids, full)
    return Encoded(tuple(full[:max_length]), start, len(full) > max_length)


# -- dtype -------------------------------------------------------------------------------------------


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _probe_bf16_speedup() -> float:
    """fp32 time / bf16 time for matrix products shaped like a small model's layers (best of 3)."""
    torch = require("torch", "choosing a dtype")
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(512, 576, dtype=dt), torch.randn(576, 1536, dtype=dt)
        a @ b
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, time.perf_counter() - started)
        times[dt] = best
    return times[torch.float32] / times[torch.bfloat16]


def decide_dtype(
    *, cuda_bf16: bool | None, cpu_flags: set[str], speedup: Callable[[], float]
) -> tuple[str, str]:
    """(dtype, why). GPU: bf16 where supported. CPU: fp32 unless the CPU has native bf16 instructions
    (avx512_bf16 / amx_bf16) *and* a measured bf16 matrix product beats fp32 by 1.3x or more; on
    AVX2-only CPUs bf16 is emulated and several times slower than fp32."""
    if cuda_bf16 is not None:
        return ("bf16", "GPU supports bf16") if cuda_bf16 else ("fp32", "GPU lacks bf16")
    native = sorted(cpu_flags & {"avx512_bf16", "amx_bf16"})
    if not native:
        return "fp32", "CPU has no native bf16 instructions (no avx512_bf16/amx_bf16)"
    ratio = speedup()
    if ratio >= 1.3:
        return "bf16", f"CPU has {'+'.join(native)}; measured bf16 matmul {ratio:.1f}x faster than fp32"
    return "fp32", f"CPU has {'+'.join(native)} but measured bf16 matmul only {ratio:.1f}x fp32"


DTYPE_CHOICES = ("auto", "bf16", "fp32")


def check_dtype(dtype: str) -> None:
    """Up-front check of a `--dtype` value (signals validate options before any work starts)."""
    if dtype not in DTYPE_CHOICES:
        raise ConfigError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPE_CHOICES)}")


def resolve_dtype(dtype: str, device: str = "cpu") -> tuple[str, str]:
    """`auto` -> ("fp32"|"bf16", reason). The CPU probe is memoised per CPU and torch version in the
    prefcurate cache folder, so reruns (and resumed runs) resolve the same way."""
    check_dtype(dtype)
    if dtype != "auto":
        return dtype, "asked for"
    torch = require("torch", "choosing a dtype")
    if device.startswith("cuda"):
        return decide_dtype(
            cuda_bf16=bool(torch.cuda.is_bf16_supported()), cpu_flags=set(), speedup=lambda: 1.0
        )
    from .models import cache_root

    flags = _cpu_flags()
    key = hashlib.sha256(
        f"{platform.processor()}|{sorted(flags)}|{torch.__version__}|{torch.get_num_threads()}".encode()
    ).hexdigest()[:16]
    memo = cache_root() / "dtype-probe" / f"{key}.json"
    try:
        saved = json.loads(memo.read_text())
        return saved["dtype"], saved["why"] + " (cached probe)"
    except (OSError, ValueError, KeyError):
        pass
    chosen, why = decide_dtype(cuda_bf16=None, cpu_flags=flags, speedup=_probe_bf16_speedup)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"dtype": chosen, "why": why}))
    except OSError:
        pass
    return chosen, why


def default_device() -> str:
    torch = require("torch", "log-prob scoring")
    return "cuda" if torch.cuda.is_available() else "cpu"


# -- batching ----------------------------------------------------------------------------------------


def pack(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group indices (already in length order) into batches whose padded size rows x longest stays
    under `batch_tokens`; a sequence longer than the budget goes alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, n in enumerate(lengths):
        width = max(longest, n)
        if current and width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, width = [], n
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches


class LogprobScorer:
    """Sums of completion-token log-probs under a causal LM (transformers backend)."""

    backend = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int,
        batch_tokens: int = 8192,
        padding_side: str = "right",
        device: str | None = None,
    ) -> None:
        torch = require("torch", "log-prob scoring")
        if max_length < 2:
            raise ConfigError(f"--max-length must be at least 2 tokens, got {max_length}")
        if batch_tokens < 1:
            raise ConfigError(f"--batch-tokens must be positive, got {batch_tokens}")
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding side {padding_side!r} is not left or right")
        self.device = device or str(next(model.parameters()).device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.padding_side = padding_side
        self.template = template_mode(tokenizer)
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        )
        self._torch = torch
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        # Logit transforms some families apply after the LM head (Gemma softcapping, Cohere/Granite scale).
        self._softcap = getattr(config, "final_logit_softcapping", None)
        scale = getattr(config, "logit_scale", None)
        if scale is None and getattr(config, "logits_scaling", None):
            scale = 1.0 / config.logits_scaling
        self._logit_scale = scale

    @property
    def dtype(self) -> str:
        return "bf16" if next(self.model.parameters()).dtype == self._torch.bfloat16 else "fp32"

    def encode(self, prompt: Sequence[Mapping[str, str]], completion: str) -> Encoded:
        return encode(self.tokenizer, prompt, completion, max_length=self.max_length, template=self.template)

    def score(
        self, items: Sequence[Encoded], on_batch: Callable[[int, int], None] | None = None
    ) -> list[float | None]:
        """Log-prob sum of each item's completion, in input order (None where no token is left).

        Items are sorted by length internally; `on_batch(completions, tokens)` is called after each batch.
        """
        order = sorted(range(len(items)), key=lambda i: (-len(items[i].input_ids), i))
        results: list[float | None] = [None] * len(items)
        lengths = [len(items[i].input_ids) for i in order]
        for batch in pack(lengths, self.batch_tokens):
            idx = [order[j] for j in batch]
            sums = self._score_batch([items[i] for i in idx])
            for i, value in zip(idx, sums, strict=True):
                results[i] = value
            if on_batch is not None:
                on_batch(len(idx), sum(len(items[i].input_ids) for i in idx))
        return results

    def _score_batch(self, items: Sequence[Encoded]) -> list[float | None]:
        torch = self._torch
        width = max(len(it.input_ids) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        offsets = []
        for row, it in enumerate(items):
            n = len(it.input_ids)
            off = width - n if self.padding_side == "left" else 0
            ids[row, off : off + n] = torch.tensor(it.input_ids, dtype=torch.long)
            mask[row, off : off + n] = 1
            offsets.append(off)
        # Positions p predict token p+1: collect (row, position, target) for every scored token.
        rows, positions, targets = [], [], []
        for row, it in enumerate(items):
            first = max(it.start, 1)
            n = len(it.input_ids) - first
            if n <= 0:
                continue
            off = offsets[row]
            rows.extend([row] * n)
            positions.extend(range(off + first - 1, off + len(it.input_ids) - 1))
            targets.extend(it.input_ids[first:])
        sums: list[float | None] = [None if it.n_tokens == 0 else 0.0 for it in items]
        if not rows:
            return sums
        with torch.inference_mode():
            ids, mask = ids.to(self.device), mask.to(self.device)
            kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": False}
            if self.padding_side == "left":
                kwargs["attention_mask"] = mask
                kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
            # Right padding needs no mask: under causal attention a real token never sees the pads after
            # it, and without a mask SDPA takes its faster causal kernel. Same values, less work.
            hidden = self.model.get_decoder()(**kwargs).last_hidden_state
            row_index = torch.tensor(rows, device=self.device)
            picked = hidden[row_index, torch.tensor(positions, device=self.device)]
            target = torch.tensor(targets, device=self.device)
            logps = self._token_logps(picked, target)
            per_row = torch.zeros(len(items), dtype=torch.float64, device=self.device)
            per_row.index_add_(0, row_index, logps.to(torch.float64))
            per_row = per_row.cpu().tolist()
        return [None if s is None else per_row[r] for r, s in enumerate(sums)]

    def _token_logps(self, hidden: Any, target: Any) -> Any:
        """log p(target) for each row of `hidden`: LM head in chunks, gather, float32 logsumexp."""
        torch = self._torch
        head = self.model.get_output_embeddings()
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for lo in range(0, hidden.shape[0], HEAD_CHUNK_ROWS):
            hi = min(lo + HEAD_CHUNK_ROWS, hidden.shape[0])
            logits = head(hidden[lo:hi]).float()
            if self._logit_scale is not None:
                logits = logits * self._logit_scale
            if self._softcap is not None:
                logits = torch.tanh(logits / self._softcap) * self._softcap
            out[lo:hi] = logits.gather(1, target[lo:hi, None])[:, 0] - torch.logsumexp(logits, dim=-1)
        return out


def open_scorer(
    spec: str | None,
    *,
    backend: str = "transformers",
    dtype: str = "auto",
    max_length: int = 512,
    batch_tokens: int = 8192,
) -> Any:
    """A scorer for a model spec (see prefcurate.models): LogprobScorer, or the vLLM one on GPUs."""
    if backend == "vllm":
        from .logprob_vllm import VllmScorer

        return VllmScorer.open(spec, dtype=dtype, max_length=max_length)
    if backend != "transformers":
        raise ConfigError(f"--backend {backend!r} is not one of: transformers, vllm")
    from .models import load_model

    device = default_device()
    resolved, _why = resolve_dtype(dtype, device)
    model, tokenizer = load_model(spec, dtype=resolved)
    return LogprobScorer(model, tokenizer, max_length=max_length, batch_tokens=batch_tokens, device=device)
