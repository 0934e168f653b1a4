"""Uncertainty helpers (launch/engine/stats.py) against hand-worked values and simulation."""
import math

import numpy as np
import pytest

from launch.engine.stats import binomial_se, bootstrap, median_interval


def test_binomial_se_is_the_hand_worked_value():
    # 80% of 400: 100 * sqrt(0.8 * 0.2 / 400) = 100 * 0.4 / 20 = 2.0 points
    assert binomial_se(80.0, 400) == pytest.approx(2.0)
    assert binomial_se(100.0, 10) == 0.0
    with pytest.raises(ValueError, match="n=0"):
        binomial_se(50.0, 0)


def test_bootstrap_of_a_mean_matches_its_textbook_standard_error():
    values = np.random.default_rng(1).normal(size=400)
    out = bootstrap(lambda idx: float(values[idx].mean()), len(values), resamples=2000)
    textbook = values.std(ddof=0) / math.sqrt(len(values))  # about 0.05
    assert out["se"] == pytest.approx(textbook, rel=0.1)
    assert out["lo"] < values.mean() < out["hi"]


@pytest.mark.parametrize("n, k, below", [
    (15, 4, 1 + 15 + 105 + 455),  # P(Bin(15, 1/2) <= 3) = 576 / 2^15 = 0.0176 <= 0.025 < P(<= 4)
    (9, 2, 1 + 9),                # P(Bin(9, 1/2) <= 1) = 10 / 512 = 0.0195; P(<= 2) = 0.0898
    (6, 1, 1),                    # P(Bin(6, 1/2) <= 0) = 1 / 64
])
def test_median_interval_takes_the_hand_worked_order_statistics(n, k, below):
    values = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))  # x_(i) = i
    out = median_interval(values)
    assert (out["lo"], out["hi"]) == (k, n - k + 1)
    assert out["coverage"] == pytest.approx(1 - 2 * below / 2 ** n)
    assert out["median"] == (n + 1) / 2


def test_median_interval_with_too_few_values_is_the_range_and_says_its_coverage():
    out = median_interval([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (out["lo"], out["hi"], out["median"]) == (1.0, 5.0, 3.0)
    assert out["coverage"] == pytest.approx(1 - 2 / 32) and out["coverage"] < 0.95
    with pytest.raises(ValueError, match="at least one value"):
        median_interval([])


def test_median_interval_covers_the_true_median_of_a_skewed_distribution():
    # Exponential(1) timings: median ln 2. Coverage over 4000 draws of 15 values must be the
    # exact 0.9648 within simulation error (sd ~0.003).
    rng = np.random.default_rng(0)
    hits = sum(out["lo"] <= math.log(2) <= out["hi"]
               for out in (median_interval(rng.exponential(size=15)) for _ in range(4000)))
    assert abs(hits / 4000 - 0.9648) < 0.015
