"""Held-out split by prompt: exact counts, never one prompt on both sides, a normal sidecar, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from prefcurate.bucket.split import split_dataset
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.score import get_signal
from prefcurate.score.split import assign_split, held_out_prompts
from prefcurate.store import Store
from prefcurate.store.views import run_sql

from .helpers import make_pairs, publish_dataset

runner = CliRunner()


@settings(max_examples=200, deadline=None)
@given(
    prompts=st.lists(st.sampled_from([f"p{i}" for i in range(30)]), min_size=2, max_size=120),
    holdout=st.floats(0.01, 0.99),
    seed=st.integers(0, 1000),
)
def test_a_prompt_never_lands_on_both_sides(prompts: list[str], holdout: float, seed: int) -> None:
    unique = set(prompts)
    if len(unique) < 2:
        with pytest.raises(ConfigError, match="at least 2 distinct prompts"):
            assign_split(prompts, holdout, seed)
        return
    split = assign_split(prompts, holdout, seed).to_pylist()
    sides: dict[str, set[str]] = {}
    for p, s in zip(prompts, split, strict=True):
        sides.setdefault(p, set()).add(s)
    assert all(len(s) == 1 for s in sides.values())
    held = {p for p, s in sides.items() if s == {"holdout"}}
    assert len(held) == min(max(1, round(holdout * len(unique))), len(unique) - 1)
    # row order does not matter
    assert assign_split(prompts[::-1], holdout, seed).to_pylist() == split[::-1]


def test_split_is_stable_and_seeded() -> None:
    prompts = [f"prompt-{i}" for i in range(100)]
    a = held_out_prompts(prompts, 0.1, 0)
    assert len(a) == 10 and held_out_prompts(prompts, 0.1, 0) == a
    assert held_out_prompts(prompts, 0.1, 1) != a
    # growing the dataset keeps most earlier held-out prompts held out
    grown = held_out_prompts(prompts + [f"prompt-{i}" for i in range(100, 110)], 0.1, 0)
    assert len(grown) == 11 and len(grown & a) >= 9


def test_split_publishes_a_split_v1_sidecar(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    publish_dataset(store, make_pairs(prompts=20))  # 60 pairs, 3 per prompt
    r = split_dataset(store, "uf", holdout=0.1, seed=0)
    assert (r.ref.label, r.reused) == ("scores/uf/split_v1/v1", False)
    assert (r.pairs, r.prompts, r.holdout_prompts, r.holdout_pairs) == (60, 20, 2, 6)
    m = r.ref.manifest
    assert m["signal"] == "split_v1" and m["spec"] == {"holdout": 0.1, "seed": 0} and m["fields"] == ["split"]
    assert m["inputs"]["pairs"]["version"] == "v1"
    assert r.ref.read().column_names == ["pair_id", "split_v1__split"]
    # SQL: a prompt on both sides would show up here
    res = run_sql(
        store,
        "SELECT count(*) AS n FROM (SELECT prompt_id FROM pairs JOIN split_v1 USING (pair_id) "
        "GROUP BY prompt_id HAVING count(DISTINCT split_v1__split) > 1)",
    )
    assert res.to_pylist() == [{"n": 0}]
    res = run_sql(store, "SELECT split_v1__split AS side, count(*) AS n FROM split_v1 GROUP BY 1 ORDER BY 1")
    assert res.to_pylist() == [{"side": "holdout", "n": 6}, {"side": "train", "n": 54}]
    assert split_dataset(store, "uf", holdout=0.1, seed=0).reused
    assert split_dataset(store, "uf", holdout=0.1, seed=1).ref.version == "v2"
    assert get_signal("split") is get_signal("split_v1")


def test_cli_split(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    publish_dataset(store, make_pairs(prompts=10))
    res = runner.invoke(
        app,
        ["split", "uf", "--holdout", "0.2", "--seed", "3", "--store", str(store.root)],
        catch_exceptions=False,
    )
    assert res.exit_code == 0
    assert res.stdout == (
        "Wrote scores/uf/split_v1/v1: 30 pairs from 10 prompts; holdout 6 pairs (2 prompts), train 24 pairs (8 prompts)\n"
    )
    res = runner.invoke(app, ["split", "uf", "--holdout", "1.5", "--store", str(store.root)])
    assert res.exit_code == 1
    assert res.stderr == "Error: --holdout is a fraction of prompts between 0 and 1 (exclusive), got 1.5\n"
    one = Store(tmp_path / "one")
    publish_dataset(one, make_pairs(prompts=1))
    res = runner.invoke(app, ["split", "uf", "--store", str(one.root)])
    assert res.exit_code == 1
    assert res.stderr == "Error: a held-out split needs at least 2 distinct prompts, the dataset has 1\n"
