"""`tokens2chips refresh`: fetch the public feeds (or load a saved payload), keep each payload under
data/snapshots/<source>/<as_of>/, load the vintages into raw.feed_<source>, rebuild marts.source_revisions, and
print one line per source (rows, new, restated, as_of)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.settings import Paths, feed_settings


def _saved_summary(root: Path) -> str:
    from feeds import store
    from feeds.catalog import SOURCES

    parts = []
    for source in SOURCES:
        saved = store.snapshots(root, source)
        parts.append(f"{source} {len(saved)} vintage{'s' if len(saved) != 1 else ''}"
                     + (f", newest as of {saved[-1].as_of.date()}" if saved else ""))
    return "; ".join(parts)


def cmd_refresh(args: argparse.Namespace) -> int:
    from feeds.catalog import SOURCES
    from feeds.errors import FeedError, FeedOffline
    from feeds.refresh import refresh

    paths = Paths.from_env(data_dir=args.data_dir, warehouse=args.warehouse)
    root = paths.data_dir / "snapshots"
    if args.payload and not args.source:
        print("error: --payload needs --source (which feed the file comes from: "
              f"{', '.join(SOURCES)})", file=sys.stderr)
        return 2
    if args.offline:
        print(f"refresh: offline: nothing fetched, nothing changed (saved payloads: {_saved_summary(root)})")
        return 0
    sources = [args.source] if args.source else list(SOURCES)
    settings = feed_settings()
    skipped, failed, stored = [], False, False
    for source in sources:
        try:
            if args.payload:
                outcome = refresh(source, root, payload=[Path(p) for p in args.payload])
            else:
                outcome = refresh(source, root, settings=settings,
                                  log=lambda message: print(f"  {message}", file=sys.stderr))
        except FeedOffline as exc:
            reason = exc.problem.split(";")[0].removeprefix("no network ").strip("()")
            print(f"refresh: no network ({reason}): nothing fetched, nothing changed")
            return _load(paths, root) if stored else 0
        except FeedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        stored = stored or outcome.status == "stored"
        if outcome.status == "skipped":  # said after the others: without a network, one line says so
            skipped.append(outcome.message)
        else:
            print(outcome.message)
    for message in skipped:
        print(message)
    code = _load(paths, root) if stored else 0
    return 1 if failed else code


def _load(paths: Paths, root: Path) -> int:
    """Load every saved vintage into the warehouse (raw.feed_*, raw.feed_snapshots, marts.source_revisions in
    one transaction) under the run lock, and republish the analysts' copy if there is one."""
    from pipelines.runlock import RunLockBusy, run_lock
    from warehouse.feeds import refresh_tables
    from warehouse.io import WarehouseError, connect, not_a_database, publish, published_copy

    problem = not_a_database(paths.target)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(paths.warehouse, wait_s=60):
            con = connect(paths.target, wait_s=60)
            try:
                counts = refresh_tables(con, root, None)
            finally:
                con.close()
            published = paths.lake is None and published_copy(paths.warehouse).exists()
            if published:
                publish(paths.warehouse)
    except (RunLockBusy, WarehouseError) as exc:
        print(f"error: the payloads are saved but the warehouse was not updated: {exc}", file=sys.stderr)
        return 1
    print(f"warehouse: {', '.join(f'{t} {n:,} rows' for t, n in counts.items() if t.startswith('marts') or n)} in "
          f"{paths.warehouse}{' (published)' if published else ''}; `tokens2chips run` carries the new data into the "
          "forecasts, the fleet and the report")
    return 0


def add_parser(sub) -> None:
    from feeds.catalog import SOURCES

    refresh = sub.add_parser("refresh", help="fetch the public feeds (or load a saved payload) and keep each as a "
                             "vintage")
    refresh.add_argument("--source", choices=SOURCES, help="one feed (default: every feed)")
    refresh.add_argument("--payload", action="append", metavar="FILE",
                         help="load a saved response or download exactly as the source serves it (e.g. the "
                         "rankings-daily JSON body, ai_chip_sales.zip, summary_results.json) instead of fetching; "
                         "repeat for the files of one payload; needs --source")
    refresh.add_argument("--offline", action="store_true", help="fetch nothing: say what is saved and change nothing")
    refresh.add_argument("--data-dir", help="data directory whose snapshots/ keeps the payloads (env T2C_DATA_DIR, "
                         "default data/)")
    refresh.add_argument("--warehouse", help="DuckDB file to load into (env T2C_WAREHOUSE, default "
                         "var/warehouse.duckdb)")
    refresh.set_defaults(func=cmd_refresh)
