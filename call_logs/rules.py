"""The call-log SQL that is not a table model: the row rules (sql/call_logs/reject_reason.sql.j2) and the
day replacement (sql/call_logs/replace_days.sql.j2), Jinja2 templates that every file layout renders
with its own column expressions."""

from __future__ import annotations

from functools import cache

import jinja2

from call_logs.config import REQUIRED
from warehouse.io import SQL_DIR


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR / "call_logs"), undefined=jinja2.StrictUndefined,
                              autoescape=False, keep_trailing_newline=True)


def render(name: str, **params) -> str:
    """sql/call_logs/<name>.sql.j2 rendered with `params`."""
    return _templates().get_template(f"{name}.sql.j2").render(**params)


def reject_reason(ts: str, day: str | None, model: str, values: dict[str, str], unknown_status: str,
                  raw: dict[str, str] | None = None) -> str:
    """The reason a row is rejected, null for a valid row (the row rules of reject_reason.sql.j2), over SQL
    expressions: `values` the typed token counts present, `raw` the text before the cast of those read
    as text, `day` the row's day-partition (None: the timestamp's own day)."""
    raw = raw or {}
    tokens = [{"value": v, "raw": raw.get(t), "required": t in REQUIRED} for t, v in values.items()]
    return render("reject_reason", ts=ts, day=day, model=model, tokens=tokens, unknown_status=unknown_status).strip()
