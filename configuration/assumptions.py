"""Read config/assumptions.yaml, check that every entry is complete, and flatten it into rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import yaml


class AssumptionsError(ValueError):
    pass


LEAF_KEYS = {"value", "low", "high", "unit", "rationale", "source"}


def load_assumptions(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AssumptionsError(f"{path}: assumptions file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AssumptionsError(f"{path}{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as exc:
        raise AssumptionsError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    if not isinstance(data, dict):
        raise AssumptionsError(f"{path}: expected a mapping of sections at the top level")
    from configuration.schema import validate

    try:
        validate(data, path, path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AssumptionsError(str(exc)) from None
    return data


def _is_leaf(node: Any) -> bool:
    return isinstance(node, dict) and "unit" in node and ("value" in node or "low" in node)


def flatten_assumptions(data: dict[str, Any], path: Path | str = "assumptions.yaml") -> pl.DataFrame:
    """Rows of (name, value, low, high, unit, rationale, source) for every numeric assumption.

    A leaf is a mapping with `unit` and `value` (or `low`/`high`); structured sections such as
    scenarios are documented by their own entries and are not flattened here.
    """
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, node: Any) -> None:
        if _is_leaf(node):
            if not node.get("rationale"):
                raise AssumptionsError(f"{path}: assumption '{prefix}' has no rationale")
            value, low, high = node.get("value"), node.get("low"), node.get("high")
            if value is None:
                if low is None or high is None:
                    raise AssumptionsError(f"{path}: assumption '{prefix}' needs a value or both low and high")
                value = (float(low) + float(high)) / 2
            for label, v in (("value", value), ("low", low), ("high", high)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                      or not math.isfinite(v)):
                    raise AssumptionsError(f"{path}: assumption '{prefix}' {label} {v!r} is not a finite number")
            low = value if low is None else low
            high = value if high is None else high
            if not float(low) <= float(value) <= float(high):
                raise AssumptionsError(f"{path}: assumption '{prefix}' needs low <= value <= high")
            rows.append(
                {
                    "name": prefix,
                    "value": float(value),
                    "low": float(low),
                    "high": float(high),
                    "unit": str(node["unit"]),
                    "rationale": " ".join(str(node["rationale"]).split()),
                    "source": str(node.get("source") or ""),
                }
            )
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)

    walk("", data)
    schema = {"name": pl.Utf8, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64,
              "unit": pl.Utf8, "rationale": pl.Utf8, "source": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)
