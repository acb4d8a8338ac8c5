"""`warnd backtest --replay` over time: what it prints against what the daemon sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from feeds.base import Item
from tests.alerting_env import make_config, target
from tests.scenario import noon_after_week, put_weekly
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store

START = date(2024, 1, 1)  # a Monday

NOTICES = """
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "varsler.html"
dimension = "availability"
"""


def _notice(store: Store, key: str, when: datetime) -> None:
    it = Item(key=key, source="overdosefare", published_at=when, title=f"Varsel {key}",
              link=f"https://overdosefare.example/{key}", summary="Farlig ketamin",
              substances=("ketamin",), kind="notice")
    store.ingest("overdosefare", location="varsler.html", sha256=None, observations=(),
                 items=[it], problems=(), now=when)


def test_replay_from_a_date_treats_older_warnings_as_an_installation_would(tmp_path):
    """A replay that starts on a date acts as an installation on that day: warnings
    published long before it are history (stored, not told), one published a few days
    before is told on the first date, and no message is dated before the first date."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), sources=NOTICES)
    store = Store.in_dir(cfg.state_dir)
    try:
        _notice(store, "old", datetime(2026, 1, 10, 9, tzinfo=UTC))  # months before
        _notice(store, "recent", datetime(2026, 5, 28, 9, tzinfo=UTC))  # 4 days before
        _notice(store, "later", datetime(2026, 6, 10, 9, tzinfo=UTC))  # after the start
    finally:
        store.close()
    start = date(2026, 6, 1)
    msgs = replay(cfg, start=start, end=date(2026, 6, 22), every=7)
    told = [(m["date"], m["title"]) for m in msgs if m["kind"] == "notice"]
    assert all(m["date"] >= start.isoformat() for m in msgs), told
    assert len(told) == 2, told
    assert told[0][0] == start.isoformat() and "recent" in told[0][1], told
    assert told[1][0] == "2026-06-10" and "later" in told[1][1], told


def test_replay_of_the_store_tells_a_rise_on_the_daemons_dates(tmp_path):
    """The daemon judged the lab's weekly ketamine counts each Tuesday, when the week
    before had ended and been polled; a rise came in its last weeks. `backtest --replay
    store` on the same Tuesdays gives the same trend messages on the same dates: a week
    is fed to the replay once it has ended, never on its Monday (which told the rise a
    week before anyone could have known it)."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"))
    weeks, rise = 120, 108
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    sent = []
    for w in range(100, weeks):
        put_weekly(cfg.state_dir, values[:w + 1], start=START)
        now = noon_after_week(START, w)
        sent += [(now.date().isoformat(), a["decision"])
                 for a in Pipeline(cfg, clock=lambda now=now: now).detect()
                 if a["kind"] == "trend"]
    assert sent and sent[0][1] == "open", sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"]) for m in msgs if m["kind"] == "trend"] == sent


def test_replay_tells_a_warning_naming_two_substances_once(tmp_path):
    """A warning naming ketamine and heroin is one message in the replay, as the daemon
    sends it: naming both, to the target once (before, one per substance)."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), sources=NOTICES)
    store = Store.in_dir(cfg.state_dir)
    try:
        when = datetime(2026, 6, 10, 9, tzinfo=UTC)
        it = Item(key="both", source="overdosefare", published_at=when,
                  title="Ketamin blandet med heroin", link="https://overdosefare.example/both",
                  summary="", substances=("ketamin", "heroin"), kind="notice")
        store.ingest("overdosefare", location="varsler.html", sha256=None, observations=(),
                     items=[it], problems=(), now=when)
    finally:
        store.close()
    msgs = replay(cfg, start=date(2026, 6, 8), end=date(2026, 6, 15), every=7)
    told = [(m["title"], m["targets"]) for m in msgs if m["kind"] == "notice"]
    assert told == [("Ny advarsel: ketamin og heroin — Ketamin blandet med heroin", ["ops"])]
