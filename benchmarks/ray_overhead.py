"""The Ray executor vs the local executor on the same pairs, same model, one script.

Runs `score --by logprob-margin` (the library call the CLI makes) three ways on real UltraFeedback
pairs with the bundled SmolLM2-135M: the local executor (one thread), Ray with 1 actor and Ray with 2
actors (one thread each), each in a fresh store so nothing is reused. Reported per run: wall time,
time to the first finished shard (start-up: Ray's pool, the actors' imports and model load), steady
time per shard after the first, and whether the published Parquet is byte-identical to the local
run. Then Ray's overhead (start-up and per shard) against local, the 1 -> 2 actor speedup, and a
projection for N actors from the measured per-shard time.

The cluster is started once (`ray.init(num_cpus=3)`, timed): 2 single-CPU actors plus the CPU the
executor keeps free (ray#44687). On a 2-core machine two actors share the cores with the driver.

    .venv/bin/python benchmarks/ray_overhead.py --pairs 48 --shard-rows 16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_flat" / "train_clean.jsonl"


class Timed:
    """Wraps an executor: records when each shard is delivered to the driver."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.kind, self.delivered = inner, inner.kind, []  # type: ignore[var-annotated]
        self.started = 0.0

    def run(self, job: Any, deliver: Any, report: Any) -> None:
        self.started = time.perf_counter()

        def timed(i: int, out: Any) -> None:
            deliver(i, out)
            self.delivered.append(time.perf_counter() - self.started)

        self.inner.run(job, timed, report)

    def record(self) -> dict[str, Any]:
        return self.inner.record()

    def close(self) -> None:
        self.inner.close()


class EchoWork:
    """A shard function that does no work: what is left is the executor's own per-shard cost."""

    gpu = False

    def open(self, threads: int | None) -> Any:
        return echo


def echo(shard: Any, report: Any) -> Any:
    return shard


def pure_overhead(workdir: Path, shards: int, rows: int) -> dict[str, float]:
    """Seconds per shard of `map_shards` with a no-op shard function: local vs Ray (1 actor), warm pool excluded."""
    import pyarrow as pa
    import ray.cloudpickle

    from prefcurate.execution import ExecutionOptions, ExecutorKind, open_executor
    from prefcurate.score.base import RunContext

    if __name__ != "__main__":  # imported (not run): actors cannot import benchmarks/, send EchoWork by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    from prefcurate.store import Store

    table = pa.table(
        {"completion_id": [f"c{i:06d}" for i in range(shards * rows)], "x": list(range(shards * rows))}
    )
    out = {}
    for name, options in (
        ("local", ExecutionOptions()),
        ("ray", ExecutionOptions(kind=ExecutorKind.ray, workers=1)),
    ):
        with open_executor(options) as ex:
            timed = Timed(ex)
            ctx = RunContext(
                Store(workdir / f"echo-{name}"), "x", workdir / f"echo-{name}" / "work", None, timed
            )  # type: ignore[arg-type]
            ctx.map_shards(table, echo, work=EchoWork(), shard_rows=rows, description="echo")  # type: ignore[arg-type]
        d = timed.delivered
        out[name] = (d[-1] - d[0]) / (len(d) - 1)
        out[f"{name}_first"] = d[0]
    return out


def make_store(root: Path, pairs: int) -> Any:
    from typer.testing import CliRunner

    from prefcurate.cli import app
    from prefcurate.store import Store

    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:pairs]]
    root.mkdir(parents=True)
    src = root / "pairs.jsonl"
    with src.open("w") as fh:
        for r in rows:
            fh.write(
                json.dumps({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}) + "\n"
            )
    res = CliRunner().invoke(
        app,
        [
            "build",
            "pairs",
            str(src),
            "--input-format",
            "flat",
            "--dataset",
            "uf",
            "--store",
            str(root / "store"),
        ],
    )
    assert res.exit_code == 0, res.output
    return Store(root / "store")


def run_one(name: str, options: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from prefcurate.execution import open_executor
    from prefcurate.score import logprob_margin as lm
    from prefcurate.score import run_signal

    lm.MIN_SHARD_ROWS = args.shard_rows  # shard size = max(MIN_SHARD_ROWS, batch_tokens // 128)
    store = make_store(workdir / name, args.pairs)
    signal = lm.LogprobMargin(dtype="fp32", max_length=args.max_length, batch_tokens=args.batch_tokens)
    started = time.perf_counter()
    with open_executor(options) as ex:
        timed = Timed(ex)
        ref, _ = run_signal(store, "uf", signal, executor=timed)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    d = timed.delivered
    actors = ref.manifest["execution"].get("actors") or 1
    # Seconds between finished shards once the pool runs (1 / throughput); undefined with <= 1 shard per actor.
    steady = (d[-1] - d[0]) / (len(d) - 1) if len(d) > actors else float("nan")
    data = b"".join(p.read_bytes() for p in sorted(ref.path.glob("*.parquet")))
    tokens = ref.manifest["completions"]["tokens_scored"]
    return {
        "name": name,
        "wall": wall,
        "first": d[0],
        "steady": steady,
        "shards": len(d),
        "bytes": data,
        "tokens": tokens,
        "actors": ref.manifest["execution"].get("actors"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--shard-rows", type=int, default=16, help="completions per shard")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, default=1024)
    ap.add_argument(
        "--echo-shards", type=int, default=40, help="no-op shards for the pure per-shard overhead"
    )
    args = ap.parse_args()

    import ray

    from prefcurate.execution import ExecutionOptions, ExecutorKind

    started = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING")
    cluster_s = time.perf_counter() - started
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        echo_s = pure_overhead(workdir, args.echo_shards, 64)
        runs.append(run_one("local", ExecutionOptions(threads=1), args, workdir))
        for n in (1, 2):
            opts = ExecutionOptions(kind=ExecutorKind.ray, workers=n, threads=1)
            runs.append(run_one(f"ray-{n}", opts, args, workdir))
    ray.shutdown()
    local, one, two = runs
    print(f"cluster start (ray.init, num_cpus=3): {cluster_s:.1f} s")
    print(
        f"{'run':8} {'wall s':>8} {'1st shard s':>12} {'s/shard':>8} {'shards':>6} {'actors':>6} {'tok/s':>7}  same bytes"
    )
    for r in runs:
        print(
            f"{r['name']:8} {r['wall']:8.1f} {r['first']:12.1f} {r['steady']:8.2f} {r['shards']:6d} "
            f"{str(r['actors'] or '-'):>6} {r['tokens'] / r['wall']:7.0f}  {r['bytes'] == local['bytes']}"
        )
    print(
        f"Ray overhead vs local: start-up (1st shard) {one['first'] - local['first']:+.1f} s "
        f"({one['first'] / local['first']:.2f}x), per shard {one['steady'] - local['steady']:+.2f} s "
        f"({one['steady'] / local['steady']:.2f}x); wall ray-1/local {one['wall'] / local['wall']:.2f}x"
    )
    rate = (
        f"{one['steady'] / two['steady']:.2f}x"
        if not math.isnan(two["steady"])
        else "n/a (a shard per actor)"
    )
    print(f"1 -> 2 actors: wall {one['wall'] / two['wall']:.2f}x, steady shard rate {rate}")
    print(
        f"no-op shards ({args.echo_shards} x 64 rows): per shard local {echo_s['local'] * 1e3:.1f} ms, "
        f"Ray 1 actor {echo_s['ray'] * 1e3:.1f} ms ({echo_s['ray'] / echo_s['local']:.0f}x); first shard "
        f"local {echo_s['local_first']:.2f} s, Ray {echo_s['ray_first']:.2f} s (pool start, no model)"
    )
    per_shard = one["steady"]
    print(f"projection (per-shard time {per_shard:.2f} s on one actor, start-up {one['first']:.1f} s):")
    shards = 10_000
    for n in (1, 8, 64):
        print(
            f"  {shards:,} shards on {n} actors: {one['first'] + math.ceil(shards / n) * per_shard:,.0f} s "
            "(start-up + ceil(shards / N) x per-shard time; linear while the driver keeps up)"
        )


if __name__ == "__main__":
    main()
