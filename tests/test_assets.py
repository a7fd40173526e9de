"""Assets through Dagster (dg.materialize) on a tiny warehouse of their own, without the CLI."""

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.ingest import assumptions_table, forecast_hierarchy, report_config_tables
from assets.resources import ProjectSettings
from configuration.assumptions import load_configuration
from tests.conftest import ASSUMPTIONS, ROOT


def _settings(tmp_path, assumptions):
    return ProjectSettings(data_dir=str(ROOT / "data"), assumptions_path=str(assumptions),
                           reports_dir=str(tmp_path / "reports"), call_logs_config=str(ROOT / "config" / "call_logs.yaml"))


def test_configuration_assets_write_the_validated_configuration(tmp_path):
    """meta.assumptions, meta.scenarios, meta.report_series and the demand hierarchy come from one validated
    configuration; a scenario added to the YAML reaches meta.scenarios with its label."""
    text = ASSUMPTIONS.read_text()
    start = text.index("\nscenarios:\n") + len("\nscenarios:\n")
    extra = ("  test_only:\n    label: Test only\n    summary: one H100 segment\n    segments:\n"
             "      rest_of_world:\n        decode:\n          H100: 1.0\n")
    yaml_path = tmp_path / "assumptions.yaml"
    yaml_path.write_text(text[:start] + extra + text[start:])
    warehouse = tmp_path / "w.duckdb"
    with dg.instance_for_test() as instance:
        result = dg.materialize([assumptions_table, forecast_hierarchy, report_config_tables], instance=instance,
                                resources={"warehouse": DuckDBResource(database=str(warehouse)),
                                           "settings": _settings(tmp_path, yaml_path)})
    assert result.success
    config = load_configuration(yaml_path)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("select name, value, low, high from meta.assumptions order by name").fetchall()
        scenarios = dict(con.execute("select scenario, label from meta.scenarios").fetchall())
        roles = dict(con.execute("select role, series_id from meta.report_series").fetchall())
        hierarchy = con.execute("select count(*) from meta.forecast_hierarchy").fetchone()[0]
    finally:
        con.close()
    expected = config.rows().sort("name")
    assert [r[0] for r in rows] == expected["name"].to_list()
    assert [r[1] for r in rows] == pytest.approx(expected["value"].to_list())
    assert scenarios["test_only"] == "Test only" and set(scenarios) == set(config.data["scenarios"])
    assert roles["global"] == config.model.forecast.global_demand.series_id
    assert hierarchy == sum(len(e.parts) for e in config.model.forecast.hierarchy)


def test_a_broken_configuration_fails_the_asset_with_the_key_and_keeps_the_table(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    resources = {"warehouse": DuckDBResource(database=str(warehouse)), "settings": _settings(tmp_path, ASSUMPTIONS)}
    with dg.instance_for_test() as instance:
        assert dg.materialize([assumptions_table], instance=instance, resources=resources).success
        broken = tmp_path / "broken.yaml"
        broken.write_text(ASSUMPTIONS.read_text().replace("  pue:\n", "  peu:\n", 1))
        resources["settings"] = _settings(tmp_path, broken)
        result = dg.materialize([assumptions_table], instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "'fleet.peu' is not a known key; did you mean 'pue'" in failure.event_specific_data.error.message
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from meta.assumptions where name = 'fleet.pue.value' "
                           "or name = 'fleet.pue'").fetchone()[0] == 1
    finally:
        con.close()


def test_a_failed_contract_check_blocks_what_is_downstream_and_a_finding_only_warns(tmp_path):
    """A table's contract is checked in the step that writes it: a broken key fails that step (blocking: the
    asset downstream is not built), a finding (warn_if_rows) is a WARN that blocks nothing, and each check
    keeps its own name."""
    from dagster_duckdb import DuckDBResource as Resource

    from assets.checks import contract_results, contract_specs

    contract = {"key": ["k"], "non_negative": ["x"],
                "warn_if_rows": {"large": {"description": "x above 5", "where": "x > 5", "show": "k"}}}

    @dg.asset(key=["marts", "t"], check_specs=contract_specs("marts.t", contract=contract))
    def t(warehouse: Resource):
        with warehouse.get_connection() as con:
            con.execute("create schema if not exists marts")
            con.execute("create or replace table marts.t as select * from (values (1, 2.0), (1, 3.0), (2, 9.0)) "
                        "v(k, x)")
            return dg.MaterializeResult(check_results=contract_results(con, "marts.t", contract=contract))

    @dg.asset(key=["marts", "after"], deps=[t])
    def after():
        return None

    with dg.instance_for_test() as instance:
        result = dg.materialize([t, after], instance=instance, raise_on_error=False,
                                resources={"warehouse": Resource(database=str(tmp_path / "w.duckdb"))})
    found = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(found) == {"key_not_null_unique", "non_negative", "large"}
    assert not found["key_not_null_unique"].passed
    assert found["key_not_null_unique"].metadata["violating_rows"].value == 1
    assert found["non_negative"].passed
    assert not found["large"].passed and found["large"].severity == dg.AssetCheckSeverity.WARN
    assert "- 2" in found["large"].metadata["first_rows"].value
    built = {e.event_specific_data.materialization.asset_key.to_user_string()
             for e in result.get_asset_materialization_events()}
    assert built == {"marts/t"}  # marts/after waited for the blocking check and was not built
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "marts/t: key_not_null_unique" in failure.event_specific_data.error.message


def test_forecast_assets_on_a_tiny_history(tmp_path):
    """forecast_marts and forecast_vintage through Dagster on a warehouse holding only a small
    model_inputs.forecast_history: every series is forecast to the horizon, the selection has one row per
    series, the contract checks pass, and what this history lacks is flagged, not hidden."""
    import datetime as dt

    import polars as pl

    from assets.forecast import forecast_marts, forecast_vintage
    from forecasts.pipeline import horizon_end
    from warehouse.io import replace_table_from_frame

    config = load_configuration(ASSUMPTIONS)
    months = [dt.date(2024, m, 1) for m in (5, 8, 11)] + [dt.date(2025, m, 1) for m in (2, 5, 8)]
    quarters = [dt.date(2022 + i // 4, 1 + 3 * (i % 4), 1) for i in range(12)]
    rows = ([("tokens/google/all", "M", d, 1e13 * 1.5 ** i, "tokens_per_day", d + dt.timedelta(days=20))
             for i, d in enumerate(months)]
            + [("tokens/doubao/all", "M", d, 4e12 * 1.4 ** i, "tokens_per_day", d + dt.timedelta(days=20))
               for i, d in enumerate(months)]
            + [("revenue/Acme/total", "Q", d, 1e9 * 1.08 ** i, "usd_per_quarter", d + dt.timedelta(days=120))
               for i, d in enumerate(quarters)])
    history = pl.DataFrame(rows, schema=["series_id", "freq", "period_start", "value", "unit", "known_on"],
                           orient="row")
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema model_inputs")
    replace_table_from_frame(con, "model_inputs.forecast_history", history)
    con.close()
    settings = _settings(tmp_path, ASSUMPTIONS).model_copy(update={"as_of": "2025-12-31"})
    with dg.instance_for_test() as instance:
        result = dg.materialize([forecast_marts, forecast_vintage], instance=instance,
                                resources={"warehouse": DuckDBResource(database=str(warehouse)), "settings": settings})
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        last = dict(con.execute("select series_id, max(period_start) from marts.forecast where is_forecast "
                                "group by 1").fetchall())
        selected = dict(con.execute("select series_id, count(*) from marts.forecast_selection group by 1").fetchall())
        flags = dict(con.execute("select series_id, flag from marts.forecast_flags").fetchall())
        vintages = con.execute("select count(*) from marts.forecast_vintage_points").fetchone()[0]
    finally:
        con.close()
    end = horizon_end(config.model)
    for sid in ("tokens/google/all", "tokens/doubao/all", "revenue/Acme/total"):
        assert sid in last and end - dt.timedelta(days=92) < last[sid] <= end, sid
    assert set(selected) >= set(last) and set(selected.values()) == {1}
    global_id = config.model.forecast.global_demand.series_id
    assert flags[global_id] == "partial_composite"  # two of its components only
    assert "segment_demand_fallback" in flags.values()
    assert vintages > 0  # the later disclosures score the earlier vintages
