"""Overdose warnings (varsler) from overdosefare.no or a similar notice page.

When the location serves RSS or Atom, entries are read with feedparser. Otherwise the
listing page is read with CSS selectors kept in config. When the item selector finds
nothing (the site changed its layout), every heading that has a date in its surrounding
block is taken as a notice instead, and a problem says so.
"""

from __future__ import annotations

import urllib.parse
import warnings
from datetime import UTC, date, datetime, time
from typing import ClassVar

import soupsieve
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag
from pydantic import Field, field_validator

from feeds.base import BaseFeed, FeedOptions, Item, ParseResult, Problem
from feeds.feedxml import content_key, looks_like_feed, normalise_link, parse_feed, refuse_reason
from feeds.matching import SubstanceMatcher
from feeds.text import decode_bytes, find_date, markup_too_big, normalise_space

_HEADINGS = "h1, h2, h3, h4"


class NoticePageOptions(FeedOptions):
    #: One element per notice on the listing page.
    item_selector: str = "article"
    #: Inside an item: its title, date, link and text.
    title_selector: str = "h2, h3"
    date_selector: str = "time[datetime]"
    link_selector: str = "a[href]"
    text_selector: str = "p"
    #: Keep notices naming no monitored substance (a warning about a new substance is news).
    keep_unmatched: bool = True
    max_items: int = Field(default=1000, ge=1)

    @field_validator(
        "item_selector", "title_selector", "date_selector", "link_selector", "text_selector"
    )
    @classmethod
    def _css(cls, value: str) -> str:
        try:
            soupsieve.compile(value)
        except soupsieve.SelectorSyntaxError as err:
            raise ValueError(
                f"{value!r} is not a CSS selector: {str(err).splitlines()[0]}"
            ) from None
        return value


class NoticePageFeed(BaseFeed):
    """Warning notices as items with ``kind="notice"``, from a feed or a listing page."""

    #: parse() takes the response's Content-Type.
    takes_content_type: ClassVar[bool] = True
    kind: ClassVar[str] = "overdosefare"
    Options: ClassVar[type[FeedOptions]] = NoticePageOptions
    produces: ClassVar[str] = "items"

    options: NoticePageOptions

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime,
              content_type: str | None = None) -> ParseResult:
        matcher = SubstanceMatcher(self.substances)
        opts = self.options
        if looks_like_feed(raw) or (raw.strip() and refuse_reason(raw)):
            return parse_feed(
                raw,
                content_type=content_type,
                location=location,
                source=self.name,
                fetched_at=fetched_at,
                matcher=matcher.match,
                match_fields=("title", "summary"),
                undated="skip",
                keep_unmatched=opts.keep_unmatched,
                kind="notice",
                region=self.region,
                max_items=opts.max_items,
            )
        return self._parse_html(raw, location, matcher)

    def _parse_html(self, raw: bytes, location: str, matcher: SubstanceMatcher) -> ParseResult:
        result = ParseResult()
        if not raw.strip():
            result.problems.append(Problem(location, "empty document", fatal=True))
            return result
        too_big = markup_too_big(raw)
        if too_big:
            result.problems.append(Problem(location, too_big, fatal=True))
            return result
        text, _ = decode_bytes(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            soup = BeautifulSoup(text, "html.parser")
        opts = self.options
        blocks = _select(soup, opts.item_selector)
        if not blocks:
            blocks = _heading_blocks(soup)
            if blocks:
                result.problems.append(
                    Problem(
                        location,
                        f"item_selector {opts.item_selector!r} matched nothing; "
                        f"read {len(blocks)} notices by their headings (has the layout changed?)",
                    )
                )
            else:
                result.problems.append(
                    Problem(location, "no notices found (not a notice page?)", fatal=True))
                return result
        blocks = blocks[: opts.max_items]
        notices: list[tuple[int, Item]] = []
        problems: list[tuple[int, Problem]] = []
        # Innermost first, each detached once read: on a page with unclosed tags the
        # parser nests later notices inside earlier ones, and they must not run together.
        for n in range(len(blocks), 0, -1):
            block = blocks[n - 1]
            item = self._notice(block, n, location, matcher, problems)
            block.extract()
            if item is not None:
                notices.append((n, item))
        seen: set[str] = set()
        for _, item in sorted(notices, key=lambda pair: pair[0]):
            if item.key not in seen:
                seen.add(item.key)
                result.items.append(item)
        result.problems.extend(p for _, p in sorted(problems, key=lambda pair: pair[0]))
        return result

    def _notice(
        self,
        block: Tag,
        n: int,
        location: str,
        matcher: SubstanceMatcher,
        problems: list[tuple[int, Problem]],
    ) -> Item | None:
        opts = self.options
        where = f"{location} notice {n}"
        title_el = _first(block, opts.title_selector) or _first(block, _HEADINGS)
        title = normalise_space(title_el.get_text(" ")) if title_el else ""
        if not title:
            problems.append((n, Problem(where, "no title; skipped")))
            return None
        day = _notice_date(block, opts.date_selector)
        if day is None:
            problems.append((n, Problem(where, f"{title[:60]!r}: no date; skipped")))
            return None
        link_el = _first(block, opts.link_selector)
        if link_el is None and block.name == "a" and block.get("href"):
            link_el = block
        link = None
        if link_el is not None and isinstance(link_el.get("href"), str):
            href = link_el["href"].strip()
            is_web = location.startswith(("http://", "https://"))
            link = urllib.parse.urljoin(location, href) if is_web else href
        body = " ".join(
            normalise_space(p.get_text(" ")) for p in _select(block, opts.text_selector)
        )
        if not body:
            body = normalise_space(block.get_text(" "))
        substances = matcher.match(f"{title}\n{body}")
        if not substances and not opts.keep_unmatched:
            return None
        if link and link.startswith(("http://", "https://")):
            key = "url:" + normalise_link(link)
        else:
            key = content_key("notice", title, day.isoformat())
        return Item(
            key=key,
            source=self.name,
            published_at=datetime.combine(day, time(0, 0), tzinfo=UTC),
            title=title,
            link=link,
            summary=body[:2000],
            substances=substances,
            kind="notice",
            region=self.region,
        )


def _select(node: Tag, selector: str) -> list[Tag]:
    try:
        return list(node.select(selector))
    except Exception:  # soupsieve raises its own SelectorSyntaxError; config is checked elsewhere
        return []


def _first(node: Tag, selector: str) -> Tag | None:
    found = _select(node, selector)
    return found[0] if found else None


def _notice_date(block: Tag, selector: str) -> date | None:
    el = _first(block, selector)
    if el is not None:
        for candidate in (el.get("datetime"), el.get("content"), el.get_text(" ")):
            if isinstance(candidate, str) and candidate.strip():
                found = _iso_or_text(candidate)
                if found:
                    return found
    for t in _select(block, "time"):
        found = _iso_or_text(str(t.get("datetime") or t.get_text(" ")))
        if found:
            return found
    return find_date(block.get_text(" "))


def _iso_or_text(value: str) -> date | None:
    value = value.strip()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return find_date(value)


def _heading_blocks(soup: BeautifulSoup) -> list[Tag]:
    """Fallback: the smallest block around each heading that holds a date and one heading."""
    blocks: list[Tag] = []
    for heading in soup.select(_HEADINGS):
        node: Tag | None = heading.parent
        while node is not None and node.name not in ("body", "html", "[document]"):
            if len(node.select(_HEADINGS)) > 1:
                break
            if node.find("time") is not None or find_date(node.get_text(" ")):
                if node not in blocks:
                    blocks.append(node)
                break
            node = node.parent
    return blocks
