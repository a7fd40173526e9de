"""The fleet model on the serving model (issue 14): each cause has a case that the old fleet failed.

Toy chips and models are built here; the embedded config is used only where the test is about it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from configuration.assumptions import load_configuration
from hardware.fleet import FLEET_ASSUMPTIONS, ScenarioError, FleetServing, check_speed, parse_scenarios, size_fleet
from hardware.build import model_mix
from hardware.supply import GAP_RESOURCES, supply_demand_gap
from hardware.roofline import Chip, LlmSpec
from hardware.serving import Efficiency, Limits, decode_curve, serve
from tests.conftest import ASSUMPTIONS, typed_assumptions, typed_scenarios

EFF = Efficiency(mfu=0.5, mbu=0.8, layer_us=10.0, hop_us=2.0, moe=0.5, scaleout_us=600.0)
GPU = Chip("gpu", "gpu", bf16_tflops=1000.0, fp8_tflops=2000.0, mem_gb=80.0, mem_tbps=4.0, tdp_w=700,
           unit_price_usd=25_000, h100e=1.0)
# same bandwidth, a tenth of the compute (an H20-like part)
SLOW = Chip("slow", "gpu", bf16_tflops=100.0, fp8_tflops=200.0, mem_gb=96.0, mem_tbps=4.0, tdp_w=400,
            unit_price_usd=12_000, h100e=0.1)
CPU = Chip("cpu", "cpu", bf16_tflops=200.0, fp8_tflops=400.0, mem_gb=1536.0, mem_tbps=0.8, tdp_w=500,
           unit_price_usd=12_000, h100e=0.2, scaleup_chips=2)  # a dual-socket server
DENSE = LlmSpec("dense", 10.0, 10.0, n_layers=40, kv_bytes_per_token_bf16=100_000.0, n_heads=32, head_dim=128)
BIG = LlmSpec("big", 400.0, 400.0, n_layers=120, kv_bytes_per_token_bf16=400_000.0, n_heads=128, head_dim=128)
SERVING = FleetServing({"hbm": EFF, "lpu": EFF, "wafer_scale": EFF}, Limits(max_batch_per_chip=256, max_replica_chips=64),
                  {"hbm": 0.0, "lpu": 0.0, "wafer_scale": 0.0})


def _a(**values) -> dict[str, np.ndarray]:
    base = {"hardware.user_speed_tokens_per_s": 20.0, "workload.input_tokens": 1000.0, "workload.output_share": 0.5,
            "workload.cached_share": 0.0, "workload.cache_hit_retention_without_ssd": 1.0,
            "workload.agentic_share": 0.5, "fleet.peak_to_average": 1.0, "fleet.utilisation": 1.0,
            "fleet.redundancy": 0.0, "fleet.pue": 1.0, "cpu_layer.cpus_per_agentic_accelerator": 0.5}
    base.update(values)
    assert set(base) == set(FLEET_ASSUMPTIONS)
    return {k: np.array([float(v)]) for k, v in base.items()}


def _fleet(tokens_per_day: float, a: dict, chips: dict, spec: dict, model: LlmSpec = DENSE):
    demand = pl.DataFrame({"period_start": [dt.date(2027, 1, 1)], "segment": ["all"], "value": [tokens_per_day],
                           "lo95": [tokens_per_day], "hi95": [tokens_per_day]})
    scen = parse_scenarios(typed_scenarios({"s": {"precision": "fp8", **spec}}), chips, ["all"])
    return size_fleet(demand, scen, chips, {model.name: model}, {"all": {model.name: 1.0}}, a,
                      {"all": np.zeros(1)}, SERVING)


def test_fleet_divides_the_load_by_the_serving_models_per_chip_rate_and_applies_each_overhead_once():
    chips = {"gpu": GPU}
    spec = {"segments": {"all": {"prefill": {"gpu": 1.0}, "decode": {"gpu": 1.0}}}}
    load = 86_400 * 1e6  # 1M tokens/s: half prefill, half decode
    rows = {r["phase"]: float(r["chips"][0]) for r in _fleet(load, _a(), chips, spec)}
    rate = serve(GPU, DENSE, "fp8", 1000.0, 1000.0, EFF, SERVING.limits, user_speed=20.0)
    n = rate["n"]

    def whole(x):  # whole replicas of n chips
        return np.ceil(x / n - 1e-9) * n

    assert rows["prefill"] == pytest.approx(whole(5e5 / rate["prefill_per_chip"]))
    assert rows["decode"] == pytest.approx(whole(5e5 / rate["decode_per_chip"]))
    # the per-chip decode batch is the chosen batch over the replica (cause 1: not per replica)
    assert rate["batch"] / rate["n"] > 64
    over = {r["phase"]: float(r["chips"][0]) for r in _fleet(
        load, _a(**{"fleet.peak_to_average": 1.23, "fleet.utilisation": 0.85, "fleet.redundancy": 0.05}), chips, spec)}
    assert over["decode"] == pytest.approx(whole(5e5 / rate["decode_per_chip"] * 1.23 / 0.85 * 1.05))


def test_more_demand_never_needs_fewer_chips():
    chips = {"gpu": GPU}
    spec = {"segments": {"all": {"prefill": {"gpu": 1.0}, "decode": {"gpu": 1.0}}}}
    totals = [sum(float(r["chips"][0]) for r in _fleet(t, _a(), chips, spec)) for t in (1e10, 1e12, 1e14)]
    assert totals == sorted(totals) and totals[-1] > totals[0] * 1000


def test_a_chip_that_cannot_reach_the_speed_target_is_an_error_naming_scenario_segment_chip_and_model():
    chips = {"gpu": GPU, "cpu": CPU}
    scen = parse_scenarios(typed_scenarios({"cpu_decode": {"segments": {"all": {"prefill": {"gpu": 1.0},
                                                                 "decode": {"cpu": 1.0}}}}}), chips, ["all"])
    point = {n: float(v[0]) for n, v in _a().items()}
    # 400 GB of weights from 0.8 TB/s of DDR: about 2 tokens/s per user, far below 20
    with pytest.raises(ScenarioError, match=r"scenario 'cpu_decode', segment 'all': chip 'cpu' cannot decode "
                                            r"model 'big'"):
        check_speed(scen, chips, {"big": BIG}, {"all": {"big": 1.0}}, point, SERVING)
    # a small model on the same CPU is allowed
    check_speed(scen, chips, {"dense": DENSE}, {"all": {"dense": 1.0}}, point, SERVING)


def test_placement_moves_one_model_off_a_chip_and_orchestration_cpus_follow_the_accelerators():
    chips = {"gpu": GPU, "slow": SLOW, "cpu": CPU}
    spec = {"segments": {"all": {"prefill": {"slow": 1.0}, "decode": {"slow": 1.0}}},
            "placement": {"dense": {"decode": {"gpu": 1.0}}}, "orchestration_cpu": "cpu"}
    rows = _fleet(86_400 * 1e5, _a(), chips, spec)
    by = {(r["phase"], r["chip"]): float(r["chips"][0]) for r in rows}
    assert ("decode", "gpu") in by and ("decode", "slow") not in by and ("prefill", "slow") in by
    accelerators = by[("decode", "gpu")] + by[("prefill", "slow")]
    assert by[("orchestration", "cpu")] == pytest.approx(accelerators * 0.5 * 0.5)


def test_wide_hbm_replica_is_bounded_by_latency_not_summed_bandwidth():
    # 120 layers over 64 chips: split across nodes each layer pays the scale-out latency; pipelined,
    # a token crosses the domains in turn. Either way per-user speed stays far below the old
    # "64 chips' bandwidth in one step" figure.
    summed = 64 * GPU.bandwidth * EFF.mbu / (BIG.weight_bytes("fp8"))
    _, tp_user, tp_bound = decode_curve(GPU, BIG, "fp8", 64, [1.0], 1000.0, EFF, 8, "tp")
    _, pp_user, _ = decode_curve(GPU, BIG, "fp8", 64, [1.0], 1000.0, EFF, 8, "pp")
    assert tp_user[0] < 1 / (BIG.n_layers * EFF.scaleout_us * 1e-6) and str(tp_bound[0]) == "interconnect"
    assert pp_user[0] < summed / 4
    one_domain = 8 * GPU.bandwidth * EFF.mbu / (BIG.weight_bytes("fp8") / 8)
    assert pp_user[0] < one_domain


def test_gap_compares_decode_in_bandwidth_so_a_compute_poor_part_does_not_flip_the_answer():
    # the same decode load on a full-compute chip and on a tenth-compute, same-bandwidth chip
    installed = pl.DataFrame({"quarter_end": [dt.date(2027, 3, 31)] * 2, "region": ["rest", "china"],
                              "chip_class": ["gpu", "gpu"], "basis": ["projected"] * 2,
                              "installed_h100e": [1e6, 1e6], "installed_mem_tbps": [4e6, 4e6]})
    share = np.array([0.5])
    ratios = {}
    for name, chip in (("gpu", GPU), ("slow", SLOW)):
        rows = [{"period_start": dt.date(2027, 1, 1), "scenario": name, "segment": "all", "phase": "decode",
                 "chip": chip.name, "chips": np.array([1000.0])}]
        gap = supply_demand_gap(rows, {chip.name: chip}, {"all": "rest"}, installed, share)
        ratios[name] = dict(gap.select("resource", "ratio").iter_rows())
    # same bandwidth per chip -> same bandwidth ratio; H100e would differ tenfold
    assert ratios["gpu"]["decode_bandwidth"] == pytest.approx(ratios["slow"]["decode_bandwidth"])
    assert ratios["gpu"]["all_h100e"] == pytest.approx(10 * ratios["slow"]["all_h100e"])
    assert set(ratios["gpu"]) == set(GAP_RESOURCES) - {"prefill_compute"}  # no prefill rows in this case


def test_china_model_mix_is_an_explicit_assumption_not_openrouters_origin_mix():
    from configuration.assumptions import load_configuration
    from configuration.schema import Segment

    segments = load_configuration(ASSUMPTIONS).model.segments
    china = segments["china"]
    assert isinstance(china.model_mix, dict) and china.model_mix_rationale and china.model_mix_source
    origin = pl.DataFrame({"origin_group": ["cn", "cn"], "catalog_model": ["MiniMax-M2", "Kimi K2"],
                           "token_share": [0.9, 0.1]})
    models = {m: None for m in china.model_mix} | {"MiniMax-M2": None, "Kimi K2": None,
                                                      "frontier-closed-small": None, "frontier-closed-large": None,
                                                      "gpt-oss-120b": None}
    mix = model_mix(segments, origin, models)
    assert mix["china"] == pytest.approx(china.model_mix)  # the OpenRouter origin shares do not leak in
    # 'measured:<group>' still works for a user who asks for it
    measured = {"x": Segment(demand_series="tokens/x", region="china", model_mix="measured:cn")}
    assert model_mix(measured, origin, models)["x"] == pytest.approx({"MiniMax-M2": 0.9, "Kimi K2": 0.1})


def test_sizing_overheads_are_time_aligned_and_the_festival_peak_is_only_a_stress_case():
    values = dict(load_configuration(ASSUMPTIONS).rows().select("name", "value").iter_rows())
    total = values["fleet.peak_to_average"] / values["fleet.utilisation"] * (1 + values["fleet.redundancy"])
    assert values["fleet.peak_to_average"] < values["fleet.festival_peak_to_average"]
    assert total < 2.0  # was 1.8 / 0.6 x 1.1 = 3.3 on top of calibrated rates


def test_sensitivity_moves_one_assumption_at_a_time_and_demand_across_its_80pct_interval():
    from hardware.build import _sensitivity
    from hardware.stats import Z80, Z95

    chips = {"gpu": GPU}
    scen = parse_scenarios(typed_scenarios({"s": {"precision": "fp8", "segments": {"all": {"prefill": {"gpu": 1.0},
                                                                          "decode": {"gpu": 1.0}}}}}), chips, ["all"])
    load = 86_400 * 1e6
    demand = pl.DataFrame({"period_start": [dt.date(2027, 1, 1)], "segment": ["all"], "value": [load],
                           "lo95": [load / 4], "hi95": [load * 4]})
    values = {n: float(v[0]) for n, v in _a().items()}
    values["fleet.utilisation"] = (0.3, 0.6, 0.9)
    values["fleet.festival_peak_to_average"] = 3.0
    config = typed_assumptions(values)
    out = _sensitivity(demand, scen, chips, {DENSE.name: DENSE}, {"all": {DENSE.name: 1.0}}, config, SERVING)
    by = {r["assumption"]: r for r in out.iter_rows(named=True)}
    base = by["fleet.utilisation"]["chips_at_value"]
    # chips scale with 1 / utilisation: 0.6 -> 0.3 doubles them, 0.6 -> 0.9 takes a third off (whole replicas:
    # within a replica per phase)
    assert by["fleet.utilisation"]["chips_at_low"] == pytest.approx(2 * base, abs=2)
    assert by["fleet.utilisation"]["chips_at_high"] == pytest.approx(base * 2 / 3, abs=2)
    # demand across its 80% interval: a 95% interval of x/4..x4 is a log s.d. of ln(16) / (2 z95)
    spread = np.log(16) / (2 * Z95)
    demand_row = by["demand (forecast 80% interval)"]
    assert demand_row["low_value"] == pytest.approx(load * np.exp(-Z80 * spread))
    assert demand_row["chips_at_high"] == pytest.approx(base * np.exp(Z80 * spread), abs=2)
    # the festival peak is a stress case: three times the average load, three times the chips
    assert by["stress: festival peak (fleet.festival_peak_to_average)"]["chips_at_high"] == pytest.approx(3 * base, abs=2)
    # no calibration error in this serving model: no swing; assumptions without a range are not moved
    assert by["calibration error (leave-one-source-out, 80% interval)"]["swing_chips"] == pytest.approx(0.0)
    assert "fleet.pue" not in by
    assert out["swing_chips"].to_list() == sorted(out["swing_chips"].to_list(), reverse=True)


def test_a_memoised_serve_answers_a_repeat_from_its_store_with_the_same_figures(monkeypatch):
    """hardware.serving.memoised (kept between runs by the hardware asset, so that a what-if which moves no
    serving input reuses the replica search): same arguments, same figures, one entry; a caller's change to a
    result does not reach the store; other arguments are computed afresh; a later block answers from the
    kept store without computing, and its own store holds only what it asked for."""
    import hardware.serving as serving
    from hardware.serving import memoised

    plain = serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=20.0)
    with memoised({}) as asked:
        first = serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=20.0)
        first["decode_per_chip"] = -1.0
        again = serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=20.0)
        other = serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=40.0)
    assert len(asked) == 2 and again == plain
    assert other == serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=40.0)

    def no_search(*args, **kwargs):
        raise AssertionError("computed although the kept store holds these arguments")

    monkeypatch.setattr(serving, "_serve", no_search)
    with memoised(asked) as later:
        assert serve(GPU, BIG, "fp8", 2000.0, 400.0, EFF, Limits(), user_speed=20.0) == plain
    assert len(later) == 1
