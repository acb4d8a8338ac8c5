"""The end or the correction of a rise nobody heard of. Week by week through detection on
a real store, sent to real SMTP servers (aiosmtpd): the desk's mail relay is dead when
the lab's rise is told, and the opening expires (``expire_after``); the relay is back
when the rise ends or is revised away. Nobody is told of the end or the withdrawal of a
rise they never heard of, and an operator who queues the expired opening again sends
its end or its correction after it."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest

from tests.alerting_env import make_config, target
from tests.scenario import noon_after_week, put_weekly
from tests.servers import SmtpServer, wait_for
from warnd.alerting import outbox
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
RISE, WEEKS = 120, 156
#: warnings (a strong rise, one source is enough) go to the desk, anything else to ops
ROUTED = """
[[routes]]
min_severity = "warning"
targets = ["desk"]

[alerting]
default_targets = ["ops"]
send_resolved = true
expire_after = "1h"
chart = false

[detection]
min_sources_for_strong = 1
"""


def _lab(*, until: int | None = None, revised: bool = False) -> np.ndarray:
    """The lab's weekly ketamine counts: about five, about fifteen from week ``RISE`` to
    before ``until`` (unless ``revised``: then the usual five throughout)."""
    values = np.random.default_rng(11).poisson(5.0, WEEKS).astype(float)
    if not revised:
        hi = WEEKS if until is None else until
        values[RISE:hi] = np.random.default_rng(6).poisson(15.0, hi - RISE)
    return values


def _weeks(cfg, store: Store, values: np.ndarray, weeks: range) -> list[tuple[str, list]]:
    """Week by week: the lab's table as it stands up to the week, judged the day after,
    the outbox sent then and again two hours later (a delivery to a dead relay expires).
    The trend messages decided, as ``(decision, targets)``."""
    told = []
    for w in weeks:
        put_weekly(cfg.state_dir, values[:w + 1], start=START)
        now = noon_after_week(START, w)
        told += [(a["decision"], a["targets"])
                 for a in Pipeline(cfg, clock=lambda now=now: now).detect()
                 if a["kind"] == "trend"]
        outbox.dispatch_pending(cfg, store, now=now)
        outbox.dispatch_pending(cfg, store, now=now + timedelta(hours=2))
    return told


def _opening_expired(tmp_path, relay: SmtpServer, ops: SmtpServer, values: np.ndarray
                     ) -> tuple[object, Store, int]:
    """The rise told to the desk while its relay is dead, until its opening expired;
    then the relay is back. The config, the store and the week after the opening."""
    cfg = make_config(tmp_path, target("desk", relay.url("desk@example.org"))
                      + target("ops", ops.url("ops@example.org")), ROUTED)
    store = Store.in_dir(cfg.state_dir)
    assert _weeks(cfg, store, values, range(RISE - 1, RISE + 2)) == [("open", ["desk"])]
    assert store.q("SELECT target, status FROM deliveries") == [
        {"target": "desk", "status": "expired"}]
    relay.start()
    return cfg, store, RISE + 2


def _records(store: Store, decision: str) -> list[dict]:
    return store.q("SELECT d.target, d.status, d.last_error FROM deliveries d JOIN alerts a "
                   "ON a.id = d.alert_id WHERE a.decision=? ORDER BY d.target", [decision])


def _queued_again(cfg, store, relay, now, then: str) -> None:
    """An operator queues the desk's expired opening again at ``now``: the desk gets it,
    then the message recorded as not sent after it (its subject starting with ``then``),
    replying to it."""
    (opening,) = store.q("SELECT id FROM alerts WHERE decision='open'")
    assert outbox.retry_delivery(store, opening["id"], "desk", now=now) == 1
    assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 2
    wait_for(lambda: len(relay.messages) == 2, what="two emails to the desk")
    first, after = relay.messages
    assert first["Subject"] == "Sterk økning: ketamin — 1 kilde"
    assert after["Subject"].startswith(then)
    assert after["In-Reply-To"] == first["Message-ID"]


def test_the_end_of_a_rise_whose_opening_expired_is_told_to_nobody(tmp_path, smtp_server):
    """The lab's rise is told to the desk, whose relay is dead: the opening expires. The
    relay is back, and the rise ends weeks later: nobody gets "Avsluttet", neither the
    desk nor ops. The end is recorded, as not sent to the desk and why. Before, nobody
    having had the opening counted as "none of its targets is left", and the end went
    by usual routing: the desk was told the end of a rise it never heard of."""
    relay = SmtpServer()  # not started: nothing listens on its port
    values = _lab(until=RISE + 12)
    cfg, store, week = _opening_expired(tmp_path, relay, smtp_server, values)
    try:
        assert _weeks(cfg, store, values, range(week, WEEKS)) == [("resolve", [])]
        assert relay.messages == [] and smtp_server.messages == []
        assert _records(store, "resolve") == [
            {"target": "desk", "status": "dropped", "last_error": outbox.UNHEARD}]
        assert store.q("SELECT status FROM alerts WHERE decision='resolve'") == [
            {"status": "resolved"}]
    finally:
        relay.stop()
        store.close()


def test_the_correction_of_a_rise_whose_opening_expired_is_told_to_nobody(
        tmp_path, smtp_server):
    """As above, but the lab revises the weeks of the rise down to the usual level: the
    correction is recorded, and sent to nobody. Before, it went by usual routing, and
    the desk was told the withdrawal of a rise it never heard of."""
    relay = SmtpServer()
    cfg, store, week = _opening_expired(tmp_path, relay, smtp_server, _lab())
    try:
        told = _weeks(cfg, store, _lab(revised=True), range(week, week + 1))
        assert told == [("correct", [])]
        assert relay.messages == [] and smtp_server.messages == []
        assert _records(store, "correct") == [
            {"target": "desk", "status": "dropped", "last_error": outbox.UNHEARD}]
    finally:
        relay.stop()
        store.close()


def test_an_expired_opening_queued_again_brings_its_correction_after_it(
        tmp_path, smtp_server):
    """The correction above was sent to nobody. An operator then queues the expired
    opening again (``warnd outbox retry``): the desk gets the opening, then its
    correction, replying to it, and nothing goes to ops. Before, the desk had had the
    correction first, and the opening after it as if the rise still held."""
    relay = SmtpServer()
    cfg, store, week = _opening_expired(tmp_path, relay, smtp_server, _lab())
    try:
        assert _weeks(cfg, store, _lab(revised=True), range(week, week + 1)) == [
            ("correct", [])]
        later = noon_after_week(START, week) + timedelta(hours=3)
        _queued_again(cfg, store, relay, later, "Rettelse")
        assert smtp_server.messages == []
        assert [r["status"] for r in _records(store, "correct")] == ["delivered"]
    finally:
        relay.stop()
        store.close()


def test_an_end_goes_to_those_who_had_the_rise_and_after_an_opening_queued_again(
        tmp_path, smtp_server):
    """Warnings go to the desk and to ops; the desk's relay is dead when the rise is told,
    ops has the opening. The rise ends: ops is told, the desk is not, and the end is
    recorded as not sent to it. An operator then queues the desk's expired opening
    again: the desk gets the opening, then the end, replying to it. Before, the desk
    never had the end (nothing recorded it), so the opening queued again told it of a
    rise long over as if it still held."""
    relay = SmtpServer()
    values = _lab(until=RISE + 12)
    both = ROUTED.replace('targets = ["desk"]', 'targets = ["desk", "ops"]')
    cfg = make_config(tmp_path, target("desk", relay.url("desk@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")), both)
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _weeks(cfg, store, values, range(RISE - 1, RISE + 2)) == [
            ("open", ["desk", "ops"])]
        relay.start()
        assert _weeks(cfg, store, values, range(RISE + 2, WEEKS)) == [("resolve", ["ops"])]
        wait_for(lambda: len(smtp_server.messages) == 2, what="the opening and end to ops")
        assert relay.messages == []
        assert _records(store, "resolve") == [
            {"target": "desk", "status": "dropped", "last_error": outbox.UNHEARD},
            {"target": "ops", "status": "delivered", "last_error": None}]
        later = noon_after_week(START, WEEKS)
        _queued_again(cfg, store, relay, later, "Avsluttet: ")
        assert len(smtp_server.messages) == 2
    finally:
        relay.stop()
        store.close()


@pytest.mark.parametrize(("name", "muted", "routed", "told"), [
    ("duty", "", '["duty"]', ["duty"]), ("desk", "muted = true\n", '["desk", "ops"]', [])],
    ids=["renamed", "muted"])
def test_an_end_is_routed_as_usual_only_when_its_recipients_left_the_config(
        tmp_path, smtp_server, name, muted, routed, told):
    """The desk had the opening; the config is then reloaded with the desk renamed
    ("duty"): the end goes by usual routing, to the duty desk. With the desk muted
    instead, and warnings now routed to ops too, the end goes to nobody, not to ops,
    which never heard of the rise. Before, a muted desk counted as gone, and ops was
    told the end by usual routing."""
    values = _lab(until=RISE + 12)
    desk = smtp_server.url("desk@example.org")
    ops = target("ops", smtp_server.url("ops@example.org"))
    cfg = make_config(tmp_path, target("desk", desk) + ops, ROUTED)
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _weeks(cfg, store, values, range(RISE - 1, RISE + 2)) == [("open", ["desk"])]
        cfg = make_config(tmp_path, target(name, desk) + muted + ops,
                          ROUTED.replace('["desk"]', routed))
        assert _weeks(cfg, store, values, range(RISE + 2, WEEKS)) == [("resolve", told)]
    finally:
        store.close()
    wait_for(lambda: len(smtp_server.messages) == 1 + len(told), what="the emails")
    assert [m["To"] for m in smtp_server.messages] == ["desk@example.org"] * (1 + len(told))


def test_an_opening_being_retried_when_its_rise_is_revised_away_is_not_sent(
        tmp_path, smtp_server):
    """The desk's relay is dead when the lab's rise is told; its opening is being retried
    when the lab revises the week the same day. The relay refused every attempt, so the
    desk never had the rise: the opening is dropped as withdrawn before it went out, and
    no correction is decided (nobody heard of the rise). The relay is back: the desk gets
    nothing. Before, the correction was decided for the desk, as the opening might yet
    reach it: a relay back within the hour sent the desk the opening of a rise that no
    longer existed, then its correction."""
    relay = SmtpServer()  # not started: nothing listens on its port
    cfg = make_config(tmp_path, target("desk", relay.url("desk@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")), ROUTED)
    store = Store.in_dir(cfg.state_dir)
    values = _lab()
    try:
        put_weekly(cfg.state_dir, values[:RISE + 2], start=START)
        now = noon_after_week(START, RISE + 1)
        assert [a["decision"] for a in Pipeline(cfg, clock=lambda: now).detect()] == ["open"]
        assert outbox.dispatch_pending(cfg, store, now=now)["retrying"] == 1
        put_weekly(cfg.state_dir, _lab(revised=True)[:RISE + 2], start=START)
        soon = now + timedelta(minutes=20)
        assert Pipeline(cfg, clock=lambda: soon).detect() == []
        relay.start()
        for k in range(1, 4):
            outbox.dispatch_pending(cfg, store, now=soon + timedelta(minutes=30 * k))
        assert relay.messages == [] and smtp_server.messages == []
        (opening,) = _records(store, "open")
        assert (opening["target"], opening["status"]) == ("desk", "dropped")
        assert "revised away" in opening["last_error"]
    finally:
        relay.stop()
        store.close()


def test_an_opening_queued_again_after_its_escalation_expired_is_what_the_end_replies_to(
        tmp_path, smtp_server):
    """Through decide and the outbox: the mail relay is dead for the whole of ketamine's
    rise: the lab's opening, customs' escalation (read as mail's opening when first
    tried) and the end all fail to reach mail, while ops has each. The relay is back and
    an operator queues the opening again for every target it failed for: mail gets the
    opening, then the end, which replies to that opening; the escalation, never had,
    cannot be queued again after the end. Before, the end replied to the escalation's
    Message-ID, a message mail never had, so it was no part of the opening's thread."""
    from tests.alerting_env import finding, judge_period, seed_series
    from tests.test_stream_first_messages import D0, OPENING, T0, _lab as _lab_finding

    relay = SmtpServer()  # not started: nothing listens on its port
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nsend_resolved = true\n'
                      "chart = false\n")
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        told = []
        for k in range(9):  # opening, escalation, then weeks without a finding: the end
            now = T0 + timedelta(weeks=k)
            found = ({"lab": [_lab_finding(0, rel=0.5, category=1)]} if k == 0 else
                     {"lab": [_lab_finding(1)], "customs": [finding("customs")]} if k == 1
                     else {})
            told += judge_period(cfg, store, D0 + timedelta(weeks=k), found, now=now)
            outbox.dispatch_pending(cfg, store, now=now)
            outbox.dispatch_pending(cfg, store, now=now + timedelta(hours=2))
        opening, esc, end = told
        assert [a["decision"] for a in told] == ["open", "escalate", "resolve"]
        assert store.q("SELECT alert_id, status FROM deliveries WHERE target='mail' "
                       "ORDER BY alert_id") == [
            {"alert_id": opening["id"], "status": "expired"},
            {"alert_id": esc["id"], "status": "expired"},
            {"alert_id": end["id"], "status": "dropped"}]
        relay.start()
        later = now + timedelta(hours=3)
        assert outbox.retry_delivery(store, opening["id"], now=later) == 1
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to mail")
        first, last = relay.messages
        assert first["Subject"] == OPENING
        assert last["Subject"].startswith("Avsluttet: ")
        assert (last["In-Reply-To"], last["References"]) == (first["Message-ID"],) * 2
        assert outbox.retry_delivery(store, esc["id"], "mail", now=later) == 0
        assert outbox.superseded(store, esc["id"], "mail") == {"mail": end["id"]}
    finally:
        relay.stop()
        store.close()


def test_an_opening_queued_again_that_expires_again_takes_its_correction_back_with_it(
        tmp_path, smtp_server):
    """The correction above was sent to nobody; an operator queues the desk's expired
    opening again while the relay is still dead, and it expires again. The relay is
    back: the correction queued with it is not sent on its own, but recorded as not sent
    again, and the next time the opening is queued again both go, in order. Before, the
    correction went all the same: the desk was told the withdrawal of a rise it never
    heard of."""
    relay = SmtpServer()
    cfg, store, week = _opening_expired(tmp_path, relay, smtp_server, _lab())
    relay.stop()  # dead again
    try:
        assert _weeks(cfg, store, _lab(revised=True), range(week, week + 1)) == [
            ("correct", [])]
        (opening,) = store.q("SELECT id FROM alerts WHERE decision='open'")
        later = noon_after_week(START, week) + timedelta(hours=3)
        assert outbox.retry_delivery(store, opening["id"], "desk", now=later) == 1
        outbox.dispatch_pending(cfg, store, now=later)
        counts = outbox.dispatch_pending(cfg, store, now=later + timedelta(hours=2))
        assert (counts["expired"], counts["unheard"]) == (1, 1)
        relay.start()
        back = later + timedelta(hours=2, minutes=5)
        counts = outbox.dispatch_pending(cfg, store, now=back)
        assert (counts["delivered"], counts["unheard"]) == (0, 0)
        assert _records(store, "correct") == [
            {"target": "desk", "status": "dropped", "last_error": outbox.UNHEARD}]
        assert outbox.retry_delivery(store, opening["id"], "desk", now=back) == 1
        assert outbox.dispatch_pending(cfg, store, now=back)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to the desk")
        assert [m["Subject"][:8] for m in relay.messages] == ["Sterk øk", "Rettelse"]
    finally:
        relay.stop()
        store.close()


def test_a_correction_decided_while_the_desk_was_muted_goes_after_its_opening_queued_again(
        tmp_path, smtp_server):
    """The desk's opening expired on its dead relay; the relay is back, and the desk is
    muted by a reload when the lab revises the rise away: the correction goes to nobody.
    The mute is taken away and an operator queues the desk's opening again: the desk
    gets the opening, then the correction. Before, the correction was recorded as not
    sent only for targets not muted, so the desk got the opening of a rise withdrawn
    long before as if it still held, and never its correction."""
    relay = SmtpServer()
    cfg, store, week = _opening_expired(tmp_path, relay, smtp_server, _lab())
    desk = target("desk", relay.url("desk@example.org"))
    ops = target("ops", smtp_server.url("ops@example.org"))
    try:
        muted = make_config(tmp_path, desk + "muted = true\n" + ops, ROUTED)
        assert _weeks(muted, store, _lab(revised=True), range(week, week + 1)) == [
            ("correct", [])]
        assert _records(store, "correct") == [
            {"target": "desk", "status": "dropped", "last_error": outbox.UNHEARD}]
        cfg = make_config(tmp_path, desk + ops, ROUTED)
        later = noon_after_week(START, week) + timedelta(hours=3)
        _queued_again(cfg, store, relay, later, "Rettelse")
        assert smtp_server.messages == []
    finally:
        relay.stop()
        store.close()


def test_a_source_s_recovery_goes_to_those_who_had_its_failure(tmp_path, smtp_server):
    """The lab fails three polls in a row while the mail relay is dead: ops is told, and
    the failure's message to mail expires. The relay is back and the lab polls again
    (``send_resolved``): ops is told it recovered, mail is not, as it never heard that
    it failed, and the recovery is recorded as not sent to mail and why. An operator
    queues the failure's message to mail again: mail gets it, then the recovery,
    replying to it. Before, mail was told a source it never heard fail was well again,
    and the failure could not be queued again after it."""
    from warnd.alerting import decide

    relay = SmtpServer()  # not started: nothing listens on its port
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nsend_resolved = true\n')
    store = Store.in_dir(cfg.state_dir)
    t0 = noon_after_week(START, 0)
    try:
        for k in range(3):
            store.record_poll("lab", ok=False, error="HTTP 503", now=t0 + timedelta(minutes=k))
        failure = decide.check_source_health(cfg, store, "lab", now=t0)
        assert outbox.dispatch_pending(cfg, store, now=t0)["delivered"] == 1  # ops
        assert outbox.dispatch_pending(cfg, store, now=t0 + timedelta(hours=2))[
            "expired"] == 1
        relay.start()
        later = t0 + timedelta(hours=3)
        store.record_poll("lab", ok=True, now=later)
        recovery = decide.check_source_health(cfg, store, "lab", now=later)
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 1  # ops
        wait_for(lambda: len(smtp_server.messages) == 2, what="two emails to ops")
        assert store.q("SELECT target, status, last_error FROM deliveries WHERE alert_id=? "
                       "ORDER BY target", [recovery]) == [
            {"target": "mail", "status": "dropped", "last_error": outbox.UNHEARD},
            {"target": "ops", "status": "delivered", "last_error": None}]
        assert relay.messages == []

        assert outbox.retry_delivery(store, failure, "mail", now=later) == 1
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to mail")
        failed, recovered = relay.messages
        assert recovered["Subject"] == "Kilde i orden igjen: Lab"
        assert recovered["In-Reply-To"] == failed["Message-ID"]
    finally:
        relay.stop()
        store.close()


def test_a_source_s_recovery_is_not_told_to_those_muted_during_its_failure(
        tmp_path, smtp_server):
    """Both desks are muted while the lab fails three polls in a row: its failure is
    recorded, told to nobody. They are unmuted, then the lab polls again
    (``send_resolved``): nobody is told it recovered, as nobody heard that it failed; the
    recovery is recorded, with no deliveries. Before, the recovery went where a new alert
    routes, to both desks. The desk muted at the next failure, which ops hears, is not
    told of that recovery either."""
    from warnd.alerting import decide

    def config(muted: tuple[str, ...]):
        return make_config(tmp_path, "".join(
            target(n, smtp_server.url(f"{n}@example.org"))
            + ("muted = true\n" if n in muted else "") for n in ("mail", "ops")),
            '\n[alerting]\nsend_resolved = true\n')

    cfg = config(("mail", "ops"))
    store = Store.in_dir(cfg.state_dir)
    t0 = noon_after_week(START, 0)
    try:
        for k in range(3):
            store.record_poll("lab", ok=False, error="HTTP 503", now=t0 + timedelta(minutes=k))
        failure = decide.check_source_health(cfg, store, "lab", now=t0)
        assert outbox.dispatch_pending(cfg, store, now=t0)["delivered"] == 0
        assert store.q("SELECT * FROM deliveries WHERE alert_id=?", [failure]) == []

        cfg = config(())
        later = t0 + timedelta(hours=3)
        store.record_poll("lab", ok=True, now=later)
        recovery = decide.check_source_health(cfg, store, "lab", now=later)
        assert store.q("SELECT decision, status FROM alerts WHERE id=?", [recovery]) == [
            {"decision": "resolve", "status": "resolved"}]
        assert store.q("SELECT * FROM deliveries WHERE alert_id=?", [recovery]) == []
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 0

        cfg = config(("mail",))  # the next failure: ops hears of it, mail does not
        t1 = later + timedelta(days=1)
        for k in range(3):
            store.record_poll("lab", ok=False, error="HTTP 503", now=t1 + timedelta(minutes=k))
        decide.check_source_health(cfg, store, "lab", now=t1)
        assert outbox.dispatch_pending(cfg, store, now=t1)["delivered"] == 1
        cfg = config(())
        store.record_poll("lab", ok=True, now=t1 + timedelta(hours=1))
        again = decide.check_source_health(cfg, store, "lab", now=t1 + timedelta(hours=1))
        assert [r["target"] for r in store.q(
            "SELECT target FROM deliveries WHERE alert_id=?", [again])] == ["ops"]
        assert outbox.dispatch_pending(cfg, store, now=t1 + timedelta(hours=1))[
            "delivered"] == 1
        wait_for(lambda: len(smtp_server.messages) == 2, what="two emails to ops")
        assert [m["To"] for m in smtp_server.messages] == ["ops@example.org"] * 2
        assert smtp_server.messages[-1]["Subject"] == "Kilde i orden igjen: Lab"
    finally:
        store.close()


def test_a_correction_tells_each_target_what_it_was_told_of_the_series(
        tmp_path, smtp_server):
    """Week by week through the pipeline: the lab's rise is told to the desk and to ops
    (+238 %); three weeks on its reminder (+219 %) reaches ops, while the desk's relay is
    dead and it expires. The relay is back, and the lab revises the rise away: the
    desk's correction lists the lab as the desk was told it, "4,1 → 14,0 (+238 %)", and
    ops's as ops was last told it, "+219 %"; the alert is stored as decided (the lab's
    last finding, +241 %). Before, both were told to disregard figures neither had."""
    relay = SmtpServer()
    relay.start()
    both = (ROUTED.replace('targets = ["desk"]', 'targets = ["desk", "ops"]')
            + "repeat_after_periods = 3\n")
    cfg = make_config(tmp_path, target("desk", relay.url("desk@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")), both)
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _weeks(cfg, store, _lab(), range(RISE - 1, RISE + 2)) == [
            ("open", ["desk", "ops"])]
        wait_for(lambda: len(relay.messages) == 1, what="the opening to the desk")
        relay.stop()
        assert _weeks(cfg, store, _lab(), range(RISE + 2, RISE + 6)) == [
            ("repeat", ["desk", "ops"])]
        relay.start()
        assert _weeks(cfg, store, _lab(revised=True), range(RISE + 6, RISE + 7)) == [
            ("correct", ["desk", "ops"])]
        wait_for(lambda: len(relay.messages) == 2 and len(smtp_server.messages) == 3,
                 what="the corrections")
        opening, desk = (" ".join(m.get_body(("plain",)).get_content().split())
                         for m in relay.messages)
        ops = " ".join(smtp_server.messages[-1].get_body(("plain",)).get_content().split())
        assert "4,1 → 14,0 (+238 %)" in opening
        assert "Rettelse" in desk and "Rettelse" in ops
        assert "4,1 → 14,0 (+238 %)" in desk and "+219 %" not in desk
        assert "4,3 → 13,6 (+219 %)" in ops and "+238 %" not in ops
        assert [r["status"] for r in _records(store, "repeat")] == ["expired", "delivered"]
        (stored,) = store.q("SELECT data FROM alerts WHERE decision='correct'")
        (lab,) = json.loads(stored["data"])["agree"]
        assert round(lab["relative_change"], 2) == 2.41  # the lab's last finding, never told
    finally:
        relay.stop()
        store.close()
