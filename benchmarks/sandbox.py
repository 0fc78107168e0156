"""Throughput of the sandbox on the 974 MBPP reference solutions, in test units per second.

Same machine, same run, same programs and units (each MBPP assert is one unit):

  ours        SandboxPool: one fresh process per program, forked from a warm zygote and confined
              (rlimits, no_new_privs, Landlock, seccomp, a network namespace), running the AST
              interpreter
  human-eval  one process per program as openai/human-eval's `check_correctness` does:
              a multiprocessing.Manager list + a multiprocessing.Process running exec in a temp
              dir, joined with a timeout; programs spread over a thread pool of N workers
  process     the same without the Manager (a Pipe back instead): the cheapest
              process-per-program harness, to show what the Manager costs
  exec        plain in-process exec with no isolation at all: the unsafe ceiling

Then the CPU-bound programs (every HumanEval/MBPP reference solution over 50 ms in CPython,
`sandbox_cpu.CPU_BOUND`): the interpreter beside CPython in this process, with the ratio.

    .venv/bin/python benchmarks/sandbox.py [--workers 2] [--exclude 123] [--skip-cpu]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefcurate.sandbox import SandboxPool  # noqa: E402
from prefcurate.sandbox.codetests import build_program, join_program, suite_from_spec  # noqa: E402

MBPP = ROOT.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"
TIMEOUT = 5.0


def load(exclude: set[int] = frozenset()) -> list[tuple[str, list[str], str]]:
    """(program, units, setup) of each MBPP row; the peers run `program + setup` as one source."""
    jobs = []
    for row in (json.loads(x) for x in open(MBPP, encoding="utf-8")):
        if row["task_id"] in exclude:
            continue
        suite = suite_from_spec(row)
        jobs.append((build_program(row["code"]), list(suite.units), suite.setup))
    return jobs


def exec_units(program: str, units: list[str]) -> int:
    """Run a program then its units in one namespace; the number of passed units."""
    import contextlib
    import io

    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(program, ns)
        except BaseException:
            return 0
        passed = 0
        for unit in units:
            try:
                exec(unit, ns)
                passed += 1
            except BaseException:
                pass
    return passed


def _unsafe_execute(program: str, units: list[str], result) -> None:  # noqa: ANN001
    # human-eval's unsafe_execute: a temp dir as cwd, exec, report through the shared object.
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        result.append(exec_units(program, units))


def human_eval_check(job: tuple[str, list[str]]) -> int:
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=_unsafe_execute, args=(job[0], job[1], result))
    p.start()
    p.join(timeout=TIMEOUT + 1)
    if p.is_alive():
        p.kill()
    passed = result[0] if result else 0
    manager.shutdown()
    return passed


def _pipe_execute(program: str, units: list[str], conn) -> None:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        conn.send(exec_units(program, units))


def process_check(job: tuple[str, list[str]]) -> int:
    recv, send = multiprocessing.Pipe(duplex=False)
    p = multiprocessing.Process(target=_pipe_execute, args=(job[0], job[1], send))
    p.start()
    passed = recv.recv() if recv.poll(TIMEOUT) else 0
    p.join(timeout=1)
    if p.is_alive():
        p.kill()
    return passed


def timed(fn) -> tuple[float, int]:  # noqa: ANN001
    start = time.perf_counter()
    passed = fn()
    return time.perf_counter() - start, passed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N programs")
    ap.add_argument(
        "--exclude", default="", help="MBPP task ids to leave out, e.g. 123 (a CPU-bound outlier)"
    )
    ap.add_argument("--skip-cpu", action="store_true", help="leave out the CPU-bound programs' table")
    args = ap.parse_args()
    multiprocessing.set_start_method("fork")  # human-eval's default on Linux
    ours_jobs = load({int(x) for x in args.exclude.split(",") if x})[: args.limit]
    jobs = [(join_program(p, setup), u) for p, u, setup in ours_jobs]
    units = sum(len(u) for _, u in jobs)
    print(
        f"{len(jobs)} MBPP reference programs, {units} test units, {args.workers} workers, CPUs: {os.cpu_count()}"
    )

    results = {}
    iso = None
    with SandboxPool(workers=args.workers, timeout=TIMEOUT) as pool:
        pool.run("x = 1", ["assert x == 1"])  # workers started before the clock, as in a long build
        results["ours (SandboxPool)"] = timed(lambda: sum(r.passed for r in pool.map(ours_jobs)))
        iso = getattr(pool, "isolation", None)
    if iso is not None:  # the pool of an older checkout has no isolation report
        print("isolation layers active:", ", ".join(k for k, on in iso["layers"].items() if on) or "none")
    with ThreadPoolExecutor(args.workers) as ex:
        results["human-eval check_correctness"] = timed(lambda: sum(ex.map(human_eval_check, jobs)))
    with ThreadPoolExecutor(args.workers) as ex:
        results["process per program (Pipe)"] = timed(lambda: sum(ex.map(process_check, jobs)))
    results["plain exec (no isolation)"] = timed(lambda: sum(exec_units(p, u) for p, u in jobs))

    ours = units / results["ours (SandboxPool)"][0]
    print("\n| harness | seconds | units passed | units/s | ours / this |")
    print("|---|---:|---:|---:|---:|")
    for name, (seconds, passed) in results.items():
        rate = units / seconds
        print(f"| {name} | {seconds:.2f} | {passed}/{units} | {rate:,.0f} | {ours / rate:.2f}x |")
    if not args.skip_cpu:
        import sandbox_cpu  # benchmarks/ is this script's folder

        print("\nCPU-bound reference solutions, interpreter in-process vs CPython exec (best of 2):")
        sandbox_cpu.prepare()
        sandbox_cpu.print_table(
            sandbox_cpu.load_jobs(), sandbox_cpu.CPU_BOUND, 2, sandbox_cpu.DEFAULT_MAX_STEPS
        )


if __name__ == "__main__":
    main()
