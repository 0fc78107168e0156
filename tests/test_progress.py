"""Progress on a pipe: lines on stderr at a steady interval (done/total, rate, ETA), none for short steps."""

from __future__ import annotations

import io
import re
import sys
import threading

import pytest

from prefcurate import progress
from prefcurate.progress import LineProgress, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_say_done_total_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    p = LineProgress("score uf", 5000, rate_field="rate", interval=20, clock=clock, stream=out)
    clock.now += 10
    p.advance(500, rate="900 tok/s")
    assert not p.tick() and out.getvalue() == ""  # not yet an interval since the start
    clock.now += 15
    p.advance(750)
    assert p.tick()
    assert out.getvalue() == "score uf: 1,250/5,000 (25.0%), 50.0/s, eta 1m15s, 900 tok/s\n"
    clock.now += 5
    assert not p.tick()  # the next line waits a whole interval
    clock.now += 20
    p.finish()
    assert out.getvalue().splitlines()[-1] == "score uf: done, 1,250 in 50s"


def test_a_short_step_prints_nothing_and_an_unknown_total_still_reports() -> None:
    clock, out = Clock(), io.StringIO()
    LineProgress("quick", 10, interval=20, clock=clock, stream=out).finish()
    assert out.getvalue() == ""
    p = LineProgress("training", None, interval=20, clock=clock, stream=out)
    clock.now += 40
    p.advance(8)
    assert p.tick() and out.getvalue() == "training: 8, 0.2/s\n"


def test_modes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("PREFCURATE_PROGRESS", raising=False)
    assert progress.lines_enabled() and not progress.progress_enabled()
    monkeypatch.setenv("PREFCURATE_PROGRESS", "0")
    assert not progress.lines_enabled() and not progress.progress_enabled()
    monkeypatch.setenv("PREFCURATE_PROGRESS", "1")
    assert progress.progress_enabled() and not progress.lines_enabled()
    monkeypatch.setenv("PREFCURATE_PROGRESS_INTERVAL", "nonsense")
    assert progress.interval_s() == progress.DEFAULT_INTERVAL_S


def test_the_thread_writes_while_a_long_step_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No advance happens while the step runs (one long shard), yet a line comes out."""
    out = io.StringIO()
    monkeypatch.setenv("PREFCURATE_PROGRESS", "lines")
    monkeypatch.setenv("PREFCURATE_PROGRESS_INTERVAL", "0.5")
    monkeypatch.setattr(sys, "stderr", out)
    wrote = threading.Event()

    with progress_bar("scoring", 100) as bar:
        for _ in range(600):  # wait for the first line (a condition, not a duration)
            if out.getvalue():
                wrote.set()
                break
            threading.Event().wait(0.1)
        bar.advance(100)
    assert wrote.is_set()
    first = out.getvalue().splitlines()[0]
    assert re.fullmatch(r"scoring: 0/100 \(0\.0%\), 0\.0/s, elapsed \d+s", first)
    assert re.fullmatch(r"scoring: done, 100 in \d+s", out.getvalue().splitlines()[-1])
