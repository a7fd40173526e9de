"""The code location without a pipeline run: Definitions load (job, schedule, sensors), the data-directory
sensor, and `run` refusing a bad as-of date before any run starts."""

import dagster as dg
import pytest

from tests.conftest import cli


def test_definitions_load_with_job_schedule_sensor(dagster_env):
    from pipelines.definitions import defs

    repo = defs.get_repository_def()
    assert repo.has_job("refresh_all")
    schedule = repo.get_schedule_def("weekly_refresh")
    assert schedule.cron_schedule == "0 6 * * 1" and schedule.execution_timezone == "UTC"
    assert repo.has_sensor_def("data_dir_sensor")
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"raw/token_volume_observations", "marts/chip_shipments", "marts/installed_base",
            "marts/token_observations", "marts/vendor_revenue", "marts/packaging_revenue"} <= keys
    # what `dagster definitions validate -m pipelines.definitions` checks (a fresh process importing the
    # module is every CLI test's run)
    dg.Definitions.validate_loadable(defs)


def test_the_hardware_tables_show_the_inputs_each_is_computed_from(dagster_env):
    """Issue 29: the fifteen hardware marts each declared every input of the model, so the graph could not
    say which table feeds which. Each now names its own: the margins read API prices and no forecast; the
    supplier flows read the revenue forecasts and no API prices; every table reads the assumptions."""
    from pipelines.definitions import defs

    graph = defs.get_repository_def().asset_graph

    def parents(table: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(table.split("/"))).parent_keys}

    margin, flows, base = parents("marts/token_margin"), parents("marts/supplier_flows"), parents(
        "marts/installed_base_by_chip")
    assert "raw/api_prices" in margin and "marts/forecast" not in margin
    assert "marts/forecast" in flows and "raw/api_prices" not in flows
    assert "raw/supply_chain" not in base and "marts/chip_shipments" in base
    assert all("meta/assumptions" in parents(f"marts/{t}") for t in ("token_margin", "supplier_flows", "sensitivity"))


def test_data_dir_sensor_requests_run_on_change(dagster_env, data_dir):
    from pipelines.definitions import data_dir_sensor

    with dg.instance_for_test() as instance:
        first = data_dir_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not first.run_requests and first.cursor
        unchanged = data_dir_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert not unchanged.run_requests
        (data_dir / "fx_rates_annual.csv").write_text(
            (data_dir / "fx_rates_annual.csv").read_text() + "2027,CNY,0.14,annual_average_fx,low\n")
        changed = data_dir_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(changed.run_requests) == 1


@pytest.mark.parametrize("bad,message", [("2026-13-01", "not a date"), ("2020-01-01", "no row of"),
                                         ("2031-01-01", "after the forecast horizon")])
def test_run_rejects_bad_as_of(dagster_env, bad, message):
    # not a date, a date before the data (nothing would be known then) or after the forecast horizon (no
    # forecast for "now"): refused before any run starts
    proc = cli("run", "--as-of", bad, check=False)
    assert proc.returncode == 2 and message in proc.stderr


def test_every_contract_is_checked_by_the_asset_that_writes_its_table(dagster_env):
    from warehouse.contracts import contract_violations, contracts
    from pipelines.definitions import defs
    from warehouse.sources import SOURCES

    graph = defs.get_repository_def().asset_graph
    declared = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    expected = {(table.replace(".", "/"), name) for table, contract in contracts().items()
                for name in [*contract_violations(table, contract), *contract.get("warn_if_rows", {})]}
    assert expected and expected <= declared, sorted(expected - declared)
    assert ("marts/forecast_selection", "every_series_selected") in declared
    fresh = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "fresh"}
    assert fresh == {f"raw/{source.stem}" for source in SOURCES if source.observed}


def test_feeds_are_observable_sources_fetched_weekly_and_a_new_snapshot_wakes_the_sensor(dagster_env, data_dir,
                                                                                          tmp_path):
    from feeds.refresh import refresh
    from pipelines.definitions import data_dir_sensor, defs

    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def("weekly_fetch")
    assert schedule.job_name == "fetch_feeds" and schedule.cron_schedule == "0 5 * * 1"
    fetch = defs.resolve_job_def("fetch_feeds")
    assert {k.to_user_string() for k in fetch.asset_layer.executable_asset_keys} == {
        "feeds/openrouter", "feeds/epoch", "feeds/mlperf", "feeds/inferencex"}
    graph = repo.asset_graph
    assert dg.AssetKey(["feeds", "epoch"]) in graph.get(dg.AssetKey(["raw", "feed_epoch"])).parent_keys

    from feeds import store

    with dg.instance_for_test() as instance:
        # the job as the schedule runs it, with fetching off (no network in tests): each feed's data version
        # is its newest saved payload's sha256
        from pipelines.settings import Paths, settings_config

        result = fetch.execute_in_process(instance=instance, run_config={
            "resources": {"settings": {"config": {**settings_config(Paths.from_env()), "fetch_feeds": False}}}})
        assert result.success
        epoch = dg.AssetKey(["feeds", "epoch"])
        def version(key):
            return instance.get_latest_data_version_record(key).asset_observation.tags["dagster/data_version"]

        assert version(epoch) == store.snapshots(data_dir / "snapshots", "epoch")[-1].sha256
        assert version(dg.AssetKey(["feeds", "openrouter"])) == "no-snapshot"

        first = data_dir_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        payload = tmp_path / "quarterly_by_chip.csv"
        payload.write_text("designer,chip_type,start_date,end_date,units_med,notes\n"
                           "Nvidia,B300,2026-07-01,2026-09-30,500000,Generated on 2026-11-30 10:00\n")
        refresh("epoch", data_dir / "snapshots", payload=payload)
        woke = data_dir_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(woke.run_requests) == 1
