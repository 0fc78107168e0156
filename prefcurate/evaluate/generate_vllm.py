"""The vLLM generation backend (GPU): same jobs, same per-job seeds, same stop sequences."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..extras import require
from .jobs import GenerateOptions, Job, finish_row


class VllmGenerator:
    def __init__(self, llm: Any, tokenizer: Any) -> None:
        self.llm, self.tokenizer = llm, tokenizer

    @classmethod
    def open(cls, spec: str | None, dtype: str = "fp32") -> VllmGenerator:
        vllm = require("vllm", "eval generate --backend vllm")
        from ..models import bundled_checkpoint

        source = str(bundled_checkpoint()) if spec is None else str(spec)
        dtypes = {"fp32": "float32", "bf16": "bfloat16", "auto": "auto"}
        llm = vllm.LLM(model=source, dtype=dtypes.get(dtype, "auto"), seed=0)
        return cls(llm, llm.get_tokenizer())

    def run(
        self, jobs: Sequence[Job], opts: GenerateOptions
    ) -> Iterator[tuple[list[dict[str, Any]], int, int]]:
        vllm = require("vllm", "eval generate --backend vllm")
        params = [
            vllm.SamplingParams(
                temperature=opts.temperature,
                top_p=opts.top_p if opts.temperature > 0 else 1.0,
                max_tokens=opts.max_new_tokens,
                seed=job.seed,
                stop=list(job.stop) or None,
            )
            for job in jobs
        ]
        # vLLM schedules the batch itself; yield in chunks so the file and the progress move.
        chunk = max(opts.batch_size, 64)
        for start in range(0, len(jobs), chunk):
            part = list(jobs[start : start + chunk])
            outs = self.llm.generate([j.text for j in part], params[start : start + chunk], use_tqdm=False)
            rows, prompt_tokens, new_tokens = [], 0, 0
            for job, res in zip(part, outs, strict=True):
                comp = res.outputs[0]
                n_new = len(comp.token_ids)
                reason = (
                    "stop"
                    if comp.finish_reason == "stop" and comp.stop_reason
                    else ("eos" if comp.finish_reason == "stop" else "length")
                )
                rows.append(finish_row(job, comp.text, reason, len(res.prompt_token_ids), n_new))
                prompt_tokens += len(res.prompt_token_ids)
                new_tokens += n_new
            yield rows, prompt_tokens, new_tokens
