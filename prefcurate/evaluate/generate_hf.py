"""The transformers generation backend: length-sorted batches, left padding, KV cache, and one
torch.Generator per job so sampling does not depend on the batch a prompt lands in."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from ..extras import require
from .jobs import GenerateOptions, Job, finish_row


class HFGenerator:
    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu") -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.torch = require("torch", "eval generate")
        # transformers 5.x renamed the cache argument (`past_key_values` -> `cache`); accept both.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed: skip the [batch, prompt, vocab] prefill logits.
        self.last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    @classmethod
    def open(cls, spec: str | None, dtype: str = "fp32") -> HFGenerator:
        from prefcurate.models.dtypes import default_device, resolve_dtype

        from ..models import load_model

        device = default_device()
        resolved, _ = resolve_dtype(dtype, device)
        model, tokenizer = load_model(spec, dtype=resolved)
        return cls(model.to(device), tokenizer, device)

    def encode(self, text: str) -> list[int]:
        # Chat-templated text already holds the special tokens it needs.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def run(
        self, jobs: Sequence[Job], opts: GenerateOptions
    ) -> Iterator[tuple[list[dict[str, Any]], int, int]]:
        encoded = [self.encode(j.text) for j in jobs]
        order = sorted(range(len(jobs)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), opts.batch_size):
            idx = order[start : start + opts.batch_size]
            texts, new = self.generate_batch([encoded[i] for i in idx], [jobs[i] for i in idx], opts)
            rows = [
                finish_row(jobs[i], text, reason, len(encoded[i]), n)
                for i, (text, reason, n) in zip(idx, texts, strict=True)
            ]
            yield rows, sum(len(encoded[i]) for i in idx), new

    def generate_batch(
        self, prompts: list[list[int]], jobs: list[Job], opts: GenerateOptions
    ) -> tuple[list[tuple[str, str, int]], int]:
        """Decode a batch; returns (text, finish reason, new tokens) per row, and the tokens computed."""
        torch = self.torch
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        gens = []
        for job in jobs:
            g = torch.Generator(device=self.device)
            g.manual_seed(job.seed)
            gens.append(g)
        out: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        reason = ["length"] * len(prompts)
        past = None
        step_ids = ids
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        computed = 0
        with torch.inference_mode():
            for _ in range(opts.max_new_tokens):
                res = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    **{self.cache_arg: past},
                    **self.last_only,
                )
                past = res.cache if hasattr(res, "cache") else res.past_key_values
                logits = res.logits[:, -1, :].float()
                nxt = self._choose(logits, gens, opts)
                for r, t in enumerate(nxt):
                    if done[r]:
                        continue
                    computed += 1
                    if t in eos:
                        done[r], reason[r] = True, "eos"
                        continue
                    out[r].append(t)
                    if jobs[r].stop and _stopped(tok, out[r], jobs[r].stop):
                        done[r], reason[r] = True, "stop"
                if all(done):
                    break
                step_ids = torch.tensor(
                    [[t if not d else pad] for t, d in zip(nxt, done, strict=True)], device=self.device
                )
                mask = torch.cat(
                    [mask, torch.ones((len(prompts), 1), dtype=mask.dtype, device=self.device)], dim=1
                )
                positions = positions[:, -1:] + 1
        texts = [(tok.decode(o, skip_special_tokens=True), reason[r], len(o)) for r, o in enumerate(out)]
        return texts, computed

    def _choose(self, logits: Any, gens: list[Any], opts: GenerateOptions) -> list[int]:
        torch = self.torch
        if opts.temperature == 0:
            return logits.argmax(-1).tolist()
        probs = torch.softmax(logits / opts.temperature, dim=-1)
        if opts.top_p < 1:
            sorted_p, sorted_i = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < opts.top_p  # the smallest set reaching top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, sorted_i, sorted_p)
        return [int(torch.multinomial(probs[r], 1, generator=gens[r])) for r in range(probs.shape[0])]


def _stopped(tokenizer: Any, ids: list[int], stop: Sequence[str]) -> bool:
    # Only the tail can hold a new stop sequence: decode a window, not the whole completion.
    tail = tokenizer.decode(ids[-12:], skip_special_tokens=True)
    return any(s in tail for s in stop)
