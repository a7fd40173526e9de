"""Serving model: tokens/s per chip and per user for one model on one chip type, the replica size and
batch a server would choose, and the calibration of the few efficiency parameters on measurements.

One code path serves `tokens2chips throughput`, `tokens2chips size`, the calibration mart and the fleet.

Replica. A model replica spans n chips: at least what holds its weights (+ KV for one sequence), at
most `max_replica_chips` (or the chips of a measured system). Layouts (`modes`):
  tp  every layer split over the n chips (tensor/expert parallel: bandwidth and FLOP/s add up, each
      layer pays a fixed latency tau_layer; wider than the scale-up domain each layer also pays the
      scale-out latency tau_so, as wide expert parallelism does);
  pp  S pipeline stages of n/S chips (SRAM parts: S = n, a few layers per chip; HBM parts wider than
      the scale-up domain: one stage per domain). A token passes every stage in turn, so per-user speed
      is set by one stage's chips, not the sum; S micro-batches of b = max(1, B/S) are in flight.

Decode step of a replica at batch B (context c = prompt + output / 2, KV per token k):
    tp:  t(B) = max((W(B) + B c k) / (n BW mbu), B F / (n peak mfu)) + L tau_layer [+ L tau_so if n > scale-up]
    pp:  t(B) = S max((W(b) + b c k) / (n BW mbu), b F / (n peak mfu)) + (S - 1) tau_hop + L tau_layer
    per-user tokens/s = 1 / t(B); per-chip tokens/s = B / (n t(B))
W(B) is the weight bytes read per step (MoE: shared weights + the experts B tokens touch), F the FLOPs
per token (2 x active params + attention). The batch is the largest that fits the replica's memory
(weights + B sequences of KV, `memory_usable_fraction`), stays within `max_batch_per_chip` x n and keeps
per-user speed at or above the target; the replica size is the one (n_min x 2^k) with the highest
per-chip throughput under those limits.
Prefill is chunked: C tokens per chip per forward pass (`prefill_chunk_tokens`, all the replica's
prompts together), so the weights are read once per chunk and long and short prompts cost the same per token:
    t = max(C F_p / (n peak mfu m), W(C) / (n BW mbu)) + L tau_layer;  tokens/s per chip = C / (n t)
with m = `moe_prefill_efficiency` for mixture-of-experts models (expert-parallel all-to-all and
load imbalance) and 1 for dense models.
A mixed workload (both phases on the same chips, as in MLPerf) gives output tokens/s per chip
    O / (P / prefill + O / decode)  per request of P prompt and O output tokens.

Efficiency parameters (mfu, mbu, tau_layer, tau_hop, m) are per chip group (hbm: GPUs, TPUs, ASICs,
CPUs; lpu; wafer_scale), bounded, fitted on `data/throughput_measurements.csv` by least squares on
log(predicted / measured) with a weak pull toward the configured prior (see `calibrate`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from hardware.roofline import Chip, LlmSpec

if TYPE_CHECKING:
    from configuration.schema import Assumptions

SRAM_GROUPS = ("lpu", "wafer_scale")
# groups whose parameters are pulled toward another group's fitted values rather than the priors (partial
# pooling): China's domestic accelerators have few public measurements, and are HBM parts like the rest
SHRINK_TO = {"domestic": "hbm"}
FTOL = 1e-4  # least-squares stopping tolerances (relative cost and step): 1e-8 gives the same fit to 4 decimals in 2.4x the time
PARAMS = ("mfu", "mbu", "layer_us", "hop_us", "moe", "scaleout_us", "ep_us")
# which parameters each group's measurements can inform (the others stay at the prior)
FITTED = {"hbm": ("mfu", "mbu", "layer_us", "moe", "scaleout_us", "ep_us"),
          "domestic": ("mfu", "mbu", "layer_us", "moe", "ep_us"),
          "lpu": ("mbu", "layer_us", "hop_us"), "wafer_scale": ("mbu", "layer_us", "hop_us")}
BATCH_GRID = np.unique(np.round(np.geomspace(1, 8192, 40))).astype(float)


def group_of(chip: Chip) -> str:
    """The efficiency group: SRAM parts by class; China's domestic accelerators (Ascend, Cambricon) on their own
    software stacks ('domestic'); every other HBM/DDR part ('hbm': GPUs, TPUs, Trainium, CPUs)."""
    if chip.chip_class in SRAM_GROUPS:
        return chip.chip_class
    return "domestic" if chip.chip_class == "domestic_asic" else "hbm"


@dataclass(frozen=True)
class Efficiency:
    mfu: float = 0.5
    mbu: float = 0.8
    layer_us: float = 20.0
    hop_us: float = 2.0
    moe: float = 0.5
    scaleout_us: float = 500.0
    ep_us: float = 20.0


@dataclass(frozen=True)
class Limits:
    """Serving limits from the assumptions file."""
    memory_usable_fraction: float = 0.9
    max_batch_per_chip: float = 256.0
    max_replica_chips: float = 64.0
    prefill_chunk_tokens: float = 8192.0
    scaleup_chips: float = 8.0  # chips in one scale-up domain (NVLink box / rack); per chip via overrides
    kv_cache_bytes_per_value: float = 1.0  # KV cache kept at fp8 (1 byte) unless the weights are wider
    max_moe_tokens_per_chip: float = 128.0  # expert-parallel dispatch buffer: tokens in flight per chip
    scaleup_gbps: float = 450.0  # scale-up link bandwidth per chip and direction, where the chip has none
    scaleout_gbps: float = 50.0  # scale-out (NIC) bandwidth per chip and direction


def _scaleup(chip: Chip, limits: Limits) -> float:
    return float(chip.scaleup_chips or limits.scaleup_chips)


KV_PRECISION = {1.0: "fp8", 2.0: "bf16", 0.5: "fp4"}


def kv_precision(precision: str, limits: Limits, given: str | None = None) -> str:
    """The KV cache's precision: `given` (a measurement's engine setting), else the weights' precision but
    never narrower than limits.kv_cache_bytes_per_value (engines keep KV at fp8 when weights go to fp4)."""
    if given:
        return given
    from hardware.roofline import BYTES_PER_PARAM

    floor = float(limits.kv_cache_bytes_per_value)
    return precision if BYTES_PER_PARAM[precision] >= floor else KV_PRECISION.get(floor, "fp8")


def _chips_needed(chip: Chip, model: LlmSpec, precision: str, limits: Limits, context: float,
                  kv: str | None = None) -> int:
    """Chips that hold the weights and one sequence's KV, rounded to a layout a server runs: a power of two
    inside the scale-up domain (tensor/expert parallel degrees divide the box), whole domains beyond it;
    SRAM parts need exactly what holds the model."""
    if chip.memory_bytes <= 0:
        raise ValueError(f"chip {chip.name!r} has no memory capacity in the spec sheet")
    need = model.weight_bytes(precision) + context * model.kv_bytes_per_token(precision, kv_precision(precision, limits, kv))
    n = int(np.ceil(need / (chip.memory_bytes * limits.memory_usable_fraction) - 1e-9))
    if group_of(chip) in SRAM_GROUPS or n <= 1:
        return max(n, 1)
    domain = int(_scaleup(chip, limits))
    power = 1 << int(np.ceil(np.log2(n)))
    return power if power <= domain else int(np.ceil(n / domain) * domain)


def ep_seconds(chip: Chip, model: LlmSpec, n: float, tokens_per_chip, eff: Efficiency, limits: Limits):
    """Expert-parallel dispatch and combine per decode step of a mixture-of-experts model spread over n chips:
    per MoE layer a fixed floor (eff.ep_us) plus the bytes each chip sends over its links, tokens per chip x
    experts per token x hidden size x 3 bytes (fp8 dispatch, bf16 combine) x the share of experts off the chip,
    at the scale-up link bandwidth inside the domain and the scale-out bandwidth beyond it. Dense models
    and one-chip replicas: 0 (their tensor-parallel all-reduce is in the per-layer latency)."""
    if not model.is_moe or n <= 1:
        return 0.0 * np.asarray(tokens_per_chip, dtype=float)
    hidden = float(model.hidden_size or model.attention_width)
    sent = np.asarray(tokens_per_chip, dtype=float) * model.experts_active * hidden * 3.0 * (1.0 - 1.0 / n)
    inside = n <= _scaleup(chip, limits)
    gbps = (chip.scaleup_gbps or limits.scaleup_gbps) if inside else limits.scaleout_gbps
    return model.n_layers * (eff.ep_us * 1e-6 + sent / (gbps * 1e9))


BOUNDS = np.array(["interconnect", "latency", "memory", "compute"])


def decode_curve(chip: Chip, model: LlmSpec, precision: str, n: float, batch, context: float,
                 eff: Efficiency, scaleup: float = 8.0, mode: str = "tp", limits: Limits | None = None,
                 kv: str | None = None):
    """Per-chip tokens/s, per-user tokens/s and the bound of decode at each batch (arrays).

    A step runs the weight GEMMs (bound by reading the weights the batch touches, or by their FLOPs) and then
    attention (bound by reading each sequence's KV cache, or by its FLOPs), one after the other, plus fixed
    per-layer latency and, for mixture-of-experts models over several chips, expert-parallel dispatch and
    combine (ep_seconds).
    mode "tp": every layer split over the n chips (one stage); wider than the scale-up domain it is
    expert/tensor parallel across nodes and each layer pays the scale-out latency.
    mode "pp": S pipeline stages of n/S chips (S = n for SRAM parts, the scale-up domains otherwise); a
    token passes every stage in turn, the replica keeps S micro-batches of b = max(1, B/S) in flight, and
    each stage boundary is one hop."""
    limits = limits or Limits(scaleup_chips=scaleup)
    batch = np.asarray(batch, dtype=float)
    kv_token = model.kv_bytes_per_token(precision, kv_precision(precision, limits, kv)) * context
    gemm_flops = 2.0 * model.active_params_b * 1e9
    attn_flops = model.attention_flops_per_token(context)
    bw, peak = chip.bandwidth * eff.mbu, chip.peak_flops(precision) * eff.mfu
    fixed = model.n_layers * eff.layer_us * 1e-6
    if mode == "pp":
        stages = n if group_of(chip) in SRAM_GROUPS else float(np.ceil(n / scaleup))
        b = np.maximum(1.0, batch / stages)
        # a stage holds 1/S of the layers (weights and KV) on n/S chips and runs a micro-batch of b;
        # a token passes all S stages in turn
        w_mem, w_cmp = stages * model.weight_bytes_read(precision, b) / (n * bw), stages * b * gemm_flops / (n * peak)
        a_mem, a_cmp = stages * b * kv_token / (n * bw), stages * b * attn_flops / (n * peak)
        latency = fixed + (stages - 1) * eff.hop_us * 1e-6
        per_stage = n / stages
        t_ep = ep_seconds(chip, model, per_stage, b / per_stage, eff, limits) if group_of(chip) not in SRAM_GROUPS \
            else 0.0 * b
    else:
        w_mem, w_cmp = model.weight_bytes_read(precision, batch) / (n * bw), batch * gemm_flops / (n * peak)
        a_mem, a_cmp = batch * kv_token / (n * bw), batch * attn_flops / (n * peak)
        # a replica wider than the scale-up domain crosses the scale-out network in every layer
        latency = fixed + (model.n_layers * eff.scaleout_us * 1e-6 if n > scaleup else 0.0)
        t_ep = ep_seconds(chip, model, n, batch / n, eff, limits)
    work = np.maximum(w_mem, w_cmp) + np.maximum(a_mem, a_cmp)
    step = work + latency + t_ep
    # "interconnect" when scale-out crossings or expert dispatch are most of the overhead, "latency" when the
    # fixed per-layer time is; else memory or compute, by which kind of bound holds most of the work
    memory = np.where(w_mem >= w_cmp, w_mem, 0.0) + np.where(a_mem >= a_cmp, a_mem, 0.0)
    slow = ((mode == "tp") and n > scaleup and latency > 2 * fixed) | (t_ep > latency)
    # the bound's name by index into BOUNDS (one integer array, then one lookup: no string arrays per step)
    code = np.where(latency + t_ep >= work, np.where(slow, 0, 1), np.where(memory >= work / 2, 2, 3))
    return batch / (n * step), 1.0 / step, BOUNDS[code]


def modes(chip: Chip, n: float, scaleup: float) -> tuple[str, ...]:
    """How a replica of n chips may be laid out: SRAM parts pipeline; HBM parts split layers inside a
    scale-up domain and, wider than that, either split across nodes (EP/TP) or pipeline across them."""
    if group_of(chip) in SRAM_GROUPS:
        return ("pp",)
    return ("tp", "pp") if n > scaleup else ("tp",)


def prefill_rate(chip: Chip, model: LlmSpec, precision: str, n: float, prompt_tokens: float,
                 eff: Efficiency, limits: Limits):
    """Prefill tokens/s per chip (chunked prefill) and its bound."""
    chunk = limits.prefill_chunk_tokens * n  # each chip of the replica works on its own chunk of tokens
    m = eff.moe if model.is_moe or model.active_params_b < model.total_params_b else 1.0
    flops = chunk * model.flops_per_token(prompt_tokens / 2.0)
    t_cmp = flops / (n * chip.peak_flops(precision) * eff.mfu * m)
    t_mem = float(model.weight_bytes_read(precision, chunk)) / (n * chip.bandwidth * eff.mbu)
    latency = model.n_layers * (eff.layer_us + (eff.scaleout_us if n > _scaleup(chip, limits) else 0.0)) * 1e-6
    t = max(t_cmp, t_mem) + latency
    bound = "latency" if latency >= max(t_cmp, t_mem) else ("compute" if t_cmp >= t_mem else "memory")
    return chunk / (n * t), bound


_MEMO: tuple[dict, dict] | None = None  # inside a `memoised` block: (the kept results, the block's own)


@contextmanager
def memoised(kept: dict):
    """Inside the block, `serve` answers from `kept` (results of earlier runs, by their arguments) or computes,
    and files every answer in the block's own store, which it yields: what is worth keeping for the next run.
    serve is a pure function of its arguments (chip and model specs, efficiency, limits and workload are all
    in the key), so a caller may keep the store between runs of the same serving code (assets/hardware.py
    does): a what-if that moves no serving input sizes its fleets without re-running the search."""
    global _MEMO
    previous, _MEMO = _MEMO, (kept, {})
    try:
        yield _MEMO[1]
    finally:
        _MEMO = previous


def serve(chip: Chip, model: LlmSpec, precision: str, prompt_tokens: float, output_tokens: float,
          eff: Efficiency, limits: Limits, user_speed: float | None = None, batch: float | None = None,
          max_chips: float | None = None, kv: str | None = None) -> dict:
    """The replica a server would run and its rates (see _serve); from the active `memoised` store when it
    holds these arguments."""
    if _MEMO is None:
        return _serve(chip, model, precision, prompt_tokens, output_tokens, eff, limits, user_speed, batch,
                      max_chips, kv)
    kept, asked = _MEMO
    key = (chip, model, precision, float(prompt_tokens), float(output_tokens), eff, limits,
           None if user_speed is None else float(user_speed), batch, max_chips, kv)
    found = asked.get(key) or kept.get(key) or _serve(chip, model, precision, prompt_tokens, output_tokens, eff,
                                                      limits, user_speed, batch, max_chips, kv)
    asked[key] = found
    return dict(found)


@lru_cache(maxsize=8192)  # about 10 KB an entry: a fleet build weighs about 2,500
def _layouts(chip: Chip, model: LlmSpec, precision: str, prompt_tokens: float, output_tokens: float,
             eff: Efficiency, limits: Limits, batch: float | None, max_chips: float | None, kv: str | None
             ) -> tuple[int, tuple]:
    """The replica sizes and layouts _serve weighs, each with its decode curve over the batch grid: (n_min,
    ((n, mode, grid, tokens/s per chip, tokens/s per user, bound, batch the memory holds), ...)). None of it
    depends on the per-user speed target, so a new target (a what-if, a Monte Carlo draw) only selects again;
    kept per process (the arguments are frozen specs and numbers)."""
    if chip.memory_bytes <= 0 or not (chip.sram_tbps if chip.sram_only else chip.mem_tbps):
        raise ValueError(f"chip {chip.name!r} lacks memory capacity or bandwidth in the spec sheet")
    context = prompt_tokens + output_tokens / 2.0
    kv = kv_precision(precision, limits, kv)
    n_min = _chips_needed(chip, model, precision, limits, context, kv)
    cap = max(float(max_chips or limits.max_replica_chips), n_min)
    sizes = [float(n_min)]
    if group_of(chip) in SRAM_GROUPS:
        # an SRAM pipeline may span up to twice the chips that hold the weights, so that the KV of a full
        # pipeline (a sequence per stage) fits
        sizes.append(float(2 * n_min))
    while sizes[-1] * 2 <= cap and group_of(chip) not in SRAM_GROUPS:
        sizes.append(sizes[-1] * 2)
    out = []
    for n in sizes:
        free = n * chip.memory_bytes * limits.memory_usable_fraction - model.weight_bytes(precision)
        fits = np.floor(free / (model.kv_bytes_per_token(precision, kv) * max(context, 1.0)))
        per_chip_cap = limits.max_batch_per_chip
        if model.is_moe and n > 1 and group_of(chip) not in SRAM_GROUPS:
            # expert-parallel engines bound the tokens a chip holds in flight by their dispatch buffer
            per_chip_cap = min(per_chip_cap, limits.max_moe_tokens_per_chip)
        top = max(1.0, min(fits, per_chip_cap * n))
        grid = np.array([batch], dtype=float) if batch else BATCH_GRID[BATCH_GRID <= top]
        if not batch and (grid.size == 0 or grid[-1] < top):
            grid = np.append(grid, top)
        for mode in modes(chip, n, _scaleup(chip, limits)):
            per_chip, per_user, bound = decode_curve(chip, model, precision, n, grid, context, eff,
                                                     _scaleup(chip, limits), mode, limits, kv)
            out.append((n, mode, grid, per_chip, per_user, bound, fits))
    return n_min, tuple(out)


def _serve(chip: Chip, model: LlmSpec, precision: str, prompt_tokens: float, output_tokens: float,
           eff: Efficiency, limits: Limits, user_speed: float | None = None, batch: float | None = None,
           max_chips: float | None = None, kv: str | None = None) -> dict:
    """The replica a server would run and its rates.

    `user_speed`: minimum decode tokens/s per user (None: no target). `batch`: a fixed decode batch
    per replica (None: the largest allowed). `max_chips`: the most chips a replica may span. `kv`: the KV
    cache's precision (None: kv_precision's rule)."""
    n_min, layouts = _layouts(chip, model, precision, float(prompt_tokens), float(output_tokens), eff, limits,
                              batch, max_chips, kv)
    best, best_key = None, None
    for n, mode, grid, per_chip, per_user, bound, fits in layouts:
        meeting = np.nonzero(per_user >= (user_speed or 0.0))[0]
        # the largest batch that meets the target; the fastest layout at batch 1 when none does
        i = int(meeting[-1]) if meeting.size else 0
        cand = {"n": n, "batch": float(grid[i]), "decode_per_chip": float(per_chip[i]),
                "decode_per_user": float(per_user[i]), "decode_bound": str(bound[i]), "layout": mode,
                "meets_speed": bool(meeting.size), "max_batch_memory": float(fits)}
        key = (cand["meets_speed"], cand["decode_per_chip"] if cand["meets_speed"] else cand["decode_per_user"])
        if best is None or key > best_key:
            best, best_key = cand, key
    prefill, prefill_bound = prefill_rate(chip, model, precision, best["n"], prompt_tokens, eff, limits)
    best.update(prefill_per_chip=float(prefill), prefill_bound=prefill_bound, min_chips=n_min,
                per_user_latency_ms=1000.0 / best["decode_per_user"])
    mixed = output_tokens / (prompt_tokens / prefill + output_tokens / best["decode_per_chip"]) \
        if output_tokens > 0 else 0.0
    best["mixed_output_per_chip"] = float(mixed)
    return best


# ---------------------------------------------------------------- calibration on measurements

def efficiencies_from(values: dict[tuple[str, str], float]) -> dict[str, Efficiency]:
    return {g: Efficiency(**{p: values[(g, p)] for p in PARAMS}) for g in FITTED}


def predict_row(row: dict, chips: dict[str, Chip], models: dict[str, LlmSpec], effs: dict[str, Efficiency],
                limits: Limits) -> tuple[float, str]:
    """The model's figure for one measurement row, in the row's measured unit: (value, metric)."""
    chip, model = chips[row["chip"]], models[row["model"]]
    eff = effs[group_of(chip)]
    prompt = row["prompt_tokens"] or 1000.0
    output = row["output_tokens"] or 500.0
    max_chips = row["chips"] if row["chips"] and group_of(chip) not in SRAM_GROUPS else None
    res = serve(chip, model, row["precision"], prompt, output, eff, limits, row["user_tokens_per_s_target"],
                row["concurrency"], max_chips, row.get("kv_precision"))
    if row["tokens_per_s_per_chip"] is None:
        return res["decode_per_user"], "tokens_per_s_per_user"
    if row["phase"] == "prefill":
        return res["prefill_per_chip"], "tokens_per_s_per_chip"
    if row["phase"] == "decode":
        return res["decode_per_chip"], "tokens_per_s_per_chip"
    return res["mixed_output_per_chip"], "tokens_per_s_per_chip"


def _measured(row: dict) -> float:
    return row["tokens_per_s_per_chip"] if row["tokens_per_s_per_chip"] is not None else row["tokens_per_s_per_user"]


@dataclass(frozen=True)
class Prior:
    value: float
    low: float
    high: float


def calibrate(measurements: pl.DataFrame, chips: dict[str, Chip], models: dict[str, LlmSpec],
              priors: dict[str, Prior], limits: Limits, prior_weight: float = 0.5,
              exclude_source: str | None = None,
              start: dict[tuple[str, str], float] | None = None) -> dict[tuple[str, str], float]:
    """Fit the efficiency parameters of each chip group on the measurement rows (bounded least
    squares on log errors, plus `prior_weight` x log(param / centre) per fitted parameter). The centre is the
    configured prior, except for the groups in SHRINK_TO (partial pooling): a second pass fits them alone,
    pulled toward the first pass's values of the group they shrink to. The search starts at `start` (fitted
    values) or at the priors."""
    from scipy.optimize import least_squares

    rows = [r for r in measurements.iter_rows(named=True) if r["source_id"] != exclude_source and r["in_fit"]]
    base = {(g, p): priors[p].value for g in FITTED for p in PARAMS}
    by_group: dict[str, list[dict]] = {}
    for r in rows:
        by_group.setdefault(group_of(chips[r["chip"]]), []).append(r)
    # a row depends only on its chip group's parameters: keep each group's log errors by its parameter values,
    # so the finite-difference Jacobian recomputes only the rows of the group whose parameter moved
    memo: dict[tuple, list[float]] = {}

    def group_errors(group: str, vals: dict) -> list[float]:
        key = (group, *(vals[(group, p)] for p in PARAMS))
        if key not in memo:
            eff = {group: Efficiency(**{p: vals[(group, p)] for p in PARAMS})}
            memo[key] = [float(np.log(predict_row(r, chips, models, eff, limits)[0] / _measured(r)))
                         for r in by_group.get(group, [])]
        return memo[key]

    def fit(groups, fixed: dict, centre: dict, first: dict) -> dict:
        keys = [(g, p) for g in groups for p in FITTED[g]]
        lo = np.log([priors[p].low for _, p in keys])
        hi = np.log([priors[p].high for _, p in keys])
        mid = np.log([centre[k] for k in keys])

        def values(x):
            return {**fixed, **{k: float(np.exp(v)) for k, v in zip(keys, x)}}

        def residuals(x):
            vals = values(x)
            errors = [e for g in groups for e in group_errors(g, vals)]
            return np.concatenate([errors, prior_weight * (x - mid)])

        x = np.clip(np.log([first[k] for k in keys]), lo + 1e-9, hi - 1e-9)
        return values(least_squares(residuals, x, bounds=(lo, hi), diff_step=1e-3, max_nfev=200, ftol=FTOL, xtol=FTOL).x)

    first = {**base, **(start or {})}
    values = fit(list(FITTED), base, base, first)
    pooled = [g for g in FITTED if g in SHRINK_TO]
    if pooled:
        centre = {**base, **{(g, p): values[(SHRINK_TO[g], p)] for g in pooled for p in PARAMS}}
        values = fit(pooled, values, centre, values)
    return values


def calibration_table(measurements: pl.DataFrame, chips: dict[str, Chip], models: dict[str, LlmSpec],
                      priors: dict[str, Prior], limits: Limits) -> tuple[pl.DataFrame, dict]:
    """marts.throughput_calibration rows (fit on all rows, and leave-one-source-out) and the fitted values."""
    fitted = calibrate(measurements, chips, models, priors, limits)
    effs = efficiencies_from(fitted)
    loso: dict[str, float] = {}
    for source in measurements["source_id"].unique().to_list():
        # each leave-one-source-out fit searches from the priors, as the full fit does: started at the full fit,
        # the search can stay where the held-out rows put it (the objective is piecewise smooth in the
        # discrete replica and batch choices), which would report in-sample error as out-of-sample
        held = efficiencies_from(calibrate(measurements, chips, models, priors, limits, exclude_source=source))
        for r in measurements.filter(pl.col("source_id") == source).iter_rows(named=True):
            loso[r["measurement_id"]] = predict_row(r, chips, models, held, limits)[0]
    out = []
    for r in measurements.iter_rows(named=True):
        predicted, metric = predict_row(r, chips, models, effs, limits)
        measured = _measured(r)
        out.append({"measurement_id": r["measurement_id"], "chip": r["chip"], "chip_group": group_of(chips[r["chip"]]),
                    "model_name": r["model"], "precision": r["precision"], "phase": r["phase"], "metric": metric,
                    "measured": measured, "predicted": predicted, "ratio": predicted / measured,
                    "abs_log_error": abs(float(np.log(predicted / measured))), "in_fit": bool(r["in_fit"]),
                    "predicted_leave_source_out": loso[r["measurement_id"]],
                    "ratio_leave_source_out": loso[r["measurement_id"]] / measured,
                    "source_id": r["source_id"]})
    return pl.DataFrame(out), fitted


def measurements_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The measurement file with numeric columns as floats (empty = null)."""
    numeric = ["chips", "prompt_tokens", "output_tokens", "concurrency", "user_tokens_per_s_target",
               "tokens_per_s_per_chip", "tokens_per_s_per_user"]
    if "kv_precision" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Utf8).alias("kv_precision"))
    return frame.with_columns(*(pl.col(c).cast(pl.Float64) for c in numeric), pl.col("kv_precision").cast(pl.Utf8))


# the entries of the configuration the calibration reads: its priors (efficiency parameter -> entry) and the
# serving limits (Limits field -> entry); a what-if that changes none of them reuses the published calibration
PRIOR_ENTRIES = {"mfu": "serving.mfu", "mbu": "serving.mbu", "layer_us": "serving.layer_latency_us",
                 "hop_us": "serving.hop_latency_us", "moe": "serving.moe_prefill_efficiency",
                 "scaleout_us": "serving.scaleout_layer_latency_us", "ep_us": "serving.ep_layer_latency_us"}
LIMIT_ENTRIES = {"memory_usable_fraction": "hardware.memory_usable_fraction",
                 "max_batch_per_chip": "serving.max_batch_per_chip", "max_replica_chips": "serving.max_replica_chips",
                 "prefill_chunk_tokens": "serving.prefill_chunk_tokens", "scaleup_chips": "serving.scaleup_chips",
                 "kv_cache_bytes_per_value": "serving.kv_cache_bytes_per_value",
                 "max_moe_tokens_per_chip": "serving.max_moe_tokens_per_chip", "scaleup_gbps": "serving.scaleup_gbps",
                 "scaleout_gbps": "serving.scaleout_gbps"}
CALIBRATION_ENTRIES = frozenset([*PRIOR_ENTRIES.values(), *LIMIT_ENTRIES.values()])


def priors_and_limits(config: Assumptions) -> tuple[dict[str, Prior], Limits]:
    """Priors of the efficiency parameters (value within low..high) and the serving limits (point values), from
    the typed configuration (the measured overrides of hardware.build do not touch these)."""
    priors = {}
    for parameter, name in PRIOR_ENTRIES.items():
        low, value, high = config.quantity(name).span()
        priors[parameter] = Prior(value, low, high)
    limits = Limits(**{field: config.quantity(name).point for field, name in LIMIT_ENTRIES.items()})
    return priors, limits


def replica_chips(load_tokens_per_s, tokens_per_s_per_chip, replica: float, overhead=1.0):
    """Chips to carry a load, the one arithmetic of `size` and the fleet: load x overhead / per-chip rate,
    rounded up to whole replicas of `replica` chips (0 for no load). Vectorised over draws."""
    load = np.asarray(load_tokens_per_s, dtype=float)
    need = load * np.asarray(overhead, dtype=float) / np.asarray(tokens_per_s_per_chip, dtype=float)
    return np.where(load > 0, np.ceil(need / replica - 1e-9) * replica, 0.0)


def _replica_sizes(chip: Chip, model: LlmSpec, precision: str, context: float, limits: Limits) -> list[float]:
    n = float(_chips_needed(chip, model, precision, limits, context))
    sizes = [n]
    while group_of(chip) not in SRAM_GROUPS and sizes[-1] * 2 <= max(limits.max_replica_chips, n):
        sizes.append(sizes[-1] * 2)
    return sizes


def size(chip: Chip, model: LlmSpec, precision: str, input_tokens_per_day: float, output_tokens_per_day: float,
         cached_share: float, prompt_tokens: float, output_tokens: float, eff: Efficiency, limits: Limits,
         user_speed: float, prefill_chip: Chip | None = None, prefill_eff: Efficiency | None = None,
         peak_to_average: float = 1.0, utilisation: float = 1.0, redundancy: float = 0.0) -> dict:
    """Chips to serve a daily load: average load x peak_to_average / utilisation x (1 + redundancy), in whole
    replicas (replica_chips, the fleet's arithmetic). Two layouts, the smaller wins:
      disaggregated  prefill and decode on their own replicas, each at its calibrated per-chip rate (decode on
                     the replica with the highest per-chip rate at the speed target), as a large fleet runs;
      co-located     both phases on the same replicas, of the size (n_min x 2^k) that needs the fewest chips at
                     the speed target, as one server of a small deployment runs (not with --prefill-chip)."""
    overhead = peak_to_average / utilisation * (1.0 + redundancy)
    prefill_tps = input_tokens_per_day * (1.0 - cached_share) / 86_400.0
    decode_tps = output_tokens_per_day / 86_400.0
    decode = serve(chip, model, precision, prompt_tokens, output_tokens, eff, limits, user_speed)
    pchip = prefill_chip or chip
    prefill = serve(pchip, model, precision, prompt_tokens, output_tokens, prefill_eff or eff, limits, user_speed) \
        if prefill_chip is not None else decode
    p_chips = float(replica_chips(prefill_tps, prefill["prefill_per_chip"], prefill["n"], overhead))
    d_chips = float(replica_chips(decode_tps, decode["decode_per_chip"], decode["n"], overhead))
    layout, replica, chosen = "disaggregated", decode["n"], decode
    if prefill_chip is None and (prefill_tps > 0 or decode_tps > 0):
        context = prompt_tokens + output_tokens / 2.0
        for n in _replica_sizes(chip, model, precision, context, limits):
            r = serve(chip, model, precision, prompt_tokens, output_tokens, eff, limits, user_speed, max_chips=n)
            if not r["meets_speed"] and decode["meets_speed"]:
                continue
            # chip-seconds per second of both phases on the same chips
            busy = prefill_tps / r["prefill_per_chip"] + decode_tps / r["decode_per_chip"]
            chips = float(replica_chips(1.0, 1.0 / busy, r["n"], overhead)) if busy > 0 else 0.0
            if chips < p_chips + d_chips:
                share = (prefill_tps / r["prefill_per_chip"]) / busy
                layout, replica, chosen = "co-located", r["n"], r
                p_chips, d_chips = chips * share, chips - chips * share
                prefill = r
    return {
        "chips": p_chips + d_chips,
        "layout": layout,
        "replica_chips": replica,
        "overhead_factor": overhead,
        "prefill": {"chip": pchip.name, "chips": p_chips, "tokens_per_s": prefill_tps,
                    "tokens_per_s_per_chip": prefill["prefill_per_chip"], "bound": prefill["prefill_bound"],
                    "batch": limits.prefill_chunk_tokens, "batch_unit": "tokens per chip per forward pass"},
        "decode": {"chip": chip.name, "chips": d_chips, "tokens_per_s": decode_tps,
                   "tokens_per_s_per_chip": chosen["decode_per_chip"],
                   "tokens_per_s_per_user": chosen["decode_per_user"], "bound": chosen["decode_bound"],
                   "batch": chosen["batch"], "replica_chips": chosen["n"], "layout": chosen["layout"],
                   "meets_user_speed": chosen["meets_speed"],
                   "per_user_latency_ms": chosen["per_user_latency_ms"]},
    }


# ---------------------------------------------------------------- fitted values as a table, and curves

EFFICIENCY_COLUMNS = {"mfu": "mfu", "mbu": "mbu", "layer_us": "layer_latency_us", "hop_us": "hop_latency_us",
                      "moe": "moe_prefill_efficiency", "scaleout_us": "scaleout_layer_latency_us",
                      "ep_us": "ep_layer_latency_us"}
ROBUST_SD = 1.4826  # s.d. of a normal = 1.4826 x its median absolute deviation


def efficiency_table(table: pl.DataFrame, fitted: dict[tuple[str, str], float]) -> pl.DataFrame:
    """marts.serving_efficiency: one row per chip group with its fitted parameters, the fit's errors and
    error_log_sd (1.4826 x the median |log error| with each row's source left out of the fit; groups with
    fewer than 3 fitted rows take the pooled value), which the fleet's Monte Carlo draws from."""
    fit = table.filter(pl.col("in_fit")).with_columns(
        pl.col("ratio_leave_source_out").log().abs().alias("loso_abs_log_error"))
    pooled = float(fit["loso_abs_log_error"].median()) if fit.height else 0.0
    out = []
    for group in FITTED:
        part = fit.filter(pl.col("chip_group") == group)
        loso = float(part["loso_abs_log_error"].median()) if part.height >= 3 else pooled
        out.append({"chip_group": group, **{col: fitted[(group, p)] for p, col in EFFICIENCY_COLUMNS.items()},
                    "fitted_rows": part.height,
                    "median_abs_log_error": float(part["abs_log_error"].median()) if part.height else None,
                    "loso_median_abs_log_error": loso, "error_log_sd": ROBUST_SD * loso,
                    "fitted_parameters": ", ".join(EFFICIENCY_COLUMNS[p] for p in FITTED[group])})
    return pl.DataFrame(out)


def serving_from_table(frame: pl.DataFrame) -> tuple[dict[str, Efficiency], dict[str, float]]:
    """Efficiency per chip group and the log-s.d. of its calibration error, from marts.serving_efficiency."""
    effs, sd = {}, {}
    for row in frame.iter_rows(named=True):
        effs[row["chip_group"]] = Efficiency(**{p: float(row[col]) for p, col in EFFICIENCY_COLUMNS.items()})
        sd[row["chip_group"]] = float(row["error_log_sd"] or 0.0)
    missing = sorted(set(FITTED) - set(effs))
    if missing:
        raise KeyError(f"marts.serving_efficiency has no row for chip group(s) {missing}")
    return effs, sd


SPEED_GRID = np.geomspace(5.0, 2000.0, 25)


def interactivity_curves(chips: dict[str, Chip], models: dict[str, LlmSpec], pairs: list[tuple[str, str, str]],
                         effs: dict[str, Efficiency], limits: Limits, config: Assumptions) -> pl.DataFrame:
    """Throughput vs interactivity (as InferenceX plots it): for each (chip, model, precision), decode
    tokens/s per chip at each per-user speed target the chip can reach, with the batch and replica chosen,
    and cost per million output tokens = (unit price / service life + TDP x PUE x electricity price)
    per second / tokens/s per chip x 1e6, at the workload's point values (`config`: the typed configuration
    the fleet ran with, measured workload shares included)."""
    prompt = config.workload.input_tokens.point
    share = config.workload.output_share.point
    output = prompt * share / (1.0 - share)
    life_s = config.installed_base.service_life_years.point * 365.25 * 86_400.0
    usd_per_joule = config.fleet.electricity_usd_per_mwh.point / 3.6e9
    pue = config.fleet.pue.point
    out = []
    for chip_name, model_name, precision in pairs:
        chip, model = chips[chip_name], models[model_name]
        usd_per_s = (chip.unit_price_usd or 0.0) / life_s + (chip.tdp_w or 0.0) * pue * usd_per_joule
        seen = set()
        for target in SPEED_GRID:
            r = serve(chip, model, precision, prompt, output, effs[group_of(chip)], limits, user_speed=float(target))
            if not r["meets_speed"] or (r["n"], r["batch"]) in seen:
                continue
            seen.add((r["n"], r["batch"]))
            out.append({"chip": chip_name, "chip_class": chip.chip_class, "model_name": model_name,
                        "precision": precision, "user_speed_target": float(target),
                        "tokens_per_s_per_user": r["decode_per_user"], "tokens_per_s_per_chip": r["decode_per_chip"],
                        "batch": r["batch"], "replica_chips": r["n"], "bound": r["decode_bound"],
                        "usd_per_million_output_tokens": usd_per_s / r["decode_per_chip"] * 1e6})
    schema = {"chip": pl.Utf8, "chip_class": pl.Utf8, "model_name": pl.Utf8, "precision": pl.Utf8,
              "user_speed_target": pl.Float64, "tokens_per_s_per_user": pl.Float64,
              "tokens_per_s_per_chip": pl.Float64, "batch": pl.Float64, "replica_chips": pl.Float64,
              "bound": pl.Utf8, "usd_per_million_output_tokens": pl.Float64}
    return pl.DataFrame(out, schema=schema)
