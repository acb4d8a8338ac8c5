"""Revised values over time: what a substance's recipients are told when a source
revises periods already judged (week by week through detection, a real store)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from feeds.base import Observation
from tests.alerting_env import make_config, target
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
MAIL = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")


def _put(cfg, values, upto: int | None = None) -> None:
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest("lab", location="lab.csv", sha256=None, problems=(), items=(),
                     observations=[Observation(source="lab", substance="ketamin",
                                               period=START + timedelta(weeks=i),
                                               value=float(v))
                                   for i, v in enumerate(values[:upto])])
    finally:
        store.close()


def _week_end(w: int) -> datetime:
    return datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(),
                            UTC) + timedelta(hours=12)


def _told(cfg, w: int) -> list[str]:
    return [a["decision"] for a in Pipeline(cfg, clock=lambda: _week_end(w)).detect()
            if a["kind"] == "trend"]


def test_a_rise_revised_away_is_corrected_though_an_older_episode_had_ended(tmp_path):
    """The lab's ketamine series had a rise a year and more ago that ended. A new rise
    comes in its last weeks and is told; the lab then revises those weeks down to the
    usual level. The recipients get a correction. Before, the series judged again from
    its start counted the old episode's end as the end of the told one: with
    ``send_resolved`` off nothing was sent, so the withdrawn rise stood uncorrected."""
    cfg = make_config(tmp_path, MAIL)
    weeks, rise = 170, 160
    lam = np.full(weeks, 5.0)
    lam[30:42] *= 3  # the old rise, long over
    usual = np.random.default_rng(11).poisson(lam).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    told = []
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        told += _told(cfg, w)
    assert told == ["open"]
    _put(cfg, usual)  # the last weeks revised down: the rise told is gone
    assert _told(cfg, weeks) == ["correct"]
    assert _told(cfg, weeks) == []


def test_a_rise_revised_away_and_back_is_told_again_each_time(tmp_path):
    """A source that cannot make up its mind: the lab's last weeks show a rise (told),
    are revised down (corrected), then back up, then down again. Each revision changes
    what is true, and the recipients hear each change: open, correction, open,
    correction. Before, the second opening and the second correction rested on the
    same findings as the first ones and were dropped as their duplicates, while the
    substance's state said the rise was told: the recipients were left believing it
    withdrawn while it stood."""
    cfg = make_config(tmp_path, MAIL)
    weeks, rise = 120, 110
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    told = []
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        told += _told(cfg, w)
    assert told == ["open"]
    for values, decision in [(usual, "correct"), (risen, "open"), (usual, "correct")]:
        _put(cfg, values)
        assert _told(cfg, weeks) == [decision]
    store = Store.in_dir(cfg.state_dir)
    try:
        sent = store.q("SELECT decision FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
                       "WHERE a.kind = 'trend' ORDER BY a.id")
    finally:
        store.close()
    assert [r["decision"] for r in sent] == ["open", "correct", "open", "correct"]
