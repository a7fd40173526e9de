"""The analyst report asset: reads marts.* and meta.* and renders var/reports/<as-of>/ (reports/render.py)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from assets.ingest import POOL
from assets.resources import ProjectSettings
from assets.runs import check_evaluations
from warehouse.io import data_as_of
from reports.render import REPORT_TABLES, render_report


def build_report(con: duckdb.DuckDBPyConnection, as_of: dt.date, reports_dir: Path | str,
                 checks: pl.DataFrame | None = None, vintage: dt.date | None = None) -> Path:
    """Render the report from the warehouse. `checks` defaults to the latest recorded run's results."""
    frames = {key: con.execute(f"select * from {table}").pl() for key, table in REPORT_TABLES.items()}
    # a what-if warehouse (`tokens2chips whatif`) names the assumptions it changed
    if con.execute("select count(*) from duckdb_tables() where schema_name = 'meta' and table_name = 'whatif'"
                   ).fetchone()[0]:
        frames["whatif"] = con.execute("select * from meta.whatif").pl()
    if checks is None:
        has_runs = con.execute("select count(*) from duckdb_tables() where schema_name = 'meta' "
                               "and table_name = 'check_results'").fetchone()[0]
        checks = con.execute(
            "select * from meta.check_results where run_id = (select run_id from meta.runs "
            "order by started_at desc limit 1)").pl() if has_runs else None
    threshold = con.execute("select value from meta.assumptions where name = 'report.change_threshold'").fetchone()
    return render_report(frames, as_of, reports_dir, checks, threshold[0] if threshold else 0.1,
                         data_as_of=vintage or data_as_of(con) or as_of)


@dg.asset(
    key=["reports", "analyst_report"],
    deps=[dg.AssetKey(t.split(".")) for t in REPORT_TABLES.values()],
    group_name="report",
    kinds={"html", "markdown"},
    pool=POOL,
    description="Self-contained HTML and Markdown analyst report with charts: var/reports/<as-of>/ and "
    "var/reports/latest/.",
)
def analyst_report(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    checks = check_evaluations(context.instance, context.run.run_id)
    with warehouse.get_connection() as con:
        path = build_report(con, settings.as_of_date(), settings.reports_dir, checks, vintage=settings.as_of_date())
    context.log.info(f"report written to {path}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path / "report.html")),
                                          "markdown": dg.MetadataValue.path(str(path / "report.md"))})
