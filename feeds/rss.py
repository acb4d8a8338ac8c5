"""News feeds (RSS 0.9x/1.0/2.0, Atom): articles naming a monitored substance."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from feeds.base import BaseFeed, FeedOptions, ParseResult
from feeds.feedxml import parse_feed
from feeds.matching import SubstanceMatcher


class RssOptions(FeedOptions):
    #: Entry fields searched for substance names: any of title, summary, tags.
    match_fields: tuple[Literal["title", "summary", "tags"], ...] = ("title", "summary")
    #: What to do with entries without a parsable date: "skip" (and report a problem)
    #: or "fetched_at" (date them when fetched).
    undated: Literal["skip", "fetched_at"] = "skip"
    #: Entries read per document; more are reported and ignored.
    max_items: int = Field(default=5000, ge=1)


class RssFeed(BaseFeed):
    """Items from an RSS or Atom feed, one per entry that names a monitored substance.

    The store counts the items per substance and ISO week; this feed gives no counts.
    Malformed XML is read leniently (entries kept, a problem recorded). HTML, JSON,
    binary or empty documents give a problem and no items.
    """

    #: parse() takes the response's Content-Type.
    takes_content_type: ClassVar[bool] = True
    kind: ClassVar[str] = "rss"
    Options: ClassVar[type[FeedOptions]] = RssOptions
    produces: ClassVar[str] = "items"

    options: RssOptions

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime,
              content_type: str | None = None) -> ParseResult:
        opts = self.options
        return parse_feed(
            raw,
            content_type=content_type,
            location=location,
            source=self.name,
            fetched_at=fetched_at,
            matcher=SubstanceMatcher(self.substances).match,
            match_fields=opts.match_fields,
            undated=opts.undated,
            keep_unmatched=False,
            kind="article",
            region=self.region,
            max_items=opts.max_items,
        )
