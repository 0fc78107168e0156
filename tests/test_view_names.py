"""SQL view names are unambiguous: datasets whose lowered names collide get the right rows (or no
alias), a name that does not exist says which do, and canned queries refuse unknown names."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError, PrefcurateError, StoreError
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store
from prefcurate.store.views import run_named, run_sql

from .helpers import make_pairs, publish_dataset

runner = CliRunner()


@pytest.fixture
def store(tmp_path) -> Store:
    """`uf-a` (24 prompts x 3) and `uf_a` (5 x 2): the lowered alias `uf_a` is shared."""
    st = Store(tmp_path / "s")
    publish_dataset(st, make_pairs("uf-a"), "uf-a")
    publish_dataset(st, make_pairs("uf_a", prompts=5, per_prompt=2), "uf_a")
    run_signal(st, "uf-a", ScoreGap())
    run_signal(st, "uf_a", ScoreGap())
    return st


def count(store: Store, view: str) -> list[tuple[str, int]]:
    rows = run_sql(store, f"SELECT dataset, count(*) AS n FROM {view} GROUP BY 1 ORDER BY 1").to_pylist()
    return [(r["dataset"], r["n"]) for r in rows]


def test_colliding_names_give_each_dataset_its_own_rows(store: Store) -> None:
    assert count(store, '"pairs__uf-a"') == [("uf-a", 72)]
    assert count(store, "pairs__uf_a") == [("uf_a", 10)]  # the exact name wins; no alias shadows it
    assert count(store, '"pairs__uf-a__v1"') == [("uf-a", 72)]
    assert run_sql(store, 'SELECT count(*) AS n FROM "score_gap_v1__uf-a"').to_pylist() == [{"n": 72}]
    assert run_sql(store, "SELECT count(*) AS n FROM score_gap_v1__uf_a").to_pylist() == [{"n": 10}]
    # the wide views join each dataset with its own signal rows
    by_ds = run_sql(
        store,
        "SELECT dataset, count(*) AS n, count(score_gap_v1__gap) AS with_gap FROM scores GROUP BY 1 ORDER BY 1",
    ).to_pylist()
    assert by_ds == [
        {"dataset": "uf-a", "n": 72, "with_gap": 72},
        {"dataset": "uf_a", "n": 10, "with_gap": 10},
    ]
    corr = run_named(store, "signal_correlation", {"a": "score_gap_v1__gap", "b": "score_gap_v1__gap"})
    assert [(r["dataset"], r["pairs"]) for r in corr.to_pylist()] == [("uf-a", 72), ("uf_a", 10)]


def test_a_unique_name_gets_its_lowered_alias(tmp_path) -> None:
    st = Store(tmp_path / "s")
    publish_dataset(st, make_pairs("UF-Cur"), "UF-Cur")
    assert count(st, "pairs__uf_cur") == [("UF-Cur", 72)]
    assert count(st, '"pairs__UF-Cur"') == [("UF-Cur", 72)]
    with pytest.raises(PrefcurateError) as exc:
        run_sql(st, "SELECT * FROM pairs__UF-Cur")
    assert str(exc.value).endswith(
        '(a name holding "-" must be quoted: "pairs__UF-Cur" or its alias pairs__uf_cur)'
    )


def test_names_with_double_underscore_are_refused_before_any_work(tmp_path) -> None:
    # `uu__v1` would be both dataset uu's version v1 and dataset uu__v1's latest version.
    st = Store(tmp_path / "s")
    with pytest.raises(StoreError, match=r"invalid dataset name 'uu__v1': '__' separates"):
        publish_dataset(st, make_pairs("uu__v1"), "uu__v1")
    assert not (st.root / "pairs").exists()


def test_unknown_and_unquoted_names_say_what_exists(store: Store) -> None:
    with pytest.raises(PrefcurateError) as exc:
        run_sql(store, "SELECT * FROM pairs__nope")
    assert "pairs__nope" in str(exc.value)
    assert '(views: "pairs__uf-a"' not in str(exc.value)  # names are listed plainly
    assert "views: " in str(exc.value) and "pairs__uf_a" in str(exc.value) and "pairs__uf-a" in str(exc.value)
    with pytest.raises(PrefcurateError) as exc:
        run_sql(store, "SELECT * FROM buckets__uf-curriculum")
    assert "(no view named 'buckets__uf-curriculum'; views: " in str(exc.value)
    with pytest.raises(PrefcurateError) as exc:
        run_sql(store, "SELECT * FROM pairs__uf-a")
    assert str(exc.value).endswith('(a name holding "-" must be quoted: "pairs__uf-a")')


def test_canned_queries_refuse_unknown_datasets_and_signals(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"no dataset 'nope' in store .* \(have: uf-a, uf_a\)"):
        run_named(store, "overview", {"dataset": "nope"})
    result = runner.invoke(app, ["sql", "accuracy", "--store", str(store.root)])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: canned query 'accuracy': --param signal=logprob_margin_v1__correct: no dataset has a signal "
        "column 'logprob_margin_v1__correct' (have: score_gap_v1__gap"
    )
    with pytest.raises(ConfigError, match=r"dataset 'uf_a' has no signal column 'reward_margin_v1__margin'"):
        run_named(store, "accuracy", {"signal": "reward_margin_v1__margin", "dataset": "uf_a"})
    result = runner.invoke(app, ["sql", "overview", "--param", "dataset=nope", "--store", str(store.root)])
    assert result.exit_code == 1 and "no dataset 'nope'" in result.stderr
    result = runner.invoke(app, ["sql", "drops", "--param", "name=nope", "--store", str(store.root)])
    assert result.exit_code == 1 and "no dataset or bucket set 'nope'" in result.stderr
    ok = run_named(store, "accuracy", {"signal": "score_gap_v1__gap", "dataset": "uf_a"})
    assert ok.num_rows > 0
