"""The kinds of source warnd can read: ``kind`` string -> adapter class.

Built explicitly (no import-time discovery); a kind registered twice is an error.
"""

from __future__ import annotations

from feeds.counts import CountTableFeed
from feeds.notices import NoticePageFeed
from feeds.panel import TrendPanelFeed
from feeds.rss import RssFeed
from feeds.trends_csv import TrendsCsvFeed


def _build(*classes: type) -> dict[str, type]:
    feeds: dict[str, type] = {}
    for cls in classes:
        kind = cls.kind  # type: ignore[attr-defined]
        if kind in feeds:
            raise RuntimeError(
                f"feed kind {kind!r} registered twice: {feeds[kind].__name__}, {cls.__name__}"
            )
        feeds[kind] = cls
    return feeds


FEEDS: dict[str, type] = _build(
    RssFeed, TrendsCsvFeed, NoticePageFeed, CountTableFeed, TrendPanelFeed
)


def feed_class(kind: str) -> type:
    """The adapter class for ``kind``; ``KeyError`` naming the known kinds otherwise."""
    try:
        return FEEDS[kind]
    except KeyError:
        known = ", ".join(sorted(FEEDS))
        raise KeyError(f"unknown source kind {kind!r}; known kinds: {known}") from None
