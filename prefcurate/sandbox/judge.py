"""The parent's judgement of one job: which frames may come next, and what they mean.

The sequence a job's process must send is `prog` (ok), one `unit` per test sent (in order,
each once), `done`; or a terminal `prog` with a non-ok status (after the unit that used up the
budget, if any). Anything else is a protocol violation and fails the whole run.
"""

from __future__ import annotations

import os
import signal
import time

from . import plain
from .result import (
    ERROR,
    ERRORED,
    FAILED,
    OK,
    PASSED,
    RESOURCE_LIMIT,
    RUN_TIMEOUT,
    SKIPPED,
    TIMEOUT,
    RunResult,
    UnitResult,
)

_RUN_STATUSES = {"failed", "refused", "timeout", "resource_limit", "error"}


class JobState:
    """One job's state in the parent: which frames are still allowed, and the results so far."""

    def __init__(self, tests: list[str], limit: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + limit
        self.limit = limit
        self.tests = tests
        self.units: list[UnitResult | None] = [None] * len(tests)
        self.out: list[str] = []
        self.out_left = plain.MAX_STDOUT
        self.next = -1  # -1: the `prog` frame is due; then the index of the next unit
        self.stop: str | None = None  # a unit used up the budget: a `prog` with this status must follow
        self.why_dead = ""
        self.violated = False

    def finish(self, status: str, reason: str, fill: str) -> RunResult:
        done = tuple(
            u if u is not None else UnitResult(fill, "not run: " + reason if reason else "")
            for u in self.units
        )
        return RunResult(status, reason, done, "".join(self.out), time.monotonic() - self.start)

    def _violate(self, why: str) -> RunResult:
        self.violated = True
        self.units = [None] * len(self.units)
        return self.finish(ERROR, f"sandbox protocol violation: {why}", ERRORED)

    def take(self, msg: dict) -> RunResult | None:
        """Account for one frame; the run's result once the sequence is complete."""
        out = msg.get("out", "")
        if type(out) is not str:
            return self._violate("output is not text")
        self.out.append(out[: self.out_left])
        self.out_left = max(0, self.out_left - len(out))
        kind = msg.get("t")
        if kind == "prog":
            status, reason = msg.get("status"), msg.get("reason", "")
            if type(status) is not str or type(reason) is not str:
                return self._violate("malformed prog frame")
            if self.next == -1 and status == OK:
                self.next = 0
                return None
            if status not in _RUN_STATUSES or (self.stop is not None and status != self.stop):
                return self._violate(f"unexpected prog frame {status!r}")
            fill = TIMEOUT if status == RUN_TIMEOUT else ERRORED
            return self.finish(status, reason[:2000], fill)
        if kind == "unit":
            i = msg.get("i")
            if self.stop is not None or self.next < 0 or type(i) is not int or i != self.next:
                return self._violate(f"unit {i!r} out of order")
            if i >= len(self.units):
                return self._violate(f"a result for unit {i}, which was never sent")
            self.units[i] = judge_unit(msg)
            self.next += 1
            if msg.get("status") in (TIMEOUT, RESOURCE_LIMIT):
                # The budget ran out inside this unit: the rest cannot run; a `prog` frame follows.
                self.stop = RUN_TIMEOUT if msg.get("status") == TIMEOUT else RESOURCE_LIMIT
                fill = TIMEOUT if msg.get("status") == TIMEOUT else ERRORED
                for j in range(i + 1, len(self.units)):
                    self.units[j] = UnitResult(fill, "not run: " + str(msg.get("message", ""))[:2000])
            return None
        if kind == "done":
            if self.next != len(self.units) or self.stop is not None:
                return self._violate(f"done after {max(self.next, 0)} of {len(self.units)} units")
            return self.finish(OK, "", SKIPPED)
        return self._violate(f"unexpected frame {str(kind)[:40]!r}")

    def died(self, status: int | None, killed: bool = False) -> RunResult:
        self.units = [None] * len(self.units)  # nothing a dead child said counts
        if killed:  # it closed its channel but went on running
            return self.finish(
                ERROR, f"the job's process ended its channel without a result ({self.why_dead})", ERRORED
            )
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGXCPU, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
                why = f"the job's process was killed by {signal.Signals(sig).name}"
                return self.finish(RESOURCE_LIMIT, why, ERRORED)
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            return self.finish(ERROR, f"the job's process was killed by {name}", ERRORED)
        code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
        why = f"the job's process ended without a result ({self.why_dead}; exit code {code})"
        return self.finish(ERROR, why, ERRORED)


def judge_unit(msg: dict) -> UnitResult:
    """Decide a unit in the parent: the worker's outcome, re-checked against the assertion traces.

    A unit passes only if it raised nothing and every trusted assert it evaluated holds when the
    parent recomputes the comparison from the plain operand values.
    """
    status = msg.get("status")
    message = msg.get("message", "")
    message = message[:2000] if type(message) is str else ""
    traces = msg.get("asserts")
    if status == PASSED:
        if type(traces) is not list:
            return UnitResult(FAILED, "no assertion traces")
        for trace in traces:
            try:
                holds = plain.evaluate_trace(trace)
            except Exception as exc:  # a trace the parent cannot evaluate: never a pass
                return UnitResult(FAILED, f"assertion could not be checked: {type(exc).__name__}")
            if not holds:
                return UnitResult(FAILED, "assertion failed (recomputed by the parent)")
        return UnitResult(PASSED, "")
    if status in (FAILED, ERRORED, TIMEOUT, SKIPPED):
        return UnitResult(status, message)
    if status == RESOURCE_LIMIT:
        return UnitResult(ERRORED, message)
    return UnitResult(ERRORED, message or f"unknown unit status {str(status)[:40]!r}")
