"""Vintage backtest: what would the forecasts have said on an earlier date, and were they right?

    vintages(start, end, step_months)            -> the replay dates
    replay(history, vintages, forecaster)        -> one row per (vintage, later disclosure) with the error
    summarise(points)                            -> bias, median |log error|, 80/95% coverage per series + pooled

`history` has series_id, period_start, value and known_on (the date the value became public). At each
vintage the forecaster sees only rows known on or before it and returns forecasts in the engine format
(series_id, period_start, value, lo80, hi80, lo95, hi95, model_name); every row known after the vintage
whose period lies after the series' last known period at the vintage is scored. Errors are on the log
scale (log predicted - log actual: positive = the forecast overshot).
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import numpy as np
import polars as pl

POINT_SCHEMA = {
    "vintage": pl.Date, "series_id": pl.Utf8, "period_start": pl.Date, "known_on": pl.Date,
    "horizon_months": pl.Int64, "actual": pl.Float64, "predicted": pl.Float64, "lo80": pl.Float64,
    "hi80": pl.Float64, "lo95": pl.Float64, "hi95": pl.Float64, "log_error": pl.Float64, "in80": pl.Boolean,
    "in95": pl.Boolean, "model_name": pl.Utf8,
}
POOLED = "(all series)"


def vintages(start: dt.date, end: dt.date, step_months: int = 1) -> list[dt.date]:
    """Month-ends from the month of `start` to `end` (inclusive), `step_months` apart; the last is `end`
    itself when `end` is not a month-end."""
    if step_months < 1:
        raise ValueError("step_months must be at least 1")
    out, y, m = [], start.year, start.month
    while True:
        nxt = dt.date(y + m // 12, m % 12 + 1, 1)
        month_end = nxt - dt.timedelta(days=1)
        if month_end > end:
            break
        if month_end >= start:
            out.append(month_end)
        m += step_months
        y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
    if end >= start and (not out or out[-1] < end):
        out.append(end)
    return out


def replay(history: pl.DataFrame, dates: list[dt.date],
           forecaster: Callable[[pl.DataFrame, dt.date], pl.DataFrame]) -> pl.DataFrame:
    frames = []
    for vintage in dates:
        known = history.filter(pl.col("known_on") <= vintage)
        later = history.filter(pl.col("known_on") > vintage)
        if known.height == 0 or later.height == 0:
            continue
        fc = forecaster(known, vintage)
        if fc.height == 0:
            continue
        last = known.group_by("series_id").agg(pl.col("period_start").max().alias("last"))
        scored = (later.join(last, on="series_id").filter(pl.col("period_start") > pl.col("last"))
                  .join(fc.select("series_id", "period_start", pl.col("value").alias("predicted"), "lo80", "hi80",
                                  "lo95", "hi95", "model_name"), on=["series_id", "period_start"]))
        if scored.height == 0:
            continue
        frames.append(scored.select(
            pl.lit(vintage).alias("vintage"), "series_id", "period_start", "known_on",
            ((pl.col("period_start").dt.year() - pl.col("last").dt.year()) * 12
             + pl.col("period_start").dt.month() - pl.col("last").dt.month()).cast(pl.Int64).alias("horizon_months"),
            pl.col("value").alias("actual"), "predicted", "lo80", "hi80", "lo95", "hi95",
            (pl.col("predicted").log() - pl.col("value").log()).alias("log_error"),
            pl.col("value").is_between(pl.col("lo80"), pl.col("hi80")).alias("in80"),
            pl.col("value").is_between(pl.col("lo95"), pl.col("hi95")).alias("in95"),
            "model_name",
        ))
    if not frames:
        return pl.DataFrame(schema=POINT_SCHEMA)
    return pl.concat(frames).cast(POINT_SCHEMA).sort("vintage", "series_id", "period_start")


def summarise(points: pl.DataFrame) -> pl.DataFrame:
    """Per series and pooled: forecasts scored, vintages, bias (mean log error), median |log error|,
    80% and 95% coverage."""
    aggs = [
        pl.len().alias("n_forecasts"), pl.col("vintage").n_unique().alias("n_vintages"),
        pl.col("vintage").min().alias("first_vintage"), pl.col("vintage").max().alias("last_vintage"),
        pl.col("log_error").mean().alias("bias"), pl.col("log_error").abs().median().alias("median_abs_log_error"),
        pl.col("in80").mean().alias("coverage80"), pl.col("in95").mean().alias("coverage95"),
        pl.col("horizon_months").median().cast(pl.Float64).alias("median_horizon_months"),
    ]
    if points.height == 0:
        return pl.DataFrame(schema={"series_id": pl.Utf8, "n_forecasts": pl.UInt32, "n_vintages": pl.UInt32,
                                    "first_vintage": pl.Date, "last_vintage": pl.Date, "bias": pl.Float64,
                                    "median_abs_log_error": pl.Float64, "coverage80": pl.Float64,
                                    "coverage95": pl.Float64, "median_horizon_months": pl.Float64})
    per_series = points.group_by("series_id").agg(aggs).sort("series_id")
    pooled = points.select(aggs).with_columns(pl.lit(POOLED).alias("series_id"))
    return pl.concat([per_series, pooled.select(per_series.columns)])


def log_scores(points: pl.DataFrame) -> dict[str, float]:
    """The pooled figures as plain numbers (for notes and benches)."""
    if points.height == 0:
        return {"n": 0}
    le = points["log_error"].to_numpy()
    return {"n": int(len(le)), "bias": float(np.mean(le)), "median_abs": float(np.median(np.abs(le))),
            "coverage80": float(points["in80"].mean()), "coverage95": float(points["in95"].mean())}
