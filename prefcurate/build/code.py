"""`build code`: preference pairs from best-of-N code samples, ranked by unit tests run in the sandbox.

Inputs (`--format`, auto-detected from the first row):

* `codet`: the CodeT samples file (`prompt`, `samples[]`: function bodies) joined on `prompt`
  with its problems file (`task_id`, `prompt`, `test` defining `check(candidate)`,
  `entry_point`). The program is the problem prompt followed by the body.
* `generic`: JSONL of `{prompt, completions[], tests[] | test + entry_point}` with optional
  `task_id`, `test_setup`, `program_prefix` (prepended to each completion to form the
  program), `source`. A completion is a string or `{"text": ..., "model": ...}`.

Every distinct sample's tests run in a SandboxPool (resumable shards under the store's work
folder), then samples are paired per problem:

* `best-vs-worst`: the sample with the most passed units against the one with the fewest
  (the best-of-N recipe); problems whose samples all pass the same number are dropped (`tie`).
* `pass-vs-fail`: every sample passing all units against every sample failing at least one,
  at most `max_pairs_per_prompt` per problem (a deterministic sample, by pair id).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate.build import check_empty
from prefcurate.build.code_options import CodeBuildOptions
from prefcurate.errors import ConfigError, InputError
from prefcurate.execution import Executor, LocalExecutor, WorkKind
from prefcurate.extras import lazy_module
from prefcurate.ids import completion_id, file_fingerprint, fingerprint, pair_id, prompt_id
from prefcurate.readers import iter_json_lines
from prefcurate.sandbox.codetests import (
    TestSuite,
    build_program,
    lazy_suite_runner,
    suite_from_spec,
    truncate_body,
)
from prefcurate.sandbox.suite_shards import SuiteWork, jobs_table, run_suite_shard
from prefcurate.score import RunContext
from prefcurate.store import Store, VersionRef

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")


@dataclass
class Sample:
    text: str
    model: str | None = None


@dataclass
class Problem:
    task_id: str
    prompt: str  # what the model was asked: the user message of the pair
    spec: dict[str, Any]  # test spec as stored in meta: tests/test_setup or test + entry_point
    samples: list[Sample]
    source: str
    program_prefix: str = ""  # prepended to each sample to form the program
    line: int = 0

    @property
    def entry_point(self) -> str | None:
        return self.spec.get("entry_point") or None


@dataclass
class CodeBuildResult:
    ref: VersionRef
    reused: bool
    counts: dict[str, Any] = field(default_factory=dict)


# -- reading ---------------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    for line_no, row in iter_json_lines(Path(path)):
        if "completions" in row:
            return "generic"
        if "samples" in row:
            return "codet"
        raise InputError(
            "cannot tell the format: expected `samples` (CodeT) or `completions` (generic); pass --format",
            path=path,
            line=line_no,
        )
    raise InputError("file is empty", path=path)


def default_problems_file(samples_path: Path) -> Path:
    stem = samples_path.name.lower()
    name = (
        "mbpp_sanitized_for_code_generation.jsonl"
        if stem.startswith("mbpp")
        else "HumanEval_for_code_generation.jsonl"
    )
    return samples_path.with_name(name)


def _source_of(task_id: str, fallback: str) -> str:
    head = task_id.split("/", 1)[0].lower()
    if head.startswith("humaneval"):
        return "humaneval"
    if head.startswith("mbpp"):
        return "mbpp"
    return fallback


def _codet_model(path: Path) -> str | None:
    # CodeT names files <benchmark>_<model>_temp..._code_solution.jsonl.
    parts = path.stem.split("_")
    return parts[1] if len(parts) > 2 else None


def read_codet(path: Path, problems_path: Path, opts: CodeBuildOptions) -> tuple[list[Problem], Counter]:
    dropped: Counter = Counter()
    if not problems_path.is_file():
        raise ConfigError(f"CodeT problems file not found: {problems_path} (pass --problems)")
    problems: dict[str, dict[str, Any]] = {}
    for line_no, row in iter_json_lines(problems_path):
        for key in ("prompt", "test", "entry_point"):
            if not isinstance(row.get(key), str):
                raise InputError("missing or not a string", path=problems_path, line=line_no, field=key)
        problems[row["prompt"]] = row
    model = _codet_model(path)
    out: list[Problem] = []
    for line_no, row in iter_json_lines(path):
        if opts.limit is not None and len(out) >= opts.limit:
            break
        prompt, samples = row.get("prompt"), row.get("samples")
        if not isinstance(prompt, str):
            raise InputError("missing or not a string", path=path, line=line_no, field="prompt")
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise InputError("expected a list of strings", path=path, line=line_no, field="samples")
        problem = problems.get(prompt)
        if problem is None:
            dropped["unmatched_prompt"] += 1
            continue
        if opts.samples is not None:
            samples = samples[: opts.samples]
        texts = [truncate_body(s) if opts.truncate else s for s in samples]
        task_id = str(problem.get("task_id", f"line-{line_no}"))
        spec = {"task_id": task_id, "test": problem["test"], "entry_point": problem["entry_point"]}
        out.append(
            Problem(
                task_id=task_id,
                prompt=prompt,
                spec=spec,
                samples=[Sample(t, model) for t in texts],
                source=_source_of(task_id, path.stem),
                program_prefix=prompt,
                line=line_no,
            )
        )
    return out, dropped


def read_generic(path: Path, opts: CodeBuildOptions) -> tuple[list[Problem], Counter]:
    out: list[Problem] = []
    for line_no, row in iter_json_lines(path):
        if opts.limit is not None and len(out) >= opts.limit:
            break
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("missing or empty", path=path, line=line_no, field="prompt")
        completions = row.get("completions")
        if not isinstance(completions, list):
            raise InputError("expected a list", path=path, line=line_no, field="completions")
        samples: list[Sample] = []
        for i, c in enumerate(completions):
            if isinstance(c, str):
                samples.append(Sample(c, row.get("model")))
            elif isinstance(c, dict) and isinstance(text := c.get("text", c.get("completion")), str):
                samples.append(Sample(text, c.get("model", row.get("model"))))
            else:
                raise InputError(
                    f"completion {i} must be a string or {{text, model}}",
                    path=path,
                    line=line_no,
                    field="completions",
                )
        if opts.samples is not None:
            samples = samples[: opts.samples]
        spec: dict[str, Any] = {"task_id": str(row.get("task_id", f"{path.stem}/{line_no}"))}
        if row.get("tests") is not None:
            tests = row["tests"]
            if isinstance(tests, str):
                tests = [tests]
            if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
                raise InputError("expected a list of assert strings", path=path, line=line_no, field="tests")
            spec["tests"] = tests
            if row.get("test_setup"):
                spec["test_setup"] = str(row["test_setup"])
        elif isinstance(row.get("test"), str):
            spec["test"] = row["test"]
        else:
            raise InputError(
                "no tests: give `tests` (asserts) or `test` (check function) with `entry_point`",
                path=path,
                line=line_no,
                field="tests",
            )
        if row.get("entry_point"):
            spec["entry_point"] = str(row["entry_point"])
        elif "test" in spec:
            raise InputError(
                "a `test` check function needs `entry_point`", path=path, line=line_no, field="entry_point"
            )
        out.append(
            Problem(
                task_id=spec["task_id"],
                prompt=prompt,
                spec=spec,
                samples=samples,
                source=str(row.get("source") or _source_of(spec["task_id"], path.stem)),
                program_prefix=str(row.get("program_prefix") or ""),
                line=line_no,
            )
        )
    return out, Counter()


def load_problems(opts: CodeBuildOptions) -> tuple[str, list[Problem], Counter, dict[str, Any]]:
    """(format, problems, drop counts, input fingerprints)."""
    path = Path(opts.path)
    fmt = detect_format(path) if opts.format == "auto" else opts.format
    inputs: dict[str, Any] = {
        "samples": {"path": str(path.resolve()), "fingerprint": file_fingerprint(str(path))}
    }
    if fmt == "codet":
        problems_path = Path(opts.problems) if opts.problems else default_problems_file(path)
        problems, dropped = read_codet(path, problems_path, opts)
        inputs["problems"] = {
            "path": str(problems_path.resolve()),
            "fingerprint": file_fingerprint(str(problems_path)),
        }
    else:
        problems, dropped = read_generic(path, opts)
    return fmt, problems, dropped, inputs


# -- pairing ---------------------------------------------------------------------------------


def pair_indices(
    passed: list[int], total: int, pairing: str, cap: int, ids: list[str], pid: str
) -> tuple[list[tuple[int, int]], str | None]:
    """Pairs (chosen index, rejected index) over one problem's distinct samples, or a drop reason."""
    if not passed:
        return [], "no_samples"
    if pairing == "best-vs-worst":
        best, worst = max(passed), min(passed)
        if best == worst:
            return [], "tie"
        return [(passed.index(best), passed.index(worst))], None
    winners = [i for i, p in enumerate(passed) if p == total]
    losers = [i for i, p in enumerate(passed) if p < total]
    if not winners:
        return [], "no_passing_sample"
    if not losers:
        return [], "no_failing_sample"
    candidates = [(i, j) for i in winners for j in losers]
    # A deterministic, order-free sample: the pairs with the smallest ids.
    candidates.sort(key=lambda ij: pair_id(pid, ids[ij[0]], ids[ij[1]]))
    return candidates[:cap], None


# -- the build -------------------------------------------------------------------------------


SHARD_ROWS = 256  # samples per resumable shard


def build_code(store: Store, opts: CodeBuildOptions, executor: Executor | None = None) -> CodeBuildResult:
    """Read samples, run their tests in the sandbox (resumable), pair them and publish.

    `executor`: where the tests run (this machine by default, or Ray actors each with a sandbox);
    the pairs are the same either way, and the run fingerprint does not depend on it."""
    opts.validate()
    with store.lock("pairs", opts.name):  # a second build of this name waits, then reuses
        return _build_code(store, opts, executor)


def _build_code(store: Store, opts: CodeBuildOptions, executor: Executor | None) -> CodeBuildResult:
    fmt, problems, dropped, inputs = load_problems(opts)
    spec = {
        k: v
        for k, v in asdict(opts).items()
        if k not in ("path", "problems", "workers", "force", "name", "require_isolation", "fail_on_empty")
    }
    spec["format"] = fmt
    run_fp = fingerprint(
        {
            "inputs": inputs,
            "limit": opts.limit,
            "samples": opts.samples,
            "truncate": opts.truncate,
            "format": fmt,
            "timeout": opts.timeout,
        }
    )
    fp = fingerprint({"builder": "code_v1", "inputs": inputs, "spec": spec})
    if existing := store.reusable("pairs", opts.name, fp, force=opts.force):
        return CodeBuildResult(existing, True, existing.manifest.get("counts", {}))

    # Distinct samples per problem, and one sandbox job each.
    read = 0
    jobs: list[tuple[str, TestSuite]] = []
    per_problem: list[tuple[Problem, str, TestSuite | None, list[tuple[Sample, str, int]]]] = []
    for prob in problems:
        messages = [{"role": "user", "content": prob.prompt}]
        pid = prompt_id(messages)
        read += len(prob.samples)
        suite = suite_from_spec(prob.spec, where=f"{opts.path}:{prob.line}")
        if suite.total == 0:
            dropped["no_tests"] += len(prob.samples)
            per_problem.append((prob, pid, None, []))
            continue
        seen: set[str] = set()
        distinct: list[tuple[Sample, str, int]] = []
        for sample in prob.samples:
            cid = completion_id(pid, sample.text)
            if cid in seen:
                dropped["duplicate_sample"] += 1
                continue
            seen.add(cid)
            program = build_program(sample.text, prob.program_prefix, prob.entry_point)
            distinct.append((sample, cid, len(jobs)))
            jobs.append((program, suite))
        per_problem.append((prob, pid, suite, distinct))

    work_dir = store.work_dir("pairs", opts.name, run_fp)
    executor = executor or LocalExecutor()
    # map_shards needs only work_dir and the executor
    ctx = RunContext(store, opts.name, work_dir, None, executor)  # type: ignore[arg-type]
    with lazy_suite_runner(opts.workers, opts.timeout, opts.require_isolation) as run:
        runs = ctx.map_shards(
            jobs_table(jobs),
            partial(run_suite_shard, run),
            work=SuiteWork(opts.workers, opts.timeout, opts.require_isolation),
            kind=WorkKind.sandbox,
            shard_rows=SHARD_ROWS,
            description="running tests",
            tag="runs",
            rate=lambda shard, per_s: f"{per_s:,.1f} samples/s",
        )
    passed_by_job = runs.column("passed").to_pylist()
    status_counts = Counter(runs.column("status").to_pylist())

    rows: list[dict[str, Any]] = []
    fully_passing = 0
    for prob, pid, tested, distinct in per_problem:
        if tested is None:
            continue
        passed = [passed_by_job[j] for _, _, j in distinct]
        fully_passing += sum(p == tested.total for p in passed)
        ids = [cid for _, cid, _ in distinct]
        pairs, reason = pair_indices(passed, tested.total, opts.pairing, opts.max_pairs_per_prompt, ids, pid)
        if reason:
            dropped[reason] += 1
            continue
        meta = dict(prob.spec)
        if prob.program_prefix:
            meta["program_prefix"] = prob.program_prefix
        meta["total"] = tested.total
        meta["pairing"] = opts.pairing
        meta_json = json.dumps(meta, ensure_ascii=False, sort_keys=True)
        for i, j in pairs:
            (cs, cid, _), (rs, rid, _) = distinct[i], distinct[j]
            rows.append(
                {
                    "pair_id": pair_id(pid, cid, rid),
                    "prompt_id": pid,
                    "dataset": opts.name,
                    "source": prob.source,
                    "prompt": [{"role": "user", "content": prob.prompt}],
                    "chosen": cs.text,
                    "rejected": rs.text,
                    "chosen_id": cid,
                    "rejected_id": rid,
                    "chosen_score": float(passed[i]),
                    "rejected_score": float(passed[j]),
                    "chosen_model": cs.model,
                    "rejected_model": rs.model,
                    "meta": meta_json,
                }
            )
    from prefcurate.schema import PAIR_SCHEMA

    table = pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)
    counts = {
        "read": read,
        "kept": table.num_rows,
        "dropped": dict(sorted(dropped.items())),
        "problems": len(problems),
        "distinct_samples": len(jobs),
        "fully_passing_samples": fully_passing,
        "run_status": dict(sorted(status_counts.items())),
    }
    manifest = {
        "builder": "code_v1",
        "dataset": opts.name,
        "options": {**spec, "path": opts.path, "problems": opts.problems, "workers": opts.workers},
        "inputs": inputs,
        "counts": counts,
        "fingerprint": fp,
        # The OS layers active for the programs this invocation ran here (null: all shards resumed,
        # or all ran on Ray actors: see execution.actor_info).
        "sandbox_isolation": run.isolation,
        "execution": executor.record(),  # not in the fingerprint
    }
    check_empty(counts, opts.fail_on_empty, opts.path)
    with store.publish("pairs", opts.name, manifest) as pub:
        pub.write_table(table)
    store.clear_work_dir("pairs", opts.name, run_fp)
    return CodeBuildResult(VersionRef("pairs", opts.name, pub.manifest["version"], pub.path), False, counts)
