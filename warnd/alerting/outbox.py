"""The outbox: alerts and their deliveries, written before anything is sent.

* **Outbox** — an alert and one delivery row per routed target are written in one
  transaction, together with the episode state, *before* anything is sent. The
  alert's ``dedupe_key`` is unique, so a re-run after a crash never adds it twice.
* **Delivery** — each target separately and in parallel (a hung target never holds
  back another), retried with exponential backoff until ``alerting.expire_after``
  (counted from when the delivery became due); an expired delivery is logged as an
  error and shown by ``warnd status``.
* **Silences, quiet hours** (:mod:`warnd.alerting.silences`,
  :mod:`warnd.alerting.quiet`) are applied when an alert is decided and again
  before each send.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any

from warnd.alerting import digest, quiet
from warnd.alerting.render import for_target
from warnd.alerting.routing import route
from warnd.alerting.send import SendResult, mask, target_url
from warnd.alerting.send import send as send_message
from warnd.alerting.silences import silenced_by
from warnd.alerting.wording import render_text
from warnd.config import Config, parse_duration
from warnd.store import Store, iso

log = logging.getLogger("warnd.alerting")

#: Targets sent to at the same time in one dispatch round.
SEND_WORKERS = 4


def enqueue_alert(
    config: Config, store: Store, alert: dict[str, Any], *, now: datetime,
    episodes: dict[str, dict[str, Any]] | None = None,
) -> int | None:
    """Silence, route, apply quiet hours and write the alert with its deliveries.

    Sets ``alert["id"]``, ``["targets"]`` and ``["due_at"]``; returns the id, or None
    when the same alert (same dedupe key) exists already.
    """
    if alert.get("status", "open") == "open":
        sid = silenced_by(store, alert, now)
        if sid is not None:
            alert["status"] = "silenced"
            alert["silenced_by"] = sid
    targets = route(config, alert) if alert.get("status", "open") == "open" else []
    due = quiet.due_at(config, alert["severity"], now) if targets else None
    aid = store.add_alert(alert, targets, episodes=episodes, now=now, due_at=due)
    if aid is None:
        return None
    if targets:
        crash_point("enqueue")
    alert.update(id=aid, targets=targets, due_at=iso(due) if due else None)
    if alert.get("data"):  # the stored body says "ID"; show the real one to the caller
        alert["body"] = render_text(alert["data"], config.general.language, aid,
                                    config=config)[1]
    log.info(
        "alert=%d substance=%s kind=%s severity=%s decision=%s status=%s targets=%s%s: %s",
        aid, alert["substance"] or "-", alert["kind"], alert["severity"], alert["decision"],
        alert.get("status", "open"), ",".join(targets) or "-",
        f" (quiet hours: waits until {iso(due)})" if due else "", alert["title"],
    )
    return aid


# -- delivery ----------------------------------------------------------------------
def crash_point(name: str) -> None:
    """Test hook: ``WARND_TEST_CRASH_AFTER=<name>`` kills the process here (SIGKILL).

    ``enqueue``: right after an alert and its deliveries are committed, before any
    send; ``send``: after a target accepted a message, before that is recorded. Used
    by the crash tests; never set it in production.
    """
    if os.environ.get("WARND_TEST_CRASH_AFTER") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def dispatch_pending(
    config: Config,
    store: Store,
    *,
    now: datetime,
    send: Callable[..., Any] | None = None,
) -> dict[str, int]:
    """Send every due delivery once; record success, retry time or expiry.

    Also enqueues the digest when one is due, marks deliveries a silence now covers,
    and moves retries that fall into quiet hours to the end of the quiet time.
    """
    send_fn = send or send_message
    by_name = {t.name: t for t in config.targets}
    a = config.alerting
    backoff = parse_duration(a.retry_backoff)
    max_backoff = parse_duration(a.retry_max_backoff)
    expire = parse_duration(a.expire_after)
    timeout = parse_duration(a.send_timeout).total_seconds()
    counts = {"delivered": 0, "retrying": 0, "expired": 0, "failed": 0, "silenced": 0,
              "waiting": 0}
    if config.alerting.digest is not None:
        try:
            digest.maybe_enqueue(config, store, now=now)
        except Exception as e:  # the digest must never block alerts
            log.error("digest not built: %s", e)
    jobs: list[tuple[dict[str, Any], str, tuple[str, str, str, list[str] | None]]] = []
    for d in store.due_deliveries(now):
        t = by_name.get(d["target"])
        aid, name = int(d["alert_id"]), d["target"]
        sid = silenced_by(store, d, now)
        if sid is not None:  # silenced after it was decided (e.g. while it waited)
            with store.write() as db:
                db.execute("UPDATE deliveries SET status='silenced' WHERE alert_id=? AND target=?",
                           (aid, name))
                db.execute("UPDATE alerts SET status='silenced', silenced_by=? WHERE id=? "
                           "AND status='open'", (sid, aid))
            counts["silenced"] += 1
            log.info("alert=%d target=%s not sent: silence %d", aid, name, sid)
            continue
        wait = quiet.due_at(config, d["severity"], now) if d.get("kind") != "digest" else None
        if wait is not None:  # a retry that fell into quiet hours
            store.postpone_delivery(aid, name, wait)
            counts["waiting"] += 1
            continue
        if t is None:
            store.mark_delivery(aid, name, status="failed", error="target no longer configured",
                                now=now)
            counts["failed"] += 1
            log.error("alert=%d target=%s: target no longer configured", aid, name)
            continue
        try:
            url = target_url(t)
        except Exception as e:
            store.mark_delivery(aid, name, status="pending", error=str(e),
                                next_attempt_at=now + max_backoff, now=now)
            counts["retrying"] += 1
            log.error("alert=%d target=%s: %s", aid, name, e)
            continue
        data = json.loads(d["data"])
        jobs.append((d, url, for_target(url, d, data, config, store)))

    def one(job: tuple[dict[str, Any], str, tuple[str, str, str, list[str] | None]]) -> Any:
        _, url, (title, body, fmt, attachments) = job
        try:
            return send_fn(url, title=title, body=body, body_format=fmt,
                           attachments=attachments, timeout=timeout)
        except Exception as e:  # a send function must not take the round down
            return SendResult(False, "ERROR", f"{type(e).__name__}: {e}")

    if not jobs:
        return counts
    # targets are sent in parallel, so a slow or dead one never holds back another;
    # the outcomes are recorded here, in this thread (the store is per thread)
    with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(jobs)),
                            thread_name_prefix="warnd-send") as pool:
        futures = {pool.submit(one, job): job for job in jobs}
        for fut in as_completed(futures):
            d, url, _ = futures[fut]
            _record(store, d, url, fut.result(), counts, now=now, backoff=backoff,
                    max_backoff=max_backoff, expire=expire)
    return counts


def _record(
    store: Store, d: dict[str, Any], url: str, result: Any, counts: dict[str, int], *,
    now: datetime, backoff: Any, max_backoff: Any, expire: Any,
) -> None:
    aid, name = int(d["alert_id"]), d["target"]
    if result.ok:
        crash_point("send")
        store.mark_delivery(aid, name, status="delivered", now=now)
        counts["delivered"] += 1
        log.info("alert=%d target=%s delivered (%s)", aid, name, mask(url))
        return
    created = datetime.fromisoformat(d.get("due_at") or d["created_at"])
    err = f"{result.status}: {result.detail}".strip(": ")
    if now - created >= expire:
        store.mark_delivery(aid, name, status="expired", error=err, now=now)
        counts["expired"] += 1
        log.error("alert=%d target=%s expired after %d attempts: %s", aid, name,
                  int(d["attempts"]) + 1, err)
        return
    delay = min(backoff * (2 ** int(d["attempts"])), max_backoff)
    store.mark_delivery(aid, name, status="pending", error=err,
                        next_attempt_at=now + delay, now=now)
    counts["retrying"] += 1
    log.warning("alert=%d target=%s not accepted (%s); retry at %s", aid, name, err,
                iso(now + delay))
