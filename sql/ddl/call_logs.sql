-- Tables of the request-level call-log source (created if missing, so that the marts that read them
-- work before any log has been loaded). Written by the partitioned asset raw/call_log_daily
-- (assets/call_logs.py): each day-partition is replaced by delete + insert in one transaction.

-- raw.call_log_daily: valid requests aggregated per day, model and provider
create table if not exists raw.call_log_daily (
    day date not null,
    model varchar not null,
    provider varchar,
    requests bigint not null,
    failed_requests bigint not null,
    prompt_tokens bigint not null,
    completion_tokens bigint not null,
    cached_tokens bigint,
    reasoning_tokens bigint
);

-- raw.call_log_rejects: rows that were not loaded, with their file, row (1-based data row) and reason
create table if not exists raw.call_log_rejects (
    day date not null,
    file varchar not null,
    row_number bigint,
    reason varchar not null
);

-- meta.call_log_partitions: what each day-partition was loaded from (fingerprint of its files)
create table if not exists meta.call_log_partitions (
    day date not null,  -- one row per day (delete + insert); no index: DuckDB loads ART indexes lazily and slowly
    fingerprint varchar not null,
    files integer not null,
    rows_loaded bigint not null,
    rows_rejected bigint not null,
    loaded_at timestamp not null,
    seconds double not null
);
