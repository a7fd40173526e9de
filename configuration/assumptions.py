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


LEAF_KEYS = {"value", "low", "high", "unit", "rationale", "source"}


def load_assumptions(path: Path | str) -> dict[str, Any]:
    """config/assumptions.yaml as a mapping, checked against the typed schema (configuration/schema.py)."""
    return load_configuration(path).data


@dataclass(frozen=True)
class Configuration:
    """The assumptions file read and validated once: the typed model (what the libraries take as arguments:
    hardware.build, forecasts.pipeline, the serving context), its mapping with the schema's defaults (from
    which meta.assumptions' rows are flattened), and those rows."""

    path: Path
    data: dict[str, Any]
    model: "Assumptions"

    def rows(self) -> pl.DataFrame:
        """meta.assumptions' rows (flattened once per configuration object)."""
        return self._rows

    @cached_property
    def _rows(self) -> pl.DataFrame:
        return flatten_assumptions(self.data, self.path)


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


def _is_leaf(node: Any) -> bool:
    return isinstance(node, dict) and "unit" in node and ("value" in node or "low" in node)


def flatten_assumptions(data: dict[str, Any], path: Path | str = "assumptions.yaml") -> pl.DataFrame:
    """Rows of (name, value, low, high, unit, rationale, source, kind) for every numeric assumption of a
    validated mapping (load_configuration: every leaf has a rationale, a source and low <= value <= high).
    kind: 'setting' for a run setting or threshold (configuration.schema.Setting: draws, origins,
    tolerances, report levels), 'definition' for a definition (configuration.schema.Definition: the
    H100-equivalent), 'assumption' for a modelling assumption (which states its range).

    A leaf is a mapping with `unit` and `value` (or `low`/`high`); structured sections such as
    scenarios are documented by their own entries and are not flattened here. A missing value is the
    midpoint of low and high; a missing bound is the value.
    """
    from configuration.schema import Quantity, kinds

    rows: list[dict[str, Any]] = []

    def walk(prefix: str, node: Any) -> None:
        if _is_leaf(node):
            # the typed entry's rule (Quantity.span): a missing value is the midpoint, a missing bound the value
            low, value, high = Quantity.model_construct(
                **{k: None if node.get(k) is None else float(node[k]) for k in ("value", "low", "high")}).span()
            rows.append({"name": prefix, "value": value, "low": low, "high": high,
                         "unit": str(node["unit"]), "rationale": " ".join(str(node["rationale"]).split()),
                         "source": str(node.get("source") or "")})
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)

    walk("", data)
    kind = kinds()
    for row in rows:
        row["kind"] = kind.get(row["name"], "assumption")
    schema = {"name": pl.Utf8, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64,
              "unit": pl.Utf8, "rationale": pl.Utf8, "source": pl.Utf8, "kind": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)
