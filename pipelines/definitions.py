"""The Dagster code location: every asset and check, the refresh_all job, schedule and sensors."""


import hashlib

import dagster as dg

from assets.call_logs import call_log_assets
from assets.checks import freshness_checks
from assets.feeds import feed_assets, feed_sources
from assets.forecast import forecast_marts, forecast_vintage
from assets.hardware import hardware_marts, throughput_calibration
from assets.report import analyst_report
from assets.ingest import assumptions_table, forecast_hierarchy, raw_assets, report_config_tables
from assets.transform import sql_assets
from pipelines.progress import progress_logger
from pipelines.settings import Paths, as_of_from_env, build_resources, call_logs_dir, settings_config

resources = build_resources()
call_log_daily, call_logs_job = call_log_assets(resources["settings"].call_log_config().partitions_start)
all_assets = [call_log_daily, *feed_sources, *feed_assets, *raw_assets, assumptions_table, forecast_hierarchy, report_config_tables, *sql_assets, forecast_marts, forecast_vintage, hardware_marts, throughput_calibration, analyst_report]
all_checks = [*freshness_checks]  # the contracts are checked inside the assets that write the tables

refresh_all = dg.define_asset_job(
    name="refresh_all",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(call_log_daily),
    description="Ingest every source, rebuild staging and marts, run every check.",
    executor_def=dg.in_process_executor,
)

backtest = dg.define_asset_job(
    name="backtest",
    selection=dg.AssetSelection.assets(forecast_vintage),
    description="Replay past data vintages of the token-demand forecasts (`tokens2chips backtest`).",
    executor_def=dg.in_process_executor,
)

fetch_feeds = dg.define_asset_job(
    name="fetch_feeds",
    selection=dg.AssetSelection.assets(*[s.key for s in feed_sources]),
    description="Fetch the public feeds (OpenRouter, Epoch AI, MLPerf, InferenceX) when a network exists and "
    "keep each new payload under data/snapshots/; data_dir_sensor then runs refresh_all on the new data.",
    executor_def=dg.in_process_executor,
    config={"resources": {"settings": {"config": {**settings_config(Paths.from_env(), as_of_from_env(), call_logs_dir()),
                                                  "fetch_feeds": True}}}},
)

weekly_fetch = dg.ScheduleDefinition(
    name="weekly_fetch",
    job=fetch_feeds,
    cron_schedule="0 5 * * 1",
    execution_timezone="UTC",
    description="Fetch the public feeds on Mondays at 05:00 UTC (an hour before weekly_refresh).",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

weekly_refresh = dg.ScheduleDefinition(
    name="weekly_refresh",
    job=refresh_all,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    description="Refresh everything on Mondays at 06:00 UTC.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def data_dir_fingerprint() -> str:
    """A digest of the data directory's file names, sizes and modification times, the saved payloads'
    manifests (data/snapshots/<source>/<as_of>/manifest.json) included."""
    data_dir = Paths.from_env().data_dir
    digest = hashlib.sha256()
    files = [*data_dir.glob("*"), *data_dir.glob("snapshots/*/*/manifest.json")]
    for path in sorted(p for p in files if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dg.sensor(job=refresh_all, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING, description="Run refresh_all when files in the data "
           "directory are added, removed or changed, or a new feed payload is saved under data/snapshots/.")
def data_dir_sensor(context: dg.SensorEvaluationContext):
    fingerprint = data_dir_fingerprint()
    if context.cursor is None:
        context.update_cursor(fingerprint)
        return dg.SkipReason("recorded the data directory's current state; watching for changes")
    if fingerprint == context.cursor:
        return dg.SkipReason("no change in the data directory")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint)


@dg.sensor(job=call_logs_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Request a call_logs run for each day-"
           "partition whose files in T2C_CALL_LOGS are new or changed (fingerprints kept in the cursor).")
def call_logs_sensor(context: dg.SensorEvaluationContext):
    import json
    from pathlib import Path

    from call_logs.loading import CallLogError, discover, fingerprint
    from pipelines.settings import call_logs_dir

    root = call_logs_dir()
    if not root:
        return dg.SkipReason("T2C_CALL_LOGS is not set")
    try:
        layout = discover(Path(root))
    except CallLogError as exc:
        return dg.SkipReason(str(exc))
    seen = json.loads(context.cursor) if context.cursor else {}
    current = {day.isoformat(): fingerprint(files) for day, files in layout.by_day.items()}
    requests = [dg.RunRequest(run_key=f"{day}:{fp}", partition_key=day) for day, fp in sorted(current.items())
                if seen.get(day) != fp]
    context.update_cursor(json.dumps(current))
    return requests or dg.SkipReason("no new or changed day-partitions (date= folders)")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[refresh_all],
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Record runs launched from the UI or by the daemon in meta.runs and publish "
                      "the read-only snapshot for analysts.")
def record_successful_run(context: dg.RunStatusSensorContext):
    # `tokens2chips run` records and publishes its own runs (under its run lock)
    cli_run = context.dagster_run.tags.get("launched_by") == "tokens2chips run"
    _record(context, publish_snapshot=not cli_run)


@dg.run_failure_sensor(monitored_jobs=[refresh_all], default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Record failed runs, with the failing steps' errors, in meta.runs.")
def record_failed_run(context: dg.RunFailureSensorContext):
    _record(context)


def _record(context, publish_snapshot: bool = False) -> None:
    from assets.runs import record_run
    from warehouse.io import connect, publish

    paths = Paths.from_env()
    con = connect(paths.target, wait_s=60)
    try:
        record_run(
            con, context.instance, context.dagster_run.run_id,
            as_of=build_resources()["settings"].as_of_date(), data_dir=str(paths.data_dir),
            warehouse=str(paths.target), assumptions=str(paths.assumptions),
        )
    finally:
        con.close()
    if publish_snapshot:
        publish(paths.target)


defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[refresh_all, call_logs_job, backtest, fetch_feeds],
    schedules=[weekly_fetch, weekly_refresh],
    sensors=[data_dir_sensor, call_logs_sensor, record_successful_run, record_failed_run],
    resources=resources,
    loggers={"console": dg.colored_console_logger, "progress": progress_logger},
)


def refresh_all_job() -> dg.JobDefinition:
    """Module-level accessor so `dagster.reconstructable` can rebuild the job in a run process."""
    return defs.resolve_job_def("refresh_all")


def call_logs_job_def() -> dg.JobDefinition:
    """Module-level accessor of the partitioned call_logs job (for `dagster.reconstructable`)."""
    return defs.resolve_job_def("call_logs")


def backtest_job_def() -> dg.JobDefinition:
    """Module-level accessor of the backtest job (for `dagster.reconstructable`)."""
    return defs.resolve_job_def("backtest")
