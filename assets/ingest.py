"""Raw assets: one per source file, loaded and validated by DuckDB's CSV reader (warehouse/loading.py),
plus meta.assumptions from config/assumptions.yaml."""


import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from configuration.schema import Assumptions
from warehouse.loading import InputFileError, load_source
from assets.resources import ProjectSettings
from warehouse.sources import SOURCES, Source
from warehouse.io import replace_table_from_frame, replace_tables_from_frames, table_preview

POOL = "duckdb"


def _raw_asset(source: Source) -> dg.AssetsDefinition:
    @dg.asset(
        name=source.stem,
        key_prefix="raw",
        group_name="ingest",
        kinds={"duckdb", "csv"},
        pool=POOL,
        description=f"{source.description}. Loaded as-is from {source.file_name} with _line, "
        "_source_file and _loaded_at added.",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
        path = settings.data_path(source.file_name)
        with warehouse.get_connection() as con:
            try:
                rows = load_source(con, source, path, as_of=settings.as_of_date())
            except InputFileError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            preview = table_preview(con, source.table)
        vintage = f" known on {settings.as_of_date()}" if source.known_on else ""
        context.log.info(f"{source.table}: {rows} rows{vintage} from {path}")
        return dg.MaterializeResult(
            metadata={
                "row_count": dg.MetadataValue.int(rows),
                "source_file": dg.MetadataValue.path(str(path)),
                "preview": dg.MetadataValue.md(preview),
            }
        )

    return _asset


raw_assets = [_raw_asset(source) for source in SOURCES]


@dg.asset(
    key=["meta", "assumptions"],
    group_name="ingest",
    kinds={"duckdb", "yaml"},
    pool=POOL,
    description="Every numeric modelling assumption of config/assumptions.yaml: value, low/high range, "
    "unit, rationale and source.",
)
def assumptions_table(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    try:
        frame = settings.configuration().rows()
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    with warehouse.get_connection() as con:
        rows = replace_table_from_frame(con, "meta.assumptions", frame)
    context.log.info(f"meta.assumptions: {rows} assumptions from {settings.assumptions_path}")
    return dg.MaterializeResult(metadata={"row_count": dg.MetadataValue.int(rows)})


@dg.asset(
    key=["meta", "forecast_hierarchy"],
    group_name="ingest",
    kinds={"duckdb", "yaml"},
    pool=POOL,
    description="The demand hierarchy of config/assumptions.yaml (forecast.hierarchy): one row per (entry, part) "
    "-- disjoint parts inside a total, with the unit scale from the total to the parts.",
)
def forecast_hierarchy(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    entries = settings.configuration().model.forecast.hierarchy  # typed: the schema's defaults, once
    frame = pl.DataFrame(
        [{"entry": i + 1, "total": e.total, "part": part, "parts": "+".join(e.parts), "scale": e.scale,
          "note": e.note}
         for i, e in enumerate(entries) for part in e.parts],
        schema={"entry": pl.Int64, "total": pl.Utf8, "part": pl.Utf8, "parts": pl.Utf8, "scale": pl.Float64,
                "note": pl.Utf8})
    with warehouse.get_connection() as con:
        rows = replace_table_from_frame(con, "meta.forecast_hierarchy", frame)
    context.log.info(f"meta.forecast_hierarchy: {rows} (entry, part) rows")
    return dg.MaterializeResult(metadata={"row_count": dg.MetadataValue.int(rows)})


REPORT_CONFIG = {
    "scenarios": "The deployment scenarios of config/assumptions.yaml: id, a readable label, a one-line summary, "
                 "the full description, and which one the report follows (report.headline_scenario) and charts by "
                 "chip class (report.class_chart_scenario).",
    "report_series": "The demand series the report shows, by role, from config/assumptions.yaml: global "
                     "(forecast.global_demand), estimated (report.estimated_series) and each segment's demand series.",
}


def report_config_frames(config: Assumptions) -> dict[str, pl.DataFrame]:
    """meta.scenarios and meta.report_series from the validated, typed configuration: the names the report
    needs."""
    report = config.report
    scenarios = pl.DataFrame(
        [{"scenario": name, "label": spec.label or name,
          "summary": spec.summary or " ".join(spec.description.split()),
          "description": " ".join(spec.description.split()),
          "headline": name == report.headline_scenario,
          "class_chart": name == report.class_chart_scenario}
         for name, spec in config.scenarios.items()],
        schema={"scenario": pl.Utf8, "label": pl.Utf8, "summary": pl.Utf8, "description": pl.Utf8,
                "headline": pl.Boolean, "class_chart": pl.Boolean})
    series = [("global", config.forecast.global_demand.series_id)]
    if report.estimated_series:
        series.append(("estimated", report.estimated_series))
    series += [(f"segment:{name}", spec.demand_series) for name, spec in config.segments.items()]
    return {"meta.scenarios": scenarios,
            "meta.report_series": pl.DataFrame(series, schema={"role": pl.Utf8, "series_id": pl.Utf8}, orient="row")}


@dg.multi_asset(
    specs=[dg.AssetSpec(["meta", name], description=text, group_name="ingest", kinds={"duckdb", "yaml"})
           for name, text in REPORT_CONFIG.items()],
    pool=POOL,
)
def report_config_tables(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    frames = report_config_frames(settings.configuration().model)
    with warehouse.get_connection() as con:
        counts = replace_tables_from_frames(con, frames)
    context.log.info(", ".join(f"{table}: {rows} rows" for table, rows in counts.items()))
    for name in REPORT_CONFIG:
        yield dg.MaterializeResult(asset_key=["meta", name],
                                   metadata={"row_count": dg.MetadataValue.int(counts[f"meta.{name}"])})
