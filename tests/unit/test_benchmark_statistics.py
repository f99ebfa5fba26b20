"""Latency statistics and the regression rule: distributions compared, not single numbers."""

from __future__ import annotations

import random

import pytest

from dtf.benchmarking.regression import (
    MIN_SAMPLES,
    bootstrap_ratio_ci,
    compare,
    mann_whitney_p_greater,
)
from dtf.benchmarking.stats import LatencySummary, percentile


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]

    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0


def test_a_latency_summary_is_in_milliseconds_and_items_per_second() -> None:
    summary = LatencySummary.of([0.010, 0.020, 0.030, 0.040], batch_size=8)

    assert summary.mean_ms == pytest.approx(25.0)
    assert summary.p50_ms == pytest.approx(25.0)
    assert summary.p50_ms <= summary.p90_ms <= summary.p99_ms
    assert summary.throughput == pytest.approx(8 / 0.025)


def _sample(rng: random.Random, centre: float, n: int, spread: float = 0.05) -> list[float]:
    return [centre * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_a_clear_slowdown_is_a_regression() -> None:
    rng = random.Random(1)
    result = compare(_sample(rng, 1.0, 20), _sample(rng, 1.3, 20), threshold=0.05)

    assert result.verdict == "regression"
    assert result.ratio == pytest.approx(1.3, rel=0.05)
    assert 1 < result.ci_low <= result.ratio <= result.ci_high
    assert result.p_slower < 0.01
    assert result.describe().startswith(f"{result.ratio:.2f}x the baseline's median (95% CI")


def test_noise_within_the_spread_is_not_a_regression() -> None:
    rng = random.Random(2)
    wide = [_sample(rng, 1.0, 15, spread=0.5), _sample(rng, 1.08, 15, spread=0.5)]

    assert compare(*wide, threshold=0.05).verdict == "unchanged"


def test_a_real_but_small_slowdown_below_the_threshold_is_not_a_regression() -> None:
    rng = random.Random(3)
    result = compare(_sample(rng, 1.0, 40, 0.01), _sample(rng, 1.03, 40, 0.01), threshold=0.05)

    assert result.p_slower < 0.01  # real ...
    assert result.verdict == "unchanged"  # ... but smaller than asked for


def test_a_clear_speed_up_is_an_improvement() -> None:
    rng = random.Random(4)
    assert compare(_sample(rng, 1.0, 20), _sample(rng, 0.6, 20), 0.05).verdict == "improvement"


def test_too_few_samples_are_inconclusive() -> None:
    few = [1.0] * (MIN_SAMPLES - 1)
    result = compare(few, [2.0] * 10, 0.05)

    assert result.verdict == "inconclusive"
    assert "fewer than" in result.describe()


def test_the_bootstrap_interval_is_repeatable() -> None:
    rng = random.Random(5)
    base, now = _sample(rng, 1.0, 12), _sample(rng, 1.2, 12)

    assert bootstrap_ratio_ci(base, now, seed=7) == bootstrap_ratio_ci(base, now, seed=7)


def test_mann_whitney_exact_extremes() -> None:
    # Every x above every y: only one of C(10, 5) = 252 arrangements is that extreme.
    assert mann_whitney_p_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(1 / 252)
    assert mann_whitney_p_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == 1.0


@pytest.mark.parametrize("sizes", [(5, 5), (7, 12), (30, 40), (60, 70)])
def test_mann_whitney_agrees_with_scipy(sizes: tuple[int, int]) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(sum(sizes))
    x = [rng.gauss(1.1, 0.1) for _ in range(sizes[0])]
    y = [rng.gauss(1.0, 0.1) for _ in range(sizes[1])]
    method = "exact" if sizes[0] * sizes[1] <= 2500 else "asymptotic"

    expected = stats.mannwhitneyu(x, y, alternative="greater", method=method).pvalue

    assert mann_whitney_p_greater(x, y) == pytest.approx(expected, rel=1e-6)


def test_mann_whitney_with_ties_uses_the_corrected_normal_approximation() -> None:
    stats = pytest.importorskip("scipy.stats")
    x, y = [1, 2, 2, 3, 3, 3, 4], [1, 1, 2, 2, 3]

    expected = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic").pvalue

    assert mann_whitney_p_greater(x, y) == pytest.approx(expected, rel=1e-9)
