"""Backtest, select and forecast many series: the orchestration around forecasts/methods.py.

Per series:
1. Put the observations on a regular grid (gaps = NaN); model on log scale when every value is
   positive (token volumes, revenue and shipments grow multiplicatively), else on the raw scale.
   Seasonality test (models.seasonality_test); when it passes, non-seasonal models see the seasonally
   adjusted series and get the last season's indices back.
2. Rolling-origin backtest with an expanding window: for each origin (the last `max_origins`
   observed points that leave at least `min_train` observations before them), fit every candidate
   on the data up to the origin and forecast `backtest_horizon` periods; score the observed actuals.
3. Select: the equal-weight combination (models.COMBINATION) wherever its members can be fitted -- a
   single model replaces it only on a clear backtest win (EngineConfig.selection_z/_margin; by default
   never: see there). Otherwise the candidate with the lowest mean MASE; ties (within 1e-9) go to the
   better 95% coverage (closest to nominal), then to the simpler model (models.SIMPLICITY order).
   A series with too few observations to backtest falls back by a fixed hierarchy (see `_fallback`),
   and the reason is recorded.
4. Refit the chosen model on the whole history and forecast `horizon` periods. The point forecast is
   the predictive median; intervals are predictive quantiles (nested, ordered, non-negative for
   log-scale series), widened by the chosen model's backtest calibration factor: the root mean
   squared standardised backtest error, shrunk toward 1 and never below 1 (model-based intervals
   ignore parameter and selection uncertainty and come out too narrow).

Series run in parallel processes, each limited to one BLAS/OpenMP thread; every random draw is
seeded from (seed, series_id), so results do not depend on the number of workers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.stats import norm

from forecasts.grid import SEASON, check_freq, date_range, period_index, snap
from forecasts.methods import (COMBINATION, MODELS, SEASONAL_MODELS, SIMPLICITY, Prediction, Refit, candidates, llt_prior,
                              seasonal_indices, seasonality_test)

FORECAST_SCHEMA = {
    "series_id": pl.Utf8, "period_start": pl.Date, "value": pl.Float64, "lo80": pl.Float64,
    "hi80": pl.Float64, "lo95": pl.Float64, "hi95": pl.Float64, "model_name": pl.Utf8,
}
BACKTEST_SCHEMA = {
    "series_id": pl.Utf8, "model_name": pl.Utf8, "origin": pl.Date, "horizon": pl.Int64,
    "period_start": pl.Date, "actual": pl.Float64, "predicted": pl.Float64, "abs_error": pl.Float64,
    "lo80": pl.Float64, "hi80": pl.Float64, "lo95": pl.Float64, "hi95": pl.Float64, "scale": pl.Float64,
    "log_scale": pl.Boolean,
}
SELECTION_SCHEMA = {
    "series_id": pl.Utf8, "model_name": pl.Utf8, "mase": pl.Float64, "smape": pl.Float64,
    "coverage80": pl.Float64, "coverage95": pl.Float64, "interval_scale": pl.Float64, "n_obs": pl.Int64, "n_origins": pl.Int64,
    "log_scale": pl.Boolean, "reason": pl.Utf8, "warnings": pl.Utf8,
}


@dataclass(frozen=True)
class EngineConfig:
    """Tunables of the engine; the assets fill them from config/assumptions.yaml."""

    max_origins: int = 4
    min_train: int = 3
    backtest_horizon: int | None = None  # default: min(horizon, season or 4); 13 for weekly
    min_backtest_obs: int = 5
    fallback_sigma_per_year: float = 0.5  # log-scale s.d. per year when a series is too short
    sparse_irregular_sd: float = 0.1  # llt_prior: measurement noise of one disclosure (log units)
    sparse_slope_sd_per_year: float = 1.0  # llt_prior: s.d. of the annual growth rate's change per year
    sparse_growth_halflife_years: float = 1.0  # llt_prior: the growth rate halves over this many years
    calibration_prior: float = 8.0  # pseudo-errors pulling the interval calibration factor toward 1
    log_positive: bool = True  # model all-positive series on the log scale (growth compounds)
    selection_margin: float = 0.0  # ... and by at least this share of the combination's MASE
    # a single model replaces the default combination only when it beats it at every backtest origin, by more
    # than selection_z standard errors of the per-origin differences and by selection_margin x the
    # combination's MASE. Default: never. On the M3 competition's 1,401 yearly and quarterly series every
    # override rule tried (z 1.645 / 2.33, margins 0.15 / 0.3 / 0.5) made the forecasts worse than always
    # combining (bench/competition_bench.py; issue 15 note): four backtest origins cannot tell a better
    # model from a lucky one.
    selection_z: float = float("inf")
    # a model that fits the history perfectly still has parameter and model uncertainty: the predictive
    # s.d. at step h is at least min_sd x sqrt(h) (log units on positive series; on other series the
    # same fraction of the series' mean absolute level)
    min_sd: float = 0.01


@dataclass
class ForecastResult:
    forecast: pl.DataFrame
    backtest: pl.DataFrame
    selection: pl.DataFrame
    flags: pl.DataFrame = field(default_factory=pl.DataFrame)  # what a data vintage lacks (forecasts/pipeline.py)
    demand_summary: dict = field(default_factory=dict)  # the pooled demand model's fit (forecasts/demand.py)


PERIODS_PER_YEAR = {"D": 365.25, "W": 52.18, "M": 12, "Q": 4, "Y": 1}


def _seed_for(seed: int, series_id: str) -> np.random.SeedSequence:
    digest = int.from_bytes(hashlib.sha256(series_id.encode()).digest()[:8], "little")
    return np.random.SeedSequence([seed, digest])


def _quantiles(pred: Prediction, levels: tuple[int, ...], log_scale: bool) -> dict[str, np.ndarray]:
    sd = np.nan_to_num(pred.sd, nan=0.0)
    out = {"value": pred.mean}
    for level in levels:
        z = norm.ppf(0.5 + level / 200)
        out[f"lo{level}"] = pred.mean - z * sd
        out[f"hi{level}"] = pred.mean + z * sd
    if log_scale:
        return {k: np.exp(v) for k, v in out.items()}
    return {k: (np.maximum(v, 0.0) if k.startswith("lo") or k == "value" else v) for k, v in out.items()}


def _floor_sd(sd: np.ndarray, observed: np.ndarray, log_scale: bool, min_sd: float) -> np.ndarray:
    """The predictive s.d. never collapses to zero on real-valued data (a perfect in-sample fit is
    not certainty): at least `min_sd` x sqrt(step), on the log scale for positive series, else as a
    fraction of the series' mean absolute level (1 when the series is all zeros)."""
    unit = 1.0 if log_scale else (float(np.mean(np.abs(observed))) or 1.0)
    floor = min_sd * unit * np.sqrt(np.arange(1, len(sd) + 1))
    sd = np.asarray(sd, dtype=float)
    return np.where(np.isnan(sd) | (sd < floor), floor, sd)


def _mase_scale(y: np.ndarray, season: int | None) -> float:
    """Mean absolute one-step (per period) naive change of the observed history, on the modelling
    scale (log for positive series, so MASE compares relative errors)."""
    idx = np.flatnonzero(~np.isnan(y))
    if len(idx) < 2:
        return float("nan")
    steps = np.abs(np.diff(y[idx])) / np.diff(idx)
    scale = float(np.mean(steps))
    return scale if scale > 0 else float("nan")


def _fallback(n_obs: int, cfg: EngineConfig, log_scale: bool) -> tuple[str, str]:
    if n_obs >= 2 and not log_scale:
        return "drift", (f"{n_obs} observations: too few to backtest (need {cfg.min_backtest_obs}); "
                         "fallback for a series with zero or negative values: drift")
    if n_obs >= 2:
        return "llt_prior", (f"{n_obs} observations: too few to backtest (need {cfg.min_backtest_obs}); "
                             "fallback 1: llt_prior (local linear trend with the configured prior variances; "
                             "the Kalman filter spans the gaps)")
    return "naive", ("1 observation: fallback 3: naive (flat) with the configured fallback s.d. of "
                     f"{cfg.fallback_sigma_per_year} log units per year")


def _predict(name: str, y: np.ndarray, h: int, season: int | None, floor_sigma: float,
             cfg: EngineConfig, freq: str, params=None) -> Prediction:
    if np.count_nonzero(~np.isnan(y)) == 1:
        name = "naive"  # one point: nothing else is defined
    if name == "llt_prior":
        ppy = PERIODS_PER_YEAR[freq]
        pred = llt_prior(y, h, season, irregular_sd=cfg.sparse_irregular_sd,
                         slope_sd=cfg.sparse_slope_sd_per_year / ppy**1.5,
                         damping=0.5 ** (1 / (cfg.sparse_growth_halflife_years * ppy)))
    else:
        pred = MODELS[name](y, h, season, params)
    if name in ("naive", "drift", "local_drift"):
        # a random walk estimated from one or two increments can have zero or undefined variance
        steps = np.arange(1, h + 1) + (len(y) - 1 - np.flatnonzero(~np.isnan(y))[-1])
        floor = floor_sigma * np.sqrt(steps)
        pred = Prediction(pred.mean, np.where(np.isnan(pred.sd) | (pred.sd < floor), floor, pred.sd))
    if not np.all(np.isfinite(pred.mean)) or not np.all(np.isfinite(pred.sd)):
        raise FloatingPointError(f"{name} produced non-finite forecasts")
    return pred


def _run_series(task: dict) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _series(task)
    messages = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}" for w in caught})
    out["selection"]["warnings"] = "; ".join(messages)
    return out


def _origins(y: np.ndarray, h_bt: int, cfg: EngineConfig) -> list[int]:
    """Backtest origins (last index of each training window), latest last.

    Dense series: origins `step` periods apart ending h_bt periods before the end, so every origin
    has a full horizon of actuals. Sparse series: the observed points that have an actual after them.
    """
    obs_idx = np.flatnonzero(~np.isnan(y))
    eligible = [o for o in obs_idx[cfg.min_train - 1: -1] if np.any(~np.isnan(y[o + 1: o + 1 + h_bt]))]
    full = [o for o in eligible if o + h_bt <= len(y) - 1]
    if len(full) >= cfg.max_origins:
        step = max(1, h_bt // 2)
        last = full[-1]
        picked = [o for o in full if (last - o) % step == 0][-cfg.max_origins:]
        if len(picked) == cfg.max_origins:
            return picked
    return eligible[-cfg.max_origins:]


def _combine(preds: list[Prediction]) -> Prediction:
    """Equal-weight combination on the modelling scale; variance = mean of the members' variances."""
    mean = np.mean([p.mean for p in preds], axis=0)
    sd = np.sqrt(np.mean([p.sd**2 for p in preds], axis=0))
    return Prediction(mean, sd)


def _series(task: dict) -> dict:
    sid, start, y_raw, freq = task["series_id"], task["start"], task["y"], task["freq"]
    horizon, levels, cfg = task["horizon"], task["levels"], task["cfg"]
    season = SEASON[freq]
    observed = y_raw[~np.isnan(y_raw)]
    log_scale = bool(np.all(observed > 0)) and cfg.log_positive
    y = np.log(y_raw) if log_scale else y_raw.copy()
    n_obs, n = int(len(observed)), len(y)
    floor_sigma = cfg.fallback_sigma_per_year / np.sqrt(PERIODS_PER_YEAR[freq]) if n_obs <= 3 else 0.0
    dates = date_range(start, n + horizon, freq)
    scale = _mase_scale(y, season)

    seasonal = seasonality_test(y, season)

    def predict(name: str, data: np.ndarray, h: int, params=None) -> Prediction:
        if not seasonal or name in SEASONAL_MODELS or name == "llt_prior" \
                or np.count_nonzero(~np.isnan(data)) < 2 * season:  # a window too short to decompose
            return _predict(name, data, h, season, floor_sigma, cfg, freq, params)
        # seasonally adjust (indices from this window only), forecast, put the last season's indices back
        idx = seasonal_indices(data, season)
        pred = _predict(name, data - idx, h, season, floor_sigma, cfg, freq, params)
        future = idx[len(data) - season + np.arange(h) % season]
        return Prediction(pred.mean + future, pred.sd, pred.params)

    names = [m for m in candidates(n_obs, n, season, seasonal) if log_scale or m != "llt_prior"]
    if not np.isfinite(cfg.selection_z) and all(m in names for m in COMBINATION):
        names = list(COMBINATION)  # no single model can replace the combination: backtest only its members
    h_bt = cfg.backtest_horizon or min(horizon, max(season or 4, 4) if freq != "W" else 13)
    origins = _origins(y, h_bt, cfg)

    # 1. every candidate's forecasts from every origin; parameters are estimated at the first origin
    #    and reused (filtered, not refitted) at the later ones: no look-ahead, one fit per candidate
    preds: dict[str, list[Prediction]] = {}

    first_origin: dict[str, object] = {}  # parameters estimated at the first origin

    def backtest_candidate(name: str) -> None:
        params, per_origin = None, []
        try:
            for o in origins:
                pred = predict(name, y[: o + 1], h_bt, params)
                params = pred.params
                per_origin.append(pred)
        except Exception:  # a candidate that cannot fit this window is out of the running
            return
        preds[name] = per_origin
        first_origin[name] = params

    if n_obs >= cfg.min_backtest_obs and origins:
        for name in names:
            backtest_candidate(name)
        members = [m for m in COMBINATION if m in preds]
        if len(members) == len(COMBINATION):
            preds["combo"] = [_combine([preds[m][i] for m in members]) for i in range(len(origins))]
        elif names == list(COMBINATION):  # a member failed: the other candidates compete after all
            for name in candidates(n_obs, n, season, seasonal):
                if name not in names and (log_scale or name != "llt_prior"):
                    backtest_candidate(name)

    # 2. score them on the observed actuals
    bt_rows: list[dict] = []
    scores: dict[str, dict] = {}
    per_origin_mase: dict[str, list[float]] = {}
    for name, per_origin in preds.items():
        errs, ape, in80, in95, z2 = [], [], [], [], []
        origin_means = []
        for o, pred in zip(origins, per_origin):
            first_err = len(errs)
            q = _quantiles(pred, (80, 95), log_scale)
            for k in range(h_bt):
                t = o + 1 + k
                if t >= n or np.isnan(y_raw[t]):
                    continue
                actual, predicted = float(y_raw[t]), float(q["value"][k])
                err = abs(actual - predicted)
                # MASE on the modelling scale: relative errors for log-scale series
                errs.append(abs(y[t] - pred.mean[k]) / scale if scale == scale else np.nan)
                z2.append(((y[t] - pred.mean[k]) / pred.sd[k]) ** 2 if pred.sd[k] > 0 else np.nan)
                denom = abs(actual) + abs(predicted)
                ape.append(2 * err / denom if denom else 0.0)
                in80.append(q["lo80"][k] <= actual <= q["hi80"][k])
                in95.append(q["lo95"][k] <= actual <= q["hi95"][k])
                bt_rows.append({
                    "series_id": sid, "model_name": name, "origin": dates[o], "horizon": k + 1,
                    "period_start": dates[t], "actual": actual, "predicted": predicted, "abs_error": err,
                    "lo80": float(q["lo80"][k]), "hi80": float(q["hi80"][k]),
                    "lo95": float(q["lo95"][k]), "hi95": float(q["hi95"][k]), "scale": scale,
                    "log_scale": log_scale,
                })
            if len(errs) > first_err:
                origin_means.append(float(np.nanmean(errs[first_err:])))
        per_origin_mase[name] = origin_means
        if errs:
            # interval calibration: the backtest's mean squared standardised error, shrunk toward 1
            # with `calibration_prior` pseudo-errors; intervals are only ever widened
            z2 = np.asarray(z2, dtype=float)
            z2 = z2[np.isfinite(z2)]
            k0 = cfg.calibration_prior
            scores[name] = {"mase": float(np.nanmean(errs)), "smape": float(np.mean(ape)),
                            "coverage80": float(np.mean(in80)), "coverage95": float(np.mean(in95)),
                            "interval_scale": float(np.sqrt(max(1.0, (np.sum(z2) + k0) / (len(z2) + k0))))}

    # 3. select: the combination unless a single model beats it by more than the backtest's noise
    if scores:
        order = SIMPLICITY + ["combo"]
        ranking = sorted(scores, key=lambda m: (round(scores[m]["mase"], 9),
                                                abs(scores[m]["coverage95"] - 0.95), order.index(m)))
        reason = (f"lowest backtest MASE of {len(scores)} candidates over {len(origins)} origins "
                  f"(horizon {h_bt}); ties -> 95% coverage closest to nominal -> simpler model")
        if "combo" in scores and ranking[0] != "combo":
            best = ranking[0]
            diff = np.asarray(per_origin_mase["combo"]) - np.asarray(per_origin_mase[best])
            noise = (cfg.selection_z * float(np.std(diff, ddof=1)) / np.sqrt(len(diff))) if len(diff) > 1 else np.inf
            # a clear win: better on average by more than the noise, and better at every origin
            margin = cfg.selection_margin * float(np.mean(per_origin_mase["combo"]))
            if not (float(np.mean(diff)) > max(noise, margin) and bool(np.all(diff > 0))):
                ranking = ["combo"] + [m for m in ranking if m != "combo"]
                rule = (f"a win at every origin by more than {cfg.selection_z:g} standard errors and "
                        f"{cfg.selection_margin:.0%} of the combination's MASE" if np.isfinite(cfg.selection_z) else
                        "no single model replaces it by default: on the M3 competition every override rule tried "
                        "made the forecasts worse")
                reason = (f"combination of {', '.join(COMBINATION)} (the default): the best single model in the "
                          f"backtest, {best}, differed by {float(np.mean(diff)):+.3f} MASE over {len(diff)} origins; "
                          f"{rule}")
            else:
                reason += (f"; beats the combination by {float(np.mean(diff)):.3f} MASE, more than the backtest's "
                           f"noise ({noise:.3f})")
        if seasonal:
            reason += f"; seasonal at lag {season} (90% autocorrelation test): non-seasonal models on the adjusted series"
    else:
        first, reason = _fallback(n_obs, cfg, log_scale)
        if n_obs >= cfg.min_backtest_obs:
            reason = "no candidate could be backtested; " + reason
        ranking = [first, "naive"]

    # 4. refit the chosen model on the whole history
    chosen, pred = None, None
    for name in ranking:
        try:
            def final(m: str) -> Prediction:
                if m == "arima" and first_origin.get(m) is not None:  # skip the order search: re-estimate
                    return predict(m, y, horizon, Refit(first_origin[m]))
                return predict(m, y, horizon)

            pred = _combine([final(m) for m in COMBINATION]) if name == "combo" else final(name)
            chosen = name
            break
        except Exception as exc:  # try the next-ranked model, and say so
            reason += f"; {name} failed on the full history ({type(exc).__name__}), used the next"
    score = scores.get(chosen, {})
    widen = score.get("interval_scale", 1.0)
    sd = _floor_sd(pred.sd * widen, observed, log_scale, cfg.min_sd)
    q = _quantiles(Prediction(pred.mean, sd), levels, log_scale)
    forecast_rows = {"series_id": [sid] * horizon, "period_start": dates[n:],
                     **{k: v.astype(float).tolist() for k, v in q.items()}, "model_name": [chosen] * horizon}
    selection = {"series_id": sid, "model_name": chosen, "mase": score.get("mase"), "smape": score.get("smape"),
                 "coverage80": score.get("coverage80"), "coverage95": score.get("coverage95"),
                 "interval_scale": widen, "n_obs": n_obs, "n_origins": len(origins) if scores else 0,
                 "log_scale": log_scale, "reason": reason}
    return {"forecast": forecast_rows, "backtest": bt_rows, "selection": selection}


def _prepare(history: pl.DataFrame, freq: str) -> list[tuple[str, dt.date, np.ndarray]]:
    missing = {"series_id", "period_start", "value"} - set(history.columns)
    if missing:
        raise ValueError(f"history is missing column(s) {sorted(missing)}")
    frame = history.select(
        pl.col("series_id").cast(pl.Utf8), snap(pl.col("period_start").cast(pl.Date), freq).alias("period_start"),
        pl.col("value").cast(pl.Float64),
    ).filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    dupes = frame.group_by("series_id", "period_start").len().filter(pl.col("len") > 1)
    if dupes.height:
        row = dupes.row(0, named=True)
        raise ValueError(f"history has more than one row for series {row['series_id']!r} in the period starting "
                         f"{row['period_start']} (freq {freq}); aggregate to one row per period first")
    out = []
    for (sid,), group in frame.sort("period_start").group_by("series_id", maintain_order=True):
        dates = group["period_start"].to_list()
        pos = period_index(dates[0], dates, freq)
        y = np.full(int(pos[-1]) + 1, np.nan)
        y[pos] = group["value"].to_numpy()
        out.append((sid, dates[0], y))
    return sorted(out, key=lambda t: t[0])


def _init_worker(parent: int | None = None) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # a worker must not outlive its parent: if the run is killed (SIGKILL), an idle pool worker would wait
    # for work for ever. Linux: ask the kernel for SIGKILL when the parent dies (PR_SET_PDEATHSIG = 1).
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass
        if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def run(
    history: pl.DataFrame,
    horizon: int,
    freq: str,
    levels: tuple[int, ...] = (80, 95),
    seed: int = 0,
    workers: int | None = None,
    config: EngineConfig | None = None,
) -> ForecastResult:
    """Backtest, select and forecast every series of `history`; returns all three tables."""
    check_freq(freq)
    if horizon < 1:
        raise ValueError("horizon must be at least 1 period")
    levels = tuple(sorted(int(level) for level in levels))
    if not all(0 < level < 100 for level in levels):
        raise ValueError("levels must be percentages between 0 and 100")
    cfg = config or EngineConfig()
    tasks = [{"series_id": sid, "start": start, "y": y, "freq": freq, "horizon": horizon, "levels": levels,
              "cfg": cfg} for sid, start, y in _prepare(history, freq)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, max(len(tasks), 1))
    if workers <= 1 or len(tasks) <= 1:
        results = [_run_series(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            results = list(pool.map(_run_series, tasks, chunksize=max(1, len(tasks) // (4 * workers))))

    forecast_schema = {**FORECAST_SCHEMA}
    for level in levels:
        forecast_schema.setdefault(f"lo{level}", pl.Float64)
        forecast_schema.setdefault(f"hi{level}", pl.Float64)
    forecast_cols = ["series_id", "period_start", "value",
                     *[c for level in levels for c in (f"lo{level}", f"hi{level}")], "model_name"]
    forecast = pl.concat([pl.DataFrame(r["forecast"]) for r in results], how="vertical_relaxed") if results \
        else pl.DataFrame(schema={c: forecast_schema[c] for c in forecast_cols})
    backtest = pl.DataFrame([row for r in results for row in r["backtest"]], schema=BACKTEST_SCHEMA)
    selection = pl.DataFrame([r["selection"] for r in results], schema=SELECTION_SCHEMA)
    return ForecastResult(forecast=forecast.select(forecast_cols), backtest=backtest, selection=selection)
