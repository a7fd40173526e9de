"""Hardware assets: the warehouse's demand forecasts, specs and assumptions -> hardware.model.build ->
marts.hardware_demand, supplier_exposure, supplier_concentration, supply_demand_gap, sensitivity,
cross_checks (written together in one transaction)."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.assumptions import load_assumptions
from assets.ingest import POOL
from assets.resources import ProjectSettings
from assets.warehouse import replace_tables_from_frames
from hardware.fleet import ScenarioError
from hardware.model import build

INPUTS = {
    "specs": "staging.accelerator_specs",
    "catalog": "raw.model_catalog",
    "supply_chain": "raw.supply_chain",
    "workload_mix": "marts.workload_mix",
    "demand": "staging.quarterly_demand",
    "assumptions": "meta.assumptions",
    "installed_base": "marts.installed_base",
    "forecast": "marts.forecast",
    "supply_metrics": "marts.supply_metrics",
}
OUTPUTS = {
    "hardware_demand": "Chips, H100e, MW and capex needed per quarter, scenario, segment, phase and chip "
                       "(p5/median/p95 over the Monte Carlo draws).",
    "supplier_exposure": "USD content of the required fleet per supplier and role (p5/median/p95), share of role.",
    "supplier_concentration": "Herfindahl-Hirschman index of each supplier role per quarter and scenario.",
    "supply_demand_gap": "Required H100e vs the inference share of the installed base, China-market vs rest.",
    "sensitivity": "Swing in total chips at the horizon when each assumption moves across its range (tornado).",
    "cross_checks": "Implied spend and CoWoS/2.5D demand vs Nvidia data-center revenue, CoWoS capacity and "
                    "domestic 2.5D packaging revenue, as ratios.",
}
DEPS = [dg.AssetKey(t.split(".")) for t in INPUTS.values()]


@dg.multi_asset(
    specs=[dg.AssetSpec(["marts", name], deps=DEPS, description=text, group_name="hardware",
                        kinds={"duckdb", "numpy"}) for name, text in OUTPUTS.items()],
    pool=POOL,
)
def hardware_marts(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    config = load_assumptions(settings.assumptions_path)
    with warehouse.get_connection() as con:
        inputs = {key: con.execute(f"select * from {table}").pl() for key, table in INPUTS.items()}
    context.log.info(f"sizing fleets for {len(config.get('scenarios') or {})} scenarios")
    try:
        frames = build(inputs, config)
    except (ScenarioError, KeyError) as exc:
        raise dg.Failure(description=f"{settings.assumptions_path}: {exc}", allow_retries=False) from None
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {f"marts.{name}": frame for name, frame in frames.items()})
    for name in OUTPUTS:
        yield dg.MaterializeResult(asset_key=["marts", name],
                                   metadata={"row_count": dg.MetadataValue.int(counts[f"marts.{name}"])})


@dg.asset(
    key=["marts", "throughput_calibration"],
    deps=[dg.AssetKey(["raw", "throughput_measurements"]), dg.AssetKey(["staging", "accelerator_specs"]),
          dg.AssetKey(["raw", "model_catalog"]), dg.AssetKey(["meta", "assumptions"])],
    group_name="hardware",
    kinds={"duckdb", "scipy"},
    pool=POOL,
    description="The serving model's efficiency parameters fitted on data/throughput_measurements.csv: per "
    "measurement, predicted vs measured, ratio, in/out of the fit, and the prediction with the row's source "
    "left out of the fit (hardware/serving.py).",
)
def throughput_calibration(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    import time

    import polars as pl

    from hardware.serving import calibration_table, measurements_frame, priors_and_limits
    from hardware.specs import chips_from_frame, models_from_frame

    started = time.perf_counter()
    config = load_assumptions(settings.assumptions_path)
    overrides = {c: {k: v for k, v in o.items() if k != "rationale"}
                 for c, o in (config.get("chip_overrides") or {}).items()}
    with warehouse.get_connection() as con:
        specs = con.execute("select * from staging.accelerator_specs").pl()
        catalog = con.execute("select * from raw.model_catalog").pl()
        measured = con.execute("select * exclude (_line, _source_file, _loaded_at) "
                               "from raw.throughput_measurements").pl()
        assumptions = con.execute("select * from meta.assumptions").pl()
    if "h100e_per_chip" not in specs.columns:
        specs = specs.with_columns(pl.lit(None, pl.Float64).alias("h100e_per_chip"))
    priors, limits = priors_and_limits(assumptions)
    table, fitted = calibration_table(measurements_frame(measured), chips_from_frame(specs, overrides),
                                      models_from_frame(catalog), priors, limits)
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {"marts.throughput_calibration": table})
    fit = table.filter(pl.col("in_fit"))
    seconds = time.perf_counter() - started
    context.log.info(f"calibration: median |log error| {fit['abs_log_error'].median():.3f} over {fit.height} fitted rows")
    return dg.MaterializeResult(metadata={
        "row_count": dg.MetadataValue.int(counts["marts.throughput_calibration"]),
        "median_abs_log_error_fitted": dg.MetadataValue.float(float(fit["abs_log_error"].median())),
        "worst_ratio_fitted": dg.MetadataValue.float(float(fit["ratio"].max())),
        "fitted_parameters": dg.MetadataValue.json({f"{g}.{p}": v for (g, p), v in fitted.items()}),
        "seconds": dg.MetadataValue.float(seconds),
    })
