"""The few statistics the hardware library and the forecast assets share: normal quantiles, the normal and
log-normal spread of an interval, and the p5 / median / p95 summary of Monte Carlo draws (one implementation
each; sql/marts/installed_base_projection.sql writes Z90/Z80 as literals, bound to these by a test)."""

from __future__ import annotations

import warnings

import numpy as np

Z80 = 1.2815515655446004  # two-sided 80%: the 90th percentile of the standard normal
Z90 = 1.6448536269514722  # two-sided 90%: p5 and p95
Z95 = 1.959963984540054  # two-sided 95%


def sigma(lo, hi, z: float = Z95):
    """The normal s.d. implied by a two-sided interval [lo, hi] at the coverage of `z`."""
    return (np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float)) / (2 * z)


def log_sigma(lo, hi, z: float = Z95):
    """The log-normal s.d. implied by a two-sided interval [lo, hi] at the coverage of `z`."""
    return sigma(np.log(lo), np.log(hi), z)


def percentiles(values) -> tuple[float, float, float]:
    """p5, median and p95 of Monte Carlo draws (a scalar counts as one draw)."""
    v = np.atleast_1d(np.asarray(values, dtype=float))
    return float(np.percentile(v, 5)), float(np.median(v)), float(np.percentile(v, 95))


def stack_draws(values: list, draws: int) -> np.ndarray:
    """Rows of Monte Carlo draws (each an array of `draws` values, or a scalar: that value in every draw) as one
    (rows, draws) matrix, so that the rows' quantiles are taken in one call."""
    out = np.empty((len(values), draws))
    for i, v in enumerate(values):
        out[i] = v
    return out


def row_percentiles(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p5, median and p95 of each row of a (rows, draws) matrix: the figures `percentiles` gives row by row,
    in three calls. NaN draws are left out of their row (a row of NaNs gives NaN)."""
    m = np.asarray(matrix, dtype=float)
    p5, median, p95 = (np.full(m.shape[0], np.nan) for _ in range(3))
    has_nan = np.isnan(m).any(axis=1)
    clean = m[~has_nan]
    if clean.shape[0]:
        p5[~has_nan] = np.percentile(clean, 5, axis=1)
        median[~has_nan] = np.median(clean, axis=1)
        p95[~has_nan] = np.percentile(clean, 95, axis=1)
    if has_nan.any():  # numpy's nan-quantiles loop over rows, so only the rows with NaN go through them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row of NaNs: NaN
            dirty = m[has_nan]
            p5[has_nan] = np.nanpercentile(dirty, 5, axis=1)
            median[has_nan] = np.nanmedian(dirty, axis=1)
            p95[has_nan] = np.nanpercentile(dirty, 95, axis=1)
    return p5, median, p95


def row_medians(matrix: np.ndarray) -> np.ndarray:
    """The median of each row of a (rows, draws) matrix."""
    return np.median(np.asarray(matrix, dtype=float), axis=1)
