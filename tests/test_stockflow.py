"""Fleets from stock and flow (issue 26): chip availability, the installed base by chip, the installed base
serving first, the remainder bought, bought chips joining the stock, shortfalls, and totals per draw.

Toy chips, models and shipments are built here; answers are worked out by hand from the serving model's rates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from hardware.fleet import Stock, check_windows, parse_scenarios, size_fleet
from hardware.serving import serve
from hardware.stockflow import AvailabilityError, Window, _units_by_region, installed_by_chip, windows_from_frame
from hardware.totals import fleet_totals, token_cost
from tests.test_fleet import BIG, CPU, DENSE, EFF, GPU, SERVING, SLOW, _a
from tests.conftest import typed_scenarios

Q = [dt.date(2027, 1, 1), dt.date(2027, 4, 1), dt.date(2027, 7, 1)]


def _windows(rows: dict) -> dict:
    return {(chip, region): Window(first, last, "launch", "test") for (chip, region), (first, last) in rows.items()}


def _stock(units: dict[str, float], windows: dict, share: float = 0.5, life: int = 20, draws: int = 1) -> Stock:
    installed = pl.DataFrame([{"quarter_start": q, "region": "rest", "designer": "d", "chip": c, "basis": "observed",
                               "shipped_units": 0.0, "shipped_h100e": 0.0, "installed_units": u,
                               "installed_h100e": u}
                              for q in Q for c, u in units.items()])
    return Stock(_units_by_region(installed), installed, windows, {"all": "rest"}, np.full(draws, share), life)


def _demand(values) -> pl.DataFrame:
    return pl.DataFrame({"period_start": Q[:len(values)], "segment": ["all"] * len(values), "value": values,
                         "lo95": values, "hi95": values})


def _run(values, stock, spec=None, chips=None, model=DENSE, a=None, flows=None):
    chips = chips or {"gpu": GPU}
    spec = spec or {"segments": {"all": {"prefill": {"gpu": 1.0}, "decode": {"gpu": 1.0}}}}
    scen = parse_scenarios(typed_scenarios({"s": {"precision": "fp8", **spec}}), chips, ["all"])
    return size_fleet(_demand(values), scen, chips, {model.name: model}, {"all": {model.name: 1.0}}, a or _a(),
                      {"all": np.zeros(1)}, SERVING, None, stock, flows)


def _chips_per_token_per_s():
    """GPU-seconds per token/s of the _a() workload (half prefill, half decode) on the toy GPU, co-located."""
    r = serve(GPU, DENSE, "fp8", 1000.0, 1000.0, EFF, SERVING.limits, user_speed=20.0)
    return 0.5 / r["prefill_per_chip"] + 0.5 / r["decode_per_chip"], r


def test_the_installed_base_serves_first_and_its_utilisation_is_load_over_capacity():
    per, _ = _chips_per_token_per_s()
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), None)})
    units = 10_000.0  # x share 0.5 = 5,000 inference chips
    load = 0.4 * 5_000 / per  # 40% of what they can carry, tokens/s
    flows: list = []
    rows = _run([load * 86_400], _stock({"gpu": units}, windows), flows=flows)
    assert sum(float(r["bought"][0]) for r in rows) == 0.0
    used = sum(float(r["installed_used"][0]) for r in rows)
    assert used == pytest.approx(0.4 * 5_000, rel=1e-9)
    rec = [f for f in flows if f["chip"] == "gpu"][0]
    assert float(rec["used"][0] / rec["installed"][0]) == pytest.approx(0.4, rel=1e-9)
    assert float(rec["served_tokens_per_day"][0]) == pytest.approx(load * 86_400, rel=1e-9)


def test_only_the_remainder_is_bought_and_bought_chips_serve_the_next_quarter():
    per, r = _chips_per_token_per_s()
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), None)})
    capacity = 5_000 / per  # tokens/s the installed inference share carries
    load = 3 * capacity
    rows = _run([load * 86_400, load * 86_400], _stock({"gpu": 10_000.0}, windows))
    first = [x for x in rows if x["period_start"] == Q[0]]
    bought = {x["phase"]: float(x["bought"][0]) for x in first}
    # the remaining two thirds of each phase, disaggregated, at the phase's per-chip rate, in whole replicas
    n = r["n"]
    assert bought["prefill"] == pytest.approx(np.ceil(2 * capacity * 0.5 / r["prefill_per_chip"] / n - 1e-9) * n)
    assert bought["decode"] == pytest.approx(np.ceil(2 * capacity * 0.5 / r["decode_per_chip"] / n - 1e-9) * n)
    # next quarter, same load: what was bought is in the stock; co-located it carries more than needed
    second = [x for x in rows if x["period_start"] == Q[1]]
    assert sum(float(x["bought"][0]) for x in second) == 0.0
    assert sum(float(x["installed_used"][0]) for x in second) == pytest.approx(3 * 5_000, rel=1e-3)


def test_bought_chips_retire_after_the_service_life():
    per, _ = _chips_per_token_per_s()
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), None)})
    load = 2 * 5_000 / per
    rows = _run([load * 86_400] * 3, _stock({"gpu": 10_000.0}, windows, life=1))
    bought = [sum(float(x["bought"][0]) for x in rows if x["period_start"] == q) for q in Q]
    # a one-quarter life: the chips bought in a quarter are gone the next, so each quarter buys again
    assert bought[0] > 0 and bought[1] == pytest.approx(bought[0]) and bought[2] == pytest.approx(bought[0])


def test_a_chip_that_cannot_reach_the_speed_target_carries_nothing_and_the_remainder_is_bought():
    # the dual-socket CPU reaches 12 tokens/s per user on BIG, under the 20 tokens/s target: installed CPUs idle
    chips = {"gpu": GPU, "cpu": CPU}
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), None), ("cpu", "rest"): (dt.date(2020, 1, 1), None)})
    assert not serve(CPU, BIG, "fp8", 1000.0, 1000.0, EFF, SERVING.limits, user_speed=20.0)["meets_speed"]
    flows: list = []
    rows = _run([1e12], _stock({"cpu": 100_000.0}, windows), chips=chips, model=BIG, flows=flows)
    cpu = [f for f in flows if f["chip"] == "cpu"][0]
    assert float(cpu["installed"][0]) == pytest.approx(50_000.0) and float(cpu["used"][0]) == 0.0
    assert sum(float(x["bought"][0]) for x in rows if x["chip"] == "gpu") > 0


def test_a_load_no_available_chip_can_serve_is_a_named_shortfall():
    chips = {"cpu": CPU}
    windows = _windows({("cpu", "rest"): (dt.date(2020, 1, 1), None)})
    flows: list = []
    spec = {"segments": {"all": {"prefill": {"cpu": 1.0}, "decode": {"cpu": 1.0}}}}
    _run([1e12], _stock({"cpu": 0.0}, windows), spec=spec, chips=chips, model=BIG, flows=flows)
    short = [f for f in flows if f["chip"] is None][0]
    # no chip of the scenario decodes BIG at the speed target: the decode half (output share 0.5) is a shortfall;
    # prefill has no per-user speed target and is bought
    assert float(short["shortfall_tokens_per_day"][0]) == pytest.approx(0.5e12, rel=1e-9)


def test_a_scenario_outside_a_chips_window_is_an_error_naming_scenario_quarter_region_and_chip():
    chips = {"gpu": GPU, "cpu": CPU}
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), dt.date(2027, 1, 1)),
                          ("cpu", "rest"): (dt.date(2020, 1, 1), None)})
    spec = {"segments": {"all": {"prefill": {"gpu": 1.0}, "decode": {"gpu": 1.0}}}}
    scen = parse_scenarios(typed_scenarios({"late": {"precision": "fp8", **spec}}), chips, ["all"])
    check_windows(scen, Q[:1], {"all": "rest"}, windows, {"all": {"dense": 1.0}})  # inside: fine
    with pytest.raises(AvailabilityError) as err:
        check_windows(scen, Q, {"all": "rest"}, windows, {"all": {"dense": 1.0}})
    text = str(err.value)
    assert "scenario 'late'" in text and "2027-04-01" in text and "region 'rest'" in text and "chip 'gpu'" in text
    # a `periods` entry that moves the share on is accepted
    moved = parse_scenarios(typed_scenarios({"late": {"precision": "fp8", **spec, "periods": [
        {"from": dt.date(2027, 4, 1), "segments": {"all": {"prefill": {"cpu": 1.0}, "decode": {"cpu": 1.0}}}}]}}),
        chips, ["all"])
    check_windows(moved, Q, {"all": "rest"}, windows, {"all": {"dense": 1.0}})
    assert moved["late"].shares("all", "decode", "dense", Q[2]) == {"cpu": 1.0}
    assert moved["late"].shares("all", "decode", "dense", Q[0]) == {"gpu": 1.0}


def test_a_window_that_ends_before_it_starts_names_the_file_row_and_column():
    frame = pl.DataFrame({"chip": ["x"], "region": ["rest"], "first_quarter": [dt.date(2027, 1, 1)],
                          "last_quarter": [dt.date(2026, 1, 1)], "reason": ["launch"], "source_id": ["s"],
                          "_line": [7]})
    with pytest.raises(AvailabilityError, match="row 7, column last_quarter"):
        windows_from_frame(frame)


def test_projected_shipments_move_from_a_chip_past_its_window_to_the_designers_newest_chip():
    specs = pl.DataFrame({"chip": ["old", "new", "host"], "designer": ["d", "d", "d"],
                          "chip_class": ["gpu", "gpu", "cpu"], "h100e_per_chip": [1.0, 4.0, 0.1]})
    windows = _windows({("old", "rest"): (dt.date(2024, 1, 1), dt.date(2025, 4, 1)),
                          ("new", "rest"): (dt.date(2025, 7, 1), None),
                          ("host", "rest"): (dt.date(2025, 10, 1), None)})
    quarters = [dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1), dt.date(2024, 10, 1)]
    shipments = pl.DataFrame({"quarter_start": quarters, "designer": ["d"] * 4, "spec_chip": ["old"] * 4,
                              "china_market": [False] * 4, "incomplete": [False] * 4,
                              "units_median": [100.0] * 4, "h100e_median": [100.0] * 4})
    projection = pl.DataFrame({"quarter_start": [dt.date(2025, 1, 1), dt.date(2025, 10, 1)], "designer": ["d", "d"],
                               "region": ["rest", "rest"], "basis": ["projected", "projected"],
                               "shipped_h100e": [400.0, 400.0]})
    out = installed_by_chip(shipments, projection, specs, windows, life_quarters=4)
    shipped = {(r["quarter_start"], r["chip"]): r["shipped_units"] for r in out.iter_rows(named=True)
               if r["shipped_units"] > 0}
    # 2025 Q1: 'old' still ships (400 H100e = 400 units); 2025 Q4: its share goes to 'new' (not the CPU)
    assert shipped[(dt.date(2025, 1, 1), "old")] == pytest.approx(400.0)
    assert shipped[(dt.date(2025, 10, 1), "new")] == pytest.approx(100.0)
    installed = {(r["quarter_start"], r["chip"]): r["installed_units"] for r in out.iter_rows(named=True)}
    # a four-quarter life: the 2024 shipments retire through 2025; in 2025 Q4 only the 2025 Q1 'old' remains
    assert installed[(dt.date(2024, 10, 1), "old")] == pytest.approx(400.0)
    assert installed[(dt.date(2025, 10, 1), "old")] == pytest.approx(400.0)
    assert installed[(dt.date(2025, 10, 1), "new")] == pytest.approx(100.0)


def test_totals_are_summed_within_each_draw_then_summarised():
    # two chips whose per-draw counts move in opposite directions: the median of the total is not the sum
    # of the medians
    a = np.array([1.0, 2.0, 10.0])
    b = np.array([10.0, 2.0, 1.0])
    zero = np.zeros(3)
    rows = [{"period_start": Q[0], "scenario": "s", "segment": "all", "phase": "decode", "chip": c, "chips": n,
             "installed_used": zero, "bought": n} for c, n in (("gpu", a), ("slow", b))]
    flows = [{"period_start": Q[0], "scenario": "s", "segment": "all", "chip": None,
              "shortfall_tokens_per_day": zero, "demand_tokens_per_day": np.ones(3)}]
    out = fleet_totals(rows, flows, {"gpu": GPU, "slow": SLOW}, np.ones(3))
    total = out.filter(pl.col("segment") == "all").row(0, named=True)
    assert total["chips_median"] == pytest.approx(float(np.median(a + b)))  # 11, not 2 + 2
    assert total["chips_median"] != pytest.approx(float(np.median(a) + np.median(b)))
    assert total["capex_usd_median"] == pytest.approx(float(np.median(a * 25_000 + b * 12_000)))


def test_size_and_the_fleet_share_one_sizing_arithmetic():
    """`tokens2chips size` (serving.size) and the fleet's bought chips are the same function for the same
    workload: a large load (disaggregated) gives the same chips per phase, overheads included."""
    from hardware.serving import size

    a = _a(**{"fleet.peak_to_average": 1.23, "fleet.utilisation": 0.85, "fleet.redundancy": 0.05})
    load = 86_400 * 2e6  # tokens/day: half prefill, half decode (output share 0.5 of 1,000-token prompts)
    rows = _run([load], None, a=a)
    fleet = {r["phase"]: float(r["chips"][0]) for r in rows}
    sized = size(GPU, DENSE, "fp8", load / 2, load / 2, 0.0, 1000.0, 1000.0, EFF, SERVING.limits, 20.0,
                 peak_to_average=1.23, utilisation=0.85, redundancy=0.05)
    assert sized["layout"] == "disaggregated"
    assert sized["prefill"]["chips"] == pytest.approx(fleet["prefill"])
    assert sized["decode"]["chips"] == pytest.approx(fleet["decode"])


def test_a_small_load_runs_both_phases_on_the_smallest_replica_that_meets_the_target():
    from hardware.serving import serve, size

    # a load well below one disaggregated deployment: one co-located replica
    r = serve(GPU, BIG, "fp8", 1000.0, 1000.0, EFF, SERVING.limits, user_speed=20.0)
    small = size(GPU, BIG, "fp8", 1e8, 1e8, 0.0, 1000.0, 1000.0, EFF, SERVING.limits, 20.0)
    assert small["layout"] == "co-located"
    assert small["chips"] == small["replica_chips"] <= r["n"]
    assert small["chips"] == pytest.approx(small["prefill"]["chips"] + small["decode"]["chips"])
    assert small["decode"]["tokens_per_s_per_user"] >= 20.0


def test_cost_per_token_is_the_median_of_each_draws_cost_over_its_tokens():
    # two draws: the ratio of medians (cost 200 / tokens 2e9) is not the median of the ratios
    rows = [{"period_start": Q[0], "scenario": "s", "segment": "x", "phase": "decode", "chip": "gpu",
             "chips": np.array([1.0, 3.0]), "installed_used": np.zeros(2), "bought": np.array([1.0, 3.0]),
             "tokens_per_day": np.array([1e9, 1e9])}]
    samples = {"installed_base.service_life_years": np.full(2, 25_000 / 365.25 / 100.0),  # $100/day per GPU
               "fleet.electricity_usd_per_mwh": np.zeros(2), "fleet.pue": np.ones(2)}
    out = token_cost(rows, {"gpu": GPU}, samples).row(0, named=True)
    # $100 and $300 per day for 1e9 tokens: $0.1 and $0.3 per million; the median of two draws is their mean
    assert out["usd_per_million_tokens"] == pytest.approx(0.2)
    assert out["usd_per_million_tokens_p5"] == pytest.approx(0.11) and out["usd_per_million_tokens_p95"] == pytest.approx(0.29)
    assert out["cost_usd_per_day"] == pytest.approx(200.0)


def test_the_embedded_availability_covers_every_scenario_chip_and_the_public_roadmaps():
    from configuration.assumptions import load_assumptions
    from tests.conftest import ASSUMPTIONS, DATA

    frame = pl.read_csv(DATA / "chip_availability.csv", try_parse_dates=True)
    windows = windows_from_frame(frame)
    config = load_assumptions(ASSUMPTIONS)
    region = {s: spec["region"] for s, spec in config["segments"].items()}
    for name, spec in config["scenarios"].items():
        for entry in [spec, *(spec.get("periods") or [])]:
            for segment, phases in (entry.get("segments") or {}).items():
                if phases == "shipment_mix":
                    continue
                for chip in {c for shares in phases.values() for c in shares}:
                    assert (chip, region[segment]) in windows, (name, segment, chip)
    # the roadmaps to 2028: the next generation of each designer has a window
    for chip in ("Rubin", "MI400", "Ascend 950PR", "Ascend 950DT", "Ascend 960", "TPU v8", "Trainium3", "Trainium4"):
        assert any(c == chip for c, _ in windows), chip
    # the H20 stopped shipping (export control) and nothing of Nvidia's ships into China after it
    h20 = windows[("H20", "china")]
    assert h20.reason == "export_control" and h20.last is not None and h20.last < dt.date(2026, 1, 1)
    nvidia_china = {c for (c, r), w in windows.items() if r == "china" and w.contains(dt.date(2026, 10, 1))}
    assert not nvidia_china & {"H20", "H800", "A800", "H200", "B200", "B300", "Rubin"}


def test_the_reconciliation_sets_capacity_against_disclosed_and_estimated_demand():
    from hardware.totals import demand_reconciliation

    q = Q[0]
    zero = np.zeros(2)
    # two draws: capacity 1,000 and 2,000 tokens/day from two chips; demand 500 and 500
    records = [{"period_start": q, "scenario": "s", "segment": "rest", "chip": "a", "capacity_tokens_per_day": np.array([600.0, 1200.0])},
               {"period_start": q, "scenario": "s", "segment": "rest", "chip": "b", "capacity_tokens_per_day": np.array([400.0, 800.0])},
               {"period_start": q, "scenario": "s", "segment": "rest", "chip": None,
                "shortfall_tokens_per_day": zero, "demand_tokens_per_day": np.array([500.0, 500.0])}]
    demand = pl.DataFrame({"period_start": [q] * 3, "series_id": ["tokens/total", "tokens/disclosed",
                                                                  "tokens/lab_estimated/all"],
                           "value": [500.0, 400.0, 100.0]})
    from configuration.schema import Composite, EstimatedComponent, Leaf, Segment

    segments = {"rest": Segment(demand_series="tokens/total", disclosed_series="tokens/disclosed", region="rest",
                                model_mix={"m": 1.0})}
    price = Leaf(value=2.5, low=1.0, high=6.0, unit="USD per million tokens", rationale="test", source="test")
    estimated = {"lab": EstimatedComponent(demand_class="large_labs", usd_per_million_tokens=price)}
    composites = [Composite(series_id="tokens/total", components=["tokens/disclosed", "tokens/lab_estimated/all"])]
    out = demand_reconciliation(records, demand, segments, estimated, composites, 0.4, (0.6, 0.75, 0.9))
    r = out.row(0, named=True)
    assert r["capacity_tokens_per_day_median"] == pytest.approx(1500.0)
    assert (r["disclosed_tokens_per_day"], r["estimated_tokens_per_day"]) == (400.0, 100.0)
    assert r["estimated_by_class"] == "large_labs 0.0T"
    # utilisation per draw 0.5 and 0.25: median 0.375; below the busy range, so a gap
    assert r["utilisation_median"] == pytest.approx(0.375)
    assert r["utilisation_disclosed_only_median"] == pytest.approx(float(np.median([0.4, 0.2])))
    assert r["status"].startswith("gap")
    # residual = capacity x 0.75 - demand per draw: 250 and 1,000, median 625; the inference share that
    # fits = 0.4 x 0.375 / 0.75 = 0.2
    assert r["residual_tokens_per_day_median"] == pytest.approx(625.0)
    assert r["implied_inference_share_median"] == pytest.approx(0.2)
    assert r["training_share"] == pytest.approx(0.6)


def test_the_monte_carlo_pass_and_the_sensitivity_cases_in_one_pass_equal_their_own_passes():
    """build() sizes the sensitivity cases as extra draws of the Monte Carlo pass (issue 29's what-if: one
    stock-and-flow pass instead of two): its rows, stock records and case totals must be those of the separate
    passes, including a chip row that only a case uses (dropped from the Monte Carlo rows)."""
    from hardware.build import _total_chips, fleet_with_cases

    per, _ = _chips_per_token_per_s()
    windows = _windows({("gpu", "rest"): (dt.date(2020, 1, 1), None), ("slow", "rest"): (dt.date(2020, 1, 1), None)})
    chips = {"gpu": GPU, "slow": SLOW}
    # the stock is GPUs; what is bought is the slow part, which only the case at 5% utilisation needs in the
    # first quarter
    spec = {"segments": {"all": {"prefill": {"slow": 1.0}, "decode": {"slow": 1.0}}}}
    scen = parse_scenarios(typed_scenarios({"s": {"precision": "fp8", **spec}}), chips, ["all"])
    rng = np.random.default_rng(3)
    draws = 5
    samples = {k: np.full(draws, v[0]) for k, v in _a().items()}
    samples["fleet.utilisation"] = rng.uniform(0.5, 1.0, draws)
    point = {k: float(v[0]) for k, v in _a().items()}
    demand = _demand([0.3 * 5_000 / per * 86_400, 2.0 * 5_000 / per * 86_400, 4.0 * 5_000 / per * 86_400])
    demand_z, error_z = {"all": rng.standard_normal(draws) * 0.1}, {g: rng.standard_normal(draws) for g in SERVING.error_sd}
    stock = _stock({"gpu": 10_000.0}, windows, draws=draws)
    cases = [{}, {"fleet.utilisation": 0.05}, {"z": 1.28}, {"share": 0.9}, {"fleet.redundancy": 0.3}]
    models, mix = {DENSE.name: DENSE}, {"all": {DENSE.name: 1.0}}

    records: list = []
    alone = size_fleet(demand, scen, chips, models, mix, samples, demand_z, SERVING, error_z, stock, records)
    one_share = Stock(stock.units, stock.installed, windows, stock.region, np.full(1, 0.5), stock.life_quarters)
    totals = _total_chips(demand, scen, chips, models, mix, cases, point, SERVING, one_share)
    rows, joint_records, joint_totals = fleet_with_cases(demand, scen, chips, models, mix, samples, demand_z,
                                                         SERVING, error_z, stock, cases, point, 0.5)

    def same(a: list[dict], b: list[dict]) -> None:
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.keys() == y.keys()
            for k in x:
                if isinstance(x[k], np.ndarray):
                    np.testing.assert_allclose(x[k], y[k], rtol=1e-12, atol=0)
                else:
                    assert x[k] == y[k]

    assert any(r["chip"] == "slow" and r["period_start"] == Q[0] for r in
               size_fleet(demand, scen, chips, models, mix, {k: np.full(1, 0.05 if k == "fleet.utilisation" else v)
                                                             for k, v in point.items()},
                          {"all": np.zeros(1)}, SERVING, {g: np.zeros(1) for g in error_z}, one_share))
    assert not any(r["chip"] == "slow" and r["period_start"] == Q[0] for r in alone)
    same(rows, alone)
    same(joint_records, records)
    assert len(joint_totals) == len(cases)
    for got, want in zip(joint_totals, totals):
        assert got == pytest.approx(want, rel=1e-12)
    assert joint_totals[1]["s"] > joint_totals[0]["s"]  # the cases did move
