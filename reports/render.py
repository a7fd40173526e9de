"""Build the analyst report from mart frames: key numbers, charts, HTML (self-contained) and Markdown.

    render_report(frames, as_of, reports_dir, change_threshold=0.1) -> Path of the report directory

`frames` maps names to polars frames read from marts.* and meta.* (see REPORT_TABLES). Output:
<reports_dir>/<as-of>/report.html (inline CSS and base64 images, no network), report.md with the charts
as PNG files beside it, key_numbers.json; <reports_dir>/latest/ is a copy of the newest.
"""

from __future__ import annotations

import base64
import functools
import datetime as dt
import json
import shutil
from pathlib import Path
import jinja2
import polars as pl
from reports import data_freshness
from reports.chart_cache import ChartCache
from reports.format import plain
from reports.metrics import changes, key_numbers
from reports.prose import md_escape
from reports.view import submit_figures, view_context

TEMPLATES = Path(__file__).resolve().parent / "templates"


REPORT_TABLES = {
    "forecast": "marts.forecast", "selection": "marts.forecast_selection",
    "weekly": "marts.model_call_volume_weekly", "hardware": "marts.hardware_demand",
    "gap": "marts.supply_demand_gap", "exposure": "marts.supplier_exposure",
    "concentration": "marts.supplier_concentration", "sensitivity": "marts.sensitivity",
    "cross_checks": "marts.cross_checks", "sources": "marts.source_inventory", "assumptions": "meta.assumptions",
    "call_rejects": "marts.call_log_rejects_summary", "call_unknown": "marts.call_log_unknown_models",
    "call_volume": "marts.call_volume_daily", "token_cost": "marts.token_cost",
    "calibration": "marts.throughput_calibration", "serving_efficiency": "marts.serving_efficiency",
    "curves": "marts.interactivity_curves", "cost_levels": "marts.cost_at_interactivity",
    "vintage": "marts.forecast_vintage_errors", "flags": "marts.forecast_flags",
    "coherence": "marts.demand_coherence", "ledger": "marts.supply_ledger",
    "utilisation": "marts.implied_utilisation", "flows": "marts.supplier_flows", "margin": "marts.token_margin",
    "scenario_defs": "meta.scenarios", "report_series": "meta.report_series",
    "totals": "marts.fleet_totals", "stock_flow": "marts.fleet_stock_flow",
    "reconciliation": "marts.demand_reconciliation",
    "data_lag": "marts.data_lag", "revisions": "marts.source_revisions", "snapshots": "raw.feed_snapshots",
    "references": "marts.throughput_references",
}


@functools.lru_cache(maxsize=2)
def _environment(html: bool) -> jinja2.Environment:
    """The report's Jinja environment (HTML: autoescaped), kept per process so that a what-if loop compiles the
    templates once; the loader still reloads a template whose file changed."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=html,
                             undefined=jinja2.StrictUndefined)
    if not html:
        env.filters["md"] = md_escape
    return env


def render_report(frames: dict[str, pl.DataFrame], as_of: dt.date, reports_dir: Path | str,
                  checks: pl.DataFrame | None = None, change_threshold: float = 0.1,
                  data_as_of: dt.date | None = None) -> Path:
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    checks = checks if checks is not None else pl.DataFrame(
        schema={"asset": pl.Utf8, "check_name": pl.Utf8, "passed": pl.Boolean, "severity": pl.Utf8})
    numbers = key_numbers(frames, as_of)
    numbers["data_as_of"] = str(data_as_of or as_of)
    numbers["feed_vintages"] = data_freshness.vintages_of(frames["snapshots"])
    seen, since = data_freshness.previous_vintages(reports_dir, as_of)
    previous, comparison = _previous_report(reports_dir, as_of)
    moved = changes(numbers, previous, change_threshold)
    cache = ChartCache(reports_dir / ".chart-cache")
    pending = submit_figures(frames, cache)  # the workers draw while this process builds the view below
    context = view_context(frames, numbers, moved, checks, change_threshold, comparison, compared=bool(previous))
    warn_days = frames["assumptions"].filter(pl.col("name") == "freshness.lag_warn_days")["value"]
    warn_days = float(warn_days[0]) if len(warn_days) else 90.0
    context |= {"lag_rows": data_freshness.lag_rows(frames["data_lag"], as_of, warn_days), "lag_warn_days": f"{warn_days:g}",
                "restated": data_freshness.restatements(frames["revisions"], seen) | {"since": since},
                "reference_rows": data_freshness.reference_rows(frames["references"]),
                "whatif_rows": [{"name": r["name"], "file": plain(r["file_value"], r["unit"]),
                                 "whatif": plain(r["whatif_value"], r["unit"]), "unit": r["unit"]}
                                for r in frames["whatif"].iter_rows(named=True)] if "whatif" in frames else []}

    html_template, md_template = _environment(True).get_template("report.html.j2"), \
        _environment(False).get_template("report.md.j2")
    figures = pending()
    cache.prune()
    images_html = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in figures.items()}
    images_narrow = {k: "data:image/png;base64," + base64.b64encode(getattr(v, "narrow", v)).decode()
                     for k, v in figures.items()}
    images_md = {k: f"{k}.png" for k in figures}

    target = reports_dir / as_of.isoformat()
    staging = reports_dir / f".{as_of.isoformat()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "report.html").write_text(html_template.render(**context, img=images_html,
                                                                                        img_narrow=images_narrow))
    (staging / "report.md").write_text(md_template.render(**context, img=images_md))
    for name, png in figures.items():
        (staging / f"{name}.png").write_bytes(png)
    (staging / "key_numbers.json").write_text(json.dumps(numbers, indent=2, default=str))
    checks.select([c for c in ("asset", "check_name", "passed", "severity") if c in checks.columns]) \
        .write_csv(staging / "checks.csv")
    if previous:
        (staging / "previous.json").write_text(json.dumps(previous, indent=2, default=str))
    _swap_dir(staging, target)
    # latest/ is the newest as-of date only: re-rendering an older as-of leaves it alone
    latest_as_of = _report_as_of(reports_dir / "latest")
    if latest_as_of is None or latest_as_of <= as_of:
        latest_tmp = reports_dir / ".latest.tmp"
        shutil.rmtree(latest_tmp, ignore_errors=True)
        shutil.copytree(target, latest_tmp)
        _swap_dir(latest_tmp, reports_dir / "latest")
    return target


def _report_as_of(directory: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(json.loads((directory / "key_numbers.json").read_text())["as_of"])
    except (OSError, ValueError, KeyError):
        return None


def _previous_report(reports_dir: Path, as_of: dt.date) -> tuple[dict | None, str]:
    """The report to compare with: an earlier report of the same as-of date (the same data vintage: any
    change is new data or a new model). A report of another as-of date is not compared: the as-of date
    moved, so differences would mix new data with the passage of time; the text says so."""
    same = reports_dir / as_of.isoformat() / "key_numbers.json"
    if same.exists():
        try:
            previous = json.loads(same.read_text())
        except ValueError:
            previous = None
        if previous:
            when = previous.get("generated_at") or "an earlier run"
            return previous, (f"Compared with the previous report of the same as-of date ({as_of}, generated "
                              f"{when}): differences come from new data, assumptions or model changes.")
    others = sorted((d for d in (_report_as_of(p) for p in reports_dir.iterdir() if p.is_dir()
                                 and not p.name.startswith(".") and p.name != "latest") if d and d != as_of))
    earlier = [d for d in others if d < as_of]
    if earlier:
        return None, (f"The previous report is as of {earlier[-1]}; the as-of date moved to {as_of}, so its figures "
                      "are not compared here (they would mix new data with the passage of time).")
    return None, "No earlier report of this as-of date to compare with."


def _swap_dir(src: Path, dst: Path) -> None:
    """Replace `dst` with `src` (a rename; the old directory is removed after)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
