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

    from warehouse.io import WarehouseError, published_copy
    from pipelines.readers import unreadable
    from pipelines.query import open_read_only
    from reports.export import EXPORT_TABLES, export

    # the published copy of the warehouse (T2C_WAREHOUSE or the default), never the writer's live file, unless
    # --warehouse names a file
    if args.warehouse:
        source = Path(args.warehouse).expanduser()
    else:
        live = Paths.from_env().warehouse
        source = published_copy(live) if published_copy(live).exists() else live
    problem = unreadable(source)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        con = open_read_only(source)
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        existing = {f"{s}.{t}" for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables()").fetchall()}
        missing = [t for t, _ in EXPORT_TABLES.values() if t not in existing]
        if missing:
            print(f"error: {source} lacks {', '.join(missing)}; run `tokens2chips run` first", file=sys.stderr)
            return 1
        frames = {name: (table, con.execute(f"select * from {table}").pl())
                  for name, (table, _) in EXPORT_TABLES.items()}
        as_of = None
        if "meta.runs" in existing:
            hit = con.execute("select as_of from meta.runs where status = 'SUCCESS' "
                              "order by started_at desc limit 1").fetchone()
            as_of = hit[0] if hit else None
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    out = Path(args.out) if args.out else Paths.from_env().reports_dir / "exports" / (str(as_of or "undated"))
    meta = {"source": source, "as_of": as_of,
            "exported_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}
    written = export(frames, meta, out, args.format)
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
