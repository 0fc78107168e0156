"""Every canned query in sql/ runs against a fixture store and returns the columns its header declares.

The fixture (tests/test_partition.py::rich_store) holds pairs with build drops, score_gap_v1, fake
logprob_margin_v1 and reward_margin_v1 sidecars (`correct` / `margin` columns), a held-out split and a
bucket set, so queries over pairs, signals and buckets all have rows. A new file in sql/ is picked up
automatically; if it needs a parameter without a default, add a value to REQUIRED_PARAMS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.explore.report import spearman
from prefcurate.store import Store
from prefcurate.store.views import canned_queries, parse_canned, resolve_params, run_sql, sql_dir

from .helpers import GAP, rich_store

runner = CliRunner()
REQUIRED_PARAMS: dict[str, dict[str, str]] = {}  # query name -> values for parameters that have no default
FILES = sorted(sql_dir().glob("*.sql"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = rich_store(tmp_path_factory.mktemp("sql") / "store")
    add_evals(store)
    return store


def add_evals(store: Store) -> None:
    """Two stages of an `eval run` entry, so the `evals` view and query have rows."""
    import pyarrow as pa

    from prefcurate.evaluate.run import EVAL_SCHEMA

    rows = [
        {
            "run": "r",
            "stage": s,
            "step": step,
            "epochs": float(step > 0),
            "pairs_seen": 4 * step,
            "suite": "humaneval",
            "task_id": t,
            "n": 1,
            "c": c,
            "pass_at_1": float(c),
        }
        for s, step in (("start", 0), ("stage-1", 2))
        for t, c in (("HumanEval/0", 1), ("HumanEval/1", 0))
    ]
    with store.publish("evals", "r", {"suite": "humaneval", "counts": {"rows": len(rows)}}) as pub:
        pub.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA))


def run(store: Store, query: str, **params: str) -> list[dict]:
    q = canned_queries()[query]
    return run_sql(store, q.sql, resolve_params(q, params)).to_pylist()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_canned_query_returns_its_declared_columns(store: Store, path: Path) -> None:
    q = parse_canned(path)
    assert q.description, f"{path.name}: add a '-- description:' header line"
    given = REQUIRED_PARAMS.get(q.name, {})
    missing = [p.name for p in q.params if p.default is None and p.name not in given]
    assert not missing, (
        f"{path.name}: parameter {missing[0]!r} has no default; add a value to REQUIRED_PARAMS"
    )
    table = run_sql(store, q.sql, resolve_params(q, given))
    assert tuple(table.column_names) == q.columns, (
        f"{path.name}: header declares {q.columns}, query returns {table.column_names}"
    )
    assert table.num_rows > 0, f"{path.name}: no rows on the fixture store"


def test_file_names_match_query_names() -> None:
    assert FILES and all(parse_canned(p).name == p.stem for p in FILES)


def test_bucket_stats_and_length_bias(store: Store) -> None:
    rows = run(store, "bucket_stats", name="uf-cur")
    m = store.get("buckets", "uf-cur").manifest
    assert [(r["bucket"], r["pairs"]) for r in rows] == [(0, 21), (1, 21), (2, 21)]
    for r, b in zip(rows, m["buckets"], strict=True):
        assert (r["min_value"], r["max_value"], r["median_value"]) == (
            b["signal"]["min"],
            b["signal"]["max"],
            b["signal"]["median"],
        )
        assert r["mean_value"] == round(b["signal"]["mean"], 4) and r["signal_nulls"] == 0
    bias = run(store, "length_bias", name="uf-cur")
    pairs = {p["pair_id"]: p for p in store.get("pairs", "uf").read().to_pylist()}
    for r in bias:
        ids = (
            run_sql(store, f"SELECT pair_id FROM buckets__uf_cur WHERE bucket = {r['bucket']}")
            .column("pair_id")
            .to_pylist()
        )
        diffs = [len(pairs[i]["chosen"]) - len(pairs[i]["rejected"]) for i in ids]
        assert r["mean_diff_chars"] == round(sum(diffs) / len(diffs), 1) and r["pairs"] == len(ids)
        assert r["share_chosen_longer"] == round(sum(d > 0 for d in diffs) / len(diffs), 4)


def test_bucket_sources_shares_sum_to_one(store: Store) -> None:
    rows = run(store, "bucket_sources", name="uf-cur")
    assert {r["source"] for r in rows} == {"alpha", "beta", "gamma"}
    for k in range(3):
        assert sum(r["share_of_bucket"] for r in rows if r["bucket"] == k) == pytest.approx(1.0, abs=1e-3)
        assert sum(r["pairs"] for r in rows if r["bucket"] == k) == 21


def test_signal_correlation_matches_python(store: Store) -> None:
    scores = run_sql(
        store,
        f"SELECT {GAP} AS a, logprob_margin_v1__margin AS b, reward_margin_v1__correct AS c FROM scores",
    )
    a, b = (np.asarray(scores.column(c).to_pylist(), dtype=float) for c in ("a", "b"))
    c = np.asarray([float(v) for v in scores.column("c").to_pylist()])
    [row] = run(store, "signal_correlation")
    assert (row["dataset"], row["signal_a"], row["signal_b"], row["pairs"]) == (
        "uf",
        GAP,
        "logprob_margin_v1__margin",
        72,
    )
    assert row["spearman"] == round(spearman(a, b), 4)
    assert row["pearson"] == round(float(np.corrcoef(a, b)[0, 1]), 4)
    # booleans count as 1/0; ties get average ranks, as in the report
    [row] = run(store, "signal_correlation", b="reward_margin_v1__correct")
    assert row["spearman"] == round(spearman(a, c), 4)
    assert run(store, "signal_correlation", a="no_such__column") == []


def test_drops_and_ties(store: Store) -> None:
    rows = run(store, "drops")
    assert [(r["kind"], r["name"], r["reason"], r["pairs"]) for r in rows] == [
        ("buckets", "uf-cur", "holdout", 9),
        ("buckets", "uf-cur", "null_signal", 0),
        ("pairs", "uf", "tie", 5),
        ("pairs", "uf", "empty_text", 1),
    ]
    assert run(store, "drops", kind="pairs", name="uf")[0]["reason"] == "tie"
    assert run(store, "ties") == [
        {"dataset": "uf", "source": s, "pairs": 24, "ties": 0, "tie_share": 0.0, "unrated": 0}
        for s in ("alpha", "beta", "gamma")
    ]


def test_sql_list_shows_the_bucket_queries() -> None:
    res = runner.invoke(app, ["sql", "--list", "-f", "csv"], catch_exceptions=False)
    names = [line.split(",")[0] for line in res.stdout.splitlines()[1:]]
    assert {"bucket_stats", "bucket_sources", "signal_correlation", "length_bias", "drops", "ties"} <= set(
        names
    )


MINE = ("bucket_stats", "bucket_sources", "length_bias", "drops", "ties", "signal_correlation")


@pytest.mark.parametrize("name", MINE)
def test_bucket_queries_bind_on_a_store_without_buckets(tmp_path: Path, name: str) -> None:
    from .helpers import make_pairs, publish_dataset

    store = Store(tmp_path / "s")
    publish_dataset(store, make_pairs(prompts=2), dropped={"tie": 2})
    q = canned_queries()[name]
    table = run_sql(store, q.sql, resolve_params(q, {}))
    assert tuple(table.column_names) == q.columns
    assert table.num_rows == {"drops": 1, "ties": 2}.get(name, 0)  # 2 sources, one drop reason
