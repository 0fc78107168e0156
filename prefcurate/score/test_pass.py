"""test_pass_v1: unit tests passed by each side of a code pair, run in the sandbox.

The tests come from the pair's `meta` JSON as `build code` writes it: `tests` (assert strings,
optional `test_setup`) or `test` (a HumanEval `check(candidate)` function) with `entry_point`,
and optional `program_prefix` (the problem prompt, when completions are function bodies).
Each distinct completion (by completion id) runs once, however many pairs share it.

Fields: chosen_passed, rejected_passed, total (units in the suite), gap = chosen - rejected
(a large gap is an easy pair). Pairs whose meta has no tests get nulls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from prefcurate.errors import InputError
from prefcurate.execution import WorkKind
from prefcurate.extras import lazy_module
from prefcurate.score.base import Computed, RunContext, Signal, distinct_completions, register

if TYPE_CHECKING:
    import pyarrow as pa

    from prefcurate.sandbox.codetests import TestSuite
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

SHARD_ROWS = 256  # distinct completions per resumable shard


@register
@dataclass
class TestPass(Signal):
    __test__ = False  # not a pytest class

    name = "test_pass_v1"
    cli_name = "tests"
    fields = ("chosen_passed", "rejected_passed", "total", "gap")
    description = "unit tests passed by chosen and rejected (sandboxed); gap = chosen - rejected"
    shards = WorkKind.sandbox

    timeout: float = 5.0
    workers: int | None = None
    require_isolation: bool = False

    def spec(self) -> dict:
        # The worker count does not change values: keep it out of the fingerprint so a rerun
        # with another --workers resumes the same shards.
        return {"timeout": self.timeout}

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        # The sandbox loads when tests run: the registry of signals (`score --help`) stays light.
        from prefcurate.sandbox.codetests import build_program, lazy_suite_runner, meta_suite
        from prefcurate.sandbox.suite_shards import SuiteWork, jobs_table, run_suite_shard

        # One job per distinct completion with tests, in the shared order (deterministic for resume).
        metas = pairs.column("meta").to_pylist()
        suites: list[TestSuite | None] = []
        parsed: dict[str, tuple[TestSuite | None, str, str | None]] = {}
        for row, meta in enumerate(metas):
            if meta not in parsed:
                try:
                    suite = meta_suite(meta)
                    spec = json.loads(meta) if meta else {}
                except (json.JSONDecodeError, InputError) as exc:
                    raise InputError(
                        f"cannot read tests from meta: {exc}", path=ctx.pairs_ref.label, row=row, field="meta"
                    ) from None
                parsed[meta] = (suite, spec.get("program_prefix") or "", spec.get("entry_point"))
            suites.append(parsed[meta][0])

        order: dict[str, int] = {}
        job_meta: list[str] = []
        job_text: list[str] = []
        sides = [pairs.column(f"{side}_id").to_pylist() for side in ("chosen", "rejected")]
        texts = {side: pairs.column(side).to_pylist() for side in ("chosen", "rejected")}
        for c in distinct_completions(pairs):
            if suites[c.row] is None:
                continue
            order[c.id] = len(job_meta)
            job_meta.append(metas[c.row])
            job_text.append(texts[c.side][c.row])

        work: list[tuple[str, TestSuite]] = []
        for text, meta in zip(job_text, job_meta, strict=True):
            suite, prefix, entry = parsed[meta]
            assert suite is not None  # only completions with tests become jobs
            work.append((build_program(text, prefix, entry), suite))
        jobs = jobs_table(work)
        # Locally --workers is the sandbox pool; on Ray each actor starts its own (see SuiteWork).
        with lazy_suite_runner(self.workers, self.timeout, self.require_isolation) as run:
            done = ctx.map_shards(
                jobs,
                partial(run_suite_shard, run),
                work=SuiteWork(self.workers, self.timeout, self.require_isolation),
                kind=WorkKind.sandbox,
                shard_rows=SHARD_ROWS,
                description="running tests",
                tag="completions",
                rate=lambda shard, per_s: f"{per_s:,.1f} completions/s",
            )
        passed = done.column("passed").to_pylist()
        isolation = run.isolation  # the OS layers the programs ran under (None: all resumed)

        def side_passed(ids: list[str]) -> list[int | None]:
            return [passed[order[cid]] if suites[row] is not None else None for row, cid in enumerate(ids)]

        chosen, rejected = side_passed(sides[0]), side_passed(sides[1])
        total = [s.total if s is not None else None for s in suites]
        extra = {
            "sandbox": {"timeout": self.timeout, "workers": self.workers, "isolation": isolation},
            "pairs_without_tests": sum(s is None for s in suites),
            "completions_run": len(job_meta),
        }
        gap = [
            c - r if c is not None and r is not None else None for c, r in zip(chosen, rejected, strict=False)
        ]
        table = pa.table(
            {
                "pair_id": pairs.column("pair_id"),
                self.column("chosen_passed"): pa.array(chosen, pa.int32()),
                self.column("rejected_passed"): pa.array(rejected, pa.int32()),
                self.column("total"): pa.array(total, pa.int32()),
                self.column("gap"): pa.array(gap, pa.int32()),
            }
        )
        return Computed(table, extra)
