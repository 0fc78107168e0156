"""`trainers.PrecomputedRefDPOTrainer` with stock TRL: the export's reference columns reach the loss.

Stock `DPOTrainer` ignores `ref_chosen_logps` / `ref_rejected_logps` (its first-step loss is ln 2 whatever
the columns hold); the drop-in must use them, compute them when absent, and refuse a dtype mismatch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from prefcurate.bucket.export import export  # noqa: E402
from prefcurate.errors import ConfigError  # noqa: E402

from .helpers import rich_store  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "buckets.md"


def _args(tmp_path: Path, **kw: Any) -> Any:
    from trl import DPOConfig

    base = dict(
        output_dir=str(tmp_path / "run"),
        max_steps=1,
        per_device_train_batch_size=4,
        logging_steps=1,
        max_length=48,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    return DPOConfig(**{**base, **kw})


def _first_loss(cls: Any, model: str, ds: Any, tmp_path: Path, **kw: Any) -> tuple[Any, float]:
    from transformers import AutoTokenizer

    trainer = cls(
        model,
        args=_args(tmp_path),
        train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(model),
        **kw,
    )
    trainer.train()
    return trainer, float(trainer.state.log_history[0]["loss"])


@pytest.fixture(scope="module")
def bucket0(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Bucket 0 of a real export (with fake but fixed log-prob values), as `load_from_disk` gives it."""
    import datasets

    root = tmp_path_factory.mktemp("precomputed")
    out = export(rich_store(root / "store"), "uf-cur", root / "exp", with_ref_logps="logprob_margin_v1").out
    return datasets.load_from_disk(str(out / "dataset"))["bucket_0"].select(range(4))


def test_the_columns_reach_the_loss_unlike_stock_trl(bucket0: Any, tiny_model: str, tmp_path: Path) -> None:
    from trl import DPOTrainer

    from trainers import PrecomputedRefDPOTrainer

    plain = bucket0.remove_columns(["ref_chosen_logps", "ref_rejected_logps"])
    # stock TRL: the columns are ignored, the reference is the starting policy, so step 1 is ln 2
    _, stock = _first_loss(DPOTrainer, tiny_model, bucket0, tmp_path)
    assert stock == pytest.approx(math.log(2), abs=1e-4)
    # absent: computed (TRL's own path), the same ln 2
    absent, computed = _first_loss(PrecomputedRefDPOTrainer, tiny_model, plain, tmp_path)
    assert not absent.ref_logps_from_data and computed == pytest.approx(math.log(2), abs=1e-4)

    # TRL's own reference values, injected, give TRL's loss; the reference model is never loaded
    t = DPOTrainer(tiny_model, args=_args(tmp_path, precompute_ref_log_probs=True), train_dataset=plain)
    chosen, rejected = t.train_dataset["ref_chosen_logps"], t.train_dataset["ref_rejected_logps"]
    real = plain.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)
    ours, injected = _first_loss(PrecomputedRefDPOTrainer, tiny_model, real, tmp_path, ref_logps_dtype="fp32")
    assert ours.ref_logps_from_data and ours.ref_model is None
    assert injected == pytest.approx(math.log(2), abs=1e-4)

    # shift every chosen reference by +3 nats: loss = -log sigmoid(beta * -3) with TRL's beta 0.1
    shifted = plain.add_column("ref_chosen_logps", [v + 3 for v in chosen]).add_column(
        "ref_rejected_logps", rejected
    )
    _, moved = _first_loss(PrecomputedRefDPOTrainer, tiny_model, shifted, tmp_path, ref_logps_dtype="fp32")
    assert moved == pytest.approx(math.log1p(math.exp(0.3)), abs=1e-3)
    # and the export's own values (dtype read from the dataset's info) move it too
    _, exported = _first_loss(PrecomputedRefDPOTrainer, tiny_model, bucket0, tmp_path)
    assert abs(exported - math.log(2)) > 1e-3


def test_a_dtype_mismatch_is_refused_or_warned(bucket0: Any, tiny_model: str, tmp_path: Path) -> None:
    from trainers import PrecomputedRefDPOTrainer

    bf16 = _args(tmp_path, bf16=True)  # TRL's default; the export's signal says fp32
    with pytest.raises(ConfigError, match=r"computed in fp32, this run computes in bf16 .* set bf16=False"):
        PrecomputedRefDPOTrainer(tiny_model, args=bf16, train_dataset=bucket0)
    with pytest.warns(UserWarning, match="computed in fp32, this run computes in bf16"):
        trainer = PrecomputedRefDPOTrainer(
            tiny_model, args=bf16, train_dataset=bucket0, on_dtype_mismatch="warn"
        )
    assert trainer.ref_logps_from_data and bf16.precompute_ref_log_probs is False  # caller's config untouched
    import datasets

    unknown = datasets.Dataset.from_list(bucket0.to_list())  # a hand-made dataset: no recorded dtype
    with pytest.warns(UserWarning, match="pass ref_logps_dtype='fp32'"):
        PrecomputedRefDPOTrainer(tiny_model, args=_args(tmp_path), train_dataset=unknown)


def test_partial_columns_are_refused(bucket0: Any, tiny_model: str, tmp_path: Path) -> None:
    from trainers import PrecomputedRefDPOTrainer

    holes = bucket0.remove_columns(["ref_rejected_logps"]).add_column(
        "ref_rejected_logps", [None, -3.0, -4.0, -5.0]
    )
    with pytest.raises(ConfigError, match="'ref_rejected_logps' has 1 empty values"):
        PrecomputedRefDPOTrainer(tiny_model, args=_args(tmp_path), train_dataset=holes)


def test_the_docs_snippet_runs(tmp_path: Path, tiny_model: str) -> None:
    """docs/buckets.md's own-script snippet, run as written on a real export (paths and sizes swapped)."""
    text = DOCS.read_text()
    block = re.search(r"<!-- tested: own-script -->\n```python\n(.*?)```", text, re.S)
    assert block, "docs/buckets.md lost its tested own-script snippet"
    code = block.group(1)
    out = export(
        rich_store(tmp_path / "store"), "uf-cur", tmp_path / "exp", with_ref_logps="logprob_margin_v1"
    ).out
    swaps = {
        'EXPORT = "out/uf-curriculum"': f"EXPORT = {str(out)!r}",
        'MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"': f"MODEL = {tiny_model!r}",
        'output_dir="runs/mine"': f"output_dir={str(tmp_path / 'mine')!r}, max_steps=1, use_cpu=True, disable_tqdm=True",
        "max_length=1024": "max_length=48",
    }
    for old, new in swaps.items():
        assert old in code, f"snippet changed: {old!r} not found"
        code = code.replace(old, new)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), scope)
    assert scope["trained"] == ["bucket_0", "bucket_1", "bucket_2"]
    assert all(t.ref_logps_from_data for t in scope["trainers_run"])
