"""Display labels: the one place where the warehouse's ids (series ids, scenario ids, chip classes, resources,
model origins, assumption names) become the words an analyst reads. Charts and tables take a `Labels`; ids
it does not know are shown with underscores as spaces, never silently dropped."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

PLATFORMS = {
    "global": "Global inference demand (disclosed platforms)",
    "global_estimated": "Global inference demand (disclosed + estimated)",
    "rest_of_world": "Rest of world (disclosed)",
    "rest_of_world_total": "Rest of world (disclosed + estimated)",
    "china_national": "China, national total",
    "china_public_cloud": "China public cloud (IDC)",
    "doubao": "Doubao (ByteDance)",
    "google": "Google, all surfaces",
    "google_gemini_api": "Gemini API",
    "microsoft": "Microsoft",
    "openai_api": "OpenAI API",
    "openrouter": "OpenRouter",
    "anthropic_estimated": "Anthropic (estimated from revenue)",
    "chatgpt_consumer_estimated": "ChatGPT consumer (estimated from usage)",
    "meta_ai_estimated": "Meta AI (estimated from usage)",
}
ORIGINS = {"cn": "China-origin models", "us": "US-origin models", "eu": "EU-origin models", "other": "other origin",
           "unknown": "origin unknown", "all": "all models"}
CHIP_CLASSES = {"gpu": "GPU (HBM)", "tpu": "TPU (HBM)", "asic": "custom ASIC (HBM)",
                "domestic_asic": "Chinese domestic ASIC", "lpu": "SRAM LPU", "wafer_scale": "wafer-scale",
                "cpu": "CPU"}
RESOURCES = {"prefill_compute": "prefill compute (H100e)", "decode_bandwidth": "decode memory bandwidth (TB/s)",
             "all_h100e": "all compute (H100e)"}
SEGMENTS = {"china": "China market", "rest_of_world": "Rest of world", "all": "all segments"}
SECTIONS = {"workload": "workload", "fleet": "fleet", "hardware": "hardware", "cpu_layer": "CPU layer",
            "serving": "serving", "forecast": "forecast"}


def _words(text: str) -> str:
    return text.replace("_", " ")


def _lookup(table: dict[str, str]):
    """A label function for one vocabulary: its word for an id, else the id with underscores as spaces."""
    return staticmethod(lambda value: table.get(value, _words(value)))


@dataclass(frozen=True)
class Labels:
    scenarios: dict[str, str] = field(default_factory=dict)  # id -> label (meta.scenarios)

    @classmethod
    def from_frames(cls, frames: dict[str, pl.DataFrame]) -> "Labels":
        defs = frames.get("scenario_defs")
        if defs is None or defs.height == 0:
            return cls()
        return cls({r["scenario"]: r["label"] or r["scenario"] for r in defs.iter_rows(named=True)})

    def scenario(self, scenario: str) -> str:
        return self.scenarios.get(scenario, _words(scenario))

    def series(self, series_id: str) -> str:
        """'tokens/china_national/all' -> 'China, national total'; 'tokens/openrouter/cn' ->
        'OpenRouter: China-origin models'."""
        parts = series_id.split("/")
        if parts[0] != "tokens" or len(parts) < 2:
            return _words(series_id)
        name = PLATFORMS.get(parts[1], _words(parts[1]))
        if len(parts) > 2 and parts[2] != "all":
            name += ": " + self.origin(parts[2])
        return name

    chip_class = _lookup(CHIP_CLASSES)
    resource = _lookup(RESOURCES)
    origin = _lookup(ORIGINS)
    segment = _lookup(SEGMENTS)

    @staticmethod
    def assumption(name: str) -> str:
        """'workload.cache_hit_retention_without_ssd' -> 'Cache hit retention without ssd (workload)'; a label
        that is already words (a stress case, the demand interval) is kept."""
        if " " in name or "." not in name:
            return name
        section, _, leaf = name.partition(".")
        leaf = _words(leaf.split(".")[-1])
        return f"{leaf[:1].upper()}{leaf[1:]} ({SECTIONS.get(section, _words(section))})"
