"""RSS/Atom handling shared by :mod:`feeds.rss` and :mod:`feeds.notices`.

feedparser is always given bytes (a ``str`` is tried as a file path). Before parsing,
documents declaring entities in a DOCTYPE are refused: no feed needs them and they are
how entity-expansion attacks ("billion laughs") work.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import feedparser

from feeds.base import Item, ParseResult, Problem
from feeds.text import looks_binary, markup_too_big, strip_html

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_FEED_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:rss|feed|rdf:RDF)\b", re.S
)

#: Query parameters dropped from links before they become item keys.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "ref", "ref_src",
     "cmpid", "xtor", "ncid", "sr_share", "_ga", "yclid"}
)  # fmt: skip


def looks_like_feed(raw: bytes) -> bool:
    """True when the document starts like RSS or Atom (after an XML declaration)."""
    return _FEED_START.match(raw[:4096].lstrip(b"\xef\xbb\xbf")) is not None


def refuse_reason(raw: bytes) -> str | None:
    """Why a document must not be handed to an XML parser, or None."""
    if not raw.strip():
        return "empty document"
    if looks_binary(raw):
        return "binary data, not a feed"
    if _DOCTYPE.search(raw) and _ENTITY_DECL.search(raw):
        return "DOCTYPE with ENTITY declarations refused (entity expansion)"
    return markup_too_big(raw, xml=True)


def normalise_link(link: str) -> str:
    """Stable form of an article URL for use as an item key.

    Scheme and host are lower-cased, ``http`` counts as ``https``, a leading ``www.``,
    the fragment, ``utm_*`` and other tracking parameters are dropped, remaining query
    parameters are sorted, and a trailing slash is removed.
    """
    parts = urllib.parse.urlsplit(link.strip())
    scheme = parts.scheme.lower()
    if scheme == "http":
        scheme = "https"
    host = (parts.hostname or "").lower()
    host = host.removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = sorted(
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    )
    path = parts.path.rstrip("/") if parts.path != "/" else ""
    return urllib.parse.urlunsplit((scheme, host, path, urllib.parse.urlencode(query), ""))


def content_key(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _is_web(link: str | None) -> bool:
    return bool(link) and urllib.parse.urlsplit(str(link).strip()).scheme.lower() in (
        "http", "https")


def guid_id(source: str, guid: str) -> str:
    """The identity a feed's ``guid`` (Atom ``id``) gives an entry: within its source only
    (two feeds may both number their entries 1, 2, 3), a URL normalised as a link is."""
    guid = guid.strip()
    return f"guid@{source}:" + (normalise_link(guid) if _is_web(guid) else guid)


def item_ids(source: str, link: str | None, guid: str | None, title: str,
             when: str) -> tuple[str, ...]:
    """An entry's identities, strongest first: its guid within the source, its normalised
    http(s) link; without both, a hash of title and date."""
    ids: list[str] = []
    if guid and guid.strip():
        ids.append(guid_id(source, guid))
    if link and _is_web(link):
        ids.append("url:" + normalise_link(link))
    return tuple(ids) or (content_key(title, when),)


def item_key(ids: Sequence[str]) -> str:
    """The key an entry is stored under when it is new: its link identity when it has
    one (an article syndicated by two feeds is one item), else its first identity."""
    return next((i for i in ids if i.startswith("url:")), ids[0])


def _entry_time(entry: Any) -> datetime | None:
    # dict.get avoids feedparser's deprecated updated->published mapping (and its warning).
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = dict.get(entry, key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def parse_feed(
    raw: bytes,
    *,
    location: str,
    source: str,
    fetched_at: datetime,
    matcher: Callable[[str], tuple[str, ...]],
    match_fields: Sequence[str],
    undated: str,
    keep_unmatched: bool,
    kind: str,
    region: str,
    max_items: int,
    content_type: str | None = None,
) -> ParseResult:
    """Items and problems from an RSS/Atom document (see :class:`feeds.rss.RssFeed`),
    and how far it reaches: its newest dated entry, matched or not (``newest``), and its
    oldest (``oldest``).

    ``content_type`` is the response's Content-Type header; without it feedparser is
    told nothing about the transport (as for a file), never an HTTP response lacking it.
    """
    problems: list[Problem] = []
    reason = refuse_reason(raw)
    if reason:
        return ParseResult(problems=[Problem(location, reason, fatal=True)])
    headers = {}
    if content_type and location.startswith(("http://", "https://")):
        headers = {"content-location": location, "content-type": content_type}
    d = feedparser.parse(
        raw, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    if not d.get("version"):
        why = (
            _first_line(d.get("bozo_exception")) if d.get("bozo") else "no RSS or Atom root element"
        )
        return ParseResult(
            problems=[Problem(location, f"not an RSS/Atom feed ({why})", fatal=True)])
    if d.get("bozo"):
        problems.append(
            Problem(
                location, f"malformed feed, read leniently: {_first_line(d.get('bozo_exception'))}"
            )
        )
    entries = d.get("entries", [])
    if len(entries) > max_items:
        problems.append(
            Problem(location, f"{len(entries)} entries, only the first {max_items} read")
        )
        entries = entries[:max_items]
    items: list[Item] = []
    newest: datetime | None = None
    oldest: datetime | None = None
    for n, entry in enumerate(entries, start=1):
        where = f"{location} item {n}"
        title = strip_html(entry.get("title", ""))
        summary = strip_html(entry.get("summary", ""))
        if not summary and entry.get("content"):
            summary = strip_html(" ".join(c.get("value", "") for c in entry["content"]))
        link = entry.get("link") or None
        published = _entry_time(entry)
        if published is not None and (newest is None or published > newest):
            newest = published
        if published is not None and (oldest is None or published < oldest):
            oldest = published
        when = published.isoformat() if published else "undated\x1f" + summary
        if published is None:
            if undated == "fetched_at":
                published = fetched_at.astimezone(UTC)
            else:
                raw_date = entry.get("published") or entry.get("updated") or "none"
                problems.append(
                    Problem(where, f"no parsable date ({str(raw_date)[:60]!r}); skipped")
                )
                continue
        texts = {
            "title": title,
            "summary": summary,
            "tags": " ".join(t.get("term", "") or "" for t in entry.get("tags", [])),
        }
        substances = matcher(" \n ".join(texts[f] for f in match_fields))
        if not substances and not keep_unmatched:
            continue
        # an undated entry's key holds its text, not the time it was read, so that
        # every later read of the feed finds it again
        ids = item_ids(source, link, entry.get("id"), title, when)
        items.append(
            Item(
                key=item_key(ids),
                ids=ids,
                source=source,
                published_at=published,
                title=title,
                link=link,
                summary=summary[:2000],
                substances=substances,
                kind=kind,
                region=region,
            )
        )
    return ParseResult(items=items, problems=problems, newest=newest, oldest=oldest)


def _first_line(err: object) -> str:
    text = str(err or "").strip() or type(err).__name__
    return text.splitlines()[0][:160]
