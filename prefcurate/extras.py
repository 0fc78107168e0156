"""Lazy imports of heavy optional dependencies, with a message naming the extra to install.

The core CLI (help, build, sql) must run with the core dependencies alone, so torch,
transformers, trl, vllm and matplotlib are only imported through `require`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# module -> the extra that provides it
EXTRA_OF = {
    "torch": "models",
    "transformers": "models",
    "gguf": "models",
    "accelerate": "models",
    "trl": "train",
    "vllm": "vllm",
    "matplotlib": "report",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingExtraError saying which extra to install for `purpose`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRA_OF.get(top)
        hint = f"pip install 'prefcurate[{extra}]'" if extra else f"pip install {top}"
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed ({exc}); install it with: {hint}"
        ) from exc


def is_available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
