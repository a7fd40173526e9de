"""`tokens2chips backtest`: replay the token-demand forecasts of past data vintages and score them.

Runs the forecast_vintage asset (assets/forecast.py) on the warehouse's model_inputs.forecast_history with the
range given here, under the run lock, then publishes the warehouse. Needs a warehouse built by
`tokens2chips run` (the vintages are cut from its data: every row carries the date it became known).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from pipelines.settings import Paths, as_of_from_env, ensure_dagster_home, run_config
from pipelines.usage import UsageError

STEPS = {"month": 1, "quarter": 3, "half-year": 6, "year": 12}


def _date(value: str | None, flag: str) -> str:
    if not value:
        return ""
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date (expected YYYY-MM-DD)") from None


def _step(value: str) -> int:
    if value in STEPS:
        return STEPS[value]
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise UsageError(f"--step {value!r}: expected one of {', '.join(STEPS)} or a number of months (1 or more)")


def cmd_backtest(args: argparse.Namespace) -> int:
    start, end, step = _date(args.start, "--from"), _date(args.end, "--to"), _step(args.step)
    if start and end and start > end:
        print(f"error: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    as_of = _date(args.as_of, "--as-of") if args.as_of else as_of_from_env()
    paths = Paths.from_env(warehouse=args.warehouse, assumptions=args.assumptions)
    if not paths.warehouse.exists():
        print(f"error: no warehouse at {paths.warehouse}; run `tokens2chips run` first (the backtest replays "
              "the vintages of its data)", file=sys.stderr)
        return 2
    from warehouse.io import WarehouseError, connect, not_a_database, publish
    from pipelines.runlock import RunLockBusy, run_lock

    problem = not_a_database(paths.warehouse)
    if problem:  # a directory or a file that is no DuckDB database: say so, not "the table is missing"
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        con = connect(paths.warehouse, read_only=True)
        try:
            con.execute("select 1 from model_inputs.forecast_history limit 1")
        finally:
            con.close()
    except (WarehouseError, Exception) as exc:  # a warehouse without the table, or unreadable
        print(f"error: {paths.warehouse} has no model_inputs.forecast_history ({type(exc).__name__}); run "
              "`tokens2chips run` first", file=sys.stderr)
        return 2
    try:
        with run_lock(paths.warehouse, wait_s=args.wait):
            code = _execute(paths, as_of, start, end, step)
            if code:
                return code
            publish(paths.warehouse)
    except RunLockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    _print_summary(paths)
    return 0


def _execute(paths: Paths, as_of: str, start: str, end: str, step: int) -> int:
    ensure_dagster_home()
    import dagster as dg

    from pipelines.definitions import backtest_job_def

    print(f"tokens2chips backtest: vintages {start or 'config start'} .. {end or 'as-of date'}, every {step} "
          f"month(s)\n  warehouse {paths.warehouse}", flush=True)
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(backtest_job_def), instance=instance,
            run_config={"loggers": {"progress": {}},
                        "ops": {"forecast_vintage": {"config": {"start": start, "end": end, "step_months": step}}},
                        **run_config(paths, as_of)},
            tags={"launched_by": "tokens2chips backtest"}, raise_on_error=False,
        )
        if not result.success:
            from assets.runs import run_failures

            print(f"backtest run {result.run_id} FAILED; the warehouse keeps its previous vintage errors",
                  file=sys.stderr)
            for failure in run_failures(instance, result.run_id):
                print(f"  {failure}", file=sys.stderr)
            return 1
    return 0


def _print_summary(paths: Paths) -> None:
    from warehouse.io import connect, published_copy

    con = connect(published_copy(paths.warehouse), read_only=True)
    try:
        rows = con.execute(
            "select series_id, n_forecasts, n_vintages, bias, median_abs_log_error, coverage80, coverage95 "
            "from marts.forecast_vintage_errors order by series_id = '(all series)', series_id").fetchall()
    finally:
        con.close()
    print(f"\n{'series':32s} {'n':>4s} {'vint':>4s} {'bias':>6s} {'|err|':>6s} {'80%':>5s} {'95%':>5s}")
    for sid, n, nv, bias, mae, c80, c95 in rows:
        print(f"{sid:32s} {n:4d} {nv:4d} {bias:+6.2f} {mae:6.2f} {c80:5.0%} {c95:5.0%}")
    print("bias: mean of log(forecast / later disclosure), positive = overshoot; |err|: median absolute log error;"
          "\n80%/95%: share of later disclosures inside the intervals. Table: marts.forecast_vintage_errors "
          f"(per point: marts.forecast_vintage_points) in {published_copy(paths.warehouse)}")


def add_parser(sub) -> None:
    backtest = sub.add_parser("backtest", help="replay past data vintages and score their token-demand forecasts "
                              "against later disclosures (marts.forecast_vintage_errors)")
    backtest.add_argument("--from", dest="start", help="first vintage YYYY-MM-DD (default: config/assumptions.yaml "
                          "forecast.vintage_backtest.start)")
    backtest.add_argument("--to", dest="end", help="last vintage YYYY-MM-DD (default: the as-of date)")
    backtest.add_argument("--step", default="month", help="between vintages: month, quarter, half-year, year or a "
                          "number of months")
    backtest.add_argument("--as-of", help="only data known on this date take part (default today, UTC)")
    backtest.add_argument("--warehouse", help="DuckDB file (env T2C_WAREHOUSE, default var/warehouse.duckdb)")
    backtest.add_argument("--assumptions", help="assumptions YAML (env T2C_ASSUMPTIONS, default "
                          "config/assumptions.yaml)")
    backtest.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                          help="wait up to SECONDS for a run holding the warehouse (default: fail at once)")
    backtest.set_defaults(func=cmd_backtest)
