"""What a process computes with: its device class and library versions, compared across Ray actors
(a mixed cluster could give different values for the same version, so it is refused)."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Any

from .options import WorkKind

# Libraries whose version can change a value; absent ones are recorded as null.
LIBRARIES = ("prefcurate", "torch", "transformers", "vllm", "pyarrow", "numpy")
# Test-only fault switch, read in the Ray actor only: comma-separated shard indices that fail their
# first attempt (so retries, and reruns without retries, can be tested on a real cluster).
FAIL_SHARDS_ENV = "PREFCURATE_TEST_FAIL_SHARDS"
# Test-only, read in the Ray preflight probe only: `<probe index>=<device class>` makes that probe
# report another device, so a mixed cluster can be refused on a one-machine cluster.
FAKE_DEVICE_ENV = "PREFCURATE_TEST_FAKE_DEVICE"


def library_versions() -> dict[str, str | None]:
    from importlib import metadata  # here, not at the top: ~10 ms that every CLI start would pay

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_class(kind: WorkKind | None = None) -> str:
    """ "cuda:<name>" when torch sees a GPU, else the CPU arch. Model work imports torch to ask (so an
    actor and a probe of the same node answer alike); sandbox work never uses a GPU (`cpu:<arch>`);
    None asks torch only when it is already imported (the driver's own record)."""
    if kind is WorkKind.sandbox:
        return f"cpu:{platform.machine()}"
    if kind is WorkKind.model:
        try:
            importlib.import_module("torch")
        except ImportError:
            pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.machine()}"


def runtime_identity(kind: WorkKind | None = None) -> dict[str, Any]:
    return {"device": device_class(kind), "versions": library_versions()}


def uniform_key(identity: dict[str, Any]) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    return identity["device"], tuple(sorted(identity["versions"].items()))


def set_torch_threads(threads: int) -> None:
    """torch intra-op threads (a matmul's reduction order, so results, may depend on them)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for libraries not loaded yet
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def failing_shards() -> set[int]:
    raw = os.environ.get(FAIL_SHARDS_ENV, "")
    return {int(x) for x in raw.split(",") if x.strip()}


def faked_device(probe: int) -> str | None:
    """The device class FAKE_DEVICE_ENV gives this probe, if any (test only)."""
    index, sep, device = os.environ.get(FAKE_DEVICE_ENV, "").partition("=")
    return device if sep and index.strip() == str(probe) else None
