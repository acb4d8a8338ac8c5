"""Delivery over hours and days to targets that misbehave, moved through the real decide
and outbox on a real store, sent to real local servers: a relay down for a weekend with
a backlog, a target whose password is missing, a webhook that rate-limits or answers 404
for a while, a relay that defers, one that is slow; what health and ``warnd outbox`` and
``warnd status`` say meanwhile, and the order of an episode's messages."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from tests.alerting_env import SOURCES, finding, judge_period, seed_series, target
from tests.conftest import write_config
from tests.servers import SmtpServer, wait_for
from warnd.alerting import decide, outbox
from warnd.config import load_config
from warnd.store import Store

D0 = date(2026, 7, 6)
NAMES = ("ketamin", "heroin", "kokain", "fentanyl", "amfetamin")
SUBSTANCES = "".join(f'\n[substances.{n}]\nlabel = "{n}"\nnames = ["{n}"]\n'
                     for n in (*NAMES, "lsd"))


def _config(tmp_path, targets: str, extra: str = ""):
    return load_config(write_config(tmp_path, SOURCES + targets + extra,
                                    substances=SUBSTANCES))


def _rise(cfg, store: Store, substance: str, *, now: datetime, period: date = D0) -> dict:
    """One period of ``substance``'s lab series with a rise: its opening, decided."""
    scope = f"series:lab:{substance}"
    tr = decide.tracker_from_state(store.episode_state(scope),
                                   cfg.detection_params(substance, "lab"))
    f = finding("lab", substance=substance, category=1, rel=1.0)
    firing = [(f, a) for a, f in decide.tracker_update(tr, period, [f])
              if a in decide.SEND_ACTIONS]
    (alert,) = decide.enqueue_findings(cfg, store, substance, firing,
                                       {scope: decide.tracker_state(tr)}, now=now)
    return alert


def _statuses(store: Store) -> dict[int, str]:
    return {r["alert_id"]: r["status"] for r in store.q(
        "SELECT alert_id, status FROM deliveries ORDER BY alert_id")}


def test_a_backlog_to_a_dead_relay_expires_on_time_not_one_an_hour(tmp_path):
    """The mail relay refuses every connection from Friday 15:00 to Sunday 16:30; five
    substances' openings wait for it, decided within minutes of each other. Each expires
    ``expire_after`` (2 days) after it became due, as the first does (at its first
    attempt after that, within the hourly back-off), and none is sent when the relay is
    back. Before, the others waited behind the first without an attempt, still listed as
    pending with none made, to expire one per back-off as each got its turn (a thousand
    waiting would have taken six weeks): the four were sent at 16:30, as the relay came
    back, well after they had expired."""
    srv = SmtpServer()  # not started yet: nothing listens on its port
    cfg = _config(tmp_path, target("mail", srv.url()))
    store = Store.in_dir(cfg.state_dir)
    for n in NAMES:
        seed_series(store, "lab", n)
    friday = datetime(2026, 7, 10, 13, 0, tzinfo=UTC)  # 15:00 in Oslo
    for i, n in enumerate(NAMES):
        _rise(cfg, store, n, now=friday + timedelta(minutes=i))
    t = friday
    expired = friday + timedelta(days=2, hours=1)
    while t <= expired:  # dispatch every 30 minutes
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=30)
    assert _statuses(store) == dict.fromkeys(range(1, 6), "expired")
    srv.start()
    try:
        while t < friday + timedelta(days=2, hours=5):
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=30)
        assert srv.messages == []
    finally:
        srv.stop()


class _LoginRelay(SmtpServer):
    """A relay that asks for a login (plain, without TLS: loopback) and takes any."""

    def start(self) -> _LoginRelay:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.ctl = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                              auth_require_tls=False,
                              authenticator=lambda *a: AuthResult(success=True))
        self.ctl.start()
        return self


def test_a_target_whose_password_is_missing_turns_health_red_and_its_messages_expire(
        tmp_path, monkeypatch):
    """The mail target's password comes from an environment variable the daemon was
    started without (a drop-in lost in an upgrade). Every attempt fails before anything
    is sent. Health names the target as failing after ``failing_after`` attempts, with
    the reason, and the message expires ``expire_after`` after it became due, as for a
    target that refuses; once the password is there, an operator's re-queue sends it and
    health is green again. Before, it was retried every hour for good, never expired,
    and ``warnd status`` was healthy all along."""
    from warnd.service.health import collect_status

    relay = _LoginRelay().start()
    url = relay.url().replace("mailto://", "mailto://alerts:{password}@")
    cfg = _config(tmp_path, target("mail", url)
                  + 'password_env = "WARND_TEST_RELAY_PASSWORD"\n')
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab", "ketamin")
    try:
        t0 = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)  # Monday 10:00 in Oslo
        a = _rise(cfg, store, "ketamin", now=t0)
        t = t0
        while t < t0 + timedelta(hours=3):
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=20)
        problems = collect_status(cfg, now=t)["problems"]
        assert any(p.startswith("target mail: last 3 attempts failed") and
                   "WARND_TEST_RELAY_PASSWORD is not set" in p for p in problems), problems
        while t < t0 + timedelta(days=2, hours=1):
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=20)
        assert _statuses(store) == {a["id"]: "expired"}
        assert "1 expired deliveries (warnd outbox list)" in collect_status(cfg, now=t)["problems"]
        assert relay.messages == []
        monkeypatch.setenv("WARND_TEST_RELAY_PASSWORD", "s3cret")
        assert outbox.retry_delivery(store, a["id"], now=t) == 1
        assert outbox.dispatch_pending(cfg, store, now=t)["delivered"] == 1
        wait_for(lambda: len(relay.messages) == 1, what="the opening")
        assert collect_status(cfg, now=t)["problems"] == []
    finally:
        relay.stop()


def test_the_outbox_says_why_each_message_waits_for_a_rate_limited_webhook(
        tmp_path, teams_server, capsys):
    """The Teams workflow answers 429 with ``Retry-After: 7200`` to the first of three
    openings; the other two wait with it, without a post. ``warnd outbox`` says of each
    why it waits (the 429 and its Retry-After) and when it is tried next, also after the
    two hours, when the workflow still answers 429. Before, those two said only "target
    backing off", nothing of why."""
    from warnd.cli import main

    teams_server.status = 429
    teams_server.reply_headers = {"Retry-After": "7200"}
    cfg = _config(tmp_path, target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    for n in NAMES[:3]:
        seed_series(store, "lab", n)
        _rise(cfg, store, n, now=t0)
    for hours in (0, 2):
        counts = outbox.dispatch_pending(cfg, store, now=t0 + timedelta(hours=hours))
        assert (counts["retrying"], counts["held"]) == (1, 2)
        assert main(["--config", str(cfg.path), "outbox", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["status"] for r in rows] == ["pending"] * 3
        assert all("HTTP 429 Too Many Requests (Retry-After 7200 s)" in r["last_error"]
                   for r in rows), [r["last_error"] for r in rows]
        assert {r["next_attempt_at"] for r in rows} == {
            (t0 + timedelta(hours=hours + 2)).isoformat()}
    assert len(teams_server.requests) == 2


def _card_titles(payloads: list[dict]) -> list[str]:
    """The title of each card posted (its block ``title``)."""
    return [next(b["inlines"][0]["text"] for b in p["attachments"][0]["content"]["body"]
                 if b.get("id") == "title") for p in payloads]


def test_an_escalation_refused_with_its_opening_reads_as_decided_once_the_opening_went(
        tmp_path, teams_server):
    """The Teams workflow answers 404 for a quarter of an hour (re-created by its owner):
    the lab's opening is refused, then customs' escalation, decided meanwhile. A refusal
    for good holds nothing back, so the escalation was tried while the opening was still
    refused, and read then as the channel's opening. The workflow is back; the
    escalation's retry brings the opening along, first. The channel gets the opening and
    then the escalation as decided, "Forverring: …" with what grew, in the opening's
    thread: no attempt of it can have reached the channel before. Before, it got the
    escalation as a second opening ("Sterk økning: ketamin — 2 kilder", a thread of its
    own) right after the first."""
    teams_server.status = 404
    cfg = _config(tmp_path, target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    lab = [finding("lab", category=1, rel=1.0)]
    assert [a["decision"] for a in judge_period(cfg, store, D0, {"lab": lab}, now=t0)] == [
        "open"]
    t, refused = t0, 0
    while t < t0 + timedelta(minutes=30):  # dispatch every minute
        if t == t0 + timedelta(minutes=10):
            (b,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                                {"lab": lab, "customs": [finding("customs")]}, now=t)
            assert b["decision"] == "escalate"
        if t == t0 + timedelta(minutes=16):
            teams_server.status = 202
            refused = len(teams_server.requests)
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=1)
    assert refused > 2  # both were refused, each more than once
    opening, escalation = teams_server.payloads()[refused:]
    assert _card_titles([opening, escalation]) == [
        "Liten økning: ketamin — 1 kilde", "Forverring: Sterk økning: ketamin — 2 kilder"]
    assert "warnd_thread_id" not in opening
    assert escalation["warnd_thread_id"] == opening["warnd_message_id"]
    assert "Mer enn sist varslet: 2 kilder (før 1)" in json.dumps(escalation,
                                                                 ensure_ascii=False)


def test_status_names_a_targets_latest_error_not_an_older_one(tmp_path, capsys):
    """The mail relay is down (connections refused) for two hours: ketamine's opening
    expires on it (``expire_after`` 1 hour). The relay is back but defers every message
    (451, its queue full): heroin's opening is deferred again and again. ``warnd
    status`` says of mail the relay's latest answer, the deferral, as health's "last N
    attempts failed" does. Before, its line showed whichever of its deliveries' reasons
    sorted last as text: "refused: …", the relay down, as if it still were."""
    from tests.test_stream_delivery import _Deferring
    from warnd.cli import main

    relay = SmtpServer()  # not started yet: nothing listens on its port
    relay.handler = _Deferring(10**6)
    cfg = _config(tmp_path, target("mail", relay.url()), '\n[alerting]\nexpire_after = "1h"\n')
    store = Store.in_dir(cfg.state_dir)
    for n in NAMES[:2]:
        seed_series(store, "lab", n)
    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    _rise(cfg, store, NAMES[0], now=t0)
    t = t0
    try:
        while t < t0 + timedelta(hours=3):  # dispatch every 10 minutes
            if t == t0 + timedelta(hours=2):
                relay.start()
                _rise(cfg, store, NAMES[1], now=t)
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=10)
    finally:
        relay.stop()
    assert [(r["status"], "451" in r["last_error"]) for r in store.q(
        "SELECT status, last_error FROM deliveries ORDER BY alert_id")] == [
            ("expired", False), ("pending", True)]
    store.close()
    assert main(["--config", str(cfg.path), "status"]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("  target mail:")]
    assert "451" in line and "refused" not in line, line


def test_a_slow_relay_working_through_a_backlog_is_not_taken_for_a_stalled_outbox(tmp_path):
    """The mail relay is back after an outage but slow: it takes four minutes over each
    message (the clock of the dispatch moves as it answers). Six openings wait for it,
    so the dispatch round that sends them lasts 24 minutes. While it works through them,
    the outbox is moving: health does not count the messages still to go in that round
    as stalled (which would turn the daemon's watchdog liveness false, and systemd would
    restart it in the middle of the round). Each goes once. Before, their claims expired
    ``claim_lease`` (10 minutes) after the round began, and from the 15th minute those
    still to go were "due for more than 15m without an attempt"."""
    from tests.servers import _Handler
    from warnd.pipeline import Pipeline
    from warnd.service.health import outbox_progress

    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    clock = [t0]
    stalled: list[int] = []

    class Slow(_Handler):
        async def handle_DATA(self, server, session, envelope):
            clock[0] += timedelta(minutes=4)
            st = Store.in_dir(cfg.state_dir)
            try:
                stalled.append(outbox_progress(cfg, st, clock[0])["stalled"])
            finally:
                st.close()
            return await super().handle_DATA(server, session, envelope)

    relay = SmtpServer()
    relay.handler = Slow()
    relay.start()
    try:
        cfg = _config(tmp_path, target("mail", relay.url()),
                      '\n[alerting]\nsend_timeout = "5m"\nchart = false\n')
        store = Store.in_dir(cfg.state_dir)
        for n in (*NAMES, "lsd"):
            seed_series(store, "lab", n)
            _rise(cfg, store, n, now=t0)
        counts = Pipeline(cfg, clock=lambda: clock[0]).dispatch(store=store)
        assert counts["delivered"] == 6
        assert len(relay.messages) == 6
        assert clock[0] == t0 + timedelta(minutes=24)
        assert stalled == [0] * 6
    finally:
        relay.stop()


def test_a_sources_recovery_does_not_overtake_its_failure_deferred_by_the_relay(tmp_path):
    """The mail relay defers every message (451, its queue full) for three hours. The lab
    fails three polls in a row (its failure told), and polls again an hour later (its
    recovery told, with ``send_resolved``). Both are retried on their own back-off; when
    the relay takes messages again, mail gets the failure and then the recovery, which
    replies to it, as a substance's messages of one episode go in order. Before, the
    recovery, tried afresh every few minutes, went first, and the failure an hour
    later: "Kilde i orden igjen: Lab" before "Kilde feiler: Lab", the source left
    looking down."""
    from tests.test_stream_delivery import _Deferring

    relay = SmtpServer()
    relay.handler = _Deferring(10**6)
    relay.start()
    try:
        cfg = _config(tmp_path, target("mail", relay.url()),
                      '\n[alerting]\nsend_resolved = true\n')
        store = Store.in_dir(cfg.state_dir)
        t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
        t = t0
        while t < t0 + timedelta(hours=5):  # dispatch every 2 minutes
            if t < t0 + timedelta(minutes=6):
                store.record_poll("lab", ok=False, error="HTTP 503", now=t)
                decide.check_source_health(cfg, store, "lab", now=t)
            if t == t0 + timedelta(hours=1):
                store.record_poll("lab", ok=True, now=t)
                assert decide.check_source_health(cfg, store, "lab", now=t) is not None
            if t == t0 + timedelta(hours=3):
                relay.handler.deferred = 0  # the relay takes messages again
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=2)
        wait_for(lambda: len(relay.messages) == 2, what="two emails")
        failing, recovered = relay.messages
        assert [failing["Subject"], recovered["Subject"]] == [
            "Kilde feiler: Lab", "Kilde i orden igjen: Lab"]
        assert recovered["In-Reply-To"] == failing["Message-ID"]
    finally:
        relay.stop()


def test_an_end_waiting_behind_an_opening_that_expires_is_not_sent_in_the_same_round(
        tmp_path):
    """The mail relay defers ketamine's opening (451 for that message, every time) until
    it expires (``expire_after`` 1 hour). The rise ends meanwhile (``send_resolved``):
    the end waits behind the opening. In the dispatch where the opening's last attempt
    expires, the end is not sent: mail never had the rise, so it is recorded as not sent
    ("not sent: the target never had the messages it ends …"), to go after the opening
    should an operator queue that again. Before, it went in that same dispatch, the
    relay taking it: mail was told "Avsluttet: …" of a rise it never heard of."""
    from tests.test_stream_delivery import _Deferring

    relay = SmtpServer()
    relay.handler = _Deferring(0, subject="Message-ID: <warnd.1.mail.")
    relay.start()
    try:
        cfg = _config(tmp_path, target("mail", relay.url()),
                      '\n[alerting]\nsend_resolved = true\nexpire_after = "1h"\n'
                      'chart = false\n')
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
        lab = {"lab": [finding("lab", category=1, rel=1.0)]}
        told = []
        for k, per in enumerate([lab] + [{}] * 8):  # a week's data every 5 minutes
            t = t0 + timedelta(minutes=5 * k)
            told += [a["decision"] for a in judge_period(
                cfg, store, D0 + timedelta(weeks=k), per, now=t)]
            outbox.dispatch_pending(cfg, store, now=t)
        assert told == ["open", "resolve"]
        while t < t0 + timedelta(hours=3):  # dispatch every 5 minutes
            t += timedelta(minutes=5)
            outbox.dispatch_pending(cfg, store, now=t)
        assert [(r["decision"], r["status"], r["last_error"]) for r in store.q(
            "SELECT a.decision, d.status, d.last_error FROM deliveries d JOIN alerts a ON "
            "a.id = d.alert_id ORDER BY a.id")][1:] == [
                ("resolve", "dropped", outbox.UNHEARD)]
        assert relay.messages == []
    finally:
        relay.stop()


def test_messages_to_a_relay_dead_over_a_quiet_weekend_are_not_sent_after_they_expired(
        tmp_path):
    """Quiet hours 17:00-08:00 and quiet weekends. The mail relay refuses every
    connection from Friday morning; three substances' openings, due Friday 10:00, wait
    for it: the first is retried until 17:00, the others wait with it, and then all wait
    for the end of the quiet time, Monday 08:00. They expire on Sunday at 10:00,
    ``expire_after`` (2 days) after they became due, while they wait: the relay back on
    Monday morning gets nothing. Before, they went on Monday at 08:00 when the relay was
    back, a day after they had expired."""
    srv = SmtpServer()  # not started yet: nothing listens on its port
    cfg = _config(tmp_path, target("mail", srv.url()),
                  '\n[alerting]\nquiet_hours = "17:00-08:00"\nquiet_days = ["sat", "sun"]\n')
    store = Store.in_dir(cfg.state_dir)
    friday = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)  # 10:00 in Oslo
    for n in NAMES[:3]:
        seed_series(store, "lab", n)
        assert _rise(cfg, store, n, now=friday)["due_at"] is None
    t = friday
    sunday = friday + timedelta(days=2)
    while t <= sunday:  # dispatch every 30 minutes
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=30)
    assert _statuses(store) == dict.fromkeys(range(1, 4), "expired")
    srv.start()
    try:
        monday = friday + timedelta(days=3, hours=-2)  # Monday 08:00 in Oslo
        while t < monday + timedelta(hours=2):
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=30)
        assert srv.messages == []
    finally:
        srv.stop()


def test_a_message_rate_limited_near_its_expiry_is_not_sent_after_it(tmp_path, teams_server):
    """The Teams workflow answers 429 with ``Retry-After: 18000`` (5 hours) to every post
    for two days. Ketamine's opening is tried every five hours, each time as asked; the
    try due after its expiry (2 days after it became due) is not made: it expires then,
    and when the workflow takes posts again an hour later nothing more is posted. Before,
    its last retry was put five hours on, past its expiry, and posted then: the card went
    two hours after the message had expired."""
    teams_server.status = 429
    teams_server.reply_headers = {"Retry-After": "18000"}
    cfg = _config(tmp_path, target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab", "ketamin")
    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    a = _rise(cfg, store, "ketamin", now=t0)
    t = t0
    while t < t0 + timedelta(days=2, hours=6):  # dispatch every 30 minutes
        if t == t0 + timedelta(days=2, hours=1):
            teams_server.status = 202
            teams_server.reply_headers = {}
            posts = len(teams_server.requests)
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=30)
    assert len(teams_server.requests) == posts == 10  # every five hours, as asked
    assert _statuses(store) == {a["id"]: "expired"}


def test_a_message_decided_before_days_of_downtime_expires_at_its_first_attempt(
        tmp_path, smtp_server, capsys, caplog):
    """Ketamine's opening is decided on Friday at 10:00 and the host goes down before the
    outbox is dispatched; warnd runs again on Sunday at 10:30, after ``expire_after`` (2
    days). The opening is not sent as a first attempt 48 hours late: it expires, logged
    as an error, counted, listed by ``warnd outbox`` with why; an operator who wants it
    sent all the same queues it again (``warnd outbox retry``) and it goes. Heroin's,
    decided on Saturday, is younger than ``expire_after`` and goes at the restart.
    Before, both went at the restart, Friday's as news of a rise 48 hours old."""
    from warnd.cli import main

    cfg = _config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for n in NAMES[:2]:
        seed_series(store, "lab", n)
    friday = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)  # 10:00 in Oslo
    _rise(cfg, store, NAMES[0], now=friday)
    _rise(cfg, store, NAMES[1], now=friday + timedelta(days=1))
    restart = friday + timedelta(days=2, minutes=30)
    with caplog.at_level("ERROR", logger="warnd"):
        counts = outbox.dispatch_pending(cfg, store, now=restart)
    assert (counts["expired"], counts["delivered"]) == (1, 1), counts
    assert _statuses(store) == {1: "expired", 2: "delivered"}
    wait_for(lambda: len(smtp_server.messages) == 1, what="heroin's opening")
    assert "heroin" in smtp_server.messages[0]["Subject"]
    assert "alert=1 target=mail expired after 0 attempts" in caplog.text
    assert main(["--config", str(cfg.path), "outbox"]) == 0
    out = capsys.readouterr().out
    assert "#1 mail             expired" in out
    assert ("not tried within alerting.expire_after (2d) after it became due at "
            "2026-07-10T08:00:00+00:00") in out
    assert main(["--config", str(cfg.path), "outbox", "retry", "1"]) == 0
    capsys.readouterr()
    counts = outbox.dispatch_pending(cfg, store, now=datetime.now(UTC))
    assert counts["delivered"] == 1, counts
    wait_for(lambda: len(smtp_server.messages) == 2, what="the re-queued opening")
    assert "ketamin" in smtp_server.messages[1]["Subject"]


def test_a_first_attempt_put_off_to_the_end_of_a_quiet_weekend_is_still_sent(
        tmp_path, smtp_server):
    """Quiet hours 17:00-08:00, quiet weekends, ``expire_after`` 1 day. Heroin's opening
    is decided on Thursday at 15:00 and the host goes down before it is sent; it is up
    again on Friday at 16:59, when ketamine's opening is decided, in working time. The
    dispatch at 17:00:30 finds the quiet time begun. Heroin's, due 26 hours ago and never
    tried, expires. Ketamine's first attempt is put off to Monday 08:00, 63 hours after
    it became due, and goes then: the wait for the end of the quiet time does not count
    against a first attempt. Before, heroin's went on Monday too, four days late."""
    cfg = _config(tmp_path, target("mail", smtp_server.url()),
                  '\n[alerting]\nquiet_hours = "17:00-08:00"\nquiet_days = ["sat", "sun"]\n'
                  'expire_after = "1d"\n')
    store = Store.in_dir(cfg.state_dir)
    for n in NAMES[:2]:
        seed_series(store, "lab", n)
    friday = datetime(2026, 7, 10, 14, 59, tzinfo=UTC)  # 16:59 in Oslo
    assert _rise(cfg, store, NAMES[1], now=friday - timedelta(hours=26))["due_at"] is None
    assert _rise(cfg, store, NAMES[0], now=friday)["due_at"] is None
    counts = outbox.dispatch_pending(cfg, store, now=friday + timedelta(seconds=90))
    assert (counts["expired"], counts["waiting"]) == (1, 1), counts
    monday = datetime(2026, 7, 13, 6, 0, tzinfo=UTC)  # 08:00 in Oslo
    t = friday + timedelta(minutes=30)
    while t < monday:  # dispatch every 30 minutes over the weekend: nothing goes
        assert outbox.dispatch_pending(cfg, store, now=t)["delivered"] == 0
        t += timedelta(minutes=30)
    counts = outbox.dispatch_pending(cfg, store, now=monday)
    assert counts["delivered"] == 1, (counts, store.q("SELECT * FROM deliveries"))
    wait_for(lambda: len(smtp_server.messages) == 1, what="ketamine's opening")
    assert "ketamin" in smtp_server.messages[0]["Subject"]
    assert _statuses(store) == {1: "expired", 2: "delivered"}


def test_a_test_message_to_a_repaired_relay_turns_health_green_after_its_backlog_was_dropped(
        tmp_path, capsys):
    """The mail relay is down: ketamine's opening fails three times and expires on it;
    the operator drops it (``warnd outbox drop``). Health still names mail ("last 3
    attempts failed"), and a ``warnd test-notify`` while the relay is down counts as a
    fourth. Once the relay is back, a ``warnd test-notify`` it accepts clears that:
    health is green with nothing else sent. Before, test-notify recorded nothing, and
    health stayed red until a later alert to mail went through."""
    from warnd.cli import main
    from warnd.service.health import collect_status

    relay = SmtpServer()  # not started yet: nothing listens on its port
    cfg = _config(tmp_path, target("mail", relay.url()), '\n[alerting]\nexpire_after = "1h"\n')
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab", NAMES[0])
    t0 = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Oslo
    alert = _rise(cfg, store, NAMES[0], now=t0)
    t = t0
    while t <= t0 + timedelta(hours=2):
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=10)
    assert _statuses(store) == {alert["id"]: "expired"}
    store.close()
    p = str(cfg.path)
    assert main(["--config", p, "outbox", "drop", str(alert["id"])]) == 0

    def target_problems() -> list[str]:
        return [x for x in collect_status(cfg)["problems"] if x.startswith("target mail:")]

    (before,) = target_problems()
    assert main(["--config", p, "test-notify", "--target", "mail"]) == 1
    (failed,) = target_problems()
    n_before = int(before.split("last ")[1].split()[0])
    assert f"last {n_before + 1} attempts failed" in failed and "FAILURE" in failed, failed
    relay.start()
    try:
        assert main(["--config", p, "test-notify", "--target", "mail"]) == 0
        wait_for(lambda: len(relay.messages) == 1, what="the test email")
    finally:
        relay.stop()
    capsys.readouterr()
    st = collect_status(cfg)
    assert target_problems() == [] and st["healthy"] is True, st["problems"]
