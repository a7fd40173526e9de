"""Supplier exposure: chips x the supply-chain split of each chip's price -> USD per supplier and role,
with p5/median/p95 over the Monte Carlo draws, and concentration (HHI) per role."""

from __future__ import annotations

import numpy as np
import polars as pl

from hardware.stats import row_percentiles, stack_draws


def supplier_exposure(fleet_rows: list[dict], supply_chain: pl.DataFrame) -> pl.DataFrame:
    """USD content of the required fleet per (period, scenario, supplier, role).

    `fleet_rows` are hardware.fleet.size_fleet rows (chips as arrays of draws); `supply_chain` has chip,
    supplier, role, usd_per_chip (rows with no figure are left out). share_of_role is the supplier's
    share of the role's median USD in that period and scenario.
    """
    split = supply_chain.filter(pl.col("usd_per_chip").is_not_null())
    by_chip: dict[str, list[tuple[str, str, float]]] = {}
    for chip, supplier, role, usd in split.select("chip", "supplier", "role", "usd_per_chip").iter_rows():
        by_chip.setdefault(chip, []).append((supplier, role, float(usd)))
    totals: dict[tuple, np.ndarray] = {}
    for row in fleet_rows:
        for supplier, role, usd in by_chip.get(row["chip"], []):
            key = (row["period_start"], row["scenario"], supplier, role)
            totals[key] = totals.get(key, 0.0) + row["chips"] * usd
    keys = list(totals)
    draws = max([np.size(v) for v in totals.values()], default=1)
    columns = {"period_start": [k[0] for k in keys], "scenario": [k[1] for k in keys],
               "supplier": [k[2] for k in keys], "role": [k[3] for k in keys],
               **dict(zip(("usd_p5", "usd_median", "usd_p95"), row_percentiles(stack_draws(list(totals.values()),
                                                                                             draws))))}
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "supplier": pl.Utf8, "role": pl.Utf8,
              "usd_p5": pl.Float64, "usd_median": pl.Float64, "usd_p95": pl.Float64}
    frame = pl.DataFrame(columns, schema=schema)
    role_total = pl.col("usd_median").sum().over("period_start", "scenario", "role")
    return frame.with_columns(
        pl.when(role_total > 0).then(pl.col("usd_median") / role_total).otherwise(0.0).alias("share_of_role")
    ).sort("period_start", "scenario", "role", "usd_median", descending=[False, False, False, True])


def concentration(exposure: pl.DataFrame) -> pl.DataFrame:
    """Herfindahl-Hirschman index per role (sum of squared % shares: 10,000 = one supplier)."""
    return (
        exposure.sort("share_of_role", descending=True)
        .group_by("period_start", "scenario", "role", maintain_order=True)
        .agg(
            ((pl.col("share_of_role") * 100) ** 2).sum().alias("hhi"),
            pl.len().alias("n_suppliers"),
            pl.col("supplier").first().alias("top_supplier"),
            pl.col("share_of_role").first().alias("top_share"),
            pl.col("usd_median").sum().alias("role_usd_median"),
        )
        .sort("period_start", "scenario", "role")
    )
