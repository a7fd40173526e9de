"""The demand-to-hardware model: hand-computed rooflines, memory minimums, calibration, properties."""


import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configuration.assumptions import load_assumptions, load_configuration
from hardware.fleet import FLEET_ASSUMPTIONS, ScenarioError, parse_scenarios
from hardware.roofline import Chip, LlmSpec, chips_per_replica, throughput
from tests.conftest import ASSUMPTIONS, typed_assumptions, typed_scenarios

CHIP = Chip("toy", "gpu", bf16_tflops=1000, mem_gb=1000, mem_tbps=1.0, tdp_w=1000, unit_price_usd=10_000, h100e=0.5)
DENSE10 = LlmSpec("dense10", 10, 10, n_layers=40, kv_bytes_per_token_bf16=100_000, n_heads=32, head_dim=128)


def test_dense_model_plain_roofline_by_hand():
    r = throughput(CHIP, DENSE10, "bf16", input_tokens=1000, output_tokens=100, batch=1, kv=False,
                   attention=False, n_chips=1)
    # decode: 10e9 params x 2 bytes = 20 GB per step at 1 TB/s -> 0.02 s -> 50 tokens/s, memory-bound
    assert float(r["decode_tokens_per_s"]) == pytest.approx(50.0)
    assert str(r["decode_bound"]) == "memory"
    # prefill: 2 x 10e9 = 2e10 FLOP per token at 1e15 FLOP/s -> 50,000 tokens/s, compute-bound
    assert float(r["prefill_tokens_per_s"]) == pytest.approx(50_000.0)
    assert str(r["prefill_bound"]) == "compute"


def test_dense_model_with_kv_and_attention_by_hand():
    r = throughput(CHIP, DENSE10, "bf16", input_tokens=1000, output_tokens=100, batch=1, n_chips=1)
    context = 1000 + 100 / 2  # decode context: prompt plus half the output
    step_bytes = 20e9 + context * 100_000
    assert float(r["decode_tokens_per_s"]) == pytest.approx(1e12 / step_bytes)
    # prefill: 2N + 2 x layers x (prompt / 2) x width per token (Kaplan et al.)
    flops = 2e10 + 2 * 40 * 500 * 32 * 128
    assert float(r["prefill_tokens_per_s"]) == pytest.approx(1e15 / flops)
    # batch 8: weights read once, KV per sequence
    r8 = throughput(CHIP, DENSE10, "bf16", 1000, 100, batch=8, n_chips=1)
    assert float(r8["decode_tokens_per_s"]) == pytest.approx(8 * 1e12 / (20e9 + 8 * context * 100_000))


def test_moe_reads_touched_experts_and_computes_on_active():
    moe = LlmSpec("moe", 671, 37, n_layers=61, kv_bytes_per_token_bf16=70_272, n_heads=128, head_dim=576,
                n_experts=256, experts_active=8)
    shared, per_expert = moe.expert_split()
    assert shared + 256 * per_expert == pytest.approx(671e9)
    assert shared + 8 * per_expert == pytest.approx(37e9)
    # one token touches 8 of 256 experts: reads exactly the active weights
    assert float(moe.weight_bytes_read("fp8", 1)) == pytest.approx(37e9)
    # a batch of 64 touches 1 - (1 - 8/256)^64 of the experts
    coverage = 1 - (1 - 8 / 256) ** 64
    assert float(moe.weight_bytes_read("fp8", 64)) == pytest.approx(shared + 256 * per_expert * coverage)
    r = throughput(CHIP, moe, "fp8", 1000, 100, batch=1, kv=False, attention=False, n_chips=1)
    assert float(r["decode_tokens_per_s"]) == pytest.approx(1e12 / 37e9)  # 37 GB at fp8 per token
    # prefill of 1,000 prompt tokens touches essentially every expert: 671 GB streamed (0.67 s) is
    # slower than 2 x 37e9 x 1,000 FLOP at 1e15 FLOP/s (0.074 s), so this toy chip is memory-bound
    touched = float(moe.weight_bytes_read("fp8", 1000))
    assert touched == pytest.approx(671e9, rel=1e-6)
    assert float(r["prefill_tokens_per_s"]) == pytest.approx(1000 / (touched / 1e12))
    assert str(r["prefill_bound"]) == "memory"


def test_memory_minimum_sram_wafer_and_cpu():
    llama70 = LlmSpec("l70", 70, 70, 80, 327_680, n_heads=64, head_dim=128)
    groq = Chip("Groq", "lpu", 188, 750, sram_mb=230, sram_tbps=80)
    wafer = Chip("WSE-3", "wafer_scale", 125_000, sram_mb=44_000, sram_tbps=21_000)
    h100 = Chip("H100", "gpu", 989.4, 1979, mem_gb=80, mem_tbps=3.35)
    xeon = Chip("Xeon", "cpu", 262, 524, mem_gb=1536, mem_tbps=0.845)
    assert float(chips_per_replica(groq, llama70, "fp8", 1, 0, kv=False)) == 305  # 70 GB / 230 MB
    assert float(chips_per_replica(wafer, llama70, "fp8", 1, 0, kv=False)) == 2
    assert float(chips_per_replica(h100, llama70, "fp8", 1, 0, kv=False)) == 1
    # with KV for 16 sequences of 8k tokens at fp8: 70 GB + 16 x 8192 x 163,840 B = 91.5 GB -> 2 H100
    assert float(chips_per_replica(h100, llama70, "fp8", 16, 8192)) == 2
    assert float(chips_per_replica(xeon, llama70, "fp8", 1, 0, kv=False)) == 1
    # SRAM decode: a replica of 305 chips streams from 305 x 80 TB/s of SRAM
    r = throughput(groq, llama70, "fp8", 1000, 100, batch=1, kv=False, attention=False)
    assert float(r["decode_tokens_per_s"]) == pytest.approx(305 * 80e12 / 70e9)
    # CPU decode reads from DDR at 0.845 TB/s: about 12 tokens/s at batch 1
    r = throughput(xeon, llama70, "fp8", 1000, 100, batch=1, kv=False, attention=False)
    assert float(r["decode_tokens_per_s"]) == pytest.approx(0.845e12 / 70e9)


def _assumptions():
    return load_configuration(ASSUMPTIONS).rows()


def _point(frame: pl.DataFrame, **overrides) -> dict:
    values = dict(frame.select("name", "value").iter_rows())
    values.update(overrides)
    return {n: np.array([float(values[n])]) for n in FLEET_ASSUMPTIONS}


def test_invalid_scenarios_give_clear_errors():
    config = load_assumptions(ASSUMPTIONS)
    chips = {"B200": Chip("B200", "gpu", 2500, 5000, mem_gb=186, mem_tbps=8, tdp_w=1200, unit_price_usd=1, h100e=2.5),
             "NoPrice": Chip("NoPrice", "gpu", 100, mem_gb=10, mem_tbps=1, tdp_w=100, h100e=0.1)}
    good = {"x": {"segments": {"a": {"prefill": {"B200": 1.0}, "decode": {"B200": 1.0}}}}}
    assert set(parse_scenarios(typed_scenarios(good), chips, ["a"])) == {"x"}
    cases = [
        ({"x": {"segments": {"a": {"prefill": {"B200": 0.6}, "decode": {"B200": 1.0}}}}}, "sum to 0.6"),
        ({"x": {"segments": {"a": {"prefill": {"Z9": 1.0}, "decode": {"B200": 1.0}}}}}, "unknown chip 'Z9'"),
        ({"x": {"segments": {"a": {"prefill": {"B200": 1.0}}}}}, "phase 'decode'"),
        ({"x": {"segments": {}}}, "segment 'a' is missing"),
        ({"x": {"precision": "int3", "segments": good["x"]["segments"]}}, "precision"),
        ({"x": {"segments": {"a": {"prefill": {"NoPrice": 1.0}, "decode": {"B200": 1.0}}}}}, "unit_price_usd"),
    ]
    for raw, message in cases:
        with pytest.raises(ScenarioError, match=message):
            parse_scenarios(typed_scenarios(raw), chips, ["a"])
    assert set(config["scenarios"]) >= {"gpu_centric", "three_layer", "china_domestic", "pd_disaggregated"}


def test_every_assumption_has_unit_value_and_rationale(tmp_path):
    frame = _assumptions()
    assert frame.height > 20
    assert frame.filter(pl.col("rationale").str.len_chars() < 20).height == 0
    assert frame.filter((pl.col("low") > pl.col("value")) | (pl.col("value") > pl.col("high"))).height == 0
    broken = tmp_path / "assumptions.yaml"
    text = ASSUMPTIONS.read_text()
    start = text.index("\n  pue:")
    broken.write_text(text[:start] + text[start:].replace("    rationale:", "    note:", 1))
    with pytest.raises(ValueError, match="fleet.pue"):
        load_assumptions(broken)


def test_throughput_cli_json_and_input_checks():
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pipelines", "throughput", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    proc = cli("--chip", "Groq LPU v1", "--model", "meta-llama/llama-3.3-70b-instruct", "--precision", "fp8",
               "--batch", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "Llama-3.1-70B" and out["min_chips_per_replica"] > 300
    assert "slug pattern" in out["resolved"]["model"]["how"]
    # a pipelined SRAM replica: per-user speed in the hundreds (published: ~300 tokens/s), not 300,000
    assert 100 < out["decode"]["tokens_per_s_per_user"] < 1500
    assert out["decode"]["tokens_per_s_per_chip"] == pytest.approx(
        out["decode"]["tokens_per_s_per_replica"] / out["replica_chips"])
    fp4 = json.loads(cli("--chip", "H100", "--model", "Llama-3.1-70B", "--precision", "fp4").stdout)
    assert any("no fp4 peak" in n for n in fp4["notes"])
    for bad, message in ((("--batch", "0"), "--batch 0 is out of range"), (("--input-tokens", "-5"), "--input-tokens"),
                         (("--mfu", "5"), "--mfu 5 is out of range"), (("--model", "nope"), "unknown model 'nope'")):
        args = {"--chip": "H100", "--model": "Llama-3.1-70B"}
        args.update(dict([bad]))
        proc = cli(*[x for kv in args.items() for x in kv])
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
        assert proc.stdout == ""


_SLUG = st.text(alphabet="aB%_.*?[]-/\\", max_size=8)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="aAbB.*?[]-/\\", max_size=8), pattern=_SLUG)
def test_the_python_slug_rule_is_duckdbs_like(text, pattern):
    """hardware/specs.like and the SQL models' `lower(slug) like lower(pattern)` agree, on the characters
    that are wildcards in one matcher and literal in another (* ? [ ] . \\)."""
    import duckdb

    from hardware.specs import like

    want = duckdb.execute("select lower(?) like lower(?)", [text, pattern]).fetchone()[0]
    assert like(text, pattern) == want


def test_row_percentiles_equal_the_per_row_summary_and_leave_nan_draws_out():
    """The marts' p5/median/p95 are taken for all rows in one call (hardware.stats.row_percentiles); they must
    be the figures `percentiles` gives row by row, with NaN draws left out of their row."""
    from hardware.stats import percentiles, row_percentiles, stack_draws

    rng = np.random.default_rng(7)
    rows = [rng.lognormal(3, 1, 64) for _ in range(5)] + [2.5]  # a scalar is one value in every draw
    m = stack_draws(rows, 64)
    m[2, :10] = np.nan
    m[3, :] = np.nan
    p5, median, p95 = row_percentiles(m)
    for i in (0, 1, 4, 5):
        assert np.allclose((p5[i], median[i], p95[i]), percentiles(m[i]), rtol=1e-12)
    assert np.allclose((p5[2], median[2], p95[2]), percentiles(m[2, 10:]), rtol=1e-12)
    assert np.isnan([p5[3], median[3], p95[3]]).all()
    assert p5[5] == median[5] == p95[5] == 2.5


def test_the_values_the_model_ran_with_name_a_measured_override():
    """marts.assumptions_used (issue 29): call-log shares that replace the file's workload shares are recorded
    with their source, beside the file's value; untouched assumptions say they came from the file."""
    from configuration.assumptions import load_configuration
    from hardware.build import MEASURED, assumptions_used, measured_workload

    config = typed_assumptions({"workload.output_share": (0.1, 0.2, 0.3), "workload.cached_share": (0.2, 0.3, 0.4),
                                "fleet.utilisation": (0.4, 0.6, 0.8)})
    mix = pl.DataFrame({"origin_group": ["call_logs"], "output_share": [0.35], "cached_share": [None]},
                       schema={"origin_group": pl.Utf8, "output_share": pl.Float64, "cached_share": pl.Float64})
    used = assumptions_used(config, measured_workload(config, mix))
    got = {r["name"]: r for r in used.iter_rows(named=True)}
    assert got["workload.output_share"]["value"] == 0.35 and got["workload.output_share"]["file_value"] == 0.2
    assert got["workload.output_share"]["value_source"] == MEASURED and got["workload.output_share"]["high"] == 0.35
    assert got["workload.cached_share"]["value_source"] == "assumptions file"
    assert got["fleet.utilisation"]["value"] == 0.6 and got["fleet.utilisation"]["value_source"] == "assumptions file"
    # the typed configuration itself is left as the file gave it; the copy the fleet runs with holds the measurement
    assert config.workload.output_share.value == 0.2
    assert set(got) == set(load_configuration(ASSUMPTIONS).rows()["name"])  # every assumption, as meta.assumptions


def test_an_optional_key_left_out_of_the_file_takes_the_schema_default(tmp_path):
    """Defaults live once, in configuration/schema.py (issue 29): the validated configuration carries them for
    the optional keys a file leaves out, and the libraries, which take the typed object, write none of their own."""
    import yaml

    from configuration.assumptions import load_configuration
    from configuration.schema import Scenario, Supply

    tree = yaml.safe_load(ASSUMPTIONS.read_text())
    del tree["supply"]["spend_check_designer"], tree["supply"]["margin_precision"]
    tree["scenarios"]["gpu_centric"].pop("precision", None)
    path = tmp_path / "assumptions.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    configuration = load_configuration(path)
    data = configuration.data
    assert data["supply"]["spend_check_designer"] == Supply.model_fields["spend_check_designer"].default == "Nvidia"
    assert data["supply"]["margin_precision"] == Supply.model_fields["margin_precision"].default
    assert data["scenarios"]["gpu_centric"]["precision"] == Scenario.model_fields["precision"].default
    # the typed object the hardware library reads (parse_scenarios takes spec.precision as it is)
    assert configuration.model.scenarios["gpu_centric"].precision == Scenario.model_fields["precision"].default
    # keys the file has keep the file's values
    assert data["supply"]["cowos_packager"] == tree["supply"]["cowos_packager"]


def test_run_settings_sit_apart_from_modelling_assumptions_and_every_leaf_has_a_source(tmp_path):
    """Issue 29: draws, origins, tolerances and report levels are run settings (kind 'setting' in
    meta.assumptions, a value and no range); the modelling assumptions are kind 'assumption'; a leaf without a
    source, or a setting given a range, is refused naming the key."""
    import yaml

    from configuration.assumptions import AssumptionsError, load_configuration

    rows = load_configuration(ASSUMPTIONS).rows()
    kind = dict(rows.select("name", "kind").iter_rows())
    assert kind["fleet.mc_draws"] == kind["forecast.backtest_origins"] == kind["supply.share_tolerance"] == "setting"
    assert kind["fleet.utilisation"] == kind["workload.input_tokens"] == "assumption"
    tree = yaml.safe_load(ASSUMPTIONS.read_text())
    tree["fleet"]["mc_draws"].update(low=100, high=1000)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    with pytest.raises(AssumptionsError, match=r"'fleet.mc_draws'.*run setting"):
        load_configuration(tmp_path / "a.yaml")
    tree = yaml.safe_load(ASSUMPTIONS.read_text())
    tree["fleet"]["utilisation"]["source"] = " "
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    with pytest.raises(AssumptionsError, match=r"'fleet.utilisation'.*has no source"):
        load_configuration(tmp_path / "b.yaml")


def test_every_modelling_assumption_states_its_range_and_definitions_take_none(tmp_path):
    """Issue 29: the schema requires a range on every modelling assumption (kind 'assumption', low < high);
    a definition (the H100e's 8-bit throughput) takes a value and no range; a modelling
    leaf without a range is refused naming the key."""
    import yaml

    from configuration.assumptions import AssumptionsError, load_configuration

    rows = load_configuration(ASSUMPTIONS).rows()
    kind = dict(rows.select("name", "kind").iter_rows())
    assert kind["h100e.h100_8bit_tops"] == "definition"
    modelling = rows.filter(pl.col("kind") == "assumption")
    assert modelling.height > 40
    assert modelling.filter(pl.col("low") >= pl.col("high"))["name"].to_list() == []
    tree = yaml.safe_load(ASSUMPTIONS.read_text())
    del tree["serving"]["max_batch_per_chip"]["low"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    with pytest.raises(AssumptionsError, match=r"'serving.max_batch_per_chip'.*state its range"):
        load_configuration(tmp_path / "a.yaml")
    tree = yaml.safe_load(ASSUMPTIONS.read_text())
    tree["h100e"]["h100_8bit_tops"].update(low=1900, high=2000)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    with pytest.raises(AssumptionsError, match=r"'h100e.h100_8bit_tops'.*definition"):
        load_configuration(tmp_path / "b.yaml")


def test_the_typed_configuration_gives_every_assumption_as_meta_assumptions_records_it():
    """The libraries read assumptions from the typed configuration (issue 29: configuration one way), the
    warehouse from meta.assumptions' rows: for every row, the typed entry's (low, value, high) is the row's,
    including a leaf given by its range alone (value = the midpoint)."""
    from configuration.assumptions import load_configuration
    from configuration.schema import Leaf

    configuration = load_configuration(ASSUMPTIONS)
    rows = configuration.rows()
    assert rows.height > 50
    for name, low, value, high in rows.select("name", "low", "value", "high").iter_rows():
        node = configuration.model
        for part in name.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        assert node.span() == pytest.approx((low, value, high)), name
    ranged = Leaf(low=2.0, high=6.0, unit="x", rationale="r", source="s")
    assert ranged.point == 4.0 and ranged.span() == (2.0, 4.0, 6.0)
    # a copy with other values is checked as the file is, and leaves the file's object alone
    moved = configuration.model.with_values({"fleet.utilisation": (0.5, 0.6, 0.7), "fleet.mc_draws": (50, 50, 50)})
    assert moved.quantity("fleet.utilisation").span() == (0.5, 0.6, 0.7) and moved.fleet.mc_draws.point == 50
    assert configuration.model.quantity("fleet.mc_draws").point == rows.filter(pl.col("name") == "fleet.mc_draws")["value"][0]
    with pytest.raises(ValueError, match="low <= value <= high"):
        configuration.model.with_values({"fleet.utilisation": (0.9, 0.5, 0.6)})
    with pytest.raises(KeyError, match="fleet.utilisaton"):
        configuration.model.quantity("fleet.utilisaton")
