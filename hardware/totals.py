"""Totals per Monte Carlo draw, then summarised (pure library): the fleet's scenario totals and cost per
token. A sum of per-row medians is not the median of the total when draws are correlated (one demand draw
moves every chip), so every total here is summed within each draw first.

    fleet_totals  marts.fleet_totals: per quarter, scenario and segment ('all' = every segment)
    token_cost    marts.token_cost: cost per million tokens per quarter, scenario, chip class and phase
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from hardware.roofline import Chip
from hardware.stats import row_medians, row_percentiles, stack_draws

if TYPE_CHECKING:
    from configuration.schema import Composite, EstimatedComponent, Segment


def _p(prefix: str, values) -> dict:
    v = np.atleast_1d(np.asarray(values, dtype=float))
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {f"{prefix}_p5": None, f"{prefix}_median": None, f"{prefix}_p95": None}
    return {f"{prefix}_p5": float(np.percentile(v, 5)), f"{prefix}_median": float(np.median(v)),
            f"{prefix}_p95": float(np.percentile(v, 95))}


def _p_rows(prefix: str, values: list, draws: int) -> dict[str, np.ndarray]:
    """_p of many rows at once (NaN where _p gives None): {prefix_p5, prefix_median, prefix_p95: column}."""
    p5, median, p95 = row_percentiles(stack_draws(values, draws))
    return {f"{prefix}_p5": p5, f"{prefix}_median": median, f"{prefix}_p95": p95}


TOTAL_MEASURES = ("chips", "h100e", "power_mw", "capex_usd", "bought_chips", "bought_capex_usd",
                  "installed_inference_chips", "chips_in_use", "installed_utilisation", "demand_tokens_per_day",
                  "served_by_installed_share", "shortfall_tokens_per_day")


def fleet_totals(rows: list[dict], flows: list[dict], chips: dict[str, Chip], pue: np.ndarray) -> pl.DataFrame:
    """marts.fleet_totals: per quarter, scenario and segment (and 'all'), every total summed within each Monte
    Carlo draw and then summarised (p5 / median / p95 of the per-draw totals): the fleet serving demand
    (chips, H100e, MW, capex of installed chips in use plus chips bought), what is bought, the installed
    inference chips and their utilisation, the share of demand the installed base serves, and the shortfall."""
    acc: dict[tuple, dict[str, np.ndarray]] = {}

    def bucket(period, scenario, segment):
        return acc.setdefault((period, scenario, segment), {})

    def add(keys, name, value):
        for k in keys:
            b = bucket(*k)
            b[name] = b.get(name, 0.0) + value

    for r in rows:
        chip = chips[r["chip"]]
        keys = dict.fromkeys([(r["period_start"], r["scenario"], r["segment"]), (r["period_start"], r["scenario"], "all")])
        n = r["chips"]
        add(keys, "chips", n)
        add(keys, "h100e", n * (chip.h100e or 0.0))
        add(keys, "power_mw", n * (chip.tdp_w or 0.0) * pue / 1e6)
        add(keys, "capex_usd", n * (chip.unit_price_usd or 0.0))
        add(keys, "bought_chips", r["bought"])
        add(keys, "bought_capex_usd", r["bought"] * (chip.unit_price_usd or 0.0))
    for f in flows:
        keys = dict.fromkeys([(f["period_start"], f["scenario"], f["segment"]), (f["period_start"], f["scenario"], "all")])
        if f["chip"] is None:  # one record per quarter, scenario and segment: its shortfall and demand
            add(keys, "shortfall_tokens_per_day", f["shortfall_tokens_per_day"])
            add(keys, "demand_tokens_per_day", f["demand_tokens_per_day"])
            continue
        add(keys, "installed_inference_chips", f["installed"])
        add(keys, "chips_in_use", f["used"])
        add(keys, "served_tokens_per_day", f["served_tokens_per_day"])
    for b in acc.values():
        installed = b.get("installed_inference_chips", 0.0)
        demand = b.get("demand_tokens_per_day", 0.0)
        b["installed_utilisation"] = np.where(np.asarray(installed) > 0,
                                              np.asarray(b.get("chips_in_use", 0.0)) / np.maximum(installed, 1e-300),
                                              np.nan)
        b["served_by_installed_share"] = np.where(np.asarray(demand) > 0, np.asarray(b.get("served_tokens_per_day", 0.0))
                                                  / np.maximum(demand, 1e-300), np.nan)
    keys = list(acc)
    columns = {"period_start": [k[0] for k in keys], "scenario": [k[1] for k in keys], "segment": [k[2] for k in keys]}
    for name in TOTAL_MEASURES:
        columns.update(_p_rows(name, [acc[k].get(name, 0.0) for k in keys], pue.shape[0]))
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "segment": pl.Utf8,
              **{f"{n}_{s}": pl.Float64 for n in TOTAL_MEASURES for s in ("p5", "median", "p95")}}
    out = pl.DataFrame(columns, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))
    return out.sort("period_start", "scenario", "segment")


def token_cost(rows: list[dict], chips: dict[str, Chip], samples: dict[str, np.ndarray]) -> pl.DataFrame:
    """marts.token_cost: per quarter, scenario, chip class and phase, the day's cost of the chips serving the
    load (installed chips in use and chips bought: amortised capex = price / service life, plus energy = TDP x
    PUE x 24 h x electricity price) over the tokens they process, per draw; then the median (the unsuffixed
    columns) and p5/p95 of cost per million tokens. Prefill tokens exclude prompt tokens served from the prefix
    cache."""
    daily_capex = 1.0 / (samples["installed_base.service_life_years"] * 365.25)
    energy = 24.0 / 1e6 * samples["fleet.electricity_usd_per_mwh"] * samples["fleet.pue"]  # USD per W-day
    acc: dict[tuple, list] = {}
    for r in rows:
        chip = chips[r["chip"]]
        cost = r["chips"] * ((chip.unit_price_usd or 0.0) * daily_capex + (chip.tdp_w or 0.0) * energy)
        key = (r["period_start"], r["scenario"], chip.chip_class, r["phase"])
        got = acc.setdefault(key, [0.0, 0.0])
        got[0] = got[0] + cost
        got[1] = got[1] + r["tokens_per_day"]
    keys = list(acc)
    draws = samples["fleet.pue"].shape[0]
    cost = stack_draws([acc[k][0] for k in keys], draws)
    tokens = stack_draws([acc[k][1] for k in keys], draws)
    per_million = np.where(tokens > 0, cost / np.where(tokens > 0, tokens, 1.0) * 1e6, np.nan)
    stats = _p_rows("usd_per_million_tokens", list(per_million), draws)
    out = {"period_start": [k[0] for k in keys], "scenario": [k[1] for k in keys], "chip_class": [k[2] for k in keys],
           "phase": [k[3] for k in keys], "tokens_per_day": row_medians(tokens), "cost_usd_per_day": row_medians(cost),
           "usd_per_million_tokens": stats["usd_per_million_tokens_median"],
           "usd_per_million_tokens_p5": stats["usd_per_million_tokens_p5"],
           "usd_per_million_tokens_p95": stats["usd_per_million_tokens_p95"]}
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "chip_class": pl.Utf8, "phase": pl.Utf8,
              "tokens_per_day": pl.Float64, "cost_usd_per_day": pl.Float64, "usd_per_million_tokens": pl.Float64,
              "usd_per_million_tokens_p5": pl.Float64, "usd_per_million_tokens_p95": pl.Float64}
    return (pl.DataFrame(out, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))
            .sort("period_start", "scenario", "chip_class", "phase"))


def demand_reconciliation(records: list[dict], demand: pl.DataFrame, segments: dict[str, Segment],
                          estimated: dict[str, EstimatedComponent], composites: list[Composite], share: float,
                          busy: tuple[float, float, float]) -> pl.DataFrame:
    """marts.demand_reconciliation: per quarter, scenario and segment (one region each), what the installed
    base's inference share can serve against the demand counted.

    capacity      tokens/day the installed chips' inference share serves at full use on the segment's model mix
                  (calibrated rates, the fleet's peak and headroom overheads), summed per draw
    disclosed     the segment's disclosed series (`disclosed_series`, else its demand series), median
    estimated     the estimated components of its demand series (revenue / price, usage x tokens per unit),
                  medians by demand class
    utilisation   counted demand / capacity per draw (p5/median/p95); disclosed-only is the lower bound
    residual      capacity x busy share - counted demand (median of per-draw values): capacity the counted demand
                  does not fill at the busy share public statements support (positive), or demand beyond it
    implied_inference_share  the inference share at which the counted demand would keep the installed base
                  busy at that share: the gap expressed as a training share
    `busy` = (low, value, high) of supply.inference_busy_share; `share` the inference share's point value."""
    by_series = {}
    for r in demand.select("period_start", "series_id", "value").iter_rows(named=True):
        by_series[(r["period_start"], r["series_id"])] = r["value"]
    components = {c.series_id: list(c.components) for c in composites}
    cls = {f"tokens/{p}_estimated/all": spec.demand_class for p, spec in estimated.items()}
    acc: dict[tuple, dict] = {}
    for f in records:
        key = (f["period_start"], f["scenario"], f["segment"])
        b = acc.setdefault(key, {"capacity": 0.0, "chips": 0.0, "demand": None})
        if f["chip"] is None:
            b["demand"] = f["demand_tokens_per_day"]
        else:
            b["capacity"] = b["capacity"] + f["capacity_tokens_per_day"]
    out = []
    low, value, high = busy
    for (period, scenario, segment), b in acc.items():
        spec = segments[segment]
        total_series = spec.demand_series
        disclosed_series = spec.disclosed_series or total_series
        demand_draws = np.asarray(b["demand"], dtype=float)
        capacity = np.asarray(b["capacity"], dtype=float) * np.ones_like(demand_draws)
        disclosed = by_series.get((period, disclosed_series))
        fallback = (period, total_series) not in by_series  # a vintage sized from the fallback series
        parts = [s for s in components.get(total_series, []) if s in cls] if not fallback else []
        by_class: dict[str, float] = {}
        for s in parts:
            v = by_series.get((period, s))
            if v is not None:
                by_class[cls[s]] = by_class.get(cls[s], 0.0) + v
        util = np.where(capacity > 0, demand_draws / np.maximum(capacity, 1e-300), np.nan)
        u = _p("utilisation", util)
        median_util = u["utilisation_median"]
        residual = capacity * value - demand_draws
        status = ("no installed base" if median_util is None else
                  "short: counted demand exceeds the capacity" if median_util > 1 else
                  "within the busy range" if median_util >= low else
                  "gap: capacity exceeds the counted demand")
        out.append({
            "period_start": period, "scenario": scenario, "segment": segment, "region": spec.region,
            **_p("capacity_tokens_per_day", capacity),
            "disclosed_tokens_per_day": disclosed,
            "estimated_tokens_per_day": float(sum(by_class.values())) if by_class else 0.0,
            "estimated_by_class": "; ".join(f"{k} {v / 1e12:.1f}T" for k, v in sorted(by_class.items())) or None,
            "demand_tokens_per_day_median": float(np.median(demand_draws)),
            **u,
            "utilisation_disclosed_only_median": (float(np.median(disclosed / capacity[capacity > 0]))
                                                  if disclosed and np.any(capacity > 0) else None),
            "busy_share_low": low, "busy_share": value, "busy_share_high": high,
            "residual_tokens_per_day_median": float(np.median(residual)),
            "inference_share": share, "training_share": 1.0 - share,
            "implied_inference_share_median": (share * median_util / value) if median_util is not None else None,
            "status": status,
        })
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "segment": pl.Utf8, "region": pl.Utf8,
              "capacity_tokens_per_day_p5": pl.Float64, "capacity_tokens_per_day_median": pl.Float64,
              "capacity_tokens_per_day_p95": pl.Float64, "disclosed_tokens_per_day": pl.Float64,
              "estimated_tokens_per_day": pl.Float64, "estimated_by_class": pl.Utf8,
              "demand_tokens_per_day_median": pl.Float64, "utilisation_p5": pl.Float64,
              "utilisation_median": pl.Float64, "utilisation_p95": pl.Float64,
              "utilisation_disclosed_only_median": pl.Float64, "busy_share_low": pl.Float64, "busy_share": pl.Float64,
              "busy_share_high": pl.Float64, "residual_tokens_per_day_median": pl.Float64,
              "inference_share": pl.Float64, "training_share": pl.Float64,
              "implied_inference_share_median": pl.Float64, "status": pl.Utf8}
    return pl.DataFrame(out, schema=schema).sort("period_start", "scenario", "segment")
