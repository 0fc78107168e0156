"""Tokenizing a completion after its prompt exactly as TRL's DPO does, and packing sequences into
batches (shared by every log-prob and reward backend; see prefcurate.models.logprob for the rules)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prefcurate.errors import ConfigError

TRUNCATION = "keep_start"


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


def check_max_length(value: object, minimum: int = 2) -> None:
    """The one check of `--max-length` (signals, scorers and trainers share its message)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"--max-length must be a whole number of tokens >= {minimum}, got {value!r}")


def check_batch_tokens(value: object) -> None:
    """The one check of `--batch-tokens`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--batch-tokens must be a positive whole number of tokens, got {value!r}")
