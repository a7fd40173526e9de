"""tokens2chips forecasting engine: a pure library (polars in, polars out; statsmodels underneath).

    forecasts.forecast(history, horizon, freq, levels=(80, 95), seed=0, workers=None)
    forecasts.backtest(history, horizon, freq, levels=(80, 95), seed=0, workers=None)
    forecasts.run(...)      -> ForecastResult(forecast, backtest, selection)

Composite series (global demand, its segments) are summed from joint draws: forecasts.demand.compose_draws.

`history` has columns series_id, period_start, value (one row per observed period, gaps allowed);
`freq` is one of D, W, M, Q, Y.
"""

from __future__ import annotations

import polars as pl

from forecasts.engine import EngineConfig, ForecastResult, run
from forecasts.grid import FREQS

__all__ = ["forecast", "backtest", "run", "EngineConfig", "ForecastResult", "FREQS"]


def forecast(history: pl.DataFrame, horizon: int, freq: str, levels=(80, 95), seed: int = 0,
             workers: int | None = None, config: EngineConfig | None = None) -> pl.DataFrame:
    """The `horizon` future periods of each series: series_id, period_start, value (the predictive
    median), lo/hi per level, model_name (chosen by backtest)."""
    return run(history, horizon, freq, levels, seed, workers, config).forecast


def backtest(history: pl.DataFrame, horizon: int, freq: str, levels=(80, 95), seed: int = 0,
             workers: int | None = None, config: EngineConfig | None = None) -> pl.DataFrame:
    """Per-origin backtest errors of every candidate model, in long format."""
    return run(history, horizon, freq, levels, seed, workers, config).backtest
