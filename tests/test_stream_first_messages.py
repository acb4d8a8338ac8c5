"""A recipient's first message of an episode reads as its opening. Week by week through
the real episode rules, decide and outbox on a real store, sent to real SMTP servers
(aiosmtpd) and a Teams workflow stand-in: a target whose opening expired on a dead
relay, or that a route by severity adds only at the escalation, gets the escalation as
the episode's opening (its title and body, no "more than last told", a thread of its
own), while a target that had the opening gets "Forverring" replying to it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.alerting_env import finding, judge_period, make_config, seed_series, target
from tests.servers import SmtpServer, _Handler, wait_for
from warnd.alerting import outbox
from warnd.store import Store

D0 = date(2026, 7, 6)
#: Tuesday noon in Oslo
T0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
OPENING = "Liten økning: ketamin — 1 kilde"
FIRST = "Sterk økning: ketamin — 2 kilder"
GREW = "Mer enn sist varslet"


def _lab(w: int, **kw):
    return finding("lab", detected=D0 + timedelta(weeks=w), **kw)


def _rise(cfg, store, now: datetime, *, send_opening: bool = False) -> tuple[dict, dict]:
    """The lab's small rise (week 0, an opening), then customs agrees (week 1, an
    escalation to a strong increase); nothing sent, or only the opening when it is
    decided (``send_opening``)."""
    for s in ("lab", "customs"):
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=now)
    if send_opening:
        outbox.dispatch_pending(cfg, store, now=now)
    (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                          {"lab": [_lab(1)], "customs": [finding("customs")]},
                          now=now + timedelta(weeks=1))
    assert (opening["decision"], esc["decision"]) == ("open", "escalate")
    return opening, esc


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _thread(msg) -> tuple[str | None, str | None]:
    return msg["In-Reply-To"], msg["References"]


class _DeferFirst(_Handler):
    """A relay that defers (451) the first attempt of each subject in ``defer``, keeping
    every message it read, so a retry is seen as sent twice; with ``drop``, it closes
    the connection instead of answering, the message read: the sender cannot tell
    whether it was taken."""

    def __init__(self, *defer: str, drop: bool = False) -> None:
        super().__init__()
        self.defer = set(defer)
        self.drop = drop
        self.seen: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.seen.append(msg)
            if msg["Subject"] in self.defer:
                self.defer.discard(msg["Subject"])
                if self.drop:
                    server.transport.close()
                return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


def test_an_opening_expired_on_a_dead_relay_the_escalation_reads_as_the_opening(
        tmp_path, smtp_server):
    """The mail relay is dead when the lab's rise opens; the opening expires
    (``expire_after``). The relay is back, customs agrees: the mail target's escalation
    is the first message of the episode it gets and reads as its opening, "Sterk
    økning: ketamin — 2 kilder" with no "Mer enn sist varslet", starting a thread; the
    end replies to it. The ops target, which had the opening, gets "Forverring: …" with
    what grew, replying to the opening. The relay drops the connection on the
    escalation's first attempt, after reading it (it may have reached mail), and
    meanwhile an operator re-queues the expired opening, which goes first: the retry
    reads as the first attempt did (same subject, Message-ID and no thread), as
    recorded before its first send. Before, the mail target got "Forverring: Sterk
    økning: ketamin — 2 kilder", "Mer enn sist varslet: 2 kilder (før 1) …", replying
    to an opening it never had."""
    relay = SmtpServer()  # not started: nothing listens on its port
    relay.handler = _DeferFirst(FIRST, drop=True)
    cfg, store, opening, esc = _opening_expired(tmp_path, relay, smtp_server)
    relay.start()
    try:
        week = T0 + timedelta(weeks=1)
        counts = outbox.dispatch_pending(cfg, store, now=week)
        assert (counts["delivered"], counts["retrying"]) == (1, 1)  # ops; mail dropped
        assert outbox.retry_delivery(store, opening["id"], "mail", now=week) == 1
        assert outbox.dispatch_pending(cfg, store, now=week + timedelta(minutes=2))[
            "delivered"] == 2
        for k in range(2, 9):  # the rise ends
            now = T0 + timedelta(weeks=k)
            judge_period(cfg, store, D0 + timedelta(weeks=k), {}, now=now)
            outbox.dispatch_pending(cfg, store, now=now)
        wait_for(lambda: len(relay.messages) == 3 and len(smtp_server.messages) == 3,
                 what="three emails to each")
        first, late_opening, retry, _end = relay.handler.seen
        assert (first["Subject"], retry["Subject"]) == (FIRST, FIRST)
        assert GREW not in _text(first) and _text(first) == _text(retry)
        assert _thread(first) == _thread(retry) == (None, None)
        assert first["Message-ID"] == retry["Message-ID"]
        assert late_opening["Subject"] == OPENING
        end = relay.messages[-1]
        assert end["Subject"].startswith("Avsluttet: ")
        assert _thread(end) == (first["Message-ID"], first["Message-ID"])

        ops_opening, ops_esc, ops_end = smtp_server.messages
        assert ops_opening["Subject"] == OPENING
        assert ops_esc["Subject"] == "Forverring: " + FIRST
        assert "Mer enn sist varslet: 2 kilder (før 1)" in _text(ops_esc)
        assert _thread(ops_esc) == _thread(ops_end) == (ops_opening["Message-ID"],) * 2
        assert store.q("SELECT target, opens FROM deliveries WHERE alert_id=? ORDER BY target",
                       [esc["id"]]) == [{"target": "mail", "opens": 1},
                                        {"target": "ops", "opens": 0}]
    finally:
        relay.stop()
        store.close()


def test_a_desk_routed_warnings_only_gets_the_escalation_as_the_opening(
        tmp_path, smtp_server, teams_server):
    """The desk (email) and its Teams channel are routed warnings and above, everyone
    (ops) everything. The lab's small rise is ``info``: ops alone gets it. Customs
    agrees, a strong increase (``warning``): the desk's email and card read as the
    episode's opening — title, no "more than last told", no thread (no
    ``warnd_thread_id``) — while ops gets "Forverring" replying to its opening. A
    reminder four weeks on is the desk's second message: "Påminnelse", replying to the
    escalation it had. Before, the desk's first message was "Forverring: …", "Mer enn
    sist varslet: 2 kilder (før 1)" about a message sent only to others."""
    cfg = make_config(
        tmp_path, target("desk", smtp_server.url("desk@example.org"), '"warn"')
        + target("teams", teams_server.url(), '"warn"')
        + target("ops", smtp_server.url("ops@example.org")),
        '\n[[routes]]\nmin_severity = "warning"\ntargets = ["warn"]\n'
        '\n[[routes]]\ntargets = ["ops"]\n'
        "\n[alerting]\nchart = false\n\n[detection]\nrepeat_after_periods = 4\n")
    store = Store.in_dir(cfg.state_dir)
    opening, esc = _rise(cfg, store, T0, send_opening=True)
    assert (opening["targets"], sorted(esc["targets"])) == (["ops"], ["desk", "ops", "teams"])
    outbox.dispatch_pending(cfg, store, now=T0 + timedelta(weeks=1))
    reminders = []
    for k in range(2, 6):
        now = T0 + timedelta(weeks=k)
        reminders += judge_period(cfg, store, D0 + timedelta(weeks=k),
                                  {"lab": [_lab(k)], "customs": [finding(
                                      "customs", detected=D0 + timedelta(weeks=k))]}, now=now)
        outbox.dispatch_pending(cfg, store, now=now)
    assert [a["decision"] for a in reminders] == ["repeat"]
    wait_for(lambda: len(smtp_server.messages) == 5 and len(teams_server.payloads()) == 2,
             what="five emails and two cards")
    by = {}
    for m in smtp_server.messages:
        by.setdefault(m["To"], []).append(m)
    desk_first, desk_reminder = by["desk@example.org"]
    assert desk_first["Subject"] == FIRST and GREW not in _text(desk_first)
    assert _thread(desk_first) == (None, None)
    assert desk_reminder["Subject"] == "Påminnelse: " + FIRST
    assert _thread(desk_reminder) == (desk_first["Message-ID"],) * 2
    ops_opening, ops_esc, ops_reminder = by["ops@example.org"]
    assert ops_opening["Subject"] == OPENING
    assert ops_esc["Subject"] == "Forverring: " + FIRST and GREW in _text(ops_esc)
    assert _thread(ops_esc) == _thread(ops_reminder) == (ops_opening["Message-ID"],) * 2

    first_card, reminder_card = teams_server.payloads()
    content = first_card["attachments"][0]["content"]
    assert content["body"][0]["inlines"][0]["text"] == FIRST
    assert GREW not in json.dumps(content, ensure_ascii=False)
    assert "warnd_thread_id" not in first_card
    assert reminder_card["warnd_thread_id"] == first_card["warnd_message_id"]
    store.close()


def _digest_text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _card_text(payload) -> str:
    return json.dumps(payload["attachments"][0]["content"], ensure_ascii=False)


def test_a_desk_s_digest_lists_the_escalation_it_had_as_its_opening(
        tmp_path, smtp_server, teams_server, capsys):
    """As above, the desk (email and Teams) is routed warnings and above and ops
    everything; a daily digest at 08:00 goes to all three. The lab's small rise goes to
    ops alone; a week later customs agrees and the desk gets the escalation as the
    episode's opening. The next morning's digest lists that alert, for the desk's email
    and card, under the title the desk got ("Sterk økning: ketamin — 2 kilder"), and for
    ops as decided ("Forverring: …"); `warnd digest --json` keeps the stored title and
    says for whom it read as the opening, under which title. Before, every digest listed
    "Forverring: Sterk økning: …", naming to the desk a message it never had."""
    from warnd.cli import main

    cfg = make_config(
        tmp_path, target("desk", smtp_server.url("desk@example.org"), '"warn"')
        + target("teams", teams_server.url(), '"warn"')
        + target("ops", smtp_server.url("ops@example.org")),
        '\n[[routes]]\nmin_severity = "warning"\ntargets = ["warn"]\n'
        '\n[[routes]]\ntargets = ["ops"]\n\n[alerting]\nchart = false\n'
        '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\n'
        'targets = ["desk", "teams", "ops"]\n')
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    outbox.dispatch_pending(cfg, store, now=T0)  # running since: digests from now on
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1  # ops
    week = T0 + timedelta(weeks=1)
    # Tuesday's digest, listing the opening
    assert outbox.dispatch_pending(cfg, store, now=week - timedelta(hours=1))["delivered"] == 3
    (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                          {"lab": [_lab(1)], "customs": [finding("customs")]}, now=week)
    assert sorted(esc["targets"]) == ["desk", "ops", "teams"]
    assert outbox.dispatch_pending(cfg, store, now=week)["delivered"] == 3
    morning = week + timedelta(hours=20)  # Wednesday 08:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=morning)["delivered"] == 3
    wait_for(lambda: len(smtp_server.messages) == 7 and len(teams_server.payloads()) == 3,
             what="seven emails and three cards")
    by = {}
    for m in smtp_server.messages:
        by.setdefault(m["To"], []).append(m)
    listed = f"#{esc['id']} {iso_day(week)} "
    desk_digest = _digest_text(by["desk@example.org"][-1])
    assert listed + FIRST in desk_digest and "Forverring" not in desk_digest
    card = _card_text(teams_server.payloads()[-1])
    assert listed + FIRST in card and "Forverring" not in card
    ops_digest = _digest_text(by["ops@example.org"][-1])
    assert listed + "Forverring: " + FIRST in ops_digest

    stored = store.q("SELECT data FROM alerts WHERE kind='digest' ORDER BY id")[-1]
    (entry,) = json.loads(stored["data"])["changed"]
    assert entry["title"] == "Forverring: " + FIRST
    assert (entry["opened_for"], entry["opening_title"]) == (["desk", "teams"], FIRST)
    store.close()
    assert main(["--config", str(tmp_path / "config.toml"), "digest", "--end",
                 iso_day(week), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(a["id"], a["title"], a["opened_for"], a["opening_title"])
            for a in printed["changed"]] == [
        (esc["id"], "Forverring: " + FIRST, ["desk", "teams"], FIRST)]
    # the day of the opening: a digest printed by hand for a time before any digest
    # covers one schedule period, as the first one sent does
    assert main(["--config", str(tmp_path / "config.toml"), "digest", "--end",
                 iso_day(T0), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(a["id"], a["title"], a["opened_for"], a["opening_title"])
            for a in printed["changed"]] == [(opening["id"], OPENING, [], None)]


def iso_day(t: datetime) -> str:
    return t.date().isoformat()


def test_an_escalation_held_by_quiet_hours_is_listed_as_the_opening_by_the_digest_beside_it(
        tmp_path, smtp_server):
    """Quiet hours 17:00–08:00, a daily digest at 08:00 to the desk (routed warnings and
    above) and ops. Customs agrees on Tuesday evening: the escalation waits for the end
    of the quiet hours and goes at 08:00 in the same dispatch as the digest, which was
    built while it still waited, before anything told whether it reads as the desk's
    opening. That is told when it goes, before the digest to the desk goes: the desk's
    digest lists it under the title the desk got, ops's as "Forverring: …"."""
    cfg = make_config(
        tmp_path, target("desk", smtp_server.url("desk@example.org"), '"warn"')
        + target("ops", smtp_server.url("ops@example.org")),
        '\n[[routes]]\nmin_severity = "warning"\ntargets = ["warn"]\n'
        '\n[[routes]]\ntargets = ["ops"]\n'
        '\n[alerting]\nchart = false\nquiet_hours = "17:00-08:00"\n'
        '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\ntargets = ["desk", "ops"]\n')
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    outbox.dispatch_pending(cfg, store, now=T0)  # running since: digests from now on
    judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]}, now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1  # ops
    evening = T0 + timedelta(weeks=1, hours=8)  # Tuesday 20:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=evening - timedelta(hours=1))[
        "delivered"] == 2  # Tuesday's digests
    (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                          {"lab": [_lab(1)], "customs": [finding("customs")]}, now=evening)
    assert outbox.dispatch_pending(cfg, store, now=evening)["delivered"] == 0  # quiet
    morning = evening + timedelta(hours=12)  # Wednesday 08:00
    assert outbox.dispatch_pending(cfg, store, now=morning)["delivered"] == 4
    wait_for(lambda: len(smtp_server.messages) == 7, what="seven emails")
    by = {}
    for m in smtp_server.messages:
        by.setdefault(m["To"], []).append(m)
    desk_esc, desk_digest = by["desk@example.org"][-2:]
    assert desk_esc["Subject"] == FIRST and desk_digest["Subject"].startswith("Dagsoversikt")
    listed = f"#{esc['id']} {iso_day(evening)} "
    text = _digest_text(desk_digest)
    assert listed + FIRST in text and "Forverring" not in text
    ops_esc, ops_digest = by["ops@example.org"][-2:]
    assert ops_esc["Subject"] == "Forverring: " + FIRST
    assert listed + "Forverring: " + FIRST in _digest_text(ops_digest)
    store.close()


def test_an_expired_opening_is_not_queued_again_after_the_escalation_read_as_it(
        tmp_path, smtp_server):
    """The mail relay is dead when the lab's rise opens, and the opening to mail expires.
    The relay is back; customs agrees, and mail gets the escalation as the episode's
    opening ("Sterk økning: ketamin — 2 kilder"). An operator then queues the expired
    opening again, from the command line and from the console: it is not queued, and
    both say why (mail has had the later alert since) and what to do. Before, it was
    sent: mail got a second, older opening, "Liten økning: ketamin — 1 kilde", after
    the strong increase, as if a new, smaller rise had begun."""
    from tests.servers import free_port
    from tests.test_web_sessions import _csrf, _login
    from tests.webkit import Console, warnd
    from warnd.cli import main

    relay = SmtpServer()  # not started: nothing listens on its port
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nchart = false\n'
                      "\n[web]\nsecure_cookies = false\n")
    store = Store.in_dir(cfg.state_dir)
    console = web = None
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                                  now=T0)
        assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1  # ops
        assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(hours=2))["expired"] == 1
        relay.start()
        week = T0 + timedelta(weeks=1)
        (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                              {"lab": [_lab(1)], "customs": [finding("customs")]}, now=week)
        assert outbox.dispatch_pending(cfg, store, now=week)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 1, what="the escalation to mail")
        assert relay.messages[0]["Subject"] == FIRST  # read as mail's opening

        conf = ["--config", str(cfg.path)]
        assert main([*conf, "outbox", "retry", str(opening["id"])]) == 1
        assert outbox.superseded(store, opening["id"]) == {"mail": esc["id"]}
        assert main([*conf, "outbox", "retry", str(opening["id"]), "--target", "mail"]) == 1
        r = warnd(cfg.path, cfg.state_dir, "outbox", "retry", str(opening["id"]))
        assert r.returncode == 1
        assert (f"alert {opening['id']} to mail not queued again: mail has had a later "
                f"message on the same matter since (alert {esc['id']})") in r.stderr
        assert f"warnd outbox drop {opening['id']} --target mail" in r.stderr

        r = warnd(cfg.path, cfg.state_dir, "user", "add", "ola", "--role", "operator",
                  "--password-stdin", stdin="operator-pass-1\n")
        assert r.returncode == 0, r.stderr
        console = Console(cfg.path, cfg.state_dir, free_port()).start()
        web = _login(console, ("ola", "operator-pass-1"))
        page = web.post(f"/outbox/{opening['id']}/mail/retry",
                        data={"csrf": _csrf(web.get("/outbox").text)})
        assert page.status_code == 409
        assert f"varsel #{esc['id']}" in page.text and "Forkast" in page.text

        later = week + timedelta(minutes=5)
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 0
        assert [m["Subject"] for m in relay.messages] == [FIRST]  # no second, older opening
        assert store.q("SELECT status FROM deliveries WHERE alert_id=? AND target='mail'",
                       [opening["id"]]) == [{"status": "expired"}]
        # dropping it stays possible, as the message says
        assert main([*conf, "outbox", "drop", str(opening["id"]), "--target", "mail"]) == 0
    finally:
        if web is not None:
            web.close()
        if console is not None:
            console.stop()
        relay.stop()
        store.close()


def _opening_expired(tmp_path, relay: SmtpServer, ops: SmtpServer):
    """The lab's opening, while the mail relay is dead: it expires for mail, ops has it.
    A week later customs agrees: the escalation, not sent yet. Config, store, opening
    and escalation."""
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", ops.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nsend_resolved = true\n'
                      "chart = false\n")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1  # ops
    assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(hours=2))["expired"] == 1
    (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                          {"lab": [_lab(1)], "customs": [finding("customs")]},
                          now=T0 + timedelta(weeks=1))
    assert esc["decision"] == "escalate"
    return cfg, store, opening, esc


def _both_expired(tmp_path, relay: SmtpServer, ops: SmtpServer):
    """The mail relay is dead for the lab's opening and customs' escalation: both expire
    for mail (the escalation, first tried after the opening was given up, recorded as
    mail's opening), while ops has each. Config, store, opening, escalation and the time
    the escalation expired."""
    cfg, store, opening, esc = _opening_expired(tmp_path, relay, ops)
    for when in (T0 + timedelta(weeks=1), T0 + timedelta(weeks=1, hours=2)):
        outbox.dispatch_pending(cfg, store, now=when)
    assert store.q("SELECT alert_id, status, opens FROM deliveries WHERE target='mail' "
                   "ORDER BY alert_id") == [
        {"alert_id": opening["id"], "status": "expired", "opens": None},
        {"alert_id": esc["id"], "status": "expired", "opens": 1}]
    return cfg, store, opening, esc, T0 + timedelta(weeks=1, hours=2)


def _to_the_end(cfg, store) -> None:
    """Weeks without a finding until the rise ends, the outbox sent each week."""
    for k in range(2, 9):
        now = T0 + timedelta(weeks=k)
        judge_period(cfg, store, D0 + timedelta(weeks=k), {}, now=now)
        outbox.dispatch_pending(cfg, store, now=now)


@pytest.mark.parametrize("order", ["opening first", "escalation first"])
def test_an_opening_and_its_escalation_queued_again_go_as_opening_and_escalation(
        tmp_path, smtp_server, order):
    """The mail relay is dead while the lab's rise opens and customs agrees: the opening
    and the escalation (read as mail's opening when first tried, the opening given up)
    both expire, each attempt refused. The relay is repaired; an operator queues both
    again, in either order, and the service restarts before the next dispatch. Mail
    gets the opening, then the escalation as decided ("Forverring: …", "Mer enn sist
    varslet: 2 kilder (før 1)") replying to the opening, as if both had gone in order
    the first time; the end replies to the opening and tells the rise
    as mail had it, as ops is told it. Before, mail got the escalation as a second
    opening ("Sterk økning: ketamin — 2 kilder", a thread of its own)."""
    relay = SmtpServer()  # not started: nothing listens on its port
    cfg, store, opening, esc, expired_at = _both_expired(tmp_path, relay, smtp_server)
    relay.start()
    try:
        later = expired_at + timedelta(hours=1)
        ids = [opening["id"], esc["id"]]
        for aid in ids if order == "opening first" else ids[::-1]:
            assert outbox.retry_delivery(store, aid, now=later) == 1
        store.close()  # a restart before the next dispatch
        store = Store.in_dir(cfg.state_dir)
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to mail")
        first, then = relay.messages
        assert first["Subject"] == OPENING and _thread(first) == (None, None)
        assert then["Subject"] == "Forverring: " + FIRST
        assert "Mer enn sist varslet: 2 kilder (før 1)" in _text(then)
        assert _thread(then) == (first["Message-ID"],) * 2

        _to_the_end(cfg, store)
        wait_for(lambda: len(relay.messages) == 3 and len(smtp_server.messages) == 3,
                 what="three emails to each")
        end = relay.messages[-1]
        ops_opening, _, ops_end = smtp_server.messages
        assert end["Subject"] == ops_end["Subject"] == "Avsluttet: " + FIRST
        assert _thread(end) == (first["Message-ID"],) * 2
        assert _thread(ops_end) == (ops_opening["Message-ID"],) * 2
        assert _text(end) == _text(ops_end)
    finally:
        relay.stop()
        store.close()


def test_an_escalation_refused_once_goes_as_decided_after_its_opening_queued_again(
        tmp_path, smtp_server):
    """The opening to mail expired on a dead relay. The relay is back and defers (451)
    the escalation's first attempt, which read as mail's opening; an operator then
    queues the opening again. The relay refused that attempt, so it never reached mail:
    mail gets the opening, then the escalation as decided ("Forverring: …", with what
    grew), replying to it. Before, the retry went as a second opening, a thread of its
    own, as recorded at the refused attempt."""
    relay = SmtpServer()  # not started: nothing listens on its port
    relay.handler = _DeferFirst(FIRST)
    cfg, store, opening, esc = _opening_expired(tmp_path, relay, smtp_server)
    relay.start()
    try:
        week = T0 + timedelta(weeks=1)
        counts = outbox.dispatch_pending(cfg, store, now=week)
        assert (counts["delivered"], counts["retrying"]) == (1, 1)  # ops; mail deferred
        assert outbox.retry_delivery(store, opening["id"], "mail", now=week) == 1
        assert outbox.dispatch_pending(cfg, store, now=week + timedelta(minutes=2))[
            "delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to mail")
        refused, first, then = relay.handler.seen
        assert refused["Subject"] == FIRST  # as first tried, not taken
        assert first["Subject"] == OPENING and _thread(first) == (None, None)
        assert then["Subject"] == "Forverring: " + FIRST and GREW in _text(then)
        assert _thread(then) == (first["Message-ID"],) * 2
        assert store.q("SELECT opens FROM deliveries WHERE alert_id=? AND target='mail'",
                       [esc["id"]]) == [{"opens": 0}]
    finally:
        relay.stop()
        store.close()


def test_an_escalation_that_may_have_reached_the_target_keeps_its_opening_when_queued_again(
        tmp_path, smtp_server):
    """As above, but the relay drops the connection after reading the escalation's first
    attempt (it may have reached mail), then dies until the escalation expires, its
    later attempts refused. An operator queues the opening and the escalation again:
    mail gets the opening, then the escalation as first tried, its opening (same
    subject, text, Message-ID, no thread): a second version under the same Message-ID
    could contradict the one mail may hold."""
    relay = SmtpServer()  # not started: nothing listens on its port
    relay.handler = _DeferFirst(FIRST, drop=True)
    cfg, store, opening, esc = _opening_expired(tmp_path, relay, smtp_server)
    relay.start()
    try:
        week = T0 + timedelta(weeks=1)
        assert outbox.dispatch_pending(cfg, store, now=week)["retrying"] == 1  # dropped
        relay.stop()
        assert outbox.dispatch_pending(cfg, store, now=week + timedelta(hours=2))[
            "expired"] == 1  # refused
        relay.start()
        later = week + timedelta(hours=3)
        for aid in (opening["id"], esc["id"]):
            assert outbox.retry_delivery(store, aid, "mail", now=later) == 1
        assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 2
        wait_for(lambda: len(relay.messages) == 2, what="two emails to mail")
        maybe, first, again = relay.handler.seen
        assert first["Subject"] == OPENING
        assert (maybe["Subject"], again["Subject"]) == (FIRST, FIRST)
        assert _text(maybe) == _text(again) and GREW not in _text(again)
        assert maybe["Message-ID"] == again["Message-ID"]
        assert _thread(again) == (None, None)
    finally:
        relay.stop()
        store.close()


def _opening_held_by_silence(cfg, store, *, maybe_sent: int | None,
                             seeded=("lab", "customs")) -> dict:
    """The lab's opening: its first attempt fails (the relay's handler says how) and a
    retry is due (with ``maybe_sent``, as recorded for it); before the retry a silence
    of ketamin begins, and the retry is held back. The opening."""
    from warnd.alerting import actions

    for s in seeded:
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["retrying"] == 1
    if maybe_sent is not None:
        assert store.q("SELECT maybe_sent FROM deliveries WHERE alert_id=?",
                       [opening["id"]]) == [{"maybe_sent": maybe_sent}]
    actions.add_silence(store, substance="ketamin", reason="x", who="kari", via="cli",
                        until=T0 + timedelta(days=3), now=T0 + timedelta(seconds=1))
    assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(hours=1))[
        "silenced"] == 1
    return opening


def test_an_opening_that_may_have_reached_its_target_silenced_while_retried_is_not_told_again(
        tmp_path):
    """The relay reads the lab's opening and drops the connection before it answers: it
    may have reached mail, and a retry is due. Before the retry a silence of ketamin
    begins; the retry is held back. A week later the silence has ended and customs
    agrees: mail gets "Forverring: …" with what grew, replying to the opening, not the
    rise again as an opening of a new thread. Before, the rise counted as told to
    nobody, and mail got a second opening, "Sterk økning: ketamin — 2 kilder"."""
    relay = SmtpServer()
    relay.handler = _DeferFirst(OPENING, drop=True)
    relay.start()
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org")),
                      '\n[alerting]\nchart = false\n')
    store = Store.in_dir(cfg.state_dir)
    try:
        opening = _opening_held_by_silence(cfg, store, maybe_sent=1)
        assert store.q("SELECT status FROM alerts WHERE id=?", [opening["id"]]) == [
            {"status": "open"}]  # it may have reached mail: to be acknowledged
        (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                              {"lab": [_lab(1)], "customs": [finding("customs")]},
                              now=T0 + timedelta(weeks=1))
        assert esc["decision"] == "escalate"
        assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(weeks=1))[
            "delivered"] == 1
        wait_for(lambda: len(relay.handler.seen) == 2, what="the escalation")
        first, later = relay.handler.seen
        assert first["Subject"] == OPENING
        assert later["Subject"] == "Forverring: " + FIRST
        assert "Mer enn sist varslet: 2 kilder (før 1)" in _text(later)
        assert _thread(later) == (first["Message-ID"], first["Message-ID"])
    finally:
        relay.stop()
        store.close()


def test_the_end_of_a_rise_whose_opening_may_have_reached_its_target_before_a_silence(
        tmp_path):
    """As above, the relay reads the opening and drops the connection, and a silence
    holds the retry back; nothing grows after it, and the rise ends: mail, which may have
    had the opening, is told the end, replying to it, and no opening after the silence.
    Before, the rise was told again as an opening after the silence (a second one, of a
    thread of its own), and its end replied to that one."""
    relay = SmtpServer()
    relay.handler = _DeferFirst(OPENING, drop=True)
    relay.start()
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org")),
                      '\n[alerting]\nsend_resolved = true\nchart = false\n')
    store = Store.in_dir(cfg.state_dir)
    try:
        _opening_held_by_silence(cfg, store, maybe_sent=None, seeded=("lab",))
        _to_the_end(cfg, store)
        assert [a["decision"] for a in store.q("SELECT decision FROM alerts ORDER BY id")] \
            == ["open", "resolve"]
        wait_for(lambda: len(relay.handler.seen) == 2, what="the end")
        first, end = relay.handler.seen
        assert first["Subject"] == OPENING
        assert end["Subject"].startswith("Avsluttet: ")
        assert _thread(end) == (first["Message-ID"], first["Message-ID"])
    finally:
        relay.stop()
        store.close()


def test_an_opening_refused_before_a_silence_is_told_after_it_as_the_opening(tmp_path):
    """The relay defers the lab's opening (451: it did not take it), and a silence holds
    the retry back: mail never had it, so after the silence the rise, customs agreeing,
    is told to it as the episode's opening, "Sterk økning: ketamin — 2 kilder", starting
    a thread, with no "Mer enn sist varslet"."""
    relay = SmtpServer()
    relay.handler = _DeferFirst(OPENING)
    relay.start()
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org")),
                      '\n[alerting]\nchart = false\n')
    store = Store.in_dir(cfg.state_dir)
    try:
        _opening_held_by_silence(cfg, store, maybe_sent=0)
        (again,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                                {"lab": [_lab(1)], "customs": [finding("customs")]},
                                now=T0 + timedelta(weeks=1))
        assert again["decision"] == "open"
        assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(weeks=1))[
            "delivered"] == 1
        wait_for(lambda: len(relay.messages) == 1, what="the opening")
        (told,) = relay.messages
        assert told["Subject"] == FIRST and GREW not in _text(told)
        assert _thread(told) == (None, None)
    finally:
        relay.stop()
        store.close()


def test_an_escalation_says_what_grew_beyond_what_its_target_was_told(
        tmp_path, smtp_server, teams_server):
    """The lab's small rise opens (to mail and Teams); customs agrees (a first
    escalation, two sources), which an operator drops for mail before it goes; both
    rise strongly the week after (a second escalation). Teams, which had the first
    escalation, reads what grew beyond it: a strong increase, the larger change. Mail,
    whose last message was the opening, reads that beyond it: two sources (before one)
    too, in the opening's thread. Before, mail read what grew beyond the escalation it
    never had, and was not told that a second source agreed."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("teams", teams_server.url()), "\n[alerting]\nchart = false\n")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)

    def both(w: int, rel: float, category: int) -> dict:
        return {s: [finding(s, detected=D0 + timedelta(weeks=w), rel=rel, category=category)]
                for s in ("lab", "customs")}

    weeks = [{"lab": [_lab(0, rel=0.5, category=1)]}, both(1, 0.5, 1), both(2, 1.8, 2)]
    for k, per in enumerate(weeks):
        now = T0 + timedelta(weeks=k)
        (alert,) = judge_period(cfg, store, D0 + timedelta(weeks=k), per, now=now)
        assert alert["decision"] == ("open", "escalate", "escalate")[k]
        if k == 1:
            assert outbox.drop_delivery(store, alert["id"], "mail", now=now) == 1
        outbox.dispatch_pending(cfg, store, now=now)
    wait_for(lambda: len(smtp_server.messages) == 2 and len(teams_server.payloads()) == 3,
             what="two emails and three cards")
    opening, later = smtp_server.messages
    assert later["Subject"] == "Forverring: " + FIRST
    assert _thread(later) == (opening["Message-ID"], opening["Message-ID"])
    strong = "sterk økning (før liten økning); største endring +180 % (før +50 %)."
    for body in (_text(later), later.get_body(("html",)).get_content()):
        assert f"{GREW}: 2 kilder (før 1); {strong}" in " ".join(body.split())
    cards = [json.dumps(c, ensure_ascii=False) for c in teams_server.payloads()]
    assert f"{GREW}: 2 kilder (før 1)." in cards[1]
    assert f"{GREW}: {strong}" in cards[2]
    store.close()
