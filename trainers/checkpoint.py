"""Loading the starting model and stage checkpoints (fp32 master weights for training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefcurate.errors import PrefcurateError
from prefcurate.extras import require


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def load_for_training(spec: str | Path | None) -> tuple[Any, Any]:
    """(model in float32, tokenizer) for a stage checkpoint, a local folder, a .gguf file, a hub id, or None
    (the bundled SmolLM2-135M-Instruct). Weights stay float32 so small updates are not rounded away;
    `--dtype bf16` then runs the matrix products in bf16 under autocast."""
    torch = require("torch", "training")
    transformers = require("transformers", "training")
    if spec is not None and is_checkpoint(spec):
        model = transformers.AutoModelForCausalLM.from_pretrained(str(spec), dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(spec))
    else:
        try:
            from prefcurate.models import load_model
        except ImportError as exc:
            raise PrefcurateError(
                f"loading {spec or 'the bundled model'!r} needs prefcurate.models ({exc}); "
                "give --model a local transformers checkpoint folder instead"
            ) from exc
        model, tokenizer = load_model(spec)
        model = model.to(torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def fingerprint_of(spec: str | Path | None, model: Any, tokenizer: Any) -> dict[str, Any]:
    """What identifies the starting model (compared with a log-prob signal's manifest): the same
    function the signal records, so the two agree for checkpoints, .gguf files, hub ids and the bundled model."""
    from prefcurate.models import model_fingerprint

    return dict(model_fingerprint(spec))


def chat_template_hash(tokenizer: Any) -> str | None:
    """The log-prob signal's own recipe, so a run and a signal compare the same hash."""
    from prefcurate.models.encoding import chat_template_hash as shared

    return shared(tokenizer)


def save_checkpoint(model: Any, tokenizer: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def forget_results(run_dir: Path, label: str) -> None:
    """Drop what was measured on checkpoint `label` ("stage-<t>", "step-<N>") before it is written
    again (a stage redone after an interruption): its held-out log-probs and its outcome
    evaluations, so none of them describes the old weights."""
    import shutil

    (run_dir / "eval" / f"{label}.parquet").unlink(missing_ok=True)
    for folder in (run_dir / "evals").glob(f"*/{label}"):
        shutil.rmtree(folder, ignore_errors=True)
