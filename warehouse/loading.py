"""Load one input CSV into `raw.<stem>` through DuckDB's CSV reader, validating as it goes.

Every failure raises `InputFileError` naming the file, the line (the CSV record number, header = 1;
it equals the physical line unless a quoted value spans lines) and the column, before anything is written: the table already in the warehouse stays as it was.
A good file is first built into a staging table and then swapped in within one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
from pathlib import Path

import duckdb

from warehouse.sources import Source
from warehouse.io import quote_ident, quote_text, replace_table


class InputFileError(ValueError):
    """A source file breaks its contract. The message names file, line and column."""

    def __init__(self, path: Path | str, line: int | None, column: str | None, problem: str):
        self.path, self.line, self.column, self.problem = str(path), line, column, problem
        where = [f"{self.path}"]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {problem}")


def _check_bytes(path: Path) -> list[str]:
    """Empty file and encoding checks; returns the header fields."""
    raw = path.read_bytes()
    if not raw.strip():
        raise InputFileError(path, None, None, "the file is empty (expected a header row and data rows)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        prefix = raw[line_start:exc.start].decode("utf-8", errors="replace")
        header = next(csv.reader(io.StringIO(raw.split(b"\n", 1)[0].decode("utf-8", errors="replace"))))
        idx = len(next(csv.reader(io.StringIO(prefix)), [""])) - 1
        column = header[idx] if 0 <= idx < len(header) else None
        raise InputFileError(
            path, line_no, column,
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {exc.start}); save the file as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    # records as the CSV reader sees them (str.splitlines would also split at form feeds and other
    # unicode line breaks inside values); a first data line too long for Python's csv module is left
    # to DuckDB, which reports it with its line number
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    data_rows, blank_at = 0, None
    try:
        for record in reader:
            if not record:
                blank_at = blank_at or reader.line_num
            elif blank_at is not None:
                # DuckDB skips empty lines, which would shift every line number after them
                raise InputFileError(path, blank_at, None, "empty line between data rows; remove it")
            else:
                data_rows += 1
    except csv.Error:  # a field too long for Python's csv module: DuckDB reports it with its line
        data_rows = max(data_rows, 1)
    if data_rows == 0:
        raise InputFileError(path, 2, None, "the file has a header but no data rows")
    return header


def closest(value: str, known, n: int = 3) -> str:
    """' (closest: a, b)' for a misspelt name, or '' when nothing is close."""
    near = difflib.get_close_matches(str(value), [str(k) for k in known], n=n, cutoff=0.5)
    if not near:
        lowered = {str(k).lower(): str(k) for k in known}
        near = [lowered[m] for m in difflib.get_close_matches(str(value).lower(), list(lowered), n=n, cutoff=0.5)]
    return f" (closest: {', '.join(near)})" if near else ""


def _check_header(path: Path, source: Source, header: list[str]) -> None:
    expected = list(source.columns)
    header = [c for c in header if c not in source.optional]
    if len(header) == 1 and len(expected) > 1:
        for sep in (";", "\t", "|"):
            if sep in header[0]:
                shown = "tab" if sep == "\t" else repr(sep)
                raise InputFileError(path, 1, None, f"the header is one field holding {shown}: the file seems to be "
                                     f"delimited by {shown}; save it comma-separated (expected columns {expected})")
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in source.columns]
    if extra and source.optional:
        expected = expected + [f"optionally {c}" for c in source.optional]
    if missing and extra:
        hints = "; ".join(f"'{e}' may be '{difflib.get_close_matches(e, missing, 1, 0.5)[0]}'"
                          for e in extra if difflib.get_close_matches(e, missing, 1, 0.5))
        raise InputFileError(path, 1, extra[0], f"unexpected column(s) {extra} and missing column(s) {missing}"
                             + (f"; {hints}" if hints else "") + f"; expected {expected}")
    if missing:
        raise InputFileError(path, 1, missing[0], f"missing column(s) {missing}; expected {expected}")
    if extra:
        raise InputFileError(path, 1, extra[0], f"unexpected column(s) {extra}; expected {expected}")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise InputFileError(path, 1, dupes[0], "column appears more than once in the header")


def _first_violation(con: duckdb.DuckDBPyConnection, table: str, where: str, select: str = "null"):
    return con.execute(
        f"select rowid + 2 as line, {select} from {table} where {where} order by rowid limit 1"
    ).fetchone()


def _check_references(con: duckdb.DuckDBPyConnection, path: Path, tmp: str, col: str,
                      targets: tuple[tuple[str, str], ...]) -> None:
    """Every value of `col` must appear in one of the referenced columns of the other source files in the
    same directory (a file that is absent is skipped: its own asset reports it)."""
    parts = []
    for stem, target in targets:
        other = path.parent / f"{stem}.csv"
        if other.is_file():
            parts.append(f"select cast({quote_ident(target)} as varchar) as v from read_csv({quote_text(str(other))}, "
                         "header = true, all_varchar = true)")
    if not parts:
        return
    known_sql = f"select v from ({' union all '.join(parts)}) where v is not null"
    try:
        hit = _first_violation(con, tmp, f"{quote_ident(col)} is not null and {quote_ident(col)} not in ({known_sql})",
                               quote_ident(col))
    except duckdb.Error:  # a broken referenced file fails its own load with file, line and column
        return
    if hit:
        where = " or ".join(f"{stem}.csv ({target})" for stem, target in targets)
        known = [r[0] for r in con.execute(f"select distinct v from ({known_sql})").fetchall()]
        raise InputFileError(path, hit[0], col, f"unknown value {hit[1]!r}: not in {where}{closest(hit[1], known)}")


def load_source(con: duckdb.DuckDBPyConnection, source: Source, path: Path, as_of: dt.date | None = None) -> int:
    """Validate `path` against `source` and replace `raw.<stem>` with it. Returns the row count loaded.

    With `as_of`, every row is validated but only the rows known on that date (`source.known_on_sql`)
    are loaded: a point-in-time run sees the data of its vintage."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, None, None, f"file not found (source '{source.stem}' expects {source.file_name})")
    header = _check_bytes(path)
    _check_header(path, source, header)

    types = {**source.columns, **source.optional}
    columns = ", ".join(f"{quote_text(c)}: {quote_text(types[c])}" for c in header)
    tmp = f"_load_{source.stem}"
    con.execute(f"drop table if exists {tmp}")
    con.execute("drop table if exists reject_errors; drop table if exists reject_scans")
    con.execute(
        f"""create temp table {tmp} as
        select * from read_csv({quote_text(str(path))}, header = true, auto_detect = false,
            columns = {{{columns}}}, dateformat = '%Y-%m-%d', parallel = false,
            store_rejects = true, rejects_table = 'reject_errors', rejects_scan = 'reject_scans')"""
    )
    reject = con.execute(
        "select line, column_name, error_type, csv_line, error_message, column_idx "
        "from reject_errors order by line limit 1"
    ).fetchone()
    if reject:
        line, column, error_type, csv_line, message, column_idx = reject
        error_type = str(error_type)
        if error_type == "CAST":
            # with CRLF line endings DuckDB's rejected-line text starts with the previous line's \n
            fields = next(csv.reader(io.StringIO((csv_line or "").lstrip("\r\n"))), [])
            idx = header.index(column) if column in header else (column_idx or 0)
            value = fields[idx] if idx < len(fields) else ""
            expected = source.columns.get(column, "?")
            what = "an unparseable date (expected YYYY-MM-DD)" if expected == "DATE" else f"not a valid {expected}"
            problem = f"value {value!r} is {what}"
        elif error_type in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
            problem = f"{error_type.lower()} on this row (expected {len(header)} fields)"
            column = None
        elif error_type == "LINE SIZE OVER MAXIMUM":
            problem = "the line is longer than the 2,000,000-byte maximum of a CSV line"
            column = None
        elif error_type == "INVALID ENCODING":
            problem = "not valid UTF-8; save the file as UTF-8"
        else:
            problem = f"{error_type}: {message}"
        raise InputFileError(path, int(line), column, problem)

    n_rows = con.execute(f"select count(*) from {tmp}").fetchone()[0]
    if n_rows == 0:
        raise InputFileError(path, 2, None, "the file has a header but no data rows")

    for col in source.optional:
        if col not in header:
            con.execute(f"alter table {tmp} add column {quote_ident(col)} {source.optional[col]}")
    for col, kind in source.columns.items():
        if kind == "DOUBLE":
            hit = _first_violation(con, tmp, f"not isfinite({quote_ident(col)})", f"cast({quote_ident(col)} as varchar)")
            if hit:
                raise InputFileError(path, hit[0], col, f"value {hit[1]} is not a finite number (NaN, infinity or "
                                     "beyond the range of a double)")
        elif kind == "VARCHAR":
            hit = _first_violation(con, tmp, f"contains({quote_ident(col)}, chr(0))")
            if hit:
                raise InputFileError(path, hit[0], col, "value contains a NUL character")
    for col in source.required:
        hit = _first_violation(con, tmp, f"{quote_ident(col)} is null")
        if hit:
            raise InputFileError(path, hit[0], col, "value is missing (this column is required)")
    for col in source.non_negative:
        hit = _first_violation(con, tmp, f"{quote_ident(col)} < 0", quote_ident(col))
        if hit:
            raise InputFileError(path, hit[0], col, f"negative quantity {hit[1]!r}")
    for low, mid, high in source.ordered:
        cols = [quote_ident(c) for c in (low, mid, high)]
        for a, b, name in ((cols[0], cols[1], low), (cols[1], cols[2], high)):
            hit = _first_violation(con, tmp, f"{a} > {b}", f"cast({a} as varchar) || ' > ' || cast({b} as varchar)")
            if hit:
                raise InputFileError(path, hit[0], name, f"range out of order: {hit[1]} (needs {low} <= {mid} <= {high})")
    for col in source.fractions:
        hit = _first_violation(con, tmp, f"{quote_ident(col)} > 1", quote_ident(col))
        if hit:
            raise InputFileError(path, hit[0], col, f"value {hit[1]!r} is a fraction and may not exceed 1")
    for col, allowed in source.allowed.items():
        values = ", ".join(quote_text(v) for v in allowed)
        hit = _first_violation(
            con, tmp, f"{quote_ident(col)} is not null and {quote_ident(col)} not in ({values})", quote_ident(col)
        )
        if hit:
            raise InputFileError(path, hit[0], col, f"unknown value {hit[1]!r}; allowed: {list(allowed)}")
    for col, targets in source.references.items():
        _check_references(con, path, tmp, col, targets)
    key = ", ".join(quote_ident(c) for c in source.key)
    dup = con.execute(
        f"""select line, first_line from (
              select rowid + 2 as line, min(rowid + 2) over (partition by {key}) as first_line from {tmp})
            where line > first_line order by line limit 1"""
    ).fetchone()
    if dup:
        raise InputFileError(
            path, dup[0], source.key[0],
            f"duplicate natural key ({', '.join(source.key)}): same as line {dup[1]}",
        )

    cols = ", ".join(quote_ident(c) for c in [*source.columns, *source.optional])
    known = source.known_on_sql
    where = f"where {known} <= {quote_text(as_of.isoformat())}::date" if as_of and known else ""
    n_loaded = replace_table(
        con,
        source.table,
        f"""select {cols}, cast(rowid + 2 as integer) as _line, {quote_text(str(path))} as _source_file,
                   current_timestamp as _loaded_at
            from {tmp} {where} order by rowid""",
    )
    con.execute(f"drop table if exists {tmp}")
    return int(n_loaded)
