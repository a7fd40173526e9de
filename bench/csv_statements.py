"""Where the CSV call-log load's time goes, statement by statement, and the least a loader built on DuckDB's
CSV reader could take while keeping the row-level reasons (issue 29 asks for <= 1.2x the bare aggregation).

    python bench/csv_statements.py [--rows 10000000] [--days 30] [--repeat 7] [--workdir DIR]

It reads the logs bench/ingest_bench.py generates (same generator and bad-row rate; reused from --workdir).
Each round, in one process, on a fresh connection each (with the loader's memory limit, but for bare, which
keeps DuckDB's defaults as in the ingest bench):
  bare                 the ingest bench's bare aggregation (date, model, provider; DuckDB's defaults)
  load                 the loader itself (call_logs.loading.load_days into a fresh warehouse file), every
                       statement it runs timed through a recording connection
  pass 1 without test  the loader's pass-1 statement with its per-row test (`unclean`: counts integral,
                       non-negative, finite) replaced by `false`
  re-read, scan only   count(*) over the files pass 2 re-reads, with pass 2's reader: what any second read
                       of those files costs before it computes anything
The steps alternate within a round, so each meets the same machine load; medians over the rounds, wall and
CPU seconds (user + system, from getrusage). It ends with the floor: (pass 1 without test + the re-read's scan +
the loader's other statements) / bare, the ratio a loader would reach if its per-row test and its second
read's row rules cost nothing. DuckDB 1.5's CSV reader has no row-number column, so the rows that parse but
break a rule (a fraction, a minus sign) can only be numbered by reading their files again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from bench.ingest_bench import _fresh, _logs, bare_query  # noqa: E402
from call_logs.loading import day_files, load_days  # noqa: E402
from configuration.call_logs import load_call_log_config  # noqa: E402

PASS1 = "create or replace temp table _call_log_batch as"
PASS2 = "create temp table _call_log_p2 as"


class Recording:
    """A DuckDB connection that times each execute (its result is fetched by the caller: small here)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.statements = con, []

    def execute(self, sql: str, *args):
        started = time.perf_counter()
        result = self.con.execute(sql, *args)
        self.statements.append((sql, time.perf_counter() - started))
        return result

    def __getattr__(self, name):
        return getattr(self.con, name)


def _timed(run) -> tuple[float, float]:
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run()
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _connect(cfg, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection with the loader's memory limit (config/call_logs.yaml), as the ingest bench's full load."""
    con = duckdb.connect(database)
    con.execute(f"set memory_limit = '{cfg.memory_limit}'")
    return con


def _load(logs: Path, warehouse: Path, cfg) -> list[tuple[str, float]]:
    con = _connect(cfg, str(_fresh(warehouse)))
    recording = Recording(con)
    load_days(recording, day_files(logs, cfg, con), cfg)
    con.close()
    return recording.statements


def _variants(statements: list[tuple[str, float]]) -> tuple[str, str | None]:
    """The loader's pass 1 without its per-row test, and a count over pass 2's reader (None: no pass 2)."""
    pass1 = next(sql for sql, _ in statements if sql.lstrip().startswith(PASS1))
    lines = pass1.splitlines()
    test = [i for i, line in enumerate(lines) if line.rstrip().endswith(" as unclean,")]
    if len(test) != 1:
        raise SystemExit("bench/csv_statements.py: pass 1's `unclean` line not found; update the bench with "
                         "sql/call_logs/csv_pass1.sql.j2")
    lines[test[0]] = "    false as unclean,"
    without_test = "\n".join(lines).replace(PASS1, "create or replace temp table _bench_batch as")
    pass2 = next((sql for sql, _ in statements if sql.lstrip().startswith(PASS2)), None)
    if pass2 is None:
        return without_test, None
    reader = pass2[pass2.index("from read_csv("):]
    return without_test, "select count(*) " + reader


def _label(sql: str) -> str:
    text = " ".join(sql.split())
    match = re.match(r"(create (or replace )?temp (table|view) \w+|insert into \S+|delete from \S+|select)", text)
    return match.group(1) if match else text[:40]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="kept between runs: generated logs are reused")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="t2c_csv_statements_"))
    work.mkdir(parents=True, exist_ok=True)
    logs, _ = _logs(work, "csv", args.rows, args.days, dt.date(2026, 1, 5))
    cfg = load_call_log_config(ROOT / "config" / "call_logs.yaml")
    bare = bare_query(logs, "csv")
    warehouse = work / "warehouse_csv_statements.duckdb"
    without_test, reread = _variants(_load(logs, warehouse, cfg))  # a first load: the statements to vary
    times: dict[str, list[tuple[float, float]]] = {"bare": [], "load": [], "pass 1 without test": [],
                                                    "re-read, scan only": []}
    per_statement: dict[str, list[float]] = {}  # label -> its seconds in each load (summed within the load)
    for round_ in range(args.repeat):
        times["bare"].append(_timed(lambda: duckdb.connect().execute(bare).fetchall()))
        statements = []
        times["load"].append(_timed(lambda: statements.extend(_load(logs, warehouse, cfg))))
        this_load: dict[str, float] = {}
        for sql, seconds in statements:
            this_load[_label(sql)] = this_load.get(_label(sql), 0.0) + seconds
        for label, seconds in this_load.items():
            per_statement.setdefault(label, []).append(seconds)
        times["pass 1 without test"].append(_timed(lambda: _connect(cfg).execute(without_test)))
        if reread:
            times["re-read, scan only"].append(_timed(lambda: _connect(cfg).execute(reread).fetchall()))
        print(f"round {round_ + 1}/{args.repeat}: bare {times['bare'][-1][0]:.2f} s, load {times['load'][-1][0]:.2f} s",
              flush=True)
    med = {name: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
           for name, ts in times.items() if ts}
    for name, (wall, cpu) in med.items():
        print(f"{name:<22} wall {wall:6.3f} s  cpu {cpu:6.3f} s  ({wall / med['bare'][0]:.2f}x bare)")
    statement_medians = {label: statistics.median(s) for label, s in per_statement.items()}
    print("the loader's statements (median seconds per load, those above 1% of the load):")
    for label, seconds in sorted(statement_medians.items(), key=lambda kv: -kv[1]):
        if seconds > 0.01 * med["load"][0]:
            print(f"  {seconds:6.3f} s  {label}")
    pass1 = statement_medians.get(_label(PASS1), 0.0)
    pass2 = statement_medians.get(_label(PASS2), 0.0)
    other = med["load"][0] - pass1 - pass2
    floor = med["pass 1 without test"][0] + med.get("re-read, scan only", (0.0, 0.0))[0] + other
    print(f"load / bare {med['load'][0] / med['bare'][0]:.2f}; floor (pass 1 without its test {med['pass 1 without test'][0]:.2f}"
          f" + the re-read's scan {med.get('re-read, scan only', (0.0, 0.0))[0]:.2f} + other statements {other:.2f}) / bare "
          f"{floor / med['bare'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
