"""Operators' commands over time: `warnd outbox retry|drop` on deliveries that waited,
failed and expired, followed by the dispatches that come after them (the real CLI,
the real outbox and a real SMTP server; the clock is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from tests.alerting_env import make_config, target
from tests.servers import wait_for
from warnd.alerting import decide, outbox
from warnd.cli import main
from warnd.service.health import collect_status
from warnd.store import Store

DEAD = "mailto://127.0.0.1:9?from=a@example.org&to=b@example.org&mode=insecure"
SHORT = '\n[alerting]\nexpire_after = "2h"\n'


def _notice(cfg, store, key: str, now: datetime) -> int:
    src = SimpleNamespace(name="overdosefare", region="")
    item = SimpleNamespace(key=key, title=f"Advarsel {key}",
                           link="https://overdosefare.example/" + key,
                           published_at=now - timedelta(hours=1), region="", summary="")
    aid = decide.enqueue_notice(cfg, store, src, item, "ketamin", now=now)
    assert aid is not None
    return aid


def _dispatch_until_settled(cfg, store, start: datetime, end: datetime) -> None:
    """Dispatch at each next attempt of the waiting deliveries, as the daemon would."""
    now = start
    while now < end:
        outbox.dispatch_pending(cfg, store, now=now)
        nxt = store.q("SELECT MIN(next_attempt_at) AS t FROM deliveries "
                      "WHERE status='pending'")[0]["t"]
        if nxt is None:
            return
        now = max(now + timedelta(seconds=1), datetime.fromisoformat(nxt))


def test_a_retry_after_the_target_is_repaired_goes_at_the_next_dispatch(
        tmp_path, smtp_server, capsys):
    """A relay that refused every attempt until the message expired; the operator
    repairs the target's address (a reload) and runs `warnd outbox retry`. The message
    goes with the next dispatch, not after the back-off the dead relay earned."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=150)
    dead = make_config(tmp_path, target("mail", DEAD), SHORT)
    store = Store.in_dir(dead.state_dir)
    aid = _notice(dead, store, "n1", start)
    _dispatch_until_settled(dead, store, start, start + timedelta(hours=3))
    [row] = store.q("SELECT status FROM deliveries")
    assert row["status"] == "expired"
    assert not collect_status(dead)["healthy"]
    # the relay's address is corrected in the config, and the message re-queued
    fixed = make_config(tmp_path, target("mail", smtp_server.url()), SHORT)
    conf = ["--config", str(fixed.path)]
    assert main([*conf, "outbox", "retry", str(aid)]) == 0
    assert "1 delivery queued again" in capsys.readouterr().out
    counts = outbox.dispatch_pending(fixed, store, now=datetime.now(UTC))
    assert counts["delivered"] == 1, (counts, store.q("SELECT * FROM deliveries"))
    wait_for(lambda: len(smtp_server.messages) == 1, what="the re-queued notice")
    assert store.q("SELECT status FROM deliveries") == [{"status": "delivered"}]
    st = collect_status(fixed)
    assert st["healthy"], st["problems"]
