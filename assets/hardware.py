"""Hardware assets: the measurements -> hardware.serving calibration -> marts.throughput_calibration and
marts.serving_efficiency; then the warehouse's demand forecasts, specs and calibrated efficiencies, with the
run's one validated, typed configuration (the object meta.assumptions' rows are flattened from)
-> hardware.build.build -> marts.hardware_demand, supplier_exposure, supplier_concentration,
supply_demand_gap, sensitivity, cross_checks, interactivity_curves (written together in one transaction)."""

import hashlib
import os
import pickle
import time
import warnings
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.checks import contract_results, contract_specs
from assets.ingest import POOL
from assets.resources import ProjectSettings
from warehouse.io import replace_tables_from_frames
from hardware.fleet import ScenarioError
from hardware.stockflow import AvailabilityError
from hardware.build import build
from hardware.serving import memoised

SERVING_CODE = ("hardware/serving.py", "hardware/roofline.py")


def serve_memo_dir(reports_dir: Path | str) -> Path:
    """Where the serving model's results are kept between runs: <reports_dir>/../cache/serving/ (var/cache/,
    beside the CLI's hardware-context cache)."""
    return Path(reports_dir).resolve().parent / "cache" / "serving"


def serve_memo_path(settings: ProjectSettings) -> Path:
    """serve-<code version>.pkl in serve_memo_dir. The version is a hash of the serving code; the inputs (specs,
    efficiency, limits, workload) are in every entry's key, so an entry is right for as long as the code that
    made it is unchanged."""
    root = Path(__file__).resolve().parent.parent
    version = hashlib.sha256(b"".join((root / name).read_bytes() for name in SERVING_CODE)).hexdigest()[:16]
    return serve_memo_dir(settings.reports_dir) / f"serve-{version}.pkl"


# the store this process last read or wrote, and its (path, mtime, size): a what-if loop reads it once
_LOADED: tuple[tuple, dict] | None = None


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def load_serve_memo(path: Path) -> dict:
    """The kept results, or an empty store (none yet, or unreadable: the model computes them again)."""
    global _LOADED
    try:
        stamp = _stamp(path)
        if _LOADED is not None and _LOADED[0] == stamp:
            return _LOADED[1]
        memo = pickle.loads(path.read_bytes())
        memo = memo if isinstance(memo, dict) else {}
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return {}
    _LOADED = (stamp, memo)
    return memo


def save_serve_memo(path: Path, memo: dict) -> None:
    """Keep the store for the next run (atomically; stores of other code versions are dropped)."""
    global _LOADED
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(memo, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
        _LOADED = (_stamp(path), memo)
        for old in path.parent.glob("serve-*.pkl"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written costs time, not results

INPUTS = {
    "specs": "staging.accelerator_specs",
    "catalog": "raw.model_catalog",
    "supply_chain": "raw.supply_chain",
    "workload_mix": "marts.workload_mix",
    "demand": "model_inputs.quarterly_demand",
    "installed_base_projection": "marts.installed_base_projection",
    "supply_capacity": "marts.supply_capacity",
    "api_prices": "raw.api_prices",
    "provider_margins": "raw.provider_margins",
    "chip_packaging": "raw.chip_packaging",
    "forecast": "marts.forecast",
    "supply_metrics": "marts.supply_metrics",
    "serving_efficiency": "marts.serving_efficiency",
    "chip_shipments": "marts.chip_shipments",
    "chip_availability": "raw.chip_availability",
}
OUTPUTS = {
    "hardware_demand": "Chips, H100e, MW and capex needed per quarter, scenario, segment, phase and chip "
                       "(p5/median/p95 over the Monte Carlo draws).",
    "supplier_exposure": "USD content of the required fleet per supplier and role (p5/median/p95), share of role.",
    "supplier_concentration": "Herfindahl-Hirschman index of each supplier role per quarter and scenario.",
    "supply_demand_gap": "Required vs the inference share of the installed base projected to the same quarter "
                         "(marts.installed_base_projection), China-market vs rest, per resource a phase consumes "
                         "(prefill: 8-bit compute; decode: memory bandwidth; all: H100e).",
    "implied_utilisation": "Required H100e / the projected installed base's inference share per quarter, scenario, "
                           "region and chip class; flag short (>1), overbuild (< supply.utilisation_overbuild), "
                           "no installed base.",
    "supplier_flows": "Annual purchases attributable to inference per supplier and role (fleet growth + "
                      "replacements: a flow) vs the supplier's reported or forecast revenue, beside the required "
                      "fleet's content (a stock).",
    "token_margin": "Published API prices vs modelled cost per million tokens on each margin chip: implied gross "
                    "margin with its range, and the provider-disclosed margin where there is one.",
    "sensitivity": "Swing in total chips at the horizon when each assumption moves across its range (tornado).",
    "cross_checks": "Implied spend and CoWoS/2.5D demand vs Nvidia data-center revenue, CoWoS capacity "
                    "(marts.supply_capacity) and domestic 2.5D packaging revenue, and the fleet's HBM split vs "
                    "published HBM market shares, as ratios.",
    "interactivity_curves": "Decode tokens/s per chip against tokens/s per user (InferenceX's axes) for each "
                            "scenario's decode chips and main model, with batch, replica and cost per million "
                            "output tokens.",
    "installed_base_by_chip": "Shipped and installed units per quarter, region, designer and chip: Epoch AI's counted "
                              "shipments, then each designer's H100e forecast split over its chips inside their "
                              "availability window (data/chip_availability.csv); chip null = projected H100e no chip "
                              "of the designer can take. Data: Epoch AI.",
    "fleet_stock_flow": "Stock and flow per quarter, scenario, segment and chip: installed inference chips, chips in "
                        "use and their utilisation, tokens/day they serve, and chips bought in the quarter.",
    "token_cost": "Cost per million tokens by quarter, scenario, chip class and phase: the day's amortised capex "
                  "and energy of the chips serving the load over the tokens they process, per Monte Carlo draw; "
                  "median (unsuffixed) and p5/p95.",
    "demand_reconciliation": "Per quarter, scenario and segment (region): what the installed base's inference share "
                             "can serve (tokens/day at calibrated rates with the fleet's overheads) against "
                             "disclosed and estimated demand; utilisation, the residual at the busy share public "
                             "statements support, and the inference share that would close the gap.",
    "fleet_totals": "Per quarter, scenario and segment ('all' = every segment), totals computed within each Monte "
                    "Carlo draw, then p5/median/p95: fleet serving demand (chips, H100e, MW, capex), chips bought, "
                    "installed utilisation, share of demand the installed base serves, shortfall.",
    "assumptions_used": "Every assumption as the hardware model ran with it (value, low, high), the file's value, "
                        "and where the value came from: the assumptions file, or request-level call logs whose "
                        "measured output and cached shares replace the file's (marts.workload_mix).",
}
TABLES = tuple(f"marts.{name}" for name in OUTPUTS)
# What each table is computed from (the lineage the Dagster graph shows; hardware/build.py reads them all in one
# step). The fleet sizing every table but the margins rests on: demand, the chips and models, the calibrated
# serving model, the workload mix and the installed base (shipments, projection, availability windows).
CORE = ["demand", "specs", "catalog", "workload_mix", "serving_efficiency", "chip_shipments",
        "installed_base_projection", "chip_availability"]
READS = {
    "hardware_demand": CORE,
    "supplier_exposure": [*CORE, "supply_chain"],
    "supplier_concentration": [*CORE, "supply_chain"],
    "supply_demand_gap": CORE,
    "implied_utilisation": CORE,
    "supplier_flows": [*CORE, "supply_chain", "forecast", "supply_metrics"],
    "token_margin": ["specs", "catalog", "workload_mix", "serving_efficiency", "api_prices", "provider_margins"],
    "sensitivity": CORE,
    "cross_checks": [*CORE, "supply_chain", "chip_packaging", "forecast", "supply_metrics", "supply_capacity"],
    "interactivity_curves": CORE,
    "installed_base_by_chip": ["specs", "chip_shipments", "installed_base_projection", "chip_availability"],
    "fleet_stock_flow": CORE,
    "fleet_totals": CORE,
    "token_cost": CORE,
    "demand_reconciliation": CORE,
    "assumptions_used": ["workload_mix"],
}
assert set(READS) == set(OUTPUTS) and {k for v in READS.values() for k in v} == set(INPUTS), "READS names INPUTS"


def _deps(name: str) -> list[dg.AssetKey]:
    """A table's inputs, and meta.assumptions (the table of the typed configuration the asset is handed: a
    changed assumption re-runs what follows it)."""
    return [dg.AssetKey(t.split(".")) for t in [*(INPUTS[k] for k in READS[name]), "meta.assumptions"]]


@dg.multi_asset(
    specs=[dg.AssetSpec(["marts", name], deps=_deps(name), description=text, group_name="hardware",
                        kinds={"duckdb", "numpy"}) for name, text in OUTPUTS.items()],
    check_specs=contract_specs(*TABLES),
    pool=POOL,
)
def hardware_marts(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    started = time.perf_counter()
    config = settings.configuration().model  # the typed configuration: what the hardware library takes
    with warehouse.get_connection() as con:
        inputs = {key: con.execute(f"select * from {table}").pl() for key, table in INPUTS.items()}
    context.log.info(f"sizing fleets for {len(config.scenarios)} scenarios")
    memo_path = serve_memo_path(settings)
    memo = load_serve_memo(memo_path)
    try:
        with warnings.catch_warnings(record=True) as caught, memoised(memo) as asked:
            warnings.simplefilter("always", UserWarning)
            frames = build(inputs, config)
        for message in sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)}):
            context.log.warning(message)
    except (ScenarioError, AvailabilityError, KeyError) as exc:
        raise dg.Failure(description=f"{settings.assumptions_path}: {exc}", allow_retries=False) from None
    save_serve_memo(memo_path, asked)  # this run's entries only: the store does not grow
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {f"marts.{name}": frame for name, frame in frames.items()})
        checks = contract_results(con, *TABLES)
    seconds = time.perf_counter() - started
    context.log.info(f"hardware model: {seconds:.1f} s")
    for name in OUTPUTS:
        yield dg.MaterializeResult(asset_key=["marts", name],
                                   metadata={"row_count": dg.MetadataValue.int(counts[f"marts.{name}"]),
                                             "seconds": dg.MetadataValue.float(seconds)})
    yield from checks


CALIBRATION_TABLES = ("marts.throughput_calibration", "marts.serving_efficiency", "marts.throughput_references")
CALIBRATION_DEPS = [dg.AssetKey(["raw", "throughput_measurements"]), dg.AssetKey(["staging", "accelerator_specs"]),
                    dg.AssetKey(["staging", "benchmark_measurements"]),
                    dg.AssetKey(["raw", "model_catalog"]), dg.AssetKey(["meta", "assumptions"])]


@dg.multi_asset(
    specs=[dg.AssetSpec(["marts", "throughput_calibration"], deps=CALIBRATION_DEPS, group_name="hardware",
                        kinds={"duckdb", "scipy"},
                        description="The serving model's efficiency parameters fitted on "
                        "data/throughput_measurements.csv: per measurement, predicted vs measured, ratio, in/out of "
                        "the fit, and the prediction with the row's source left out of the fit (hardware/serving.py)."),
           dg.AssetSpec(["marts", "serving_efficiency"], deps=CALIBRATION_DEPS, group_name="hardware",
                        kinds={"duckdb", "scipy"},
                        description="The fitted efficiency parameters per chip group (hbm, lpu, wafer_scale) and "
                        "the calibration's leave-one-source-out error, which the fleet model uses."),
           dg.AssetSpec(["marts", "throughput_references"], deps=CALIBRATION_DEPS, group_name="hardware",
                        kinds={"duckdb", "scipy"},
                        description="The benchmark feeds' rows (MLPerf, InferenceX; staging.benchmark_measurements) "
                        "predicted by the calibrated serving model, never fitted: measured vs predicted, ratio. "
                        "Derived figures only: InferenceX's raw payloads stay local.")],
    check_specs=contract_specs(*CALIBRATION_TABLES),
    pool=POOL,
)
def throughput_calibration(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    import polars as pl

    from hardware.serving import calibration_table, efficiency_table, measurements_frame, priors_and_limits
    from hardware.specs import chip_overrides, chips_from_frame, models_from_frame

    started = time.perf_counter()
    config = settings.configuration().model
    overrides = chip_overrides(config)
    with warehouse.get_connection() as con:
        specs = con.execute("select * from staging.accelerator_specs").pl()
        catalog = con.execute("select * from raw.model_catalog").pl()
        measured = measurements_frame(con.execute("select * exclude (_line, _source_file, _loaded_at) "
                                                  "from raw.throughput_measurements").pl())
        bench = con.execute("select * exclude (feed) from staging.benchmark_measurements").pl()
    # the feeds' rows ride along held out (in_fit false): the same fit, their prediction out of sample
    bench = measurements_frame(bench).select(measured.columns).cast(measured.schema)
    priors, limits = priors_and_limits(config)
    combined, fitted = calibration_table(pl.concat([measured, bench]), chips_from_frame(specs, overrides),
                                         models_from_frame(catalog), priors, limits)
    is_reference = pl.col("measurement_id").is_in(bench["measurement_id"].implode())
    table, references = combined.filter(~is_reference), combined.filter(is_reference)
    efficiency = efficiency_table(table, fitted)
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, {"marts.throughput_calibration": table,
                                                  "marts.serving_efficiency": efficiency,
                                                  "marts.throughput_references": references})
        checks = contract_results(con, *CALIBRATION_TABLES)
    fit = table.filter(pl.col("in_fit"))
    seconds = time.perf_counter() - started
    context.log.info(f"calibration: median |log error| {fit['abs_log_error'].median():.3f} over {fit.height} "
                     f"fitted rows ({seconds:.1f} s)")
    yield dg.MaterializeResult(asset_key=["marts", "throughput_calibration"], metadata={
        "row_count": dg.MetadataValue.int(counts["marts.throughput_calibration"]),
        "median_abs_log_error_fitted": dg.MetadataValue.float(float(fit["abs_log_error"].median())),
        "worst_ratio_fitted": dg.MetadataValue.float(float(fit["ratio"].max())),
        "lowest_ratio_fitted": dg.MetadataValue.float(float(fit["ratio"].min())),
        "loso_median_abs_log_error": dg.MetadataValue.float(
            float(fit["ratio_leave_source_out"].log().abs().median())),
        "seconds": dg.MetadataValue.float(seconds),
    })
    yield dg.MaterializeResult(asset_key=["marts", "serving_efficiency"], metadata={
        "row_count": dg.MetadataValue.int(counts["marts.serving_efficiency"]),
        "fitted_parameters": dg.MetadataValue.json({f"{g}.{p}": v for (g, p), v in fitted.items()}),
        "seconds": dg.MetadataValue.float(seconds),
    })
    yield dg.MaterializeResult(asset_key=["marts", "throughput_references"], metadata={
        "row_count": dg.MetadataValue.int(counts["marts.throughput_references"]),
        "median_ratio": dg.MetadataValue.float(float(references["ratio"].median()) if references.height else 0.0),
    })
    yield from checks
