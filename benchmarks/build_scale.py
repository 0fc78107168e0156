"""Scale benchmark, whole commands: `prefcurate build ultrafeedback --from FILE --force` (default
pairing top-vs-rest) vs a straightforward `datasets.map` binarization (the way the H4
ultrafeedback_binarized script works, fresh datasets cache) on the same file, next to a bare
`pyarrow.json.read_json` of that file (the limit). Each contender is one process, timed from spawn to
exit (start-up and imports included) with its own peak RSS; the three are interleaved `--reps` times.

    python benchmarks/build_scale.py                      # 64,000 prompts x 4, then 256,000 (prefcurate only)
    python benchmarks/build_scale.py --prompts 8000 --big 0

Files are generated (seeded) under benchmarks/_data/ when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"


# -- contenders (run inside the worker subprocess) -------------------------------------------------
def run_read(path: Path, work: Path) -> int:
    import pyarrow.json as pj

    return pj.read_json(str(path)).num_rows


def run_baseline(path: Path, work: Path) -> int:
    """The straightforward way: datasets.load_dataset + a Python function mapped over rows."""
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(work / "cache"))

    def binarize(batch: dict) -> dict:
        out: dict = {
            k: [] for k in ("source", "prompt", "chosen", "rejected", "score_chosen", "score_rejected")
        }
        for source, instruction, completions in zip(
            batch["source"], batch["instruction"], batch["completions"], strict=True
        ):
            rated = [c for c in completions if c.get("overall_score") is not None and c["response"].strip()]
            if len(rated) < 2:
                continue
            best = max(rated, key=lambda c: c["overall_score"])
            for other in rated:
                if other is best or other["overall_score"] == best["overall_score"]:
                    continue
                out["source"].append(source)
                out["prompt"].append([{"role": "user", "content": instruction}])
                out["chosen"].append(best["response"])
                out["rejected"].append(other["response"])
                out["score_chosen"].append(best["overall_score"])
                out["score_rejected"].append(other["overall_score"])
        return out

    pairs = ds.map(binarize, batched=True, remove_columns=ds.column_names)
    pairs.to_parquet(str(work / "pairs.parquet"))
    return len(pairs)


CONTENDERS = {"read": run_read, "baseline": run_baseline}


def worker(kind: str, path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=DATA))
    try:
        start = time.perf_counter()
        rows = CONTENDERS[kind](path, work)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_rss_mb": peak_mb, "rows": rows}))


# -- driver ------------------------------------------------------------------------------------------
def measure(kind: str, path: Path) -> dict:
    """One contender as a whole process: wall time from spawn to exit (interpreter start-up and imports
    included, as a user runs it) and the child's peak RSS. `cli` is the `prefcurate build ultrafeedback`
    command itself."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=DATA))
    if kind == "cli":
        cmd = [sys.executable, "-m", "prefcurate", "build", "ultrafeedback", "--from", str(path), "--force"]
    else:
        cmd = [sys.executable, __file__, "--worker", kind, "--file", str(path)]
    env = dict(os.environ, PREFCURATE_STORE=str(work / "store"), PREFCURATE_PROGRESS="0")
    env["PYTHONPATH"] = str(HERE.parent)
    try:
        started = time.perf_counter()
        # Output is a few lines (progress off), so the pipes cannot fill before the child exits.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed:\n{err[-3000:]}")
    if kind == "cli":
        rows = int(out.split(" pairs from ")[0].split()[-1].replace(",", ""))
    else:
        rows = json.loads(out.strip().splitlines()[-1])["rows"]
    cpu = usage.ru_utime + usage.ru_stime  # moves less with other jobs' load than wall time
    return {
        "kind": kind,
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rows": rows,
    }


def ensure(prompts: int) -> Path:
    path = DATA / f"uf_{prompts // 1000}k.jsonl" if prompts % 1000 == 0 else DATA / f"uf_{prompts}.jsonl"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from gen_ultrafeedback import generate

        print(f"generating {path} ...", flush=True)
        generate(path, prompts)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64_000)
    ap.add_argument("--big", type=int, default=256_000, help="Also time prefcurate at this size (0: skip).")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the three contenders")
    ap.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.file)
        return

    path = ensure(args.prompts)
    size_mb = path.stat().st_size / 1e6
    print(f"input: {path.name}, {args.prompts:,} prompts x 4 completions, {size_mb:,.0f} MB")
    print(f"{args.reps} interleaved repetition(s), load average {os.getloadavg()[0]:.1f}; whole processes")
    kinds = ("read", "cli", "baseline")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.reps):
        for kind in kinds:
            runs[kind].append(measure(kind, path))
    labels = {
        "read": "bare pyarrow.json.read_json",
        "cli": "prefcurate build ultrafeedback",
        "baseline": "datasets.map baseline",
    }
    print(
        f"{'contender':<34}{'wall s (each run)':>24}{'CPU s (each run)':>22}{'peak RSS MB':>13}{'pairs':>9}"
    )
    for kind in kinds:
        walls = " ".join(f"{r['seconds']:.1f}" for r in runs[kind])
        cpus = " ".join(f"{r['cpu_s']:.1f}" for r in runs[kind])
        rss = max(r["peak_rss_mb"] for r in runs[kind])
        pairs = "" if kind == "read" else f"{runs[kind][0]['rows']:,}"
        print(f"{labels[kind]:<34}{walls:>24}{cpus:>22}{rss:>13,.0f}{pairs:>9}")
    speed = [b["seconds"] / o["seconds"] for b, o in zip(runs["baseline"], runs["cli"], strict=True)]
    vs_read = [o["seconds"] / r["seconds"] for o, r in zip(runs["cli"], runs["read"], strict=True)]
    mem = [o["peak_rss_mb"] / b["peak_rss_mb"] for o, b in zip(runs["cli"], runs["baseline"], strict=True)]
    cpu = [b["cpu_s"] / o["cpu_s"] for b, o in zip(runs["baseline"], runs["cli"], strict=True)]
    print(f"speed vs baseline: {_spread(speed)} (goal >= 2.5x)")
    print(f"CPU time, baseline / ours: {_spread(cpu)}")
    print(f"time vs bare read: {_spread(vs_read)}")
    print(f"peak RSS vs baseline: {_spread(mem)} (goal <= 0.8x)")
    if args.big:
        big = ensure(args.big)
        r = measure("cli", big)
        base = statistics.median(o["seconds"] for o in runs["cli"])
        base_cpu = statistics.median(o["cpu_s"] for o in runs["cli"])
        print(
            f"prefcurate at {args.big:,} prompts: {r['seconds']:.1f} s (CPU {r['cpu_s']:.1f} s), "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB, "
            f"{r['rows']:,} pairs; ratio to {args.prompts:,}: {r['seconds'] / base:.2f}x "
            f"(data {args.big / args.prompts:.0f}x; goal <= 4.2x); CPU ratio {r['cpu_s'] / base_cpu:.2f}x"
        )


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x (runs: {', '.join(f'{v:.2f}' for v in values)})"


if __name__ == "__main__":
    main()
