"""CLI start-up stays light: what `--help` and `ls` load, checked in a fresh process (not how long they
take: no timings here; benchmarks/startup.py measures the time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefcurate.build.pairs import build_pairs
from prefcurate.extras import lazy_module
from prefcurate.store import Store

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "ultrafeedback_binarized.jsonl"
MODELS = {"torch", "transformers", "datasets"}
# Data libraries the typed choices must not need: their modules bind these with extras.lazy_module.
DATA = {"pyarrow", "duckdb", "numpy", "pandas", "polars"}


def loaded_after(args: list[str], store: Path, cwd: Path) -> set[str]:
    """Top-level packages of MODELS | DATA in sys.modules after `python -m prefcurate ARGS`."""
    code = (
        "import runpy, sys, json\n"
        f"sys.argv = ['prefcurate', *{args!r}]\n"
        "try:\n    runpy.run_module('prefcurate', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(MODELS | DATA)!r}))))\n"
    )
    # cwd outside the tree and the tree on PYTHONPATH: this checkout is the one imported.
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFCURATE_STORE=str(store), PREFCURATE_PROGRESS="0")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def one_dataset_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one dataset, so `ls` renders a table (an empty store only prints a hint)."""
    root = tmp_path_factory.mktemp("startup") / "store"
    build_pairs(Store(root), str(SAMPLE), dataset="sample", limit=5)
    return root


@pytest.mark.parametrize(
    "args",
    [["--help"], ["ls", "--help"], ["build", "--help"], ["train", "--help"], ["partition", "--help"]],
    ids=" ".join,
)
def test_help_loads_no_model_or_data_library(
    args: list[str], one_dataset_store: Path, tmp_path: Path
) -> None:
    assert loaded_after(args, one_dataset_store, tmp_path) == set()


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_ls_loads_no_model_or_data_library(fmt: str, one_dataset_store: Path, tmp_path: Path) -> None:
    assert loaded_after(["ls", "--format", fmt], one_dataset_store, tmp_path) == set()


def test_help_still_lists_the_typed_choices(one_dataset_store: Path, tmp_path: Path) -> None:
    """The choices come from the library's Enums, loaded without their data libraries."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFCURATE_STORE=str(one_dataset_store), COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "prefcurate", "build", "ultrafeedback", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for choice in ("top-vs-rest", "best-vs-random", "all-ordered", "fine-grained"):
        assert choice in done.stdout


def test_a_lazy_module_imports_on_first_use() -> None:
    name = "prefcurate._lazy_probe"  # not a real module: the import happens, and fails, on first use
    probe = lazy_module(name)
    assert name not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        probe.anything  # noqa: B018
    json_lazy = lazy_module("json")
    assert json_lazy.dumps([1]) == "[1]" and json_lazy.loads is json.loads
