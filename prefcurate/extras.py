"""Lazy imports: heavy optional dependencies with a message naming the extra to install, and
core data libraries (pyarrow, duckdb, numpy) loaded on first use.

The core CLI (help, build, sql) must run with the core dependencies alone, so torch,
transformers, trl, vllm and matplotlib are only imported through `require`. `prefcurate --help`
imports every command module, and through them the library modules that define the typed choices;
those modules bind pyarrow, duckdb and numpy with `lazy_module`, so help and `ls` load none of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

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


class _LazyModule(ModuleType):
    """Stands in for a module until an attribute is first read, then imports it. Only then is the real
    module in sys.modules (what a test of start-up checks); its namespace is copied in, so later reads
    are plain attribute lookups at full speed."""

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_module(name: str) -> ModuleType:
    """A module stand-in that imports on first attribute use. Bind it in an `else:` branch beside an
    `if TYPE_CHECKING:` import of the same module, so type checkers see the real one."""
    return _LazyModule(name)
