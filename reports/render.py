"""Build the analyst report from mart frames: key numbers, charts, HTML (self-contained) and Markdown.

    render_report(frames, as_of, reports_dir, change_threshold=0.1) -> Path of the report directory

`frames` maps names to polars frames read from marts.* and meta.* (see REPORT_TABLES). Output:
<reports_dir>/<as-of>/report.html (inline CSS and base64 images, no network), report.md with the charts
as PNG files beside it, key_numbers.json; <reports_dir>/latest/ is a copy of the newest.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
from pathlib import Path

import jinja2
import polars as pl

from reports import charts, data_freshness
from reports.chart_cache import ChartCache
from reports.labels import Labels
from reports.format import (month_label, pct, plain, power_mw, quarter_label, short, tokens_per_day, tokens_per_month,
                            usd, words)

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_TABLES = {
    "forecast": "marts.forecast", "selection": "marts.forecast_selection",
    "weekly": "marts.model_call_volume_weekly", "hardware": "marts.hardware_demand",
    "gap": "marts.supply_demand_gap", "exposure": "marts.supplier_exposure",
    "concentration": "marts.supplier_concentration", "sensitivity": "marts.sensitivity",
    "cross_checks": "marts.cross_checks", "sources": "marts.source_inventory", "assumptions": "meta.assumptions",
    "call_rejects": "marts.call_log_rejects_summary", "call_unknown": "marts.call_log_unknown_models",
    "call_volume": "marts.call_volume_daily", "token_cost": "marts.token_cost",
    "calibration": "marts.throughput_calibration", "serving_efficiency": "marts.serving_efficiency",
    "curves": "marts.interactivity_curves", "cost_levels": "marts.cost_at_interactivity",
    "vintage": "marts.forecast_vintage_errors", "flags": "marts.forecast_flags",
    "coherence": "marts.demand_coherence", "ledger": "marts.supply_ledger",
    "utilisation": "marts.implied_utilisation", "flows": "marts.supplier_flows", "margin": "marts.token_margin",
    "scenario_defs": "meta.scenarios", "report_series": "meta.report_series",
    "totals": "marts.fleet_totals", "stock_flow": "marts.fleet_stock_flow",
    "reconciliation": "marts.demand_reconciliation",
    "data_lag": "marts.data_lag", "revisions": "marts.source_revisions", "snapshots": "raw.feed_snapshots",
    "references": "marts.throughput_references",
}


def _headline(frames: dict[str, pl.DataFrame]) -> str:
    """The scenario the report follows: report.headline_scenario (meta.scenarios), else the first scenario."""
    defs = frames.get("scenario_defs")
    if defs is not None and defs.height and "headline" in defs.columns and defs["headline"].any():
        return defs.filter(pl.col("headline"))["scenario"][0]
    return sorted(frames["hardware"]["scenario"].unique().to_list())[0]


def _class_chart_scenario(frames: dict[str, pl.DataFrame]) -> str | None:
    defs = frames.get("scenario_defs")
    if defs is not None and defs.height and "class_chart" in defs.columns and defs["class_chart"].any():
        return defs.filter(pl.col("class_chart"))["scenario"][0]
    return None


def _series(frames: dict[str, pl.DataFrame], role: str) -> str | None:
    """A demand series by its role in the config (meta.report_series): global, estimated, segment:<name>."""
    table = frames.get("report_series")
    if table is None or table.height == 0:
        return None
    hit = table.filter(pl.col("role") == role)
    return hit["series_id"][0] if hit.height else None


def _segment_series(frames: dict[str, pl.DataFrame]) -> list[str]:
    table = frames.get("report_series")
    if table is None or table.height == 0:
        return []
    return table.filter(pl.col("role").str.starts_with("segment:"))["series_id"].to_list()


def _at(frame: pl.DataFrame, period) -> pl.DataFrame:
    return frame.filter(pl.col("period_start") == period)


def key_numbers(frames: dict[str, pl.DataFrame], as_of: dt.date) -> dict:
    """The headline figures, as plain numbers (also written to key_numbers.json for the next run)."""
    headline = _headline(frames)
    fc = frames["forecast"].filter((pl.col("series_id") == _series(frames, "global"))
                                   & pl.col("is_forecast")).sort("period_start")
    now_rows = fc.filter(pl.col("period_start") <= as_of)
    now = (now_rows[-1] if now_rows.height else fc[0]).row(0, named=True)
    end = fc[-1].row(0, named=True)
    hw = frames["hardware"]
    horizon = hw["period_start"].max()
    # totals per Monte Carlo draw, then summarised (marts.fleet_totals, segment 'all')
    totals = frames["totals"].filter(pl.col("segment") == "all")
    per_scenario = _at(totals, horizon).sort("scenario")
    exposure = _at(frames["exposure"], horizon).filter(pl.col("scenario") == headline)
    top = exposure.group_by("supplier").agg(pl.col("usd_median").sum()).sort("usd_median", descending=True).head(3)
    weekly = frames["weekly"]
    last_week = weekly["week_start"].max()  # None in a data vintage before the first OpenRouter snapshot
    lw = weekly.filter(pl.col("week_start") == last_week) if last_week is not None else weekly
    total = float(lw["total_tokens"].sum())
    share = ({o: float(lw.filter(pl.col("origin") == o)["total_tokens"].sum()) / total for o in ("cn", "us")}
             if total else {})
    observed = frames["forecast"].filter(pl.col("series_id").str.starts_with("tokens/")
                                         & ~pl.col("series_id").str.contains("_estimated") & ~pl.col("is_forecast"))
    last_disclosure = observed["period_start"].max()
    quarters = sorted(hw["period_start"].unique().to_list())
    started = [q for q in quarters if q <= as_of]
    now_quarter = started[-1] if started else (quarters[0] if quarters else None)
    per_scenario_now = (_at(totals, now_quarter).select("scenario", "h100e_median")
                        if now_quarter else pl.DataFrame(schema={"scenario": pl.Utf8, "h100e_median": pl.Float64}))
    est = frames["forecast"].filter((pl.col("series_id") == _series(frames, "estimated")) & pl.col("is_forecast"))
    est_now = est.filter(pl.col("period_start") == now["period_start"])
    est_end = est.filter(pl.col("period_start") == end["period_start"])
    return {
        "as_of": as_of.isoformat(),
        "headline_scenario": headline,
        "generated_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "last_disclosure": str(last_disclosure) if last_disclosure else None,
        "now_quarter": str(now_quarter) if now_quarter else None,
        "scenarios_now": dict(per_scenario_now.select("scenario", "h100e_median").iter_rows()),
        "estimated_now": est_now.row(0, named=True)["value"] if est_now.height else None,
        "estimated_horizon": est_end.row(0, named=True)["value"] if est_end.height else None,
        "global_now": {"period": str(now["period_start"]), "value": now["value"], "lo80": now["lo80"],
                       "hi80": now["hi80"]},
        "global_horizon": {"period": str(end["period_start"]), "value": end["value"], "lo80": end["lo80"],
                           "hi80": end["hi80"]},
        "horizon_quarter": str(horizon),
        "scenarios": {r["scenario"]: {k: r[k] for k in ("chips_median", "h100e_median", "power_mw_median",
                                                         "capex_usd_median", "bought_chips_median",
                                                         "bought_capex_usd_median", "installed_utilisation_median",
                                                         "served_by_installed_share_median",
                                                         "installed_inference_chips_median",
                                                         "shortfall_tokens_per_day_median")}
                      for r in per_scenario.iter_rows(named=True)},
        "top_suppliers": [{"supplier": s, "usd_median": v} for s, v in top.iter_rows()],
        "openrouter_week": str(last_week),
        "openrouter_share": share,
    }


def changes(current: dict, previous: dict | None, threshold: float) -> list[dict]:
    """Headline numbers that moved by more than `threshold` (relative) since the previous report."""
    if not previous:
        return []

    def flat(d: dict) -> dict:
        out = {"global demand now (tokens/day)": d["global_now"]["value"],
               "global demand at horizon (tokens/day)": d["global_horizon"]["value"]}
        for scen, vals in d.get("scenarios", {}).items():
            out[f"{scen}: H100e at horizon"] = vals["h100e_median"]
            out[f"{scen}: capex at horizon (USD)"] = vals["capex_usd_median"]
        for origin, v in d.get("openrouter_share", {}).items():
            out[f"OpenRouter {origin} share"] = v
        return out

    now, before = flat(current), flat(previous)
    moved = []
    for name, value in now.items():
        old = before.get(name)
        if old and value is not None and abs(value - old) / abs(old) > threshold:
            moved.append({"name": name, "before": old, "after": value, "change": value / old - 1})
    return moved


def _figures(frames: dict[str, pl.DataFrame], cache: ChartCache | None = None) -> dict[str, bytes]:
    """Every chart of the report (drawn, or read back from `cache` when its inputs are unchanged)."""
    cache = cache or ChartCache(None)
    headline = _headline(frames)
    fc = frames["forecast"]
    composites = {_series(frames, "global"), _series(frames, "estimated"), *_segment_series(frames)}
    token_series = sorted(s for s in fc["series_id"].unique().to_list()
                          if s.startswith("tokens/") and (s not in composites or s.endswith("/all")))
    hw = frames["hardware"]
    scenarios = sorted(hw["scenario"].unique().to_list())
    horizon = hw["period_start"].max()
    labels = Labels.from_frames(frames)
    class_scenario = _class_chart_scenario(frames)
    global_series = [s for s in [_series(frames, "global"), *_segment_series(frames)] if s]
    # only the series a chart draws go into its key: a what-if that moves no demand reuses the demand charts
    platform_fc = fc.filter(pl.col("series_id").is_in(token_series))
    global_fc = fc.filter(pl.col("series_id").is_in(global_series))
    return cache.charts({
        "demand_platforms": (charts.demand_fan, platform_fc, token_series,
                             "Token demand by platform: disclosures and forecast", labels),
        "demand_global": (charts.demand_fan, global_fc, global_series,
                          "Global inference demand (composite) and its hardware segments", labels),
        "origin_share": (charts.origin_share, frames["weekly"], labels),
        "chips_by_class": (charts.chips_by_class, hw, scenarios, labels),
        "required_vs_installed": (charts.required_vs_installed, frames["gap"], headline, labels),
        "reconciliation": (charts.demand_reconciliation, frames["reconciliation"], headline, labels),
        "interactivity": (charts.interactivity, frames["curves"]),
        "phase_split": (charts.phase_split, hw, horizon, labels),
        **({"class_chart": (charts.classes_over_time, hw, class_scenario, labels)} if class_scenario else {}),
        "suppliers": (charts.supplier_bars, _at(frames["exposure"], horizon).filter(pl.col("scenario") == headline)),
        "tornado": (charts.tornado, frames["sensitivity"], headline, 12, labels),
    })


def _scenario_defs(frames: dict[str, pl.DataFrame]) -> dict[str, dict]:
    defs = frames.get("scenario_defs")
    if defs is None or defs.height == 0:
        return {}
    return {r["scenario"]: r for r in defs.iter_rows(named=True)}


def _context(frames: dict[str, pl.DataFrame], numbers: dict, moved: list[dict], checks: pl.DataFrame,
             threshold: float, comparison: str = "") -> dict:
    headline = _headline(frames)
    hw = frames["hardware"]
    horizon = hw["period_start"].max()
    as_of = dt.date.fromisoformat(numbers["as_of"])
    conc = _at(frames["concentration"], horizon).filter(pl.col("scenario") == headline)
    exposure = _at(frames["exposure"], horizon).filter(pl.col("scenario") == headline).head(15)
    gap = frames["gap"].filter(pl.col("period_start") == horizon)
    defs = _scenario_defs(frames)
    labels = Labels.from_frames(frames)
    now_q = dt.date.fromisoformat(numbers["now_quarter"]) if numbers.get("now_quarter") else None
    scen_rows = []
    for scen, vals in numbers["scenarios"].items():
        d = defs.get(scen, {})
        scen_rows.append({"scenario": scen, "label": d.get("label") or scen, "summary": d.get("summary") or "",
                          "h100e": short(vals["h100e_median"]) + " H100e",
                          "chips": short(vals["chips_median"]), "mw": power_mw(vals["power_mw_median"]),
                          "capex": usd(vals["capex_usd_median"]),
                          "served": _pct_or_na(vals.get("served_by_installed_share_median")),
                          "utilisation": _pct_or_na(vals.get("installed_utilisation_median")),
                          "bought": short(vals.get("bought_chips_median") or 0.0),
                          "bought_capex": usd(vals.get("bought_capex_usd_median") or 0.0),
                          "h100e_start": short(float(numbers["scenarios_now"].get(scen, 0.0))) + " H100e"})
    g_now, g_end = numbers["global_now"], numbers["global_horizon"]
    last = dt.date.fromisoformat(numbers["last_disclosure"]) if numbers.get("last_disclosure") else None
    now_basis = (f"A forecast for the month: the latest disclosure is from {month_label(last)}" if last
                 else "A forecast for the month")
    cross = frames["cross_checks"].filter(pl.col("scenario") == headline)
    cross_flags = [f"{check_name(r['check_name'])} {r['year']}: ratio {r['ratio']:.2f} "
                   f"(tolerance {r['tolerance']:g}; {r['reported_basis'] or 'n/a'})"
                   for r in cross.filter(pl.col("status") == "outside tolerance").iter_rows(named=True)]
    not_passed = checks.filter(~pl.col("passed")) if checks.height else checks
    supply = _supply_context(frames, as_of)
    if previous_compared(comparison) and not moved:
        comparison += f" No headline number moved by more than {pct(threshold)}."
    summary = _summary(numbers, frames, supply, defs, cross_flags, moved, comparison, horizon)
    class_chart = _class_chart_scenario(frames)
    return {
        "headline_label": (defs.get(headline, {}).get("label") or headline) + " scenario",
        "class_chart_label": (defs.get(class_chart, {}).get("label") or class_chart) if class_chart else None,
        "as_of": numbers["as_of"],
        "data_as_of": numbers.get("data_as_of") or numbers["as_of"],
        "summary": summary,
        "comparison": comparison,
        "horizon_label": quarter_label(horizon),
        "horizon_month": month_label(dt.date.fromisoformat(g_end["period"])),
        "now_label": quarter_label(now_q) if now_q else "n/a",
        "now_basis": now_basis,
        "global_now": {"period": month_label(dt.date.fromisoformat(g_now["period"])), "day": tokens_per_day(g_now["value"]),
                       "month": tokens_per_month(g_now["value"]),
                       "band": f"{words(g_now['lo80'])} to {words(g_now['hi80'])}"},
        "global_end": {"period": month_label(dt.date.fromisoformat(g_end["period"])), "day": tokens_per_day(g_end["value"]),
                       "month": tokens_per_month(g_end["value"]),
                       "band": f"{words(g_end['lo80'])} to {words(g_end['hi80'])}"},
        "estimated": ({"now": tokens_per_day(numbers["estimated_now"]), "end": tokens_per_day(numbers["estimated_horizon"])}
                      if numbers.get("estimated_now") and numbers.get("estimated_horizon") else None),
        "vintage_rows": [{"series": r["series_id"], "n": r["n_forecasts"], "vintages": r["n_vintages"],
                          "bias": f"{r['bias']:+.2f}", "mae": f"{r['median_abs_log_error']:.2f}",
                          "c80": pct(r["coverage80"]), "c95": pct(r["coverage95"]),
                          "horizon": f"{r['median_horizon_months']:.0f}"}
                         for r in frames["vintage"].sort(pl.col("series_id").str.starts_with("("), "series_id")
                         .iter_rows(named=True)],
        "vintage_span": (f"{frames['vintage']['first_vintage'].min()} to {frames['vintage']['last_vintage'].max()}"
                         if frames["vintage"].height else ""),
        "flag_rows": [r["message"] for r in frames["flags"].iter_rows(named=True)],
        "coherence_rows": [f"{r['parts']} {r['period_start']}: {words(r['parts_value'])} above {r['total']} "
                           f"{words(r['total_value'] * r['scale'])}"
                           + (f" (x{r['scale']:g}: weekly parts of a daily total)" if r["scale"] != 1 else "")
                           for r in frames["coherence"].iter_rows(named=True)],
        "cross_flags": cross_flags,
        "not_passed": [{"asset": r["asset"], "check": r["check_name"],
                        "result": "warn" if r["severity"] == "WARN" else "FAIL"} for r in not_passed.iter_rows(named=True)],
        "horizon": str(horizon), "scenario_rows": scen_rows,
        "fleet_chip_rows": _fleet_chip_rows(frames, headline, horizon),
        "reconciliation_rows": _reconciliation_rows(frames, headline, now_q, horizon),
        "top_suppliers": [{"supplier": t["supplier"], "usd": usd(t["usd_median"])} for t in numbers["top_suppliers"]],
        "openrouter": ({"week": numbers["openrouter_week"], "cn": pct(numbers["openrouter_share"]["cn"]),
                        "us": pct(numbers["openrouter_share"]["us"])} if numbers["openrouter_share"] else None),
        "moved": [{"name": m["name"], "before": short(m["before"]), "after": short(m["after"]),
                   "change": f"{m['change'] * 100:+.0f}%"} for m in moved],
        "threshold": pct(threshold),
        "gap_rows": [{"scenario": labels.scenario(r["scenario"]), "region": labels.segment(r["region"]),
                      "resource": labels.resource(r["resource"]), "unit": r["unit"],
                      "required": short(r["required_median"]),
                      "installed": short(r["installed_inference_median"]),
                      "installed_at": f"{quarter_label(r['installed_quarter_end'])} ({r['installed_basis']})",
                      "ratio": "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"}
                     for r in gap.sort("scenario", "region", "resource").iter_rows(named=True)],
        "calibration_rows": [{"id": r["measurement_id"], "chip": r["chip"], "model": r["model_name"],
                              "phase": r["phase"], "metric": r["metric"].replace("tokens_per_s_per_", "per "),
                              "measured": short(r["measured"], 3), "predicted": short(r["predicted"], 3),
                              "ratio": f"{r['ratio']:.2f}", "loso": f"{r['ratio_leave_source_out']:.2f}",
                              "in_fit": "yes" if r["in_fit"] else "no (held out)", "source": r["source_id"]}
                             for r in frames["calibration"].sort("chip_group", "chip", "measurement_id")
                             .iter_rows(named=True)],
        "calibration_summary": _calibration_summary(frames["calibration"]),
        "loso_rows": _loso_by_source(frames["calibration"]),
        "efficiency_rows": [{"group": r["chip_group"], "mfu": f"{r['mfu']:.2f}", "mbu": f"{r['mbu']:.2f}",
                             "layer_us": f"{r['layer_latency_us']:.1f}", "hop_us": f"{r['hop_latency_us']:.2f}",
                             "moe": f"{r['moe_prefill_efficiency']:.2f}",
                             "scaleout_us": f"{r['scaleout_layer_latency_us']:.0f}",
                             "ep_us": f"{r['ep_layer_latency_us']:.1f}",
                             "error_sd": f"{r['error_log_sd']:.2f}", "rows": r["fitted_rows"]}
                            for r in frames["serving_efficiency"].iter_rows(named=True)],
        "cost_level_rows": _cost_levels(frames["cost_levels"]),
        "cost_level_names": [f"{r['level']} (>= {r['min_tokens_per_s_per_user']:g} tokens/s per user)" for r in
                             frames["cost_levels"].select("level", "min_tokens_per_s_per_user").unique()
                             .sort("min_tokens_per_s_per_user").iter_rows(named=True)],
        "exposure_rows": [{"supplier": r["supplier"], "role": r["role"], "p5": usd(r["usd_p5"]),
                           "median": usd(r["usd_median"]), "p95": usd(r["usd_p95"]),
                           "share": pct(r["share_of_role"])} for r in exposure.iter_rows(named=True)],
        "concentration_rows": [{"role": r["role"], "hhi": f"{r['hhi']:,.0f}", "top": r["top_supplier"],
                                "top_share": pct(r["top_share"]), "n": r["n_suppliers"]}
                               for r in conc.iter_rows(named=True)],
        "cross_rows": [{"year": r["year"], "scenario": r["scenario"], "check": r["check_name"],
                        "implied": _fmt_unit(r["implied_median"], r["unit"]),
                        "reported": _fmt_unit(r["reported"], r["unit"]),
                        "basis": r["reported_basis"] or "n/a",
                        "ratio": "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}",
                        "status": r["status"], "flag": r["status"] == "outside tolerance"}
                       for r in cross.iter_rows(named=True)],
        "selection_rows": [{"series": r["series_id"], "model": r["model_name"],
                            "mase": _num(r["mase"]), "smape": _num(r["smape"]), "c80": pct(r["coverage80"]),
                            "c95": pct(r["coverage95"]), "n": r["n_obs"], "reason": r["reason"]}
                           for r in frames["selection"].sort("series_id").iter_rows(named=True)],
        "source_rows": [{"source": r["source_id"], "tables": r["tables"], "rows": r["rows"],
                         "confidence": r["weakest_confidence"], "latest": str(r["latest_observation"] or "")}
                        for r in frames["sources"].iter_rows(named=True)],
        "check_rows": [{"asset": r["asset"], "check": r["check_name"], "passed": "pass" if r["passed"] else
                        ("warn" if r["severity"] == "WARN" else "FAIL")} for r in checks.iter_rows(named=True)],
        "checks_summary": {"passed": int(checks["passed"].sum()) if checks.height else 0,
                           "failed": int((~checks["passed"]).sum()) if checks.height else 0,
                           "total": checks.height},
        "call_logs": _call_log_summary(frames),
        "cost_rows": [{"scenario": r["scenario"], "chip_class": r["chip_class"], "phase": r["phase"],
                       "usd": "$" + plain(r["usd_per_million_tokens"]) if r["usd_per_million_tokens"] is not None
                       else "n/a"}
                      for r in _at(frames["token_cost"], horizon).sort("scenario", "phase", "chip_class")
                      .iter_rows(named=True)],
        "supply": supply,
        "assumption_rows": [{"name": r["name"], "value": plain(r["value"], r["unit"]),
                             "range": "" if r["low"] == r["high"]
                             else f"{plain(r['low'], r['unit'])} - {plain(r['high'], r['unit'])}",
                             "unit": r["unit"], "rationale": r["rationale"], "source": r["source"]}
                            for r in frames["assumptions"].iter_rows(named=True)],
    }


def _fleet_chip_rows(frames: dict[str, pl.DataFrame], headline: str, horizon) -> list[dict]:
    """The headline scenario's fleet at the horizon by chip: installed inference chips, in use, utilisation,
    bought, and the chip's share of the fleet serving demand (marts.fleet_stock_flow)."""
    part = _at(frames["stock_flow"], horizon).filter(pl.col("scenario") == headline)
    if part.height == 0:
        return []
    part = part.with_columns((pl.col("chips_in_use_median") + pl.col("bought_chips_median")).alias("serving"))
    total = float(part["serving"].sum()) or 1.0
    return [{"region": "China" if r["region"] == "china" else "rest of world", "chip": r["chip"],
             "installed": short(r["installed_inference_chips_median"]), "in_use": short(r["chips_in_use_median"]),
             "utilisation": _pct_or_na(r["utilisation_median"]), "bought": short(r["bought_chips_median"]),
             "share": pct(r["serving"] / total)}
            for r in part.sort("region", "serving", descending=[False, True]).iter_rows(named=True)
            if r["serving"] > 0 or r["installed_inference_chips_median"] > 0]


def _reconciliation_rows(frames: dict[str, pl.DataFrame], headline: str, now_q, horizon) -> list[dict]:
    """marts.demand_reconciliation for the headline scenario, now and at the horizon, one row per segment."""
    rec = frames["reconciliation"].filter((pl.col("scenario") == headline)
                                          & pl.col("period_start").is_in([q for q in (now_q, horizon) if q]))
    out = []
    for r in rec.sort("period_start", "segment").iter_rows(named=True):
        out.append({"quarter": quarter_label(r["period_start"]), "segment": r["segment"].replace("_", " "),
                    "capacity": tokens_per_day(r["capacity_tokens_per_day_median"]),
                    "disclosed": tokens_per_day(r["disclosed_tokens_per_day"]) if r["disclosed_tokens_per_day"] else "n/a",
                    "estimated": (tokens_per_day(r["estimated_tokens_per_day"]) + f" ({r['estimated_by_class']})"
                                  if r["estimated_by_class"] else "none"),
                    "utilisation": f"{_pct_or_na(r['utilisation_median'])} ({_pct_or_na(r['utilisation_p5'])}-"
                                   f"{_pct_or_na(r['utilisation_p95'])})",
                    "disclosed_only": _pct_or_na(r["utilisation_disclosed_only_median"]),
                    "residual": (("+" if r["residual_tokens_per_day_median"] >= 0 else "-")
                                 + tokens_per_day(abs(r["residual_tokens_per_day_median"]))),
                    "implied_share": _pct_or_na(r["implied_inference_share_median"]),
                    "share": pct(r["inference_share"]), "busy": f"{pct(r['busy_share_low'])}-{pct(r['busy_share_high'])}",
                    "status": r["status"]})
    return out


def _pct_or_na(value) -> str:
    return "n/a" if value is None else pct(value)


def _summary(numbers: dict, frames: dict[str, pl.DataFrame], supply: dict, defs: dict, cross_flags: list[str],
             moved: list[dict], comparison: str, horizon) -> list[str]:
    """The executive summary: 3-6 sentences generated from the numbers."""
    headline = _headline(frames)
    out = []
    g_now, g_end = numbers["global_now"], numbers["global_horizon"]
    last = numbers.get("last_disclosure")
    basis = f"a forecast: the latest disclosure is from {month_label(dt.date.fromisoformat(last))}" if last else "a forecast"
    sentence = (f"Disclosed global inference demand is about {tokens_per_day(g_now['value'])} in "
                f"{month_label(dt.date.fromisoformat(g_now['period']))} ({basis}; 80% band {words(g_now['lo80'])} to "
                f"{words(g_now['hi80'])}) and is forecast at {tokens_per_day(g_end['value'])} by "
                f"{month_label(dt.date.fromisoformat(g_end['period']))} (80% band {words(g_end['lo80'])} to "
                f"{words(g_end['hi80'])})")
    if numbers.get("estimated_horizon"):
        sentence += (f"; adding platforms that publish no token counts (estimated from revenue) gives "
                     f"{words(numbers['estimated_horizon'])} tokens/day")
    out.append(sentence + ".")
    scen = numbers.get("scenarios") or {}
    if headline in scen:
        v = scen[headline]
        d = defs.get(headline, {})
        label = d.get("label") or headline
        what = f" ({d['summary'].rstrip('.')})" if d.get("summary") else ""
        text = (f"In the headline scenario, {label}{what}, the installed base (Epoch AI's shipments, projected, less "
                f"retirements) serves {_pct_or_na(v.get('served_by_installed_share_median'))} of that demand in "
                f"{quarter_label(horizon)} at {_pct_or_na(v.get('installed_utilisation_median'))} utilisation of its "
                f"inference share ({short(v.get('installed_inference_chips_median') or 0.0)} chips), and "
                f"{short(v.get('bought_chips_median') or 0.0)} more chips ({usd(v.get('bought_capex_usd_median') or 0.0)}) "
                f"must be bought in the quarter beyond the projected shipments; the fleet serving demand is "
                f"{short(v['h100e_median'])} H100-equivalents ({short(v['chips_median'])} chips, "
                f"{power_mw(v['power_mw_median'])}, {usd(v['capex_usd_median'])} of chips)")
        if (v.get("shortfall_tokens_per_day_median") or 0.0) > 0:
            text += f"; {tokens_per_day(v['shortfall_tokens_per_day_median'])} no available chip can serve"
        if len(scen) > 1:
            lo = min(scen, key=lambda k: scen[k]["chips_median"])
            hi = max(scen, key=lambda k: scen[k]["chips_median"])
            text += (f"; across the {len(scen)} scenarios the chip count runs from {short(scen[lo]['chips_median'])} "
                     f"({defs.get(lo, {}).get('label') or lo}) to {short(scen[hi]['chips_median'])} "
                     f"({defs.get(hi, {}).get('label') or hi})")
        out.append(text + ".")
    rows = supply.get("binding_rows") or []
    if rows:
        last_year = max(r["year"] for r in rows)
        parts = [f"{r['resource']}{'' if r['region'] == 'china' else ' outside China'} "
                 f"(required {r['ratio']}x {'the stock' if 'stock' in r['resource'] else 'capacity'})"
                 for r in rows if r["year"] == last_year]
        text = f"On the supply side the binding resources in {last_year} are " + " and ".join(parts)
        if supply.get("first_short"):
            text += "; short at the median: " + "; ".join(supply["first_short"])
        else:
            text += "; no resource is short at the median"
        out.append(text + ".")
    segs = frames["totals"].filter((pl.col("scenario") == headline) & (pl.col("period_start") == horizon)
                                   & (pl.col("segment") != "all"))
    if segs.height:
        parts = [f"{r['segment'].replace('_', ' ')} {_pct_or_na(r['installed_utilisation_median'])} used"
                 + (f", {short(r['bought_chips_median'])} chips bought beyond the projected shipments"
                    if (r["bought_chips_median"] or 0) > 0 else "")
                 for r in segs.sort("segment").iter_rows(named=True)]
        out.append(f"By segment in {quarter_label(horizon)}, the installed base's inference share is "
                   + "; ".join(parts) + " (marts.fleet_totals; a region whose installed chips sit idle while another "
                   "buys more says the demand the fleet serves there is incomplete or the shipments go elsewhere).")
    if supply.get("gainers"):
        out.append(f"Who gains (inference purchases in {supply['flow_year']}, a flow): "
                   + "; ".join(supply["gainers"][:3]) + ".")
    if previous_compared(comparison):
        change = ("Compared with the previous report of the same as-of date"
                  + ("." if moved else ": no headline number moved by more than the threshold."))
    else:
        change = comparison.split(";")[0].rstrip(".") + "."
    if moved:
        top = sorted(moved, key=lambda m: -abs(m["change"]))[:2]
        change += " Largest moves: " + "; ".join(f"{m['name']} {m['change'] * 100:+.0f}%" for m in top) + "."
    if cross_flags:
        names = sorted({f.rsplit(" 20", 1)[0] for f in cross_flags})
        change += (f" {len(cross_flags)} cross-check{'s' if len(cross_flags) > 1 else ''} of the headline scenario "
                   f"{'are' if len(cross_flags) > 1 else 'is'} outside tolerance ({'; '.join(names)}; section 4).")
    if change.strip():
        out.append(change.strip())
    return out


CHECK_NAMES = {"nvidia_spend_vs_data_center_revenue": "Nvidia inference spend vs data-center revenue",
               "cowos_wafers_vs_capacity": "CoWoS wafers vs capacity",
               "domestic_2_5d_spend_vs_packaging_revenue": "domestic 2.5D packaging vs SJ Semiconductor's revenue"}


def check_name(check: str) -> str:
    if check.startswith("hbm_share_vs_published/"):
        return f"{check.split('/', 1)[1]}'s HBM share vs published"
    return CHECK_NAMES.get(check, check.replace("_", " "))


def previous_compared(comparison: str) -> bool:
    return comparison.startswith("Compared with")


RESOURCE_NAMES = {"cowos": "CoWoS wafers", "hbm": "HBM (GB)", "hbm_stock": "the HBM stacks stockpiled in China",
                  "smic_advanced": "SMIC 7 nm-class wafers"}


def _supply_context(frames: dict[str, pl.DataFrame], as_of: dt.date) -> dict:
    """The supply-side section: what binds when (ledger), implied utilisation, flows vs revenue, margins."""
    headline = _headline(frames)
    ledger = frames["ledger"].filter(pl.col("period_start").dt.month() == 10)
    binding = []
    for (year, region), part in ledger.group_by(pl.col("period_start").dt.year(), "region", maintain_order=True):
        top = part.filter(pl.col("binding"))
        if top.height:
            r = top.row(0, named=True)
            basis = r["capacity_basis"]
            if basis in ("interpolated", "reported") and r["period_start"] > as_of and r["resource"] != "hbm_stock":
                basis = "projection"  # nothing dated after the as-of date is shown as reported
            binding.append({"year": year, "region": region, "resource": RESOURCE_NAMES.get(r["resource"], r["resource"]),
                            "ratio": f"{r['ratio']:.2f}", "range": f"{r['ratio_low']:.2f}-{r['ratio_high']:.2f}",
                            "capacity": f"{short(r['capacity'])} {r['unit']} ({basis})",
                            "required": f"{short(r['required'])} ({r['required_basis']})"})
    short_rows = frames["ledger"].filter(pl.col("ratio") > 1).sort("period_start")
    first_short = [f"{RESOURCE_NAMES.get(r['resource'], r['resource'])} from {quarter_label(r['period_start'])}"
                   for r in short_rows.group_by("region", "resource").agg(pl.col("period_start").min())
                   .sort("period_start").iter_rows(named=True)]
    util = frames["utilisation"].filter((pl.col("scenario") == headline)
                                        & (pl.col("period_start").dt.month() == 10))
    flows = frames["flows"].filter(pl.col("scenario") == headline)
    last_year = flows["year"].max() if flows.height else None
    margin = frames["margin"]
    latest = (margin.sort("price_date").group_by("provider", "model").agg(pl.col("price_date").last())
              .sort("model", "provider"))
    chips = list(dict.fromkeys(margin["chip"].to_list()))
    margin_rows = []
    for p in latest.iter_rows(named=True):
        part = margin.filter((pl.col("provider") == p["provider"]) & (pl.col("model") == p["model"])
                             & (pl.col("price_date") == p["price_date"]))
        by_chip = {r["chip"]: r for r in part.iter_rows(named=True)}
        first = part.row(0, named=True)
        margin_rows.append({"provider": p["provider"], "model": p["model"], "date": str(p["price_date"]),
                            "price": f"${first['price_usd_per_mtok_blended']:.3g}",
                            "margins": [pct(by_chip[c]["gross_margin"]) + f" ({pct(by_chip[c]['gross_margin_low'])} to "
                                        f"{pct(by_chip[c]['gross_margin_high'])})" if c in by_chip else "n/a"
                                        for c in chips]})
    disclosed = [{"provider": r["provider"], "model": r["model"], "chip": r["chip"],
                  "disclosed": pct(r["disclosed_gross_margin"], 1), "modelled": pct(r["modelled_on_disclosed_basis"], 1),
                  "source": r["disclosed_source"]}
                 for r in margin.filter(pl.col("disclosed_gross_margin").is_not_null()).iter_rows(named=True)]
    gainers = []
    if last_year is not None:
        now = flows.filter(pl.col("year") == last_year).sort("purchases_usd_median", descending=True).head(4)
        before = {(r["supplier"], r["role"]): r["purchases_usd_median"]
                  for r in flows.filter(pl.col("year") == last_year - 1).iter_rows(named=True)}
        for r in now.iter_rows(named=True):
            prev = before.get((r["supplier"], r["role"]))
            growth = f", {r['purchases_usd_median'] / prev - 1:+.0%} on {last_year - 1}" if prev else ""
            share = f", {pct(r['ratio'])} of its revenue" if r["ratio"] is not None else ""
            gainers.append(f"{r['supplier']} ({r['role'].replace('_', ' ')}) {usd(r['purchases_usd_median'])}"
                           f"{share}{growth}")
    return {
        "gainers": gainers,
        "spend_note": _spend_note(frames, headline, last_year),
        "binding_rows": binding,
        "first_short": first_short,
        "util_rows": [{"period": str(r["period_start"]), "region": r["region"], "class": r["chip_class"],
                       "required": short(r["required_h100e_median"]),
                       "available": short(r["available_inference_h100e"]),
                       "util": "n/a" if r["utilisation_median"] is None else pct(r["utilisation_median"]),
                       "band": "" if r["utilisation_p5"] is None
                       else f"{pct(r['utilisation_p5'])} to {pct(r['utilisation_p95'])}",
                       "shortfall": short(r["shortfall_h100e"]) if r["flag"] == "short" else "",
                       "flagged": r["flag"] in ("short", "overbuild"),
                       "flag": r["flag"]} for r in util.iter_rows(named=True)],
        "flow_year": last_year,
        "flow_rows": [{"supplier": r["supplier"], "role": r["role"], "flow": usd(r["purchases_usd_median"]),
                       "band": f"{usd(r['purchases_usd_p5'])} to {usd(r['purchases_usd_p95'])}",
                       "stock": usd(r["fleet_content_usd_median"]),
                       "revenue": usd(r["reported_revenue_usd"]) if r["reported_revenue_usd"] else "n/a",
                       "basis": r["revenue_basis"] or "", "ratio": "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}",
                       "status": r["status"], "flag": r["status"] == "exceeds revenue"}
                      for r in flows.filter(pl.col("year") == last_year)
                      .sort("purchases_usd_median", descending=True).iter_rows(named=True)],
        "margin_chips": chips,
        "margin_rows": margin_rows,
        "disclosed_rows": disclosed,
    }


def _spend_note(frames: dict[str, pl.DataFrame], headline: str, year) -> str:
    """One sentence tying the three figures the report gives for Nvidia in a year (issue 29: $193 B, $275 B/yr
    and $324 B stood apart): full-price purchases (the cross-check), the designer's share of them (the flow)
    and the designer's share of the whole fleet (a stock)."""
    if year is None:
        return ""
    flows = frames["flows"].filter((pl.col("scenario") == headline) & (pl.col("year") == year)
                                   & (pl.col("supplier") == "Nvidia") & (pl.col("role") == "designer"))
    check = frames["cross_checks"].filter((pl.col("scenario") == headline) & (pl.col("year") == year)
                                          & (pl.col("check_name") == "nvidia_spend_vs_data_center_revenue"))
    if flows.height == 0 or check.height == 0:
        return ""
    flow, stock = flows["purchases_usd_median"][0], flows["fleet_content_usd_median"][0]
    spend = check["implied_median"][0]
    return (f"Three figures for Nvidia in {year} measure different things: {usd(spend)}/yr is what buyers pay for "
            f"the Nvidia chips the inference fleet adds that year (growth plus replacements, at the full chip price; "
            f"the cross-check against Nvidia's data-center revenue); {usd(flow)} of it is Nvidia's own share as "
            f"designer (data/supply_chain.csv; the rest pays the foundry, the HBM makers and packaging); "
            f"{usd(stock)} is Nvidia's designer share of the whole fleet's content, a stock built over years, not a "
            f"year's revenue.")


def _calibration_summary(table: pl.DataFrame) -> dict:
    fit = table.filter(pl.col("in_fit"))
    worst = fit.with_columns(pl.col("ratio").log().abs().alias("e")).sort("e")[-1].row(0, named=True)
    return {"rows": table.height, "fitted": fit.height, "median": f"{fit['abs_log_error'].median():.2f}",
            "worst": f"{worst['ratio']:.2f}x ({worst['measurement_id']})",
            "loso": f"{fit['ratio_leave_source_out'].log().abs().median():.2f}"}


def _loso_by_source(table: pl.DataFrame) -> list[dict]:
    """Leave-one-source-out error per source (fitted rows): median |log ratio| and the range of the ratios,
    worst first; a source beyond 2x either way is flagged."""
    fit = table.filter(pl.col("in_fit")).with_columns(pl.col("ratio_leave_source_out").log().abs().alias("e"))
    per = (fit.group_by("source_id").agg(pl.len().alias("n"), pl.col("e").median().alias("median"),
                                         pl.col("ratio_leave_source_out").min().alias("low"),
                                         pl.col("ratio_leave_source_out").max().alias("high"),
                                         pl.col("chip").unique().sort().str.join(", ").alias("chips"))
           .sort("median", "source_id", descending=[True, False]))
    return [{"source": r["source_id"], "rows": r["n"], "chips": r["chips"], "median": f"{r['median']:.2f}",
             "range": f"{r['low']:.2f}-{r['high']:.2f}", "flag": r["high"] > 2 or r["low"] < 0.5}
            for r in per.iter_rows(named=True)]


def _cost_levels(frame: pl.DataFrame) -> list[dict]:
    """One row per chip x model: cost per million output tokens at the three interactivity levels."""
    if frame.height == 0:
        return []
    wide = frame.pivot(on="level", index=["chip", "model_name", "precision"], values="usd_per_million_output_tokens")
    levels = frame.select("level", "min_tokens_per_s_per_user").unique().sort("min_tokens_per_s_per_user")
    out = []
    for r in wide.sort("model_name", "chip").iter_rows(named=True):
        out.append({"chip": r["chip"], "model": r["model_name"], "precision": r["precision"],
                    "levels": [f"${r[lv]:,.2f}" if r.get(lv) is not None else "cannot reach"
                               for lv in levels["level"].to_list()]})
    return out


def _call_log_summary(frames: dict[str, pl.DataFrame]) -> dict | None:
    volume = frames.get("call_volume")
    if volume is None or volume.height == 0:
        return None
    rejects = frames["call_rejects"].group_by("reason").agg(pl.col("rows").sum()).sort("rows", descending=True)
    unknown = frames["call_unknown"]
    return {"days": volume["day"].n_unique(), "first": str(volume["day"].min()), "last": str(volume["day"].max()),
            "requests": short(float(volume["requests"].sum())),
            "tokens": words(float((volume["prompt_tokens"] + volume["completion_tokens"]).sum())),
            "rejects": [{"reason": r, "rows": f"{n:,}"} for r, n in rejects.iter_rows()],
            "unknown_models": unknown.height,
            "unknown_top": [{"model": m, "tokens": words(float(t))} for m, t in
                            unknown.select("model", "total_tokens").head(10).iter_rows()]}


def _num(value) -> str:
    return plain(value)


def _fmt_unit(value, unit: str) -> str:
    if value is None:
        return "n/a"
    return usd(value) + "/yr" if unit == "usd_per_year" else f"{short(value)} {unit.replace('_', ' ')}"


def render_report(frames: dict[str, pl.DataFrame], as_of: dt.date, reports_dir: Path | str,
                  checks: pl.DataFrame | None = None, change_threshold: float = 0.1,
                  data_as_of: dt.date | None = None) -> Path:
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    checks = checks if checks is not None else pl.DataFrame(
        schema={"asset": pl.Utf8, "check_name": pl.Utf8, "passed": pl.Boolean, "severity": pl.Utf8})
    numbers = key_numbers(frames, as_of)
    numbers["data_as_of"] = str(data_as_of or as_of)
    numbers["feed_vintages"] = data_freshness.vintages_of(frames["snapshots"])
    seen, since = data_freshness.previous_vintages(reports_dir, as_of)
    previous, comparison = _previous_report(reports_dir, as_of)
    moved = changes(numbers, previous, change_threshold)
    cache = ChartCache(reports_dir / ".chart-cache")
    figures = _figures(frames, cache)
    cache.prune()
    context = _context(frames, numbers, moved, checks, change_threshold, comparison)
    warn_days = frames["assumptions"].filter(pl.col("name") == "freshness.lag_warn_days")["value"]
    warn_days = float(warn_days[0]) if len(warn_days) else 90.0
    context |= {"lag_rows": data_freshness.lag_rows(frames["data_lag"], as_of, warn_days), "lag_warn_days": f"{warn_days:g}",
                "restated": data_freshness.restatements(frames["revisions"], seen) | {"since": since},
                "reference_rows": data_freshness.reference_rows(frames["references"]),
                "whatif_rows": [{"name": r["name"], "file": plain(r["file_value"], r["unit"]),
                                 "whatif": plain(r["whatif_value"], r["unit"]), "unit": r["unit"]}
                                for r in frames["whatif"].iter_rows(named=True)] if "whatif" in frames else []}

    env_html = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                  undefined=jinja2.StrictUndefined)
    env_md = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                                undefined=jinja2.StrictUndefined)
    env_md.filters["md"] = _md_escape
    images_html = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in figures.items()}
    images_narrow = {k: "data:image/png;base64," + base64.b64encode(getattr(v, "narrow", v)).decode()
                     for k, v in figures.items()}
    images_md = {k: f"{k}.png" for k in figures}

    target = reports_dir / as_of.isoformat()
    staging = reports_dir / f".{as_of.isoformat()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "report.html").write_text(env_html.get_template("report.html.j2").render(**context, img=images_html,
                                                                                        img_narrow=images_narrow))
    (staging / "report.md").write_text(env_md.get_template("report.md.j2").render(**context, img=images_md))
    for name, png in figures.items():
        (staging / f"{name}.png").write_bytes(png)
    (staging / "key_numbers.json").write_text(json.dumps(numbers, indent=2, default=str))
    checks.select([c for c in ("asset", "check_name", "passed", "severity") if c in checks.columns]) \
        .write_csv(staging / "checks.csv")
    if previous:
        (staging / "previous.json").write_text(json.dumps(previous, indent=2, default=str))
    _swap_dir(staging, target)
    # latest/ is the newest as-of date only: re-rendering an older as-of leaves it alone
    latest_as_of = _report_as_of(reports_dir / "latest")
    if latest_as_of is None or latest_as_of <= as_of:
        latest_tmp = reports_dir / ".latest.tmp"
        shutil.rmtree(latest_tmp, ignore_errors=True)
        shutil.copytree(target, latest_tmp)
        _swap_dir(latest_tmp, reports_dir / "latest")
    return target


def _report_as_of(directory: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(json.loads((directory / "key_numbers.json").read_text())["as_of"])
    except (OSError, ValueError, KeyError):
        return None


def _previous_report(reports_dir: Path, as_of: dt.date) -> tuple[dict | None, str]:
    """The report to compare with: an earlier report of the same as-of date (the same data vintage: any
    change is new data or a new model). A report of another as-of date is not compared: the as-of date
    moved, so differences would mix new data with the passage of time; the text says so."""
    same = reports_dir / as_of.isoformat() / "key_numbers.json"
    if same.exists():
        try:
            previous = json.loads(same.read_text())
        except ValueError:
            previous = None
        if previous:
            when = previous.get("generated_at") or "an earlier run"
            return previous, (f"Compared with the previous report of the same as-of date ({as_of}, generated "
                              f"{when}): differences come from new data, assumptions or model changes.")
    others = sorted((d for d in (_report_as_of(p) for p in reports_dir.iterdir() if p.is_dir()
                                 and not p.name.startswith(".") and p.name != "latest") if d and d != as_of))
    earlier = [d for d in others if d < as_of]
    if earlier:
        return None, (f"The previous report is as of {earlier[-1]}; the as-of date moved to {as_of}, so its figures "
                      "are not compared here (they would mix new data with the passage of time).")
    return None, "No earlier report of this as-of date to compare with."


def _swap_dir(src: Path, dst: Path) -> None:
    """Replace `dst` with `src` (a rename; the old directory is removed after)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def _md_escape(value) -> str:
    """Text from data in Markdown, table-safe and inert without HTML entities: backslash escapes
    (CommonMark) for the characters that could start raw HTML, an entity or a cell break."""
    text = str(value).replace("\\", "\\\\").replace("<", "\\<").replace("|", "\\|").replace("\n", " ")
    return re.sub(r"&(?=#?\w+;)", r"\\&", text)
