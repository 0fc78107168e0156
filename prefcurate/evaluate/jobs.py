"""What one generation job is and how a finished one becomes a samples row (shared by the
transformers and vLLM generators and by `eval generate`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import ConfigError


class Backend(str, Enum):
    """Generation backend: transformers is the reference and the CPU path; vLLM needs a GPU."""

    transformers = "transformers"
    vllm = "vllm"


BACKENDS = tuple(b.value for b in Backend)


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


def job_seed(seed: int, task_id: str, sample: int) -> int:
    """The seed of one (task, sample): independent of the batch, the arm and the backend."""
    digest = hashlib.sha256(f"{seed}|{task_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop sequence, and whether one was found."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


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
