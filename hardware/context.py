"""What the serving model needs to answer one question (`tokens2chips throughput` / `size`), from frames and
the validated configuration (pure library: no files, no warehouse): the chips with their overrides, the models,
the slug map, the calibrated efficiencies (the published calibration when given, else fitted on the
measurements), the serving limits and the per-user speed target, from the typed configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from hardware.roofline import Chip, LlmSpec
from hardware.serving import Efficiency, Limits, calibrate, efficiencies_from, measurements_frame, priors_and_limits
from hardware.specs import chip_overrides, chips_from_frame, models_from_frame

if TYPE_CHECKING:
    from configuration.schema import Assumptions


@dataclass(frozen=True)
class ServingContext:
    chips: dict[str, Chip]
    models: dict[str, LlmSpec]
    slug_pairs: list[tuple[str, str]]
    efficiency: dict[str, Efficiency]
    limits: Limits
    user_speed_tokens_per_s: float  # the file's per-user speed target (hardware.user_speed_tokens_per_s)
    efficiency_source: str


def serving_context(config: Assumptions, specs: pl.DataFrame, catalog: pl.DataFrame, slugs: pl.DataFrame,
                    measurements: pl.DataFrame,
                    published: tuple[dict[str, Efficiency], str] | None = None) -> ServingContext:
    """`config` is the validated, typed configuration; `specs`,
    `catalog`, `slugs` and `measurements` are data/accelerator_specs.csv, model_catalog.csv, model_slug_map.csv
    and throughput_measurements.csv. `published`: (efficiencies, where from) of the warehouse's calibration,
    which the fleet marts used; without it the same fit runs on the measurements."""
    overrides = chip_overrides(config)
    chips = chips_from_frame(specs.with_columns(pl.lit(None, pl.Float64).alias("h100e_per_chip")), overrides)
    models = models_from_frame(catalog)
    priors, limits = priors_and_limits(config)
    if published is not None:
        efficiency, source = published
    else:
        efficiency = efficiencies_from(calibrate(measurements_frame(measurements), chips, models, priors, limits))
        source = "fitted on data/throughput_measurements.csv (no published warehouse yet)"
    return ServingContext(chips, models, list(slugs.select("slug_pattern", "model").iter_rows()), efficiency,
                          limits, config.hardware.user_speed_tokens_per_s.point, source)
