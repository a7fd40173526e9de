"""Forecast engine benchmark: 200 synthetic weekly series of 156 points.

Fits every series with the full pipeline (rolling-origin backtest of every candidate, selection, final
fit) with 1 and 2 workers, and, in the same run, Nixtla statsforecast AutoETS and AutoTheta on the same
series (bench-only dependency: `make bench` installs requirements-bench.txt). Accuracy: mean MASE over
the last 13 weeks held out (scale: in-sample mean absolute one-step change). Ends with one line of
key=value figures.

    python bench/forecast_bench.py [--series 200] [--length 156] [--horizon 13]
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
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import forecasts  # noqa: E402


def make_series(n_series: int, length: int, seed: int = 42) -> dict[str, np.ndarray]:
    """Weekly series of mixed shapes: growth (log-linear, damped), yearly seasonality, random walks."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = {}
    for i in range(n_series):
        kind = i % 4
        level = rng.uniform(4, 8)
        noise = rng.uniform(0.02, 0.08)
        if kind == 0:  # multiplicative growth with noise
            logs = level + rng.uniform(0.002, 0.02) * t + noise * rng.standard_normal(length)
        elif kind == 1:  # yearly seasonality around a slow trend
            logs = (level + rng.uniform(-0.002, 0.004) * t + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * t / 52
                    + rng.uniform(0, 6)) + noise * rng.standard_normal(length))
        elif kind == 2:  # random walk with drift
            logs = level + np.cumsum(rng.uniform(-0.002, 0.01) + noise * rng.standard_normal(length))
        else:  # damped growth (saturating adoption)
            logs = level + rng.uniform(0.5, 2.0) * (1 - np.exp(-t / rng.uniform(30, 90))) \
                + noise * rng.standard_normal(length)
        out[f"s{i:03d}"] = np.exp(logs)
    return out


def mase(train: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> float:
    scale = np.mean(np.abs(np.diff(train)))
    return float(np.mean(np.abs(actual - predicted)) / scale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--length", type=int, default=156)
    parser.add_argument("--horizon", type=int, default=13)
    args = parser.parse_args()

    data = make_series(args.series, args.length)
    start = dt.date(2023, 1, 2)
    dates = [start + dt.timedelta(weeks=i) for i in range(args.length)]
    n_train = args.length - args.horizon
    history = pl.DataFrame({
        "series_id": np.repeat(list(data), n_train),
        "period_start": dates[:n_train] * len(data),
        "value": np.concatenate([v[:n_train] for v in data.values()]),
    })
    actual = {k: v[n_train:] for k, v in data.items()}
    train = {k: v[:n_train] for k, v in data.items()}

    print(f"{len(data)} weekly series x {args.length} points; hold-out {args.horizon}; cores {os.cpu_count()}")
    print("BLAS/OpenMP pools:", [(p["internal_api"], p["num_threads"]) for p in threadpool_info()])
    figures: dict[str, float] = {}
    results = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with threadpool_limits(limits=1):
            res = forecasts.run(history, args.horizon, "W", workers=workers)
        wall = time.perf_counter() - t0
        results[workers] = res
        figures[f"t2c_wall_s_w{workers}"] = wall
        print(f"tokens2chips  workers={workers}: {wall:7.1f} s total, {1000 * wall / len(data):6.1f} ms/series")
    assert results[1].forecast.equals(results[2].forecast), "results differ between 1 and 2 workers"
    fc = results[1].forecast.sort("series_id", "period_start")
    ours = np.mean([mase(train[s], actual[s], g["value"].to_numpy())
                    for (s,), g in fc.group_by("series_id", maintain_order=True)])
    figures["t2c_mase"] = ours
    print(f"tokens2chips  mean MASE {ours:.3f}; models chosen: "
          + ", ".join(f"{m}={n}" for m, n in results[1].selection.group_by("model_name").len().sort("len",
                      descending=True).iter_rows()))

    try:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS, AutoTheta
    except ImportError:
        print("statsforecast not installed (pip install -r requirements-bench.txt); reference skipped")
        print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))
        return 0
    import pandas as pd

    sf_frame = pd.DataFrame({"unique_id": history["series_id"].to_list(),
                             "ds": pd.to_datetime(history["period_start"].to_list()), "y": history["value"].to_numpy()})
    for workers in (1, 2):
        t0 = time.perf_counter()
        sf = StatsForecast(models=[AutoETS(season_length=52), AutoTheta(season_length=52)], freq="W-MON",
                           n_jobs=workers)
        out = sf.forecast(df=sf_frame, h=args.horizon)
        wall = time.perf_counter() - t0
        figures[f"sf_wall_s_w{workers}"] = wall
        print(f"statsforecast workers={workers}: {wall:7.1f} s total, {1000 * wall / len(data):6.1f} ms/series "
              "(AutoETS + AutoTheta, fit + forecast only)")
    out = out.sort_values(["unique_id", "ds"])
    for model in ("AutoETS", "AutoTheta"):
        figures[f"sf_{model.lower()}_mase"] = np.mean([mase(train[s], actual[s], g[model].to_numpy())
                                                      for s, g in out.groupby("unique_id")])
        print(f"statsforecast {model:9s} mean MASE {figures[f'sf_{model.lower()}_mase']:.3f}")
    best_sf = min(figures["sf_autoets_mase"], figures["sf_autotheta_mase"])
    figures["mase_ratio_vs_best_sf"] = ours / best_sf
    figures["wall_ratio_w2"] = figures["t2c_wall_s_w2"] / figures["sf_wall_s_w2"]
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
