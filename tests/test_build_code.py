"""`build code`: best-of-N samples -> sandboxed test runs -> pairs (real CodeT data and generic JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prefcurate.build.code as code_builder
import prefcurate.sandbox.codetests as codetests
from prefcurate.build.code import CodeBuildOptions, build_code, detect_format
from prefcurate.cli import app
from prefcurate.errors import ConfigError, InputError
from prefcurate.store import Store

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "codet"
SAMPLES = DATA / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_code_solution.jsonl"
PROBLEMS = DATA / "HumanEval_for_code_generation.jsonl"
needs_codet = pytest.mark.skipif(not SAMPLES.exists(), reason="shared CodeT data not present")

runner = CliRunner()

CORRECT = "def add(a, b):\n    return a + b\n"
GENERIC = [
    {
        "task_id": "toy/add",
        "prompt": "Write add(a, b).",
        "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"],
        "completions": [
            CORRECT,  # 3/3
            "def add(a, b):\n    return a - b\n",  # 1/3: only add(0, 0) holds
            "def add(a, b)\n    return a + b\n",  # syntax error: 0/3
            CORRECT,  # duplicate
            "Here it is:\n```python\ndef add(a, b):\n    return b + a\n```\n",  # fenced, 3/3
            {"text": "def add(a, b):\n    while True:\n        pass\n", "model": "looper"},  # timeout: 0/3
        ],
        "model": "toy-model",
    },
    {
        "task_id": "toy/neg",
        "prompt": "Write neg(x).",
        "test": "def check(candidate):\n    assert candidate(1) == -1\n    assert candidate(-2) == 2\n",
        "entry_point": "neg",
        "completions": ["def neg(x):\n    return -x\n", "def neg(x):\n    return x\n"],  # 2/2 and 0/2
    },
    {
        "task_id": "toy/tie",
        "prompt": "Write one().",
        "tests": ["assert one() == 1"],
        "completions": ["def one():\n    return 1\n", "one = lambda: 1\n"],  # both 1/1: a tie
    },
]


def write_generic(tmp_path: Path, rows: list[dict] = GENERIC) -> Path:
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_codet_subset(tmp_path: Path, problems: int = 5, samples: int = 10) -> tuple[Path, Path]:
    lines = SAMPLES.read_text().splitlines()[:problems]
    subset = []
    for line in lines:
        row = json.loads(line)
        subset.append(json.dumps({"prompt": row["prompt"], "samples": row["samples"][:samples]}))
    samples_path = tmp_path / "HumanEval_codegen16B_subset.jsonl"
    samples_path.write_text("\n".join(subset) + "\n")
    problems_path = tmp_path / "HumanEval_for_code_generation.jsonl"
    problems_path.write_text(PROBLEMS.read_text())
    return samples_path, problems_path


def test_generic_best_vs_worst_exact_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    path = write_generic(tmp_path)
    assert detect_format(path) == "generic"
    result = build_code(store, CodeBuildOptions(path=str(path), timeout=2.0, workers=2, name="toy"))
    assert not result.reused
    c = result.counts
    assert c["read"] == 10 and c["distinct_samples"] == 9
    assert c["dropped"] == {"duplicate_sample": 1, "tie": 1}
    assert c["kept"] == 2 and c["problems"] == 3
    assert c["fully_passing_samples"] == 5
    assert c["run_status"]["timeout"] == 1
    pairs = result.ref.read().to_pylist()
    add = next(p for p in pairs if "add" in p["prompt"][0]["content"])
    assert add["chosen"] == CORRECT and (add["chosen_score"], add["rejected_score"]) == (3.0, 0.0)
    assert add["rejected"].startswith("def add(a, b)\n")  # the first sample with the fewest passes
    assert add["prompt"] == [{"role": "user", "content": "Write add(a, b)."}]
    assert add["chosen_model"] == "toy-model" and add["source"] == "toy"
    meta = json.loads(add["meta"])
    assert meta["tests"] == GENERIC[0]["tests"] and meta["total"] == 3 and meta["task_id"] == "toy/add"
    neg = next(p for p in pairs if "neg" in p["prompt"][0]["content"])
    assert (neg["chosen_score"], neg["rejected_score"]) == (2.0, 0.0)
    assert json.loads(neg["meta"])["entry_point"] == "neg"
    manifest = result.ref.manifest
    assert manifest["counts"]["kept"] == 2 and manifest["inputs"]["samples"]["fingerprint"]
    assert manifest["options"]["pairing"] == "best-vs-worst"
    # Same inputs and options: reused; --force: a new version.
    again = build_code(store, CodeBuildOptions(path=str(path), timeout=2.0, workers=2, name="toy"))
    assert again.reused and again.ref.version == result.ref.version
    forced = build_code(
        store, CodeBuildOptions(path=str(path), timeout=2.0, workers=2, name="toy", force=True)
    )
    assert not forced.reused and forced.ref.version == "v2"
    assert forced.ref.read().equals(result.ref.read())


def test_generic_pass_vs_fail_and_cap(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    path = write_generic(tmp_path)
    opts = CodeBuildOptions(path=str(path), pairing="pass-vs-fail", timeout=2.0, workers=2, name="toy")
    result = build_code(store, opts)
    pairs = result.ref.read().to_pylist()
    add = [p for p in pairs if "add" in p["prompt"][0]["content"]]
    # 2 fully passing x 3 failing distinct samples.
    assert len(add) == 6 and all(p["chosen_score"] == 3.0 and p["rejected_score"] < 3.0 for p in add)
    assert len({p["pair_id"] for p in add}) == 6
    assert result.counts["dropped"]["no_failing_sample"] == 1  # the tie problem: every sample passes
    capped = build_code(
        store,
        CodeBuildOptions(
            path=str(path), pairing="pass-vs-fail", max_pairs_per_prompt=2, timeout=2.0, workers=2, name="toy"
        ),
    )
    capped_add = [p for p in capped.ref.read().to_pylist() if "add" in p["prompt"][0]["content"]]
    assert len(capped_add) == 2
    assert {p["pair_id"] for p in capped_add} <= {p["pair_id"] for p in add}


@needs_codet
def test_codet_subset_build_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples_path, _ = write_codet_subset(tmp_path, problems=5, samples=10)
    assert detect_format(samples_path) == "codet"
    opts = dict(path=str(samples_path), timeout=3.0, workers=2, name="he")
    # Interrupt after the first shard, then resume: finished shards are not run again.
    monkeypatch.setattr(code_builder, "SHARD_ROWS", 16)
    calls: list[int] = []
    interrupted: list[bool] = []
    real = codetests.run_suites  # the sandbox call behind every shard

    def flaky(pool, jobs, **kw):  # noqa: ANN001
        calls.append(len(jobs))
        if len(calls) == 2 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real(pool, jobs, **kw)

    monkeypatch.setattr(codetests, "run_suites", flaky)
    store = Store(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        build_code(store, CodeBuildOptions(**opts))
    assert store.versions("pairs", "he") == []
    calls.clear()
    result = build_code(store, CodeBuildOptions(**opts))
    distinct = result.counts["distinct_samples"]
    assert sum(calls) == distinct - 16  # the first shard came from disk
    fresh = build_code(Store(tmp_path / "fresh"), CodeBuildOptions(**opts))
    assert fresh.ref.read().equals(result.ref.read())  # resumed == uninterrupted

    c = result.counts
    assert c["read"] == 50 and c["problems"] == 5
    assert c["distinct_samples"] + c["dropped"].get("duplicate_sample", 0) == 50
    assert c["kept"] + c["dropped"].get("tie", 0) == 5
    table = result.ref.read()
    assert table.num_rows == c["kept"] >= 1
    for row in table.to_pylist():
        assert row["source"] == "humaneval" and row["chosen_score"] > row["rejected_score"]
        meta = json.loads(row["meta"])
        assert meta["task_id"].startswith("HumanEval/") and "def check(candidate)" in meta["test"]
        assert meta["program_prefix"] == row["prompt"][0]["content"] and meta["entry_point"]
        assert row["chosen_model"] == "codegen16B"
        assert "\nassert" not in row["chosen"]  # bodies are cut at the first dedented line


@needs_codet
def test_cli_build_code(tmp_path: Path) -> None:
    samples_path, problems_path = write_codet_subset(tmp_path, problems=2, samples=4)
    store = tmp_path / "store"
    args = [
        "build",
        "code",
        str(samples_path),
        "--problems",
        str(problems_path),
        "--samples",
        "3",
        "--workers",
        "2",
        "--timeout",
        "3",
        "--pairing",
        "pass-vs-fail",
        "--store",
        str(store),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Wrote pairs/code/v1" in res.output and "from 2 problems, 6 samples" in res.output
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "Reused pairs/code/v1" in res.output
    res = runner.invoke(
        app, ["build", "code", str(samples_path), "--pairing", "random", "--store", str(store)]
    )
    assert res.exit_code == 1 and "--pairing 'random' is not one of" in res.output


def test_input_errors_name_file_line_field(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": "p", "completions": ["x"], "tests": ["assert 1"]})
        + "\n"
        + json.dumps({"prompt": "q", "completions": "nope", "tests": []})
        + "\n"
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'completions': expected a list"):
        build_code(store, CodeBuildOptions(path=str(bad)))
    bad.write_text(
        json.dumps({"prompt": "p", "completions": ["x"], "test": "def check(c):\n    assert c()\n"}) + "\n"
    )
    with pytest.raises(InputError, match=r"bad.jsonl:1: field 'entry_point'"):
        build_code(store, CodeBuildOptions(path=str(bad)))
    with pytest.raises(ConfigError, match="no such file"):
        build_code(store, CodeBuildOptions(path=str(tmp_path / "missing.jsonl")))
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: malformed JSON"):
        build_code(store, CodeBuildOptions(path=str(bad)))
