"""Email threads: the messages of one episode to a target read as one conversation.
Week by week through the real episode rules, decide and outbox on a real store, sent
to a real SMTP server (aiosmtpd), whose received headers are read: each later message
of an episode replies to the first one its target was sent (``In-Reply-To`` and
``References``), an opening starts a thread of its own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.alerting_env import finding, judge_period, make_config, seed_series, target
from tests.servers import SmtpServer, _Handler, wait_for
from warnd.alerting import decide, outbox
from warnd.alerting.send import message_id
from warnd.config import load_config
from warnd.store import Store

D0 = date(2026, 7, 6)
#: Tuesday noon in Oslo
T0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
#: (no charts: what is drawn is not the point, and they take time)
RESOLVED = "\n[alerting]\nsend_resolved = true\nchart = false\n"


def _thread(msg) -> tuple[str | None, str | None]:
    return msg["In-Reply-To"], msg["References"]


def _lab(w: int, **kw):
    return finding("lab", detected=D0 + timedelta(weeks=w), **kw)


def _weeks(cfg, store, weeks, *, start: int = 0) -> list[str]:
    """Week by week from week ``start``: ketamine's findings per source, judged and each
    week's messages sent; the decisions."""
    told = []
    for k, per in enumerate(weeks, start):
        now = T0 + timedelta(weeks=k)
        told += [a["decision"] for a in judge_period(cfg, store, D0 + timedelta(weeks=k),
                                                     per, now=now)]
        outbox.dispatch_pending(cfg, store, now=now)
    return told


def test_an_episodes_emails_reply_to_its_opening_and_the_next_episode_starts_anew(
        tmp_path, smtp_server):
    """The lab's rise opens, customs agrees (an escalation), a reminder four weeks on,
    the end; months later the lab rises again and that ends too. The escalation, the
    reminder and the end reply to the opening (``In-Reply-To`` and ``References``: its
    Message-ID); the second episode's opening replies to nothing, though its subject is
    the first opening's, and its end replies to it. Before, no email carried either
    header, and a client threading by subject put both episodes in one thread."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      RESOLVED + "\n[detection]\nrepeat_after_periods = 4\n")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    weeks = [{"lab": [_lab(w, rel=0.5, category=1)]} for w in range(2)]
    weeks += [{"lab": [_lab(w, rel=0.5, category=1)],
               "customs": [finding("customs", detected=D0 + timedelta(weeks=w))]}
              for w in range(2, 7)]
    weeks += [{}] * 20
    again = [{"lab": [_lab(w, rel=0.5, category=1, onset=D0 + timedelta(weeks=w - 2))]}
             for w in range(27, 29)]
    told = _weeks(cfg, store, weeks + again + [{}] * 6)
    assert told == ["open", "escalate", "repeat", "resolve", "open", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 6, what="six emails")
    msgs = smtp_server.messages
    opening, second = msgs[0], msgs[4]
    assert [m["Subject"].split(":")[0] for m in msgs[:4]] == [
        "Liten økning", "Forverring", "Påminnelse", "Avsluttet"]
    assert _thread(opening) == (None, None)
    for later in msgs[1:4]:
        assert _thread(later) == (opening["Message-ID"], opening["Message-ID"])
        assert len(later.get_all("In-Reply-To")) == len(later.get_all("References")) == 1
    assert second["Subject"] == opening["Subject"]
    assert _thread(second) == (None, None)
    assert _thread(msgs[5]) == (second["Message-ID"], second["Message-ID"])
    assert len({m["Message-ID"] for m in msgs}) == 6
    store.close()


def test_a_source_failure_and_its_recovery_are_one_thread(tmp_path, smtp_server,
                                                         teams_server):
    """The lab fails (told), recovers (told), fails again weeks later. The recovery
    replies to the failure that opened its episode, by email and, in the card, as
    ``warnd_thread_id``; the next failure starts a thread of its own."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("teams", teams_server.url()) + RESOLVED)
    store = Store.in_dir(cfg.state_dir)

    def poll(now, ok: bool) -> None:
        store.record_poll("lab", ok=ok, error=None if ok else "HTTP 503", now=now)
        decide.check_source_health(cfg, store, "lab", now=now)
        outbox.dispatch_pending(cfg, store, now=now)

    for k in range(3):
        poll(T0 + timedelta(minutes=k), ok=False)
    poll(T0 + timedelta(hours=1), ok=True)
    for k in range(3):
        poll(T0 + timedelta(weeks=3, minutes=k), ok=False)
    wait_for(lambda: len(smtp_server.messages) == 3 and len(teams_server.payloads()) == 3,
             what="three emails and three cards")
    failing, recovered, again = smtp_server.messages
    assert recovered["Subject"] == "Kilde i orden igjen: Lab"
    assert _thread(failing) == (None, None)
    assert _thread(recovered) == (failing["Message-ID"], failing["Message-ID"])
    assert _thread(again) == (None, None)
    cards = teams_server.payloads()
    assert "warnd_thread_id" not in cards[0] and "warnd_thread_id" not in cards[2]
    assert cards[1]["warnd_thread_id"] == cards[0]["warnd_message_id"]
    store.close()


def test_each_target_threads_from_the_first_message_it_was_sent(tmp_path, smtp_server):
    """Two targets: the desk had the opening, but an operator dropped it before it went
    out; the on-call desk was added to the config after the opening. For each, the
    escalation is the first message of the episode it gets: it reads as the opening
    (not "Forverring", no "more than last told"), starts its thread, and the end
    replies to it. Before, the desk's escalation read as one and replied to the opening
    it never had."""
    desk = target("desk", smtp_server.url("desk@example.org"))
    cfg = make_config(tmp_path, desk, RESOLVED)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    (opening,) = judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]},
                              now=T0)
    assert outbox.drop_delivery(store, opening["id"], now=T0) == 1
    path = tmp_path / "config.toml"
    path.write_text(path.read_text() + target("oncall", smtp_server.url("oncall@example.org")))
    cfg = load_config(path)
    both = {"lab": [_lab(1)], "customs": [finding("customs", detected=D0 + timedelta(weeks=1))]}
    told = _weeks(cfg, store, [both, {}, {}, {}, {}, {}, {}], start=1)
    assert told == ["escalate", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 4, what="four emails")
    for to in ("desk@example.org", "oncall@example.org"):
        first, end = [m for m in smtp_server.messages if m["To"] == to]
        assert first["Subject"] == "Sterk økning: ketamin — 2 kilder"
        assert "Mer enn sist varslet" not in first.get_body(("plain",)).get_content()
        assert _thread(first) == (None, None)
        assert end["Subject"].startswith("Avsluttet: ")
        assert _thread(end) == (first["Message-ID"], first["Message-ID"])
    store.close()


class _DeferOnce(_Handler):
    """A relay that keeps every message it reads and defers the ``n``-th (1-based) once
    (451), so a retry is seen as sent twice."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.seen: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        with self.lock:
            self.seen.append(message_from_bytes(envelope.content, policy=policy.default))
            if len(self.seen) == self.n:
                return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


def test_a_retried_email_keeps_its_thread(tmp_path):
    """The relay defers the escalation once; the retry a minute later carries the same
    Message-ID, In-Reply-To and References as the first attempt."""
    srv = SmtpServer()
    srv.handler = _DeferOnce(2)
    srv.start()
    try:
        cfg = make_config(tmp_path, target("mail", srv.url()), "\n[alerting]\nchart = false\n")
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        judge_period(cfg, store, D0, {"lab": [_lab(0, rel=0.5, category=1)]}, now=T0)
        assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1
        judge_period(cfg, store, D0 + timedelta(weeks=1),
                     {"lab": [_lab(1)], "customs": [finding("customs")]}, now=T0)
        assert outbox.dispatch_pending(cfg, store, now=T0)["retrying"] == 1
        assert outbox.dispatch_pending(cfg, store, now=T0 + timedelta(minutes=2))[
            "delivered"] == 1
        wait_for(lambda: len(srv.messages) == 2, what="two emails")
        opening, first, retry = srv.handler.seen
        assert retry["Subject"].startswith("Forverring")
        assert _thread(first) == (opening["Message-ID"], opening["Message-ID"])
        assert (first["Message-ID"], *_thread(first)) == (retry["Message-ID"], *_thread(retry))
        store.close()
    finally:
        srv.stop()


def test_a_thread_outlives_a_move_to_another_host(tmp_path, smtp_server, monkeypatch):
    """The lab's rise opens on host warnd-a; the store is moved to warnd-b (restored
    from a backup on a new machine, a container made again under another host name),
    where customs agrees (an escalation) and the rise ends. The escalation and the end
    reply to the opening as it was sent, and every Message-ID keeps the host part the
    store's first messages had. Before, they replied to
    ``<warnd.1.mail.…@warnd-b>``, a Message-ID no message had: the recipient's client
    showed them apart from the opening. (The host name is the one thing a test cannot
    change for real: ``socket.gethostname`` answers the moved machine's.)"""
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "warnd-a")
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), RESOLVED)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    assert _weeks(cfg, store, [{"lab": [_lab(0, rel=0.5, category=1)]}]) == ["open"]
    store.close()
    monkeypatch.setattr(socket, "gethostname", lambda: "warnd-b")
    store = Store.in_dir(cfg.state_dir)
    both = {"lab": [_lab(1)], "customs": [finding("customs", detected=D0 + timedelta(weeks=1))]}
    assert _weeks(cfg, store, [both] + [{}] * 6, start=1) == ["escalate", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 3, what="three emails")
    opening, *later = smtp_server.messages
    assert opening["Message-ID"].endswith("@warnd-a>")
    for msg in later:
        assert _thread(msg) == (opening["Message-ID"], opening["Message-ID"])
        assert msg["Message-ID"].endswith("@warnd-a>")
    store.close()
