"""Regular time grids for the frequencies the engine supports (D, W, M, Q, Y)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

FREQS = ("D", "W", "M", "Q", "Y")
# season length used by seasonal candidates; None = no season
SEASON = {"D": 7, "W": 52, "M": 12, "Q": 4, "Y": None}
_INTERVAL = {"D": "1d", "W": "1w", "M": "1mo", "Q": "3mo", "Y": "1y"}


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS}, got {freq!r}")
    return freq


def snap(dates: pl.Expr, freq: str) -> pl.Expr:
    """Snap dates to the start of their period (weeks keep their own weekday anchor)."""
    if freq == "M":
        return dates.dt.truncate("1mo")
    if freq == "Q":
        return dates.dt.truncate("1q")
    if freq == "Y":
        return dates.dt.truncate("1y")
    return dates


def date_range(start: dt.date, n: int, freq: str) -> list[dt.date]:
    """`n` consecutive period starts beginning at `start`."""
    if n <= 0:
        return []
    if freq == "D":
        return [start + dt.timedelta(days=i) for i in range(n)]
    if freq == "W":
        return [start + dt.timedelta(weeks=i) for i in range(n)]
    months = {"M": 1, "Q": 3, "Y": 12}[freq]
    out = []
    for i in range(n):
        total = start.month - 1 + i * months
        out.append(dt.date(start.year + total // 12, total % 12 + 1, 1))
    return out


def period_index(start: dt.date, dates: list[dt.date], freq: str) -> np.ndarray:
    """Integer position of each date on the grid that starts at `start`."""
    if freq == "D":
        return np.array([(d - start).days for d in dates])
    if freq == "W":
        days = np.array([(d - start).days for d in dates])
        if np.any(days % 7):
            raise ValueError("weekly series must have period_start dates 7 days apart")
        return days // 7
    months = {"M": 1, "Q": 3, "Y": 12}[freq]
    return np.array([((d.year - start.year) * 12 + d.month - start.month) // months for d in dates])
