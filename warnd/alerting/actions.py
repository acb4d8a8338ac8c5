"""What a person does to an alert, each recorded with who, how and when.

Acknowledge an alert, silence a substance (or kind, or source) for a while, end a
silence, retry or drop a delivery: the console (``warnd web``: its pages, its API and
signed links from messages) and the command line share these functions, and each
writes its change and a row in the ``actions`` table in one transaction.
``via`` says how: ``web``, ``api``, ``link`` or ``cli``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from warnd.alerting.told import NOT_JOINED, episode_scope, rise_told
from warnd.store import Store, iso


def ack_alert(store: Store, alert_id: int, *, who: str, via: str,
              now: datetime | None = None) -> bool:
    """Acknowledge an alert; False when there is no such alert.

    Acknowledging an acknowledged alert keeps the first who and when and is not
    logged again (a second click, a retried API call). Only an open alert becomes
    ``acked``: one held back (``silenced``, ``muted``) or ``resolved`` keeps its status,
    with who acknowledged it and when — a silenced message acknowledged is still one
    nobody was told (:mod:`warnd.alerting.decide` tells its rise after the silence).
    """
    now = now or datetime.now(UTC)
    with store.write() as db:
        row = db.execute("SELECT status, acked_at FROM alerts WHERE id=?",
                         (alert_id,)).fetchone()
        if row is None:
            return False
        if row[0] == "acked" or row[1]:
            return True
        db.execute("UPDATE alerts SET status=CASE status WHEN 'open' THEN 'acked' ELSE status "
                   "END, acked_at=?, acked_by=? WHERE id=?", (iso(now), who, alert_id))
        store.record_action(db, who=who, via=via, action="ack", alert_id=alert_id, now=now)
        for other in _same_news(db, alert_id):
            db.execute("UPDATE alerts SET status='acked', acked_at=?, acked_by=? WHERE id=? "
                       "AND status='open'", (iso(now), who, other))
            store.record_action(db, who=who, via=via, action="ack", alert_id=other,
                                detail=f"with #{alert_id}", now=now)
    return True


def _same_news(db: Any, alert_id: int) -> list[int]:
    """The other open messages of the episode that alert ``alert_id`` tells no less
    than: of a substance's rise (spike, fall), those from its opening up to the opening
    or escalation it is or repeats, and the reminders of that one (not a later
    escalation: it tells more). Acknowledged with it: the episode is (no more
    reminders), and `warnd status` and the console do not list them as waiting."""
    row = db.execute("SELECT substance, kind, direction, decision FROM alerts WHERE id=?",
                     (alert_id,)).fetchone()
    if row is None or row[1] not in ("trend", "spike") or not row[0] or row[3] not in (
            "open", "escalate", "repeat"):
        return []
    episode = "substance=? AND kind=? AND direction IS ?"
    # (a message told only to the desks of a region that joined the rise tells no more
    # than the one before it: acknowledged with it, and it with that one)
    head = alert_id if row[3] != "repeat" else db.execute(
        f"SELECT MAX(id) FROM alerts WHERE {episode} AND id < ? AND decision IN "
        f"('open', 'escalate', 'resolve') AND {NOT_JOINED}", (*row[:3], alert_id)
    ).fetchone()[0]
    if head is None or db.execute("SELECT decision FROM alerts WHERE id=?",
                                  (head,)).fetchone()[0] == "resolve":
        return []  # a reminder of nothing told since the episode's end
    start = db.execute(f"SELECT MAX(id) FROM alerts WHERE {episode} AND id <= ? AND "
                       "decision='open'", (*row[:3], head)).fetchone()[0]
    after = db.execute(
        f"SELECT MIN(id) FROM alerts WHERE {episode} AND id > ? AND decision IN "
        f"('open', 'escalate', 'resolve') AND {NOT_JOINED}", (*row[:3], head)).fetchone()[0]
    return [int(r[0]) for r in db.execute(
        f"SELECT id FROM alerts WHERE {episode} AND id >= ? AND id < ? AND id != ? AND "
        "status='open' AND decision IN ('open', 'escalate', 'repeat') ORDER BY id",
        (*row[:3], start if start is not None else head,
         after if after is not None else 2**62, alert_id)).fetchall()]


def handled(store: Store, alert_id: int) -> dict[str, Any] | None:
    """What became of an alert before someone acts on it (a link's confirmation page,
    `warnd alerts ack`); None when there is no such alert. ``acked_by`` and ``acked_at``:
    who acknowledged it first and when (None when nobody has); ``over``: None while its
    episode goes on, else ``{"how": "ended" | "withdrawn", "at", "alert_id"}`` — ended (an
    end told, or a later episode opened, or its alerts resolved without a message:
    ``at`` and ``alert_id`` None), or withdrawn by a correction that left nothing of it
    (``alert_id`` the correction's)."""
    rows = store.q("SELECT id, substance, kind, direction, source, decision, status, "
                   "acked_by, acked_at FROM alerts WHERE id=?", [alert_id])
    if not rows:
        return None
    a = rows[0]
    over = _episode_over(store, a)
    if over is None and a["status"] == "resolved" and a["decision"] != "correct":
        over = {"how": "ended", "at": None, "alert_id": None}
    return {"acked_by": a["acked_by"], "acked_at": a["acked_at"], "over": over}


def _episode_over(store: Store, a: dict[str, Any]) -> dict[str, Any] | None:
    """How the episode of alert ``a`` ended, as its later messages tell: of a substance's
    rise (spike, fall) an end, a correction leaving none of its sources (:func:`rise_told`)
    or a new opening; of a source's failure its recovery."""
    if a["kind"] == "source_health":
        rows = store.q("SELECT id, created_at FROM alerts WHERE kind='source_health' AND "
                       "source=? AND decision='resolve' AND id >= ? ORDER BY id LIMIT 1",
                       [a["source"], a["id"]])
        return {"how": "ended", "at": rows[0]["created_at"], "alert_id": rows[0]["id"]
                } if rows else None
    if (scope := episode_scope(a)) is None:  # not a substance's rise, spike or fall
        return None
    where, args = scope
    start = store.q(f"SELECT MAX(id) AS id FROM alerts WHERE {where} AND id <= ? AND "
                    f"decision='open' AND {NOT_JOINED}", [*args, a["id"]])[0]["id"]
    told: list[dict[str, Any]] = []
    for m in store.q(f"SELECT id, decision, created_at, data FROM alerts WHERE {where} "
                     f"AND id >= ? AND {NOT_JOINED} ORDER BY id",
                     [*args, start if start is not None else a["id"]]):
        if m["decision"] == "open" and m["id"] > a["id"]:
            return {"how": "ended", "at": None, "alert_id": None}
        if m["decision"] == "resolve":
            return {"how": "ended", "at": m["created_at"], "alert_id": m["id"]}
        told.append(json.loads(m["data"] or "{}"))
        if m["decision"] == "correct" and not rise_told(told, a["direction"])["agree"]:
            return {"how": "withdrawn", "at": m["created_at"], "alert_id": m["id"]}
    return None


def add_silence(
    store: Store, *, substance: str | None, kind: str | None = None, source: str | None = None,
    duration: timedelta | None = None, until: datetime | None = None, reason: str, who: str,
    via: str, alert_id: int | None = None, now: datetime | None = None,
) -> int:
    """Add a silence from now until ``until`` (a duration in days ends at the same clock
    time: :func:`warnd.alerting.silences.silence_end`), or for ``duration`` of elapsed
    time; returns its id. It needs a substance, a kind or a source: a silence of no
    field would hold back every alert."""
    if not (substance or kind or source):
        raise ValueError("a silence needs a substance, a kind or a source")
    now = now or datetime.now(UTC)
    if until is None:
        if duration is None:
            raise ValueError("a silence needs an end: until or duration")
        until = now + duration
    with store.write() as db:
        cur = db.execute(
            "INSERT INTO silences (substance, kind, source, reason, created_by, created_at, "
            "until) VALUES (?,?,?,?,?,?,?)",
            (substance, kind, source, reason, who, iso(now), iso(until)),
        )
        sid = int(cur.lastrowid or 0)
        what = ", ".join(f"{k}={v}" for k, v in (("substance", substance), ("kind", kind),
                                                  ("source", source)) if v)
        store.record_action(db, who=who, via=via, action="silence", alert_id=alert_id,
                            silence_id=sid, detail=f"{what} until {iso(until)}: {reason}",
                            now=now)
    return sid


def expire_silence(store: Store, silence_id: int, *, who: str, via: str,
                   now: datetime | None = None) -> bool:
    """End an active silence now; False when there is no active silence with that id."""
    now = now or datetime.now(UTC)
    with store.write() as db:
        # one that has run out has ended already: nothing to end, nothing to log
        cur = db.execute("UPDATE silences SET expired_at=? WHERE id=? AND expired_at IS NULL "
                         "AND until > ?", (iso(now), silence_id, iso(now)))
        if not cur.rowcount:
            return False
        store.record_action(db, who=who, via=via, action="expire_silence",
                            silence_id=silence_id, now=now)
    return True


def retry_delivery(store: Store, alert_id: int, target: str, *, who: str, via: str,
                   now: datetime | None = None) -> bool:
    """Make a failed, expired or waiting delivery due again now, with a fresh retry
    window (:func:`warnd.alerting.outbox.retry_delivery`), and log who did it."""
    from warnd.alerting import outbox

    return _on_delivery(store, outbox.retry_delivery, "retry_delivery", alert_id, target,
                        who=who, via=via, now=now)


def drop_delivery(store: Store, alert_id: int, target: str, *, who: str, via: str,
                  now: datetime | None = None) -> bool:
    """Give up a waiting, failed or expired delivery (status ``dropped``): never sent
    (:func:`warnd.alerting.outbox.drop_delivery`), and log who did it."""
    from warnd.alerting import outbox

    return _on_delivery(store, outbox.drop_delivery, "drop_delivery", alert_id, target,
                        who=who, via=via, now=now)


def _on_delivery(store: Store, act: Any, action: str, alert_id: int, target: str, *,
                 who: str, via: str, now: datetime | None) -> bool:
    """Do ``act`` to one delivery and record who did it, in one transaction."""
    now = now or datetime.now(UTC)
    with store.write() as db:
        if not act(store, alert_id, target, now=now):
            return False
        store.record_action(db, who=who, via=via, action=action, alert_id=alert_id,
                            detail=target, now=now)
    return True


def history(store: Store, *, alert_id: int | None = None, limit: int = 50
            ) -> list[dict[str, Any]]:
    """The newest actions, of one alert or of all. An alert's are those on it, and on
    a silence made from it (its early end names the silence only): its page shows
    that the substance is no longer silenced, and by whom."""
    if alert_id is not None:
        return store.q(
            "SELECT * FROM actions WHERE alert_id=? OR silence_id IN (SELECT silence_id "
            "FROM actions WHERE alert_id=? AND silence_id IS NOT NULL) "
            "ORDER BY id DESC LIMIT ?", [alert_id, alert_id, limit])
    return store.q("SELECT * FROM actions ORDER BY id DESC LIMIT ?", [limit])
