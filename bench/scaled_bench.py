"""Scaled-profile benchmark: call-log day-partitions loaded by 1 and 2 Celery workers into the DuckLake warehouse,
against the embedded path (one process, one DuckDB file) on the same files.

    T2C_PROFILE=scaled python bench/scaled_bench.py [--rows-per-day 10000000] [--days 30] [--format parquet]
                                                    [--workers 1,2] [--workdir DIR]

Needs the scaled profile's services (PostgreSQL, Redis; README: Beyond one machine). Generates the logs once with
bench/make_call_logs.py (kept in --workdir and reused), then for each variant:
  embedded    call_logs.loading.load_days over every day into a fresh DuckDB file, in its own process (what the
              embedded `call_logs` job runs: one single-run backfill); peak RSS from wait4
  scaled xN   N worker processes (`tokens2chips workers`' command line) on a fresh lake (own catalog database,
              data path and Redis prefix), the call_logs_parallel job (one step per day); the wall time is the
              job's, each worker's peak RSS from wait4 after it is stopped
Prints a table (rows, seconds, rows/s, peak RSS per process) and one line of key=value figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = dt.date(2026, 1, 5)
sys.path.insert(0, str(ROOT))

EMBEDDED = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import duckdb
from call_logs.loading import day_files, load_days
from configuration.call_logs import load_call_log_config
cfg = load_call_log_config({cfg!r})
t0 = time.perf_counter()
con = duckdb.connect({warehouse!r})
con.execute(f"set memory_limit = '{{cfg.memory_limit}}'")
results = load_days(con, day_files(Path({logs!r}), cfg, con), cfg)
con.close()
rows = sum(r["rows_loaded"] + r["rows_rejected"] for r in results.values())
print(json.dumps({{"rows": rows, "seconds": time.perf_counter() - t0}}))
"""


def generate(work: Path, rows_per_day: int, days: int, fmt: str) -> Path:
    logs = work / f"logs_{fmt}_{rows_per_day}x{days}"
    marker = logs.with_suffix(".done")
    if marker.exists():
        return logs
    shutil.rmtree(logs, ignore_errors=True)
    started = time.perf_counter()
    for day in range(days):  # a day at a time: the generator builds its rows in memory
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_call_logs.py"), "--rows", str(rows_per_day),
                        "--days", "1", "--out", str(logs), "--format", fmt, "--bad-fraction", "0.00001",
                        "--start", (START + dt.timedelta(day)).isoformat(), "--seed", str(day + 1)],
                       check=True, stdout=subprocess.DEVNULL)
    marker.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    print(f"generated {rows_per_day * days:,} rows over {days} days in {time.perf_counter() - started:.0f} s "
          f"({sum(p.stat().st_size for p in logs.rglob('*') if p.is_file()) / 1e9:.1f} GB)", flush=True)
    return logs


def embedded(work: Path, logs: Path) -> dict:
    warehouse = work / "embedded.duckdb"
    warehouse.unlink(missing_ok=True)
    code = EMBEDDED.format(root=str(ROOT), cfg=str(ROOT / "config" / "call_logs.yaml"), warehouse=str(warehouse),
                           logs=str(logs))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(work))
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit("the embedded load failed")
    out = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    warehouse.unlink(missing_ok=True)
    return {"variant": "embedded (1 process)", "rows": out["rows"], "seconds": out["seconds"],
            "peak_rss_mb": [usage.ru_maxrss / 1024]}


def scaled(work: Path, logs: Path, n_workers: int) -> dict:
    import dagster as dg

    from assets.call_logs_parallel import call_logs_parallel
    from pipelines.scaled import ensure_databases, live_workers
    from pipelines.settings import Paths, Scaled, celery_executor_config, ensure_dagster_home, redis_io_config, run_config
    from pipelines.workers_cli import start_workers

    tag = uuid.uuid4().hex[:8]
    env = {"T2C_PROFILE": "scaled", "T2C_LAKE_DB": f"t2c_bench_lake_{tag}", "T2C_REDIS_PREFIX": f"t2c-bench-{tag}:",
           "T2C_LAKE_DATA_PATH": str(work / f"lake_{tag}")}
    os.environ.update(env)
    scaled_env = Scaled.from_env()
    ensure_databases(scaled_env)
    ensure_dagster_home()
    names = [f"bench{tag}w{i + 1}" for i in range(n_workers)]
    procs = start_workers(names, env=env, loglevel="WARNING", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while {w.split("@")[0] for w in live_workers(1.0)} < set(names):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
        paths = Paths.from_env()
        config = run_config(paths, "", str(logs))
        started = time.perf_counter()
        warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
        with dg.DagsterInstance.get() as instance, dg.execute_job(
                dg.reconstructable(call_logs_parallel), instance=instance, raise_on_error=False,
                run_config={"resources": {**config["resources"], "io_manager": {"config": redis_io_config()}},
                            "execution": {"config": celery_executor_config()},
                            "loggers": {"console": {"config": {"log_level": "ERROR"}}}}) as result:
            seconds = time.perf_counter() - started
            if not result.success:
                raise SystemExit(f"the scaled load failed (run {result.run_id})")
            totals = result.output_for_node("loaded")
    finally:
        rss = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _, _, usage = os.wait4(proc.pid, 0)
            rss.append(usage.ru_maxrss / 1024)
        _drop(scaled_env)
        shutil.rmtree(work / f"lake_{tag}", ignore_errors=True)
    return {"variant": f"scaled ({n_workers} worker{'s' if n_workers > 1 else ''})",
            "rows": totals["rows_loaded"] + totals["rows_rejected"], "seconds": seconds, "peak_rss_mb": rss}


def _drop(scaled_env) -> None:
    import psycopg2

    con = psycopg2.connect(scaled_env.dsn("postgres"))
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (scaled_env.lake_db,))
        cur.execute(f'drop database if exists "{scaled_env.lake_db}"')
    con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-day", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "scaled"))
    args = parser.parse_args()
    from pipelines.scaled import service_problems
    from pipelines.settings import Scaled

    os.environ["T2C_PROFILE"] = "scaled"
    problems = service_problems(Scaled.from_env())
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    logs = generate(work, args.rows_per_day, args.days, args.format)
    results = [embedded(work, logs)]
    print(_line(results[-1]), flush=True)
    for n in [int(x) for x in args.workers.split(",")]:
        results.append(scaled(work, logs, n))
        print(_line(results[-1]), flush=True)
    print("\n| variant | rows | seconds | rows/s | peak RSS per process (MB) |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
              f"{', '.join(f'{m:,.0f}' for m in r['peak_rss_mb'])} |")
    print(" ".join(f"{r['variant'].split()[0]}{len(r['peak_rss_mb'])}_rows_per_s={r['rows'] / r['seconds']:.0f}"
                   for r in results))
    return 0


def _line(r: dict) -> str:
    return (f"{r['variant']}: {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows'] / r['seconds']:,.0f} rows/s, "
            f"peak RSS {', '.join(f'{m:,.0f}' for m in r['peak_rss_mb'])} MB")


if __name__ == "__main__":
    sys.exit(main())
