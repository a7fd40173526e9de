"""Fleet sizing: tokens/day per segment -> chips, H100e, MW and capex per scenario, on the serving model
(hardware/serving.py, the code path of `tokens2chips size`), with Monte Carlo over the demand forecast,
the workload assumptions and the calibration's own error. Fleets are stock and flow (hardware/stockflow.py).

Per draw d, quarter t, segment s, phase p and model m (share of the segment's tokens):

    prefill tokens/s = T[d,t,s] / 86,400 x (1 - output share) x (1 - cached share)
    decode tokens/s  = T[d,t,s] / 86,400 x output share
1. The stock serves first: the installed chips of the segment's region (their inference share) and the chips
   bought in earlier quarters still in service. A stock chip x carries model m co-located (both phases) and
   needs  (prefill tokens/s / prefill rate + decode tokens/s / decode rate) x overhead  chips for all of m's
   load; chips that cannot decode m at the per-user speed target carry none of it. Their time goes to the
   models with load left in proportion to token shares (water-filling, ALLOCATION_ROUNDS rounds).
2. The remainder is bought: chips[x] = replica_chips(remaining tokens/s x share[x], rate[x, m, p, d],
   replica[x, m], overhead), whole replicas (serving.replica_chips, the arithmetic of `size`), from the
   scenario's chips for that quarter (or the region's shipment mix), each inside its availability window.
   A decode load no chip of the scenario can serve at the speed target is a shortfall.
    overhead = peak_to_average / utilisation x (1 + redundancy)
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

import datetime as dt
import dataclasses
from dataclasses import dataclass

import numpy as np
import polars as pl

from configuration.schema import Assumptions, Scenario as ScenarioSchema
from hardware.roofline import Chip, LlmSpec
from hardware.serving import Efficiency, Limits, group_of, replica_chips, serve
from hardware.stats import log_sigma, row_medians, row_percentiles, stack_draws
from hardware.stockflow import (SHIPMENT_MIX, _stock_at, check_available, quarters_between, servable,
                                shipment_mix)

PHASES = ("prefill", "decode")
ALLOCATION_ROUNDS = 6  # water-filling rounds that hand installed chips' idle time to models with load left
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
    mix: dict  # segment -> phase -> {chip: share}, or segment -> SHIPMENT_MIX (the quarter's shipment mix)
    orchestration_cpu: str | None = None
    placement: dict | None = None  # model -> phase -> {chip: share}: overrides the segment's mix for that model
    # (from quarter, mix, placement) from that quarter on (the first entry: the scenario's own mix, from any date)
    schedule: tuple = ()

    def entry(self, period: dt.date | None) -> tuple[dict, dict]:
        mix, placement = self.mix, self.placement or {}
        for start, m, p in self.schedule:
            if period is not None and start <= period:
                mix, placement = m, p
        return mix, placement

    def shares(self, segment: str, phase: str, model: str, period: dt.date | None = None) -> dict[str, float] | str:
        """The chips (and their shares) that serve `model`'s `phase` in `segment` in `period`, or SHIPMENT_MIX."""
        mix, placement = self.entry(period)
        return (placement.get(model) or {}).get(phase) or (SHIPMENT_MIX if mix[segment] == SHIPMENT_MIX
                                                           else mix[segment][phase])

    def entries(self):
        """Every (mix, placement) the scenario uses over time."""
        return [(self.mix, self.placement or {})] + [(m, p) for _, m, p in self.schedule]


def _check_costed(chip: Chip, where: str) -> None:
    for attr in ("tdp_w", "unit_price_usd", "h100e"):
        if getattr(chip, attr) is None:
            raise ScenarioError(f"{where}, chip '{chip.name}': no {attr} in the spec sheet; add it under "
                                "chip_overrides")


def _parse_shares(shares, chips: dict[str, Chip], at: str) -> dict[str, float]:
    if not isinstance(shares, dict) or not shares:
        raise ScenarioError(f"{at}: needs chip: share entries")
    for chip, share in shares.items():
        if chip not in chips:
            raise ScenarioError(f"{at}: unknown chip '{chip}' (not in accelerator_specs.csv)")
        if not isinstance(share, (int, float)) or share < 0:
            raise ScenarioError(f"{at}, chip '{chip}': share {share!r} must be a non-negative number")
        _check_costed(chips[chip], at)
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ScenarioError(f"{at}: shares sum to {total:g}, not 1")
    return {c: float(v) for c, v in shares.items() if v > 0}


def _parse_mix(raw: dict, chips, segments, where: str, base: dict | None = None) -> dict:
    """segment -> phase -> {chip: share} (or SHIPMENT_MIX); with `base`, segments not named keep base's."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: 'segments' must map segment -> phase -> chip: share")
    unknown = set(raw) - set(segments)
    if unknown:
        raise ScenarioError(f"{where}: unknown segment(s) {sorted(unknown)}; known: {segments}")
    mix = dict(base or {})
    for segment in segments:
        phases = raw.get(segment)
        if phases is None and base is not None:
            continue
        if phases == SHIPMENT_MIX:
            mix[segment] = SHIPMENT_MIX
            continue
        if not isinstance(phases, dict):
            raise ScenarioError(f"{where}: segment '{segment}' is missing (phase -> chip: share, or "
                                f"'{SHIPMENT_MIX}')")
        mix[segment] = {phase: _parse_shares(phases.get(phase), chips, f"{where}, segment '{segment}', phase '{phase}'")
                        for phase in PHASES}
    return mix


def _parse_placement(raw, chips, where: str, base: dict | None = None) -> dict:
    placement = {m: dict(v) for m, v in (base or {}).items()}
    for model, phases in (raw or {}).items():
        placement[model] = {}
        for phase, shares in (phases or {}).items():
            at = f"{where}, placement of '{model}', phase '{phase}'"
            if phase not in PHASES:
                raise ScenarioError(f"{at}: needs prefill/decode -> chip: share entries")
            placement[model][phase] = _parse_shares(shares, chips, at)
    return placement


def parse_scenarios(scenarios: dict[str, ScenarioSchema], chips: dict[str, Chip], segments: list[str],
                    source: str = "assumptions") -> dict[str, Scenario]:
    """The typed `scenarios` section (configuration.schema.Scenario: its shape, defaults and dates are checked
    there) checked against the chips and segments, which the schema cannot know, as Scenario objects. Every
    problem is a ScenarioError naming scenario, segment, phase and chip.

    A segment maps phase -> {chip: share}, or is the string 'shipment_mix' (chips bought in proportion
    to the quarter's projected shipments of the segment's region). `periods` is a list of
    {from: date, segments: {...}, placement: {...}} whose entries apply from that quarter on, each
    replacing only the segments and placements it names."""
    if not scenarios:
        raise ScenarioError(f"{source}: 'scenarios' must map scenario names to definitions")
    out = {}
    for name, spec in scenarios.items():
        where = f"{source}: scenario '{name}'"
        if spec.precision not in PRECISIONS:
            raise ScenarioError(f"{where}: precision {spec.precision!r} is not one of {list(PRECISIONS)}")
        mix = _parse_mix(spec.segments, chips, segments, where)
        placement = _parse_placement(spec.placement, chips, where)
        schedule = []
        prev_mix, prev_placement = mix, placement
        for i, period in enumerate(spec.periods):
            at = f"{where}, periods[{i}]"
            if schedule and period.from_ <= schedule[-1][0]:
                raise ScenarioError(f"{at}: 'from' {period.from_} must come after the previous entry's")
            prev_mix = _parse_mix(period.segments, chips, segments, at, base=prev_mix)
            prev_placement = _parse_placement(period.placement, chips, at, base=prev_placement)
            schedule.append((period.from_, prev_mix, prev_placement))
        cpu = spec.orchestration_cpu
        if cpu is not None:
            if cpu not in chips:
                raise ScenarioError(f"{where}: orchestration_cpu '{cpu}' is not in accelerator_specs.csv")
            _check_costed(chips[cpu], f"{where}, orchestration_cpu")
        out[name] = Scenario(name, spec.description, spec.precision, spec.kv_cache_on_ssd, mix, cpu, placement,
                             tuple(schedule))
    return out


def check_windows(scenarios: dict[str, Scenario], periods: list[dt.date], region: dict[str, str],
                  windows: dict, model_mix: dict[str, dict[str, float]]) -> None:
    """A scenario that puts new load on a chip outside its availability window in a quarter of the horizon is
    an AvailabilityError naming scenario, quarter, region and chip."""
    for scen in scenarios.values():
        for period in periods:
            mix, placement = scen.entry(period)
            for segment, phases in mix.items():
                reg = region[segment]
                named = [] if phases == SHIPMENT_MIX else [(p, c) for p, shares in phases.items() for c in shares]
                named += [(p, c) for model, ph in placement.items() if model in model_mix[segment]
                          for p, shares in ph.items() for c in shares]
                for phase, chip in named:
                    check_available(windows, scen.name, period, reg, chip,
                                    f"segment '{segment}', phase '{phase}'")
            if scen.orchestration_cpu:
                for segment in mix:
                    check_available(windows, scen.name, period, region[segment], scen.orchestration_cpu,
                                    "orchestration_cpu")


def draw_assumptions(config: Assumptions, names: list[str], draws: int, rng: np.random.Generator) \
        -> dict[str, np.ndarray]:
    """One value per draw for each named entry of the typed configuration (`fleet.utilisation`):
    triangular(low, value, high), or the point value where the entry has no range."""
    out = {}
    for name in names:
        low, value, high = config.quantity(name).span()
        out[name] = rng.triangular(low, value, high, size=draws) if high > low else np.full(draws, value)
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
class FleetServing:
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


def rates(chip: Chip, model: LlmSpec, precision: str, samples: dict[str, np.ndarray], serving: FleetServing) -> dict:
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
                model_mix: dict[str, dict[str, float]], point: dict[str, float], serving: FleetServing) -> None:
    """A decode chip that cannot serve a model of its segment at the per-user speed target (at the
    assumptions' point values) is a ScenarioError naming scenario, segment, chip and model."""
    target = point["hardware.user_speed_tokens_per_s"]
    prompt = point["workload.input_tokens"]
    output = output_tokens_per_request(prompt, point["workload.output_share"])
    for scen in scenarios.values():
        named = {(segment, model_name, chip_name)
                 for mix, placement in scen.entries() for segment in mix for model_name in model_mix[segment]
                 for chip_name in ((placement.get(model_name) or {}).get("decode")
                                   or ({} if mix[segment] == SHIPMENT_MIX else mix[segment]["decode"]))}
        for segment, model_name, chip_name in sorted(named):
            chip = chips[chip_name]
            r = serve(chip, models[model_name], scen.precision, prompt, output,
                      serving.efficiency[group_of(chip)], serving.limits, user_speed=target)
            if not r["meets_speed"]:
                raise ScenarioError(
                    f"scenario '{scen.name}', segment '{segment}': chip '{chip_name}' cannot decode model "
                    f"'{model_name}' at the per-user speed target of {target:g} tokens/s (it reaches "
                    f"{r['decode_per_user']:.1f} at batch 1 on {r['n']:g} chips). Move that decode share "
                    "to a faster chip (placement) or take the model out of the segment's mix.")


@dataclass(frozen=True)
class Stock:
    """The installed base the fleet serves from first: installed units per (quarter, region) and chip
    (hardware.stockflow.installed_by_chip), the availability windows, the segment -> region map, the
    inference share of the installed base (per draw), the service life in quarters, and the shipment rows
    the `shipment_mix` policy reads. Bought chips join the stock and retire after the service life."""
    units: dict
    installed: pl.DataFrame
    windows: dict
    region: dict
    share: np.ndarray
    life_quarters: int
    mix_cache: dict = dataclasses.field(default_factory=dict)  # (region, quarter) -> the shipment-mix shares


def size_fleet(
    demand: pl.DataFrame,
    scenarios: dict[str, Scenario],
    chips: dict[str, Chip],
    models: dict[str, LlmSpec],
    model_mix: dict[str, dict[str, float]],
    samples: dict[str, np.ndarray],
    demand_z: dict[str, np.ndarray],
    serving: FleetServing,
    error_z: dict[str, np.ndarray] | None = None,
    stock: Stock | None = None,
    flows: list | None = None,
) -> list[dict]:
    """Chips per draw for every (period, scenario, segment, phase, chip): the installed chips in use plus the
    chips bought in the quarter (stock and flow); without `stock`, every quarter is sized from scratch.

    `demand` has period_start, segment, value, lo95, hi95 (tokens/day; log-normal between the 95%
    bounds); `demand_z` holds one standard-normal draw per Monte Carlo draw and segment, `error_z` one per
    draw and chip group (the calibration error; None: none). Returns long rows with numpy arrays of draws
    in `chips` (= `installed_used` + `bought`) and `tokens_per_day`. With `flows` (a list), one record per
    (period, scenario, segment, chip) of the stock is appended to it: installed inference chips, chips in use,
    tokens/day served, chips bought, and per segment the shortfall (chip None)."""
    draws = len(next(iter(samples.values())))
    rates_cache: dict[tuple, dict] = {}
    factor = {g: np.exp(sd * (error_z[g] if error_z else np.zeros(draws))) for g, sd in serving.error_sd.items()}
    zero = np.zeros(draws)

    def rate(chip_name, model_name, precision):
        key = (chip_name, model_name, precision)
        if key not in rates_cache:
            rates_cache[key] = rates(chips[chip_name], models[model_name], precision, samples, serving)
        return rates_cache[key]

    overhead = samples["fleet.peak_to_average"] / samples["fleet.utilisation"] * (1.0 + samples["fleet.redundancy"])
    frame = demand.select("period_start", "segment", "value", "lo95", "hi95").sort("period_start", "segment")
    tokens_by = {}
    for period, segment, value, lo, hi in frame.iter_rows():
        sigma = log_sigma(lo, hi) if lo and lo > 0 else 0.0
        tokens_by[(period, segment)] = value * np.exp(sigma * demand_z[segment])
    periods = sorted({p for p, _ in tokens_by})
    segments = sorted({s for _, s in tokens_by})
    rows = []
    for scen in scenarios.values():
        bought_stock: dict[str, list[tuple[dt.date, np.ndarray]]] = {}  # (segment) chip -> [(quarter, chips)]
        for period in periods:
            for segment in segments:
                if (period, segment) not in tokens_by:
                    continue
                tokens_per_day = tokens_by[(period, segment)]
                cached = samples["workload.cached_share"] * (1.0 if scen.kv_cache_on_ssd
                                                       else samples["workload.cache_hit_retention_without_ssd"])
                share_out = samples["workload.output_share"]
                phase_tps = {"prefill": tokens_per_day / SECONDS_PER_DAY * (1 - share_out) * (1 - cached),
                             "decode": tokens_per_day / SECONDS_PER_DAY * share_out}
                context = {"prefill": samples["workload.input_tokens"] / 2, "decode": samples["workload.input_tokens"]}
                mix = model_mix[segment]
                # ---- the stock: installed inference chips and chips bought earlier, still in service
                held: dict[str, np.ndarray] = {}
                installed_only: dict[str, np.ndarray] = {}
                if stock is not None:
                    region = stock.region[segment]
                    peers = [s for s in segments if stock.region[s] == region and (period, s) in tokens_by]
                    total = sum(tokens_by[(period, s)] for s in peers)
                    part = np.where(total > 0, tokens_per_day / np.where(total > 0, total, 1.0), 0.0)
                    for chip_name, units in _stock_at(stock.units, period, region).items():
                        if chip_name in chips and servable(chips[chip_name]):
                            held[chip_name] = units * stock.share * part
                    installed_only.update(held)  # the installed base's inference share, before earlier purchases
                    for (seg, chip_name), entries in bought_stock.items():
                        if seg != segment:
                            continue
                        alive = sum((n for q, n in entries if 0 <= quarters_between(q, period) < stock.life_quarters),
                                    zero)
                        held[chip_name] = held.get(chip_name, zero) + alive
                # the held chips (c) x the segment's models (m) x draws, as arrays: chips a stock chip needs to
                # carry all of model m's load (co-located), the prefill part of that, and whether it meets the
                # per-user speed target
                names, models_in = list(held), list(mix)
                weight = np.array([mix[m] for m in models_in])[None, :, None]
                per_chip: dict[tuple[str, str], dict[str, np.ndarray]] = {}
                served = {}
                capacity: dict[str, np.ndarray] = {}
                load_tps = tokens_per_day / SECONDS_PER_DAY
                if names:
                    n_held = np.stack([held[c] for c in names])[:, None, :]
                    f = np.stack([factor[group_of(chips[c])] for c in names])[:, None, :]
                    rated_cm = [[rate(c, m, scen.precision) for m in models_in] for c in names]

                    def rated(key: str) -> np.ndarray:  # chip x model x draw
                        return np.array([[r[key] for r in row] for row in rated_cm])

                    pre = phase_tps["prefill"] * weight / (rated("prefill") * f)
                    dec = phase_tps["decode"] * weight / (rated("decode") * f)
                    need = (pre + dec) * overhead
                    frac = np.where(pre + dec > 0, pre / np.maximum(pre + dec, 1e-300), 0.0)
                    ok = rated("meets_speed")
                    need_floor = np.maximum(need, 1e-300)
                    # water-filling: each round, a chip's free time goes to the models it can serve that still
                    # have load, in proportion to their token shares; a model takes at most its remaining load
                    free = np.ones((len(names), 1, draws))
                    remaining = np.ones((len(models_in), draws))
                    on = np.zeros_like(need)
                    for _ in range(ALLOCATION_ROUNDS):
                        w = np.where(ok & (remaining > 1e-9), weight, 0.0)
                        norm = w.sum(axis=1, keepdims=True)
                        alloc = np.where(norm > 0, free * w / np.where(norm > 0, norm, 1.0), 0.0)
                        offer = (n_held * alloc / need_floor).sum(axis=0)
                        take = np.where(offer > 0, np.minimum(1.0, remaining / np.maximum(offer, 1e-300)), 0.0)
                        on = on + n_held * alloc * take
                        free = free - (alloc * take).sum(axis=1, keepdims=True)
                        remaining = np.maximum(remaining - offer * take, 0.0)
                    covered = dict(zip(models_in, 1.0 - remaining))
                    # what the installed base's inference share can serve at full use (tokens/day): each chip on
                    # the segment's mix of the models it can decode at the target, with the fleet's overheads
                    w = np.where(ok, weight, 0.0)
                    norm = w.sum(axis=1, keepdims=True)
                    per_token = (np.where(norm > 0, w / np.where(norm > 0, norm, 1.0), 0.0) * need
                                 / np.maximum(load_tps * weight, 1e-300)).sum(axis=1)
                    n_installed = np.stack([installed_only.get(c, zero) for c in names])  # not bought earlier
                    cap = np.where(per_token > 0, n_installed / np.maximum(per_token, 1e-300), 0.0) * SECONDS_PER_DAY
                    capacity = {c: cap[i] for i, c in enumerate(names) if c in installed_only}
                    carried = np.where(need > 0, on / need_floor, 0.0)
                    used, tokens = on.sum(axis=1), (tokens_per_day * weight * carried).sum(axis=1)
                    by_phase = {}
                    for phase, pf in (("prefill", frac), ("decode", 1.0 - frac)):
                        t = phase_tps[phase] * weight * carried * SECONDS_PER_DAY
                        fpt = np.stack([models[m].flops_per_token(context[phase]) for m in models_in])
                        by_phase[phase] = ((on * pf).sum(axis=1), t.sum(axis=1), (t * fpt).sum(axis=1))
                    for i, c in enumerate(names):
                        served[c] = (used[i], tokens[i])
                        for phase in PHASES:
                            u, t, fl = (a[i] for a in by_phase[phase])
                            per_chip[(c, phase)] = {"installed_used": u, "bought": zero, "tokens": t, "flops": fl}
                else:
                    covered = {m: zero for m in models_in}

                def add_bought(chip_name, phase, chips_bought, tokens, flops):
                    rec = per_chip.setdefault((chip_name, phase), {"installed_used": zero, "bought": zero,
                                                                   "tokens": zero, "flops": zero})
                    rec["bought"] = rec["bought"] + chips_bought
                    rec["tokens"] = rec["tokens"] + tokens
                    rec["flops"] = rec["flops"] + flops
                # ---- the remainder: bought from the chips available that quarter
                shortfall = zero
                bought_now: dict[str, np.ndarray] = {}
                for phase in PHASES:
                    for m, weight in mix.items():
                        rest = phase_tps[phase] * weight * (1.0 - covered[m])
                        shares = scen.shares(segment, phase, m, period)
                        if shares == SHIPMENT_MIX:
                            if stock is None:
                                raise ScenarioError(f"scenario '{scen.name}', segment '{segment}': the "
                                                    f"'{SHIPMENT_MIX}' policy needs the installed base")
                            key = (stock.region[segment], period)
                            if key not in stock.mix_cache:
                                stock.mix_cache[key] = shipment_mix(stock.installed, chips, key[0], period,
                                                                    stock.windows)
                            shares = stock.mix_cache[key]
                        rated = {c: rate(c, m, scen.precision) for c in shares}
                        # the per-user speed target binds decode; a disaggregated prefill chip only prefills
                        fine = {c: rated[c]["meets_speed"] if phase == "decode" else np.ones(draws, dtype=bool)
                                for c in shares}
                        norm = sum((np.where(fine[c], v, 0.0) for c, v in shares.items()), zero)
                        shortfall = shortfall + np.where(norm > 0, 0.0, rest * SECONDS_PER_DAY)
                        for chip_name, share in shares.items():
                            r = rated[chip_name]
                            s_eff = np.where(fine[chip_name] & (norm > 0), share / np.where(norm > 0, norm, 1.0), 0.0)
                            tps = rest * s_eff
                            per = r[phase] * factor[group_of(chips[chip_name])]
                            n = replica_chips(tps, per, r["replica"], overhead)
                            t = tps * SECONDS_PER_DAY
                            add_bought(chip_name, phase, n, t, t * models[m].flops_per_token(context[phase]))
                            bought_now[chip_name] = bought_now.get(chip_name, zero) + n
                accelerators, acc_bought = zero, zero
                for (chip_name, phase), rec in per_chip.items():
                    n = rec["installed_used"] + rec["bought"]
                    if not np.any(n > 0):
                        continue
                    accelerators = accelerators + n
                    acc_bought = acc_bought + rec["bought"]
                    rows.append({"period_start": period, "scenario": scen.name, "segment": segment, "phase": phase,
                                 "chip": chip_name, "chip_class": chips[chip_name].chip_class, "chips": n,
                                 "installed_used": rec["installed_used"], "bought": rec["bought"],
                                 "tokens_per_day": rec["tokens"], "flops_per_day": rec["flops"]})
                if stock is not None:
                    for chip_name, n in bought_now.items():
                        bought_stock.setdefault((segment, chip_name), []).append((period, n))
                if flows is not None:
                    for chip_name in sorted(set(held) | set(bought_now)):
                        used, tokens = served.get(chip_name, (zero, zero))
                        flows.append({"period_start": period, "scenario": scen.name, "segment": segment,
                                      "chip": chip_name, "installed": held.get(chip_name, zero), "used": used,
                                      "served_tokens_per_day": tokens, "bought": bought_now.get(chip_name, zero),
                                      "demand_tokens_per_day": tokens_per_day,
                                      "capacity_tokens_per_day": capacity.get(chip_name, zero)})
                    flows.append({"period_start": period, "scenario": scen.name, "segment": segment, "chip": None,
                                  "shortfall_tokens_per_day": shortfall, "demand_tokens_per_day": tokens_per_day})
                if scen.orchestration_cpu:
                    cpu = chips[scen.orchestration_cpu]
                    agentic = samples["workload.agentic_share"]
                    n = accelerators * agentic * samples["cpu_layer.cpus_per_agentic_accelerator"]
                    bought_share = np.where(accelerators > 0, acc_bought / np.maximum(accelerators, 1e-300), 0.0)
                    rows.append({"period_start": period, "scenario": scen.name, "segment": segment,
                                 "phase": "orchestration", "chip": cpu.name, "chip_class": cpu.chip_class,
                                 # the CPU layer follows the accelerators: bought in the share they are bought
                                 "chips": n, "installed_used": n - n * bought_share, "bought": n * bought_share,
                                 "tokens_per_day": tokens_per_day * agentic, "flops_per_day": zero})
    return rows


def summarise(rows: list[dict], chips: dict[str, Chip], samples: dict[str, np.ndarray]) -> pl.DataFrame:
    """marts.hardware_demand rows: medians and 5th/95th percentiles over the draws.

    cost_usd_per_day = amortised capex (price / service life) + energy (TDP x PUE x 24 h x price of
    electricity), per day; cost per million tokens follows in SQL (marts.token_cost)."""
    pue = samples["fleet.pue"]
    draws = pue.shape[0]
    daily_capex = 1.0 / (samples["installed_base.service_life_years"] * 365.25)
    energy = 24.0 / 1e6 * samples["fleet.electricity_usd_per_mwh"]  # USD per W-day
    if not rows:
        return pl.DataFrame()
    keys = pl.DataFrame({k: [r[k] for r in rows] for k in ("period_start", "scenario", "segment", "phase", "chip",
                                                         "chip_class")})
    specs = [chips[r["chip"]] for r in rows]
    # installed chips without a published price or TDP: 0
    price, tdp, h100e = (np.array([[getattr(c, a) or 0.0] for c in specs], dtype=float)
                         for a in ("unit_price_usd", "tdp_w", "h100e"))
    n = stack_draws([r["chips"] for r in rows], draws)
    p5, median, p95 = row_percentiles(n)
    medians = {name: row_medians(stack_draws([r[key] for r in rows], draws)) for name, key in (
        ("tokens_per_day", "tokens_per_day"), ("flops_per_day", "flops_per_day"),
        ("installed_chips_used_median", "installed_used"), ("bought_chips_median", "bought"))}
    return keys.with_columns(
        pl.Series("tokens_per_day", medians["tokens_per_day"]), pl.Series("flops_per_day", medians["flops_per_day"]),
        pl.Series("chips_p5", p5), pl.Series("chips_median", median), pl.Series("chips_p95", p95),
        pl.Series("installed_chips_used_median", medians["installed_chips_used_median"]),
        pl.Series("bought_chips_median", medians["bought_chips_median"]),
        pl.Series("h100e_median", row_medians(n * h100e)),
        pl.Series("power_mw_median", row_medians(n * tdp * pue / 1e6)),
        pl.Series("capex_usd_median", row_medians(n * price)),
        pl.Series("cost_usd_per_day_median", row_medians(n * (price * daily_capex + tdp * pue * energy))))
