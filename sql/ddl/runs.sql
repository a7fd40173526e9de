-- meta.runs and meta.check_results: what each refresh run did (written by assets/runs.py from the Dagster
-- instance, one row per run and one per asset check; rewritten idempotently per run_id).
create table if not exists meta.runs (
    run_id varchar not null,  -- one row per run (delete + insert by run_id); no PRIMARY KEY: DuckLake has none
    job_name varchar,
    status varchar,
    started_at timestamp,
    finished_at timestamp,
    as_of date,
    data_dir varchar,
    warehouse varchar,
    assumptions varchar,
    row_counts json,
    checks_passed integer,
    checks_failed integer,
    checks_warned integer,
    error varchar,
    step_seconds json
);

-- columns added after the first release: warehouses built before them gain them here
alter table meta.runs add column if not exists error varchar;
alter table meta.runs add column if not exists step_seconds json;

create table if not exists meta.check_results (
    run_id varchar,
    asset varchar,
    check_name varchar,
    passed boolean,
    severity varchar,
    metadata json
);
