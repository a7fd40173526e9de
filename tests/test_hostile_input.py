"""Hostile input, property-based (hypothesis), per source format.

Curated CSV sources (file-level policy: one bad row fails the file, the previous table stays) and
request-level call logs in CSV and Parquet (row-level policy: bad rows go to raw.call_log_rejects).
Generated files mix random column orders, BOMs, CRLF, quoting styles, unicode and control characters,
CSV-injection and HTML payloads with exactly one injected fault (or none); the oracle says which line
and column must be named, or which rows must be accepted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from call_logs.loading import load_day
from configuration.call_logs import load_call_log_config
from warehouse.loading import InputFileError, load_source
from warehouse.sources import SOURCES
from tests.conftest import ROOT

BY_STEM = {s.stem: s for s in SOURCES}
# three contracts that between them use every column type, categorical and non-negative checks
CURATED = ("token_volume_observations", "model_catalog", "fx_rates_annual")
PAYLOADS = ["=cmd|' /C calc'!A0", "+SUM(1+1)", "@HYPERLINK(\"http://x\")", "-2+3", "<script>alert(1)</script>",
            "Robert'); drop table raw.model_catalog;--", "ünïcödé 中文 🚀", "tab\there", "\x1b[31mred\x1b[0m",
            '"quoted"', "a,b;c", "\u202eevil", "\x07bell", " padded "]
TEXT = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), min_size=1,
            max_size=12).filter(lambda s: s.strip() != ""),
)
FAULTS = ("wrong_type", "nan", "inf", "huge", "negative", "missing_required", "unknown_category", "nul",
          "duplicate_row", "enormous_line", "missing_column", "extra_column", "blank_line")


def _value(kind: str, col: str, source) -> st.SearchStrategy:
    """(cell text, expected typed value) for a valid value of a column."""
    if col in source.allowed:
        return st.sampled_from(source.allowed[col]).map(lambda v: (v, v))
    lo = 0 if col in source.non_negative else -1e12
    if kind == "DATE":
        return st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)).map(lambda d: (d.isoformat(), d))
    if kind == "DOUBLE":
        return st.floats(lo, 1e15, allow_nan=False, allow_infinity=False).map(lambda f: (repr(f), f))
    if kind == "INTEGER":
        return st.integers(int(max(lo, -(2**31) + 1)), 2**31 - 1).map(lambda i: (str(i), i))
    if kind == "BOOLEAN":
        return st.booleans().map(lambda b: (str(b).lower(), b))
    return TEXT.map(lambda s: (s, s))


@st.composite
def curated_case(draw):
    source = BY_STEM[draw(st.sampled_from(CURATED))]
    columns = list(source.columns)
    n = draw(st.integers(1, 8))
    rows, seen = [], set()
    for _ in range(n):
        row = {}
        for col, kind in source.columns.items():
            optional = col not in source.required and col not in source.key
            if optional and draw(st.booleans()):
                row[col] = ("", None)
            else:
                row[col] = draw(_value(kind, col, source))
        key = tuple(row[c][1] for c in source.key)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    fault = draw(st.sampled_from((None,) + FAULTS))
    order = draw(st.permutations(columns))
    return source, order, rows, fault, draw(st.data())


def _poison(source, order, rows, fault, data):
    """Apply one fault; return (header, cell rows, expected (line, column) or None)."""
    header = list(order)
    cells = [[r[c][0] for c in header] for r in rows]
    if fault is None:
        return header, cells, None
    typed = [c for c, k in source.columns.items() if k != "VARCHAR"]
    doubles = [c for c, k in source.columns.items() if k == "DOUBLE"]
    plain_text = [c for c, k in source.columns.items() if k == "VARCHAR" and c not in source.allowed]
    candidates = {
        "wrong_type": (typed, lambda k: {"DATE": "2024-13-45", "BOOLEAN": "maybe"}.get(k, "12abc")),
        "nan": (doubles, lambda k: "NaN"),
        "inf": (doubles, lambda k: "-inf"),
        "huge": ([c for c, k in source.columns.items() if k in ("DOUBLE", "INTEGER")],
                 lambda k: "1e400" if k == "DOUBLE" else "99999999999"),
        "negative": (list(source.non_negative), lambda k: "-1"),
        "missing_required": ([c for c in source.required], lambda k: ""),
        "unknown_category": (list(source.allowed), lambda k: "not-a-category"),
        "nul": (plain_text, lambda k: "a\x00b"),
        "enormous_line": (plain_text, lambda k: "x" * 2_100_000),
    }
    row_i = data.draw(st.integers(0, len(rows) - 1))
    if fault == "missing_column":
        dropped = data.draw(st.sampled_from(header))
        i = header.index(dropped)
        return [h for h in header if h != dropped], [c[:i] + c[i + 1:] for c in cells], (1, dropped)
    if fault == "extra_column":
        return header + ["surprise"], [c + ["1"] for c in cells], (1, "surprise")
    if fault == "blank_line":
        if len(rows) < 2:
            return header, cells, None
        cells.insert(row_i % (len(rows) - 1) + 1, [])  # an empty line between two data rows
        return header, cells, (row_i % (len(rows) - 1) + 3, None)
    if fault == "duplicate_row":
        cells.insert(row_i + 1, list(cells[row_i]))
        return header, cells, (row_i + 3, source.key[0])
    cols, make = candidates[fault]
    if not cols:
        return header, cells, None
    col = data.draw(st.sampled_from(sorted(cols)))
    cells[row_i][header.index(col)] = make(source.columns[col])
    return header, cells, (row_i + 2, None if fault == "enormous_line" else col)


def _write(path: Path, header, cells, data) -> None:
    buf = io.StringIO()
    quoting = data.draw(st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL)))
    newline = data.draw(st.sampled_from(("\n", "\r\n")))
    writer = csv.writer(buf, quoting=quoting, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(cells)
    text = buf.getvalue()
    bom = "\ufeff" if data.draw(st.booleans()) else ""
    trailing = newline * data.draw(st.integers(0, 2))
    path.write_bytes((bom + text + trailing).encode("utf-8"))


def _snapshot(con, table: str):
    return con.execute(f"select * exclude (_loaded_at) from {table} order by _line").fetchall()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=curated_case())
def test_curated_csv_accepts_exactly_valid_files_and_names_the_fault(tmp_path_factory, case):
    source, order, rows, fault, data = case
    work = tmp_path_factory.mktemp("hostile")
    con = duckdb.connect()
    try:
        # the table a previous run left: must survive any rejected file unchanged
        load_source(con, source, ROOT / "data" / source.file_name)
        before = _snapshot(con, source.table)
        header, cells, expected = _poison(source, order, rows, fault, data)
        path = work / source.file_name
        _write(path, header, cells, data)
        if expected is None:
            n = load_source(con, source, path)
            assert n == len(rows)
            cols = ", ".join(f'"{c}"' for c in source.columns)
            got = con.execute(f"select {cols} from {source.table} order by _line").fetchall()
            want = [tuple(r[c][1] for c in source.columns) for r in rows]
            assert got == want
        else:
            with pytest.raises(InputFileError) as info:
                load_source(con, source, path)
            err = info.value
            line, column = expected
            assert (err.path, err.line) == (str(path), line), str(err)
            if column is not None:
                assert err.column == column, str(err)
            assert str(path) in str(err) and f"line {line}" in str(err)
            assert _snapshot(con, source.table) == before
    finally:
        con.close()


# ---- call logs: row-level policy ----------------------------------------------------------------

CFG = load_call_log_config(ROOT / "config" / "call_logs.yaml")
DAY = dt.date(2026, 3, 2)
TOKEN_FAULTS = {"negative": "-5", "fraction": "12.5", "nan": "nan", "inf": "inf", "huge": "1e400",
                "overflow": "99999999999999999999999", "text": "lots"}
ROW_FAULTS = ("bad_timestamp", "wrong_day", "unknown_status", "missing_model", *TOKEN_FAULTS)


@st.composite
def call_log_case(draw):
    n = draw(st.integers(1, 25))
    rows = []
    for i in range(n):
        seconds = draw(st.integers(0, 86_399))
        ts = dt.datetime.combine(DAY, dt.time()) + dt.timedelta(seconds=seconds)
        row = {"timestamp": ts.isoformat(sep=" "), "model": draw(TEXT), "provider": draw(TEXT),
               "prompt_tokens": draw(st.integers(0, 2_000_000)), "completion_tokens": draw(st.integers(0, 100_000)),
               "status": draw(st.sampled_from(("success", "stop", "error"))), "fault": None}
        if draw(st.integers(0, 3)) == 0:
            row["fault"] = draw(st.sampled_from(ROW_FAULTS))
        rows.append(row)
    return rows, draw(st.sampled_from(("csv", "parquet"))), draw(st.data())


def _apply_row_fault(row: dict, data) -> dict:
    out = {k: v for k, v in row.items() if k != "fault"}
    fault = row["fault"]
    if fault == "bad_timestamp":
        out["timestamp"] = "2026-02-30 25:61:00"
    elif fault == "wrong_day":
        out["timestamp"] = (DAY + dt.timedelta(days=3)).isoformat() + " 10:00:00"
    elif fault == "unknown_status":
        out["status"] = "<b>weird</b>"
    elif fault == "missing_model":
        out["model"] = None
    elif fault in TOKEN_FAULTS:
        out[data.draw(st.sampled_from(("prompt_tokens", "completion_tokens")))] = TOKEN_FAULTS[fault]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=call_log_case())
def test_call_logs_load_exactly_the_valid_rows_and_reject_the_rest_by_row(tmp_path_factory, case):
    rows, fmt, data = case
    folder = tmp_path_factory.mktemp("calls") / f"date={DAY}"
    folder.mkdir()
    path = folder / f"part-0.{fmt}"
    cells = [_apply_row_fault(r, data) for r in rows]
    con = duckdb.connect()
    try:
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(cells[0]), lineterminator=data.draw(
                st.sampled_from(("\n", "\r\n"))))
            writer.writeheader()
            writer.writerows(cells)
            path.write_text(buf.getvalue(), encoding="utf-8")
        else:
            # Parquet holds typed columns: a token fault that is not an integer makes that column text,
            # as an export from a loosely typed source would
            columns = {k: [c[k] for c in cells] for k in cells[0]}
            frame = pl.DataFrame({k: [None if v is None else str(v) for v in vals] for k, vals in columns.items()})
            for k in ("prompt_tokens", "completion_tokens"):
                if all(isinstance(v, int) for v in columns[k]):
                    frame = frame.with_columns(pl.col(k).cast(pl.Int64))
            if not any(r["fault"] == "bad_timestamp" for r in rows):
                frame = frame.with_columns(pl.col("timestamp").str.to_datetime())
            frame.write_parquet(path)
        result = load_day(con, DAY, [path], CFG, False)
        bad = [i + 1 for i, r in enumerate(rows) if r["fault"]]
        good = [r for r in rows if not r["fault"]]
        rejected = con.execute("select row_number, reason, file from raw.call_log_rejects order by row_number").fetchall()
        assert [r[0] for r in rejected] == bad, rejected
        assert all(f == str(path) and reason for _, reason, f in rejected)
        assert result["rows_rejected"] == len(bad) and result["rows_loaded"] == len(good)
        got = con.execute("select coalesce(sum(requests), 0), coalesce(sum(prompt_tokens), 0), "
                          "coalesce(sum(completion_tokens), 0) from raw.call_log_daily").fetchone()
        want = (len(good), sum(r["prompt_tokens"] for r in good), sum(r["completion_tokens"] for r in good))
        assert tuple(int(v) for v in got) == want
        models = {m for (m,) in con.execute("select distinct model from raw.call_log_daily").fetchall()}
        assert models == {r["model"] for r in good}
    finally:
        con.close()


def test_nan_and_infinity_are_not_finite_numbers(tmp_path):
    """A plain example of the DOUBLE rule the properties rely on (DuckDB itself parses 'nan' and 'inf')."""
    source = BY_STEM["fx_rates_annual"]
    con = duckdb.connect()
    for bad in ("nan", "inf", "-Infinity", "1e400"):
        path = tmp_path / "fx_rates_annual.csv"
        path.write_text(f"year,currency,usd_per_unit,source_id,confidence\n2024,EUR,{bad},s1,high\n")
        with pytest.raises(InputFileError, match="not a finite number") as info:
            load_source(con, source, path)
        assert (info.value.line, info.value.column) == (2, "usd_per_unit")
