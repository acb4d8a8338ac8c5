"""A source's health over time: failures, recoveries and silences through the real
pipeline's polls, with a moving clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from tests.alerting_env import target
from tests.conftest import write_config
from tests.test_alerting import RSS_SOURCE
from tests.test_stream_config_changes import DEAD
from tests.service_kit import write_service_config
from tests.test_service import source
from tests.test_stream_sources import _counts, _media
from warnd.alerting import actions
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.service.health import collect_status
from warnd.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _health(store: Store) -> list[tuple[str, str, str | None, str | None]]:
    rows = store.q("SELECT a.decision, a.status, d.target, d.status AS sent FROM alerts a "
                   "LEFT JOIN deliveries d ON d.alert_id = a.id "
                   "WHERE a.kind = 'source_health' ORDER BY a.id")
    return [(r["decision"], r["status"], r["target"], r["sent"]) for r in rows]


def test_a_failure_held_back_by_a_silence_is_told_when_the_source_still_fails_after(
        tmp_path, root):
    """The operator silences the media feed's health messages for a day (it is being
    moved); the move goes wrong, and the feed fails all that day and on after the
    silence. Its failure, held back while the silence lasted, is told by the first poll
    after it, once, and its recovery follows it. Before, it was never told: the
    recipients heard nothing of a feed that failed for days after the silence."""
    cfg = load_config(write_config(tmp_path, RSS_SOURCE + target("mail", DEAD)
                                   + "\n[alerting]\nsend_resolved = true\n"))
    clock = {"t": T0}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance=None, kind="source_health", source="media",
                            duration=timedelta(days=1), reason="moving the feed", who="kari",
                            via="web", now=T0 - timedelta(minutes=5))
        for h in range(0, 24 * 4, 6):  # four days of failed polls; the silence ends at 24:00
            clock["t"] = T0 + timedelta(hours=h)
            assert pipe.poll("media").ok is False
        told = _health(store)
        (tmp_path / "feeds").mkdir()
        shutil.copy(root / "tests/fixtures/rss/ba_2026-03.xml", tmp_path / "feeds/ba.xml")
        clock["t"] = T0 + timedelta(days=4)
        assert pipe.poll("media").ok is True
        rows = _health(store)
    finally:
        store.close()
    assert told == [("open", "silenced", None, None), ("open", "open", "mail", "pending")]
    assert rows == [("open", "silenced", None, None), ("open", "resolved", "mail", "pending"),
                    ("resolve", "resolved", "mail", "pending")]


def _feed(path, entries: list[tuple[datetime, str]]) -> None:
    """An RSS feed of ``entries``, each with a link of its own."""
    items = "".join(
        f"<item><title>{escape(t)}</title><link>https://news.example/{t.replace(' ', '-')}"
        f"</link><pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for when, t in entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                    "<title>t</title><link>https://news.example</link><description>d"
                    f"</description>{items}</channel></rss>", encoding="utf-8")


def test_the_weeks_a_feed_was_down_and_no_longer_shows_are_not_counted_as_zero(tmp_path):
    """A news feed shows its latest 15 entries (about a week); it is read every other
    day. It is down for four weeks (its file gone) and comes back showing only the
    entries of its last week: the weeks whose articles no poll read are left without a
    value (a gap the detectors leave out), also at the polls after, and the weeks from
    its return are counted. Before, they were counted as weeks without articles (0),
    a fall that was never there."""
    monday = datetime(2026, 1, 5, 12, tzinfo=UTC)
    entries = []
    for d in range(7 * 14):
        day = monday + timedelta(days=d)
        entries.append((day + timedelta(hours=9), f"Været blir fint dag {d}"))
        if d % 2 == 0:
            entries.append((day + timedelta(hours=10), f"Politiet beslagla ketamin dag {d}"))
    feed = tmp_path / "data" / "feed.xml"
    cfg = _media(tmp_path, feed)
    down = (monday + timedelta(weeks=6), monday + timedelta(weeks=10))
    now = monday
    while now < monday + timedelta(weeks=13):
        now += timedelta(days=2)
        if down[0] <= now < down[1]:
            feed.unlink(missing_ok=True)
        else:
            _feed(feed, [e for e in entries if e[0] <= now][-15:])
        assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok is not (
            down[0] <= now < down[1])
    counts = _counts(cfg, "ketamin")
    weeks = [(monday + timedelta(weeks=w)).date().isoformat() for w in range(12)]
    # read before the outage: 4 or 3 a week; unread: from the week of the last read
    # (Saturday 14 February) to that of the oldest entry shown on the return (6 March)
    assert [counts.get(w) for w in weeks] == [4, 3, 4, 3, 4, None, None, None, None, 3, 4,
                                              3]


def test_the_weeks_a_feed_was_not_polled_and_no_longer_shows_are_not_counted_as_zero(
        tmp_path):
    """The same feed, read every other day (``interval = "2d"``), is not polled for four
    weeks (paused, or warnd stopped): the weeks it no longer shows when it is polled
    again are left without a value, not counted as 0."""
    monday = datetime(2026, 1, 5, 12, tzinfo=UTC)
    entries = []
    for d in range(7 * 14):
        day = monday + timedelta(days=d)
        entries.append((day + timedelta(hours=9), f"Været blir fint dag {d}"))
        if d % 2 == 0:
            entries.append((day + timedelta(hours=10), f"Politiet beslagla ketamin dag {d}"))
    feed = tmp_path / "data" / "feed.xml"
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=source(
        "media", str(feed), interval="2d", kind="rss", dimension="interest")))
    now = monday
    while now < monday + timedelta(weeks=13):
        now += timedelta(days=2)
        if not monday + timedelta(weeks=6) <= now < monday + timedelta(weeks=10):
            _feed(feed, [e for e in entries if e[0] <= now][-15:])
            assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok
    counts = _counts(cfg, "ketamin")
    weeks = [(monday + timedelta(weeks=w)).date().isoformat() for w in range(12)]
    assert [counts.get(w) for w in weeks] == [4, 3, 4, 3, 4, None, None, None, None, 3, 4,
                                              3]


def test_a_file_too_large_in_a_folder_does_not_keep_the_other_files_from_being_read(
        tmp_path):
    """The lab's folder gets a weekly file; one day a whole-year export larger than
    ``fetch_max_bytes`` is saved there too. The weekly files that come after it are read
    at their polls, and the large file is named as a problem of the source (read again
    at each poll, as a file whose parser failed). Before, every poll of the folder
    failed on it: no week was read until someone took the file away, and the source
    was told as failing."""
    folder = tmp_path / "lab"
    folder.mkdir()
    cfg = load_config(write_service_config(
        tmp_path / "config.toml", sources=source("lab", str(folder), interval="1d"),
        general="fetch_max_bytes = 4000\n"))
    monday = datetime(2026, 1, 5, 12, tzinfo=UTC)
    big = "period,substance,value\n" + "".join(
        f"2025-{m:02d}-{d:02d},ketamin,{d}\n" for m in range(1, 13) for d in range(1, 28))
    assert len(big) > 4000
    results = []
    for w in range(6):
        day = (monday + timedelta(weeks=w)).date()
        (folder / f"week-{day}.csv").write_text(
            f"period,substance,value\n{day},ketamin,{5 + w}\n", encoding="utf-8")
        if w == 2:
            (folder / "export-2025.csv").write_text(big, encoding="utf-8")
        results.append(Pipeline(cfg, clock=lambda w=w: monday + timedelta(weeks=w, days=1)
                                ).poll("lab").ok)
    assert results == [True] * 6
    store = Store.in_dir(cfg.state_dir)
    try:
        weeks = [r["period"][:10] for r in store.q(
            "SELECT period FROM observations WHERE source='lab' ORDER BY period")]
        state = store.source_state("lab")
        problems = [r["message"] for r in store.q(
            "SELECT message FROM problems WHERE source='lab'")]
    finally:
        store.close()
    assert weeks == [(monday + timedelta(weeks=w)).date().isoformat() for w in range(6)]
    assert state["consecutive_failures"] == 0
    assert any("larger than max_bytes=4000" in p for p in problems), problems
    # a folder none of whose files can be read fails its poll, as one that cannot be listed
    for f in folder.glob("week-*.csv"):
        f.unlink()
    assert Pipeline(cfg, clock=lambda: monday + timedelta(weeks=6)).poll("lab").ok is False


def test_a_source_paused_while_it_fails_has_its_failure_ended_and_told_anew_if_it_goes_on(
        tmp_path):
    """The media feed fails and its failure is told; the operator pauses it (``enabled =
    false``). The next whole detection pass ends the failure quietly, as a removed
    source's: `warnd status` and the console no longer list it open, and nothing is
    sent. Resumed, the feed is counted afresh: two failed polls tell nothing, the third
    tells a new failure. Before, the failure stayed open for as long as the feed was
    paused (and a resumed feed's first failed poll was counted on from the old ones)."""
    mail = target("mail", DEAD)
    cfg = load_config(write_config(tmp_path, RSS_SOURCE + mail))
    paused = load_config(write_config(tmp_path, RSS_SOURCE + "enabled = false\n" + mail,
                                      name="paused.toml"))
    for k in range(3):
        assert Pipeline(cfg, clock=lambda k=k: T0 + timedelta(hours=k)).poll(
            "media").ok is False
    Pipeline(paused, clock=lambda: T0 + timedelta(days=1)).detect()
    store = Store.in_dir(cfg.state_dir)
    try:
        after_pause = _health(store)
        failures = store.source_state("media")["consecutive_failures"]
        later = T0 + timedelta(days=30)
        resumed = []
        for k in range(3):
            assert Pipeline(cfg, clock=lambda k=k: later + timedelta(hours=k)).poll(
                "media").ok is False
            resumed.append(_health(store)[1:])
    finally:
        store.close()
    assert after_pause == [("open", "resolved", "mail", "pending")]
    assert failures == 0
    assert resumed == [[], [], [("open", "open", "mail", "pending")]]


def _turning_feed(tmp_path, name: str, interval: str, *, folder: bool = False) -> list:
    """A news feed showing its latest 6 entries, a new one every 6 hours (a day and a half
    of them), polled every ``interval`` for three weeks: written anew at one address, or
    (``folder``) as a new file in a folder each time. The problems ``warnd status`` lists
    for it at the end, and the counts and unread weeks of the store."""
    monday = datetime(2026, 1, 5, 12, tzinfo=UTC)
    entries = [(monday + timedelta(hours=6 * i), f"Politiet beslagla ketamin nr {i}")
               for i in range(4 * 7 * 4)]
    where = tmp_path / name / ("drop" if folder else "feed.xml")
    where.parent.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_service_config(tmp_path / name / "config.toml", sources=source(
        "media", str(where), interval=interval, kind="rss", dimension="interest"),
        state_dir=str(tmp_path / name / "state")))
    step, now = timedelta(days=int(interval.removesuffix("d"))), monday
    while now < monday + timedelta(weeks=3):
        now += step
        shown = [e for e in entries if e[0] <= now][-6:]
        _feed(where / f"{now:%Y%m%d}.xml" if folder else where, shown)
        assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok
    status = collect_status(cfg, now=now)
    store = Store.in_dir(cfg.state_dir)
    try:
        unread = store.q("SELECT unread_from, unread_until FROM source_state")[0]
    finally:
        store.close()
    return [p["message"] for p in status["sources"][0]["recent_problems"]], unread, _counts(
        cfg, "ketamin")


def test_a_feed_polled_less_often_than_its_entries_turn_over_is_reported(tmp_path):
    """A feed showing a day and a half of entries, polled every other day on time: each
    poll after the first finds its oldest entry newer than the poll before, so the
    entries published in between were never read. `warnd status` lists that as a
    problem of the source, naming the gap and suggesting a shorter `interval`; the
    counts are left as they are (no weeks are marked unread, as after missed polls).
    The same feed polled daily, within its turnover, and one written as files into a
    folder (which keeps what came meanwhile) report nothing. Before, the undercount was
    silent."""
    problems, unread, counts = _turning_feed(tmp_path, "slow", "2d")
    assert problems and all(p.startswith("entries may have been missed: ") for p in problems)
    assert ("entries may have been missed: the oldest entry the feed shows "
            "(2026-01-26 06:00 UTC) is newer than the last successful poll "
            "(2026-01-25 12:00 UTC), so what it showed between them was not read; its "
            "entries turn over faster than it is polled: give it a shorter `interval` "
            "than 2d") == problems[0]
    assert unread == {"unread_from": None, "unread_until": None}
    assert counts == {"2026-01-05": 18.0, "2026-01-12": 21.0, "2026-01-19": 21.0}  # 6 of 8
    for name, interval, folder in (("daily", "1d", False), ("folder", "2d", True)):
        problems, unread, _ = _turning_feed(tmp_path, name, interval, folder=folder)
        assert problems == [] and unread == {"unread_from": None, "unread_until": None}


def test_entries_missed_between_two_polls_stay_listed_after_a_reading_without_a_gap(
        tmp_path):
    """The feed turning over faster than it is polled misses entries between two polls:
    `warnd status` lists that. The next poll reads the feed again, this time within its
    turnover: the feed's own problems are those of that reading, but the entries missed
    before are still missed (the counts of their week stay too low), so that problem of
    the polls stays listed, with when it was seen."""
    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    where = tmp_path / "feed.xml"
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=source(
        "media", str(where), interval="2d", kind="rss", dimension="interest"),
        state_dir=str(tmp_path / "state")))
    listed = []
    for hours in (0, 48, 60):
        now = start + timedelta(hours=hours)
        _feed(where, [(now - timedelta(hours=6 * i), f"Politiet beslagla ketamin {hours}-{i}")
                      for i in range(5, -1, -1)])
        assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok
        listed.append([(p["message"][:29], p["seen_at"][:16]) for p in collect_status(
            cfg, now=now)["sources"][0]["recent_problems"]])
    missed = [("entries may have been missed:", "2026-01-07T12:00")]
    assert listed == [[], missed, missed], listed


def test_a_problem_repeated_in_other_words_at_every_poll_does_not_grow_the_store(tmp_path):
    """The feed turning over faster than it is polled, polled every other day for four
    months: each poll's problem names other times ("entries may have been missed: …
    (2026-05-01 06:00 UTC) …"), a row of its own. The store keeps the source's newest
    ``PROBLEMS_KEPT`` of them, and `warnd status` still lists the newest first, the last
    poll's. Before, a row was added at every poll and none was ever deleted."""
    from warnd.store import PROBLEMS_KEPT

    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    polls = PROBLEMS_KEPT + 10
    where = tmp_path / "feed.xml"
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=source(
        "media", str(where), interval="2d", kind="rss", dimension="interest"),
        state_dir=str(tmp_path / "state")))
    now = start
    for _ in range(polls):
        now += timedelta(days=2)
        _feed(where, [(now - timedelta(hours=6 * i), f"Politiet beslagla ketamin {now:%j}-{i}")
                      for i in range(5, -1, -1)])
        assert Pipeline(cfg, clock=lambda now=now: now).poll("media").ok
    store = Store.in_dir(cfg.state_dir)
    try:
        rows = store.q("SELECT message, seen_at FROM problems WHERE source='media' "
                       "ORDER BY seen_at DESC")
    finally:
        store.close()
    assert len(rows) == PROBLEMS_KEPT
    assert len({r["message"] for r in rows}) == PROBLEMS_KEPT
    assert rows[0]["seen_at"][:10] == now.date().isoformat()
    assert rows[-1]["seen_at"][:10] == (
        now - timedelta(days=2 * (PROBLEMS_KEPT - 1))).date().isoformat()
    newest = collect_status(cfg, now=now)["sources"][0]["recent_problems"]
    assert len(newest) == 5 and newest[0]["message"] == rows[0]["message"]
    oldest_shown = (now - timedelta(hours=30)).astimezone(UTC)
    assert f"({oldest_shown:%Y-%m-%d %H:%M} UTC) is newer" in newest[0]["message"]
