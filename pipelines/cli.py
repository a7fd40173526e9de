"""tokens2chips command line: run the pipeline, query the warehouse, rebuild the report, export tables."""

# This module parses and dispatches only; each command lives in its own module: run_cli (with
# instance_repair and readers), query_cli, report_cli, backtest_cli, export_cli, hardware_cli.

from __future__ import annotations

import argparse
import sys

from pipelines.query_cli import cmd_query
from pipelines.report_cli import cmd_report
from pipelines.run_cli import cmd_run
from pipelines.settings import debug
from pipelines.usage import OneLineParser, UsageError, join_negative_numbers


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' to an option's help unless it has no default or already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"

def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("tokens2chips")
    except PackageNotFoundError:
        release = "unknown (not installed)"
    parser = OneLineParser(prog="tokens2chips", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tokens2chips {release}")
    parser.add_argument("--profile", choices=("embedded", "scaled"),
                        help="deployment profile (env T2C_PROFILE, default embedded): embedded = SQLite Dagster "
                        "instance and one DuckDB file; scaled = PostgreSQL instance, Celery workers on Redis and a "
                        "DuckLake warehouse (README: Beyond one machine)")
    parser.add_argument("--snapshot", help="scaled profile: read the DuckLake warehouse at this snapshot (version "
                        "number or ISO timestamp; env T2C_SNAPSHOT) in query, report and export")
    sub = parser.add_subparsers(dest="command", required=True)
    _add = sub.add_parser

    def add_parser(*a, **k):
        return _add(*a, formatter_class=_DefaultsFormatter, **k)

    sub.add_parser = add_parser

    run = sub.add_parser("run", help="materialise every asset as a Dagster run")
    run.add_argument("--data-dir", help="input CSV directory (env T2C_DATA_DIR, default data/)")
    run.add_argument("--warehouse", help="DuckDB file (env T2C_WAREHOUSE, default var/warehouse.duckdb)")
    run.add_argument("--reports-dir", help="report directory (env T2C_REPORTS_DIR, default var/reports/)")
    run.add_argument("--assumptions", help="assumptions YAML (env T2C_ASSUMPTIONS, default config/assumptions.yaml)")
    run.add_argument("--as-of", help="as-of date YYYY-MM-DD (default today, UTC)")
    run.add_argument("--call-logs", help="directory of request-level call logs (env T2C_CALL_LOGS)")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait up to SECONDS for another run on the same warehouse (default: fail at once)")
    run.set_defaults(func=cmd_run)

    query = sub.add_parser("query", help="read-only SQL on the warehouse")
    query.add_argument("sql", help="one SELECT / WITH / SHOW / DESCRIBE / SUMMARIZE / EXPLAIN statement, quoted, "
                       "e.g. \"select * from marts.hardware_demand limit 5\" (`show all tables` lists the tables)")
    query.add_argument("--warehouse", help="DuckDB file (default: the published copy of var/warehouse.duckdb)")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="table: aligned text for reading; csv/json: every row, for other tools")
    query.add_argument("--max-rows", type=int, default=50, help="rows shown in table format (the footer says "
                       "how many there are)")
    query.add_argument("--raw", action="store_true",
                       help="csv: keep text cells starting with = + - @ as they are (default: prefix them with ' "
                       "so that spreadsheets do not run them as formulas)")
    query.set_defaults(func=cmd_query)

    report = sub.add_parser("report", help="rebuild the analyst report from the warehouse (no model runs)")
    report.add_argument("--as-of", help="as-of date YYYY-MM-DD (default: the as-of date of the warehouse's data; "
                        "an earlier date is refused: build that vintage with `run --as-of`)")
    report.add_argument("--warehouse", help="DuckDB file (env T2C_WAREHOUSE; default: the published copy of "
                        "var/warehouse.duckdb)")
    report.add_argument("--reports-dir", help="report directory (env T2C_REPORTS_DIR, default var/reports/)")
    report.set_defaults(func=cmd_report)

    from pipelines.backtest_cli import add_parser as add_backtest
    from pipelines.export_cli import add_parser as add_export
    from pipelines.hardware_cli import add_parsers
    from pipelines.refresh_cli import add_parser as add_refresh
    from pipelines.whatif_cli import add_parser as add_whatif
    from pipelines.workers_cli import add_parser as add_workers

    add_backtest(sub)
    add_export(sub)
    add_parsers(sub)
    add_refresh(sub)
    add_whatif(sub)
    add_workers(sub)
    return parser

def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(join_negative_numbers(list(sys.argv[1:] if argv is None else argv)))
    # the profile is read once, from the environment (pipelines/settings.profile); the flag sets it
    if args.profile:
        os.environ["T2C_PROFILE"] = args.profile
    if args.snapshot:
        os.environ["T2C_SNAPSHOT"] = args.snapshot
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`tokens2chips query ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback (T2C_DEBUG=1 shows it)
        if debug():
            raise
        print(f"error: {type(exc).__name__}: {exc} (set T2C_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
