"""The scaled profile's call-log load: one step per day-partition, run by Celery workers (dagster-celery on the
Redis broker), each worker loading its own days into the DuckLake warehouse.

    plan_days -> load_day (mapped: one step per day, on any worker) -> loaded (fan-in: totals, failures)

A day's load is the same library call as in the embedded profile (call_logs/loading.load_days: delete + insert
of the day in one transaction). On DuckLake that transaction is a snapshot commit, so a worker killed
mid-partition commits nothing and a re-run loads the day whole. A PostgreSQL advisory lock per day
(warehouse/lake.day_lock) serialises two loads of the same day, so they end with one copy; a commit that
loses a race with another day's commit is retried. Each step records a materialisation of
raw/call_log_daily for its partition, so the Dagster UI shows the partitions loaded as for the embedded job.
Steps exchange only small values (a day with its file list, counts) through the Redis IO manager; the directory is
listed once, by plan_days. Workers need no shared disk beyond the call-log files (an object-store prefix in
production).
"""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
from dagster_celery import celery_executor
from pydantic import Field

from assets.resources import ProjectSettings, RedisIOManager, Warehouse
from pipelines.progress import progress_logger
from call_logs.config import CallLogError
from call_logs.loading import changed_days, day_files
from call_logs.parallel import load_day_exclusive


class PlanConfig(dg.Config):
    days: list[str] = Field(default_factory=list, description="Days (YYYY-MM-DD) to load; empty = every day found.")
    only_changed: bool = Field(default=False, description="Skip days whose files are unchanged since loaded.")


@dg.op(out=dg.DynamicOut(dict), description="The day-partitions to load (day, files, flat layout), one dynamic "
       "output each: the directory is listed once, here.")
def plan_days(context: dg.OpExecutionContext, config: PlanConfig, warehouse: Warehouse, settings: ProjectSettings):
    if not settings.call_logs_dir:
        raise dg.Failure("no call-log directory: set T2C_CALL_LOGS or pass `tokens2chips run --call-logs DIR`",
                         allow_retries=False)
    cfg = settings.call_log_config()
    with warehouse.get_connection() as con:
        found = day_files(Path(settings.call_logs_dir), cfg, con)
        todo = set(changed_days(con, found)) if config.only_changed else set(found)
    wanted = {dt.date.fromisoformat(d) for d in config.days} if config.days else set(found)
    days = sorted(d for d in wanted if d in found and d in todo)
    context.log.info(f"{len(days)} day-partition(s) to load on the workers")
    for day in days:
        files, flat = found[day]
        yield dg.DynamicOutput({"day": day.isoformat(), "files": [str(f) for f in files], "flat": flat},
                               mapping_key=day.isoformat().replace("-", "_"))


@dg.op(description="Load one day-partition into raw.call_log_daily / raw.call_log_rejects (one commit).")
def load_day(context: dg.OpExecutionContext, part: dict, warehouse: Warehouse, settings: ProjectSettings):
    day = part["day"]
    started = time.perf_counter()
    try:
        counts = load_day_exclusive(warehouse.get_connection, warehouse.lake_catalog, dt.date.fromisoformat(day),
                                    part["files"], part["flat"], settings.call_log_config(),
                                    on_retry=lambda n, exc: context.log.warning(
                                        f"call logs {day}: commit conflict, retry {n}: {exc}"))
    except CallLogError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    seconds = time.perf_counter() - started
    context.log.info(f"call logs {day}: {counts['rows_loaded']:,} rows, {counts['rows_rejected']} rejected "
                     f"({seconds:.1f} s)")
    yield dg.AssetMaterialization(asset_key=["raw", "call_log_daily"], partition=day, metadata={
        "rows_loaded": dg.MetadataValue.int(int(counts["rows_loaded"])),
        "rows_rejected": dg.MetadataValue.int(int(counts["rows_rejected"])),
        "seconds": dg.MetadataValue.float(seconds)})
    yield dg.Output({"day": day, "rows_loaded": int(counts["rows_loaded"]),
                     "rows_rejected": int(counts["rows_rejected"]), "seconds": seconds})


@dg.op(description="Totals of the day loads.")
def loaded(context: dg.OpExecutionContext, results: list[dict]) -> dict:
    total = {"days": len(results), "rows_loaded": sum(r["rows_loaded"] for r in results),
             "rows_rejected": sum(r["rows_rejected"] for r in results)}
    context.log.info(f"call logs: {total['days']} day(s), {total['rows_loaded']:,} rows loaded, "
                     f"{total['rows_rejected']:,} rejected")
    return total


@dg.job(executor_def=celery_executor,
        logger_defs={"console": dg.colored_console_logger, "progress": progress_logger},
        resource_defs={"warehouse": Warehouse.configure_at_launch(), "settings": ProjectSettings.configure_at_launch(),
                       "io_manager": RedisIOManager.configure_at_launch()},
        description="Scaled profile: load request-level call-log day-partitions on the Celery workers "
        "(one step per day), into the DuckLake warehouse.")
def call_logs_parallel():
    loaded(plan_days().map(load_day).collect())
