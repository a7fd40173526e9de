"""Forecasting methods (the statistical models the engine selects among), behind one interface.

Every model is a function `(y, h, season) -> Prediction`: `y` is the series on a regular grid in the
modelling scale (log for positive series), with NaN where a period was not observed; the result is
the Gaussian predictive mean and standard deviation of the next `h` periods in that scale. Quantiles
are taken in the modelling scale and mapped back through exp, which is exact for quantiles.

Models that cannot run the Kalman filter over gaps (ETS, Theta) see interior gaps filled by linear
interpolation, and are only offered when few periods are missing (see `candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Refit:
    """ARIMA parameters from the backtest's first origin: keep its order and drift choice and re-estimate the
    coefficients on the whole history from them (one fit instead of the order search)."""

    params: object


@dataclass(frozen=True)
class Prediction:
    mean: np.ndarray
    sd: np.ndarray
    params: object = None  # estimated parameters, reusable on a longer window (backtest origins)


ModelFn = Callable[..., Prediction]


def _observed(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(~np.isnan(y))
    return idx, y[idx]


def _interpolated(y: np.ndarray) -> pd.Series:
    idx, vals = _observed(y)
    filled = np.interp(np.arange(idx[0], idx[-1] + 1), idx, vals)
    return pd.Series(filled)


def _step_sigma(idx: np.ndarray, vals: np.ndarray, drift: float) -> float:
    """Per-period innovation s.d. of a random walk (with drift) observed at irregular times:
    an increment over a gap of g periods has variance g * sigma^2."""
    gaps = np.diff(idx).astype(float)
    resid = np.diff(vals) - drift * gaps
    if len(resid) == 0:
        return float("nan")
    dof = max(len(resid) - (1 if drift else 0), 1)
    return float(np.sqrt(np.sum(resid**2 / gaps) / dof))


def naive(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """Random walk: the last observed value, s.d. growing with sqrt(periods ahead)."""
    idx, vals = _observed(y)
    last_gap = len(y) - 1 - idx[-1]
    steps = np.arange(1, h + 1) + last_gap
    sigma = _step_sigma(idx, vals, 0.0)
    return Prediction(np.full(h, vals[-1]), sigma * np.sqrt(steps))


def drift(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """Random walk with drift: the line through the first and last observations, extended;
    s.d. sigma * sqrt(k * (1 + k / T)) including the drift's estimation error."""
    idx, vals = _observed(y)
    span = float(idx[-1] - idx[0])
    slope = (vals[-1] - vals[0]) / span
    sigma = _step_sigma(idx, vals, slope)
    steps = np.arange(1, h + 1) + (len(y) - 1 - idx[-1])
    mean = vals[-1] + slope * steps
    return Prediction(mean, sigma * np.sqrt(steps * (1 + steps / span)))


def local_drift(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """Random walk with the drift of the last two observations (the current growth rate), for
    adoption curves whose growth slows; s.d. from all increments around that drift, so an early
    burst of growth widens the interval instead of steering the median."""
    idx, vals = _observed(y)
    slope = (vals[-1] - vals[-2]) / float(idx[-1] - idx[-2])
    sigma = _step_sigma(idx, vals, slope)
    steps = np.arange(1, h + 1) + (len(y) - 1 - idx[-1])
    span = float(idx[-1] - idx[-2])
    return Prediction(vals[-1] + slope * steps, sigma * np.sqrt(steps * (1 + steps / span)))


def seasonal_naive(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """The value one season earlier; s.d. from the seasonal differences."""
    s = season or 1
    z = _interpolated(y).to_numpy()
    diffs = z[s:] - z[:-s]
    sigma = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else float("nan")
    k = np.arange(h)
    mean = z[len(z) - s + (k % s)]
    return Prediction(mean, sigma * np.sqrt(k // s + 1))


def _fit_or_smooth(mod, params):
    """Fit (params None) or filter with fixed parameters (an array: a later backtest origin)."""
    return mod.fit(disp=False, maxiter=200) if params is None else mod.smooth(params)


def _ets(trend: str | None, damped: bool, seasonal: str | None = None) -> ModelFn:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    def model(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
        z = _interpolated(y)
        mod = ETSModel(z, error="add", trend=trend, damped_trend=damped, seasonal=seasonal,
                       seasonal_periods=season if seasonal else None)
        res = _fit_or_smooth(mod, params)
        pred = res.get_prediction(start=len(z), end=len(z) + h - 1)
        return Prediction(np.asarray(pred.predicted_mean), np.sqrt(np.asarray(pred.forecast_variance)),
                          np.asarray(res.params))

    return model


def _arima(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """ARIMA(p,1,q) with drift (SARIMAX trend 't' on the levels = a constant on the differences), order
    chosen by AIC among (0,1,1) and (1,1,0); the drift is kept only when significant at 5% (else the
    chosen order is refitted without it), so a short series does not extrapolate a spurious trend.
    Missing values are handled by the Kalman filter."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    z = pd.Series(y)
    if isinstance(params, Refit):  # the order and drift chosen earlier, re-estimated from their estimate
        order, trend, values = params.params
        best = SARIMAX(z, order=order, trend=trend, concentrate_scale=True).fit(start_params=values, disp=False, maxiter=50)
    elif params is not None:
        order, trend, values = params
        best = SARIMAX(z, order=order, trend=trend, concentrate_scale=True).smooth(values)
    else:
        best = None
        for order in ((0, 1, 1), (1, 1, 0)):
            res = SARIMAX(z, order=order, trend="t", concentrate_scale=True).fit(disp=False, maxiter=50)
            if best is None or res.aic < best.aic:
                best = res
        pvalue = float(np.asarray(best.pvalues)[0])  # the drift is the first parameter
        if not pvalue < 0.05:
            best = SARIMAX(z, order=best.model.order, trend="n", concentrate_scale=True).fit(
                start_params=np.asarray(best.params)[1:], disp=False, maxiter=50)
    fc = best.get_forecast(h)
    return Prediction(np.asarray(fc.predicted_mean), np.sqrt(np.asarray(fc.var_pred_mean)),
                      (best.model.order, best.model.trend, np.asarray(best.params)))


def _theta(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """Theta method as Hyndman & Billah (2003) state it: simple exponential smoothing plus half the
    slope of the linear trend. Seasonality is handled by the engine (seasonally adjusted input when the
    seasonality test passes, as in the M3/M4 Theta benchmark). SES comes from statsmodels' ETSModel
    (A,N,N), whose variance gives the intervals."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    z = _interpolated(y)
    n = len(z)
    t = np.arange(n)
    slope = float(np.polyfit(t, z.to_numpy(), 1)[0])
    mod = ETSModel(z, error="add", trend=None)
    res = _fit_or_smooth(mod, params)
    pred = res.get_prediction(start=n, end=n + h - 1)
    alpha = float(res.params[0])
    steps = np.arange(1, h + 1)
    drift_term = slope / 2 * (steps - 1 + 1 / max(alpha, 1e-6) - ((1 - alpha) ** n) / max(alpha, 1e-6))
    mean = np.asarray(pred.predicted_mean) + drift_term
    return Prediction(mean, np.sqrt(np.asarray(pred.forecast_variance)), np.asarray(res.params))


def seasonality_test(y: np.ndarray, season: int | None, z: float = 1.645) -> bool:
    """The M4 competition benchmarks' test -- the autocorrelation at the seasonal lag is significant at 90%
    (|r_m| > z * sqrt((1 + 2 * sum_{k<m} r_k^2) / n)) -- on the first differences of a gap-free stretch of
    at least three seasons (on the levels, a trend or a random walk correlates at every lag and passes)."""
    if not season or season <= 1:
        return False
    idx = np.flatnonzero(~np.isnan(y))
    if len(idx) < 3 * season or (idx[-1] - idx[0] + 1) - len(idx) > 0.2 * len(idx):
        return False
    x = np.diff(_interpolated(y).to_numpy())  # on the changes: a trend or random walk is not a season
    x = x - x.mean()
    denom = float(np.sum(x**2))
    if denom == 0:
        return False
    acf = np.array([np.sum(x[k:] * x[:-k]) / denom for k in range(1, season + 1)])
    limit = z * np.sqrt((1 + 2 * np.sum(acf[:-1] ** 2)) / len(x))
    return bool(abs(acf[-1]) > limit)


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Classical additive decomposition (moving averages) of the modelling scale -- multiplicative on the
    original scale of log-modelled series; returns one index per grid period (NaN gaps interpolated),
    indices normalised to sum to zero over a season."""
    from statsmodels.tsa.seasonal import seasonal_decompose

    z = _interpolated(y)
    component = np.asarray(seasonal_decompose(z, model="additive", period=season).seasonal)
    first = int(np.flatnonzero(~np.isnan(y))[0])
    out = np.zeros(len(y))
    out[first:first + len(component)] = component
    if first:  # leading NaN periods (cannot be interior: the grid starts at the first observation)
        out[:first] = component[(np.arange(first) - first) % season]
    return out


def _llt(y: np.ndarray, h: int, season: int | None = None, params=None) -> Prediction:
    """Local linear trend state-space model; the Kalman filter skips missing periods."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    mod = UnobservedComponents(pd.Series(y), "local linear trend")
    res = _fit_or_smooth(mod, params)
    fc = res.get_forecast(h)
    return Prediction(np.asarray(fc.predicted_mean), np.sqrt(np.asarray(fc.var_pred_mean)), np.asarray(res.params))


def llt_prior(y: np.ndarray, h: int, season: int | None = None, params=None, *, irregular_sd: float = 0.1,
              slope_sd: float = 0.024, damping: float = 1.0) -> Prediction:
    """Local linear trend with fixed (prior) variances instead of maximum likelihood, for sparse
    disclosures (a handful of points months apart) whose variances MLE cannot identify.

    The Kalman smoother runs over the monthly grid, skipping missing periods, and gives the level and
    slope at the last period with their covariance. The forecast damps the slope by `damping` per
    period (1 = undamped): mean_k = level + slope * (phi + ... + phi^k); its variance follows the
    damped transition [[1, phi], [0, phi]] with the slope innovations added each period.
    `irregular_sd`: measurement noise of one disclosure; `slope_sd`: per-period s.d. of the change in
    the per-period growth rate (both log units)."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    q_level, q_slope = 1e-10, slope_sd**2
    res = UnobservedComponents(pd.Series(y), "local linear trend").smooth(
        np.array([irregular_sd**2, q_level, q_slope]))
    state = np.asarray(res.smoothed_state)[:, -1]
    cov = np.asarray(res.smoothed_state_cov)[:, :, -1]
    transition = np.array([[1.0, damping], [0.0, damping]])
    noise = np.diag([q_level, q_slope])
    mean, sd = np.empty(h), np.empty(h)
    for k in range(h):
        state = transition @ state
        cov = transition @ cov @ transition.T + noise
        mean[k], sd[k] = state[0], np.sqrt(cov[0, 0])
    return Prediction(mean, sd)


MODELS: dict[str, ModelFn] = {
    "naive": naive,
    "drift": drift,
    "local_drift": local_drift,
    "seasonal_naive": seasonal_naive,
    "ets_AAN": _ets("add", False),
    "ets_AAdN": _ets("add", True),
    "ets_AAdA": _ets("add", True, "add"),
    "arima": _arima,
    "theta": _theta,
    "llt": _llt,
    "llt_prior": llt_prior,
}
# the equal-weight combination offered when all members are candidates (see engine._combine), the default
# (EngineConfig.selection_z): damped ETS, Theta and ARIMA as in the M4 benchmarks, plus the two random walks
# (naive, drift) that anchor it on short and noisy series. On the M3 competition (bench/competition_bench.py)
# ETS/Theta/ARIMA alone was worse than Theta on quarterly series (sMAPE 9.34 vs 9.26); with the random walks
# 9.24 (yearly 16.25 vs Theta's 16.62; AirPassengers MAPE 3.5%). Issue 27 tried, on every 4th M3 series:
# + SES; SES/Holt/damped (M4's 'Comb S-H-D'); Theta weighted twice; without ARIMA. Without ARIMA was best on
# all of M3 (yearly 16.15, quarterly 9.13) but not on the held-out M1 (yearly 18.53 vs 18.06, quarterly 15.42
# vs 15.40; AutoTheta 17.65 / 16.35), so the members stay.
COMBINATION = ("ets_AAdN", "theta", "arima", "naive", "drift")
# models that model the season themselves; the others see the seasonally adjusted series when the
# seasonality test passes
SEASONAL_MODELS = ("seasonal_naive", "ets_AAdA")
# simpler first: the tie-break order when backtest scores are equal
SIMPLICITY = ["naive", "drift", "local_drift", "seasonal_naive", "theta", "ets_AAN", "ets_AAdN", "ets_AAdA",
              "arima", "llt_prior", "llt"]


def candidates(n_obs: int, n_periods: int, season: int | None, seasonal: bool = True) -> list[str]:
    """Which models a series can support, by its observed points and gaps; seasonal models only when
    `seasonal` (the seasonality test passed)."""
    missing_share = 1 - n_obs / n_periods
    names = ["naive", "drift"]
    if missing_share > 0.2:
        # sparse: maximum likelihood cannot identify the variances of a handful of points months
        # apart, so the state-space candidate is the local linear trend with prior variances
        names += ["local_drift", "llt_prior"]
    elif n_obs >= 5 and missing_share > 0:
        names.append("llt")  # on gapless series the local linear trend duplicates ets_AAN
    if n_obs >= 8:
        names.append("arima")
    if missing_share <= 0.2 and n_obs >= 8:
        names += ["ets_AAdN", "theta"]
        if seasonal and season and season <= 24 and n_periods >= 3 * season:
            names += ["seasonal_naive", "ets_AAdA"]
        elif seasonal and season and n_periods >= 2 * season:
            names.append("seasonal_naive")
    return [m for m in SIMPLICITY if m in names]
