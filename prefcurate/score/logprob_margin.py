"""logprob_margin_v1: log-prob of chosen vs rejected under a (reference) model.

Per pair: ``chosen_logp`` / ``rejected_logp`` are sums of log pi(token | prompt, earlier tokens) over
the completion tokens (TRL's DPO completion span, see prefcurate.models.logprob), ``margin`` is their
difference (the sDPO paper's gamma_ref when the model is the reference), ``margin_per_token`` the
difference of per-token means, and ``correct`` / ``correct_per_token`` say whether the model prefers
the chosen completion (strictly; the reference-free reward accuracy of sDPO).

Work is per completion, keyed by completion id: a completion shared by several pairs is scored once.
Finished completions go to a cache inside the store (``.cache/logprobs/<key>/``, key = model
fingerprint, resolved dtype, backend, max length, template), so other pair versions, other datasets
and the implicit-reward signal reuse them. Scoring runs through ``RunContext.map_shards``: an
interrupted run resumes from its finished shards and gives the same values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate.errors import ConfigError
from prefcurate.execution import ExecutorKind, ShardFn, WorkKind
from prefcurate.execution.work import Report
from prefcurate.extras import lazy_module
from prefcurate.ids import fingerprint
from prefcurate.models.dtypes import check_dtype
from prefcurate.models.encoding import check_batch_tokens, check_max_length
from prefcurate.score.base import Computed, RunContext, Signal, distinct_completions, register
from prefcurate.store import write_parquet
from prefcurate.store.versions import CACHE_SUFFIX

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")
    pq = lazy_module("pyarrow.parquet")


class Backend(str, Enum):
    """Where log-probs are computed."""

    transformers = "transformers"
    vllm = "vllm"


BACKENDS = tuple(m.value for m in Backend)
# Completions per resumable shard: small enough that a shard takes seconds on a CPU (progress, resume),
# growing with the batch budget so GPU runs are not split into tiny shards.
MIN_SHARD_ROWS = 64


def cache_schema() -> pa.Schema:
    """A row of the per-completion log-prob cache."""
    return pa.schema(
        [
            ("completion_id", pa.string()),
            ("logp", pa.float64()),
            ("tokens", pa.int32()),
            ("truncated", pa.bool_()),
        ]
    )


@register
@dataclass
class LogprobMargin(Signal):
    name = "logprob_margin_v1"
    cli_name = "logprob-margin"
    fields = (
        "chosen_logp",
        "rejected_logp",
        "chosen_tokens",
        "rejected_tokens",
        "margin",
        "margin_per_token",
        "chosen_truncated",
        "rejected_truncated",
        "correct",
        "correct_per_token",
    )
    description = "log pi(chosen|x) - log pi(rejected|x) under a model (sums over completion tokens)"
    shards = WorkKind.model

    model: str | None = None  # None: the bundled SmolLM2-135M-Instruct
    backend: str = "transformers"
    dtype: str = "auto"
    # 512 matches the trainers' default --max-length, so the values can be injected as DPO reference log-probs.
    max_length: int = 512
    batch_tokens: int = 8192

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r} is not one of: {', '.join(BACKENDS)}")
        check_dtype(self.dtype)
        check_max_length(self.max_length)
        check_batch_tokens(self.batch_tokens)

    def identity(self) -> dict[str, Any]:
        from prefcurate.models import model_fingerprint

        return {"model_fingerprint": model_fingerprint(self.model)}

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        values, extra = completion_logps(pairs, ctx, self)
        return Computed(pair_columns(self, pairs, values), extra)


def completion_logps(
    pairs: pa.Table, ctx: RunContext, options: LogprobMargin
) -> tuple[dict[str, tuple], dict[str, Any]]:
    """completion_id -> (logp, tokens, truncated) for every chosen/rejected completion of `pairs`,
    plus the manifest entries that identify the computation."""
    from prefcurate.models import model_fingerprint
    from prefcurate.models.dtypes import resolve_dtype
    from prefcurate.models.encoding import TRUNCATION, chat_template_hash
    from prefcurate.models.logprob import PendingScorer, open_scorer

    model_fp = model_fingerprint(options.model)
    # Remote shards (Ray): the driver only tokenizes; the actors load the model (GPU actors for vLLM).
    remote = ctx.executor.kind is not ExecutorKind.local
    # transformers: the tokenizer now, the model in a thread once there is work (tokenize while it loads).
    scorer: Any
    if options.backend == "transformers" or remote:
        scorer = PendingScorer(
            options.model,
            dtype=options.dtype,
            max_length=options.max_length,
            batch_tokens=options.batch_tokens,
        )
        # vLLM runs on CUDA: "auto" resolves for it, not for this (maybe GPU-less) driver.
        dtype = scorer.dtype if options.backend == "transformers" else resolve_dtype(options.dtype, "cuda")[0]
    else:
        scorer = open_scorer(
            options.model,
            backend=options.backend,
            dtype=options.dtype,
            max_length=options.max_length,
            batch_tokens=options.batch_tokens,
        )
        dtype = scorer.dtype
    identity = {
        "model_fingerprint": model_fp,
        "dtype": dtype,
        "chat_template_hash": chat_template_hash(scorer.tokenizer),
        "max_length": options.max_length,
        "truncation": TRUNCATION,
        "template": scorer.template,
        "backend": options.backend,
    }
    key = fingerprint({"scorer": "logprob_v1", **identity})
    cache = CompletionCache(ctx.store.root / ".cache" / "logprobs" / key)
    known = cache.load()

    todo = _distinct_completions(pairs)
    missing = [c for c in todo if c[0] not in known]
    started = time.perf_counter()
    scored_tokens = 0
    if missing:
        if isinstance(scorer, PendingScorer) and not remote:
            scorer.start()
        table = _encode_missing(scorer, missing)
        scored_tokens = int(pc.sum(pc.list_value_length(table.column("input_ids"))).as_py() or 0)
        tag = "logp-" + fingerprint({"key": key, "ids": table.column("completion_id").to_pylist()})[:16]
        state = {"done": 0}
        loaded: list[Any] = []

        def score_shard(shard: pa.Table, report: Report) -> pa.Table:
            if not loaded:  # the local model, loaded on the first shard only (none when all resumed)
                loaded.append(scorer.result() if isinstance(scorer, PendingScorer) else scorer)
            return score_logprob_shard(loaded[0], shard, report)

        def tokens_of(t: pa.Table) -> float:
            return float(pc.sum(pc.list_value_length(t.column("input_ids"))).as_py() or 0)

        def rate(shard: pa.Table, per_second: float) -> str:  # once per finished shard, any executor
            state["done"] += shard.num_rows
            return f"{state['done']:,}/{len(missing):,} completions  {per_second:,.0f} tok/s"

        work = LogprobWork(options.model, options.backend, dtype, options.max_length, options.batch_tokens)
        result = ctx.map_shards(
            table,
            score_shard,
            work=work,
            shard_rows=max(MIN_SHARD_ROWS, options.batch_tokens // 128),
            description=f"log-probs ({dtype}, tokens)",
            tag=tag,
            weight=tokens_of,
            rate=rate,
        )
        cache.add(result, tag)
        known.update(CompletionCache.as_dict(result))
    seconds = time.perf_counter() - started
    extra = {
        **identity,
        "completions": {
            "distinct": len(todo),
            "from_cache": len(todo) - len(missing),
            "scored": len(missing),
            "tokens_scored": scored_tokens,
            "seconds": round(seconds, 3),
            "tokens_per_second": round(scored_tokens / seconds, 1) if missing and seconds > 0 else None,
        },
    }
    return known, extra


def score_logprob_shard(scorer: Any, shard: pa.Table, report: Report) -> pa.Table:
    """One shard of encoded completions -> CACHE_SCHEMA rows: the same function locally and on Ray actors."""
    items = _to_encoded(shard)
    logps = scorer.score(items, on_batch=lambda _n, tokens: report(tokens))
    return pa.table(
        {
            "completion_id": shard.column("completion_id"),
            "logp": pa.array(logps, pa.float64()),
            "tokens": pa.array([it.n_tokens for it in items], pa.int32()),
            "truncated": shard.column("truncated"),
        },
        schema=cache_schema(),
    )


@dataclass(frozen=True)
class LogprobWork:
    """What a Ray actor needs to build the scorer the driver would use (`dtype` already resolved
    by the driver, so a GPU actor does not pick another one for "auto")."""

    model: str | None
    backend: str
    dtype: str
    max_length: int
    batch_tokens: int

    @property
    def gpu(self) -> bool:  # vLLM needs one; transformers takes one when the cluster has GPUs
        return self.backend == Backend.vllm.value

    def open(self, threads: int | None) -> ShardFn:
        from prefcurate.models.logprob import open_scorer

        scorer = open_scorer(
            self.model,
            backend=self.backend,
            dtype=self.dtype,
            max_length=self.max_length,
            batch_tokens=self.batch_tokens,
        )
        return partial(score_logprob_shard, scorer)


def _distinct_completions(pairs: pa.Table) -> list[tuple[str, list[dict[str, str]], str]]:
    """(completion_id, prompt, text) of every chosen and rejected completion, each id once, sorted by id."""
    prompts = pairs.column("prompt").to_pylist()
    texts = {side: pairs.column(side).to_pylist() for side in ("chosen", "rejected")}
    return [(c.id, prompts[c.row], texts[c.side][c.row]) for c in distinct_completions(pairs)]


def _encode_missing(scorer: Any, missing: list[tuple[str, list[dict[str, str]], str]]) -> pa.Table:
    """Token ids of each completion after its prompt, longest first (so batches pack tightly and a
    run that would run out of memory fails in its first shard, not its last)."""
    from prefcurate.progress import progress_bar

    encoded = []
    with progress_bar("tokenizing", len(missing)) as bar:
        for cid, prompt, text in missing:
            encoded.append((cid, scorer.encode(prompt, text)))
            bar.advance(1)
    encoded.sort(key=lambda e: (-len(e[1].input_ids), e[0]))
    return pa.table(
        {
            "completion_id": pa.array([cid for cid, _ in encoded], pa.string()),
            "input_ids": pa.array([list(e.input_ids) for _, e in encoded], pa.list_(pa.int32())),
            "start": pa.array([e.start for _, e in encoded], pa.int32()),
            "truncated": pa.array([e.truncated for _, e in encoded], pa.bool_()),
        }
    )


def _to_encoded(shard: pa.Table) -> list[Any]:
    from prefcurate.models.encoding import Encoded

    return [
        Encoded(tuple(r["input_ids"]), r["start"], r["truncated"])
        for r in shard.select(["input_ids", "start", "truncated"]).to_pylist()
    ]


class CompletionCache:
    """Per-completion log-probs for one scoring identity: parquet parts, appended, never edited."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self) -> dict[str, tuple]:
        known: dict[str, tuple] = {}
        # `part-*.parquet`: caches written before CACHE_SUFFIX (still valid, still read)
        parts = [*self.folder.glob("part-*.parquet"), *self.folder.glob(f"part-*{CACHE_SUFFIX}")]
        for part in sorted(parts):
            known.update(self.as_dict(pq.read_table(part)))
        return known

    def add(self, table: pa.Table, tag: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_parquet(table.cast(cache_schema()), self.folder / f"part-{tag}{CACHE_SUFFIX}")

    @staticmethod
    def as_dict(table: pa.Table) -> dict[str, tuple]:
        cols = [table.column(c).to_pylist() for c in ("completion_id", "logp", "tokens", "truncated")]
        return {cid: (lp, n, tr) for cid, lp, n, tr in zip(*cols, strict=True)}


def pair_columns(signal: Signal, pairs: pa.Table, values: dict[str, tuple]) -> pa.Table:
    """The per-pair sidecar table from per-completion values."""
    chosen = [values[c] for c in pairs.column("chosen_id").to_pylist()]
    rejected = [values[c] for c in pairs.column("rejected_id").to_pylist()]
    c_lp, r_lp = [v[0] for v in chosen], [v[0] for v in rejected]
    c_n, r_n = [v[1] for v in chosen], [v[1] for v in rejected]
    margin: list[float | None] = []
    per_token: list[float | None] = []
    correct: list[bool | None] = []
    correct_pt: list[bool | None] = []
    for a, b, na, nb in zip(c_lp, r_lp, c_n, r_n, strict=True):
        if a is None or b is None:
            for column in (margin, per_token, correct, correct_pt):
                column.append(None)
            continue
        ma, mb = a / na, b / nb
        margin.append(a - b)
        per_token.append(ma - mb)
        correct.append(a > b)  # strict: a tie is not correct
        correct_pt.append(ma > mb)
    col = signal.column
    return pa.table(
        {
            "pair_id": pairs.column("pair_id"),
            col("chosen_logp"): pa.array(c_lp, pa.float64()),
            col("rejected_logp"): pa.array(r_lp, pa.float64()),
            col("chosen_tokens"): pa.array(c_n, pa.int32()),
            col("rejected_tokens"): pa.array(r_n, pa.int32()),
            col("margin"): pa.array(margin, pa.float64()),
            col("margin_per_token"): pa.array(per_token, pa.float64()),
            col("chosen_truncated"): pa.array([v[2] for v in chosen], pa.bool_()),
            col("rejected_truncated"): pa.array([v[2] for v in rejected], pa.bool_()),
            col("correct"): pa.array(correct, pa.bool_()),
            col("correct_per_token"): pa.array(correct_pt, pa.bool_()),
        }
    )
