"""Build Chip and LlmSpec (LLM architecture) objects from the spec-sheet and model-catalog frames (polars in)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import polars as pl

from hardware.roofline import Chip, LlmSpec

if TYPE_CHECKING:
    from configuration.schema import Assumptions


def _num(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def chip_overrides(config: Assumptions) -> dict[str, dict]:
    """The assumptions file's chip_overrides as chips_from_frame takes them: per chip, the spec fields it sets
    (the rationale is text for the reader)."""
    return {chip: spec.model_dump(exclude={"rationale"}, exclude_none=True)
            for chip, spec in config.chip_overrides.items()}


def chips_from_frame(specs: pl.DataFrame, overrides: dict | None = None) -> dict[str, Chip]:
    """`specs` has the accelerator_specs columns (+ h100e_per_chip); `overrides` maps chip -> fields
    (tdp_w, unit_price_usd) that the spec sheet lacks."""
    overrides = overrides or {}
    out = {}
    for row in specs.iter_rows(named=True):
        extra = overrides.get(row["chip"], {})
        out[row["chip"]] = Chip(
            name=row["chip"], chip_class=row["chip_class"],
            bf16_tflops=_num(row.get("bf16_tflops")) or 0.0,
            fp8_tflops=_num(row.get("fp8_tflops")), fp4_tflops=_num(row.get("fp4_tflops")),
            mem_gb=_num(row.get("mem_gb")) or 0.0, mem_tbps=_num(row.get("mem_tbps")) or 0.0,
            sram_mb=_num(row.get("sram_mb")) or 0.0, sram_tbps=_num(row.get("sram_tbps")) or 0.0,
            tdp_w=_num(extra.get("tdp_w", row.get("tdp_w"))),
            unit_price_usd=_num(extra.get("unit_price_usd", row.get("unit_price_usd"))),
            h100e=_num(row.get("h100e_per_chip")),
            scaleup_chips=_num(extra.get("scaleup_chips")),
            scaleup_gbps=_num(extra.get("scaleup_gbps")),
        )
    return out


def models_from_frame(catalog: pl.DataFrame) -> dict[str, LlmSpec]:
    out = {}
    for row in catalog.iter_rows(named=True):
        out[row["model"]] = LlmSpec(
            name=row["model"], total_params_b=float(row["total_params_b"]),
            active_params_b=float(row["active_params_b"]), n_layers=int(row["n_layers"]),
            kv_bytes_per_token_bf16=float(row["kv_bytes_per_token_bf16"]),
            hidden_size=row.get("hidden_size"), n_heads=row.get("n_heads"), head_dim=row.get("head_dim"),
            n_experts=row.get("n_experts"), experts_active=row.get("experts_active"),
        )
    return out


def like(text: str, pattern: str) -> bool:
    """`lower(text) LIKE lower(pattern)` as DuckDB evaluates it (the slug rule of staging.model_slug_map and
    marts.call_volume_daily): % any run of characters, _ one character, everything else literal."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, text.lower(), flags=re.DOTALL) is not None


def resolve(name: str, names: dict, what: str, slug_map: pl.DataFrame | None = None) -> str:
    """A catalog/spec name, case-insensitively, or (models) a provider slug through the slug map."""
    return resolve_with_reason(name, names, what, slug_map)[0]


def resolve_with_reason(name: str, names: dict, what: str, slug_map=None) -> tuple[str, str]:
    """(catalog name, how it was found): exact, case-insensitive, or the first matching slug pattern.
    `slug_map`: the slug-map frame (slug_pattern, model) or a list of (pattern, model) pairs in file order."""
    if name in names:
        return name, "exact name"
    lowered = {k.lower(): k for k in names}
    if name.lower() in lowered:
        return lowered[name.lower()], "name, ignoring case"
    if slug_map is not None:
        # SQL LIKE patterns in file order, first match wins (as staging.model_slug_map does in SQL)
        pairs = slug_map.select("slug_pattern", "model").iter_rows() if isinstance(slug_map, pl.DataFrame) else slug_map
        for line, (pattern, model) in enumerate(pairs, start=2):
            if like(name, pattern):
                return model, f"slug pattern {pattern!r} (data/model_slug_map.csv line {line}: first match wins)"
    import difflib

    near = difflib.get_close_matches(name, list(names), n=3, cutoff=0.4)
    hint = f" (closest: {', '.join(near)})" if near else f"; known: {', '.join(sorted(names))}"
    raise ValueError(f"unknown {what} {name!r}{hint}")
