"""CLI start-up stays light: `--help` loads no data library and `ls` no pyarrow (what they load, not
how long they take: no timings here; benchmarks/startup.py measures the time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from prefcurate.render import Format, render, to_csv, to_json

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pyarrow", "pandas", "numpy", "duckdb", "torch", "transformers", "datasets")


def loaded_after(args: list[str], store: Path, cwd: Path) -> set[str]:
    """Top-level heavy packages in sys.modules after running the CLI with `args` in a fresh process."""
    code = (
        "import sys, json\n"
        f"sys.argv = ['prefcurate', *{args!r}]\n"
        "import prefcurate.cli as cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFCURATE_STORE=str(store), PREFCURATE_PROGRESS="0")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_and_ls_load_no_data_libraries(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert loaded_after(["--help"], store, tmp_path) == set()
    assert loaded_after(["build", "--help"], store, tmp_path) == set()
    # A store holding one dataset, so `ls` renders a table.
    from prefcurate.build.pairs import build_pairs
    from prefcurate.store import Store

    build_pairs(Store(store), str(ROOT / "examples/data/ultrafeedback_binarized.jsonl"), dataset="s", limit=5)
    assert loaded_after(["ls"], store, tmp_path) == set()
    assert loaded_after(["ls", "--format", "json"], store, tmp_path) == set()


def test_cli_literal_defaults_match_the_library() -> None:
    from prefcurate.build.ultrafeedback import DEFAULT_HUB_ID
    from prefcurate.cli import build as cli_build
    from prefcurate.cli import stats as cli_stats
    from prefcurate.explore.stats import DEFAULT_SIGNAL

    assert cli_build.DEFAULT_HUB_ID == DEFAULT_HUB_ID
    assert cli_stats.DEFAULT_SIGNAL == DEFAULT_SIGNAL


def test_a_column_mapping_renders_like_its_arrow_table(capsys) -> None:
    columns = {
        "name": ["a", "b,c", None],
        "rows": [3, None, 10],
        "score": [0.1, float("nan"), 2.5],
        "ok": [True, False, None],
    }
    table = pa.table(columns)
    assert to_csv(columns) == to_csv(table)
    assert to_json(columns) == to_json(table)
    for fmt in Format:
        render(table, fmt, title="t")
        from_table = capsys.readouterr().out
        render(columns, fmt, title="t")
        assert capsys.readouterr().out == from_table
