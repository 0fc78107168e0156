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

Prefix reuse: completions of one prompt share the prompt's tokens (TRL forwards the prompt once per
completion of every pair). Items whose tokens before the first scored position are identical form a
group; the shared prefix goes through the backbone once, its key/value cache is copied to one row per
completion, and only the completions' own tokens are forwarded after it. The values are the same as
forwarding each whole sequence (tested against the one-at-a-time full-softmax reference).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefcurate.errors import ConfigError
from prefcurate.extras import require
from prefcurate.models.dtypes import default_device, resolve_dtype
from prefcurate.models.encoding import (
    Encoded,
    check_batch_tokens,
    check_max_length,
    encode,
    pack,
    template_mode,
)

HEAD_CHUNK_ROWS = 512  # rows of logits per LM-head chunk: 512 x 49k vocab x 4 bytes = 100 MB at most


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
        prefix_reuse: bool = True,
    ) -> None:
        torch = require("torch", "log-prob scoring")
        check_max_length(max_length)
        check_batch_tokens(batch_tokens)
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding side {padding_side!r} is not left or right")
        self.device = device or str(next(model.parameters()).device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.padding_side = padding_side
        # Off after a model whose cache is not a plain per-layer key/value store (sliding windows, linear
        # attention): those go through the whole-sequence path.
        self.prefix_reuse = prefix_reuse
        # transformers >= 5.2x names the decoder's cache argument `cache` (`past_key_values` is deprecated).
        params = inspect.signature(model.get_decoder().forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
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
        results: list[float | None] = [None] * len(items)
        alone = list(range(len(items)))
        if self.prefix_reuse:
            groups, alone = prefix_groups(items)
            if groups:
                alone.extend(self._score_groups(items, groups, results, on_batch))
        order = sorted(alone, key=lambda i: (-len(items[i].input_ids), i))
        lengths = [len(items[i].input_ids) for i in order]
        for batch in pack(lengths, self.batch_tokens):
            idx = [order[j] for j in batch]
            sums = self._score_batch([items[i] for i in idx])
            for i, value in zip(idx, sums, strict=True):
                results[i] = value
            if on_batch is not None:
                on_batch(len(idx), sum(len(items[i].input_ids) for i in idx))
        return results

    def _score_groups(
        self,
        items: Sequence[Encoded],
        groups: list[list[int]],
        results: list[float | None],
        on_batch: Callable[[int, int], None] | None,
    ) -> list[int]:
        """Score groups sharing a prefix into `results`; returns the indices left for the whole-sequence
        path (all of them when the model's cache cannot be copied row by row)."""
        prefix = [_prefix_len(items[g[0]]) for g in groups]
        suffix = [max(len(items[i].input_ids) for i in g) - p for g, p in zip(groups, prefix, strict=True)]
        order = sorted(range(len(groups)), key=lambda k: (-prefix[k], -suffix[k], groups[k][0]))
        batches: list[list[int]] = []
        current: list[int] = []
        for k in order:
            trial = [*current, k]
            # Padded tokens forwarded: the prefixes once per group, the suffixes once per completion.
            cost = max(prefix[j] for j in trial) * len(trial) + max(suffix[j] for j in trial) * sum(
                len(groups[j]) for j in trial
            )
            if current and cost > self.batch_tokens:
                batches.append(current)
                trial = [k]
            current = trial
        if current:
            batches.append(current)
        for n, batch in enumerate(batches):
            chosen = [groups[k] for k in batch]
            sums = self._score_prefix_batch([[items[i] for i in g] for g in chosen])
            if sums is None:  # this model's cache cannot be reused: everything not done yet goes whole
                self.prefix_reuse = False
                return [i for later in batches[n:] for k in later for i in groups[k]]
            for g, values in zip(chosen, sums, strict=True):
                for i, value in zip(g, values, strict=True):
                    results[i] = value
            if on_batch is not None:
                on_batch(sum(len(g) for g in chosen), sum(len(items[i].input_ids) for g in chosen for i in g))
        return []

    def _score_prefix_batch(self, groups: Sequence[Sequence[Encoded]]) -> list[list[float]] | None:
        """Forward each group's shared prefix once, then its completions after a copy of its cache."""
        torch = self._torch
        from transformers.cache_utils import DynamicLayer

        left = self.padding_side == "left"
        plens = [_prefix_len(g[0]) for g in groups]
        pwidth = max(plens)
        members = [it for g in groups for it in g]
        owner = [k for k, g in enumerate(groups) for _ in g]
        slens = [len(it.input_ids) - plens[k] for it, k in zip(members, owner, strict=True)]
        swidth = max(slens)
        pids = torch.full((len(groups), pwidth), self.pad_id, dtype=torch.long)
        pmask = torch.zeros((len(groups), pwidth), dtype=torch.long)
        for k, g in enumerate(groups):
            off = pwidth - plens[k] if left else 0
            pids[k, off : off + plens[k]] = torch.tensor(g[0].input_ids[: plens[k]], dtype=torch.long)
            pmask[k, off : off + plens[k]] = 1
        sids = torch.full((len(members), swidth), self.pad_id, dtype=torch.long)
        smask = torch.zeros((len(members), swidth), dtype=torch.long)
        rows: list[int] = []
        positions: list[int] = []
        targets: list[int] = []
        for row, (it, k) in enumerate(zip(members, owner, strict=True)):
            n = slens[row]
            off = swidth - n if left else 0
            sids[row, off : off + n] = torch.tensor(it.input_ids[plens[k] :], dtype=torch.long)
            smask[row, off : off + n] = 1
            # Suffix position j predicts suffix token j+1, i.e. input_ids[prefix + j + 1].
            rows.extend([row] * (n - 1))
            positions.extend(range(off, off + n - 1))
            targets.extend(it.input_ids[plens[k] + 1 :])
        decoder = self.model.get_decoder()
        with torch.inference_mode():
            kwargs: dict[str, Any] = {"input_ids": pids.to(self.device), "use_cache": True}
            if left or len(set(plens)) > 1:
                kwargs["attention_mask"] = pmask.to(self.device)
                kwargs["position_ids"] = (pmask.cumsum(dim=1) - 1).clamp(min=0).to(self.device)
            out = decoder(**kwargs)
            cache = getattr(out, "cache", None) or out.past_key_values
            if not all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])):
                return None
            cache.reorder_cache(torch.tensor(owner, device=self.device))  # one copy per completion
            full_mask = torch.cat([pmask[torch.tensor(owner)], smask], dim=1)
            kwargs = {
                "input_ids": sids.to(self.device),
                self._cache_arg: cache,
                "use_cache": True,
                "position_ids": (full_mask.cumsum(dim=1) - 1).clamp(min=0)[:, pwidth:].to(self.device),
            }
            if left or len(set(plens)) > 1:
                kwargs["attention_mask"] = full_mask.to(self.device)
            # Right padding with equal prefixes needs no mask: pads only follow the real tokens.
            hidden = decoder(**kwargs).last_hidden_state
            del cache
            row_index = torch.tensor(rows, device=self.device)
            picked = hidden[row_index, torch.tensor(positions, device=self.device)]
            logps = self._token_logps(picked, torch.tensor(targets, device=self.device))
            per_row = torch.zeros(len(members), dtype=torch.float64, device=self.device)
            per_row.index_add_(0, row_index, logps.to(torch.float64))
            values = per_row.cpu().tolist()
        sums: list[list[float]] = []
        for g in groups:
            sums.append(values[: len(g)])
            values = values[len(g) :]
        return sums

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
        rows: list[int] = []
        positions: list[int] = []
        targets: list[int] = []
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


def _prefix_len(item: Encoded) -> int:
    """Tokens before the first scored position (position p predicts token p+1)."""
    return max(item.start, 1) - 1


def prefix_groups(items: Sequence[Encoded], min_prefix: int = 1) -> tuple[list[list[int]], list[int]]:
    """(groups of two or more item indices whose tokens before the first scored position are identical,
    indices scored alone): items with no completion token left, a prefix shorter than `min_prefix`,
    or no partner go alone."""
    by_prefix: dict[tuple[int, ...], list[int]] = {}
    alone: list[int] = []
    for i, it in enumerate(items):
        p = _prefix_len(it)
        if it.n_tokens == 0 or p < min_prefix:
            alone.append(i)
        else:
            by_prefix.setdefault(it.input_ids[:p], []).append(i)
    groups = [g for g in by_prefix.values() if len(g) > 1]
    alone.extend(g[0] for g in by_prefix.values() if len(g) == 1)
    return groups, sorted(alone)


class PendingScorer:
    """A scorer whose tokenizer is ready and whose model loads in a background thread on `start()`:
    the caller tokenizes (and checks its cache) meanwhile, and waits in `result()`. Nothing is loaded
    when every completion is already cached."""

    backend = "transformers"

    def __init__(self, spec: str | None, *, dtype: str, max_length: int, batch_tokens: int) -> None:
        from prefcurate.models.dtypes import check_dtype
        from prefcurate.models.loading import load_tokenizer

        check_dtype(dtype)
        if max_length < 2:
            raise ConfigError(f"--max-length must be at least 2 tokens, got {max_length}")
        self.spec, self.max_length, self.batch_tokens = spec, max_length, batch_tokens
        self.device = default_device()
        self.dtype, _why = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(spec)
        self.template = template_mode(self.tokenizer)
        self._future: Any = None
        self._pool: Any = None

    def encode(self, prompt: Sequence[Mapping[str, str]], completion: str) -> Encoded:
        return encode(self.tokenizer, prompt, completion, max_length=self.max_length, template=self.template)

    def start(self) -> None:
        if self._future is None:
            from concurrent.futures import ThreadPoolExecutor

            from prefcurate.models.loading import load_model_only

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="load-model")
            self._future = self._pool.submit(load_model_only, self.spec, self.dtype)

    def result(self) -> LogprobScorer:
        self.start()
        if not isinstance(self._future, LogprobScorer):
            model = self._future.result()
            self._pool.shutdown()
            self._future = LogprobScorer(
                model,
                self.tokenizer,
                max_length=self.max_length,
                batch_tokens=self.batch_tokens,
                device=self.device,
            )
        return self._future


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
        from prefcurate.models.logprob_vllm import VllmScorer

        return VllmScorer.open(spec, dtype=dtype, max_length=max_length)
    if backend != "transformers":
        raise ConfigError(f"--backend {backend!r} is not one of: transformers, vllm")
    from prefcurate.models import load_model

    device = default_device()
    resolved, _why = resolve_dtype(dtype, device)
    model, tokenizer = load_model(spec, dtype=resolved)
    return LogprobScorer(model, tokenizer, max_length=max_length, batch_tokens=batch_tokens, device=device)
