"""Paired statistics against scipy: bootstrap intervals, binomtest for McNemar, permutation_test for
the sign-flip test, and Holm's adjustment on a worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefcurate.evaluate.paired import binom_two_sided, bootstrap_ci, holm, mcnemar_exact, sign_flip_test

stats = pytest.importorskip("scipy.stats", reason="scipy (dev extra) is not installed")


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(7)
    for values in (rng.random(60), (rng.random(164) < 0.3).astype(float), rng.normal(0.05, 0.3, 40)):
        ours = bootstrap_ci(values, n_resamples=40_000, seed=1)
        ref = stats.bootstrap((values,), np.mean, n_resamples=40_000, method="percentile", rng=2)
        # Two independent Monte Carlo runs: the endpoints agree to well under a tenth of the width.
        width = ref.confidence_interval.high - ref.confidence_interval.low
        assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
        assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_bootstrap_degenerate_cases() -> None:
    assert bootstrap_ci([0.5]) == (0.5, 0.5)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


@pytest.mark.parametrize("n", [0, 1, 2, 5, 9, 10, 17, 40])
def test_binomial_p_matches_scipy_binomtest(n: int) -> None:
    for k in range(n + 1):
        expected = 1.0 if n == 0 else stats.binomtest(k, n, 0.5).pvalue
        assert binom_two_sided(k, n) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_counts_discordant_pairs() -> None:
    a = [True] * 10 + [False] * 3 + [True] * 20 + [False] * 7
    b = [False] * 10 + [True] * 3 + [True] * 20 + [False] * 7
    p, a_only, b_only = mcnemar_exact(a, b)
    assert (a_only, b_only) == (10, 3)
    assert p == pytest.approx(stats.binomtest(10, 13, 0.5).pvalue)
    assert mcnemar_exact([True, False], [True, False])[0] == 1.0


def _scipy_sign_flip(d: np.ndarray, **kw: object) -> float:
    res = stats.permutation_test(
        (d, np.zeros_like(d)),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        alternative="two-sided",
        **kw,
    )
    return float(res.pvalue)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exact_sign_flip_matches_scipy_permutation_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(0.1, 0.4, size=12), 2)
    assert sign_flip_test(d) == pytest.approx(_scipy_sign_flip(d, n_resamples=np.inf), rel=1e-9)


def test_monte_carlo_sign_flip_is_close_to_scipy() -> None:
    rng = np.random.default_rng(5)
    d = rng.choice([-1.0, 0.0, 0.0, 1.0, 1.0], size=80) / 10  # per-problem pass@1 differences
    ours = sign_flip_test(d, n_resamples=40_000, seed=3)
    ref = _scipy_sign_flip(d, n_resamples=40_000, rng=4)
    assert ours == pytest.approx(ref, abs=0.01)
    assert sign_flip_test(np.zeros(30)) == 1.0


def test_holm_worked_example() -> None:
    # Holm (1979) step-down: sorted 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1, kept monotone.
    assert holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, math.nan, 0.9]) == pytest.approx([1.0, math.nan, 1.0], nan_ok=True)
