"""Request-level call logs: a daily-partitioned asset over the log directory (call_logs/loading.py).

A run processes its partition range; with `only_changed` (what `tokens2chips run --call-logs` asks for)
it skips days whose files are unchanged since they were loaded (fingerprint of paths, sizes and mtimes
in meta.call_log_partitions). Each day is replaced by delete + insert in one transaction; a day whose
files cannot be read fails with a clear error and leaves the other days loaded.
"""

import datetime as dt
import warnings
from typing import Any
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from call_logs.loading import CallLogError, changed_days, day_files, load_days
from assets.ingest import POOL
from assets.resources import ProjectSettings


class CallLogRunConfig(dg.Config):
    only_changed: bool = Field(default=False, description="Skip days whose files are unchanged since loaded.")


def call_log_assets(partitions_start: dt.date) -> tuple[dg.AssetsDefinition, Any]:
    """The daily-partitioned asset raw/call_log_daily and its job; `partitions_start` (the first day a
    partition exists for) is `partitions_start` of config/call_logs.yaml, which the code location
    (pipelines/definitions.py) reads."""
    partitions = dg.DailyPartitionsDefinition(start_date=partitions_start.isoformat(), end_offset=1)
    with warnings.catch_warnings():
        # single-run backfills are the point of this asset; Dagster flags the parameter as beta
        warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
        asset = dg.asset(
            key=["raw", "call_log_daily"],
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name="call_logs",
            kinds={"duckdb", "parquet"},
            pool=POOL,
            description="Request-level call logs aggregated per day, model and provider (raw.call_log_daily); "
            "bad rows in raw.call_log_rejects with file, row and reason. One partition per day.",
        )(load_call_log_days)
    job = dg.define_asset_job(
        name="call_logs",
        selection=dg.AssetSelection.assets(asset),
        executor_def=dg.in_process_executor,
        description="Load request-level call logs: day-partitions, a backfill range in one run.",
    )
    return asset, job


def load_call_log_days(context: dg.AssetExecutionContext, config: CallLogRunConfig, warehouse: DuckDBResource,
                       settings: ProjectSettings):
    if not settings.call_logs_dir:
        raise dg.Failure("no call-log directory: set T2C_CALL_LOGS or pass `tokens2chips run --call-logs DIR`",
                         allow_retries=False)
    cfg = settings.call_log_config()
    requested = [dt.date.fromisoformat(k) for k in context.partition_keys]
    loaded, rejected, failures = 0, 0, []
    with warehouse.get_connection() as con:
        con.execute(f"set memory_limit = '{cfg.memory_limit}'")
        Path(cfg.temp_directory).mkdir(parents=True, exist_ok=True)
        con.execute(f"set temp_directory = '{cfg.temp_directory}'")
        files_by_day = day_files(Path(settings.call_logs_dir), cfg, con)
        todo = set(changed_days(con, files_by_day)) if config.only_changed else set(files_by_day)
        batch = {day: files_by_day[day] for day in requested if day in files_by_day and day in todo}
        skipped = sum(1 for day in requested if day in files_by_day and day not in todo)
        try:
            results = load_days(con, batch, cfg)
        except CallLogError as exc:  # a single requested day that cannot be read
            results = {"errors": {next(iter(batch)): str(exc)}}
        for day, message in results.pop("errors", {}).items():
            failures.append(message)
            context.log.error(message)
        for day, result in sorted(results.items()):  # recorded in meta.call_log_partitions by load_days
            loaded += result["rows_loaded"]
            rejected += result["rows_rejected"]
            context.log.info(f"call logs {day}: {result['rows_loaded']:,} rows, {result['rows_rejected']} rejected")
    metadata = {"rows_loaded": dg.MetadataValue.int(loaded), "rows_rejected": dg.MetadataValue.int(rejected),
                "partitions_skipped_unchanged": dg.MetadataValue.int(skipped),
                "partitions_failed": dg.MetadataValue.int(len(failures))}
    if failures:
        raise dg.Failure(description=f"{len(failures)} partition(s) failed; the others are loaded: "
                         + " | ".join(failures), metadata=metadata, allow_retries=False)
    return dg.MaterializeResult(metadata=metadata)

