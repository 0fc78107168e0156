"""`eval generate` with a tiny random model: batched greedy decoding equals one-at-a-time
`model.generate`, seeded sampling does not depend on the batch, stop sequences, resume."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.evaluate.generate import GenerateOptions, cut_at_stop, generate, job_seed

PROBLEMS = [
    {
        "task_id": f"HumanEval/{i}",
        "prompt": prompt,
        "canonical_solution": "    return 1\n",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "f",
    }
    for i, prompt in enumerate(
        [
            "def f():\n",
            'def f():\n    """Return one, the number after zero."""\n',
            "# a\ndef f():\n    x = 1\n",
        ]
    )
]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    with gzip.open(folder / "HumanEval.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in PROBLEMS)
    return folder


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cut_at_stop_and_job_seed() -> None:
    assert cut_at_stop("    return 1\ndef g():\n", ("\ndef", "\nif")) == ("    return 1", True)
    assert cut_at_stop("    return 1\n", ("\ndef",)) == ("    return 1\n", False)
    assert job_seed(0, "HumanEval/1", 2) == job_seed(0, "HumanEval/1", 2) != job_seed(1, "HumanEval/1", 2)


def test_batched_greedy_equals_one_prompt_at_a_time_generate(
    tmp_path: Path, data_dir: Path, make_tiny_model
) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = make_tiny_model(seed=3)
    opts = GenerateOptions(
        model=model_dir,
        suite="humaneval",
        out=str(tmp_path / "s.jsonl"),
        max_new_tokens=12,
        batch_size=3,
        data_dir=str(data_dir),
    )
    opts_stop = opts  # HumanEval stop sequences apply; the reference is cut the same way below
    res = generate(opts_stop)
    assert res.written == 3 and res.new_tokens > 0
    got = {r["task_id"]: r for r in rows(tmp_path / "s.jsonl")}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    for p in PROBLEMS:
        ids = tok(p["prompt"], add_special_tokens=False, return_tensors="pt")
        ref = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
        new = ref[0, ids["input_ids"].shape[1] :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        text = cut_at_stop(
            tok.decode(new, skip_special_tokens=True), ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
        )[0]
        assert got[p["task_id"]]["completion"] == text


def test_seeded_sampling_is_independent_of_batching_and_resumes(
    tmp_path: Path, data_dir: Path, make_tiny_model
) -> None:
    model_dir = make_tiny_model(seed=4)
    common = dict(
        model=model_dir, suite="humaneval", n=3, temperature=1.0, max_new_tokens=8, data_dir=str(data_dir)
    )
    generate(GenerateOptions(out=str(tmp_path / "a.jsonl"), batch_size=9, **common))
    generate(GenerateOptions(out=str(tmp_path / "b.jsonl"), batch_size=1, **common))
    key = lambda r: (r["task_id"], r["sample"])  # noqa: E731
    a, b = sorted(rows(tmp_path / "a.jsonl"), key=key), sorted(rows(tmp_path / "b.jsonl"), key=key)
    assert [r["completion"] for r in a] == [r["completion"] for r in b] and len(a) == 9
    assert len({r["completion"] for r in a if r["task_id"] == "HumanEval/0"}) > 1  # sampling, not greedy
    # Resume: drop the last 4 rows (and cut a line in half, as a kill would), rerun, same file bytes.
    original = (tmp_path / "a.jsonl").read_bytes()
    lines = (tmp_path / "a.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:5]) + lines[5][:10])
    res = generate(GenerateOptions(out=str(tmp_path / "a.jsonl"), batch_size=9, **common))
    assert (res.skipped, res.written) == (5, 4)
    again = sorted((r for r in rows_tolerant(tmp_path / "a.jsonl")), key=key)
    assert [r["completion"] for r in again] == [r["completion"] for r in a]
    assert (tmp_path / "a.jsonl").read_bytes() == original  # the rows put back in job order
    # Other settings on the same file: refused, not mixed.
    with pytest.raises(Exception, match="other settings"):
        generate(GenerateOptions(out=str(tmp_path / "a.jsonl"), batch_size=9, **{**common, "seed": 1}))


def rows_tolerant(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_cli_generate_then_eval_code(tmp_path: Path, data_dir: Path, make_tiny_model) -> None:
    model_dir = make_tiny_model(seed=5)
    runner = CliRunner()
    samples = tmp_path / "s.jsonl"
    res = runner.invoke(
        app,
        [
            "eval",
            "generate",
            model_dir,
            "--suite",
            "humaneval",
            "--out",
            str(samples),
            "--data",
            str(data_dir),
            "--max-new-tokens",
            "6",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3 samples written" in res.stdout
    res = runner.invoke(
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
    assert json.loads(res.stdout)["tasks"] == 3
    res = runner.invoke(
        app,
        [
            "eval",
            "generate",
            model_dir,
            "--suite",
            "humaneval",
            "--out",
            str(samples),
            "--n",
            "2",
            "--data",
            str(data_dir),
        ],
    )
    assert res.exit_code == 1 and "--temperature" in res.stderr


@pytest.mark.gpu
def test_vllm_backend_matches_seeds(tmp_path: Path, data_dir: Path, make_tiny_model) -> None:
    pytest.importorskip("vllm", reason="vllm is not installed (GPU-only extra)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model_dir = make_tiny_model(seed=6)
    common = dict(model=model_dir, suite="humaneval", max_new_tokens=8, data_dir=str(data_dir))
    generate(GenerateOptions(out=str(tmp_path / "v.jsonl"), backend="vllm", **common))
    generate(GenerateOptions(out=str(tmp_path / "h.jsonl"), **common))
    v = {r["task_id"]: r["completion"] for r in rows(tmp_path / "v.jsonl")}
    h = {r["task_id"]: r["completion"] for r in rows(tmp_path / "h.jsonl")}
    assert v.keys() == h.keys() and sum(v[k] == h[k] for k in v) >= 2  # greedy: same text up to numerics


os.environ.setdefault("PREFCURATE_PROGRESS", "0")
