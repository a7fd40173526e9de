"""One day-partition loaded by one of several concurrent workers (the scaled profile; no Dagster here).

The load itself is call_logs.loading.load_days: delete + insert of the day in one transaction, which on a
DuckLake warehouse is one snapshot commit (a worker that dies before it commits leaves nothing behind). Around
it: a PostgreSQL advisory lock on the day (warehouse.lake.day_lock), so that two loads of the same day run one
after the other and end with one copy; and retries of a commit that lost a race with another day's commit.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

from call_logs.config import CallLogConfig, CallLogError
from call_logs.loading import load_days
from warehouse.lake import day_lock, is_conflict

TABLE = "raw.call_log_daily"


def load_day_exclusive(open_connection: Callable[[], AbstractContextManager], catalog: str, day: dt.date,
                       files: list[Path], from_flat: bool, cfg: CallLogConfig, retries: int = 8,
                       on_retry: Callable[[int, Exception], None] | None = None) -> dict:
    """Load `day` from its `files` (call_logs.loading.day_files: the day's folder, or the flat files that
    cover it) under the day's lock; returns load_days' counts of the day. `open_connection()` yields a
    warehouse connection (one per attempt); `catalog` is the lake's catalog (empty: no lock, as for a DuckDB
    file). Raises CallLogError for a day that cannot be read."""
    with day_lock(catalog, TABLE, day):
        for attempt in range(retries):
            try:
                with open_connection() as con:
                    con.execute(f"set memory_limit = '{cfg.memory_limit}'")
                    result = load_days(con, {day: ([Path(f) for f in files], from_flat)}, cfg)
                break
            except CallLogError:
                raise
            except Exception as exc:  # a commit that lost a race with another writer: retry it
                if not is_conflict(exc) or attempt == retries - 1:
                    raise
                if on_retry:
                    on_retry(attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
    if result.get("errors"):
        raise CallLogError(next(iter(result["errors"].values())))
    return result[day]
