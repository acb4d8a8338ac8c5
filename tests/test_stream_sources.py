"""Sources over time: what a source's polls store, week after week, with a moving clock.

Each test runs the real pipeline's polls on local files while the clock moves, and
checks what is stored against what a reader of the source would expect.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.scenario import write_rss
from tests.service_kit import write_service_config
from tests.test_service import source
from warnd.cli import collect_status
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

MONDAY = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _counts(cfg, substance: str) -> dict[str, float]:
    st = Store.in_dir(cfg.state_dir)
    try:
        return {r["period"]: r["value"] for r in st.q(
            "SELECT period, value FROM observations WHERE source='media' AND substance=? "
            "AND metric='count' ORDER BY period", [substance])}
    finally:
        st.close()


def test_weeks_without_articles_after_the_last_one_count_as_zero(tmp_path):
    """A news feed that stops naming the monitored substances, polled fine every day,
    has weeks with no articles: those weeks are zero, up to the last complete week,
    not missing. (Before, the weekly counts ran only to the week of the source's latest
    article, so after a burst the series stayed at the burst for good: its rise could
    never end and the source was reported as having old data while it was polled.)"""
    feed = tmp_path / "data" / "feed.xml"
    burst = [(MONDAY + timedelta(days=d, hours=h), f"Politiet beslagla ketamin {d} {h}")
             for d in range(0, 14) for h in range(3)]
    write_rss(feed, burst)
    cfg = load_config(write_service_config(
        tmp_path / "config.toml", sources=source("media", str(feed), kind="rss",
                                                 dimension="interest")))
    now = MONDAY + timedelta(days=14)  # the Monday after the burst's second week
    for _ in range(6 * 7):  # six weeks of daily polls; the feed shows the same articles
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
