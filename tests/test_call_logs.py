"""Request-level call logs: partitioned loading, rejects, incremental runs, marts."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

import call_logs.csv_format as call_log_csv
from call_logs.loading import CallLogConfig, CallLogError, changed_days, day_files, discover, load_day
from configuration.call_logs import load_call_log_config
from assets.resources import ProjectSettings
from bench.make_call_logs import generate
from tests.conftest import ROOT, build

CFG = load_call_log_config(ROOT / "config" / "call_logs.yaml")
START = dt.date(2026, 1, 5)


def _load_all(con, logs: Path) -> dict:
    by_day = day_files(logs, CFG, con)
    results = {}
    for day in changed_days(con, by_day):
        files, flat = by_day[day]
        results[day] = load_day(con, day, files, CFG, flat)
    return results


def test_parquet_days_load_and_bad_rows_are_rejected_with_file_and_row(tmp_path, con):
    logs = tmp_path / "logs"
    generate(6000, 3, logs, "parquet", START, bad_fraction=0.02, seed=3, threads=1)
    results = _load_all(con, logs)
    assert sorted(results) == [START + dt.timedelta(days=i) for i in range(3)]
    src = f"read_parquet('{logs}/**/*.parquet')"
    total = con.execute(f"select count(*) from {src}").fetchone()[0]
    loaded = con.execute("select sum(requests) from raw.call_log_daily").fetchone()[0]
    rejected = con.execute("select count(*) from raw.call_log_rejects").fetchone()[0]
    assert total == 6000 and loaded + rejected == total and rejected > 0
    expected_bad = con.execute(f"select count(*) from {src} where status = 'weird' or completion_tokens < 0").fetchone()[0]
    assert rejected == expected_bad
    # the reject points at the right row of the right file
    file, row, reason = con.execute("select file, row_number, reason from raw.call_log_rejects "
                                    "where reason = 'unknown status' limit 1").fetchone()
    status = con.execute(f"select status from read_parquet('{file}', file_row_number = true) "
                         f"where file_row_number = {row - 1}").fetchone()[0]
    assert status == "weird"
    # aggregates equal a bare DuckDB aggregation of the valid rows
    bare = con.execute(f"""select sum(prompt_tokens), sum(completion_tokens) from {src}
                           where status <> 'weird' and completion_tokens >= 0""").fetchone()
    ours = con.execute("select sum(prompt_tokens), sum(completion_tokens) from raw.call_log_daily").fetchone()
    assert tuple(ours) == tuple(bare)


def test_csv_rejects_carry_line_numbers(tmp_path, con):
    logs = tmp_path / "logs"
    generate(3000, 2, logs, "csv", START, bad_fraction=0.04, seed=5, threads=1)
    _load_all(con, logs)
    reasons = dict(con.execute("select reason, count(*) from raw.call_log_rejects group by all").fetchall())
    assert {"unparseable timestamp", "non-integer token count", "negative token count", "unknown status"} <= set(reasons)
    for file, row, reason in con.execute("select file, row_number, reason from raw.call_log_rejects").fetchall():
        line = Path(file).read_text().splitlines()[row]  # data row n is line n + 1; list index n skips the header
        if reason == "unparseable timestamp":
            assert line.startswith("not-a-time")
        elif reason == "non-integer token count":
            assert ",12.5," in line
        elif reason == "unknown status":
            assert line.endswith(",weird")
        else:
            assert ",-" in line


CSV_HEADER = "timestamp,model,provider,user,prompt_tokens,completion_tokens,cached_tokens,reasoning_tokens,status\n"
CSV_ROWS = [  # (line, expected reason or None for a valid row)
    ("2026-01-05 10:00:00,m/a,p,10,5,,0,success", None),
    ("2026-01-05 10:00:01,m/a,p,10,-5,0,0,weird", "unknown status"),  # two faults: listed once
    ("2026-01-05 10:00:02,m/a,p,10,-5,0,0,success", "negative token count"),
    ("2026-01-05 10:00:03,m/b,p,12.5,5,0,0,error", "non-integer token count"),
    ("2026-01-06 10:00:04,m/a,p,10,5,0,0,success", "timestamp outside its day partition"),
    ("not-a-time,m/a,p,10,5,0,0,success", "unparseable timestamp"),
    ("2026-01-05 10:00:06,m/a,p,7.0,3.0,1.0,,success", None),  # float-formatted integers are counts
    ("2026-01-05 10:00:07,,p,10,5,0,0,success", "missing model"),
    ("2026-01-05 10:00:08,m/a,p,,5,0,0,success", "missing or non-numeric token count"),
    ("2026-01-05 10:00:09,m/a,p,10,5,nan,0,success", "missing or non-numeric token count"),
    ("2026-01-05 10:00:10,m/b,p,3,4,0,0,timeout", None),
    # integral, so clean to pass 1's cheap test: the group's total sends pass 1 round again, strictly
    ("2026-01-05 10:00:11,m/a,p,10000000000000000000,5,0,0,success", "missing or non-numeric token count"),
    ("2026-01-05 10:00:12,m/a,p,5000000000000000000,5000000000000000000,0,0,success", "token counts out of range"),
]


@pytest.mark.parametrize("text_read_disagrees", [False, True])
def test_csv_day_files_reject_each_bad_row_once_at_its_line(tmp_path, con, monkeypatch, text_read_disagrees):
    """The typed CSV path: cast failures from DuckDB's rejects, the other faults from the parallel
    re-read numbered by insertion order, across two files of one day. The files carry a column the
    loader does not read (`user`), which once made DuckDB name the wrong column of a rejected value."""
    day = tmp_path / "logs" / "date=2026-01-05"
    day.mkdir(parents=True)
    lines = [",".join([*line.split(",")[:3], "u1", *line.split(",")[3:]]) for line, _ in CSV_ROWS]
    (day / "part-0.csv").write_text(CSV_HEADER + "\n".join(lines) + "\n")
    (day / "part-1.csv").write_text(CSV_HEADER + "\n".join(reversed(lines)) + "\n")
    second_reads, original = [], call_log_csv._csv_second_read  # (text read?, agreed with pass 1?)

    def recording(*args):
        agreed = original(*args) and not (text_read_disagrees and args[-1] is not None)
        second_reads.append((args[-1] is not None, agreed))
        return agreed

    monkeypatch.setattr("call_logs.csv_format._csv_second_read", recording)
    result = load_day(con, START, sorted(day.glob("*.csv")), CFG)
    # the cheap text re-read agrees with the typed first read; if it did not, the typed re-read decides
    assert second_reads == ([(True, False), (False, True)] if text_read_disagrees else [(True, True)])
    got = con.execute("select file, row_number, reason from raw.call_log_rejects order by 1, 2").fetchall()
    bad = [(i + 1, reason) for i, (_, reason) in enumerate(CSV_ROWS) if reason]
    want = [(str(day / "part-0.csv"), n, r) for n, r in bad] + \
           sorted((str(day / "part-1.csv"), len(CSV_ROWS) + 1 - n, r) for n, r in bad)
    assert got == want
    assert result["rows_rejected"] == 2 * len(bad) and result["rows_loaded"] == 2 * 3
    totals = con.execute("select model, sum(requests), sum(failed_requests), sum(prompt_tokens), "
                         "sum(completion_tokens), sum(cached_tokens) from raw.call_log_daily group by 1 order by 1").fetchall()
    assert totals == [("m/a", 4, 0, 34, 16, 2), ("m/b", 2, 2, 6, 8, 0)]


def test_rerun_replaces_exactly_one_partition_and_runs_are_incremental(tmp_path, con):
    logs = tmp_path / "logs"
    generate(3000, 3, logs, "parquet", START, seed=1, threads=1)
    fresh = duckdb.connect()  # nothing loaded yet: every day is new, and asking writes nothing
    assert changed_days(fresh, day_files(logs, CFG, fresh)) == [START + dt.timedelta(days=i) for i in range(3)]
    assert fresh.execute("select count(*) from duckdb_tables()").fetchone()[0] == 0
    _load_all(con, logs)
    before = con.execute("select * from raw.call_log_daily order by all").fetchall()
    assert changed_days(con, day_files(logs, CFG, con)) == []  # nothing new: nothing to do
    day2 = START + dt.timedelta(days=1)
    shutil.rmtree(logs / f"date={day2}")
    generate(500, 1, logs, "parquet", day2, seed=99, threads=1)
    assert changed_days(con, day_files(logs, CFG, con)) == [day2]
    _load_all(con, logs)
    after = con.execute("select * from raw.call_log_daily order by all").fetchall()
    assert [r for r in after if r[0] != day2] == [r for r in before if r[0] != day2]
    assert con.execute(f"select sum(requests) from raw.call_log_daily where day = '{day2}'").fetchone()[0] == 500
    day4 = START + dt.timedelta(days=3)
    generate(200, 1, logs, "parquet", day4, seed=4, threads=1)
    assert changed_days(con, day_files(logs, CFG, con)) == [day4]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_fixed_day_reloads_clean_and_its_old_rejects_are_gone(tmp_path, con, fmt):
    """A day with bad rows, then its file rewritten without them: the re-run replaces the day's rows and
    clears its rejects (the clean load takes the path that builds no reject tables)."""
    logs = tmp_path / "logs"
    generate(2000, 2, logs, fmt, START, bad_fraction=0.05, seed=8, threads=1)
    _load_all(con, logs)
    assert con.execute(f"select count(*) from raw.call_log_rejects where day = '{START}'").fetchone()[0] > 0
    other = con.execute(f"select * from raw.call_log_rejects where day <> '{START}' order by all").fetchall()
    assert other
    shutil.rmtree(logs / f"date={START}")
    generate(700, 1, logs, fmt, START, bad_fraction=0.0, seed=9, threads=1)
    assert changed_days(con, day_files(logs, CFG, con)) == [START]
    result = _load_all(con, logs)[START]
    assert result["rows_loaded"] == 700 and result["rows_rejected"] == 0
    assert con.execute(f"select count(*) from raw.call_log_rejects where day = '{START}'").fetchone()[0] == 0
    assert con.execute("select * from raw.call_log_rejects order by all").fetchall() == other
    assert con.execute(f"select sum(requests) from raw.call_log_daily where day = '{START}'").fetchone()[0] == 700
    assert con.execute(f"select rows_loaded, rows_rejected from meta.call_log_partitions where day = '{START}'"
                       ).fetchone() == (700, 0)


def test_flat_files_are_split_by_day(tmp_path, con):
    logs = tmp_path / "flat"
    generate(2000, 2, logs, "parquet", START, seed=2, flat=True, threads=1)
    by_day = day_files(logs, CFG, con)
    assert sorted(by_day) == [START, START + dt.timedelta(days=1)] and all(flat for _, flat in by_day.values())
    _load_all(con, logs)
    assert con.execute("select sum(requests) from raw.call_log_daily").fetchone()[0] == 2000
    assert con.execute("select count(*) from raw.call_log_rejects").fetchone()[0] == 0


def test_flat_csv_accounts_for_every_row(tmp_path, con):
    """Flat files take each row's day from its timestamp; a row whose timestamp does not parse is
    rejected under the first day the files cover, not dropped."""
    logs = tmp_path / "flat"
    generate(4000, 2, logs, "csv", START, bad_fraction=0.02, seed=4, flat=True, threads=1)
    _load_all(con, logs)
    loaded = con.execute("select sum(requests) from raw.call_log_daily").fetchone()[0]
    reasons = dict(con.execute("select reason, count(*) from raw.call_log_rejects group by 1").fetchall())
    assert loaded + sum(reasons.values()) == 4000 and reasons.get("unparseable timestamp", 0) > 0
    assert con.execute("select distinct day from raw.call_log_rejects where reason = 'unparseable timestamp'"
                       ).fetchall() == [(START,)]


def test_unreadable_file_fails_its_partition_and_keeps_the_others(tmp_path):
    logs = tmp_path / "logs"
    generate(3000, 3, logs, "parquet", START, seed=6, threads=1)
    bad_day = START + dt.timedelta(days=1)
    (logs / f"date={bad_day}" / "part-0.parquet").write_bytes(b"this is not parquet")
    warehouse = tmp_path / "w.duckdb"
    settings = ProjectSettings(data_dir=str(ROOT / "data"), assumptions_path=str(ROOT / "config" / "assumptions.yaml"),
                               reports_dir=str(tmp_path / "reports"), call_logs_dir=str(logs),
                               call_logs_config=str(ROOT / "config" / "call_logs.yaml"))
    from assets.call_logs import call_log_assets

    call_log_daily, _ = call_log_assets(dt.date(2024, 1, 1))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [call_log_daily], instance=instance, raise_on_error=False,
            resources={"warehouse": DuckDBResource(database=str(warehouse)), "settings": settings},
            tags={"dagster/asset_partition_range_start": str(START),
                  "dagster/asset_partition_range_end": str(START + dt.timedelta(days=2))},
        )
        assert not result.success
        failure = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE][0]
        assert "part-0.parquet" in failure.event_specific_data.error.message
    con = duckdb.connect(str(warehouse), read_only=True)
    days = [r[0] for r in con.execute("select distinct day from raw.call_log_daily order by 1").fetchall()]
    con.close()
    assert days == [START, START + dt.timedelta(days=2)]


def test_call_volume_mart_maps_models_and_lists_unknown_ones(tmp_path, con, data_dir):
    from warehouse.loading import load_source
    from warehouse.sources import SOURCES_BY_STEM

    for stem in ("model_slug_map", "model_authors", "model_catalog"):
        load_source(con, SOURCES_BY_STEM[stem], data_dir / f"{stem}.csv")
    logs = tmp_path / "logs"
    generate(5000, 2, logs, "parquet", START, seed=8, threads=1)
    _load_all(con, logs)
    build(con, "marts.call_volume_daily", "marts.call_log_unknown_models")
    row = con.execute("select origin, catalog_model, active_params_b from marts.call_volume_daily "
                      "where model = 'deepseek/deepseek-v3.2' limit 1").fetchone()
    assert row == ("cn", "DeepSeek-V3.2", 37.0)
    unknown = [r[0] for r in con.execute("select model from marts.call_log_unknown_models").fetchall()]
    assert unknown and all(m.startswith("lab") for m in unknown)
    total = con.execute("select sum(requests) from marts.call_volume_daily").fetchone()[0]
    assert total == con.execute("select sum(requests) from raw.call_log_daily").fetchone()[0]


def test_missing_directory_and_mapping_errors(tmp_path, con):
    with pytest.raises(CallLogError, match="does not exist"):
        discover(tmp_path / "nope")
    logs = tmp_path / "logs"
    generate(100, 1, logs, "parquet", START, seed=1, threads=1)
    cfg = CallLogConfig({**CFG.columns, "prompt_tokens": "tokens_in"}, CFG.status_ok, CFG.status_failed)
    with pytest.raises(CallLogError, match="tokens_in"):
        load_day(con, START, discover(logs).by_day[START], cfg)
    # config/call_logs.yaml is checked against its schema: the key and its line are named
    text = (ROOT / "config" / "call_logs.yaml").read_text()
    for broken, message in ((text.replace("preset: default", "preset: nonesuch"), "preset 'nonesuch'"),
                            (text.replace("    prompt_tokens: tokens_prompt\n", ""),
                             r"presets.openrouter_activity.prompt_tokens' is missing"),
                            (text.replace("memory_limit:", "memory_limt:"), r"line \d+: 'memory_limt' is not a known "
                                                                           "key; did you mean 'memory_limit'"),
                            (text.replace("partitions_start: \"2024-01-01\"", "partitions_start: soon"),
                             "partitions_start")):
        path = tmp_path / "call_logs.yaml"
        path.write_text(broken)
        with pytest.raises(CallLogError, match=message):
            load_call_log_config(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("flat", [False, True], ids=["hive", "flat"])
@pytest.mark.parametrize("absent", ["status", "cached_tokens", "reasoning_tokens"])
def test_optional_columns_may_be_absent(tmp_path, con, fmt, flat, absent):
    src, logs = tmp_path / "src", tmp_path / "logs"
    generate(400, 2, src, fmt, START, seed=11, flat=flat, threads=1)
    scratch = duckdb.connect()
    for f in src.rglob(f"*.{fmt}"):
        dst = logs / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        reader = f"read_parquet('{f}')" if fmt == "parquet" else f"read_csv('{f}', all_varchar = true)"
        options = "(format parquet)" if fmt == "parquet" else "(header true)"
        scratch.execute(f"copy (select * exclude ({absent}) from {reader}) to '{dst}' {options}")
    results = _load_all(con, logs)
    assert sum(r["rows_rejected"] for r in results.values()) == 0
    requests, failed, cached, reasoning, prompt = con.execute(
        "select sum(requests), sum(failed_requests), sum(cached_tokens), sum(reasoning_tokens), sum(prompt_tokens) "
        "from raw.call_log_daily").fetchone()
    assert requests == 400
    reader = f"read_parquet('{src}/**/*.parquet')" if fmt == "parquet" else f"read_csv('{src}/**/*.csv')"
    expected = scratch.execute(f"select sum(prompt_tokens), sum(cached_tokens), sum(reasoning_tokens), "
                               f"count(*) filter (where status in ('error', 'timeout')) from {reader}").fetchone()
    assert prompt == expected[0]
    if absent == "status":
        assert failed == 0  # an absent status means every request succeeded
    else:
        assert failed == expected[3] and failed > 0
    assert cached == (None if absent == "cached_tokens" else expected[1])
    assert reasoning == (None if absent == "reasoning_tokens" else expected[2])


TYPED = {"unparseable timestamp", "non-integer token count"}  # faults a typed Parquet file cannot hold


@pytest.mark.parametrize("layout", ["csv_day", "csv_generic", "parquet_text", "parquet_typed", "csv_flat",
                                    "parquet_flat"])
def test_every_layout_gives_a_row_the_same_reason(tmp_path, con, layout):
    """One list of row rules for every path: the rows of CSV_ROWS get the same reasons whether they come
    as CSV day files (typed scan), CSV the generic scan reads (a header naming a `date` column),
    text or typed Parquet, or flat files (where the next day's row is simply valid)."""
    flat = layout.endswith("_flat")
    rows = [(line, reason) for line, reason in CSV_ROWS
            if layout != "parquet_typed" or (reason not in TYPED and "nan" not in line and "e19" not in line
                                             and "10000000000000000000" not in line and "7.0" not in line)]
    if flat:
        rows = [(line, None if reason == "timestamp outside its day partition" else reason) for line, reason in rows]
    folder = tmp_path / "logs" / ("" if flat else f"date={START}")
    folder.mkdir(parents=True)
    header, lines = CSV_HEADER, [",".join([*line.split(",")[:3], "u1", *line.split(",")[3:]]) for line, _ in rows]
    if layout == "csv_generic":
        header, lines = "date," + CSV_HEADER, [f"x,{line}" for line in lines]
    text = folder / "part-0.csv"
    text.write_text(header + "\n".join(lines) + "\n")
    path = text
    if layout.startswith("parquet"):
        path = folder / "part-0.parquet"
        typed = ("timestamp::timestamp as timestamp, model, provider, user, prompt_tokens::bigint as prompt_tokens, "
                 "completion_tokens::bigint as completion_tokens, cached_tokens::bigint as cached_tokens, "
                 "reasoning_tokens::bigint as reasoning_tokens, status") if layout == "parquet_typed" else "*"
        con.execute(f"copy (select {typed} from read_csv('{text}', all_varchar = true)) to '{path}' (format parquet)")
        text.unlink()
    if flat:
        by_day = day_files(tmp_path / "logs", CFG, con)
        for day, (files, from_flat) in by_day.items():
            load_day(con, day, files, CFG, from_flat)
    else:
        load_day(con, START, [path], CFG)
    got = con.execute("select row_number, reason from raw.call_log_rejects order by 1").fetchall()
    assert got == [(i + 1, reason) for i, (_, reason) in enumerate(rows) if reason]
