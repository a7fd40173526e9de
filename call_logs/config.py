"""Call-log loading, shared pieces: the column-mapping config (config/call_logs.yaml), the canonical
columns, the error type, and the temp tables a load builds (see call_logs/loading.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from warehouse.io import quote_text

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
    columns: dict[str, str]
    status_ok: tuple[str, ...]
    status_failed: tuple[str, ...]
    memory_limit: str = "1GB"
    temp_directory: str = "var/duckdb_tmp"

    @staticmethod
    def raw(path: Path | str) -> dict:
        path = Path(path)
        if not path.is_file():
            raise CallLogError(f"call-log config {path} not found")
        return yaml.safe_load(path.read_text()) or {}

    @classmethod
    def load(cls, path: Path | str) -> "CallLogConfig":
        raw = cls.raw(path)
        preset = raw.get("preset", "default")
        columns = dict(raw.get("columns") or raw["presets"][preset])
        missing = [c for c in REQUIRED if not columns.get(c)]
        if missing:
            raise CallLogError(f"{path}: column mapping lacks {missing}")
        return cls(columns, tuple(str(s) for s in raw.get("status_ok", [])),
                   tuple(str(s) for s in raw.get("status_failed", [])), str(raw.get("memory_limit", "1GB")),
                   str(raw.get("temp_directory", "var/duckdb_tmp")))


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
