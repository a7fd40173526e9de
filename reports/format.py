"""Numbers for humans: 1.3 quadrillion tokens/month, 2.1 M H100e, $48.2 B."""

from __future__ import annotations

import math

_WORDS = [(1e15, "quadrillion"), (1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")]
_SHORT = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")]


def _bad(value) -> bool:
    return value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def words(value: float, digits: int = 2) -> str:
    """3.2e15 -> '3.2 quadrillion'."""
    if _bad(value):
        return "n/a"
    for scale, name in _WORDS:
        if abs(value) >= scale:
            return f"{_sig(value / scale, digits)} {name}"
    return _sig(value, digits)


def short(value: float, digits: int = 2) -> str:
    """2.1e6 -> '2.1 M'."""
    if _bad(value):
        return "n/a"
    for scale, name in _SHORT:
        if abs(value) >= scale:
            return f"{_sig(value / scale, digits)} {name}"
    return _sig(value, digits)


def usd(value: float, digits: int = 3) -> str:
    """4.82e10 -> '$48.2 B'."""
    if _bad(value):
        return "n/a"
    return "$" + short(value, digits)


def pct(value: float, digits: int = 0) -> str:
    if _bad(value):
        return "n/a"
    text = f"{value * 100:.{digits}f}%"
    # a tiny negative rounds to "-0%": show it as the zero it reads as
    return text[1:] if text.startswith("-") and float(text[1:-1]) == 0 else text


def _sig(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    magnitude = int(math.floor(math.log10(abs(value))))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:,.{decimals}f}"


def tokens_per_day(value: float) -> str:
    return f"{words(value)} tokens/day"


def tokens_per_month(value_per_day: float) -> str:
    return f"{words(value_per_day * 365.25 / 12)} tokens/month"


def power_mw(value: float) -> str:
    """33,000 MW -> '33 GW'."""
    if _bad(value):
        return "n/a"
    return f"{_sig(value / 1000, 2)} GW" if abs(value) >= 1000 else f"{_sig(value, 2)} MW"


def plain(value, unit: str = "") -> str:
    """A table number without scientific notation: years as years (2028, not 2.03e+03), whole numbers with
    thousands separators (1,979), large values shortened (2.5 M), small ones to three significant digits."""
    if _bad(value):
        return "n/a"
    value = float(value)
    if "year" in unit.lower() and value.is_integer() and 1900 <= value <= 2200:
        return f"{int(value)}"
    if abs(value) >= 1e6:
        return short(value, 3)
    if value.is_integer():
        return f"{int(value):,}"
    return _sig(value, 3)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month_label(day) -> str:
    """2028-12-01 -> 'Dec 2028'."""
    return f"{MONTHS[day.month - 1]} {day.year}"


def quarter_label(day) -> str:
    """2028-10-01 -> '2028 Q4'."""
    return f"{day.year} Q{(day.month - 1) // 3 + 1}"
