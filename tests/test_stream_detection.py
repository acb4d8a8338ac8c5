"""Detection decisions carried over weeks: reminders of an episode and what an
acknowledgement stops. Week by week through the real episode rules
(``detectors/episodes.py``), the real deciding (``warnd/alerting/decide.py``) and a real
store; the clock passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from tests.alerting_env import finding, judge_period, make_config, seed_series, target
from tests.conftest import write_config
from tests.scenario import LAB_SOURCE
from tests.test_stream_staff import Weeks
from warnd.alerting import actions, decide
from warnd.config import load_config
from warnd.store import Store

MAIL = target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org")
D0 = date(2026, 7, 6)


def _week(cfg, store, w: int, per_source: dict) -> list[dict]:
    """Week ``w`` of every series of ketamine, judged the day after it ended."""
    period = D0 + timedelta(weeks=w)
    return judge_period(cfg, store, period, per_source,
                        now=datetime.combine(period + timedelta(days=1), datetime.min.time(),
                                             UTC))


def _at(w: int, **kw):
    return finding("lab", detected=D0 + timedelta(weeks=w), **kw)


def test_a_spike_during_an_acknowledged_rise_brings_no_reminder(tmp_path):
    """Reminders every four weeks. The lab's rise is told and acknowledged at once; in
    the week a reminder would fall due the lab also has a one-off spike. Nothing is
    sent: the rise is acknowledged, and a spike while the substance rises is part of
    that rise's story (recorded, not told alone). Before, the spike in the round made
    the reminder go out despite the acknowledgement."""
    cfg = make_config(tmp_path, MAIL, "\n[detection]\nrepeat_after_periods = 4\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    told = []
    for w in range(12):
        per = [_at(w)] + ([_at(w, kind="spike", rel=2.5)] if w == 4 else [])
        for a in _week(cfg, store, w, {"lab": per}):
            told.append((w, a["kind"], a["decision"]))
            if a["decision"] == "open":
                assert actions.ack_alert(store, a["id"], who="kari", via="web")
    assert told == [(0, "trend", "open")]
    store.close()


def test_an_acknowledged_decrease_is_not_reminded_of(tmp_path):
    """Decreases are told (``alert_decreases``), reminders every four weeks. A fall in
    the lab is told and acknowledged: no reminders follow while it lasts. Before, only
    an acknowledged rise stopped reminders, so an acknowledged fall was reminded of
    every four weeks for as long as it lasted."""
    cfg = make_config(tmp_path, MAIL, "\n[detection]\nrepeat_after_periods = 4\n"
                      "alert_decreases = true\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    told = []
    for w in range(14):
        down = _at(w, direction="decrease", rel=-0.6, category=-2)
        for a in _week(cfg, store, w, {"lab": [down]}):
            told.append((w, a["direction"], a["decision"]))
            if a["decision"] == "open":
                assert actions.ack_alert(store, a["id"], who="kari", via="web")
    assert told == [(0, "decrease", "open")]
    store.close()


def test_an_acknowledged_rise_does_not_silence_a_fall_elsewhere(tmp_path):
    """Decreases told, reminders every four weeks. The lab's rise is told and
    acknowledged; customs (another source of the substance) falls from the same week,
    unacknowledged: its fall is reminded of every four weeks, the acknowledged rise
    not. Before, the rise's acknowledgement also swallowed the fall's reminders."""
    cfg = make_config(tmp_path, MAIL, "\n[detection]\nrepeat_after_periods = 4\n"
                      "alert_decreases = true\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    seed_series(store, "customs")
    told = []
    for w in range(10):
        down = finding("customs", detected=D0 + timedelta(weeks=w), direction="decrease",
                       rel=-0.6, category=-2)
        for a in _week(cfg, store, w, {"lab": [_at(w)], "customs": [down]}):
            told.append((w, a["direction"], a["decision"]))
            if a["decision"] == "open" and a["direction"] == "increase":
                assert actions.ack_alert(store, a["id"], who="kari", via="web")
    assert told == [(0, "increase", "open"), (0, "decrease", "open"),
                    (4, "decrease", "repeat"), (8, "decrease", "repeat")]
    store.close()


def test_reminders_of_a_rise_from_two_sources_keep_their_cadence(tmp_path):
    """Reminders every four weeks. The lab's rise opens in week 0, customs agrees from
    week 2 (an escalation): the recipients are reminded four weeks after the last
    message, every four weeks. Before, each source reminded on its own cadence (the
    lab in weeks 4, 8, 12, customs in 6, 10, 14): a reminder every two weeks."""
    cfg = make_config(tmp_path, MAIL, "\n[detection]\nrepeat_after_periods = 4\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    seed_series(store, "customs")
    told = []
    for w in range(16):
        per = {"lab": [_at(w)]}
        if w >= 2:
            per["customs"] = [finding("customs", detected=D0 + timedelta(weeks=w))]
        told += [(w, a["decision"]) for a in _week(cfg, store, w, per)]
    assert told == [(0, "open"), (2, "escalate"), (6, "repeat"), (10, "repeat"),
                    (14, "repeat")]
    store.close()


def test_a_spike_after_a_rise_is_told_though_one_during_it_was_only_recorded(tmp_path):
    """The lab rises (weeks 0-9) and has one-off spikes in weeks 8 and 11, while the
    substance rises: they are part of the rise's story, recorded and not told alone.
    The rise ends (week 13); a spike in week 14 is the first spike anyone hears of and
    is told as its own message. Before, the spikes three weeks apart kept one spike
    episode going, so the spike after the rise was taken for an ongoing one and never
    told."""
    cfg = make_config(tmp_path, MAIL)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    told = []
    for w in range(18):
        per = [_at(w)] if w <= 9 else []
        if w in (8, 11, 14):
            per.append(_at(w, kind="spike", rel=2.5))
        told += [(w, a["kind"], a["decision"]) for a in _week(cfg, store, w, {"lab": per})]
    assert told == [(0, "trend", "open"), (14, "spike", "open")]
    store.close()


def test_a_fall_going_on_when_decreases_are_turned_on_is_told(tmp_path):
    """The lab's counts fall from week 0; decreases are not told. In week 5 the
    operator turns ``alert_decreases`` on (a reload) while the fall goes on: its next
    week tells it, as a rise held back for corroboration is told once the config no
    longer asks for corroboration."""
    cfg = make_config(tmp_path, MAIL)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    told = []
    for w in range(10):
        if w == 5:
            cfg = make_config(tmp_path, MAIL, "\n[detection]\nalert_decreases = true\n")
        down = _at(w, direction="decrease", rel=-0.6, category=-2)
        told += [(w, a["direction"], a["decision"])
                 for a in _week(cfg, store, w, {"lab": [down]})]
    assert told == [(5, "decrease", "open")]
    store.close()


def test_a_fall_going_on_when_decreases_are_turned_on_is_told_by_the_pipeline(tmp_path):
    """The same through the pipeline, week by week (``run --once``, a new process each
    week): the lab's ketamine counts fall from 40 to 8 a week in week 100; decreases
    are not told until the config is reloaded with ``alert_decreases`` in week 102,
    while the fall's episode is open. That week tells it (``open``); before, nothing
    was told of it at all."""
    lam = np.full(106, 40.0)
    lam[100:] = 8.0
    run = Weeks(tmp_path, [int(x) for x in np.random.default_rng(5).poisson(lam)])
    told = []
    for w in range(98, 106):
        if w == 102:
            run.cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                               + "\n[detection]\nalert_decreases = true\n"))
        told += [(w, a["direction"], a["decision"]) for a in run.run(w)]
    assert told == [(102, "decrease", "open")]


def test_a_reminder_after_a_catch_up_counts_from_the_catch_up_message(tmp_path):
    """Reminders every four weeks of a rise that lasts, ``run --once`` week by week (a
    new process each week); the daemon stands still for twelve weeks (115-126) and
    catches up in week 127. The catch-up tells one reminder, and the next comes four
    weeks after it. Before, it came the week after the catch-up, four weeks after the
    last reminder the catch-up had judged but not sent."""
    from tests.test_stream_staff import _level

    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(140, (100, 140)))]
    run = Weeks(tmp_path, lab, "\n[detection]\nrepeat_after_periods = 4\n")
    for w in [*range(98, 115), *range(127, 140)]:
        run.run(w)
    assert [(w, d) for w, d, _ in run.told] == [
        (104, "open"), (108, "repeat"), (112, "repeat"), (127, "repeat"), (131, "repeat"),
        (135, "repeat"), (139, "repeat")]
