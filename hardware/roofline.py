"""Roofline throughput of one model replica on one chip type, for prefill and decode.

Units: FLOP/s, bytes/s, bytes, tokens/s. Every function is vectorised: scalar or numpy-array
arguments broadcast together (the Monte Carlo passes one value per draw).

Prefill (compute-bound by nature):
    FLOPs per prompt token = 2 x active params + 2 x layers x context x attention width (Kaplan et
    al. 2020, Table 1; attention width = heads x head dim); context averages half the prompt (causal)
    tokens/s = peak x MFU / FLOPs per token, unless reading the weights once per batch of prompts is
    slower (a tiny prompt at batch 1): then the bound is memory
Decode (one token per sequence per step):
    bytes per step = weight bytes read (once per batch) + batch x context x KV bytes per token
    FLOPs per step = batch x (2 x active params + 2 x layers x context x attention width)
    step time = max(bytes / (bandwidth x MBU), FLOPs / (peak x MFU)); tokens/s = batch / step time
Mixture of experts: FLOPs use the active parameters; the weights read per step are the shared
(non-expert) weights plus the experts that the batch's tokens touch: with E experts, k routed per
token and uniform routing, a batch of B tokens touches a fraction 1 - (1 - k/E)^B of them. A model
with fewer active than total parameters but no expert counts (the closed-model placeholder classes)
is treated as if every parameter were routed with k/E = active/total.
A replica spans the chips needed to hold its weights and KV cache (tensor/pipeline parallel); its
compute and bandwidth are the sum over those chips, and per-chip throughput is replica / chips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BYTES_PER_PARAM = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5}


@dataclass(frozen=True)
class Chip:
    name: str
    chip_class: str
    bf16_tflops: float
    fp8_tflops: float | None = None
    fp4_tflops: float | None = None
    mem_gb: float = 0.0  # HBM or DDR; 0 for SRAM-only parts
    mem_tbps: float = 0.0
    sram_mb: float = 0.0
    sram_tbps: float = 0.0
    tdp_w: float | None = None
    unit_price_usd: float | None = None
    h100e: float | None = None
    scaleup_chips: float | None = None  # chips in its scale-up domain (NVLink box/rack); None: the default
    scaleup_gbps: float | None = None  # per-chip, per-direction bandwidth of the scale-up links (GB/s)

    @property
    def sram_only(self) -> bool:
        return not self.mem_gb and bool(self.sram_mb)

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at `precision`; a chip without that format runs at its next wider one."""
        tflops = {"bf16": self.bf16_tflops,
                  "fp8": self.fp8_tflops or self.bf16_tflops,
                  "fp4": self.fp4_tflops or self.fp8_tflops or self.bf16_tflops}[precision]
        if not tflops:
            raise ValueError(f"chip {self.name!r} has no peak throughput for {precision}")
        return float(tflops) * 1e12

    @property
    def memory_bytes(self) -> float:
        """Capacity that holds weights and KV: HBM/DDR, or on-chip SRAM for SRAM-only parts."""
        return (self.sram_mb * 1e6) if self.sram_only else self.mem_gb * 1e9

    @property
    def bandwidth(self) -> float:
        """Bytes/s of the memory the weights stream from."""
        value = self.sram_tbps if self.sram_only else self.mem_tbps
        if not value:
            raise ValueError(f"chip {self.name!r} has no memory bandwidth in the spec sheet")
        return float(value) * 1e12


@dataclass(frozen=True)
class LlmSpec:
    """An LLM's architecture as the roofline needs it (one row of data/model_catalog.csv): parameters,
    layers, KV-cache bytes per token, attention shape and experts."""
    name: str
    total_params_b: float
    active_params_b: float
    n_layers: int
    kv_bytes_per_token_bf16: float
    hidden_size: int | None = None
    n_heads: int | None = None
    head_dim: int | None = None
    n_experts: int | None = None
    experts_active: int | None = None

    @property
    def attention_width(self) -> float:
        if self.n_heads and self.head_dim:
            return float(self.n_heads * self.head_dim)
        return float(self.hidden_size or 0)

    @property
    def is_moe(self) -> bool:
        return bool(self.n_experts and self.n_experts > 1 and self.experts_active)

    def expert_split(self) -> tuple[float, float]:
        """(shared params, params per expert) from total = shared + E e and active = shared + k e."""
        if not self.is_moe:
            return self.total_params_b * 1e9, 0.0
        per_expert = (self.total_params_b - self.active_params_b) / (self.n_experts - self.experts_active)
        shared = self.active_params_b - self.experts_active * per_expert
        return shared * 1e9, per_expert * 1e9

    def weight_bytes(self, precision: str) -> float:
        return self.total_params_b * 1e9 * BYTES_PER_PARAM[precision]

    def kv_bytes_per_token(self, precision: str, kv_precision: str | None = None) -> float:
        """KV cache per token, scaled from the catalog's bf16 figure: at `kv_precision` when given (engines
        keep the KV cache at bf16 or fp8 when weights go to fp4), else at the weights' precision."""
        return self.kv_bytes_per_token_bf16 * BYTES_PER_PARAM[kv_precision or precision] / 2.0

    def attention_flops_per_token(self, context):
        """Attention FLOPs of one token over `context` earlier tokens (the part of flops_per_token that
        reads the KV cache rather than the weights)."""
        return 2.0 * self.n_layers * np.asarray(context, dtype=float) * self.attention_width

    def weight_bytes_read(self, precision: str, tokens_in_step):
        """Weight bytes streamed per forward step that processes `tokens_in_step` tokens."""
        tokens = np.asarray(tokens_in_step, dtype=float)
        if not self.is_moe:
            if self.active_params_b < self.total_params_b:
                # sparse model without published expert counts (the closed-model classes): every
                # parameter is treated as routed, a fraction active/total per token
                coverage = 1.0 - (1.0 - self.active_params_b / self.total_params_b) ** tokens
                return self.weight_bytes(precision) * coverage
            return self.weight_bytes(precision) * np.ones_like(tokens)
        shared, per_expert = self.expert_split()
        coverage = 1.0 - (1.0 - self.experts_active / self.n_experts) ** np.asarray(tokens_in_step, dtype=float)
        return (shared + self.n_experts * per_expert * coverage) * BYTES_PER_PARAM[precision]

    def flops_per_token(self, context, attention: bool = True):
        attn = 2.0 * self.n_layers * np.asarray(context, dtype=float) * self.attention_width if attention else 0.0
        return 2.0 * self.active_params_b * 1e9 + attn


def chips_per_replica(chip: Chip, model: LlmSpec, precision: str, batch, context, kv: bool = True,
                      usable_fraction: float = 1.0):
    """Minimum chips to hold one replica: ceil((weights + batch x context x KV) / usable memory)."""
    need = model.weight_bytes(precision) + (
        np.asarray(batch, dtype=float) * np.asarray(context, dtype=float) * model.kv_bytes_per_token(precision)
        if kv else 0.0)
    capacity = chip.memory_bytes * np.asarray(usable_fraction, dtype=float)
    if chip.memory_bytes <= 0:
        raise ValueError(f"chip {chip.name!r} has no memory capacity in the spec sheet")
    return np.ceil(need / capacity - 1e-9)


def throughput(chip: Chip, model: LlmSpec, precision: str = "bf16", input_tokens=1024, output_tokens=256,
               batch=1, mfu=1.0, mbu=1.0, kv: bool = True, attention: bool = True,
               usable_fraction: float = 1.0, n_chips=None) -> dict:
    """Prefill and decode tokens/s of one replica (and per chip), with the bound of each phase.

    `kv`/`attention` switch the KV-cache and attention terms (off = the plain parameter roofline).
    Decode context is the prompt plus half the output; prefill context is half the prompt.
    """
    batch = np.asarray(batch, dtype=float)
    input_tokens = np.asarray(input_tokens, dtype=float)
    output_tokens = np.asarray(output_tokens, dtype=float)
    decode_context = input_tokens + output_tokens / 2.0
    if n_chips is None:
        n_chips = chips_per_replica(chip, model, precision, batch, input_tokens + output_tokens, kv, usable_fraction)
    n_chips = np.asarray(n_chips, dtype=float)
    compute = chip.peak_flops(precision) * n_chips * mfu
    bandwidth = chip.bandwidth * n_chips * mbu

    # prefill: `batch` prompts per forward pass; weights read once per pass
    prefill_flops = model.flops_per_token(input_tokens / 2.0, attention) * input_tokens * batch
    prefill_bytes = model.weight_bytes_read(precision, input_tokens * batch)
    t_prefill_compute = prefill_flops / compute
    t_prefill_memory = prefill_bytes / bandwidth
    prefill_tps = input_tokens * batch / np.maximum(t_prefill_compute, t_prefill_memory)

    # decode: one token per sequence per step
    kv_bytes = batch * decode_context * model.kv_bytes_per_token(precision) if kv else 0.0
    step_bytes = model.weight_bytes_read(precision, batch) + kv_bytes
    step_flops = batch * model.flops_per_token(decode_context, attention)
    t_decode_memory = step_bytes / bandwidth
    t_decode_compute = step_flops / compute
    decode_tps = batch / np.maximum(t_decode_memory, t_decode_compute)

    return {
        "chips_per_replica": n_chips,
        "prefill_tokens_per_s": prefill_tps,
        "prefill_tokens_per_s_per_chip": prefill_tps / n_chips,
        "prefill_bound": np.where(t_prefill_compute >= t_prefill_memory, "compute", "memory"),
        "decode_tokens_per_s": decode_tps,
        "decode_tokens_per_s_per_chip": decode_tps / n_chips,
        "decode_tokens_per_s_per_user": 1.0 / np.maximum(t_decode_memory, t_decode_compute),
        "decode_bound": np.where(t_decode_memory >= t_decode_compute, "memory", "compute"),
        "prefill_flops_per_token": prefill_flops / (input_tokens * batch),
        "decode_flops_per_token": step_flops / batch,
        "decode_bytes_per_step": step_bytes,
    }
