"""End to end: Definitions load; `tokens2chips run` builds the warehouse as a Dagster run, idempotently."""

import json
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from tests.conftest import ROOT


def _cli(*args, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def _marts(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1").fetchall()]
        return {t: con.execute(f"select * from marts.{t} order by all").fetchall() for t in tables}
    finally:
        con.close()


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
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "dagster"), "definitions", "validate", "-m",
                           "pipelines.definitions"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr


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


def test_run_end_to_end_is_idempotent_queryable_and_keeps_tables_on_bad_input(dagster_env, data_dir, tmp_path):
    first = _cli("run", "--as-of", "2026-11-01")
    for key in ("raw/token_volume_observations", "marts/chip_shipments", "marts/installed_base", "marts/forecast"):
        assert f"ok    {key}" in first.stdout
    assert "succeeded" in first.stdout
    warehouse = tmp_path / "var" / "warehouse.duckdb"
    marts_first = _marts(warehouse)
    assert len(marts_first["chip_shipments"]) == 160

    _cli("run", "--as-of", "2026-11-01")
    assert _marts(warehouse) == marts_first

    con = duckdb.connect(str(warehouse), read_only=True)
    runs = con.execute("select status, as_of, checks_failed, row_counts from meta.runs order by started_at").fetchall()
    n_checks = con.execute("select count(*) from meta.check_results").fetchone()[0]
    con.close()
    assert [r[0] for r in runs] == ["SUCCESS", "SUCCESS"]
    assert str(runs[0][1]) == "2026-11-01" and runs[0][2] == 0
    assert json.loads(runs[0][3])["marts.chip_shipments"] == 160
    assert n_checks > 20

    # the run is recorded in the Dagster instance, where `dagster dev` shows it
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 2

    out = _cli("query", "select chip, units_median from marts.chip_shipments order by units_median desc limit 3")
    assert "chip" in out.stdout and "units_median" in out.stdout
    out = _cli("query", "select count(*) as n from marts.token_observations", "--format", "json")
    assert json.loads(out.stdout) == [{"n": 34}]
    refused = _cli("query", "create table marts.x as select 1", check=False)
    assert refused.returncode != 0 and "read-only" in refused.stderr.lower()

    # a bad file fails the run, names file/line/column, and leaves every table as it was
    path = data_dir / "chip_shipments_quarterly.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(",medium", ",certain")
    path.write_text("\n".join(lines) + "\n")
    proc = _cli("run", "--as-of", "2026-11-01", check=False)
    assert proc.returncode == 1
    assert "chip_shipments_quarterly.csv, line 6, column 'confidence'" in proc.stdout
    assert _marts(warehouse) == marts_first


@pytest.mark.parametrize("bad", ["2026-13-01"])
def test_run_rejects_bad_as_of(dagster_env, bad):
    proc = _cli("run", "--as-of", bad, check=False)
    assert proc.returncode == 2 and "not a date" in proc.stderr
