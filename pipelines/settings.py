"""Environment switching lives here and only here: paths from env vars with the DESIGN.md defaults, and
the run config through which the CLI hands its options to a Dagster run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


PROFILES = ("embedded", "scaled")


class ProfileError(ValueError):
    """T2C_PROFILE names no profile, or the scaled profile's services are not reachable."""


def profile() -> str:
    """The deployment profile, from T2C_PROFILE (`--profile` sets it): 'embedded' (default: SQLite Dagster
    instance, one DuckDB file, in-process executor) or 'scaled' (PostgreSQL Dagster instance, Celery workers
    on Redis, DuckLake warehouse with a PostgreSQL catalog)."""
    name = (os.environ.get("T2C_PROFILE") or "embedded").strip().lower()
    if name not in PROFILES:
        raise ProfileError(f"T2C_PROFILE={name!r}: expected one of {', '.join(PROFILES)}")
    return name


@dataclass(frozen=True)
class Scaled:
    """The scaled profile's services, from the environment (defaults: the local PostgreSQL and Redis)."""

    pg_host: str
    pg_port: int
    pg_user: str
    dagster_db: str       # Dagster's run, event-log and schedule storage
    lake_db: str          # the DuckLake catalog
    lake_data_path: str   # the DuckLake Parquet files: a directory here, an object-store URL in production
    redis_url: str        # the Celery broker and result backend
    redis_prefix: str     # key prefix of every broker/backend key (one per deployment or test)
    visibility_timeout_s: int  # seconds before a task taken by a worker that died is handed to another

    @classmethod
    def from_env(cls) -> "Scaled":
        env = os.environ.get
        return cls(pg_host=env("T2C_PG_HOST", "127.0.0.1"), pg_port=int(env("T2C_PG_PORT", "5432")),
                   pg_user=env("T2C_PG_USER", "postgres"), dagster_db=env("T2C_DAGSTER_DB", "t2c_dagster"),
                   lake_db=env("T2C_LAKE_DB", "t2c_lake"),
                   lake_data_path=env("T2C_LAKE_DATA_PATH", str(PROJECT_ROOT / "var" / "lake")),
                   redis_url=env("T2C_REDIS_URL", "redis://127.0.0.1:6379/0"),
                   redis_prefix=env("T2C_REDIS_PREFIX", "t2c:"),
                   visibility_timeout_s=int(env("T2C_CELERY_VISIBILITY_S", "3600")))

    def dsn(self, database: str) -> str:
        """libpq connection string of one database on the server."""
        return f"dbname={database} host={self.pg_host} port={self.pg_port} user={self.pg_user}"

    def lake(self):
        from warehouse.lake import LakeSpec

        return LakeSpec(self.dsn(self.lake_db), self.lake_data_path)


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    warehouse: Path
    reports_dir: Path
    assumptions: Path
    lake: object = None  # warehouse.lake.LakeSpec in the scaled profile: the warehouse itself

    @property
    def target(self):
        """What the warehouse connections open: the DuckLake warehouse (scaled) or the DuckDB file."""
        return self.lake or self.warehouse

    @classmethod
    def from_env(cls, **overrides: str | Path | None) -> "Paths":
        def pick(name: str, env: str, default: Path) -> Path:
            value = overrides.get(name) or os.environ.get(env) or default
            return Path(value).expanduser().resolve()

        return cls(
            data_dir=pick("data_dir", "T2C_DATA_DIR", PROJECT_ROOT / "data"),
            warehouse=pick("warehouse", "T2C_WAREHOUSE", PROJECT_ROOT / "var" / "warehouse.duckdb"),
            reports_dir=pick("reports_dir", "T2C_REPORTS_DIR", PROJECT_ROOT / "var" / "reports"),
            assumptions=pick("assumptions", "T2C_ASSUMPTIONS", PROJECT_ROOT / "config" / "assumptions.yaml"),
            lake=Scaled.from_env().lake() if profile() == "scaled" and not overrides.get("warehouse") else None,
        )


CALL_LOGS_CONFIG = PROJECT_ROOT / "config" / "call_logs.yaml"


def warehouse_from_env() -> bool:
    """Whether the user chose the warehouse through T2C_WAREHOUSE."""
    return bool(os.environ.get("T2C_WAREHOUSE"))


def call_logs_dir() -> str:
    return os.environ.get("T2C_CALL_LOGS", "")


def as_of_from_env() -> str:
    return os.environ.get("T2C_AS_OF", "")


def debug() -> bool:
    """T2C_DEBUG=1: a failing CLI command shows its traceback."""
    return bool(os.environ.get("T2C_DEBUG"))


def feed_settings():
    """Base URL overrides (T2C_FEED_<SOURCE>_URL, e.g. a mirror or a recorded-payload server) and API keys
    (OPENROUTER_API_KEY) of the public feeds."""
    from feeds.catalog import FEEDS, FeedSettings

    urls = {s: os.environ[f"T2C_FEED_{s.upper()}_URL"] for s in FEEDS if os.environ.get(f"T2C_FEED_{s.upper()}_URL")}
    keys = {s: os.environ[f.needs_key] for s, f in FEEDS.items() if f.needs_key and os.environ.get(f.needs_key)}
    return FeedSettings(urls=urls, keys=keys)


SCALED_HOME = PROJECT_ROOT / "deploy" / "scaled"


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME defaults to the project root, where dagster.yaml is the instance config (SQLite); in the
    scaled profile to deploy/scaled/, whose dagster.yaml keeps the instance in PostgreSQL."""
    default = SCALED_HOME if profile() == "scaled" else PROJECT_ROOT
    if profile() == "scaled":
        scaled = Scaled.from_env()
        os.environ.setdefault("T2C_DAGSTER_PG_URL",
                              f"postgresql+psycopg2://{scaled.pg_user}@{scaled.pg_host}:{scaled.pg_port}/{scaled.dagster_db}")
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(default))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def settings_config(paths: Paths, as_of: str = "", call_logs: str = "", call_logs_config: str = "") -> dict:
    """The fields of the project-settings resource (assets/resources.py ProjectSettings)."""
    return {"data_dir": str(paths.data_dir), "assumptions_path": str(paths.assumptions),
            "reports_dir": str(paths.reports_dir), "as_of": as_of, "call_logs_dir": call_logs,
            "call_logs_config": call_logs_config or os.environ.get("T2C_CALL_LOGS_CONFIG", str(CALL_LOGS_CONFIG))}


def celery_executor_config() -> dict:
    """The celery executor's config (broker, backend, Celery settings) for the scaled profile: Redis as broker and
    result backend, every key under the deployment's prefix; one task at a time per worker process."""
    scaled = Scaled.from_env()
    prefix = {"global_keyprefix": scaled.redis_prefix}
    return {"broker": scaled.redis_url, "backend": scaled.redis_url,
            # acks_late + visibility_timeout: a task whose worker died unacknowledged goes back on the queue after
            # the timeout and another worker runs it (the day is replaced whole, so a re-run is safe)
            "config_source": {"broker_transport_options": {**prefix, "max_retries": 3, "interval_start": 0,
                                                           "interval_step": 0.2, "interval_max": 0.5,
                                                           "visibility_timeout": scaled.visibility_timeout_s,
                                                           # sweep for such tasks every few seconds (kombu's
                                                           # default can wait 100 s): one ZRANGE a sweep
                                                           "unacked_restore_interval": max(
                                                               1, min(10, scaled.visibility_timeout_s // 5)),
                                                           "unacked_restore_throttle": 1},
                              "result_backend_transport_options": prefix, "worker_prefetch_multiplier": 1,
                              "task_acks_late": True, "task_reject_on_worker_lost": True}}


def redis_io_config() -> dict:
    scaled = Scaled.from_env()
    return {"url": scaled.redis_url, "prefix": scaled.redis_prefix}


def warehouse_config(paths: Paths) -> dict:
    """The fields of the warehouse resource (assets/resources.py Warehouse): the DuckDB file, or the lake."""
    if paths.lake is not None:
        return {"database": str(paths.warehouse), "lake_catalog": paths.lake.catalog,
                "lake_data_path": paths.lake.data_path}
    return {"database": str(paths.warehouse)}


def run_config(paths: Paths, as_of: str = "", call_logs: str = "") -> dict:
    """Run config that points a run's resources at `paths`, `as_of` and `call_logs` (how the CLI passes its
    options into a Dagster run; the code location's own resources come from the environment)."""
    return {"resources": {"warehouse": {"config": warehouse_config(paths)},
                          "settings": {"config": settings_config(paths, as_of, call_logs)}}}


def build_resources() -> dict:
    """The resources of the code location (warehouse, project settings), configured from the environment
    (T2C_DATA_DIR, T2C_WAREHOUSE, T2C_REPORTS_DIR, T2C_ASSUMPTIONS, T2C_AS_OF, T2C_CALL_LOGS,
    T2C_CALL_LOGS_CONFIG), as `dagster dev` and the daemon's runs see them."""
    from assets.resources import ProjectSettings, Warehouse

    paths = Paths.from_env()
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {"warehouse": Warehouse(**warehouse_config(paths)),
            "settings": ProjectSettings(**settings_config(paths, as_of_from_env(), call_logs_dir()))}
