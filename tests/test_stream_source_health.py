"""A source's health over time: failures, recoveries and silences through the real
pipeline's polls, with a moving clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

from tests.alerting_env import target
from tests.conftest import write_config
from tests.test_alerting import RSS_SOURCE
from tests.test_stream_config_changes import DEAD
from warnd.alerting import actions
from warnd.config import load_config
from warnd.pipeline import Pipeline
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
