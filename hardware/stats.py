"""The few statistics the hardware library and the forecast assets share: normal quantiles, the normal and
log-normal spread of an interval, and the p5 / median / p95 summary of Monte Carlo draws (one implementation
each; sql/marts/installed_base_projection.sql writes Z90/Z80 as literals, bound to these by a test)."""

from __future__ import annotations

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
