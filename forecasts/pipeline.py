"""The forecasting run as the pipeline makes it, from the validated configuration: which series the engine,
the pooled demand curve and the composites fit, with what settings, how forecasts are bounded, and the vintage
backtest. Pure: polars frames and the validated, typed configuration (configuration.schema.Assumptions, the
`model` of configuration.assumptions.Configuration) in, polars frames out (assets/forecast.py writes them;
benches and tests call these directly)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl

import forecasts
from forecasts.bounds import apply_outlooks, cap_growth
from forecasts.demand import DemandConfig, compose_draws, fit_demand, monthly_to_weekly
from forecasts.grid import date_range
from forecasts.vintage import POOLED, replay, summarise, vintages
from hardware.stats import log_sigma, sigma  # interval -> s.d., shared with the hardware model (pure too)

if TYPE_CHECKING:
    from configuration.schema import Assumptions, Composite

# series families damped when sparse (forecast.sparse_max_growth)
GROWTH_CAPPED = ("shipments_h100e/", "revenue/", "packaging_revenue/")
FORECAST_COLUMNS = ["series_id", "period_start", "value", "lo80", "hi80", "lo95", "hi95", "model_name"]
FLAG_SCHEMA = {"series_id": pl.Utf8, "flag": pl.Utf8, "message": pl.Utf8}

def horizon_for(last_period: dt.date, freq: str, end: dt.date) -> int:
    """Periods after `last_period` until the period that contains `end`."""
    n = 0
    while True:
        nxt = date_range(last_period, n + 2, freq)[-1]
        if nxt > end:
            return n
        n += 1


def composite_specs(config: Assumptions) -> list[Composite]:
    """The global-demand composite plus any further composites of the forecast section."""
    return [config.forecast.global_demand, *config.forecast.composites]


def engine_config(config: Assumptions) -> forecasts.EngineConfig:
    """The per-series engine's settings from config/assumptions.yaml (forecast)."""
    return forecasts.EngineConfig(
        max_origins=int(config.forecast.backtest_origins.point),
        min_backtest_obs=int(config.forecast.min_backtest_obs.point),
        fallback_sigma_per_year=config.forecast.fallback_sigma_per_year.point,
        sparse_irregular_sd=config.forecast.sparse_irregular_sd.point,
        sparse_slope_sd_per_year=config.forecast.sparse_slope_sd_per_year.point,
        sparse_growth_halflife_years=config.forecast.sparse_growth_halflife_years.point,
    )


def panel_prefix(config: Assumptions) -> str:
    """Series ids of the dense OpenRouter panel (weekly top-10 volume by origin)."""
    return config.forecast.demand.panel_prefix


def horizon_end(config: Assumptions) -> dt.date:
    return dt.date(int(config.forecast.horizon_end_year.point), 12, 31)


def demand_config(config: Assumptions, draws: int | None = None) -> DemandConfig:
    """The pooled demand model's settings from config/assumptions.yaml (forecast.demand)."""
    d = config.forecast.demand
    prior = d.growth_prior
    return DemandConfig(
        halflife_low=d.halflife_years.low, halflife_high=d.halflife_years.high,
        growth_prior=prior.value, growth_prior_sd=float(sigma(prior.low, prior.high)),
        sigma_low=d.disclosure_noise.low, sigma_high=d.disclosure_noise.high,
        tau_low=d.growth_spread.low, tau_high=d.growth_spread.high,
        sigma_prior=d.disclosure_noise.value, tau_prior=d.growth_spread.value,
        draws=draws or int(config.forecast.composite_draws.point),
        anchor_halflife=d.anchor_halflife_years.value,
    )


def hierarchy(config: Assumptions) -> list[dict]:
    """forecast.hierarchy as the pooled model's reconciliation takes it (forecasts.demand.fit_demand)."""
    return [entry.model_dump() for entry in config.forecast.hierarchy]


def pooled_series(config: Assumptions) -> set[str]:
    """Token series the pooled model must forecast jointly: composite components, hierarchy members and the
    hardware segments' demand series."""
    out = {c for spec in composite_specs(config) for c in spec.components}
    for entry in config.forecast.hierarchy:
        out |= {entry.total, *entry.parts}
    for seg in config.segments.values():
        out |= {seg.demand_series, seg.demand_fallback, seg.disclosed_series} - {None}
    return out


def split_history(history: pl.DataFrame, config: Assumptions) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(token disclosures, the dense OpenRouter panel as monthly tokens/day per series, everything else).

    The panel (weekly top-10 volume by origin) joins the pooled demand model as members in tokens/day
    (the monthly mean of its weeks / 7); their forecasts go back to weeks in tokens/week (weekly_rows)."""
    prefix = panel_prefix(config)
    is_panel = pl.col("series_id").str.starts_with(prefix)
    # dense token series (a platform's own monthly or daily volumes) go to the engine, unless the pooled
    # model's joint draws need them (composites, hierarchy, hardware segments)
    dense_min = int(config.forecast.dense_min_points.point)
    counts = (history.filter(pl.col("series_id").str.starts_with("tokens/") & (pl.col("value") > 0))
              .group_by("series_id").agg(pl.col("period_start").dt.truncate("1mo").n_unique().alias("n")))
    dense = set(counts.filter(pl.col("n") >= dense_min)["series_id"].to_list()) - pooled_series(config)
    is_token = pl.col("series_id").str.starts_with("tokens/") & ~pl.col("series_id").is_in(sorted(dense))
    tokens = history.filter(is_token)
    panel = (history.filter(is_panel)
             .group_by("series_id", pl.col("period_start").dt.truncate("1mo"))
             .agg((pl.col("value").mean() / 7).alias("value")))
    return tokens, panel, history.filter(~is_token & ~is_panel)


def fit_tokens(history: pl.DataFrame, config: Assumptions, draws: int | None = None, seed: int = 0):
    """The pooled demand model on the token series and the OpenRouter panel of `history`
    (model_inputs.forecast_history rows)."""
    tokens, panel, _ = split_history(history, config)
    if tokens.height == 0 and panel.height == 0:
        return None
    # the panel's total informs the common curve; its per-origin series are satellites (top-10 churn)
    total = (panel.group_by("period_start").agg(pl.col("value").sum())
             .with_columns(pl.lit("panel/openrouter_top10_total").alias("series_id")))
    # estimated series (revenue / price per token) follow the curve without shaping it, with the price's
    # range as a level uncertainty
    is_estimated = pl.col("series_id").str.contains("_estimated/")
    members = tokens.filter(~is_estimated).select("series_id", "period_start", "value")
    satellites = pl.concat([panel.select("series_id", "period_start", "value"),
                            tokens.filter(is_estimated).select("series_id", "period_start", "value")])
    if members.height == 0:  # no disclosure yet: the panel's total carries the curve
        members, total = total.select("series_id", "period_start", "value"), None
    if members.height == 0:
        return None
    level_sd = {}
    for platform, spec in config.forecast.estimated_components.items():
        # the method's assumption range (price per token, or tokens per unit of usage) as a level uncertainty
        leaf = spec.usd_per_million_tokens or spec.tokens_per_unit
        level_sd[f"tokens/{platform}_estimated/all"] = float(log_sigma(leaf.low, leaf.high))
    return fit_demand(members, horizon_end(config), hierarchy=hierarchy(config),
                      panel=total, satellites=satellites, seed=seed, config=demand_config(config, draws),
                      level_sd=level_sd)


def weekly_rows(fit, history: pl.DataFrame, config: Assumptions) -> pl.DataFrame:
    """The panel members' forecasts as weeks in tokens/week: every week after the last observed one, the
    forecast of its month (tokens/day) x 7."""
    weekly = history.filter(pl.col("series_id").str.starts_with(panel_prefix(config)))
    if weekly.height == 0:
        return pl.DataFrame()
    end = horizon_end(config)
    frames = []
    for (sid,), part in weekly.group_by("series_id"):
        if sid not in fit.draws:
            continue
        last = part["period_start"].max()
        weeks = [last + dt.timedelta(weeks=k) for k in range(1, (end - last).days // 7 + 1)]
        frames.append(monthly_to_weekly(fit, sid, weeks))
    return pl.concat(frames) if frames else pl.DataFrame()


def composites(fit, config: Assumptions) -> tuple[pl.DataFrame, list[dict]]:
    """Every configured composite from the joint draws; partial composites are flagged."""
    frames, flags = [], []
    for spec in composite_specs(config):
        frame, missing = compose_draws(fit, spec.components, spec.series_id)
        if missing:
            flags.append({"series_id": spec.series_id, "flag": "partial_composite",
                          "message": f"{spec.series_id} is partial: no disclosure of {', '.join(missing)} "
                                     f"in this data vintage; it sums {len(spec.components) - len(missing)} of "
                                     f"{len(spec.components)} components"})
        if frame.height:
            frames.append(frame)
    return (pl.concat(frames) if frames else pl.DataFrame()), flags


def segment_flags(config: Assumptions, series: set[str]) -> list[dict]:
    """Segments whose demand series has no forecast in this vintage fall back to `demand_fallback`."""
    flags = []
    for segment, spec in config.segments.items():
        if spec.demand_series in series:
            continue
        fallback = spec.demand_fallback
        message = (f"segment '{segment}': no forecast of {spec.demand_series} in this data vintage; "
                   + (f"sized from {fallback} instead (a lower bound)" if fallback in series
                      else "no fallback series either"))
        flags.append({"series_id": spec.demand_series, "flag": "segment_demand_fallback", "message": message})
    return flags


def engine_forecasts(series: pl.DataFrame, config: Assumptions, workers: int | None = None) -> list:
    """The per-series engine on `series` (series_id, freq, period_start, value), one run per frequency, to the
    configured horizon."""
    end = horizon_end(config)
    cfg = engine_config(config)
    results = []
    for (freq,), part in series.group_by("freq", maintain_order=True):
        last = part.group_by("series_id").agg(pl.col("period_start").max())["period_start"].min()
        horizon = horizon_for(last, freq, end)
        if horizon < 1:
            continue
        res = forecasts.run(part.select("series_id", "period_start", "value"), horizon, freq,
                            workers=workers, config=cfg)
        res.forecast = res.forecast.filter(pl.col("period_start") <= end)
        results.append(res)
    return results


def bounded(forecast: pl.DataFrame, history: pl.DataFrame, config: Assumptions) -> tuple[pl.DataFrame, list[dict]]:
    """forecasts.bounds.cap_growth with the configured limits (sparse shipment and revenue series)."""
    return cap_growth(forecast, history.select("series_id", "period_start", "value"), GROWTH_CAPPED,
                      config.forecast.sparse_max_growth.point, 3.0, int(config.forecast.dense_min_points.point))


def run_forecasts(history: pl.DataFrame, config: Assumptions, workers: int | None = None,
                  outlooks: pl.DataFrame | None = None) -> forecasts.ForecastResult:
    """Fit every series of model_inputs.forecast_history to the configured horizon: token disclosures with the
    pooled demand model (reconciled, composites drawn jointly), the other series with the per-series
    engine. Pure function of its inputs (used by the asset and the tests); `result.flags` lists partial
    composites and segment fallbacks."""
    end = horizon_end(config)
    _, _, dense = split_history(history, config)
    results = engine_forecasts(dense, config, workers)
    fc = [r.forecast for r in results]
    selection = [r.selection for r in results]
    flags: list[dict] = []
    # sparse shipment and revenue series: no more than forecast.sparse_max_growth over three years
    if fc:
        capped, flags = bounded(pl.concat([f.select(FORECAST_COLUMNS) for f in fc], how="vertical_relaxed"),
                                dense, config)
        fc = [capped]
    # published outlooks (data/market_outlooks.csv) pull the forecast of their series and year
    if outlooks is not None and outlooks.height and fc:
        moved, outlook_flags = apply_outlooks(pl.concat([f.select(FORECAST_COLUMNS) for f in fc], how="vertical_relaxed"),
                                              outlooks, dense.select("series_id", "period_start", "value"))
        fc, flags = [moved], flags + outlook_flags
    fit = fit_tokens(history, config)
    if fit is not None:
        fc.append(fit.forecast.filter(~pl.col("series_id").str.starts_with(panel_prefix(config))))
        weeks = weekly_rows(fit, history, config)
        if weeks.height:
            fc.append(weeks)
        selection.append(fit.selection.with_columns(pl.lit(True).alias("log_scale"), pl.lit(0).alias("n_origins"),
                                                    pl.lit(1.0).alias("interval_scale"), pl.lit("").alias("warnings")))
        comp, comp_flags = composites(fit, config)
        flags += comp_flags
        if comp.height:
            fc.append(comp)
        for spec in composite_specs(config):
            if spec.series_id in set(comp["series_id"].to_list() if comp.height else []):
                partial = [f for f in flags if f["series_id"] == spec.series_id]
                selection.append(pl.DataFrame([{
                    "series_id": spec.series_id, "model_name": "composite", "n_obs": 0, "n_origins": 0,
                    "interval_scale": 1.0, "log_scale": True, "warnings": "",
                    "reason": ("sum of " + ", ".join(spec.components) + " (config/assumptions.yaml forecast "
                               "composites), joint draws of the pooled demand model (correlated through the "
                               "common growth rate); periods where every available component is forecast"
                               + ("; PARTIAL: " + partial[0]["message"] if partial else "")),
                }]))
    forecast = pl.concat([f.select(FORECAST_COLUMNS) for f in fc], how="vertical_relaxed").filter(pl.col("period_start") <= end)
    schema = forecasts.engine.SELECTION_SCHEMA
    selection = pl.concat(selection, how="diagonal_relaxed").select(list(schema)).cast(schema)
    flags += segment_flags(config, set(forecast["series_id"].unique().to_list()))
    return forecasts.ForecastResult(
        forecast=forecast, selection=selection,
        backtest=pl.concat([r.backtest for r in results]) if results else pl.DataFrame(schema=forecasts.engine.BACKTEST_SCHEMA),
        flags=pl.DataFrame(flags, schema=FLAG_SCHEMA), demand_summary=fit.summary if fit is not None else {})


def vintage_backtest(history: pl.DataFrame, config: Assumptions, as_of: dt.date, start: dt.date | None = None,
                     end: dt.date | None = None, step_months: int | None = None,
                     draws: int = 1000) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replay the token forecasts of every vintage and score them against later disclosures:
    (per-point errors, per-series + pooled summary). Only data known on `as_of` take part."""
    spec = config.forecast.vintage_backtest
    start = start or dt.date.fromisoformat(spec.start)
    end = min(end or as_of, as_of)
    step = step_months or spec.step_months
    known = history.filter(pl.col("known_on") <= as_of)
    tokens, _, _ = split_history(known, config)
    weekly = known.filter(pl.col("series_id").str.starts_with(panel_prefix(config)))

    def forecaster(rows: pl.DataFrame, vintage: dt.date) -> pl.DataFrame:
        vintage_history = pl.concat([rows.drop("known_on"),
                                     weekly.filter(pl.col("known_on") <= vintage).select(rows.drop("known_on").columns)])
        fit = fit_tokens(vintage_history, config, draws=draws)
        return fit.forecast if fit is not None else pl.DataFrame()

    # estimates (revenue / price) are not disclosures: they are neither scored nor used
    tokens = tokens.filter(~pl.col("series_id").str.contains("_estimated/"))
    points = replay(tokens.select("series_id", "freq", "period_start", "value", "unit", "known_on"),
                    vintages(start, end, step), forecaster)
    # the supply side: shipment and revenue vintages through the engine and its bounds, every quarter
    supply_points = supply_vintages(known, config, start, end)
    summary = summarise(points)
    if supply_points.height:
        supply = summarise(supply_points).with_columns(
            pl.when(pl.col("series_id") == POOLED).then(pl.lit(SUPPLY_POOLED)).otherwise(pl.col("series_id"))
            .alias("series_id"))
        summary = pl.concat([summary, supply.select(summary.columns)], how="vertical_relaxed")
        points = pl.concat([points, supply_points.select(points.columns)], how="vertical_relaxed")
    return points, summary


# the supply series the vintage backtest replays (Nvidia's data-center revenue, Epoch AI's shipments by designer)
SUPPLY_VINTAGE_SERIES = ("revenue/Nvidia/data_center", "shipments_h100e/")
SUPPLY_POOLED = "(supply series)"


def supply_vintages(known: pl.DataFrame, config: Assumptions, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Replay the per-series engine (with forecasts/bounds' growth cap) on the supply series known at each
    quarter-end vintage and score its forecasts against the values published later."""
    supply = known.filter(pl.any_horizontal(*[pl.col("series_id").str.starts_with(p) for p in SUPPLY_VINTAGE_SERIES]))
    if supply.height == 0:
        return pl.DataFrame()
    def forecaster(rows: pl.DataFrame, vintage: dt.date) -> pl.DataFrame:
        out = [r.forecast.select(FORECAST_COLUMNS) for r in engine_forecasts(rows, config, workers=1)]
        return bounded(pl.concat(out), rows, config)[0] if out else pl.DataFrame()

    return replay(supply.select("series_id", "freq", "period_start", "value", "unit", "known_on"),
                  vintages(start, end, 3), forecaster)
