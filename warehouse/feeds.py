"""The feeds' saved payloads into the warehouse: raw.feed_<source> holds every vintage known at the as-of
date (rows of each snapshot, with its vintage), raw.feed_snapshots one row per snapshot (manifest), and
marts.source_revisions every value restated between consecutive vintages. No Dagster here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl

from feeds import store
from feeds.catalog import SOURCES
from feeds.formats import SCHEMAS, parse
from feeds.revisions import REVISION_SCHEMA, revisions
from warehouse.io import replace_tables_from_frames

VINTAGE_SCHEMA = {"vintage": pl.Utf8, "vintage_as_of": pl.Datetime("us"), "retrieved_at": pl.Datetime("us")}
# the manifests; a snapshot's row count is not kept here: count raw.feed_<source> by vintage
SNAPSHOT_SCHEMA = {"source": pl.Utf8, "vintage": pl.Utf8, "as_of": pl.Datetime("us"), "retrieved_at": pl.Datetime("us"),
                   "url": pl.Utf8, "licence": pl.Utf8, "citation": pl.Utf8, "sha256": pl.Utf8, "bytes": pl.Int64,
                   "directory": pl.Utf8}


def table(source: str) -> str:
    return f"raw.feed_{source}"


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def known(root: Path, source: str, as_of: dt.date | None) -> list[store.Snapshot]:
    """The snapshots of `source` whose as_of date is on or before `as_of` (all of them without one)."""
    return [s for s in store.snapshots(root, source) if as_of is None or s.as_of.date() <= as_of]


def feed_frame(root: Path, source: str, as_of: dt.date | None) -> pl.DataFrame:
    """The rows of every vintage of `source` known at `as_of`, each with its vintage and times."""
    rows = [parse(source, snap.read()).frame.with_columns(
                pl.lit(snap.vintage).alias("vintage"), pl.lit(_naive(snap.as_of)).alias("vintage_as_of"),
                pl.lit(_naive(snap.retrieved_at)).alias("retrieved_at"))
            for snap in known(root, source, as_of)]
    schema = {**SCHEMAS[source], **VINTAGE_SCHEMA}
    return pl.concat(rows).cast(schema) if rows else pl.DataFrame(schema=schema)


def load_feed(con: duckdb.DuckDBPyConnection, root: Path, source: str, as_of: dt.date | None) -> int:
    """Replace raw.feed_<source> with every vintage known at `as_of`; returns its row count."""
    return replace_tables_from_frames(con, {table(source): feed_frame(root, source, as_of)})[table(source)]


def snapshot_table(root: Path, as_of: dt.date | None) -> pl.DataFrame:
    """raw.feed_snapshots: one row per snapshot known at `as_of`, from the manifests (no payload is read)."""
    return pl.DataFrame([{"source": source, "vintage": snap.vintage, "as_of": _naive(snap.as_of),
                          "retrieved_at": _naive(snap.retrieved_at), "url": snap.url, "licence": snap.licence,
                          "citation": snap.citation, "sha256": snap.sha256, "bytes": sum(b for *_, b in snap.files),
                          "directory": str(snap.directory)}
                         for source in SOURCES for snap in known(root, source, as_of)], schema=SNAPSHOT_SCHEMA)


def revision_frame(data: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """marts.source_revisions from the raw feed frames (source -> raw.feed_<source> rows): every restated or
    vanished value between consecutive vintages, per source, with both vintages' as-of times."""
    parts, times = [], []
    for source, frame in data.items():
        order = (frame.select("vintage", "vintage_as_of", "retrieved_at").unique()
                 .sort("vintage_as_of", "retrieved_at", "vintage"))
        parts.append(revisions(source, [(v, frame.filter(pl.col("vintage") == v)) for v in order["vintage"]]))
        times.append(order.select(pl.lit(source).alias("source"), "vintage", "vintage_as_of"))
    out = pl.concat(parts) if parts else pl.DataFrame(schema=REVISION_SCHEMA)
    times = pl.concat(times) if times else pl.DataFrame(schema={"source": pl.Utf8, "vintage": pl.Utf8,
                                                                "vintage_as_of": pl.Datetime("us")})
    for side in ("old", "new"):
        out = out.join(times.rename({"vintage": f"{side}_vintage", "vintage_as_of": f"{side}_vintage_as_of"}),
                       on=["source", f"{side}_vintage"], how="left")
    return out.select(*REVISION_SCHEMA, "old_vintage_as_of", "new_vintage_as_of").sort(
        "source", "new_vintage", "key", "field")


def refresh_tables(con: duckdb.DuckDBPyConnection, root: Path, as_of: dt.date | None) -> dict[str, int]:
    """What `tokens2chips refresh` writes: every raw.feed_<source>, raw.feed_snapshots and
    marts.source_revisions, swapped in together in one transaction (a reader sees all old or all new)."""
    data = {source: feed_frame(root, source, as_of) for source in SOURCES}
    return replace_tables_from_frames(con, {**{table(s): f for s, f in data.items()},
                                            "raw.feed_snapshots": snapshot_table(root, as_of),
                                            "marts.source_revisions": revision_frame(data)})
