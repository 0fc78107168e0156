"""The command line as users type it: the dataset argument may be left out when the store holds one
dataset; `score --limit / --where / --sample --seed` score a subset, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from prefcurate.cli import app

from .helpers import make_pairs, publish_dataset, rich_store, simple_store

runner = CliRunner()


def test_the_only_dataset_may_be_left_out(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=4)
    s = ["--store", str(store.root)]
    res = runner.invoke(app, ["rank", "--by", "score-gap", "--top", "3", *s])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["split", "--holdout", "0.25", *s])
    assert res.exit_code == 0 and "scores/uf/split_v1/v1" in res.stdout
    res = runner.invoke(app, ["partition", "--by", "score_gap_v1__gap", "-k", "2", "--name", "b", *s])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["stats", "accuracy", "--signal", "score_gap_v1__gap", *s])
    assert res.exit_code == 0, res.stderr

    two = rich_store(tmp_path / "two")
    publish_dataset(two, make_pairs(dataset="hh"), dataset="hh")
    res = runner.invoke(app, ["score", "--by", "score-gap", "--store", str(two.root)])
    assert res.exit_code == 1 and res.stderr == "Error: the store holds 2 datasets; name one: hh, uf\n"
    empty = runner.invoke(app, ["score", "--by", "score-gap", "--store", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "no dataset in store" in empty.stderr


def test_score_a_subset(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=8)  # 24 pairs
    s = ["--store", str(store.root)]
    pairs = store.get("pairs", "uf").read()
    res = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--limit", "5", *s])
    assert res.exit_code == 0 and "5 of 24 (subset) pairs" in res.stdout
    ref = store.get("scores", "uf/score_gap_v1")
    assert ref.manifest["subset"] == {"limit": 5, "pairs": 5, "of": 24}
    assert ref.read().column("pair_id").to_pylist() == pairs.column("pair_id").to_pylist()[:5]

    where = "chosen_score - rejected_score >= 2"
    want = [r["pair_id"] for r in pairs.to_pylist() if r["chosen_score"] - r["rejected_score"] >= 2]
    res = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--where", where, *s])
    assert res.exit_code == 0, res.stderr
    got = store.get("scores", "uf/score_gap_v1")
    assert got.version == "v3" and got.read().column("pair_id").to_pylist() == want
    assert got.manifest["subset"]["where"] == where

    a = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--sample", "6", "--seed", "3", *s])
    sample_a = store.get("scores", "uf/score_gap_v1").read().column("pair_id").to_pylist()
    again = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--sample", "6", "--seed", "3", *s])
    assert a.exit_code == again.exit_code == 0 and again.stdout.startswith(
        "Reused"
    )  # same subset, same fingerprint
    bigger = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--sample", "9", "--seed", "3", *s])
    assert bigger.exit_code == 0
    sample_b = store.get("scores", "uf/score_gap_v1").read().column("pair_id").to_pylist()
    assert len(sample_a) == 6 and set(sample_a) < set(sample_b)  # a larger draw keeps the smaller one
    other = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--sample", "6", "--seed", "4", *s])
    assert other.exit_code == 0
    assert store.get("scores", "uf/score_gap_v1").read().column("pair_id").to_pylist() != sample_a

    bad = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--where", "nope > 1", *s])
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: --where 'nope > 1': ")
    assert len(bad.stderr.splitlines()) == 1
    none = runner.invoke(app, ["score", "uf", "--by", "score-gap", "--where", "false", *s])
    assert none.exit_code == 1 and "holds no pairs" in none.stderr
