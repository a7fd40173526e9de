"""Report building blocks (issue 17): number and date formatting, Markdown escaping, gaps in lines, and
which earlier report a new one is compared with."""

from __future__ import annotations

import datetime as dt
import json
import math

from reports.charts import with_gaps
from reports.format import month_label, plain, quarter_label
from reports.prose import check_name, md_escape as _md_escape
from reports.render import _previous_report, _report_as_of


def test_plain_numbers_have_no_scientific_notation_and_years_stay_years():
    assert plain(2028, "calendar year") == "2028"
    assert plain(1979, "TOPS") == "1,979"
    assert plain(0.85, "fraction") == "0.850"
    assert plain(4000, "Monte Carlo draws") == "4,000"
    assert plain(2.5e6, "GB") == "2.50 M"
    assert "e" not in plain(0.000012, "x") and plain(0.000012, "x").startswith("0.0000")
    assert plain(None) == "n/a" and plain(math.nan) == "n/a"


def test_period_labels():
    assert month_label(dt.date(2028, 12, 1)) == "Dec 2028"
    assert quarter_label(dt.date(2028, 10, 1)) == "2028 Q4" and quarter_label(dt.date(2026, 3, 31)) == "2026 Q1"


def test_markdown_escape_is_inert_without_html_entities():
    text = _md_escape("<script>alert('x') -> a|b & &amp; c\\d")
    assert "\\<script>" in text and "<script>" not in text.replace("\\<", "")
    assert "&#x27;" not in text and "&gt;" not in text and "->" in text and "'" in text
    assert "\\|" in text and "\\&amp;" in text and "\\\\d" in text


def test_lines_break_across_missing_weeks_only():
    days = [dt.date(2025, 1, 6), dt.date(2025, 1, 13), dt.date(2025, 2, 17), dt.date(2025, 2, 24)]
    x, y = with_gaps(days, [1.0, 2.0, 3.0, 4.0], max_days=10)
    assert len(x) == 5 and math.isnan(y[2]) and y[:2] == [1.0, 2.0] and y[3:] == [3.0, 4.0]
    x, y = with_gaps(days[:2], [1.0, 2.0], max_days=10)
    assert y == [1.0, 2.0]


def test_check_names_read_as_words():
    assert check_name("hbm_share_vs_published/Micron") == "Micron's HBM share vs published"
    assert "2.5D" in check_name("domestic_2_5d_spend_vs_packaging_revenue")


def _report(root, as_of: str, generated: str = "2026-01-01T00:00:00+00:00"):
    d = root / as_of
    d.mkdir(parents=True)
    (d / "key_numbers.json").write_text(json.dumps({"as_of": as_of, "generated_at": generated}))


def test_a_report_is_compared_only_with_one_of_the_same_as_of_date(tmp_path):
    previous, text = _previous_report(tmp_path, dt.date(2026, 11, 30))
    assert previous is None and "No earlier report" in text
    _report(tmp_path, "2026-06-30")
    previous, text = _previous_report(tmp_path, dt.date(2026, 11, 30))
    assert previous is None and "as of 2026-06-30" in text and "moved to 2026-11-30" in text
    _report(tmp_path, "2026-11-30", "2026-11-30T05:00:00+00:00")
    previous, text = _previous_report(tmp_path, dt.date(2026, 11, 30))
    assert previous["as_of"] == "2026-11-30" and text.startswith("Compared with the previous report")
    assert _report_as_of(tmp_path / "2026-06-30") == dt.date(2026, 6, 30)
    assert _report_as_of(tmp_path / "missing") is None


def test_the_report_names_its_headline_scenario_in_the_config(tmp_path):
    import pytest
    import yaml

    from configuration.assumptions import AssumptionsError, load_assumptions
    from tests.conftest import ASSUMPTIONS

    data = yaml.safe_load(ASSUMPTIONS.read_text())
    assert data["report"]["headline_scenario"] in data["scenarios"]
    data["report"]["headline_scenario"] = "renamed_scenario"
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AssumptionsError, match="headline_scenario 'renamed_scenario' is not a scenario"):
        load_assumptions(path)


def test_percentages_never_print_minus_zero():
    from reports.format import pct

    assert pct(-0.001) == "0%" and pct(-0.02) == "-2%" and pct(0.0049) == "0%" and pct(-0.0004, 1) == "0.0%"


def test_workbook_formats_each_column_by_its_unit(tmp_path):
    """Every decimal was '#,##0.000000', years '2,027', no autofilter, a 255-wide text column: now a format per
    unit, years plain, an autofilter, long text wrapped at 60 characters."""
    import openpyxl
    import polars as pl

    from reports.export import export

    frame = pl.DataFrame({"year": [2027, 2028], "scenario": ["a", "b"], "share_of_role": [0.123, 0.5],
                          "capex_usd_median": [1.5e11, 2.5e11], "power_mw_median": [1234.56, 10.0],
                          "chips_median": [1.2e6, 3.0e6], "ratio": [1.234, 0.5], "bias": [0.01234, -0.2],
                          "note": ["x" * 300, "short"]})
    path = export({"supplier_flows": ("marts.supplier_flows", frame)}, {"source": "s", "as_of": "2026-12-03",
                  "exported_at": "t"}, tmp_path, "xlsx")[0]
    sheet = openpyxl.load_workbook(path)["supplier_flows"]
    headers = [c.value for c in sheet[1]]
    fmt = {h: sheet.cell(row=2, column=i + 1).number_format for i, h in enumerate(headers)}
    assert fmt["year"] == "0"
    assert fmt["share_of_role [fraction]"] == "0.0%"
    assert fmt["capex_usd_median [USD]"] == "$#,##0"
    assert fmt["power_mw_median [MW]"] == "#,##0.0"
    assert fmt["chips_median [chips]"] == "#,##0"
    assert fmt["ratio [ratio]"] == "0.00" and fmt["bias [log ratio]"] == "0.000"
    (table,) = sheet.tables.values()  # the sheet is an Excel table with a filter on every header
    assert table.ref == "A1:I3" and table.autoFilter is not None
    note = headers.index("note")
    assert sheet.column_dimensions[openpyxl.utils.get_column_letter(note + 1)].width <= 61
    assert sheet.cell(row=2, column=note + 1).alignment.wrap_text


def test_labels_turn_ids_into_words():
    """Chart titles, legends and tables showed `tokens/china_national/all`, `gpu_centric`, `domestic_asic`,
    `workload.cache_hit_retention_without_ssd` (issue 29): one place now says them in words."""
    import polars as pl

    from reports.labels import Labels

    labels = Labels.from_frames({"scenario_defs": pl.DataFrame({"scenario": ["gpu_centric"],
                                                               "label": ["Today's shipment mix"]})})
    assert labels.scenario("gpu_centric") == "Today's shipment mix"
    assert labels.scenario("new_scenario") == "new scenario"
    assert labels.series("tokens/china_national/all") == "China, national total"
    assert labels.series("tokens/openrouter/cn") == "OpenRouter: China-origin models"
    assert labels.series("tokens/some_new_platform/all") == "some new platform"
    assert labels.chip_class("domestic_asic") == "Chinese domestic ASIC"
    assert labels.resource("decode_bandwidth") == "decode memory bandwidth (TB/s)"
    assert labels.assumption("workload.cache_hit_retention_without_ssd") == \
        "Cache hit retention without ssd (workload)"
    assert labels.assumption("demand (forecast 80% interval)") == "demand (forecast 80% interval)"


def test_a_value_axis_inside_one_decade_shows_several_ticks():
    """The tornado's log axis over 6 M..30 M chips showed one tick (10 M) (issue 29)."""
    import matplotlib.pyplot as plt

    from reports.charts import value_axis

    fig, ax = plt.subplots()
    ax.barh([0, 1], [6e6, 30e6])
    value_axis(ax.xaxis, 6e6, 30e6)
    ax.set_xlim(6e6, 30e6)
    fig.canvas.draw()
    shown = [t for t in ax.get_xticks() if 6e6 <= t <= 30e6]
    assert ax.xaxis.get_scale() == "linear" and len(shown) >= 3
    fig2, ax2 = plt.subplots()
    value_axis(ax2.xaxis, 1e3, 1e7)
    assert ax2.xaxis.get_scale() == "log"
    plt.close(fig)
    plt.close(fig2)


def test_a_stacked_phone_figure_keeps_its_title_off_the_first_panel():
    """At 390 px the figure title overlapped the first panel and its legend (issue 29): the phone layout now
    keeps a band for the title measured in inches. The figure is built as the platform fan chart is: a grid of
    panels under one title, restacked into one column for the phone."""
    import matplotlib.pyplot as plt

    from reports.charts import fit, narrow_layout

    fig, axes = plt.subplots(4, 3, figsize=(12, 9))
    for ax in axes.flat:
        ax.plot([1, 2, 3], [1, 4, 9], label="median")
        ax.set_title("China, national total")
        ax.legend(loc="upper left")
    fig.suptitle("Token demand by platform: disclosures and forecast")
    fit(fig)
    narrow_layout(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    top_panel = max(ax.get_tightbbox(renderer).y1 for ax in fig.axes)
    assert title.y0 >= top_panel - 1 and title.y1 <= fig.bbox.y1 + 1
    plt.close(fig)


def test_a_phone_figure_with_long_tick_labels_keeps_its_title_and_axis_label_inside():
    """At 390 px the supplier chart's title and axis label were clipped (issue 29)."""
    import matplotlib.pyplot as plt

    from reports.charts import fit, narrow_layout

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.barh([f"domestic OSAT (2.5D) (advanced_packaging) {i}" for i in range(12)], range(1, 13))
    ax.set_xlabel("USD content of the required fleet (median, p5-p95 whiskers, log)")
    ax.set_title("Supplier exposure by supplier and role")
    fit(fig)
    narrow_layout(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for text in (ax.title, ax.xaxis.label):
        box = text.get_window_extent(renderer)
        assert box.x0 >= fig.bbox.x0 - 1 and box.x1 <= fig.bbox.x1 + 1, text.get_text()
    plt.close(fig)


def test_stacked_phone_panels_that_shared_a_y_axis_each_label_it_and_a_long_title_stays_inside():
    """Side by side, panels with sharey label only the first y-axis; stacked for the phone, the other panels
    showed an unlabelled scale. The phone title is wrapped by hand (no draw to measure it) and must fit."""
    import matplotlib.pyplot as plt

    from reports.charts import fit, narrow_layout

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), squeeze=False, sharey=True)
    for ax in axes.flat:
        ax.bar([0, 1, 2], [1e6, 2e6, 3e6])
    fig.suptitle("Required vs installed, per resource the phase consumes (today's shipment mix, all regions)")
    fit(fig)
    narrow_layout(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert any(t.get_visible() and t.get_text() for t in ax.get_yticklabels()), "a stacked panel lost its scale"
    title = fig._suptitle.get_window_extent(renderer)
    assert title.x0 >= fig.bbox.x0 - 1 and title.x1 <= fig.bbox.x1 + 1 and title.y1 <= fig.bbox.y1 + 1
    plt.close(fig)


def test_a_chart_whose_inputs_are_unchanged_is_read_back_not_drawn(tmp_path):
    """The chart cache (issue 29's what-if: the demand charts do not move with a hardware assumption): the
    same inputs give the same PNGs without drawing; changed inputs draw again; unused entries are pruned."""
    import polars as pl

    from reports import charts
    from reports.chart_cache import ChartCache

    drawn = []

    def tornado(*args):
        drawn.append(args)
        return charts.tornado(*args)

    frame = pl.DataFrame({"scenario": ["s"] * 2, "assumption": ["a", "b"], "unit": ["x", "x"],
                          "low_value": [1.0, 2.0], "value": [1.5, 2.5], "high_value": [2.0, 3.0],
                          "chips_at_low": [9e6, 8e6], "chips_at_value": [1e7, 1e7], "chips_at_high": [1.2e7, 1.3e7],
                          "swing_chips": [3e6, 5e6]})
    first = ChartCache(tmp_path / "cache").chart("tornado", tornado, frame, "s", 12)
    again = ChartCache(tmp_path / "cache").chart("tornado", tornado, frame, "s", 12)
    assert len(drawn) == 1 and bytes(again) == bytes(first) and again.narrow == first.narrow
    changed = frame.with_columns(pl.col("chips_at_high") * 2)
    cache = ChartCache(tmp_path / "cache")
    cache.chart("tornado", tornado, changed, "s", 12)
    assert len(drawn) == 2
    cache.prune()
    # the changed chart's desktop and phone PNGs only, beside the charts' drawing times
    assert len(list((tmp_path / "cache").glob("*.png"))) == 2
    assert set(json.loads((tmp_path / "cache" / "draw-seconds.json").read_text())) == {"tornado"}


def test_the_charts_that_took_longest_last_time_are_drawn_first(tmp_path, monkeypatch):
    """With two drawing workers the report waits for the last chart to finish: the cache hands the workers the
    charts that took longest at their last draw first (new charts before them all), so a short one ends last."""
    from reports import chart_cache
    from reports.chart_cache import ChartCache

    submitted = []

    def record(jobs):
        submitted.extend(jobs)
        return lambda: {n: chart_cache._png(b"d", b"n", {"slow": 3.0, "quick": 0.5}.get(n, 1.0)) for n in jobs}

    monkeypatch.setattr(chart_cache, "_draw_all", record)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "draw-seconds.json").write_text(json.dumps({"quick": 0.2, "slow": 2.0, "mid": 1.0}))
    jobs = {name: (lambda n=name: None, name) for name in ("quick", "mid", "new", "slow")}
    ChartCache(tmp_path / "cache").charts(jobs)
    assert submitted == ["new", "slow", "mid", "quick"]
    # the times of this draw replace the last ones: the next report orders by them
    assert json.loads((tmp_path / "cache" / "draw-seconds.json").read_text()) == {
        "quick": 0.5, "slow": 3.0, "mid": 1.0, "new": 1.0}


def test_charts_drawn_in_worker_processes_equal_those_drawn_in_process(tmp_path, monkeypatch):
    """Several charts to draw go to spawned worker processes (T2C_CHART_WORKERS); their PNGs must be the ones
    drawing in process gives, and they are kept in the cache like any other."""
    import polars as pl

    from reports import charts
    from reports.chart_cache import ChartCache

    frame = pl.DataFrame({"scenario": ["s"] * 2, "assumption": ["a", "b"], "unit": ["x", "x"],
                          "low_value": [1.0, 2.0], "value": [1.5, 2.5], "high_value": [2.0, 3.0],
                          "chips_at_low": [9e6, 8e6], "chips_at_value": [1e7, 1e7], "chips_at_high": [1.2e7, 1.3e7],
                          "swing_chips": [3e6, 5e6]})
    jobs = {"one": (charts.tornado, frame, "s", 12), "two": (charts.tornado, frame, "s", 5)}
    monkeypatch.setenv("T2C_CHART_WORKERS", "2")
    parallel = ChartCache(tmp_path / "a").charts(jobs)
    monkeypatch.setenv("T2C_CHART_WORKERS", "1")
    serial = ChartCache(None).charts(jobs)
    assert list(parallel) == ["one", "two"]
    for name in jobs:
        assert bytes(parallel[name]) == bytes(serial[name]) and parallel[name].narrow == serial[name].narrow
    assert len(list((tmp_path / "a").glob("*.png"))) == 4


def test_metrics_on_small_frames_headline_scenario_and_what_moved():
    """reports.metrics (split from render.py, issue 29) on hand-made frames: the headline scenario is the one
    meta.scenarios flags, else the first; `changes` lists the numbers that moved by more than the threshold."""
    import polars as pl

    from reports.metrics import changes, headline_scenario

    hardware = pl.DataFrame({"scenario": ["b", "a"]})
    assert headline_scenario({"hardware": hardware}) == "a"
    flagged = pl.DataFrame({"scenario": ["a", "b"], "headline": [False, True]})
    assert headline_scenario({"hardware": hardware, "scenario_defs": flagged}) == "b"

    def numbers(h100e: float, share: float) -> dict:
        return {"global_now": {"value": 1e12}, "global_horizon": {"value": 4e12},
                "scenarios": {"a": {"h100e_median": h100e, "capex_usd_median": 1e11}},
                "openrouter_share": {"china": share}}

    moved = changes(numbers(2.2e7, 0.30), numbers(2.0e7, 0.30), 0.05)
    assert [m["name"] for m in moved] == ["a: H100e at horizon"] and abs(moved[0]["change"] - 0.1) < 1e-12
    assert changes(numbers(2.05e7, 0.30), numbers(2.0e7, 0.30), 0.05) == []
    assert changes(numbers(2.2e7, 0.30), None, 0.05) == []


def test_prose_on_small_frames_ties_the_three_nvidia_figures():
    """reports.prose: the sentence tying Nvidia's full-price purchases, its designer share of them and its share
    of the fleet's content, from one row of each mart; nothing to say without them."""
    import polars as pl

    from reports.prose import spend_note

    frames = {"flows": pl.DataFrame({"scenario": ["s"], "year": [2028], "supplier": ["Nvidia"], "role": ["designer"],
                                     "purchases_usd_median": [1.93e11], "fleet_content_usd_median": [3.24e11]}),
              "cross_checks": pl.DataFrame({"scenario": ["s"], "year": [2028],
                                            "check_name": ["nvidia_spend_vs_data_center_revenue"],
                                            "implied_median": [2.75e11]})}
    note = spend_note(frames, "s", 2028)
    assert note.startswith("Three figures for Nvidia in 2028")
    assert note.index("275") < note.index("193") < note.index("324")
    assert spend_note(frames, "other", 2028) == "" and spend_note(frames, "s", None) == ""


def test_scenarios_whose_rows_coincide_are_said_to_and_why():
    """Two scenarios with the same figures in every column of the scenario table get one sentence naming them
    (a reader would take the repeat for a slip); rows that differ anywhere get none."""
    from reports.prose import coinciding_scenarios

    cells = ("chips", "capex")
    rows = [{"label": "A", "chips": "40 M", "capex": "$844 B"}, {"label": "B", "chips": "26 M", "capex": "$597 B"},
            {"label": "C", "chips": "40 M", "capex": "$844 B"}]
    said = coinciding_scenarios(rows, cells)
    assert said.startswith("A and C show the same figures") and "B" not in said and "installed base" in said
    rows[2]["capex"] = "$845 B"
    assert coinciding_scenarios(rows, cells) == ""


def test_the_pipeline_process_does_not_load_matplotlib_the_chart_workers_do():
    """The report's charts are named, not imported, by the process that runs the pipeline (issue 29's what-if:
    loading matplotlib there cost ~0.5 s of every what-if); the drawing workers resolve the names."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, pipelines.definitions, reports.render, reports.view, reports.chart_cache as c; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib loaded'; "
            "assert c.resolve('tornado').__module__ == 'reports.charts'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
