"""Scale benchmark: `build ultrafeedback --pairing top-vs-rest` vs a straightforward `datasets.map`
binarization (the way the H4 ultrafeedback_binarized script works) on the same file, next to a
bare `pyarrow.json.read_json` of that file. Each contender runs in its own subprocess so its
peak RSS is its own.

    python benchmarks/build_scale.py                      # 64,000 prompts x 4, then 256,000 (prefcurate only)
    python benchmarks/build_scale.py --prompts 8000 --big 0

Files are generated (seeded) under benchmarks/_data/ when missing.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
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


def run_prefcurate(path: Path, work: Path) -> int:
    from prefcurate.build.ultrafeedback import build_ultrafeedback
    from prefcurate.store import Store

    result = build_ultrafeedback(Store(work / "store"), str(path), pairing="top-vs-rest", force=True)
    return result.counts["kept"]


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


CONTENDERS = {"read": run_read, "prefcurate": run_prefcurate, "baseline": run_baseline}


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
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.file)
        return

    path = ensure(args.prompts)
    size_mb = path.stat().st_size / 1e6
    print(f"input: {path.name}, {args.prompts:,} prompts x 4 completions, {size_mb:,.0f} MB")
    results = {kind: measure(kind, path) for kind in ("read", "prefcurate", "baseline")}
    print(f"{'contender':<34}{'wall s':>9}{'peak RSS MB':>13}{'prompts/s':>11}{'pairs':>9}")
    labels = {
        "read": "bare pyarrow.json.read_json",
        "prefcurate": "prefcurate build (top-vs-rest)",
        "baseline": "datasets.map baseline",
    }
    for kind, r in results.items():
        pairs = "" if kind == "read" else f"{r['rows']:,}"
        print(
            f"{labels[kind]:<34}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13,.0f}{args.prompts / r['seconds']:>11,.0f}{pairs:>9}"
        )
    ours, base, read = results["prefcurate"], results["baseline"], results["read"]
    print(f"speed vs baseline: {base['seconds'] / ours['seconds']:.2f}x (goal >= 2x)")
    print(f"time vs bare read: {ours['seconds'] / read['seconds']:.2f}x (goal <= 2x)")
    print(f"peak RSS vs baseline: {ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x (goal <= 1x)")
    if args.big:
        big = ensure(args.big)
        r = measure("prefcurate", big)
        print(
            f"prefcurate at {args.big:,} prompts: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB, "
            f"{r['rows']:,} pairs; ratio to {args.prompts:,}: {r['seconds'] / ours['seconds']:.2f}x "
            f"(data {args.big / args.prompts:.0f}x; goal <= ~4.5x)"
        )


if __name__ == "__main__":
    main()
