"""Resources: the warehouse, and the project settings (where the inputs, configuration and reports are, the
as-of date), which hand the assets the validated configuration."""


import datetime as dt
from pathlib import Path

from contextlib import contextmanager

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from call_logs.config import CallLogConfig
from configuration.assumptions import Configuration, configuration
from configuration.call_logs import load_call_log_config
from warehouse.io import WarehouseLockedError, connect


class Warehouse(DuckDBResource):
    """The DuckDB warehouse: short-lived connections, always closed (also when the block raises),
    a bounded wait while another process holds the file lock, then a step retry (Dagster
    RetryRequested) instead of a failure, because a lock is transient."""

    lock_wait_s: float = Field(default=30.0, description="Seconds to wait for the file lock per attempt.")
    lock_retries: int = Field(default=3, description="Step retries after a lock wait timed out.")
    retry_wait_s: float = Field(default=10.0, description="Seconds before such a retry.")
    lake_catalog: str = Field(default="", description="Scaled profile: the DuckLake catalog (libpq connection "
                              "string of its PostgreSQL database); empty = the DuckDB file `database`.")
    lake_data_path: str = Field(default="", description="Scaled profile: the DuckLake data path (directory or "
                                "object-store URL).")

    def target(self):
        """The DuckDB file, or the DuckLake warehouse (warehouse.lake.LakeSpec)."""
        if self.lake_catalog:
            from warehouse.lake import LakeSpec

            return LakeSpec(self.lake_catalog, self.lake_data_path)
        return self.database

    @contextmanager
    def get_connection(self):
        try:
            con = connect(self.target(), config=self.connection_config, wait_s=self.lock_wait_s)
        except WarehouseLockedError as exc:
            raise dg.RetryRequested(max_retries=self.lock_retries, seconds_to_wait=self.retry_wait_s) from exc
        try:
            yield con
        finally:
            con.close()


class ProjectSettings(dg.ConfigurableResource):
    data_dir: str = Field(description="Directory of the input CSV files (one per source).")
    assumptions_path: str = Field(description="Path of the assumptions YAML file.")
    reports_dir: str = Field(description="Directory the analyst reports are written under.")
    as_of: str = Field(default="", description="As-of date (YYYY-MM-DD) of the run; empty means today (UTC).")
    call_logs_dir: str = Field(default="", description="Directory of request-level call logs; empty = none.")
    call_logs_config: str = Field(default="", description="Path of config/call_logs.yaml (column mapping, limits).")
    fetch_feeds: bool = Field(default=False, description="Observing a feed fetches it first (the weekly fetch_feeds "
                              "job sets this; runs read the saved payloads only).")

    def as_of_date(self) -> dt.date:
        if not self.as_of:
            return dt.datetime.now(dt.timezone.utc).date()
        try:
            return dt.date.fromisoformat(self.as_of)
        except ValueError:
            raise ValueError(f"as_of {self.as_of!r} is not a date (expected YYYY-MM-DD)") from None

    def data_path(self, file_name: str) -> Path:
        return Path(self.data_dir) / file_name

    def configuration(self) -> Configuration:
        """config/assumptions.yaml validated, one object per file version and process (the steps of a run
        share it; libraries get its typed model, `.model`, as an argument)."""
        return configuration(self.assumptions_path)

    def call_log_config(self) -> CallLogConfig:
        return load_call_log_config(self.call_logs_config)


class RedisIOManager(dg.ConfigurableIOManager):
    """Step outputs in Redis (pickled, expiring after a week): small values (day keys, counts) handed between
    steps that run on different machines (the scaled profile's Celery workers), with no shared disk."""

    url: str = Field(description="Redis URL, e.g. redis://127.0.0.1:6379/0.")
    prefix: str = Field(default="t2c:", description="Key prefix (one per deployment or test).")
    ttl_s: int = Field(default=7 * 24 * 3600, description="Seconds a stored output is kept.")

    def _key(self, identifier: list[str]) -> str:
        return self.prefix + "io:" + ":".join(identifier)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        import pickle

        import redis

        redis.Redis.from_url(self.url).set(self._key(context.get_identifier()), pickle.dumps(obj), ex=self.ttl_s)

    def load_input(self, context: dg.InputContext):
        import pickle

        import redis

        key = self._key(context.upstream_output.get_identifier())
        value = redis.Redis.from_url(self.url).get(key)
        if value is None:
            raise dg.Failure(f"step output {key} is not in Redis ({self.url}); it expired or was never written")
        return pickle.loads(value)
