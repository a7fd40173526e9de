"""The schema of config/assumptions.yaml (pydantic), checked before a run starts (config/call_logs.yaml:
configuration/call_logs.py, with the same error messages).

Every section is a model that forbids unknown keys, so a misspelt key is an error naming the key, its
line and the nearest known key; a missing section or leaf, a wrong type or `low <= value <= high`
broken is an error naming the key and line. Structured sections (segments, scenarios) are checked for
shape here and for meaning by the hardware library (which names scenario, segment, phase and chip).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
import datetime as dt
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

STRICT = ConfigDict(extra="forbid")


class Quantity(BaseModel):
    """A numeric entry of the file: a value and/or a low/high range, its unit, rationale and source (the
    checks every kind shares: finite numbers, low <= value <= high, a rationale and a source)."""
    model_config = STRICT
    kind: ClassVar[str] = "assumption"  # meta.assumptions' kind
    value: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str
    rationale: str
    source: str = ""

    @model_validator(mode="after")
    def _range(self) -> "Quantity":
        for label in ("value", "low", "high"):
            v = getattr(self, label)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{label} {v!r} is not a finite number")
        if self.value is None and (self.low is None or self.high is None):
            raise ValueError("needs a value or both low and high")
        value = self.value if self.value is not None else (self.low + self.high) / 2
        low = value if self.low is None else self.low
        high = value if self.high is None else self.high
        if not low <= value <= high:
            raise ValueError(f"needs low <= value <= high (low {low:g}, value {value:g}, high {high:g})")
        if not self.rationale.strip():
            raise ValueError("has no rationale")
        if not self.source.strip():
            raise ValueError("has no source (a citation, a file of data/, or 'judgement' with the rationale)")
        return self

    def span(self) -> tuple[float, float, float]:
        """(low, value, high) as meta.assumptions records them: a missing value is the midpoint of low and
        high, a missing bound is the value (the rows of meta.assumptions: configuration.assumptions.flatten_assumptions)."""
        value = (self.low + self.high) / 2 if self.value is None else self.value
        return (value if self.low is None else self.low), value, (value if self.high is None else self.high)

    @property
    def point(self) -> float:
        return self.span()[1]


class Leaf(Quantity):
    """A modelling assumption: an uncertain quantity, so it states its range (low and high; the Monte Carlo
    draws, the sensitivity table and `whatif --set` use it) beside its value. meta.assumptions kind
    'assumption'."""

    @model_validator(mode="after")
    def _has_range(self) -> "Leaf":
        if self.low is None or self.high is None:
            raise ValueError("is a modelling assumption: state its range (low and high) with the value, and say "
                             "where the range comes from in the rationale")
        return self


class _Fixed(Quantity):
    @model_validator(mode="after")
    def _no_range(self) -> "_Fixed":
        if self.value is None or self.low is not None or self.high is not None:
            raise ValueError(f"is a {self.what}: give a value and no low/high range")
        return self


class Setting(_Fixed):
    """A run setting or a threshold (Monte Carlo draws, backtest origins, freshness limits, check tolerances,
    report levels): how the pipeline runs or flags, not an uncertain quantity of the model. A value and no
    range; meta.assumptions marks it kind 'setting'."""
    what: ClassVar[str] = "run setting or threshold"
    kind: ClassVar[str] = "setting"


class Definition(_Fixed):
    """A definition, not an estimate (the H100-equivalent's 8-bit throughput): a value and no range;
    meta.assumptions marks it kind 'definition'."""
    what: ClassVar[str] = "definition"
    kind: ClassVar[str] = "definition"


class H100e(BaseModel):
    model_config = STRICT
    h100_8bit_tops: Definition


class InstalledBase(BaseModel):
    model_config = STRICT
    service_life_years: Leaf


class Freshness(BaseModel):
    model_config = STRICT
    max_age_days: Setting
    lag_warn_days: Setting

    @model_validator(mode="after")
    def _positive(self) -> "Freshness":
        for name in ("max_age_days", "lag_warn_days"):
            value = getattr(self, name).value
            if (value or 0) <= 0:
                raise ValueError(f"{name} must be a positive number of days, not {value:g}")
        return self


class Composite(BaseModel):
    model_config = STRICT
    series_id: str
    components: list[str]


class Demand(BaseModel):
    model_config = STRICT
    halflife_years: Leaf
    growth_prior: Leaf
    disclosure_noise: Leaf
    growth_spread: Leaf
    anchor_halflife_years: Leaf
    panel_prefix: str = "openrouter_top10/"


class HierarchyEntry(BaseModel):
    model_config = STRICT
    total: str
    parts: list[str]
    scale: float = 1.0
    note: str = ""


class VintageBacktest(BaseModel):
    model_config = STRICT
    start: str
    step_months: int = 1


class EstimatedComponent(BaseModel):
    """A platform without token disclosures: revenue run rate / price per token, or usage x tokens per unit."""
    model_config = STRICT
    demand_class: str
    usd_per_million_tokens: Leaf | None = None
    tokens_per_unit: Leaf | None = None

    @model_validator(mode="after")
    def _one_method(self) -> "EstimatedComponent":
        if (self.usd_per_million_tokens is None) == (self.tokens_per_unit is None):
            raise ValueError("needs exactly one of usd_per_million_tokens (revenue method) or tokens_per_unit "
                             "(usage method)")
        return self


class Forecast(BaseModel):
    model_config = STRICT
    horizon_end_year: Setting
    backtest_origins: Setting
    min_backtest_obs: Setting
    fallback_sigma_per_year: Leaf
    sparse_irregular_sd: Leaf
    sparse_slope_sd_per_year: Leaf
    sparse_growth_halflife_years: Leaf
    composite_draws: Setting
    dense_min_points: Setting
    sparse_max_growth: Leaf
    global_demand: Composite
    composites: list[Composite] = []
    demand: Demand
    hierarchy: list[HierarchyEntry] = []
    vintage_backtest: VintageBacktest
    estimated_components: dict[str, EstimatedComponent] = {}

    @model_validator(mode="after")
    def _hierarchy_in_the_pooled_model(self) -> "Forecast":
        # reconciliation works on the pooled model's joint draws: token series and the OpenRouter panel
        for entry in self.hierarchy:
            for series in (entry.total, *entry.parts):
                if not series.startswith(("tokens/", self.demand.panel_prefix)):
                    raise ValueError(f"hierarchy series {series!r} is not a token series (tokens/...) nor a panel "
                                     f"series ({self.demand.panel_prefix}...): only those are reconciled")
        return self


class Hardware(BaseModel):
    model_config = STRICT
    user_speed_tokens_per_s: Leaf
    memory_usable_fraction: Leaf


class ServingAssumptions(BaseModel):
    model_config = STRICT
    mfu: Leaf
    mbu: Leaf
    layer_latency_us: Leaf
    hop_latency_us: Leaf
    scaleout_layer_latency_us: Leaf
    moe_prefill_efficiency: Leaf
    prefill_chunk_tokens: Leaf
    max_batch_per_chip: Leaf
    max_replica_chips: Leaf
    scaleup_chips: Leaf
    ep_layer_latency_us: Leaf
    kv_cache_bytes_per_value: Leaf
    max_moe_tokens_per_chip: Leaf
    scaleup_gbps: Leaf
    scaleout_gbps: Leaf


class Workload(BaseModel):
    model_config = STRICT
    input_tokens: Leaf
    output_share: Leaf
    cached_share: Leaf
    cache_hit_retention_without_ssd: Leaf
    agentic_share: Leaf


class Fleet(BaseModel):
    model_config = STRICT
    peak_to_average: Leaf
    festival_peak_to_average: Leaf
    workload_points: Setting
    utilisation: Leaf
    redundancy: Leaf
    pue: Leaf
    electricity_usd_per_mwh: Leaf
    mc_draws: Setting
    inference_share_of_installed_base: Leaf


class Cowos(BaseModel):
    model_config = STRICT
    packages_per_wafer: Leaf


class SupplierRevenue(BaseModel):
    model_config = STRICT
    series: str
    share_of: str | None = None
    rationale: str = ""


class Supply(BaseModel):
    model_config = STRICT
    flow_revenue_tolerance: Setting
    share_tolerance: Setting
    utilisation_overbuild: Setting
    inference_busy_share: Leaf
    all_in_cost_multiplier: Leaf
    margin_precision: str = "fp8"
    # the cross-checks of marts.cross_checks: whose spend is set against its revenue series, which supplier
    # packages CoWoS, which supplier stands for domestic 2.5D packaging (their series: supplier_revenue)
    spend_check_designer: str = "Nvidia"
    cowos_packager: str = "TSMC"
    domestic_packaging_supplier: str = "domestic OSAT (2.5D)"
    margin_chips: list[str] = []
    # supplier -> the reported revenue its annual inference purchases are compared with
    supplier_revenue: dict[str, SupplierRevenue] = {}


class CpuLayer(BaseModel):
    model_config = STRICT
    cpus_per_agentic_accelerator: Leaf


class ChipOverride(BaseModel):
    model_config = STRICT
    tdp_w: float | None = None
    unit_price_usd: float | None = None
    scaleup_chips: float | None = None
    scaleup_gbps: float | None = None
    rationale: str


class Segment(BaseModel):
    model_config = STRICT
    demand_series: str
    demand_fallback: str | None = None
    disclosed_series: str | None = None  # the disclosed-only part of demand_series (None: all of it)
    region: str
    model_mix: str | dict[str, float]
    model_mix_fallback: dict[str, float] | None = None
    model_mix_rationale: str = ""
    model_mix_source: str = ""


class ScenarioPeriod(BaseModel):
    """Shares from a quarter on: only the segments and placements named change."""
    model_config = STRICT
    from_: dt.date = Field(alias="from")
    placement: dict[str, dict[str, dict[str, float]]] = {}
    segments: dict[str, dict[str, dict[str, float]] | Literal["shipment_mix"]] = {}


class Scenario(BaseModel):
    model_config = STRICT
    label: str = ""
    summary: str = ""
    description: str = ""
    precision: str = "fp8"
    kv_cache_on_ssd: bool = False
    orchestration_cpu: str | None = None
    placement: dict[str, dict[str, dict[str, float]]] = {}
    # a segment: phase -> {chip: share}, or 'shipment_mix' (bought in the region's projected shipment mix)
    segments: dict[str, dict[str, dict[str, float]] | Literal["shipment_mix"]]
    periods: list[ScenarioPeriod] = []


class Report(BaseModel):
    model_config = STRICT
    change_threshold: Setting
    interactivity_reading: Setting
    interactivity_chat: Setting
    interactivity_agentic: Setting
    curve_models: list[str] = []
    # names the report needs from the rest of this file: nothing in reports/ hard-codes them
    headline_scenario: str
    class_chart_scenario: str | None = None
    estimated_series: str | None = None


class Assumptions(BaseModel):
    """The whole file; every section is required."""
    model_config = STRICT
    h100e: H100e
    installed_base: InstalledBase
    freshness: Freshness
    forecast: Forecast
    hardware: Hardware
    serving: ServingAssumptions
    workload: Workload
    fleet: Fleet
    cowos: Cowos
    supply: Supply
    cpu_layer: CpuLayer
    chip_overrides: dict[str, ChipOverride] = {}
    segments: dict[str, Segment]
    scenarios: dict[str, Scenario]
    report: Report

    @model_validator(mode="after")
    def _report_names(self) -> "Assumptions":
        for key in ("headline_scenario", "class_chart_scenario"):
            name = getattr(self.report, key)
            if name is not None and name not in self.scenarios:
                raise ValueError(f"report.{key} '{name}' is not a scenario (scenarios: {', '.join(self.scenarios)})")
        return self

    def quantity(self, name: str) -> Quantity:
        """The numeric entry at the dotted `name` (`fleet.utilisation`, the name meta.assumptions gives it): the
        Monte Carlo and the sensitivity table name the entries they move, and read them typed from here."""
        return self._locate(name)[2]

    def _locate(self, name: str) -> tuple[Any, str, Quantity]:
        """(the section holding `name`, its last part, its entry); a KeyError naming it when there is none."""
        *sections, leaf = name.split(".")
        parent: Any = self
        for part in sections:
            parent = _child(parent, part)
        entry = _child(parent, leaf)
        if not isinstance(entry, Quantity):
            raise KeyError(f"assumption '{name}' is not a numeric entry of the assumptions file")
        return parent, leaf, entry

    def with_values(self, spans: dict[str, tuple[float, float, float]]) -> "Assumptions":
        """A copy in which the named entries take the given (low, value, high), each checked as the file's
        entries are (low <= value <= high; a setting or definition takes low = value = high as its one value);
        this object is left as it is."""
        out = self.model_copy(deep=True)
        for name, (low, value, high) in spans.items():
            parent, leaf, entry = out._locate(name)
            fixed = isinstance(entry, _Fixed) and low == value == high
            fields = {"low": None, "value": float(value), "high": None} if fixed else \
                {"low": float(low), "value": float(value), "high": float(high)}
            replaced = type(entry).model_validate({**entry.model_dump(), **fields})
            if isinstance(parent, dict):
                parent[leaf] = replaced
            else:
                setattr(parent, leaf, replaced)
        return out

    def with_measured(self, values: dict[str, float]) -> "Assumptions":
        """A copy in which measurements replace the named entries' values (call-log workload shares), each
        range widened where needed to hold its measurement."""
        spans = {}
        for name, value in values.items():
            low, _, high = self.quantity(name).span()
            spans[name] = (min(low, value), value, max(high, value))
        return self.with_values(spans)


def _child(node: Any, part: str) -> Any:
    return node.get(part) if isinstance(node, dict) else getattr(node, part, None)


def entries(model: BaseModel, prefix: str = "") -> dict[str, Quantity]:
    """Every numeric entry of a typed section (or the whole file) by its dotted name (the names of
    meta.assumptions), in field order; entries inside named sections (forecast.estimated_components.<name>.*)
    included."""
    out: dict[str, Quantity] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        named = value.items() if isinstance(value, dict) else [("", value)]
        for key, child in named:
            path = f"{prefix}{name}.{key}" if key else prefix + name
            if isinstance(child, Quantity):
                out[path] = child
            elif isinstance(child, BaseModel):
                out.update(entries(child, path + "."))
    return out


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the schema allows at `loc` (the parent of an unknown key)."""
    node: Any = model
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[part].annotation
        else:
            return []
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the key at `loc` in the composed YAML (the deepest part that exists)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def with_defaults(data: Any, model: Any) -> Any:
    """`data` (the file's mapping) with the schema's default written in wherever the file leaves an optional
    key out, so that the libraries read every key without a default of their own: each default lives once,
    here. None defaults stay out (absent and null mean the same to the libraries), and every key the file
    has keeps the file's value and shape."""
    if isinstance(model, BaseModel) and isinstance(data, dict):
        out = dict(data)
        for name, field in type(model).model_fields.items():
            key = field.alias or name
            value = getattr(model, name)
            if key in out:
                out[key] = with_defaults(out[key], value)
            elif value is not None:
                out[key] = value.model_dump(by_alias=True, exclude_none=True) if isinstance(value, BaseModel) \
                    else value
        return out
    if isinstance(model, dict) and isinstance(data, dict):
        return {k: with_defaults(v, model[k]) if k in model else v for k, v in data.items()}
    if isinstance(model, list) and isinstance(data, list) and len(model) == len(data):
        return [with_defaults(d, m) for d, m in zip(data, model)]
    return data


def validate(data: dict, path: Path | str, text: str | None = None, schema: type[BaseModel] = Assumptions):
    """The typed file (`schema`: the assumptions by default), or a ValueError naming key, line and (for
    unknown keys) the nearest known key."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        root = yaml.compose(text) if text is not None else None
        messages = []
        # an unknown key first: a misspelling also makes the intended key 'missing'
        for err in sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden"):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(root, loc)
            where = f"{path}" + (f", line {line}" if line else "") + f": '{key}'"
            if err["type"] == "extra_forbidden":
                near = difflib.get_close_matches(str(loc[-1]), _known_keys(schema, loc[:-1]), n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                messages.append(f"{where} is not a known key{hint}")
            elif err["type"] == "missing":
                where = f"{path}" + (f", line {line}" if line else "") + f": '{key}'"
                messages.append(f"{where} is missing")
            else:
                messages.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise ValueError(messages[0] + (f" (and {len(messages) - 1} more problem(s))" if len(messages) > 1 else "")) \
            from None
