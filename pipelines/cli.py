"""tokens2chips command line: run the pipeline, query the warehouse."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from pipelines.settings import Paths, ensure_dagster_home


# dated sources without which a run has nothing to model: an as-of date before their first row is an error
AS_OF_REQUIRED = ("token_volume_observations", "chip_shipments_quarterly", "throughput_measurements")


def _as_of_problem(paths: Paths, as_of: dt.date) -> str | None:
    """An as-of date before the data: the sources a run needs hold no row known then."""
    import duckdb

    from assets.loading import InputFileError, load_source
    from assets.sources import SOURCES_BY_STEM

    con = duckdb.connect()
    try:
        for stem in AS_OF_REQUIRED:
            source = SOURCES_BY_STEM[stem]
            path = paths.data_dir / source.file_name
            if not path.exists():
                continue  # the run reports the missing file itself
            try:
                load_source(con, source, path)
                first = con.execute(f"select cast(min({source.known_on_sql}) as date) from {source.table}").fetchone()[0]
            except (InputFileError, duckdb.Error):
                continue  # the run reports a bad file with its row and column
            if first is None or first > as_of:
                return (f"--as-of {as_of}: no row of {source.file_name} was known by then (the first became known "
                        f"on {first}); choose an as-of date on or after it")
    finally:
        con.close()
    return None


def _preflight(paths: Paths) -> str | None:
    """Everything that can be checked before a run starts; the first problem as one message."""
    from assets.assumptions import AssumptionsError, flatten_assumptions, load_assumptions

    if not paths.data_dir.is_dir():
        return f"data directory {paths.data_dir} does not exist"
    as_of = os.environ.get("T2C_AS_OF")
    if as_of:
        problem = _as_of_problem(paths, dt.date.fromisoformat(as_of))
        if problem:
            return problem
    try:
        flatten_assumptions(load_assumptions(paths.assumptions), paths.assumptions)
    except AssumptionsError as exc:
        return str(exc)
    from assets.warehouse import not_a_database

    problem = not_a_database(paths.warehouse)
    if problem:
        return problem
    directory = paths.warehouse.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".t2c-write-test-"):
            pass
    except OSError as exc:
        return f"the warehouse directory {directory} is not writable ({exc.strerror or exc})"
    return None


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
    problem = _preflight(paths)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.call_logs:
        os.environ["T2C_CALL_LOGS"] = str(Path(args.call_logs).expanduser().resolve())
    paths.export()
    from pipelines.runlock import RunLockBusy, run_lock

    def waiting(owner: str) -> None:
        print(f"waiting for the run lock of {paths.warehouse} (held by {owner}) ...", flush=True)

    try:
        with run_lock(paths.warehouse, wait_s=args.wait, on_wait=waiting):
            return _run_locked(paths)
    except RunLockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


def _run_locked(paths: Paths) -> int:
    home = ensure_dagster_home()

    import dagster as dg

    from assets.runs import record_run, run_failures, steps_not_run
    from assets.warehouse import WarehouseError, connect, publish
    from pipelines.definitions import build_resources, refresh_all_job

    print(f"tokens2chips run: data {paths.data_dir}\n  warehouse {paths.warehouse}\n  dagster home {home}")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance, _SlotSweeper(instance):
        _reclaim_dead_runs(instance, paths.warehouse)
        if os.environ.get("T2C_CALL_LOGS"):
            code = _load_call_logs(instance, Path(os.environ["T2C_CALL_LOGS"]))
            if code:
                return code
        result = dg.execute_job(
            dg.reconstructable(refresh_all_job),
            instance=instance,
            run_config={"loggers": {"progress": {}}},
            tags=run_tags(),
            raise_on_error=False,
        )
        failures = run_failures(instance, result.run_id)
        skipped = steps_not_run(instance, result.run_id) if not result.success else []
        try:
            con = connect(paths.warehouse)
            try:
                row = record_run(
                    con, instance, result.run_id, as_of=build_resources()["settings"].as_of_date(),
                    data_dir=str(paths.data_dir), warehouse=str(paths.warehouse), assumptions=str(paths.assumptions),
                    failures=failures,
                )
            finally:
                con.close()
        except (WarehouseError, OSError, RuntimeError) as exc:
            row = None
            failures.append(f"recording the run in meta.runs: {exc}")
    elapsed = time.monotonic() - started
    checks = (f"checks: {row['checks_passed']} passed, {row['checks_failed']} failed, {row['checks_warned']} warned"
              if row else "checks not recorded")
    if not result.success:
        print(f"run {result.run_id} FAILED after {elapsed:.1f}s ({checks}); every table keeps its previous "
              "version or holds its new one; the published copy is unchanged", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        if skipped:
            print(f"  not run because of the failure ({len(skipped)}): {', '.join(skipped)}", file=sys.stderr)
        return 1
    try:
        published = publish(paths.warehouse)
    except WarehouseError as exc:
        print(f"run {result.run_id} succeeded in {elapsed:.1f}s ({checks}) but publishing failed: {exc}",
              file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded in {elapsed:.1f}s ({checks}); published {published}")
    as_of = build_resources()["settings"].as_of_date()
    report = paths.reports_dir / as_of.isoformat() / "report.html"
    if report.exists():
        print(f"report: {report}\n        {report.with_name('report.md')}")
    _warm_hardware_cache(paths)
    return 0


def _warm_hardware_cache(paths: Paths) -> None:
    """Fit the serving model for `size`/`throughput` on this run's data and assumptions now, so those
    commands answer from the cache (var/cache/hardware-context) without refitting."""
    from pipelines.hardware_cli import InputError, _context

    try:
        _context(argparse.Namespace(data_dir=str(paths.data_dir), assumptions=str(paths.assumptions)))
    except (InputError, ValueError, KeyError, OSError):
        pass  # the commands report their own errors when called


POOL_NAME = "duckdb"  # assets/ingest.POOL (not imported here: that would load Dagster for every command)


def run_tags() -> dict[str, str]:
    """Tags of a CLI run: who launched it, from which process, on which warehouse."""
    return {"launched_by": "tokens2chips run", "t2c/pid": str(os.getpid()), "t2c/host": socket.gethostname(),
            "t2c/warehouse": os.environ["T2C_WAREHOUSE"]}


def _process_alive(pid: str | None) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _reclaim_dead_runs(instance, warehouse: Path) -> None:
    """CLI runs still marked as running whose process is gone (killed, e.g. by SIGKILL or the OOM killer):
    those of this warehouse (we hold its run lock, so none of them is alive) and those of other warehouses
    whose process no longer exists on this host. Mark them failed and free their slots in pool `duckdb`,
    which is shared by the whole Dagster instance and which they would otherwise hold for ever."""
    import dagster as dg

    running = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED],
        tags={"launched_by": "tokens2chips run"}))
    host = socket.gethostname()
    stale = [r for r in running if r.tags.get("t2c/warehouse") == str(warehouse)
             or (r.tags.get("t2c/host", host) == host and not _process_alive(r.tags.get("t2c/pid")))]
    for run in stale:
        instance.report_run_failed(run, message=f"the process of this run (pid {run.tags.get('t2c/pid', '?')}) "
                                   "died without finishing it; reclaimed by the next `tokens2chips run`")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        print(f"  reclaimed run {run.run_id}: its process died mid-run; marked failed, pool slot freed")
    _free_slots_of_finished_runs(instance)


def _free_slots_of_finished_runs(instance) -> list[str]:
    """Free the pool slots (and queued steps) still held by runs that have ended. A run killed inside a
    step leaves its claim behind; the harness once saw such a claim outlive the reclaim above, so this
    sweep also runs every few seconds while a CLI run is waiting or working (see _SlotSweeper)."""
    import dagster as dg

    info = instance.event_log_storage.get_concurrency_info(POOL_NAME)
    holders = {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    freed = []
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                         dg.DagsterRunStatus.CANCELED):
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
    return freed


class _SlotSweeper:
    """Background sweep of slots held by ended runs for the duration of a CLI run."""

    def __init__(self, instance, every_s: float = 5.0):
        import threading

        self.instance, self.every_s = instance, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="t2c-slot-sweeper", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                for run_id in _free_slots_of_finished_runs(self.instance):
                    print(f"  freed the pool slot of ended run {run_id}", flush=True)
            except Exception:  # a sweep is best effort; the next one tries again
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _load_call_logs(instance, root: Path) -> int:
    """Run the call_logs job over the range of new or changed day-partitions (one run, unchanged days
    inside the range skipped)."""
    import dagster as dg

    from assets.call_log_loading import CallLogConfig, CallLogError, changed_days, day_files
    from assets.warehouse import WarehouseError, connect
    from pipelines.definitions import build_resources, call_logs_job_def

    resources = build_resources()
    settings = resources["settings"]
    try:
        cfg = CallLogConfig.load(settings.call_logs_config)
        con = connect(resources["warehouse"].database)
        try:
            days = changed_days(con, day_files(root, cfg, con))
        finally:
            con.close()
    except (CallLogError, WarehouseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not days:
        print(f"call logs {root}: no new or changed day-partitions")
        return 0
    print(f"call logs {root}: {len(days)} new or changed day-partition(s), {days[0]} .. {days[-1]}")
    result = dg.execute_job(
        dg.reconstructable(call_logs_job_def), instance=instance,
        run_config={"loggers": {"progress": {}}, "ops": {"raw__call_log_daily": {"config": {"only_changed": True}}}},
        tags={"dagster/asset_partition_range_start": days[0].isoformat(),
              "dagster/asset_partition_range_end": days[-1].isoformat(), **run_tags()},
        raise_on_error=False,
    )
    if not result.success:
        print(f"call-log run {result.run_id} FAILED; partitions that loaded are kept", file=sys.stderr)
        return 1
    return 0


def _read_target(warehouse_arg: str | None) -> Path:
    """The DuckDB file a reader opens: --warehouse / T2C_WAREHOUSE as given, else the published copy of the
    default warehouse (the live file is the writer's), else the live file if nothing is published yet."""
    from assets.warehouse import published_copy

    if warehouse_arg or os.environ.get("T2C_WAREHOUSE"):
        return Paths.from_env(warehouse=warehouse_arg).warehouse
    default = Paths.from_env().warehouse
    return published_copy(default) if published_copy(default).exists() else default


def _unreadable(path: Path) -> str | None:
    from assets.warehouse import not_a_database

    if not path.exists():
        return f"warehouse {path} does not exist; run `tokens2chips run` first"
    return not_a_database(path)


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from assets.warehouse import WarehouseError
    from pipelines.query import QueryRefused, flatten_nested, format_table, open_read_only, rewrite_show_tables, run_query
    from reports.export import formula_safe

    path = _read_target(args.warehouse)
    problem = _unreadable(path)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        con = open_read_only(path)
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


def cmd_report(args: argparse.Namespace) -> int:
    import duckdb

    from assets.report import build_report, data_as_of
    from assets.warehouse import WarehouseError, connect

    paths = Paths.from_env(reports_dir=args.reports_dir)
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        print(f"error: --as-of {args.as_of!r} is not a date (expected YYYY-MM-DD)", file=sys.stderr)
        return 2
    source = _read_target(args.warehouse)
    problem = _unreadable(source)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        con = connect(source, read_only=True, wait_s=10)
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        vintage = data_as_of(con)
        if as_of is None:
            as_of = vintage or dt.datetime.now(dt.timezone.utc).date()
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
    parser = argparse.ArgumentParser(prog="tokens2chips", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tokens2chips {release}")
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

    add_backtest(sub)
    add_export(sub)
    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback (T2C_DEBUG=1 shows it)
        if os.environ.get("T2C_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set T2C_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
