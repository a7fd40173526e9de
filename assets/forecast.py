"""Forecast assets: model_inputs.forecast_history -> forecasts library -> marts.forecast, marts.forecast_backtest,
marts.forecast_selection (written together in one transaction)."""

import datetime as dt

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from assets.checks import SELECTION_CHECK, contract_results, contract_specs, every_series_selected
from assets.ingest import POOL
from assets.resources import ProjectSettings
from warehouse.io import replace_tables_from_frames

FORECAST = dg.AssetKey(["marts", "forecast"])
BACKTEST = dg.AssetKey(["marts", "forecast_backtest"])
SELECTION = dg.AssetKey(["marts", "forecast_selection"])
FLAGS = dg.AssetKey(["marts", "forecast_flags"])
VINTAGE_ERRORS = dg.AssetKey(["marts", "forecast_vintage_errors"])
VINTAGE_POINTS = dg.AssetKey(["marts", "forecast_vintage_points"])
FORECAST_TABLES = ("marts.forecast", "marts.forecast_backtest", "marts.forecast_selection", "marts.forecast_flags")
VINTAGE_TABLES = ("marts.forecast_vintage_errors", "marts.forecast_vintage_points")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FORECAST, deps=[dg.AssetKey(["model_inputs", "forecast_history"]), dg.AssetKey(["meta", "assumptions"]),
                                     dg.AssetKey(["raw", "market_outlooks"])],
                     description="Observed history and forecast (median, 80/95% intervals) of every series, "
                     "with the chosen model and unit.", group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(BACKTEST, deps=[dg.AssetKey(["model_inputs", "forecast_history"])],
                     description="Rolling-origin backtest errors of every candidate model.",
                     group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(SELECTION, deps=[dg.AssetKey(["model_inputs", "forecast_history"])],
                     description="The model chosen per series, its backtest scores and the reason.",
                     group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(FLAGS, deps=[dg.AssetKey(["model_inputs", "forecast_history"])],
                     description="What this data vintage lacks: partial composites (a component without any "
                     "disclosure yet) and segments sized from their fallback demand series.",
                     group_name="forecast", kinds={"duckdb"}),
    ],
    check_specs=[*contract_specs(*FORECAST_TABLES), SELECTION_CHECK],
    pool=POOL,
)
def forecast_marts(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    config = settings.configuration().model  # the typed configuration (forecasts.pipeline takes it)
    with warehouse.get_connection() as con:
        history = con.execute("select * from model_inputs.forecast_history").pl()
        # published outlooks (raw.market_outlooks); a warehouse without the table has none
        has_outlooks = con.execute("select count(*) from information_schema.tables where table_schema = 'raw' "
                                   "and table_name = 'market_outlooks'").fetchone()[0]
        outlooks = (con.execute("select series_id, year, value, low, high, source_id from raw.market_outlooks").pl()
                    if has_outlooks else None)
    n_series = history["series_id"].n_unique()
    context.log.info(f"fitting {n_series} series (backtest + selection + final fit)")
    from forecasts.pipeline import composite_specs, run_forecasts  # statsmodels: loaded when a forecast runs

    result = run_forecasts(history, config, outlooks=outlooks)
    units = history.select("series_id", "unit").unique()
    units = pl.concat([units, pl.DataFrame({"series_id": [c.series_id for c in composite_specs(config)],
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
                                                  "marts.forecast_selection": result.selection,
                                                  "marts.forecast_flags": result.flags})
        checks = [*contract_results(con, *FORECAST_TABLES), every_series_selected(con)]
    warned = result.selection.filter(pl.col("warnings") != "")
    for row in warned.iter_rows(named=True):
        context.log.warning(f"{row['series_id']}: {row['warnings']}")
    for row in result.flags.iter_rows(named=True):
        context.log.warning(row["message"])
    summary = result.demand_summary
    if summary:
        context.log.info(f"pooled demand model: growth-rate half-life {summary['halflife_mean']:.2f} yr, common growth "
                         f"{summary['common_growth']:.2f} log units/yr at {summary['t0']:.2f}; "
                         + ("; ".join(summary["reconciled"]) or "no reconciliation needed"))
    context.log.info(f"{n_series} series forecast; {warned.height} with convergence or other warnings")
    for key, table in zip((FORECAST, BACKTEST, SELECTION, FLAGS), FORECAST_TABLES):
        yield dg.MaterializeResult(asset_key=key, metadata={"row_count": dg.MetadataValue.int(counts[table])})
    yield from checks


class VintageConfig(dg.Config):
    """Range of the vintage backtest; empty = config/assumptions.yaml forecast.vintage_backtest to the as-of date."""

    start: str = ""
    end: str = ""
    step_months: int = 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec(VINTAGE_ERRORS, deps=[dg.AssetKey(["model_inputs", "forecast_history"]), dg.AssetKey(["meta", "assumptions"])],
                     description="How past token-demand forecasts did: per series and pooled, the bias (mean log "
                     "error), median |log error| and 80/95% coverage of every vintage's forecasts against the "
                     "disclosures published after it.", group_name="forecast", kinds={"duckdb", "statsmodels"}),
        dg.AssetSpec(VINTAGE_POINTS, deps=[dg.AssetKey(["model_inputs", "forecast_history"])],
                     description="One row per (vintage, later disclosure): forecast, interval, actual, log error.",
                     group_name="forecast", kinds={"duckdb"}),
    ],
    check_specs=contract_specs(*VINTAGE_TABLES),
    pool=POOL,
)
def forecast_vintage(context: dg.AssetExecutionContext, config: VintageConfig, warehouse: DuckDBResource,
                     settings: ProjectSettings):
    assumptions = settings.configuration().model
    with warehouse.get_connection() as con:
        history = con.execute("select * from model_inputs.forecast_history").pl()
    as_of = settings.as_of_date()
    try:
        start = dt.date.fromisoformat(config.start) if config.start else None
        end = dt.date.fromisoformat(config.end) if config.end else None
    except ValueError as exc:
        raise dg.Failure(description=f"vintage backtest: {exc}", allow_retries=False) from None
    context.log.info(f"replaying token-demand vintages up to {end or as_of}")
    from forecasts.pipeline import vintage_backtest  # statsmodels: loaded when a backtest runs
    from forecasts.vintage import POOLED

    points, summary = vintage_backtest(history, assumptions, as_of, start, end, config.step_months or None)
    if points.height == 0 and (config.start or config.end):
        # a range asked for explicitly (`tokens2chips backtest --from/--to`) with nothing to score: an error
        # that changes nothing, not empty marts published over the last good ones
        raise dg.Failure(description=f"vintage backtest: no forecast in {config.start or 'the start'} .. "
                                     f"{config.end or as_of} can be scored (no later disclosure or quarter); nothing "
                                     "was changed", allow_retries=False)
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {"marts.forecast_vintage_errors": summary,
                                                  "marts.forecast_vintage_points": points})
        checks = contract_results(con, *VINTAGE_TABLES)
    pooled = summary.filter(pl.col("series_id") == POOLED)
    if pooled.height:
        row = pooled.row(0, named=True)
        context.log.info(f"vintage backtest: {row['n_forecasts']} forecasts from {row['n_vintages']} vintages; bias "
                         f"{row['bias']:+.2f}, median |log error| {row['median_abs_log_error']:.2f}, coverage 80% "
                         f"{row['coverage80']:.0%}, 95% {row['coverage95']:.0%}")
    for key, table in zip((VINTAGE_ERRORS, VINTAGE_POINTS), VINTAGE_TABLES):
        yield dg.MaterializeResult(asset_key=key, metadata={"row_count": dg.MetadataValue.int(counts[table])})
    yield from checks
