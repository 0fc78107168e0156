"""bf16 vs fp32 log-prob margins on real UltraFeedback-binarized pairs with the bundled SmolLM2.

Scores the first N rows of ../shared/data/ultrafeedback_binarized_flat/train_clean.jsonl (1,000 real
pairs; the prompt becomes one user message) with prefcurate's scorer in fp32 and in bf16, and reports:
the Spearman correlation of the margins (goal >= 0.99), the share of pairs whose margin sign flips,
the max and median |difference| of per-completion log-probs, the reference-free accuracy in each
dtype, and each dtype's throughput on this machine.

    .venv/bin/python benchmarks/logprob_bf16_fp32.py --pairs 1000 --max-length 512

Per-completion values are written to --out (JSONL) as they finish, and reloaded on a rerun, so a long
run can be interrupted and continued.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_flat" / "train_clean.jsonl"


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties), without scipy."""

    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1000, help="first N rows of train_clean.jsonl")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--chunk", type=int, default=32, help="completions per saved chunk")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_data" / "logprob_bf16_fp32.jsonl")
    args = ap.parse_args()

    from prefcurate.models import load_model
    from prefcurate.models.logprob import LogprobScorer

    rows = [json.loads(line) for line in DATA.read_text().splitlines()[: args.pairs]]
    done: dict[tuple[str, int, str], float | None] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            if r["max_length"] == args.max_length:
                done[(r["dtype"], r["row"], r["side"])] = r["logp"]
    throughput = {}
    for dtype in ("fp32", "bf16"):
        model, tok = load_model(None, dtype)
        scorer = LogprobScorer(model, tok, max_length=args.max_length, batch_tokens=args.batch_tokens)
        todo = [
            (i, side)
            for i in range(len(rows))
            for side in ("chosen", "rejected")
            if (dtype, i, side) not in done
        ]
        encoded = {
            k: scorer.encode([{"role": "user", "content": rows[k[0]]["prompt"]}], rows[k[0]][k[1]])
            for k in todo
        }
        todo.sort(key=lambda k: -len(encoded[k].input_ids))  # longest first, packed tightly
        tokens, seconds = 0, 0.0
        with args.out.open("a") as fh:
            for lo in range(0, len(todo), args.chunk):
                keys = todo[lo : lo + args.chunk]
                started = time.perf_counter()
                values = scorer.score([encoded[k] for k in keys])
                seconds += time.perf_counter() - started
                tokens += sum(len(encoded[k].input_ids) for k in keys)
                for k, v in zip(keys, values, strict=True):
                    done[(dtype, k[0], k[1])] = v
                    fh.write(
                        json.dumps(
                            {
                                "dtype": dtype,
                                "row": k[0],
                                "side": k[1],
                                "max_length": args.max_length,
                                "logp": v,
                            }
                        )
                        + "\n"
                    )
                fh.flush()
                print(
                    f"{dtype}: {lo + len(keys)}/{len(todo)} completions, {tokens / max(seconds, 1e-9):,.0f} tok/s",
                    flush=True,
                )
        if tokens:
            throughput[dtype] = tokens / seconds
        del model, scorer

    # Pairs whose prompt alone fills max_length have no completion token left (None): left out, counted.
    kept = [
        i
        for i in range(len(rows))
        if all(done[(d, i, s)] is not None for d in ("fp32", "bf16") for s in ("chosen", "rejected"))
    ]
    n = len(kept)
    margin = {d: [done[(d, i, "chosen")] - done[(d, i, "rejected")] for i in kept] for d in ("fp32", "bf16")}
    diffs = sorted(
        abs(done[("fp32", i, s)] - done[("bf16", i, s)]) for i in kept for s in ("chosen", "rejected")
    )
    flips = sum(1 for a, b in zip(margin["fp32"], margin["bf16"], strict=True) if (a > 0) != (b > 0))
    acc = {d: sum(1 for m in margin[d] if m > 0) / n for d in margin}
    print(
        f"pairs: {n} of {len(rows)} (max_length {args.max_length}; {len(rows) - n} left out: prompt fills max_length)"
    )
    print(f"Spearman(bf16 margins, fp32 margins) = {spearman(margin['fp32'], margin['bf16']):.5f}")
    print(f"sign flips: {flips}/{n} = {flips / n:.2%}")
    print(f"|logp fp32 - bf16| per completion: median {diffs[len(diffs) // 2]:.3f}, max {diffs[-1]:.3f} nats")
    print(
        f"reference-free accuracy (chosen_logp > rejected_logp): fp32 {acc['fp32']:.3f}, bf16 {acc['bf16']:.3f}"
    )
    for d, rate in throughput.items():
        print(f"throughput {d}: {rate:,.0f} tok/s (this run's newly scored completions)")


if __name__ == "__main__":
    main()
