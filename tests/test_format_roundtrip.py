"""Every machine format reads back exactly: `-f csv` / `-f json` of `sql`, `rank --out` (.csv, .jsonl),
`sandbox run -f csv`, read with DuckDB, polars and Python's csv / json modules."""

from __future__ import annotations

import csv
import decimal
import io
import json
import math
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.render import to_csv, to_json, write_jsonl
from prefcurate.store import Store
from prefcurate.store.views import to_arrow

from .helpers import make_pairs, publish_dataset

runner = CliRunner()
FLOATS = [-430.43499755859375, 123456.789, 1e-300, 0.1 + 0.2, None, 5.0]
TEXTS = ["plain", 'a "quoted", comma', "ends in CR\r", "two\nlines", None, ""]
BOOLS = [True, False, None, True, False, True]


def tricky() -> pa.Table:
    return pa.table(
        {
            "x": pa.array(FLOATS, pa.float64()),
            "t": pa.array(TEXTS, pa.string()),
            "b": pa.array(BOOLS, pa.bool_()),
            "n": pa.array([1, -2, None, 2**53 + 1, 0, 7], pa.int64()),
        }
    )


def strict_loads(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_csv_reads_back_exactly_with_duckdb_polars_and_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(to_csv(tricky()), newline="")
    # Python's csv module: strings exact (missing = empty)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["t"] for r in rows] == [t or "" for t in TEXTS]
    assert [float(r["x"]) if r["x"] else None for r in rows] == FLOATS
    assert [r["b"] for r in rows] == ["true", "false", "", "true", "false", "true"]
    # DuckDB
    got = duckdb.sql(f"SELECT * FROM read_csv('{path}', header = true)").fetchall()
    assert [r[0] for r in got] == FLOATS
    assert [r[2] for r in got] == BOOLS
    assert [r[3] for r in got] == [1, -2, None, 2**53 + 1, 0, 7]
    assert [r[1] for r in got][:4] == TEXTS[:4]
    # polars
    df = pl.read_csv(path)
    assert df["x"].to_list() == FLOATS
    assert df["b"].to_list() == BOOLS
    assert df["t"].to_list()[:4] == TEXTS[:4]


def test_json_and_jsonl_are_strict_and_exact(tmp_path: Path) -> None:
    table = tricky().append_column("d", pa.array([decimal.Decimal("1.25")] * 6, pa.decimal128(5, 2)))
    table = table.append_column("nan", pa.array([math.nan, math.inf, -math.inf, 1.5, None, 0.0]))
    rows = strict_loads(to_json(table))
    assert [r["x"] for r in rows] == FLOATS
    assert [r["t"] for r in rows] == TEXTS and [r["b"] for r in rows] == BOOLS
    assert [r["d"] for r in rows] == [1.25] * 6  # a number, not a string
    assert [r["nan"] for r in rows] == [None, None, None, 1.5, None, 0.0]
    buf = io.StringIO()
    write_jsonl(table, buf)
    path = tmp_path / "t.jsonl"
    path.write_text(buf.getvalue())
    assert [strict_loads(line) for line in buf.getvalue().splitlines()] == rows
    assert duckdb.sql(f"SELECT x FROM read_json('{path}')").fetchall() == [(v,) for v in FLOATS]
    assert pl.read_ndjson(path)["x"].to_list() == FLOATS


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store(tmp_path / "s")
    publish_dataset(st, make_pairs("uf", prompts=3, per_prompt=2), "uf")
    return st


def test_sql_formats_from_the_cli(store: Store, tmp_path: Path) -> None:
    query = (
        "SELECT -430.43499755859375::DOUBLE AS x, 123456.789::DOUBLE AS y, true AS b, NULL::DOUBLE AS m, "
        "'ends in CR' || chr(13) AS t, 1.25::DECIMAL(5, 2) AS d, 'nan'::DOUBLE AS nan"
    )
    res = runner.invoke(app, ["sql", query, "-f", "csv", "--store", str(store.root)])
    assert res.exit_code == 0, res.output
    path = tmp_path / "out.csv"
    path.write_text(res.stdout, newline="")
    got = duckdb.sql(f"SELECT x, y, b, m, t, d FROM read_csv('{path}', header = true)").fetchall()
    assert got == [(-430.43499755859375, 123456.789, True, None, "ends in CR\r", 1.25)]
    assert pl.read_csv(path)["x"].to_list() == [-430.43499755859375]
    res = runner.invoke(app, ["sql", query, "-f", "json", "--store", str(store.root)])
    assert strict_loads(res.stdout) == [
        {
            "x": -430.43499755859375,
            "y": 123456.789,
            "b": True,
            "m": None,
            "t": "ends in CR\r",
            "d": 1.25,
            "nan": None,
        }
    ]


def test_rank_out_csv_is_the_same_dialect_as_rank_f_csv(store: Store, tmp_path: Path) -> None:
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap

    run_signal(store, "uf", ScoreGap())
    base = ["rank", "uf", "--by", "score-gap", "--store", str(store.root)]
    out = tmp_path / "r.csv"
    assert runner.invoke(app, [*base, "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, [*base, "--out", str(tmp_path / "r.parquet")]).exit_code == 0
    import pyarrow.parquet as pq

    expected = pq.read_table(tmp_path / "r.parquet")
    assert out.read_text() == to_csv(expected)  # byte for byte what `-f csv` writes for this table
    back = to_arrow(duckdb.sql(f"SELECT * FROM read_csv('{out}', header = true)"))
    for name in expected.column_names:
        if pa.types.is_floating(expected.schema.field(name).type):
            assert back.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_sandbox_run_csv_reads_back(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("def add(a, b):\n    return a + b\n")
    tests = tmp_path / "t.py"
    tests.write_text('assert add(1, 1) == 2\nassert add(1, 1) == 3, "a, \\"quoted\\" message"\n')
    res = runner.invoke(app, ["sandbox", "run", str(program), "--tests", str(tests), "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(res.stdout, newline="")))
    assert [r["status"] for r in rows] == ["passed", "failed"]
    path = tmp_path / "s.csv"
    path.write_text(res.stdout, newline="")
    assert duckdb.sql(f"SELECT count(*) FROM read_csv('{path}', header = true)").fetchall() == [(2,)]


def test_manifest_json_outputs_are_strict(store: Store) -> None:
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap

    run_signal(store, "uf", ScoreGap())
    root = ["--store", str(store.root)]
    res = runner.invoke(
        app,
        [
            "partition",
            "uf",
            "--name",
            "b",
            "--by",
            "score_gap_v1__gap",
            "--buckets",
            "2",
            *root,
            "-f",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert strict_loads(res.stdout)["counts"]["kept"] == 6
    res = runner.invoke(app, ["info", "uf/score_gap_v1", *root, "-f", "json"])
    assert res.exit_code == 0 and strict_loads(res.stdout)["signal"] == "score_gap_v1"
