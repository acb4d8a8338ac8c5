"""A recipient's first message of an episode reads as its opening. Week by week through
the real episode rules, decide and outbox on a real store, sent to real SMTP servers
(aiosmtpd) and a Teams workflow stand-in: a target whose opening expired on a dead
relay, or that a route by severity adds only at the escalation, gets the escalation as
the episode's opening (its title and body, no "more than last told", a thread of its
own), while a target that had the opening gets "Forverring" replying to it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

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


def _rise(cfg, store, now: datetime) -> tuple[dict, dict]:
    """The lab's small rise (week 0, an opening), then customs agrees (week 1, an
    escalation to a strong increase); nothing sent."""
    for s in ("lab", "customs"):
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=now)
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
    every message it read, so a retry is seen as sent twice."""

    def __init__(self, *defer: str) -> None:
        super().__init__()
        self.defer = set(defer)
        self.seen: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.seen.append(msg)
            if msg["Subject"] in self.defer:
                self.defer.discard(msg["Subject"])
                return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


def test_an_opening_expired_on_a_dead_relay_the_escalation_reads_as_the_opening(
        tmp_path, smtp_server):
    """The mail relay is dead when the lab's rise opens; the opening expires
    (``expire_after``). The relay is back, customs agrees: the mail target's escalation
    is the first message of the episode it gets and reads as its opening, "Sterk
    økning: ketamin — 2 kilder" with no "Mer enn sist varslet", starting a thread; the
    end replies to it. The ops target, which had the opening, gets "Forverring: …" with
    what grew, replying to the opening. The relay defers the escalation's first
    attempt, and meanwhile an operator re-queues the expired opening, which goes first:
    the retry reads as the first attempt did (same subject, Message-ID and no thread),
    as recorded before its first send. Before, the mail target got "Forverring: Sterk
    økning: ketamin — 2 kilder", "Mer enn sist varslet: 2 kilder (før 1) …", replying
    to an opening it never had."""
    relay = SmtpServer()  # not started: nothing listens on its port
    relay.handler = _DeferFirst(FIRST)
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nsend_resolved = true\n'
                      "chart = false\n")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1  # ops
    assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(hours=2))["expired"] == 1
    relay.start()
    try:
        week = T0 + timedelta(weeks=1)
        (esc,) = judge_period(cfg, store, D0 + timedelta(weeks=1),
                              {"lab": [_lab(1)], "customs": [finding("customs")]}, now=week)
        assert esc["decision"] == "escalate"
        counts = outbox.dispatch_pending(cfg, store, now=week)
        assert (counts["delivered"], counts["retrying"]) == (1, 1)  # ops; mail deferred
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
    opening, esc = _rise(cfg, store, T0)
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
