"""One refresh of one feed: take a payload (fetched, or a saved file given by the user), parse it (a bad
payload stops here: nothing is stored), keep it as a snapshot, and count what it changed against the
previous vintage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from feeds import http, store
from feeds.catalog import FEEDS, FeedSettings, headers, request_url
from feeds.errors import FeedError
from feeds.formats import parse
from feeds.revisions import Counts, compare


@dataclass(frozen=True)
class Outcome:
    source: str
    status: str  # 'stored' | 'unchanged' | 'skipped'
    message: str
    snapshot: store.Snapshot | None = None
    counts: Counts | None = None


def newest_day(source: str, root: Path) -> dt.date | None:
    saved = store.snapshots(root, source)
    if not saved or source != "openrouter":
        return None
    return parse(source, saved[-1].read()).frame["day"].max()


def refresh(source: str, root: Path, *, payload: Path | list[Path] | None = None, settings: FeedSettings = FeedSettings(),
            now: dt.datetime | None = None, policy: http.HttpPolicy = http.HttpPolicy(),
            sleep: Callable[[float], None] | None = None, log: Callable[[str], None] = lambda _: None) -> Outcome:
    """Refresh `source` into the snapshot store under `root`. Raises FeedError (bad payload, failed fetch)
    and FeedOffline (no network); neither leaves anything stored."""
    feed = FEEDS[source]
    now = now or dt.datetime.now(dt.timezone.utc)
    if payload is not None:
        given = [Path(p) for p in (payload if isinstance(payload, list) else [payload])]
        missing = [p for p in given if not p.is_file()]
        if missing:
            raise FeedError(source, f"payload file {missing[0]} not found")
        files = {p.name: p.read_bytes() for p in given}
        url = f"payload file{'s' if len(files) > 1 else ''} {', '.join(files)} (as served by {feed.default_base})"
    else:
        if feed.needs_key and not settings.keys.get(source):
            return Outcome(source, "skipped", f"{source}: skipped: {feed.needs_key} is not set (any valid key; "
                           "see README 'Live data'); nothing changed")
        url = request_url(source, settings, now.date(), newest_day(source, root))
        kwargs = {"sleep": sleep} if sleep else {}
        files = {feed.file_name: http.get(source, url, headers(source, settings), policy, log=log, **kwargs)}
        url = http.redact(url)
    parsed = parse(source, files)
    as_of = parsed.as_of or now
    saved = store.snapshots(root, source)
    earlier = [s for s in saved if s.as_of <= as_of]
    previous = earlier[-1] if earlier else None
    snapshot, created = store.save(root, source, files, as_of=as_of, url=url, licence=feed.licence,
                                   citation=feed.citation.format(as_of=as_of.date().isoformat()), retrieved_at=now)
    if not created:
        return Outcome(source, "unchanged", f"{source}: {parsed.frame.height:,} rows, unchanged (same payload as "
                       f"snapshot {snapshot.vintage}), as_of {as_of.isoformat()}", snapshot,
                       Counts(parsed.frame.height, 0, 0, 0))
    prior = parse(source, previous.read()).frame if previous is not None else None
    _, counts = compare(source, prior, parsed.frame)
    vanished = f", {counts.vanished:,} vanished (earlier values kept)" if counts.vanished else ""
    return Outcome(source, "stored", f"{source}: {counts.rows:,} rows, {counts.new:,} new, {counts.restated:,} "
                   f"restated{vanished}, as_of {as_of.isoformat()} (snapshot {snapshot.directory})",
                   snapshot, counts)
