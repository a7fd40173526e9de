"""Resources of the code location, configured from the environment (pipelines/settings.py)."""

from __future__ import annotations

import os

from assets.resources import ProjectSettings, Warehouse
from pipelines.settings import CALL_LOGS_CONFIG, Paths, call_logs_dir


def build_resources() -> dict:
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
