"""End to end at an early data vintage: `tokens2chips run --as-of 2025-06-30` on a fresh warehouse (the
composites that lack a later disclosure are flagged, not dropped), then a run that meets a bad input file on a
copy of it (the run fails naming file, line and column, and keeps every table)."""

import datetime as dt

import duckdb
import pytest

from tests.conftest import cli, marts_of, pipeline_root, private_copy, same_marts

VINTAGE = "2025-06-30"


@pytest.fixture(scope="module")
def vintage(tmp_path_factory):
    p = pipeline_root(tmp_path_factory.mktemp("vintage"))
    first = cli("run", "--as-of", VINTAGE, env=p["env"])
    return {**p, "first": first, "marts": marts_of(p["warehouse"])}


def test_early_vintage_runs_with_partial_composites_flagged(vintage):
    out = vintage["first"]
    assert "WARN" in out.stdout + out.stderr
    con = duckdb.connect(str(vintage["warehouse"]), read_only=True)
    try:
        flags = dict(con.execute("select series_id, flag from marts.forecast_flags").fetchall())
        newest = con.execute("select max(observed_on) from raw.token_volume_observations").fetchone()[0]
        hw = con.execute("select count(*) from marts.hardware_demand where segment = 'china'").fetchone()[0]
    finally:
        con.close()
    assert newest <= dt.date(2025, 6, 30)
    assert flags.get("tokens/global") == "partial_composite"  # OpenAI's API figure came in October 2025
    assert flags.get("tokens/china_national/all") == "segment_demand_fallback" and hw > 0


def test_bad_file_fails_the_run_and_keeps_every_table(vintage, tmp_path):
    copy = private_copy(vintage, tmp_path)
    # the chip specs feed both the calibration and the forecasts (through the shipments' H100e), so the
    # run stops early
    path = copy["data"] / "accelerator_specs.csv"
    lines = path.read_text().splitlines()
    assert ",high," in lines[5]
    lines[5] = lines[5].replace(",high,", ",certain,")
    path.write_text("\n".join(lines) + "\n")
    proc = cli("run", "--as-of", VINTAGE, check=False, env=copy["env"])
    assert proc.returncode == 1
    message = "accelerator_specs.csv, line 6, column 'confidence'"
    assert (proc.stdout + proc.stderr).count(message) == 1  # printed once, in the summary
    assert "FAIL  raw/accelerator_specs" in proc.stdout and "raw__" not in proc.stdout + proc.stderr
    assert "not run because of the failure" in proc.stderr
    assert "marts/forecast" in proc.stderr and "marts/hardware_demand" in proc.stderr
    assert same_marts(copy)
