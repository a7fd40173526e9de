"""Which warehouse file a reading command (query, report, export) opens, and whether it can be read."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.settings import Paths


def read_target(warehouse_arg: str | None) -> Path:
    """The DuckDB file a reader opens: --warehouse / T2C_WAREHOUSE as given, else the published copy of the
    default warehouse (the live file is the writer's), else the live file if nothing is published yet."""
    from warehouse.io import published_copy

    if warehouse_arg or os.environ.get("T2C_WAREHOUSE"):
        return Paths.from_env(warehouse=warehouse_arg).warehouse
    default = Paths.from_env().warehouse
    return published_copy(default) if published_copy(default).exists() else default

def unreadable(path: Path) -> str | None:
    from warehouse.io import not_a_database

    if not path.exists():
        return f"warehouse {path} does not exist; run `tokens2chips run` first"
    return not_a_database(path)
