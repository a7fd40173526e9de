"""The serving model (hardware/serving.py): per-chip batching, pipelined SRAM latency, chunked prefill,
calibration on the embedded measurements, and `tokens2chips size` against a disclosed deployment."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from hardware.roofline import Chip, LlmSpec
from hardware.serving import (Efficiency, Limits, calibration_table, measurements_frame, priors_and_limits,
                              serve)
from hardware.specs import chip_overrides, chips_from_frame, models_from_frame
from tests.conftest import ASSUMPTIONS, DATA, ROOT

GPU = Chip("gpu", "gpu", bf16_tflops=1000.0, fp8_tflops=2000.0, mem_gb=80.0, mem_tbps=4.0)
SRAM = Chip("sram", "lpu", bf16_tflops=200.0, fp8_tflops=800.0, sram_mb=250.0, sram_tbps=100.0)
DENSE = LlmSpec("dense", total_params_b=10.0, active_params_b=10.0, n_layers=40, kv_bytes_per_token_bf16=100_000.0,
              hidden_size=4096, n_heads=32, head_dim=128)
EFF = Efficiency(mfu=0.5, mbu=0.8, layer_us=10.0, hop_us=2.0, moe=0.5, scaleout_us=300.0)


def test_decode_batch_is_per_chip_and_grows_with_the_replica():
    small = serve(GPU, DENSE, "fp8", 1000, 200, EFF, Limits(max_batch_per_chip=64), max_chips=1)
    wide = serve(GPU, DENSE, "fp8", 1000, 200, EFF, Limits(max_batch_per_chip=64), max_chips=8)
    assert small["n"] == 1 and small["batch"] == 64
    # the replica's batch scales with its chips, so per-chip throughput does not fall as it widens
    assert wide["batch"] == 64 * wide["n"]
    assert wide["decode_per_chip"] >= small["decode_per_chip"] * 0.99


def test_sram_pipeline_speed_is_one_chips_bandwidth_plus_hops():
    # 10 GB of fp8 weights on 250 MB chips: 45 chips at 90% usable memory; a token crosses every stage
    res = serve(SRAM, DENSE, "fp8", 100, 10, EFF, Limits(), batch=1)
    n = res["n"]
    assert n == np.ceil((10e9 + 105 * 50_000) / (250e6 * 0.9))
    weights = 10e9 + 105 * 50_000  # weights + one sequence's KV (fp8: half the bf16 bytes)
    # a step reads the weights (GEMMs), then the KV cache (attention: its read or its FLOPs, whichever is
    # slower, here the 2 x 40 layers x 105 tokens x 4,096 FLOPs on one chip's 800 TFLOP/s x 0.5)
    attention = max(105 * 50_000 / (100e12 * 0.8), 2 * 40 * 105 * 4096 / (800e12 * 0.5))
    expected = 1.0 / (10e9 / (100e12 * 0.8) + attention + (n - 1) * 2e-6 + 40 * 10e-6)
    assert res["decode_per_user"] == pytest.approx(expected, rel=1e-6)
    # not n x the bandwidth: summing the chips would be ~n times faster
    assert res["decode_per_user"] < 100e12 * 0.8 * n / weights / 10


def test_prefill_is_chunked_so_short_prompts_are_not_memory_bound():
    moe = LlmSpec("moe", total_params_b=671.0, active_params_b=37.0, n_layers=61, kv_bytes_per_token_bf16=70_272.0,
                hidden_size=7168, n_heads=128, head_dim=128, n_experts=256, experts_active=8)
    h800 = Chip("h800", "gpu", bf16_tflops=989.0, fp8_tflops=1979.0, mem_gb=80.0, mem_tbps=3.35)
    short = serve(h800, moe, "fp8", 1000, 200, EFF, Limits())
    long = serve(h800, moe, "fp8", 3000, 200, EFF, Limits())
    assert short["prefill_bound"] == "compute" and long["prefill_bound"] == "compute"
    assert short["prefill_per_chip"] > long["prefill_per_chip"]  # only the attention term differs
    assert short["prefill_per_chip"] / long["prefill_per_chip"] < 1.3


@pytest.fixture(scope="module")
def calibration():
    from configuration.assumptions import load_configuration

    configuration = load_configuration(ASSUMPTIONS)
    overrides = chip_overrides(configuration.model)
    specs = pl.read_csv(DATA / "accelerator_specs.csv", infer_schema_length=None)
    chips = chips_from_frame(specs.with_columns(pl.lit(None, pl.Float64).alias("h100e_per_chip")), overrides)
    models = models_from_frame(pl.read_csv(DATA / "model_catalog.csv", infer_schema_length=None))
    measured = measurements_frame(pl.read_csv(DATA / "throughput_measurements.csv", infer_schema_length=None))
    priors, limits = priors_and_limits(configuration.model)
    table, fitted = calibration_table(measured, chips, models, priors, limits)
    return table, fitted, chips, models, priors, limits


def test_measurements_cover_the_chip_generations_and_classes():
    measured = pl.read_csv(DATA / "throughput_measurements.csv", infer_schema_length=None)
    assert measured.height >= 25
    assert {"H100", "H200", "B200", "MI300X", "Groq LPU v1", "Cerebras WSE-3"} <= set(measured["chip"])
    assert measured["source_id"].null_count() == 0 and measured["published_on"].null_count() == 0
    sources = (DATA / "SOURCES.md").read_text()
    assert all(s in sources for s in measured["source_id"].unique())


def test_calibration_meets_the_bar_on_fitted_rows(calibration):
    table = calibration[0]
    fitted = table.filter(pl.col("in_fit"))
    assert fitted.height >= 20
    assert fitted["abs_log_error"].median() <= 0.25
    assert fitted["ratio"].max() <= 2.0 and fitted["ratio"].min() >= 1 / 2.0
    assert table["predicted_leave_source_out"].is_finite().all()
    # H200 beats H100 on Llama-70B (MLPerf: ~1.5x per GPU), so the model must not give them the same rate
    per_chip = dict(table.filter(pl.col("measurement_id").str.contains("h..0x8_llama70b_offline"))
                    .select("chip", "predicted").iter_rows())
    assert per_chip["H200"] > per_chip["H100"] * 1.03


def test_size_replays_deepseeks_disclosed_day():
    # DeepSeek, 2025-03-01: V3 and R1 (one architecture) served 608B input tokens/day (56.3% cache hits) and
    # 168B output at 20-22 tokens/s per user, with a disclosed mean KV length of 4,989 tokens (= prompt + half
    # the output: 4,381 + 1,217 / 2 at the disclosed 3.6 input tokens per output token), on 226.75 H800 nodes on
    # average (1,814 GPUs)
    proc = subprocess.run([sys.executable, "-m", "pipelines", "size", "--chip", "H800", "--model", "DeepSeek-R1",
                           "--input-tokens-per-day", "6.08e11", "--output-tokens-per-day", "168000000000",
                           "--cached-share", "0.563", "--prompt-tokens", "4381", "--output-tokens", "1217",
                           "--user-speed", "20"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 1814 / 1.3 < out["chips"] < 1814 * 1.3
    assert out["decode"]["tokens_per_s_per_user"] >= 20 and out["layout"] in ("disaggregated", "co-located")
    assert out["chips"] == out["prefill"]["chips"] + out["decode"]["chips"]
    assert out["decode"]["tokens_per_s_per_user"] >= 20
    for key in ("tokens_per_s_per_chip", "bound", "batch"):
        assert key in out["prefill"] and key in out["decode"]
    zero = subprocess.run([sys.executable, "-m", "pipelines", "size", "--chip", "H100", "--model", "Llama-3.1-70B",
                           "--input-tokens-per-day", "0", "--output-tokens-per-day", "1e9", "--peak-to-average", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert zero.returncode == 0, zero.stderr
    assert json.loads(zero.stdout)["prefill"]["chips"] == 0
    bad = subprocess.run([sys.executable, "-m", "pipelines", "size", "--chip", "H100", "--model", "Llama-3.1-70B",
                          "--input-tokens-per-day", "lots", "--output-tokens-per-day", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'lots' is not a number" in bad.stderr
