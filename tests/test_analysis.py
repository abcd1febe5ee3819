"""Decay fits against oracles: numpy.polyfit and hand-computed lines."""

import numpy as np
import pytest

from ffqueue.analysis import divergent_fraction, fit_decay, mean_interval


def test_exact_line_by_hand():
    mixes = list(range(11))
    acc = [0.9 - 0.3 * m / 10 for m in mixes]  # slope -0.3 per unit divergent fraction
    fit = fit_decay(mixes, acc)
    assert fit is not None
    assert fit.slope == pytest.approx(-0.3)
    assert fit.intercept == pytest.approx(0.9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.stderr == pytest.approx(0.0, abs=1e-12)
    assert fit.max_accuracy == pytest.approx(0.9)
    assert not fit.partial


def test_matches_polyfit_on_noisy_curves():
    rng = np.random.default_rng(7)
    for _ in range(20):
        mixes = sorted(rng.choice(11, size=rng.integers(3, 12), replace=False).tolist())
        acc = rng.uniform(0.3, 0.95, size=len(mixes))
        fit = fit_decay(mixes, acc)
        x = np.array([divergent_fraction(m) for m in mixes])
        slope, intercept = np.polyfit(x, acc, 1)
        r = np.corrcoef(x, acc)[0, 1]
        assert fit is not None
        assert fit.slope == pytest.approx(slope)
        assert fit.intercept == pytest.approx(intercept)
        assert fit.r2 == pytest.approx(r * r)
        assert fit.partial == (len(mixes) < 11)


def test_hand_computed_three_points():
    # x = 0, .1, .2 ; y = 1, 0, 1 → slope 0, intercept 2/3, r² 0
    fit = fit_decay([0, 1, 2], [1.0, 0.0, 1.0])
    assert fit is not None
    assert fit.slope == pytest.approx(0.0, abs=1e-12)
    assert fit.intercept == pytest.approx(2 / 3)
    assert fit.r2 == pytest.approx(0.0, abs=1e-12)
    assert fit.partial


def test_too_few_mixes_give_no_fit():
    assert fit_decay([0, 1], [0.9, 0.8]) is None
    assert fit_decay([0, 1, 2], [0.9, float("nan"), 0.7]) is None


def test_flat_curve_is_a_perfect_zero_slope():
    fit = fit_decay([0, 5, 10], [0.5, 0.5, 0.5])
    assert fit is not None and fit.slope == pytest.approx(0.0) and fit.r2 == 1.0


def test_mean_interval():
    one = mean_interval([0.2])
    assert (one.mean, one.low, one.high) == (0.2, 0.2, 0.2)
    # two values 0 and 2: mean 1, sem 1, t(0.975, 1) = 12.7062
    two = mean_interval([0.0, 2.0])
    assert two.mean == 1.0
    assert two.high - two.mean == pytest.approx(12.7062, rel=1e-4)
