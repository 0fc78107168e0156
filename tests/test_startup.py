"""CLI start-up stays light: what `--help` and `ls` load, checked in a fresh process (not how long they
take: no timings here; benchmarks/startup.py measures the time)."""

from __future__ import annotations

import ast
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
# What the command modules import only inside a command body: the library behind each command (its
# choices and defaults come from light modules such as build/*_options.py and bucket/export_options.py),
# the sandbox pool, Rich's progress bar and importlib.metadata (library versions, for manifests).
LAZY = {
    "prefcurate.bucket.export",
    "prefcurate.bucket.partition",
    "prefcurate.bucket.split",
    "prefcurate.build.code",
    "prefcurate.build.pairs",
    "prefcurate.build.ultrafeedback",
    "prefcurate.readers",
    "prefcurate.schema",
    "prefcurate.sandbox.pool",
    "prefcurate.sandbox.codetests",
    "prefcurate.sandbox.files",
    "prefcurate.store.views",
    "prefcurate.explore.ranking",
    "prefcurate.explore.page",
    "prefcurate.evaluate.generate",
    "prefcurate.demo.run",
    "prefcurate.models.logprob",
    "trainers.runner",
    "rich.progress",
    "concurrent.futures",
    "importlib.metadata",
}
# Typer's help rendering (Markdown, panels): `ls` renders a table, not help.
HELP_RENDERING = {"typer.rich_utils", "rich.markdown"}


def modules_after(code: str, store: Path, cwd: Path) -> set[str]:
    """sys.modules after running `code` in a fresh interpreter (this checkout first on the path)."""
    code += "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    # cwd outside the tree and the tree on PYTHONPATH: this checkout is the one imported.
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFCURATE_STORE=str(store), PREFCURATE_PROGRESS="0")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def run_cli(args: list[str], store: Path, cwd: Path) -> set[str]:
    """sys.modules after `python -m prefcurate ARGS` (its output goes to a buffer)."""
    code = (
        "import contextlib, io, runpy, sys\n"
        f"sys.argv = ['prefcurate', *{args!r}]\n"
        "try:\n    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        runpy.run_module('prefcurate', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    return modules_after(code, store, cwd)


def loaded_after(args: list[str], store: Path, cwd: Path) -> set[str]:
    """Top-level packages of MODELS | DATA in sys.modules after `python -m prefcurate ARGS`."""
    return {m.split(".")[0] for m in run_cli(args, store, cwd)} & (MODELS | DATA)


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


# Typer coerces option values with pydantic, which imports importlib.metadata, whenever it parses a
# command's options (a command run, a subcommand's help); `import prefcurate.cli` below and the root's
# `--help` show that none of our modules imports it.
TYPER_RUNTIME = {"importlib.metadata"}


def test_root_help_loads_no_command_library(one_dataset_store: Path, tmp_path: Path) -> None:
    assert run_cli(["--help"], one_dataset_store, tmp_path) & LAZY == set()


@pytest.mark.parametrize(
    "args", [["score", "--help"], ["export", "--help"], ["sandbox", "run", "--help"]], ids=" ".join
)
def test_help_loads_no_command_library(args: list[str], one_dataset_store: Path, tmp_path: Path) -> None:
    assert run_cli(args, one_dataset_store, tmp_path) & (LAZY - TYPER_RUNTIME) == set()


def test_ls_loads_no_command_library_and_no_help_rendering(one_dataset_store: Path, tmp_path: Path) -> None:
    loaded = run_cli(["ls"], one_dataset_store, tmp_path)
    assert loaded & (LAZY - TYPER_RUNTIME) == set()
    assert loaded & HELP_RENDERING == set()


def command_modules(loaded: set[str]) -> set[str]:
    """The command modules (those `cli.base.COMMANDS` names) among `loaded`."""
    from prefcurate.cli.base import COMMANDS

    names = {name for modules in COMMANDS.values() for name in modules}
    return {m.rpartition(".")[2] for m in loaded if m.startswith("prefcurate.cli.")} & names


def test_one_command_loads_only_its_command_modules(one_dataset_store: Path, tmp_path: Path) -> None:
    """`prefcurate ls` imports the `ls` module only: no other command, no signal registry, no trainers."""
    loaded = run_cli(["ls"], one_dataset_store, tmp_path)
    assert command_modules(loaded) == {"store"}
    assert loaded & {"prefcurate.score", "prefcurate.score.implicit_reward", "trainers.config"} == set()
    assert command_modules(run_cli(["build", "--help"], one_dataset_store, tmp_path)) == {
        "build",
        "build_code",
    }


@pytest.mark.parametrize(
    "args", [["--help"], ["-h", "ls"], ["--version"], ["nosuchcommand", "--help"]], ids=" ".join
)
def test_the_root_help_and_its_errors_load_every_command(
    args: list[str], one_dataset_store: Path, tmp_path: Path
) -> None:
    """The root's help lists every command and "No such command" suggests from all of them."""
    code = (
        "import sys\nfrom prefcurate.cli import base, load_for\n"
        f"load_for({args!r})\n"
        "assert {name for m in base.COMMANDS.values() for name in m} <= "
        "{m.rpartition('.')[2] for m in sys.modules if m.startswith('prefcurate.cli.')}\n"
    )
    modules_after(code, one_dataset_store, tmp_path)


def test_importing_the_cli_loads_no_command_library(one_dataset_store: Path, tmp_path: Path) -> None:
    """Every command module, as `python -m prefcurate` imports them (no command run)."""
    assert modules_after("import prefcurate.cli", one_dataset_store, tmp_path) & LAZY == set()


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


def test_command_modules_declare_options_with_real_annotations() -> None:
    """Typer reads every command's signature on every start; with `from __future__ import annotations`
    it would compile each string annotation again (about 150 of them) each time."""
    deferred = []
    for path in sorted((ROOT / "prefcurate" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(a.name == "annotations" for a in node.names)
            for node in tree.body
        ) and any(isinstance(d, ast.FunctionDef) and d.decorator_list for d in tree.body):
            deferred.append(path.name)
    assert deferred == []


def test_a_lazy_module_imports_on_first_use() -> None:
    name = "prefcurate._lazy_probe"  # not a real module: the import happens, and fails, on first use
    probe = lazy_module(name)
    assert name not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        probe.anything  # noqa: B018
    json_lazy = lazy_module("json")
    assert json_lazy.dumps([1]) == "[1]" and json_lazy.loads is json.loads
