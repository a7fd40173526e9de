"""The report's numbers from the mart frames (no text, no files): the headline scenario and series, the key
numbers written to key_numbers.json, what moved since the previous report, and the calibration, cost and
call-log summaries the tables show."""

from __future__ import annotations

import datetime as dt
import polars as pl
from reports.format import short, words


def headline_scenario(frames: dict[str, pl.DataFrame]) -> str:
    """The scenario the report follows: report.headline_scenario (meta.scenarios), else the first scenario."""
    defs = frames.get("scenario_defs")
    if defs is not None and defs.height and "headline" in defs.columns and defs["headline"].any():
        return defs.filter(pl.col("headline"))["scenario"][0]
    return sorted(frames["hardware"]["scenario"].unique().to_list())[0]


def class_chart_scenario(frames: dict[str, pl.DataFrame]) -> str | None:
    defs = frames.get("scenario_defs")
    if defs is not None and defs.height and "class_chart" in defs.columns and defs["class_chart"].any():
        return defs.filter(pl.col("class_chart"))["scenario"][0]
    return None


def series_of(frames: dict[str, pl.DataFrame], role: str) -> str | None:
    """A demand series by its role in the config (meta.report_series): global, estimated, segment:<name>."""
    table = frames.get("report_series")
    if table is None or table.height == 0:
        return None
    hit = table.filter(pl.col("role") == role)
    return hit["series_id"][0] if hit.height else None


def segment_series(frames: dict[str, pl.DataFrame]) -> list[str]:
    table = frames.get("report_series")
    if table is None or table.height == 0:
        return []
    return table.filter(pl.col("role").str.starts_with("segment:"))["series_id"].to_list()


def at_period(frame: pl.DataFrame, period) -> pl.DataFrame:
    return frame.filter(pl.col("period_start") == period)


def key_numbers(frames: dict[str, pl.DataFrame], as_of: dt.date) -> dict:
    """The headline figures, as plain numbers (also written to key_numbers.json for the next run)."""
    headline = headline_scenario(frames)
    fc = frames["forecast"].filter((pl.col("series_id") == series_of(frames, "global"))
                                   & pl.col("is_forecast")).sort("period_start")
    now_rows = fc.filter(pl.col("period_start") <= as_of)
    now = (now_rows[-1] if now_rows.height else fc[0]).row(0, named=True)
    end = fc[-1].row(0, named=True)
    hw = frames["hardware"]
    horizon = hw["period_start"].max()
    # totals per Monte Carlo draw, then summarised (marts.fleet_totals, segment 'all')
    totals = frames["totals"].filter(pl.col("segment") == "all")
    per_scenario = at_period(totals, horizon).sort("scenario")
    exposure = at_period(frames["exposure"], horizon).filter(pl.col("scenario") == headline)
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
    per_scenario_now = (at_period(totals, now_quarter).select("scenario", "h100e_median")
                        if now_quarter else pl.DataFrame(schema={"scenario": pl.Utf8, "h100e_median": pl.Float64}))
    est = frames["forecast"].filter((pl.col("series_id") == series_of(frames, "estimated")) & pl.col("is_forecast"))
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


def calibration_summary(table: pl.DataFrame) -> dict:
    fit = table.filter(pl.col("in_fit"))
    worst = fit.with_columns(pl.col("ratio").log().abs().alias("e")).sort("e")[-1].row(0, named=True)
    return {"rows": table.height, "fitted": fit.height, "median": f"{fit['abs_log_error'].median():.2f}",
            "worst": f"{worst['ratio']:.2f}x ({worst['measurement_id']})",
            "loso": f"{fit['ratio_leave_source_out'].log().abs().median():.2f}"}


def loso_by_source(table: pl.DataFrame) -> list[dict]:
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


def cost_levels(frame: pl.DataFrame) -> list[dict]:
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


def call_log_summary(frames: dict[str, pl.DataFrame]) -> dict | None:
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
