"""Asset checks: the mart contracts of sql/contracts.yaml (blocking), findings tables (WARN when they have
rows, `warn_if_rows` in sql/contracts.yaml) and source freshness (WARN).

A table's contract is checked by the asset that writes it, in the same step, right after the write
(`contract_specs` declares the checks on the asset, `contract_results` evaluates them): a failed blocking
check fails that step, so nothing downstream runs. Sources' freshness is one multi-asset check (one step)."""


import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.ingest import POOL
from assets.resources import ProjectSettings
from warehouse.contracts import contract_violations, contracts
from warehouse.sources import SOURCES, Source
from warehouse.io import quote_ident


def _asset(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


def violation_result(con: duckdb.DuckDBPyConnection, table: str, name: str, sql: str) -> dg.AssetCheckResult:
    """A blocking contract check: passes when `sql` counts no violating row."""
    bad = int(con.execute(sql).fetchone()[0])
    return dg.AssetCheckResult(asset_key=_asset(table), check_name=name, passed=bad == 0,
                               metadata={"violating_rows": bad})


def warn_result(con: duckdb.DuckDBPyConnection, table: str, name: str, spec: dict) -> dg.AssetCheckResult:
    """WARN (non-blocking) when `table` has rows (those matching `where`, when given): they are findings
    to read, not broken data."""
    where = f" where {spec['where']}" if spec.get("where") else ""
    rows = con.execute(f"select {spec['show']} from {table}{where} limit 5").fetchall()
    count = int(con.execute(f"select count(*) from {table}{where}").fetchone()[0])
    return dg.AssetCheckResult(
        asset_key=_asset(table), check_name=name, passed=count == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": count, "first_rows": dg.MetadataValue.md("\n".join(f"- {r[0]}" for r in rows) or "none"),
                  # the first finding in one line, for the CLI's progress output
                  "first": str(rows[0][0]) if rows else ""},
    )


def _contracts_of(tables: tuple[str, ...], contract: dict | None) -> dict[str, dict]:
    """Each table's contract: sql/contracts.yaml's, or `contract` (for a test's own table)."""
    return {t: contracts().get(t, {}) if contract is None else contract for t in tables}


def contract_specs(*tables: str, contract: dict | None = None) -> list[dg.AssetCheckSpec]:
    """The checks of the tables' contracts as Dagster check specs, for the asset that writes the tables:
    blocking for the contract, WARN for the findings."""
    specs = []
    for table, c in _contracts_of(tables, contract).items():
        specs += [dg.AssetCheckSpec(name, asset=_asset(table), blocking=True,
                                    description=f"{table}: {name.replace('_', ' ')} (sql/contracts.yaml)")
                  for name in contract_violations(table, c)]
        specs += [dg.AssetCheckSpec(name, asset=_asset(table), blocking=False,
                                    description=f"{table}: WARN when it has rows"
                                    f"{' with ' + spec['where'] if spec.get('where') else ''} -- "
                                    f"{spec['description']} (sql/contracts.yaml)")
                  for name, spec in c.get("warn_if_rows", {}).items()]
    return specs


def contract_results(con: duckdb.DuckDBPyConnection, *tables: str,
                     contract: dict | None = None) -> list[dg.AssetCheckResult]:
    """Evaluate the tables' contracts on `con`, right after the asset wrote them (in the same step)."""
    results = []
    for table, c in _contracts_of(tables, contract).items():
        results += [violation_result(con, table, name, sql) for name, sql in contract_violations(table, c).items()]
        results += [warn_result(con, table, name, spec) for name, spec in c.get("warn_if_rows", {}).items()]
    return results


def freshness_result(con: duckdb.DuckDBPyConnection, source: Source, as_of, max_age_days: float | None
                     ) -> dg.AssetCheckResult:
    """WARN when the newest observation of `source` is older than `max_age_days` at `as_of`."""
    newest = con.execute(f"select max({quote_ident(source.observed)}) from {source.table}").fetchone()[0]
    age = (as_of - newest).days if newest else None
    passed = age is not None and max_age_days is not None and age <= max_age_days
    return dg.AssetCheckResult(
        asset_key=_asset(source.table), check_name="fresh", passed=passed, severity=dg.AssetCheckSeverity.WARN,
        metadata={"newest": str(newest), "age_days": age if age is not None else -1,
                  "max_age_days": max_age_days if max_age_days is not None else -1, "as_of": str(as_of)},
    )


_DATED = [s for s in SOURCES if s.observed]


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec("fresh", asset=_asset(s.table),
                             description=f"WARN when the newest {s.observed} in {s.file_name} is older than "
                             "freshness.max_age_days (config/assumptions.yaml) at the run's as-of date.")
           for s in _DATED],
    name="source_freshness",
    pool=POOL,
    description="Every dated source's freshness at the run's as-of date.",
)
def source_freshness(warehouse: DuckDBResource, settings: ProjectSettings):
    max_age = float(settings.configuration().model.freshness.max_age_days.value)
    with warehouse.get_connection() as con:
        for source in _DATED:
            yield freshness_result(con, source, settings.as_of_date(), max_age)


@dg.asset_check(asset=dg.AssetKey(["marts", "data_lag"]), name="lag_within_limit", pool=POOL,
                description="WARN when an input's newest figure (marts.data_lag) is older than "
                "freshness.lag_warn_days (config/assumptions.yaml) at the run's as-of date, or none is saved.")
def data_lag_check(warehouse: DuckDBResource, settings: ProjectSettings) -> dg.AssetCheckResult:
    limit = float(settings.configuration().model.freshness.lag_warn_days.value)
    with warehouse.get_connection() as con:
        return lag_result(con, settings.as_of_date(), limit)


def lag_result(con: duckdb.DuckDBPyConnection, as_of, limit_days: float) -> dg.AssetCheckResult:
    rows = con.execute("select input, newest_figure from marts.data_lag order by newest_figure nulls first, input").fetchall()
    late = [(name, newest) for name, newest in rows if newest is None or (as_of - newest).days > limit_days]
    shown = [f"{name}: {'none saved' if newest is None else f'{(as_of - newest).days} days'}" for name, newest in late]
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["marts", "data_lag"]), check_name="lag_within_limit", passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": len(late), "limit_days": limit_days, "as_of": str(as_of),
                  "first": shown[0] if shown else "", "inputs": "; ".join(shown)})


freshness_checks = [source_freshness, data_lag_check]

SELECTION_CHECK = dg.AssetCheckSpec(
    "every_series_selected", asset=dg.AssetKey(["marts", "forecast_selection"]), blocking=True,
    description="Every series in marts.forecast has exactly one row in marts.forecast_selection.")


def every_series_selected(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    missing = int(con.execute("select count(*) from (select distinct series_id from marts.forecast) f "
                              "anti join marts.forecast_selection s using (series_id)").fetchone()[0])
    return dg.AssetCheckResult(asset_key=SELECTION_CHECK.asset_key, check_name=SELECTION_CHECK.name,
                               passed=missing == 0, metadata={"series_without_selection": missing})
