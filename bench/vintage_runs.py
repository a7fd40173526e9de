"""Run the whole pipeline on every monthly data vintage: `tokens2chips run --as-of <month-end>`.

Each vintage runs into its own throwaway warehouse (under --workdir), so the project's warehouse is not
touched. Prints one line per vintage (exit status, seconds, WARN checks, flags, global demand at the
horizon) and a final key=value line. About 25 s per vintage on this 2-core machine.

    python bench/vintage_runs.py [--from 2025-01-01] [--to today] [--workdir /tmp/t2c-vintages]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forecasts.vintage import vintages  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2025-01-01")
    parser.add_argument("--to", dest="end", default=dt.date.today().isoformat())
    parser.add_argument("--workdir", default="/tmp/t2c-vintages")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    exe = Path(sys.executable).with_name("tokens2chips")
    ok, failed = 0, []
    for vintage in vintages(dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end), 1):
        warehouse = work / vintage.isoformat() / "warehouse.duckdb"
        env = {**os.environ, "T2C_WAREHOUSE": str(warehouse), "T2C_REPORTS_DIR": str(warehouse.parent / "reports")}
        started = time.perf_counter()
        proc = subprocess.run([str(exe), "run", "--as-of", vintage.isoformat()], capture_output=True, text=True,
                              env=env, cwd=ROOT)
        seconds = time.perf_counter() - started
        if proc.returncode:
            failed.append(vintage.isoformat())
            tail = (proc.stderr.strip().splitlines() or ["?"])[:3]
            print(f"{vintage}  FAILED ({seconds:.0f} s): {' | '.join(tail)}", flush=True)
            continue
        ok += 1
        warned = sum(1 for line in proc.stdout.splitlines() if line.strip().startswith("WARN"))
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            flags = [f for (f,) in con.execute("select flag || ':' || series_id from marts.forecast_flags").fetchall()]
            row = con.execute("select period_start, value, lo80, hi80 from marts.forecast where series_id = "
                              "'tokens/global' and is_forecast order by period_start desc limit 1").fetchone()
        finally:
            con.close()
        demand = f"global {row[0]}: {row[1] / 1e12:,.0f}T/day (80% {row[2] / 1e12:,.0f}-{row[3] / 1e12:,.0f})" if row \
            else "no global forecast"
        print(f"{vintage}  ok ({seconds:.0f} s, {warned} WARN checks)  {demand}  flags: {', '.join(flags) or 'none'}",
              flush=True)
        shutil.rmtree(warehouse.parent / "reports", ignore_errors=True)
    print(f"vintages={ok + len(failed)} succeeded={ok} failed={len(failed)}"
          + (f" failed_vintages={','.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
