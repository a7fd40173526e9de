"""Read config/assumptions.yaml once, validated against its schema, and flatten it into rows for meta.assumptions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from configuration.yaml_file import read_mapping

if TYPE_CHECKING:
    from configuration.schema import Assumptions


class AssumptionsError(ValueError):
    pass


def load_assumptions(path: Path | str) -> dict[str, Any]:
    """config/assumptions.yaml as a mapping, checked against the typed schema (configuration/schema.py)."""
    return load_configuration(path).data


@dataclass(frozen=True)
class Configuration:
    """The assumptions file read and validated once: the typed model (what the libraries take as arguments:
    hardware.build, forecasts.pipeline, the serving context, and what meta.assumptions' rows are flattened
    from), its mapping with the schema's defaults (what the what-if command edits), and those rows."""

    path: Path
    data: dict[str, Any]
    model: "Assumptions"

    def rows(self) -> pl.DataFrame:
        """meta.assumptions' rows (flattened once per configuration object)."""
        return self._rows

    @cached_property
    def _rows(self) -> pl.DataFrame:
        return flatten_assumptions(self.model)


def load_configuration(path: Path | str) -> Configuration:
    """The file validated; its mapping carries the schema's defaults for the optional keys it leaves out."""
    from configuration.schema import validate, with_defaults

    path = Path(path)
    data, text = read_mapping(path, AssumptionsError)
    try:
        model = validate(data, path, text)
    except ValueError as exc:
        raise AssumptionsError(str(exc)) from None
    return Configuration(path, with_defaults(data, model), model)


@cache
def _cached(path: Path, mtime_ns: int, size: int) -> Configuration:
    return load_configuration(path)


def configuration(path: Path | str) -> Configuration:
    """load_configuration, once per file version in a process: the steps of a run share one validated
    object (callers must not change its mapping)."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError:
        return load_configuration(path)  # names the missing file
    return _cached(path, stat.st_mtime_ns, stat.st_size)


def flatten_assumptions(model: Assumptions) -> pl.DataFrame:
    """Rows of (name, value, low, high, unit, rationale, source, kind) for every numeric entry of the typed
    configuration (configuration.schema.entries: the walk the libraries' named lookups use too), by dotted
    name. kind: 'setting' for a run setting or threshold (configuration.schema.Setting: draws, origins,
    tolerances, report levels), 'definition' for a definition (configuration.schema.Definition: the
    H100-equivalent), 'assumption' for a modelling assumption (which states its range). A missing value is
    the midpoint of low and high, a missing bound the value (Quantity.span). Structured sections (segments,
    scenarios, chip overrides) are documented by their own entries and are not flattened here."""
    from configuration.schema import entries

    rows = [{"name": name, **dict(zip(("low", "value", "high"), entry.span())), "unit": entry.unit,
             "rationale": " ".join(entry.rationale.split()), "source": entry.source, "kind": entry.kind}
            for name, entry in entries(model).items()]
    schema = {"name": pl.Utf8, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64,
              "unit": pl.Utf8, "rationale": pl.Utf8, "source": pl.Utf8, "kind": pl.Utf8}
    return pl.DataFrame(rows, schema=schema).select(list(schema))
