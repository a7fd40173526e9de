"""`tokens2chips report`: rebuild the analyst report from the warehouse without re-running the models."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from pipelines.readers import open_reader, read_target
from pipelines.settings import Paths


def cmd_report(args: argparse.Namespace) -> int:
    import duckdb

    from assets.report import build_report
    from warehouse.io import connect, data_as_of

    paths = Paths.from_env(reports_dir=args.reports_dir)
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        print(f"error: --as-of {args.as_of!r} is not a date (expected YYYY-MM-DD)", file=sys.stderr)
        return 2
    source = read_target(args.warehouse)
    con, code = open_reader(source, lambda path: connect(path, read_only=True, wait_s=10))
    if con is None:
        return code
    try:
        vintage = data_as_of(con)
        if as_of is None:
            as_of = vintage or dt.datetime.now(dt.timezone.utc).date()
        horizon = con.execute("select max(value) from meta.assumptions "
                              "where name = 'forecast.horizon_end_year'").fetchone()[0]
        if horizon is not None and as_of.year > int(horizon):
            # as `run --as-of` refuses it: past the forecast horizon there is no 'now' to report (and the
            # report would take over latest/)
            print(f"error: --as-of {as_of} is after the forecast horizon of the warehouse's run (end of "
                  f"{int(horizon)}): there is no forecast for 'now'", file=sys.stderr)
            return 2
        if vintage and as_of < vintage:
            print(f"error: --as-of {as_of} is before the warehouse's data ({source} holds data as of {vintage}); "
                  f"a report as of {as_of} would show figures not known then. Build that vintage first: "
                  f"`tokens2chips run --as-of {as_of}`", file=sys.stderr)
            return 2
        path = build_report(con, as_of, paths.reports_dir)
    except duckdb.CatalogException as exc:
        print(f"error: the warehouse lacks a table the report needs ({exc}); run `tokens2chips run`", file=sys.stderr)
        return 1
    finally:
        con.close()
    print(f"report: {path / 'report.html'}\n        {path / 'report.md'}")
    return 0
