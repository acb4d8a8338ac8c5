"""`warnd backtest --replay store` against the daemon for a news feed that was down for
weeks: what it prints is what the daemon sent, poll by poll through the real
pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_stream_source_health import _feed
from tests.test_stream_sources import _media
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store


def test_store_replay_of_a_feed_down_for_weeks_is_the_daemons(tmp_path):
    """A news feed showing its latest 15 entries, read every other day, names ketamine
    every other day for half a year, is down four weeks (its file gone), comes back
    showing only its last week, and then names ketamine several times a day. The
    daemon judged the weeks it did not read as a gap and told the rise after it; the
    replay of its store gives the same trend messages on the same dates (the source's
    failure and recovery it does not list: the store keeps no record of each poll)."""
    monday = datetime(2025, 6, 2, 12, tzinfo=UTC)
    weeks, down, back = 40, (24, 28), 30
    entries = []
    for d in range(7 * weeks):
        day = monday + timedelta(days=d)
        entries.append((day + timedelta(hours=9), f"Været blir fint dag {d}"))
        per_day = 4 if d >= 7 * back else 1 if d % 2 == 0 else 0
        entries += [(day + timedelta(hours=10 + h), f"Politiet beslagla ketamin dag {d} {h}")
                    for h in range(per_day)]
    feed = tmp_path / "data" / "feed.xml"
    cfg = _media(tmp_path, feed)
    now, sent = monday, []
    while now < monday + timedelta(weeks=weeks):
        now += timedelta(days=2)
        gone = monday + timedelta(weeks=down[0]) <= now < monday + timedelta(weeks=down[1])
        if gone:
            feed.unlink(missing_ok=True)
        else:
            _feed(feed, [e for e in entries if e[0] <= now][-15:])
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("media").ok is not gone
        sent += [(now.date().isoformat(), a["decision"], a["title"]) for a in p.detect()
                 if a["kind"] != "source_health"]
    store = Store.in_dir(cfg.state_dir)
    try:
        assert store.q("SELECT COUNT(*) AS n FROM alerts WHERE kind='source_health'")[0]["n"]
    finally:
        store.close()
    returned = (monday + timedelta(weeks=down[1])).date().isoformat()
    assert sent and sent[0][1] == "open" and min(d for d, *_ in sent) > returned, sent
    msgs = replay(cfg, start=(monday + timedelta(days=2)).date(),
                  end=now.date(), every=2)
    assert [(m["date"], m["decision"], m["title"]) for m in msgs] == sent
