"""Which warehouse file a reading command (query, report, export) opens, and whether it can be read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipelines.settings import Paths, warehouse_from_env


def read_target(warehouse_arg: str | None, published_of_env: bool = False) -> Path:
    """The DuckDB file a reader opens: --warehouse as given; T2C_WAREHOUSE as given (or, with
    `published_of_env`, its published copy when there is one); else the published copy of the default
    warehouse (the live file is the writer's), else the live file if nothing is published yet."""
    from warehouse.io import published_copy

    lake = Paths.from_env(warehouse=warehouse_arg).lake
    if lake is not None:  # the scaled profile: the DuckLake warehouse, at a snapshot if T2C_SNAPSHOT names one
        return lake.at(os.environ.get("T2C_SNAPSHOT") or None)
    if warehouse_arg:
        return Paths.from_env(warehouse=warehouse_arg).warehouse
    if warehouse_from_env() and not published_of_env:
        return Paths.from_env().warehouse
    default = Paths.from_env().warehouse
    return published_copy(default) if published_copy(default).exists() else default


def unreadable(path: Path) -> str | None:
    from warehouse.io import not_a_database

    if hasattr(path, "catalog"):  # a DuckLake warehouse: its catalog must answer
        return not_a_database(path)
    if not path.exists():
        return f"warehouse {path} does not exist; run `tokens2chips run` first"
    return not_a_database(path)


def open_reader(path: Path, opener):
    """(connection, None) for a readable warehouse file, else (None, 2) after printing one `error:` line.
    `opener(path)` opens it (read-only; the query command adds its locked-down settings)."""
    from warehouse.io import WarehouseError

    problem = unreadable(path)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return None, 2
    try:
        return opener(path), None
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
