"""The store read by other tools as it is: polars, pyarrow (hive) and DuckDB scan a version folder; LATEST
names the newest version; bucket rows carry `bucket`; caches stay out of `**/*.parquet`; older stores
(manifest inside the folder) still read; `prefcurate sql --db` writes the views into a DuckDB file; the
snippets of docs/store.md run as written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.score.logprob_margin import CompletionCache, cache_schema
from prefcurate.store import Store

from .helpers import rich_store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "store.md"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = rich_store(tmp_path_factory.mktemp("scan") / "store")
    # a real log-prob cache part, of another schema than any data
    cache = CompletionCache(store.root / ".cache" / "logprobs" / "key")
    cache.add(pa.table({"completion_id": ["c1"], "logp": [-1.0], "tokens": [3], "truncated": [False]}), "t0")
    assert cache_schema().names == ["completion_id", "logp", "tokens", "truncated"]
    return store


def test_version_folders_scan_as_they_are(store: Store) -> None:
    pairs = store.get("pairs", "uf")
    want = pairs.read().num_rows
    assert sorted(p.name for p in pairs.path.iterdir()) == ["part-00000.parquet"]  # nothing else inside
    assert pl.scan_parquet(pairs.path).collect().height == want
    assert ds.dataset(pairs.path, partitioning="hive").count_rows() == want
    assert duckdb.sql(f"SELECT count(*) FROM '{pairs.path}/*.parquet'").fetchall()[0][0] == want

    buckets = store.get("buckets", "uf-cur")
    rows = buckets.read()
    by_polars = pl.scan_parquet(buckets.path).collect()
    by_arrow = ds.dataset(buckets.path, partitioning="hive").to_table()
    by_duck = duckdb.sql(
        f"SELECT bucket, count(*) FROM read_parquet('{buckets.path}/**/*.parquet', hive_partitioning = true) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_polars.height == by_arrow.num_rows == rows.num_rows
    counts = [(k, rows.column("bucket").to_pylist().count(k)) for k in (0, 1, 2)]
    assert by_duck == counts and sorted(by_polars["bucket"].value_counts().rows()) == counts
    assert by_arrow.schema.field("bucket").type == pa.int32()


def test_latest_pointer_and_manifest_beside_the_folder(store: Store, tmp_path: Path) -> None:
    copy = Store(tmp_path / "copy")
    shutil.copytree(store.root, copy.root)
    from prefcurate.bucket.partition import PartitionSpec, partition

    partition(copy, PartitionSpec("uf", "uf-cur", by="score_gap_v1__gap", buckets=2), force=True)
    base = copy.root / "buckets" / "uf-cur"
    assert (base / "LATEST").read_text() == "v2\n" and copy.get("buckets", "uf-cur").version == "v2"
    assert json.loads((base / "v2.manifest.json").read_text())["version"] == "v2"
    assert not (base / "v2" / "manifest.json").exists()


def test_store_wide_glob_sees_data_only(store: Store) -> None:
    files = duckdb.sql(
        f"SELECT DISTINCT filename FROM read_parquet('{store.root}/**/*.parquet', filename = true, union_by_name = true)"
    ).fetchall()
    names = [f[0] for f in files]
    assert names and not any("/.cache/" in n or "/.work/" in n or "/.tmp/" in n for n in names)
    assert list((store.root / ".cache" / "logprobs" / "key").glob("*.parquet.cache"))
    assert CompletionCache(store.root / ".cache" / "logprobs" / "key").load() == {"c1": (-1.0, 3, False)}


def test_older_stores_with_the_manifest_inside_still_read(store: Store, tmp_path: Path) -> None:
    old = Store(tmp_path / "old")
    shutil.copytree(store.root, old.root)
    for manifest in list(old.root.rglob("v*.manifest.json")):  # the layout before: manifest inside
        manifest.rename(manifest.parent / manifest.name.removesuffix(".manifest.json") / "manifest.json")
    for latest in old.root.rglob("LATEST"):
        latest.unlink()
    assert old.names("pairs") == ["uf"] and old.names("buckets") == store.names("buckets")
    assert old.get("pairs", "uf").manifest["version"] == "v1"
    assert old.get("buckets", "uf-cur").read().num_rows == store.get("buckets", "uf-cur").read().num_rows


def test_sql_db_writes_views_the_duckdb_shell_opens(store: Store, tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    res = CliRunner().invoke(app, ["sql", "--db", str(db), "--store", str(store.root)])
    assert res.exit_code == 0, res.stderr
    assert res.stderr.startswith("Wrote ") and "pairs" in res.stderr
    con = duckdb.connect(str(db), read_only=True)  # a fresh process would see the same
    try:
        n = con.sql("SELECT count(*) FROM pairs").fetchall()[0][0]
        k = con.sql("SELECT count(DISTINCT bucket) FROM buckets__uf_cur").fetchall()[0][0]
    finally:
        con.close()
    assert n == store.get("pairs", "uf").read().num_rows and k == 3
    bad = CliRunner().invoke(app, ["sql", "--db", str(tmp_path / "x.txt"), "--store", str(store.root)])
    assert bad.exit_code == 1 and "expected a .duckdb" in bad.stderr


@pytest.mark.parametrize("library", ["polars", "pyarrow", "duckdb"])
def test_the_docs_snippets_run(store: Store, library: str) -> None:
    block = re.search(rf"<!-- tested: {library} -->\n```python\n(.*?)```", DOCS.read_text(), re.S)
    assert block, f"docs/store.md lost its {library} snippet"
    code = block.group(1)
    assert 'STORE = Path("prefstore")' in code
    code = code.replace('STORE = Path("prefstore")', f"STORE = Path({str(store.root)!r})")
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), scope)
    rows = store.get("buckets", "uf-cur").read()
    if library == "polars":
        assert scope["pairs"].height == store.get("pairs", "uf").read().num_rows
        assert scope["per_bucket"]["len"].to_list() == [
            rows.column("bucket").to_pylist().count(k) for k in range(3)
        ]
    elif library == "pyarrow":
        assert scope["easiest"].num_rows == rows.column("bucket").to_pylist().count(0)
    else:
        assert scope["n_pairs"] == store.get("pairs", "uf").read().num_rows and scope["gap"]
        data_rows = sum(
            store.get(k, n).read().num_rows for k in ("pairs", "scores", "buckets") for n in store.names(k)
        )
        assert scope["all_data"] == data_rows  # caches and shards are not counted
