"""The SQL linter (sqlfluff, DuckDB dialect, configured in pyproject.toml) over every file of sql/: run here, so that
`make test` and CI run it on the pytest worker beside the end-to-end run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_sql_file_passes_the_sql_linter():
    from sqlfluff.core import FluffConfig, Linter

    config = FluffConfig.from_path(str(ROOT))
    result = Linter(config=config).lint_paths((str(ROOT / "sql"),), processes=1)
    records = result.as_records()
    found = [f"{Path(r['filepath']).relative_to(ROOT)}:{v['start_line_no']}: {v['code']} {v['description']}"
             for r in records for v in r["violations"]]
    assert len(records) >= 30, "the linter found too few SQL files: is sql/ configured?"
    assert found == [], "\n".join(found)
