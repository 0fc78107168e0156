"""Results that used to be silently wrong: infinite scores, empty builds, inputs spelled two ways,
and reuse disagreeing with staleness after `build --force`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
from typer.testing import CliRunner

from prefcurate.bucket.partition import PartitionSpec, partition
from prefcurate.cli import app
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store

from .helpers import make_pairs, publish_dataset, publish_signal

runner = CliRunner()


def rows(n: int = 6, **over) -> str:
    out = []
    for i in range(n):
        row = {"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "score_chosen": 5.0 + i}
        row["score_rejected"] = 1.0
        out.append({**row, **over} if i == 0 else row)
    return "".join(json.dumps(r) + "\n" for r in out)


def cli(store: Path, *args: str):
    return runner.invoke(app, [*args, "--store", str(store)])


def test_infinite_scores_are_dropped_with_a_reason(tmp_path: Path) -> None:
    data = tmp_path / "inf.jsonl"
    data.write_text(rows(score_chosen=math.inf))  # json.dumps writes Infinity, as Python and JS emit it
    res = cli(tmp_path / "s", "build", "pairs", str(data))
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "5 pairs from 6 rows" in out and "non_finite_score=1" in out
    ref = Store(tmp_path / "s").get("pairs", "inf")
    assert all(math.isfinite(v) for v in ref.read().column("chosen_score").to_pylist())


def test_infinite_signal_values_are_dropped_by_partition(tmp_path: Path) -> None:
    st = Store(tmp_path / "s")
    pairs = make_pairs(prompts=4, per_prompt=2)
    publish_dataset(st, pairs)
    values = [float(i) for i in range(pairs.num_rows)]
    values[0], values[1] = math.inf, -math.inf
    table = pa.table({"pair_id": pairs.column("pair_id"), "odd_v1__value": pa.array(values, pa.float64())})
    publish_signal(st, "uf", "odd_v1", table)
    result = partition(st, PartitionSpec("uf", "b", by="odd_v1__value", buckets=2))
    assert result.manifest["counts"]["dropped"]["non_finite_signal"] == 2
    assert result.manifest["counts"]["kept"] == pairs.num_rows - 2
    assert all(math.isfinite(b["signal"]["max"]) for b in result.manifest["buckets"])


def test_an_empty_build_warns_and_fail_on_empty_publishes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "ties.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": "Q", "chosen": "same", "rejected": "same"}) + "\n" for _ in range(3))
    )
    res = cli(tmp_path / "s", "build", "pairs", str(data))
    assert res.exit_code == 0
    assert res.stderr == (
        "Warning: pairs/ties/v1: 0 pairs from 3 rows: every row was dropped (identical_text=3)\n"
    )
    res = cli(tmp_path / "t", "build", "pairs", str(data), "--fail-on-empty")
    assert res.exit_code == 1
    assert res.stderr == (
        f"Error: {data}: 0 pairs from 3 rows: every row was dropped (identical_text=3); "
        "nothing published (--fail-on-empty)\n"
    )
    assert not (tmp_path / "t" / "pairs").exists()
    raw = Path(__file__).resolve().parents[1] / "examples" / "data" / "ultrafeedback_raw"
    res = cli(tmp_path / "u", "build", "ultrafeedback", "--from", str(raw), "--fail-on-empty")
    assert res.exit_code == 1 and "every row was dropped" in res.stderr
    assert not (tmp_path / "u" / "pairs").exists()


def test_the_same_input_spelled_two_ways_is_reused(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "d.jsonl"
    data.write_text(rows())
    monkeypatch.chdir(tmp_path)
    assert cli(tmp_path / "s", "build", "pairs", "data/d.jsonl").exit_code == 0
    res = cli(tmp_path / "s", "build", "pairs", str(data.resolve()))
    assert "Reused pairs/d/v1" in " ".join(res.stdout.split())
    res = cli(tmp_path / "s", "build", "pairs", "./data/../data/d.jsonl")
    assert "Reused pairs/d/v1" in " ".join(res.stdout.split())
    data.write_text(rows(5))  # other content: a new version
    res = cli(tmp_path / "s", "build", "pairs", "data/d.jsonl")
    assert "Wrote pairs/d/v2" in " ".join(res.stdout.split())


def test_reuse_and_staleness_agree_after_build_force(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(rows())
    store = tmp_path / "s"
    assert cli(store, "build", "pairs", str(data)).exit_code == 0
    st = Store(store)
    run_signal(st, "d", ScoreGap())
    res = cli(store, "build", "pairs", str(data), "--force")
    assert "Wrote pairs/d/v2" in " ".join(res.stdout.split())
    ref, reused = run_signal(st, "d", ScoreGap())  # same rows: the v1 scores are reused ...
    assert reused and ref.version == "v1"
    res = cli(store, "partition", "d", "--name", "b", "--by", "score_gap_v1__gap", "--buckets", "2")
    assert res.exit_code == 0, res.output  # ... and partition accepts them for pairs v2
    m = st.get("buckets", "b").manifest
    assert m["inputs"]["pairs"]["version"] == "v2"
    assert m["inputs"]["signals"]["score_gap_v1"]["version"] == "v1"
