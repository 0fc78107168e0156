"""`train --save-at-steps`: a plain arm checkpointed at given global steps (the curriculum's stage
boundaries), across stages, and picked up by `eval run` as extra checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from prefcurate.errors import ConfigError
from prefcurate.evaluate.run import checkpoints

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import trainers  # noqa: E402
from trainers.config import TrainConfig, parse_steps  # noqa: E402


def pairs(start: int, n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "pair_id": f"pair-{i:03d}",
                "prompt_id": f"prompt-{i:03d}",
                "source": "test",
                "prompt": [{"role": "user", "content": f"Say something about item {i}."}],
                "chosen": [{"role": "assistant", "content": f"Item {i} is fine."}],
                "rejected": [{"role": "assistant", "content": f"no no no {i} " * (1 + i % 3)}],
            }
            for i in range(start, start + n)
        ]
    )


def test_parse_steps_and_config_dict() -> None:
    assert parse_steps("3, 1,3") == (1, 3) and parse_steps(None) == ()
    with pytest.raises(ConfigError, match="--save-at-steps"):
        parse_steps("2,x")
    with pytest.raises(ConfigError, match=">= 1"):
        parse_steps("0")
    assert "save_at_steps" not in TrainConfig().to_dict()  # old runs (without the key) still resume
    assert TrainConfig(save_at_steps="2,4").to_dict()["save_at_steps"] == [2, 4]


def test_checkpoints_at_global_steps_across_stages(tmp_path: Path, make_tiny_model) -> None:
    model = make_tiny_model(seed=11)
    run_dir = tmp_path / "run"
    # Two curriculum stages of 2 steps each (4 pairs, batch 2): global steps 1-2, then 3-4.
    trainers.run(
        [pairs(0, 4), pairs(4, 4)],
        run_dir,
        model=model,
        schedule="curriculum",
        batch_size=2,
        max_length=48,
        learning_rate=5e-3,
        dtype="fp32",
        order="sequential",
        save_at_steps=(1, 3),
        publish=False,
    )
    for step, stage in ((1, 1), (3, 2)):
        info = json.loads((run_dir / f"step-{step}" / "DONE").read_text())
        assert info["step"] == step and info["stage"] == stage and info["pairs_seen"] == 2 * step
        assert (run_dir / f"step-{step}" / "model" / "config.json").is_file()
    assert not (run_dir / "step-2").exists() and not (run_dir / "step-4").exists()
    _name, models = checkpoints(run_dir)
    assert [(m.stage, m.step) for m in models] == [
        ("start", 0),
        ("step-1", 1),
        ("stage-1", 2),
        ("step-3", 3),
        ("stage-2", 4),
    ]
