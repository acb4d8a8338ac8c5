"""`warnd backtest --replay store` against the daemon for feeds polled between the
data's polls (a warnings page) or down for weeks (a news feed): what it prints is what
the daemon sent, poll by poll through the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from tests.alerting_env import make_config, target
from tests.scenario import LAB_SOURCE, noon_after_week
from tests.test_stream_notices import _page
from tests.test_stream_replay import NOTICES, START, _publish, _sent
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


def test_store_replay_lists_a_warning_polled_after_a_rise_after_it(tmp_path):
    """Each Monday the lab's table is polled and judged at noon and the warnings page
    at two; warnings of ketamine come at one, in the week its spike is told and two
    weeks later. The daemon sent the spike, then the warning, the same day;
    `backtest --replay store` lists the messages in the order the daemon sent them.
    Before, it listed the warning first: every notice of a day came before the day's
    detection."""
    weeks, rise = 112, 106
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    (tmp_path / "data").mkdir()
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"),
                      sources=LAB_SOURCE.format(interval="1d").replace(
                          "data/", f"{tmp_path}/data/")
                      + NOTICES.replace("varsler.html", f"{tmp_path}/od/varsler.html"))
    shown = []
    for w in range(100, weeks):
        now = noon_after_week(START, w)
        _publish(tmp_path / "data" / "lab.csv", values, range(w))
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        p.detect()
        if w in (rise + 1, rise + 3):
            shown.append((f"v/{w}", f"Farlig ketamin {w}", "Farlig ketamin i omløp.",
                          now + timedelta(hours=1)))
        _page(tmp_path, *shown)
        later = now + timedelta(hours=2)
        assert Pipeline(cfg, clock=lambda later=later: later).poll("overdosefare").ok
    sent = _sent(cfg)
    assert [(d, t.split(" — ")[0]) for d, _, t, _ in sent[:2]] == [
        (sent[0][0], "Enkeltstående topp: ketamin"), (sent[0][0], "Ny advarsel: ketamin")]
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in replay(cfg, start=first, end=last, every=7)] == sent
