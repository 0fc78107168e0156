"""Paired statistics for comparing two arms on the same problems.

Problems are the resampling unit (clusters): when several samples are drawn per problem, a
problem's value is the mean over its samples and it is resampled or sign-flipped as a whole,
so correlated samples of one problem never count as independent evidence.

* `bootstrap_ci`: percentile bootstrap interval of a mean over problems (for a paired
  difference, pass the per-problem differences).
* `mcnemar_exact`: exact McNemar test for paired binary outcomes (greedy pass@1): a two-sided
  binomial test of the discordant counts at p = 1/2, as `scipy.stats.binomtest`.
* `sign_flip_test`: paired permutation test of the mean difference, exact (all 2^n sign
  patterns) up to `EXACT_MAX` problems, Monte Carlo beyond.
* `holm`: Holm's step-down adjustment of a family of p-values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

EXACT_MAX = 16  # 2^16 sign patterns: exact enumeration stays cheap
_REL_TOL = 1e-12  # ties of the statistic up to float noise count as "as extreme"


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one value per problem)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size == 1 or np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // x.size)  # bounded memory per block of resamples
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return (float(low), float(high))


def binom_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of k successes in n trials at p = 1/2 (binomtest's rule:
    the total probability of outcomes no more likely than k; symmetric at 1/2)."""
    if n == 0:
        return 1.0
    lo = min(k, n - k)
    if 2 * lo == n:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(lo + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> tuple[float, int, int]:
    """Exact McNemar p-value for paired binary outcomes, with the discordant counts
    (a passes where b fails, b passes where a fails)."""
    if len(a) != len(b):
        raise ValueError("paired outcomes differ in length")
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    return binom_two_sided(a_only, a_only + b_only), a_only, b_only


def sign_flip_test(
    diffs: Sequence[float], *, n_resamples: int = 20_000, seed: int = 0, exact_max: int = EXACT_MAX
) -> float:
    """Two-sided paired permutation p-value of mean(diffs) = 0 by flipping the sign of each
    problem's difference (exact up to `exact_max` problems; Monte Carlo with the +1 correction beyond)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or np.all(d == 0):
        return 1.0
    observed = abs(d.mean())
    threshold = observed * (1 - _REL_TOL)
    if d.size <= exact_max:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        stats = np.abs(signs @ d) / d.size
        return float(np.mean(stats >= threshold))
    rng = np.random.default_rng(seed)
    hits = 0
    block = max(1, 2_000_000 // d.size)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        signs = rng.choice((1.0, -1.0), size=(size, d.size))
        hits += int(np.sum(np.abs(signs @ d) / d.size >= threshold))
    return (hits + 1) / (n_resamples + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (NaN entries are left out of the family and stay NaN)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
