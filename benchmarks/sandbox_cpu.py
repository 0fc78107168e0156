"""CPU-bound programs: the sandbox interpreter beside plain CPython, same programs, same run.

The programs are every HumanEval canonical solution and MBPP reference solution whose
program + test units take over 50 ms in plain CPython on this machine (`--discover` finds
them again; the list below is what it found). Each one runs in this process twice: with
CPython's `exec` (the reference code is trusted) and with the sandbox interpreter (fresh
Interpreter, the default step budget, units compiled as trusted test code, exactly as a
worker runs them; in a thread with a large stack, as in a worker). Both times are wall-clock
seconds, best of `--repeat`; the ratio is sandbox / CPython. Units passed are shown for both
(the goal: every unit CPython passes also passes in the sandbox, within 4x of CPython).

    .venv/bin/python benchmarks/sandbox_cpu.py            # the listed programs
    .venv/bin/python benchmarks/sandbox_cpu.py --discover # time all 1,138 in CPython first
    .venv/bin/python benchmarks/sandbox_cpu.py --ids mbpp/123,HumanEval/75
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefcurate.sandbox.codetests import build_program, join_program, suite_from_spec  # noqa: E402
from prefcurate.sandbox.interpreter import Interpreter  # noqa: E402
from prefcurate.sandbox.policy import DEFAULT_MAX_STEPS, SandboxAbort  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
THRESHOLD_S = 0.050
# Found by --discover on the 2-core VM (2026-12-01, again 2026-12-02): CPython time over 50 ms.
# mbpp/123 needs about 83M steps (comprehension items), within the default budget of 200M.
CPU_BOUND = ["HumanEval/75", "mbpp/123"]


def load_jobs() -> dict[str, tuple[str, list[str]]]:
    jobs: dict[str, tuple[str, list[str]]] = {}
    for row in (json.loads(x) for x in gzip.open(DATA / "humaneval" / "HumanEval.jsonl.gz", "rt")):
        suite = suite_from_spec(row)
        program = build_program(row["canonical_solution"], row["prompt"], row["entry_point"])
        jobs[row["task_id"]] = (join_program(program, suite.setup), list(suite.units))
    for row in (json.loads(x) for x in open(DATA / "mbpp" / "mbpp.jsonl", encoding="utf-8")):
        suite = suite_from_spec(row)
        jobs[f"mbpp/{row['task_id']}"] = (
            join_program(build_program(row["code"]), suite.setup),
            list(suite.units),
        )
    return jobs


def run_cpython(program: str, units: list[str]) -> tuple[float, int]:
    ns: dict = {"__name__": "__main__"}
    passed = 0
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(compile(program, "<program>", "exec"), ns)  # noqa: S102 - trusted reference code
        except BaseException:  # noqa: BLE001 - a failing program passes no unit
            return time.perf_counter() - start, 0
        for unit in units:
            try:
                exec(compile(unit, "<unit>", "exec"), ns)  # noqa: S102
                passed += 1
            except BaseException:  # noqa: BLE001, S110 - counted as not passed
                pass
    return time.perf_counter() - start, passed


def run_sandbox(program: str, units: list[str], max_steps: int) -> tuple[float, int, str]:
    out: list = []

    def work() -> None:
        interp = Interpreter(max_steps=max_steps)
        passed, status = 0, "ok"
        start = time.perf_counter()
        try:
            interp.run(program)
            for unit in units:
                try:
                    interp.run(unit, trusted_asserts=True)
                    passed += 1
                except SandboxAbort as exc:
                    status = type(exc).__name__
                    break
                except BaseException:  # noqa: BLE001, S110 - counted as not passed
                    pass
        except BaseException as exc:  # noqa: BLE001 - the program failed
            status = type(exc).__name__
        out.append((time.perf_counter() - start, passed, status))
        interp.close()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out[0]


def prepare() -> None:
    """Deep recursion as in a worker: a large stack for the interpreter's threads."""
    sys.setrecursionlimit(60_000)
    threading.stack_size(256 * 1024 * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--discover", action="store_true", help="time every program in CPython and pick > 50 ms")
    ap.add_argument("--ids", default=None, help="comma-separated job ids instead of the list")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per side")
    ap.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="the sandbox's step budget")
    args = ap.parse_args()
    prepare()
    jobs = load_jobs()
    if args.ids:
        ids = args.ids.split(",")
    elif args.discover:
        timed = {k: run_cpython(*jobs[k])[0] for k in jobs}
        ids = sorted((k for k, s in timed.items() if s > THRESHOLD_S), key=lambda k: -timed[k])
        print(
            f"discovered {len(ids)} of {len(jobs)} programs over {THRESHOLD_S * 1000:.0f} ms in CPython: {ids}"
        )
    else:
        ids = CPU_BOUND
    print_table(jobs, ids, args.repeat, args.max_steps)


def print_table(jobs: dict[str, tuple[str, list[str]]], ids: list[str], repeat: int, max_steps: int) -> None:
    """The programs of `ids` in CPython and in the sandbox, best of `repeat`, with the ratio."""
    print("| program | CPython s | sandbox s | ratio | units passed (CPython / sandbox) | sandbox status |")
    print("|---|---:|---:|---:|---:|---|")
    ratios = []
    for k in ids:
        program, units = jobs[k]
        cp = min(run_cpython(program, units)[0] for _ in range(repeat))
        cp_passed = run_cpython(program, units)[1]
        runs = [run_sandbox(program, units, max_steps) for _ in range(repeat)]
        sb, sb_passed, status = min(runs)
        ratios.append(sb / cp)
        print(
            f"| {k} | {cp:.3f} | {sb:.3f} | {sb / cp:.2f}x | {cp_passed}/{len(units)} / {sb_passed}/{len(units)} | {status} |",
            flush=True,
        )
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(
            f"\n{len(ratios)} programs: geometric mean ratio {geo:.2f}x, worst {max(ratios):.2f}x (goal: within 4x)"
        )


if __name__ == "__main__":
    main()
