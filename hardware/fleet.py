"""Fleet sizing: tokens/day per segment -> chips, H100e, MW and capex per scenario, with Monte Carlo
over the demand forecast and every assumption range, and a one-at-a-time sensitivity.

Per draw d, period t, segment s, phase p, chip x (share of the phase in the scenario) and model m
(share of the segment's tokens):

    prefill tokens/s = T[d,t,s] / 86,400 x (1 - output share) x (1 - cached share) x peak factor
    decode tokens/s  = T[d,t,s] / 86,400 x output share x peak factor
    chips[x]         = sum over m of  tokens/s x share[x] x mix[m] / (per-chip tokens/s of m on x)
                       / utilisation x (1 + redundancy)
    H100e = chips x H100e per chip;  MW = chips x TDP x PUE / 1e6;  capex = chips x unit price

Per-chip tokens/s comes from hardware.roofline with the draw's MFU, MBU, prompt length and decode
batch; the decode batch is capped so that each user still sees at least the per-user speed target, with the
replica spread over up to `hardware.max_replica_chips` chips (per-chip throughput does not depend on
the spread; per-user speed grows with it).
With MFU = MBU = 1, batch 1, peak factor 1, utilisation 1 and no redundancy this is the plain
roofline arithmetic. Cached prompt tokens cost no prefill compute (their KV is read from the cache);
in scenarios without an SSD KV tier only part of the measured cache hits survive (an assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hardware.roofline import Chip, Model, throughput

PHASES = ("prefill", "decode")
PRECISIONS = ("bf16", "fp8", "fp4")
BATCH_GRID = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=float)
SECONDS_PER_DAY = 86_400.0


class ScenarioError(ValueError):
    """A scenario in the assumptions file is invalid; the message names scenario, segment, phase, chip."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    precision: str
    kv_cache_on_ssd: bool
    mix: dict  # segment -> phase -> {chip: share}


def parse_scenarios(raw: dict, chips: dict[str, Chip], segments: list[str], source: str = "assumptions") \
        -> dict[str, Scenario]:
    """Validate the `scenarios` section and return Scenario objects. Every problem is a ScenarioError."""
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{source}: 'scenarios' must map scenario names to definitions")
    out = {}
    for name, spec in raw.items():
        where = f"{source}: scenario '{name}'"
        if not isinstance(spec, dict) or "segments" not in spec:
            raise ScenarioError(f"{where}: needs 'segments' (segment -> phase -> chip: share)")
        precision = spec.get("precision", "fp8")
        if precision not in PRECISIONS:
            raise ScenarioError(f"{where}: precision {precision!r} is not one of {list(PRECISIONS)}")
        mix = {}
        for segment in segments:
            phases = spec["segments"].get(segment)
            if not isinstance(phases, dict):
                raise ScenarioError(f"{where}: segment '{segment}' is missing")
            mix[segment] = {}
            for phase in PHASES:
                shares = phases.get(phase)
                if not isinstance(shares, dict) or not shares:
                    raise ScenarioError(f"{where}, segment '{segment}': phase '{phase}' needs chip: share entries")
                for chip, share in shares.items():
                    if chip not in chips:
                        raise ScenarioError(f"{where}, segment '{segment}', phase '{phase}': unknown chip '{chip}' "
                                            "(not in accelerator_specs.csv)")
                    if not isinstance(share, (int, float)) or share < 0:
                        raise ScenarioError(f"{where}, segment '{segment}', phase '{phase}', chip '{chip}': share "
                                            f"{share!r} must be a non-negative number")
                    spec_chip = chips[chip]
                    for attr in ("tdp_w", "unit_price_usd", "h100e"):
                        if getattr(spec_chip, attr) is None:
                            raise ScenarioError(f"{where}, segment '{segment}', phase '{phase}', chip '{chip}': "
                                                f"no {attr} in the spec sheet; add it under chip_overrides")
                total = sum(shares.values())
                if abs(total - 1.0) > 1e-6:
                    raise ScenarioError(f"{where}, segment '{segment}', phase '{phase}': shares sum to {total:g}, "
                                        "not 1")
                mix[segment][phase] = {c: float(v) for c, v in shares.items() if v > 0}
        unknown = set(spec["segments"]) - set(segments)
        if unknown:
            raise ScenarioError(f"{where}: unknown segment(s) {sorted(unknown)}; known: {segments}")
        out[name] = Scenario(name, str(spec.get("description", "")), precision,
                             bool(spec.get("kv_cache_on_ssd", False)), mix)
    return out


def draw_assumptions(assumptions: pl.DataFrame, names: list[str], draws: int, rng: np.random.Generator) \
        -> dict[str, np.ndarray]:
    """One value per draw for each named assumption: triangular(low, value, high), or the point value."""
    rows = {r["name"]: r for r in assumptions.iter_rows(named=True)}
    out = {}
    for name in names:
        if name not in rows:
            raise KeyError(f"assumption '{name}' is missing from the assumptions file")
        r = rows[name]
        if r["high"] > r["low"]:
            out[name] = rng.triangular(r["low"], r["value"], r["high"], size=draws)
        else:
            out[name] = np.full(draws, r["value"])
    return out


# the assumptions the fleet model reads, by their dotted names in meta.assumptions
FLEET_ASSUMPTIONS = [
    "hardware.mfu", "hardware.mbu", "hardware.decode_batch", "hardware.user_speed_tokens_per_s",
    "hardware.memory_usable_fraction", "hardware.max_replica_chips", "workload.input_tokens", "workload.output_share",
    "workload.cached_share", "workload.cache_hit_retention_without_ssd", "fleet.peak_to_average",
    "fleet.utilisation", "fleet.redundancy", "fleet.pue",
]


def per_chip_rates(chip: Chip, model: Model, precision: str, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-chip prefill and decode tokens/s for every draw; decode batch capped by the speed target."""
    input_tokens = a["workload.input_tokens"]
    share = a["workload.output_share"]
    output_tokens = input_tokens * share / (1 - share)
    usable = a["hardware.memory_usable_fraction"]
    # evaluate decode over the batch grid, pick the largest batch within the draw's batch and speed target
    grid = BATCH_GRID[:, None]
    res = throughput(chip, model, precision, input_tokens[None, :], output_tokens[None, :], grid,
                     a["hardware.mfu"][None, :], a["hardware.mbu"][None, :], usable_fraction=usable[None, :])
    # a replica may spread over up to max_replica_chips chips (a scale-up domain); per-chip throughput
    # does not change with the spread, per-user speed grows with it
    spread = np.maximum(1.0, a["hardware.max_replica_chips"][None, :] / res["chips_per_replica"])
    ok = (grid <= a["hardware.decode_batch"][None, :]) & \
         (res["decode_tokens_per_s_per_user"] * spread >= a["hardware.user_speed_tokens_per_s"][None, :])
    ok[0, :] = True  # batch 1 is always allowed (it is the fastest a user can be served)
    pick = np.max(np.where(ok, np.arange(len(BATCH_GRID))[:, None], 0), axis=0)
    cols = np.arange(input_tokens.shape[0])
    decode = res["decode_tokens_per_s_per_chip"][pick, cols]
    prefill = throughput(chip, model, precision, input_tokens, output_tokens, 1.0, a["hardware.mfu"],
                         a["hardware.mbu"], usable_fraction=usable)["prefill_tokens_per_s_per_chip"]
    return {"prefill": np.asarray(prefill, dtype=float), "decode": np.asarray(decode, dtype=float),
            "batch": BATCH_GRID[pick]}


def size_fleet(
    demand: pl.DataFrame,
    scenarios: dict[str, Scenario],
    chips: dict[str, Chip],
    models: dict[str, Model],
    model_mix: dict[str, dict[str, float]],
    a: dict[str, np.ndarray],
    demand_z: dict[str, np.ndarray],
) -> pl.DataFrame:
    """Chips per draw for every (period, scenario, segment, phase, chip).

    `demand` has period_start, segment, value, lo95, hi95 (tokens/day; log-normal between the 95%
    bounds); `demand_z` holds one standard-normal draw per Monte Carlo draw and segment.
    Returns long rows with numpy arrays of draws in `chips` and `tokens_per_day`.
    """
    rates_cache: dict[tuple, dict] = {}
    rows = []
    for period, segment, value, lo, hi in demand.select(
            "period_start", "segment", "value", "lo95", "hi95").iter_rows():
        sigma = (np.log(hi) - np.log(lo)) / (2 * 1.959964) if lo and lo > 0 else 0.0
        tokens_per_day = value * np.exp(sigma * demand_z[segment])
        for scen in scenarios.values():
            cached = a["workload.cached_share"] * (1.0 if scen.kv_cache_on_ssd
                                                   else a["workload.cache_hit_retention_without_ssd"])
            peak = a["fleet.peak_to_average"]
            phase_tps = {
                "prefill": tokens_per_day / SECONDS_PER_DAY * (1 - a["workload.output_share"]) * (1 - cached) * peak,
                "decode": tokens_per_day / SECONDS_PER_DAY * a["workload.output_share"] * peak,
            }
            overhead = (1 + a["fleet.redundancy"]) / a["fleet.utilisation"]
            for phase in PHASES:
                for chip_name, share in scen.mix[segment][phase].items():
                    chip = chips[chip_name]
                    need = np.zeros_like(tokens_per_day)
                    flops = np.zeros_like(tokens_per_day)
                    for model_name, weight in model_mix[segment].items():
                        key = (chip_name, model_name, scen.precision)
                        if key not in rates_cache:
                            rates_cache[key] = per_chip_rates(chip, models[model_name], scen.precision, a)
                        tps = phase_tps[phase] * share * weight
                        need += tps / rates_cache[key][phase]
                        model = models[model_name]
                        context = a["workload.input_tokens"] / 2 if phase == "prefill" else a["workload.input_tokens"]
                        flops += tps / peak * SECONDS_PER_DAY * model.flops_per_token(context)
                    rows.append({"period_start": period, "scenario": scen.name, "segment": segment, "phase": phase,
                                 "chip": chip_name, "chip_class": chip.chip_class,
                                 "chips": need * overhead, "tokens_per_day": phase_tps[phase] * share / peak
                                 * SECONDS_PER_DAY, "flops_per_day": flops})
    return rows


def summarise(rows: list[dict], chips: dict[str, Chip], a: dict[str, np.ndarray]) -> pl.DataFrame:
    """marts.hardware_demand rows: medians and 5th/95th percentiles over the draws.

    cost_usd_per_day = amortised capex (price / service life) + energy (TDP x PUE x 24 h x price of
    electricity), per day; cost per million tokens follows in SQL (marts.token_cost)."""
    pue = a["fleet.pue"]
    daily_capex = 1.0 / (a["installed_base.service_life_years"] * 365.25)
    energy = 24.0 / 1e6 * a["fleet.electricity_usd_per_mwh"]  # USD per W-day
    out = []
    for r in rows:
        chip = chips[r["chip"]]
        n = r["chips"]
        cost = n * (chip.unit_price_usd * daily_capex + chip.tdp_w * pue * energy)
        out.append({
            "period_start": r["period_start"], "scenario": r["scenario"], "segment": r["segment"],
            "phase": r["phase"], "chip": r["chip"], "chip_class": r["chip_class"],
            "tokens_per_day": float(np.median(r["tokens_per_day"])),
            "flops_per_day": float(np.median(r["flops_per_day"])),
            "chips_p5": float(np.percentile(n, 5)), "chips_median": float(np.median(n)),
            "chips_p95": float(np.percentile(n, 95)),
            "h100e_median": float(np.median(n * chip.h100e)),
            "power_mw_median": float(np.median(n * chip.tdp_w * pue / 1e6)),
            "capex_usd_median": float(np.median(n * chip.unit_price_usd)),
            "cost_usd_per_day_median": float(np.median(cost)),
        })
    return pl.DataFrame(out)
