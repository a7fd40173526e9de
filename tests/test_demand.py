"""The pooled demand model (forecasts/demand.py), the vintage replay (forecasts/vintage.py) and point-in-time loads."""

import datetime as dt
import math
import re

import numpy as np
import polars as pl
import pytest

from warehouse.loading import load_source
from warehouse.sources import SOURCES_BY_STEM
from forecasts.demand import DemandConfig, compose_draws, fit_demand
from forecasts.vintage import replay, summarise, vintages

CFG = DemandConfig(draws=2000, halflife_points=7)


def _gompertz(platform: str, level_t0: float, rate_t0: float, halflife: float, months, t0=2026.0, noise=0.0, rng=None):
    b = -math.log(2) / halflife
    rows = []
    for d in months:
        t = d.year + (d.month - 0.5) / 12
        f = math.expm1(b * (t - t0)) / b
        e = rng.normal(0, noise) if rng is not None else 0.0
        rows.append({"series_id": platform, "period_start": d, "value": math.exp(math.log(level_t0) + rate_t0 * f + e)})
    return rows


def _months(start: dt.date, n: int, step: int = 1) -> list[dt.date]:
    out = []
    for i in range(0, n * step, step):
        m = start.month - 1 + i
        out.append(dt.date(start.year + m // 12, m % 12 + 1, 1))
    return out


def _history(rng, noise=0.05):
    rows = (_gompertz("tokens/a/all", 100e12, 1.5, 1.0, _months(dt.date(2024, 6, 1), 6, 3), noise=noise, rng=rng)
            + _gompertz("tokens/b/all", 20e12, 1.6, 1.0, _months(dt.date(2024, 9, 1), 5, 3), noise=noise, rng=rng)
            + _gompertz("tokens/c/all", 5e12, 1.4, 1.0, _months(dt.date(2025, 3, 1), 3, 4), noise=noise, rng=rng))
    return pl.DataFrame(rows)


def test_pooled_curve_recovers_the_growth_and_its_decay():
    rng = np.random.default_rng(1)
    fit = fit_demand(_history(rng, noise=0.02), dt.date(2028, 12, 1), config=CFG)
    # the truth: rate 1.4-1.6 log units/yr at t0 = 2026.0, halving every year
    assert fit.summary["halflife_mean"] == pytest.approx(1.0, rel=0.35)
    assert fit.summary["common_growth"] == pytest.approx(1.5, abs=0.35)
    fc = fit.forecast.filter(pl.col("series_id") == "tokens/a/all").sort("period_start")
    last = fc.filter(pl.col("period_start") == dt.date(2028, 12, 1)).row(0, named=True)
    b = -math.log(2)
    truth = 100e12 * math.exp(1.5 * math.expm1(b * (2028 + 11.5 / 12 - 2026.0)) / b)
    assert last["lo80"] <= truth <= last["hi80"]  # three years out, the truth inside the 80% band
    assert abs(math.log(last["value"] / truth)) < 0.5
    for col_lo, col_mid, col_hi in (("lo95", "lo80", "value"), ("value", "hi80", "hi95")):
        assert (fc[col_lo] <= fc[col_mid]).all() and (fc[col_mid] <= fc[col_hi]).all()


def test_growth_decay_bounds_the_tail():
    """With half-lives at most 1 year, the 95% bound barely moves between 2032 and 2033."""
    rng = np.random.default_rng(2)
    cfg = DemandConfig(draws=2000, halflife_points=5, halflife_low=0.5, halflife_high=1.0)
    fit = fit_demand(_history(rng), dt.date(2033, 12, 1), config=cfg)
    fc = fit.forecast.filter(pl.col("series_id") == "tokens/a/all")
    hi = dict(zip(fc["period_start"].to_list(), fc["hi95"].to_list()))
    assert hi[dt.date(2033, 12, 1)] / hi[dt.date(2032, 12, 1)] < 1.1
    last_obs = _history(rng).filter(pl.col("series_id") == "tokens/a/all")["value"].max()
    assert hi[dt.date(2033, 12, 1)] / last_obs < math.exp(4.0 * 1.0 / math.log(2))


def test_parts_never_exceed_their_total_at_any_quantile():
    rng = np.random.default_rng(3)
    hist = _history(rng)
    # part 'b' grows faster than its total 'c' would allow: reconciliation must pull them together
    hier = [{"total": "tokens/c/all", "parts": ["tokens/b/all"]}]
    fit = fit_demand(hist, dt.date(2028, 12, 1), hierarchy=hier, config=CFG)
    assert fit.summary["reconciled"], "the part started above its total, reconciliation must act"
    wide = (fit.forecast.filter(pl.col("series_id").is_in(["tokens/b/all", "tokens/c/all"]))
            .pivot(on="series_id", index="period_start", values=["lo95", "lo80", "value", "hi80", "hi95"]))
    for q in ("lo95", "lo80", "value", "hi80", "hi95"):
        assert (wide[f"{q}_tokens/b/all"] <= wide[f"{q}_tokens/c/all"] * (1 + 1e-9)).all(), q


def test_platforms_move_together_and_composites_sum_the_draws():
    rng = np.random.default_rng(4)
    fit = fit_demand(_history(rng), dt.date(2028, 12, 1), config=CFG)
    k = fit.periods.index(dt.date(2028, 12, 1))
    a, b = np.log(fit.draws["tokens/a/all"][:, k]), np.log(fit.draws["tokens/b/all"][:, k])
    assert np.corrcoef(a, b)[0, 1] > 0.2  # one common growth draw: correlated, not independent
    comp, missing = compose_draws(fit, ["tokens/a/all", "tokens/b/all", "tokens/x/all"], "tokens/sum")
    assert missing == ["tokens/x/all"]  # partial composite, reported
    row = comp.filter(pl.col("period_start") == dt.date(2028, 12, 1)).row(0, named=True)
    total = fit.draws["tokens/a/all"][:, k] + fit.draws["tokens/b/all"][:, k]
    assert row["value"] == pytest.approx(float(np.median(total)), rel=1e-9)


def test_satellites_follow_the_curve_without_shaping_it():
    rng = np.random.default_rng(5)
    hist = _history(rng)
    wild = pl.DataFrame(_gompertz("panel/x", 1e12, 4.0, 5.0, _months(dt.date(2025, 6, 1), 10), rng=rng, noise=0.3))
    alone = fit_demand(hist, dt.date(2027, 12, 1), config=CFG)
    with_sat = fit_demand(hist, dt.date(2027, 12, 1), satellites=wild, config=CFG)
    assert with_sat.summary["common_growth"] == pytest.approx(alone.summary["common_growth"], abs=1e-9)
    assert "panel/x" in with_sat.series and "panel/x" in with_sat.draws


def test_vintage_replay_scores_only_later_disclosures():
    assert vintages(dt.date(2025, 1, 1), dt.date(2025, 3, 15)) == [dt.date(2025, 1, 31), dt.date(2025, 2, 28),
                                                                    dt.date(2025, 3, 15)]
    assert vintages(dt.date(2025, 1, 1), dt.date(2025, 7, 31), 3) == [dt.date(2025, 1, 31), dt.date(2025, 4, 30),
                                                                       dt.date(2025, 7, 31)]
    hist = pl.DataFrame({
        "series_id": ["s"] * 4, "period_start": [dt.date(2025, m, 1) for m in (1, 2, 3, 4)],
        "value": [100.0, 110.0, 121.0, 200.0],
        "known_on": [dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 31), dt.date(2025, 4, 30)]})
    seen = []

    def flat(rows: pl.DataFrame, vintage: dt.date) -> pl.DataFrame:
        seen.append((vintage, rows["known_on"].max()))
        last = rows.sort("period_start").row(-1, named=True)
        months = [dt.date(2025, m, 1) for m in range(last["period_start"].month + 1, 13)]
        v = last["value"]
        return pl.DataFrame({"series_id": "s", "period_start": months, "value": v, "lo80": v * 0.9, "hi80": v * 1.5,
                             "lo95": v * 0.8, "hi95": v * 2.5, "model_name": "flat"})

    points = replay(hist, vintages(dt.date(2025, 1, 1), dt.date(2025, 4, 30)), flat)
    assert all(known <= vintage for vintage, known in seen)  # no look-ahead
    assert points.height == 3 + 2 + 1  # later disclosures only
    jan = points.filter(pl.col("vintage") == dt.date(2025, 1, 31)).sort("period_start")
    assert jan["log_error"].to_list() == pytest.approx([math.log(100 / 110), math.log(100 / 121), math.log(100 / 200)])
    assert jan["in80"].to_list() == [True, True, False] and jan["in95"].to_list() == [True, True, True]
    pooled = summarise(points).filter(pl.col("series_id") == "(all series)").row(0, named=True)
    assert pooled["n_forecasts"] == 6 and pooled["bias"] < 0  # a flat forecast of a growing series undershoots


def test_point_in_time_load_keeps_rows_known_on_the_date(con, tmp_path):
    source = SOURCES_BY_STEM["token_volume_observations"]
    path = tmp_path / "token_volume_observations.csv"
    header = "observed_on,platform,segment,value,unit,basis,source_id,confidence,note"
    path.write_text(header + ",published_on\n"
                    "2025-03-31,acme,all,1e12,tokens_per_day,average,s,high,,2025-06-01\n"
                    "2025-04-30,acme,all,2e12,tokens_per_day,average,s,high,,\n")
    assert load_source(con, source, path) == 2
    assert load_source(con, source, path, as_of=dt.date(2025, 5, 15)) == 1  # the March figure was published in June
    assert con.execute("select observed_on from raw.token_volume_observations").fetchall() == [(dt.date(2025, 4, 30),)]
    assert load_source(con, source, path, as_of=dt.date(2025, 6, 1)) == 2
    # a file without the optional column loads as before, published_on null
    path.write_text(header + "\n2025-04-30,acme,all,2e12,tokens_per_day,average,s,high,\n")
    assert load_source(con, source, path, as_of=dt.date(2025, 5, 1)) == 1
    assert con.execute("select published_on from raw.token_volume_observations").fetchone() == (None,)


def test_the_forecast_starts_from_the_last_disclosure_not_from_the_curve():
    """No seam: a platform whose newest disclosure sits well below the pooled curve (as Google's did in May
    2026) starts its forecast from that disclosure, within its own month-to-month variation."""
    rng = np.random.default_rng(3)
    history = _history(rng, noise=0.02)
    last = history.filter(pl.col("series_id") == "tokens/a/all").sort("period_start")[-1]
    low = last.with_columns(pl.col("value") * 0.6)  # the newest disclosure 40% below the curve
    history = pl.concat([history.filter(~((pl.col("series_id") == "tokens/a/all")
                                          & (pl.col("period_start") == last["period_start"][0]))), low])
    month = dt.date(last["period_start"][0].year + (last["period_start"][0].month) // 12,
                    last["period_start"][0].month % 12 + 1, 1)

    def first_month(cfg):
        fit = fit_demand(history, dt.date(2028, 12, 1), config=cfg)
        fc = fit.forecast.filter((pl.col("series_id") == "tokens/a/all") & (pl.col("period_start") == month))
        return float(fc["value"][0])

    observed = float(low["value"][0])
    anchored = first_month(CFG)
    # one month of growth at about 1.5 log units a year, plus the disclosure noise: within +/- 25% of the last
    assert abs(math.log(anchored / observed)) < 0.25
    # without the anchor the first month jumps most of the way back to the curve (1/0.6 = +0.51 in log)
    from dataclasses import replace

    unanchored = first_month(replace(CFG, anchor_halflife=0.0))
    assert math.log(unanchored / observed) > 0.25
    assert math.log(unanchored / observed) > abs(math.log(anchored / observed)) + 0.15


def test_the_selection_reason_names_a_month_not_a_decimal_year():
    rng = np.random.default_rng(5)
    fit = fit_demand(_history(rng), dt.date(2027, 12, 1), config=CFG)
    reason = fit.selection["reason"][0]
    assert "growth rate in " in reason and not re.search(r"growth rate at \d{4}\.\d", reason)
