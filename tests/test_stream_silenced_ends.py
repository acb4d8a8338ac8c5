"""What a silence or a mute holds back of a substance's told spike or fall, week by week
through detection with a real store: its end is told once nothing holds it back, as a
rise's."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.alerting_env import SOURCES, target
from tests.conftest import write_config
from tests.scenario import put_weekly
from tests.test_stream_config import MAIL, START, _lab_rise, _week_end, _weeks
from tests.test_stream_config_changes import DEAD, MUTED, QUIET_NOON
from warnd.alerting import actions
from warnd.config import load_config
from warnd.store import Store


def _lab_spike(weeks: int, at: int) -> np.ndarray:
    """The lab's ketamine counts, steady but for one week eight times as high."""
    values = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    values[at] = 40
    return values


def _silence(cfg, *, at: int, until: int) -> None:
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="ketamin", reason="x", who="kari", via="cli",
                            until=_week_end(until) - timedelta(hours=1),
                            now=_week_end(at) - timedelta(hours=1))
    finally:
        store.close()


@pytest.mark.parametrize("held", ["silenced", "muted"])
def test_the_end_of_a_told_spike_held_back_is_told_once_nothing_holds_it_back(
        tmp_path, held):
    """The lab's one-off spike of ketamine is told ("Enkeltstående topp"); ketamine is
    then silenced (or muted by a reload) from week 116 to week 130, and the spike ends
    under it (recorded, sent to nobody). The first round after, its end is told to the
    target that had the spike, once, as the end of a told rise held back is. Before, it
    was never told: the recipients were left believing the spike went on."""
    loud = load_config(write_config(tmp_path, SOURCES + MAIL))
    muted = load_config(write_config(tmp_path, SOURCES + MAIL, name="muted.toml",
                                     substances=MUTED))
    weeks, spike, start, stop = 140, 115, 116, 130

    def configs(w: int):
        if held == "muted":
            return muted if start <= w < stop else loud
        if w == start:
            _silence(loud, at=w, until=stop)
        return loud

    told = _weeks(configs, _lab_spike(weeks, spike), range(spike - 2, weeks))
    spikes = [(w, d, s) for w, k, d, s in told if k == "spike"]
    assert [(d, s) for _, d, s in spikes] == [
        ("open", "open"), ("resolve", held), ("resolve", "open")]
    assert spikes[0][0] == spike and start < spikes[1][0] < stop == spikes[2][0]
    store = Store.in_dir(loud.state_dir)
    try:
        rows = store.q("SELECT a.decision, d.target, d.status FROM alerts a JOIN deliveries "
                       "d ON d.alert_id = a.id WHERE a.kind = 'spike' ORDER BY a.id")
        assert store.held_back() == {}
    finally:
        store.close()
    assert [(r["decision"], r["target"]) for r in rows if r["status"] == "pending"] == [
        ("open", "mail"), ("resolve", "mail")]


def test_the_end_of_a_told_spike_silenced_while_it_waited_is_told_after(tmp_path):
    """The lab's spike is told; its end is decided at noon, in quiet hours, and waits;
    before it goes, an operator silences ketamine for three days. The next week, the
    silence over, the end is told, once. Before, it was never told."""
    from warnd.alerting import outbox
    from warnd.alerting.send import SendResult
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, SOURCES + target("mail", DEAD) + QUIET_NOON))
    weeks, spike = 135, 115
    lab = _lab_spike(weeks, spike)
    store = Store.in_dir(cfg.state_dir)
    ended = None
    try:
        for w in range(spike - 2, weeks):
            put_weekly(cfg.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            for a in Pipeline(cfg, clock=lambda t=noon: t).detect():
                if (a["kind"], a["decision"]) == ("spike", "resolve") and ended is None:
                    ended = w
                    actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                        via="cli", duration=timedelta(days=3),
                                        now=noon + timedelta(hours=1))
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6),
                                    send=lambda url, **kw: SendResult(True, "SUCCESS"))
        rows = store.q("SELECT a.decision, d.status, d.delivered_at FROM alerts a JOIN "
                       "deliveries d ON d.alert_id = a.id WHERE a.kind = 'spike' "
                       "ORDER BY a.id")
    finally:
        store.close()
    assert [(r["decision"], r["status"]) for r in rows] == [
        ("open", "delivered"), ("resolve", "silenced"), ("resolve", "delivered")]
    assert rows[2]["delivered_at"] == (_week_end(ended + 1) + timedelta(hours=6)).isoformat()


def test_a_told_spike_ends_told_when_another_source_s_spike_was_silenced(tmp_path):
    """The lab's one-off spike of ketamine is told; an operator has silenced for ten weeks
    what customs says of ketamine, and customs' spike the week after (an escalation of the
    same spike, naming both sources) is held back. When both have ended, the end is
    decided; naming customs, it is held back by that silence and told to the target that
    had the lab's spike once the silence is over. Before, the latest spike message, customs' held back, was taken for
    the whole spike told to nobody, and the end was never told."""
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike = 135, 115
    lab = _lab_spike(weeks, spike)
    customs = np.random.default_rng(5).poisson(np.full(weeks, 8.0)).astype(float)
    customs[spike + 1] = 60
    store = Store.in_dir(cfg.state_dir)
    try:
        silence_end = _week_end(spike - 3) + timedelta(weeks=10)
        actions.add_silence(store, substance="ketamin", source="customs", reason="x",
                            who="kari", via="cli", until=silence_end, now=_week_end(spike - 3))
    finally:
        store.close()
    told = []
    for w in range(spike - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["source"], a["decision"], a["status"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "spike"]
    assert [(w, s, d, st) for w, s, d, st in told] == [
        (spike, "lab", "open", "open"), (spike + 1, "customs,lab", "escalate", "silenced"),
        (spike + 5, "customs,lab", "resolve", "silenced"),
        (spike + 7, "customs,lab", "resolve", "open")]
    store = Store.in_dir(cfg.state_dir)
    try:
        to = [(r["decision"], r["target"]) for r in store.q(
            "SELECT a.decision, d.target FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
            "WHERE a.kind = 'spike' ORDER BY a.id")]
    finally:
        store.close()
    assert to == [("open", "mail"), ("resolve", "mail")]
    assert silence_end == _week_end(spike + 7)  # told by the first round after it


def test_the_end_of_a_told_fall_held_back_by_a_silence_is_told_after(tmp_path):
    """Falls are told (``alert_decreases``): the lab's ketamine counts fall to a third
    from week 110 to 125, and the fall is told; a silence covers ketamine from week 118
    to week 160, and the fall ends under it. The first round after the silence tells
    the end, once. Before, it was never told."""
    cfg = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nalert_decreases = true\n"))
    weeks, fall, calm, start, stop = 165, 110, 125, 118, 160
    lam = np.full(weeks, 15.0)
    lam[fall:calm] /= 3
    lab = np.random.default_rng(3).poisson(lam).astype(float)

    def configs(w: int):
        if w == start:
            _silence(cfg, at=w, until=stop)
        return cfg

    told = _weeks(configs, lab, range(fall - 2, weeks))
    falls = [(w, d, s) for w, k, d, s in told if k == "trend"]
    assert [(d, s) for _, d, s in falls] == [
        ("open", "open"), ("resolve", "silenced"), ("resolve", "open")]
    assert falls[0][0] < start < falls[1][0] < stop == falls[2][0]



@pytest.mark.parametrize("stop", [165, 175])
def test_a_rise_that_ends_and_a_new_one_that_opens_within_one_silence(tmp_path, stop):
    """Ketamine's rise at the lab is told; a silence covers ketamine from week 118. The
    rise ends under it (week 133), and a second rise opens under it (week 158) and ends
    in week 174. With the silence over in week 165, the second rise still goes on: it is
    told as an opening (which says since when), not the first one's end, and its end is
    told when it comes. With the silence over in week 175, both rises ended under it:
    the first one's end is told, and nothing of the second, told to nobody. Before, the
    second rise opening under the silence dropped the first one's held end: with both
    ended, the recipients were never told that the rise they knew of had ended."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, start = 185, 118
    lam = np.full(weeks, 5.0)
    lam[110:125] *= 3
    lam[155:170] *= 3
    lab = np.random.default_rng(3).poisson(lam).astype(float)

    def configs(w: int):
        if w == start:
            _silence(cfg, at=w, until=stop)
        return cfg

    told = _weeks(configs, lab, range(108, weeks))
    trend = [(w, d, s) for w, k, d, s in told if k == "trend"]
    held = [(112, "open", "open"), (133, "resolve", "silenced"), (158, "open", "silenced")]
    assert trend == held + ([(165, "open", "open"), (174, "resolve", "open")] if stop == 165
                            else [(175, "resolve", "open")])
    assert all(s != "open" for w, _, _, s in told if start <= w < stop)


def test_a_reminder_held_back_by_a_silence_is_not_listed_as_a_rise_to_tell(tmp_path):
    """Reminders every four weeks: ketamine's rise at the lab is told in week 112, and a
    silence covers ketamine from week 114 to week 122, holding back the reminders of
    weeks 116 and 120. The rise was told as it stands: `warnd status` does not list it
    among the rises a silence held back, to be told when it ends, and nothing is told
    of it when the silence ends; the reminders go on after it. Before, it was listed so
    for the whole silence, and then nothing was told."""
    cfg = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nrepeat_after_periods = 4\n"))
    start, stop = 114, 122

    def configs(w: int):
        if w == start:
            _silence(cfg, at=w, until=stop)
        return cfg

    held: dict[int, list[str]] = {}
    told = _weeks(configs, _lab_rise(130, 110, 125), range(108, 130), held)
    assert [(w, d, s) for w, k, d, s in told if k == "trend"] == [
        (112, "open", "open"), (116, "repeat", "silenced"), (120, "repeat", "silenced"),
        (124, "repeat", "open"), (128, "repeat", "open")]
    assert not any(held.values())


def test_an_escalation_held_back_is_told_after_the_silence_also_after_a_held_reminder(
        tmp_path):
    """Reminders every four weeks: ketamine's rise at the lab is told; a silence covers
    ketamine from week 114 to week 130, and customs agreeing (an escalation, week 115)
    and the reminders after it are held back under it. The first round after the
    silence tells customs agreeing, as an escalation: neither the held escalation nor
    the reminders after it make it told."""
    cfg = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nrepeat_after_periods = 4\n"))
    weeks, start, stop = 132, 114, 130
    lab = _lab_rise(weeks, 110, 125)
    lam = np.full(weeks, 8.0)
    lam[114:] *= 3
    customs = np.random.default_rng(5).poisson(lam).astype(float)

    def configs(w: int):
        if w == start:
            _silence(cfg, at=w, until=stop)
        return cfg

    told = []
    for w in range(108, weeks):
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += _weeks(configs, lab, range(w, w + 1))
    trend = [(w, d, s) for w, k, d, s in told if k == "trend"]
    assert trend[0] == (112, "open", "open") and trend[-1] == (stop, "escalate", "open")
    # customs agreeing is an escalation, held back too; the lab's reminders after it
    assert trend[1] == (115, "escalate", "silenced")
    assert {(d, s) for _, d, s in trend[2:-1]} == {("repeat", "silenced")}


def test_the_recovery_of_a_told_failure_held_back_by_a_silence_is_told_after(tmp_path,
                                                                              root):
    """The media feed fails and its failure is told. The operator then silences the
    feed's health messages for a day (it is being moved), and it polls again within
    the day: its recovery is held back. The first poll after the silence tells the
    recovery, once, to the target that had the failure. Before, it was never told: the
    recipients were left believing the feed still failed."""
    import shutil
    from datetime import UTC, datetime

    from tests.test_alerting import RSS_SOURCE
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, RSS_SOURCE + target("mail", DEAD)
                                   + "\n[alerting]\nsend_resolved = true\n"))
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = {"t": t0}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    feed = root / "tests/fixtures/rss/ba_2026-03.xml"

    def poll(at: datetime, ok: bool) -> None:
        clock["t"] = at
        assert pipe.poll("media").ok is ok

    for k in range(3):
        poll(t0 + timedelta(hours=k), False)
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance=None, kind="source_health", source="media",
                            duration=timedelta(days=1), reason="moving the feed", who="kari",
                            via="web", now=t0 + timedelta(hours=3))
        (tmp_path / "feeds").mkdir()
        shutil.copy(feed, tmp_path / "feeds/ba.xml")
        for h in (4, 12, 26, 27, 28):  # the silence ends at 27:00
            poll(t0 + timedelta(hours=h), True)
        rows = store.q("SELECT a.decision, a.status, d.target, d.status AS sent, "
                       "a.created_at FROM alerts a LEFT JOIN deliveries d ON "
                       "d.alert_id = a.id ORDER BY a.id")
    finally:
        store.close()
    assert [(r["decision"], r["status"], r["target"], r["sent"]) for r in rows] == [
        ("open", "resolved", "mail", "pending"), ("resolve", "silenced", None, None),
        ("resolve", "resolved", "mail", "pending")]
    assert rows[2]["created_at"] == (t0 + timedelta(hours=27)).isoformat()



def test_a_recovery_held_back_by_a_silence_waits_for_a_poll_that_succeeds(tmp_path, root):
    """The media feed's failure is told, then its health messages are silenced for a
    day and it recovers within it: the recovery is held back. The first two polls after
    the silence fail (fewer than ``unhealthy_after``), the third succeeds: the recovery
    is told with that one, once, not with a poll that failed. Before, it was told with
    the first poll after the silence, as the feed failed again."""
    import shutil
    from datetime import UTC, datetime

    from tests.test_alerting import RSS_SOURCE
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, RSS_SOURCE + target("mail", DEAD)
                                   + "\n[alerting]\nsend_resolved = true\n"))
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = {"t": t0}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    feed, kept = root / "tests/fixtures/rss/ba_2026-03.xml", tmp_path / "feeds/ba.xml"

    def poll(h: int, ok: bool) -> None:
        clock["t"] = t0 + timedelta(hours=h)
        if ok:
            shutil.copy(feed, kept)
        else:
            kept.unlink(missing_ok=True)
        assert pipe.poll("media").ok is ok

    (tmp_path / "feeds").mkdir()
    for h in range(3):
        poll(h, False)
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance=None, kind="source_health", source="media",
                            duration=timedelta(days=1), reason="moving the feed", who="kari",
                            via="web", now=t0 + timedelta(hours=3))
        for h, ok in ((4, True), (12, True), (27, False), (28, False), (29, True),
                      (30, True)):  # the silence ends at 27:00
            poll(h, ok)
        rows = store.q("SELECT a.decision, a.status, d.target, a.created_at FROM alerts a "
                       "LEFT JOIN deliveries d ON d.alert_id = a.id ORDER BY a.id")
    finally:
        store.close()
    assert [(r["decision"], r["status"], r["target"]) for r in rows] == [
        ("open", "resolved", "mail"), ("resolve", "silenced", None),
        ("resolve", "resolved", "mail")]
    assert rows[2]["created_at"] == (t0 + timedelta(hours=29)).isoformat()


def _end_held_from_mail(tmp_path, ops_relay, mail_relay, *, fail, back=lambda: None):
    """Ketamine's rise at the lab, told to ops and to mail week by week (two real
    relays). When it ends, ``fail(end)`` keeps mail's end from going (a relay down, or
    one that reads it and drops the connection): ops has the end at once, mail's waits
    for a retry, and before the retry an operator silences ketamine for three days, so
    the week's dispatch holds mail's end back; then ``back()``. The trend deliveries
    at the end (decision, target, status, maybe_sent), in order."""
    from warnd.alerting import outbox
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, SOURCES + target(
        "ops", ops_relay.url("ops@example.org")) + target(
        "mail", mail_relay.url("mail@example.org")) + (
        "\n[alerting]\nsend_resolved = true\n")))
    weeks, rise, calm = 150, 110, 125
    lab = _lab_rise(weeks, rise, calm)
    store = Store.in_dir(cfg.state_dir)
    ended = None
    try:
        for w in range(rise - 2, weeks):
            put_weekly(cfg.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            for a in Pipeline(cfg, clock=lambda t=noon: t).detect():
                if (a["kind"], a["decision"]) == ("trend", "resolve") and ended is None:
                    ended = w
                    fail(a)
                    assert outbox.dispatch_pending(
                        cfg, store, now=noon + timedelta(minutes=30))["retrying"] == 1
                    actions.add_silence(store, substance="ketamin", reason="x",
                                        who="kari", via="cli", duration=timedelta(days=3),
                                        now=noon + timedelta(hours=1))
            counts = outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6))
            if w == ended:
                assert counts["silenced"] == 1
                back()
        assert ended is not None
        return store.q("SELECT a.decision, d.target, d.status, d.maybe_sent FROM alerts a "
                       "JOIN deliveries d ON d.alert_id = a.id WHERE a.kind = 'trend' "
                       "ORDER BY a.id, d.target")
    finally:
        store.close()


def test_an_end_one_target_had_and_a_silence_held_from_another_is_told_to_it_after(
        tmp_path):
    """Ketamine's rise at the lab is told to ops and to mail (two real relays). Its end
    goes to ops at once, while mail's relay is down and its end waits for a retry;
    before the retry an operator silences ketamine for three days, and mail's end is
    held back (``silenced``). The next week, the silence over and mail's relay back,
    mail is told the end, once, replying to the rise it had; ops is not told it again.
    Before, ops having had the end marked it told: mail was never told, and was left
    believing the rise went on."""
    from tests.servers import SmtpServer, wait_for

    ops_relay, mail_relay = SmtpServer().start(), SmtpServer().start()
    try:
        rows = _end_held_from_mail(tmp_path, ops_relay, mail_relay,
                                   fail=lambda end: mail_relay.stop(), back=mail_relay.start)
        assert [(r["decision"], r["target"], r["status"]) for r in rows] == [
            ("open", "mail", "delivered"), ("open", "ops", "delivered"),
            ("resolve", "mail", "silenced"), ("resolve", "ops", "delivered"),
            ("resolve", "mail", "delivered")]
        wait_for(lambda: len(mail_relay.messages) == 4, what="mail's end")

        def rise(relay):
            return [m for m in relay.messages if "økning" in m["Subject"]]

        opening, end = rise(mail_relay)
        assert end["Subject"] == "Avsluttet: " + opening["Subject"]
        assert end["In-Reply-To"] == opening["Message-ID"]
        assert [m["Subject"] for m in rise(ops_relay)] == [
            opening["Subject"], end["Subject"]]
    finally:
        ops_relay.stop()
        mail_relay.stop()


def test_an_end_that_may_have_reached_a_target_before_a_silence_is_not_told_to_it_again(
        tmp_path):
    """As above, but mail's relay reads the end and then drops the connection: the end
    may have reached mail. A silence then holds back its retry. After the silence mail
    is not told the end again (it may have it; a second "Avsluttet: …" would be a
    duplicate), and ops, which had it, is not told it again either."""
    from tests.servers import SmtpServer
    from tests.test_stream_first_messages import _DeferFirst

    ops_relay, mail_relay = SmtpServer().start(), SmtpServer()
    mail_relay.handler = _DeferFirst(drop=True)
    mail_relay.start()
    try:
        rows = _end_held_from_mail(  # the end read, then the connection dropped
            tmp_path, ops_relay, mail_relay,
            fail=lambda end: mail_relay.handler.defer.add(end["title"]))
        assert [(r["decision"], r["target"], r["status"]) for r in rows] == [
            ("open", "mail", "delivered"), ("open", "ops", "delivered"),
            ("resolve", "mail", "silenced"), ("resolve", "ops", "delivered")]
        assert rows[2]["maybe_sent"] == 1
        ends = [m for m in mail_relay.handler.seen
                if m["Subject"].startswith("Avsluttet") and "økning" in m["Subject"]]
        assert len(ends) == 1  # the attempt that may have reached mail, and no other
    finally:
        ops_relay.stop()
        mail_relay.stop()


def test_a_correction_silenced_while_it_waited_is_told_after(tmp_path):
    """The lab's rise of ketamine is told to mail (a real relay); the lab then revises
    those weeks away, and the correction, decided at noon in quiet hours, waits; before
    it goes an operator silences ketamine for three days. The next week, the silence
    over, mail is told the correction, once, replying to the rise it had. Before, it was
    never told: mail was left believing the rise went on, and no end would come."""
    from tests.servers import SmtpServer, wait_for
    from warnd.alerting import outbox
    from warnd.pipeline import Pipeline

    relay = SmtpServer().start()
    cfg = load_config(write_config(tmp_path, SOURCES + target(
        "mail", relay.url("mail@example.org")) + QUIET_NOON))
    weeks, rise, revised = 124, 110, 118
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    store = Store.in_dir(cfg.state_dir)
    try:
        for w in range(rise - 1, weeks):
            put_weekly(cfg.state_dir, (usual if w >= revised else risen)[: w + 1],
                       start=START)
            noon = _week_end(w)
            for a in Pipeline(cfg, clock=lambda t=noon: t).detect():
                if (a["kind"], a["decision"]) == ("trend", "correct") and w == revised:
                    actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                        via="cli", duration=timedelta(days=3),
                                        now=noon + timedelta(hours=1))
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6))
        rows = store.q("SELECT a.decision, d.status, d.delivered_at FROM alerts a JOIN "
                       "deliveries d ON d.alert_id = a.id WHERE a.kind = 'trend' "
                       "ORDER BY a.id")
        assert store.held_back() == {}
    finally:
        store.close()
        relay.stop()
    assert [(r["decision"], r["status"]) for r in rows] == [
        ("open", "delivered"), ("correct", "silenced"), ("correct", "delivered")]
    assert rows[2]["delivered_at"] == (_week_end(revised + 1) + timedelta(hours=6)).isoformat()
    wait_for(lambda: len(relay.messages) == 2, what="the correction")
    opening, correction = relay.messages
    assert correction["Subject"].startswith("Rettelse: ")
    assert correction["In-Reply-To"] == opening["Message-ID"]


def test_a_source_s_correction_one_target_had_and_a_silence_held_from_another(tmp_path):
    """The lab's and customs' rise of ketamine is told to ops and to mail (two real
    relays). Customs revises its weeks away while the lab's rise goes on: ops has the
    correction at once, mail's relay is down and its correction waits for a retry, and
    before the retry an operator silences ketamine for three days. The next week, the
    silence over and mail's relay back, mail is told the correction, once; ops is not
    told it again. Before, mail was never told, and was left believing customs' rise
    stood."""
    from tests.servers import SmtpServer
    from tests.test_stream_revisions import _put_each, _rising, _usual
    from warnd.alerting import outbox
    from warnd.pipeline import Pipeline

    ops_relay, mail_relay = SmtpServer().start(), SmtpServer().start()
    cfg = load_config(write_config(tmp_path, SOURCES + target(
        "ops", ops_relay.url("ops@example.org")) + target(
        "mail", mail_relay.url("mail@example.org")) + (
        '\n[alerting]\ndefault_targets = ["ops", "mail"]\n')))
    weeks, revised = 124, 118
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110})
    store = Store.in_dir(cfg.state_dir)
    try:
        for w in range(109, weeks):
            _put_each(cfg, {"lab": risen["lab"], "customs": (
                usual if w >= revised else risen)["customs"]}, w + 1)
            noon = _week_end(w)
            for a in Pipeline(cfg, clock=lambda t=noon: t).detect():
                if (a["kind"], a["decision"]) == ("trend", "correct") and w == revised:
                    mail_relay.stop()
                    assert outbox.dispatch_pending(
                        cfg, store, now=noon + timedelta(minutes=30))["retrying"] == 1
                    actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                        via="cli", duration=timedelta(days=3),
                                        now=noon + timedelta(hours=1))
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6))
            if w == revised:
                mail_relay.start()
        rows = store.q("SELECT a.decision, d.target, d.status FROM alerts a JOIN deliveries "
                       "d ON d.alert_id = a.id WHERE a.kind = 'trend' AND a.decision = "
                       "'correct' ORDER BY a.id, d.target")
        assert store.held_back() == {}
    finally:
        store.close()
        ops_relay.stop()
        mail_relay.stop()
    assert [(r["decision"], r["target"], r["status"]) for r in rows] == [
        ("correct", "mail", "silenced"), ("correct", "ops", "delivered"),
        ("correct", "mail", "delivered")]
    assert [m["Subject"].split(":")[0] for m in mail_relay.messages][-1] == "Rettelse"
    assert [m["Subject"].split(":")[0] for m in ops_relay.messages].count("Rettelse") == 1


def test_a_held_end_after_a_held_correction_names_no_withdrawn_source(tmp_path):
    """The lab's and customs' rise of ketamine is told to mail ("2 kilder", a strong
    increase). An operator silences ketamine for twenty weeks; in the first of them
    customs revises its weeks away (the correction is held back), and later the lab's
    rise ends (the end is held back too). After the silence mail gets the correction and
    then the end, which names the lab alone, in the words of what mail was told of the
    lab ("Liten økning"), with the figures mail had. Before, the end named customs among
    the sources that rose ("Avsluttet: Sterk økning: ketamin — 2 kilder"), right after
    the correction that withdrew it: the end held back counted as the end of the
    episode, so neither message was read against what mail had been told."""
    from tests.servers import SmtpServer
    from tests.test_stream_revisions import _put_each, _rising, _usual
    from tests.test_stream_revisions import _week_end as week_end
    from warnd.alerting import outbox
    from warnd.pipeline import Pipeline

    relay = SmtpServer().start()
    cfg = load_config(write_config(tmp_path, SOURCES + target(
        "mail", relay.url("mail@example.org")) + (
        '\n[alerting]\ndefault_targets = ["mail"]\nsend_resolved = true\n')))
    weeks, revised = 140, 120
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110}, until=121)
    said = []
    store = Store.in_dir(cfg.state_dir)
    try:
        for w in range(109, weeks):
            noon = week_end(w)
            if w == revised - 1:
                actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                    via="cli", duration=timedelta(weeks=20),
                                    now=noon - timedelta(hours=1))
            _put_each(cfg, {"lab": risen["lab"], "customs": (
                usual if w >= revised else risen)["customs"]}, w + 1)
            said += [(w, a["decision"], a["status"])
                     for a in Pipeline(cfg, clock=lambda t=noon: t).detect()
                     if a["kind"] == "trend"]
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6))
        assert store.held_back() == {}
    finally:
        store.close()
        relay.stop()
    assert said == [(111, "open", "open"), (113, "escalate", "open"),
                    (120, "correct", "silenced"), (126, "resolve", "silenced"),
                    (139, "correct", "open"), (139, "resolve", "open")]
    trend = [m for m in relay.messages if "topp" not in m["Subject"]]
    assert [m["Subject"] for m in trend] == [
        "Liten økning: ketamin — 1 kilde", "Forverring: Sterk økning: ketamin — 2 kilder",
        "Rettelse: Liten økning: ketamin — 1 kilde", "Avsluttet: Liten økning: ketamin — 1 kilde"]
    end = trend[-1].get_body(("plain",)).get_content()
    rose = end.split("Kilder som viste økning:")[1]
    assert "Lab" in rose and "Customs" not in rose
    assert "Kilder: 1 av 1 kilde økte" in end
    assert trend[-1]["In-Reply-To"] == trend[0]["Message-ID"]
