"""meta.runs and meta.check_results: what each refresh run did, recorded from the Dagster instance."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import polars as pl

from warehouse.io import ensure_schemas

# the tables' definitions: sql/ddl/runs.sql (created by warehouse.io.ensure_schemas)


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> pl.DataFrame:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records
    rows = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        rows.append(
            {
                "run_id": run_id,
                "asset": evaluation.asset_key.to_user_string(),
                "check_name": evaluation.check_name,
                "passed": bool(evaluation.passed),
                "severity": evaluation.severity.value,
                "metadata": json.dumps({k: str(v.value) for k, v in evaluation.metadata.items()}),
            }
        )
    schema = {"run_id": pl.Utf8, "asset": pl.Utf8, "check_name": pl.Utf8, "passed": pl.Boolean,
              "severity": pl.Utf8, "metadata": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def step_label(step_key: str) -> str:
    """A step as users see assets: `raw__chip_shipments_quarterly` -> `raw/chip_shipments_quarterly`."""
    return step_key.replace("__", "/")


def error_text(error) -> str:
    """The user's message of a Dagster error: the innermost cause, without Dagster's class prefix."""
    if error is None:
        return "failed"
    while getattr(error, "cause", None) is not None and error.cls_name in (
            "DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"):
        error = error.cause
    message = (error.message or "").strip()
    if ": " in message and message.split(": ", 1)[0].startswith(("dagster.", "dagster._")):
        message = message.split(": ", 1)[1]
    if message.endswith(":") and error.cause is not None:  # e.g. "blocking asset check failed ...:"
        message += " " + error_text(error.cause)
    return message or error.cls_name or "failed"


def steps_not_run(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The assets of the steps of the run's plan that never started (skipped because an upstream step or
    check failed): `marts/forecast`, not the step `forecast_marts` that writes it (a step without an asset
    is named by its label)."""
    run = instance.get_run_by_id(run_id)
    if run is None or not run.execution_plan_snapshot_id:
        return []
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    started = {r.event_log_entry.dagster_event.step_key for r in
               instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START, limit=10_000).records}
    names = set()
    for step in plan.steps:
        if step.key in started:
            continue
        keys = [o.properties.asset_key for o in step.outputs if o.properties and o.properties.asset_key]
        if keys:
            names.update(k.to_user_string() for k in keys)
        else:
            names.add(step_label(step.key))
    return sorted(names)


def run_failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """One line per failed step (`asset: message`), or the run-level failure message."""
    lines = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=100).records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        message = error_text(error) if error is not None else (event.message or "failed")
        lines.append(f"{step_label(event.step_key)}: {message.splitlines()[0] if message else 'failed'}")
    if not lines:
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1).records:
            lines.append(record.event_log_entry.dagster_event.message or "run failed")
    return lines


def record_run(
    con: duckdb.DuckDBPyConnection,
    instance: dg.DagsterInstance,
    run_id: str,
    *,
    as_of: dt.date,
    data_dir: str,
    warehouse: str,
    assumptions: str,
    failures: list[str] | None = None,
) -> dict:
    """Write (or rewrite: idempotent per run_id) the run's row in meta.runs and its check results."""
    run = instance.get_run_by_id(run_id)
    stats = instance.get_run_stats(run_id)
    checks = check_evaluations(instance, run_id)
    tables = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() "
        "where schema_name in ('raw', 'staging', 'marts', 'model_inputs') and not table_name like '\\_\\_%' escape '\\' "
        "order by 1"
    ).fetchall()
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for (t,) in tables}
    failed = checks.filter(~pl.col("passed"))
    # wall time of each step (e.g. hardware_marts: the fleet model; marts/throughput_calibration: the fit)
    step_seconds = {step_label(s.step_key): round(s.end_time - s.start_time, 3)
                    for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time}
    row = {
        "run_id": run_id,
        "job_name": run.job_name if run else None,
        "status": run.status.value if run else "UNKNOWN",
        "started_at": dt.datetime.fromtimestamp(stats.start_time, dt.timezone.utc).replace(tzinfo=None)
        if stats.start_time else None,
        "finished_at": dt.datetime.fromtimestamp(stats.end_time, dt.timezone.utc).replace(tzinfo=None)
        if stats.end_time else None,
        "as_of": as_of,
        "data_dir": data_dir,
        "warehouse": warehouse,
        "assumptions": assumptions,
        "row_counts": json.dumps(counts),
        "checks_passed": int(checks["passed"].sum()),
        "checks_failed": int(failed.filter(pl.col("severity") == "ERROR").height),
        "checks_warned": int(failed.filter(pl.col("severity") == "WARN").height),
        "error": "\n".join(run_failures(instance, run_id) if failures is None else failures) or None,
        "step_seconds": json.dumps(step_seconds),
    }
    ensure_schemas(con)
    con.execute("begin transaction")
    try:
        con.execute("delete from meta.runs where run_id = ?", [run_id])
        con.execute("delete from meta.check_results where run_id = ?", [run_id])
        con.register("_run", pl.DataFrame([row]).to_arrow())
        con.execute("insert into meta.runs by name select * from _run")
        con.unregister("_run")
        if checks.height:
            con.register("_checks", checks.to_arrow())
            con.execute("insert into meta.check_results by name select * from _checks")
            con.unregister("_checks")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return row
