"""Inputs as users have them: CSV files, folders of split files, hub ids with a config or data dir,
an unreachable hub (fail at once, suggest --from FILE), and SOURCE / --from in every build command."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from prefcurate import hub
from prefcurate.build.pairs import build_pairs
from prefcurate.build.ultrafeedback import DEFAULT_HUB_ID, build_ultrafeedback
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.readers import load
from prefcurate.store import Store

ROWS = [
    {"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"} for i in range(5)
]
RAW_UF = Path(__file__).resolve().parents[1] / "examples" / "data" / "ultrafeedback_raw"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_csv_builds_the_same_pairs_as_jsonl(tmp_path: Path) -> None:
    with (tmp_path / "x.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    write_jsonl(tmp_path / "x.jsonl", ROWS)
    store = Store(tmp_path / "s")
    a = build_pairs(store, str(tmp_path / "x.csv"), dataset="a").ref.read()
    b = build_pairs(store, str(tmp_path / "x.jsonl"), dataset="b").ref.read()
    assert a.num_rows == 5 and a.column("pair_id").equals(b.column("pair_id"))


def test_a_folder_of_split_files_is_one_dataset_with_splits(tmp_path: Path) -> None:
    folder = tmp_path / "hh_mine"
    folder.mkdir()
    write_jsonl(folder / "train_clean.jsonl", ROWS[:3])
    write_jsonl(folder / "eval_clean.jsonl", ROWS[3:])
    train = load(folder)
    assert train.table.num_rows == 3 and [i.source for i in train.inputs] == ["hh_mine"]
    assert load(folder, split="eval").table.num_rows == 2
    with pytest.raises(ConfigError, match=r"has no 'test' split \(its files are splits: eval, train\)"):
        load(folder, split="test")
    result = build_pairs(Store(tmp_path / "s"), str(folder))
    assert result.ref.read().column("source").to_pylist() == ["hh_mine"] * 3
    # a folder of other names stays one source per file
    other = tmp_path / "subsets"
    other.mkdir()
    write_jsonl(other / "helpful-base.jsonl", ROWS[:2])
    write_jsonl(other / "harmless-base.jsonl", ROWS[2:])
    assert sorted(i.source for i in load(other).inputs) == ["harmless-base", "helpful-base"]


def test_an_unreachable_hub_fails_at_once_and_suggests_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "HF_HUB_OFFLINE", "1"
    )  # the load then runs in datasets' offline mode: cache or nothing
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(
        ConfigError, match=r"cannot reach the Hugging Face hub for openbmb/UltraFeedback .*--from FILE"
    ):
        build_ultrafeedback(Store(tmp_path / "s"), DEFAULT_HUB_ID)
    res = CliRunner().invoke(app, ["build", "ultrafeedback", "--store", str(tmp_path / "s")])
    assert res.exit_code == 1 and "--from FILE" in res.stderr and "Retrying" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_probe_tells_unreachable_from_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2 as httpx  # huggingface_hub's transport in this environment
    from huggingface_hub import HfApi

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "dataset_info", refuse)
    found = hub.probe("owner/name")
    assert not found.reachable and "Name or service not known" in found.reason


def test_hub_config_and_data_dir_reach_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--config / --data-dir are passed as load_dataset's name / data_dir and recorded in the manifest."""
    import datasets

    seen: dict[str, Any] = {}

    def fake_load_dataset(path: str, **kwargs: Any) -> datasets.Dataset:  # no network here: record the call
        seen.update(path=path, **kwargs)
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(hub, "probe", lambda hub_id, revision=None: hub.HubProbe(True, sha="abc"))
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    store = Store(tmp_path / "s")
    res = build_pairs(store, "Anthropic/hh-rlhf", hub_data_dir="harmless-base", hub_config=None, limit=4)
    assert seen == {
        "path": "Anthropic/hh-rlhf",
        "name": None,
        "data_dir": "harmless-base",
        "split": "train[:4]",
    }
    assert res.ref.manifest["options"]["hub_data_dir"] == "harmless-base"
    with pytest.raises(ConfigError, match="--config and --data-dir are for hub ids"):
        load(RAW_UF, hub_config="x")


def test_every_build_command_takes_source_or_from(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", ROWS)
    store = ["--store", str(tmp_path / "s")]
    by_flag = CliRunner().invoke(app, ["build", "pairs", "--from", str(path), *store])
    assert by_flag.exit_code == 0 and "Wrote pairs/x/v1" in by_flag.stdout
    both = CliRunner().invoke(app, ["build", "pairs", str(path), "--from", "other.jsonl", *store])
    assert both.exit_code == 1 and "give the input once" in both.stderr
    none = CliRunner().invoke(app, ["build", "pairs", *store])
    assert none.exit_code == 1 and "no input: give SOURCE or --from SOURCE" in none.stderr
    if RAW_UF.is_dir():
        positional = CliRunner().invoke(app, ["build", "ultrafeedback", str(RAW_UF), "--limit", "5", *store])
        assert positional.exit_code == 0, positional.stderr
        assert "Wrote pairs/ultrafeedback/v1" in positional.stdout
    code = CliRunner().invoke(app, ["build", "code", *store])
    assert code.exit_code == 1 and "no input: give SOURCE or --from SOURCE" in code.stderr


def test_model_fingerprint_resolves_hub_revisions_with_huggingface_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id's fingerprint names the commit: online from the hub, else from the HF cache's refs/."""
    from huggingface_hub import HfApi, constants

    from prefcurate.models import model_fingerprint

    sha_cached, sha_online = "a" * 40, "b" * 40
    cache = tmp_path / "hub"
    (cache / "models--org--tiny" / "refs").mkdir(parents=True)
    (cache / "models--org--tiny" / "refs" / "main").write_text(sha_cached)  # what a download leaves
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # cache only: no request is made
    assert model_fingerprint("org/tiny") == {"model": "org/tiny", "revision": sha_cached}
    assert model_fingerprint("org/tiny@v2") == {"model": "org/tiny", "revision": "v2"}  # not cached
    assert model_fingerprint("org/other") == {"model": "org/other", "revision": None}
    assert model_fingerprint(f"org/x@{sha_online}")["revision"] == sha_online  # a commit is itself

    monkeypatch.delenv("HF_HUB_OFFLINE")
    asked: list[tuple[str, str | None]] = []

    def repo_info(self: Any, repo_id: str, *, revision: str | None = None, **kwargs: Any) -> Any:
        asked.append((repo_id, revision))
        if repo_id == "org/gone":
            raise OSError("[Errno -2] Name or service not known")  # unreachable: the cache answers
        return type("Info", (), {"sha": sha_online})()

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    # online the hub decides (main may have moved since the cached download), and refs/ is updated
    assert model_fingerprint("org/tiny")["revision"] == sha_online
    assert (cache / "models--org--tiny" / "refs" / "main").read_text() == sha_online
    assert model_fingerprint("org/gone@v1") == {"model": "org/gone", "revision": "v1"}
    assert asked == [("org/tiny", None), ("org/gone", "v1")]
