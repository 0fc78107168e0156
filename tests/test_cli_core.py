"""CLI: sql (formats, canned queries, params), ls, info, one-line errors, and the core-only install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store

from .helpers import pair_rows, publish_rows, usage_error

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def make_store(tmp_path) -> Store:
    store = Store(tmp_path / "store")
    publish_rows(store, pair_rows())
    run_signal(store, "toy", ScoreGap())
    return store


def test_sql_csv_and_json(tmp_path):
    store = make_store(tmp_path)
    q = "SELECT source, count(*) AS n FROM pairs GROUP BY 1 ORDER BY 1"
    res = invoke("sql", q, "--store", str(store.root), "--format", "csv")
    assert res.exit_code == 0
    assert res.stdout == "source,n\na,4\nb,2\n"
    res = invoke("sql", q, "--store", str(store.root), "-f", "json")
    assert json.loads(res.stdout) == [{"source": "a", "n": 4}, {"source": "b", "n": 2}]


def test_sql_named_params_both_spellings(tmp_path):
    store = make_store(tmp_path)
    q = "SELECT count(*) AS n FROM pairs WHERE source = $src"
    assert invoke("sql", q, "-p", "src=a", "--store", str(store.root), "-f", "csv").stdout == "n\n4\n"
    assert invoke("sql", q, "--src", "b", "--store", str(store.root), "-f", "csv").stdout == "n\n2\n"
    res = invoke("sql", "overview", "--dataset", "toy", "--store", str(store.root), "-f", "json")
    assert [r["pairs"] for r in json.loads(res.stdout)] == [6]


def test_sql_table_and_list(tmp_path):
    store = make_store(tmp_path)
    res = invoke("sql", "sources", "--store", str(store.root))
    assert res.exit_code == 0 and "mean_gap" in res.stdout and "toy" in res.stdout
    res = invoke("sql", "--list")
    assert res.exit_code == 0 and "overview" in res.stdout and "dataset=NULL" in res.stdout


def test_sql_errors_are_one_line(tmp_path):
    store = make_store(tmp_path)
    res = invoke("sql", "SELEC 1", "--store", str(store.root))
    assert res.exit_code == 1
    assert res.stderr == 'Error: SQL error: Parser Error: syntax error at or near "SELEC"\n'
    res = invoke("sql", "nosuchquery", "--store", str(store.root))
    assert res.exit_code == 1 and res.stderr.startswith("Error: no canned query named 'nosuchquery'")
    res = invoke("sql", "overview", "--bogus", "1", "--store", str(store.root))
    assert res.exit_code == 1
    assert res.stderr == "Error: canned query 'overview' has no parameter 'bogus' (parameters: dataset)\n"


def test_ls_and_info(tmp_path):
    store = make_store(tmp_path)
    res = invoke("ls", "--store", str(store.root), "-f", "csv")
    lines = res.stdout.splitlines()
    assert lines[0] == "kind,name,versions,latest,rows,created_at"
    assert lines[1].startswith("pairs,toy,1,v1,6,") and lines[2].startswith("scores,toy/score_gap_v1,1,v1,6,")
    res = invoke("info", "toy", "--store", str(store.root))
    assert res.exit_code == 0 and "pairs/toy/v1" in res.stdout and '"kept": 6' in res.stdout
    res = invoke("info", "toy/score_gap_v1", "--store", str(store.root), "-f", "json")
    assert json.loads(res.stdout)["inputs"]["pairs"]["version"] == "v1"
    res = invoke("info", "missing", "--store", str(store.root))
    assert res.exit_code == 1 and res.stderr.startswith("Error: nothing named 'missing' in store")


def test_ls_empty_store(tmp_path):
    res = invoke("ls", "--store", str(tmp_path / "none"))
    assert res.exit_code == 0 and "is empty" in res.stdout


def test_score_gap_cli_and_bad_option(tmp_path):
    store = Store(tmp_path / "store")
    publish_rows(store, pair_rows())
    res = invoke("score", "toy", "--by", "score-gap", "--store", str(store.root))
    assert res.stdout.startswith("Wrote scores/toy/score_gap_v1/v1: 6 pairs, columns score_gap_v1__gap")
    res = invoke("score", "toy", "--by", "score-gap", "--store", str(store.root))
    assert res.stdout.startswith("Reused scores/toy/score_gap_v1/v1")
    res = invoke("score", "toy", "--by", "score-gap", "--beta", "0.2", "--store", str(store.root))
    assert res.exit_code == 1 and res.stderr.startswith("Error: --beta does not apply to --by score-gap")
    res = invoke("score", "toy", "--by", "nonsense", "--store", str(store.root))
    assert "'nonsense' is not one of 'implicit-reward', 'logprob-margin'" in usage_error(res)


BLOCK_HEAVY = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'trl', 'vllm', 'matplotlib', 'accelerate', 'gguf'}:
            raise ImportError(f'{name} blocked: core install only')
sys.meta_path.insert(0, Block())
sys.argv[0] = 'prefcurate'
from prefcurate.cli import main
main()
"""


def run_core_only(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFCURATE_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_core_cli_works_without_heavy_extras(tmp_path):
    store = make_store(tmp_path)
    res = run_core_only("--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "build" in res.stdout and "sql" in res.stdout
    res = run_core_only(
        "sql", "SELECT count(*) AS n FROM pairs", "--store", str(store.root), "-f", "csv", cwd=tmp_path
    )
    assert res.returncode == 0 and res.stdout == "n\n6\n", res.stderr
    data = ROOT / "examples" / "data" / "ultrafeedback_binarized.jsonl"
    if data.exists():
        res = run_core_only(
            "build", "pairs", str(data), "--dataset", "uf", "--store", str(store.root), cwd=tmp_path
        )
        assert res.returncode == 0, res.stderr


def test_heavy_signal_without_extras_names_the_extra(tmp_path):
    store = make_store(tmp_path)
    res = run_core_only("score", "toy", "--by", "logprob-margin", "--store", str(store.root), cwd=tmp_path)
    assert res.returncode == 1
    assert "prefcurate[models]" in res.stderr and "Traceback" not in res.stderr


def test_version_option_prints_the_package_version():
    from prefcurate import __version__

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"prefcurate {__version__}\n"
