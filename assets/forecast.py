"""Forecast assets: staging.forecast_history -> forecasts library -> marts.forecast, marts.forecast_backtest,
marts.forecast_selection (written together in one transaction)."""

import datetime as dt

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

import forecasts
from assets.assumptions import load_assumptions
from assets.ingest import POOL
from assets.resources import ProjectSettings
from assets.warehouse import replace_tables_from_frames
from forecasts.grid import date_range

FORECAST = dg.AssetKey(["marts", "forecast"])
BACKTEST = dg.AssetKey(["marts", "forecast_backtest"])
SELECTION = dg.AssetKey(["marts", "forecast_selection"])


def _assumption(config: dict, name: str) -> float:
    return float(config["forecast"][name]["value"])


def horizon_for(last_period: dt.date, freq: str, end: dt.date) -> int:
    """Periods after `last_period` until the period that contains `end`."""
    n = 0
    while True:
        nxt = date_range(last_period, n + 2, freq)[-1]
        if nxt > end:
            return n
        n += 1


def composite_specs(config: dict) -> list[dict]:
    """The global-demand composite plus any further composites of the forecast section."""
    return [config["forecast"]["global_demand"], *config["forecast"].get("composites", [])]


def run_forecasts(history: pl.DataFrame, config: dict, workers: int | None = None) -> forecasts.ForecastResult:
    """Fit every series of staging.forecast_history, per frequency, to the configured horizon, and add the
    global-demand composite. Pure function of its inputs (used by the asset and the tests)."""
    end = dt.date(int(_assumption(config, "horizon_end_year")), 12, 31)
    cfg = forecasts.EngineConfig(
        max_origins=int(_assumption(config, "backtest_origins")),
        min_backtest_obs=int(_assumption(config, "min_backtest_obs")),
        fallback_sigma_per_year=_assumption(config, "fallback_sigma_per_year"),
        sparse_irregular_sd=_assumption(config, "sparse_irregular_sd"),
        sparse_slope_sd_per_year=_assumption(config, "sparse_slope_sd_per_year"),
        sparse_growth_halflife_years=_assumption(config, "sparse_growth_halflife_years"),
    )
    results = []
    for (freq,), part in history.group_by("freq", maintain_order=True):
        last = part.group_by("series_id").agg(pl.col("period_start").max())["period_start"].min()
        horizon = horizon_for(last, freq, end)
        if horizon < 1:
            continue
        res = forecasts.run(part.select("series_id", "period_start", "value"), horizon, freq,
                            workers=workers, config=cfg)
        res.forecast = res.forecast.filter(pl.col("period_start") <= end)
        results.append(res)
    fc = pl.concat([r.forecast for r in results])
    selection = pl.concat([r.selection for r in results])
    draws = int(_assumption(config, "composite_draws"))
    for composite in composite_specs(config):
        fc = pl.concat([fc, forecasts.compose(fc, composite["components"], composite["series_id"], draws=draws)])
        selection = pl.concat([selection, pl.DataFrame([{
            "series_id": composite["series_id"], "model_name": "composite", "n_obs": 0, "n_origins": 0,
            "interval_scale": 1.0, "log_scale": True, "warnings": "",
            "reason": "sum of " + ", ".join(composite["components"]) + " (config/assumptions.yaml forecast "
                      "composites), independent Monte Carlo draws; periods where every component has a forecast",
        }], schema=selection.schema)])
    return forecasts.ForecastResult(forecast=fc, backtest=pl.concat([r.backtest for r in results]),
                                    selection=selection)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FORECAST, deps=[dg.AssetKey(["staging", "forecast_history"]), dg.AssetKey(["meta", "assumptions"])],
                     description="Observed history and forecast (median, 80/95% intervals) of every series, "
                     "with the chosen model and unit.", group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(BACKTEST, deps=[dg.AssetKey(["staging", "forecast_history"])],
                     description="Rolling-origin backtest errors of every candidate model.",
                     group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(SELECTION, deps=[dg.AssetKey(["staging", "forecast_history"])],
                     description="The model chosen per series, its backtest scores and the reason.",
                     group_name="forecast", kinds={"duckdb", "statsmodels"}),
    ],
    pool=POOL,
)
def forecast_marts(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    config = load_assumptions(settings.assumptions_path)
    with warehouse.get_connection() as con:
        history = con.execute("select * from staging.forecast_history").pl()
    n_series = history["series_id"].n_unique()
    context.log.info(f"fitting {n_series} series (backtest + selection + final fit)")
    result = run_forecasts(history, config)
    units = history.select("series_id", "unit").unique()
    units = pl.concat([units, pl.DataFrame({"series_id": [c["series_id"] for c in composite_specs(config)],
                                            "unit": "tokens_per_day"})])
    observed = history.select(
        "series_id", "period_start", pl.lit(False).alias("is_forecast"), "value",
        *[pl.lit(None, pl.Float64).alias(c) for c in ("lo80", "hi80", "lo95", "hi95")],
        pl.lit(None, pl.Utf8).alias("model_name"))
    future = result.forecast.select("series_id", "period_start", pl.lit(True).alias("is_forecast"), "value",
                                    "lo80", "hi80", "lo95", "hi95", "model_name")
    forecast = pl.concat([observed, future]).join(units, on="series_id", how="left").sort("series_id", "period_start")
    backtest = result.backtest.select("series_id", "model_name", "origin", "horizon", "period_start", "actual",
                                      "predicted", "abs_error", "lo80", "hi80", "lo95", "hi95")
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {"marts.forecast": forecast, "marts.forecast_backtest": backtest,
                                                  "marts.forecast_selection": result.selection})
    warned = result.selection.filter(pl.col("warnings") != "")
    for row in warned.iter_rows(named=True):
        context.log.warning(f"{row['series_id']}: {row['warnings']}")
    context.log.info(f"{n_series} series forecast; {warned.height} with convergence or other warnings")
    for key, table in ((FORECAST, "marts.forecast"), (BACKTEST, "marts.forecast_backtest"),
                       (SELECTION, "marts.forecast_selection")):
        yield dg.MaterializeResult(asset_key=key, metadata={"row_count": dg.MetadataValue.int(counts[table])})
