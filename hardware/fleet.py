"""Fleet sizing: tokens/day per segment -> chips, H100e, MW and capex per scenario, on the serving model
(hardware/serving.py, the code path of `tokens2chips size`), with Monte Carlo over the demand forecast,
the workload assumptions and the calibration's own error.

Per draw d, period t, segment s, phase p, chip x (share of the phase in the scenario) and model m
(share of the segment's tokens):

    prefill tokens/s = T[d,t,s] / 86,400 x (1 - output share) x (1 - cached share)
    decode tokens/s  = T[d,t,s] / 86,400 x output share
    chips[x]         = sum over m of  max(tokens/s x share[x] x mix[m] / rate[x, m, p, d], replica[x, m])
                       x peak_to_average / utilisation x (1 + redundancy)
    H100e = chips x H100e per chip;  MW = chips x TDP x PUE / 1e6;  capex = chips x unit price

rate[x, m, p, d] is the serving model's calibrated tokens/s per chip (replica, batch and latency chosen
as a server would at the draw's prompt length, output length and per-user speed target) times
exp(sigma_g z[d, g]): the calibration's leave-one-source-out error for chip group g, so the bands say how
far the calibrated rates may be off. The serving model runs exactly at `fleet.workload_points` workload
draws; draw d uses point d mod that number.
Overheads: peak_to_average is the time-aligned daily peak (festival peaks are a stress case in the
sensitivity table), utilisation only what calibrated per-chip rates do not hold (pooling, queueing
headroom), redundancy spare nodes.
Orchestration CPUs (scenarios with `orchestration_cpu`): chips of every phase x agentic share x
cpu_layer.cpus_per_agentic_accelerator, as phase 'orchestration'. CPUs never decode a model whose
per-user speed they cannot reach: a scenario that puts a model on a chip that cannot meet the target is a
ScenarioError naming scenario, segment, chip and model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hardware.roofline import Chip, LlmSpec
from hardware.serving import Efficiency, Limits, group_of, serve
from hardware.stats import log_sigma, percentiles

PHASES = ("prefill", "decode")
PRECISIONS = ("bf16", "fp8", "fp4")
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
    orchestration_cpu: str | None = None
    placement: dict | None = None  # model -> phase -> {chip: share}: overrides the segment's mix for that model

    def shares(self, segment: str, phase: str, model: str) -> dict[str, float]:
        """The chips (and their shares) that serve `model`'s `phase` in `segment`."""
        return ((self.placement or {}).get(model) or {}).get(phase) or self.mix[segment][phase]


def _check_costed(chip: Chip, where: str) -> None:
    for attr in ("tdp_w", "unit_price_usd", "h100e"):
        if getattr(chip, attr) is None:
            raise ScenarioError(f"{where}, chip '{chip.name}': no {attr} in the spec sheet; add it under "
                                "chip_overrides")


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
                    _check_costed(chips[chip], f"{where}, segment '{segment}', phase '{phase}'")
                total = sum(shares.values())
                if abs(total - 1.0) > 1e-6:
                    raise ScenarioError(f"{where}, segment '{segment}', phase '{phase}': shares sum to {total:g}, "
                                        "not 1")
                mix[segment][phase] = {c: float(v) for c, v in shares.items() if v > 0}
        unknown = set(spec["segments"]) - set(segments)
        if unknown:
            raise ScenarioError(f"{where}: unknown segment(s) {sorted(unknown)}; known: {segments}")
        placement = {}
        for model, phases in (spec.get("placement") or {}).items():
            placement[model] = {}
            for phase, shares in (phases or {}).items():
                at = f"{where}, placement of '{model}', phase '{phase}'"
                if phase not in PHASES or not isinstance(shares, dict) or not shares:
                    raise ScenarioError(f"{at}: needs prefill/decode -> chip: share entries")
                for chip in shares:
                    if chip not in chips:
                        raise ScenarioError(f"{at}: unknown chip '{chip}' (not in accelerator_specs.csv)")
                    _check_costed(chips[chip], at)
                if abs(sum(shares.values()) - 1.0) > 1e-6:
                    raise ScenarioError(f"{at}: shares sum to {sum(shares.values()):g}, not 1")
                placement[model][phase] = {c: float(v) for c, v in shares.items() if v > 0}
        cpu = spec.get("orchestration_cpu")
        if cpu is not None:
            if cpu not in chips:
                raise ScenarioError(f"{where}: orchestration_cpu '{cpu}' is not in accelerator_specs.csv")
            _check_costed(chips[cpu], f"{where}, orchestration_cpu")
        out[name] = Scenario(name, str(spec.get("description", "")), precision,
                             bool(spec.get("kv_cache_on_ssd", False)), mix, cpu, placement)
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


# workload assumptions the serving model reads (evaluated at `fleet.workload_points` points)
WORKLOAD = ["hardware.user_speed_tokens_per_s", "workload.input_tokens", "workload.output_share"]
# the assumptions the fleet model reads, by their dotted names in meta.assumptions
FLEET_ASSUMPTIONS = WORKLOAD + [
    "workload.cached_share", "workload.cache_hit_retention_without_ssd", "workload.agentic_share",
    "fleet.peak_to_average", "fleet.utilisation", "fleet.redundancy", "fleet.pue",
    "cpu_layer.cpus_per_agentic_accelerator",
]


@dataclass(frozen=True)
class Serving:
    """What the fleet needs from the serving model: calibrated efficiency per chip group, limits, and
    the log-s.d. of the calibration's error per chip group (0 for a point estimate)."""
    efficiency: dict[str, Efficiency]
    limits: Limits
    error_sd: dict[str, float]


def tie_workload(samples: dict[str, np.ndarray], points: int) -> dict[str, np.ndarray]:
    """Draw d of each workload assumption repeats point d mod `points` (the serving model runs once per point)."""
    out = dict(samples)
    for name in WORKLOAD:
        values = samples[name]
        k = max(1, min(int(points), values.shape[0]))
        out[name] = np.resize(values[:k], values.shape[0])
    return out


def output_tokens_per_request(prompt_tokens, output_share):
    """Mean output tokens per request from the prompt length and the output share of all tokens."""
    return prompt_tokens * output_share / (1.0 - output_share)


def rates(chip: Chip, model: LlmSpec, precision: str, samples: dict[str, np.ndarray], serving: Serving) -> dict:
    """Per-chip prefill and decode tokens/s, decode batch, replica chips, per-user speed and whether the
    speed target is met, for every draw (the serving model runs once per distinct workload point)."""
    eff = serving.efficiency[group_of(chip)]
    speed, prompt, share = (samples[n] for n in WORKLOAD)
    keys = np.stack([speed, prompt, share], axis=1)
    unique, index = np.unique(keys, axis=0, return_inverse=True)
    fields = ("prefill_per_chip", "decode_per_chip", "batch", "n", "decode_per_user", "meets_speed")
    table = {f: np.empty(len(unique)) for f in fields}
    for i, (s, p, o) in enumerate(unique):
        r = serve(chip, model, precision, float(p), float(output_tokens_per_request(p, o)), eff, serving.limits,
                  user_speed=float(s))
        for f in fields:
            table[f][i] = float(r[f])
    index = np.asarray(index).reshape(-1)
    out = {f: table[f][index] for f in fields}
    return {"prefill": out["prefill_per_chip"], "decode": out["decode_per_chip"], "batch": out["batch"],
            "replica": out["n"], "per_user": out["decode_per_user"], "meets_speed": out["meets_speed"] > 0.5}


def check_speed(scenarios: dict[str, Scenario], chips: dict[str, Chip], models: dict[str, LlmSpec],
                model_mix: dict[str, dict[str, float]], point: dict[str, float], serving: Serving) -> None:
    """A decode chip that cannot serve a model of its segment at the per-user speed target (at the
    assumptions' point values) is a ScenarioError naming scenario, segment, chip and model."""
    target = point["hardware.user_speed_tokens_per_s"]
    prompt = point["workload.input_tokens"]
    output = output_tokens_per_request(prompt, point["workload.output_share"])
    for scen in scenarios.values():
        for segment in scen.mix:
            for model_name in model_mix[segment]:
                for chip_name in scen.shares(segment, "decode", model_name):
                    chip = chips[chip_name]
                    r = serve(chip, models[model_name], scen.precision, prompt, output,
                              serving.efficiency[group_of(chip)], serving.limits, user_speed=target)
                    if not r["meets_speed"]:
                        raise ScenarioError(
                            f"scenario '{scen.name}', segment '{segment}': chip '{chip_name}' cannot decode model "
                            f"'{model_name}' at the per-user speed target of {target:g} tokens/s (it reaches "
                            f"{r['decode_per_user']:.1f} at batch 1 on {r['n']:g} chips). Move that decode share "
                            "to a faster chip (placement) or take the model out of the segment's mix.")


def size_fleet(
    demand: pl.DataFrame,
    scenarios: dict[str, Scenario],
    chips: dict[str, Chip],
    models: dict[str, LlmSpec],
    model_mix: dict[str, dict[str, float]],
    samples: dict[str, np.ndarray],
    demand_z: dict[str, np.ndarray],
    serving: Serving,
    error_z: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """Chips per draw for every (period, scenario, segment, phase, chip).

    `demand` has period_start, segment, value, lo95, hi95 (tokens/day; log-normal between the 95%
    bounds); `demand_z` holds one standard-normal draw per Monte Carlo draw and segment, `error_z` one per
    draw and chip group (the calibration error; None: none). Returns long rows with numpy arrays of draws
    in `chips` and `tokens_per_day`."""
    draws = len(next(iter(samples.values())))
    rates_cache: dict[tuple, dict] = {}
    factor = {g: np.exp(sd * (error_z[g] if error_z else np.zeros(draws))) for g, sd in serving.error_sd.items()}

    def rate(chip_name, model_name, precision):
        key = (chip_name, model_name, precision)
        if key not in rates_cache:
            rates_cache[key] = rates(chips[chip_name], models[model_name], precision, samples, serving)
        return rates_cache[key]

    overhead = samples["fleet.peak_to_average"] / samples["fleet.utilisation"] * (1.0 + samples["fleet.redundancy"])
    rows = []
    for period, segment, value, lo, hi in demand.select(
            "period_start", "segment", "value", "lo95", "hi95").iter_rows():
        sigma = log_sigma(lo, hi) if lo and lo > 0 else 0.0
        tokens_per_day = value * np.exp(sigma * demand_z[segment])
        for scen in scenarios.values():
            cached = samples["workload.cached_share"] * (1.0 if scen.kv_cache_on_ssd
                                                   else samples["workload.cache_hit_retention_without_ssd"])
            share_out = samples["workload.output_share"]
            phase_tps = {"prefill": tokens_per_day / SECONDS_PER_DAY * (1 - share_out) * (1 - cached),
                         "decode": tokens_per_day / SECONDS_PER_DAY * share_out}
            accelerators = np.zeros_like(tokens_per_day)
            for phase in PHASES:
                need: dict[str, np.ndarray] = {}
                flops: dict[str, np.ndarray] = {}
                tokens: dict[str, np.ndarray] = {}
                context = samples["workload.input_tokens"] / 2 if phase == "prefill" else samples["workload.input_tokens"]
                for model_name, weight in model_mix[segment].items():
                    for chip_name, share in scen.shares(segment, phase, model_name).items():
                        r = rate(chip_name, model_name, scen.precision)
                        tps = phase_tps[phase] * share * weight
                        per_chip = r[phase] * factor[group_of(chips[chip_name])]
                        need[chip_name] = need.get(chip_name, 0.0) + np.where(
                            tps > 0, np.maximum(tps / per_chip, r["replica"]), 0.0)
                        flops[chip_name] = flops.get(chip_name, 0.0) + \
                            tps * SECONDS_PER_DAY * models[model_name].flops_per_token(context)
                        tokens[chip_name] = tokens.get(chip_name, 0.0) + tps * SECONDS_PER_DAY
                for chip_name, chip_need in need.items():
                    n = chip_need * overhead
                    accelerators = accelerators + n
                    rows.append({"period_start": period, "scenario": scen.name, "segment": segment, "phase": phase,
                                 "chip": chip_name, "chip_class": chips[chip_name].chip_class, "chips": n,
                                 "tokens_per_day": tokens[chip_name], "flops_per_day": flops[chip_name]})
            if scen.orchestration_cpu:
                cpu = chips[scen.orchestration_cpu]
                agentic = samples["workload.agentic_share"]
                rows.append({"period_start": period, "scenario": scen.name, "segment": segment,
                             "phase": "orchestration", "chip": cpu.name, "chip_class": cpu.chip_class,
                             "chips": accelerators * agentic * samples["cpu_layer.cpus_per_agentic_accelerator"],
                             "tokens_per_day": tokens_per_day * agentic, "flops_per_day": np.zeros_like(tokens_per_day)})
    return rows


def summarise(rows: list[dict], chips: dict[str, Chip], samples: dict[str, np.ndarray]) -> pl.DataFrame:
    """marts.hardware_demand rows: medians and 5th/95th percentiles over the draws.

    cost_usd_per_day = amortised capex (price / service life) + energy (TDP x PUE x 24 h x price of
    electricity), per day; cost per million tokens follows in SQL (marts.token_cost)."""
    pue = samples["fleet.pue"]
    daily_capex = 1.0 / (samples["installed_base.service_life_years"] * 365.25)
    energy = 24.0 / 1e6 * samples["fleet.electricity_usd_per_mwh"]  # USD per W-day
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
            **dict(zip(("chips_p5", "chips_median", "chips_p95"), percentiles(n))),
            "h100e_median": float(np.median(n * chip.h100e)),
            "power_mw_median": float(np.median(n * chip.tdp_w * pue / 1e6)),
            "capex_usd_median": float(np.median(n * chip.unit_price_usd)),
            "cost_usd_per_day_median": float(np.median(cost)),
        })
    return pl.DataFrame(out)
