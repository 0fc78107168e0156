"""`build pairs` on the real files in ../shared/data (binarized flat rows, the four HH-RLHF
subsets) and on TRL conversational fixtures."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from prefcurate.build.pairs import build_pairs, pairs_from_table, parse_transcript
from prefcurate.cli import app
from prefcurate.ids import completion_id, prompt_id
from prefcurate.readers import InputFile, Loaded, _with_bookkeeping, table_from_dataset
from prefcurate.store import Store

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
FLAT = DATA / "ultrafeedback_binarized_flat" / "train_clean.jsonl"
HH = DATA / "hh_rlhf"
EXAMPLES = ROOT / "examples" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not available")


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@needs_data
def test_binarized_flat_real_rows(tmp_path):
    raw = [json.loads(line) for line in FLAT.read_text().splitlines()]
    res = build_pairs(Store(tmp_path / "s"), str(FLAT), dataset="uf-bin")
    rows = res.ref.read().to_pylist()
    # Independent expectation from the raw rows: drop blank, identical, then equal scores.
    expect = [
        r
        for r in raw
        if r["chosen"].strip()
        and r["rejected"].strip()
        and r["chosen"].strip() != r["rejected"].strip()
        and r["metadata"]["score_chosen"] != r["metadata"]["score_rejected"]
    ]
    assert res.counts["read"] == 1000 and len(rows) == len(expect) == res.counts["kept"]
    assert res.counts["dropped"]["tie"] == sum(
        1
        for r in raw
        if r["metadata"]["score_chosen"] == r["metadata"]["score_rejected"]
        and r["chosen"].strip()
        and r["rejected"].strip()
        and r["chosen"].strip() != r["rejected"].strip()
    )
    assert sum(res.counts["dropped"].values()) + len(rows) == 1000
    for got, want in zip(rows[:50], expect[:50], strict=False):
        assert got["prompt"] == [user(want["prompt"])]
        assert got["chosen"] == want["chosen"] and got["rejected"] == want["rejected"]
        assert got["chosen_score"] == want["metadata"]["score_chosen"]
        assert got["rejected_score"] == want["metadata"]["score_rejected"]
        assert got["source"] == "train_clean" and got["dataset"] == "uf-bin"
        assert got["chosen_id"] == completion_id(prompt_id([user(want["prompt"])]), want["chosen"])
    assert json.loads(rows[0]["meta"]) == {"format": "flat"}


@needs_data
def test_hh_rlhf_four_subsets_as_sources(tmp_path):
    res = build_pairs(Store(tmp_path / "s"), str(HH))
    assert res.ref.name == "hh_rlhf"
    table = res.ref.read()
    by_source: dict[str, int] = {}
    for s in table.column("source").to_pylist():
        by_source[s] = by_source.get(s, 0) + 1
    assert set(by_source) == {
        "harmless-base_test",
        "helpful-base_test",
        "helpful-online_test",
        "helpful-rejection-sampled_test",
    }
    raw_rows = {}
    for f in sorted(HH.glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            raw_rows[f.name[: -len(".jsonl.gz")]] = [json.loads(line) for line in fh]
    assert res.counts["read"] == sum(len(v) for v in raw_rows.values()) == 2312 + 2354 + 1137 + 2749
    assert sum(res.counts["dropped"].values()) + table.num_rows == res.counts["read"]
    # The first harmless-base pair: prompt = the shared turns, replies = the final assistant turns.
    first = raw_rows["harmless-base_test"][0]
    row = next(r for r in table.to_pylist() if r["source"] == "harmless-base_test")
    c_msgs, r_msgs = parse_transcript(first["chosen"]), parse_transcript(first["rejected"])
    assert row["prompt"] == c_msgs[:-1] == r_msgs[:-1]
    assert row["prompt"][0]["role"] == "user" and first["chosen"].startswith(
        "\n\nHuman: " + row["prompt"][0]["content"]
    )
    assert first["chosen"].endswith(row["chosen"]) and first["rejected"].endswith(row["rejected"])
    assert row["chosen_score"] is None and json.loads(row["meta"]) == {"format": "hh-rlhf"}
    # Multi-turn prompts keep alternating roles.
    multi = next(r for r in table.to_pylist() if len(r["prompt"]) >= 3)
    assert [m["role"] for m in multi["prompt"]][:3] == ["user", "assistant", "user"]


def test_parse_transcript():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello.\n\nHuman: How are you?\n\nAssistant: Fine."
    assert parse_transcript(text) == [
        user("Hi there"),
        assistant("Hello."),
        user("How are you?"),
        assistant("Fine."),
    ]
    assert parse_transcript("no turns here") is None


def test_trl_conversational_explicit_implicit_and_binarized(tmp_path):
    explicit = [
        {"prompt": [user("What is 2+2?")], "chosen": [assistant("4")], "rejected": [assistant("5")]},
        {
            "prompt": [user("Hi")],
            "chosen": [assistant("Hello!")],
            "rejected": [assistant("Hello!")],
        },  # identical
    ]
    implicit = [
        {
            "chosen": [user("Name a color."), assistant("Blue.")],
            "rejected": [user("Name a color."), assistant("Seven.")],
        },
        {
            "chosen": [user("A"), assistant("B"), user("C"), assistant("D")],
            "rejected": [user("A"), assistant("B"), user("C"), assistant("E")],
        },
    ]
    binarized = [
        {
            "prompt": "Name a color.",
            "prompt_id": "x",
            "chosen": [user("Name a color."), assistant("Blue.")],
            "rejected": [user("Name a color."), assistant("Seven.")],
            "score_chosen": 8.0,
            "score_rejected": 2.0,
            "messages": [],
        },
        {
            "prompt": "Tie?",
            "chosen": [user("Tie?"), assistant("yes")],
            "rejected": [user("Tie?"), assistant("no")],
            "score_chosen": 5.0,
            "score_rejected": 5.0,
            "messages": [],
        },
    ]
    store = Store(tmp_path / "s")
    res = build_pairs(store, str(write_jsonl(tmp_path / "explicit.jsonl", explicit)))
    rows = res.ref.read().to_pylist()
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [([user("What is 2+2?")], "4", "5")]
    assert res.counts["dropped"] == {"identical_text": 1}
    rows = build_pairs(store, str(write_jsonl(tmp_path / "implicit.jsonl", implicit))).ref.read().to_pylist()
    assert rows[0]["prompt"] == [user("Name a color.")] and (rows[0]["chosen"], rows[0]["rejected"]) == (
        "Blue.",
        "Seven.",
    )
    assert rows[1]["prompt"] == [user("A"), assistant("B"), user("C")] and rows[1]["chosen"] == "D"
    res = build_pairs(store, str(write_jsonl(tmp_path / "binarized.jsonl", binarized)))
    rows = res.ref.read().to_pylist()
    assert [(r["chosen"], r["chosen_score"], r["rejected_score"]) for r in rows] == [("Blue.", 8.0, 2.0)]
    assert res.counts["dropped"] == {"tie": 1}
    # Same prompt and texts in the implicit and binarized files -> same ids.
    implicit_rows = store.get("pairs", "implicit").read().to_pylist()
    assert rows[0]["pair_id"] == implicit_rows[0]["pair_id"]


def test_column_mapping_source_and_limit(tmp_path):
    rows = [
        {
            "q": f"question {i}",
            "good": f"good {i}",
            "bad": f"bad {i}",
            "sg": 9 - i % 3,
            "sb": 1,
            "origin": "ab"[i % 2],
        }
        for i in range(6)
    ]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    store = Store(tmp_path / "s")
    res = build_pairs(
        store,
        str(path),
        dataset="custom",
        prompt_col="q",
        chosen_col="good",
        rejected_col="bad",
        chosen_score_col="sg",
        rejected_score_col="sb",
        source_col="origin",
    )
    got = res.ref.read().to_pylist()
    assert [(r["prompt"][0]["content"], r["chosen"], r["chosen_score"], r["source"]) for r in got[:2]] == [
        ("question 0", "good 0", 9.0, "a"),
        ("question 1", "good 1", 8.0, "b"),
    ]
    res = build_pairs(
        store,
        str(path),
        dataset="custom2",
        prompt_col="q",
        chosen_col="good",
        rejected_col="bad",
        source_name="mine",
        limit=4,
    )
    got = res.ref.read().to_pylist()
    assert len(got) == 4 and {r["source"] for r in got} == {"mine"} and got[0]["chosen_score"] is None


def test_parquet_gz_and_json_inputs_agree(tmp_path):
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(5)]
    store = Store(tmp_path / "s")
    ref = build_pairs(store, str(write_jsonl(tmp_path / "x.jsonl", rows)), dataset="a").ref.read()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    with gzip.open(tmp_path / "x.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "cols.json").write_text(json.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    for i, name in enumerate(("x.parquet", "x.jsonl.gz", "cols.json")):
        got = build_pairs(store, str(tmp_path / name), dataset=f"d{i}").ref.read()
        assert got.drop_columns(["dataset", "source"]).equals(ref.drop_columns(["dataset", "source"]))
        assert set(got.column("source").to_pylist()) == {name.split(".")[0]}


def test_datasets_loaded_table_goes_through_the_same_builder(tmp_path):
    """A `datasets` Dataset (what the hub path returns) converts and builds like a file."""
    import datasets

    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(4)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    table = table_from_dataset(ds.select([2, 0]))
    loaded = Loaded(
        _with_bookkeeping(table, 0), [InputFile("owner/name", "f" * 32, "name", table.num_rows, hub=True)]
    )
    out, counts = pairs_from_table(loaded, dataset="hub")
    assert out.column("chosen").to_pylist() == ["c2", "c0"] and counts["kept"] == 2
    assert out.column("source").to_pylist() == ["name", "name"]


def test_rerun_reuses_and_cli_summary(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    args = ["build", "pairs", str(path), "--store", str(tmp_path / "s")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and "Wrote pairs/x/v1: 1 pairs from 1 rows" in first.stdout
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "Reused pairs/x/v1" in second.stdout
    third = CliRunner().invoke(app, [*args, "--force"])
    assert "Wrote pairs/x/v2" in third.stdout
    manifest = Store(tmp_path / "s").get("pairs", "x").manifest
    assert manifest["counts"] == {"read": 1, "kept": 1, "dropped": {}}
    assert manifest["inputs"][0]["path"] == str(path) and manifest["options"]["format"] == "auto"


@pytest.mark.skipif(not (EXAMPLES / "hh_rlhf").is_dir(), reason="examples/data not present")
def test_bundled_demo_data_builds(tmp_path):
    store = Store(tmp_path / "s")
    hh = build_pairs(store, str(EXAMPLES / "hh_rlhf"), dataset="hh-rlhf")
    assert set(hh.ref.read().column("source").to_pylist()) == {
        "harmless-base",
        "helpful-base",
        "helpful-online",
        "helpful-rejection-sampled",
    }
    uf = build_pairs(store, str(EXAMPLES / "ultrafeedback_binarized.jsonl"))
    assert uf.counts["read"] == 200 and uf.counts["kept"] > 150


@needs_data
def test_limit_per_file_takes_the_first_rows_of_each_subset(tmp_path):
    store = tmp_path / "s"
    res = CliRunner().invoke(
        app, ["build", "pairs", str(HH), "--limit-per-file", "30", "--name", "hh", "--store", str(store)]
    )
    assert res.exit_code == 0, res.output
    ref = Store(store).get("pairs", "hh")
    assert [i["rows"] for i in ref.manifest["inputs"]] == [30, 30, 30, 30]
    assert ref.manifest["options"]["limit_per_file"] == 30
    per_source = Counter(ref.read().column("source").to_pylist())
    assert set(per_source) == {
        "harmless-base_test",
        "helpful-base_test",
        "helpful-online_test",
        "helpful-rejection-sampled_test",
    }
    assert sum(per_source.values()) + sum(ref.manifest["counts"]["dropped"].values()) == 120
    bad = CliRunner().invoke(app, ["build", "pairs", str(HH), "--limit-per-file", "0", "--store", str(store)])
    assert bad.exit_code == 1 and bad.stderr == "Error: --limit-per-file must be at least 1, got 0\n"
