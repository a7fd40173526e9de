"""The four feeds: where each is fetched from, its licence and the citation it asks for, and how the request
for the next vintage is built. Base URLs can be pointed elsewhere (a mirror, a recorded-payload server in
tests) through FeedSettings, which pipelines/settings.py fills from the environment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

SOURCES = ("openrouter", "epoch", "mlperf", "inferencex")


@dataclass(frozen=True)
class Feed:
    name: str
    title: str
    licence: str
    citation: str
    default_base: str
    file_name: str  # the name a fetched payload is saved under
    needs_key: str | None = None  # environment variable of an API key the fetch requires


FEEDS = {
    "openrouter": Feed(
        "openrouter", "OpenRouter Data API, rankings-daily (top 50 models per UTC day plus 'other')",
        "CC BY 4.0", "Source: OpenRouter (openrouter.ai/rankings), as of {as_of}. Licensed under CC BY 4.0.",
        "https://openrouter.ai", "rankings-daily.json", needs_key="OPENROUTER_API_KEY"),
    "epoch": Feed(
        "epoch", "Epoch AI, AI chip sales (quarterly by chip: units, H100e, power, p5/median/p95, incomplete)",
        "CC BY 4.0", "Data: Epoch AI, 'AI Chip Sales' (epoch.ai/data/ai-chip-sales), as of {as_of}.",
        "https://epoch.ai/data/ai_chip_sales.zip", "ai_chip_sales.zip"),
    "mlperf": Feed(
        "mlperf", "MLCommons MLPerf Inference results (summary_results.json of a results round, pinned to a commit)",
        "Apache-2.0 (results repository)", "MLCommons, MLPerf Inference {as_of} results, summary_results.json.",
        # pinned: the commit of mlcommons-bot's "Added results summary" (9 Sep 2025); a later round is another URL
        "https://raw.githubusercontent.com/mlcommons/inference_results_v5.1/"
        "965182b03376a00fcae415c54e560e1c83937932/summary_results.json",
        "summary_results.json"),
    "inferencex": Feed(
        "inferencex", "SemiAnalysis InferenceX benchmark rows (hardware, framework, precision, sequence lengths, "
        "concurrency, tokens/s per GPU and per user)",
        "none stated: raw payloads stay local, only derived figures are published",
        "SemiAnalysis InferenceX (inferencex.com), as of {as_of}.",
        "https://inferencex.com/api/v1/benchmarks", "benchmarks.json"),
}

OPENROUTER_FLOOR = dt.date(2025, 1, 1)  # the dataset begins here
OPENROUTER_RESTATE_DAYS = 28  # re-fetch the last four weeks held, to catch restated days


@dataclass(frozen=True)
class FeedSettings:
    """Per-source base URL overrides and API keys (from the environment, read in pipelines/settings.py)."""

    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def base(self, source: str) -> str:
        return self.urls.get(source) or FEEDS[source].default_base


def request_url(source: str, settings: FeedSettings, today: dt.date, newest_held: dt.date | None) -> str:
    """The URL of the next fetch. OpenRouter: from four weeks before the newest day held (or the dataset's
    start) to yesterday, so restated days come back; the others serve their whole dataset."""
    base = settings.base(source)
    if source == "openrouter":
        start = max(OPENROUTER_FLOOR, (newest_held or OPENROUTER_FLOOR) - dt.timedelta(days=OPENROUTER_RESTATE_DAYS))
        end = today - dt.timedelta(days=1)
        return f"{base.rstrip('/')}/api/v1/datasets/rankings-daily?start_date={start}&end_date={end}"
    return base


def headers(source: str, settings: FeedSettings) -> dict[str, str]:
    key = settings.keys.get(source)
    return {"Authorization": f"Bearer {key}"} if key else {}
