"""Can a stage train against reference log-probs computed earlier by a log-prob signal?

Only when they are the same quantity: the signal was computed with the stage's reference model (model
fingerprint), in the same dtype, with the same chat template, max length and truncation side. This
module compares those fields, then spot-checks a few pairs against TRL's own reference computation
(values within tolerance, completion token counts equal), because a fingerprint cannot see a
difference in how the completion span was tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .buckets import REF_COLUMNS

if TYPE_CHECKING:
    from .plan import StageContext

SIGNAL = "logprob_margin_v1"
SPOT_PAIRS = 4
# |injected - TRL| <= ATOL + RTOL * |TRL| per sequence. bf16 sums over hundreds of tokens drift a little
# between batchings; a tokenization difference moves a sum by whole tokens (several nats on a random model).
TOLERANCE = {"fp32": (1e-3, 1e-4), "bf16": (0.25, 0.01)}


@dataclass
class ReferenceCheck:
    ok: bool
    reason: str
    source: str = ""
    values: tuple[pa.Array, pa.Array] | None = None  # aligned with the stage table's rows
    tokens: tuple[list[int], list[int]] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def expected_fingerprint(ctx: StageContext, tokenizer: Any) -> dict[str, Any]:
    """The fields a signal's manifest must match for its values to be this run's model-0 reference."""
    from .checkpoint import chat_template_hash, fingerprint_of

    fp = fingerprint_of(ctx.config.model, None, tokenizer)
    return {
        "model": fp,
        "dtype": ctx.dtype,
        "chat_template_hash": chat_template_hash(tokenizer),
        "max_length": ctx.config.max_length,
        "truncation": "keep_start",
    }


def compare_manifest(manifest: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when they match, else which field differs (quoted both ways)."""
    got = reference_fields(manifest)
    for key in ("model", "dtype", "chat_template_hash", "max_length", "truncation"):
        if got.get(key) != expected.get(key):
            return f"{key} differs: signal {got.get(key)!r}, this run {expected.get(key)!r}"
    return None


def find_injectable(ctx: StageContext, table: pa.Table, tokenizer: Any) -> ReferenceCheck:
    """Reference log-probs for the stage's rows (from the export or the store) whose fingerprint matches."""
    manifest: dict[str, Any] | None = None
    tokens = None
    if all(c in table.column_names for c in REF_COLUMNS):
        info = ctx.bucket_set.ref_logps or {}
        manifest = info.get("manifest")
        source = f"the export ({info.get('signal_version', 'log-prob signal')})"
        values = (
            table.column(REF_COLUMNS[0]).combine_chunks(),
            table.column(REF_COLUMNS[1]).combine_chunks(),
        )
        if not manifest:
            return ReferenceCheck(
                False, "the export's reference log-probs carry no model fingerprint", source
            )
    else:
        dataset, store = ctx.bucket_set.dataset, ctx.store
        if store is None or not dataset or not store.versions("scores", f"{dataset}/{SIGNAL}"):
            return ReferenceCheck(False, f"no {SIGNAL} signal for these pairs")
        ref = store.get("scores", f"{dataset}/{SIGNAL}")
        manifest, source = ref.manifest, ref.label
        cols = [
            f"{SIGNAL}__{f}" for f in ("chosen_logp", "rejected_logp", "chosen_tokens", "rejected_tokens")
        ]
        scores = ref.read()
        cols = [c for c in cols if c in scores.column_names]
        by_id = {r["pair_id"]: r for r in scores.select(["pair_id", *cols]).to_pylist()}
        ids = table.column("pair_id").to_pylist()
        missing = [
            p for p in ids if p not in by_id or by_id[p].get(cols[0]) is None or by_id[p].get(cols[1]) is None
        ]
        if missing:
            return ReferenceCheck(
                False, f"{ref.label} has no log-probs for {len(missing)} of the stage's pairs", source
            )
        values = (
            pa.array([by_id[p][cols[0]] for p in ids], pa.float64()),
            pa.array([by_id[p][cols[1]] for p in ids], pa.float64()),
        )
        if len(cols) == 4:
            tokens = ([by_id[p][cols[2]] for p in ids], [by_id[p][cols[3]] for p in ids])
    differs = compare_manifest(manifest, expected_fingerprint(ctx, tokenizer))
    if differs:
        return ReferenceCheck(False, f"{source} does not match the reference: {differs}", source)
    return ReferenceCheck(
        True,
        "fingerprints match: model, dtype, chat template, max length, truncation",
        source,
        values,
        tokens,
        manifest,
    )


def spot_check(trainer: Any, ref_model: Any, check: ReferenceCheck, dtype: str) -> ReferenceCheck:
    """Recompute the first pairs with TRL's reference path and compare with the injected values."""
    import torch

    ds = trainer.train_dataset
    n = min(SPOT_PAIRS, len(ds))
    examples = [ds[i] for i in range(n)]
    batch = trainer.data_collator(examples)
    batch = {k: v.to(trainer.accelerator.device) if hasattr(v, "to") else v for k, v in batch.items()}
    was_training = ref_model.training
    ref_model.eval()
    chosen, rejected = trainer.compute_ref_log_probs(ref_model, batch)
    ref_model.train(was_training)
    mask = batch["completion_mask"][:, 1:]
    counts = mask.sum(dim=1).tolist()
    atol, rtol = TOLERANCE[dtype]
    worst = 0.0
    for i, ex in enumerate(examples):
        row = int(ex["row_index"])
        for side, got in ((0, chosen[i]), (1, rejected[i])):
            want = float(check.values[side][row].as_py())  # type: ignore[index]
            value = float(got.to(torch.float64))
            diff = abs(want - value)
            worst = max(worst, diff)
            if diff > atol + rtol * abs(value):
                return ReferenceCheck(
                    False,
                    f"spot check failed on pair {ex.get('pair_id', row)}: signal {want:.4f} vs TRL {value:.4f} "
                    "(the signal tokenized or truncated the completion differently)",
                    check.source,
                )
            if check.tokens is not None:
                want_tokens = check.tokens[side][row]
                got_tokens = int(counts[i + side * n])
                if want_tokens is not None and int(want_tokens) != got_tokens:
                    return ReferenceCheck(
                        False,
                        f"spot check failed on pair {ex.get('pair_id', row)}: signal counted {want_tokens} completion "
                        f"tokens, TRL {got_tokens}",
                        check.source,
                    )
    check.reason += f"; spot check on {n} pairs: max |diff| = {worst:.2g}"
    return check


def reference_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """The log-prob signal's manifest in the shape of `expected_fingerprint`."""
    ref = manifest.get("reference") or manifest
    spec = manifest.get("spec", {})
    return {
        "model": ref.get("model_fingerprint") or ref.get("model"),
        "dtype": ref.get("dtype") or spec.get("dtype"),
        "chat_template_hash": ref.get("chat_template_hash"),
        "max_length": ref.get("max_length") or spec.get("max_length"),
        "truncation": ref.get("truncation") or ref.get("truncation_side"),
    }
