"""Delivery over time, moved through the real decide and outbox on a real store and
sent to a real SMTP server: the order of one substance's messages to a target when
quiet hours or retries hold some of them, who hears an episode's end, expiry over
quiet nights, mutes while a message waits, what status says, digests over days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from tests.alerting_env import SOURCES, finding, make_config, seed_series, target
from tests.alerting_env import judge_period as _period
from tests.conftest import SUBSTANCES, write_config
from tests.servers import SmtpServer, _Handler, wait_for
from warnd.alerting import decide, outbox
from warnd.alerting.send import SendResult
from warnd.config import load_config
from warnd.store import Store

D0 = date(2026, 7, 6)
#: Tuesday 23:00 in Oslo: quiet time
EVENING = datetime(2026, 7, 7, 21, 0, tzinfo=UTC)
#: dispatch_pending's counts when nothing happened
_NOTHING = {"delivered": 0, "retrying": 0, "expired": 0, "failed": 0, "silenced": 0,
            "waiting": 0, "held": 0, "unrecorded": 0, "muted": 0, "unheard": 0,
            "acknowledged": 0}


def _accepted(url, **kw):
    """A target that accepts every message (where what is sent is not the point)."""
    return SendResult(True, "SUCCESS")


def _subjects(smtp_server):
    return [m["Subject"] for m in smtp_server.messages]


def test_an_urgent_escalation_in_quiet_hours_brings_its_waiting_opening_along(
        tmp_path, smtp_server):
    """A rise opens at 23:00 (not urgent: it waits for 07:00); at 03:00 a second source
    agrees and the escalation is urgent. The recipient gets the opening first and the
    escalation right after it, at 03:00 — never the escalation alone with the opening
    coming hours later."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      '\n[alerting]\nquiet_hours = "22:00-07:00"\nurgent_severity = "warning"\n')
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    lab = [finding("lab", category=1, rel=1.0)]
    (a,) = _period(cfg, store, D0, {"lab": lab}, now=EVENING)
    assert (a["decision"], a["severity"]) == ("open", "info") and a["due_at"]
    assert outbox.dispatch_pending(cfg, store, now=EVENING)["delivered"] == 0
    night = EVENING + timedelta(hours=4)  # 03:00 in Oslo
    (b,) = _period(cfg, store, D0 + timedelta(weeks=1),
                   {"lab": lab, "customs": [finding("customs")]}, now=night)
    assert (b["decision"], b["severity"], b["due_at"]) == ("escalate", "warning", None)
    assert outbox.dispatch_pending(cfg, store, now=night)["delivered"] == 2
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    morning = EVENING + timedelta(hours=8)  # 07:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=morning)["delivered"] == 0
    assert _subjects(smtp_server) == [
        "Liten økning: ketamin — 1 kilde",
        "Forverring: Sterk økning: ketamin — 2 kilder",
    ]


class _Deferring(_Handler):
    """A mail relay that answers the first ``n`` messages with ``reply`` (by default a
    temporary 451), or every message whose subject contains ``subject``."""

    def __init__(self, n: int, reply: str = "451 4.3.0 try again later",
                 subject: str | None = None) -> None:
        super().__init__()
        self.deferred = n
        self.reply = reply
        self.subject = subject

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.subject is not None and self.subject in envelope.content.decode():
                return self.reply
            if self.deferred:
                self.deferred -= 1
                return self.reply
        return await super().handle_DATA(server, session, envelope)


def test_an_escalation_waits_for_its_opening_being_retried(tmp_path):
    """The relay defers the opening twice (a 451 for that message, not the target
    being down); the escalation decided meanwhile does not overtake it: it waits and
    goes right after the opening is accepted."""
    srv = SmtpServer()
    srv.handler = _Deferring(2)
    srv.start()
    try:
        cfg = make_config(tmp_path, target("mail", srv.url()))
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        t0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # Tuesday noon in Oslo
        lab = [finding("lab", category=1, rel=1.0)]
        (a,) = _period(cfg, store, D0, {"lab": lab}, now=t0)
        assert outbox.dispatch_pending(cfg, store, now=t0)["retrying"] == 1  # retry at +1 min
        t1 = t0 + timedelta(seconds=30)
        (b,) = _period(cfg, store, D0 + timedelta(weeks=1),
                       {"lab": lab, "customs": [finding("customs")]}, now=t1)
        assert b["decision"] == "escalate"
        # the opening goes first, is deferred again (retry in 2 min); the escalation waits
        assert outbox.dispatch_pending(cfg, store, now=t1) == {
            **_NOTHING, "retrying": 1, "held": 1}
        assert outbox.dispatch_pending(cfg, store, now=t0 + timedelta(minutes=2)) == _NOTHING
        assert srv.messages == []
        t2 = t1 + timedelta(minutes=2)
        assert outbox.dispatch_pending(cfg, store, now=t2)["delivered"] == 2
        wait_for(lambda: len(srv.messages) == 2, what="two emails")
        assert [m["Subject"] for m in srv.messages] == [
            "Liten økning: ketamin — 1 kilde",
            "Forverring: Sterk økning: ketamin — 2 kilder",
        ]
    finally:
        srv.stop()


def test_an_escalation_does_not_wait_for_an_opening_refused_for_good(tmp_path):
    """The relay refuses the opening for good (550, whatever the retries); the
    escalation is not held back behind that opening's two days of retries, and, being
    the first message of the episode the target gets, reads as its opening."""
    srv = SmtpServer()
    srv.handler = _Deferring(0, "550 5.7.1 message rejected", subject="Liten")
    srv.start()
    try:
        cfg = make_config(tmp_path, target("mail", srv.url()))
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        t0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
        lab = [finding("lab", category=1, rel=1.0)]
        _period(cfg, store, D0, {"lab": lab}, now=t0)
        assert outbox.dispatch_pending(cfg, store, now=t0)["retrying"] == 1
        t1 = t0 + timedelta(seconds=30)
        _period(cfg, store, D0 + timedelta(weeks=1),
                {"lab": lab, "customs": [finding("customs")]}, now=t1)
        assert outbox.dispatch_pending(cfg, store, now=t1) == {
            **_NOTHING, "retrying": 1, "delivered": 1}
        wait_for(lambda: len(srv.messages) == 1, what="the escalation")
        assert srv.messages[0]["Subject"] == "Sterk økning: ketamin — 2 kilder"
    finally:
        srv.stop()



def test_a_message_to_a_dead_relay_expires_despite_nightly_quiet_hours(tmp_path):
    """The relay refuses every connection from Monday morning on. Retries that fall
    into the quiet hours wait for the morning, but that does not restart the expiry
    window each night: the message expires ``expire_after`` (2 days) after it became
    due, health says so, and it is not sent days late when the relay is back."""
    from warnd.service.health import collect_status

    srv = SmtpServer()  # not started yet: nothing listens on its port
    cfg = make_config(tmp_path, target("mail", srv.url()),
                      '\n[alerting]\nquiet_hours = "17:00-08:00"\n')
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    t0 = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)  # Monday 10:00 in Oslo
    (a,) = _period(cfg, store, D0, {"lab": [finding("lab", category=1, rel=1.0)]}, now=t0)
    assert a["due_at"] is None
    expired_at = None
    t = t0
    while t < t0 + timedelta(days=5):  # dispatch every 20 minutes for five days
        if outbox.dispatch_pending(cfg, store, now=t)["expired"]:
            expired_at = t
            break
        t += timedelta(minutes=20)
    # due Monday 10:00; quiet from 17:00 to 08:00: Wednesday 10:00 is after the
    # evening's quiet hours began, so the last retry is Wednesday morning
    assert expired_at is not None, "never expired"
    assert t0 + timedelta(days=2) <= expired_at <= t0 + timedelta(days=2, hours=2)
    status = collect_status(cfg, now=expired_at)
    assert "1 expired deliveries (warnd outbox list)" in status["problems"]
    srv.start()
    try:
        later = expired_at + timedelta(days=1)
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 0
        assert srv.messages == []
    finally:
        srv.stop()


# -- digests over time ------------------------------------------------------------------
DEAD = "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"
DAILY = '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\ntargets = ["mail"]\n'


def _digests(store):
    return [json.loads(r["data"]) for r in store.q(
        "SELECT data FROM alerts WHERE kind='digest' ORDER BY id")]


def test_a_digest_lists_as_sent_only_what_was_sent(tmp_path, smtp_server):
    """Between two daily digests ketamine's rise is told and heroin's is silenced: the
    digest's "sent since the last digest" names ketamine's message, not heroin's,
    which nobody got."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), DAILY)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    seed_series(store, "lab", substance="heroin")
    start = datetime(2026, 7, 6, 5, 0, tzinfo=UTC)  # Monday 07:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=start)["delivered"] == 0
    assert outbox.dispatch_pending(cfg, store, now=start + timedelta(hours=1))["delivered"] == 1
    noon = start + timedelta(hours=5)
    store.add_silence(substance="heroin", kind=None, source=None, reason="known",
                      until=noon + timedelta(days=7), now=noon)
    (k,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=noon)
    (h,) = decide.enqueue_findings(
        cfg, store, "heroin", [(finding("lab", substance="heroin"), "open")], {}, now=noon)
    assert (k["status"], h["status"]) == ("open", "silenced")
    assert outbox.dispatch_pending(cfg, store, now=noon)["delivered"] == 1
    tuesday = start + timedelta(days=1, hours=1)  # 08:00
    assert outbox.dispatch_pending(cfg, store, now=tuesday)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 3, what="two digests and the alert")
    dg = _digests(store)[-1]
    assert [a["id"] for a in dg["changed"]] == [k["id"]]
    body = smtp_server.messages[2].get_body(("plain", "html")).get_content()
    assert k["title"] in body and h["title"] not in body


def test_the_first_digest_after_a_year_without_one_covers_its_own_period(tmp_path):
    """warnd ran a year without a digest; one is configured. The first daily digest
    covers its day (what is open, what changed since the day before), not the year:
    it does not list a year of messages as sent since the last digest, nor count a
    year-old finding in its table."""
    plain = make_config(tmp_path, target("mail", DEAD))
    store = Store.in_dir(plain.state_dir)
    seed_series(store, "lab", substance="heroin")
    year_ago = datetime(2025, 7, 1, 10, 0, tzinfo=UTC)
    store.record_finding(finding("lab", substance="heroin", onset=date(2025, 6, 2),
                                 detected=date(2025, 6, 30)), now=year_ago)
    (old,) = decide.enqueue_findings(
        plain, store, "heroin",
        [(finding("lab", substance="heroin", onset=date(2025, 6, 2),
                  detected=date(2025, 6, 30)), "open")], {}, now=year_ago)
    with store.write() as db:
        db.execute("UPDATE deliveries SET status='delivered'")
    cfg = make_config(tmp_path, target("mail", DEAD),
                      DAILY)
    enabled = datetime(2026, 7, 6, 10, 0, tzinfo=UTC)  # Monday noon: the digest configured
    outbox.dispatch_pending(cfg, store, now=enabled, send=_accepted)
    assert _digests(store) == []
    tuesday = datetime(2026, 7, 7, 6, 0, tzinfo=UTC)  # 08:00 in Oslo
    outbox.dispatch_pending(cfg, store, now=tuesday, send=_accepted)
    (dg,) = _digests(store)
    assert dg["changed"] == []
    assert dg["substances"] == []
    assert dg["since"] >= "2026-06-01"


def test_status_does_not_blame_quiet_hours_for_a_dead_target(tmp_path, capsys):
    """No quiet hours are configured and the relay is down: the messages held behind
    its back-off are not reported as waiting for the end of quiet hours; a message
    that does wait for them is."""
    from warnd.alerting.commands import alerting_status, print_alerting_status

    srv = SmtpServer()  # not started: nothing listens on its port
    cfg = make_config(tmp_path, target("mail", srv.url()))
    store = Store.in_dir(cfg.state_dir)
    for sub in ("ketamin", "heroin"):
        seed_series(store, "lab", substance=sub)
        decide.enqueue_findings(cfg, store, sub, [(finding("lab", substance=sub), "open")],
                                {}, now=EVENING)
    assert outbox.dispatch_pending(cfg, store, now=EVENING) == {
        **_NOTHING, "retrying": 1, "held": 1}
    print_alerting_status(alerting_status(store, now=EVENING))
    assert "quiet hours" not in capsys.readouterr().out
    quiet = make_config(tmp_path, target("mail", srv.url()),
                        '\n[alerting]\nquiet_hours = "22:00-07:00"\n')
    seed_series(store, "lab", substance="kokain")
    decide.enqueue_findings(quiet, store, "kokain",
                            [(finding("lab", substance="kokain"), "open")], {}, now=EVENING)
    st = alerting_status(store, now=EVENING)
    assert st["waiting_deliveries"] == {"n": 1, "until": "2026-07-08T05:00:00+00:00"}


def test_a_target_muted_while_its_message_waits_gets_nothing(tmp_path, smtp_server):
    """A message waits for the end of the quiet hours for two targets; in the night
    one of them is muted (the config reloaded): in the morning only the other gets it,
    and the muted one's delivery is closed with the reason, not kept pending."""
    quiet = '\n[alerting]\nquiet_hours = "22:00-07:00"\n'
    two = (target("ops", smtp_server.url("ops@example.org"))
           + target("away", smtp_server.url("away@example.org")))
    cfg = make_config(tmp_path, two, quiet)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    (a,) = _period(cfg, store, D0, {"lab": [finding("lab", category=1, rel=1.0)]}, now=EVENING)
    assert a["targets"] == ["ops", "away"] and a["due_at"]
    muted = make_config(tmp_path, two.replace(
        'name = "away"\n', 'name = "away"\nmuted = true\n'), quiet)
    morning = EVENING + timedelta(hours=8)
    assert outbox.dispatch_pending(muted, store, now=morning)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email to ops")
    assert [m["To"] for m in smtp_server.messages] == ["ops@example.org"]
    rows = {r["target"]: r for r in store.q("SELECT target, status, last_error FROM deliveries")}
    assert rows["ops"]["status"] == "delivered"
    assert rows["away"]["status"] == "dropped" and "muted" in rows["away"]["last_error"]
    assert outbox.dispatch_pending(muted, store, now=morning + timedelta(days=1)) == _NOTHING


def test_a_substance_muted_while_its_message_waits_is_not_sent(tmp_path, smtp_server):
    quiet = '\n[alerting]\nquiet_hours = "22:00-07:00"\n'
    cfg = make_config(tmp_path, target("ops", smtp_server.url()), quiet)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _period(cfg, store, D0, {"lab": [finding("lab", category=1, rel=1.0)]}, now=EVENING)
    muted = load_config(write_config(
        tmp_path, SOURCES + target("ops", smtp_server.url()) + quiet,
        substances=SUBSTANCES.replace('slang = ["ket"]\n', 'slang = ["ket"]\nmuted = true\n')))
    assert muted.substances["ketamin"].muted
    morning = EVENING + timedelta(hours=8)
    assert outbox.dispatch_pending(muted, store, now=morning) == {**_NOTHING, "muted": 1}
    assert store.q("SELECT status FROM deliveries") == [{"status": "dropped"}]
    assert smtp_server.messages == []
    # nobody heard it: once the substance is no longer muted, the rise, still on, is told
    later = EVENING + timedelta(weeks=1, hours=-8)
    told = _period(cfg, store, D0 + timedelta(weeks=1),
                   {"lab": [finding("lab", category=1, rel=1.0)]}, now=later)
    assert [(a["decision"], a["targets"]) for a in told] == [("open", ["ops"])]


def test_an_urgent_escalation_in_quiet_hours_takes_along_an_opening_due_for_a_retry(
        tmp_path):
    """The opening was deferred by the relay just before the quiet hours began, so its
    retry falls into them; the urgent escalation decided in the night takes it along
    (opening first), rather than going alone while the opening waits for morning."""
    srv = SmtpServer()
    srv.handler = _Deferring(1)
    srv.start()
    try:
        cfg = make_config(tmp_path, target("mail", srv.url()),
                          '\n[alerting]\nquiet_hours = "22:00-07:00"\n'
                          'urgent_severity = "warning"\n')
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        before = datetime(2026, 7, 7, 19, 58, tzinfo=UTC)  # 21:58 in Oslo
        lab = [finding("lab", category=1, rel=1.0)]
        (a,) = _period(cfg, store, D0, {"lab": lab}, now=before)
        assert a["due_at"] is None
        assert outbox.dispatch_pending(cfg, store, now=before)["retrying"] == 1
        night = datetime(2026, 7, 7, 20, 30, tzinfo=UTC)  # 22:30 in Oslo
        (b,) = _period(cfg, store, D0 + timedelta(weeks=1),
                       {"lab": lab, "customs": [finding("customs")]}, now=night)
        assert (b["decision"], b["severity"]) == ("escalate", "warning")
        assert outbox.dispatch_pending(cfg, store, now=night)["delivered"] == 2
        wait_for(lambda: len(srv.messages) == 2, what="two emails")
        assert [m["Subject"] for m in srv.messages] == [
            "Liten økning: ketamin — 1 kilde",
            "Forverring: Sterk økning: ketamin — 2 kilder",
        ]
    finally:
        srv.stop()


def test_daily_digests_across_the_spring_change_and_two_outages(tmp_path):
    """A daily 08:00 digest from Thursday to Wednesday across the change to summer time
    (Sunday 2026-03-29), with warnd down on Friday 07:00-11:00 (that digest is sent
    once at 11:00) and from Monday 07:00 to Tuesday 09:00 (Monday's is skipped, more
    than a day late): one digest per day otherwise, at 08:00 local time each day."""
    from zoneinfo import ZoneInfo

    oslo = ZoneInfo("Europe/Oslo")
    cfg = make_config(tmp_path, target("mail", DEAD), DAILY)
    store = Store.in_dir(cfg.state_dir)
    down = [(datetime(2026, 3, 27, 7, tzinfo=oslo), datetime(2026, 3, 27, 11, tzinfo=oslo)),
            (datetime(2026, 3, 30, 7, tzinfo=oslo), datetime(2026, 3, 31, 9, tzinfo=oslo))]
    t = datetime(2026, 3, 26, 7, 0, tzinfo=oslo)
    while t < datetime(2026, 4, 1, 12, 0, tzinfo=oslo):
        if not any(a <= t < b for a, b in down):
            outbox.dispatch_pending(cfg, store, now=t.astimezone(UTC), send=_accepted)
        t += timedelta(minutes=30)
    made = [datetime.fromisoformat(r["created_at"]).astimezone(oslo).strftime("%a %d %H:%M")
            for r in store.q("SELECT created_at FROM alerts WHERE kind='digest' ORDER BY id")]
    assert made == ["Thu 26 08:00", "Fri 27 11:00", "Sat 28 08:00", "Sun 29 08:00",
                    "Tue 31 09:00", "Wed 01 08:00"]


def test_an_episode_ends_for_those_who_were_told_of_it(tmp_path, smtp_server):
    """The rise is told at ``warning`` and routed to the on-call desk; its end, an
    ``info`` message by its own severity, goes to the on-call desk too — not to the
    desk for lesser alerts, which never heard of the rise."""
    cfg = make_config(
        tmp_path,
        target("desk", smtp_server.url("desk@example.org"))
        + target("oncall", smtp_server.url("oncall@example.org"))
        + '\n[[routes]]\nmin_severity = "warning"\ntargets = ["oncall"]\n'
        + '\n[alerting]\nsend_resolved = true\ndefault_targets = ["desk"]\n')
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    t0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # Tuesdays at noon in Oslo
    both = {"lab": [finding("lab")], "customs": [finding("customs")]}
    weeks = [both, both, {"customs": [finding("customs")]}] + [{}] * 8
    told = []
    for k, per in enumerate(weeks):
        now = t0 + timedelta(weeks=k)
        told += [(a["decision"], a["targets"])
                 for a in _period(cfg, store, D0 + timedelta(weeks=k), per, now=now)]
        outbox.dispatch_pending(cfg, store, now=now)
    assert told == [("open", ["oncall"]), ("resolve", ["oncall"])]
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    assert [(m["To"], m["Subject"].split(":")[0]) for m in smtp_server.messages] == [
        ("oncall@example.org", "Sterk økning"), ("oncall@example.org", "Avsluttet")]
