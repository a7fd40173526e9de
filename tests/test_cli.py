"""The CLI's doors, in process: pre-flight checks, the assumptions schema, query output, --version."""

from __future__ import annotations

import re

import duckdb
import polars as pl
import pytest

from configuration.assumptions import AssumptionsError, load_assumptions
from pipelines.cli import main
from pipelines.query import format_table
from tests.conftest import ASSUMPTIONS


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.match(r"tokens2chips \d+\.\d+", capsys.readouterr().out)


@pytest.mark.parametrize("command", ["run", "query", "report"])
def test_a_warehouse_that_is_not_duckdb_is_one_line_and_exit_2(tmp_path, capsys, dagster_env, command):
    bogus = tmp_path / "warehouse.csv"
    bogus.write_text("a,b\n1,2\n")
    args = {"run": ["run"], "query": ["query", "select 1"], "report": ["report"]}[command]
    assert main([*args, "--warehouse", str(bogus)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a DuckDB database" in err[0] and str(bogus) in err[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("warehouse")) == ["warehouse.csv"]


def _edited(tmp_path, old: str, new: str):
    text = ASSUMPTIONS.read_text()
    assert old in text
    path = tmp_path / "assumptions.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_misspelt_assumption_names_key_line_and_nearest(tmp_path):
    path = _edited(tmp_path, "  service_life_years:", "  service_lif_years:")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "service_lif_years" in t)
    with pytest.raises(AssumptionsError) as err:
        load_assumptions(path)
    assert f"line {line}" in str(err.value) and "'installed_base.service_lif_years'" in str(err.value)
    assert "did you mean 'service_life_years'" in str(err.value)


def test_hierarchy_outside_the_pooled_demand_model_is_an_error(tmp_path):
    path = _edited(tmp_path, "    - total: tokens/google/all\n", "    - total: revenue/nvidia/data_center\n")
    with pytest.raises(AssumptionsError, match="'revenue/nvidia/data_center' is not a token series"):
        load_assumptions(path)


def test_missing_section_and_broken_range_are_errors(tmp_path):
    text = ASSUMPTIONS.read_text()
    start = text.index("\nfreshness:")
    end = text.index("\nforecast:")
    path = tmp_path / "no_freshness.yaml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(AssumptionsError, match="'freshness' is missing"):
        load_assumptions(path)
    path = _edited(tmp_path, "  mfu:\n    value: 0.5\n    low: 0.2\n    high: 0.8", "  mfu:\n    value: 0.9\n    low: 0.2\n    high: 0.8")
    with pytest.raises(AssumptionsError, match=r"'serving.mfu'.*low <= value <= high"):
        load_assumptions(path)


def test_run_stops_before_starting_on_a_misspelt_key(tmp_path, capsys, dagster_env):
    path = _edited(tmp_path, "  service_life_years:", "  service_lif_years:")
    assert main(["run", "--assumptions", str(path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'service_life_years'" in err and err.count("\n") == 1


def test_query_table_output_is_aligned_readable_and_counts_rows():
    frame = pl.DataFrame({"chip": ["H100", "a-very-long-name-" * 5], "units": [33_844_000.0, 0.5],
                          "n": [1_000_000, 2]})
    text = format_table(frame, max_rows=1)
    lines = text.splitlines()
    assert "shape:" not in text and "e7" not in text
    assert "33,844,000" in lines[2] and "1,000,000" in lines[2]
    assert lines[-1].startswith("2 rows (1 shown; --max-rows")
    assert len({len(lines[0]), len(lines[1])}) == 1  # header and rule aligned
    full = format_table(frame, max_rows=10)
    assert "…" in full and full.splitlines()[-1] == "2 rows"


def test_query_show_tables_and_nested_csv(tmp_path, capsys):
    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema marts; create table marts.t as select [1, 2] as l, {'a': 1} as s")
    con.close()
    assert main(["query", "show tables", "--warehouse", str(wh)]) == 0
    out = capsys.readouterr().out
    assert "marts" in out and "1 row" in out
    assert main(["query", "select * from marts.t", "--warehouse", str(wh), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["l,s", '"[1, 2]","{""a"": 1}"']


@pytest.mark.parametrize("argv, shown", [
    (["nosuch"], "invalid choice"),
    (["query"], "the following arguments are required: sql"),
    (["query", "select 1", "--max-rows", "many"], "invalid int value"),
])
def test_argument_errors_are_one_error_line_and_exit_2(capsys, argv, shown):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and shown in err[0] and "usage:" not in err[0]


def test_a_negative_number_in_scientific_notation_reaches_the_range_check(capsys):
    # argparse took '-1e9' for an option ("expected one argument"); now the value's own check answers
    code = main(["size", "--chip", "H100", "--model", "Llama-3.1-70B", "--input-tokens-per-day", "-1e9",
                 "--output-tokens-per-day", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "out of range" in err and "expected one argument" not in err


def test_a_bad_backtest_step_is_exit_2(capsys):
    assert main(["backtest", "--step", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --step '0'")


def test_backtest_on_a_file_that_is_no_database_says_so(capsys, tmp_path):
    # it said "has no model_inputs.forecast_history (WarehouseError)", as if a run were missing
    text = tmp_path / "NOT_A_DB"
    text.write_text("hello\n")
    assert main(["backtest", "--warehouse", str(text)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {text} exists but is not a DuckDB database file; point --warehouse at a .duckdb file " \
                  "(or a path that does not exist yet, which the run creates)"
    assert main(["backtest", "--warehouse", str(tmp_path)]) == 2
    assert "is a directory, not a DuckDB file" in capsys.readouterr().err


def test_a_closed_pipe_stops_query_quietly(tmp_path):
    """`tokens2chips query ... | head`: the reader goes away; the command stops without an error line."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create table t as select range as i from range(300000)")
    con.close()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "query", "select * from t", "--format", "csv",
                             "--warehouse", str(warehouse)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"i"
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "BrokenPipe" not in err


def test_a_negative_freshness_age_is_refused(tmp_path):
    path = _edited(tmp_path, "  max_age_days:\n    value: 400", "  max_age_days:\n    value: -400")
    with pytest.raises(AssumptionsError, match="max_age_days must be a positive number of days"):
        load_assumptions(path)


def test_query_prints_years_without_thousands_separators():
    frame = pl.DataFrame({"year": [2027, 2028], "units": [12345, 2]})
    text = format_table(frame, 10)
    assert "2027" in text and "2,027" not in text and "12,345" in text


def test_an_absurd_load_is_sized_with_a_note(capsys):
    assert main(["size", "--chip", "H100", "--model", "Llama-3.1-70B", "--input-tokens-per-day", "1e30",
                 "--output-tokens-per-day", "1e29"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["chips"] > 1e9 and any("more than a billion accelerators" in n for n in out["notes"])


def test_run_with_a_missing_call_log_directory_creates_nothing(tmp_path, capsys, dagster_env):
    warehouse = tmp_path / "var" / "w.duckdb"
    code = main(["run", "--warehouse", str(warehouse), "--call-logs", str(tmp_path / "missing")])
    assert code == 2 and "call-log directory" in capsys.readouterr().err
    assert not warehouse.exists() and not warehouse.with_name("w.duckdb.run.lock").exists()


def test_make_dev_launcher_stops_its_child_on_sigterm_when_started_in_the_background(tmp_path):
    """`make dev &` then `kill`: dagster dev ignored SIGTERM, and SIGINT too when a shell had started it in the
    background (SIGINT inherited as ignored). The launcher (pipelines/dev.py) turns SIGTERM into SIGINT and
    gives the child SIGINT's default back. A stand-in child behaves as dagster dev does: SIGTERM ignored,
    stops on KeyboardInterrupt."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    child = tmp_path / "child.py"
    child.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                     "try:\n    print('up', flush=True)\n    time.sleep(60)\n"
                     "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n")
    launcher = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from pipelines.dev import supervise; "
         f"sys.exit(supervise([sys.executable, {str(child)!r}]))"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as a background job
    assert launcher.stdout.readline().strip() == "up"
    started = time.monotonic()
    launcher.send_signal(signal.SIGTERM)
    out, _ = launcher.communicate(timeout=20)
    assert "interrupted" in out and time.monotonic() - started < 10


def test_whatif_sets_are_checked_against_the_assumptions_file():
    """`tokens2chips whatif --set KEY=VALUE`: a key that is no assumption, a value that is no number or lies
    outside the assumption's stated range is one clear error (exit 2) before anything is copied or run."""
    import yaml

    from pipelines.usage import UsageError
    from pipelines.whatif_cli import _leaves, parse_sets
    from tests.conftest import ROOT

    leaves = _leaves(yaml.safe_load((ROOT / "config" / "assumptions.yaml").read_text()))
    assert parse_sets(["fleet.utilisation=0.7"], leaves) == {"fleet.utilisation": 0.7}
    with pytest.raises(UsageError, match=r"fleet.utilisaton: not an assumption of the file \(closest: fleet.utilisation"):
        parse_sets(["fleet.utilisaton=0.7"], leaves)
    with pytest.raises(UsageError, match="not a number"):
        parse_sets(["fleet.utilisation=high"], leaves)
    with pytest.raises(UsageError, match=r"outside the assumption's stated range \[0.7, 0.95\]"):
        parse_sets(["fleet.utilisation=0.5"], leaves)
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_sets(["fleet.utilisation"], leaves)


def test_a_whatif_reruns_only_the_sql_models_that_read_a_changed_assumption():
    """A what-if skips the SQL models that read meta.assumptions but none of the changed names (named as
    literals or LIKE prefixes in their SQL), and what only they feed: a fleet assumption re-runs none of them;
    the service life re-runs the installed base; a prefix ('report.interactivity_%') counts."""
    from pipelines.whatif_cli import unaffected_sql_tables

    fleet = set(unaffected_sql_tables(["fleet.utilisation"]))
    assert {"staging.accelerator_specs", "marts.installed_base", "marts.installed_base_projection"} <= fleet
    life = set(unaffected_sql_tables(["installed_base.service_life_years"]))
    assert "marts.installed_base" not in life and "marts.installed_base_projection" not in life
    assert "staging.accelerator_specs" in life
    assert "marts.cost_at_interactivity" not in set(unaffected_sql_tables(["report.interactivity_chat"]))
    assert "staging.accelerator_specs" not in set(unaffected_sql_tables(["h100e.h100_8bit_tops"]))


def test_a_whatif_fits_the_serving_model_again_only_when_an_input_of_the_fit_changed():
    """The calibration is re-fitted for an entry it reads (a prior, a serving limit, the usable memory share)
    or for an entry of a SQL table it reads (the H100e reference of staging.accelerator_specs), not for the
    per-user speed target, a `hardware.*` entry the fit never reads, nor for a fleet assumption."""
    from configuration.assumptions import load_configuration
    from hardware.serving import CALIBRATION_ENTRIES, priors_and_limits
    from pipelines.whatif_cli import needs_recalibration
    from tests.conftest import ASSUMPTIONS, typed_assumptions

    assert needs_recalibration(["serving.mfu"]) and needs_recalibration(["hardware.memory_usable_fraction"])
    assert needs_recalibration(["fleet.utilisation", "h100e.h100_8bit_tops"])
    assert not needs_recalibration(["hardware.user_speed_tokens_per_s"])
    assert not needs_recalibration(["fleet.utilisation", "workload.output_share"])
    # the list is the fit's inputs: moving any other entry leaves priors and limits as they were
    base = priors_and_limits(load_configuration(ASSUMPTIONS).model)
    others = {"hardware.user_speed_tokens_per_s": 33.0, "fleet.utilisation": 0.5, "workload.output_share": 0.1}
    assert not CALIBRATION_ENTRIES.intersection(others)
    assert priors_and_limits(typed_assumptions(others)) == base
    assert priors_and_limits(typed_assumptions({"serving.scaleup_gbps": 1.0}))[1] != base[1]
