"""CLI start-up: `prefcurate --help` and `prefcurate ls` as whole processes, this tree against a
baseline commit (default: where this branch left main, before the lazy imports; extracted with
`git archive` into a temporary folder), interleaved in one run.

    python benchmarks/startup.py [--reps 10] [--baseline-rev REV]

Each repetition runs every (tree, command) once in turn, so load from other jobs falls on both
sides alike. One untimed run of each first writes both trees' bytecode caches, and the children run
without PYTHONDONTWRITEBYTECODE, as an installed package does (with it, every start would compile
every module from source, on both sides). Reports the median and min of wall time and of the
child's CPU time (user+sys, which moves less with load than wall time) and the ratio baseline /
ours. `python -X importtime -m prefcurate --help` shows what is left.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = HERE.parent
SAMPLE = OURS / "examples" / "data" / "ultrafeedback_binarized.jsonl"


def timed(cmd: list[str], tree: Path, store: Path) -> tuple[float, float]:
    # cwd outside both trees: `python -m` puts the cwd first on sys.path, ahead of PYTHONPATH.
    env = dict(os.environ, PYTHONPATH=str(tree), PREFCURATE_STORE=str(store), PREFCURATE_PROGRESS="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=store.parent, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument(
        "--baseline-rev", default="", help="git revision to compare with (default: merge-base with main)"
    )
    args = ap.parse_args()
    git = ["git", "-C", str(OURS)]
    rev = (
        args.baseline_rev or subprocess.check_output([*git, "merge-base", "HEAD", "main"], text=True).strip()
    )
    commands = {"--help": ["--help"], "ls": ["ls"]}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run([*git, "archive", rev, "prefcurate"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {"baseline": base, "ours": OURS}
        store = Path(tmp) / "store"
        # A store with one dataset, so `ls` renders a table (an empty store only prints a hint).
        prefix = [sys.executable, "-m", "prefcurate"]
        subprocess.run(
            [*prefix, "build", "pairs", str(SAMPLE), "--limit", "50", "--dataset", "sample"],
            env=dict(os.environ, PYTHONPATH=str(OURS), PREFCURATE_STORE=str(store), PREFCURATE_PROGRESS="0"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for cargs in commands.values():  # untimed: writes the bytecode caches of both trees
            for tree in trees.values():
                timed([*prefix, *cargs], tree, store)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.reps):
            for cname, cargs in commands.items():
                for tname, tree in trees.items():
                    samples.setdefault((cname, tname), []).append(timed([*prefix, *cargs], tree, store))
    print(
        f"prefcurate start-up, baseline {rev[:10]} vs this tree, {args.reps} interleaved repetitions, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'command':<8} {'tree':<9} {'wall median':>11} {'wall min':>9} {'cpu median':>10} {'cpu min':>8}")
    for cname in commands:
        med = {}
        for tname in trees:
            walls = [w for w, _ in samples[(cname, tname)]]
            cpus = [c for _, c in samples[(cname, tname)]]
            med[tname] = (statistics.median(walls), statistics.median(cpus))
            print(
                f"{cname:<8} {tname:<9} {med[tname][0]:>10.3f}s {min(walls):>8.3f}s "
                f"{med[tname][1]:>9.3f}s {min(cpus):>7.3f}s"
            )
        print(
            f"{cname:<8} baseline/ours: wall {med['baseline'][0] / med['ours'][0]:.2f}x, "
            f"cpu {med['baseline'][1] / med['ours'][1]:.2f}x (goal: >= 2x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
