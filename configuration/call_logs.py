"""The schema of config/call_logs.yaml (pydantic) and the call-log loader's settings built from it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from call_logs.config import CallLogConfig, CallLogError
from configuration.schema import validate
from configuration.yaml_file import read_mapping

STRICT = ConfigDict(extra="forbid")


class ColumnMapping(BaseModel):
    """Which column of the user's export holds each field; the optional ones may be left out."""
    model_config = STRICT
    timestamp: str
    model: str
    prompt_tokens: str
    completion_tokens: str
    provider: str | None = None
    cached_tokens: str | None = None
    reasoning_tokens: str | None = None
    status: str | None = None


class CallLogsFile(BaseModel):
    model_config = STRICT
    partitions_start: dt.date = dt.date(2024, 1, 1)
    preset: str = "default"
    presets: dict[str, ColumnMapping] = {}
    columns: ColumnMapping | None = None
    status_ok: list[str] = []
    status_failed: list[str] = []
    memory_limit: str = "1GB"
    temp_directory: str = "var/duckdb_tmp"

    @field_validator("status_ok", "status_failed", mode="before")
    @classmethod
    def _as_text(cls, values):  # YAML reads an unquoted 429 as a number
        return [str(v) for v in values] if isinstance(values, list) else values

    @model_validator(mode="after")
    def _mapping(self) -> "CallLogsFile":
        if self.columns is None and self.preset not in self.presets:
            raise ValueError(f"preset '{self.preset}' is not among presets ({', '.join(self.presets) or 'none'}) "
                             "and there is no `columns:` mapping")
        return self


def load_call_log_config(path: Path | str) -> CallLogConfig:
    """The loader's settings from config/call_logs.yaml, or CallLogError naming the file, key and line."""
    path = Path(path)
    data, text = read_mapping(path, CallLogError)
    try:
        parsed = validate(data, path, text, CallLogsFile)
    except ValueError as exc:
        raise CallLogError(str(exc)) from None
    mapping = parsed.columns or parsed.presets[parsed.preset]
    return CallLogConfig({k: v for k, v in mapping.model_dump().items() if v}, tuple(parsed.status_ok),
                         tuple(parsed.status_failed), parsed.memory_limit, parsed.temp_directory,
                         parsed.partitions_start)
