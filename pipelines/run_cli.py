"""`tokens2chips run`: pre-flight checks, then every asset as one Dagster run under the run lock (after
loading new call-log days), with progress per asset, the run record and the published copy."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from pipelines.instance_repair import SlotSweeper, reclaim_dead_runs
from pipelines.settings import (Paths, as_of_from_env, call_logs_dir, ensure_dagster_home, run_config,
                                settings_config)


# dated sources without which a run has nothing to model: an as-of date before their first row is an error
AS_OF_REQUIRED = ("token_volume_observations", "chip_shipments_quarterly", "throughput_measurements")

def _as_of_problem(paths: Paths, as_of: dt.date) -> str | None:
    """An as-of date before the data: the sources a run needs hold no row known then."""
    import duckdb

    from warehouse.loading import InputFileError, load_source
    from warehouse.sources import SOURCES_BY_STEM

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

def _preflight(paths: Paths, as_of: str) -> str | None:
    """Everything that can be checked before a run starts; the first problem as one message."""
    from call_logs.config import CallLogError
    from configuration.assumptions import AssumptionsError, load_configuration
    from configuration.call_logs import load_call_log_config

    if paths.lake is not None:  # the scaled profile: its services first, then its databases
        from pipelines.scaled import ensure_databases, service_problems
        from pipelines.settings import Scaled

        scaled = Scaled.from_env()
        problems = service_problems(scaled)
        if problems:
            return "; ".join(problems)
        ensure_databases(scaled)
    if not paths.data_dir.is_dir():
        return f"data directory {paths.data_dir} does not exist"
    try:
        config = load_configuration(paths.assumptions)
        load_call_log_config(settings_config(paths)["call_logs_config"])
    except (AssumptionsError, CallLogError) as exc:
        return str(exc)
    if as_of:
        problem = _as_of_problem(paths, dt.date.fromisoformat(as_of))
        if problem:
            return problem
        horizon = int(config.model.forecast.horizon_end_year.value)
        if dt.date.fromisoformat(as_of).year > horizon:
            return (f"--as-of {as_of} is after the forecast horizon (end of {horizon}): there would be no "
                    f"forecast for 'now'; raise forecast.horizon_end_year in {paths.assumptions}")
    from warehouse.io import not_a_database

    problem = not_a_database(paths.target)
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
    as_of = args.as_of or as_of_from_env()
    if as_of:
        try:
            dt.date.fromisoformat(as_of)
        except ValueError:
            print(f"error: --as-of {as_of!r} is not a date (expected YYYY-MM-DD)", file=sys.stderr)
            return 2
    paths = Paths.from_env(data_dir=args.data_dir, warehouse=args.warehouse, reports_dir=args.reports_dir,
                           assumptions=args.assumptions)
    problem = _preflight(paths, as_of)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    call_logs = args.call_logs or call_logs_dir()
    call_logs = str(Path(call_logs).expanduser().resolve()) if call_logs else ""
    if call_logs and not Path(call_logs).is_dir():
        # before anything is created: no warehouse, no lock file for a run that cannot start
        print(f"error: call-log directory {call_logs} does not exist", file=sys.stderr)
        return 2
    from pipelines.runlock import RunLockBusy, run_lock

    def waiting(owner: str) -> None:
        print(f"waiting for the run lock of {paths.warehouse} (held by {owner}) ...", flush=True)

    try:
        with run_lock(paths.warehouse, wait_s=args.wait, on_wait=waiting):
            return _run_locked(paths, as_of, call_logs)
    except RunLockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3

def _run_locked(paths: Paths, as_of: str, call_logs: str) -> int:
    """The run itself; its options reach the Dagster run as run config (pipelines/settings.run_config)."""
    home = ensure_dagster_home()

    import dagster as dg

    from assets.runs import record_run, run_failures, steps_not_run
    from warehouse.io import WarehouseError, connect, publish
    from pipelines.definitions import refresh_all_job

    print(f"tokens2chips run: data {paths.data_dir}\n  warehouse {paths.target}\n  dagster home {home}")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance, SlotSweeper(instance):
        reclaim_dead_runs(instance, paths.warehouse)
        if call_logs:
            code = _load_call_logs(instance, paths, as_of, Path(call_logs))
            if code:
                return code
        result = dg.execute_job(
            dg.reconstructable(refresh_all_job),
            instance=instance,
            run_config={"loggers": {"progress": {}}, **run_config(paths, as_of, call_logs)},
            tags=run_tags(paths),
            raise_on_error=False,
        )
        failures = run_failures(instance, result.run_id)
        skipped = steps_not_run(instance, result.run_id) if not result.success else []
        try:
            con = connect(paths.target)
            try:
                row = record_run(
                    con, instance, result.run_id, as_of=_as_of_date(as_of),
                    data_dir=str(paths.data_dir), warehouse=str(paths.target), assumptions=str(paths.assumptions),
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
        published = publish(paths.target)
    except WarehouseError as exc:
        print(f"run {result.run_id} succeeded in {elapsed:.1f}s ({checks}) but publishing failed: {exc}",
              file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded in {elapsed:.1f}s ({checks}); published {published}")
    report = paths.reports_dir / _as_of_date(as_of).isoformat() / "report.html"
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

def _as_of_date(as_of: str) -> dt.date:
    """The run's as-of date: the one given, else today (UTC), as the settings resource takes it."""
    return dt.date.fromisoformat(as_of) if as_of else dt.datetime.now(dt.timezone.utc).date()


def run_tags(paths: Paths) -> dict[str, str]:
    """Tags of a CLI run: who launched it, from which process, on which warehouse."""
    return {"launched_by": "tokens2chips run", "t2c/pid": str(os.getpid()), "t2c/host": socket.gethostname(),
            "t2c/warehouse": str(paths.target)}

def _load_call_logs(instance, paths: Paths, as_of: str, root: Path) -> int:
    """Run the call_logs job over the range of new or changed day-partitions (one run, unchanged days
    inside the range skipped)."""
    import dagster as dg

    from call_logs.loading import CallLogError, changed_days, day_files
    from configuration.call_logs import load_call_log_config
    from warehouse.io import WarehouseError, connect
    from pipelines.definitions import call_logs_job_def

    config = run_config(paths, as_of, str(root))
    try:
        cfg = load_call_log_config(settings_config(paths)["call_logs_config"])
        con = connect(paths.target)
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
    if paths.lake is not None:
        return _load_call_logs_on_workers(instance, paths, config, days)
    result = dg.execute_job(
        dg.reconstructable(call_logs_job_def), instance=instance,
        run_config={"loggers": {"progress": {}}, "ops": {"raw__call_log_daily": {"config": {"only_changed": True}}},
                    **config},
        tags={"dagster/asset_partition_range_start": days[0].isoformat(),
              "dagster/asset_partition_range_end": days[-1].isoformat(), **run_tags(paths)},
        raise_on_error=False,
    )
    if not result.success:
        print(f"call-log run {result.run_id} FAILED; partitions that loaded are kept", file=sys.stderr)
        return 1
    return 0


def _load_call_logs_on_workers(instance, paths: Paths, config: dict, days: list) -> int:
    """Scaled profile: the call_logs_parallel job (assets/call_logs_parallel.py), one step per day on the
    Celery workers."""
    import warnings

    import dagster as dg

    from assets.call_logs_parallel import call_logs_parallel
    from pipelines.scaled import live_workers
    from pipelines.settings import celery_executor_config, redis_io_config

    workers = live_workers()
    if not workers:
        print("error: no Celery worker answers on the broker; start them: `T2C_PROFILE=scaled tokens2chips "
              "workers --count 2` (README: Beyond one machine)", file=sys.stderr)
        return 2
    print(f"  on {len(workers)} worker(s): {', '.join(workers)}")
    resources = {**config["resources"], "io_manager": {"config": redis_io_config()}}
    # dagster-celery registers its step task again for every step it submits (harmless; celery 5.7 warns)
    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
    started = time.monotonic()
    with dg.execute_job(
            dg.reconstructable(call_logs_parallel), instance=instance,
            run_config={"loggers": {"progress": {}}, "resources": resources,
                        "execution": {"config": celery_executor_config()},
                        "ops": {"plan_days": {"config": {"days": [d.isoformat() for d in days],
                                                         "only_changed": True}}}},
            tags=run_tags(paths), raise_on_error=False) as result:
        if not result.success:
            print(f"call-log run {result.run_id} FAILED; partitions that loaded are kept", file=sys.stderr)
            return 1
        totals = result.output_for_node("loaded")
    print(f"  call logs: {totals['days']} day(s), {totals['rows_loaded']:,} rows loaded, {totals['rows_rejected']:,} "
          f"rejected, on the workers in {time.monotonic() - started:.1f}s")
    return 0
