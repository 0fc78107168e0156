"""Per-source accuracy (prefcurate.explore.stats, sql/accuracy.sql, `prefcurate stats accuracy`).

A hand-made signal with known values per source: positive, negative, exactly zero (ties), null and
NaN (missing). Ties are reported separately and never counted as correct; a boolean `correct` field
gets its ties from the sibling margin; the CLI output is exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.explore.stats import accuracy, source_order
from prefcurate.store import Store
from prefcurate.store.views import run_named

from .helpers import pair_rows, publish_rows

# source, margin per pair: a = 3 correct, 1 tie, 1 wrong, 1 missing (null); b = 2 correct, 1 NaN (missing);
# c = 1 correct, 2 wrong
ROWS = [
    ("a", 1.5),
    ("a", 0.25),
    ("a", 3.0),
    ("a", 0.0),
    ("a", -2.0),
    ("a", None),
    ("b", 0.5),
    ("b", 7.0),
    ("b", math.nan),
    ("c", 0.125),
    ("c", -1.0),
    ("c", -0.5),
]


def make_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    pairs = pair_rows(n=len(ROWS))
    pairs = pairs.set_column(pairs.schema.get_field_index("source"), "source", pa.array([s for s, _ in ROWS]))
    publish_rows(store, pairs)
    margins = [m for _, m in ROWS]
    correct = [None if m is None or math.isnan(m) else m > 0 for m in margins]
    table = pa.table(
        {
            "pair_id": pairs.column("pair_id"),
            "fake_v1__margin": pa.array(margins, pa.float64()),
            "fake_v1__correct": pa.array(correct, pa.bool_()),
            "fake_v1__flag": pa.array(correct, pa.bool_()),  # a boolean with no sibling margin
            "fake_v1__note": pa.array(["x"] * len(ROWS)),
        }
    )
    with store.publish("scores", "toy/fake_v1", {"signal": "fake_v1", "counts": {"rows": len(ROWS)}}) as pub:
        pub.write_table(table)
    return store


def counts(table: pa.Table) -> list[tuple[object, ...]]:
    cols = ["source", "pairs", "correct", "wrong", "ties", "missing", "accuracy"]
    return [tuple(r[c] for c in cols) for r in table.to_pylist()]


def test_margin_column_ties_separate_sorted_easiest_first(tmp_path: Path) -> None:
    table = accuracy(make_store(tmp_path), "toy", "fake_v1__margin")
    assert table.column_names == [
        "dataset",
        "source",
        "pairs",
        "correct",
        "wrong",
        "ties",
        "missing",
        "accuracy",
        "ci_low",
        "ci_high",
    ]
    assert counts(table) == [
        ("b", 3, 2, 0, 0, 1, 1.0),
        ("a", 6, 3, 1, 1, 1, 0.6),
        ("c", 3, 1, 2, 0, 0, 1 / 3),
    ]
    # Wilson 95% interval of 3/5
    z = 1.959963984540054
    centre, half = (
        (0.6 + z * z / 10) / (1 + z * z / 5),
        z * math.sqrt(0.24 / 5 + z * z / 100) / (1 + z * z / 5),
    )
    a = table.to_pylist()[1]
    assert a["ci_low"] == pytest.approx(centre - half, abs=1e-12) and a["ci_high"] == pytest.approx(
        centre + half, abs=1e-12
    )
    assert round(a["ci_low"], 4) == 0.2307 and round(a["ci_high"], 4) == 0.8824


def test_boolean_correct_gets_ties_from_its_margin(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert counts(accuracy(store, "toy", "fake_v1__correct")) == counts(
        accuracy(store, "toy", "fake_v1__margin")
    )
    # without a sibling margin, a false is wrong: the tie in source a cannot be told apart
    assert counts(accuracy(store, "toy", "fake_v1__flag")) == [
        ("b", 3, 2, 0, 0, 1, 1.0),
        ("a", 6, 3, 2, 0, 1, 0.6),
        ("c", 3, 1, 2, 0, 0, 1 / 3),
    ]


def test_by_dataset_and_source_order_and_canned_sql_agree(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert counts(accuracy(store, "toy", "fake_v1__margin", by="dataset")) == [("(all)", 12, 6, 3, 1, 2, 0.6)]
    assert source_order(store, "toy", "fake_v1__margin") == ["b", "a", "c"]
    canned = run_named(store, "accuracy", {"signal": "fake_v1__margin", "dataset": "toy"})
    assert canned.equals(accuracy(store, "toy", "fake_v1__margin"))


def test_errors_are_one_line(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(ConfigError) as exc:
        accuracy(store, "toy")
    assert str(exc.value) == (
        "dataset 'toy' has no logprob_margin_v1 scores (have: fake_v1); run `prefcurate score toy --by ...` first"
    )
    with pytest.raises(ConfigError) as exc:
        accuracy(store, "toy", "fake_v1__nope")
    assert str(exc.value) == (
        "scores/toy/fake_v1/v1 has no column 'fake_v1__nope' "
        "(have: fake_v1__margin, fake_v1__correct, fake_v1__flag, fake_v1__note)"
    )
    with pytest.raises(
        ConfigError, match=r"^fake_v1__note is string; accuracy needs a number \(a margin\) or a boolean$"
    ):
        accuracy(store, "toy", "fake_v1__note")
    with pytest.raises(ConfigError, match=r"^'margin' is not a signal column; expected <signal>__<field>"):
        accuracy(store, "toy", "margin")
    with pytest.raises(ConfigError, match=r"^--by 'model' is not one of: source, dataset$"):
        accuracy(store, "toy", "fake_v1__margin", by="model")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_cli_stats_accuracy_exact_output(tmp_path: Path) -> None:
    root = str(make_store(tmp_path).root)
    res = invoke(
        "stats",
        "accuracy",
        "toy",
        "--signal",
        "fake_v1__margin",
        "--by",
        "source",
        "--store",
        root,
        "-f",
        "csv",
    )
    assert res.exit_code == 0
    assert res.stdout == (
        "source,pairs,correct,wrong,ties,missing,accuracy,ci_low,ci_high\n"
        "b,3,2,0,0,1,1.0,0.3423802275066531,1.0\n"
        "a,6,3,1,1,1,0.6,0.23072428127601288,0.8823792257673522\n"
        "c,3,1,2,0,0,0.3333333333333333,0.061491944720396215,0.7923403991979523\n"
    )
    res = invoke("stats", "accuracy", "toy", "--signal", "fake_v1__correct", "--store", root, "-f", "json")
    assert [(r["source"], r["ties"]) for r in json.loads(res.stdout)] == [("b", 0), ("a", 1), ("c", 0)]
    # a 100-column terminal: the table fits without wrapped headers
    res = CliRunner(env={"COLUMNS": "100"}).invoke(
        app, ["stats", "accuracy", "toy", "--signal", "fake_v1__margin", "--store", root]
    )
    assert res.stdout.splitlines() == [
        "               Accuracy of fake_v1__margin by source (easiest first)                ",
        "┏━━━━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━┳━━━━━━┳━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━┓",
        "┃ source ┃ pairs ┃ correct ┃ wrong ┃ ties ┃ missing ┃ accuracy ┃  ci_low ┃ ci_high ┃",
        "┡━━━━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━╇━━━━━━╇━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━┩",
        "│ b      │     3 │       2 │     0 │    0 │       1 │        1 │  0.3424 │       1 │",
        "│ a      │     6 │       3 │     1 │    1 │       1 │      0.6 │  0.2307 │  0.8824 │",
        "│ c      │     3 │       1 │     2 │    0 │       0 │   0.3333 │ 0.06149 │  0.7923 │",
        "└────────┴───────┴─────────┴───────┴──────┴─────────┴──────────┴─────────┴─────────┘",
        "Order, easiest first: b > a > c",
    ]


def test_cli_sql_accuracy_and_errors(tmp_path: Path) -> None:
    root = str(make_store(tmp_path).root)
    res = invoke(
        "sql", "accuracy", "--signal", "fake_v1__margin", "--by", "dataset", "--store", root, "-f", "csv"
    )
    assert (
        res.stdout
        == "dataset,source,pairs,correct,wrong,ties,missing,accuracy,ci_low,ci_high\ntoy,(all),12,6,3,1,2,0.6,0.31267376973365835,0.8318196702937639\n"
    )
    res = invoke("stats", "accuracy", "nosuch", "--store", root)
    assert res.exit_code == 1 and res.stderr.startswith("Error: no dataset 'nosuch' in store ")
    res = invoke("stats", "accuracy", "toy", "--signal", "fake_v1__note", "--store", root)
    assert res.exit_code == 1
    assert res.stderr == "Error: fake_v1__note is string; accuracy needs a number (a margin) or a boolean\n"
