"""tokens2chips command line: run the pipeline, query the warehouse."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

from pipelines.settings import Paths, ensure_dagster_home


def published_copy(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.stem + ".published" + warehouse.suffix)


def _publish(warehouse: Path) -> Path:
    """Copy the warehouse to a read-only published copy (atomic replace) for analysts' queries."""
    target = published_copy(warehouse)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(warehouse, tmp)
    os.replace(tmp, target)
    return target


def cmd_run(args: argparse.Namespace) -> int:
    if args.as_of:
        try:
            dt.date.fromisoformat(args.as_of)
        except ValueError:
            print(f"error: --as-of {args.as_of!r} is not a date (expected YYYY-MM-DD)", file=sys.stderr)
            return 2
        os.environ["T2C_AS_OF"] = args.as_of
    paths = Paths.from_env(data_dir=args.data_dir, warehouse=args.warehouse, reports_dir=args.reports_dir,
                           assumptions=args.assumptions)
    if not paths.data_dir.is_dir():
        print(f"error: data directory {paths.data_dir} does not exist", file=sys.stderr)
        return 2
    if not paths.assumptions.is_file():
        print(f"error: assumptions file {paths.assumptions} does not exist", file=sys.stderr)
        return 2
    paths.export()
    home = ensure_dagster_home()

    import dagster as dg

    from assets.runs import record_run
    from pipelines.definitions import build_resources, refresh_all_job

    print(f"tokens2chips run: data {paths.data_dir}\n  warehouse {paths.warehouse}\n  dagster home {home}")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(refresh_all_job),
            instance=instance,
            run_config={"loggers": {"progress": {}}},
            tags={"launched_by": "tokens2chips run"},
            raise_on_error=False,
        )
        resources = build_resources()
        with resources["warehouse"].get_connection() as con:
            row = record_run(
                con, instance, result.run_id, as_of=resources["settings"].as_of_date(),
                data_dir=str(paths.data_dir), warehouse=str(paths.warehouse), assumptions=str(paths.assumptions),
            )
    elapsed = time.monotonic() - started
    checks = f"checks: {row['checks_passed']} passed, {row['checks_failed']} failed, {row['checks_warned']} warned"
    if not result.success:
        print(f"run {result.run_id} FAILED after {elapsed:.1f}s ({checks}); the warehouse keeps the last good "
              "version of every table that failed", file=sys.stderr)
        return 1
    published = _publish(paths.warehouse)
    print(f"run {result.run_id} succeeded in {elapsed:.1f}s ({checks}); published {published}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    if args.warehouse or os.environ.get("T2C_WAREHOUSE"):
        path = Paths.from_env(warehouse=args.warehouse).warehouse
    else:
        default = Paths.from_env().warehouse
        path = published_copy(default) if published_copy(default).exists() else default
    if not path.exists():
        print(f"error: warehouse {path} does not exist; run `tokens2chips run` first", file=sys.stderr)
        return 2
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        print(f"error: cannot open {path} read-only: {exc}", file=sys.stderr)
        return 2
    try:
        rel = con.sql(args.sql)
        if rel is None:
            print("error: the statement returned no rows (query is read-only: use a SELECT)", file=sys.stderr)
            return 2
        frame = rel.pl()
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    if args.format == "csv":
        sys.stdout.write(frame.write_csv())
    elif args.format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        import polars as pl

        with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200,
                       tbl_hide_dataframe_shape=False, thousands_separator=False):
            print(frame)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokens2chips", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialise every asset as a Dagster run")
    run.add_argument("--data-dir", help="input CSV directory (env T2C_DATA_DIR, default data/)")
    run.add_argument("--warehouse", help="DuckDB file (env T2C_WAREHOUSE, default var/warehouse.duckdb)")
    run.add_argument("--reports-dir", help="report directory (env T2C_REPORTS_DIR, default var/reports/)")
    run.add_argument("--assumptions", help="assumptions YAML (env T2C_ASSUMPTIONS, default config/assumptions.yaml)")
    run.add_argument("--as-of", help="as-of date YYYY-MM-DD (default today, UTC)")
    run.set_defaults(func=cmd_run)

    query = sub.add_parser("query", help="read-only SQL on the warehouse")
    query.add_argument("sql")
    query.add_argument("--warehouse", help="DuckDB file (default: the published copy of var/warehouse.duckdb)")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.add_argument("--max-rows", type=int, default=50, help="rows shown in table format")
    query.set_defaults(func=cmd_query)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
