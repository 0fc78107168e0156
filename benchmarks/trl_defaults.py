"""trl.DPOConfig's defaults, as `train --help` and every `prefcurate` start need them: ours (read from
TRL's source with `ast`, then memoised on disk) against the peer way (`import trl` and
`dataclasses.fields(trl.DPOConfig)`), each in a fresh process, N times; prints the medians and ratios.

    .venv/bin/python benchmarks/trl_defaults.py [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The whole start of the command line (what `prefcurate ...` pays before doing anything), with the
# defaults read our way, against the same start with the defaults taken by importing TRL.
OURS = """
import time, json
t = time.perf_counter()
import prefcurate.cli
from trainers.config import TrainConfig
print(json.dumps({"s": time.perf_counter() - t, "lr": TrainConfig().learning_rate}))
"""
PEER = """
import time, json
t = time.perf_counter()
import dataclasses, trl
lr = {f.name: f for f in dataclasses.fields(trl.DPOConfig)}["learning_rate"].default
import prefcurate.cli
print(json.dumps({"s": time.perf_counter() - t, "lr": lr}))
"""
# The reading alone, in one process (after the imports): parse TRL's source, or read the memo.
READ = """
import time, json, shutil, os
from trainers import trl_options as o
out = {}
for label in ("parse", "memo"):
    if label == "parse":
        shutil.rmtree(os.environ["PREFCURATE_CACHE"], ignore_errors=True)
    o.dpo_fields.cache_clear()
    t = time.perf_counter()
    fields = o.dpo_fields()
    out[label] = time.perf_counter() - t
print(json.dumps({**out, "lr": fields["learning_rate"].default}))
"""


def once(code: str, cache: str) -> dict:
    env = {**os.environ, "PREFCURATE_CACHE": cache}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    start: dict[str, list[float]] = {"ours, empty memo": [], "ours, memoised": [], "peer: import trl": []}
    read: dict[str, list[float]] = {"parse TRL's source": [], "read the memo": []}
    answers = set()
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as cache:
            cold = once(OURS, cache)  # empty cache: parses TRL's source and writes the memo
            warm = once(OURS, cache)
            r = once(READ, cache)
        peer = once(PEER, tempfile.mkdtemp())
        start["ours, empty memo"].append(cold["s"])
        start["ours, memoised"].append(warm["s"])
        start["peer: import trl"].append(peer["s"])
        read["parse TRL's source"].append(r["parse"])
        read["read the memo"].append(r["memo"])
        answers |= {cold["lr"], warm["lr"], peer["lr"], r["lr"]}
    assert len(answers) == 1, f"the contenders disagree: {answers}"
    print(
        f"{args.reps} fresh processes each; load average {os.getloadavg()[0]:.1f}; all read learning_rate={answers.pop()}"
    )
    peer = statistics.median(start["peer: import trl"])
    print(f"{'CLI start (import prefcurate.cli + defaults)':46} {'median s':>9} {'peer / this':>12}")
    for name, times in start.items():
        print(f"  {name:44} {statistics.median(times):9.3f} {peer / statistics.median(times):11.1f}x")
    print(f"{'reading the defaults alone':46} {'median ms':>9}")
    for name, times in read.items():
        print(f"  {name:44} {1000 * statistics.median(times):9.1f}")


if __name__ == "__main__":
    main()
