"""TRL's own options, declared once: in `trl.DPOConfig` (and the `TrainingArguments` it extends).

`TrainConfig` exposes a few of them under short names (`--lr`, `--batch-size`...) and takes any other
one with `--trl KEY=VALUE`; their defaults are DPOConfig's, except the few in `OURS`, each with the
reason it differs. Nothing here re-declares a TRL option's default.

DPOConfig's fields are read from TRL's installed source (`ast`, no import): importing `trl` imports
torch and transformers (about 3 s), and every `prefcurate` command would pay that at start-up, since
`train --help` needs the defaults. The values are the dataclass's literal defaults; a test checks them
against `dataclasses.fields(trl.DPOConfig)`. If the source cannot be read that way (a TRL that builds a
default at run time), the class is imported after all: slower, never wrong. The parse is memoised on
disk by the source files' size and mtime.
"""

from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefcurate.errors import ConfigError

# TrainConfig field -> trl.DPOConfig field.
TRL_OPTIONS = {
    "beta": "beta",
    "learning_rate": "learning_rate",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "max_length": "max_length",
    "lr_scheduler": "lr_scheduler_type",
    "warmup_ratio": "warmup_steps",  # TRL 1.x: a float in [0, 1) is a ratio of the stage's steps
    "seed": "seed",
    "report_to": "report_to",
}
# Where prefcurate's default is not DPOConfig's, and why.
OURS: dict[str, Any] = {
    # = the log-prob signal's max_length (logprob_margin_v1), so its values match and can be injected
    # as reference log-probs; DPOConfig's 1024 would make every default run recompute them.
    "max_length": 512,
    # sized for a CPU (4 pairs of 512 tokens per step fit a laptop); DPOConfig's 8 is sized for a GPU.
    "batch_size": 4,
    # the seed of every other step of the pipeline (split, partition, score --sample): one seed for a run.
    "seed": 0,
}
# DPOConfig fields each stage sets itself (from the plan or a prefcurate option): not for --trl.
RESERVED = {
    "output_dir": "each stage writes under RUN_DIR/stage-<t>/",
    "num_train_epochs": "use --epochs-per-stage",
    "max_steps": "use --max-steps-per-stage",
    "precompute_ref_log_probs": "reference log-probs are precomputed or injected per stage (--ref-logps)",
    "precompute_ref_batch_size": "set from --batch-size",
    "bf16": "use --dtype",
    "fp16": "use --dtype",
    "use_cpu": "follows the machine (CUDA when there is one)",
    "logging_steps": "every step is logged to the store",
    "save_strategy": "checkpoints are written per stage (and at --save-at-steps)",
    "disable_tqdm": "prefcurate shows its own progress",
    "data_seed": "set from --seed",
    "truncation_mode": "TRL 1.x supports only keep_start",
    **{dpo: f"use --{ours.replace('_', '-')}" for ours, dpo in TRL_OPTIONS.items()},
}
RESERVED["learning_rate"] = "use --lr"
RESERVED["report_to"] = "use --report-to"

_CHAIN = (  # DPOConfig's class chain in TRL 1.x, child first; a base not found here falls back to import
    ("trl", "trainer/dpo_config.py", "DPOConfig"),
    ("trl", "trainer/base_config.py", "_BaseConfig"),
    ("transformers", "training_args.py", "TrainingArguments"),
)
_NO_DEFAULT = "<no literal default>"


@dataclass(frozen=True)
class TrlField:
    name: str
    default: Any  # _NO_DEFAULT when the declaration is not a literal (a default_factory, an expression)
    help: str


def _source(package: str, relative: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)  # locates the top-level package without importing it
    except (ImportError, ValueError):  # an import hook refusing it, or a broken install
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return _NO_DEFAULT
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_DEFAULT


def _class_fields(path: Path, class_name: str) -> tuple[list[str], dict[str, TrlField]] | None:
    """(base class names, fields) of `class_name` as declared in `path`; None when it is not there."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            break
    else:
        return None
    bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
    found: dict[str, TrlField] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        name, value = item.target.id, item.value
        default, help_text = _NO_DEFAULT, ""
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
            for kw in value.keywords:
                if kw.arg == "default":
                    default = _literal(kw.value)
                elif kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
                    for k, v in zip(kw.value.keys, kw.value.values, strict=True):
                        if isinstance(k, ast.Constant) and k.value == "help":
                            text = _literal(v)
                            help_text = text if isinstance(text, str) else ""
        elif value is not None:
            default = _literal(value)
        found[name] = TrlField(name, default, " ".join(help_text.split()))
    return bases, found


def _read_chain() -> dict[str, TrlField] | None:
    paths = [(_source(pkg, rel), cls) for pkg, rel, cls in _CHAIN]
    if any(p is None for p, _ in paths):
        return None
    merged: dict[str, TrlField] = {}
    expected_base: str | None = None
    for path, cls in paths:
        assert path is not None
        if expected_base is not None and expected_base != cls:
            return None  # the chain changed: not the TRL this reader knows
        declared = _class_fields(path, cls)
        if declared is None:
            return None
        bases, own = declared
        for name, f in own.items():
            merged.setdefault(name, f)  # the child's declaration wins
        expected_base = bases[0] if bases else None
    return merged


def _imported() -> dict[str, TrlField]:
    """The slow, certain way: import trl and read the dataclass."""
    import dataclasses

    from trl import DPOConfig

    out = {}
    for f in dataclasses.fields(DPOConfig):
        default = f.default if f.default is not dataclasses.MISSING else _NO_DEFAULT
        out[f.name] = TrlField(f.name, default, " ".join(str(f.metadata.get("help", "")).split()))
    return out


def _memo_path() -> Path | None:
    paths = [_source(pkg, rel) for pkg, rel, _ in _CHAIN]
    if any(p is None for p in paths):
        return None
    key = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths if p is not None)
    from prefcurate.models.loading import cache_root

    return cache_root() / "trl-fields" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


@functools.cache
def dpo_fields() -> dict[str, TrlField]:
    """Every trl.DPOConfig field with its default and help; {} when TRL is not installed."""
    try:
        if importlib.util.find_spec("trl") is None:
            return {}
    except (ImportError, ValueError):  # an import hook refusing TRL, or a broken install: TRL is absent
        return {}
    memo = _memo_path()
    if memo is not None and memo.is_file():
        try:
            return {k: TrlField(k, v["default"], v["help"]) for k, v in json.loads(memo.read_text()).items()}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    fields = _read_chain()
    if fields is None or any(
        fields.get(f, TrlField(f, _NO_DEFAULT, "")).default == _NO_DEFAULT for f in TRL_OPTIONS.values()
    ):
        fields = _imported()
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({k: {"default": f.default, "help": f.help} for k, f in fields.items()}))
            os.replace(tmp, memo)
        except (OSError, TypeError, ValueError):  # a read-only cache, or a default JSON cannot hold
            pass
    return fields


def trl_default(option: str) -> Any:
    """The default of TrainConfig's TRL option `option`: OURS, else DPOConfig's (None without TRL)."""
    if option in OURS:
        return OURS[option]
    f = dpo_fields().get(TRL_OPTIONS[option])
    return None if f is None or f.default == _NO_DEFAULT else f.default


def parse_trl_args(value: dict[str, Any] | list[str] | tuple[str, ...] | str | None) -> dict[str, Any]:
    """`["weight_decay=0.01", "loss_type=ipo"]` (or a dict) -> {field: value}; each key a DPOConfig field
    that prefcurate does not set itself. Values are JSON when they parse as JSON, else strings; DPOConfig
    checks them when the stage builds it."""
    if value is None or value == "" or value == () or value == []:
        return {}
    if isinstance(value, str):
        value = [value]
    items: dict[str, Any] = {}
    if isinstance(value, dict):
        items = dict(value)
    else:
        for entry in value:
            key, sep, raw = str(entry).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--trl takes KEY=VALUE (a trl.DPOConfig field), got {entry!r}")
            try:
                items[key] = json.loads(raw)
            except ValueError:
                items[key] = raw
    known = dpo_fields()
    for key in items:
        if key in RESERVED:
            raise ConfigError(f"--trl {key}: prefcurate sets this itself ({RESERVED[key]})")
        if known and key not in known:
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"--trl {key}: not a trl.DPOConfig field{hint}")
    return dict(sorted(items.items()))
