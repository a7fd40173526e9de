"""Call logs, the generic path: Parquet (typed: row-group statistics decide what pass 2 reads; text-typed:
pass 1 lists its bad rows), flat files, and CSV files of differing headers. Pass 1 aggregates all rows by
(file, day, model, provider, status); pass 2 lists the bad rows, which are subtracted from pass 1's
groups (see generic_passes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from call_logs.config import BAD_TABLE, CSV_BUFFER_BYTES, REQUIRED, TOKENS, CallLogError, ColumnMap, sql_list
from call_logs.rules import reject_reason
from warehouse.io import quote_text


def _typed(col: ColumnMap) -> tuple[str, dict[str, str]]:
    """SQL for the typed timestamp and token values. Columns that arrive typed (Parquet BIGINT,
    TIMESTAMP) skip the casts."""
    ts = col.sql("timestamp") if col.is_timestamp("timestamp") else f"try_cast({col.sql('timestamp')} as timestamp)"
    tok = {}
    for t in TOKENS:
        if not col.has(t) or col.is_integer(t):
            tok[t] = col.sql(t)
        else:
            # NaN, infinities and counts beyond BIGINT parse as doubles but are no token counts: null
            # ("missing or non-numeric token count"), so they never reach a sum
            value = f"try_cast({col.sql(t)} as double)"
            tok[t] = f"(case when abs({value}) < 9.2e18 then {value} end)"
    return ts, tok


def _text_tokens(col: ColumnMap) -> list[str]:
    """The token columns read as text (cast, so a value that is no number must be told from a missing one)."""
    return [t for t in col.tokens if not col.is_integer(t)]


def file_reader(files: list[Path], fmt: str) -> str:
    if fmt == "parquet":
        return f"read_parquet({sql_list(files)}, filename = true, file_row_number = true, union_by_name = true, " \
               "hive_partitioning = false)"
    return f"read_csv({sql_list(files)}, filename = true, hive_partitioning = false, union_by_name = true, " \
           f"all_varchar = true, header = true, buffer_size = {CSV_BUFFER_BYTES})"


def _checked(reader: str, row_number: str, col: ColumnMap, day_expr: str, ok: str, failed: str,
             from_flat: bool) -> str:
    """Every row of `reader` with its typed values, its day (`day_expr`: the partition day of its file, or
    the timestamp's day for flat files) and the reason it is rejected (null = valid; the row rules of
    call_logs/rules.py). Typed values are computed once per row (inner select); the reason reads them
    by name."""
    ts, tok = _typed(col)
    raw = "".join(f", {col.sql(t)} as _raw_{t}" for t in _text_tokens(col))
    reason = reject_reason("ts", None if from_flat else "day", "model", {t: t for t in col.tokens},
                           f"status is not null and status not in ({ok}, {failed})",
                           raw={t: f"_raw_{t}" for t in _text_tokens(col)})
    return f"""
        select *, {reason} as reason
        from (
            select file_index, filename, {row_number} as row_number, {day_expr.format(ts=ts)} as day, {ts} as ts,
                   {col.text('model')} as model, {col.text('provider')} as provider,
                   {tok['prompt_tokens']} as prompt_tokens, {tok['completion_tokens']} as completion_tokens,
                   {tok['cached_tokens']} as cached_tokens, {tok['reasoning_tokens']} as reasoning_tokens,
                   {col.text('status')} as status {raw}
            from {reader})"""


def generic_passes(con, files: list[Path], file_day: dict[Path, dt.date], fmt: str, col: ColumnMap,
                   ok: str, failed: str, from_flat: bool) -> list[str]:
    """Parquet, flat files and CSV files of differing headers: pass 1 aggregates all rows by (file, day,
    model, provider, status) with counts and token sums (and, except on the typed-Parquet fast path, the
    timestamp range and the rows failing the cheap checks); pass 2 lists the bad rows, which
    _replace_days subtracts from pass 1's groups. Returns the temp tables that hold rejected rows."""
    reader = file_reader(files, fmt)
    ts, tok = _typed(col)
    status = col.text("status")
    # the row rules but the one that needs the file's day (pass 1 settles that per group, from the
    # timestamps' range)
    cheap = reject_reason(ts, None, col.sql("model"), {t: tok[t] for t in col.tokens},
                          f"{status} is not null and {status} not in ({ok}, {failed})",
                          raw={t: col.sql(t) for t in _text_tokens(col)})
    day_key = f"cast({ts} as date)" if from_flat else "null::date"
    parquet = fmt == "parquet"
    # typed Parquet in day folders: the row-group statistics say which files may hold bad rows, so pass 1
    # is a plain aggregation and pass 2 reads only the row groups the statistics cannot clear
    fast = parquet and not from_flat and col.is_timestamp("timestamp") and all(col.is_integer(t) for t in col.tokens)
    # Parquet: pass 1 also collects the rows breaking a cheap rule (few) with their row numbers, values and
    # reasons, at almost no cost; CSV has no row numbers, so its bad rows come from pass 2
    lean = reader.replace("filename = true, ", "").replace("file_row_number = true, ", "") if fast else \
        reader.replace("filename = true, ", "")
    collect = (f", list({{'row_number': file_row_number + 1, 'reason': {cheap}, "
               f"'prompt': {tok['prompt_tokens']}, 'completion': {tok['completion_tokens']}, "
               f"'cached': {tok['cached_tokens']}, 'reasoning': {tok['reasoning_tokens']}}}) "
               f"filter (where ({cheap}) is not null) as bad_rows") if parquet and not fast else ""
    validity = "" if fast else (f", min({ts}) as ts_min, max({ts}) as ts_max, "
                                f"count(*) filter (where ({cheap}) is not null) as n_bad")

    try:
        con.execute(f"""create or replace temp table _call_log_batch as
            select file_index, {day_key} as row_day, {col.text('model')} as model,
                   {col.text('provider')} as provider, {col.text('status')} as status, count(*) as requests,
                   {', '.join(f'sum({tok[t]}) as {t}' for t in TOKENS)} {validity} {collect}
            from {lean} group by all""")
    except duckdb.Error as exc:
        raise CallLogError(f"cannot load call logs from {', '.join(str(f) for f in files)}: "
                           f"{str(exc).splitlines()[0]}") from None
    if from_flat:
        # a row's day is its timestamp's; a row whose timestamp does not parse has none, so its reject is
        # listed under the first day the files cover (whichever days this batch loads: not dropped, once)
        first_day = f"date '{con.execute('select min(row_day) from _call_log_batch').fetchone()[0]}'"
        con.execute(f"create or replace temp view _batch_days as "
                    f"select *, coalesce(row_day, {first_day}) as day from _call_log_batch")
    else:  # views: the groups are few, and a view costs less than one more table
        con.execute("create or replace temp view _batch_days as select b.*, f.day from _call_log_batch b "
                    "join _file_day f using (file_index)")
    out_of_day = "false" if from_flat else "ts_min < day::timestamp or ts_max >= day::timestamp + interval 1 day"
    # pass 2 only for files whose problems pass 1 cannot list: any bad row in CSV; in Parquet, a
    # timestamp outside the file's day (and on the typed fast path, which checks no row, any fault the
    # statistics allow, and an unknown status)
    if fast:
        unknown = con.execute(f"select distinct file_index, status from _batch_days "
                              f"where status is not null and status not in ({ok}, {failed})").fetchall()
        unknown_values = ", ".join(sorted({quote_text(v) for _, v in unknown}))
        suspects = _suspect_predicates(con, files, file_day, col)
        for i in sorted({i for i, _ in unknown}):
            suspects.setdefault(files[i], []).append(f"{col.text('status')} in ({unknown_values})")
        dirty = sorted(suspects)
    else:
        rescan = out_of_day + ("" if parquet else " or n_bad > 0")
        dirty = [files[i] for (i,) in con.execute(
            f"select distinct file_index from _batch_days where {rescan} order by 1").fetchall()]
    if not dirty and (fast or not parquet):
        return []  # no bad rows (the common case): no reject table, nothing to subtract
    con.execute(BAD_TABLE)
    if parquet and not fast:
        file_names = ", ".join(f"({i}, {quote_text(str(f))})" for i, f in enumerate(files))
        con.execute(f"""insert into _call_log_bad
            select b.file_index, b.day, n.file, r.row_number, r.reason, b.model, b.provider, b.status,
                   r.prompt, r.completion, r.cached, r.reasoning
            from (select *, unnest(bad_rows) as r from _batch_days where n_bad > 0) b
            join (values {file_names}) n(file_index, file) using (file_index)""")
    position = {path: i for i, path in enumerate(files)}
    for path in dirty:
        day = f"coalesce(cast({{ts}} as date), {first_day})" if from_flat else f"date '{file_day[path]}'"
        if fast:
            # one scan per suspect predicate, each a single-column filter that DuckDB checks against the
            # row-group statistics, so only the row groups that may hold such rows are read
            one = "(" + " union ".join(f"select *, file_index from {file_reader([path], fmt)} where {pred}"
                                       for pred in suspects[path]) + ")"
            number = "file_row_number + 1"
        elif parquet:
            # only the rows pass 1 did not list (out of the day), found with simple predicates that
            # DuckDB pushes into the Parquet scan
            one = (f"(select *, file_index from {file_reader([path], fmt)} "
                   f"where ({ts} < {day}::timestamp or {ts} >= {day}::timestamp + interval 1 day) "
                   f"and ({cheap}) is null)")
            number = "file_row_number + 1"
        else:  # CSV has no row-number column: re-read the file in order, numbered
            one = (f"read_csv({sql_list([path])}, filename = true, all_varchar = true, header = true, "
                   "parallel = false, hive_partitioning = false)")
            number = "row_number() over ()"
        checked = _checked(one, number, col, day, ok, failed, from_flat)
        try:
            con.execute(f"""insert into _call_log_bad select {position[path]}, day, filename, row_number, reason, model,
                            provider, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens
                            from ({checked}) where reason is not null""")
        except duckdb.Error as exc:
            raise CallLogError(f"cannot read call-log file {path}: {str(exc).splitlines()[0]}") from None
    return ["_call_log_bad"]


def _suspect_predicates(con, files: list[Path], file_day: dict[Path, dt.date], col: ColumnMap) -> dict[Path, list[str]]:
    """Per file, the single-column predicates that may match bad rows, judged from the Parquet row-group
    statistics (null counts, min and max). A column without statistics is suspect on every count. A count
    of 2.3e18 or more may take a row's four counts past BIGINT's range ('token counts out of range')."""
    wanted = ", ".join(quote_text(v) for v in col.sources.values())
    stats = con.execute(f"""
        select file_name, path_in_schema,
               sum(stats_null_count) filter (where stats_null_count is not null) as nulls,
               count(*) filter (where stats_null_count is null) as no_null_stats,
               count(*) filter (where stats_min_value is null or stats_max_value is null) as no_range,
               min(try_cast(stats_min_value as double)) as min_num,
               max(try_cast(stats_max_value as double)) as max_num,
               min(try_cast(stats_min_value as timestamp)) as min_ts,
               max(try_cast(stats_max_value as timestamp)) as max_ts
        from parquet_metadata({sql_list(files)})
        where path_in_schema in ({wanted})
        group by all""").fetchall()
    by_file: dict[str, dict[str, tuple]] = {}
    for file_name, column, nulls, no_null_stats, no_range, min_num, max_num, min_ts, max_ts in stats:
        by_file.setdefault(file_name, {})[column] = (bool(nulls) or no_null_stats > 0, no_range > 0, min_num,
                                                     max_num, min_ts, max_ts)
    out: dict[Path, list[str]] = {}
    for path in files:
        day = file_day[path]
        start, end = dt.datetime.combine(day, dt.time()), dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        cols = by_file.get(str(path), {})
        preds = []
        for name in ("timestamp", "model", *TOKENS):
            if not col.has(name):
                continue
            has_nulls, no_range, min_num, max_num, min_ts, max_ts = cols.get(col.sources[name],
                                                                             (True, True, None, None, None, None))
            q = col.sql(name)
            if has_nulls and (name in REQUIRED):
                preds.append(f"{q} is null")
            if name == "timestamp":
                if no_range or min_ts is None or min_ts < start:
                    preds.append(f"{q} < timestamp '{start}'")
                if no_range or max_ts is None or max_ts >= end:
                    preds.append(f"{q} >= timestamp '{end}'")
            elif name in TOKENS:
                if no_range or min_num is None or min_num < 0:
                    preds.append(f"{q} < 0")
                if no_range or max_num is None or max_num >= 2.3e18:
                    preds.append(f"{q} >= 2300000000000000000")
        if preds:
            out[path] = preds
    return out
