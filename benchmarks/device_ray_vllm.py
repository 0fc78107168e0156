"""Device check (GPU machine, not run in the session that wrote it): the vLLM scorer on Ray GPU actors
against single-process `--backend vllm`, and transformers on a GPU actor against transformers in one
process, on the same real pairs with the bundled SmolLM2-135M.

Each configuration scores into its own fresh store through the real CLI (`python -m prefcurate`);
the check passes when the published Parquet of the Ray run is byte-identical to the single-process
run of the same backend. It prints both wall times and the ratio, and exits 1 on any mismatch.
One prepared run, about 3-6 minutes on one GPU (vLLM start-up dominates):

    python benchmarks/device_ray_vllm.py --pairs 64 --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_flat" / "train_clean.jsonl"


def cli(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prefcurate", *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def published(store: Path) -> bytes:
    files = sorted((store / "scores" / "uf" / "logprob_margin_v1").glob("v*/*.parquet"))
    return b"".join(f.read_bytes() for f in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json")
    args = ap.parse_args()
    try:
        import ray  # noqa: F401
        import torch
        import vllm  # noqa: F401
    except ImportError as exc:
        print(f"device check needs torch, vllm and ray[data]: {exc}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("device check needs a CUDA GPU; none is visible", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ray-vllm-"))
    src = tmp / "pairs.jsonl"
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[: args.pairs]]
    src.write_text(
        "".join(json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected")}) + "\n" for r in rows)
    )
    common = ["--by", "logprob-margin", "--dtype", "bf16", "--max-length", str(args.max_length)]
    results: dict[str, object] = {"device": torch.cuda.get_device_name(0), "pairs": args.pairs}
    ok = True
    for backend in ("vllm", "transformers"):
        walls = {}
        for mode, extra in (("single", []), ("ray", ["--executor", "ray", "--workers", "1"])):
            store = tmp / f"{backend}-{mode}"
            cli(
                "build", "pairs", str(src), "--input-format", "flat", "--dataset", "uf", "--store", str(store)
            )
            walls[mode] = cli("score", "uf", *common, "--backend", backend, "--store", str(store), *extra)
        same = published(tmp / f"{backend}-single") == published(tmp / f"{backend}-ray")
        ok &= same
        print(
            f"{backend}: single process {walls['single']:.1f} s, Ray GPU actor {walls['ray']:.1f} s "
            f"(ray/single {walls['ray'] / walls['single']:.2f}x); byte-identical: {same}",
            flush=True,
        )
        results[backend] = {**walls, "identical": same}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS" if ok else "FAIL: a Ray run differs from its single-process run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
