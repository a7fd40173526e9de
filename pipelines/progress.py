"""A Dagster logger that prints one line per asset (and per failed step) as the run progresses."""

from __future__ import annotations

import logging
import sys

import dagster as dg

from assets.runs import step_label

# Dagster hands a logger its events only on the records' "dagster_meta" attribute; no public API exposes a
# run's events live (DagsterInstance.get_records_for_run is not public either). Read by name, not through
# dagster._core: a Dagster that renames it costs the progress lines (test_pipeline checks them), not the run.
_EVENT_ATTR = "dagster_meta"


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, _EVENT_ATTR, None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            rows = mat.metadata.get("row_count")
            suffix = f"  {rows.value:>8,} rows" if rows is not None else ""
            name = mat.asset_key.to_user_string() + (f" [{mat.partition}]" if mat.partition else "")
            print(f"  ok    {name:<45}{suffix}", file=sys.stdout, flush=True)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            ev = event.event_specific_data
            if not ev.passed:
                label = "WARN " if ev.severity == dg.AssetCheckSeverity.WARN else "FAIL "
                print(f"  {label} check {ev.asset_key.to_user_string()}:{ev.check_name}{_reason(ev.metadata)}",
                      flush=True)
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            # the name only: the message is printed once, in the run's summary
            print(f"  FAIL  {step_label(event.step_key)}", file=sys.stdout, flush=True)
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            print(f"  skip  {step_label(event.step_key)} (an upstream step or blocking check failed)", flush=True)


def _reason(metadata: dict) -> str:
    """Why a check did not pass, in a few words: the findings' count and the first one, the violating rows, or a
    source's age."""
    def value(key):
        item = metadata.get(key)
        return getattr(item, "value", item)

    if value("first"):
        rows = value("rows")
        text = str(value("first"))
        text = text if len(text) <= 110 else text[:107] + "..."
        return f" ({rows} row{'s' if rows != 1 else ''}; first: {text})" if rows else f" ({text})"
    if value("violating_rows"):
        return f" ({value('violating_rows')} violating rows)"
    if value("age_days") is not None and value("age_days") != -1:
        return f" (newest {value('newest')}, {value('age_days')} days old)"
    return ""


@dg.logger(description="One line per materialised asset, failed check and failed step (tokens2chips CLI).")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("tokens2chips.progress", level=logging.DEBUG)
    log.addHandler(_ProgressHandler())
    return log
