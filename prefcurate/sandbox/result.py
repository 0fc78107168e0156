"""Plain result records of a sandboxed run: what the parent process decided."""

from __future__ import annotations

from dataclasses import dataclass, field

# Unit statuses: one per test source string given to a run.
PASSED, FAILED, ERRORED, TIMEOUT, SKIPPED = "passed", "failed", "errored", "timeout", "skipped"
# Run statuses.
OK, RUN_FAILED, REFUSED, RUN_TIMEOUT, RESOURCE_LIMIT, ERROR = (
    "ok",
    "failed",
    "refused",
    "timeout",
    "resource_limit",
    "error",
)


@dataclass(frozen=True)
class UnitResult:
    """Outcome of one test unit: passed | failed | errored | timeout | skipped."""

    status: str
    message: str = ""


@dataclass(frozen=True)
class RunResult:
    """Outcome of one program and its test units.

    status: "ok" (the program ran and its tests ran: look at `units`), "failed" (the program
    itself raised), "refused" (the sandbox policy stopped it; `reason` says what), "timeout"
    (wall-clock deadline or step budget), "resource_limit" (memory, recursion of the host, CPU
    rlimit) or "error" (a sandbox-internal problem).
    """

    status: str
    reason: str = ""
    units: tuple[UnitResult, ...] = field(default_factory=tuple)
    stdout: str = ""
    duration_s: float = 0.0

    def _count(self, status: str) -> int:
        return sum(1 for u in self.units if u.status == status)

    @property
    def passed(self) -> int:
        return self._count(PASSED)

    @property
    def failed(self) -> int:
        return self._count(FAILED)

    @property
    def errored(self) -> int:
        return self._count(ERRORED)

    @property
    def timed_out(self) -> int:
        return self._count(TIMEOUT)

    @property
    def total(self) -> int:
        return len(self.units)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "passed": self.passed,
            "failed": self.failed,
            "errored": self.errored,
            "timed_out": self.timed_out,
            "total": self.total,
            "duration_s": round(self.duration_s, 6),
            "stdout": self.stdout,
            "units": [{"status": u.status, "message": u.message} for u in self.units],
        }
