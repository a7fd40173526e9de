"""What the feeds change downstream, on hand-made payloads: Epoch vintages replace curated shipments,
the OpenRouter daily feed extends the weekly panel and the platform total, benchmark rows map to the catalog,
and the report's lag and restatement tables."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from feeds.refresh import refresh
from reports import data_freshness
from tests.conftest import build
from warehouse.feeds import load_feed, refresh_tables
from warehouse.loading import load_source
from warehouse.sources import SOURCES_BY_STEM

NOW = dt.datetime(2026, 12, 3, tzinfo=dt.timezone.utc)
EPOCH_HEADER = ("name,designer,chip_type,start_date,end_date,units_p5,units_med,units_p95,h100e_p5,h100e_med,"
                "h100e_p95,power_mw_p5,power_mw_med,power_mw_p95,cost_usd_p5,cost_usd_med,cost_usd_p95,incomplete,"
                "source,notes\n")


def _csv(con, tmp_path, stem, text):
    path = tmp_path / f"{stem}.csv"
    path.write_text(text)
    load_source(con, SOURCES_BY_STEM[stem], path)


def _payload(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _epoch_row(chip: str, quarter: str, units: int, stamp: str, incomplete: bool = False) -> str:
    return (f"Nvidia {chip} Q,Nvidia,{chip},{quarter},{quarter},{units - 10},{units},{units + 10},1,1,1,1,1,1,1,1,1,"
            f"{incomplete},,Generated on {stamp}\n")


def test_epoch_vintage_replaces_curated_rows_and_keeps_the_rest(con, tmp_path):
    root = tmp_path / "snapshots"
    _csv(con, tmp_path, "accelerator_specs", "chip,designer,chip_class,release_date,china_market,bf16_tflops,fp8_tflops,"
         "fp4_tflops,mem_type,mem_gb,mem_tbps,sram_mb,sram_tbps,tdp_w,unit_price_usd,source_id,confidence,note\n"
         "B300,Nvidia,gpu,2025-06-01,false,2500,5000,15000,HBM3e,288,8,,,1100,40000,s,high,\n"
         "Ascend 910C,Huawei,domestic_asic,2025-01-01,true,800,,,HBM2e,128,3.2,,,550,25000,s,low,\n")
    _csv(con, tmp_path, "chip_aliases", "alias,chip,note\nH100/H200,H100,combined\n")
    _csv(con, tmp_path, "chip_shipments_quarterly",
         "quarter_start,designer,chip,units_p5,units_median,units_p95,incomplete,source_id,confidence\n"
         "2026-01-01,Nvidia,B300,90,100,110,false,epoch_chip_counts,medium\n"
         "2026-04-01,Nvidia,B300,190,200,210,true,epoch_chip_counts,medium\n"
         "2026-01-01,Huawei,Ascend 910C,5,6,7,false,epoch_chip_counts_curated,low\n")
    old = _payload(tmp_path, "old.csv", EPOCH_HEADER + _epoch_row("B300", "2026-01-01", 150, "2026-04-01 10:00"))
    new = _payload(tmp_path, "new.csv", EPOCH_HEADER + _epoch_row("B300", "2026-01-01", 500, "2026-09-01 10:00")
                   + _epoch_row("B300", "2026-04-01", 700, "2026-09-01 10:00", incomplete=True)
                   + _epoch_row("Rubin", "2026-07-01", 50, "2026-09-01 10:00"))
    refresh("epoch", root, payload=old, now=NOW)
    refresh("epoch", root, payload=new, now=NOW)

    def shipments(as_of):
        load_feed(con, root, "epoch", as_of)
        build(con, "staging.epoch_chip_sales", "staging.chip_shipments")
        return {(r[0].isoformat(), r[1]): (r[2], r[3]) for r in con.execute(
            "select quarter_start, chip, units_median, origin from staging.chip_shipments").fetchall()}

    # before any vintage: the curated file alone
    assert shipments(dt.date(2026, 3, 1))[("2026-01-01", "B300")] == (100.0, "curated")
    # the April vintage replaces Q1 and leaves Q2 (not in it) and Huawei to the curated file
    april = shipments(dt.date(2026, 5, 1))
    assert april[("2026-01-01", "B300")] == (150.0, "feed 2026-04-01T100000Z")
    assert april[("2026-04-01", "B300")] == (200.0, "curated")
    assert april[("2026-01-01", "Ascend 910C")] == (6.0, "curated")
    # the September vintage restates Q1 and brings Q2
    september = shipments(dt.date(2026, 12, 1))
    assert september[("2026-01-01", "B300")] == (500.0, "feed 2026-09-01T100000Z")
    assert september[("2026-04-01", "B300")] == (700.0, "feed 2026-09-01T100000Z")
    # a chip the spec sheet does not know stays out, and the WARN check names it
    assert ("2026-07-01", "Rubin") not in september
    from assets.checks import contract_results
    warn = next(r for r in contract_results(con, "staging.epoch_chip_sales")
                if r.check_name == "feed_chip_without_spec")
    assert not warn.passed and "Nvidia Rubin 2026-07-01" in str(warn.metadata)
    refresh_tables(con, root, None)
    assert con.execute("select key, field, old_value, new_value from marts.source_revisions "
                       "where field = 'units_med'").fetchall() == [("Nvidia | B300 | 2026-01-01", "units_med", 150.0, 500.0)]


def test_openrouter_daily_extends_the_weekly_panel_and_the_platform_total(con, tmp_path):
    root = tmp_path / "snapshots"
    _csv(con, tmp_path, "model_authors", "author,company,origin\ndeepseek,DeepSeek,cn\nopenai,OpenAI,us\n")
    _csv(con, tmp_path, "model_slug_map", "slug_pattern,model,confidence,note\ndeepseek/%,DeepSeek-V3,medium,\n")
    _csv(con, tmp_path, "openrouter_weekly_top_models",
         "week_start,week_end,rank,model_slug,model_name,author,total_tokens,prompt_tokens,completion_tokens,"
         "reasoning_tokens,cached_tokens,request_count,is_free,source_id,confidence\n"
         "2026-11-02,2026-11-08,1,openai/gpt-5,GPT-5,openai,7000,,,,,,false,openrouter_weekly_snapshots,medium\n")
    _csv(con, tmp_path, "token_volume_observations",
         "observed_on,platform,segment,value,unit,basis,source_id,confidence,note\n"
         "2026-06-30,openrouter,all,25e12,tokens_per_week,total,s,low,\n")
    days = [dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(15)]  # two full weeks and a day after
    data = [{"date": d.isoformat(), "model_permaslug": slug, "total_tokens": str(tokens)}
            for d in days for slug, tokens in (("deepseek/deepseek-v4", 100), ("openai/gpt-5", 50), ("other", 30))]
    _payload(tmp_path, "r.json", json.dumps({"data": data, "meta": {"as_of": "2026-11-17T02:00:00Z"}}))
    refresh("openrouter", root, payload=tmp_path / "r.json", now=NOW)
    load_feed(con, root, "openrouter", None)
    build(con, "staging.model_slug_map", "staging.openrouter_daily", "marts.model_call_volume_weekly",
          "staging.token_volume", "marts.token_observations")
    weekly = con.execute("select week_start, rank, model_slug, origin, catalog_model, total_tokens, source_id "
                         "from marts.model_call_volume_weekly order by week_start, rank").fetchall()
    # the curated week stays; the feed adds the complete week after it (9-15 Nov), not the partial 16 Nov
    assert weekly == [
        (dt.date(2026, 11, 2), 1, "openai/gpt-5", "us", None, 7000.0, "openrouter_weekly_snapshots"),
        (dt.date(2026, 11, 9), 1, "deepseek/deepseek-v4", "cn", "DeepSeek-V3", 700.0, "openrouter_rankings_daily"),
        (dt.date(2026, 11, 9), 2, "openai/gpt-5", "us", None, 350.0, "openrouter_rankings_daily"),
    ]
    totals = con.execute("select period_start, tokens_per_day, source_id from marts.token_observations "
                         "where source_id = 'openrouter_rankings_daily' order by period_start").fetchall()
    # both complete weeks, every model and the 'other' row: 180 tokens a day
    assert totals == [(dt.date(2026, 11, 2), pytest.approx(180.0), "openrouter_rankings_daily"),
                      (dt.date(2026, 11, 9), pytest.approx(180.0), "openrouter_rankings_daily")]


def test_benchmark_rows_map_to_chips_models_and_scenarios(con, tmp_path, data_dir):
    root = tmp_path / "snapshots"
    load_source(con, SOURCES_BY_STEM["benchmark_name_map"], data_dir / "benchmark_name_map.csv")
    base = {"ID": "x", "Submitter": "S", "Availability": "available", "Category": "closed", "Suite": "datacenter",
            "System": "Sys", "Platform": "p", "Accelerator": "NVIDIA H200-SXM-141GB", "a#": 8, "Nodes": 1,
            "version": "v5.1", "weight_data_types": "fp8", "Performance_Units": "Tokens/s"}
    results = [
        base | {"Model": "llama2-70b-99", "Scenario": "Server", "Performance_Result": 32000, "Location": "a"},
        base | {"Model": "llama2-70b-99", "Scenario": "Offline", "Performance_Result": 34000, "Location": "b",
                "Category": "open"},  # open division: left out
        base | {"Model": "retinanet", "Scenario": "Offline", "Performance_Result": 1, "Location": "c"},  # no model
        base | {"Model": "llama2-70b-99", "Scenario": "Offline", "Performance_Result": 9000, "Location": "d",
                "Accelerator": "AMD Instinct MI325X 256GB HBM3e (x16), AMD Instinct MI300X 192GB HBM3 (x8)"},
    ]
    _payload(tmp_path, "s.json", json.dumps(results))
    refresh("mlperf", root, payload=tmp_path / "s.json", now=NOW)
    row = {"hardware": "mi355x", "framework": "sglang", "model": "dsr1", "precision": "fp4", "isl": 1024,
           "osl": 1024, "conc": 32, "num_prefill_gpu": 8, "num_decode_gpu": 8, "date": "2026-11-30",
           "metrics": {"tput_per_gpu": 2500.0, "median_intvty": 40.0}}
    _payload(tmp_path, "b.json", json.dumps([row, row | {"hardware": "tpu-v7"}]))
    refresh("inferencex", root, payload=tmp_path / "b.json", now=NOW)
    for source in ("mlperf", "inferencex"):
        load_feed(con, root, source, None)
    build(con, "staging.benchmark_measurements")
    rows = con.execute("select chip, chips, model, precision, user_tokens_per_s_target, tokens_per_s_per_chip, "
                       "tokens_per_s_per_user, in_fit, feed from staging.benchmark_measurements "
                       "order by feed").fetchall()
    assert rows == [("MI355X", 16.0, "DeepSeek-R1", "fp4", None, 2500.0, 40.0, False, "inferencex"),
                    ("H200", 8.0, "Llama-3.1-70B", "fp8", 5.0, 4000.0, None, False, "mlperf")]


def test_report_lag_and_restatements():
    lag = pl.DataFrame({"input": ["b", "a"], "origin": ["x", "y"],
                        "newest_figure": [dt.date(2026, 11, 1), None], "newest_known": [dt.date(2026, 11, 2), None]})
    rows = data_freshness.lag_rows(lag, dt.date(2026, 12, 3), 30)
    assert [(r["input"], r["lag"], r["warn"]) for r in rows] == [("a", "n/a", True), ("b", "32 days", True)]
    assert not data_freshness.lag_rows(lag, dt.date(2026, 11, 20), 30)[1]["warn"]
    revisions = pl.DataFrame({"source": ["epoch", "epoch", "openrouter"], "key": ["k1", "k2", "d1"],
                              "field": ["units_med", "units_med", "total_tokens"],
                              "change": ["restated", "restated", "vanished"], "old_value": [100.0, 10.0, 5.0],
                              "new_value": [300.0, 11.0, None], "relative_change": [2.0, 0.1, None],
                              "old_vintage": ["v1", "v1", "w1"], "new_vintage": ["v2", "v2", "w2"]})
    everything = data_freshness.restatements(revisions, None)
    assert everything["count"] == 3
    assert [r["change"] for r in everything["largest"]] == ["+200%", "+10%"]
    assert everything["sources"][1] | {} == {"source": "openrouter", "from": "w1", "to": "w2", "restated": 0,
                                            "vanished": 1, "n_keys": 1}
    # the previous report had seen epoch/v2: only the OpenRouter change is new
    assert data_freshness.restatements(revisions, ["epoch/v2"])["count"] == 1


def test_the_report_remembers_its_vintages(tmp_path):
    snaps = pl.DataFrame({"source": ["epoch", "mlperf"], "vintage": ["v2", "r1"]})
    assert data_freshness.vintages_of(snaps) == ["epoch/v2", "mlperf/r1"]
    (tmp_path / "2026-11-01").mkdir()
    (tmp_path / "2026-11-01" / "key_numbers.json").write_text(json.dumps({"feed_vintages": ["epoch/v1"],
                                                                          "generated_at": "t"}))
    seen, label = data_freshness.previous_vintages(tmp_path, dt.date(2026, 12, 3))
    assert seen == ["epoch/v1"] and "2026-11-01" in label
    assert data_freshness.previous_vintages(tmp_path, dt.date(2026, 10, 1))[0] is None


def test_lag_check_warns_beyond_the_limit_and_for_a_feed_with_nothing_saved(con):
    from assets.checks import lag_result
    from warehouse.io import replace_table_from_frame

    replace_table_from_frame(con, "marts.data_lag", pl.DataFrame({
        "input": ["fresh", "stale", "empty"], "origin": ["a", "b", "c"],
        "newest_figure": [dt.date(2026, 11, 20), dt.date(2026, 6, 30), None],
        "newest_known": [None, None, None]}, schema_overrides={"newest_known": pl.Date}))
    result = lag_result(con, dt.date(2026, 12, 3), 90)
    assert not result.passed and result.metadata["rows"].value == 2
    assert result.metadata["first"].value == "empty: none saved"
    assert "stale: 156 days" in result.metadata["inputs"].value
    assert lag_result(con, dt.date(2026, 7, 1), 400).metadata["rows"].value == 1
