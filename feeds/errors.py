"""The two ways a feed can fail: a payload or fetch that is wrong (exit 1, nothing stored) and no network
(one line, exit 0, nothing changed)."""

from __future__ import annotations


class FeedError(Exception):
    """A fetch failed or a payload breaks its source's published format. The message names the source and,
    for a payload, the field (JSON path or CSV column) and the row."""

    def __init__(self, source: str, problem: str, field: str | None = None):
        self.source, self.problem, self.field = source, problem, field
        where = f" field '{field}'" if field else ""
        super().__init__(f"{source}:{where} {problem}")


class FeedOffline(FeedError):
    """No network (the host name does not resolve, or the network is unreachable)."""
