"""The kinds of source warnd can read: ``kind`` string -> adapter class.

Built explicitly (no import-time discovery); a kind registered twice is an error.
An adapter's module is imported the first time its kind is asked for, so a
command that reads only count tables never loads the HTML and feed parsers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

#: kind -> "module:Class"; each class's own ``kind`` must be its key (a test checks)
_KINDS = {
    "rss": "feeds.rss:RssFeed",
    "google_trends": "feeds.trends_csv:TrendsCsvFeed",
    "overdosefare": "feeds.notices:NoticePageFeed",
    "count_table": "feeds.counts:CountTableFeed",
    "trend_panel": "feeds.panel:TrendPanelFeed",
}


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


class _Feeds(Mapping[str, type]):
    """``FEEDS``: a mapping whose classes are imported on first use."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self._kinds = kinds
        self._loaded: dict[str, type] = {}

    def __getitem__(self, kind: str) -> type:
        cls = self._loaded.get(kind)
        if cls is None:
            module, name = self._kinds[kind].split(":")
            cls = getattr(importlib.import_module(module), name)
            if cls.kind != kind:  # type: ignore[attr-defined]
                raise RuntimeError(f"feed kind {kind!r} is registered for {name}, whose "
                                   f"kind is {cls.kind!r}")  # type: ignore[attr-defined]
            self._loaded[kind] = cls
        return cls

    def __contains__(self, kind: object) -> bool:  # without importing the adapter
        return kind in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


FEEDS: Mapping[str, type] = _Feeds(_KINDS)


def feed_class(kind: str) -> type:
    """The adapter class for ``kind``; ``KeyError`` naming the known kinds otherwise."""
    try:
        return FEEDS[kind]
    except KeyError:
        known = ", ".join(sorted(FEEDS))
        raise KeyError(f"unknown source kind {kind!r}; known kinds: {known}") from None
