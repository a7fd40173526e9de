"""Each forecasting model on its own, on series whose answer is known by construction (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts.methods import MODELS, llt_prior


def _line(n=30, a=10.0, b=2.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return a + b * np.arange(n) + noise * rng.standard_normal(n)


def test_theta_extrapolates_half_the_slope_of_a_straight_line():
    # on an exact line SES tracks the last value (alpha -> 1), and Theta adds half the fitted slope per step
    y = _line()
    p = MODELS["theta"](y, 4)
    expected = y[-1] + 2.0 / 2 * np.arange(1, 5)
    assert p.mean == pytest.approx(expected, rel=1e-3)
    assert np.all(np.diff(p.sd) >= 0)  # the band widens with the horizon


def test_ets_follows_a_trend_and_the_damped_one_bends_below_it():
    y = _line(noise=0.2, seed=1)
    undamped = MODELS["ets_AAN"](y, 12)
    damped = MODELS["ets_AAdN"](y, 12)
    truth = 10 + 2 * np.arange(30, 42)
    assert undamped.mean[0] == pytest.approx(truth[0], rel=0.03)
    assert undamped.mean[-1] == pytest.approx(truth[-1], rel=0.05)
    assert damped.mean[-1] <= undamped.mean[-1] + 1e-6
    assert np.all(damped.sd > 0)


def test_arima_keeps_a_significant_drift_and_drops_an_insignificant_one():
    rng = np.random.default_rng(3)
    with_drift = np.cumsum(1.0 + 0.1 * rng.standard_normal(60))
    p = MODELS["arima"](with_drift, 5)
    assert np.diff(p.mean) == pytest.approx(np.ones(4), abs=0.1)
    walk = np.cumsum(rng.standard_normal(60))
    q = MODELS["arima"](walk, 5)
    order, trend, _ = q.params
    if trend == "n":  # the drift was dropped: a flat forecast (an MA/AR term may still move the first step)
        assert abs(q.mean[-1] - q.mean[-2]) < 0.05
    else:  # kept only when significant at 5%: then it must be the walk's own drift, small
        assert abs(np.mean(np.diff(q.mean))) < 0.5


def test_local_linear_trend_recovers_the_slope():
    y = _line(n=40, b=0.5, noise=0.05, seed=4)
    p = MODELS["llt"](y, 6)
    assert np.mean(np.diff(p.mean)) == pytest.approx(0.5, abs=0.05)


def test_llt_prior_continues_the_growth_and_damping_bounds_it():
    y = np.full(24, np.nan)
    y[::6] = 0.1 * np.arange(0, 24, 6)  # a disclosure every six months, growing 0.1 log units a month
    undamped = llt_prior(y, 12, irregular_sd=0.01, slope_sd=0.001)
    assert np.diff(undamped.mean) == pytest.approx(np.full(11, 0.1), abs=0.01)
    damped = llt_prior(y, 240, irregular_sd=0.01, slope_sd=0.001, damping=0.5)
    # damped by 0.5 a period the slope adds slope x (0.5 + 0.25 + ...) = slope in total
    level = damped.mean[0] - 0.1 * 0.5
    assert damped.mean[-1] == pytest.approx(level + 0.1, abs=0.02)
    assert np.all(np.diff(undamped.sd) > 0)


def test_local_drift_continues_the_last_step_and_widens_with_earlier_bursts():
    from forecasts.methods import local_drift

    # growth slowing: steps of 4, 3, 2, 1; the last step (1 per period) continues
    y = np.array([0.0, 4.0, 7.0, 9.0, 10.0])
    p = local_drift(y, 3)
    assert p.mean == pytest.approx([11.0, 12.0, 13.0])
    # s.d. from the increments around that drift: residuals 3, 2, 1, 0 over 3 degrees of freedom
    sigma = np.sqrt((9 + 4 + 1 + 0) / 3)
    assert p.sd == pytest.approx(sigma * np.sqrt(np.arange(1, 4) * (1 + np.arange(1, 4) / 1.0)))


def test_seasonal_naive_repeats_the_last_season():
    from forecasts.methods import seasonal_naive

    season = np.array([1.0, 5.0, 3.0, 2.0])
    y = np.concatenate([season, season + 1.0, season + 2.0])
    p = seasonal_naive(y, 6, season=4)
    assert p.mean == pytest.approx([3.0, 7.0, 5.0, 4.0, 3.0, 7.0])
    # every seasonal difference is 1: s.d. 1 for the first season ahead, sqrt(2) for the second
    assert p.sd == pytest.approx([1, 1, 1, 1, np.sqrt(2), np.sqrt(2)])


@pytest.mark.parametrize("name", ["naive", "drift", "local_drift", "ets_AAN", "ets_AAdN", "arima", "theta", "llt",
                                  "llt_prior"])
def test_no_method_jumps_at_its_seam(name):
    """No seam (issue 27): the first forecast of every model family starts from the last observation's level,
    within the series' own period-to-period variation, also when the last point sits below the trend."""
    rng = np.random.default_rng(11)
    y = np.log(100.0) + 0.03 * np.arange(36) + 0.02 * rng.standard_normal(36)
    step = float(np.std(np.diff(y)))  # the series' own period-to-period variation
    y[-1] -= 3 * step  # the newest point below the trend (a weak month)
    first = float(MODELS[name](y, 6, None).mean[0])
    expected = y[-1] + 0.03  # one period of trend from the last point
    # within the trend step plus three of the series' own steps of the last point
    assert abs(first - expected) < 0.03 + 3 * step, (name, first - y[-1])
