"""The mart contracts of sql/contracts.yaml: reading them, and the SQL that counts the rows breaking each
(key unique and not null, required columns, non-negative quantities, ordered intervals). No Dagster here:
assets/checks.py turns these into asset checks; the crash harness and tests call them directly."""

from functools import cache

from configuration.yaml_file import read_mapping
from warehouse.io import SQL_DIR, quote_ident


class ContractsError(ValueError):
    """sql/contracts.yaml cannot be read."""


@cache
def contracts() -> dict[str, dict]:
    return read_mapping(SQL_DIR / "contracts.yaml", ContractsError)[0]


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
