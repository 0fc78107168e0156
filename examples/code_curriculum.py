"""The code-DPO curriculum recipe, small, on CPU: does ordering pairs by difficulty help pass@1?

One command runs the whole experiment with the bundled SmolLM2-135M-Instruct:

 1. generate --samples completions per MBPP *train* problem (task ids 601-974) at temperature 0.8
    (`prefcurate eval generate --suite mbpp:train`);
 2. add MBPP's reference solution to each problem's samples (`--with-reference`, on by default:
    a 135M model rarely passes an MBPP problem, so without it almost every problem is a tie), test
    them in the sandbox and pair the best against the worst completion of each problem
    (`prefcurate build code --pairing best-vs-worst`);
 3. score each pair's log-prob distance under the start model (`score --by logprob-margin`) and cut
    at the 10th/50th/90th percentiles, pruning the extremes below the 5th and above the 95th
    (`partition --strategy percentiles --cuts 10,50,90 --drop-extremes 5,95`);
 4. train three arms with the same pairs, seed and batch size, so their global steps line up:
      curriculum   bucket by bucket, easy to hard (reference = start model)
      shuffled     the same bucket sizes, pairs assigned at random (`partition --strategy random --like`)
      plain        all pairs at once, checkpointed at the curriculum's stage boundaries (`--save-at-steps`)
 5. evaluate the start model and every checkpoint on HumanEval and MBPP-test pass@1, greedy
    (`prefcurate eval run`), and compare each arm with the shuffled control at the same global step
    (`prefcurate eval compare --control shuffled`: paired bootstrap intervals, exact McNemar, Holm).

    .venv/bin/python examples/code_curriculum.py                 # the issue's size: ~30 min on 2 idle cores
    .venv/bin/python examples/code_curriculum.py --smoke         # minutes: checks the pipeline only
    .venv/bin/python examples/code_curriculum.py --problems 12 --samples 2 --gen-tokens 64 \
        --eval-tasks 8 --eval-tokens 96 --cuts 50 --drop-extremes 10,90 --max-length 192
        # what fit a 2-core VM shared with four other jobs (benchmarks/RESULTS.md)

Every step resumes from what --work already holds (rerun after a kill); --fresh starts over.

Read the interval widths: with a few dozen tasks a 95% interval of a pass@1 difference is about
+-0.1, so this size can show a large effect or none, not the 3-5 points the seed papers report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sh(*args: str) -> str:
    cmd = [sys.executable, "-m", "prefcurate", *args]
    print("$ prefcurate " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFCURATE_PROGRESS": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def checkpoints(run_dir: Path):  # noqa: ANN201
    from prefcurate.evaluate.run import checkpoints as found

    return found(run_dir)


def problems_file(samples: Path, out: Path, with_reference: bool) -> int:
    """Samples (eval generate) -> build code's generic format: one row per problem with its tests.

    with_reference: MBPP's reference solution joins the samples, so a problem whose samples all
    fail still yields a pair (reference vs the worst sample); a 135M model rarely passes MBPP."""
    from prefcurate.evaluate.suites import load_suite

    suite = load_suite("mbpp:train").by_id()
    by_task: dict[str, list[str]] = {}
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        by_task.setdefault(row["task_id"], []).append(row["completion"])
    if with_reference:
        for task, completions in by_task.items():
            completions.append(suite[task].canonical)
    with open(out, "w") as fh:
        for task, completions in by_task.items():
            p = suite[task]
            row = {
                "task_id": task,
                "prompt": p.prompt,
                "completions": completions,
                "tests": list(p.suite.units),
            }
            if p.suite.setup:
                row["test_setup"] = p.suite.setup
            fh.write(json.dumps(row) + "\n")
    return len(by_task)


def stage_steps(run_dir: Path) -> list[int]:
    meta = json.loads((run_dir / "run.json").read_text())
    total, out = 0, []
    for s in meta["stages"]:
        total += int(s["steps"])
        out.append(total)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("code_curriculum"))
    ap.add_argument("--problems", type=int, default=120, help="MBPP train problems to sample")
    ap.add_argument("--samples", type=int, default=6, help="completions per problem")
    ap.add_argument("--gen-tokens", type=int, default=160)
    ap.add_argument("--eval-tasks", type=int, default=40, help="first N tasks of HumanEval and of MBPP-test")
    ap.add_argument("--eval-tokens", type=int, default=160)
    ap.add_argument("--lr", default="5e-6")
    ap.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding humaneval/ and mbpp/ (../shared/data)",
    )
    ap.add_argument(
        "--with-reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add MBPP's reference solution to each problem's samples (see problems_file)",
    )
    ap.add_argument("--cuts", default="10,50,90", help="partition percentiles")
    ap.add_argument("--drop-extremes", default="5,95", help="pruned below/above these percentiles")
    ap.add_argument("--batch-size", type=int, default=2, help="pairs per optimizer step (every arm)")
    ap.add_argument("--fresh", action="store_true", help="delete --work first (default: resume)")
    ap.add_argument("--max-length", default="256", help="training tokens per pair")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        args.problems, args.samples, args.gen_tokens, args.eval_tasks, args.eval_tokens = 12, 2, 32, 2, 24
        args.cuts, args.drop_extremes, args.max_length = "50", "10,90", "128"
    os.environ.setdefault("PREFCURATE_EVAL_DATA", str(args.data.resolve()))  # read by the child commands too
    work = args.work.resolve()
    if work.exists() and (args.fresh or args.smoke):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)  # otherwise every step resumes or reuses its output
    store = ["--store", str(work / "store")]

    samples = work / "mbpp_train_samples.jsonl"
    sh(
        "eval",
        "generate",
        "bundled",
        "--suite",
        "mbpp:train",
        "--n",
        str(args.samples),
        "--temperature",
        "0.8",
        "--seed",
        "0",
        "--limit",
        str(args.problems),
        "--max-new-tokens",
        str(args.gen_tokens),
        "--out",
        str(samples),
    )
    n = problems_file(samples, work / "problems.jsonl", args.with_reference)
    print(f"{n} problems with {args.samples} samples each")
    print(
        sh(
            "build",
            "code",
            str(work / "problems.jsonl"),
            "--name",
            "code",
            "--pairing",
            "best-vs-worst",
            "--max-pairs-per-prompt",
            "1",
            *store,
        )
    )
    sh("score", "code", "--by", "logprob-margin", "--dtype", "fp32", "--max-length", args.max_length, *store)
    print(
        sh(
            "partition",
            "code",
            "--by",
            "logprob_margin_v1__margin",
            "--strategy",
            "percentiles",
            "--cuts",
            args.cuts,
            "--drop-extremes",
            args.drop_extremes,
            "--name",
            "code-cur",
            *store,
        )
    )
    sh(
        "partition",
        "code",
        "--strategy",
        "random",
        "--like",
        "code-cur",
        "--seed",
        "0",
        "--name",
        "code-rand",
        *store,
    )

    common = [
        "--batch-size",
        str(args.batch_size),
        "--lr",
        args.lr,
        "--dtype",
        "fp32",
        "--max-length",
        args.max_length,
        "--seed",
        "0",
        *store,
    ]
    runs = {
        "curriculum": work / "runs" / "curriculum",
        "shuffled": work / "runs" / "shuffled",
        "plain": work / "runs" / "plain",
    }
    sh(
        "train",
        "code-cur",
        "--schedule",
        "curriculum",
        "--out",
        str(runs["curriculum"]),
        "--name",
        "curriculum",
        *common,
    )
    sh(
        "train",
        "code-rand",
        "--schedule",
        "curriculum",
        "--out",
        str(runs["shuffled"]),
        "--name",
        "shuffled",
        *common,
    )
    boundaries = ",".join(map(str, stage_steps(runs["curriculum"])[:-1]))
    extra = ["--save-at-steps", boundaries] if boundaries else []
    sh(
        "train",
        "code-cur",
        "--schedule",
        "plain",
        "--out",
        str(runs["plain"]),
        "--name",
        "plain",
        *extra,
        *common,
    )

    for suite in ("humaneval", "mbpp"):
        for name, run_dir in runs.items():
            # The start model is the same for every arm: evaluate it once, in the control.
            stages = (
                []
                if name == "shuffled"
                else [a for c in checkpoints(run_dir)[1][1:] for a in ("--stage", c.stage)]
            )
            sh(
                "eval",
                "run",
                str(run_dir),
                "--suite",
                suite,
                "--limit",
                str(args.eval_tasks),
                "--max-new-tokens",
                str(args.eval_tokens),
                "--dtype",
                "fp32",
                *stages,
                *store,
            )
        dirs = [str(run_dir / "evals" / suite) for run_dir in runs.values()]
        table = sh("eval", "compare", *dirs, "--control", "shuffled", "--format", "csv")
        (work / f"compare_{suite}.csv").write_text(table)
        print(f"\n== {suite}: pass@1 per arm and stage, differences to the shuffled control ==")
        print(sh("eval", "compare", *dirs, "--control", "shuffled"))


if __name__ == "__main__":
    main()
