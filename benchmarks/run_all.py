"""Run every side-by-side benchmark in turn (`make bench`).

Each benchmark is its own script that runs ours and the named peer on the same data in one
process or one script and prints both figures and the ratio; this runner only sequences them
and stops on the first failure. `--quick` uses small sizes (a few minutes in all); the default
sizes are the ones recorded in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only build_scale,sandbox]
    make bench ARGS=--quick
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments for the recorded run, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "startup": ("startup.py", ["--reps", "10"], ["--reps", "3"]),
    "build_scale": ("build_scale.py", [], ["--prompts", "8000", "--big", "0"]),
    "sandbox": ("sandbox.py", ["--exclude", "123"], ["--limit", "200", "--exclude", "123"]),
    "sandbox_fidelity": (
        "sandbox_fidelity.py",
        ["--sets", "humaneval,mbpp,sanitized"],
        ["--sets", "humaneval"],
    ),
    "logprob": (
        "logprob.py",
        ["--pairs", "200", "--shape", "both"],
        ["--pairs", "16", "--max-length", "256"],
    ),
    "score_command": (
        "score_command.py",
        ["--pairs", "54", "--max-length", "1024", "--shape", "both", "--reps", "2"],
        ["--pairs", "6", "--max-length", "256", "--shape", "both"],
    ),
    "logprob_bf16_fp32": ("logprob_bf16_fp32.py", [], ["--pairs", "64"]),
    "read_guard": ("read_guard.py", ["--mb", "64"], ["--mb", "16"]),
    "trl_defaults": ("trl_defaults.py", ["--reps", "5"], ["--reps", "2"]),
    "ray_overhead": (
        "ray_overhead.py",
        ["--pairs", "48", "--shard-rows", "16"],
        ["--pairs", "8", "--shard-rows", "8", "--max-length", "128"],
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    ap.add_argument(
        "--only", default="", help="comma-separated benchmark names (default: all): " + ", ".join(BENCHMARKS)
    )
    args = ap.parse_args()
    chosen = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in chosen:
        script, full, quick = BENCHMARKS[name]
        path = HERE / script
        if not path.is_file():
            print(f"== {name}: {script} missing, skipped", flush=True)
            continue
        cmd = [sys.executable, str(path), *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {name}: exit {rc} after {time.perf_counter() - started:.0f} s", flush=True)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
