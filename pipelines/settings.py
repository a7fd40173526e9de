"""Environment switching lives here and only here: paths from env vars with the DESIGN.md defaults, and
the run config through which the CLI hands its options to a Dagster run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    warehouse: Path
    reports_dir: Path
    assumptions: Path

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


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME defaults to the project root, where dagster.yaml is the instance config."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def settings_config(paths: Paths, as_of: str = "", call_logs: str = "", call_logs_config: str = "") -> dict:
    """The fields of the project-settings resource (assets/resources.py ProjectSettings)."""
    return {"data_dir": str(paths.data_dir), "assumptions_path": str(paths.assumptions),
            "reports_dir": str(paths.reports_dir), "as_of": as_of, "call_logs_dir": call_logs,
            "call_logs_config": call_logs_config or os.environ.get("T2C_CALL_LOGS_CONFIG", str(CALL_LOGS_CONFIG))}


def run_config(paths: Paths, as_of: str = "", call_logs: str = "") -> dict:
    """Run config that points a run's resources at `paths`, `as_of` and `call_logs` (how the CLI passes its
    options into a Dagster run; the code location's own resources come from the environment)."""
    return {"resources": {"warehouse": {"config": {"database": str(paths.warehouse)}},
                          "settings": {"config": settings_config(paths, as_of, call_logs)}}}


def build_resources() -> dict:
    """The resources of the code location (warehouse, project settings), configured from the environment
    (T2C_DATA_DIR, T2C_WAREHOUSE, T2C_REPORTS_DIR, T2C_ASSUMPTIONS, T2C_AS_OF, T2C_CALL_LOGS,
    T2C_CALL_LOGS_CONFIG), as `dagster dev` and the daemon's runs see them."""
    from assets.resources import ProjectSettings, Warehouse

    paths = Paths.from_env()
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {"warehouse": Warehouse(database=str(paths.warehouse)),
            "settings": ProjectSettings(**settings_config(paths, as_of_from_env(), call_logs_dir()))}
