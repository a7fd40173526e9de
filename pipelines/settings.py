"""Environment switching lives here and only here: paths from env vars with the DESIGN.md defaults."""

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

    def export(self) -> None:
        """Put these paths into the environment so a Dagster run (and its resources) sees them."""
        os.environ["T2C_DATA_DIR"] = str(self.data_dir)
        os.environ["T2C_WAREHOUSE"] = str(self.warehouse)
        os.environ["T2C_REPORTS_DIR"] = str(self.reports_dir)
        os.environ["T2C_ASSUMPTIONS"] = str(self.assumptions)


CALL_LOGS_CONFIG = PROJECT_ROOT / "config" / "call_logs.yaml"


def call_logs_dir() -> str:
    return os.environ.get("T2C_CALL_LOGS", "")


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME defaults to the project root, where dagster.yaml is the instance config."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def build_resources() -> dict:
    """The resources of the code location (warehouse, project settings), configured from the environment."""
    from assets.resources import ProjectSettings, Warehouse

    paths = Paths.from_env()
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {
        "warehouse": Warehouse(database=str(paths.warehouse)),
        "settings": ProjectSettings(
            data_dir=str(paths.data_dir),
            assumptions_path=str(paths.assumptions),
            reports_dir=str(paths.reports_dir),
            as_of=os.environ.get("T2C_AS_OF", ""),
            call_logs_dir=call_logs_dir(),
            call_logs_config=os.environ.get("T2C_CALL_LOGS_CONFIG", str(CALL_LOGS_CONFIG)),
        ),
    }
