"""Call-log ingestion benchmark: the pipeline's loader vs a bare DuckDB aggregation over the same files.

    python bench/ingest_bench.py [--parquet-rows 50000000] [--csv-rows 10000000] [--days 30] [--repeat 3]
                                 [--formats parquet,csv] [--workdir DIR]

For each format it generates logs with bench/make_call_logs.py (hive-partitioned by day), then measures,
each step in its own process (peak RSS from wait4):
  bare        select date_trunc('day', timestamp), model, provider, count(*), sum(tokens...) group by all
              over all files (DuckDB defaults), every aggregated row fetched
  full        the pipeline's cold full load of every day-partition into a fresh warehouse
              (call_logs/loading.load_days, the code the Dagster asset runs; memory_limit from
              config/call_logs.yaml, 1 GB by default); bare CSV skips malformed rows (ignore_errors)
  incremental one new day added to the directory: find changed partitions + load that day
  floor       the least an incremental load can do, for scale: open the same warehouse, the bare
              aggregation of the new day's files, delete + insert that day, commit, close (no change
              detection, no checks, no rejects)
Each step runs --repeat times (bare and full alternating, so each pair meets the same machine load;
every incremental round on a copy of the 30-day warehouse). Prints the median wall time (and min, max),
rows/s and peak RSS of each, the median of the per-round pipeline/bare ratios, and ends with one line of
key=value figures. Generated logs are kept in --workdir and reused by the next run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEP = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import duckdb
kind, logs, warehouse = {kind!r}, Path({logs!r}), {warehouse!r}
if kind not in ("bare", "floor"):
    from call_logs.loading import changed_days, day_files, load_days
    from configuration.call_logs import load_call_log_config
t0 = time.perf_counter()
if kind == "floor":
    day_dir = max(logs.glob("date=*"))
    day = day_dir.name.split("=", 1)[1]
    files = sorted(str(p) for p in day_dir.iterdir())
    reader = f"read_parquet({{files}})" if {fmt!r} == "parquet" else f"read_csv({{files}}, ignore_errors = true)"
    con = duckdb.connect(warehouse)
    con.execute("set memory_limit = '1GB'")
    con.execute("begin")
    rows = con.execute(f'''create temp table _day as select model, provider, count(*) as n, sum(prompt_tokens) as p,
        sum(completion_tokens) as c, sum(cached_tokens) as ca, sum(reasoning_tokens) as r
        from {{reader}} group by all''').fetchone()[0]
    con.execute(f"delete from raw.call_log_daily where day = date '{{day}}'")
    con.execute(f"insert into raw.call_log_daily select date '{{day}}', model, provider, n, 0, p, c, ca, r from _day")
    rows = con.execute("select sum(n) from _day").fetchone()[0]
    con.execute("commit")
    con.close()
elif kind == "bare":
    groups = duckdb.connect().execute({bare!r}).fetchall()
    rows = sum(g[3] for g in groups)
else:
    cfg = load_call_log_config({cfg!r})
    con = duckdb.connect(warehouse)
    con.execute(f"set memory_limit = '{{cfg.memory_limit}}'")
    Path(cfg.temp_directory).mkdir(parents=True, exist_ok=True)
    con.execute(f"set temp_directory = '{{cfg.temp_directory}}'")
    by_day = day_files(logs, cfg, con)
    todo = {{day: by_day[day] for day in changed_days(con, by_day)}}
    results = load_days(con, todo, cfg)
    rows = sum(r["rows_loaded"] + r["rows_rejected"] for r in results.values())
    con.close()
print(json.dumps({{"rows": int(rows or 0), "seconds": time.perf_counter() - t0}}))
"""


def bare_query(logs: Path, fmt: str) -> str:
    """The bare aggregation over every file of `logs`, with DuckDB's defaults (CSV: malformed rows skipped).
    Its rows are fetched by the caller (an outer sum(n) would let DuckDB drop the token sums and skip reading
    the token columns altogether)."""
    pattern = logs / "**" / f"*.{fmt}"
    reader = f"read_parquet('{pattern}')" if fmt == "parquet" else f"read_csv('{pattern}', ignore_errors = true)"
    return (f"select date_trunc('day', timestamp) as day, model, provider, count(*) as n, sum(prompt_tokens), "
            f"sum(completion_tokens), sum(cached_tokens), sum(reasoning_tokens) from {reader} group by all")


def step(kind: str, fmt: str, logs: Path, warehouse: Path) -> dict:
    code = STEP.format(root=str(ROOT), kind=kind, logs=str(logs), warehouse=str(warehouse), fmt=fmt,
                       cfg=str(ROOT / "config" / "call_logs.yaml"), bare=bare_query(logs, fmt))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(warehouse.parent))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    if status != 0:
        raise SystemExit(f"{kind} step failed")
    # timed inside the process, after imports: the ingestion work itself (process wall is printed too)
    return {"rows": out["rows"], "wall_s": out["seconds"], "process_s": wall, "rows_per_s": out["rows"] / out["seconds"],
            "peak_rss_mb": usage.ru_maxrss / 1024}


def _generate(rows: int, days: int, out: Path, fmt: str, start: dt.date, bad: float, seed: int) -> None:
    """Generate in a child process, so this parent stays small and children's peak RSS is their own."""
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_call_logs.py"), "--rows", str(rows), "--days",
                    str(days), "--out", str(out), "--format", fmt, "--start", start.isoformat(),
                    "--bad-fraction", str(bad), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)


def _logs(work: Path, fmt: str, rows: int, days: int, start: dt.date) -> tuple[Path, Path]:
    """The generated logs (30 day folders) and, apart, the new day of the incremental step; reused when
    a previous run generated the same ones in `work`."""
    logs, extra = work / f"logs_{fmt}", work / f"newday_{fmt}"
    marker = work / f"logs_{fmt}.json"
    params = {"rows": rows, "days": days, "start": start.isoformat(), "generator": (ROOT / "bench" /
              "make_call_logs.py").stat().st_mtime_ns}
    if marker.is_file() and json.loads(marker.read_text()) == params and logs.is_dir() and extra.is_dir():
        print(f"[{fmt}] reusing the logs generated in {work}")
        return logs, extra
    for folder in (logs, extra):
        shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    _generate(rows, days, logs, fmt, start, 1e-6, 7)
    _generate(max(rows // days, 1), 1, extra, fmt, start + dt.timedelta(days=days), 0.0, 11)
    marker.write_text(json.dumps(params))
    print(f"[{fmt}] generated {rows:,} rows over {days} days in {time.perf_counter() - t0:.1f}s "
          f"({sum(p.stat().st_size for p in logs.rglob('*') if p.is_file()) / 1e9:.2f} GB)")
    return logs, extra


def _fresh(path: Path) -> Path:
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parquet-rows", type=int, default=50_000_000)
    parser.add_argument("--csv-rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each step (medians are reported)")
    parser.add_argument("--formats", default="parquet,csv", help="comma-separated: parquet, csv")
    parser.add_argument("--workdir", type=Path, default=None, help="kept between runs: generated logs are reused")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="t2c_ingest_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    figures = {}
    start = dt.date(2026, 1, 5)
    wanted = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(wanted) - {"parquet", "csv"})
    if unknown:
        parser.error(f"--formats: unknown {unknown} (parquet, csv)")
    for fmt, rows in (("parquet", args.parquet_rows), ("csv", args.csv_rows)):
        if fmt not in wanted:
            continue
        logs, extra = _logs(work, fmt, rows, args.days, start)
        warehouse = work / f"warehouse_{fmt}.duckdb"
        runs: dict[str, list[dict]] = {"bare": [], "full": [], "incremental": [], "floor": []}
        # bare and full alternate, so that each pair meets the same machine load
        for _ in range(args.repeat):
            runs["bare"].append(step("bare", fmt, logs, warehouse))
            runs["full"].append(step("full", fmt, logs, _fresh(warehouse)))
        new_day = next(extra.iterdir())
        (extra / new_day.name).rename(logs / new_day.name)
        try:
            for _ in range(args.repeat):  # each round on a copy of the 30-day warehouse
                for kind in ("incremental", "floor"):
                    scratch = _fresh(work / f"warehouse_{fmt}_incremental.duckdb")
                    shutil.copyfile(warehouse, scratch)
                    runs[kind].append(step(kind, fmt, logs, scratch))
        finally:
            (logs / new_day.name).rename(extra / new_day.name)
        medians = {}
        for name, rs in runs.items():
            walls = sorted(r["wall_s"] for r in rs)
            medians[name] = statistics.median(walls)
            rss = max(r["peak_rss_mb"] for r in rs)
            print(f"[{fmt}] {name:<11} median {medians[name]:6.2f} s (min {walls[0]:.2f}, max {walls[-1]:.2f})  "
                  f"{rs[0]['rows'] / medians[name] / 1e6:7.2f} M rows/s  peak RSS {rss:5.0f} MB  ({rs[0]['rows']:,} rows)")
            figures[f"{fmt}_{name}_s"] = medians[name]
            figures[f"{fmt}_{name}_rss_mb"] = rss
        pairs = [f["wall_s"] / b["wall_s"] for b, f in zip(runs["bare"], runs["full"])]
        figures[f"{fmt}_ratio_full_vs_bare"] = statistics.median(pairs)
        figures[f"{fmt}_incremental_share"] = medians["incremental"] / medians["full"]
        figures[f"{fmt}_floor_share"] = medians["floor"] / medians["full"]
        print(f"[{fmt}] pipeline/bare {figures[f'{fmt}_ratio_full_vs_bare']:.2f} (median of the rounds: "
              f"{' '.join(f'{x:.2f}' for x in pairs)})  incremental/full {figures[f'{fmt}_incremental_share'] * 100:.1f}% "
              f"(floor/full {figures[f'{fmt}_floor_share'] * 100:.1f}%)")
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
