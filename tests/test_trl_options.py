"""TRL's options come from trl.DPOConfig: the defaults read from TRL's source equal the dataclass's,
TrainConfig differs only where trl_options.OURS says why, any other DPOConfig field passes through
`--trl KEY=VALUE` into the DPOConfig a stage builds, and the CLI still starts without importing TRL."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from trainers import trl_options
from trainers.config import LR_SCHEDULERS, TrainConfig
from trainers.trl_options import OURS, TRL_OPTIONS, dpo_fields, parse_trl_args

trl = pytest.importorskip("trl")
LIVE = {f.name: f for f in dataclasses.fields(trl.DPOConfig)}


def test_the_source_read_defaults_are_the_dataclass_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFCURATE_CACHE", str(tmp_path / "cache"))
    dpo_fields.cache_clear()
    try:
        read = trl_options._read_chain()  # straight from the source files, no memo
        assert read is not None and set(read) == set(LIVE)
        literal = {n: f for n, f in read.items() if f.default != trl_options._NO_DEFAULT}
        assert len(literal) > 120  # nearly every field is a literal; the rest fall back to the import
        for name, f in literal.items():
            assert f.default == LIVE[name].default, name
        for dpo_name in TRL_OPTIONS.values():
            assert dpo_name in literal
            assert read[dpo_name].help == " ".join(str(LIVE[dpo_name].metadata["help"]).split())
        # the memo on disk gives the same answer next time
        assert dpo_fields() == dpo_fields()
        memo = list((tmp_path / "cache" / "trl-fields").glob("*.json"))
        assert len(memo) == 1 and json.loads(memo[0].read_text())["beta"]["default"] == LIVE["beta"].default
        dpo_fields.cache_clear()
        assert dpo_fields()["learning_rate"].default == LIVE["learning_rate"].default
    finally:
        dpo_fields.cache_clear()


def test_train_config_defaults_are_dpo_configs_except_ours() -> None:
    config = TrainConfig()
    for ours, dpo_name in TRL_OPTIONS.items():
        expected = OURS.get(ours, LIVE[dpo_name].default)
        assert getattr(config, ours) == expected, ours
    differs = {o for o, d in TRL_OPTIONS.items() if getattr(config, o) != LIVE[d].default}
    assert differs == set(OURS)  # every difference is one OURS gives a reason for
    assert config.lr_scheduler in LR_SCHEDULERS
    from transformers.trainer_utils import SchedulerType

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}  # our choices are TRL's names


def test_trl_passthrough_reaches_the_stage_dpo_config(tmp_path: Path) -> None:
    from trainers.stage import _dpo_args

    config = TrainConfig(
        beta=0.25,
        batch_size=2,
        trl=["weight_decay=0.01", "loss_type=ipo", "max_grad_norm=0.5", "dataloader_num_workers=1"],
    )
    assert config.trl == {
        "dataloader_num_workers": 1,
        "loss_type": "ipo",
        "max_grad_norm": 0.5,
        "weight_decay": 0.01,
    }
    ctx = SimpleNamespace(config=config, dtype="fp32")
    args = _dpo_args(ctx, SimpleNamespace(epochs=2), tmp_path)  # type: ignore[arg-type]
    assert (args.beta, args.per_device_train_batch_size, args.learning_rate) == (
        0.25,
        2,
        LIVE["learning_rate"].default,
    )
    assert (
        args.weight_decay == 0.01 and args.max_grad_norm == 0.5 and args.dataloader_num_workers == 1
    )  # over our 0
    assert list(args.loss_type) == ["ipo"] and args.num_train_epochs == 2 and args.seed == 0
    assert TrainConfig().dpo_kwargs()["report_to"] == [] and "trl" not in TrainConfig().to_dict()
    assert config.to_dict()["trl"]["loss_type"] == "ipo"  # recorded: a resume must match it


def test_trl_passthrough_errors_name_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"^--trl weight_decy: not a trl.DPOConfig field \(did you mean weight_decay\?\)$"
    ):
        parse_trl_args(["weight_decy=0.1"])
    with pytest.raises(ConfigError, match=r"^--trl learning_rate: prefcurate sets this itself \(use --lr\)$"):
        parse_trl_args(["learning_rate=1e-5"])
    with pytest.raises(ConfigError, match=r"^--trl per_device_train_batch_size: .*use --batch-size\)$"):
        parse_trl_args({"per_device_train_batch_size": 8})
    with pytest.raises(ConfigError, match=r"^--trl takes KEY=VALUE \(a trl.DPOConfig field\), got 'ipo'$"):
        parse_trl_args(["ipo"])
    res = CliRunner().invoke(app, ["train", "x", "--out", "y", "--trl", "output_dir=z"])
    assert res.exit_code == 1
    assert (
        res.stderr
        == "Error: --trl output_dir: prefcurate sets this itself (each stage writes under RUN_DIR/stage-<t>/)\n"
    )


def test_the_cli_starts_without_importing_trl(tmp_path: Path) -> None:
    code = "import sys, prefcurate.cli; print(sorted(m for m in ('trl', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={"PREFCURATE_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == "[]"  # nor with an empty memo: the defaults are read from source
