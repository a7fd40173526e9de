"""Exports analysts work in: the key marts and meta.assumptions as an Excel workbook, or as CSV / Parquet
files (pure: polars frames in, files out).

    export(frames, meta, out_dir, fmt) -> list of written paths

`frames` maps an export name to (table, frame) in EXPORT_TABLES order; `meta` holds the cover facts
(source, as-of, exported at). Excel: one sheet per table with units in the headers and the header row
frozen, a cover sheet first. CSV/Parquet: one file per table plus cover.csv; CSV text cells that a
spreadsheet would run as formulas are prefixed with ' (OWASP CSV injection).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

# export name -> (table, what it holds); the order is the workbook's sheet order
EXPORT_TABLES: dict[str, tuple[str, str]] = {
    "forecast": ("marts.forecast", "token demand, revenue and shipment series: observations and forecasts with "
                 "80%/95% intervals (unit per row)"),
    "forecast_vintage_errors": ("marts.forecast_vintage_errors", "how past token forecasts did: bias, median "
                                "|log error|, interval coverage per series"),
    "hardware_demand": ("marts.hardware_demand", "chips, H100e, MW, capex and cost per day needed per quarter, "
                        "scenario, segment, phase and chip"),
    "token_cost": ("marts.token_cost", "cost per million tokens by quarter, scenario, chip class and phase"),
    "cost_at_interactivity": ("marts.cost_at_interactivity", "cost per million output tokens at 20/50/150 "
                              "tokens/s per user"),
    "throughput_calibration": ("marts.throughput_calibration", "serving model vs each published measurement"),
    "installed_base_projection": ("marts.installed_base_projection", "shipments and installed base, observed, "
                                  "partial and projected (Data: Epoch AI)"),
    "supply_ledger": ("marts.supply_ledger", "capacity vs requirement of CoWoS, HBM, SMIC wafers and China's HBM "
                      "stock per quarter; binding resource"),
    "implied_utilisation": ("marts.implied_utilisation", "required / available inference H100e per region and "
                            "chip class"),
    "supply_demand_gap": ("marts.supply_demand_gap", "required vs projected installed base per resource a phase "
                          "consumes"),
    "supplier_exposure": ("marts.supplier_exposure", "USD content of the required fleet per supplier (a stock)"),
    "supplier_flows": ("marts.supplier_flows", "annual inference purchases per supplier (a flow) vs reported "
                       "revenue"),
    "token_margin": ("marts.token_margin", "published API prices vs modelled cost: implied gross margins"),
    "cross_checks": ("marts.cross_checks", "implied vs reported revenue, capacity and shares, with tolerance "
                     "status"),
    "chip_shipments": ("marts.chip_shipments", "quarterly accelerator shipments (Data: Epoch AI)"),
    "token_observations": ("marts.token_observations", "every token disclosure normalised to tokens/day"),
    "assumptions": ("meta.assumptions", "every modelling assumption with unit, range, rationale and source"),
}
FORMATS = ("xlsx", "csv", "parquet")

# (column-name pattern, unit); the first match wins. Columns whose unit varies by row name the unit column.
UNIT_RULES: list[tuple[str, str]] = [
    (r"^(period_start|period_end|quarter_start|quarter_end|week_start|observed_on|price_date|known_on|"
     r"installed_quarter_end|first_vintage|last_vintage|published_on)$", "date"),
    (r"usd_per_m(illion)?_?(input|output)?_?tokens|usd_per_mtok|cost_usd_per_m_(input|output)|^cost_(low|high)$|"
     r"^chip_only_cost", "USD per million tokens"),
    (r"usd_per_day", "USD/day"),
    (r"(^|_)usd(_|$)|revenue_usd|capex", "USD"),
    (r"tokens_per_day", "tokens/day"),
    (r"tokens_per_s_per_chip", "tokens/s per chip"),
    (r"tokens_per_s_per_user|user_speed", "tokens/s per user"),
    (r"flops_per_day", "FLOP/day"),
    (r"power_mw|_mw$|_mw_", "MW"),
    (r"tbps", "TB/s"),
    (r"h100e", "H100e"),
    (r"hbm_gb", "GB"),
    (r"wafers", "wafers"),
    (r"stacks", "HBM stacks"),
    (r"^chips|chips_p|replica_chips", "chips"),
    (r"units", "units"),
    (r"share|coverage|margin|utilisation|tolerance", "fraction"),
    (r"bias|log_error", "log ratio"),
    (r"ratio", "ratio"),
]
# Excel number format per unit (the workbook shows fractions as percentages, counts without decimals, years
# without a thousands separator); a unit not listed, and the columns whose unit varies by row, stay General
UNIT_FORMATS = {"USD per million tokens": "$#,##0.00", "USD/day": "$#,##0", "USD": "$#,##0", "tokens/day": "#,##0",
                "tokens/s per chip": "#,##0", "tokens/s per user": "#,##0.0", "FLOP/day": "0.00E+00", "MW": "#,##0.0",
                "TB/s": "#,##0.0", "H100e": "#,##0", "GB": "#,##0", "wafers": "#,##0", "HBM stacks": "#,##0",
                "chips": "#,##0", "units": "#,##0", "fraction": "0.0%", "log ratio": "0.000", "ratio": "0.00"}
YEAR = re.compile(r"(^|_)year$")
TEXT_WIDTH = 60  # characters: longer text wraps instead of a 255-wide column
VARYING_UNIT = {("forecast", "value"), ("forecast", "lo80"), ("forecast", "hi80"), ("forecast", "lo95"),
                ("forecast", "hi95"), ("supply_ledger", "capacity"), ("supply_ledger", "capacity_low"),
                ("supply_ledger", "capacity_high"), ("supply_ledger", "required"), ("supply_ledger", "required_low"),
                ("supply_ledger", "required_high"), ("supply_demand_gap", "required_p5"),
                ("supply_demand_gap", "required_median"), ("supply_demand_gap", "required_p95"),
                ("supply_demand_gap", "installed_median"), ("supply_demand_gap", "installed_inference_median"),
                ("cross_checks", "implied_p5"), ("cross_checks", "implied_median"), ("cross_checks", "implied_p95"),
                ("cross_checks", "reported"), ("assumptions", "value"), ("assumptions", "low"),
                ("assumptions", "high")}


def unit_of(name: str, column: str, dtype: pl.DataType) -> str | None:
    """The unit of a column by its name (UNIT_RULES), 'varies' where it varies by row, None when unknown."""
    if (name, column) in VARYING_UNIT:
        return "varies"
    if not dtype.is_numeric() and not dtype.is_temporal():
        return None
    for pattern, unit in UNIT_RULES:
        if re.search(pattern, column):
            if unit == "date" and not dtype.is_temporal():
                continue
            return unit
    return None


def header(name: str, column: str, dtype: pl.DataType) -> str:
    """The column name with its unit in brackets, when the unit is known."""
    unit = unit_of(name, column, dtype)
    if unit == "varies":
        return f"{column} [see unit column]"
    return f"{column} [{unit}]" if unit else column


def number_format(name: str, column: str, dtype: pl.DataType) -> str | None:
    """The Excel number format of a column: by its unit; years as plain integers; other integers with a
    thousands separator; other decimals with two places; None for text and dates."""
    if not dtype.is_numeric():
        return None
    if YEAR.search(column):
        return "0"
    unit = unit_of(name, column, dtype)
    if unit in UNIT_FORMATS:
        return UNIT_FORMATS[unit]
    if unit == "varies":
        return "General"
    return "#,##0" if dtype.is_integer() else "#,##0.00"


def _labelled(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({c: header(name, c, t) for c, t in frame.schema.items()})


def formula_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells starting with = + - @ (or a tab/CR) would run as formulas in a spreadsheet: prefix them
    with ' as OWASP recommends. Numbers are untouched."""
    risky = r"^[=+\-@\t\r]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.Utf8
    )


def cover_rows(meta: dict, frames: dict[str, tuple[str, pl.DataFrame]]) -> tuple[list[tuple[str, str]], pl.DataFrame]:
    facts = [("tokens2chips export", ""), ("source", str(meta["source"])),
             ("data as of", str(meta.get("as_of") or "unknown")), ("exported at (UTC)", str(meta["exported_at"])),
             ("shipments and installed base", "Data: Epoch AI"),
             ("units", "in brackets in each header; [see unit column] where the unit varies by row"),
             ("methodology", "docs/methodology.md; every assumption: the assumptions sheet")]
    listing = pl.DataFrame({"sheet": list(frames), "table": [t for t, _ in frames.values()],
                            "rows": [f.height for _, f in frames.values()],
                            "holds": [EXPORT_TABLES.get(n, ("", ""))[1] for n in frames]})
    return facts, listing


def export(frames: dict[str, tuple[str, pl.DataFrame]], meta: dict, out_dir: Path | str, fmt: str) -> list[Path]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts, listing = cover_rows(meta, frames)
    if fmt == "xlsx":
        return [_xlsx(frames, facts, listing, out / "tokens2chips.xlsx")]
    written = []
    cover = pl.DataFrame({"key": [k for k, _ in facts], "value": [v for _, v in facts]})
    for name, frame in [("cover", cover), ("tables", listing)] + [(n, f) for n, (_, f) in frames.items()]:
        labelled = _labelled(name, frame) if name in frames else frame
        path = out / f"{name}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        if fmt == "csv":
            formula_safe(labelled).write_csv(tmp)
        else:
            labelled.write_parquet(tmp)
        tmp.replace(path)
        written.append(path)
    return written


def _xlsx(frames, facts, listing: pl.DataFrame, path: Path) -> Path:
    import xlsxwriter

    tmp = path.with_name(f".{path.name}.tmp")
    # text stays text: no formulas, URLs or numbers made from strings; NaN/inf become Excel errors
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False,
                                        "strings_to_numbers": False, "nan_inf_to_errors": True})
    bold = wb.add_format({"bold": True})
    cover = wb.add_worksheet("cover")
    cover.set_column(0, 0, 32)
    cover.set_column(1, 3, 60)
    for i, (k, v) in enumerate(facts):
        cover.write_string(i, 0, k, bold)
        cover.write_string(i, 1, v)
    start = len(facts) + 1
    for j, col in enumerate(listing.columns):
        cover.write_string(start, j, col, bold)
    for i, row in enumerate(listing.iter_rows(), start=start + 1):
        for j, v in enumerate(row):
            if isinstance(v, int):
                cover.write_number(i, j, v)
            else:
                cover.write_string(i, j, str(v))
    for name, (_, frame) in frames.items():
        labelled = _labelled(name, frame)
        formats = {label: fmt for (column, dtype), label in zip(frame.schema.items(), labelled.columns)
                   if (fmt := number_format(name, column, dtype))}
        long_text = [label for (column, dtype), label in zip(frame.schema.items(), labelled.columns)
                     if dtype == pl.Utf8 and (frame[column].str.len_chars().max() or 0) > TEXT_WIDTH]
        formats |= {label: {"text_wrap": True, "valign": "top"} for label in long_text}
        labelled.write_excel(workbook=wb, worksheet=name[:31], freeze_panes="A2", autofit=True, autofilter=True,
                             table_style=None, column_formats=formats, dtype_formats={pl.Date: "yyyy-mm-dd"},
                             column_widths={label: TEXT_WIDTH * 7 for label in long_text})
    wb.close()
    tmp.replace(path)
    return path
