"""Staging and mart assets: one per SQL file in sql/<schema>/<table>.sql.

The file name is the table name; the upstream assets are the `schema.table` names the SQL reads.
Each asset rebuilds its table in one transaction (warehouse/io.replace_table), then checks it against its
contract in sql/contracts.yaml in the same step (assets/checks.py).
"""


import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.checks import contract_results, contract_specs
from assets.ingest import POOL
from assets.resources import ProjectSettings
from warehouse.io import read_sql, referenced_tables, replace_table, sql_files, table_preview


def _description(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(lines)


def _sql_asset(table: str) -> dg.AssetsDefinition:
    schema, name = table.split(".")
    sql = read_sql(table)
    deps = [dg.AssetKey(ref.split(".")) for ref in referenced_tables(sql) if ref != table]

    @dg.asset(
        key=[schema, name],
        deps=deps,
        group_name=schema,
        kinds={"duckdb", "sql"},
        pool=POOL,
        description=_description(sql) + f" (sql/{schema}/{name}.sql)",
        check_specs=contract_specs(table),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
        with warehouse.get_connection() as con:
            sql = read_sql(table)
            if getattr(warehouse, "lake_catalog", "") and settings.as_of:
                # scaled profile, point-in-time run: the call logs as the lake held them on the as-of date
                from warehouse.lake import as_of_reads

                sql = as_of_reads(con, sql, settings.as_of_date())
            rows = replace_table(con, table, sql)
            preview = table_preview(con, table)
            checks = contract_results(con, table)
        context.log.info(f"{table}: {rows} rows")
        return dg.MaterializeResult(
            metadata={"row_count": dg.MetadataValue.int(rows), "preview": dg.MetadataValue.md(preview)},
            check_results=checks,
        )

    return _asset


sql_assets = [_sql_asset(table) for table in sql_files()]
