"""`warnd backtest --replay store` against the daemon when staff act the day a message
came (a silence, an acknowledgement hours after the morning's poll): what it prints is
what the daemon sent, week by week through the real pipeline."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from tests.alerting_env import make_config, target
from tests.scenario import LAB_SOURCE, noon_after_week
from tests.test_stream_replay import START, _publish, _sent
from warnd.alerting import actions
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store

MORNING = timedelta(hours=-6)  # the lab is polled at 06:00


def _lab_to_ops(tmp_path, weeks: int, rise: int):
    """A lab's daily-polled table of ketamine counts, rising from week ``rise``, told to
    ops: the config and the weekly values."""
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    (tmp_path / "data").mkdir()
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"),
                      sources=LAB_SOURCE.format(interval="1d").replace(
                          "data/", f"{tmp_path}/data/"))
    return cfg, values


def _silence_three_weeks(cfg, *, at) -> None:
    """Kari silences ketamine in the console at ``at`` for three weeks."""
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="ketamin", reason="x", who="kari", via="web",
                            duration=timedelta(weeks=3), now=at)
    finally:
        store.close()


def test_store_replay_holds_back_only_what_a_silence_came_before(tmp_path):
    """The lab's table is polled and judged every Monday at 06:00 (and every hour the
    daemon judges what is new, telling what a silence ended since held back). The
    morning ketamin's spike was told, Kari silenced ketamin at 09:00 for three weeks:
    the spike had gone to ops, the rise that followed was held back and told the hour
    after the silence ended.
    `backtest --replay store`, run at noon on the daemon's days, gives the same
    messages, dates and recipients: the values of the morning's poll are judged with
    the silences and acknowledgements as they were at that poll. Before, the silence
    made at 09:00 held back the spike polled at 06:00."""
    weeks, rise = 118, 106
    cfg, values = _lab_to_ops(tmp_path, weeks, rise)
    silenced = False
    for w in range(100, weeks):
        now = noon_after_week(START, w) + MORNING
        _publish(tmp_path / "data" / "lab.csv", values, range(w))
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        if p.detect() and not silenced:
            silenced = True
            _silence_three_weeks(cfg, at=now + timedelta(hours=3))
        noon = now - MORNING  # the hourly pass
        Pipeline(cfg, clock=lambda noon=noon: noon).detect()
    sent = _sent(cfg)
    assert [t for *_, t in sent][:2] == [["ops"], []] and sent[-1][3] == ["ops"], sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent


def test_store_replay_from_the_installation_holds_back_only_what_a_silence_came_before(
        tmp_path):
    """warnd is installed at 06:00 on a Monday with the lab's table, whose ketamine
    counts have risen for weeks: the first run told the rise. Kari silenced ketamin at
    09:00 for three weeks. `backtest --replay store` from the day of the installation
    gives the same messages and recipients: the first date is judged at the time of the
    store's first poll when it was that day. Before, it was judged at noon, with the
    silence made at 09:00, and the rise was listed as held back."""
    weeks, rise, installed = 112, 96, 100
    cfg, values = _lab_to_ops(tmp_path, weeks, rise)
    for w in range(installed, weeks):
        now = noon_after_week(START, w) + MORNING
        _publish(tmp_path / "data" / "lab.csv", values, range(w))
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        p.detect()
        if w == installed:
            _silence_three_weeks(cfg, at=now + timedelta(hours=3))
        noon = now - MORNING  # the hourly pass
        Pipeline(cfg, clock=lambda noon=noon: noon).detect()
    sent = _sent(cfg)
    assert sent and sent[0][3] == ["ops"], sent
    first = noon_after_week(START, installed).date()
    last = noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent


def test_store_replay_tells_a_correction_once_a_silence_was_ended_early(tmp_path):
    """The lab's spike was told; the week the lab revised it away, Kari silenced ketamin
    for ten weeks, and ended the silence on a Wednesday two weeks on: the correction
    held back was told by the daemon's next round, the Monday after. `backtest --replay
    store` gives the same messages and recipients, on the daemon's days: a silence
    ended early holds back nothing after it was ended."""
    weeks, spike = 124, 110
    values = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    values[spike] = 40
    (tmp_path / "data").mkdir()
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"),
                      sources=LAB_SOURCE.format(interval="1d").replace(
                          "data/", f"{tmp_path}/data/"))
    silence = None
    for w in range(100, weeks):
        now = noon_after_week(START, w) + MORNING
        if w == spike + 3:
            values[spike] = 5  # the lab's week revised to its usual level
            store = Store.in_dir(cfg.state_dir)
            try:
                silence = actions.add_silence(
                    store, substance="ketamin", reason="x", who="kari", via="web",
                    duration=timedelta(weeks=10), now=now - timedelta(hours=1))
            finally:
                store.close()
        if w == spike + 6:
            store = Store.in_dir(cfg.state_dir)
            try:
                actions.expire_silence(store, silence, who="kari", via="web",
                                       now=now - timedelta(days=5))
            finally:
                store.close()
        _publish(tmp_path / "data" / "lab.csv", values, range(w))
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        p.detect()
        noon = now - MORNING  # the hourly pass
        Pipeline(cfg, clock=lambda noon=noon: noon).detect()
    sent = _sent(cfg)
    assert [(d, t) for _, d, _, t in sent] == [
        ("open", ["ops"]), ("correct", []), ("correct", ["ops"])], sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent
