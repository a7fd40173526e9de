"""Asset checks: the mart contracts of sql/contracts.yaml (blocking), findings tables (WARN when they have
rows, `warn_if_rows` in sql/contracts.yaml) and source freshness (WARN)."""


from functools import cache

import dagster as dg
import yaml
from dagster_duckdb import DuckDBResource

from assets.ingest import POOL
from assets.resources import ProjectSettings
from warehouse.sources import SOURCES, Source
from warehouse.io import SQL_DIR, quote_ident


@cache
def contracts() -> dict[str, dict]:
    return yaml.safe_load((SQL_DIR / "contracts.yaml").read_text())


def _count(warehouse: DuckDBResource, sql: str) -> int:
    with warehouse.get_connection() as con:
        return int(con.execute(sql).fetchone()[0])


def contract_violations(table: str, contract: dict) -> dict[str, str]:
    """check name -> SQL counting the rows that break it."""
    q = quote_ident
    checks: dict[str, str] = {}
    key = contract.get("key", [])
    if key:
        nulls = " or ".join(f"{q(c)} is null" for c in key)
        cols = ", ".join(q(c) for c in key)
        checks["key_not_null_unique"] = (
            f"select (select count(*) from {table} where {nulls}) + "
            f"(select count(*) from (select {cols} from {table} group by all having count(*) > 1))"
        )
    if contract.get("not_null"):
        cond = " or ".join(f"{q(c)} is null" for c in contract["not_null"])
        checks["required_not_null"] = f"select count(*) from {table} where {cond}"
    if contract.get("non_negative"):
        cond = " or ".join(f"{q(c)} < 0" for c in contract["non_negative"])
        checks["non_negative"] = f"select count(*) from {table} where {cond}"
    if contract.get("ordered"):
        cond = " or ".join(f"{q(lo)} > {q(mid)} or {q(mid)} > {q(hi)}" for lo, mid, hi in contract["ordered"])
        checks["intervals_ordered"] = f"select count(*) from {table} where {cond}"
    return checks


def _contract_check(table: str, check_name: str, sql: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table.split(".")),
        name=check_name,
        blocking=True,
        pool=POOL,
        description=f"{table}: {check_name.replace('_', ' ')} (sql/contracts.yaml)",
    )
    def _check(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        bad = _count(warehouse, sql)
        return dg.AssetCheckResult(passed=bad == 0, metadata={"violating_rows": bad})

    return _check


def _freshness_check(source: Source) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", source.stem]),
        name="fresh",
        additional_deps=[dg.AssetKey(["meta", "assumptions"])],
        pool=POOL,
        description=f"WARN when the newest {source.observed} in {source.file_name} is older than "
        "freshness.max_age_days (config/assumptions.yaml) at the run's as-of date.",
    )
    def _check(warehouse: DuckDBResource, settings: ProjectSettings) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            newest, max_age = con.execute(
                f"""select max({quote_ident(source.observed)}),
                           (select value from meta.assumptions where name = 'freshness.max_age_days')
                    from {source.table}"""
            ).fetchone()
        as_of = settings.as_of_date()
        age = (as_of - newest).days if newest else None
        passed = age is not None and max_age is not None and age <= max_age
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"newest": str(newest), "age_days": age if age is not None else -1,
                      "max_age_days": max_age if max_age is not None else -1, "as_of": str(as_of)},
        )

    return _check


def _warn_check(table: str, name: str, spec: dict) -> dg.AssetChecksDefinition:
    """WARN (non-blocking) when `table` has rows (those matching `where`, when given): they are findings
    to read, not broken data."""
    where = f" where {spec['where']}" if spec.get("where") else ""
    @dg.asset_check(
        asset=dg.AssetKey(table.split(".")),
        name=name,
        blocking=False,
        pool=POOL,
        description=f"{table}: WARN when it has rows{' with ' + spec['where'] if where else ''} -- "
                    f"{spec['description']} (sql/contracts.yaml)",
    )
    def _check(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            rows = con.execute(f"select {spec['show']} from {table}{where} limit 5").fetchall()
            count = int(con.execute(f"select count(*) from {table}{where}").fetchone()[0])
        return dg.AssetCheckResult(
            passed=count == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows": count, "first_rows": dg.MetadataValue.md("\n".join(f"- {r[0]}" for r in rows) or "none")},
        )

    return _check


contract_checks = [
    _contract_check(table, name, sql)
    for table, contract in contracts().items()
    for name, sql in contract_violations(table, contract).items()
] + [
    _warn_check(table, name, spec)
    for table, contract in contracts().items()
    for name, spec in contract.get("warn_if_rows", {}).items()
]
freshness_checks = [_freshness_check(s) for s in SOURCES if s.observed]


@dg.asset_check(
    asset=dg.AssetKey(["marts", "forecast_selection"]),
    name="every_series_selected",
    blocking=True,
    pool=POOL,
    additional_deps=[dg.AssetKey(["marts", "forecast"])],
    description="Every series in marts.forecast has exactly one row in marts.forecast_selection.",
)
def every_series_selected(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    missing = _count(warehouse, "select count(*) from (select distinct series_id from marts.forecast) f "
                                "anti join marts.forecast_selection s using (series_id)")
    return dg.AssetCheckResult(passed=missing == 0, metadata={"series_without_selection": missing})


forecast_checks = [every_series_selected]
