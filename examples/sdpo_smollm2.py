"""Stepwise DPO (sDPO) vs plain DPO vs curriculum DPO on the bundled SmolLM2-135M-Instruct, on CPU.

Real UltraFeedback-binarized pairs (../shared/data/ultrafeedback_binarized_flat, a seeded subset of
trl-lib/ultrafeedback_binarized) are split into easy-to-hard buckets by score gap (a large gap between
the chosen and rejected rating is easy), then trained three ways with the same data, seed and steps:

    plain       all buckets at once, shuffled (the DPO baseline)
    curriculum  bucket by bucket; the reference stays the starting model (Curri-DPO, non-iterative)
    stepwise    bucket by bucket; reference and start = the previous stage's model (sDPO)

After every stage the model is evaluated on held-out pairs (eval_clean.jsonl: other prompts): the
implicit-reward accuracy against the starting model, and the mean gamma = log pi(y_w|x) - log pi(y_l|x)
of the stage's model (sDPO's diagnostic: it should rise from stage to stage). The plain arm, one stage,
is also checkpointed (`save_at_steps`) and evaluated at the bucketed arms' stage boundaries, so every
stage has a plain model at the same global step to be compared with. The eval table at the end
(`prefcurate eval holdout` + `eval compare --control plain`) gives every accuracy a 95% paired
bootstrap interval and each schedule's difference to plain at the same global step an interval and
an exact McNemar test (Holm-adjusted). This is a measurement, not a demonstration that curriculum
wins: with a few dozen held-out pairs an interval is about +-0.2 wide.

    .venv/bin/python examples/sdpo_smollm2.py                       # defaults sized for a 2-core CPU
    .venv/bin/python examples/sdpo_smollm2.py --pairs-per-bucket 64 --holdout-pairs 64   # bigger
    .venv/bin/python examples/sdpo_smollm2.py --smoke               # minutes: checks the pipeline only

Only pairs whose prompt fits in half of --max-length are used; completions are cut at --max-length
(TRL's keep-start truncation), the same for training and evaluation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's prefcurate and trainers, not an installed copy
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_flat"


def read_pairs(path: Path) -> list[dict]:
    rows = []
    with path.open() as fh:
        for i, line in enumerate(fh):
            r = json.loads(line)
            meta = r.get("metadata") or {}
            sc, sr = meta.get("score_chosen"), meta.get("score_rejected")
            if sc is None or sr is None or sc == sr:
                continue  # ties carry no preference
            rows.append(
                {
                    "pair_id": f"{path.stem}-{i:04d}",
                    "prompt": [{"role": "user", "content": r["prompt"]}],
                    "chosen": [{"role": "assistant", "content": r["chosen"]}],
                    "rejected": [{"role": "assistant", "content": r["rejected"]}],
                    "gap": float(sc) - float(sr),
                }
            )
    return rows


def fits(tokenizer, row: dict, max_length: int) -> bool:
    """The prompt takes at most half of max_length, so every completion keeps at least half (TRL cuts the rest)."""
    ids = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    return len(ids) <= max_length // 2


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [{k: r[k] for k in ("pair_id", "prompt", "chosen", "rejected")} for r in rows]
    )


def print_eval_table(out: Path, schedules: list[str], control: str) -> None:
    """`eval holdout` per run, then `eval compare --control`: held-out accuracy per pair with 95%
    intervals, each arm's difference to the control at the same global step, exact McNemar, Holm."""
    from prefcurate.evaluate.compare import compare, markdown
    from prefcurate.evaluate.holdout import holdout_results

    for schedule in schedules:
        holdout_results(out / schedule)
    folders = [out / s / "evals" / "holdout" for s in schedules]
    ctrl = str(out / control / "evals" / "holdout") if control in schedules else None
    print(f"\n== held-out preference accuracy, differences to {control} (eval compare) ==")
    print(markdown(compare(folders, control=ctrl)))
    print(
        "\n(±: half-width of the difference's 95% interval: smaller true differences are invisible at this size.)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model", default=None, help="starting model (default: the bundled SmolLM2-135M-Instruct)"
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("sdpo-out"))
    ap.add_argument("--buckets", type=int, default=3)
    ap.add_argument("--pairs-per-bucket", type=int, default=12)
    ap.add_argument("--holdout-pairs", type=int, default=12)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedules", default="plain,curriculum,stepwise")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        # 96: the chat template alone takes ~30 tokens, so no prompt fits in half of 64
        args.pairs_per_bucket, args.holdout_pairs, args.max_length = 2, 4, 96

    import torch

    torch.set_num_threads(2)
    import trainers
    from prefcurate.store import Store
    from trainers.checkpoint import load_for_training

    if not (args.data / "train_clean.jsonl").is_file():
        print(f"data not found: {args.data} (see ../shared/data/SOURCES.md)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    _, tokenizer = load_for_training(args.model)
    rng = random.Random(args.seed)

    train = read_pairs(args.data / "train_clean.jsonl")
    rng.shuffle(train)
    need = args.buckets * args.pairs_per_bucket
    chosen_rows = []
    for row in train:
        if fits(tokenizer, row, args.max_length):
            chosen_rows.append(row)
            if len(chosen_rows) == need:
                break
    if len(chosen_rows) < need:
        print(
            f"only {len(chosen_rows)} pairs have a prompt within {args.max_length // 2} tokens; lower --pairs-per-bucket",
            file=sys.stderr,
        )
        return 1
    # Easy to hard: a large rating gap is easy. Ties broken by pair_id so the buckets are deterministic.
    chosen_rows.sort(key=lambda r: (-r["gap"], r["pair_id"]))
    buckets = [
        to_table(chosen_rows[k * args.pairs_per_bucket : (k + 1) * args.pairs_per_bucket])
        for k in range(args.buckets)
    ]
    held_rows = read_pairs(args.data / "eval_clean.jsonl")
    rng.shuffle(held_rows)
    holdout = to_table([r for r in held_rows if fits(tokenizer, r, args.max_length)][: args.holdout_pairs])
    gaps = [
        [r["gap"] for r in chosen_rows[k * args.pairs_per_bucket : (k + 1) * args.pairs_per_bucket]]
        for k in range(args.buckets)
    ]
    print(
        f"data: {need} training pairs in {args.buckets} buckets of {args.pairs_per_bucket} (score gap per bucket: "
        + ", ".join(f"{min(g):g}-{max(g):g}" for g in gaps)
        + f"); {holdout.num_rows} held-out pairs; max length {args.max_length}"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    store = Store(args.out / "store")
    results = {}
    schedules = args.schedules.split(",")
    # The bucketed arms first: plain is then checkpointed where their stages ended.
    boundaries: tuple[int, ...] = ()
    for schedule in sorted(schedules, key=lambda s: s == "plain"):
        run_dir = args.out / schedule
        done = [args.out / s / "eval" / "start.parquet" for s in schedules]
        first = next((p for p in done if p.is_file()), None)
        if first is not None and not (run_dir / "eval" / "start.parquet").exists():
            # Same starting model, same held-out pairs: its log-probs are computed once for all schedules.
            (run_dir / "eval").mkdir(parents=True, exist_ok=True)
            shutil.copy(first, run_dir / "eval" / "start.parquet")
        t0 = time.perf_counter()
        result = trainers.run(
            buckets,
            run_dir,
            store=store,
            holdout=holdout,
            model=args.model,
            schedule=schedule,
            beta=args.beta,
            learning_rate=args.lr,
            epochs_per_stage=args.epochs,
            batch_size=args.batch_size,
            max_length=args.max_length,
            seed=args.seed,
            order="shuffle",
            run_name=f"sdpo-example-{schedule}",
            echo=lambda line: print("  " + line, flush=True),
            save_at_steps=boundaries if schedule == "plain" else (),
        )
        if schedule != "plain" and not boundaries:
            ends = itertools.accumulate(s.steps for s in result.stages)
            boundaries = tuple(ends)[:-1]  # the last one is plain's own end
        results[schedule] = (result, time.perf_counter() - t0)
        print(f"{schedule}: {time.perf_counter() - t0:.0f}s", flush=True)

    print()
    print(
        "| schedule | stage | buckets | steps | reference | ref log-probs | held-out accuracy | held-out mean gamma |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results = {s: results[s] for s in schedules}  # the order asked for
    for schedule, (result, _seconds) in results.items():
        for row in result.summary().to_pylist():
            acc = "-" if row["holdout_accuracy"] is None else f"{row['holdout_accuracy']:.3f}"
            gamma = "-" if row["holdout_gamma"] is None else f"{row['holdout_gamma']:.3f}"
            print(
                f"| {schedule} | {row['stage']} | {row['buckets']} | {row['steps']} | {row['reference']} | {row['ref_logps']} | {acc} | {gamma} |"
            )
    print_eval_table(args.out, list(results), control="plain")
    print("\nwall time: " + ", ".join(f"{s} {sec / 60:.1f} min" for s, (_, sec) in results.items()))
    print(
        f"\ntotal {(time.perf_counter() - started) / 60:.1f} min; runs in {args.out}, metrics in {store.root} "
        f'(prefcurate sql --store {store.root} "select * from runs")'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
