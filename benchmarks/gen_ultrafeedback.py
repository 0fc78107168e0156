"""Generate an UltraFeedback-shaped JSONL file (the raw openbmb/UltraFeedback schema) of any size.

Text lengths follow the real data roughly (log-normal; medians in characters: instruction
~350, response ~900, critique ~350, rationale ~180), ratings are 1-5 strings with ~2% "N/A",
overall_score 1-10 in steps of 0.5, fine-grained_score the mean of the aspect ratings.
Seeded: the same arguments give the same file.

    python benchmarks/gen_ultrafeedback.py --prompts 64000 --out benchmarks/_data/uf_64k.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SOURCES = [
    "evol_instruct",
    "false_qa",
    "flan_v2_cot",
    "flan_v2_niv2",
    "sharegpt",
    "truthful_qa",
    "ultrachat",
    "ultrafeedback",
]
MODELS = [
    "gpt-4",
    "gpt-3.5-turbo",
    "llama-2-70b-chat",
    "llama-2-13b-chat",
    "vicuna-33b",
    "wizardlm-70b",
    "falcon-40b-instruct",
    "starchat",
    "mpt-30b-chat",
    "ultralm-65b",
    "bard",
    "pythia-12b",
]
ASPECTS = ["helpfulness", "honesty", "instruction_following", "truthfulness"]
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so what up out about who can more no them "
    "model answer question because step first then therefore however example data result value function python "
    "table city water history science people time year way day thing man world life hand part child eye woman"
).split()


class TextPool:
    """Slices of one long random word stream: fast, and every slice is different text."""

    def __init__(self, rng: random.Random, size: int = 4_000_000) -> None:
        words: list[str] = []
        total = 0
        while total < size:
            w = rng.choice(WORDS)
            if rng.random() < 0.06:
                w += rng.choice([".", ",", "?", ".\n\n", ":\n- "])
            words.append(w)
            total += len(w) + 1
        self.text = " ".join(words)
        self.rng = rng

    def take(self, median: float, sigma: float = 0.8, cap: int = 12_000) -> str:
        n = max(8, min(cap, int(self.rng.lognormvariate(0, sigma) * median)))
        start = self.rng.randrange(0, len(self.text) - n)
        return self.text[start : start + n]


def make_row(rng: random.Random, pool: TextPool, completions: int) -> dict:
    comps = []
    models = rng.sample(MODELS, completions)
    for model in models:
        ratings = [("N/A" if rng.random() < 0.02 else str(rng.randint(1, 5))) for _ in ASPECTS]
        nums = [int(r) for r in ratings if r != "N/A"]
        annotations = {}
        for aspect, rating in zip(ASPECTS, ratings, strict=True):
            ann: dict = {"Rating": rating, "Rationale": pool.take(180, 0.5)}
            if aspect in ("helpfulness", "truthfulness"):
                ann = {"Type": [str(rng.randint(1, 3))], **ann, "Rationale For Rating": pool.take(150, 0.5)}
            annotations[aspect] = ann
        comps.append(
            {
                "model": model,
                "principle": rng.choice(ASPECTS),
                "custom_system_prompt": pool.take(150, 0.4),
                "response": pool.take(900),
                "annotations": annotations,
                "critique": pool.take(350, 0.5),
                "overall_score": rng.randint(2, 20) / 2,
                "fine-grained_score": round(sum(nums) / len(nums), 2) if nums else None,
            }
        )
    return {
        "source": rng.choice(SOURCES),
        "instruction": pool.take(350, 1.0, cap=20_000),
        "models": models,
        "completions": comps,
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    }


def generate(out: Path, prompts: int, completions: int = 4, seed: int = 0) -> Path:
    rng = random.Random(seed)
    pool = TextPool(rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        for _ in range(prompts):
            fh.write(json.dumps(make_row(rng, pool, completions)) + "\n")
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64_000)
    ap.add_argument("--completions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    path = generate(args.out, args.prompts, args.completions, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {args.prompts:,} prompts x {args.completions})")


if __name__ == "__main__":
    main()
