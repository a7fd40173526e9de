"""The input-file contracts: one entry per source file in the data directory.

This module is the single place that says what a user's own file must look like. Each
`Source` lists its columns in file order with their DuckDB types, which columns must be
present on every row, the natural key, which quantities may not be negative, and the
allowed values of categorical columns. The raw table is named after the file stem
(`raw.<stem>`). README.md ("Bring your own data") documents the same contracts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE_ID = "VARCHAR"
CONFIDENCE_VALUES = ("high", "medium", "low")


@dataclass(frozen=True)
class Source:
    stem: str  # file is <stem>.csv; raw table is raw.<stem>
    description: str
    columns: dict[str, str]  # column -> DuckDB type, in file order
    key: tuple[str, ...]
    required: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    observed: str | None = None  # date column whose newest value the freshness check reads
    # column -> ((stem, column), ...): its values must appear in one of those columns of other sources
    # (read from the same data directory), e.g. a shipment's chip must be a spec row or an alias
    references: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # point-in-time runs (`run --as-of DATE`): SQL expression over a row giving the date it became known;
    # rows known after the as-of date are left out of raw.<stem>. None = reference data, always loaded.
    # Every dated source accepts an optional `published_on` column (DATE) for figures published after
    # the period they describe (or projections published before it); `known_on` falls back to it first.
    known_on: str | None = None
    # (low, value, high) column triples that must be ordered where filled, and columns that are fractions (<= 1)
    ordered: tuple[tuple[str, str, str], ...] = ()
    fractions: tuple[str, ...] = ()

    @property
    def optional(self) -> dict[str, str]:
        """Columns a file may add at its end: `published_on` on every dated source."""
        return {"published_on": "DATE"} if self.known_on and "published_on" not in self.columns else {}

    @property
    def known_on_sql(self) -> str | None:
        if not self.known_on:
            return None
        return self.known_on if "published_on" in self.columns else f"coalesce(published_on, {self.known_on})"

    @property
    def file_name(self) -> str:
        return f"{self.stem}.csv"

    @property
    def table(self) -> str:
        return f"raw.{self.stem}"


TOKEN_UNITS = (
    "tokens_per_minute",
    "tokens_per_hour",
    "tokens_per_day",
    "tokens_per_week",
    "tokens_per_month",
    "tokens_per_quarter",
    "tokens_per_half_year",
    "tokens_per_year",
)
TOKEN_BASES = ("average", "total", "peak", "run_rate")
CHIP_CLASSES = ("gpu", "tpu", "asic", "domestic_asic", "lpu", "wafer_scale", "cpu")
SUPPLIER_ROLES = ("designer", "design_partner", "foundry", "advanced_packaging", "hbm")
ORIGINS = ("cn", "us", "eu", "other", "unknown")

SOURCES: tuple[Source, ...] = (
    Source(
        stem="token_volume_observations",
        description="token volumes disclosed by platforms, each in its own unit and basis",
        columns={
            "observed_on": "DATE",
            "platform": "VARCHAR",
            "segment": "VARCHAR",
            "value": "DOUBLE",
            "unit": "VARCHAR",
            "basis": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("observed_on", "platform", "segment", "unit", "basis"),
        required=("observed_on", "platform", "segment", "value", "unit", "basis", "source_id", "confidence"),
        non_negative=("value",),
        allowed={"unit": TOKEN_UNITS, "basis": TOKEN_BASES, "confidence": CONFIDENCE_VALUES},
        observed="observed_on",
        known_on="observed_on",
    ),
    Source(
        stem="platform_revenue_run_rate",
        description="annualised revenue run rates of platforms that publish no token counts (turned into estimated "
        "token volumes with the price per token of config/assumptions.yaml forecast.estimated_components)",
        columns={
            "observed_on": "DATE",
            "platform": "VARCHAR",
            "run_rate_usd": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("observed_on", "platform"),
        required=("observed_on", "platform", "run_rate_usd", "source_id", "confidence"),
        non_negative=("run_rate_usd",),
        allowed={"confidence": CONFIDENCE_VALUES},
        observed="observed_on",
        known_on="observed_on",
    ),
    Source(
        stem="platform_usage",
        description="usage of platforms that publish no token counts (prompts per day, monthly active users), turned "
        "into estimated token volumes with the tokens per unit of config/assumptions.yaml forecast.estimated_components",
        columns={
            "observed_on": "DATE",
            "platform": "VARCHAR",
            "quantity": "DOUBLE",
            "unit": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("observed_on", "platform"),
        required=("observed_on", "platform", "quantity", "unit", "source_id", "confidence"),
        non_negative=("quantity",),
        allowed={"confidence": CONFIDENCE_VALUES,
                 "unit": ("prompts_per_day", "monthly_active_users", "weekly_active_users", "daily_active_users")},
        observed="observed_on",
        known_on="observed_on",
    ),
    Source(
        stem="market_outlooks",
        description="published outlooks for a forecast series in a year (e.g. a memory maker's HBM market outlook), "
        "with a low/high range: the forecast of that series is pulled toward them (forecasts/bounds.apply_outlooks)",
        columns={
            "series_id": "VARCHAR",
            "year": "INTEGER",
            "value": "DOUBLE",
            "low": "DOUBLE",
            "high": "DOUBLE",
            "unit": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
            "published_on": "DATE",
        },
        key=("series_id", "year"),
        required=("series_id", "year", "value", "low", "high", "unit", "source_id", "confidence", "published_on"),
        non_negative=("value", "low", "high"),
        allowed={"confidence": CONFIDENCE_VALUES},
        ordered=(("low", "value", "high"),),
        known_on="published_on",
    ),
    Source(
        stem="chip_shipments_quarterly",
        description="accelerator unit shipments per calendar quarter with p5/median/p95 (Epoch AI)",
        columns={
            "quarter_start": "DATE",
            "designer": "VARCHAR",
            "chip": "VARCHAR",
            "units_p5": "DOUBLE",
            "units_median": "DOUBLE",
            "units_p95": "DOUBLE",
            "incomplete": "BOOLEAN",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
        },
        key=("quarter_start", "designer", "chip"),
        required=("quarter_start", "designer", "chip", "units_median", "source_id", "confidence"),
        non_negative=("units_p5", "units_median", "units_p95"),
        allowed={"confidence": CONFIDENCE_VALUES},
        observed="quarter_start",
        known_on="quarter_start + interval 3 month - interval 1 day",  # a quarter is known at its end
        references={"chip": (("accelerator_specs", "chip"), ("chip_aliases", "alias"))},
    ),
    Source(
        stem="chip_aliases",
        description="shipment chip names that resolve to another spec row (e.g. H100/H200 -> H100)",
        columns={"alias": "VARCHAR", "chip": "VARCHAR", "note": "VARCHAR"},
        key=("alias",),
        required=("alias", "chip"),
    ),
    Source(
        stem="accelerator_specs",
        description="per-chip peak throughput, memory, SRAM, TDP and unit price",
        columns={
            "chip": "VARCHAR",
            "designer": "VARCHAR",
            "chip_class": "VARCHAR",
            "release_date": "DATE",
            "china_market": "BOOLEAN",
            "bf16_tflops": "DOUBLE",
            "fp8_tflops": "DOUBLE",
            "fp4_tflops": "DOUBLE",
            "mem_type": "VARCHAR",
            "mem_gb": "DOUBLE",
            "mem_tbps": "DOUBLE",
            "sram_mb": "DOUBLE",
            "sram_tbps": "DOUBLE",
            "tdp_w": "DOUBLE",
            "unit_price_usd": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("chip",),
        required=("chip", "designer", "chip_class", "china_market", "source_id", "confidence"),
        non_negative=(
            "bf16_tflops", "fp8_tflops", "fp4_tflops", "mem_gb", "mem_tbps",
            "sram_mb", "sram_tbps", "tdp_w", "unit_price_usd",
        ),
        allowed={"chip_class": CHIP_CLASSES, "confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="vendor_revenue_quarterly",
        description="vendor revenue per fiscal quarter and segment, USD",
        columns={
            "company": "VARCHAR",
            "fiscal_quarter": "VARCHAR",
            "period_start": "DATE",
            "period_end": "DATE",
            "segment": "VARCHAR",
            "revenue_usd": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
        },
        key=("company", "fiscal_quarter", "segment"),
        required=("company", "fiscal_quarter", "period_start", "period_end", "segment", "revenue_usd",
                  "source_id", "confidence"),
        non_negative=("revenue_usd",),
        allowed={"confidence": CONFIDENCE_VALUES},
        observed="period_end",
        known_on="period_end",
    ),
    Source(
        stem="packaging_and_supply_metrics",
        description="advanced packaging revenue and shares, CoWoS capacity, HBM market size and shares",
        columns={
            "period_start": "DATE",
            "period_end": "DATE",
            "company": "VARCHAR",
            "metric": "VARCHAR",
            "segment": "VARCHAR",
            "value": "DOUBLE",
            "unit": "VARCHAR",
            "currency": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("period_start", "period_end", "company", "metric", "segment"),
        required=("period_start", "period_end", "company", "metric", "segment", "value", "unit",
                  "source_id", "confidence"),
        non_negative=("value",),
        allowed={
            "unit": ("amount", "ratio", "wafers_per_month"),
            "currency": ("USD", "CNY", "TWD"),
            "confidence": CONFIDENCE_VALUES,
        },
        observed="period_end",
        known_on="period_end",
    ),
    Source(
        stem="fx_rates_annual",
        description="annual average exchange rates, USD per unit of currency",
        columns={
            "year": "INTEGER",
            "currency": "VARCHAR",
            "usd_per_unit": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
        },
        key=("year", "currency"),
        required=("year", "currency", "usd_per_unit", "source_id", "confidence"),
        non_negative=("usd_per_unit",),
        allowed={"confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="model_catalog",
        description="served models: parameters, attention shape, KV-cache bytes per token, origin",
        columns={
            "model": "VARCHAR",
            "developer": "VARCHAR",
            "origin": "VARCHAR",
            "open_weights": "BOOLEAN",
            "total_params_b": "DOUBLE",
            "active_params_b": "DOUBLE",
            "n_layers": "INTEGER",
            "hidden_size": "INTEGER",
            "n_heads": "INTEGER",
            "n_kv_heads": "INTEGER",
            "head_dim": "INTEGER",
            "n_experts": "INTEGER",
            "experts_active": "INTEGER",
            "kv_bytes_per_token_bf16": "DOUBLE",
            "attention": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("model",),
        required=("model", "origin", "total_params_b", "active_params_b", "n_layers",
                  "kv_bytes_per_token_bf16", "source_id", "confidence"),
        non_negative=("total_params_b", "active_params_b", "n_layers", "hidden_size", "n_heads",
                      "n_kv_heads", "head_dim", "n_experts", "experts_active", "kv_bytes_per_token_bf16"),
        allowed={"origin": ORIGINS, "confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="model_slug_map",
        description="provider model slugs (SQL LIKE patterns, first match in file order wins) -> catalog model",
        columns={"slug_pattern": "VARCHAR", "model": "VARCHAR", "confidence": "VARCHAR", "note": "VARCHAR"},
        key=("slug_pattern",),
        required=("slug_pattern", "model", "confidence"),
        allowed={"confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="model_authors",
        description="model author (slug prefix) -> company and origin",
        columns={"author": "VARCHAR", "company": "VARCHAR", "origin": "VARCHAR"},
        key=("author",),
        required=("author", "origin"),
        allowed={"origin": ORIGINS},
    ),
    Source(
        stem="openrouter_weekly_top_models",
        description="OpenRouter's top models per week: total tokens, and the split where published",
        columns={
            "week_start": "DATE",
            "week_end": "DATE",
            "rank": "INTEGER",
            "model_slug": "VARCHAR",
            "model_name": "VARCHAR",
            "author": "VARCHAR",
            "total_tokens": "DOUBLE",
            "prompt_tokens": "DOUBLE",
            "completion_tokens": "DOUBLE",
            "reasoning_tokens": "DOUBLE",
            "cached_tokens": "DOUBLE",
            "request_count": "DOUBLE",
            "is_free": "BOOLEAN",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
        },
        key=("week_start", "model_slug"),
        required=("week_start", "week_end", "model_slug", "author", "total_tokens", "source_id", "confidence"),
        non_negative=("rank", "total_tokens", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                      "cached_tokens", "request_count"),
        allowed={"confidence": CONFIDENCE_VALUES},
        observed="week_end",
        known_on="week_end",
    ),
    Source(
        stem="supply_chain",
        description="how a chip's price splits across suppliers and roles (USD per chip; an editable assumption)",
        columns={
            "chip": "VARCHAR",
            "supplier": "VARCHAR",
            "role": "VARCHAR",
            "usd_per_chip": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("chip", "supplier", "role"),
        required=("chip", "supplier", "role", "source_id", "confidence"),
        non_negative=("usd_per_chip",),
        allowed={"role": SUPPLIER_ROLES, "confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="throughput_measurements",
        description="published serving throughput and per-user speed measurements (calibration of the serving model)",
        columns={
            "measurement_id": "VARCHAR",
            "chip": "VARCHAR",
            "chips": "DOUBLE",
            "model": "VARCHAR",
            "precision": "VARCHAR",
            "engine": "VARCHAR",
            "phase": "VARCHAR",
            "prompt_tokens": "DOUBLE",
            "output_tokens": "DOUBLE",
            "concurrency": "DOUBLE",
            "user_tokens_per_s_target": "DOUBLE",
            "tokens_per_s_per_chip": "DOUBLE",
            "tokens_per_s_per_user": "DOUBLE",
            "source_id": SOURCE_ID,
            "published_on": "DATE",
            "in_fit": "BOOLEAN",
            "note": "VARCHAR",
            "kv_precision": "VARCHAR",
        },
        key=("measurement_id",),
        required=("measurement_id", "chip", "model", "precision", "phase", "source_id", "published_on", "in_fit"),
        non_negative=("chips", "prompt_tokens", "output_tokens", "concurrency", "user_tokens_per_s_target",
                      "tokens_per_s_per_chip", "tokens_per_s_per_user"),
        allowed={"precision": ("bf16", "fp8", "fp4"), "phase": ("prefill", "decode", "mixed"),
                 "kv_precision": ("bf16", "fp8", "fp4")},
        references={"chip": (("accelerator_specs", "chip"),), "model": (("model_catalog", "model"),)},
        known_on="published_on",
    ),
    Source(
        stem="chip_packaging",
        description="per chip: supply chain region, 2.5D packaging, accelerator packages per CoWoS wafer, HBM "
                    "stacks, and for domestic chips logic dies per package and good dies per wafer",
        columns={
            "chip": "VARCHAR",
            "supply_region": "VARCHAR",
            "packaging": "VARCHAR",
            "packages_per_wafer": "DOUBLE",
            "hbm_stacks": "DOUBLE",
            "dies_per_package": "DOUBLE",
            "good_dies_per_wafer": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("chip",),
        required=("chip", "supply_region", "packaging", "source_id", "confidence"),
        non_negative=("packages_per_wafer", "hbm_stacks", "dies_per_package", "good_dies_per_wafer"),
        allowed={"supply_region": ("rest", "china"), "confidence": CONFIDENCE_VALUES},
        references={"chip": (("accelerator_specs", "chip"),)},
    ),
    Source(
        stem="chip_availability",
        description="per chip and region: the quarters in which it ships (first, last or open), why the window "
                    "opens or closes (launch, end of life, export control, roadmap); the fleet buys only inside it",
        columns={
            "chip": "VARCHAR",
            "region": "VARCHAR",
            "first_quarter": "DATE",
            "last_quarter": "DATE",
            "reason": "VARCHAR",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("chip", "region"),
        required=("chip", "region", "first_quarter", "reason", "source_id", "confidence"),
        allowed={"region": ("rest", "china"), "reason": ("launch", "end_of_life", "export_control", "roadmap"),
                 "confidence": CONFIDENCE_VALUES},
    ),
    Source(
        stem="supply_capacity",
        description="capacity of the resources that bound accelerator output (CoWoS, HBM, HBM stock), reported "
                    "and analysts' projections, each as a low/value/high range",
        columns={
            "period_end": "DATE",
            "region": "VARCHAR",
            "resource": "VARCHAR",
            "unit": "VARCHAR",
            "basis": "VARCHAR",
            "low": "DOUBLE",
            "value": "DOUBLE",
            "high": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("period_end", "region", "resource"),
        required=("period_end", "region", "resource", "unit", "basis", "value", "source_id", "confidence"),
        non_negative=("low", "value", "high"),
        allowed={"region": ("rest", "china"), "basis": ("reported", "projection"),
                 "unit": ("wafers_per_month", "gb_per_year", "stacks"), "confidence": CONFIDENCE_VALUES},
        ordered=(("low", "value", "high"),),
        observed="period_end",
        known_on="period_end",
    ),
    Source(
        stem="api_prices",
        description="published API list prices per million input, cached input and output tokens, by provider and model",
        columns={
            "price_date": "DATE",
            "provider": "VARCHAR",
            "model": "VARCHAR",
            "input_usd_per_mtok": "DOUBLE",
            "cached_input_usd_per_mtok": "DOUBLE",
            "output_usd_per_mtok": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("price_date", "provider", "model"),
        required=("price_date", "provider", "model", "input_usd_per_mtok", "output_usd_per_mtok", "source_id",
                  "confidence"),
        non_negative=("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok"),
        allowed={"confidence": CONFIDENCE_VALUES},
        references={"model": (("model_catalog", "model"),)},
        observed="price_date",
        known_on="price_date",
    ),
    Source(
        stem="provider_margins",
        description="gross margins providers disclosed for serving a model, with the workload and cost basis they used",
        columns={
            "observed_on": "DATE",
            "provider": "VARCHAR",
            "model": "VARCHAR",
            "chip": "VARCHAR",
            "gross_margin": "DOUBLE",
            "output_share": "DOUBLE",
            "cached_share": "DOUBLE",
            "usd_per_chip_hour": "DOUBLE",
            "user_tokens_per_s": "DOUBLE",
            "source_id": SOURCE_ID,
            "confidence": "VARCHAR",
            "note": "VARCHAR",
        },
        key=("observed_on", "provider", "model"),
        required=("observed_on", "provider", "model", "chip", "gross_margin", "source_id", "confidence"),
        non_negative=("output_share", "cached_share", "usd_per_chip_hour", "user_tokens_per_s"),
        fractions=("gross_margin", "output_share", "cached_share"),
        allowed={"confidence": CONFIDENCE_VALUES},
        references={"model": (("model_catalog", "model"),), "chip": (("accelerator_specs", "chip"),)},
        known_on="observed_on",
    ),
)

SOURCES = SOURCES + (
    Source(
        stem="benchmark_name_map",
        description="names the benchmark feeds use (MLPerf accelerators, models and scenarios; InferenceX hardware "
                    "and models) mapped to the spec sheet's chips and the catalog's models, with each benchmark "
                    "model's workload (prompt and output tokens) and each scenario's per-user speed bound; SQL LIKE "
                    "patterns, case-insensitive, first match in file order wins",
        columns={
            "feed": "VARCHAR",
            "field": "VARCHAR",
            "pattern": "VARCHAR",
            "value": "VARCHAR",
            "prompt_tokens": "DOUBLE",
            "output_tokens": "DOUBLE",
            "user_tokens_per_s_target": "DOUBLE",
            "note": "VARCHAR",
        },
        key=("feed", "field", "pattern"),
        required=("feed", "field", "pattern", "value"),
        non_negative=("prompt_tokens", "output_tokens", "user_tokens_per_s_target"),
        allowed={"feed": ("mlperf", "inferencex"), "field": ("chip", "model", "scenario")},
    ),
)

SOURCES_BY_STEM = {s.stem: s for s in SOURCES}
