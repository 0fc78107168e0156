"""Choosing float32 or bfloat16: `--dtype auto` measures the CPU once (memoised) and picks bf16 only
where it is native and faster; GPUs use bf16 where supported."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from enum import Enum

from prefcurate.errors import ConfigError
from prefcurate.extras import require


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _probe_bf16_speedup() -> float:
    """fp32 time / bf16 time for matrix products shaped like a small model's layers (best of 3)."""
    torch = require("torch", "choosing a dtype")
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(512, 576, dtype=dt), torch.randn(576, 1536, dtype=dt)
        a @ b
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, time.perf_counter() - started)
        times[dt] = best
    return times[torch.float32] / times[torch.bfloat16]


def decide_dtype(
    *, cuda_bf16: bool | None, cpu_flags: set[str], speedup: Callable[[], float]
) -> tuple[str, str]:
    """(dtype, why). GPU: bf16 where supported. CPU: fp32 unless the CPU has native bf16 instructions
    (avx512_bf16 / amx_bf16) *and* a measured bf16 matrix product beats fp32 by 1.3x or more; on
    AVX2-only CPUs bf16 is emulated and several times slower than fp32."""
    if cuda_bf16 is not None:
        return ("bf16", "GPU supports bf16") if cuda_bf16 else ("fp32", "GPU lacks bf16")
    native = sorted(cpu_flags & {"avx512_bf16", "amx_bf16"})
    if not native:
        return "fp32", "CPU has no native bf16 instructions (no avx512_bf16/amx_bf16)"
    ratio = speedup()
    if ratio >= 1.3:
        return "bf16", f"CPU has {'+'.join(native)}; measured bf16 matmul {ratio:.1f}x faster than fp32"
    return "fp32", f"CPU has {'+'.join(native)} but measured bf16 matmul only {ratio:.1f}x fp32"


class Dtype(str, Enum):
    """Floating-point type of model computations."""

    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


DTYPE_CHOICES = tuple(m.value for m in Dtype)


def check_dtype(dtype: str) -> None:
    """Up-front check of a `--dtype` value (signals validate options before any work starts)."""
    if dtype not in DTYPE_CHOICES:
        raise ConfigError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPE_CHOICES)}")


def resolve_dtype(dtype: str, device: str = "cpu") -> tuple[str, str]:
    """`auto` -> ("fp32"|"bf16", reason). The CPU probe is memoised per CPU and torch version in the
    prefcurate cache folder, so reruns (and resumed runs) resolve the same way."""
    check_dtype(dtype)
    if dtype != "auto":
        return dtype, "asked for"
    torch = require("torch", "choosing a dtype")
    if device.startswith("cuda"):
        return decide_dtype(
            cuda_bf16=bool(torch.cuda.is_bf16_supported()), cpu_flags=set(), speedup=lambda: 1.0
        )
    from prefcurate.models import cache_root

    flags = _cpu_flags()
    key = hashlib.sha256(
        f"{platform.processor()}|{sorted(flags)}|{torch.__version__}|{torch.get_num_threads()}".encode()
    ).hexdigest()[:16]
    memo = cache_root() / "dtype-probe" / f"{key}.json"
    try:
        saved = json.loads(memo.read_text())
        return saved["dtype"], saved["why"] + " (cached probe)"
    except (OSError, ValueError, KeyError):
        pass
    chosen, why = decide_dtype(cuda_bf16=None, cpu_flags=flags, speedup=_probe_bf16_speedup)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"dtype": chosen, "why": why}))
    except OSError:
        pass
    return chosen, why


def default_device() -> str:
    torch = require("torch", "log-prob scoring")
    return "cuda" if torch.cuda.is_available() else "cpu"
