"""`warnd backtest --replay store` against the daemon for acknowledgements of earlier
messages of an episode: what it prints is what the daemon sent, week by week through
the real pipeline."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from tests.scenario import noon_after_week
from tests.test_stream_replay import START, _daemon, _sent
from warnd.replay import replay
from warnd.store import Store


def test_store_replay_acknowledges_the_earlier_reminder_staff_acknowledged(tmp_path):
    """With ``repeat_after_periods = 2`` the daemon reminded ops of ketamin's rise, told
    it worse (an escalation) and reminded of that. Then Ana acknowledged the rise's
    first reminder, an old email: that acknowledged the rise as first told, not the
    escalation, so the escalation's reminders went on. `backtest --replay store` gives
    the same messages: an acknowledgement goes to the replay's message that stands
    where the acknowledged one did. Before, it went to the replay's latest reminder,
    the escalation's, and the replay listed no reminder after it."""
    from warnd.alerting.actions import ack_alert

    weeks, rise, up = 130, 106, 114
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    values[up:] = np.random.default_rng(5).poisson(60.0, weeks - up)
    acked = noon_after_week(START, weeks - 1)

    def ack(cfg, now):
        if now == acked:
            store = Store.in_dir(cfg.state_dir)
            try:
                first = store.q("SELECT id FROM alerts WHERE kind='trend' AND "
                                "decision='repeat' ORDER BY id LIMIT 1")[0]["id"]
                assert ack_alert(store, first, who="ana", via="web",
                                 now=now - timedelta(days=6))
            finally:
                store.close()

    cfg, _ = _daemon(tmp_path, values, lambda w: range(w), ack,
                     "\n[detection]\nrepeat_after_periods = 2\n")
    sent = _sent(cfg)
    escalated = [d for d, decision, *_ in sent if decision == "escalate"]
    after = [d for d, decision, *_ in sent if decision == "repeat" and d > escalated[0]]
    assert len(after) == 2 and after[-1] == acked.date().isoformat(), sent
    first, last = noon_after_week(START, 100).date(), acked.date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent
    assert date.fromisoformat(escalated[0]) < acked.date()
