"""Export: TRL form per bucket in training order, order.json, load_from_disk folders, flat formats,
reference log-probs from a log-prob signal, determinism, and TRL's DPOTrainer tokenizing the export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from prefcurate.bucket.export import bucket_tables, export, trl_table
from prefcurate.bucket.partition import PartitionSpec, partition
from prefcurate.cli import app
from prefcurate.errors import ConfigError, StoreError
from prefcurate.store import Store

from .helpers import GAP, fake_logprob, make_pairs, publish_signal, rich_store, simple_store, usage_error

runner = CliRunner()
TRL_COLUMNS = ["pair_id", "prompt", "chosen", "rejected"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return rich_store(tmp_path_factory.mktemp("export") / "store")


def test_trl_table_shape() -> None:
    pairs = make_pairs(prompts=1, per_prompt=2)
    t = trl_table(pairs)
    assert t.column_names == TRL_COLUMNS
    row = t.to_pylist()[0]
    src = pairs.to_pylist()[0]
    assert row == {
        "pair_id": src["pair_id"],
        "prompt": [{"role": "user", "content": "Question 0: tell me about topic 0."}],
        "chosen": [{"role": "assistant", "content": src["chosen"]}],
        "rejected": [{"role": "assistant", "content": src["rejected"]}],
    }
    with_ref = pairs.append_column("ref_chosen_logps", pa.array([-1.0, -2.0])).append_column(
        "ref_rejected_logps", pa.array([-3.0, -4.0])
    )
    assert trl_table(with_ref).column_names == [*TRL_COLUMNS, "ref_chosen_logps", "ref_rejected_logps"]
    with pytest.raises(ConfigError, match="^cannot convert to TRL form: no column 'chosen'"):
        trl_table(pairs.drop_columns(["chosen"]))


def test_trl_export_layout_and_order(store: Store, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "exp"
    result = export(store, "uf-cur", out)
    ref = store.get("buckets", "uf-cur")
    order = json.loads((out / "order.json").read_text())
    assert order == result.order
    assert order == {
        "format": "trl",
        "name": "uf-cur",
        "version": ref.version,
        "dataset": "uf",
        "pairs_version": "v1",
        "strategy": "quantile",
        "by": GAP,
        "easy": "high",
        "fingerprint": ref.manifest["fingerprint"],
        "buckets": [
            {
                "bucket": k,
                "split": f"bucket_{k}",
                "rows": 21,
                "files": [f"data/bucket_{k}.parquet", f"jsonl/bucket_{k}.jsonl"],
            }
            for k in range(3)
        ],
        "ref_logps": None,
    }
    stored = bucket_tables(store, "uf-cur")
    assert [k for k, _ in stored] == [0, 1, 2]
    on_disk = datasets.load_from_disk(str(out / "dataset"))
    assert list(on_disk) == ["bucket_0", "bucket_1", "bucket_2"]  # a DatasetDict, in training order
    by_card = datasets.load_dataset(str(out))  # the README's configs: one split per bucket, not one `train`
    assert list(by_card) == ["bucket_0", "bucket_1", "bucket_2"]
    # only Parquet in data/: the generic loader reads it (one `train` split, each row still knows its bucket)
    by_dir = datasets.load_dataset("parquet", data_dir=str(out / "data"))["train"]
    assert by_dir.num_rows == 63 and sorted(set(by_dir["bucket"])) == [0, 1, 2]
    for k, table in stored:
        want = table.append_column("bucket", pa.array([k] * table.num_rows, pa.int64()))
        pq_rows = pq.read_table(out / f"data/bucket_{k}.parquet")
        assert pq_rows.column_names == [*TRL_COLUMNS, "bucket"] and pq_rows.equals(want)
        lines = (out / f"jsonl/bucket_{k}.jsonl").read_text().splitlines()
        assert [json.loads(x) for x in lines] == want.to_pylist()
        for ds in (on_disk[f"bucket_{k}"], by_card[f"bucket_{k}"]):
            assert ds.column_names == [*TRL_COLUMNS, "bucket"] and ds.to_list() == want.to_pylist()
    # bucket 0 holds the largest gaps, in the stored (easiest first) order
    gaps = {r["pair_id"]: r[GAP] for r in store.get("scores", "uf/score_gap_v1").read().to_pylist()}
    b0 = [gaps[p] for p in stored[0][1].column("pair_id").to_pylist()]
    b2 = [gaps[p] for p in stored[2][1].column("pair_id").to_pylist()]
    assert b0 == sorted(b0, reverse=True) and min(b0) > max(b2)
    # the trainers read it back in the same order
    from trainers.buckets import load_export, load_store_buckets

    loaded = load_export(out)
    assert [b.bucket for b in loaded.buckets] == [0, 1, 2] and loaded.dataset == "uf"
    assert loaded.buckets[1].table.column("pair_id").equals(stored[1][1].column("pair_id"))
    assert load_store_buckets(store, "uf-cur").describe() == [{"bucket": k, "rows": 21} for k in range(3)]


def test_many_buckets_stay_in_numeric_order(tmp_path: Path) -> None:
    store = simple_store(tmp_path / "s", prompts=4)  # 12 pairs
    partition(store, PartitionSpec("uf", "many", by=GAP, buckets=12))
    assert [k for k, _ in bucket_tables(store, "many")] == list(range(12))
    order = export(store, "many", tmp_path / "out", fmt="parquet").order
    assert [b["split"] for b in order["buckets"]] == [f"bucket_{k}" for k in range(12)]
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.index("split: bucket_2\n") < card.index("split: bucket_10\n")  # numeric, not text order


def test_flat_formats_for_other_trainers(store: Store, tmp_path: Path) -> None:
    res = export(store, "uf-cur", tmp_path / "flat", fmt="jsonl")
    assert res.order["format"] == "jsonl" and res.order["buckets"][0]["files"] == ["jsonl/bucket_0.jsonl"]
    first = json.loads((tmp_path / "flat/jsonl/bucket_0.jsonl").read_text().splitlines()[0])
    assert list(first) == [
        "pair_id",
        "prompt_id",
        "source",
        "prompt",
        "chosen",
        "rejected",
        "chosen_score",
        "rejected_score",
        "signal_value",
        "bucket",
    ]
    assert isinstance(first["chosen"], str) and first["prompt"][0]["role"] == "user"
    assert first["signal_value"] == pytest.approx(first["chosen_score"] - first["rejected_score"])
    res = export(store, "uf-cur", tmp_path / "flatpq", fmt="parquet")
    t = pq.read_table(tmp_path / "flatpq/data/bucket_0.parquet")
    assert t.to_pylist()[0] == first and t.num_rows == 21
    assert not (tmp_path / "flatpq/dataset").exists() and not (tmp_path / "flatpq/jsonl").exists()


def test_ref_logps_come_from_the_signal_and_missing_values_refuse(store: Store, tmp_path: Path) -> None:
    res = export(store, "uf-cur", tmp_path / "ref", with_ref_logps="logprob_margin_v1")
    sig = store.get("scores", "uf/logprob_margin_v1")
    dtype = sig.manifest["dtype"]  # where the log-prob signal records it
    assert res.order["ref_logps"] == {"signal_version": sig.label, "manifest": sig.manifest, "dtype": "fp32"}
    import datasets

    from trainers.precomputed import recorded_ref_info

    info = recorded_ref_info(datasets.load_from_disk(str(tmp_path / "ref/dataset"))["bucket_1"])
    assert info == {"signal_version": sig.label, "dtype": dtype}  # what the drop-in trainer checks
    values = {r["pair_id"]: r for r in sig.read().to_pylist()}
    t = pq.read_table(tmp_path / "ref/data/bucket_1.parquet")
    assert t.column_names == [*TRL_COLUMNS, "ref_chosen_logps", "ref_rejected_logps", "bucket"]
    for row in t.to_pylist():
        assert row["ref_chosen_logps"] == values[row["pair_id"]]["logprob_margin_v1__chosen_logp"]
        assert row["ref_rejected_logps"] == values[row["pair_id"]]["logprob_margin_v1__rejected_logp"]
    from trainers.buckets import load_export

    assert load_export(tmp_path / "ref").has_ref_logps

    # a second signal version lacking values for some pairs is refused, naming the first one
    other = Store(tmp_path / "other")
    pairs = make_pairs()
    from .helpers import publish_dataset

    publish_dataset(other, pairs)
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap

    run_signal(other, "uf", ScoreGap())
    partition(other, PartitionSpec("uf", "cur", by=GAP, buckets=2))
    publish_signal(other, "uf", "logprob_margin_v1", fake_logprob(pairs))
    publish_signal(other, "uf", "logprob_margin_v1", fake_logprob(pairs, missing=4))
    export(other, "cur", tmp_path / "ok", with_ref_logps="logprob_margin_v1@v1")
    with pytest.raises(ConfigError) as exc:
        export(other, "cur", tmp_path / "bad", with_ref_logps="logprob_margin_v1")
    missing = pairs.column("pair_id").to_pylist()[-4:]
    first_bucket = [
        (k, t) for k, t in bucket_tables(other, "cur") if set(missing) & set(t.column("pair_id").to_pylist())
    ][0]
    first = next(p for p in first_bucket[1].column("pair_id").to_pylist() if p in missing)
    n_missing = len(set(missing) & set(first_bucket[1].column("pair_id").to_pylist()))
    assert str(exc.value) == (
        f"--with-ref-logps logprob_margin_v1: scores/uf/logprob_margin_v1/v2 has no chosen_logp for {n_missing} of 36 "
        f"pairs in bucket {first_bucket[0]} (first: pair {first}); score them first"
    )
    assert not (tmp_path / "bad").exists()
    with pytest.raises(StoreError, match=r"^no signal .uf/reward_margin_v2. in store"):
        export(other, "cur", tmp_path / "bad", with_ref_logps="reward_margin_v2")


def test_refuses_non_empty_out_unless_overwrite(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(
        ConfigError, match=r"--out .*busy exists and is not empty; choose another folder or pass --overwrite$"
    ):
        export(store, "uf-cur", out)
    (out / "keep.txt").unlink()  # --overwrite replaces only an earlier export (test_export_safety.py)
    export(store, "uf-cur", out)
    export(store, "uf-cur", out, overwrite=True)
    assert (out / "order.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_export_is_byte_identical_across_stores(store: Store, tmp_path: Path) -> None:
    other = rich_store(tmp_path / "second")
    a, b = export(store, "uf-cur", tmp_path / "a"), export(other, "uf-cur", tmp_path / "b")
    files_a = sorted(p.relative_to(a.out) for p in a.out.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.out) for p in b.out.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a.out / rel).read_bytes() == (b.out / rel).read_bytes(), rel


def test_cli_export(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    res = runner.invoke(
        app, ["export", "uf-cur@v1", "--out", str(out), "--store", str(store.root)], catch_exceptions=False
    )
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0] == (
        f"Wrote {out} (trl): buckets/uf-cur/v1, 63 pairs in 3 buckets; reference log-probs: none"
    )
    res = runner.invoke(
        app, ["export", "uf-cur", "--out", str(out), "--layout", "csv", "--store", str(store.root)]
    )
    assert "'csv' is not one of 'trl', 'jsonl', 'parquet'" in usage_error(res)
    res = runner.invoke(app, ["export", "nope", "--out", str(tmp_path / "x"), "--store", str(store.root)])
    assert res.exit_code == 1 and res.stderr.startswith("Error: no bucket set 'nope' in store")


def test_dpo_trainer_tokenizes_the_export(store: Store, tmp_path: Path, tiny_model: str) -> None:
    """The export goes through TRL's own data pipeline: load_from_disk, DPOTrainer's tokenization, its collator."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = export(store, "uf-cur", tmp_path / "trl", with_ref_logps="logprob_margin_v1").out
    ds = datasets.load_from_disk(str(out / "dataset"))["bucket_0"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=2,
        max_length=64,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        save_strategy="no",
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    tokenized = trainer.train_dataset
    assert len(tokenized) == 21
    assert {"prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"} <= set(
        tokenized.column_names
    )
    row = ds[0]
    want_prompt = tok.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert tokenized[0]["prompt_ids"] == want_prompt
    full = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=True, return_dict=True)[
        "input_ids"
    ]
    assert (
        want_prompt + tokenized[0]["chosen_ids"] == full[: len(want_prompt) + len(tokenized[0]["chosen_ids"])]
    )
    batch = trainer.data_collator([tokenized[i] for i in range(2)])
    assert batch["input_ids"].shape[0] == 4  # chosen then rejected of 2 pairs
    assert batch["ref_chosen_logps"].tolist() == pytest.approx(
        [ds[0]["ref_chosen_logps"], ds[1]["ref_chosen_logps"]]
    )


def test_push_to_hub_offline_is_one_line(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline (as here) --push-to-hub stops with one line after writing the export; a flat export is refused first."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    base = ["export", "uf-cur", "--store", str(store.root), "--push-to-hub", "me/uf-cur"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and res.stderr == (
        "Error: --push-to-hub me/uf-cur: cannot reach the Hugging Face hub (HF_HUB_OFFLINE is set)\n"
    )
    assert (tmp_path / "a" / "dataset").is_dir()  # the local export is complete all the same
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--layout", "parquet"])
    assert res.exit_code == 1 and "uploads a --layout trl export" in res.stderr
    assert not (tmp_path / "b").exists()
