"""End to end: one `tokens2chips run` (after a run SIGKILLed inside a step) builds the
warehouse as a Dagster run; the CLI's other commands, the report in a browser, and the model and report
assets rebuilt through dg.materialize on copies of that warehouse. The early-vintage run and a run that
fails on a bad file are in tests/test_vintage_run.py."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bench.make_call_logs import generate
from tests.conftest import ASSUMPTIONS, ROOT, cli, marts_of, pipeline_root, private_copy, resources_for, same_marts

# rows of the embedded shipments file (derived, not hard-coded: the data grows)
SHIPMENT_ROWS = sum(1 for line in (ROOT / "data" / "chip_shipments_quarterly.csv").read_text().splitlines()[1:]
                    if line.strip())


HOSTILE = "<script>alert(1)</script>"
AS_OF = "2026-11-01"


def _killed_run(env: dict) -> None:
    """Start `run` and SIGKILL it once it is inside a step (holding Dagster's pool "duckdb")."""
    killed = subprocess.Popen([sys.executable, "-m", "pipelines", "run", "--as-of", AS_OF], cwd=ROOT,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    for line in killed.stdout:
        if line.startswith("  ok    "):
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdout.close()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The module's one end-to-end CLI run, on a private copy of the data plus a platform with a hostile name
    and 21 days of call logs. A run killed inside its first step comes before it: the run must reclaim what
    the dead one held."""
    root = tmp_path_factory.mktemp("e2e")
    p = pipeline_root(root)
    with (p["data"] / "token_volume_observations.csv").open("a") as fh:
        fh.write(f'2025-06-30,"{HOSTILE}",all,1e12,tokens_per_day,average,test,low,hostile name,\n')
        fh.write(f'2025-12-31,"{HOSTILE}",all,2e12,tokens_per_day,average,test,low,hostile name,\n')
    _killed_run(p["env"])  # without the call logs: killed inside refresh_all, not in their pre-load
    generate(20_000, 21, root / "logs", "parquet", dt.date(2026, 3, 2), bad_fraction=0.001, seed=5, threads=1)
    p["env"]["T2C_CALL_LOGS"] = str(root / "logs")
    first = cli("run", "--as-of", AS_OF, env=p["env"])
    return {**p, "first": first, "marts": marts_of(p["warehouse"])}


def test_run_prints_progress_and_records_the_run(pipeline):
    out = pipeline["first"].stdout
    for key in ("raw/token_volume_observations", "marts/chip_shipments", "marts/installed_base", "marts/forecast",
                "marts/hardware_demand", "reports/analyst_report"):
        assert f"ok    {key}" in out
    assert "succeeded" in out
    # every WARN line says why: the findings' count and the first one, or the source's age (issue 29)
    warns = [line for line in out.splitlines() if line.strip().startswith("WARN")]
    assert warns and all(line.rstrip().endswith(")") and " (" in line for line in warns), warns
    assert len(pipeline["marts"]["chip_shipments"]) == SHIPMENT_ROWS
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    runs = con.execute("select status, as_of, checks_failed, row_counts from meta.runs").fetchall()
    n_checks = con.execute("select count(*) from meta.check_results").fetchone()[0]
    scenarios = {r[0] for r in con.execute("select distinct scenario from marts.hardware_demand").fetchall()}
    con.close()
    assert runs[0][0] == "SUCCESS" and str(runs[0][1]) == AS_OF and runs[0][2] == 0
    assert json.loads(runs[0][3])["marts.chip_shipments"] == SHIPMENT_ROWS
    assert n_checks > 40
    assert scenarios == {"gpu_centric", "three_layer", "china_domestic", "pd_disaggregated"}


def test_call_logs_flow_into_marts_forecasts_and_report(pipeline):
    assert "21 new or changed day-partition(s)" in pipeline["first"].stdout
    assert "ok    raw/call_log_daily [2026-03-02]" in pipeline["first"].stdout
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    requests, days = con.execute("select sum(requests), count(distinct day) from marts.call_volume_daily").fetchone()
    rejects = con.execute("select sum(rows) from marts.call_log_rejects_summary").fetchone()[0]
    calls = con.execute("select model_name, n_obs from marts.forecast_selection where series_id = 'calls/all'").fetchone()
    shares = con.execute("select output_share from marts.workload_mix where origin_group = 'call_logs' limit 1").fetchone()
    con.close()
    assert days == 21 and requests + rejects == 20_000 and rejects > 0
    assert calls[1] == 21 and calls[0]
    assert 0 < shares[0] < 1
    assert "Request-level call logs" in (pipeline["reports"] / AS_OF / "report.md").read_text()


def test_a_killed_run_is_reclaimed_by_the_next_run(pipeline, monkeypatch):
    # the run SIGKILLed inside a step held pool "duckdb": the next run reclaims it (marks it failed and
    # frees the slot) instead of waiting for that slot for ever
    assert "reclaimed run" in pipeline["first"].stdout
    monkeypatch.setenv("DAGSTER_HOME", pipeline["env"]["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        runs = [r.status.value for r in reversed(instance.get_runs()) if r.job_name == "refresh_all"]
        assert runs == ["FAILURE", "SUCCESS"]  # the killed one, the next one
        assert not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots


def test_the_model_assets_rebuilt_through_dagster_reproduce_every_mart(pipeline, tmp_path):
    """The seeded models (forecasts, the hardware Monte Carlo) re-materialised with dg.materialize on a copy of
    the run's warehouse give exactly the run's marts: re-running is idempotent."""
    from assets.forecast import forecast_marts
    from assets.hardware import hardware_marts

    copy = private_copy(pipeline, tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize([forecast_marts, hardware_marts], instance=instance,
                                resources=resources_for(copy, AS_OF))
    assert result.success
    built = {e.event_specific_data.materialization.asset_key.to_user_string()
             for e in result.get_asset_materialization_events()}
    assert {"marts/forecast", "marts/forecast_selection", "marts/hardware_demand", "marts/sensitivity"} <= built
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR)
    assert same_marts(copy)


def test_a_hardware_build_that_fails_names_file_and_scenario_and_keeps_every_mart(pipeline, tmp_path):
    from assets.hardware import hardware_marts

    copy = private_copy(pipeline, tmp_path)
    text = ASSUMPTIONS.read_text()
    broken = tmp_path / "assumptions.yaml"
    head, tail = text.split("\nscenarios:\n", 1)
    broken.write_text(head + "\nscenarios:\n  no_such_chip:\n    label: No such chip\n    summary: a chip the specs "
                      "lack\n    segments:\n      rest_of_world:\n        decode:\n          NoSuchChip9000: 1.0\n"
                      + tail)
    copy["env"]["T2C_ASSUMPTIONS"] = str(broken)
    with dg.instance_for_test() as instance:
        result = dg.materialize([hardware_marts], instance=instance, raise_on_error=False,
                                resources=resources_for(copy, AS_OF))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.event_specific_data.error.message
    assert "scenario 'no_such_chip'" in message and str(broken) in message
    assert same_marts(copy)


def test_the_fleet_serves_total_demand_from_the_installed_base_first(pipeline):
    """Issues 26-27 end to end: the rest of the world is sized on disclosed + estimated demand (the disclosed
    series is the lower bound), installed utilisation stays in [0, 1], no chip is bought outside its window,
    and size's arithmetic is the one the marts used."""
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    try:
        total, disclosed, counted = con.execute(
            "select t.value, d.value, r.demand_tokens_per_day_median from model_inputs.quarterly_demand as t "
            "join model_inputs.quarterly_demand as d using (period_start) "
            "join marts.demand_reconciliation as r using (period_start) "
            "where t.series_id = 'tokens/rest_of_world_total' and d.series_id = 'tokens/rest_of_world' "
            "and r.segment = 'rest_of_world' and r.scenario = 'gpu_centric' "
            "order by period_start desc limit 1").fetchone()
        assert counted > disclosed and counted == pytest.approx(total, rel=0.25)
        low, high = con.execute("select min(utilisation_p5), max(utilisation_p95) from marts.fleet_stock_flow "
                                "where utilisation_p5 is not null").fetchone()
        assert 0.0 <= low and high <= 1.0 + 1e-9
        outside = con.execute(
            "select count(*) from marts.fleet_stock_flow as f "
            "left join raw.chip_availability as a on a.chip = f.chip and a.region = f.region "
            "where f.bought_chips_median > 0 and (a.chip is null or f.period_start < a.first_quarter "
            "or (a.last_quarter is not null and f.period_start > a.last_quarter))").fetchone()[0]
        assert outside == 0
    finally:
        con.close()


def test_query_is_read_only_and_formats(pipeline):
    env = pipeline["env"]
    out = cli("query", "select chip, units_median from marts.chip_shipments order by units_median desc limit 3",
               env=env)
    assert "chip" in out.stdout and "units_median" in out.stdout
    out = cli("query", "select count(*) as n from marts.chip_shipments", "--format", "json", env=env)
    assert json.loads(out.stdout) == [{"n": SHIPMENT_ROWS}]
    refused = cli("query", "create table marts.x as select 1", check=False, env=env)
    assert refused.returncode != 0 and "read-only" in refused.stderr.lower()


def test_no_warehouse_column_is_a_reserved_word(pipeline):
    """A column named `check` (marts.cross_checks) had to be quoted in every analyst query (issue 29): no
    column of the warehouse may be a DuckDB reserved keyword."""
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    reserved = con.execute(
        "select c.table_schema || '.' || c.table_name || '.' || c.column_name from information_schema.columns c "
        "join duckdb_keywords() k on lower(c.column_name) = k.keyword_name and k.keyword_category = 'reserved' "
        "where c.table_schema in ('raw', 'staging', 'model_inputs', 'marts', 'meta')").fetchall()
    con.close()
    assert reserved == []


def test_report_sections_key_numbers_and_escaping(pipeline):
    from reports.format import short, tokens_per_day

    report = pipeline["reports"] / AS_OF
    html_text = (report / "report.html").read_text()
    md_text = (report / "report.md").read_text()
    assert (pipeline["reports"] / "latest" / "report.html").read_text() == html_text
    for section in ("summary", "key-numbers", "demand", "hardware", "suppliers", "supply", "sensitivity",
                    "forecast-quality", "data"):
        assert f'id="{section}"' in html_text
    for heading in ("## Summary", "## 1. Key numbers", "## 2. Demand", "## 3. Compute and hardware", "## 4. Suppliers",
                    "## 4b. Supply", "## 5. Sensitivity", "## 6. Forecast quality", "## 7. Data and assumptions"):
        assert heading in md_text
    # the summary is generated from the numbers: demand now and at the horizon, the headline fleet, supply
    summary = md_text.split("## Summary", 1)[1].split("## 1. Key numbers", 1)[0]
    assert 3 <= len([p for p in summary.split("\n\n") if p.strip()]) <= 7
    assert "Disclosed global inference demand" in summary and "H100-equivalents" in summary
    # every scenario defined in one line, and labelled, not only by its identifier
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    labels = con.execute("select label, summary from meta.scenarios").fetchall()
    con.close()
    assert labels and all(f"**{label}**" in md_text and text in md_text for label, text in labels)
    # the required-vs-installed table speaks words, not ids (issue 29: `decode_bandwidth`, `all_h100e`,
    # `gpu_centric` were shown)
    gap_table = md_text.split("| Scenario | Region | Resource", 1)[1].split("\n\n", 1)[0]
    for raw_id in ("decode_bandwidth", "all_h100e", "prefill_compute", "gpu_centric", "rest_of_world"):
        assert raw_id not in gap_table
    assert "decode memory bandwidth (TB/s)" in gap_table and "Today's shipment mix" in gap_table
    # Nvidia's purchases at full price, its designer share of them and its share of the fleet's content are tied
    # in one sentence (issue 29: three figures stood apart)
    from reports.format import usd
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    flow, stock, year = con.execute(
        "select purchases_usd_median, fleet_content_usd_median, year from marts.supplier_flows where "
        "scenario = 'gpu_centric' and supplier = 'Nvidia' and role = 'designer' order by year desc limit 1").fetchone()
    spend = con.execute("select implied_median from marts.cross_checks where scenario = 'gpu_centric' and "
                        f"year = {year} and check_name = 'nvidia_spend_vs_data_center_revenue'").fetchone()[0]
    con.close()
    note = md_text.split("Three figures for Nvidia in", 1)[1].split("\n", 1)[0]
    assert f"{usd(spend)}/yr is what buyers pay" in note and f"{usd(flow)} of it is Nvidia's own share" in note
    assert f"{usd(stock)} is Nvidia's designer share of the whole fleet" in note
    # honest time: the "now" figure is labelled a forecast; no scientific notation in the assumptions table
    assert "(*forecast*)" in md_text and "e+0" not in html_text.split('id="data"', 1)[1]
    # Markdown without HTML escapes; passed checks collapsed to a count with the full table linked
    for entity in ("&gt;", "&lt;", "&#x27;", "&amp;", "&quot;"):
        assert entity not in md_text
    assert "[checks.csv](checks.csv)" in md_text and (report / "checks.csv").exists()
    assert "<details>" in html_text
    for png in ("demand_global", "tornado", "suppliers", "chips_by_class"):
        assert (report / f"{png}.png").stat().st_size > 10_000
        assert f"]({png}.png)" in md_text
    assert "http://" not in html_text and "https://" not in html_text
    # key numbers are the marts' values
    con = duckdb.connect(str(pipeline["warehouse"]), read_only=True)
    horizon_value = con.execute("select value from marts.forecast where series_id = 'tokens/global' "
                                "order by period_start desc limit 1").fetchone()[0]
    # scenario totals are summed within each Monte Carlo draw, then summarised (marts.fleet_totals)
    h100e, summed = con.execute(
        "select t.h100e_median, (select sum(h100e_median) from marts.hardware_demand as d where d.scenario = "
        "t.scenario and d.period_start = t.period_start) from marts.fleet_totals as t where scenario = "
        "'gpu_centric' and segment = 'all' and period_start = (select max(period_start) from "
        "marts.hardware_demand)").fetchone()
    con.close()
    numbers = json.loads((report / "key_numbers.json").read_text())
    assert numbers["global_horizon"]["value"] == pytest.approx(horizon_value)
    assert numbers["scenarios"]["gpu_centric"]["h100e_median"] == pytest.approx(h100e)
    # the median of the total is not the sum of the per-chip medians (draws are correlated)
    assert h100e != pytest.approx(summed, rel=1e-3)
    assert tokens_per_day(horizon_value) in html_text and tokens_per_day(horizon_value) in md_text
    assert f"{short(h100e)} H100e" in html_text
    # a platform named <script>alert(1)</script> shows as text: entity-escaped in HTML, backslash-escaped
    # (CommonMark, inert) in Markdown
    assert HOSTILE not in html_text and HOSTILE not in md_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "\\<script>alert(1)\\</script>" in md_text


def test_report_in_headless_chromium(pipeline, tmp_path):
    """The report as a reader sees it, at a desktop width and on a 390 px phone: no network, no errors, every
    chart decodes (the phone gets its narrow variants), nothing wider than the screen but the tables, which
    scroll sideways; full-page screenshots of both are kept (CI artifacts)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does) for the browser test")
        pytest.skip("LOUD SKIP: no chromium binary on this machine; install Debian's `chromium` to run it")
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("T2C_ARTIFACTS_DIR", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    report = pipeline["reports"] / AS_OF / "report.html"
    requests, errors, seen = [], [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append(f"dialog opened: {d.message}"))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            seen[name] = {
                "title": page.title(),
                "images": page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.currentSrc.length, "
                                                    "i.naturalWidth, i.getBoundingClientRect().width])"),
                "page_width": page.evaluate("document.documentElement.scrollWidth"),
                "viewport": page.evaluate("window.innerWidth"),
                # a table wider than the screen sits in a container that scrolls sideways
                "unscrollable_tables": page.evaluate(
                    "[...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().width > "
                    "window.innerWidth && getComputedStyle(t.parentElement).overflowX !== 'auto').length"),
                "viewport_meta": page.locator('meta[name="viewport"]').count(),
            }
            page.screenshot(path=str(artifacts / f"report-{name}.png"), full_page=True)
            page.close()
        browser.close()
    external = [u for u in requests if not (u.startswith("file://") or u.startswith("data:"))]
    assert external == [], f"network requests attempted: {external}"
    assert errors == []
    for name, view in seen.items():
        assert view["title"].startswith("tokens2chips")
        assert len(view["images"]) >= 9 and all(w > 0 for _, w, _ in view["images"]), f"{name}: a chart failed"
        assert view["page_width"] <= view["viewport"], f"{name}: the page scrolls sideways"
        assert view["unscrollable_tables"] == 0 and view["viewport_meta"] == 1
        assert all(shown <= view["viewport"] for _, _, shown in view["images"])
        assert (artifacts / f"report-{name}.png").stat().st_size > 50_000
    # the phone is served the narrow charts (about 600 px wide), the desktop the wide ones
    assert max(w for _, w, _ in seen["phone"]["images"]) < 800 < max(w for _, w, _ in seen["desktop"]["images"])


def test_the_report_asset_and_the_report_command_render_from_the_warehouse(pipeline, tmp_path, monkeypatch,
                                                                            capsys):
    from assets.report import analyst_report
    from pipelines.cli import main

    copy = private_copy(pipeline, tmp_path)
    latest = copy["reports"] / "latest"
    for key in ("T2C_WAREHOUSE", "T2C_REPORTS_DIR"):
        monkeypatch.setenv(key, copy["env"][key])
    # the command: another as-of date is not compared, and says so; the header names the data's as-of date
    # past the forecast horizon the command refuses, as `run --as-of` does, and latest/ stays as it is
    before_latest = sorted(p.name for p in latest.iterdir()) if latest.exists() else []
    assert main(["report", "--as-of", "2030-01-01"]) == 2
    assert "after the forecast horizon" in capsys.readouterr().err
    assert not (copy["reports"] / "2030-01-01").exists()
    assert (sorted(p.name for p in latest.iterdir()) if latest.exists() else []) == before_latest
    assert main(["report", "--as-of", "2026-11-02"]) == 0
    assert "report.html" in capsys.readouterr().out
    rebuilt = copy["reports"] / "2026-11-02"
    assert (rebuilt / "report.html").exists()
    md = (rebuilt / "report.md").read_text()
    assert "the as-of date moved to 2026-11-02" in md and f"data as of {AS_OF}" in md
    assert json.loads((latest / "key_numbers.json").read_text())["as_of"] == "2026-11-02"
    # an as-of date before the warehouse's data is refused
    assert main(["report", "--as-of", "2026-06-30"]) == 2
    assert "before the warehouse's data" in capsys.readouterr().err
    assert not (copy["reports"] / "2026-06-30").exists()
    # the asset, through Dagster, at the run's as-of date: compared with the run's report of that date;
    # latest/ keeps the newest as-of date
    with dg.instance_for_test() as instance:
        assert dg.materialize([analyst_report], instance=instance, resources=resources_for(copy, AS_OF)).success
    assert "Compared with the previous report of the same as-of date" in \
        (copy["reports"] / AS_OF / "report.md").read_text()
    assert json.loads((latest / "key_numbers.json").read_text())["as_of"] == "2026-11-02"


def test_export_writes_a_workbook_and_files_from_the_published_copy(pipeline, tmp_path):
    import openpyxl
    import polars as pl

    from reports.export import EXPORT_TABLES

    out = cli("export", "--out", str(tmp_path / "x"), env=pipeline["env"])
    assert "exported" in out.stdout
    book = openpyxl.load_workbook(tmp_path / "x" / "tokens2chips.xlsx")
    assert book.sheetnames == ["cover", *EXPORT_TABLES]
    cover = {r[0]: r[1] for r in book["cover"].iter_rows(values_only=True) if r[0]}
    assert cover["data as of"] == AS_OF and "warehouse.published.duckdb" in cover["source"]
    assert "Epoch AI" in cover["shipments and installed base"]
    published = pipeline["warehouse"].with_name("warehouse.published.duckdb")
    con = duckdb.connect(str(published), read_only=True)
    try:
        counts = {name: con.execute(f"select count(*) from {table}").fetchone()[0]
                  for name, (table, _) in EXPORT_TABLES.items()}
        demand = con.execute("select sum(chips_median) from marts.hardware_demand").fetchone()[0]
    finally:
        con.close()
    for name, rows in counts.items():
        sheet = book[name]
        assert sheet.freeze_panes == "A2" and sheet.max_row == rows + 1, name
    headers = [c.value for c in book["hardware_demand"][1]]
    assert "tokens_per_day [tokens/day]" in headers and "capex_usd_median [USD]" in headers
    assert "power_mw_median [MW]" in headers
    col = headers.index("chips_median [chips]")
    values = [r[col] for r in book["hardware_demand"].iter_rows(min_row=2, values_only=True)]
    assert sum(values) == pytest.approx(demand)
    assert [c.value for c in book["assumptions"][1]][:2] == ["name", "value [see unit column]"]
    # CSV and Parquet: one file per table plus cover and tables
    cli("export", "--format", "csv", "--out", str(tmp_path / "c"), env=pipeline["env"])
    cli("export", "--format", "parquet", "--out", str(tmp_path / "q"), env=pipeline["env"])
    # an output directory that cannot be made: one line, exit 2 (it was a raw FileNotFoundError)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    bad = cli("export", "--out", str(blocked / "x"), check=False, env=pipeline["env"])
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot write the export to")
    for name, rows in counts.items():
        assert pl.read_csv(tmp_path / "c" / f"{name}.csv", infer_schema_length=0).height == rows
        assert pl.read_parquet(tmp_path / "q" / f"{name}.parquet").height == rows
    assert (tmp_path / "c" / "cover.csv").exists() and (tmp_path / "q" / "tables.parquet").exists()
    bad = cli("export", "--format", "docx", env=pipeline["env"], check=False)
    assert bad.returncode == 2


def test_backtest_replays_vintages_and_publishes(pipeline, tmp_path):
    pipeline = private_copy(pipeline, tmp_path)
    out = cli("backtest", "--from", "2025-06-01", "--to", "2026-03-31", "--step", "quarter", env=pipeline["env"])
    assert "(all series)" in out.stdout and "bias" in out.stdout
    con = duckdb.connect(str(pipeline["warehouse"].with_name("warehouse.published.duckdb")), read_only=True)
    try:
        vintages = [v for (v,) in con.execute(
            "select distinct vintage from marts.forecast_vintage_points order by 1").fetchall()]
        pooled = con.execute("select n_forecasts, coverage80 from marts.forecast_vintage_errors "
                             "where series_id = '(all series)'").fetchone()
        leaked = con.execute("select count(*) from marts.forecast_vintage_points where known_on <= vintage "
                             "or period_start <= vintage - interval 400 day").fetchone()[0]
    finally:
        con.close()
    assert vintages and min(vintages) >= dt.date(2025, 6, 1) and max(vintages) <= dt.date(2026, 3, 31)
    assert pooled[0] > 0 and 0 <= pooled[1] <= 1
    assert leaked == 0  # only disclosures published after each vintage are scored
    bad = cli("backtest", "--step", "fortnight", check=False, env=pipeline["env"])
    assert bad.returncode == 2 and "--step" in bad.stderr
    # a range with nothing to score is an error that changes nothing (it used to publish empty marts)
    published = pipeline["warehouse"].with_name("warehouse.published.duckdb")

    def points():
        con = duckdb.connect(str(published), read_only=True)
        try:
            return con.execute("select count(*) from marts.forecast_vintage_points").fetchone()[0]
        finally:
            con.close()

    before = points()
    empty = cli("backtest", "--from", "2026-10-01", "--to", "2026-10-31", check=False, env=pipeline["env"])
    assert empty.returncode != 0 and "nothing was changed" in empty.stderr + empty.stdout
    assert points() == before > 0




def test_a_whatif_loop_answers_each_line_against_the_file_and_leaves_the_record_alone(pipeline, tmp_path):
    """`whatif --loop`: one warm process answers a what-if per input line, each against the assumptions file
    (not the line before), a bad line is one error and the loop goes on; the what-if's warehouse names the
    change and its fleet moves; the warehouse of record is untouched."""
    published = pipeline["warehouse"].with_name("warehouse.published.duckdb")
    before = marts_of(published)["hardware_demand"]
    work = tmp_path / "whatif"
    lines = "fleet.utilisation=0.7\nfleet.utilisaton=0.7\nfleet.redundancy=0.15\n"
    proc = subprocess.run([sys.executable, "-m", "pipelines", "whatif", "--loop", "--out", str(work)], cwd=ROOT,
                          env={**os.environ, **pipeline["env"]}, input=lines, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("report:") == 2
    assert "what-if: fleet.utilisation 0.85 -> 0.7" in proc.stdout and "fleet.redundancy" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fleet.utilisaton" in errors[0] and "closest: fleet.utilisation" in errors[0]
    assert errors[0].startswith("error: fleet.utilisaton")  # the line as typed, not an option the loop has not
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        changed = con.execute("select name, whatif_value from meta.whatif").fetchall()
        used = dict(con.execute("select name, value from meta.assumptions where name in "
                                "('fleet.utilisation', 'fleet.redundancy')").fetchall())
    finally:
        con.close()
    assert changed == [("fleet.redundancy", pytest.approx(0.15))]  # the last line alone: the file is the base
    assert used == {"fleet.utilisation": pytest.approx(0.85), "fleet.redundancy": pytest.approx(0.15)}
    assert marts_of(work / "warehouse.duckdb")["hardware_demand"] != before
    assert "fleet.redundancy" in (work / "reports" / AS_OF / "report.md").read_text()
    assert marts_of(published)["hardware_demand"] == before


def test_the_readme_commands_and_figures_keep_in_step_with_the_code(pipeline):
    """README drift (issue 29): every `tokens2chips` command in its code blocks parses with the real CLI; every
    query runs on a real warehouse and gives plain column names (no '(lo80 / 1000000000000.0)'); every mart it
    names exists; its quoted run line has the run's number of checks."""
    import re
    import shlex

    from pipelines.cli import build_parser
    from pipelines.usage import join_negative_numbers

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = []
    for block in blocks:
        lines = []
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line[:1].isspace() and lines:  # an indented line continues the command above it
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        for line in lines:
            match = re.match(r"^(?:[A-Z_0-9]+=\S+\s+)*tokens2chips\s+(.*)$", line)
            if match:
                words = shlex.split(match.group(1), comments=True)
                commands.append(words[:-1] if words[-1:] == ["&"] else words)  # `&`: the shell's, not ours
    assert len(commands) > 15
    parser = build_parser()
    queries = []
    for command in commands:
        args = parser.parse_args(join_negative_numbers(command))
        if args.command == "query":
            queries.append(args.sql)
    assert len(queries) >= 9
    published = pipeline["warehouse"].with_name("warehouse.published.duckdb")
    con = duckdb.connect(str(published), read_only=True)
    try:
        for sql in queries:
            columns = [d[0] for d in con.execute(sql).description]
            assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", c) for c in columns), (sql, columns)
        tables = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
        n_checks = con.execute("select count(*) from meta.check_results where run_id = (select run_id from "
                               "meta.runs order by started_at desc limit 1)").fetchone()[0]
    finally:
        con.close()
    named = set(re.findall(r"`(marts\.[a-z_]+)`", readme))
    assert named and named <= tables, sorted(named - tables)
    passed, failed, warned = map(int, re.search(r"\(checks: (\d+) passed, (\d+) failed, (\d+) warned\)",
                                                readme).groups())
    assert failed == 0 and passed + warned == n_checks
