"""The public feeds as Dagster assets: one observable source asset per feed (its data version is the hash of
the newest saved payload; the weekly fetch job fetches first when a network exists), the raw tables of
every vintage, the manifests, and marts.source_revisions."""

import warnings
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.checks import contract_results, contract_specs
from assets.ingest import POOL
from assets.resources import ProjectSettings
from feeds.catalog import FEEDS, SOURCES
from feeds.errors import FeedError, FeedOffline
from warehouse import feeds as wfeeds
from warehouse.io import replace_tables_from_frames


def snapshot_root(settings: ProjectSettings) -> Path:
    return Path(settings.data_dir) / "snapshots"


warnings.filterwarnings("ignore", message=".*observable_source_asset.*", category=dg.BetaWarning)


def _source_asset(source: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=["feeds", source],
        group_name="feeds",
        required_resource_keys={"settings"},
        description=f"{FEEDS[source].title}. Saved payloads under data/snapshots/{source}/ (licence: "
        f"{FEEDS[source].licence}); the data version is the newest payload's sha256. Observed by the weekly "
        "fetch_feeds job, which fetches first when a network exists.",
    )
    def _observe(context) -> dg.ObserveResult:
        settings: ProjectSettings = context.resources.settings
        root = snapshot_root(settings)
        if settings.fetch_feeds:
            from feeds.refresh import refresh
            from pipelines.settings import feed_settings

            try:
                outcome = refresh(source, root, settings=feed_settings(), log=context.log.info)
                context.log.info(outcome.message)
            except FeedOffline as exc:
                context.log.info(f"{exc}; reading the newest saved payload")
            except FeedError as exc:
                context.log.warning(f"{exc}; the previous vintage is kept")
        saved = wfeeds.known(root, source, None)
        newest = saved[-1] if saved else None
        return dg.ObserveResult(
            data_version=dg.DataVersion(newest.sha256 if newest else "no-snapshot"),
            metadata={"vintages": dg.MetadataValue.int(len(saved)),
                      "newest_as_of": dg.MetadataValue.text(newest.as_of.isoformat() if newest else "none")})

    return _observe


feed_sources = [_source_asset(source) for source in SOURCES]


def _raw_feed(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", f"feed_{source}"],
        deps=[dg.AssetKey(["feeds", source])],
        group_name="ingest",
        kinds={"duckdb", "json" if source != "epoch" else "csv"},
        pool=POOL,
        description=f"Every saved vintage of the {source} feed known at the run's as-of date, parsed "
        "(feeds/formats.py), one row per record and vintage (vintage, vintage_as_of, retrieved_at).",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
        try:
            with warehouse.get_connection() as con:
                rows = wfeeds.load_feed(con, snapshot_root(settings), source, settings.as_of_date())
        except FeedError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        context.log.info(f"raw.feed_{source}: {rows} rows")
        return dg.MaterializeResult(metadata={"row_count": dg.MetadataValue.int(rows)})

    return _asset


raw_feeds = [_raw_feed(source) for source in SOURCES]


@dg.asset(
    key=["raw", "feed_snapshots"],
    deps=[dg.AssetKey(["feeds", s]) for s in SOURCES],
    group_name="ingest",
    kinds={"duckdb"},
    pool=POOL,
    description="One row per saved payload known at the run's as-of date: source, vintage, as_of, retrieval "
    "time, URL (no secrets), licence, citation, sha256, bytes (the manifests of data/snapshots/).",
)
def feed_snapshots(context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: ProjectSettings):
    try:
        frame = wfeeds.snapshot_table(snapshot_root(settings), settings.as_of_date())
    except FeedError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    with warehouse.get_connection() as con:
        rows = replace_tables_from_frames(con, {"raw.feed_snapshots": frame})["raw.feed_snapshots"]
    context.log.info(f"raw.feed_snapshots: {rows} snapshots")
    return dg.MaterializeResult(metadata={"row_count": dg.MetadataValue.int(rows)})


@dg.asset(
    key=["marts", "source_revisions"],
    deps=[dg.AssetKey(["raw", f"feed_{s}"]) for s in SOURCES],
    group_name="marts",
    kinds={"duckdb", "polars"},
    pool=POOL,
    check_specs=contract_specs("marts.source_revisions"),
    description="Every value restated (or vanished) between consecutive vintages of a feed: source, key, field, "
    "old and new value, relative change, both vintages (feeds/revisions.py).",
)
def source_revisions(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
    with warehouse.get_connection() as con:
        frame = wfeeds.revision_frame({s: con.execute(f"select * from {wfeeds.table(s)}").pl() for s in SOURCES})
        rows = replace_tables_from_frames(con, {"marts.source_revisions": frame})["marts.source_revisions"]
        checks = contract_results(con, "marts.source_revisions")
    context.log.info(f"marts.source_revisions: {rows} revisions")
    return dg.MaterializeResult(metadata={"row_count": dg.MetadataValue.int(rows)}, check_results=checks)


feed_assets = [*raw_feeds, feed_snapshots, source_revisions]
