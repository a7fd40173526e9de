"""The supply side of the demand-to-hardware model (pure library: polars/numpy in, polars out).

    supply_demand_gap     required vs the projected installed base's inference share, per resource
    implied_utilisation   required H100e / available inference H100e per region and chip class
    supplier_flows        annual inference purchases per supplier (a flow) vs reported revenue, beside
                          the content of the required fleet (a stock)
    token_margin          published API prices vs modelled cost per million tokens on the serving chips

`rows` are hardware.fleet.size_fleet rows (chips as arrays of Monte Carlo draws); `projection` is
marts.installed_base_projection (observed and projected installed base per quarter, designer, region).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from hardware.fleet import output_tokens_per_request
from hardware.serving import group_of, serve
from hardware.stats import Z90, row_medians, row_percentiles, stack_draws

if TYPE_CHECKING:
    from configuration.schema import Assumptions, SupplierRevenue



def quarter_end(period: dt.date) -> dt.date:
    return dt.date(period.year + (period.month + 2) // 12, (period.month + 2) % 12 + 1, 1) - dt.timedelta(days=1)


def _draw_count(arrays) -> int:
    return max((np.size(a) for a in arrays), default=1)


def _fill_percentiles(out: list[dict], arrays: list, names: tuple[str, str, str]) -> None:
    """Set p5, median and p95 of each row's draws (`arrays`, one per row of `out`) under `names`, in one call."""
    if out:
        for name, column in zip(names, row_percentiles(stack_draws(arrays, _draw_count(arrays)))):
            for row, value in zip(out, column.tolist()):
                row[name] = value


def _per_draw(rows, key, weight) -> dict[tuple, np.ndarray]:
    totals: dict[tuple, np.ndarray] = {}
    for r in rows:
        k = key(r)
        if k is not None:
            totals[k] = totals.get(k, 0.0) + r["chips"] * weight(r)
    return totals


GAP_RESOURCES = {
    # resource: (unit, phases it covers, per-chip amount, installed-base column, what it compares)
    "prefill_compute": ("H100e (8-bit OP/s)", ("prefill",), lambda c: c.h100e, "installed_h100e",
                        "prefill is compute-bound: 8-bit compute of the prefill chips vs installed compute"),
    "decode_bandwidth": ("TB/s of HBM/DDR bandwidth", ("decode",), lambda c: c.mem_tbps or 0.0,
                         "installed_mem_tbps",
                         "decode is bandwidth-bound: memory bandwidth of the decode chips vs installed bandwidth"),
    "all_h100e": ("H100e (8-bit OP/s)", ("prefill", "decode"), lambda c: c.h100e, "installed_h100e",
                  "Epoch AI's unit for all phases; decode on bandwidth-rich, compute-poor parts (H20) inflates "
                  "the installed side: read with the two rows above"),
}


def _installed(projection: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return (projection.group_by("quarter_end", *by)
            .agg(pl.col("installed_h100e", "installed_mem_tbps").sum(),
                 pl.col("basis").filter(pl.col("basis") != "none").unique().sort().str.join(", ").alias("basis")))


def supply_demand_gap(rows, chips, region: dict[str, str], projection: pl.DataFrame, share) -> pl.DataFrame:
    """Required vs the inference share of the installed base projected to the same quarter, per region
    and per resource a phase consumes (prefill: 8-bit compute; decode: memory bandwidth)."""
    base = {(r["quarter_end"], r["region"]): r for r in _installed(projection, ["region"]).iter_rows(named=True)}
    out = []
    for resource, (unit, phases, amount, column, note) in GAP_RESOURCES.items():
        required = _per_draw(rows, lambda r: (r["period_start"], r["scenario"], region[r["segment"]])
                             if r["phase"] in phases else None, lambda r: amount(chips[r["chip"]]))
        sram = sorted({r["chip"] for r in rows if r["phase"] in phases and chips[r["chip"]].sram_only})
        extra = f"; SRAM-only decode chips ({', '.join(sram)}) have no HBM and are not in this row" \
            if sram and resource == "decode_bandwidth" else ""
        found = [(key, need, base[(quarter_end(key[0]), key[2])]) for key, need in required.items()
                 if (quarter_end(key[0]), key[2]) in base]
        if not found:
            continue
        part = [{"period_start": period, "scenario": scenario, "region": reg, "resource": resource, "unit": unit,
                 "installed_median": float(hit[column]), "installed_quarter_end": hit["quarter_end"],
                 "installed_basis": hit["basis"], "note": note + extra}
                for (period, scenario, reg), _, hit in found]
        needs = [need for _, need, _ in found]
        draws = _draw_count(needs)
        _fill_percentiles(part, needs, ("required_p5", "required_median", "required_p95"))
        installed = np.array([r["installed_median"] for r in part])
        serving = stack_draws([i * share for i in installed], draws)
        ratio = row_medians(stack_draws(needs, draws) / np.where(serving > 0, serving, 1.0))
        for row, serve_median, r in zip(part, row_medians(serving).tolist(), ratio.tolist()):
            row["installed_inference_median"] = serve_median
            row["ratio"] = r if row["installed_median"] > 0 else None
        out.extend(part)
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "region": pl.Utf8, "resource": pl.Utf8, "unit": pl.Utf8,
              "required_p5": pl.Float64, "required_median": pl.Float64, "required_p95": pl.Float64,
              "installed_median": pl.Float64, "installed_inference_median": pl.Float64,
              "installed_quarter_end": pl.Date, "installed_basis": pl.Utf8, "ratio": pl.Float64, "note": pl.Utf8}
    return pl.DataFrame(out, schema=schema).sort("period_start", "scenario", "region", "resource")


def implied_utilisation(rows, chips, region: dict[str, str], projection: pl.DataFrame, share,
                        overbuild: float) -> pl.DataFrame:
    """Required H100e / (installed H100e x inference share) per quarter, scenario, region and chip class.

    flag: 'short' (median above 1: demand cannot be served by the class's projected base; shortfall
    in H100e), 'overbuild' (below `overbuild`), 'no installed base' (the class is not in the shipment
    data: LPUs, wafer-scale, CPUs), else 'ok'."""
    base = {(r["quarter_end"], r["region"], r["chip_class"]): r
            for r in _installed(projection, ["region", "chip_class"]).iter_rows(named=True)}
    required = _per_draw(rows, lambda r: (r["period_start"], r["scenario"], region[r["segment"]],
                                          chips[r["chip"]].chip_class),
                         lambda r: chips[r["chip"]].h100e or 0.0)
    out = []
    keys, needs = list(required), list(required.values())
    draws = _draw_count(needs)
    for period, scenario, reg, cls in keys:
        hit = base.get((quarter_end(period), reg, cls))
        out.append({"period_start": period, "scenario": scenario, "region": reg, "chip_class": cls,
                    "installed_h100e": float(hit["installed_h100e"]) if hit else 0.0,
                    "installed_basis": hit["basis"] if hit else None,
                    "utilisation_p5": None, "utilisation_median": None, "utilisation_p95": None,
                    "shortfall_h100e": None, "flag": "no installed base"})
    _fill_percentiles(out, needs, ("required_h100e_p5", "required_h100e_median", "required_h100e_p95"))
    if out:
        need = stack_draws(needs, draws)
        available = stack_draws([row["installed_h100e"] * share for row in out], draws)
        has = np.array([row["installed_h100e"] > 0 for row in out])
        u5, u50, u95 = row_percentiles(need / np.where(available > 0, available, 1.0))
        short = row_medians(need - available)
        for i, (row, a) in enumerate(zip(out, row_medians(available).tolist())):
            row["available_inference_h100e"] = a
            if has[i]:
                row.update(utilisation_p5=float(u5[i]), utilisation_median=float(u50[i]),
                           utilisation_p95=float(u95[i]), shortfall_h100e=float(max(short[i], 0.0)),
                           flag="short" if u50[i] > 1 else ("overbuild" if u50[i] < overbuild else "ok"))
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "region": pl.Utf8, "chip_class": pl.Utf8,
              "required_h100e_p5": pl.Float64, "required_h100e_median": pl.Float64, "required_h100e_p95": pl.Float64,
              "installed_h100e": pl.Float64, "available_inference_h100e": pl.Float64, "installed_basis": pl.Utf8,
              "utilisation_p5": pl.Float64, "utilisation_median": pl.Float64, "utilisation_p95": pl.Float64,
              "shortfall_h100e": pl.Float64, "flag": pl.Utf8}
    return pl.DataFrame(out, schema=schema).sort("period_start", "scenario", "region", "chip_class")


def reported_revenue(forecast: pl.DataFrame, supply_metrics: pl.DataFrame, spec: SupplierRevenue, supplier: str,
                     year: int) -> tuple[float | None, str | None]:
    """A supplier's reported (or forecast) revenue in a calendar year, from its configured series, times
    its latest market share when the series is a market total."""
    part = forecast.filter((pl.col("series_id") == spec.series) & (pl.col("period_start").dt.year() == year))
    if part.height == 0:
        return None, None
    value = float(part["value"].sum())
    basis = "forecast" if part["is_forecast"].any() else "reported"
    if spec.share_of:
        share = (supply_metrics.filter((pl.col("metric") == "market_share") & (pl.col("segment") == spec.share_of)
                                       & (pl.col("company") == supplier)).sort("period_end"))
        if share.height == 0:
            return None, None
        value *= float(share["value"][-1])
        basis += f" x {spec.share_of} share {float(share['value'][-1]):.0%}"
    return value, basis


def supplier_flows(rows, supply_chain: pl.DataFrame, forecast: pl.DataFrame, supply_metrics: pl.DataFrame,
                   revenue_specs: dict[str, SupplierRevenue], life, tolerance: float) -> pl.DataFrame:
    """Per year, scenario, supplier and role: the fleet's content at Q4 (a stock) and the year's purchases
    attributable to inference = growth of that content over the year + replacement of last year's
    content over the service life (a flow), the flow compared with the supplier's reported revenue.
    status: 'within revenue' when purchases <= revenue x (1 + tolerance), 'exceeds revenue' above it,
    'no reported revenue' when no series is configured or none covers the year."""
    split = supply_chain.filter(pl.col("usd_per_chip").is_not_null())
    by_chip: dict[str, list[tuple[str, str, float]]] = {}
    for chip, supplier, role, usd in split.select("chip", "supplier", "role", "usd_per_chip").iter_rows():
        by_chip.setdefault(chip, []).append((supplier, role, float(usd)))
    stock: dict[tuple, np.ndarray] = {}
    for r in rows:
        if r["period_start"].month != 10:
            continue
        for supplier, role, usd in by_chip.get(r["chip"], []):
            key = (r["period_start"].year, r["scenario"], supplier, role)
            stock[key] = stock.get(key, 0.0) + r["chips"] * usd
    out, flows, contents = [], [], []
    for (year, scenario, supplier, role), now in sorted(stock.items()):
        before = stock.get((year - 1, scenario, supplier, role))
        if before is None and any(k[0] == year - 1 for k in stock):
            before = 0.0  # the supplier had no content in last year's fleet
        if before is None:
            continue  # the first year of the horizon: no growth to measure
        flow = np.maximum(now - before, 0.0) + before / life
        spec = revenue_specs.get(supplier)
        revenue, basis = reported_revenue(forecast, supply_metrics, spec, supplier, year) if spec else (None, None)
        out.append({"year": year, "scenario": scenario, "supplier": supplier, "role": role,
                    "reported_revenue_usd": revenue, "revenue_basis": basis,
                    "revenue_series": spec.series if spec else None, "tolerance": tolerance})
        flows.append(flow)
        contents.append(now)
    _fill_percentiles(out, flows, ("purchases_usd_p5", "purchases_usd_median", "purchases_usd_p95"))
    _fill_percentiles(out, contents, ("fleet_content_usd_p5", "fleet_content_usd_median", "fleet_content_usd_p95"))
    for row in out:
        revenue = row["reported_revenue_usd"]
        row["ratio"] = ratio = row["purchases_usd_median"] / revenue if revenue else None
        row["status"] = ("no reported revenue" if ratio is None
                         else "exceeds revenue" if ratio > 1 + tolerance else "within revenue")
    schema = {"year": pl.Int64, "scenario": pl.Utf8, "supplier": pl.Utf8, "role": pl.Utf8,
              "purchases_usd_p5": pl.Float64, "purchases_usd_median": pl.Float64, "purchases_usd_p95": pl.Float64,
              "fleet_content_usd_p5": pl.Float64, "fleet_content_usd_median": pl.Float64,
              "fleet_content_usd_p95": pl.Float64, "reported_revenue_usd": pl.Float64, "revenue_basis": pl.Utf8,
              "revenue_series": pl.Utf8, "ratio": pl.Float64, "tolerance": pl.Float64, "status": pl.Utf8}
    return pl.DataFrame(out, schema=schema).sort("year", "scenario", "supplier", "role")


def _blend(input_share, cached_share, output_share, p_in, p_cached, p_out):
    """USD per million tokens of the whole mix (cached input at its own price, or the input price)."""
    p_cached = p_in if p_cached is None else p_cached
    return input_share * ((1 - cached_share) * p_in + cached_share * p_cached) + output_share * p_out


def token_margin(prices: pl.DataFrame, disclosed: pl.DataFrame, chips, models, serving, config: Assumptions,
                 chip_names: list[str], precision: str, all_in: tuple[float, float, float] = (1.0, 1.0, 1.0)) \
        -> pl.DataFrame:
    """Implied gross margin of each published API price on each chip in `chip_names`.

    Cost per million tokens at the workload's point values: a chip costs (unit price / service life +
    TDP x PUE x electricity) per second; it serves prefill tokens/s and decode tokens/s (the calibrated
    serving model at the per-user speed target), at the fleet's average load (utilisation /
    peak-to-average) plus redundancy. Cached prompt tokens skip prefill. Blended over the mix of input
    (cached and not) and output tokens, then times `all_in` (low, value, high): the servers, network,
    building and financing around the chip; margin = 1 - cost / price. Low/high: the calibration's error
    of the chip group at +/-1.645 s.d. (90%) with the all-in multiplier at its low/high. Where a provider disclosed a margin for the model and chip
    (`disclosed`), `modelled_on_disclosed_basis` recomputes it on the provider's own workload mix, chip-hour
    cost and speed, for a like-for-like cross-check. `config`: the typed configuration the fleet ran with
    (measured workload shares included), at its point values."""
    fleet, workload = config.fleet, config.workload
    life_s = config.installed_base.service_life_years.point * 365.25 * 86_400.0
    usd_per_joule = fleet.electricity_usd_per_mwh.point / 3.6e9
    load = fleet.utilisation.point / fleet.peak_to_average.point / (1 + fleet.redundancy.point)
    prompt = workload.input_tokens.point

    def cost(chip, model, out_share, cached, speed, usd_per_s, busy):
        r = serve(chip, model, precision, prompt, output_tokens_per_request(prompt, out_share),
                  serving.efficiency[group_of(chip)], serving.limits, user_speed=speed)
        per_m_in = usd_per_s / (r["prefill_per_chip"] * busy) * 1e6
        per_m_out = usd_per_s / (r["decode_per_chip"] * busy) * 1e6
        blended = (1 - out_share) * (1 - cached) * per_m_in + out_share * per_m_out
        return per_m_in, per_m_out, blended, r["meets_speed"]

    out_share, cached = workload.output_share.point, workload.cached_share.point
    speed = config.hardware.user_speed_tokens_per_s.point
    out = []
    for p in prices.iter_rows(named=True):
        model = models.get(p["model"])
        if model is None:
            continue
        price = _blend(1 - out_share, cached, out_share, p["input_usd_per_mtok"], p["cached_input_usd_per_mtok"],
                       p["output_usd_per_mtok"])
        for name in chip_names:
            chip = chips.get(name)
            if chip is None or not chip.unit_price_usd:
                continue
            usd_per_s = chip.unit_price_usd / life_s + (chip.tdp_w or 0.0) * fleet.pue.point * usd_per_joule
            try:
                c_in, c_out, c, meets = cost(chip, model, out_share, cached, speed, usd_per_s, load)
            except ValueError:
                continue
            sd = serving.error_sd.get(group_of(chip), 0.0)
            low, mid, high = all_in
            cost_low, cost_mid, cost_high = c * low * np.exp(-Z90 * sd), c * mid, c * high * np.exp(Z90 * sd)
            row = {"price_date": p["price_date"], "provider": p["provider"], "model": p["model"], "chip": name,
                   "chip_class": chip.chip_class, "price_usd_per_mtok_blended": price,
                   "cost_usd_per_m_input": c_in * mid, "cost_usd_per_m_output": c_out * mid,
                   "chip_only_cost_usd_per_mtok": c, "cost_usd_per_mtok_blended": cost_mid,
                   "cost_low": cost_low, "cost_high": cost_high,
                   "gross_margin": 1 - cost_mid / price, "gross_margin_low": 1 - cost_high / price,
                   "gross_margin_high": 1 - cost_low / price, "meets_speed": meets,
                   "disclosed_gross_margin": None, "modelled_on_disclosed_basis": None, "disclosed_source": None}
            hit = disclosed.filter((pl.col("model") == p["model"]) & (pl.col("chip") == name)
                                   & (pl.col("observed_on") >= p["price_date"]))
            if hit.height:
                d = hit.sort("observed_on").row(0, named=True)
                d_out = d["output_share"] if d["output_share"] is not None else out_share
                d_cached = d["cached_share"] if d["cached_share"] is not None else cached
                d_speed = d["user_tokens_per_s"] or speed
                d_usd = d["usd_per_chip_hour"] / 3600.0 if d["usd_per_chip_hour"] else usd_per_s
                # a provider's own cost covers the chips it ran (scaled to the load): busy at utilisation
                busy = fleet.utilisation.point / (1 + fleet.redundancy.point)
                _, _, d_cost, _ = cost(chip, model, d_out, d_cached, d_speed, d_usd, busy)
                d_price = _blend(1 - d_out, d_cached, d_out, p["input_usd_per_mtok"], p["cached_input_usd_per_mtok"],
                                 p["output_usd_per_mtok"])
                row.update(disclosed_gross_margin=d["gross_margin"], modelled_on_disclosed_basis=1 - d_cost / d_price,
                           disclosed_source=d["source_id"])
            out.append(row)
    schema = {"price_date": pl.Date, "provider": pl.Utf8, "model": pl.Utf8, "chip": pl.Utf8, "chip_class": pl.Utf8,
              "price_usd_per_mtok_blended": pl.Float64, "cost_usd_per_m_input": pl.Float64,
              "cost_usd_per_m_output": pl.Float64, "chip_only_cost_usd_per_mtok": pl.Float64,
              "cost_usd_per_mtok_blended": pl.Float64, "cost_low": pl.Float64,
              "cost_high": pl.Float64, "gross_margin": pl.Float64, "gross_margin_low": pl.Float64,
              "gross_margin_high": pl.Float64, "meets_speed": pl.Boolean, "disclosed_gross_margin": pl.Float64,
              "modelled_on_disclosed_basis": pl.Float64, "disclosed_source": pl.Utf8}
    return pl.DataFrame(out, schema=schema).sort("model", "provider", "price_date", "chip")
