"""reward_margin_v1: a reward model's score of each completion, and chosen - rejected.

Fields: `chosen`, `rejected` (the reward model's scalar for each completion given the prompt),
`margin` = chosen - rejected, `correct` = chosen > rejected (strict: a tie is not correct).

Each distinct completion (completion id) is scored once, however many pairs share it. The
completions are sorted by token length (longest first) and processed in resumable shards, each
packed into batches under `batch_tokens`; an interrupted run resumes from the finished shards.
The driver tokenizes with the reward model's tokenizer alone; the weights are loaded where shards
run: in this process on the first shard it computes, or once per Ray actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from prefcurate.execution import ShardFn, WorkKind
from prefcurate.execution.work import Report
from prefcurate.extras import lazy_module
from prefcurate.models.dtypes import check_dtype
from prefcurate.models.encoding import check_batch_tokens, check_max_length
from prefcurate.models.reward import (
    TRUNCATION_SIDE,
    ModelIdentity,
    RewardEncoder,
    RewardModel,
    identify_reward_model,
    load_reward_encoder,
    load_reward_model,
)
from prefcurate.progress import progress_bar
from prefcurate.score.base import Computed, RunContext, Signal, distinct_completions, register

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")


@register
@dataclass
class RewardMargin(Signal):
    name = "reward_margin_v1"
    cli_name = "reward"
    fields = ("chosen", "rejected", "margin", "correct")
    description = "reward-model scores of chosen and rejected, their margin, and chosen > rejected (strict)"
    shard_rows: ClassVar[int] = 256  # completions per resumable shard
    shards = WorkKind.model

    model: str | None = None
    dtype: str = "auto"
    max_length: int = 2048
    batch_tokens: int = 16384

    def __post_init__(self) -> None:
        check_dtype(self.dtype)
        check_max_length(self.max_length)
        check_batch_tokens(self.batch_tokens)
        self._rm: RewardModel | None = None
        self._encoder: RewardEncoder | None = None
        self._identity: ModelIdentity | None = None

    def model_identity(self) -> ModelIdentity:
        if self._identity is None:
            self._identity = identify_reward_model(self.model, self.dtype)
        return self._identity

    def reward_model(self) -> RewardModel:
        """The weights, loaded on first use (only where shards are computed in this process)."""
        if self._rm is None:
            ident = self.model_identity()
            self._rm = load_reward_model(self.model, ident.dtype, ident.device, fingerprint=ident.fingerprint)
        return self._rm

    def encoder(self) -> RewardEncoder:
        """Tokenizer and pad id (no weights): all the driver needs."""
        if self._encoder is None:
            self._encoder = self._rm if self._rm is not None else load_reward_encoder(self.model)
        return self._encoder

    def identity(self) -> dict[str, Any]:
        # Cheap: no weights are loaded.
        ident = self.model_identity()
        return {
            "resolved_dtype": ident.dtype,
            "model_fingerprint": ident.fingerprint,
            "chat_template_hash": ident.chat_template_hash,
            "truncation": TRUNCATION_SIDE,
        }

    def _model_manifest(self) -> dict[str, Any]:
        enc, ident = self.encoder(), self.model_identity()
        return {
            "model": {
                "spec": enc.spec,
                "fingerprint": dict(ident.fingerprint),
                "dtype": ident.dtype,
                "dtype_reason": ident.dtype_reason,
                "device": ident.device,
                "template": enc.template,
                "chat_template_hash": enc.chat_template_hash,
                "max_length": self.max_length,
                "truncation": TRUNCATION_SIDE,
                "pad_token_id": enc.pad_token_id,
            },
        }

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        rm = self.encoder()
        completions = completion_texts(pairs)
        ids, tokens, lengths, truncated = [], [], [], []
        with progress_bar("tokenizing", len(completions)) as bar:
            for cid, (prompt, text) in completions.items():
                enc = rm.encode(prompt, text, self.max_length)
                ids.append(cid)
                tokens.append(enc.input_ids)
                lengths.append(len(enc.input_ids))
                truncated.append(enc.truncated)
                bar.advance(1)
        # Longest first: the packing stays tight and the first shards show the worst-case speed.
        order = sorted(range(len(ids)), key=lambda i: (-lengths[i], ids[i]))
        table = pa.table(
            {
                "completion_id": pa.array([ids[i] for i in order], pa.string()),
                "input_ids": pa.array([tokens[i] for i in order], pa.list_(pa.int32())),
                "n_tokens": pa.array([lengths[i] for i in order], pa.int32()),
            }
        )

        ident = self.model_identity()

        def score_shard(shard: pa.Table, report: Report) -> pa.Table:  # the local executor's
            return score_reward_shard(self.reward_model(), self.batch_tokens, shard, report)

        scored = ctx.map_shards(
            table,
            score_shard,
            work=RewardWork(self.model, ident.dtype, self.batch_tokens, dict(ident.fingerprint)),
            shard_rows=self.shard_rows,
            description="reward",
            tag="completions",
            weight=lambda t: float(pc.sum(t.column("n_tokens")).as_py() or 0),
            rate=lambda _t, per_s: f"{per_s:,.0f} tok/s",
        )
        score_of = dict(
            zip(scored.column("completion_id").to_pylist(), scored.column("score").to_pylist(), strict=True)
        )
        chosen = pa.array([score_of[c] for c in pairs.column("chosen_id").to_pylist()], pa.float64())
        rejected = pa.array([score_of[c] for c in pairs.column("rejected_id").to_pylist()], pa.float64())
        extra = {
            **self._model_manifest(),
            "completions": {
                "distinct": len(ids),
                "tokens": int(sum(lengths)),
                "truncated": int(sum(truncated)),
            },
        }
        table = pa.table(
            {
                "pair_id": pairs.column("pair_id"),
                self.column("chosen"): chosen,
                self.column("rejected"): rejected,
                self.column("margin"): pc.subtract(chosen, rejected),
                self.column("correct"): pc.greater(chosen, rejected),
            }
        )
        return Computed(table, extra)


def score_reward_shard(rm: RewardModel, batch_tokens: int, shard: pa.Table, report: Report) -> pa.Table:
    """One shard of tokenized completions -> their scores: the same function locally and on Ray actors."""
    values = rm.score(shard.column("input_ids").to_pylist(), batch_tokens, on_batch=report)
    return pa.table({"completion_id": shard.column("completion_id"), "score": pa.array(values, pa.float64())})


@dataclass(frozen=True)
class RewardWork:
    """What a Ray actor needs to load the reward model the driver uses (dtype resolved by the driver)."""

    model: str | None
    dtype: str
    batch_tokens: int
    fingerprint: dict[str, Any]
    gpu: bool = False  # GPU actors when the cluster has GPUs (model work), never required

    def open(self, threads: int | None) -> ShardFn:
        rm = load_reward_model(self.model, self.dtype, None, fingerprint=self.fingerprint)
        return partial(score_reward_shard, rm, self.batch_tokens)


def completion_texts(pairs: pa.Table) -> dict[str, tuple[list[dict[str, str]], str]]:
    """completion id -> (prompt messages, text), in the shared distinct-completion order."""
    prompts = pairs.column("prompt").to_pylist()
    texts = {side: pairs.column(side).to_pylist() for side in ("chosen", "rejected")}
    return {c.id: (prompts[c.row], texts[c.side][c.row]) for c in distinct_completions(pairs)}
