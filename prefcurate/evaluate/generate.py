"""`eval generate`: samples for a suite's prompts, in human-eval's samples format, resumable.

The transformers backend is the reference (and the CPU path): prompts are sorted by length and
batched with left padding, decoded with the KV cache, one step for the whole batch. Every
(task, sample) job has its own seed, derived from `--seed`, the task id and the sample index, and
its own torch.Generator: a prompt gets the same draws in every arm and whatever batch it lands
in. Greedy decoding when temperature is 0. HumanEval prompts are code prefixes completed as
plain text and cut at the Codex stop sequences; MBPP prompts are instructions, wrapped in the
model's chat template when it has one. The vLLM backend (GPU) gets the same per-job seeds.

Rows are appended to the output file as batches finish, next to a `.meta.json` holding the
generation settings; a rerun with the same settings skips the jobs already written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..progress import progress_bar
from .suites import HUMANEVAL_STOP, MBPP_STOP, Problem, load_holdout_suite, load_suite

BACKENDS = ("transformers", "vllm")


@dataclass
class GenerateOptions:
    model: str | None  # a model spec (prefcurate.models); None = the bundled SmolLM2
    suite: str
    out: str
    n: int = 1
    temperature: float = 0.0
    top_p: float = 0.95
    seed: int = 0
    max_new_tokens: int = 384
    batch_size: int = 16
    backend: str = "transformers"
    dtype: str = "fp32"
    limit: int | None = None  # first N problems
    data_dir: str | None = None
    store: str | None = None  # for holdout:<dataset>

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise ConfigError(f"--temperature must be >= 0, got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise ConfigError(
                "--n > 1 with --temperature 0 gives n identical greedy samples; set a temperature"
            )
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r} is not one of: {', '.join(BACKENDS)}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("--batch-size and --max-new-tokens must be at least 1")


@dataclass(frozen=True)
class Job:
    task_id: str
    sample: int
    seed: int
    text: str  # the exact prompt text given to the model (chat template applied when chat)
    stop: tuple[str, ...]
    messages: tuple[dict[str, str], ...] = ()  # kept in the row for conversation prompts (winrate)


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


def job_seed(seed: int, task_id: str, sample: int) -> int:
    """The seed of one (task, sample): independent of the batch, the arm and the backend."""
    digest = hashlib.sha256(f"{seed}|{task_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def prompt_text(problem: Problem, tokenizer: Any) -> tuple[str, tuple[str, ...]]:
    """What the model is given, and where to stop (see the module doc)."""
    if problem.chat and getattr(tokenizer, "chat_template", None):
        messages = list(problem.messages) or [{"role": "user", "content": problem.prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), ()
    return problem.prompt, (HUMANEVAL_STOP if not problem.chat else MBPP_STOP)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop sequence, and whether one was found."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


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


def generate(opts: GenerateOptions) -> GenerateResult:
    """Generate (or resume) the samples file `opts.out`; returns counts and throughput."""
    opts.validate()
    from ..models import model_fingerprint

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

    engine = _open_backend(opts)
    jobs = []
    for p in problems:
        text, stop = prompt_text(p, engine.tokenizer)
        for j in range(opts.n):
            if (p.task_id, j) not in done:
                jobs.append(Job(p.task_id, j, job_seed(opts.seed, p.task_id, j), text, stop, p.messages))
    result = GenerateResult(out, 0, len(done), meta=meta)
    start = time.perf_counter()
    with (
        open(out, "a", encoding="utf-8") as fh,
        progress_bar("generate", len(jobs), rate_field="rate") as bar,
    ):
        for rows, prompt_tokens, new_tokens in engine.run(jobs, opts):
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            result.written += len(rows)
            result.prompt_tokens += prompt_tokens
            result.new_tokens += new_tokens
            elapsed = time.perf_counter() - start
            bar.advance(len(rows), rate=f"{result.new_tokens / max(elapsed, 1e-9):.0f} tok/s")
    result.seconds = time.perf_counter() - start
    return result


def _open_backend(opts: GenerateOptions) -> Any:
    if opts.backend == "vllm":
        from .generate_vllm import VllmGenerator

        return VllmGenerator.open(opts.model, opts.dtype)
    from .generate_hf import HFGenerator

    return HFGenerator.open(opts.model, opts.dtype)


def finish_row(job: Job, text: str, reason: str, prompt_tokens: int, new_tokens: int) -> dict[str, Any]:
    completion, stopped = cut_at_stop(text, job.stop)
    extra = {"prompt": list(job.messages)} if job.messages else {}
    return {
        "task_id": job.task_id,
        "sample": job.sample,
        "completion": completion,
        "seed": job.seed,
        "finish": "stop" if stopped else reason,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": new_tokens,
        **extra,
    }
