"""Call-log loading, shared pieces: the column-mapping config (config/call_logs.yaml), the canonical
columns, the typed column map of a batch of files, the error type, and the temp tables a load builds
(see call_logs/loading.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from warehouse.io import quote_ident, quote_text

CANONICAL = ("timestamp", "model", "provider", "prompt_tokens", "completion_tokens", "cached_tokens",
             "reasoning_tokens", "status")
REQUIRED = ("timestamp", "model", "prompt_tokens", "completion_tokens")
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".gz": "csv"}
# CSV read buffer: 4 MB rather than DuckDB's 32 MB lets both threads share a single day file (an
# incremental run reads one) and balances many files better (bench/ingest_bench.py: about 15% faster);
# it must stay above max_line_size (2 MB)
CSV_BUFFER_BYTES = 4 << 20
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


class CallLogError(ValueError):
    """A call-log file or partition cannot be read; the message names the file."""


@dataclass(frozen=True)
class CallLogConfig:
    """The loader's settings (configuration/call_logs.py builds them from config/call_logs.yaml): canonical
    column -> the export's column (optional ones may be absent), the status values, DuckDB's limits."""

    columns: dict[str, str]
    status_ok: tuple[str, ...]
    status_failed: tuple[str, ...]
    memory_limit: str = "1GB"
    temp_directory: str = "var/duckdb_tmp"
    partitions_start: dt.date = dt.date(2024, 1, 1)


@dataclass(frozen=True)
class ColumnMap:
    """Which column of a batch's files holds each canonical column (absent optional columns are not in
    `sources`), and the type the files give it (DuckDB's type name; every CSV column is VARCHAR)."""

    sources: dict[str, str]
    types: dict[str, str]

    def has(self, name: str) -> bool:
        return name in self.sources

    def sql(self, name: str) -> str:
        """The column as a SQL expression: its quoted name, or a null when the files lack it."""
        return quote_ident(self.sources[name]) if name in self.sources else "null"

    def text(self, name: str) -> str:
        """The column as text (an absent one a VARCHAR null, not DuckDB's default INTEGER null)."""
        if name not in self.sources:
            return "null::varchar"
        return self.sql(name) if self.types.get(name) == "VARCHAR" else f"cast({self.sql(name)} as varchar)"

    @property
    def tokens(self) -> list[str]:
        """The token-count columns the files hold."""
        return [t for t in TOKENS if t in self.sources]

    def is_integer(self, name: str) -> bool:
        return self.types.get(name) in INTEGER_TYPES

    def is_timestamp(self, name: str) -> bool:
        return self.types.get(name, "").startswith("TIMESTAMP")

    def canonical_by_source(self) -> dict[str, str]:
        return {source: name for name, source in self.sources.items()}


def file_format(files: list[Path]) -> str:
    kinds = {SUFFIXES[p.suffix] for p in files}
    if len(kinds) != 1:
        raise CallLogError(f"mixed Parquet and CSV files in one partition: {[str(p) for p in files]}")
    return kinds.pop()


def sql_list(files: list[Path]) -> str:
    return "[" + ", ".join(quote_text(str(p)) for p in files) + "]"


def day_by_file(days: dict[dt.date, list[Path]]) -> dict[Path, dt.date]:
    """Each file's day-partition (a day folder's files belong to that day only)."""
    return {path: day for day, files in days.items() for path in files}


TEMP_TABLES = ("_call_log_batch", "_call_log_bad", "_call_log_cast_bad", "_file_day", "_call_log_p2",
                "_call_log_rej", "_call_log_scan", "_call_log_rej2", "_call_log_scan2")
CAST_BAD_TABLE = "create or replace temp table _call_log_cast_bad (file_index bigint, day date, file varchar, " \
                  "row_number bigint, reason varchar)"
BAD_TABLE = """create or replace temp table _call_log_bad (file_index bigint, day date, file varchar,
    row_number bigint, reason varchar, model varchar, provider varchar, status varchar, prompt_tokens double,
    completion_tokens double, cached_tokens double, reasoning_tokens double)"""
