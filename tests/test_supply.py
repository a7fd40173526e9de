"""The supply side (issue 16): the projected installed base, the supply ledger, implied utilisation,
supplier flows and token margins, each on a small hand-computed case built here."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from warehouse.io import replace_table_from_frame
from hardware.supply import implied_utilisation, supplier_flows, token_margin
from tests.conftest import build, typed_assumptions
from tests.test_fleet import DENSE, GPU, SERVING
from tests.test_marts import _load, _specs_and_shipments

PACKAGING = ("chip,supply_region,packaging,packages_per_wafer,hbm_stacks,dies_per_package,good_dies_per_wafer,"
             "source_id,confidence,note\n"
             "H100,rest,CoWoS-S,20,5,,,s,low,\n"
             "X9,china,domestic 2.5D,,4,2,10,s,low,\n")


def _forecast(con, designer: str, rows: list[tuple[str, float, float, float]]):
    """marts.forecast rows of shipments_h100e/<designer>: (quarter_start, value, lo80, hi80)."""
    frame = pl.DataFrame({
        "series_id": [f"shipments_h100e/{designer}"] * len(rows),
        "period_start": [dt.date.fromisoformat(r[0]) for r in rows],
        "is_forecast": [True] * len(rows),
        "value": [r[1] for r in rows], "lo80": [r[2] for r in rows], "hi80": [r[3] for r in rows],
        "lo95": [r[2] / 2 for r in rows], "hi95": [r[3] * 2 for r in rows],
        "model_name": ["combo"] * len(rows), "unit": ["h100e_per_quarter"] * len(rows)})
    replace_table_from_frame(con, "marts.forecast", frame)


CAPACITY_HEADER = "period_end,region,resource,unit,basis,low,value,high,source_id,confidence,note\n"


def _capacity(con, tmp_path, rows: str = ""):
    """raw.supply_capacity (no rows: an empty table, no capacity bounds the projection)."""
    if rows:
        _load(con, tmp_path, "supply_capacity", CAPACITY_HEADER + rows)
        return
    from warehouse.sources import SOURCES_BY_STEM

    source = SOURCES_BY_STEM["supply_capacity"]
    columns = ", ".join(f'"{c}" {t}' for c, t in [*source.columns.items(), *source.optional.items()])
    con.execute(f"create schema if not exists raw; create or replace table {source.table} ({columns})")


def _projection(con, tmp_path, capacity: str = ""):
    # four complete H100 quarters (100, 200, 300, 400), then an incomplete one with 50 counted so far
    quarters = ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]
    rows = "".join(f"{q},Nvidia,H100,{50 * (i + 1)},{100 * (i + 1)},{200 * (i + 1)},false,e,medium\n"
                   for i, q in enumerate(quarters))
    rows += "2025-01-01,Nvidia,H100,40,50,60,true,e,medium\n"
    _specs_and_shipments(con, tmp_path, rows, service_life=1)
    _load(con, tmp_path, "chip_packaging", PACKAGING)
    # the forecast (made from complete quarters) for 2025Q1 and 2025Q2; 80% bands x/÷ 2
    _forecast(con, "Nvidia", [("2025-01-01", 500.0, 250.0, 1000.0), ("2025-04-01", 600.0, 300.0, 1200.0)])
    _capacity(con, tmp_path, capacity)
    build(con, "marts.supply_capacity", "marts.installed_base_projection")
    return {r["quarter_start"].isoformat(): r for r in
            con.execute("select * from marts.installed_base_projection order by quarter_start").pl()
            .iter_rows(named=True)}


def test_projection_marks_partial_quarters_and_retires_after_the_service_life(con, tmp_path):
    got = _projection(con, tmp_path)
    assert [got[q]["basis"] for q in sorted(got)] == ["observed"] * 4 + ["partial", "projected"]
    # the incomplete quarter is a floor under its forecast: max(50 counted, 500 forecast) = 500
    assert got["2025-01-01"]["shipped_h100e"] == pytest.approx(500.0)
    assert got["2025-04-01"]["shipped_h100e"] == pytest.approx(600.0)
    # a 1-year life: a quarter's shipments count for 4 quarters, then retire
    assert got["2024-10-01"]["installed_h100e"] == pytest.approx(100 + 200 + 300 + 400)
    assert got["2025-01-01"]["retired_h100e"] == pytest.approx(100)
    assert got["2025-01-01"]["installed_h100e"] == pytest.approx(200 + 300 + 400 + 500)
    assert got["2025-04-01"]["installed_h100e"] == pytest.approx(300 + 400 + 500 + 600)
    # projected units, CoWoS wafers and HBM from the designer's recent mix: 1 unit per H100e,
    # 20 packages per wafer, 80 GB per H100
    assert got["2025-04-01"]["shipped_units"] == pytest.approx(600.0)
    assert got["2025-04-01"]["shipped_cowos_wafers"] == pytest.approx(600.0 / 20)
    assert got["2025-04-01"]["shipped_hbm_gb"] == pytest.approx(600.0 * 80)
    # p5/p95 from the 80% band read as log-normal: 600 x 2^(+/-1.6449/1.2816)
    assert got["2025-04-01"]["shipped_h100e_p95"] == pytest.approx(600.0 * 2 ** (1.6449 / 1.2816), rel=1e-4)
    assert got["2025-04-01"]["shipped_h100e_p5"] == pytest.approx(600.0 / 2 ** (1.6449 / 1.2816), rel=1e-4)


def test_a_partial_quarter_above_its_forecast_keeps_the_count(con, tmp_path):
    rows = ("2024-01-01,Nvidia,H100,50,100,200,false,e,medium\n"
            "2024-04-01,Nvidia,H100,500,900,1000,true,e,medium\n")
    _specs_and_shipments(con, tmp_path, rows, service_life=1)
    _load(con, tmp_path, "chip_packaging", PACKAGING)
    _forecast(con, "Nvidia", [("2024-04-01", 300.0, 150.0, 600.0)])
    _capacity(con, tmp_path)
    build(con, "marts.supply_capacity", "marts.installed_base_projection")
    basis, shipped = con.execute("select basis, shipped_h100e from marts.installed_base_projection "
                                 "where quarter_start = '2024-04-01'").fetchone()
    assert (basis, shipped) == ("partial", pytest.approx(900.0))


LEDGER_CAPACITY = ("2024-12-31,rest,cowos,wafers_per_month,reported,,20,,a,low,\n"
                   "2025-12-31,rest,cowos,wafers_per_month,projection,30,40,50,b,low,\n"
                   "2024-12-31,rest,hbm,gb_per_year,reported,,4000,,c,low,\n"
                   "2025-12-31,rest,hbm,gb_per_year,reported,,8000,,c,low,\n")


def test_projected_shipments_are_capped_by_the_binding_resource_and_flagged(con, tmp_path):
    # 2025Q2's 600 projected H100 need 48,000 GB of HBM against ~1,900 GB of capacity in the quarter: the
    # projection is scaled to what the HBM builds; the CoWoS it then needs fits its capacity
    got = _projection(con, tmp_path, LEDGER_CAPACITY)
    q2 = got["2025-04-01"]
    t0, t1, mid = dt.date(2024, 7, 2), dt.date(2025, 7, 2), dt.date(2025, 5, 16)
    hbm_quarter = (4000 + 4000 * (mid - t0).days / (t1 - t0).days) / 4
    assert q2["uncapped_shipped_h100e"] == pytest.approx(600.0)
    assert q2["shipped_hbm_gb"] == pytest.approx(hbm_quarter)
    assert q2["shipped_h100e"] == pytest.approx(hbm_quarter / 80) and q2["capped_by"] == "hbm"
    # counted quarters are never capped, and bands scale with the median
    assert got["2024-10-01"]["shipped_h100e"] == pytest.approx(400.0) and got["2024-10-01"]["capped_by"] is None
    assert q2["shipped_h100e_p95"] / q2["shipped_h100e"] == pytest.approx(2 ** (1.6449 / 1.2816), rel=1e-4)


def test_ledger_interpolates_capacity_and_marks_the_binding_resource(con, tmp_path):
    # CoWoS: 20 wafers/month at the end of 2024, 40 at the end of 2025 -> at the midpoint of 2025Q2
    # (1 April + 45 days = 16 May 2025, 136 days on) 20 + 20 x 136/365 wafers/month, x 3 per quarter.
    # HBM: 8,000 GB a year centred mid-2025 (a single figure: flat after it, none before).
    got = _projection(con, tmp_path, LEDGER_CAPACITY)
    build(con, "marts.supply_ledger")
    ledger = {(r["period_start"].isoformat(), r["resource"]): r
              for r in con.execute("select * from marts.supply_ledger").pl().iter_rows(named=True)}
    cowos = ledger[("2025-04-01", "cowos")]
    wpm = 20 + 20 * 136 / 365
    assert cowos["capacity"] == pytest.approx(3 * wpm)
    assert cowos["capacity_low"] == pytest.approx(3 * (20 + 10 * 136 / 365))
    # the capped projection's wafers: its units / 20 packages per wafer
    shipped = got["2025-04-01"]["shipped_units"]
    assert cowos["required"] == pytest.approx(shipped / 20)
    assert cowos["ratio"] == pytest.approx(shipped / 20 / (3 * wpm))
    assert cowos["capacity_basis"] == "projection" and cowos["required_basis"] == "projected"
    hbm = ledger[("2025-04-01", "hbm")]
    t0, t1, mid = dt.date(2024, 7, 2), dt.date(2025, 7, 2), dt.date(2025, 5, 16)
    per_year = 4000 + 4000 * (mid - t0).days / (t1 - t0).days
    assert hbm["capacity"] == pytest.approx(per_year / 4)
    # the projection was capped to what the HBM builds: HBM binds at ratio 1, CoWoS below it
    assert hbm["required"] == pytest.approx(per_year / 4) and hbm["ratio"] == pytest.approx(1.0)
    assert hbm["binding"] and not cowos["binding"]
    assert ("2024-04-01", "hbm") not in ledger  # before the first HBM figure's midpoint: no capacity row


def test_ledger_counts_a_stock_against_cumulative_use(con, tmp_path):
    rows = ("2024-01-01,Acme,X9,5,10,20,false,e,low\n"
            "2024-04-01,Acme,X9,10,20,40,false,e,low\n")
    _specs_and_shipments(con, tmp_path, rows)
    _load(con, tmp_path, "chip_packaging", PACKAGING)
    _forecast(con, "Acme", [("2024-07-01", 1.0, 0.5, 2.0)])
    _capacity(con, tmp_path, "2025-09-08,china,hbm_stock,stacks,reported,,100,,s,low,\n")
    build(con, "marts.supply_capacity", "marts.installed_base_projection", "marts.supply_ledger")
    got = dict(con.execute("select period_start, required from marts.supply_ledger "
                           "where resource = 'hbm_stock' order by 1").fetchall())
    # 4 stacks per X9: 10 x 4 = 40, then + 20 x 4 = 120 stacks used to date (above the 100 in stock)
    assert got[dt.date(2024, 1, 1)] == pytest.approx(40)
    assert got[dt.date(2024, 4, 1)] == pytest.approx(120)
    ratio = con.execute("select ratio from marts.supply_ledger where period_start = '2024-04-01' "
                        "and resource = 'hbm_stock'").fetchone()[0]
    assert ratio == pytest.approx(1.2)
    # 2 dies per X9 at 10 good dies per wafer: 20 X9 need 4 SMIC wafers (no SMIC capacity row: not in the ledger)
    wafers = con.execute("select shipped_domestic_foundry_wafers from marts.installed_base_projection "
                         "where quarter_start = '2024-04-01'").fetchone()[0]
    assert wafers == pytest.approx(20 * 2 / 10)


def _rows(period: dt.date, chips: float, chip: str = "gpu", segment: str = "all", scenario: str = "s"):
    return {"period_start": period, "scenario": scenario, "segment": segment, "phase": "decode", "chip": chip,
            "chips": np.array([chips])}


def test_implied_utilisation_flags_short_ok_overbuild_and_missing_base():
    q4 = dt.date(2027, 10, 1)
    projection = pl.DataFrame({"quarter_end": [dt.date(2027, 12, 31)] * 2, "region": ["rest", "china"],
                               "chip_class": ["gpu", "gpu"], "basis": ["projected"] * 2,
                               "installed_h100e": [1000.0, 1000.0], "installed_mem_tbps": [0.0, 0.0]})
    chips = {"gpu": GPU}
    cases = {"short": 600.0, "ok": 300.0, "over": 50.0}
    rows = [_rows(q4, n, scenario=name) for name, n in cases.items()]
    rows.append(_rows(q4, 10.0, segment="cn", scenario="ok"))
    out = implied_utilisation(rows, chips, {"all": "rest", "cn": "china"}, projection, np.array([0.5]), 0.2)
    got = {(r["scenario"], r["region"]): r for r in out.iter_rows(named=True)}
    # available = 1,000 H100e x 0.5 inference share = 500
    assert got[("short", "rest")]["utilisation_median"] == pytest.approx(600 / 500)
    assert got[("short", "rest")]["flag"] == "short"
    assert got[("short", "rest")]["shortfall_h100e"] == pytest.approx(100)
    assert got[("ok", "rest")]["flag"] == "ok"
    assert got[("over", "rest")]["flag"] == "overbuild"  # 50 / 500 = 10% < 20%
    none = implied_utilisation([_rows(q4, 5.0)], chips, {"all": "rest"}, projection.head(0), np.array([0.5]), 0.2)
    assert none["flag"].to_list() == ["no installed base"] and none["utilisation_median"][0] is None


def test_flows_are_growth_plus_replacement_and_compared_with_revenue():
    split = pl.DataFrame({"chip": ["gpu", "gpu"], "supplier": ["Acme", "MemCo"], "role": ["designer", "hbm"],
                          "usd_per_chip": [10.0, 2.0]})
    rows = [_rows(dt.date(2026, 10, 1), 100.0), _rows(dt.date(2027, 10, 1), 300.0),
            _rows(dt.date(2027, 7, 1), 999.0)]  # only Q4 stocks count
    forecast = pl.DataFrame({"series_id": ["rev/Acme"] * 4 + ["rev/HBM"],
                             "period_start": [dt.date(2027, m, 1) for m in (1, 4, 7, 10)] + [dt.date(2027, 1, 1)],
                             "is_forecast": [True] * 5, "value": [500.0] * 4 + [1000.0]})
    metrics = pl.DataFrame({"metric": ["market_share"], "segment": ["HBM"], "company": ["MemCo"],
                            "period_end": [dt.date(2025, 6, 30)], "value": [0.5]})
    from configuration.schema import SupplierRevenue

    specs = {"Acme": SupplierRevenue(series="rev/Acme"), "MemCo": SupplierRevenue(series="rev/HBM", share_of="HBM")}
    out = supplier_flows(rows, split, forecast, metrics, specs, np.array([5.0]), 0.25)
    got = {r["supplier"]: r for r in out.iter_rows(named=True)}
    assert set(out["year"]) == {2027}  # the first year has no growth to measure
    # stock 100 -> 300 chips: growth 200 + replacement 100/5 = 220 chips a year
    assert got["Acme"]["purchases_usd_median"] == pytest.approx(220 * 10)
    assert got["Acme"]["fleet_content_usd_median"] == pytest.approx(300 * 10)
    assert got["Acme"]["reported_revenue_usd"] == pytest.approx(2000)
    assert got["Acme"]["ratio"] == pytest.approx(2200 / 2000) and got["Acme"]["status"] == "within revenue"
    # MemCo: 440 USD of purchases vs 1,000 x its 50% share = 500
    assert got["MemCo"]["ratio"] == pytest.approx(440 / 500)
    out = supplier_flows(rows, split, forecast, metrics, specs, np.array([5.0]), 0.05)
    assert dict(out.select("supplier", "status").iter_rows())["Acme"] == "exceeds revenue"


POINT = {"installed_base.service_life_years": 5.0, "fleet.electricity_usd_per_mwh": 70.0, "fleet.utilisation": 1.0,
         "fleet.peak_to_average": 1.0, "fleet.redundancy": 0.0, "fleet.pue": 1.0, "workload.input_tokens": 1000.0,
         "workload.output_share": 0.25, "workload.cached_share": 0.5, "hardware.user_speed_tokens_per_s": 20.0}


def test_margin_joins_prices_to_chip_costs_and_the_disclosed_margin():
    prices = pl.DataFrame({"price_date": [dt.date(2025, 1, 1), dt.date(2025, 1, 1)], "provider": ["P", "P"],
                           "model": ["dense", "not-in-catalog"], "input_usd_per_mtok": [1.0, 1.0],
                           "cached_input_usd_per_mtok": [0.1, None], "output_usd_per_mtok": [4.0, 4.0]})
    disclosed = pl.DataFrame({"observed_on": [dt.date(2025, 2, 1), dt.date(2024, 1, 1)], "provider": ["P", "P"],
                              "model": ["dense", "dense"], "chip": ["gpu", "gpu"], "gross_margin": [0.8, 0.1],
                              "output_share": [0.5, 0.5], "cached_share": [0.0, 0.0],
                              "usd_per_chip_hour": [2.0, 2.0], "user_tokens_per_s": [20.0, 20.0],
                              "source_id": ["after", "before"]})
    out = token_margin(prices, disclosed, {"gpu": GPU}, {"dense": DENSE}, SERVING, typed_assumptions(POINT),
                       ["gpu", "absent"], "fp8",
                       (1.5, 2.0, 2.5))
    assert out.height == 1  # the model outside the catalog and the unknown chip are left out
    r = out.row(0, named=True)
    # blended price: 75% input (half cached at 0.1) + 25% output = 0.75 x 0.55 + 0.25 x 4
    assert r["price_usd_per_mtok_blended"] == pytest.approx(0.75 * 0.55 + 0.25 * 4.0)
    assert r["cost_usd_per_mtok_blended"] == pytest.approx(2.0 * r["chip_only_cost_usd_per_mtok"])
    assert r["gross_margin"] == pytest.approx(1 - r["cost_usd_per_mtok_blended"] / r["price_usd_per_mtok_blended"])
    assert r["gross_margin_low"] == pytest.approx(1 - 2.5 * r["chip_only_cost_usd_per_mtok"]
                                                  / r["price_usd_per_mtok_blended"])
    # chip-only cost: $25k over 5 years + 700 W at $70/MWh, per second, over the chip's token rates
    usd_per_s = 25_000 / (5 * 365.25 * 86_400) + 700 * 70 / 3.6e9
    per_in = usd_per_s / r["chip_only_cost_usd_per_mtok"]  # a rate scale check: positive and finite
    assert np.isfinite(per_in) and per_in > 0
    # the disclosure published after the price, for the same model and chip, is the one joined
    assert r["disclosed_gross_margin"] == pytest.approx(0.8) and r["disclosed_source"] == "after"
    assert -1.0 < r["modelled_on_disclosed_basis"] < 1.0


def test_warn_check_counts_only_the_rows_its_where_clause_selects(con):
    from assets.checks import warn_result
    from warehouse.contracts import contracts

    con.execute("create schema marts")
    con.execute("create table marts.implied_utilisation as select * from (values "
                "('a', 'short', 1.5), ('b', 'ok', 0.5), ('c', 'overbuild', 0.1)) t(scenario, flag, u)")
    spec = {"description": "d", "where": "flag = 'short'", "show": "scenario || ' ' || u"}
    result = warn_result(con, "marts.implied_utilisation", "short_rows", spec)
    assert not result.passed and result.metadata["rows"].value == 1 and result.check_name == "short_rows"
    assert "a 1.5" in result.metadata["first_rows"].value
    none = warn_result(con, "marts.implied_utilisation", "none", {**spec, "where": "flag = 'missing'"})
    assert none.passed
    # the shipped contracts select short and overbuild rows of the fourth quarter
    checks = contracts()["marts.implied_utilisation"]["warn_if_rows"]
    assert "flag = 'short'" in checks["demand_cannot_be_served"]["where"]
    assert "flag = 'overbuild'" in checks["overbuild"]["where"]


def test_capacity_ranges_out_of_order_and_margins_above_one_name_file_row_and_column(con, tmp_path):
    from warehouse.loading import InputFileError

    with pytest.raises(InputFileError) as err:
        _load(con, tmp_path, "supply_capacity",
              "period_end,region,resource,unit,basis,low,value,high,source_id,confidence,note\n"
              "2025-12-31,rest,cowos,wafers_per_month,reported,70,75,80,a,low,\n"
              "2026-12-31,rest,cowos,wafers_per_month,projection,130,125,150,b,low,\n")
    text = str(err.value)
    assert "supply_capacity.csv" in text and "line 3" in text and "low" in text and "130.0 > 125.0" in text
    with pytest.raises(InputFileError) as err:
        _load(con, tmp_path, "provider_margins",
              "observed_on,provider,model,chip,gross_margin,output_share,cached_share,usd_per_chip_hour,"
              "user_tokens_per_s,source_id,confidence,note\n"
              "2025-02-28,P,m,c,5.45,0.2,0.5,2,20,s,high,cost-profit ratio entered by mistake\n")
    assert "line 2" in str(err.value) and "gross_margin" in str(err.value) and "fraction" in str(err.value)


def test_cross_check_status_uses_its_tolerance():
    from hardware.build import _check

    ceiling = _check(2027, "s", "spend", np.array([110.0, 120.0, 130.0]), 100.0, "usd_per_year", "reported", "n", 0.25)
    assert ceiling["ratio"] == pytest.approx(1.2) and ceiling["status"] == "within tolerance"
    assert _check(2027, "s", "spend", 130.0, 100.0, "usd", "r", "n", 0.25)["status"] == "outside tolerance"
    assert _check(2027, "s", "spend", 130.0, None, "usd", None, "n", 0.25)["status"] == "no reported figure"
    # a share must lie within [1/(1+t), 1+t] of the published one
    assert _check(2027, "s", "share", 0.3, 0.21, "share", "r", "n", 0.5, "share")["status"] == "within tolerance"
    assert _check(2027, "s", "share", 0.05, 0.21, "share", "r", "n", 0.5, "share")["status"] == "outside tolerance"
