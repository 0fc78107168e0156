"""One job inside its own forked, confined process: run the program, then each test unit,
streaming one frame per step to the parent. The process exits right after, so nothing of this
job (module state, caches, finalizers, a decimal context) exists when the next job starts.

Frames, in order: `prog` (the program's outcome), then `unit` i for i = 0, 1, ... and `done`;
or a terminal `prog` with a non-ok status (after the unit that used up the budget, if any).
The parent accepts exactly that sequence and nothing else.
"""

from __future__ import annotations

import gc
from typing import Any

from .channel import MAX_RESULT_BYTES, Channel, encode

# Leave room for the other frames of the job inside the parent's byte budget.
_MAX_FRAME = MAX_RESULT_BYTES // 4


def describe(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # a candidate __str__ that fails or loops out of budget
        text = "<unprintable>"
    text = text if len(text) <= 500 else text[:500] + "..."
    return f"{name}: {text}" if text else name


def _send_bounded(chan: Channel, msg: dict[str, Any]) -> None:
    """Send `msg`; a unit whose traces are too large to check fails instead (never a pass)."""
    try:
        size = len(encode(msg))
    except (ValueError, RecursionError):
        size = _MAX_FRAME + 1
    if size > _MAX_FRAME:
        msg = {"t": msg["t"], "i": msg.get("i"), "status": "failed", "out": ""}
        msg["message"] = "test values too large to check"
        if msg["t"] == "prog":
            msg = {"t": "prog", "status": "error", "reason": "result frame too large", "out": ""}
    chan.send(msg)


def _outcome(run: Any, where: str = "") -> tuple[str, str] | None:
    """Run `run()`; None when it returned, else the run's (status, reason)."""
    from .policy import PolicyError, StepLimit

    try:
        run()
    except SyntaxError as exc:  # only a setup is compiled here (the program was compiled before)
        return ("failed", where + describe(exc))
    except PolicyError as exc:
        return ("refused", f"refused: {where}{exc}")
    except StepLimit as exc:
        return ("timeout", str(exc))
    except MemoryError:
        return ("resource_limit", "MemoryError: the program exceeded its memory limit")
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit included
        return ("failed", where + describe(exc))
    return None


# A fresh interpreter made in the zygote (`prepare`) and never used there: each forked child
# takes its own copy-on-write copy, so a job does not build one (about 1 ms of a job's CPU,
# most of it the page faults of touching new memory after the fork).
_PREPARED: list[Any] = []


def prepare() -> None:
    """In the zygote, before it serves forks: one untouched interpreter with its tests' names."""
    from .interpreter import Interpreter

    interp = Interpreter()
    interp.prepare_tests()
    _PREPARED[:] = [interp]


def run_job(chan: Channel, job: dict) -> None:
    """Run one program and its tests in the interpreter, streaming results."""
    from .interpreter import Interpreter
    from .policy import PolicyError, StepLimit

    interp = _PREPARED.pop() if _PREPARED else Interpreter()
    ctx = interp.ctx
    ctx.steps = ctx.max_steps = int(job["max_steps"])

    def prog(status: str, reason: str) -> None:
        _send_bounded(chan, {"t": "prog", "status": status, "reason": reason, "out": ctx.take_output()})

    try:
        code = interp.compile(job["program"])
    except SyntaxError as exc:
        prog("failed", describe(exc))
        return
    except (RecursionError, MemoryError) as exc:  # ast.parse on a pathologically nested program
        prog("failed", f"the program cannot be parsed: {type(exc).__name__} (nested too deeply)")
        return
    except PolicyError as exc:
        prog("refused", f"refused: {exc}")
        return
    outcome = _outcome(lambda: interp.execute(code))
    if outcome is None and job.get("setup"):
        # The suite's setup (HumanEval's METADATA and `candidate = f`, MBPP's test_setup_code)
        # is test code: it runs in the tests' namespace, with their builtins and modules.
        outcome = _outcome(lambda: interp.run(job["setup"], trusted_asserts=True), "test setup: ")
    if outcome is not None:
        prog(*outcome)
        return
    prog("ok", "")
    for i, test in enumerate(job.get("tests", [])):
        ctx.asserts = []
        msg: dict[str, Any] = {"t": "unit", "i": i}
        stop: tuple[str, str] | None = None
        try:
            interp.run(test, trusted_asserts=True)
            msg.update(status="passed", asserts=ctx.asserts)
        except AssertionError as exc:
            msg.update(status="failed", message=describe(exc))
        except PolicyError as exc:
            msg.update(status="errored", message=f"refused: {exc}")
            stop = ("refused", f"refused: {exc}")
        except StepLimit as exc:
            msg.update(status="timeout", message=str(exc))
            stop = ("timeout", str(exc))
        except MemoryError:
            msg.update(status="errored", message="MemoryError: memory limit exceeded")
            stop = ("resource_limit", "MemoryError: the program exceeded its memory limit")
        except BaseException as exc:
            msg.update(status="errored", message=describe(exc))
        msg["out"] = ctx.take_output()
        _send_bounded(chan, msg)
        if stop is not None:
            prog(*stop)
            return
    # The program's finalizers run now, inside its own job, on a small budget of their own.
    interp.close()
    ctx.steps = min(ctx.steps, 100_000)
    gc.collect()
    chan.send({"t": "done", "out": ctx.take_output()})


def run_escaped(chan: Channel, job: dict) -> None:
    """TEST ONLY: the model of an escaped interpreter (plain `exec` with the real builtins).

    Reachable only through `pool._ESCAPED_FOR_TESTS`, which the OS-layer tests set; the CLI
    and the library's API never do. Each unit passes when it raises nothing."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    try:
        exec(compile(job["program"], "<program>", "exec"), ns)  # noqa: S102 - the point of this mode
        exec(compile(job.get("setup", ""), "<setup>", "exec"), ns)  # noqa: S102
    except BaseException as exc:
        chan.send({"t": "prog", "status": "failed", "reason": describe(exc), "out": ""})
        return
    chan.send({"t": "prog", "status": "ok", "reason": "", "out": ""})
    for i, test in enumerate(job.get("tests", [])):
        try:
            exec(compile(test, f"<unit {i}>", "exec"), ns)  # noqa: S102
            chan.send({"t": "unit", "i": i, "status": "passed", "asserts": [], "out": ""})
        except BaseException as exc:
            chan.send({"t": "unit", "i": i, "status": "failed", "message": describe(exc), "out": ""})
    chan.send({"t": "done", "out": ""})
