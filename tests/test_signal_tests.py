"""test_pass_v1 (`score --by tests`): sandboxed unit-test pass counts per side of a code pair."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import prefcurate.sandbox.codetests as codetests
import prefcurate.score.test_pass as test_pass_module
from prefcurate import ids
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.schema import PAIR_SCHEMA
from prefcurate.score import get_signal, run_signal
from prefcurate.score.test_pass import TestPass
from prefcurate.store import Store

runner = CliRunner()


def pair(prompt: str, chosen: str, rejected: str, meta: dict | None) -> dict:
    messages = [{"role": "user", "content": prompt}]
    pid = ids.prompt_id(messages)
    cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
    return {
        "pair_id": ids.pair_id(pid, cid, rid),
        "prompt_id": pid,
        "dataset": "codepairs",
        "source": "toy",
        "prompt": messages,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_id": cid,
        "rejected_id": rid,
        "chosen_score": None,
        "rejected_score": None,
        "chosen_model": None,
        "rejected_model": None,
        "meta": json.dumps(meta) if meta is not None else None,
    }


SQUARE_TESTS = {"tests": ["assert sq(2) == 4", "assert sq(3) == 9", "assert sq(0) == 0"]}
GOOD = "def sq(x):\n    return x * x\n"
HALF = "def sq(x):\n    return x + x\n"  # passes sq(2) and sq(0)
BAD = "def sq(x):\n    raise ValueError('no')\n"
HE_PROMPT = 'def inc(x: int) -> int:\n    """Add one."""\n'
HE_META = {
    "test": "METADATA = {}\n\ndef check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n",
    "entry_point": "inc",
    "program_prefix": HE_PROMPT,
}


def publish_pairs(store: Store) -> pa.Table:
    rows = [
        pair("square", GOOD, HALF, SQUARE_TESTS),
        pair("square", GOOD, BAD, SQUARE_TESTS),  # GOOD shared: run once
        pair("square", "```python\n" + HALF + "```", BAD, SQUARE_TESTS),  # fenced completion
        pair("inc", "    return x + 1\n", "    return abs(x) + 1\n", HE_META),  # bodies after the prompt
        pair("chat", "hello", "bye", None),  # no tests: nulls
        pair("chat2", "a", "b", {"task_id": "x"}),  # meta without tests: nulls
    ]
    table = pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)
    with store.publish(
        "pairs", "codepairs", {"fingerprint": "toy-code-pairs", "counts": {"kept": len(rows)}}
    ) as pub:
        pub.write_table(table)
    return table


def test_signal_registered_with_options() -> None:
    assert get_signal("tests") is TestPass and get_signal("test_pass_v1") is TestPass
    assert TestPass.option_names() == ("timeout", "workers", "require_isolation")
    with pytest.raises(ConfigError, match="--model does not apply to --by tests"):
        TestPass.from_options(model="x")


def test_pass_counts_and_nulls(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    pairs = publish_pairs(store)
    ref, reused = run_signal(store, "codepairs", TestPass(timeout=3.0, workers=2))
    assert not reused and ref.label == "scores/codepairs/test_pass_v1/v1"
    out = ref.read()
    assert out.column("pair_id").equals(pairs.column("pair_id"))
    got = list(
        zip(
            *(
                out.column(f"test_pass_v1__{f}").to_pylist()
                for f in ("chosen_passed", "rejected_passed", "total", "gap")
            ),
            strict=False,
        )
    )
    assert got == [(3, 2, 3, 1), (3, 0, 3, 3), (2, 0, 3, 2), (2, 1, 2, 1), (None,) * 4, (None,) * 4]
    m = ref.manifest
    assert m["counts"]["nulls"]["test_pass_v1__gap"] == 2 and m["pairs_without_tests"] == 2
    assert m["completions_run"] == 6  # GOOD, fenced HALF, HALF, BAD, two inc bodies: each once
    assert m["spec"] == {"timeout": 3.0}
    again, reused = run_signal(store, "codepairs", TestPass(timeout=3.0, workers=1))
    assert reused and again.version == ref.version  # the worker count does not change values


def test_score_cli_by_tests(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    publish_pairs(store)
    res = runner.invoke(
        app,
        [
            "score",
            "codepairs",
            "--by",
            "tests",
            "--timeout",
            "3",
            "--workers",
            "2",
            "--store",
            str(store.root),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Wrote scores/codepairs/test_pass_v1/v1" in res.output and "test_pass_v1__gap=2" in res.output
    res = runner.invoke(
        app, ["score", "codepairs", "--by", "tests", "--model", "m", "--store", str(store.root)]
    )
    assert res.exit_code == 1 and "--model does not apply to --by tests" in res.output


def test_resumes_after_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store")
    publish_pairs(store)
    monkeypatch.setattr(test_pass_module, "SHARD_ROWS", 2)
    real, calls, interrupted = codetests.run_suites, [], []

    def flaky(pool, jobs, **kw):  # noqa: ANN001
        calls.append(len(jobs))
        if len(calls) == 2 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real(pool, jobs, **kw)

    monkeypatch.setattr(codetests, "run_suites", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_signal(store, "codepairs", TestPass(timeout=3.0, workers=2))
    assert store.versions("scores", "codepairs/test_pass_v1") == []
    calls.clear()
    ref, _ = run_signal(store, "codepairs", TestPass(timeout=3.0, workers=2))
    assert calls == [2, 2]  # 6 completions in shards of 2: the first shard came from disk
    assert ref.read().column("test_pass_v1__gap").to_pylist() == [1, 3, 2, 1, None, None]
