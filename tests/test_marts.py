"""The SQL models on hand-made inputs: numbers checked by hand."""

import datetime as dt

import pytest

from warehouse.loading import load_source
from warehouse.sources import SOURCES_BY_STEM
from tests.conftest import ASSUMPTIONS, build, load_assumptions_table

SPEC_HEADER = ("chip,designer,chip_class,release_date,china_market,bf16_tflops,fp8_tflops,fp4_tflops,mem_type,"
               "mem_gb,mem_tbps,sram_mb,sram_tbps,tdp_w,unit_price_usd,source_id,confidence,note\n")


def _load(con, tmp_path, stem, text):
    path = tmp_path / f"{stem}.csv"
    path.write_text(text)
    load_source(con, SOURCES_BY_STEM[stem], path)


def _specs_and_shipments(con, tmp_path, shipments: str, service_life: float = 5):
    yaml_path = tmp_path / "assumptions.yaml"
    yaml_path.write_text(
        ASSUMPTIONS.read_text().replace("    value: 5\n    low: 4\n    high: 6\n",
                                        f"    value: {service_life}\n    low: {min(service_life, 4)}\n    high: 6\n")
    )
    load_assumptions_table(con, yaml_path)
    _load(con, tmp_path, "accelerator_specs", SPEC_HEADER
          + "H100,Nvidia,gpu,2022-09-20,false,989.4,1979,,HBM3,80,3.35,,,700,25000,s,high,\n"
          + "X9,Acme,asic,2024-01-01,true,500,,,HBM3,64,2,,,350,8000,s,low,no 8-bit figure\n")
    _load(con, tmp_path, "chip_aliases", "alias,chip,note\nH100/H200,H100,combined\n")
    _load(con, tmp_path, "chip_shipments_quarterly",
          "quarter_start,designer,chip,units_p5,units_median,units_p95,incomplete,source_id,confidence\n" + shipments)
    build(con, "staging.accelerator_specs", "staging.chip_shipments", "marts.chip_shipments", "marts.installed_base")


def test_chip_shipments_h100e_power_capex_by_hand(con, tmp_path):
    _specs_and_shipments(con, tmp_path,
                         "2024-01-01,Nvidia,H100/H200,800,1000,1200,false,e,medium\n"
                         "2024-01-01,Acme,X9,10,20,30,false,e,low\n")
    h100 = con.execute("""select spec_chip, chip_class, h100e_median, h100e_p5, power_mw_median, capex_usd_median
                          from marts.chip_shipments where chip = 'H100/H200'""").fetchone()
    # 1,000 H100 = 1,000 H100e; 1,000 x 700 W = 0.7 MW; 1,000 x $25,000 = $25 M
    assert h100 == ("H100", "gpu", pytest.approx(1000.0), pytest.approx(800.0), pytest.approx(0.7),
                    pytest.approx(25e6))
    x9 = con.execute("select h100e_median, china_market from marts.chip_shipments where chip = 'X9'").fetchone()
    # no 8-bit figure: 2 x 500 bf16 = 1,000 TOPS -> 1000/1979 H100e per chip, x 20 units
    assert x9[0] == pytest.approx(20 * 1000 / 1979)
    assert x9[1] is True


def test_installed_base_retires_after_service_life(con, tmp_path):
    quarters = ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01", "2025-01-01", "2025-04-01"]
    rows = "".join(f"{q},Nvidia,H100,{5 * (i + 1)},{10 * (i + 1)},{20 * (i + 1)},false,e,medium\n"
                   for i, q in enumerate(quarters))
    _specs_and_shipments(con, tmp_path, rows, service_life=1)
    got = dict(con.execute("select quarter_end, h100e_median from marts.installed_base order by 1").fetchall())
    # shipments 10, 20, ..., 60; with a 1-year life a quarter's units count for 4 quarters
    assert got[dt.date(2024, 3, 31)] == pytest.approx(10)
    assert got[dt.date(2024, 12, 31)] == pytest.approx(10 + 20 + 30 + 40)
    assert got[dt.date(2025, 3, 31)] == pytest.approx(20 + 30 + 40 + 50)  # the 2024Q1 units retired
    assert got[dt.date(2025, 6, 30)] == pytest.approx(30 + 40 + 50 + 60)
    p5, p95 = con.execute("select h100e_p5, h100e_p95 from marts.installed_base "
                          "where quarter_end = '2025-06-30'").fetchone()
    assert (p5, p95) == (pytest.approx((30 + 40 + 50 + 60) / 2), pytest.approx((30 + 40 + 50 + 60) * 2))


def test_token_volume_normalised_to_tokens_per_day(con, tmp_path):
    _load(con, tmp_path, "token_volume_observations",
          "observed_on,platform,segment,value,unit,basis,source_id,confidence,note\n"
          "2025-05-20,g,all,480e12,tokens_per_month,total,s,high,\n"
          "2025-03-31,m,all,90e12,tokens_per_quarter,total,s,high,\n"
          "2025-03-31,m,all,31e12,tokens_per_month,total,s,high,\n"
          "2026-02-15,o,cn,7e12,tokens_per_week,total,s,high,\n"
          "2025-10-29,a,all,7e9,tokens_per_minute,average,s,high,\n"
          "2025-06-30,o,all,365.25e12,tokens_per_year,run_rate,s,high,\n"
          "2026-02-16,d,all,63.3e9,tokens_per_minute,peak,s,high,\n"
          "2025-12-18,d,all,50e12,tokens_per_day,average,s,high,\n")
    build(con, "staging.token_volume", "marts.token_observations", "marts.token_peaks")
    got = {(p, u): v for p, u, v in con.execute(
        "select platform, unit_original, tokens_per_day from marts.token_observations").fetchall()}
    assert got[("g", "tokens_per_month")] == pytest.approx(480e12 / 30)  # 2025-04-21..2025-05-20
    assert got[("m", "tokens_per_quarter")] == pytest.approx(90e12 / 90)  # 2025-01-01..2025-03-31
    assert got[("m", "tokens_per_month")] == pytest.approx(31e12 / 31)
    assert got[("o", "tokens_per_week")] == pytest.approx(1e12)
    assert got[("a", "tokens_per_minute")] == pytest.approx(7e9 * 1440)
    assert got[("o", "tokens_per_year")] == pytest.approx(1e12)
    assert ("d", "tokens_per_minute") not in got  # peaks kept apart
    ratio = con.execute("select peak_to_average from marts.token_peaks").fetchone()[0]
    assert ratio == pytest.approx(63.3e9 * 1440 / 50e12)


def test_vendor_revenue_day_weighted_to_calendar_quarters(con, tmp_path):
    # a fiscal quarter of 92 days, 2025-02-01..2025-05-03: 59 days in Q1, 33 days in Q2
    _load(con, tmp_path, "vendor_revenue_quarterly",
          "company,fiscal_quarter,period_start,period_end,segment,revenue_usd,source_id,confidence\n"
          "Acme,FY26Q1,2025-02-01,2025-05-03,dc,92e9,s,high\n")
    build(con, "marts.vendor_revenue")
    got = dict(con.execute("select quarter_start, revenue_usd from marts.vendor_revenue").fetchall())
    assert got[dt.date(2025, 1, 1)] == pytest.approx(59e9)
    assert got[dt.date(2025, 4, 1)] == pytest.approx(33e9)
    assert con.execute("select bool_or(is_complete) from marts.vendor_revenue").fetchone()[0] is False


def test_packaging_revenue_converted_with_fx(con, tmp_path):
    _load(con, tmp_path, "fx_rates_annual", "year,currency,usd_per_unit,source_id,confidence\n2024,CNY,0.14,fx,high\n")
    _load(con, tmp_path, "packaging_and_supply_metrics",
          "period_start,period_end,company,metric,segment,value,unit,currency,source_id,confidence,note\n"
          "2024-01-01,2024-12-31,SJ,revenue,2.5D packaging,1e9,amount,CNY,s,medium,\n"
          "2025-01-01,2025-12-31,SJ,revenue,2.5D packaging,2e9,amount,CNY,s,medium,no 2025 rate\n")
    build(con, "marts.packaging_revenue")
    got = dict(con.execute("select fx_year, revenue_usd from marts.packaging_revenue").fetchall())
    assert got[2024] == pytest.approx(0.14e9)
    assert got[2025] is None  # no rate: left null for the blocking not-null check to catch


def test_token_estimates_from_revenue_run_rate_by_hand(con, tmp_path):
    load_assumptions_table(con)  # forecast.estimated_components.anthropic.usd_per_million_tokens: 2.5 (1.0-6.0)
    _load(con, tmp_path, "platform_revenue_run_rate",
          "observed_on,platform,run_rate_usd,source_id,confidence,note,published_on\n"
          "2026-02-12,anthropic,14e9,s,medium,,\n"
          "2025-08-31,anthropic,5e9,s,high,,2025-09-02\n"
          "2026-01-01,unpriced,1e9,s,low,,\n")
    # usage method: 2.5 B prompts a day x chatgpt_consumer.tokens_per_unit 3,500 (1,200-10,000)
    _load(con, tmp_path, "platform_usage",
          "observed_on,platform,quantity,unit,source_id,confidence,note,published_on\n"
          "2025-07-21,chatgpt_consumer,2.5e9,prompts_per_day,s,high,,\n")
    build(con, "staging.token_estimates")
    got = {d: (k, v, lo, hi) for d, k, v, lo, hi in con.execute(
        "select observed_on, known_on, tokens_per_day, tokens_per_day_low, tokens_per_day_high "
        "from staging.token_estimates").fetchall()}
    # $14 B a year / $2.5 per million tokens / 365.25 days = 15.33 T tokens/day; range at $6 and $1
    assert got[dt.date(2026, 2, 12)][1:] == (pytest.approx(14e9 / 2.5e-6 / 365.25), pytest.approx(14e9 / 6e-6 / 365.25),
                                             pytest.approx(14e9 / 1e-6 / 365.25))
    assert got[dt.date(2025, 8, 31)][0] == dt.date(2025, 9, 2)  # known when published
    assert got[dt.date(2025, 7, 21)][1:] == (pytest.approx(2.5e9 * 3500), pytest.approx(2.5e9 * 1200),
                                             pytest.approx(2.5e9 * 10000))
    assert len(got) == 3  # a platform without a configured price is not estimated


def test_demand_coherence_names_parts_above_their_total(con, tmp_path):
    import polars as pl

    from warehouse.io import replace_table_from_frame

    replace_table_from_frame(con, "meta.forecast_hierarchy", pl.DataFrame({
        "entry": [1, 1, 2], "total": ["t", "t", "d"], "part": ["a", "b", "w"], "parts": ["a+b", "a+b", "w"],
        "scale": [1.0, 1.0, 7.0], "note": ["", "", ""]}))
    day = dt.date(2026, 3, 1)
    replace_table_from_frame(con, "model_inputs.forecast_history", pl.DataFrame({
        "series_id": ["t", "a", "b", "t", "a", "d", "w", "w"],
        "freq": ["M"] * 6 + ["W", "W"],
        "period_start": [day, day, day, dt.date(2026, 4, 1), dt.date(2026, 4, 1), day, dt.date(2026, 3, 2),
                         dt.date(2026, 3, 9)],
        "value": [10.0, 6.0, 5.0, 10.0, 9.0, 1.0, 6.0, 8.0],
        "unit": ["x"] * 8, "known_on": [day] * 8}))
    build(con, "marts.demand_coherence")
    rows = con.execute("select total, parts, period_start, parts_value, total_value, scale from marts.demand_coherence "
                       "order by 1, 3").fetchall()
    # March: a + b = 11 > t = 10; April: a alone 9 <= 10; weekly w = 8 > 7 x d (1 a day) in the week of 9 Mar only
    assert rows == [("d", "w", dt.date(2026, 3, 9), 8.0, 1.0, 7.0), ("t", "a+b", day, 11.0, 10.0, 1.0)]


def test_quarterly_demand_takes_each_quarters_last_month_forecast(con):
    import polars as pl

    from warehouse.io import replace_table_from_frame

    months = [dt.date(2027, m, 1) for m in range(1, 13)]
    frame = pl.DataFrame({
        "series_id": ["tokens/x/all"] * 12 + ["revenue/y/z"],
        "period_start": months + [dt.date(2027, 3, 1)],
        "is_forecast": [m.month > 1 for m in months] + [True],
        "value": [float(m.month) for m in months] + [99.0],
        "lo80": [1.0] * 13, "hi80": [20.0] * 13, "lo95": [0.5] * 13, "hi95": [40.0] * 13,
        "model_name": ["m"] * 13, "unit": ["tokens_per_day"] * 13})
    replace_table_from_frame(con, "marts.forecast", frame)
    build(con, "model_inputs.quarterly_demand")
    got = dict(con.execute("select period_start, value from model_inputs.quarterly_demand").fetchall())
    # March, June, September, December stand for their quarters; revenue series and observed months are left out
    assert got == {dt.date(2027, 1, 1): 3.0, dt.date(2027, 4, 1): 6.0, dt.date(2027, 7, 1): 9.0,
                   dt.date(2027, 10, 1): 12.0}


def _frame(con, table, rows: dict):
    import polars as pl

    from warehouse.io import replace_table_from_frame

    replace_table_from_frame(con, table, pl.DataFrame(rows))


def _empty_forecast_inputs(con):
    _frame(con, "staging.token_estimates", {"platform": ["p"], "observed_on": [dt.date(2020, 1, 1)],
                                             "tokens_per_day": [1.0], "known_on": [dt.date(2020, 1, 1)]})
    con.execute("delete from staging.token_estimates")
    _frame(con, "marts.model_call_volume_weekly", {"week_start": [dt.date(2020, 1, 5)], "week_end": [dt.date(2020, 1, 11)],
                                                   "origin": ["us"], "total_tokens": [1.0]})
    con.execute("delete from marts.model_call_volume_weekly")
    _frame(con, "marts.vendor_revenue", {"quarter_start": [dt.date(2020, 1, 1)], "company": ["c"], "segment": ["s"],
                                         "revenue_usd": [1.0], "is_complete": [True]})
    con.execute("delete from marts.vendor_revenue")
    _frame(con, "marts.packaging_revenue", {"period_start": [dt.date(2020, 1, 1)], "period_end": [dt.date(2020, 12, 31)],
                                            "company": ["c"], "segment": ["s"], "revenue_usd": [1.0]})
    con.execute("delete from marts.packaging_revenue")
    _frame(con, "marts.call_volume_daily", {"day": [dt.date(2020, 1, 1)], "origin": ["us"], "prompt_tokens": [1],
                                            "completion_tokens": [1]})
    con.execute("delete from marts.call_volume_daily")


def test_forecast_history_picks_one_figure_a_month_and_only_complete_shipment_quarters(con):
    _empty_forecast_inputs(con)
    # two disclosures in March: the March figure (shorter, later period) beats the Q1 average
    _frame(con, "marts.token_observations", {
        "platform": ["g", "g", "g"], "segment": ["all"] * 3,
        "observed_on": [dt.date(2026, 3, 31), dt.date(2026, 3, 31), dt.date(2026, 5, 20)],
        "period_start": [dt.date(2026, 1, 1), dt.date(2026, 3, 1), dt.date(2026, 5, 20)],
        "tokens_per_day": [1e12, 2e12, 3e12],
        "known_on": [dt.date(2026, 4, 2)] * 2 + [dt.date(2026, 5, 21)]})
    _frame(con, "marts.chip_shipments", {
        "quarter_start": [dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 4, 1)],
        "designer": ["N", "N", "N"], "h100e_median": [10.0, 20.0, 5.0], "incomplete": [False, False, True]})
    build(con, "model_inputs.forecast_history")
    rows = {(s, p): (v, k) for s, p, v, k in con.execute(
        "select series_id, period_start, value, known_on from model_inputs.forecast_history").fetchall()}
    assert rows[("tokens/g/all", dt.date(2026, 3, 1))] == (pytest.approx(2e12), dt.date(2026, 4, 2))
    assert rows[("tokens/g/all", dt.date(2026, 5, 1))][0] == pytest.approx(3e12)
    # a quarter with an incomplete row is left out of the shipment series (the forecast fills it)
    assert rows[("shipments_h100e/N", dt.date(2026, 1, 1))] == (pytest.approx(10.0), dt.date(2026, 3, 31))
    assert ("shipments_h100e/N", dt.date(2026, 4, 1)) not in rows


def test_source_inventory_splits_cited_sources_and_keeps_the_weakest_confidence(con, tmp_path):
    from warehouse.sources import SOURCES_BY_STEM

    # every raw table the inventory reads, empty, then two cited rows
    for stem in ("token_volume_observations", "chip_shipments_quarterly", "accelerator_specs",
                 "vendor_revenue_quarterly", "packaging_and_supply_metrics", "fx_rates_annual", "model_catalog",
                 "openrouter_weekly_top_models", "supply_chain", "chip_packaging", "supply_capacity", "api_prices",
                 "provider_margins", "platform_revenue_run_rate", "platform_usage", "chip_availability", "market_outlooks"):
        source = SOURCES_BY_STEM[stem]
        columns = ", ".join(f'"{c}" {t}' for c, t in [*source.columns.items(), *source.optional.items()])
        con.execute(f"create schema if not exists raw; create or replace table {source.table} ({columns})")
    con.execute("insert into raw.supply_capacity (period_end, region, resource, unit, basis, value, source_id, "
                "confidence) values ('2025-12-31', 'rest', 'cowos', 'wafers_per_month', 'reported', 1, "
                "'a_source; b_source', 'high')")
    con.execute("insert into raw.api_prices (price_date, provider, model, input_usd_per_mtok, output_usd_per_mtok, "
                "source_id, confidence) values ('2026-02-01', 'P', 'm', 1, 2, 'a_source', 'low')")
    # a spec sheet's release date and a projection are no observations (they showed 2020-01-01, and dates after
    # the as-of date)
    con.execute("insert into raw.supply_capacity (period_end, region, resource, unit, basis, value, source_id, "
                "confidence) values ('2027-12-31', 'rest', 'cowos', 'wafers_per_month', 'projection', 2, "
                "'b_source', 'high')")
    con.execute("insert into raw.accelerator_specs (chip, designer, chip_class, release_date, china_market, "
                "source_id, confidence) values ('A100', 'Nvidia', 'gpu', '2020-05-14', false, 'spec_sheet', 'high')")
    con.execute("insert into raw.packaging_and_supply_metrics (period_start, period_end, company, metric, segment, "
                "value, unit, source_id, confidence, published_on) values ('2026-01-01', '2026-12-31', 'TSMC', 'm', "
                "'s', 1, 'amount', 'outlook', 'medium', '2026-04-01')")
    build(con, "marts.source_inventory")
    got = {r[0]: r[1:] for r in con.execute(
        "select source_id, tables, rows, weakest_confidence, latest_observation from marts.source_inventory").fetchall()}
    assert got["a_source"] == ("api_prices, supply_capacity", 2, "low", dt.date(2026, 2, 1))
    assert got["b_source"] == ("supply_capacity", 2, "high", dt.date(2025, 12, 31))
    assert got["spec_sheet"][3] is None and got["outlook"][3] is None


def test_workload_mix_shares_over_the_last_eight_split_weeks_and_call_logs(con):
    con.execute("create schema marts")
    # ten weeks; the oldest two fall outside the last eight weeks that publish the split, and a week without
    # the split (prompt_tokens null) is not counted as one of them
    con.execute("""create table marts.model_call_volume_weekly as
        select * from (values
            (date '2026-01-05', 'a/m1', 'm1', 'us', 999.0, 900.0, 99.0, 0.0),
            (date '2026-01-12', 'a/m1', 'm1', 'us', 999.0, 900.0, 99.0, 0.0),
            (date '2026-03-16', 'a/m1', 'm1', 'us', 500.0, null, null, null)
        ) t(week_start, model_slug, catalog_model, origin, total_tokens, prompt_tokens, completion_tokens, cached_tokens)
        union all
        select date '2026-01-19' + cast(7 * i as integer), 'a/m1', 'm1', 'us', 100.0, 80.0, 20.0, 40.0 from range(8) r(i)
        union all
        select date '2026-01-19' + cast(7 * i as integer), 'b/m2', 'm2', 'cn', 300.0, 150.0, 150.0, null from range(8) r(i)
        union all
        select date '2026-01-19', 'c/x', null, 'cn', 50.0, 25.0, 25.0, 0.0""")
    con.execute("""create table marts.call_volume_daily as
        select * from (values
            (date '2026-03-01', 'm1', 600.0, 300.0, 60.0),
            (date '2026-03-02', 'm2', 200.0, 100.0, 0.0),
            (date '2026-03-02', null, 1000.0, 1000.0, 0.0)
        ) t(day, catalog_model, prompt_tokens, completion_tokens, cached_tokens)""")
    build(con, "marts.workload_mix")
    rows = {(g, m): r for g, m, *r in con.execute(
        """select origin_group, catalog_model, token_share, output_share, cached_share, period, periods,
                  first_period_start, last_period_start from marts.workload_mix""").fetchall()}
    # all models, weeks 2026-01-19 .. 2026-03-09: m1 800 of 3,200 tokens; output (160 + 1,200) / 3,200 = 0.425;
    # cached 320 of the 640 prompt tokens that report a cached count = 0.5 (the uncatalogued model is left out)
    assert rows[("all", "m1")] == [pytest.approx(0.25), pytest.approx(0.425), pytest.approx(0.5), "week", 8,
                                   dt.date(2026, 1, 19), dt.date(2026, 3, 9)]
    assert rows[("all", "m2")][0] == pytest.approx(0.75)
    # China-origin models only: m2 alone, half of its tokens output, no cached counts
    assert rows[("cn", "m2")][:3] == [pytest.approx(1.0), pytest.approx(0.5), None]
    assert ("cn", "m1") not in rows
    # call logs, catalogued rows only: m1 900 of 1,200 tokens; output 400 / 1,200; cached 60 of 800 prompt
    assert rows[("call_logs", "m1")] == [pytest.approx(0.75), pytest.approx(1 / 3), pytest.approx(0.075), "day", 1,
                                         dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    assert rows[("call_logs", "m2")][0] == pytest.approx(0.25)


def test_call_log_rejects_summary_counts_rows_and_files_per_day_and_reason(con):
    con.execute("create schema raw")
    con.execute("""create table raw.call_log_rejects as select * from (values
        (date '2026-03-02', 'negative token count', 'b.csv', 7),
        (date '2026-03-02', 'negative token count', 'a.csv', 9),
        (date '2026-03-02', 'negative token count', 'a.csv', 3),
        (date '2026-03-02', 'unknown status', 'a.csv', 5),
        (date '2026-03-03', 'negative token count', 'c.csv', 1)) t(day, reason, file, row_number)""")
    build(con, "marts.call_log_rejects_summary")
    got = con.execute("select day, reason, rows, files, example_file, example_row "
                      "from marts.call_log_rejects_summary").fetchall()
    assert got == [(dt.date(2026, 3, 2), "negative token count", 3, 2, "a.csv", 3),
                   (dt.date(2026, 3, 2), "unknown status", 1, 1, "a.csv", 5),
                   (dt.date(2026, 3, 3), "negative token count", 1, 1, "c.csv", 1)]


def test_cost_at_interactivity_takes_the_cheapest_configuration_that_reaches_each_speed(con):
    con.execute("create schema meta")
    con.execute("create schema marts")
    con.execute("""create table meta.assumptions as select * from (values
        ('report.interactivity_reading', 20.0::double), ('report.interactivity_agents', 100.0),
        ('fleet.pue', 1.2)) t(name, value)""")
    # one chip x model at three batches: faster per user = fewer users per chip = dearer per token
    con.execute("""create table marts.interactivity_curves as select * from (values
        ('H100', 'gpu', 'm', 'fp8', 150.0, 150.0, 1, 8, 9.0::double),
        ('H100', 'gpu', 'm', 'fp8', 60.0, 1900.0, 32, 8, 1.5),
        ('H100', 'gpu', 'm', 'fp8', 25.0, 4000.0, 160, 8, 0.7),
        ('X', 'asic', 'm', 'fp8', 30.0, 900.0, 30, 4, 2.0))
        t(chip, chip_class, model_name, precision, tokens_per_s_per_user, tokens_per_s_per_chip, batch,
          replica_chips, usd_per_million_output_tokens)""")
    build(con, "marts.cost_at_interactivity")
    got = {(r[0], r[1]): r[2:] for r in con.execute(
        "select chip, level, usd_per_million_output_tokens, batch, tokens_per_s_per_user "
        "from marts.cost_at_interactivity").fetchall()}
    # reading speed (>= 20/s): H100 at batch 160 ($0.70) beats its batch 32 and batch 1; X reaches it too
    assert got[("H100", "reading")] == (pytest.approx(0.7), 160, pytest.approx(25.0))
    assert got[("X", "reading")] == (pytest.approx(2.0), 30, pytest.approx(30.0))
    # agents (>= 100/s): only H100's batch 1 reaches it; X cannot and has no row
    assert got[("H100", "agents")] == (pytest.approx(9.0), 1, pytest.approx(150.0))
    assert ("X", "agents") not in got and len(got) == 3


def test_supply_metrics_keeps_every_figure_but_revenue(con, tmp_path):
    header = "period_start,period_end,company,metric,segment,value,unit,currency,source_id,confidence,note\n"
    _load(con, tmp_path, "packaging_and_supply_metrics", header
          + "2025-01-01,2025-12-31,TSMC,cowos_capacity,all,75000,wafers_per_month,,s,medium,\n"
          + "2025-01-01,2025-12-31,SK hynix,hbm_share,all,0.6,ratio,,s,medium,\n"
          + "2025-01-01,2025-12-31,JCET,revenue,advanced_packaging,1e9,amount,USD,s,high,\n")
    build(con, "marts.supply_metrics")
    got = con.execute("select company, metric, value from marts.supply_metrics").fetchall()
    assert got == [("TSMC", "cowos_capacity", pytest.approx(75000)), ("SK hynix", "hbm_share", pytest.approx(0.6))]


def test_model_slug_map_takes_the_first_matching_pattern_in_file_order_ignoring_case(con, tmp_path):
    _load(con, tmp_path, "model_slug_map", "slug_pattern,model,confidence,note\n"
          "deepseek/deepseek-r1%,DeepSeek-R1,high,\n"
          "deepseek/%,DeepSeek-V3.2,medium,any other DeepSeek\n"
          "openai/gpt-oss-120b,gpt-oss-120b,high,\n")
    con.execute("create table raw.openrouter_weekly_top_models as select * from (values "
                "('DeepSeek/DeepSeek-R1-0528'), ('deepseek/deepseek-chat'), ('deepseek/deepseek-chat'), "
                "('openai/gpt-oss-120b'), ('acme/unknown')) t(model_slug)")
    build(con, "staging.model_slug_map")
    got = dict(con.execute("select model_slug, model from staging.model_slug_map").fetchall())
    # the R1 slug matches both DeepSeek patterns: the first line wins; upper case still matches
    assert got == {"DeepSeek/DeepSeek-R1-0528": "DeepSeek-R1", "deepseek/deepseek-chat": "DeepSeek-V3.2",
                   "openai/gpt-oss-120b": "gpt-oss-120b"}


def test_the_projection_sql_reads_the_forecast_band_with_the_shared_normal_quantiles():
    """installed_base_projection.sql turns the forecast's 80% band into p5/p95 (z90/z80); SQL cannot import
    hardware/stats.py, so its literals must be those quantiles."""
    import re

    from hardware.stats import Z80, Z90
    from warehouse.io import read_sql

    sql = read_sql("marts.installed_base_projection")
    pairs = re.findall(r"exp\(-?([0-9.]+) \* \(ln\(hi80\) - ln\(lo80\)\) / \(2 \* ([0-9.]+)\)\)", sql)
    assert len(pairs) == 2
    for z90, z80 in pairs:
        assert float(z90) == pytest.approx(Z90, abs=1e-4) and float(z80) == pytest.approx(Z80, abs=1e-4)
