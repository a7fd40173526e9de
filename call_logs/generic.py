"""Call logs, the generic path: Parquet (typed: row-group statistics decide what pass 2 reads; text-typed:
pass 1 lists its bad rows), flat files, and CSV files of differing headers. Pass 1 aggregates all rows by
(file, day, model, provider, status); pass 2 lists the bad rows, which are subtracted from pass 1's
groups (see generic_passes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from call_logs.config import BAD_TABLE, CSV_BUFFER_BYTES, INTEGER_TYPES, REQUIRED, TOKENS, CallLogError, sql_list
from warehouse.io import quote_text


def _typed(col: dict, types: dict) -> tuple[str, dict, list[str], list[str]]:
    """SQL for the typed timestamp and token values, the format checks that text columns need, and the
    negative-count checks. Columns that arrive typed (Parquet BIGINT, TIMESTAMP) skip the casts."""
    typed_ts = types.get("timestamp", "").startswith("TIMESTAMP")
    ts = col["timestamp"] if typed_ts else f"try_cast({col['timestamp']} as timestamp)"
    tok, format_checks, negative = {}, [], []
    for t in TOKENS:
        if col[t] == "null" or types.get(t) in INTEGER_TYPES:
            tok[t] = col[t]
        else:
            # NaN, infinities and counts beyond BIGINT parse as doubles but are no token counts: null
            # ("missing or non-numeric token count"), so they never reach a sum
            value = f"try_cast({col[t]} as double)"
            tok[t] = f"(case when abs({value}) < 9.2e18 then {value} end)"
            format_checks.append(f"({col[t]} is not null and {tok[t]} is null) or {tok[t]} <> floor({tok[t]})")
        if col[t] != "null":
            negative.append(f"{tok[t]} < 0")
    return ts, tok, format_checks, negative


def file_reader(files: list[Path], fmt: str) -> str:
    if fmt == "parquet":
        return f"read_parquet({sql_list(files)}, filename = true, file_row_number = true, union_by_name = true, " \
               "hive_partitioning = false)"
    return f"read_csv({sql_list(files)}, filename = true, hive_partitioning = false, union_by_name = true, " \
           f"all_varchar = true, header = true, buffer_size = {CSV_BUFFER_BYTES})"


def _checked(reader: str, row_number: str, col: dict, types: dict, day_expr: str, ok: str, failed: str) -> str:
    """Every row of `reader` with its typed values, its day (`day_expr`: the partition day of its file, or
    the timestamp's day for flat files) and the reason it is rejected (null = valid).

    Type-aware: columns that arrive typed (Parquet BIGINT tokens, TIMESTAMP) skip the casts and the
    numeric-format checks that only text needs."""
    ts, tok, _, _ = _typed(col, types)
    status = f"cast({col['status']} as varchar)" if col["status"] != "null" else "null"
    unknown = f"when status is not null and status not in ({ok}, {failed}) then 'unknown status'"
    day = day_expr.format(ts=ts)
    # typed values are computed once per row (inner select); the reason reads them by name
    text_tokens = [t for t in TOKENS if col[t] != "null" and types.get(t) not in INTEGER_TYPES]
    raw = "".join(f", {col[t]} as _raw_{t}" for t in text_tokens)
    bad_tokens = " or ".join(f"(_raw_{t} is not null and {t} is null) or {t} <> floor({t})" for t in text_tokens) \
        or "false"
    negative = " or ".join(f"{t} < 0" for t in TOKENS if col[t] != "null") or "false"
    return f"""
        select *,
               case
                   when ts is null then 'unparseable timestamp'
                   when ts < day::timestamp or ts >= day::timestamp + interval 1 day
                       then 'timestamp outside its day partition'
                   when model is null then 'missing model'
                   when prompt_tokens is null or completion_tokens is null then 'missing or non-numeric token count'
                   when {bad_tokens} then 'non-integer token count'
                   when {negative} then 'negative token count'
                   {unknown}
               end as reason
        from (
            select file_index, filename, {row_number} as row_number, {day} as day, {ts} as ts,
                   cast({col['model']} as varchar) as model, cast({col['provider']} as varchar) as provider,
                   {tok['prompt_tokens']} as prompt_tokens, {tok['completion_tokens']} as completion_tokens,
                   {tok['cached_tokens']} as cached_tokens, {tok['reasoning_tokens']} as reasoning_tokens,
                   {status} as status {raw}
            from {reader})"""


def generic_passes(con, files: list[Path], file_day: dict[Path, dt.date], fmt: str, col: dict, types: dict,
                   ok: str, failed: str, from_flat: bool) -> list[str]:
    """Parquet, flat files and CSV files of differing headers: pass 1 aggregates all rows by (file, day,
    model, provider, status) with counts and token sums (and, except on the typed-Parquet fast path, the
    timestamp range and the rows failing the cheap checks); pass 2 lists the bad rows, which
    _replace_days subtracts from pass 1's groups. Returns the temp tables that hold rejected rows."""
    reader = file_reader(files, fmt)
    ts, tok, format_checks, negatives = _typed(col, types)
    checks = [f"{ts} is null", f"{col['model']} is null", f"{tok['prompt_tokens']} is null",
              f"{tok['completion_tokens']} is null", *format_checks, *negatives]
    status = f"cast({col['status']} as varchar)" if col["status"] != "null" else "null"
    day_key = f"cast({ts} as date)" if from_flat else "null::date"
    parquet = fmt == "parquet"
    # typed Parquet in day folders: the row-group statistics say which files may hold bad rows, so pass 1
    # is a plain aggregation and pass 2 reads only the row groups the statistics cannot clear
    fast = parquet and not from_flat and types.get("timestamp", "").startswith("TIMESTAMP") and all(
        col[t] == "null" or types.get(t) in INTEGER_TYPES for t in TOKENS)
    # Parquet: pass 1 also collects the rows failing the cheap checks (few) with their row numbers and
    # values, at almost no cost; CSV has no row numbers, so its bad rows come from pass 2
    lean = reader.replace("filename = true, ", "").replace("file_row_number = true, ", "") if fast else \
        reader.replace("filename = true, ", "")
    collect = (f", list({{'row_number': file_row_number + 1, 'ts': {ts}, 'model': {col['model']}, "
               f"'prompt': {tok['prompt_tokens']}, 'completion': {tok['completion_tokens']}, "
               f"'cached': {tok['cached_tokens']}, 'reasoning': {tok['reasoning_tokens']}}}) "
               f"filter (where {' or '.join(checks)}) as bad_rows") if parquet and not fast else ""
    validity = "" if fast else (f", min({ts}) as ts_min, max({ts}) as ts_max, "
                                f"count(*) filter (where {' or '.join(checks)}) as n_bad")

    def text(c: str) -> str:  # no cast where the column already is text
        if col[c] == "null":
            return "null::varchar"  # an absent optional column is text, not DuckDB's default INTEGER null
        return col[c] if types.get(c) == "VARCHAR" else f"cast({col[c]} as varchar)"

    try:
        con.execute(f"""create or replace temp table _call_log_batch as
            select file_index, {day_key} as row_day, {text('model')} as model,
                   {text('provider')} as provider, {text('status')} as status, count(*) as requests,
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
    unknown_status = f"(status is not null and status not in ({ok}, {failed}))"
    # pass 2 only for files whose problems pass 1 cannot list: any bad row in CSV; in Parquet, a
    # timestamp outside the file's day or an unknown status
    unknown = con.execute(f"select distinct file_index, status from _batch_days where {unknown_status}").fetchall()
    unknown_values = ", ".join(sorted({quote_text(v) for _, v in unknown}))
    if fast:
        suspects = _suspect_predicates(con, files, file_day, col)
        for i in sorted({i for i, _ in unknown}):
            suspects.setdefault(files[i], []).append(f"cast({col['status']} as varchar) in ({unknown_values})")
        dirty = sorted(suspects)
    else:
        rescan = f"{out_of_day} or {unknown_status}" + ("" if parquet else " or n_bad > 0")
        dirty = [files[i] for (i,) in con.execute(
            f"select distinct file_index from _batch_days where {rescan} order by 1").fetchall()]
    if not dirty and (fast or not parquet):
        return []  # no bad rows (the common case): no reject table, nothing to subtract
    con.execute(BAD_TABLE)
    if parquet and not fast:
        file_names = ", ".join(f"({i}, {quote_text(str(f))})" for i, f in enumerate(files))
        con.execute(f"""insert into _call_log_bad
            select b.file_index, b.day, n.file, r.row_number,
                   case when r.ts is null then 'unparseable timestamp'
                        when r.model is null then 'missing model'
                        when r.prompt is null or r.completion is null then 'missing or non-numeric token count'
                        else 'negative token count' end,
                   b.model, b.provider, b.status, r.prompt, r.completion, r.cached, r.reasoning
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
            # only the rows pass 1 did not list (out of the day, unknown status), found with simple
            # predicates that DuckDB pushes into the Parquet scan
            preds = []
            if not from_flat:
                preds += [f"{ts} < {day}::timestamp", f"{ts} >= {day}::timestamp + interval 1 day"]
            if unknown_values:
                preds.append(f"{status} in ({unknown_values})")
            one = (f"(select *, file_index from {file_reader([path], fmt)} "
                   f"where ({' or '.join(preds) or 'false'}) and not ({' or '.join(checks)}))")
            number = "file_row_number + 1"
        else:  # CSV has no row-number column: re-read the file in order, numbered
            one = (f"read_csv({sql_list([path])}, filename = true, all_varchar = true, header = true, "
                   "parallel = false, hive_partitioning = false)")
            number = "row_number() over ()"
        checked = _checked(one, number, col, types if parquet else {}, day, ok, failed)
        try:
            con.execute(f"""insert into _call_log_bad select {position[path]}, day, filename, row_number, reason, model,
                            provider, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens
                            from ({checked}) where reason is not null""")
        except duckdb.Error as exc:
            raise CallLogError(f"cannot read call-log file {path}: {str(exc).splitlines()[0]}") from None
    return ["_call_log_bad"]


def _suspect_predicates(con, files: list[Path], file_day: dict[Path, dt.date], col: dict) -> dict[Path, list[str]]:
    """Per file, the single-column predicates that may match bad rows, judged from the Parquet row-group
    statistics (null counts, min and max). A column without statistics is suspect on every count."""
    names = {name: src.strip('"') for name, src in col.items() if src != "null"}
    wanted = ", ".join(quote_text(v) for v in names.values())
    stats = con.execute(f"""
        select file_name, path_in_schema,
               sum(stats_null_count) filter (where stats_null_count is not null) as nulls,
               count(*) filter (where stats_null_count is null) as no_null_stats,
               count(*) filter (where stats_min_value is null or stats_max_value is null) as no_range,
               min(try_cast(stats_min_value as double)) as min_num,
               min(try_cast(stats_min_value as timestamp)) as min_ts,
               max(try_cast(stats_max_value as timestamp)) as max_ts
        from parquet_metadata({sql_list(files)})
        where path_in_schema in ({wanted})
        group by all""").fetchall()
    by_file: dict[str, dict[str, tuple]] = {}
    for file_name, column, nulls, no_null_stats, no_range, min_num, min_ts, max_ts in stats:
        by_file.setdefault(file_name, {})[column] = (bool(nulls) or no_null_stats > 0, no_range > 0, min_num,
                                                     min_ts, max_ts)
    out: dict[Path, list[str]] = {}
    for path in files:
        day = file_day[path]
        start, end = dt.datetime.combine(day, dt.time()), dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        cols = by_file.get(str(path), {})
        preds = []
        for name in ("timestamp", "model", *TOKENS):
            if name not in names:
                continue
            has_nulls, no_range, min_num, min_ts, max_ts = cols.get(names[name], (True, True, None, None, None))
            q = col[name]
            if has_nulls and (name in REQUIRED):
                preds.append(f"{q} is null")
            if name == "timestamp":
                if no_range or min_ts is None or min_ts < start:
                    preds.append(f"{q} < timestamp '{start}'")
                if no_range or max_ts is None or max_ts >= end:
                    preds.append(f"{q} >= timestamp '{end}'")
            elif name in TOKENS and (no_range or min_num is None or min_num < 0):
                preds.append(f"{q} < 0")
        if preds:
            out[path] = preds
    return out
