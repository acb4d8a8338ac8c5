"""Delivery that cannot stall, lose or double: poisoned messages, stuck renders, claims,
store errors while recording, Retry-After, slow targets, removed targets, the
``warnd outbox`` actions and the health that tells when the outbox does not move."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from tests.alerting_env import finding, make_config, seed_series, target
from tests.servers import wait_for
from warnd.alerting import decide, outbox, render
from warnd.alerting.send import message_id
from warnd.cli import main
from warnd.service.health import collect_status
from warnd.store import Store

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # a Tuesday, working hours


def _notice(cfg, store, key: str, title: str, summary: str = "", *,
            now: datetime = NOW) -> int:
    src = SimpleNamespace(name="overdosefare", region="")
    item = SimpleNamespace(key=key, title=title, link="https://overdosefare.example/" + key,
                           published_at=now - timedelta(hours=1), region="", summary=summary)
    aid = decide.enqueue_notice(cfg, store, src, item, "ketamin", now=now)
    assert aid is not None
    return aid


def _trend(cfg, store, now=NOW):
    seed_series(store, "lab")
    return decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {}, now=now)


# -- 1. a poisoned message -------------------------------------------------------------
def test_card_shortening_ends_for_a_notice_whose_title_alone_is_too_big(tmp_path):
    """A summary over 200 characters and a title that alone exceeds the card limit:
    shortening must end (with a card under the limit), not spin."""
    cfg = make_config(tmp_path, target("teams", "workflows://h/a/b/"))
    data = {"substance": "ketamin", "label": "ketamin", "kind": "notice", "decision": "open",
            "severity": "warning", "source": "overdosefare",
            "notice": {"title": "Ø" * 40_000, "link": "https://x.example/" + "y" * 5000,
                       "published_at": "2026-07-06", "summary": "s" * 1000},
            "disagree": ["a", "b", "c", "d"]}  # four entries: "[:3] + …" must not repeat
    result: dict[str, object] = {}

    def build():
        try:
            result["card"] = render.teams_card(data, cfg, alert_id=7, title="T" * 40_000)
        except ValueError as e:
            result["error"] = e

    th = threading.Thread(target=build, daemon=True)
    th.start()
    th.join(30)
    assert not th.is_alive(), "teams_card did not terminate"
    card = result["card"]
    assert len(card.encode()) <= render.MAX_CARD_BYTES
    body = json.loads(card)["attachments"][0]["content"]["body"]
    assert body[0]["inlines"][0]["text"].endswith("…")


def test_poisoned_notice_does_not_stop_other_deliveries(tmp_path, teams_server, smtp_server):
    cfg = make_config(tmp_path, target("teams", teams_server.url())
                      + target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "poison", "Ø" * 40_000, "s" * 1000)
    _notice(cfg, store, "plain", "Falske piller med ketamin")
    counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert counts["delivered"] == 4, counts
    wait_for(lambda: len(teams_server.requests) == 2 and len(smtp_server.messages) == 2,
             what="both notices to both targets")
    assert all(len(r["body"]) < 28_000 for r in teams_server.requests)


def test_a_stuck_render_is_given_up_recorded_and_does_not_hold_back_others(
        tmp_path, smtp_server, teams_server, caplog):
    """A Teams template that takes far longer than render_timeout: that delivery fails
    with the reason and an ERROR; the email of the same alert goes out meanwhile."""
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    # many seconds of work, far beyond the 1 s limit (then it ends by itself)
    (tpl / "teams.json.j2").write_text(
        "{% for i in range(15000) %}{% for j in range(15000) %}{% endfor %}{% endfor %}"
        "{\"type\": \"message\"}")
    cfg = make_config(
        tmp_path, target("teams", teams_server.url()) + target("mail", smtp_server.url()),
        '\n[alerting]\ntemplates_dir = "tpl"\nrender_timeout = "2s"\nsend_timeout = "5s"\n'
        "chart = false\n")
    store = Store.in_dir(cfg.state_dir)
    [alert] = _trend(cfg, store)
    with caplog.at_level(logging.ERROR, logger="warnd.alerting"):
        counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert counts["delivered"] == 1 and counts["failed"] == 1, counts
    rows = {r["target"]: r for r in store.q("SELECT * FROM deliveries")}
    assert rows["mail"]["status"] == "delivered"
    assert rows["teams"]["status"] == "failed"
    assert "not built within 2 s" in rows["teams"]["last_error"]
    assert any("target=teams failed" in r.getMessage() for r in caplog.records)
    assert teams_server.requests == []
    st = collect_status(cfg, now=NOW)
    assert not st["healthy"] and any("failed deliveries" in p for p in st["problems"])
    # the operator re-queues it (after fixing the template it would go out)
    assert outbox.retry_delivery(store, alert["id"], "teams", now=NOW) == 1
    row = store.q("SELECT status, attempts FROM deliveries WHERE target='teams'")[0]
    assert row == {"status": "pending", "attempts": 0}


def test_unreadable_alert_data_becomes_a_failed_delivery(tmp_path, smtp_server, caplog):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    a = _notice(cfg, store, "n1", "Advarsel")
    b = _notice(cfg, store, "n2", "Advarsel to")
    with store.write() as db:
        db.execute("UPDATE alerts SET data='{not json' WHERE id=?", (a,))
    with caplog.at_level(logging.ERROR, logger="warnd.alerting"):
        counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert counts["failed"] == 1 and counts["delivered"] == 1
    rows = {r["alert_id"]: r for r in store.q("SELECT * FROM deliveries")}
    assert rows[a]["status"] == "failed" and "message not built" in rows[a]["last_error"]
    assert rows[b]["status"] == "delivered"
    assert any(f"alert={a}" in r.getMessage() for r in caplog.records)


# -- health goes red when the outbox does not move ---------------------------------------
def test_status_is_unhealthy_when_due_deliveries_make_no_progress(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "n1", "Advarsel")
    st = collect_status(cfg, now=NOW + timedelta(minutes=5))
    assert st["healthy"] and st["stalled_deliveries"] == 0
    later = NOW + timedelta(minutes=16)  # stall_after is 15 minutes
    st = collect_status(cfg, now=later)
    assert st["stalled_deliveries"] == 1 and not st["healthy"]
    assert any("no progress" in p for p in st["problems"])
    # a dispatch that runs makes it healthy again
    assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 1
    assert collect_status(cfg, now=later)["healthy"]


def test_watchdog_liveness_turns_false_while_the_outbox_is_stalled(tmp_path, smtp_server):
    from warnd.service.daemon import Daemon

    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "n1", "Advarsel")
    with store.write() as db:  # due an hour ago, never attempted
        db.execute("UPDATE deliveries SET next_attempt_at=?",
                   ((datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds"),))
    d = Daemon(cfg)
    d.schedule(cfg)
    d.scheduler.start(paused=True)
    try:
        d.last_heartbeat_at = d.last_loop_at = time.monotonic()
        assert d.liveness()["alive"] is True
        d.check_outbox_progress()
        live = d.liveness()
        assert live["alive"] is False and "outbox makes no progress" in live["reason"]
        d.dispatch_job()
        d.check_outbox_progress()
        assert d.liveness()["alive"] is True
    finally:
        d.scheduler.shutdown(wait=False)


# -- claims; each outcome recorded on its own -------------------------------------------
def test_a_claimed_delivery_is_not_sent_by_a_second_dispatcher(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    aid = _notice(cfg, store, "n1", "Advarsel")
    other = Store.in_dir(cfg.state_dir)
    assert other.claim_delivery(aid, "mail", owner="other:1", until=NOW + timedelta(minutes=10),
                                now=NOW)
    assert not store.claim_delivery(aid, "mail", owner="me", until=NOW + timedelta(minutes=10),
                                    now=NOW)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 0
    assert smtp_server.messages == []
    # once the claim expired, it is sent
    assert outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=11))["delivered"] == 1
    other.close()


def test_store_locked_while_recording_sends_nothing_twice(tmp_path, smtp_server):
    """The store is locked (another writer) right after the target accepted: that outcome
    is not recorded, the others are; nothing is sent again until the claim expires, and
    then with the same Message-ID."""
    from warnd.alerting.send import send as real_send

    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    setup = Store.in_dir(cfg.state_dir)
    ids = [_notice(cfg, setup, f"n{i}", f"Advarsel {i}") for i in range(3)]
    setup.close()
    store = Store(cfg.state_dir / "warnd.sqlite", timeout=0.3)
    blocker = sqlite3.connect(cfg.state_dir / "warnd.sqlite", timeout=5,
                              check_same_thread=False)
    calls = []

    def send_then_lock(url, **kw):
        r = real_send(url, **kw)
        calls.append(kw["title"])
        if len(calls) == 2:  # another process takes the write lock after this send
            blocker.execute("BEGIN IMMEDIATE")
        return r

    counts = outbox.dispatch_pending(cfg, store, now=NOW, send=send_then_lock)
    blocker.rollback()
    wait_for(lambda: len(smtp_server.messages) == 3, what="three emails")
    assert counts["delivered"] + counts["unrecorded"] == 3 and counts["unrecorded"] >= 1
    for k in range(1, 4):  # later rounds: nothing is sent again while the claim lives
        outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=k))
    assert len(smtp_server.messages) == 3
    # after the claim expired (10 minutes), the unrecorded ones go again: same Message-ID
    outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=11))
    n_again = counts["unrecorded"]
    wait_for(lambda: len(smtp_server.messages) == 3 + n_again, what="the resend")
    mids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(set(mids)) == 3
    assert store.q("SELECT DISTINCT status FROM deliveries") == [{"status": "delivered"}]
    assert sorted(r["alert_id"] for r in store.q("SELECT alert_id FROM deliveries")) == ids


# -- stable identity -------------------------------------------------------------------
def test_email_and_card_carry_the_stable_message_id(tmp_path, smtp_server, teams_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    aid = _notice(cfg, store, "n1", "Advarsel")
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 2
    wait_for(lambda: smtp_server.messages and teams_server.requests, what="both")
    row = store.q("SELECT dedupe_key, created_at FROM alerts WHERE id=?", [aid])[0]
    mail_id = message_id(aid, "mail", row["dedupe_key"], row["created_at"])
    assert smtp_server.messages[0]["Message-ID"] == mail_id
    assert len(smtp_server.messages[0].get_all("Message-ID")) == 1
    assert teams_server.payloads()[0]["warnd_message_id"] == message_id(
        aid, "teams", row["dedupe_key"], row["created_at"])


# -- Retry-After, slow targets, reasons ----------------------------------------------------
def test_retry_after_holds_every_delivery_of_that_target(tmp_path, teams_server, smtp_server):
    teams_server.status = 429
    teams_server.reply_headers = {"Retry-After": "7200"}
    cfg = make_config(tmp_path, target("teams", teams_server.url())
                      + target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for i in range(4):
        _notice(cfg, store, f"n{i}", f"Advarsel {i}")
    counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert len(teams_server.requests) == 1  # one post, then the target waits
    assert counts["delivered"] == 4 and counts["retrying"] == 1 and counts["held"] == 3
    rows = store.q("SELECT * FROM deliveries WHERE target='teams' ORDER BY alert_id")
    assert "HTTP 429 Too Many Requests (Retry-After 7200 s)" in rows[0]["last_error"]
    assert all(r["next_attempt_at"] == "2026-07-07T12:00:00+00:00" for r in rows)
    for minutes in (1, 30, 90, 119):  # no post before the two hours are over
        outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=minutes))
    assert len(teams_server.requests) == 1
    teams_server.status = 202
    teams_server.reply_headers = {}
    counts = outbox.dispatch_pending(cfg, store, now=NOW + timedelta(hours=2))
    assert counts["delivered"] == 4 and len(teams_server.requests) == 5
    st = collect_status(cfg, now=NOW + timedelta(hours=2))
    assert st["target_health"] == []


def test_slow_target_times_out_with_a_told_reason_and_is_failing_in_health(
        tmp_path, teams_server):
    teams_server.delay = 3.0
    cfg = make_config(tmp_path, target("teams", teams_server.url())
                      + '\nread_timeout = "1s"\n'
                      + '\n[alerting]\nfailing_after = 2\nretry_backoff = "1m"\n')
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "n1", "Advarsel")
    t = NOW
    for _ in range(2):
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(hours=1)
    row = store.q("SELECT * FROM deliveries")[0]
    assert row["status"] == "pending" and row["attempts"] == 2
    assert row["last_error"].startswith("FAILURE: timeout"), row["last_error"]
    st = collect_status(cfg, now=t)
    [th] = st["target_health"]
    assert th["target"] == "teams" and th["consecutive_failures"] == 2
    assert any("target teams: last 2 attempts failed: FAILURE: timeout" in p
               for p in st["problems"])
    # the timeout reaches apprise as the target's read timeout
    assert outbox.with_timeouts("json://h/", cfg.targets[0]).endswith("cto=10&rto=1")


# -- removed targets; warnd outbox -----------------------------------------------------------
def test_removed_target_keeps_its_deliveries_until_it_returns(tmp_path, smtp_server, capsys):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    aid = _notice(cfg, store, "n1", "Advarsel")
    renamed = make_config(tmp_path, target("mail2", smtp_server.url()))
    counts = outbox.dispatch_pending(renamed, store, now=NOW)
    assert counts["held"] == 1 and counts["failed"] == 0
    row = store.q("SELECT status, attempts, last_error FROM deliveries")[0]
    assert row["status"] == "pending" and row["attempts"] == 0
    assert 'target "mail" is not configured' in row["last_error"]
    st = collect_status(renamed, now=NOW)
    assert st["unconfigured_targets"] == [{"target": "mail", "n": 1}]
    assert st["stalled_deliveries"] == 0
    # days later (beyond expire_after) it is still kept
    outbox.dispatch_pending(renamed, store, now=NOW + timedelta(days=3))
    assert store.q("SELECT status FROM deliveries")[0]["status"] == "pending"
    # the target is back: delivered
    assert outbox.dispatch_pending(cfg, store, now=NOW + timedelta(days=3, hours=2)
                                   )["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    assert store.q("SELECT alert_id FROM deliveries")[0]["alert_id"] == aid


def test_outbox_command_lists_retries_and_drops(tmp_path, capsys):
    cfg = make_config(tmp_path, target("mail", "mailto://127.0.0.1:9?from=a@example.org"
                                       "&to=b@example.org&mode=insecure"))
    store = Store.in_dir(cfg.state_dir)
    a = _notice(cfg, store, "n1", "Advarsel en")
    b = _notice(cfg, store, "n2", "Advarsel to")
    with store.write() as db:
        db.execute("UPDATE deliveries SET status='expired', attempts=9, last_error='refused' "
                   "WHERE alert_id=?", (a,))
    store.close()
    conf = ["--config", str(cfg.path)]
    assert main([*conf, "outbox", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["alert_id"], r["status"]) for r in rows} == {(a, "expired"), (b, "pending")}
    assert main([*conf, "outbox", "retry", str(a)]) == 0
    assert "1 delivery queued again" in capsys.readouterr().out
    assert main([*conf, "outbox", "drop", str(b), "--target", "mail"]) == 0
    assert main([*conf, "outbox", "drop", str(b)]) == 1  # nothing left to drop
    capsys.readouterr()
    assert main([*conf, "outbox", "list", "--status", "dropped"]) == 0
    out = capsys.readouterr().out
    assert f"#{b} mail" in out and "dropped by an operator" in out
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT alert_id, status, attempts FROM deliveries ORDER BY alert_id") == [
        {"alert_id": a, "status": "pending", "attempts": 0},
        {"alert_id": b, "status": "dropped", "attempts": 0}]
