"""Is a benchmark slower than its baseline? Distributions compared, not single numbers.

The rule (docs/benchmarks.md): with ``r`` the ratio of the current median
latency to the baseline's, a result is a **regression** when

1. ``r >= 1 + threshold`` (the slowdown is big enough to matter),
2. the lower end of a 95% bootstrap confidence interval of ``r`` is above 1
   (the slowdown is larger than the spread of either sample explains), and
3. a one-sided Mann-Whitney U test says the current latencies are larger,
   p < 0.01 (no assumption about the shape of the distributions).

An **improvement** is the mirror image (``r <= 1 / (1 + threshold)``, the
upper end of the interval below 1, the current latencies smaller).
Fewer than ``MIN_SAMPLES`` samples on either side is **inconclusive**.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dtf.benchmarking.stats import median

MIN_SAMPLES = 5
ALPHA = 0.01
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
#: exact U distribution up to this many pairs; a normal approximation beyond
EXACT_PAIRS = 2500


@dataclass(frozen=True)
class Comparison:
    """A result against its baseline."""

    verdict: str  # regression | improvement | unchanged | inconclusive
    ratio: float  # median latency now / median latency of the baseline
    ci_low: float
    ci_high: float
    p_slower: float  # one-sided Mann-Whitney p-value that the current run is slower
    p_faster: float
    threshold: float
    baseline_samples: int
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``1.52x the baseline's median (95% CI 1.41-1.63, p=0.0001)``."""
        if self.verdict == "inconclusive":
            return f"inconclusive: fewer than {MIN_SAMPLES} samples on a side"
        p = self.p_slower if self.ratio >= 1 else self.p_faster
        return (
            f"{self.ratio:.2f}x the baseline's median "
            f"({CONFIDENCE:.0%} CI {self.ci_low:.2f}-{self.ci_high:.2f}, p={p:.2g})"
        )


def compare(
    baseline: Sequence[float], current: Sequence[float], threshold: float, *, seed: int = 0
) -> Comparison:
    """Compare two samples of latencies (any unit, the same for both)."""
    if len(baseline) < MIN_SAMPLES or len(current) < MIN_SAMPLES:
        ratio = median(current) / median(baseline) if baseline and current else math.nan
        return Comparison(
            "inconclusive", ratio, math.nan, math.nan, math.nan, math.nan, threshold,
            len(baseline), len(current),
        )  # fmt: skip
    ratio = median(current) / median(baseline)
    low, high = bootstrap_ratio_ci(baseline, current, seed=seed)
    p_slower = mann_whitney_p_greater(current, baseline)
    p_faster = mann_whitney_p_greater(baseline, current)
    if ratio >= 1 + threshold and low > 1 and p_slower < ALPHA:
        verdict = "regression"
    elif ratio <= 1 / (1 + threshold) and high < 1 and p_faster < ALPHA:
        verdict = "improvement"
    else:
        verdict = "unchanged"
    return Comparison(
        verdict, ratio, low, high, p_slower, p_faster, threshold, len(baseline), len(current)
    )


def bootstrap_ratio_ci(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(current) / median(baseline); seeded, repeatable."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        base = median(rng.choices(baseline, k=len(baseline)))
        now = median(rng.choices(current, k=len(current)))
        ratios.append(now / base if base > 0 else math.inf)
    ratios.sort()
    tail = (1 - confidence) / 2
    return _rank(ratios, tail), _rank(ratios, 1 - tail)


def _rank(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def mann_whitney_p_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``x`` tends to be larger than ``y``.

    Exact when there are no ties and few enough pairs; otherwise the normal
    approximation with tie and continuity corrections.
    """
    n, m = len(x), len(y)
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    ties = len(set(x) | set(y)) < n + m or len(set(x)) < n or len(set(y)) < m
    if not ties and n * m <= EXACT_PAIRS:
        counts = _u_distribution(n, m)
        at_least = sum(counts[int(u) :])
        return at_least / sum(counts)
    return _normal_p_greater(x, y, u)


def _u_distribution(n: int, m: int) -> list[int]:
    """How many arrangements give each U = 0..n*m: the Gaussian binomial [n+m choose n]."""
    coefficients = [1] + [0] * (n * m)
    for i in range(1, n + 1):
        # multiply by (1 - q^(m+i)), then divide by (1 - q^i); the quotient is exact
        step = m + i
        for k in range(n * m, step - 1, -1):
            coefficients[k] -= coefficients[k - step]
        for k in range(i, n * m + 1):
            coefficients[k] += coefficients[k - i]
    return coefficients


def _normal_p_greater(x: Sequence[float], y: Sequence[float], u: float) -> float:
    n, m = len(x), len(y)
    pooled = sorted(list(x) + list(y))
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        t = j - i
        tie_term += t**3 - t
        i = j
    total = n + m
    variance = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n * m / 2.0 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))
