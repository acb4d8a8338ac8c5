"""`warnd backtest --replay store` against the daemon for spikes of several sources: what
it prints is what the daemon sent, week by week through the real pipeline."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.scenario import noon_after_week, put_weekly
from tests.test_stream_config import MAIL, START, _week_end
from tests.test_stream_replay import START as START_R
from warnd.config import Config, load_config
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store


def _calm(seed: int, weeks: int, level: float = 8.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(np.full(weeks, level)).astype(float)


def _daemon(cfg: Config, series: dict[str, np.ndarray], weeks: range,
            apart: timedelta = timedelta(hours=1)) -> None:
    """Each week the sources are polled in turn, ``apart`` from each other, each poll
    judged on its own as the daemon judges it (all polled at once and judged together,
    as by `warnd run --once`, when ``apart`` is 0)."""
    for w in weeks:
        for i, (source, values) in enumerate(series.items()):
            when = _week_end(w) + i * apart
            put_weekly(cfg.state_dir, values[: w + 1], start=START, source=source,
                       now=when)
            if apart or i == len(series) - 1:
                Pipeline(cfg, clock=lambda when=when: when).detect()


def _sent(cfg: Config) -> list[tuple[str, str, str, str, list[str]]]:
    store = Store.in_dir(cfg.state_dir)
    try:
        return [(a["created_at"][:10], a["kind"], a["decision"], a["title"], sorted(
            d["target"] for d in store.q("SELECT target FROM deliveries WHERE alert_id=?",
                                         [a["id"]]))) for a in store.q(
            "SELECT * FROM alerts ORDER BY id")]
    finally:
        store.close()


def _replayed(cfg: Config, weeks: range, every: int = 7) -> list[tuple]:
    msgs = replay(cfg, start=_week_end(weeks[0]).date(), end=_week_end(weeks[-1]).date(),
                  every=every)
    return [(m["date"], m["kind"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs]


def test_store_replay_of_a_spike_in_two_sources_polled_apart_is_the_daemons(tmp_path):
    """The lab's and customs' ketamine counts spike the same week; customs is polled an
    hour after the lab, each poll judged on its own. The daemon told an opening ("1
    kilde") at the lab's poll and an escalation naming both at customs', then one end.
    `backtest --replay store` gives the same messages on the same dates."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 130, 120
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike] = 45, 50
    _daemon(cfg, {"lab": lab, "customs": customs}, range(spike - 2, weeks))
    sent = _sent(cfg)
    assert [d for _, _, d, *_ in sent] == ["open", "escalate", "resolve"], sent
    assert _replayed(cfg, range(spike - 2, weeks)) == sent


def test_store_replay_tells_a_spike_s_correction_after_the_silence_that_held_it(tmp_path):
    """The lab's one-off ketamine spike was told; two weeks later the lab revised the
    week to its usual level in the week an operator silenced ketamine. The daemon held
    the correction back and told it once the silence was over. `backtest --replay store`
    gives the same messages, dates and recipients."""
    from tests.test_stream_replay import _daemon
    from tests.test_stream_replay import _sent as sent_of
    from warnd.alerting import actions

    weeks, spike = 124, 110
    values = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    values[spike] = 40
    start = noon_after_week(START_R, 100)

    def silence(cfg, now):
        if now == start + timedelta(weeks=spike + 2 - 100):
            values[spike] = 5  # published so from the next poll on
            store = Store.in_dir(cfg.state_dir)
            try:
                actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                    via="cli", until=now + timedelta(weeks=4, hours=-1),
                                    now=now + timedelta(days=6, hours=23))
            finally:
                store.close()

    cfg, _ = _daemon(tmp_path, values, lambda w: range(w), silence)
    sent = sent_of(cfg)
    assert [(d, t) for _, d, _, t in sent] == [
        ("open", ["ops"]), ("correct", []), ("correct", ["ops"])], sent
    msgs = replay(cfg, start=start.date(), end=(start + timedelta(weeks=weeks - 101)).date(),
                  every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent


@pytest.mark.parametrize("apart", [timedelta(0), timedelta(hours=1)])
def test_store_replay_of_a_spike_the_week_another_s_ends_is_the_daemons(tmp_path, apart):
    """The lab's spike is told; four weeks on customs spikes, in the week the lab's
    episode ends. Polled together, customs' spike carries the episode on (an
    escalation, one end naming both); polled an hour apart, the lab's poll ends the
    episode and customs' opens another. `backtest --replay store` gives what the
    daemon sent either way."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 126, 110
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike + 4] = 45, 50
    _daemon(cfg, {"lab": lab, "customs": customs}, range(spike - 2, weeks), apart)
    sent = _sent(cfg)
    assert [d for _, _, d, *_ in sent] == (
        ["open", "escalate", "resolve"] if not apart else
        ["open", "resolve", "open", "resolve"]), sent
    assert _replayed(cfg, range(spike - 2, weeks)) == sent


def test_store_replay_tells_a_spike_s_end_held_by_a_silence_of_one_source(tmp_path):
    """The lab's spike is told; customs' the week after, an escalation, is held back by a
    silence of what customs says of ketamine, and so is the end naming both, which is
    told once the silence is over. `backtest --replay store` gives the same messages,
    dates and recipients."""
    from warnd.alerting import actions

    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 135, 115
    lab = _calm(1, weeks, 5.0)
    lab[spike] = 40
    customs = _calm(5, weeks)
    customs[spike + 1] = 60
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="ketamin", source="customs", reason="x",
                            who="kari", via="cli", until=_week_end(spike + 7),
                            now=_week_end(spike - 3))
    finally:
        store.close()
    _daemon(cfg, {"lab": lab, "customs": customs}, range(spike - 2, weeks), timedelta(0))
    sent = _sent(cfg)
    assert [(d, t) for _, k, d, _, t in sent if k == "spike"] == [
        ("open", ["mail"]), ("escalate", []), ("resolve", []), ("resolve", ["mail"])], sent
    assert _replayed(cfg, range(spike - 2, weeks)) == sent
