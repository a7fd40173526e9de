"""What changed between two vintages of a feed: keys that are new, values restated, keys that vanished
(inside the later vintage's scope). Pure polars; marts.source_revisions and `tokens2chips refresh` both use it."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from feeds.formats import KEYS, SCOPE, VALUES

REVISION_SCHEMA = {"source": pl.Utf8, "key": pl.Utf8, "field": pl.Utf8, "change": pl.Utf8, "old_value": pl.Float64,
                   "new_value": pl.Float64, "relative_change": pl.Float64, "old_vintage": pl.Utf8,
                   "new_vintage": pl.Utf8}
RELATIVE_TOLERANCE = 1e-9  # float noise is not a restatement


@dataclass(frozen=True)
class Counts:
    rows: int
    new: int
    restated: int  # keys with at least one value restated
    vanished: int


def _key(source: str) -> pl.Expr:
    return pl.concat_str([pl.col(k).cast(pl.Utf8).fill_null("") for k in KEYS[source]], separator=" | ").alias("key")


def compare(source: str, previous: pl.DataFrame | None, current: pl.DataFrame, old_vintage: str = "",
            new_vintage: str = "") -> tuple[pl.DataFrame, Counts]:
    """Revisions from `previous` to `current` (frames of one source's columns) and their counts."""
    keys, values = KEYS[source], VALUES[source]
    if previous is None or previous.height == 0:
        return pl.DataFrame(schema=REVISION_SCHEMA), Counts(current.height, current.height, 0, 0)
    old = previous.select(*keys, *values)
    new = current.select(*keys, *values)
    joined = old.join(new, on=list(keys), how="inner", suffix="__new", nulls_equal=True)
    restated = pl.concat([
        joined.select(_key(source), pl.lit(v).alias("field"), pl.col(v).cast(pl.Float64).alias("old_value"),
                      pl.col(f"{v}__new").cast(pl.Float64).alias("new_value"))
        for v in values]).filter(
        (pl.col("old_value").is_null() != pl.col("new_value").is_null())
        | ((pl.col("new_value") - pl.col("old_value")).abs()
           > RELATIVE_TOLERANCE * pl.max_horizontal(pl.col("old_value").abs(), pl.col("new_value").abs())))
    restated = restated.with_columns(pl.lit("restated").alias("change"))
    kind, column = SCOPE[source]
    if kind == "range":
        in_scope = pl.col(column).is_between(new[column].min(), new[column].max())
    else:
        in_scope = pl.col(column).is_in(new[column].unique().implode())
    gone = old.filter(in_scope).join(new.select(keys), on=list(keys), how="anti", nulls_equal=True)
    vanished = gone.select(_key(source), pl.lit(values[0]).alias("field"),
                           pl.col(values[0]).cast(pl.Float64).alias("old_value"),
                           pl.lit(None, pl.Float64).alias("new_value"), pl.lit("vanished").alias("change"))
    added = new.join(old.select(keys), on=list(keys), how="anti", nulls_equal=True).height
    out = pl.concat([restated, vanished], how="diagonal").with_columns(
        pl.lit(source).alias("source"),
        pl.when(pl.col("old_value") != 0).then((pl.col("new_value") - pl.col("old_value"))
                                               / pl.col("old_value").abs()).alias("relative_change"),
        pl.lit(old_vintage).alias("old_vintage"), pl.lit(new_vintage).alias("new_vintage"),
    ).select(list(REVISION_SCHEMA)).cast(REVISION_SCHEMA).sort("key", "field")
    counts = Counts(current.height, added, restated["key"].n_unique(), vanished.height)
    return out, counts


def revisions(source: str, vintages: list[tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """Every revision between consecutive vintages (oldest first) of one source."""
    parts = [compare(source, vintages[i - 1][1], vintages[i][1], vintages[i - 1][0], vintages[i][0])[0]
             for i in range(1, len(vintages))]
    return pl.concat(parts) if parts else pl.DataFrame(schema=REVISION_SCHEMA)
