"""Reward-model scoring: one scalar per (prompt, completion) from a sequence-classification model.

A reward model here is any `AutoModelForSequenceClassification` checkpoint with one output
(Skywork-Reward, ArmoRM-style Llama/Gemma/Qwen heads...). The conversation is formatted the way
such models are trained and documented: the prompt messages plus the completion as the assistant
turn go through `tokenizer.apply_chat_template(tokenize=False)`, and the text is then tokenized
once (a BOS token the template already wrote is removed from the text first, so the tokenizer does
not add a second one). A tokenizer without a chat template gets plain concatenation (messages and
completion joined by blank lines); `RewardModel.template` says which was used.

Speed: sequences are sorted by length and packed into batches under a token budget (rows x
longest row), right-padded so every real token keeps the positions it has when scored alone, and
run under `torch.inference_mode`. The model's own pooling reads the score at the last token that is
not the pad token, exactly as when it scores one sequence at a time.

Truncation keeps the END of a long conversation (left truncation): the score is read at the last
token, so cutting the completion's end would score a different text than the one in the pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from prefcurate.errors import ConfigError
from prefcurate.extras import require
from prefcurate.models import model_fingerprint, quiet_transformers
from prefcurate.models.dtypes import default_device, resolve_dtype
from prefcurate.models.encoding import chat_template_hash, pack, plain_prompt

TRUNCATION_SIDE = "left"  # keep the end; see the module docstring


@dataclass
class Encoded:
    """One tokenized conversation: ids after truncation, and whether it was cut."""

    input_ids: list[int]
    truncated: bool


@dataclass
class RewardEncoder:
    """What turns a conversation into the reward model's input ids: its tokenizer and pad id, no
    weights (a driver whose shards run on Ray actors needs only this)."""

    tokenizer: Any
    spec: str
    pad_token_id: int

    @property
    def template(self) -> str:
        return "chat" if getattr(self.tokenizer, "chat_template", None) else "plain"

    @property
    def chat_template_hash(self) -> str | None:
        return chat_template_hash(self.tokenizer)

    def format(self, prompt: Sequence[Mapping[str, str]], completion: str) -> str:
        """The conversation as text, the way the reward model expects it."""
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        messages.append({"role": "assistant", "content": completion})
        if self.template == "plain":
            return plain_prompt(messages)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        bos = getattr(self.tokenizer, "bos_token", None)
        if bos and text.startswith(bos) and self._adds_bos:
            text = text[len(bos) :]  # the tokenizer adds it again below
        return text

    @cached_property
    def _adds_bos(self) -> bool:
        bos_id = getattr(self.tokenizer, "bos_token_id", None)
        ids = self.tokenizer("x", add_special_tokens=True)["input_ids"]
        return bos_id is not None and bool(ids) and ids[0] == bos_id

    def encode(self, prompt: Sequence[Mapping[str, str]], completion: str, max_length: int) -> Encoded:
        ids = list(self.tokenizer(self.format(prompt, completion), add_special_tokens=True)["input_ids"])
        if len(ids) > max_length:
            return Encoded(ids[-max_length:], True)
        return Encoded(ids, False)


@dataclass
class RewardModel(RewardEncoder):
    """A loaded reward model with what determines its scores (for manifests)."""

    model: Any
    dtype: str  # resolved: "fp32" or "bf16"
    device: str
    fingerprint: dict[str, Any]

    def score_batch(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        """Scores of right-padded sequences in one forward pass."""
        torch = require("torch", "reward-model scoring")
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, : len(seq)] = 1
        with torch.inference_mode():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        return [float(v) for v in out.logits.float()[:, 0].cpu()]

    def score(
        self,
        sequences: Sequence[Sequence[int]],
        batch_tokens: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[float]:
        """Scores in input order; batches are length-sorted and packed under `batch_tokens`."""
        scores: list[float] = [0.0] * len(sequences)
        for batch in pack_batches([len(s) for s in sequences], batch_tokens):
            values = self.score_batch([sequences[i] for i in batch])
            for i, v in zip(batch, values, strict=True):
                scores[i] = v
            if on_batch is not None:
                on_batch(sum(len(sequences[i]) for i in batch))
        return scores


def pack_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches: longest first, each padded batch (rows x longest) <= budget.

    A sequence longer than the budget gets a batch of its own. Ties in length keep input order,
    so the packing is deterministic. (The packing rule is the log-prob scorer's `pack`.)
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [[order[j] for j in batch] for batch in pack([lengths[i] for i in order], batch_tokens)]


@dataclass(frozen=True)
class ModelIdentity:
    """What determines a reward model's scores, found without loading its weights."""

    spec: str
    dtype: str  # resolved: "fp32" or "bf16"
    dtype_reason: str  # why `auto` chose it
    device: str
    fingerprint: dict[str, Any]
    chat_template_hash: str | None


def _need_model(spec: str | Path | None) -> str:
    if not spec:
        raise ConfigError(
            "--by reward needs --model: a reward model (AutoModelForSequenceClassification with one output, "
            "e.g. Skywork/Skywork-Reward-V2-Llama-3.1-8B or a local folder)"
        )
    return str(spec)


def _source(spec: str) -> tuple[str, dict[str, Any]]:
    """from_pretrained arguments: a local folder as is, a hub id with an optional `@revision`."""
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser()), {}
    name, _, revision = spec.partition("@")
    return name, ({"revision": revision} if revision else {})


def _load_error(spec: str, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"cannot load reward model {spec!r}: {first}")


def identify_reward_model(
    spec: str | Path | None, dtype: str = "auto", device: str | None = None
) -> ModelIdentity:
    """Fingerprint, resolved dtype and chat template hash (tokenizer only, no weights)."""
    spec = _need_model(spec)
    transformers = require("transformers", "reward-model scoring")
    device = device or default_device()
    resolved, why = resolve_dtype(dtype, device)
    source, kwargs = _source(spec)
    try:
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(spec, exc) from exc
    return ModelIdentity(
        spec, resolved, why, device, dict(model_fingerprint(spec)), chat_template_hash(tokenizer)
    )


def load_reward_model(
    spec: str | Path | None,
    dtype: str = "auto",
    device: str | None = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> RewardModel:
    """Load a sequence-classification reward model with one output, or raise a one-line ConfigError.

    `fingerprint`: an already computed `model_fingerprint(spec)` (saves hashing the weights twice).
    """
    spec = _need_model(spec)
    torch = require("torch", "reward-model scoring")
    transformers = require("transformers", "reward-model scoring")
    device = device or default_device()
    dtype, _ = resolve_dtype(dtype, device)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    source, kwargs = _source(spec)
    try:
        with quiet_transformers():
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
                source, dtype=torch_dtype, output_loading_info=True, **kwargs
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(spec, exc) from exc
    if model.config.num_labels != 1:
        raise ConfigError(
            f"{spec} is not a reward model with one output: its head has num_labels={model.config.num_labels}"
        )
    missing_head = [
        k for k in info.get("missing_keys", ()) if k.split(".")[0] in ("score", "classifier", "v_head")
    ]
    if missing_head:
        raise ConfigError(
            f"{spec} is not a reward model: its checkpoint has no classification head ({missing_head[0]} would be "
            "random); give a checkpoint trained as a reward model"
        )
    pad = _pad_id(spec, model.config, tokenizer)
    model.config.pad_token_id = pad  # batches need one; the model's pooling then skips trailing pads
    model.to(device).eval()
    return RewardModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        dtype=dtype,
        device=device,
        fingerprint=dict(fingerprint if fingerprint is not None else model_fingerprint(spec)),
        pad_token_id=pad,
    )


def _pad_id(spec: str, config: Any, tokenizer: Any) -> int:
    """The model's pad id, else the tokenizer's pad or end-of-sequence token."""
    pad = config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError(
            f"{spec}: neither the model nor its tokenizer defines a pad or end-of-sequence token"
        )
    return int(pad)


def load_reward_encoder(spec: str | Path | None) -> RewardEncoder:
    """The tokenizer and pad id of a reward model, from its tokenizer and config files (no weights)."""
    spec = _need_model(spec)
    transformers = require("transformers", "reward-model scoring")
    source, kwargs = _source(spec)
    try:
        with quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(source, **kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(spec, exc) from exc
    return RewardEncoder(tokenizer=tokenizer, spec=spec, pad_token_id=_pad_id(spec, config, tokenizer))
