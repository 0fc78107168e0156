"""Partition: strategies, filters and drop counts, manifests, determinism, and the CLI.

`rich_store` (also used by the export, report and canned-SQL tests) builds a store with one dataset
of 72 pairs (24 prompts x 3 pairs, 3 sources), the real score_gap_v1 signal, fake logprob_margin_v1
and reward_margin_v1 sidecars published through the store API, a held-out split and a bucket set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from prefcurate.bucket.export import read_buckets
from prefcurate.bucket.partition import PartitionSpec, equal_sizes, partition
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.schema import PAIR_SCHEMA
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store
from prefcurate.store.views import run_sql

from .helpers import GAP, SOURCES, fake_reward, make_pairs, publish_dataset, rich_store, simple_store

runner = CliRunner()


def bucket_ids(store: Store, name: str) -> list[list[str]]:
    return [t.column("pair_id").to_pylist() for _, t in read_buckets(store.get("buckets", name))]


def gaps_of(store: Store) -> dict[str, float]:
    t = store.get("scores", "uf/score_gap_v1").read()
    return dict(zip(t.column("pair_id").to_pylist(), t.column(GAP).to_pylist(), strict=True))


# -- strategies ----------------------------------------------------------------------------------------


def test_quantile_buckets_are_equal_sized_and_ordered_easy_to_hard(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=10)  # 30 pairs, distinct gaps
    r = partition(store, PartitionSpec("uf", "q", by=GAP, buckets=4))
    assert (r.ref.label, r.reused) == ("buckets/q/v1", False)
    buckets = bucket_ids(store, "q")
    assert [len(b) for b in buckets] == [8, 8, 7, 7]
    gap = gaps_of(store)
    values = [[gap[p] for p in b] for b in buckets]
    # easy = high: bucket 0 holds the largest gaps, each bucket sorted easiest first
    assert all(min(values[k]) > max(values[k + 1]) for k in range(3))
    assert all(v == sorted(v, reverse=True) for v in values)
    flat = sorted(gap.values(), reverse=True)
    assert values[0] == flat[:8] and values[3] == flat[23:]
    m = r.manifest
    assert m["counts"] == {"input": 30, "kept": 30, "dropped": {"null_signal": 0}}
    assert m["buckets"][0]["signal"]["max"] == max(gap.values()) and m["buckets"][0]["rows"] == 8
    assert m["spec"]["easy"] == "high" and m["spec"]["by"] == GAP
    assert m["inputs"]["pairs"] == {"dataset": "uf", "version": "v1", "fingerprint": "fp-30"}
    assert m["inputs"]["signals"]["score_gap_v1"]["version"] == "v1"
    # easy = low reverses the order
    low = partition(store, PartitionSpec("uf", "q-low", by=GAP, buckets=4, easy="low"))
    assert (
        bucket_ids(store, "q-low")[0]
        == [p for p, _ in sorted(gap.items(), key=lambda kv: (kv[1], kv[0]))][:8]
    )
    assert low.manifest["spec"]["easy"] == "low"


def test_stored_bucket_rows_carry_pairs_value_and_position(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=4)
    partition(store, PartitionSpec("uf", "q", by=GAP, buckets=2))
    t = pq.read_table(store.get("buckets", "q").path / "bucket=1/part-00000.parquet")
    assert t.column_names == [*PAIR_SCHEMA.names, "signal_value", "position", "bucket"]
    assert t.column("position").to_pylist() == list(range(6)) and set(t.column("bucket").to_pylist()) == {1}
    gap = gaps_of(store)
    assert t.column("signal_value").to_pylist() == [gap[p] for p in t.column("pair_id").to_pylist()]
    # the SQL views see bucket sets with their bucket numbers
    res = run_sql(store, "SELECT bucket, count(*) AS n FROM buckets__q GROUP BY 1 ORDER BY 1")
    assert res.to_pylist() == [{"bucket": 0, "n": 6}, {"bucket": 1, "n": 6}]


def test_percentiles_and_thresholds_cut_by_value(tmp_path: Path) -> None:
    gaps = [float(g) for g in range(1, 21)]  # 20 pairs with gaps 1..20
    store = Store(tmp_path / "s")
    publish_dataset(store, make_pairs(prompts=10, per_prompt=2, gaps=gaps))
    run_signal(store, "uf", ScoreGap())
    r = partition(store, PartitionSpec("uf", "p", strategy="percentiles", by=GAP, cuts=[10, 50, 90]))
    # numpy linear percentiles of 1..20: 2.9, 10.5, 18.1; a value equal to a cut goes below it
    assert r.manifest["cut_values"] == [2.9, 10.5, 18.1]
    gap = gaps_of(store)
    assert [sorted(gap[p] for p in b) for b in bucket_ids(store, "p")] == [
        [19.0, 20.0],
        [float(g) for g in range(11, 19)],
        [float(g) for g in range(3, 11)],
        [1.0, 2.0],
    ]
    assert [b["label"] for b in r.manifest["buckets"]] == ["> 18.1", "(10.5, 18.1]", "(2.9, 10.5]", "<= 2.9"]
    t = partition(store, PartitionSpec("uf", "t", strategy="thresholds", by=GAP, cuts=[5, 15], easy="low"))
    assert [len(b) for b in bucket_ids(store, "t")] == [5, 10, 5]
    assert t.manifest["cut_values"] == [5.0, 15.0]
    assert [b["label"] for b in t.manifest["buckets"]] == ["<= 5", "(5, 15]", "> 15"]
    with pytest.raises(
        ConfigError,
        match=r"^bucket 0 \(> 40\) would be empty with --strategy thresholds --cuts 30,40; choose other cuts or fewer buckets$",
    ):
        partition(store, PartitionSpec("uf", "t2", strategy="thresholds", by=GAP, cuts=[30, 40]))


def test_source_strategy_orders_sources_by_accuracy_in_sql(tmp_path: Path) -> None:
    store = rich_store(tmp_path / "s")
    r = partition(
        store,
        PartitionSpec("uf", "sdpo", strategy="source", by="reward_margin_v1__margin", order_by="accuracy"),
    )
    rows = fake_reward(store.get("pairs", "uf").read()).to_pylist()
    split = {
        x["pair_id"]: x["split_v1__split"] for x in store.get("scores", "uf/split_v1").read().to_pylist()
    }
    pairs = {x["pair_id"]: x["source"] for x in store.get("pairs", "uf").read().to_pylist()}
    acc = {}
    for s in SOURCES:
        ms = [
            x["reward_margin_v1__margin"]
            for x in rows
            if pairs[x["pair_id"]] == s and split[x["pair_id"]] == "train"
        ]
        acc[s] = round(sum(m > 0 for m in ms) / len(ms), 6)
    assert acc["alpha"] > acc["beta"] > acc["gamma"]
    m = r.manifest
    assert [b["source"] for b in m["buckets"]] == ["alpha", "beta", "gamma"]
    assert [b["order_stat"] for b in m["buckets"]] == [acc["alpha"], acc["beta"], acc["gamma"]]
    assert m["counts"]["dropped"] == {"holdout": 9, "null_source": 0}
    # the boolean column gives the same accuracy; `count` and raw SQL aggregates work too, lowest first with --easy low
    b = partition(store, PartitionSpec("uf", "sdpo-b", strategy="source", by="reward_margin_v1__correct"))
    assert [x["order_stat"] for x in b.manifest["buckets"]] == [acc["alpha"], acc["beta"], acc["gamma"]]
    c = partition(
        store,
        PartitionSpec(
            "uf", "sdpo-c", strategy="source", order_by="min(reward_margin_v1__margin)", easy="low"
        ),
    )
    stats = [x["order_stat"] for x in c.manifest["buckets"]]
    assert stats == sorted(stats) and c.manifest["spec"]["order_by"] == "min(reward_margin_v1__margin)"
    assert c.manifest["inputs"]["signals"].keys() == {"reward_margin_v1", "split_v1"}


def test_random_copies_sizes_and_pairs_of_its_reference(tmp_path: Path) -> None:
    store = rich_store(tmp_path / "s")
    ref = store.get("buckets", "uf-cur")
    r = partition(store, PartitionSpec("uf", "uf-rand", strategy="random", like="uf-cur", seed=7))
    cur, rnd = bucket_ids(store, "uf-cur"), bucket_ids(store, "uf-rand")
    assert [len(b) for b in rnd] == [len(b) for b in cur] == [21, 21, 21]
    assert sorted(sum(rnd, [])) == sorted(sum(cur, [])) and rnd != cur
    assert r.manifest["spec"]["by"] == GAP  # the reference's signal, for the report
    assert r.manifest["inputs"]["like"] == {
        "name": "uf-cur",
        "version": ref.version,
        "fingerprint": ref.manifest["fingerprint"],
    }
    assert r.manifest["counts"]["dropped"] == {"holdout": 9, "not_in_reference": 0}
    # seeded: same seed same buckets (in another store too), another seed other buckets
    again = partition(store, PartitionSpec("uf", "uf-rand2", strategy="random", like="uf-cur", seed=7))
    assert bucket_ids(store, "uf-rand2") == rnd and again.manifest["fingerprint"] == r.manifest["fingerprint"]
    partition(store, PartitionSpec("uf", "uf-rand3", strategy="random", like="uf-cur@v1", seed=8))
    assert bucket_ids(store, "uf-rand3") != rnd
    # without --like: K equal buckets of the kept pairs
    partition(store, PartitionSpec("uf", "uf-rand4", strategy="random", buckets=2, seed=0))
    assert [len(b) for b in bucket_ids(store, "uf-rand4")] == [32, 31]


def test_random_like_uses_the_reference_pool(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=8)  # 24 pairs
    partition(store, PartitionSpec("uf", "before", by=GAP, buckets=2))  # built before any split
    from prefcurate.bucket.split import split_dataset

    split_dataset(store, "uf", holdout=0.25)  # 2 of 8 prompts: 6 pairs
    with pytest.raises(ConfigError) as exc:
        partition(store, PartitionSpec("uf", "r", strategy="random", like="before"))
    assert str(exc.value) == (
        "--like 'before' holds 24 pairs but only 18 of them are left here (dropped: holdout=6); "
        "was the split made after buckets/before/v1?"
    )
    partition(store, PartitionSpec("uf", "all", by=GAP, buckets=2, keep_holdout=True))
    r = partition(store, PartitionSpec("uf", "r", strategy="random", like="all"))  # inherits --keep-holdout
    assert r.manifest["spec"]["keep_holdout"] is True and r.manifest["counts"]["kept"] == 24


# -- filters and drops ---------------------------------------------------------------------------------


def test_where_nulls_extremes_and_holdout_are_counted(tmp_path: Path) -> None:
    gaps = [None, None] + [float(g) for g in range(1, 39)]  # 40 pairs, 2 unrated
    store = Store(tmp_path / "s")
    publish_dataset(store, make_pairs(prompts=20, per_prompt=2, gaps=gaps))
    run_signal(store, "uf", ScoreGap())
    r = partition(
        store, PartitionSpec("uf", "w", by=GAP, buckets=2, where="source <> 'gamma'", drop_extremes=(10, 90))
    )
    pairs = make_pairs(prompts=20, per_prompt=2, gaps=gaps).to_pylist()
    not_gamma = [p for p in pairs if p["source"] != "gamma"]
    rated = [p["chosen_score"] - 2.0 for p in not_gamma if p["chosen_score"] is not None]
    lo, hi = np.percentile(rated, [10, 90])
    expect = {
        "where": len(pairs) - len(not_gamma),
        "null_signal": len(not_gamma) - len(rated),
        "extreme_low": sum(v < lo for v in rated),
        "extreme_high": sum(v > hi for v in rated),
    }
    m = r.manifest
    assert m["counts"]["dropped"] == expect
    assert m["counts"]["kept"] + sum(expect.values()) == m["counts"]["input"] == 40
    assert m["extremes"] == {"low": round(lo, 6), "high": round(hi, 6)}
    assert sum(len(b) for b in bucket_ids(store, "w")) == m["counts"]["kept"]
    # a where over signal columns joins that signal
    w2 = partition(store, PartitionSpec("uf", "w2", by=GAP, buckets=1, where=f"{GAP} >= 30"))
    assert w2.manifest["counts"]["kept"] == 9
    with pytest.raises(ConfigError, match=r"^--where 'nonsense_column > 1': Binder Error: Referenced column"):
        partition(store, PartitionSpec("uf", "w3", by=GAP, buckets=1, where="nonsense_column > 1"))


def test_holdout_pairs_stay_out_unless_asked(tmp_path: Path) -> None:
    store = rich_store(tmp_path / "s")
    split = {
        x["pair_id"]: x["split_v1__split"] for x in store.get("scores", "uf/split_v1").read().to_pylist()
    }
    held = {p for p, s in split.items() if s == "holdout"}
    assert len(held) == 9  # 3 of 24 prompts
    in_buckets = set(sum(bucket_ids(store, "uf-cur"), []))
    assert not (in_buckets & held) and len(in_buckets) == 63
    keep = partition(store, PartitionSpec("uf", "all", by=GAP, buckets=3, keep_holdout=True))
    assert keep.manifest["counts"] == {"input": 72, "kept": 72, "dropped": {"null_signal": 0}}
    assert "split_v1" not in keep.manifest["inputs"]["signals"]


def test_spec_errors_name_the_option(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=2)
    cases = [
        (PartitionSpec("uf", "x", by=GAP), "--strategy quantile needs --buckets K with K >= 1, got None"),
        (
            PartitionSpec("uf", "x", buckets=2),
            "--strategy quantile needs --by SIGNAL_COLUMN (e.g. score_gap_v1__gap)",
        ),
        (
            PartitionSpec("uf", "x", strategy="percentiles", by=GAP, cuts=[50, 10]),
            "--cuts must be strictly increasing, got 50,10",
        ),
        (
            PartitionSpec("uf", "x", strategy="percentiles", by=GAP, cuts=[0, 50]),
            "--cuts for percentiles are percents between 0 and 100 (exclusive), got 0,50",
        ),
        (
            PartitionSpec("uf", "x", strategy="bogus"),
            "unknown --strategy 'bogus'; choose one of: quantile, percentiles, thresholds, source, random",
        ),
        (
            PartitionSpec("uf", "x", by=GAP, buckets=2, easy="hard"),
            "--easy must be 'high' or 'low', got 'hard'",
        ),
        (
            PartitionSpec("uf", "x", strategy="random", buckets=2, drop_extremes=(5, 95)),
            "--drop-extremes needs --by (the signal whose extremes to drop)",
        ),
        (
            PartitionSpec("uf", "x", strategy="random", like="a", where="true"),
            "--strategy random --like reuses the reference set's pairs; --where and --drop-extremes do not apply",
        ),
        (
            PartitionSpec("uf", "x", by="score_gap_v1__nope", buckets=2),
            "--by 'score_gap_v1__nope': no such column for dataset 'uf' (signal columns: score_gap_v1__gap)",
        ),
        (
            PartitionSpec("uf", "x", by="source", buckets=2),
            "--by 'source' is VARCHAR; it must be numeric or boolean",
        ),
        (
            PartitionSpec("uf", "x", by="logprob_margin_v1__margin", buckets=2),
            "--by 'logprob_margin_v1__margin': no such column for dataset 'uf' (signal columns: score_gap_v1__gap)",
        ),
        (PartitionSpec("uf", "x", by=GAP, buckets=7), "only 6 pairs left for --buckets 7"),
    ]
    for spec, message in cases:
        with pytest.raises(ConfigError) as exc:
            partition(store, spec)
        assert str(exc.value) == message


# -- determinism and reuse -----------------------------------------------------------------------------


def test_same_inputs_give_byte_identical_files_in_another_store(tmp_path: Path) -> None:
    specs = [
        PartitionSpec("uf", "a", by=GAP, buckets=3),
        PartitionSpec(
            "uf",
            "b",
            strategy="percentiles",
            by="logprob_margin_v1__margin",
            cuts=[25, 75],
            drop_extremes=(5, 95),
        ),
        PartitionSpec("uf", "c", strategy="source", by="reward_margin_v1__margin"),
        PartitionSpec("uf", "d", strategy="random", like="a", seed=3),
    ]
    stores = [rich_store(tmp_path / "one"), rich_store(tmp_path / "two")]
    refs = [[partition(s, spec).ref for spec in specs] for s in stores]
    for a, b in zip(*refs, strict=True):
        fa, fb = a.parquet_files(), b.parquet_files()
        assert [f.relative_to(a.path) for f in fa] == [f.relative_to(b.path) for f in fb] and fa
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb, strict=True))
        ma, mb = a.manifest, b.manifest
        for key in ("spec", "inputs", "counts", "buckets", "fingerprint"):
            assert ma[key] == mb[key]
    # the same spec again reuses the version; --force publishes a new one with the same files
    again = partition(stores[0], PartitionSpec("uf", "a", by=GAP, buckets=3))
    assert (again.reused, again.ref.version) == (True, "v1")
    forced = partition(stores[0], PartitionSpec("uf", "a", by=GAP, buckets=3), force=True)
    assert forced.ref.version == "v2"
    assert [f.read_bytes() for f in forced.ref.parquet_files()] == [
        f.read_bytes() for f in refs[0][0].parquet_files()
    ]


# -- properties ----------------------------------------------------------------------------------------


@st.composite
def datasets_and_specs(draw):
    n_prompts = draw(st.integers(2, 12))
    per = draw(st.integers(1, 3))
    n = n_prompts * per
    gaps = draw(
        st.lists(
            st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0]), st.floats(-5, 5, allow_nan=False)),
            min_size=n,
            max_size=n,
        )
    )
    k = draw(st.integers(1, 5))
    strategy = draw(st.sampled_from(["quantile", "random"]))
    where = draw(st.sampled_from([None, "source <> 'beta'", "length(chosen) > 30"]))
    extremes = draw(st.sampled_from([None, (5.0, 95.0), (20.0, 80.0)]))
    return n_prompts, per, gaps, k, strategy, where, extremes, draw(st.booleans())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=datasets_and_specs())
def test_every_pair_is_in_one_bucket_or_counted_as_dropped(tmp_path_factory, case) -> None:
    n_prompts, per, gaps, k, strategy, where, extremes, easy_high = case
    store = Store(tmp_path_factory.mktemp("prop"))
    publish_dataset(store, make_pairs(prompts=n_prompts, per_prompt=per, gaps=gaps))
    run_signal(store, "uf", ScoreGap())
    spec = PartitionSpec(
        "uf",
        "p",
        strategy=strategy,
        by=GAP,
        buckets=k,
        where=where,
        drop_extremes=extremes,
        easy="high" if easy_high else "low",
    )
    try:
        r = partition(store, spec)
    except ConfigError as exc:  # too few pairs left is the only acceptable refusal
        assert str(exc).startswith(("only ", "no pairs left to partition"))
        return
    buckets = bucket_ids(store, "p")
    every = sum(buckets, [])
    assert len(every) == len(set(every))  # no pair in two buckets
    counts = r.manifest["counts"]
    assert (
        len(every) == counts["kept"] and counts["kept"] + sum(counts["dropped"].values()) == n_prompts * per
    )
    sizes = [len(b) for b in buckets]
    assert len(sizes) == k and max(sizes) - min(sizes) <= 1
    assert sizes == equal_sizes(counts["kept"], k)
    if strategy == "random":
        like = partition(store, PartitionSpec("uf", "r", strategy="random", like="p", seed=1))
        assert [len(b) for b in bucket_ids(store, "r")] == sizes
        assert sorted(sum(bucket_ids(store, "r"), [])) == sorted(every)
        assert like.manifest["counts"]["kept"] == counts["kept"]


# -- CLI -----------------------------------------------------------------------------------------------


def test_cli_partition_prints_the_buckets(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=4)
    args = ["partition", "uf", "--by", GAP, "--buckets", "2", "--name", "cur", "--store", str(store.root)]
    res = runner.invoke(app, [*args, "-f", "csv"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (
        res.stdout
        == 'bucket,rows,label,min,mean,max\n0,6,"[2, 3.25]",2.0,2.625,3.25\n1,6,"[0.5, 1.75]",0.5,1.125,1.75\n'
    )
    res = runner.invoke(app, [*args, "--where", "source = 'alpha'"], catch_exceptions=False)
    assert res.exit_code == 0
    assert res.stdout.startswith(
        "Wrote buckets/cur/v2: 2 buckets, 6 of 12 pairs (dropped: where=6); bucket 0 = easiest (score_gap_v1__gap, easy = high)"
    )
    res = runner.invoke(app, [*args, "-f", "json"], catch_exceptions=False)
    assert json.loads(res.stdout)["version"] == "v1"  # same spec as the first run: reused
    res = runner.invoke(
        app,
        [
            "partition",
            "uf",
            "--name",
            "x",
            "--strategy",
            "percentiles",
            "--by",
            GAP,
            "--cuts",
            "10,x",
            "--store",
            str(store.root),
        ],
    )
    assert res.exit_code == 1 and res.stderr == "Error: --cuts takes comma-separated numbers, got '10,x'\n"
    res = runner.invoke(
        app, ["partition", "nope", "--name", "x", "--by", GAP, "-k", "2", "--store", str(store.root)]
    )
    assert res.exit_code == 1 and res.stderr == f"Error: no dataset 'nope' in store {store.root} (have: uf)\n"


def test_source_accuracy_ignores_missing_values_like_stats_accuracy(tmp_path: Path) -> None:
    """A pair without a value (a prompt longer than max_length) is neither correct nor wrong: the
    order must be the one `prefcurate stats accuracy` reports, not one that punishes missing values."""
    from prefcurate.explore.stats import accuracy, source_order

    store = Store(tmp_path / "s")
    pairs = make_pairs()
    publish_dataset(store, pairs)
    src = pairs.column("source").to_pylist()
    # alpha: 1 right of 1 scored, the rest missing (accuracy 1.0); beta: all scored, 2 in 3 right.
    seen: dict[str, int] = {}
    correct = []
    for s in src:
        i = seen[s] = seen.get(s, -1) + 1
        correct.append(
            True
            if s == "alpha" and i == 0
            else None
            if s == "alpha"
            else i % 3 != 0
            if s == "beta"
            else False
        )
    table = pa.table(
        {"pair_id": pairs.column("pair_id"), "logprob_margin_v1__correct": pa.array(correct, pa.bool_())}
    )
    manifest = {"signal": "logprob_margin_v1", "dataset": "uf", "inputs": {"pairs": {"version": "v1"}}}
    with store.publish("scores", "uf/logprob_margin_v1", manifest) as pub:
        pub.write_table(table)
    r = partition(store, PartitionSpec("uf", "sdpo", strategy="source", by="logprob_margin_v1__correct"))
    order = [b["source"] for b in r.manifest["buckets"]]
    assert order == source_order(store, "uf", "logprob_margin_v1__correct") == ["alpha", "beta", "gamma"]
    assert r.manifest["buckets"][0]["order_stat"] == 1.0
    assert accuracy(store, "uf", "logprob_margin_v1__correct").column("accuracy").to_pylist()[0] == 1.0
