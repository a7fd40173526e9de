"""The view model the templates render: every figure, table row and sentence of the report from the mart
frames (reports.metrics for the numbers, reports.prose for the sentences), and the charts (reports.charts,
through the chart cache)."""

from __future__ import annotations

import datetime as dt
import polars as pl
from reports.chart_cache import ChartCache
from reports.labels import Labels
from reports.format import month_label, pct, plain, power_mw, quarter_label, short, tokens_per_day, tokens_per_month, usd, words
from reports.metrics import at_period, calibration_summary, call_log_summary, class_chart_scenario, cost_levels, headline_scenario, loso_by_source, segment_series, series_of
from reports.prose import check_name, coinciding_scenarios, fmt_unit, num, pct_or_na, spend_note, summary_sentences


def submit_figures(frames: dict[str, pl.DataFrame], cache: ChartCache | None = None):
    """Every chart of the report, drawn or read back from `cache` when its inputs are unchanged: the drawing
    starts now (in the chart workers); the returned function waits for {name: PNG}."""
    cache = cache or ChartCache(None)
    headline = headline_scenario(frames)
    fc = frames["forecast"]
    composites = {series_of(frames, "global"), series_of(frames, "estimated"), *segment_series(frames)}
    token_series = sorted(s for s in fc["series_id"].unique().to_list()
                          if s.startswith("tokens/") and (s not in composites or s.endswith("/all")))
    hw = frames["hardware"]
    scenarios = sorted(hw["scenario"].unique().to_list())
    horizon = hw["period_start"].max()
    labels = Labels.from_frames(frames)
    class_scenario = class_chart_scenario(frames)
    global_series = [s for s in [series_of(frames, "global"), *segment_series(frames)] if s]
    # only the series a chart draws go into its key: a what-if that moves no demand reuses the demand charts
    platform_fc = fc.filter(pl.col("series_id").is_in(token_series))
    global_fc = fc.filter(pl.col("series_id").is_in(global_series))
    return cache.submit({
        "demand_platforms": ("demand_fan", platform_fc, token_series,
                             "Token demand by platform: disclosures and forecast", labels),
        "demand_global": ("demand_fan", global_fc, global_series,
                          "Global inference demand (composite) and its hardware segments", labels),
        "origin_share": ("origin_share", frames["weekly"], labels),
        "chips_by_class": ("chips_by_class", hw, scenarios, labels),
        "required_vs_installed": ("required_vs_installed", frames["gap"], headline, labels),
        "reconciliation": ("demand_reconciliation", frames["reconciliation"], headline, labels),
        "interactivity": ("interactivity", frames["curves"]),
        "phase_split": ("phase_split", hw, horizon, labels),
        **({"class_chart": ("classes_over_time", hw, class_scenario, labels)} if class_scenario else {}),
        "suppliers": ("supplier_bars", at_period(frames["exposure"], horizon).filter(pl.col("scenario") == headline)),
        "tornado": ("tornado", frames["sensitivity"], headline, 12, labels),
    })


def _scenario_defs(frames: dict[str, pl.DataFrame]) -> dict[str, dict]:
    defs = frames.get("scenario_defs")
    if defs is None or defs.height == 0:
        return {}
    return {r["scenario"]: r for r in defs.iter_rows(named=True)}


def view_context(frames: dict[str, pl.DataFrame], numbers: dict, moved: list[dict], checks: pl.DataFrame,
             threshold: float, comparison: str = "", compared: bool = False) -> dict:
    headline = headline_scenario(frames)
    hw = frames["hardware"]
    horizon = hw["period_start"].max()
    as_of = dt.date.fromisoformat(numbers["as_of"])
    conc = at_period(frames["concentration"], horizon).filter(pl.col("scenario") == headline)
    exposure = at_period(frames["exposure"], horizon).filter(pl.col("scenario") == headline).head(15)
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
                          "served": pct_or_na(vals.get("served_by_installed_share_median")),
                          "utilisation": pct_or_na(vals.get("installed_utilisation_median")),
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
    if compared and not moved:
        comparison += f" No headline number moved by more than {pct(threshold)}."
    summary = summary_sentences(numbers, frames, supply, defs, cross_flags, moved, comparison, horizon, compared)
    class_chart = class_chart_scenario(frames)
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
        "scenarios_alike": coinciding_scenarios(scen_rows, ("h100e_start", "h100e", "chips", "mw", "capex", "served",
                                                            "utilisation", "bought", "bought_capex")),
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
        "calibration_summary": calibration_summary(frames["calibration"]),
        "loso_rows": loso_by_source(frames["calibration"]),
        "efficiency_rows": [{"group": r["chip_group"], "mfu": f"{r['mfu']:.2f}", "mbu": f"{r['mbu']:.2f}",
                             "layer_us": f"{r['layer_latency_us']:.1f}", "hop_us": f"{r['hop_latency_us']:.2f}",
                             "moe": f"{r['moe_prefill_efficiency']:.2f}",
                             "scaleout_us": f"{r['scaleout_layer_latency_us']:.0f}",
                             "ep_us": f"{r['ep_layer_latency_us']:.1f}",
                             "error_sd": f"{r['error_log_sd']:.2f}", "rows": r["fitted_rows"]}
                            for r in frames["serving_efficiency"].iter_rows(named=True)],
        "cost_level_rows": cost_levels(frames["cost_levels"]),
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
                        "implied": fmt_unit(r["implied_median"], r["unit"]),
                        "reported": fmt_unit(r["reported"], r["unit"]),
                        "basis": r["reported_basis"] or "n/a",
                        "ratio": "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}",
                        "status": r["status"], "flag": r["status"] == "outside tolerance"}
                       for r in cross.iter_rows(named=True)],
        "selection_rows": [{"series": r["series_id"], "model": r["model_name"],
                            "mase": num(r["mase"]), "smape": num(r["smape"]), "c80": pct(r["coverage80"]),
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
        "call_logs": call_log_summary(frames),
        "cost_rows": [{"scenario": r["scenario"], "chip_class": r["chip_class"], "phase": r["phase"],
                       "usd": "$" + plain(r["usd_per_million_tokens"]) if r["usd_per_million_tokens"] is not None
                       else "n/a"}
                      for r in at_period(frames["token_cost"], horizon).sort("scenario", "phase", "chip_class")
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
    part = at_period(frames["stock_flow"], horizon).filter(pl.col("scenario") == headline)
    if part.height == 0:
        return []
    part = part.with_columns((pl.col("chips_in_use_median") + pl.col("bought_chips_median")).alias("serving"))
    total = float(part["serving"].sum()) or 1.0
    return [{"region": "China" if r["region"] == "china" else "rest of world", "chip": r["chip"],
             "installed": short(r["installed_inference_chips_median"]), "in_use": short(r["chips_in_use_median"]),
             "utilisation": pct_or_na(r["utilisation_median"]), "bought": short(r["bought_chips_median"]),
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
                    "utilisation": f"{pct_or_na(r['utilisation_median'])} ({pct_or_na(r['utilisation_p5'])}-"
                                   f"{pct_or_na(r['utilisation_p95'])})",
                    "disclosed_only": pct_or_na(r["utilisation_disclosed_only_median"]),
                    "residual": (("+" if r["residual_tokens_per_day_median"] >= 0 else "-")
                                 + tokens_per_day(abs(r["residual_tokens_per_day_median"]))),
                    "implied_share": pct_or_na(r["implied_inference_share_median"]),
                    "share": pct(r["inference_share"]), "busy": f"{pct(r['busy_share_low'])}-{pct(r['busy_share_high'])}",
                    "status": r["status"]})
    return out


RESOURCE_NAMES = {"cowos": "CoWoS wafers", "hbm": "HBM (GB)", "hbm_stock": "the HBM stacks stockpiled in China",
                  "smic_advanced": "SMIC 7 nm-class wafers"}


def _supply_context(frames: dict[str, pl.DataFrame], as_of: dt.date) -> dict:
    """The supply-side section: what binds when (ledger), implied utilisation, flows vs revenue, margins."""
    headline = headline_scenario(frames)
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
        "spend_note": spend_note(frames, headline, last_year),
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
