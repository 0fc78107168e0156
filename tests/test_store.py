"""The store: atomic immutable versions, manifests, reuse by fingerprint, DuckDB views."""

from __future__ import annotations

import json

import pytest

from prefcurate import ids
from prefcurate.errors import StoreError
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store
from prefcurate.store.views import connect, run_named, run_sql

from .helpers import pair_rows, publish_rows


def test_ids_are_stable_and_distinct():
    p = [{"role": "user", "content": "hi"}]
    assert ids.prompt_id(p) == ids.prompt_id([{"content": "hi", "role": "user"}])
    assert ids.prompt_id(p) == "1ac2e87f8841478a"  # pinned: ids must not change across releases or machines
    pid = ids.prompt_id(p)
    assert ids.completion_id(pid, "a") != ids.completion_id(pid, "b")
    # a boundary shift must change the id (separator between role and content)
    assert ids.prompt_id([{"role": "user", "content": "x"}]) != ids.prompt_id(
        [{"role": "use", "content": "rx"}]
    )


def test_versions_are_sequential_immutable_and_carry_manifests(tmp_path):
    store = Store(tmp_path / "s")
    ref1 = publish_rows(store, pair_rows())
    ref2 = publish_rows(store, pair_rows(n=4), fp="fp2")
    assert [r.version for r in store.versions("pairs", "toy")] == ["v1", "v2"]
    assert store.get("pairs", "toy").version == "v2"
    assert ref1.read().num_rows == 6 and ref2.read().num_rows == 4
    m = ref1.manifest
    for key in ("kind", "name", "version", "command", "prefcurate_version", "created_at", "counts", "files"):
        assert key in m
    assert m["files"] == [
        {"path": "part-00000.parquet", "bytes": (ref1.path / "part-00000.parquet").stat().st_size}
    ]
    assert store.find_fingerprint("pairs", "toy", "fp1").version == "v1"
    assert store.find_fingerprint("pairs", "toy", "nope") is None


def test_failed_publish_leaves_nothing(tmp_path):
    store = Store(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with store.publish("pairs", "toy") as pub:
            pub.write_table(pair_rows())
            raise RuntimeError("crash while writing")
    assert store.versions("pairs", "toy") == []
    assert not any((tmp_path / "s" / ".tmp").iterdir())


def test_missing_names_and_versions_say_what_exists(tmp_path):
    store = Store(tmp_path / "s")
    publish_rows(store, pair_rows())
    with pytest.raises(StoreError, match=r"no dataset 'other' in store .* \(have: toy\)"):
        store.get("pairs", "other")
    with pytest.raises(StoreError, match=r"pairs/toy has no version 'v9' \(have: v1\)"):
        store.get("pairs", "toy", "v9")
    with pytest.raises(StoreError, match="invalid dataset name"):
        with store.publish("pairs", "../escape"):
            pass


def test_same_table_gives_byte_identical_files(tmp_path):
    store = Store(tmp_path / "s")
    a = publish_rows(store, pair_rows())
    b = publish_rows(store, pair_rows())
    assert (a.path / "part-00000.parquet").read_bytes() == (b.path / "part-00000.parquet").read_bytes()


def test_views_over_pairs_and_signals(tmp_path):
    store = Store(tmp_path / "s")
    publish_rows(store, pair_rows())
    publish_rows(store, pair_rows("other", n=2), dataset="other")
    ref, reused = run_signal(store, "toy", ScoreGap())
    assert not reused and ref.label == "scores/toy/score_gap_v1/v1"
    again, reused = run_signal(store, "toy", ScoreGap())
    assert reused and again.version == "v1"
    rows = run_sql(store, "SELECT dataset, count(*) AS n FROM pairs GROUP BY 1 ORDER BY 1").to_pylist()
    assert rows == [{"dataset": "other", "n": 2}, {"dataset": "toy", "n": 6}]
    gaps = run_sql(store, "SELECT sum(score_gap_v1__gap) AS s FROM score_gap_v1").to_pylist()
    assert gaps == [{"s": sum(float(5 + i % 3) - 2.0 for i in range(6))}]
    # the wide `scores` view has every pair, with nulls for datasets not scored
    wide = run_sql(
        store,
        "SELECT dataset, count(score_gap_v1__gap) AS scored, count(*) AS n FROM scores GROUP BY 1 ORDER BY 1",
    )
    assert wide.to_pylist() == [
        {"dataset": "other", "scored": 0, "n": 2},
        {"dataset": "toy", "scored": 6, "n": 6},
    ]
    assert run_sql(store, "SELECT count(*) AS n FROM pairs__toy__v1").to_pylist() == [{"n": 6}]
    versions = run_sql(store, "SELECT kind, name, version FROM versions ORDER BY 1, 2").to_pylist()
    assert {"kind": "scores", "name": "toy/score_gap_v1", "version": "v1"} in versions
    # views read the Parquet files in place: the DuckDB database holds no tables
    con = connect(store)
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0


def test_canned_query_params(tmp_path):
    store = Store(tmp_path / "s")
    publish_rows(store, pair_rows())
    publish_rows(store, pair_rows("other", n=2), dataset="other")
    assert [r["dataset"] for r in run_named(store, "overview").to_pylist()] == ["other", "toy"]
    one = run_named(store, "overview", {"dataset": "toy"}).to_pylist()
    assert [(r["dataset"], r["pairs"], r["prompts"]) for r in one] == [("toy", 6, 3)]


def test_empty_store_views_exist(tmp_path):
    store = Store(tmp_path / "empty")
    assert run_sql(store, "SELECT count(*) AS n FROM pairs").to_pylist() == [{"n": 0}]
    assert json.loads(json.dumps(run_named(store, "overview").to_pylist())) == []
