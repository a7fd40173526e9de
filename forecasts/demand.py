"""Token demand from sparse disclosures: one pooled adoption curve, coherent subsets, correlated sums.

Why a separate model: a platform discloses its token volume a handful of times, months apart. No
per-series model can identify a growth curve from three points (the per-series engine extrapolated
2024's 10-30x growth rates and printed 95% bounds of 10^16 tokens a day). Every platform rides the
same adoption cycle, so the disclosures are fitted together.

The model (a hierarchical Gompertz curve, fitted in closed form):

    log y_it = L_i + c_i * F(t; b) + e_it,   F(t; b) = (exp(b (t - t0)) - 1) / b,   b = -ln 2 / h
    c_i = c + u_i,   u_i ~ N(0, tau^2),   c ~ N(c_prior, c_prior_sd^2),   e_it ~ N(0, sigma^2)

`t` is in years, `t0` the newest observation of the vintage. `c_i` is platform i's log-growth rate
per year at t0; it decays with half-life `h` (years), common to all platforms: growth slows as an
adoption curve matures (a Gompertz curve: growth proportional to the log-distance to saturation), and
the total growth still to come from t0 is bounded by c_i * h / ln 2. `L_i` is the platform's level
(flat prior). Each platform's growth shrinks toward the common rate `c` by how much its own
disclosures say (none: the common rate; many: mostly its own). Dense panels (OpenRouter's weekly
rankings, averaged per month) enter the fit as further members and inform `c` and `h`; they are not
forecast here.

Estimation: for each half-life on a grid over the configured range, sigma and tau are estimated by
maximising the restricted (REML) likelihood (scipy) within their configured ranges, penalised toward
their configured central values (log-normal priors: a vintage with little data cannot push them to an
end of the range); the
half-lives are then averaged with weights proportional to their likelihoods (Bayesian model
averaging over a log-uniform prior). Given (h, sigma, tau) the posterior of all L_i, c, u_i is
Gaussian (conjugate linear model), so forecasts are exact draws: the common rate c is one draw shared
by every platform in a draw, which makes the platforms' forecasts correlated (one adoption cycle), and
sums of platforms (composites) are taken per draw. Predictions are of what the next disclosure will
say: they include the disclosure noise sigma.

No seam: a forecast starts from the series' newest observation, not from the curve: per draw, that
observation's residual from the draw's curve is carried forward and fades with `anchor_halflife` years.

Coherence: `hierarchy` entries say that the parts' sum cannot exceed the total (e.g. Doubao inside
China's national total). Per draw, where the parts' sum exceeds the total, both move to the same
value, the better-determined side (smaller predictive log-variance in that period) moving less; parts
that shrink take their own parts with them. Per-draw coherence makes every quantile coherent.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize

from forecasts.grid import date_range

MODEL_NAME = "pooled_gompertz"


@dataclass(frozen=True)
class DemandConfig:
    """Tunables of the pooled model; the assets fill them from config/assumptions.yaml (forecast.demand)."""

    halflife_low: float = 0.5  # years: fastest decay of the growth rate considered
    halflife_high: float = 3.0  # years: slowest decay considered (bounds the total growth to come)
    halflife_points: int = 11  # grid points between them (log-spaced)
    growth_prior: float = 1.0  # log units per year: prior mean of the common growth rate at t0
    growth_prior_sd: float = 2.0  # its prior s.d. (weak: data dominate as soon as one platform has 2 points)
    sigma_low: float = 0.1  # log units: disclosure noise (rounding, drifting definitions) is estimated in [low, high]
    sigma_high: float = 0.5
    tau_low: float = 0.3  # log units per year: spread of platforms' growth rates around the common one,
    tau_high: float = 1.0  # estimated in [low, high] (unidentified when few platforms have two disclosures)
    sigma_prior: float = 0.2  # prior medians of sigma and tau (log-normal, s.d. `component_prior_sd` in log):
    tau_prior: float = 0.6  # the likelihood is penalised toward them, so a vintage with little data does not
    component_prior_sd: float = 0.5  # push a variance component to the end of its range
    draws: int = 4000
    anchor_halflife: float = 0.5  # years: a series' last residual from the curve fades with this half-life
    # (0: no anchoring, the forecast starts on the curve)


@dataclass
class DemandFit:
    series: list[str]  # forecast series: members and satellites (panel members are fitted but not forecast)
    forecast: pl.DataFrame  # engine forecast format
    selection: pl.DataFrame  # one row per forecast member
    draws: dict[str, np.ndarray]  # series -> (draws, periods) tokens/day on `periods`, reconciled
    periods: list[dt.date]
    summary: dict  # posterior of the half-life and variance components, for the report and the note


def _years(dates) -> np.ndarray:
    """Mid-month decimal years of period-start dates."""
    return np.array([d.year + (d.month - 0.5) / 12 for d in dates], dtype=float)


def _design(members: list[str], sid: np.ndarray, t: np.ndarray, t0: float, b: float):
    index = {m: i for i, m in enumerate(members)}
    g = np.array([index[s] for s in sid])
    f = np.expm1(b * (t - t0)) / b
    n, p = len(t), len(members)
    dummies = np.zeros((n, p))
    dummies[np.arange(n), g] = 1.0
    return dummies, f, g


def _reml(y: np.ndarray, dummies: np.ndarray, f: np.ndarray, sigma: float, tau: float, prior_sd: float,
          prior_mean: float) -> float:
    """Restricted log-likelihood of y with flat levels, the common rate and slopes integrated out."""
    z = dummies * f[:, None]  # per-platform slope columns
    v = sigma**2 * np.eye(len(y)) + tau**2 * z @ z.T + prior_sd**2 * np.outer(f, f)
    r0 = y - prior_mean * f
    try:
        chol = np.linalg.cholesky(v)
    except np.linalg.LinAlgError:
        return -np.inf
    vinv_x = np.linalg.solve(v, dummies)
    xtvx = dummies.T @ vinv_x
    sign, logdet_x = np.linalg.slogdet(xtvx)
    if sign <= 0:
        return -np.inf
    beta = np.linalg.solve(xtvx, vinv_x.T @ r0)
    r = r0 - dummies @ beta
    return float(-0.5 * (2 * np.sum(np.log(np.diag(chol))) + logdet_x + r @ np.linalg.solve(v, r)))


def _posterior(y, dummies, f, sigma, tau, prior_mean, prior_sd):
    """Gaussian posterior of theta = [L_1..L_P, c, u_1..u_P] (flat prior on the levels)."""
    p = dummies.shape[1]
    x = np.hstack([dummies, f[:, None], dummies * f[:, None]])
    prior_prec = np.zeros(2 * p + 1)
    prior_prec[p] = 1 / prior_sd**2
    prior_prec[p + 1:] = 1 / tau**2
    prior_mu = np.zeros(2 * p + 1)
    prior_mu[p] = prior_mean
    prec = x.T @ x / sigma**2 + np.diag(prior_prec)
    cov = np.linalg.inv(prec)
    cov = (cov + cov.T) / 2
    mu = cov @ (x.T @ y / sigma**2 + prior_prec * prior_mu)
    return mu, cov


def _fit_components(y, dummies, f, cfg: DemandConfig) -> tuple[float, float, float]:
    def bounded(x: float, low: float, high: float) -> float:
        return low + (high - low) / (1 + np.exp(-x))

    def components(params) -> tuple[float, float]:
        return (bounded(params[0], cfg.sigma_low, cfg.sigma_high), bounded(params[1], cfg.tau_low, cfg.tau_high))

    def loss(params):
        sigma, tau = components(params)
        ll = _reml(y, dummies, f, sigma, tau, cfg.growth_prior_sd, cfg.growth_prior)
        penalty = ((math.log(sigma / cfg.sigma_prior)) ** 2 + (math.log(tau / cfg.tau_prior)) ** 2) \
            / (2 * cfg.component_prior_sd**2)
        return -ll + penalty if np.isfinite(ll) else 1e12

    best = None
    for start in ((-1.0, -1.0), (1.0, 1.0)):
        res = minimize(loss, np.array(start), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-4})
        if best is None or res.fun < best.fun:
            best = res
    sigma, tau = components(best.x)
    return float(sigma), float(tau), float(-best.fun)


def _reconcile(draws: dict[str, np.ndarray], hierarchy: list[dict]) -> list[str]:
    """Make every draw coherent in place; returns notes of the entries that had to move."""
    # bottom-up: an entry whose total is a part of another entry goes first
    parts_of = {}
    for entry in hierarchy:
        parts_of.setdefault(entry["total"], []).extend(entry["parts"])

    def depth(series: str, seen=()) -> int:
        if series in seen:
            raise ValueError(f"forecast hierarchy has a cycle through {series!r}")
        return 1 + max((depth(p, (*seen, series)) for p in parts_of.get(series, [])), default=0)

    def shrink(series: str, factor: np.ndarray) -> None:
        draws[series] = draws[series] * factor
        for part in parts_of.get(series, []):
            if part in draws:
                shrink(part, factor)

    notes = []
    for entry in sorted(hierarchy, key=lambda e: depth(e["total"])):
        total, parts = entry["total"], [p for p in entry["parts"] if p in draws]
        if total not in draws or not parts:
            continue
        s = sum(draws[p] for p in parts)
        t = draws[total]
        over = s > t
        if not over.any():
            continue
        ls, lt = np.log(s), np.log(t)
        # weights: the inverse predictive log-variance of each side, per period
        ws = 1 / np.maximum(np.var(ls, axis=0), 1e-6)
        wt = 1 / np.maximum(np.var(lt, axis=0), 1e-6)
        meet = (ws * ls + wt * lt) / (ws + wt)
        factor_parts = np.where(over, np.exp(meet - ls), 1.0)
        draws[total] = np.where(over, np.exp(meet), t)
        for part in parts:
            shrink(part, factor_parts)
        notes.append(f"{'+'.join(parts)} exceeded {total} in {over.mean():.0%} of draws; reconciled")
    return notes


def _satellite(y: np.ndarray, f: np.ndarray, common: float, sigma: float, tau: float):
    """Posterior of (level, own growth deviation) of a satellite given the common rate: a two-parameter
    conjugate regression of y - common * F on [1, F] with u ~ N(0, tau^2) and a flat level."""
    x = np.column_stack([np.ones_like(f), f])
    prec = x.T @ x / sigma**2 + np.diag([0.0, 1 / tau**2])
    cov = np.linalg.inv(prec)
    cov = (cov + cov.T) / 2
    return cov @ (x.T @ (y - common * f) / sigma**2), cov


def _month_of(t: float) -> str:
    """A fractional year (mid-month convention of _years) as 'Jun 2026'."""
    year = int(np.floor(t))
    month = min(12, max(1, int(np.floor((t - year) * 12)) + 1))
    return dt.date(year, month, 1).strftime("%b %Y")


def _anchor(b: float, t0: float, tf: np.ndarray, newest: tuple[float, float], level, rate,
            cfg: DemandConfig) -> np.ndarray:
    """No seam at the last observation: per draw, the newest observation's residual from the draw's curve,
    carried into the forecast and fading with half-life `cfg.anchor_halflife` (a platform below its curve
    stays below it for a while). (draws, periods) log units; 0 without anchoring."""
    if cfg.anchor_halflife <= 0:
        return np.zeros((len(np.atleast_1d(level)), len(tf)))
    t_last, y_last = newest
    f_last = np.expm1(b * (t_last - t0)) / b
    residual = y_last - (np.asarray(level) + np.asarray(rate) * f_last)
    fade = np.exp(-math.log(2) * np.maximum(tf - t_last, 0.0) / cfg.anchor_halflife)
    return residual[:, None] * fade[None, :]


def fit_demand(history: pl.DataFrame, horizon_end: dt.date, hierarchy: list[dict] | None = None,
               panel: pl.DataFrame | None = None, satellites: pl.DataFrame | None = None, levels=(80, 95),
               seed: int = 0, config: DemandConfig | None = None,
               level_sd: dict[str, float] | None = None) -> DemandFit:
    """Fit the pooled model to monthly `history` (series_id, period_start, value in tokens/day) and
    forecast every series from the month after its last observation to `horizon_end`.
    `panel` (same columns) adds dense members that inform the common curve but are not forecast.
    `satellites` (same columns) are forecast on the fitted curve -- each with its own level and a growth
    deviation shrunk toward the common rate, drawn with the same common rate -- but do not inform the
    curve, its half-life or the variance components (noisy series such as OpenRouter's weekly top-10
    volume by origin, whose membership churns). `level_sd` adds a per-series level uncertainty (log
    s.d., one draw per path): the method error of an estimated series (e.g. revenue / price per token)."""
    cfg = config or DemandConfig()
    frames = [history.select("series_id", "period_start", "value").with_columns(pl.lit(False).alias("panel"))]
    if panel is not None and panel.height:
        frames.append(panel.select("series_id", "period_start", "value").with_columns(pl.lit(True).alias("panel")))
    data = (pl.concat(frames).filter(pl.col("value") > 0)
            .with_columns(pl.col("period_start").cast(pl.Date).dt.truncate("1mo"))
            .sort("series_id", "period_start"))
    if data.height == 0:
        raise ValueError("no positive token observations to fit")
    sat = (satellites.select("series_id", "period_start", "value").filter(pl.col("value") > 0)
           .with_columns(pl.col("period_start").cast(pl.Date).dt.truncate("1mo")).sort("series_id", "period_start")
           if satellites is not None and satellites.height else None)
    sat_names = sorted(sat["series_id"].unique().to_list()) if sat is not None else []
    series = sorted(data.filter(~pl.col("panel"))["series_id"].unique().to_list())
    members = sorted(data["series_id"].unique().to_list())
    sid = data["series_id"].to_numpy()
    t = _years(data["period_start"].to_list())
    y = np.log(data["value"].to_numpy())
    t0 = float(t.max())

    # 1. half-life grid: variance components and likelihood per point
    grid = np.exp(np.linspace(np.log(cfg.halflife_low), np.log(cfg.halflife_high), cfg.halflife_points))
    fits = []
    for h in grid:
        b = -math.log(2) / h
        dummies, f, _ = _design(members, sid, t, t0, b)
        sigma, tau, ll = _fit_components(y, dummies, f, cfg)
        mu, cov = _posterior(y, dummies, f, sigma, tau, cfg.growth_prior, cfg.growth_prior_sd)
        fits.append({"h": float(h), "b": b, "sigma": sigma, "tau": tau, "ll": ll, "mu": mu, "cov": cov})
    lls = np.array([fit["ll"] for fit in fits])
    weights = np.exp(lls - lls.max())
    weights /= weights.sum()

    # 2. joint draws of every member's path on the monthly grid
    last = (pl.concat([data.select("series_id", "period_start"), sat.select("series_id", "period_start")])
            if sat is not None else data).group_by("series_id").agg(pl.col("period_start").max())
    last = dict(zip(last["series_id"].to_list(), last["period_start"].to_list()))
    # each forecast series' newest observation (time in years, log value): its forecast starts from it
    newest = (pl.concat([data.select("series_id", "period_start", "value"), sat.select("series_id", "period_start", "value")])
              if sat is not None else data.select("series_id", "period_start", "value"))
    newest = newest.sort("series_id", "period_start").group_by("series_id", maintain_order=True).last()
    last_obs = {r["series_id"]: (float(_years([r["period_start"]])[0]), float(np.log(r["value"])))
                for r in newest.iter_rows(named=True)}
    start = min(last[s] for s in series)
    n_periods = (horizon_end.year - start.year) * 12 + horizon_end.month - start.month + 1
    periods = date_range(start, n_periods, "M")[1:]
    tf = _years(periods)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
    pick = rng.choice(len(fits), size=cfg.draws, p=weights)
    p = len(members)
    log_draws = {s: np.empty((cfg.draws, len(periods))) for s in [*series, *sat_names]}
    for k, fit in enumerate(fits):
        rows = np.flatnonzero(pick == k)
        if len(rows) == 0:
            continue
        theta = rng.multivariate_normal(fit["mu"], fit["cov"], size=len(rows), method="eigh")
        ff = np.expm1(fit["b"] * (tf - t0)) / fit["b"]
        common = theta[:, p]  # one common growth rate per draw, shared by every series: correlated paths
        for s in series:
            i = members.index(s)
            level, rate = theta[:, i], common + theta[:, p + 1 + i]
            noise = rng.standard_normal((len(rows), len(periods))) * fit["sigma"]
            curve = level[:, None] + rate[:, None] * ff[None, :]
            log_draws[s][rows] = curve + _anchor(fit["b"], t0, tf, last_obs[s], level, rate, cfg) + noise
        for s in sat_names:
            part = sat.filter(pl.col("series_id") == s)
            fs = np.expm1(fit["b"] * (_years(part["period_start"].to_list()) - t0)) / fit["b"]
            mu, cov = _satellite(np.log(part["value"].to_numpy()), fs, float(fit["mu"][p]), fit["sigma"], fit["tau"])
            own = rng.multivariate_normal(mu, cov, size=len(rows), method="eigh")
            noise = rng.standard_normal((len(rows), len(periods))) * fit["sigma"]
            curve = own[:, [0]] + (common + own[:, 1])[:, None] * ff[None, :]
            log_draws[s][rows] = curve + _anchor(fit["b"], t0, tf, last_obs[s], own[:, 0], common + own[:, 1],
                                                 cfg) + noise
    for s, sd in (level_sd or {}).items():
        if s in log_draws:
            log_draws[s] += sd * rng.standard_normal((cfg.draws, 1))
    draws = {s: np.exp(v) for s, v in log_draws.items()}
    notes = _reconcile(draws, hierarchy or [])

    # 3. quantiles per series, from the month after its last observation
    out, selection = [], []
    mean_h = float(np.sum(weights * grid))
    for s in [*series, *sat_names]:
        keep = np.array([d > last[s] for d in periods])
        q = {"value": np.median(draws[s][:, keep], axis=0)}
        for level in levels:
            q[f"lo{level}"] = np.quantile(draws[s][:, keep], 0.5 - level / 200, axis=0)
            q[f"hi{level}"] = np.quantile(draws[s][:, keep], 0.5 + level / 200, axis=0)
        n_keep = int(keep.sum())
        out.append(pl.DataFrame({"series_id": [s] * n_keep, "period_start": [d for d, k in zip(periods, keep) if k],
                                 **{k: v.astype(float) for k, v in q.items()}, "model_name": [MODEL_NAME] * n_keep}))
        best = fits[int(np.argmax(weights))]
        if s in members:
            i = members.index(s)
            rate, n_obs, role = best["mu"][p] + best["mu"][p + 1 + i], int((sid == s).sum()), "member"
        else:
            part = sat.filter(pl.col("series_id") == s)
            fs = np.expm1(best["b"] * (_years(part["period_start"].to_list()) - t0)) / best["b"]
            mu, _ = _satellite(np.log(part["value"].to_numpy()), fs, float(best["mu"][p]), best["sigma"], best["tau"])
            rate, n_obs, role = best["mu"][p] + mu[1], part.height, "satellite (follows the curve, does not shape it)"
        selection.append({
            "series_id": s, "model_name": MODEL_NAME, "n_obs": n_obs,
            "reason": (f"pooled adoption curve over {len(members)} members; this series a {role} with {n_obs} "
                       f"monthly points: growth rate in {_month_of(t0)} {rate:.2f} log units/yr (common {best['mu'][p]:.2f}), decaying with "
                       f"half-life {mean_h:.2f} yr (posterior mean over {cfg.halflife_low}-{cfg.halflife_high}); "
                       f"disclosure noise {best['sigma']:.2f}, spread of platform growth {best['tau']:.2f}"),
        })
    summary = {"t0": t0, "halflife_mean": mean_h, "weights": dict(zip(grid.round(3).tolist(), weights.round(4).tolist())),
               "sigma": float(np.sum(weights * [f["sigma"] for f in fits])),
               "tau": float(np.sum(weights * [f["tau"] for f in fits])),
               "common_growth": float(np.sum(weights * [f["mu"][p] for f in fits])), "reconciled": notes}
    forecast = pl.concat(out) if out else pl.DataFrame()
    return DemandFit(series=[*series, *sat_names], forecast=forecast, selection=pl.DataFrame(selection), draws=draws,
                     periods=periods, summary=summary)


def compose_draws(fit: DemandFit, components: list[str], series_id: str, levels=(80, 95)) -> tuple[pl.DataFrame, list[str]]:
    """The per-draw sum of `components` (correlated through the common growth draw), from the first
    period every available component is forecast. Returns the forecast rows and the missing components
    (a partial composite when any are missing; empty frame when none is available)."""
    present = [c for c in components if c in fit.draws]
    missing = [c for c in components if c not in fit.draws]
    if not present:
        return pl.DataFrame(), missing
    first = max(fit.forecast.filter(pl.col("series_id") == c)["period_start"].min() for c in present)
    keep = np.array([d >= first for d in fit.periods])
    total = sum(fit.draws[c][:, keep] for c in present)
    q = {"value": np.median(total, axis=0)}
    for level in levels:
        q[f"lo{level}"] = np.quantile(total, 0.5 - level / 200, axis=0)
        q[f"hi{level}"] = np.quantile(total, 0.5 + level / 200, axis=0)
    n = int(keep.sum())
    frame = pl.DataFrame({"series_id": [series_id] * n, "period_start": [d for d, k in zip(fit.periods, keep) if k],
                          **{k: v.astype(float) for k, v in q.items()}, "model_name": ["composite"] * n})
    return frame, missing


QUANTILE_COLUMNS = ("value", "lo80", "hi80", "lo95", "hi95")


def monthly_to_weekly(fit: DemandFit, series_id: str, weeks: list[dt.date], levels=(80, 95)) -> pl.DataFrame:
    """Weekly forecast rows (tokens/week) of a member fitted on its monthly mean in tokens/day: each week
    takes its month's draws x 7 (within-month variation is not modelled)."""
    months = {d: i for i, d in enumerate(fit.periods)}
    weeks = [w for w in weeks if dt.date(w.year, w.month, 1) in months]
    if not weeks:
        return pl.DataFrame()
    cols = [months[dt.date(w.year, w.month, 1)] for w in weeks]
    draws = fit.draws[series_id][:, cols] * 7
    q = {"value": np.median(draws, axis=0)}
    for level in levels:
        q[f"lo{level}"] = np.quantile(draws, 0.5 - level / 200, axis=0)
        q[f"hi{level}"] = np.quantile(draws, 0.5 + level / 200, axis=0)
    return pl.DataFrame({"series_id": [series_id] * len(weeks), "period_start": weeks,
                         **{k: v.astype(float) for k, v in q.items()}, "model_name": [MODEL_NAME] * len(weeks)})
