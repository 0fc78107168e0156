"""The seed experiments in examples/ run end to end in their `--smoke` mode (real bundled model,
real data, real sandbox and trainers; minutes each on a CPU, so `slow`) and print the eval table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--smoke", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_uf_curriculum_smoke(tmp_path: Path) -> None:
    data = SHARED / "ultrafeedback_binarized_flat"
    if not data.is_dir():
        pytest.skip(f"no {data}")
    out = run_example("uf_curriculum.py", "--work", str(tmp_path / "uf"), "--data", str(data))
    assert "holdout_acc" in out and "win rate: not measured" in out
    assert (tmp_path / "uf" / "results.md").is_file()


@pytest.mark.slow
def test_sdpo_smoke(tmp_path: Path) -> None:
    data = SHARED / "ultrafeedback_binarized_flat"
    if not data.is_dir():
        pytest.skip(f"no {data}")
    out = run_example("sdpo_smollm2.py", "--out", str(tmp_path / "sdpo"), "--data", str(data))
    assert "held-out preference accuracy, differences to plain" in out and "mcnemar" in out


@pytest.mark.slow
def test_code_curriculum_smoke(tmp_path: Path) -> None:
    if not (SHARED / "mbpp").is_dir():
        pytest.skip(f"no {SHARED / 'mbpp'}")
    out = run_example("code_curriculum.py", "--work", str(tmp_path / "cc"), "--data", str(SHARED))
    assert "pass@1 per arm and stage" in out
