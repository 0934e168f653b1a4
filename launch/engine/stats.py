"""Uncertainty of an evaluation metric: binomial standard error of an accuracy, bootstrap of any
metric over the evaluated samples (e.g. mAP)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def binomial_se(percent: float, n: int) -> float:
    """Standard error, in percentage points, of an accuracy of ``percent`` measured on ``n``
    independent samples: 100 * sqrt(p (1 - p) / n)."""
    if n < 1:
        raise ValueError(f"binomial_se needs at least one sample, got n={n}")
    p = percent / 100.0
    return 100.0 * math.sqrt(max(p * (1.0 - p), 0.0) / n)


def bootstrap(metric: Callable[[np.ndarray], float], n: int, resamples: int = 200, seed: int = 0,
              level: float = 0.95) -> dict:
    """Bootstrap over samples: ``metric(index)`` evaluates the metric on the samples ``index``
    (drawn with replacement from ``range(n)``). Returns the standard deviation of the resampled
    values (``se``) and the percentile interval at ``level`` (``lo``, ``hi``); resamples where the
    metric is undefined (NaN) are left out."""
    if n < 1 or resamples < 2:
        raise ValueError(f"bootstrap needs n >= 1 and resamples >= 2, got n={n}, resamples={resamples}")
    rng = np.random.default_rng(seed)
    values = np.array([metric(rng.integers(0, n, n)) for _ in range(resamples)], dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return {"se": math.nan, "lo": math.nan, "hi": math.nan}
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return {"se": float(values.std(ddof=1)), "lo": float(lo), "hi": float(hi)}


def median_interval(values, level: float = 0.95) -> dict:
    """Distribution-free confidence interval of a median from ``n`` independent values: the
    ``k``-th smallest and ``k``-th largest value, with ``k`` the largest rank such that
    P(Binomial(n, 1/2) < k) <= (1 - level) / 2. Nothing is assumed of the values' distribution
    (timings on a shared machine are skewed). Returns ``median``, ``lo``, ``hi`` and ``coverage``
    (the interval's exact coverage, at least ``level``); with too few values for ``level``
    (fewer than 6 at 0.95) the interval is the whole range and ``coverage``, below ``level``,
    says how much it holds (1 - 2 / 2^n)."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n < 1:
        raise ValueError("median_interval needs at least one value, got none")
    if not 0.0 < level < 1.0:
        raise ValueError(f"median_interval level must be in (0, 1), got {level}")
    # tail[k] = P(Binomial(n, 1/2) <= k)
    tail, total = [], 0.0
    for j in range(n + 1):
        total += math.comb(n, j) / 2.0 ** n
        tail.append(total)
    k = 1  # [x_(k), x_(n-k+1)] holds the median with probability 1 - 2 P(Bin <= k - 1)
    while k + 1 <= (n + 1) // 2 and tail[k] <= (1.0 - level) / 2.0:
        k += 1
    coverage = 1.0 - 2.0 * tail[k - 1]
    return {"median": float(np.median(xs)), "lo": xs[k - 1], "hi": xs[n - k],
            "coverage": coverage}
