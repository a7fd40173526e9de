"""Composite series (e.g. global inference demand) as the sum of component forecasts, by simulation."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import norm

from forecasts.engine import _seed_for


def compose(
    forecasts: pl.DataFrame,
    components: list[str],
    series_id: str,
    levels: tuple[int, ...] = (80, 95),
    draws: int = 4000,
    seed: int = 0,
) -> pl.DataFrame:
    """Sum of `components` per period where every component has a forecast.

    Each component's predictive distribution per period is log-normal when its interval is
    multiplicative around the median (log-scale models) and normal otherwise, recovered from its
    median and 95% interval. Components are drawn independently (the platforms are distinct
    businesses; the interval would be wider if their errors moved together). Returns rows in the
    forecast format with model_name 'composite'.
    """
    missing = sorted(set(components) - set(forecasts["series_id"].unique().to_list()))
    if missing:
        raise ValueError(f"composite {series_id!r}: no forecast for component(s) {missing}")
    parts = forecasts.filter(pl.col("series_id").is_in(components))
    common = (parts.group_by("period_start").agg(pl.col("series_id").n_unique().alias("n"))
              .filter(pl.col("n") == len(components)).sort("period_start")["period_start"])
    if common.len() == 0:
        raise ValueError(f"composite {series_id!r}: the components' forecasts share no period")
    parts = parts.filter(pl.col("period_start").is_in(common.implode())).sort("series_id", "period_start")
    rng = np.random.default_rng(_seed_for(seed, series_id))
    z95 = norm.ppf(0.975)
    total = np.zeros((draws, common.len()))
    for (_,), part in parts.group_by("series_id", maintain_order=True):
        med, lo, hi = (part[c].to_numpy() for c in ("value", "lo95", "hi95"))
        eps = rng.standard_normal((draws, len(med)))
        lognormal = np.all(lo > 0)
        if lognormal:
            sigma = (np.log(hi) - np.log(lo)) / (2 * z95)
            total += med * np.exp(sigma * eps)
        else:
            total += np.maximum(med + (hi - lo) / (2 * z95) * eps, 0.0)
    out = {"series_id": [series_id] * common.len(), "period_start": common.to_list(),
           "value": np.median(total, axis=0)}
    for level in sorted(levels):
        out[f"lo{level}"] = np.quantile(total, 0.5 - level / 200, axis=0)
        out[f"hi{level}"] = np.quantile(total, 0.5 + level / 200, axis=0)
    out["model_name"] = ["composite"] * common.len()
    return pl.DataFrame(out)
