"""`prefcurate rank`: ordering, direction, --top, nulls last, both scores, writing out (no model needed:
the log-prob signal version is published with known values)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.explore.ranking import rank_pairs, resolve_field
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap

from .helpers import pairs_table

runner = CliRunner()
S = "logprob_margin_v1"


def publish_logprobs(store, chosen: list[float | None], rejected: list[float | None]) -> None:
    pairs = store.get("pairs", "toy")
    ids = pairs.read(["pair_id"]).column("pair_id")
    margin = [None if c is None or r is None else c - r for c, r in zip(chosen, rejected, strict=True)]
    table = pa.table(
        {
            "pair_id": ids,
            f"{S}__chosen_logp": pa.array(chosen, pa.float64()),
            f"{S}__rejected_logp": pa.array(rejected, pa.float64()),
            f"{S}__margin": pa.array(margin, pa.float64()),
        }
    )
    with store.publish(
        "scores", f"toy/{S}", {"signal": S, "inputs": {"pairs": {"version": pairs.version}}}
    ) as pub:
        pub.write_table(table)


@pytest.fixture
def ranked_store(pair_store):
    p = [
        [{"role": "user", "content": f"Question number {i}, with   extra   spaces and a long tail of words"}]
        for i in range(5)
    ]
    store = pair_store(pairs_table([(p[i], f"good {i}", f"bad {i}") for i in range(5)]))
    publish_logprobs(store, [-10.0, -20.0, -5.0, None, -7.0], [-12.0, -21.0, -9.0, -3.0, -9.0])
    return store


def test_descending_by_default_nulls_last_ties_by_pair_id(ranked_store) -> None:
    table, ref, field = rank_pairs(ranked_store, "toy", "logprob-margin", excerpt=20)
    assert ref.label == f"scores/toy/{S}/v1" and field == "margin"
    assert table.column_names == [
        "rank",
        "pair_id",
        "source",
        "prompt",
        "chosen_logp",
        "rejected_logp",
        "margin",
    ]
    rows = table.to_pylist()
    assert [r["margin"] for r in rows] == [4.0, 2.0, 2.0, 1.0, None]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    tied = [r["pair_id"] for r in rows[1:3]]
    assert tied == sorted(tied)
    assert rows[0]["prompt"] == "Question number 2, …" and rows[0]["chosen_logp"] == -5.0
    assert rows[-1]["chosen_logp"] is None and rows[-1]["rejected_logp"] == -3.0


def test_ascending_top_and_field(ranked_store) -> None:
    table, _, _ = rank_pairs(ranked_store, "toy", "logprob-margin", ascending=True, top=2)
    assert table.column("margin").to_pylist() == [1.0, 2.0]
    table, _, field = rank_pairs(ranked_store, "toy", f"{S}__chosen_logp", top=1)
    assert field == "chosen_logp" and table.column_names[-2:] == ["chosen_logp", "rejected_logp"]
    assert table.column("chosen_logp").to_pylist() == [-5.0]
    assert table.column("rejected_logp").to_pylist() == [-9.0]
    with pytest.raises(ConfigError, match="logprob_margin_v1 has no field 'nope'"):
        resolve_field("logprob-margin", "nope")
    with pytest.raises(ConfigError, match="--top must be at least 1, got 0"):
        rank_pairs(ranked_store, "toy", "logprob-margin", top=0)


def test_score_gap_shows_the_ratings(pair_store) -> None:
    store = pair_store()
    run_signal(store, "toy", ScoreGap())
    table, _, _ = rank_pairs(store, "toy", "score-gap", top=3)
    assert table.column_names[-3:] == ["chosen_score", "rejected_score", "gap"]
    assert table.column("gap").to_pylist() == [4.0, 4.0, 4.0]


def test_cli_table_csv_and_out_files(ranked_store, tmp_path) -> None:
    base = ["rank", "toy", "--by", "logprob-margin", "--store", str(ranked_store.root)]
    res = runner.invoke(app, [*base, "--top", "2", "-f", "csv", "--excerpt", "12"], catch_exceptions=False)
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "rank,pair_id,source,prompt,chosen_logp,rejected_logp,margin"
    assert lines[1].endswith(",Question nu…,-5.0,-9.0,4.0") and lines[2].endswith(",-12.0,2.0")
    for ext in ("parquet", "csv", "jsonl"):
        path = tmp_path / f"order.{ext}"
        res = runner.invoke(app, [*base, "--out", str(path)], catch_exceptions=False)
        assert res.exit_code == 0 and f"Wrote 5 rows to {path}" in " ".join(res.stdout.split())
        if ext == "parquet":
            got = pq.read_table(path).column("margin").to_pylist()
        elif ext == "csv":
            got = [line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]]
        else:
            got = [json.loads(line)["margin"] for line in path.read_text().splitlines()]
        assert got in ([4.0, 2.0, 2.0, 1.0, None], ["4.0", "2.0", "2.0", "1.0", ""])  # one CSV dialect
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "order.xlsx")])
    assert res.exit_code == 1
    assert (
        res.stderr
        == f"Error: --out '{tmp_path / 'order.xlsx'}': unknown extension '.xlsx'; use one of: .parquet, .csv, .jsonl\n"
    )
    res = runner.invoke(app, ["rank", "toy", "--by", "reward-ish", "--store", str(ranked_store.root)])
    assert res.exit_code == 1 and res.stderr.startswith("Error: unknown signal 'reward-ish'; choose one of:")
