"""Fleets from stock and flow (pure library: polars/numpy in, polars out).

Chip availability (data/chip_availability.csv) says in which quarters a chip ships into a region. The
installed base by chip and region is built from Epoch AI's counted shipments and, for projected quarters,
the designer's H100e shipment forecast (marts.installed_base_projection) split over the designer's chips:

    share of chip x in quarter q = its share of the designer's H100e in the last four complete quarters,
    kept while x is inside its window; the share of a chip past its window moves to the designer's newest
    chip inside its window in the same region (else it is left unplaced and counted: chip null)
    units = H100e / H100e per chip;  installed(q) = shipments of the last `life` quarters

Each quarter the installed base serves demand first (`serve_from_stock`): a chip's inference share serves
the segment's models it can run at the per-user speed target, its time split over them by their token
shares; a model whose load exceeds what the installed chips give it leaves a remainder, which is bought
from the scenario's chips available that quarter (or, for the `shipment_mix` policy, in proportion to the
quarter's projected shipments of the region). Chips bought join the stock and retire after the service
life. A load that no available chip can serve at the target is a shortfall, stated as such.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from hardware.roofline import Chip
from hardware.stats import row_medians, row_percentiles, stack_draws

SHIPMENT_MIX = "shipment_mix"


class AvailabilityError(ValueError):
    """A chip is used outside its availability window (the message names scenario, quarter, region, chip)."""


@dataclass(frozen=True)
class Window:
    first: dt.date
    last: dt.date | None
    reason: str
    source_id: str

    def contains(self, quarter: dt.date) -> bool:
        return self.first <= quarter and (self.last is None or quarter <= self.last)

    def describe(self) -> str:
        last = self.last.isoformat() if self.last else "open"
        return f"{self.first.isoformat()} to {last}, {self.reason}, {self.source_id}"


def windows_from_frame(frame: pl.DataFrame, source: str = "data/chip_availability.csv") \
        -> dict[tuple[str, str], Window]:
    """(chip, region) -> Window. A window whose last quarter precedes its first is an error naming the row."""
    out = {}
    for line, r in enumerate(frame.iter_rows(named=True), start=2):
        first, last = r["first_quarter"], r["last_quarter"]
        if last is not None and last < first:
            raise AvailabilityError(f"{source} row {r.get('_line', line)}, column last_quarter: {last} is before "
                                    f"first_quarter {first} for chip '{r['chip']}' in region '{r['region']}'")
        out[(r["chip"], r["region"])] = Window(first, last, r["reason"], r["source_id"])
    return out


def available(windows: dict, chip: str, region: str, quarter: dt.date) -> bool:
    w = windows.get((chip, region))
    return w is not None and w.contains(quarter)


def check_available(windows: dict, scenario: str, quarter: dt.date, region: str, chip: str, what: str) -> None:
    w = windows.get((chip, region))
    if w is None or not w.contains(quarter):
        why = f"its window is {w.describe()}" if w else "it has no row for this region"
        raise AvailabilityError(
            f"scenario '{scenario}', quarter {quarter.isoformat()}, region '{region}': {what} puts new load on "
            f"chip '{chip}', which is not available then ({why}; data/chip_availability.csv). Give the scenario "
            "a `periods` entry that moves this share to a chip available in that quarter.")


def windows_frame(windows: dict) -> pl.DataFrame:
    """The availability windows as a frame: chip, region, first, last (null = open)."""
    return pl.DataFrame([{"chip": c, "region": r, "first": w.first, "last": w.last} for (c, r), w in windows.items()],
                        schema={"chip": pl.Utf8, "region": pl.Utf8, "first": pl.Date, "last": pl.Date})


def installed_by_chip(shipments: pl.DataFrame, projection: pl.DataFrame, specs: pl.DataFrame,
                      windows: dict, life_quarters: int) -> pl.DataFrame:
    """Shipped and installed units per quarter, region and chip, observed then projected.

    `shipments` is marts.chip_shipments (counted units per chip), `projection` marts.installed_base_projection
    (its basis says which quarters are projected per designer and region, and their shipped H100e), `specs`
    staging.accelerator_specs (designer, h100e_per_chip). Returns quarter_start, region, designer, chip, basis,
    shipped_units, shipped_h100e, installed_units, installed_h100e; unplaced projected H100e (a designer
    with no chip in its window and in the spec sheet) is a row with chip null."""
    per_chip = specs.filter(pl.col("h100e_per_chip") > 0).select("chip", "designer", "chip_class", "h100e_per_chip")
    shipments = shipments.sort("quarter_start", "designer", "spec_chip")
    projection = projection.sort("quarter_start", "designer", "region")
    obs = (shipments.with_columns(pl.when(pl.col("china_market")).then(pl.lit("china")).otherwise(pl.lit("rest"))
                                  .alias("region"))
           .select("quarter_start", "designer", "region", pl.col("spec_chip").alias("chip"), "incomplete",
                   pl.col("units_median").alias("shipped_units"), pl.col("h100e_median").alias("shipped_h100e")))
    projected_q = (projection.filter(pl.col("basis").is_in(["projected", "partial"]))
                   .group_by("quarter_start", "designer", maintain_order=True)
                   .agg(pl.col("shipped_h100e").sum().alias("designer_h100e")))
    # counted quarters that the projection does not replace
    counted = obs.join(projected_q.select("quarter_start", "designer"), on=["quarter_start", "designer"], how="anti")
    # each designer's mix over its last four complete quarters (H100e share per region and chip)
    complete = (obs.group_by("quarter_start", "designer", maintain_order=True).agg(pl.col("incomplete").any())
                .filter(~pl.col("incomplete"))
                .with_columns(pl.col("quarter_start").rank("dense", descending=True).over("designer").alias("k"))
                .filter(pl.col("k") <= 4).select("quarter_start", "designer"))
    mix = (obs.join(complete, on=["quarter_start", "designer"])
           .group_by("designer", "region", "chip", maintain_order=True).agg(pl.col("shipped_h100e").sum())
           .sort("designer", "region", "chip")
           .with_columns((pl.col("shipped_h100e") / pl.col("shipped_h100e").sum().over("designer")).alias("share"))
           .filter(pl.col("share") > 0).select("designer", "region", "chip", "share"))
    windows_df = windows_frame(windows)
    inside = ((pl.col("first") <= pl.col("quarter_start"))
              & (pl.col("last").is_null() | (pl.col("quarter_start") <= pl.col("last"))))
    # a projected quarter's H100e over the designer's recent mix; a chip past its window (or without an H100e
    # figure) passes its share to the designer's newest accelerator inside its window in the same region
    proj = (projected_q.join(mix, on="designer")
            .join(windows_df, on=["chip", "region"], how="left")
            .with_columns((inside.fill_null(False) & pl.col("chip").is_in(per_chip["chip"].implode())).alias("keeps")))
    newest = (proj.select("quarter_start", "designer", "region").unique()
              .join(per_chip.filter(pl.col("chip_class") != "cpu").select("designer", "chip"), on="designer")
              .join(windows_df, on=["chip", "region"])
              .filter(inside)
              .sort("quarter_start", "designer", "region", "first", "chip")
              .group_by("quarter_start", "designer", "region", maintain_order=True)
              .agg(pl.col("chip").last().alias("successor")))
    # no chip of the designer ships into the region (e.g. Nvidia in China after the H20): unplaced (chip null)
    placed = (proj.join(newest, on=["quarter_start", "designer", "region"], how="left")
              .with_columns(pl.when(pl.col("keeps")).then(pl.col("chip")).otherwise(pl.col("successor")).alias("target"))
              .sort("quarter_start", "designer", "region", "chip")
              .group_by("quarter_start", "designer", "region", "target", maintain_order=True)
              .agg(pl.col("share").sum(), pl.col("designer_h100e").first())
              .join(per_chip.select(pl.col("chip").alias("target"), "h100e_per_chip"), on="target", how="left")
              .select("quarter_start", "designer", "region", pl.col("target").alias("chip"),
                      (pl.col("designer_h100e") * pl.col("share")).alias("shipped_h100e"),
                      (pl.col("designer_h100e") * pl.col("share") / pl.col("h100e_per_chip")).fill_null(0.0)
                      .alias("shipped_units")))
    schema = {"quarter_start": pl.Date, "designer": pl.Utf8, "region": pl.Utf8, "chip": pl.Utf8,
              "shipped_h100e": pl.Float64, "shipped_units": pl.Float64}
    flows = pl.concat([
        counted.select(*schema).with_columns(pl.lit("observed").alias("basis")),
        placed.select(*schema).cast(schema).with_columns(pl.lit("projected").alias("basis")),
    ]).sort("quarter_start", "designer", "region", "chip", "basis", nulls_last=True)
    flows = flows.group_by("quarter_start", "designer", "region", "chip", "basis", maintain_order=True).agg(
        pl.col("shipped_h100e", "shipped_units").sum())
    quarters = pl.DataFrame({"quarter_start": pl.date_range(flows["quarter_start"].min(), flows["quarter_start"].max(),
                                                            "3mo", eager=True)})
    keys = flows.select("designer", "region", "chip").unique(maintain_order=True)
    grid = keys.join(quarters, how="cross")
    stock = (grid.join(flows.rename({"quarter_start": "shipped_quarter"}), on=["designer", "region", "chip"],
                       how="left", nulls_equal=True)
             .with_columns(((pl.col("quarter_start").dt.year() - pl.col("shipped_quarter").dt.year()) * 4
                            + (pl.col("quarter_start").dt.month() - pl.col("shipped_quarter").dt.month()) // 3)
                           .alias("age"))
             .with_columns(pl.when((pl.col("age") >= 0) & (pl.col("age") < life_quarters)).then(1.0).otherwise(0.0)
                           .alias("in_service"))
             .sort("quarter_start", "designer", "region", "chip", "shipped_quarter", nulls_last=True)
             .group_by("quarter_start", "designer", "region", "chip", maintain_order=True)
             .agg((pl.col("shipped_units") * pl.col("in_service")).sum().alias("installed_units"),
                  (pl.col("shipped_h100e") * pl.col("in_service")).sum().alias("installed_h100e"),
                  pl.col("shipped_units").filter(pl.col("age") == 0).sum().alias("shipped_units"),
                  pl.col("shipped_h100e").filter(pl.col("age") == 0).sum().alias("shipped_h100e"),
                  pl.col("basis").filter(pl.col("age") == 0).first().alias("basis")))
    return (stock.with_columns(pl.col("basis").fill_null("none"))
            .filter((pl.col("installed_units") > 0) | (pl.col("shipped_h100e") > 0))
            .sort("quarter_start", "region", "designer", "chip", nulls_last=True))


def shipment_mix(installed: pl.DataFrame, chips: dict[str, Chip], region: str, quarter: dt.date,
                 windows: dict) -> dict[str, float]:
    """The `shipment_mix` policy: chips bought in `quarter` and `region` in proportion to that quarter's
    shipped H100e (the latest quarter with shipments at or before it), among chips in their window that
    have a price, a power figure and memory specs (what the serving model and the costs need)."""
    part = installed.filter((pl.col("region") == region) & (pl.col("quarter_start") <= quarter)
                            & (pl.col("shipped_h100e") > 0) & pl.col("chip").is_not_null())
    if part.height == 0:
        return {}
    latest = part.filter(pl.col("quarter_start") == part["quarter_start"].max())
    out = {}
    for chip, h in (latest.sort("chip", "designer").group_by("chip", maintain_order=True)
                    .agg(pl.col("shipped_h100e").sum()).iter_rows()):
        c = chips.get(chip)
        if c is None or not available(windows, chip, region, quarter) or not servable(c) or not costed(c):
            continue
        out[chip] = out.get(chip, 0.0) + h
    total = sum(out.values())
    return {c: v / total for c, v in out.items()} if total > 0 else {}


def servable(chip: Chip) -> bool:
    """The serving model can rate the chip: memory capacity and bandwidth in the spec sheet."""
    return chip.memory_bytes > 0 and bool(chip.sram_tbps if chip.sram_only else chip.mem_tbps)


def costed(chip: Chip) -> bool:
    return chip.tdp_w is not None and chip.unit_price_usd is not None and chip.h100e is not None


def _units_by_region(installed: pl.DataFrame) -> dict[tuple[dt.date, str], dict[str, float]]:
    out: dict[tuple[dt.date, str], dict[str, float]] = {}
    part = (installed.filter(pl.col("chip").is_not_null() & (pl.col("installed_units") > 0))
            .sort("quarter_start", "region", "chip", "designer")
            .group_by("quarter_start", "region", "chip", maintain_order=True).agg(pl.col("installed_units").sum()))
    for q, region, chip, units in part.iter_rows():
        out.setdefault((q, region), {})[chip] = float(units)
    return out


def _stock_at(units: dict, period: dt.date, region: str) -> dict[str, float]:
    """Installed units in `region` at `period` (the latest quarter of the table at or before it)."""
    quarters = sorted(q for q, r in units if r == region and q <= period)
    return units[(quarters[-1], region)] if quarters else {}


def quarters_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 4 + (b.month - a.month) // 3


def stock_flow_table(flows: list[dict], chips: dict[str, Chip], region: dict[str, str]) -> pl.DataFrame:
    """marts.fleet_stock_flow: per quarter, scenario, segment and chip, the installed inference chips, the chips
    in use and their utilisation (in [0, 1]), the tokens/day they serve, and the chips bought in the quarter."""
    kept = [f for f in flows if f["chip"] is not None]
    draws = max([np.size(f["installed"]) for f in kept], default=1)
    installed = stack_draws([f["installed"] for f in kept], draws)
    used = stack_draws([f["used"] for f in kept], draws)
    bought = stack_draws([f["bought"] for f in kept], draws)
    price = np.array([[chips[f["chip"]].unit_price_usd or 0.0] for f in kept]).reshape(-1, 1)
    util = np.where(installed > 0, used / np.maximum(installed, 1e-300), np.nan)
    columns = {"period_start": [f["period_start"] for f in kept], "scenario": [f["scenario"] for f in kept],
               "segment": [f["segment"] for f in kept], "region": [region[f["segment"]] for f in kept],
               "chip": [f["chip"] for f in kept], "chip_class": [chips[f["chip"]].chip_class for f in kept],
               "installed_inference_chips_median": row_medians(installed), "chips_in_use_median": row_medians(used),
               **dict(zip(("utilisation_p5", "utilisation_median", "utilisation_p95"), row_percentiles(util))),
               "served_tokens_per_day_median": row_medians(stack_draws([f["served_tokens_per_day"] for f in kept],
                                                                       draws)),
               **dict(zip(("bought_chips_p5", "bought_chips_median", "bought_chips_p95"), row_percentiles(bought))),
               "bought_capex_usd_median": row_medians(bought * price)}
    schema = {"period_start": pl.Date, "scenario": pl.Utf8, "segment": pl.Utf8, "region": pl.Utf8, "chip": pl.Utf8,
              "chip_class": pl.Utf8, "installed_inference_chips_median": pl.Float64, "chips_in_use_median": pl.Float64,
              "utilisation_p5": pl.Float64, "utilisation_median": pl.Float64, "utilisation_p95": pl.Float64,
              "served_tokens_per_day_median": pl.Float64, "bought_chips_p5": pl.Float64,
              "bought_chips_median": pl.Float64, "bought_chips_p95": pl.Float64, "bought_capex_usd_median": pl.Float64}
    return (pl.DataFrame(columns, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))
            .sort("period_start", "scenario", "segment", "chip"))
