"""One-off spikes of a substance across sources polled at different times, week by week
through detection with a real store (each source's poll judged on its own, as the
daemon does)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.scenario import put_weekly
from tests.test_stream_config import MAIL, START, _week_end
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store


def _calm(seed: int, weeks: int, level: float = 8.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(np.full(weeks, level)).astype(float)


def _polls(cfg, series: dict[str, np.ndarray], weeks: range) -> list[tuple]:
    """Each week the sources are polled in turn, an hour apart, each poll judged on its
    own: the alerts as ``(week, source poll, kind, decision, title)``."""
    told = []
    for w in weeks:
        for i, (source, values) in enumerate(series.items()):
            put_weekly(cfg.state_dir, values[: w + 1], start=START, source=source)
            when = _week_end(w) + timedelta(hours=i)
            told += [(w, source, a["kind"], a["decision"], a["title"])
                     for a in Pipeline(cfg, clock=lambda when=when: when).detect()]
    return told


def test_a_spike_in_two_sources_the_same_week_is_one_episode(tmp_path):
    """The lab's and customs' ketamine counts spike the same week; customs is polled an
    hour after the lab. The recipients get one opening ("1 kilde") and, at customs'
    poll, an escalation naming both sources in the same episode, then one end naming
    both."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 130, 120
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike] = 45, 50
    told = _polls(cfg, {"lab": lab, "customs": customs}, range(spike - 2, weeks))
    spikes = [(w, s, d) for w, s, k, d, _ in told if k == "spike"]
    assert spikes[:2] == [(spike, "lab", "open"), (spike, "customs", "escalate")]
    assert [t for *_, d, t in told if d == "escalate"][0].endswith("2 kilder")
    assert [d for _, _, d in spikes] == ["open", "escalate", "resolve"]


def test_a_spike_in_two_sources_polled_together_is_one_message(tmp_path):
    """The lab's and customs' ketamine counts spike the same week and both are read in
    one poll: one opening names both sources (`warning`: two agree), one end follows.
    Before, each source's spike was a message of its own, each "1 kilde", `info`."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 130, 120
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike] = 45, 50
    told = []
    for w in range(spike - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["decision"], a["severity"], a["title"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert [(w, d, s) for w, d, s, _ in told] == [
        (spike, "open", "warning"), (spike + 4, "resolve", "warning")]
    assert all(t.endswith("2 kilder") for *_, t in told)


def test_a_fall_in_two_sources_polled_apart_is_one_episode(tmp_path):
    """Decreases told. The lab's and customs' ketamine counts fall the same week;
    customs is polled an hour after the lab: customs' fall is an escalation of the
    lab's (two sources), and the end, told once, names both. Before, it was a second
    opening of its own, and the end named customs alone."""
    cfg = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nalert_decreases = true\n"))
    weeks, fall, back = 150, 110, 125
    lam = np.full(weeks, 30.0)
    lam[fall:back] = 6.0
    lab = np.random.default_rng(1).poisson(lam).astype(float)
    customs = np.random.default_rng(2).poisson(lam).astype(float)
    polls = _polls(cfg, {"lab": lab, "customs": customs}, range(fall - 2, weeks))
    told = [(w, s, d, t) for w, s, k, d, t in polls if k == "trend" and "Nedgang" in t]
    opened = [x for x in told if x[2] == "open"]
    assert len(opened) == 1 and opened[0][1] == "lab"
    assert [t for *_, d, t in told if d == "escalate"][0].endswith("2 kilder")
    ends = [t for *_, d, t in told if d == "resolve"]
    assert len(ends) == 1 and ends[0].endswith("2 kilder")


def test_a_spike_the_week_after_another_source_s_replies_to_its_opening(tmp_path, smtp_server):
    """The lab's spike is told, customs' comes the week after while the lab's episode is
    still open: customs' email is an escalation naming both that replies to the lab's
    (one thread), and so does the end, weeks later. Before, customs' was a second
    opening, a thread of its own, and the end named customs alone."""
    from datetime import UTC, date, datetime

    from tests.alerting_env import finding, judge_period, make_config, seed_series, target
    from tests.servers import wait_for
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      "\n[alerting]\nsend_resolved = true\nchart = false\n")
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        d0, t0 = date(2026, 7, 6), datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
        told = []
        for w in range(8):
            now, period = t0 + timedelta(weeks=w), d0 + timedelta(weeks=w)
            spiking = {0: "lab", 1: "customs"}.get(w)
            found = {spiking: [finding(spiking, kind="spike", detected=period)]} if (
                spiking) else {}
            told += [(a["decision"], a["title"])
                     for a in judge_period(cfg, store, period, found, now=now)]
            outbox.dispatch_pending(cfg, store, now=now)
    finally:
        store.close()
    assert [d for d, _ in told] == ["open", "escalate", "resolve"]
    assert all(t.endswith("2 kilder") for _, t in told[1:])
    wait_for(lambda: len(smtp_server.messages) == 3, what="three emails")
    opening, *later = smtp_server.messages
    assert opening["In-Reply-To"] is None
    assert [m["In-Reply-To"] for m in later] == [opening["Message-ID"]] * 2


def test_a_spike_s_end_tells_each_target_the_sources_it_was_told(tmp_path, smtp_server):
    """Two desks have the lab's spike; customs' spike the week after (an escalation) is
    dropped for the second desk by an operator before it goes. The end names both
    sources to the first desk, and only the lab to the second, as it heard the spike."""
    from datetime import UTC, date, datetime

    from tests.alerting_env import finding, judge_period, make_config, seed_series, target
    from tests.servers import wait_for
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("a", smtp_server.url("a@example.org"))
                      + target("b", smtp_server.url("b@example.org")),
                      "\n[alerting]\nsend_resolved = true\nchart = false\n")
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        d0, t0 = date(2026, 7, 6), datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
        for w in range(8):
            now, period = t0 + timedelta(weeks=w), d0 + timedelta(weeks=w)
            spiking = {0: "lab", 1: "customs"}.get(w)
            found = {spiking: [finding(spiking, kind="spike", detected=period)]} if (
                spiking) else {}
            for a in judge_period(cfg, store, period, found, now=now):
                if a["decision"] == "escalate":
                    assert outbox.drop_delivery(store, a["id"], "b", now=now) == 1
            outbox.dispatch_pending(cfg, store, now=now)
    finally:
        store.close()
    wait_for(lambda: len(smtp_server.messages) == 5, what="five emails")
    ends = {str(m["To"]): str(m["Subject"]) for m in smtp_server.messages
            if str(m["Subject"]).startswith("Avsluttet")}
    assert ends == {"a@example.org": "Avsluttet: Enkeltstående topp: ketamin — 2 kilder",
                    "b@example.org": "Avsluttet: Enkeltstående topp: ketamin — 1 kilde"}


def test_a_spike_opening_the_round_another_s_ends_carries_the_episode_on(tmp_path):
    """The lab's spike is told; four weeks on, in the poll that ends the lab's episode,
    customs spikes. As for a rise, customs' spike carries the episode on: an escalation
    naming both, then one end naming both. Before, customs' spike was a new opening and
    the lab's spike was never told ended (its email thread had no end)."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 126, 110
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike + 4] = 45, 50
    told = []
    for w in range(spike - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["decision"], a["title"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert [(w, d) for w, d, _ in told] == [
        (spike, "open"), (spike + 4, "escalate"), (spike + 8, "resolve")]
    assert all(t.endswith("2 kilder") for *_, t in told[1:])


def test_a_source_s_spike_opening_again_within_the_episode_with_nothing_more_is_not_news(
        tmp_path):
    """The lab's spike is told, customs' three weeks on as an escalation ("2 kilder"),
    which holds the episode open. Meanwhile the lab's own episode ends (four weeks
    without a spike) and two weeks after that it spikes again, no higher: the same two
    sources, nothing more than was told, so nothing is sent, and one end naming both
    follows. Before, the lab's spike opening again was told as
    "Forverring: Enkeltstående topp: ketamin — 2 kilder", repeating what was told."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 130, 110
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike + 3], lab[spike + 6] = 45, 50, 40
    told = []
    for w in range(spike - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["decision"], a["title"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert [(w, d) for w, d, _ in told] == [
        (spike, "open"), (spike + 3, "escalate"), (spike + 10, "resolve")]
    assert told[1][2] == "Forverring: Enkeltstående topp: ketamin — 2 kilder"
    assert told[2][2].endswith("2 kilder")


def test_a_spike_s_reminders_count_from_its_last_message_whichever_source_it_came_from(
        tmp_path):
    """Reminders after four weeks, spikes ending after twelve without one. The lab's
    spike is told, customs' three weeks on as an escalation; the lab spikes again three
    weeks after that escalation, customs three weeks later. A reminder is due four
    weeks after the last message, whichever source it came from, as a rise's: not with
    the lab's spike (three weeks after the escalation), but with customs' (six weeks
    after it), one reminder naming both. Before, each source counted from its own
    last message: the lab's spike was a reminder three weeks after the escalation, and
    customs' another three weeks after that."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL + (
        "\n[detection]\nrepeat_after_periods = 4\nresolve_after_periods = 12\n")))
    weeks, spike = 135, 110
    lab, customs = _calm(1, weeks), _calm(2, weeks)
    lab[spike], customs[spike + 3], lab[spike + 6], customs[spike + 9] = 45, 50, 40, 32
    told = []
    for w in range(spike - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["kind"], a["decision"], a["title"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert [(w, k, d) for w, k, d, _ in told] == [
        (spike, "spike", "open"), (spike + 3, "spike", "escalate"),
        (spike + 9, "spike", "repeat"), (spike + 21, "spike", "resolve")]
    assert told[2][3] == "Påminnelse: Enkeltstående topp: ketamin — 2 kilder"
