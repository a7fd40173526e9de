"""`tokens2chips export`: the key marts and meta.assumptions as an Excel workbook, or CSV / Parquet files,
read from the published copy of the warehouse (reports/export.py writes them)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from pipelines.settings import Paths


def cmd_export(args: argparse.Namespace) -> int:
    import duckdb

    from warehouse.io import data_as_of
    from pipelines.query import open_read_only
    from pipelines.readers import open_reader, read_target
    from reports.export import EXPORT_TABLES, export

    # the published copy of the warehouse (T2C_WAREHOUSE or the default), never the writer's live file, unless
    # --warehouse names a file
    source = read_target(args.warehouse, published_of_env=True)
    con, code = open_reader(source, open_read_only)
    if con is None:
        return code
    try:
        existing = {f"{s}.{t}" for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables()").fetchall()}
        missing = [t for t, _ in EXPORT_TABLES.values() if t not in existing]
        if missing:
            print(f"error: {source} lacks {', '.join(missing)}; run `tokens2chips run` first", file=sys.stderr)
            return 1
        frames = {name: (table, con.execute(f"select * from {table}").pl())
                  for name, (table, _) in EXPORT_TABLES.items()}
        as_of = data_as_of(con)
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    out = Path(args.out) if args.out else Paths.from_env().reports_dir / "exports" / (str(as_of or "undated"))
    meta = {"source": source, "as_of": as_of,
            "exported_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}
    try:
        written = export(frames, meta, out, args.format)
    except OSError as exc:  # an output directory that cannot be made or written
        print(f"error: cannot write the export to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"exported {len(frames)} tables ({args.format}) from {source}")
    for path in written:
        print(f"  {path}")
    return 0


def add_parser(sub) -> None:
    from reports.export import FORMATS

    export = sub.add_parser("export", help="write the key marts and assumptions as xlsx, csv or parquet")
    export.add_argument("--format", choices=FORMATS, default="xlsx",
                        help="xlsx: one workbook, a sheet per table after a cover sheet; csv/parquet: a file per "
                        "table plus cover and tables listings")
    export.add_argument("--out", help="output directory (default var/reports/exports/<data as-of>/)")
    export.add_argument("--warehouse", help="DuckDB file (default: the published copy of the warehouse, "
                        "T2C_WAREHOUSE or var/warehouse.duckdb)")
    export.set_defaults(func=cmd_export)
