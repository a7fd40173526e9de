"""`tokens2chips query`: one read-only SELECT on the published warehouse, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import sys

from pipelines.readers import open_reader, read_target


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.query import QueryRefused, flatten_nested, format_table, open_read_only, rewrite_show_tables, run_query
    from reports.export import formula_safe

    con, code = open_reader(read_target(args.warehouse), open_read_only)
    if con is None:
        return code
    try:
        frame = run_query(con, rewrite_show_tables(args.sql))
    except QueryRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    if args.format == "csv":
        frame = flatten_nested(frame)
        sys.stdout.write((frame if args.raw else formula_safe(frame)).write_csv())
    elif args.format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        print(format_table(frame, args.max_rows))
    return 0
