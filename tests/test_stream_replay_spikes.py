"""`warnd backtest --replay store` against the daemon for spikes of several sources: what
it prints is what the daemon sent, week by week through the real pipeline."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.scenario import put_weekly
from tests.test_stream_config import MAIL, START, _week_end
from warnd.config import Config, load_config
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store


def _calm(seed: int, weeks: int, level: float = 8.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(np.full(weeks, level)).astype(float)


def _daemon(cfg: Config, series: dict[str, np.ndarray], weeks: range,
            apart: timedelta = timedelta(hours=1)) -> None:
    """Each week the sources are polled in turn, ``apart`` from each other, each poll
    judged on its own as the daemon judges it."""
    for w in weeks:
        for i, (source, values) in enumerate(series.items()):
            when = _week_end(w) + i * apart
            put_weekly(cfg.state_dir, values[: w + 1], start=START, source=source,
                       now=when)
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
