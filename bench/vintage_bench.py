"""Vintage replay of the token-demand forecasts: the pooled demand model against the per-series engine.

Reads model_inputs.forecast_history from the published warehouse (run `make run` first), replays every
monthly vintage from 2025-01 to the as-of date and scores each vintage's forecasts against the
disclosures published after it (forecasts/vintage.py). Variants:
  engine        the per-series engine on each token series alone (what the pipeline did before issue 15)
  pooled        the pooled adoption model with the OpenRouter panel (the pipeline's default)
  pooled_nopanel the pooled model on the disclosures only

    python bench/vintage_bench.py [--warehouse var/warehouse.published.duckdb] [--as-of 2026-11-30]

Prints a table per variant and one key=value line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import forecasts  # noqa: E402
from configuration.assumptions import load_configuration  # noqa: E402
from forecasts.pipeline import engine_config, fit_tokens, horizon_end, split_history, vintage_backtest  # noqa: E402
from forecasts.vintage import log_scores, replay, summarise, vintages  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=str(ROOT / "var" / "warehouse.published.duckdb"))
    parser.add_argument("--as-of", default=dt.date.today().isoformat())
    parser.add_argument("--from", dest="start", default="2025-01-01")
    args = parser.parse_args()
    config = load_configuration(ROOT / "config" / "assumptions.yaml").model
    as_of = dt.date.fromisoformat(args.as_of)
    con = duckdb.connect(args.warehouse, read_only=True)
    history = con.execute("select * from model_inputs.forecast_history").pl().filter(pl.col("known_on") <= as_of)
    con.close()
    tokens, _, _ = split_history(history, config)
    tokens = tokens.filter(~pl.col("series_id").str.contains("_estimated/"))  # estimates are not disclosures
    end = horizon_end(config)
    engine_cfg = engine_config(config)

    def engine(rows: pl.DataFrame, vintage: dt.date) -> pl.DataFrame:
        last = rows["period_start"].min()
        n = (end.year - last.year) * 12 + end.month - last.month
        return forecasts.run(rows.select("series_id", "period_start", "value"), n, "M", workers=1,
                             config=engine_cfg).forecast

    def pooled_without_panel(rows: pl.DataFrame, vintage: dt.date) -> pl.DataFrame:
        fit = fit_tokens(rows.drop("known_on"), config, draws=1000)
        return fit.forecast if fit is not None else pl.DataFrame()

    start = dt.date.fromisoformat(args.start)
    dates = vintages(start, as_of, 1)
    rows = tokens.select("series_id", "freq", "period_start", "value", "unit", "known_on")
    figures = {}
    variants = (("engine", lambda: replay(rows, dates, engine)),
                ("pooled", lambda: vintage_backtest(history, config, as_of, start, as_of)[0]),  # as the pipeline
                ("pooled_nopanel", lambda: replay(rows, dates, pooled_without_panel)))
    for name, run in variants:
        started = time.perf_counter()
        points = run()
        seconds = time.perf_counter() - started
        print(f"\n== {name}: {len(dates)} vintages, {seconds:.1f} s")
        with pl.Config(tbl_rows=40, tbl_width_chars=160, float_precision=2):
            print(summarise(points).select("series_id", "n_forecasts", "bias", "median_abs_log_error", "coverage80",
                                           "coverage95"))
        s = log_scores(points)
        figures.update({f"{name}_{k}": (f"{v:.3f}" if isinstance(v, float) else v) for k, v in s.items()})
        figures[f"{name}_seconds"] = f"{seconds:.1f}"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
