"""The report's view of its inputs' age and of what the feeds restated: pure functions on small frames
(marts.data_lag, marts.source_revisions, raw.feed_snapshots, marts.throughput_references)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from reports.format import short


def lag_rows(lag: pl.DataFrame, as_of: dt.date, warn_days: float) -> list[dict]:
    """One row per input: newest figure, its age in days at `as_of`, and a WARN beyond `warn_days`."""
    rows = []
    for r in lag.sort("input").iter_rows(named=True):
        newest = r["newest_figure"]
        days = (as_of - newest).days if newest else None
        rows.append({"input": r["input"], "origin": r["origin"], "newest": str(newest or "none saved"),
                     "known": str(r["newest_known"] or ""),
                     "lag": "n/a" if days is None else f"{days:,} days",
                     "warn": days is None or days > warn_days})
    return rows


def vintages_of(snapshots: pl.DataFrame) -> list[str]:
    """The feed vintages a report was built on ('source/vintage'), kept in key_numbers.json."""
    return sorted(f"{r['source']}/{r['vintage']}" for r in snapshots.select("source", "vintage").iter_rows(named=True))


def previous_vintages(reports_dir: Path, as_of: dt.date) -> tuple[list[str] | None, str]:
    """The feed vintages of the previous report (same as-of date, else the newest earlier one) and its label."""
    candidates = [reports_dir / as_of.isoformat()]
    if reports_dir.is_dir():
        earlier = sorted(p for p in reports_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != "latest" and p.name < as_of.isoformat())
        candidates += earlier[::-1]
    for folder in candidates:
        try:
            numbers = json.loads((folder / "key_numbers.json").read_text())
        except (OSError, ValueError):
            continue
        if "feed_vintages" in numbers:
            return numbers["feed_vintages"], (f"since the previous report ({folder.name}, generated "
                                              f"{numbers.get('generated_at', '?')})")
    return None, "between the saved vintages (no previous report)"


def restatements(revisions: pl.DataFrame, seen: list[str] | None, top: int = 10) -> dict:
    """What the feeds restated since the previous report: revisions whose newer vintage that report had not
    seen. Counts per source and the largest relative changes."""
    new = revisions
    if seen is not None:
        new = revisions.filter(~(pl.col("source") + "/" + pl.col("new_vintage")).is_in(seen))
    by_source = (new.group_by("source", "old_vintage", "new_vintage")
                 .agg((pl.col("change") == "restated").sum().alias("restated"),
                      (pl.col("change") == "vanished").sum().alias("vanished"),
                      pl.col("key").n_unique().alias("keys"))
                 .sort("source", "new_vintage"))
    largest = (new.filter((pl.col("change") == "restated") & pl.col("relative_change").is_not_null())
               .sort(pl.col("relative_change").abs(), descending=True).head(top))
    return {
        "count": new.height,
        "sources": [{"source": r["source"], "from": r["old_vintage"], "to": r["new_vintage"],
                     "restated": r["restated"], "vanished": r["vanished"], "n_keys": r["keys"]}
                    for r in by_source.iter_rows(named=True)],
        "largest": [{"source": r["source"], "key": r["key"], "field": r["field"],
                     "old": short(r["old_value"]), "new": short(r["new_value"]),
                     "change": f"{r['relative_change']:+.0%}"} for r in largest.iter_rows(named=True)],
    }


def reference_rows(references: pl.DataFrame) -> list[dict]:
    """The benchmark feeds' rows, predicted by the calibrated model out of sample, summarised per source,
    chip and model: rows, median measured tokens/s per chip, median and range of measured / predicted."""
    if references.height == 0:
        return []
    summary = (references.group_by("source_id", "chip", "model_name", "precision")
               .agg(pl.len().alias("rows"), pl.col("measured").median().alias("measured"),
                    pl.col("ratio").median().alias("median"), pl.col("ratio").min().alias("low"),
                    pl.col("ratio").max().alias("high"))
               .sort("source_id", "chip", "model_name"))
    return [{"source": r["source_id"], "chip": r["chip"], "model": r["model_name"], "precision": r["precision"],
             "rows": r["rows"], "measured": f"{r['measured']:,.0f}", "median": f"{r['median']:.2f}",
             "range": f"{r['low']:.2f}-{r['high']:.2f}"} for r in summary.iter_rows(named=True)]
