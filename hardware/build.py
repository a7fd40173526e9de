"""The demand-to-hardware model end to end: frames and the typed configuration (configuration.schema.Assumptions)
in, mart frames out (pure library).

    build(inputs, config, seed=0) -> dict of polars frames:
        hardware_demand, supplier_exposure, supplier_concentration, supply_demand_gap, implied_utilisation,
        supplier_flows, token_margin, sensitivity, cross_checks, interactivity_curves, installed_base_by_chip,
        fleet_stock_flow, fleet_totals, token_cost, demand_reconciliation, assumptions_used

`inputs` holds polars frames: specs (staging.accelerator_specs), catalog (model catalog), supply_chain,
workload_mix, demand (model_inputs.quarterly_demand), installed_base_projection, supply_capacity, forecast
(marts.forecast, for revenue and packaging series), supply_metrics, api_prices, provider_margins, chip_packaging (packages per CoWoS wafer per chip) and serving_efficiency
(marts.serving_efficiency: the calibrated efficiency and error of each chip group). The supply-side frames
come from hardware.supply. Every assumption is read from the typed `config`; where call logs measured the
workload's output and cached shares, a copy of it with those values (measured_workload) is what the fleet runs
with and what marts.assumptions_used records.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from configuration.assumptions import flatten_assumptions
from hardware.exposure import concentration, supplier_exposure
import dataclasses

from hardware.fleet import (FLEET_ASSUMPTIONS, ScenarioError, FleetServing, Stock, check_speed, check_windows,
                            draw_assumptions, parse_scenarios, size_fleet, summarise, tie_workload)
from hardware.stockflow import SHIPMENT_MIX, _units_by_region, installed_by_chip, stock_flow_table, windows_from_frame
from hardware.totals import demand_reconciliation, fleet_totals, token_cost
from hardware.serving import interactivity_curves, priors_and_limits, serving_from_table
from hardware.specs import chip_overrides, chips_from_frame, models_from_frame
from hardware.stats import Z80, log_sigma, percentiles
from hardware.supply import implied_utilisation, supplier_flows, supply_demand_gap, token_margin

if TYPE_CHECKING:
    from configuration.schema import Assumptions, Segment, Supply


def model_mix(segments: dict[str, Segment], workload_mix: pl.DataFrame, models: dict) -> dict[str, dict[str, float]]:
    """Per segment, model -> share of its tokens: the configured mix, or the measured one ('measured:<group>')."""
    out = {}
    for segment, spec in segments.items():
        mix = spec.model_mix
        if isinstance(mix, str) and mix.startswith("measured:"):
            group = mix.split(":", 1)[1]
            rows = workload_mix.filter(pl.col("origin_group") == group)
            if rows.height:
                mix = dict(rows.select("catalog_model", "token_share").iter_rows())
            elif spec.model_mix_fallback:
                # a data vintage without OpenRouter rankings of this group: the configured mix, flagged
                warnings.warn(f"segment '{segment}': no measured model mix for origin group '{group}' in this "
                              "data vintage; using model_mix_fallback")
                mix = spec.model_mix_fallback
            else:
                raise ScenarioError(f"segment '{segment}': no measured model mix for origin group '{group}' "
                                    "(add model_mix_fallback to the segment for data vintages without one)")
        if not isinstance(mix, dict) or not mix:
            raise ScenarioError(f"segment '{segment}': model_mix must be 'measured:<group>' or {{model: share}}")
        unknown = sorted(set(mix) - set(models))
        if unknown:
            raise ScenarioError(f"segment '{segment}': model(s) {unknown} not in the model catalog")
        total = sum(mix.values())
        if abs(total - 1) > 1e-6:
            raise ScenarioError(f"segment '{segment}': model_mix shares sum to {total:g}, not 1")
        out[segment] = {m: float(s) for m, s in mix.items() if s > 0}
    return out


def _segment_demand(segments: dict[str, Segment], demand: pl.DataFrame) -> pl.DataFrame:
    frames = []
    for segment, spec in segments.items():
        part = demand.filter(pl.col("series_id") == spec.demand_series)
        if part.height == 0 and spec.demand_fallback:
            # a data vintage before the series' first disclosure: the configured fallback (flagged in
            # marts.forecast_flags by the forecast step)
            part = demand.filter(pl.col("series_id") == spec.demand_fallback)
        if part.height == 0:
            raise ScenarioError(f"segment '{segment}': no forecast for demand series '{spec.demand_series}'"
                                + (f" nor its fallback '{spec.demand_fallback}'" if spec.demand_fallback else ""))
        frames.append(part.with_columns(pl.lit(segment).alias("segment")))
    out = pl.concat(frames)
    n_segments = len(segments)
    common = out.group_by("period_start").agg(pl.col("segment").n_unique().alias("n")).filter(pl.col("n") == n_segments)
    return out.join(common.select("period_start"), on="period_start").sort("period_start", "segment")


def measured_workload(config: Assumptions, workload_mix: pl.DataFrame) -> Assumptions:
    """With request-level call logs loaded (origin group 'call_logs'), their output and cached shares
    replace the configured values of workload.output_share / workload.cached_share (a copy of the typed
    configuration; the configured range is kept and widened if needed to include the measured value)."""
    calls = workload_mix.filter(pl.col("origin_group") == "call_logs")
    if calls.height == 0:
        return config
    measured = {"workload.output_share": calls["output_share"][0], "workload.cached_share": calls["cached_share"][0]}
    return config.with_measured({name: float(v) for name, v in measured.items() if v is not None})


MEASURED = "measured: request-level call logs (marts.workload_mix)"


def assumptions_used(config: Assumptions, used: Assumptions) -> pl.DataFrame:
    """marts.assumptions_used: every assumption's value, low and high as the model ran with them (`used`),
    beside the file's value (`config`), and where the value came from (the assumptions file, or a measurement
    that replaced it). Both flattened as meta.assumptions is."""
    filed = flatten_assumptions(config).select("name", pl.col("value").alias("file_value"))
    return (flatten_assumptions(used).select("name", "value", "low", "high", "unit")
            .join(filed, on="name", how="left")
            .with_columns(pl.when(pl.col("value") != pl.col("file_value")).then(pl.lit(MEASURED))
                          .otherwise(pl.lit("assumptions file")).alias("value_source"))
            .sort("name"))


def build(inputs: dict[str, pl.DataFrame], config: Assumptions, seed: int = 0) -> dict[str, pl.DataFrame]:
    used = measured_workload(config, inputs["workload_mix"])  # the values the fleet runs with
    overrides = chip_overrides(config)
    chips = chips_from_frame(inputs["specs"], overrides)
    designer = dict(inputs["specs"].select("chip", "designer").iter_rows())
    models = models_from_frame(inputs["catalog"])
    segments = list(config.segments)
    # the scenarios' shares and schedules are checked against the chips and segments here (the schema cannot)
    scenarios = parse_scenarios(config.scenarios, chips, segments)
    mix = model_mix(config.segments, inputs["workload_mix"], models)
    demand = _segment_demand(config.segments, inputs["demand"])
    _, limits = priors_and_limits(config)
    efficiency, error_sd = serving_from_table(inputs["serving_efficiency"])
    serving = FleetServing(efficiency, limits, error_sd)
    point = {name: used.quantity(name).point for name in FLEET_ASSUMPTIONS}
    check_speed(scenarios, chips, models, mix, point, serving)

    region = {s: spec.region for s, spec in config.segments.items()}
    windows = windows_from_frame(inputs["chip_availability"])
    check_windows(scenarios, sorted(demand["period_start"].unique().to_list()), region, windows, mix)
    life_quarters = int(round(config.installed_base.service_life_years.point * 4))
    installed = installed_by_chip(inputs["chip_shipments"], inputs["installed_base_projection"], inputs["specs"],
                                  windows, life_quarters)

    draws = int(config.fleet.mc_draws.point)
    rng = np.random.default_rng(seed)
    samples = draw_assumptions(used, FLEET_ASSUMPTIONS + ["fleet.inference_share_of_installed_base",
                                                           "installed_base.service_life_years",
                                                           "cowos.packages_per_wafer",
                                                           "fleet.electricity_usd_per_mwh"], draws, rng)
    samples = tie_workload(samples, int(config.fleet.workload_points.point))
    demand_z = {s: rng.standard_normal(draws) for s in segments}
    error_z = {g: rng.standard_normal(draws) for g in error_sd}
    share = samples["fleet.inference_share_of_installed_base"]
    stock = Stock(_units_by_region(installed), installed, windows, region, share, life_quarters)
    # the Monte Carlo draws and the sensitivity table's cases (each assumption at its low and high end) in one pass
    moves, cases = _sensitivity_cases(demand, used, stock)
    rows, stock_records, case_totals = fleet_with_cases(
        demand, scenarios, chips, models, mix, samples, demand_z, serving, error_z, stock, cases,
        point, config.fleet.inference_share_of_installed_base.point)
    hardware_demand = summarise(rows, chips, samples)
    exposure = supplier_exposure(rows, inputs["supply_chain"])

    supply = config.supply
    projection = inputs["installed_base_projection"]
    gap = supply_demand_gap(rows, chips, region, projection, share)
    utilisation = implied_utilisation(rows, chips, region, projection, share,
                                      supply.utilisation_overbuild.point)
    flows = supplier_flows(rows, inputs["supply_chain"], inputs["forecast"], inputs["supply_metrics"],
                           supply.supplier_revenue,
                           samples["installed_base.service_life_years"], supply.flow_revenue_tolerance.point)
    margin = token_margin(inputs["api_prices"], inputs["provider_margins"], chips, models, serving, used,
                          list(supply.margin_chips), supply.margin_precision,
                          supply.all_in_cost_multiplier.span())
    sensitivity = _sensitivity_frame(moves, case_totals, scenarios, demand)
    checks = _cross_checks(rows, chips, designer, inputs, samples, exposure,
                           supply.flow_revenue_tolerance.point, supply.share_tolerance.point, supply)
    curves = interactivity_curves(chips, models, _curve_pairs(config, scenarios, mix, chips, rows), serving.efficiency,
                                  limits, used)
    return {
        "hardware_demand": hardware_demand,
        "supplier_exposure": exposure,
        "supplier_concentration": concentration(exposure),
        "supply_demand_gap": gap,
        "implied_utilisation": utilisation,
        "supplier_flows": flows,
        "token_margin": margin,
        "sensitivity": sensitivity,
        "cross_checks": checks,
        "interactivity_curves": curves,
        "installed_base_by_chip": installed.with_columns(pl.col("chip").fill_null("(unplaced)")),
        "fleet_stock_flow": stock_flow_table(stock_records, chips, region),
        "fleet_totals": fleet_totals(rows, stock_records, chips, samples["fleet.pue"]),
        "token_cost": token_cost(rows, chips, samples),
        "demand_reconciliation": demand_reconciliation(
            stock_records, inputs["demand"], config.segments, config.forecast.estimated_components,
            config.forecast.composites,
            config.fleet.inference_share_of_installed_base.point, supply.inference_busy_share.span()),
        "assumptions_used": assumptions_used(config, used),
    }


def _curve_pairs(config, scenarios, mix, chips, rows) -> list[tuple[str, str, str]]:
    """(chip, model, precision) for the interactivity curves: each chip a scenario buys for decode in a
    segment (shipment-mix segments: the chips the stock and flow bought), with the largest model share of
    the segment (report.curve_models adds models to every chip)."""
    extra = list(config.report.curve_models)
    bought = {(r["scenario"], r["segment"], r["chip"]) for r in rows
              if r["phase"] == "decode" and np.any(r["bought"] > 0)}
    pairs = []
    for scen in scenarios.values():
        for segment in mix:
            top = max(mix[segment], key=mix[segment].get)
            named = {c for m, _ in scen.entries() if m[segment] != SHIPMENT_MIX for c in m[segment]["decode"]}
            named |= {c for s, seg, c in bought if s == scen.name and seg == segment}
            for chip in sorted(named):
                for model in [top, *extra]:
                    if (chip, model, scen.precision) not in pairs and chips[chip].chip_class != "cpu":
                        pairs.append((chip, model, scen.precision))
    return pairs


def _case_draws(cases: list[dict], point: dict, segments: list[str], groups, stock: Stock | None):
    """The cases as draws: {assumption: values} (point values where a case does not move one), demand z per
    segment, calibration error z per chip group, and the stock with each case's inference share."""
    samples = {n: np.array([c.get(n, v) for c in cases], dtype=float) for n, v in point.items()}
    z = np.array([c.get("z", 0.0) for c in cases])
    error = np.array([c.get("error", 0.0) for c in cases])
    if stock is not None:
        stock = dataclasses.replace(stock, share=np.array([c.get("share", float(stock.share[0])) for c in cases]))
    return samples, {s: z for s in segments}, {g: error for g in groups}, stock


def _last_totals(rows: list[dict], scenarios, last, k: int, offset: int = 0) -> list[dict[str, float]]:
    """Chips serving demand in quarter `last` per scenario for draws offset..offset+k-1 of `rows`."""
    totals = [dict.fromkeys(scenarios, 0.0) for _ in range(k)]
    for r in rows:
        if r["period_start"] == last:
            for i in range(k):
                totals[i][r["scenario"]] += float(r["chips"][offset + i])
    return totals


def _total_chips(demand, scenarios, chips, models, mix, cases: list[dict], point: dict, serving: FleetServing,
                 stock: Stock | None = None) -> list[dict[str, float]]:
    """Chips serving demand in the last quarter of `demand` per scenario (installed in use + bought), for each
    case: {assumption: value} moves, demand z 'z', calibration error z 'error', inference share 'share'. The
    cases run together as the draws of one stock-and-flow pass."""
    samples, demand_z, error_z, stock = _case_draws(cases, point, demand["segment"].unique().to_list(),
                                                    serving.error_sd, stock)
    rows = size_fleet(demand, scenarios, chips, models, mix, samples, demand_z, serving, error_z, stock)
    return _last_totals(rows, scenarios, demand["period_start"].max(), len(cases))


def fleet_with_cases(demand, scenarios, chips, models, mix, samples: dict[str, np.ndarray],
                     demand_z: dict[str, np.ndarray], serving: FleetServing, error_z: dict[str, np.ndarray],
                     stock: Stock, cases: list[dict], point: dict, point_share: float
                     ) -> tuple[list[dict], list[dict], list[dict[str, float]]]:
    """The Monte Carlo pass and the sensitivity cases in one stock-and-flow pass (the cases appended as extra
    draws; every step of size_fleet is per draw, so each part equals its own pass, at the cost of one):
    (size_fleet rows over the Monte Carlo draws, their stock records, _total_chips of the cases)."""
    draws = len(next(iter(samples.values())))
    case_samples, case_z, case_error, _ = _case_draws(cases, point, list(demand_z), error_z, None)
    joint = {n: np.concatenate([samples[n], case_samples[n]]) for n in point}
    joint_stock = dataclasses.replace(stock, share=np.concatenate(
        [np.broadcast_to(stock.share, draws), np.array([c.get("share", point_share) for c in cases], dtype=float)]))
    records: list[dict] = []
    rows = size_fleet(demand, scenarios, chips, models, mix, joint,
                      {s: np.concatenate([demand_z[s], case_z[s]]) for s in demand_z}, serving,
                      {g: np.concatenate([error_z[g], case_error[g]]) for g in error_z}, joint_stock, records)
    totals = _last_totals(rows, scenarios, demand["period_start"].max(), len(cases), offset=draws)

    def head(rec: dict) -> dict:
        return {k: v[:draws] if isinstance(v, np.ndarray) and v.ndim == 1 else v for k, v in rec.items()}

    # a chip row that only the cases use is not a row of the Monte Carlo pass (size_fleet drops all-zero rows)
    kept = [head(r) for r in rows if r["phase"] == "orchestration" or np.any(r["chips"][:draws] > 0)]
    return kept, [head(r) for r in records], totals


def _sensitivity_cases(demand, config: Assumptions, stock: Stock | None = None) -> tuple[list[tuple], list[dict]]:
    """The moves of the sensitivity table, (name, unit, low, value, high, case at low, case at high), and the
    cases to size: the point first, then low and high of each move (`config`: the typed values the fleet
    runs with)."""
    last = demand.filter(pl.col("period_start") == demand["period_start"].max())
    spread = log_sigma(last["lo95"], last["hi95"])
    peak, festival = config.fleet.peak_to_average, config.fleet.festival_peak_to_average.point
    moves = [("demand (forecast 80% interval)", "tokens/day", float((last["value"] * np.exp(-Z80 * spread)).sum()),
              float(last["value"].sum()), float((last["value"] * np.exp(Z80 * spread)).sum()),
              {"z": -Z80}, {"z": Z80}),
             ("calibration error (leave-one-source-out, 80% interval)",
              "z: per-chip rates x exp(z x error_log_sd of the chip group)", -Z80, 0.0, Z80,
              {"error": -Z80}, {"error": Z80}),
             ("stress: festival peak (fleet.festival_peak_to_average)", peak.unit, peak.point, peak.point, festival,
              {}, {"fleet.peak_to_average": festival})]
    share = config.fleet.inference_share_of_installed_base
    low, value, high = share.span()
    if stock is not None and high > low:
        moves.append(("fleet.inference_share_of_installed_base", share.unit, low, value, high,
                      {"share": low}, {"share": high}))
    for name in FLEET_ASSUMPTIONS:
        entry = config.quantity(name)
        low, value, high = entry.span()
        if high > low:
            moves.append((name, entry.unit, low, value, high, {name: low}, {name: high}))
    return moves, [{}] + [c for m in moves for c in m[5:]]


def _sensitivity_frame(moves: list[tuple], totals: list[dict[str, float]], scenarios, demand) -> pl.DataFrame:
    base = totals[0]
    out = [{"scenario": scen, "assumption": name, "unit": unit, "low_value": low, "value": value,
            "high_value": high, "chips_at_low": totals[1 + 2 * i][scen], "chips_at_value": base[scen],
            "chips_at_high": totals[2 + 2 * i][scen]}
           for i, (name, unit, low, value, high, _, _) in enumerate(moves) for scen in scenarios]
    frame = pl.DataFrame(out).with_columns(
        (pl.col("chips_at_high") - pl.col("chips_at_low")).abs().alias("swing_chips"),
        pl.lit(demand["period_start"].max()).alias("period_start"))
    return frame.sort("scenario", "swing_chips", descending=[False, True])


def _sensitivity(demand, scenarios, chips, models, mix, config: Assumptions, serving: FleetServing,
                 stock: Stock | None = None) -> pl.DataFrame:
    """Total chips serving demand at the horizon's last quarter (installed chips in use + bought; the stock and
    flow runs the whole horizon) when one assumption moves to its low or high end with the others at their
    values; the demand forecast and the calibration error move across their 80% intervals; the festival peak
    is a stress case (low = high = the festival peak-to-average). (build() sizes these cases in the Monte
    Carlo pass itself: fleet_with_cases.)"""
    moves, cases = _sensitivity_cases(demand, config, stock)
    point = {name: config.quantity(name).point for name in FLEET_ASSUMPTIONS}
    totals = _total_chips(demand, scenarios, chips, models, mix, cases, point, serving, stock)
    return _sensitivity_frame(moves, totals, scenarios, demand)


def _cross_checks(rows, chips, designer, inputs, samples, exposure: pl.DataFrame, flow_tol: float,
                  share_tol: float, supply: Supply) -> pl.DataFrame:
    """Implied annual spend and packaging demand vs reported revenue and capacity, per scenario and year.

    A year's implied purchases = the growth of the required fleet over the year plus replacement of
    the fleet a year earlier over its service life; they are compared, as ratios, with the spend-check
    designer's revenue, the CoWoS packager's capacity and the domestic 2.5D packager's revenue of that
    year. Who they are and their revenue series come from `supply` (config: supply.spend_check_designer,
    cowos_packager, domestic_packaging_supplier, supplier_revenue)."""
    spender = supply.spend_check_designer
    packager = supply.cowos_packager
    domestic_supplier = supply.domestic_packaging_supplier
    revenue_series = {k: v.series for k, v in supply.supplier_revenue.items()}
    q4 = [r for r in rows if r["period_start"].month == 10]
    years = sorted({r["period_start"].year for r in q4})
    life = samples["installed_base.service_life_years"]
    split = inputs["supply_chain"].filter(pl.col("usd_per_chip").is_not_null())
    packaged = set(split.filter((pl.col("role") == "advanced_packaging") & (pl.col("supplier") == packager))["chip"])
    packaging = inputs["chip_packaging"].filter(pl.col("packages_per_wafer") > 0)
    per_wafer = dict(packaging.select("chip", "packages_per_wafer").iter_rows())
    domestic_pkg = dict(split.filter((pl.col("role") == "advanced_packaging")
                                     & (pl.col("supplier") == domestic_supplier)).select("chip", "usd_per_chip")
                        .iter_rows())

    def fleet(year, scenario, weight):
        total = 0.0
        for r in q4:
            if r["period_start"].year == year and r["scenario"] == scenario:
                total = total + r["chips"] * weight(r["chip"])
        return total

    fc = inputs["forecast"]

    def reported_year(series_id: str | None, year: int):
        if series_id is None:
            return None, None
        part = fc.filter((pl.col("series_id") == series_id) & (pl.col("period_start").dt.year() == year))
        if part.height == 0:
            return None, None
        basis = "forecast" if part["is_forecast"].any() else "reported"
        return float(part["value"].sum()), basis

    metrics = inputs["supply_metrics"]
    capacity = inputs["supply_capacity"]
    out = []
    scenarios = sorted({r["scenario"] for r in q4})
    for year in years:
        if year - 1 not in years:
            continue
        for scen in scenarios:
            def purchases(weight):
                now, before = fleet(year, scen, weight), fleet(year - 1, scen, weight)
                return np.maximum(now - before, 0.0) + before / life

            spend = purchases(lambda c: (chips[c].unit_price_usd or 0.0) if designer.get(c) == spender else 0.0)
            rev, basis = reported_year(revenue_series.get(spender), year)
            out.append(_check(year, scen, "nvidia_spend_vs_data_center_revenue", spend, rev, "usd_per_year", basis,
                              f"implied purchases of {spender} chips for inference vs {spender}'s revenue "
                              f"({revenue_series.get(spender)})", flow_tol))
            # CoWoS wafers per chip: 1 / the chip's packages per wafer (data/chip_packaging.csv), else the
            # assumption cowos.packages_per_wafer (drawn over its range)
            wafers = purchases(lambda c: (1.0 / per_wafer[c] if c in per_wafer else 1.0 / samples["cowos.packages_per_wafer"])
                               if c in packaged else 0.0) / 12
            cap = capacity.filter((pl.col("resource") == "cowos") & (pl.col("region") == "rest")
                                  & (pl.col("quarter_start").dt.year() == year)
                                  & (pl.col("quarter_start").dt.month() == 10))
            cap_value = float(cap["capacity"][0]) / 3 if cap.height else None
            cap_basis = f"{cap['basis'][0]} Q4 {year} ({cap['source_id'][0]})" if cap.height else None
            out.append(_check(year, scen, "cowos_wafers_vs_capacity", wafers, cap_value, "wafers_per_month",
                              cap_basis, "CoWoS wafers/month the inference chips bought in the year need vs TSMC "
                                         "CoWoS capacity", 0.0))
            domestic = purchases(lambda c: domestic_pkg.get(c, 0.0))
            sj, sj_basis = reported_year(revenue_series.get(domestic_supplier), year)
            out.append(_check(year, scen, "domestic_2_5d_spend_vs_packaging_revenue", domestic, sj, "usd_per_year",
                              sj_basis, "implied domestic 2.5D packaging content of Chinese chips bought in the year "
                                        "vs SJ Semiconductor's 2.5D packaging revenue. SJ is one of several domestic "
                                        "2.5D houses (Huawei's own lines and others package Ascend too), so a ratio "
                                        "above 1 means the other houses or new capacity must carry the rest, or the "
                                        "per-chip packaging content (data/supply_chain.csv) is set too high", flow_tol))
            # the fleet's HBM content split by supplier vs published HBM market shares
            hbm = exposure.filter((pl.col("role") == "hbm") & (pl.col("scenario") == scen)
                                  & (pl.col("period_start").dt.year() == year)
                                  & (pl.col("period_start").dt.month() == 10))
            shares = metrics.filter((pl.col("metric") == "market_share") & (pl.col("segment") == "HBM"))
            for supplier, share in shares.select("company", "value").iter_rows():
                got = hbm.filter(pl.col("supplier") == supplier)
                implied = float(got["share_of_role"][0]) if got.height else 0.0
                out.append(_check(year, scen, f"hbm_share_vs_published/{supplier}", implied, float(share), "share",
                                  "reported market share (counterpoint_hbm_share)",
                                  f"{supplier}'s share of the required fleet's HBM content vs its published HBM "
                                  "market share: the supply_chain.csv split routes HBM by chip, so a ratio far from 1 "
                                  "says the fleet's chips buy from a different mix than the market", share_tol,
                                  "share"))
    schema = {"year": pl.Int64, "scenario": pl.Utf8, "check_name": pl.Utf8, "implied_p5": pl.Float64,
              "implied_median": pl.Float64, "implied_p95": pl.Float64, "reported": pl.Float64, "unit": pl.Utf8,
              "reported_basis": pl.Utf8, "ratio": pl.Float64, "tolerance": pl.Float64, "status": pl.Utf8,
              "note": pl.Utf8}
    return pl.DataFrame(out, schema=schema)


def _check(year, scenario, name, implied, reported, unit, basis, note, tolerance: float,
           kind: str = "ceiling") -> dict:
    """One cross-check row. kind 'ceiling': the implied figure may not exceed the reported one by more than
    `tolerance` (spend vs revenue, wafers vs capacity); 'share': the ratio must lie within
    [1 / (1 + tolerance), 1 + tolerance]. status: within / outside tolerance, or no reported figure."""
    p5, median, p95 = percentiles(implied)
    ratio = median / reported if reported else None
    if ratio is None:
        status = "no reported figure"
    elif kind == "share":
        status = "within tolerance" if 1 / (1 + tolerance) <= ratio <= 1 + tolerance else "outside tolerance"
    else:
        status = "within tolerance" if ratio <= 1 + tolerance else "outside tolerance"
    return {"year": year, "scenario": scenario, "check_name": name, "implied_p5": p5,
            "implied_median": median, "implied_p95": p95, "reported": reported,
            "unit": unit, "reported_basis": basis, "ratio": ratio, "tolerance": tolerance, "status": status,
            "note": note}
