"""Generation throughput of `eval generate`'s transformers backend vs one-prompt-at-a-time
`model.generate`, same model, same prompts, same number of new tokens, in one run.

  ours        HFGenerator: length-sorted batches of --batch-size prompts, left padding, KV cache
  one-by-one  `model.generate(**tokenizer(prompt), max_new_tokens=N, do_sample=False)` per prompt

Greedy, stop sequences off on both sides (every row decodes exactly --new-tokens unless it hits
EOS), so new tokens per second compare like for like; the texts are compared too.

    .venv/bin/python benchmarks/eval_generate.py [--model bundled] [--prompts 16] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefcurate.evaluate.generate import GenerateOptions, Job  # noqa: E402
from prefcurate.evaluate.generate_hf import HFGenerator  # noqa: E402
from prefcurate.evaluate.suites import load_suite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="fp32")
    args = ap.parse_args()
    import torch

    gen = HFGenerator.open(None if args.model == "bundled" else args.model, args.dtype)
    problems = load_suite("humaneval").problems[: args.prompts]
    jobs = [Job(p.task_id, 0, 0, p.prompt, ()) for p in problems]
    opts = GenerateOptions(
        model=None, suite="humaneval", out="-", max_new_tokens=args.new_tokens, batch_size=args.batch_size
    )
    print(
        f"{len(jobs)} HumanEval prompts, {args.new_tokens} new tokens each, torch threads {torch.get_num_threads()}"
    )

    start = time.perf_counter()
    ours_rows, ours_tokens = [], 0
    for rows, _prompt_tokens, _new in gen.run(jobs, opts):
        ours_rows.extend(rows)
        ours_tokens += sum(r["completion_tokens"] for r in rows)
    t_ours = time.perf_counter() - start

    tok, model = gen.tokenizer, gen.model
    start = time.perf_counter()
    ref_texts, ref_tokens = {}, 0
    with torch.inference_mode():
        for job in jobs:
            ids = tok(job.text, add_special_tokens=False, return_tensors="pt")
            out = model.generate(
                **ids, max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=tok.eos_token_id
            )
            new = out[0, ids["input_ids"].shape[1] :].tolist()
            if tok.eos_token_id in new:
                new = new[: new.index(tok.eos_token_id)]
            ref_tokens += len(new)
            ref_texts[job.task_id] = tok.decode(new, skip_special_tokens=True)
    t_ref = time.perf_counter() - start

    same = sum(r["completion"] == ref_texts[r["task_id"]] for r in ours_rows)
    print("\n| generator | seconds | new tokens | tokens/s |")
    print("|---|---:|---:|---:|")
    print(
        f"| ours (batch {args.batch_size}, KV cache) | {t_ours:.1f} | {ours_tokens} | {ours_tokens / t_ours:.1f} |"
    )
    print(f"| model.generate, one prompt at a time | {t_ref:.1f} | {ref_tokens} | {ref_tokens / t_ref:.1f} |")
    print(f"\nspeed-up in tokens/s: {(ours_tokens / t_ours) / (ref_tokens / t_ref):.2f}x")
    print(f"identical greedy texts: {same} of {len(jobs)}")


if __name__ == "__main__":
    main()
