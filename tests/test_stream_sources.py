"""Sources over time: what a source's polls store, week after week, with a moving clock.

Each test runs the real pipeline's polls on local files while the clock moves, and
checks what is stored against what a reader of the source would expect.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pytest

from tests.scenario import write_rss
from tests.service_kit import write_service_config
from tests.test_service import source
from warnd.cli import collect_status, main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

MONDAY = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _counts(cfg, substance: str, source: str = "media") -> dict[str, float]:
    st = Store.in_dir(cfg.state_dir)
    try:
        return {r["period"]: r["value"] for r in st.q(
            "SELECT period, value FROM observations WHERE source=? AND substance=? "
            "AND metric='count' ORDER BY period", [source, substance])}
    finally:
        st.close()


def _media(tmp_path: Path, location: str | Path, name: str = "config.toml", *,
           kind: str = "rss", extra: str = "", **config: str) -> Any:
    """A config whose one source, ``media``, reads ``location`` (``extra``: more of the
    source's keys; ``config``: more of the config, its targets or substances)."""
    return load_config(write_service_config(
        tmp_path / name, sources=source("media", str(location), kind=kind,
                                        dimension="interest") + extra, **config))


def test_weeks_without_articles_after_the_last_one_count_as_zero(tmp_path):
    """A news feed that stops naming the monitored substances, polled fine every day and
    bringing other news every day, has weeks with no articles of ours: those weeks are
    zero, up to the last complete week, not missing. (Before, the weekly counts ran
    only to the week of the source's latest article, so after a burst the series stayed
    at the burst for good: its rise could never end and the source was reported as
    having old data while it was polled.) A feed that brings nothing new at all (a feed
    no longer kept, a sample file) reaches no further than its newest entry: no weeks
    are counted after it, and the source shows old data."""
    feed = tmp_path / "data" / "feed.xml"
    burst = [(MONDAY + timedelta(days=d, hours=h), f"Politiet beslagla ketamin {d} {h}")
             for d in range(0, 14) for h in range(3)]
    write_rss(feed, burst)
    cfg = _media(tmp_path, feed)
    now = MONDAY + timedelta(days=14)  # the Monday after the burst's second week
    other = []
    for _ in range(6 * 7):  # six weeks of daily polls; each day other news
        other.append((now - timedelta(hours=2), f"Været blir fint {now:%d.%m}"))
        write_rss(feed, burst + other)
        res = Pipeline(cfg, clock=lambda now=now: now).poll("media")
        assert res.ok, res.error
        now += timedelta(days=1)
    counts = _counts(cfg, "ketamin")
    assert counts["2026-01-05"] == 21 and counts["2026-01-12"] == 21
    last_complete = (now - timedelta(days=1)).date()
    last_complete -= timedelta(days=last_complete.weekday() + 7)
    weeks_after = [(datetime(2026, 1, 19).date() + timedelta(weeks=i)).isoformat()
                   for i in range((last_complete - datetime(2026, 1, 19).date()).days // 7 + 1)]
    assert len(weeks_after) == 5
    assert {w: counts.get(w) for w in weeks_after} == dict.fromkeys(weeks_after, 0.0)
    media = next(s for s in collect_status(cfg, now=now - timedelta(days=1))["sources"]
                 if s["name"] == "media")
    assert media["data_stale_days"] is None, media  # not "old data": it was read today
    # the same feed, never changed again, read for six more weeks: nothing counted after
    # its newest entry, and its data are old
    for _ in range(6):
        now += timedelta(days=7)
        assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok
    assert max(_counts(cfg, "ketamin")) == weeks_after[-1]
    media = next(s for s in collect_status(cfg, now=now)["sources"] if s["name"] == "media")
    assert media["data_stale_days"] is not None, media


def test_a_feed_that_no_longer_brings_news_reaches_no_further_than_its_newest_entry(
        tmp_path):
    """A sample feed, or one its publisher stopped, read for the first time long after
    its newest entry: its weeks run to that entry's week, not to now (they are not known
    to be without articles), so its rise is judged where its data end."""
    feed = tmp_path / "data" / "feed.xml"
    write_rss(feed, [(MONDAY + timedelta(days=d), f"Politiet beslagla ketamin {d}")
                     for d in range(0, 21)])
    cfg = _media(tmp_path, feed)
    later = MONDAY + timedelta(weeks=30)
    assert Pipeline(cfg, clock=lambda: later).poll("media").ok
    assert max(_counts(cfg, "ketamin")) == "2026-01-19"


class _FeedServer:
    """Feeds over loopback HTTP that answer conditional requests as a web server does:
    ``304`` when ``If-None-Match`` names the ETag or ``If-Modified-Since`` is not
    older than the document."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[bytes, str, str]] = {}  # path -> body, ETag, Last-Modified
        self.answers: list[tuple[str, int]] = []
        #: paths answered "503 Service Unavailable" (a server down for maintenance)
        self.down: set[str] = set()
        docs, answers, down = self.docs, self.answers, self.down

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.lstrip("/") in down:
                    answers.append((self.path, 503))
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, etag, modified = docs[self.path.lstrip("/")]
                since = self.headers.get("If-Modified-Since")
                if self.headers.get("If-None-Match") == etag or (
                        since and parsedate_to_datetime(since) >= parsedate_to_datetime(modified)):
                    answers.append((self.path, 304))
                    self.send_response(304)
                    self.end_headers()
                    return
                answers.append((self.path, 200))
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def put(self, path: str, titles: list[tuple[datetime, str]], *, etag: str,
            modified: datetime, tmp: Path) -> str:
        """Serve an RSS feed of ``titles`` at ``path`` from now on; its address."""
        body = write_rss(tmp / path, titles, base=f"https://news.example/{path}").read_bytes()
        return self.serve(path, body, etag=etag, modified=modified)

    def serve(self, path: str, body: bytes, *, etag: str, modified: datetime) -> str:
        """Serve ``body`` at ``path`` from now on; its address."""
        self.docs[path] = (body, f'"{etag}"', format_datetime(modified, usegmt=True))
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_feed_moved_to_a_new_address_is_read_there(tmp_path):
    """The operator points a source at a feed's new address (a reload). The new feed's
    document is older than the last one read at the old address; a conditional request
    carrying the old address's validators would be answered "not modified", and the
    new feed would go unread until it next changes. The new address is read in full."""
    server = _FeedServer()
    try:
        day = MONDAY - timedelta(days=7)
        old = server.put("old.xml", [(day, "Politiet beslagla ketamin i Bergen")],
                         etag="old", modified=MONDAY, tmp=tmp_path)
        new = server.put("new.xml", [(day + timedelta(days=1), "Beslag av heroin i Oslo")],
                         etag="new", modified=MONDAY - timedelta(days=3), tmp=tmp_path)

        first = Pipeline(_media(tmp_path, old, "a.toml"), clock=lambda: MONDAY).poll("media")
        assert first.ok and first.items == 1
        moved = Pipeline(_media(tmp_path, new, "b.toml"), clock=lambda: MONDAY + timedelta(hours=1))
        res = moved.poll("media")
        assert res.ok, res.error
        assert server.answers[-1] == ("/new.xml", 200)
        assert res.items == 1
        # at the same address, the validators do their work again
        assert moved.poll("media").ok and server.answers[-1] == ("/new.xml", 304)
    finally:
        server.stop()


def test_a_feed_document_whose_parse_failed_is_asked_for_again(tmp_path, monkeypatch):
    """A feed document the parser failed on is read again at the next poll, as a file
    is: its ETag and Last-Modified are not kept, so the server does not answer "not
    modified" to a warnd whose parser (fixed by an upgrade) could now read it; the
    document is read, and its items stored, once the parser works."""
    from feeds.rss import RssFeed

    real = RssFeed.parse
    broken = {"on": True}

    def parse(self, raw, **kw):
        if broken["on"] and b"Oslo" in raw:
            raise RuntimeError("parser failure")
        return real(self, raw, **kw)

    monkeypatch.setattr(RssFeed, "parse", parse)
    server = _FeedServer()
    try:
        day = MONDAY - timedelta(days=7)
        first = [(day, "Politiet beslagla ketamin i Bergen")]
        url = server.put("feed.xml", first, etag="v1", modified=MONDAY, tmp=tmp_path)
        cfg = _media(tmp_path, url, "c.toml")
        pipe = Pipeline(cfg, clock=lambda: MONDAY)
        assert pipe.poll("media").items == 1
        assert pipe.poll("media").ok and server.answers[-1] == ("/feed.xml", 304)
        # the feed's next version trips the parser
        server.put("feed.xml", [*first, (day + timedelta(days=1), "Beslag av heroin i Oslo")],
                   etag="v2", modified=MONDAY + timedelta(hours=1), tmp=tmp_path)
        res = pipe.poll("media")
        assert res.ok and res.problems == 1 and res.items == 0
        res = pipe.poll("media")
        assert server.answers[-1] == ("/feed.xml", 200) and res.problems == 1
        broken["on"] = False  # the parser is fixed
        res = pipe.poll("media")
        assert server.answers[-1] == ("/feed.xml", 200) and res.items == 1
        assert pipe.poll("media").ok and server.answers[-1] == ("/feed.xml", 304)
    finally:
        server.stop()


def _ketamin_and_heroin(start: datetime, weeks: range, *, heroin: int
                        ) -> list[tuple[datetime, str]]:
    """Each week of ``weeks`` from ``start``, three articles naming ketamin and ``heroin``
    naming heroin."""
    out = []
    for w in weeks:
        day = start + timedelta(weeks=w)
        out += [(day + timedelta(hours=i), f"Politiet beslagla ketamin {w}.{i}")
                for i in range(3)]
        out += [(day + timedelta(days=1, hours=i), f"Beslag av heroin {w}.{i}")
                for i in range(heroin)]
    return out


def _write_feed(path: Path, articles: list[tuple[datetime, str]],
                summaries: dict[str, str] | None = None) -> None:
    """An RSS document whose articles each have a link of their own (from the title),
    and the ``summaries`` given by title."""
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>https://news.example/"
        f"{hashlib.sha256(title.encode()).hexdigest()[:12]}</link>"
        + (f"<description>{escape(summaries[title])}</description>"
           if summaries and title in summaries else "")
        + f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for when, title in articles)
    path.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                    f"{entries}</channel></rss>", encoding="utf-8")


def test_a_substance_a_source_begins_to_watch_is_not_taken_for_a_rise(tmp_path):
    """A news source watched ketamin for a year; heroin, named in two articles every week
    all along, is added to its substances. Its articles before then were not kept (an
    article naming no watched substance is dropped), so its weeks before it was watched
    are not known: they are not counted as zero, and heroin's steady mentions are not
    told as a rise. (Before, its series began with a year of zeros and the steady
    mentions opened "Liten økning: heroin" two weeks after it was added.)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)

    def articles(weeks: range) -> list[tuple[datetime, str]]:
        return _ketamin_and_heroin(start, weeks, heroin=2)

    feed = tmp_path / "feed.xml"

    def config(substances: str, name: str):
        return _media(tmp_path, feed, name, extra=f"substances = {substances}\n")

    _write_feed(feed, articles(range(52)))
    now = start + timedelta(weeks=52)
    assert Pipeline(config('["ketamin"]', "a.toml"), clock=lambda: now).run_once()["alerts"] == []
    both = config('["ketamin", "heroin"]', "b.toml")
    for k in range(1, 6):  # weekly, the feed showing its last two weeks
        _write_feed(feed, articles(range(50 + k, 52 + k)))
        res = Pipeline(both, clock=lambda k=k: now + timedelta(weeks=k)).run_once()
        assert res["alerts"] == [], [a["title"] for a in res["alerts"]]
    heroin = _counts(both, "heroin")
    # from the week of its first article read, two a week
    assert heroin == {(start + timedelta(weeks=w)).date().isoformat(): 2.0
                      for w in range(51, 57)}


def test_a_substance_a_source_watches_again_is_not_taken_for_a_rise(tmp_path):
    """A news source watched ketamin and heroin (named in four articles every week) for a
    year; heroin is taken out of its substances for 32 weeks and put back. The articles
    naming only heroin meanwhile were not kept, so those weeks are not known: they stay
    without a value (a gap) rather than zeros, and its four a week after it is watched
    again are not told as a rise. (Before, the weeks away were counted as zero and its
    return opened "Liten økning: heroin" the week after.)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)

    def articles(weeks: range) -> list[tuple[datetime, str]]:
        return _ketamin_and_heroin(start, weeks, heroin=4)

    feed = tmp_path / "feed.xml"

    def config(substances: str, name: str):
        return _media(tmp_path, feed, name, extra=f"substances = {substances}\n")

    both, ketamin = config('["ketamin", "heroin"]', "b.toml"), config('["ketamin"]', "a.toml")
    _write_feed(feed, articles(range(52)))
    now = start + timedelta(weeks=52)
    assert Pipeline(both, clock=lambda: now).run_once()["alerts"] == []
    told = []
    for k in range(1, 45):  # weekly, the feed showing its last two weeks
        _write_feed(feed, articles(range(50 + k, 52 + k)))
        res = Pipeline(ketamin if k < 33 else both,
                       clock=lambda k=k: now + timedelta(weeks=k)).run_once()
        told += [a["title"] for a in res["alerts"]]
    assert told == []
    heroin = _counts(both, "heroin")
    # before it was taken out, and from the week it was watched again
    weeks = [*range(52), *range(84, 96)]
    assert heroin == {(start + timedelta(weeks=w)).date().isoformat(): 4.0 for w in weeks}


def test_an_older_trends_export_read_after_a_newer_one_revises_nothing(tmp_path):
    """Google Trends exports dropped into a folder week by week; then an older export is
    dropped again (a re-synced folder, a download saved twice). Its weeks are no news:
    the newer export's values stand, and nothing is revised back to what Google showed
    before. (Before, the last export read won, even an older one: the week the newer
    export showed higher was revised back, a rise it showed taken away again.)"""
    drop = tmp_path / "drop"
    drop.mkdir()
    sunday = datetime(2025, 1, 5).date()
    level = [40 + (w * 7) % 23 for w in range(60)]

    def export(name: str, weeks: range, *, peak_week: int | None = None) -> None:
        vals = {w: (95 if w == peak_week else level[w]) for w in weeks}
        rows = "".join(f"{(sunday + timedelta(weeks=w)).isoformat()},{vals[w]}\n" for w in weeks)
        (drop / name).write_text(
            f"Category: All categories\n\nWeek,ketamin: (Norway)\n{rows}", encoding="utf-8")

    cfg = load_config(write_service_config(
        tmp_path / "c.toml", sources=source("trends", str(drop), kind="google_trends",
                                            dimension="interest")))
    now = datetime(2025, 12, 1, 12, tzinfo=UTC)
    export("multiTimeline.csv", range(0, 48))
    assert Pipeline(cfg, clock=lambda: now).poll("trends").ok
    # a week later: Google's newer export shows week 45 higher
    export("multiTimeline (1).csv", range(1, 49), peak_week=45)
    assert Pipeline(cfg, clock=lambda: now + timedelta(days=7)).poll("trends").ok

    def stored() -> dict[str, float]:
        st = Store.in_dir(cfg.state_dir)
        try:
            return {r["period"]: r["value"] for r in st.q(
                "SELECT period, value FROM observations WHERE substance='ketamin'")}
        finally:
            st.close()

    after_newer = stored()
    assert after_newer["2025-11-17"] == 95  # week 45 (Sunday 2025-11-16)
    # a week later still, the first export is dropped again under another name
    (drop / "multiTimeline (2).csv").write_bytes((drop / "multiTimeline.csv").read_bytes())
    res = Pipeline(cfg, clock=lambda: now + timedelta(days=14)).poll("trends")
    assert res.ok and res.documents == 1
    assert res.observations == 0 and stored() == after_newer


def test_a_feed_that_turned_into_a_web_page_is_not_read_as_weeks_without_articles(tmp_path):
    """A news feed's address starts serving a web page instead (a site redesign). The
    page is no feed: its weeks are not counted as weeks without articles, so the series
    keeps its last counts and the source is reported with old data, as it is when no
    document can be read; the page is read again at each poll, and once the feed is
    back, its weeks are counted again."""
    feed = tmp_path / "data" / "feed.xml"
    burst = [(MONDAY + timedelta(days=d, hours=h), f"Politiet beslagla ketamin {d} {h}")
             for d in range(0, 14) for h in range(2)]
    write_rss(feed, burst)
    cfg = _media(tmp_path, feed)
    now = MONDAY + timedelta(days=14)
    assert Pipeline(cfg, clock=lambda: now).poll("media").ok
    feed.write_text("<!doctype html><html><body><h1>Ny forside</h1></body></html>")
    for _ in range(5 * 7):  # five weeks of daily polls of the page
        now += timedelta(days=1)
        res = Pipeline(cfg, clock=lambda now=now: now).poll("media")
        assert res.ok and res.documents == 1  # read again each time: it was no feed
    assert max(_counts(cfg, "ketamin")) == "2026-01-12"
    media = next(s for s in collect_status(cfg, now=now)["sources"] if s["name"] == "media")
    assert media["data_stale_days"] is not None and any(
        "not an RSS/Atom feed" in p["message"] for p in media["recent_problems"])
    now += timedelta(days=1)
    write_rss(feed, [*burst, (now, "Været blir fint")])  # the feed is back, with news
    assert Pipeline(cfg, clock=lambda: now).poll("media").ok
    counts = _counts(cfg, "ketamin")
    assert max(counts) == "2026-02-16" and counts["2026-02-16"] == 0


def test_an_undated_article_without_link_or_guid_is_counted_once(tmp_path):
    """A feed of entries without date, link or guid, read with `undated = "fetched_at"`:
    each article is dated when first read and counted once, also when the feed changes
    (a new article on top) and is read again days later. (Before, its key held the
    time it was read, so every new version of the feed counted it again.)"""
    feed = tmp_path / "feed.xml"

    def write(titles: list[str]) -> None:
        entries = "".join(f"<item><title>{escape(t)}</title></item>" for t in titles)
        feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                        f"{entries}</channel></rss>", encoding="utf-8")

    cfg = _media(tmp_path, feed, "c.toml", extra='undated = "fetched_at"\n')
    write(["Politiet beslagla ketamin i Bergen"])
    assert Pipeline(cfg, clock=lambda: MONDAY).poll("media").items == 1
    write(["Ketamin solgt på fest", "Politiet beslagla ketamin i Bergen"])
    later = MONDAY + timedelta(days=2)
    assert Pipeline(cfg, clock=lambda: later).poll("media").items == 1  # only the new one
    assert Pipeline(cfg, clock=lambda: MONDAY + timedelta(days=7)).poll("media").ok
    assert _counts(cfg, "ketamin") == {"2026-01-05": 2.0}


def test_a_malformed_feed_read_leniently_still_counts_its_quiet_weeks(tmp_path):
    """A feed with an XML error (an HTML entity XML does not know) is read leniently,
    with a problem naming the document: its entries are read, so its weeks without
    articles count as zero, as a well-formed feed's do."""
    feed = tmp_path / "feed.xml"
    articles = [(MONDAY + timedelta(hours=h), f"Politiet beslagla ketamin {h}")
                for h in range(3)]

    def write() -> None:
        _write_feed(feed, articles)
        feed.write_text(feed.read_text().replace("ketamin 0", "ketamin&nbsp;0"))

    write()
    cfg = _media(tmp_path, feed, "c.toml")
    now = MONDAY + timedelta(days=7)
    first = Pipeline(cfg, clock=lambda: now).poll("media")
    assert first.items == 3 and first.problems == 1
    for _ in range(3):  # each week a new version of the feed, with no article of ours
        articles.append((now, f"Været blir fint {now:%d.%m}"))
        write()
        now += timedelta(days=7)
        res = Pipeline(cfg, clock=lambda now=now: now).poll("media")
        assert res.documents == 1 and res.items == 0 and res.problems == 1
    assert _counts(cfg, "ketamin") == {"2026-01-05": 3.0, "2026-01-12": 0.0,
                                       "2026-01-19": 0.0, "2026-01-26": 0.0}


def _rss(entries: list[tuple[datetime, str, str | None, str]]) -> bytes:
    """An RSS document of ``(published, title, guid or None, link)`` entries."""
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        + (f'<guid isPermaLink="false">{escape(guid)}</guid>' if guid else "")
        + f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for when, title, guid, link in entries)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>t</title>{items}</channel></rss>").encode()


def _serve(server: _FeedServer, path: str, body: bytes, when: datetime) -> str:
    server.docs[path] = (body, f'"{hashlib.sha256(body).hexdigest()[:16]}"',
                         format_datetime(when, usegmt=True))
    return f"http://127.0.0.1:{server.httpd.server_address[1]}/{path}"


#: a year of weekly articles naming ketamin, three a week, before the first poll
_YEAR = datetime(2025, 1, 6, 10, tzinfo=UTC)
#: the weeks a feed document shows (about a hundred entries with the other news)
_SHOWN = 10


def _weekly_articles(weeks: range, link, *, guid=lambda w, i: f"bt-{w}-{i}"):
    """Three ketamin articles a week and the day's other news (``link(w, i)``: the
    article's address; ``guid(w, i)``: its guid, or None)."""
    out = []
    for w in weeks:
        day = _YEAR + timedelta(weeks=w)
        out += [(day + timedelta(days=i, hours=i), f"Politiet beslagla ketamin {w}.{i}",
                 guid(w, i), link(w, i)) for i in range(3)]
        out += [(day + timedelta(days=d, hours=8), f"Været {w}.{d}", f"v-{w}-{d}",
                 f"https://www.bt.no/vaer/{w}-{d}") for d in range(7)]
    return out


def _a_year_then_a_move(tmp_path, smtp_server, old_link, new_link, *, guid=None):
    """A news feed read weekly over loopback HTTP (each week a full cycle: poll, judge,
    send to a real SMTP server), showing its last ten weeks: a year of three ketamin
    articles a week, then from the fifth week on every article in the feed under a new
    address (``new_link``), the ones read before too. Returns the config and each
    cycle's result."""
    from tests.alerting_env import target

    guid = guid or (lambda w, i: f"bt-{w}-{i}")
    server = _FeedServer()
    try:
        url = _serve(server, "feed.xml", _rss(_weekly_articles(range(52), old_link, guid=guid)),
                     _YEAR)
        cfg = _media(tmp_path, url, "c.toml", targets=target("mail", smtp_server.url()))
        runs = []
        for k in range(9):
            now = _YEAR + timedelta(weeks=52 + k)
            if k:
                link = new_link if k >= 4 else old_link
                shown = range(52 + k - _SHOWN, 52 + k)
                _serve(server, "feed.xml", _rss(_weekly_articles(shown, link, guid=guid)), now)
            runs.append(Pipeline(cfg, clock=lambda now=now: now).run_once())
            assert all(p.ok for p in runs[-1]["polls"]), runs[-1]["polls"]
        return cfg, runs
    finally:
        server.stop()


def test_articles_whose_links_change_are_not_counted_again(tmp_path, smtp_server):
    """A year of a news feed's articles, three naming ketamin each week; then the site
    moves to a new domain with new slugs (and tracking parameters), and its feed shows
    the same articles, with the same guids, under their new links. The articles are the
    ones already counted: each week stays at three, no rise is told, and an article's
    stored link is its new one. A new article (a new guid) still counts. (Before, an
    article was known by its link alone: the weeks the feed showed were counted again,
    six a week, and "Liten økning: ketamin" was sent.)"""
    cfg, runs = _a_year_then_a_move(
        tmp_path, smtp_server,
        old_link=lambda w, i: f"http://www.bt.no/nyheter/i/{w}{i}/beslag",
        new_link=lambda w, i: f"https://nyheter.bt-media.no/{w}-{i}/politiet-beslagla-ketamin"
                              "?utm_source=rss&utm_medium=feed")
    assert [a["title"] for r in runs for a in r["alerts"]] == []
    assert smtp_server.messages == []
    weeks = _counts(cfg, "ketamin")
    assert len(weeks) == 52 + 8 and set(weeks.values()) == {3.0}, weeks
    st = Store.in_dir(cfg.state_dir)
    try:
        links = dict(st.db.execute("SELECT title, link FROM items").fetchall())
        n_items = st.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    finally:
        st.close()
    assert n_items == 3 * (52 + 8)  # each guid once (the weather names no substance)
    assert links["Politiet beslagla ketamin 50.1"] == (  # read before the move, and after
        "https://nyheter.bt-media.no/50-1/politiet-beslagla-ketamin"
        "?utm_source=rss&utm_medium=feed")
    assert links["Politiet beslagla ketamin 40.1"] == "http://www.bt.no/nyheter/i/401/beslag"


def test_articles_without_guid_whose_links_gain_tracking_parameters_count_once(
        tmp_path, smtp_server):
    """A feed without guids whose links gain tracking parameters, https, no `www.`, a
    trailing slash and a fragment: the normalised link is the same, and the articles
    already counted are not counted again."""
    cfg, runs = _a_year_then_a_move(
        tmp_path, smtp_server,
        old_link=lambda w, i: f"http://www.ba.no/a/{w}-{i}",
        new_link=lambda w, i: f"https://ba.no/a/{w}-{i}/?utm_source=rss&fbclid=x1&gclid=y2"
                              "#kommentarer",
        guid=lambda w, i: None)
    assert [a["title"] for r in runs for a in r["alerts"]] == []
    assert smtp_server.messages == []
    assert set(_counts(cfg, "ketamin").values()) == {3.0}


def test_the_first_source_to_read_an_article_keeps_it_when_its_link_changes(tmp_path):
    """Two feeds over loopback HTTP: a newspaper's, and an aggregator's carrying the
    same articles under its own guids. The newspaper read first owns them: the
    aggregator counts none of them, neither before nor after the newspaper moves its
    articles to new links (the aggregator following), as the newspaper's guids tie the
    new links to the articles it holds. Guids are the feed's own: two police bulletins,
    each numbered 1 in its feed, are two articles. (Before, the aggregator counted the
    moved articles again under their new links, and the second bulletin numbered 1
    was taken for the first.)"""
    day = MONDAY - timedelta(days=7)
    arts = [(day + timedelta(hours=h), f"Politiet beslagla ketamin i Bergen {h}") for h in range(4)]

    def feeds(link, agg_guid: str) -> tuple[bytes, bytes]:
        own = [(when, t, f"bt-{h}", link(h)) for h, (when, t) in enumerate(arts)]
        agg = [(when, t, f"{agg_guid}-{h}", link(h)) for h, (when, t) in enumerate(arts)]
        return _rss([*own, (day, "Ketamin i posten", "1", "")]), _rss(
            [*agg, (day, "Heroin på Nygårdsplass", "1", "")])

    def old(h: int) -> str:
        return f"https://www.bt.no/nyheter/{h}/beslag"

    def new(h: int) -> str:
        return f"https://www.bt.no/nyheter/lokalt/i/{h}/politiet-beslagla-ketamin"

    server = _FeedServer()
    try:
        bt, agg = feeds(old, "agg")
        cfg = load_config(write_service_config(tmp_path / "c.toml", sources=(
            source("bt", _serve(server, "bt.xml", bt, day), kind="rss", dimension="interest")
            + source("agg", _serve(server, "agg.xml", agg, day), kind="rss",
                     dimension="interest"))))
        pipe = Pipeline(cfg, clock=lambda: MONDAY)
        assert pipe.poll("bt").items == 5  # four articles and bulletin 1
        assert pipe.poll("agg").items == 1  # its own bulletin 1 only
        bt, agg = feeds(new, "agg-v2")  # the aggregator gives its entries new guids too
        _serve(server, "bt.xml", bt, MONDAY)
        _serve(server, "agg.xml", agg, MONDAY)
        later = Pipeline(cfg, clock=lambda: MONDAY + timedelta(days=1))
        assert later.poll("bt").items == 0 and later.poll("agg").items == 0
    finally:
        server.stop()
    st = Store.in_dir(cfg.state_dir)
    try:
        owners = st.db.execute("SELECT source, COUNT(*) FROM items GROUP BY source "
                               "ORDER BY source").fetchall()
    finally:
        st.close()
    assert owners == [("agg", 1), ("bt", 5)]


def test_a_warning_notice_whose_link_changes_is_not_told_again(tmp_path, smtp_server):
    """A warnings site's feed over loopback HTTP: a notice on ketamine is told. The site
    then moves its notices to new addresses (same guids) and publishes a new notice on
    heroin: only the heroin notice is told; the ketamine notice is the one told before.
    (Before, the moved notice was stored and told a second time.)"""
    from tests.alerting_env import target

    now = datetime(2026, 3, 3, 10, tzinfo=UTC)
    ketamin = (now - timedelta(days=1), "Ketamin med høy styrke", "od-17")
    heroin = (now + timedelta(days=1), "Heroin blandet med nitazener", "od-18")

    def feed(notices, link) -> bytes:
        return _rss([(when, title, guid, link(guid)) for when, title, guid in notices])

    server = _FeedServer()
    try:
        url = _serve(server, "varsler.xml",
                     feed([ketamin], lambda g: f"https://overdosefare.no/varsler/{g}"), now)
        cfg = load_config(write_service_config(
            tmp_path / "c.toml",
            sources=source("overdosefare", url, kind="overdosefare", dimension="availability"),
            targets=target("mail", smtp_server.url())))
        first = Pipeline(cfg, clock=lambda: now).run_once()
        assert [a["title"] for a in first["alerts"]] == [
            "Ny advarsel: ketamin — Ketamin med høy styrke"]
        later = now + timedelta(days=2)
        _serve(server, "varsler.xml", feed(
            [heroin, ketamin], lambda g: f"https://www.overdosefare.no/advarsler/2026/{g}/"
                                         "?utm_campaign=flytting"), later)
        second = Pipeline(cfg, clock=lambda: later).run_once()
    finally:
        server.stop()
    assert [a["title"] for a in second["alerts"]] == [
        "Ny advarsel: heroin — Heroin blandet med nitazener"]
    assert [m["Subject"] for m in smtp_server.messages] == [
        "Ny advarsel: ketamin — Ketamin med høy styrke",
        "Ny advarsel: heroin — Heroin blandet med nitazener"]


def _publish_street(server: Any, tmp_path: Path, start: datetime, weeks: range, k: int
                    ) -> str:
    """The feed of :func:`_street_articles` over ``weeks``, served as its ``k``-th version
    (published ``k`` weeks after the year from ``start``); its address."""
    _write_feed(tmp_path / "feed.xml", _street_articles(start, weeks))
    return server.serve("feed.xml", (tmp_path / "feed.xml").read_bytes(), etag=f"v{k}",
                        modified=start + timedelta(weeks=52 + k))


def _ket_articles(start: datetime, weeks: range) -> list[tuple[datetime, str]]:
    """A news feed's entries from ``start``, a week at a time: three seizures of "ketamin"
    a week (nine from week 44 on), and three articles a week that say "ket"."""
    out = []
    for w in weeks:
        day = start + timedelta(weeks=w)
        out += [(day + timedelta(hours=i), f"Politiet beslagla ketamin {w}.{i}")
                for i in range(3 if w < 44 else 9)]
        out += [(day + timedelta(days=1, hours=i), f"Politiet fant ket på festen {w}.{i}")
                for i in range(3)]
    return out


def _terms_config(tmp_path: Path, name: str, ketamin: str, *, location: str,
                  kind: str = "rss") -> Any:
    """A config watching ketamin (its matching keys: ``ketamin``) and heroin."""
    return _media(tmp_path, location, name, kind=kind,
                  substances=f'[substances.ketamin]\n{ketamin}\n\n[substances.heroin]\n'
                             'names = ["heroin"]\n')


def _street_articles(start: datetime, weeks: range) -> list[tuple[datetime, str]]:
    """Each week two to four articles naming ketamin and six to ten naming it only by its
    street name "ket" (seeded)."""
    rng = np.random.default_rng(7)
    n = np.stack([rng.integers(2, 5, size=100), rng.integers(6, 11, size=100)], axis=1)
    out = []
    for w in weeks:
        day = start + timedelta(weeks=w)
        out += [(day + timedelta(hours=i), f"Politiet beslagla ketamin {w}.{i}")
                for i in range(n[w, 0])]
        out += [(day + timedelta(days=1, hours=i), f"Politiet fant ket på festen {w}.{i}")
                for i in range(n[w, 1])]
    return out


def test_a_street_name_added_to_a_substance_is_not_taken_for_a_rise(tmp_path, capsys):
    """A news feed (over HTTP) has named ketamin by name and by its street name "ket"
    all along, and the operator adds "ket" to ketamin's slang (a reload) after a year.
    The articles naming it only as "ket" were never kept (an article naming no watched
    substance is dropped), so the year before cannot be counted again with the new
    word: ketamin's count of that source starts afresh from the week of the change,
    and the counts that jump with the new word are not told as a rise. (Before, the
    year counted with the old terms and the weeks after with the new ones made one
    series, and the jump was told as "økning: ketamin".)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    server = _FeedServer()
    try:
        url = _publish_street(server, tmp_path, start, range(52), 0)
        now = start + timedelta(weeks=52)
        before = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]', location=url)
        assert Pipeline(before, clock=lambda: now).run_once()["alerts"] == []
        first = _counts(before, "ketamin")
        after = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                              location=url)
        # check-config says what the next poll does
        capsys.readouterr()
        assert main(["check-config", str(after.path)]) == 0
        assert ("warning: substances.ketamin: its matching terms are not those its stored "
                "articles and notices were counted with; at the next poll they are matched "
                "again and its counts revised; media kept only the items naming a watched "
                "substance, so its counts there start afresh from that week"
                ) in capsys.readouterr().err
        told = []
        for k in range(1, 6):  # weekly, the feed showing its last two weeks
            _publish_street(server, tmp_path, start, range(50 + k, 52 + k), k)
            res = Pipeline(after, clock=lambda k=k: now + timedelta(weeks=k, hours=k)).run_once()
            told += [a["title"] for a in res["alerts"]]
        assert told == []
        counts = _counts(after, "ketamin")
    finally:
        server.stop()
    changed = (start + timedelta(weeks=53)).date()  # the week of the first poll after it
    # counted with the new word from the week of the change on, nothing before it
    assert min(counts) == changed.isoformat() and len(counts) == 4
    articles = _street_articles(start, range(60))
    for period, value in counts.items():
        week = date.fromisoformat(period)
        assert value == sum(1 for when, _ in articles
                            if week <= when.date() < week + timedelta(days=7)), period
    assert len(first) == 52


@pytest.mark.parametrize("weeks_after", [0, 3])
def test_a_street_name_added_and_taken_out_again_counts_the_whole_history(tmp_path,
                                                                          weeks_after):
    """The operator adds "ket" to ketamin's slang and takes it out again, in the same
    week or three weeks later (its counts in the news feed already started afresh):
    every article the terms name was kept all along, so ketamin is counted again over
    its whole history, by name, with no week missing, and nothing is told. (Before, its
    counts stayed afresh from the week of the change, and the year before was removed
    for good.)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    server = _FeedServer()
    try:
        url = _publish_street(server, tmp_path, start, range(52), 0)
        now = start + timedelta(weeks=52)
        before = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]', location=url)
        assert Pipeline(before, clock=lambda: now).run_once()["alerts"] == []
        after = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                              location=url)
        told = []
        for k in range(1, 2 + weeks_after):  # weekly, the feed showing its last two weeks
            _publish_street(server, tmp_path, start, range(50 + k, 52 + k), k)
            res = Pipeline(after, clock=lambda k=k: now + timedelta(weeks=k, hours=1)).run_once()
            told += [a["title"] for a in res["alerts"]]
        for k in range(1 + weeks_after, 6 + weeks_after):  # "ket" taken out again
            _publish_street(server, tmp_path, start, range(50 + k, 52 + k), 10 + k)
            res = Pipeline(before, clock=lambda k=k: now + timedelta(weeks=k, days=2)).run_once()
            told += [a["title"] for a in res["alerts"]]
        counts = _counts(before, "ketamin")
    finally:
        server.stop()
    assert told == []
    by_name = [(when, title) for when, title in _street_articles(start, range(70))
               if "ketamin" in title]
    assert counts == {
        (start + timedelta(weeks=w)).date().isoformat(): float(sum(
            1 for when, _ in by_name if 0 <= (when - start).days - 7 * w < 7))
        for w in range(57 + weeks_after)}


def _findings(cfg, substance: str) -> list[tuple[str, str]]:
    st = Store.in_dir(cfg.state_dir)
    try:
        return [(r["kind"], r["direction"]) for r in st.q(
            "SELECT kind, direction FROM findings WHERE substance=?", [substance])]
    finally:
        st.close()


def test_a_street_name_taken_out_of_a_substance_is_not_taken_for_a_fall(tmp_path):
    """The operator takes the street name "ket" out of ketamin's slang after a year of
    a news feed naming ketamin both ways. Every article that names ketamin with the
    terms left named it before, so it was kept: the year is counted again without the
    street name (a revision), and the whole series counts the articles naming ketamin
    by name. No fall is found. (Before, the year kept the old counts and the weeks after
    counted a third of them: a fall of ketamin, and a rise told from it would end.)
    An article whose summary was cut when stored, naming "ket" only past the cut, keeps
    ketamin: what it was matched on is not all kept."""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    feed = tmp_path / "feed.xml"
    long = {"Fest i byen": "Politiet var til stede. " * 100 + "Mye ket."}
    _write_feed(feed, [*_street_articles(start, range(52)),
                       (start + timedelta(weeks=3, days=3), "Fest i byen")], long)
    now = start + timedelta(weeks=52)
    both = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                         location=str(feed))
    assert Pipeline(both, clock=lambda: now).run_once()["alerts"] == []
    assert _counts(both, "ketamin")["2025-01-06"] > 6  # both ways
    named = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]', location=str(feed))
    for k in range(1, 6):  # weekly, the feed showing its last two weeks
        _write_feed(feed, _street_articles(start, range(50 + k, 52 + k)))
        res = Pipeline(named, clock=lambda k=k: now + timedelta(weeks=k, hours=k)).run_once()
        assert res["alerts"] == []
    assert _findings(named, "ketamin") == []
    counts = _counts(named, "ketamin")
    assert len(counts) == 57 and min(counts) == "2025-01-06"
    articles = [a for a in _street_articles(start, range(60)) if "ketamin" in a[1]]
    articles.append((start + timedelta(weeks=3, days=3), "Fest i byen"))
    for period, value in counts.items():
        week = date.fromisoformat(period)
        assert value == sum(1 for when, _ in articles
                            if week <= when.date() < week + timedelta(days=7)), period


def _notice_page(path: Path, start: datetime, weeks: range) -> None:
    """Warnings of a notice page: each week one naming ketamin and one naming only "ket"."""
    blocks = []
    for w in weeks:
        for i, text in enumerate(("Ketamin med høy styrke", "Ket med høy styrke")):
            when = start + timedelta(weeks=w, days=i)
            blocks.append(f'<article><h2><a href="/v/{w}-{i}">{text} {w}</a></h2>'
                          f'<time datetime="{when.isoformat()}">{when:%d.%m}</time>'
                          "<p>Fare for overdose.</p></article>")
    path.write_text(f"<html><body>{''.join(blocks)}</body></html>", encoding="utf-8")


def test_a_street_name_added_counts_the_warnings_kept_since_the_start(tmp_path):
    """A notice page keeps every warning it reads, also those naming no watched
    substance. When "ket" is added to ketamin's slang, the warnings already stored are
    matched again: ketamin's weekly count of warnings is counted again over its whole
    history with the new word (a revision), not only from the change on. The warnings
    matched again are counted, not told again as new warnings."""
    start = datetime(2025, 6, 2, 10, tzinfo=UTC)  # a Monday
    page = tmp_path / "varsler.html"
    _notice_page(page, start, range(30))
    before = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]', location=str(page),
                           kind="overdosefare")
    now = start + timedelta(weeks=30)
    first = Pipeline(before, clock=lambda: now).run_once()
    assert {a["kind"] for a in first["alerts"]} <= {"notice"}
    st = Store.in_dir(before.state_dir)
    try:
        counts = {r["period"]: r["value"] for r in st.q(
            "SELECT period, value FROM observations WHERE substance='ketamin' "
            "AND metric='notices'")}
    finally:
        st.close()
    assert set(counts.values()) == {1.0}
    after = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                          location=str(page), kind="overdosefare")
    res = Pipeline(after, clock=lambda: now + timedelta(hours=1)).run_once()
    assert res["alerts"] == []
    st = Store.in_dir(after.state_dir)
    try:
        again = {r["period"]: r["value"] for r in st.q(
            "SELECT period, value FROM observations WHERE substance='ketamin' "
            "AND metric='notices'")}
        revised = st.q("SELECT COUNT(*) AS n FROM revisions WHERE substance='ketamin' "
                       "AND metric='notices'")[0]["n"]
    finally:
        st.close()
    assert len(counts) == 30 and again == dict.fromkeys(counts, 2.0) and revised == 30


def test_an_alias_added_to_a_table_source_reads_its_files_again(tmp_path, capsys):
    """A lab drops one file a week into a folder, each with a row for cocaine ("Kokain")
    and one for crack ("Crack"), which names no watched substance and is skipped with a
    problem. After a year the operator maps "Crack" to kokain (``substance_aliases``; a
    reload), so that its rows are added to kokain's. A file is read once, so the year's
    files would keep their values without crack and the weeks after would add it: the
    jump told as a rise. The source's files are read again at its first poll with the new
    mapping, so the whole series counts crack (a revision of each week), and nothing is
    told. (Before, "Liten økning: kokain" was told two weeks after the change.)"""
    start = date(2025, 1, 6)
    rng = np.random.default_rng(11)
    rows = [(int(rng.poisson(5)), int(rng.poisson(10))) for _ in range(60)]
    folder = tmp_path / "lab"
    folder.mkdir()

    def drop(w: int) -> None:
        period = start + timedelta(weeks=w)
        (folder / f"lab_{period}.csv").write_text(
            f"period,substance,value\n{period},Kokain,{rows[w][0]}\n{period},Crack,{rows[w][1]}\n",
            encoding="utf-8")

    def config(name: str, aliases: str):
        return load_config(write_service_config(
            tmp_path / name, sources=source("lab", str(folder)) + aliases,
            substances='[substances.kokain]\nnames = ["kokain"]\n'))

    for w in range(52):
        drop(w)
    now = datetime.combine(start + timedelta(weeks=52), datetime.min.time(), UTC)
    assert Pipeline(config("a.toml", ""), clock=lambda: now).run_once()["alerts"] == []
    mapped = config("b.toml", 'substance_aliases = { "Crack" = "kokain" }\n')
    capsys.readouterr()
    assert main(["check-config", str(mapped.path)]) == 0
    assert ("warning: sources.lab: read before with other options or substance terms; "
            "every document of it is read again at its next poll") in capsys.readouterr().err
    told = []
    for k in range(5):
        drop(52 + k)
        res = Pipeline(mapped, clock=lambda k=k: now + timedelta(weeks=k, hours=12)).run_once()
        told += [a["title"] for a in res["alerts"]]
    assert told == []
    st = Store.in_dir(mapped.state_dir)
    try:
        values = {r["period"]: r["value"] for r in st.q(
            "SELECT period, value FROM observations WHERE substance='kokain'")}
        revised = st.q("SELECT COUNT(*) AS n FROM revisions WHERE substance='kokain'")[0]["n"]
    finally:
        st.close()
    assert values == {(start + timedelta(weeks=w)).isoformat(): float(sum(rows[w]))
                      for w in range(57)}
    assert revised == sum(1 for w in range(52) if rows[w][1])
    assert main(["check-config", str(mapped.path)]) == 0
    assert "warning" not in capsys.readouterr().err  # read as it is read now


def test_a_rise_told_on_a_word_since_excluded_is_corrected(tmp_path):
    """A race called "Ket-løpet" fills the news for eight weeks, and ketamin's slang
    "ket" counts it: a rise of ketamin is told. The operator adds "ket-løpet" to
    ketamin's excludes. The articles are matched again, the weeks counted again
    without the race, and the rise, which the recount withdraws, is corrected. (Before,
    the weeks already counted kept the race, and the rise stayed open.)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    rng = np.random.default_rng(5)
    articles = []
    for w in range(52):
        day = start + timedelta(weeks=w)
        articles += [(day + timedelta(hours=i), f"Politiet beslagla ketamin {w}.{i}")
                     for i in range(int(rng.integers(2, 5)))]
        if w >= 44:
            articles += [(day + timedelta(days=2, hours=i),
                          f"Politiet stenger veier for Ket-løpet {w}.{i}") for i in range(8)]
    feed = tmp_path / "feed.xml"
    _write_feed(feed, articles)
    now = start + timedelta(weeks=52)
    slang = 'names = ["ketamin"]\nslang = ["ket"]'
    told = Pipeline(_terms_config(tmp_path, "a.toml", slang, location=str(feed)),
                    clock=lambda: now).run_once()["alerts"]
    assert [(a["kind"], a["decision"]) for a in told] == [("trend", "open")]
    excluded = _terms_config(tmp_path, "b.toml", slang + '\nexclude = ["ket-løpet"]',
                             location=str(feed))
    told = Pipeline(excluded, clock=lambda: now + timedelta(hours=1)).run_once()["alerts"]
    assert [(a["kind"], a["decision"]) for a in told] == [("trend", "correct")]
    assert max(_counts(excluded, "ketamin").values()) <= 4


def test_a_rise_told_before_a_substance_is_counted_afresh_ends_uncorrected(tmp_path):
    """Ketamin's articles in a news feed tripled and the rise was told; then "ket" is
    added to its slang, and the feed's counts of it start afresh from that week. The
    rise told is not "corrected" (its figures were not wrong, only counted with other
    terms): the restarted series has too few weeks to show a finding, and the episode
    ends as any does after ``resolve_after_periods`` weeks without one, its alert
    resolved. (A version that judged the restarted series as a revision told
    "Rettelse: Liten økning: ketamin", asking staff to disregard a real rise.)"""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    feed = tmp_path / "feed.xml"
    _write_feed(feed, _ket_articles(start, range(52)))
    now = start + timedelta(weeks=52)
    before = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]', location=str(feed))
    told = Pipeline(before, clock=lambda: now).run_once()["alerts"]
    assert [(a["kind"], a["decision"]) for a in told] == [("trend", "open")]
    after = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                          location=str(feed))
    told = []
    for k in range(1, 7):
        _write_feed(feed, _ket_articles(start, range(50 + k, 52 + k)))
        told += Pipeline(after, clock=lambda k=k: now + timedelta(weeks=k, hours=k)).run_once(
            )["alerts"]
    assert told == []
    st = Store.in_dir(after.state_dir)
    try:
        assert [r["status"] for r in st.q("SELECT status FROM alerts")] == ["resolved"]
    finally:
        st.close()


def test_a_feeds_problems_are_those_of_its_latest_reading(tmp_path):
    """A news feed polled from one address, week by week: one week it shows an entry
    whose date cannot be read, and `warnd status` lists that problem. A week the server
    is down, one the feed is unchanged ("not modified", then the same bytes again) and
    one the address gives a maintenance page instead of the feed are no readings of it:
    the problem stays listed (with the page's own). The week the feed shows the entry
    with its date again, neither is listed any more; a later broken entry is listed
    again. (Before, a single document's old problems stayed listed after it was read
    cleanly, as if still there, until newer problems pushed them out.)"""
    server = _FeedServer()
    try:
        def week(k: int) -> datetime:
            return MONDAY + timedelta(weeks=k)

        def serve(k: int, *, broken: bool = False, at: int | None = None) -> str:
            """The feed with an entry a week to week ``k`` (the newest without a date
            a reader can take when ``broken``), as changed in week ``at``."""
            entries = [(week(w) - timedelta(days=2), f"Politiet beslagla ketamin {w}", None,
                        f"https://news.example/{w}") for w in range(k + 1)]
            body = _rss(entries)
            if broken:
                newest = week(k) - timedelta(days=2)
                body = body.replace(newest.strftime("<pubDate>%a, %d %b %Y").encode(),
                                    b"<pubDate>someday, 12 Foo")
            at = k if at is None else at
            return server.serve("feed.xml", body, etag=f"w{at}", modified=week(at))

        url = serve(0)
        cfg = _media(tmp_path, url, general="fetch_retries = 0\n")
        listed: dict[int, list[str]] = {}
        answers: dict[int, int] = {}
        for k in range(9):
            if k == 1:
                serve(1, broken=True)
            if k == 2:
                server.down.add("feed.xml")
            if k == 3:
                server.down.clear()  # back up, the feed as it was: "not modified"
            if k == 4:
                serve(1, broken=True, at=4)  # the same bytes, said to be changed
            if k == 5:
                server.serve("feed.xml", b"<html><body><p>Vedlikehold</p></body></html>",
                             etag="w5", modified=week(5))
            if k == 6:
                serve(6)  # mended, with this week's entry
            if k == 8:
                serve(8, broken=True)
            res = Pipeline(cfg, clock=lambda k=k: week(k) + timedelta(hours=1)).poll("media")
            assert res.ok == (k != 2), res
            answers[k] = server.answers[-1][1]
            (media,) = collect_status(cfg, now=week(k))["sources"]
            listed[k] = [f"{p['location']}: {p['message'].split(' (')[0]}"
                         for p in media["recent_problems"]]
        assert answers == {0: 200, 1: 200, 2: 503, 3: 304, 4: 200, 5: 200, 6: 200, 7: 304,
                           8: 200}
        item = f"{url} item 2: no parsable date"
        page = f"{url}: not an RSS/Atom feed"
        assert listed == {0: [], 1: [item], 2: [item], 3: [item], 4: [item], 5: [page, item],
                          6: [], 7: [], 8: [f"{url} item 9: no parsable date"]}, listed
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["count_table", "overdosefare"])
def test_a_single_files_problems_are_those_of_its_latest_reading(tmp_path, kind):
    """A single file read week by week (a lab's count table, a saved warnings page) has a
    mistake one week: a value that is not a number, a notice without its date. `warnd
    status` lists it. The week the file is away (moved, the poll fails) and the week it is
    back as it was are no readings of it: the problem stays listed. The week the file is
    mended, the problem is no longer listed. (Before, a single file kept its old problems
    listed after it was read cleanly, until newer problems pushed them out.)"""
    where = tmp_path / "drop" / ("counts.csv" if kind == "count_table" else "varsler.html")
    where.parent.mkdir()
    days = [(MONDAY.date() + timedelta(weeks=w)).isoformat() for w in range(4)]

    def write(mistake: bool) -> None:
        if kind == "count_table":
            where.write_text("period,substance,value\n" + "".join(
                f"{d},ketamin,{'1x' if mistake and w == 1 else 10 + w}\n"
                for w, d in enumerate(days)))
        else:
            _notice_page(where, MONDAY, range(4))
            if mistake:  # the second week's first warning without its date
                when = MONDAY + timedelta(weeks=1)
                where.write_text(where.read_text(encoding="utf-8").replace(
                    f'<time datetime="{when.isoformat()}">{when:%d.%m}</time>', ""),
                    encoding="utf-8")

    write(mistake=True)
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=source(
        "lab", str(where), kind=kind,
        dimension="availability" if kind == "overdosefare" else "use")))
    listed = {}
    for k in range(5):
        if k == 1:
            where.rename(where.with_suffix(".away"))
        if k == 2:
            where.with_suffix(".away").rename(where)
        if k == 3:
            write(mistake=False)
        now = MONDAY + timedelta(weeks=4 + k)
        res = Pipeline(cfg, clock=lambda now=now: now).poll("lab")
        assert res.ok == (k != 1), res
        (lab,) = collect_status(cfg, now=now)["sources"]
        listed[k] = [f"{p['location']}: {p['message'].split(':')[0]}"
                     for p in lab["recent_problems"]]
    problem = (f"{where} line 3: not a number" if kind == "count_table"
               else f"{where} notice 3: 'Ketamin med høy styrke 1'")
    assert listed == {0: [problem], 1: [problem], 2: [problem], 3: [], 4: []}, listed
