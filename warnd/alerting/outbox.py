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
* **Order** — the messages of one substance's episode (open, escalate, repeat, resolve,
  correct), and a source's failure and recovery, reach each target in the order they
  were decided: a later one that is due
  brings the earlier ones still waiting (quiet hours, a retry) along, first, and waits
  while an earlier one is being retried.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from warnd.alerting import digest, quiet, targets
from warnd.alerting.render import as_opening, as_told, for_target
from warnd.alerting.routing import route, route_told
from warnd.alerting.send import SendResult, host_name, mask, message_id, target_url
from warnd.alerting.send import send as send_message
from warnd.alerting.silences import matches as silence_matches
from warnd.alerting.silences import silenced_by
from warnd.alerting.told import (EPISODE_KINDS, NOT_JOINED, OTHER_EPISODES, addressed,
                                 data_of, episode_start, held_too, maybe_heard,
                                 told_to_target)
from warnd.alerting.told import episode_scope as _scope
from warnd.alerting.wording import render_text
from warnd.config import Config, parse_duration
from warnd.store import Store, iso, substance_scope

log = logging.getLogger("warnd.alerting")

#: Targets sent to at the same time in one dispatch round.
SEND_WORKERS = 4
#: Who holds a delivery's claim: this process (host, pid and a random part).
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
#: Alert kinds whose messages follow a substance's episode, kept in order per target.
#: Why a delivery is held: an earlier message of its episode to the target is retried.
WAITS_FOR_EARLIER = "waits for an earlier message of the episode, sent first"
#: Why an end or a correction was not sent to a target: the messages it ends or corrects
#: never reached it (their deliveries expired or failed). It goes after one of them that
#: an operator queues again (:func:`retry_delivery`).
UNHEARD = ("not sent: the target never had the messages it ends or corrects (their "
           "deliveries expired or failed)")
#: Why a reminder was not sent: its episode was acknowledged while it waited.
ACKNOWLEDGED = "not sent: the episode was acknowledged while the reminder waited"
#: Why a waiting message was not sent to a target: the routes now configured (a reload,
#: another config) no longer send it there (:func:`_as_routed`).
REROUTED = "not sent: the configuration no longer routes it to this target"
#: The kinds of alert routed by ``[[routes]]`` (a digest goes to ``digest.targets``).
ROUTED_KINDS = (*EPISODE_KINDS, "notice", "source_health")


def enqueue_alert(
    config: Config, store: Store, alert: dict[str, Any], *, now: datetime,
    episodes: dict[str, dict[str, Any]] | None = None, told_to: Iterable[str] | None = None,
    routed: Iterable[str] | None = None, unheard: Iterable[str] = (),
) -> int | None:
    """Silence, route, apply quiet hours and write the alert with its deliveries.

    ``told_to``: for an end or a correction, the targets that had the messages it ends
    or corrects. It goes to those (still configured and not muted) instead of where a
    message of its own, often lower, severity routes; routed as usual only when none of
    them is configured any more and one of them had a message of the episode (not all
    still waiting for it), and to nobody when there are none
    (:func:`warnd.alerting.routing.route_told`). ``unheard``: for an end or a
    correction, the targets whose deliveries of those messages were all given up
    (expired, failed), muted or not: it is recorded for them as not sent (``dropped``,
    :data:`UNHEARD`), and goes after such a message an operator queues again
    (:func:`retry_delivery`).
    ``routed``: the targets the caller chose, silences and mutes already applied (a
    notice naming several substances: :func:`warnd.alerting.decide.notice_targets`).
    Sets ``alert["id"]``, ``["targets"]`` and ``["due_at"]``; returns the id, or None
    when the same alert (same dedupe key) exists already.
    """
    if alert.get("status", "open") == "open" and routed is None:
        sid = silenced_by(store, alert, now)
        if sid is not None:
            alert["status"] = "silenced"
            alert["silenced_by"] = sid
    had = None if told_to is None else list(told_to)
    targets: list[str] = []
    unsent: list[str] = []
    if alert.get("status", "open") == "open":
        if routed is not None:
            targets = list(routed)
        elif had is not None:
            by_name = {t.name: t for t in config.targets}
            # routed as usual when every target that had them is gone, only if one of
            # them had a message of the episode (not all still waiting for it)
            targets = route_told(config, alert, had, reached=_reached(
                store, alert, [n for n in dict.fromkeys(had) if n not in by_name]))
            # a muted target too: queued again with an opening once it is not muted
            unsent = [n for n in dict.fromkeys(unheard) if n in by_name and n not in targets]
            # a target taken out of the config (or renamed) that a message of the episode
            # still waits for (kept until it is configured again): this waits with it, and
            # goes after it
            targets += _waiting_for(store, alert, [n for n in dict.fromkeys(had)
                                                   if n not in by_name and n not in targets])
        else:
            targets = route(config, alert)
    due = quiet.due_at(config, alert["severity"], now) if targets else None
    aid = store.add_alert(alert, targets, episodes=episodes, now=now, due_at=due,
                          unsent={n: UNHEARD for n in unsent})
    if aid is None:
        return None
    if had is not None and not targets and alert.get("status", "open") == "open":
        what = "corrects" if alert["decision"] == "correct" else "ends"
        log.info("alert=%d substance=%s %s not sent: %s%s", aid, alert["substance"] or "-",
                 alert["decision"], f"the targets that had what it {what} are muted" if had
                 else f"no target had what it {what}",
                 f" (recorded as not sent to {','.join(unsent)})" if unsent else "")
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


def _reached(store: Store, alert: dict[str, Any], names: list[str]) -> list[str]:
    """Of ``names``, the targets a message of ``alert``'s episode (since its latest opening
    or end) reached, or may have: delivered, or an attempt of it not shown refused. One
    whose messages of the episode all still wait (for the end of quiet hours, for it to
    be configured again) never had them. All of ``names`` for an alert of no episode."""
    scope = _scope(alert)
    if scope is None or not names:
        return names
    where, args = scope
    start = episode_start(store, scope, 1 << 62)
    got = {r["target"] for r in store.q(
        "SELECT DISTINCT d.target FROM deliveries d WHERE d.target IN "
        f"({','.join('?' * len(names))}) AND (d.status='delivered' OR d.maybe_sent=1 OR "
        "d.maybe_sent IS NULL AND d.attempts > 0) AND d.alert_id IN (SELECT id FROM alerts "
        f"WHERE {where} AND id >= ?)", [*names, *args, start])}
    return [n for n in names if n in got]


def _waiting_for(store: Store, alert: dict[str, Any], names: list[str]) -> list[str]:
    """Of ``names``, the targets an earlier message of ``alert``'s matter (a substance's
    trend or spike in one direction, a source's failure) still waits for."""
    scope = _scope(alert)
    if scope is None or not names:
        return []
    where, args = scope
    waiting = {r["target"] for r in store.q(
        "SELECT DISTINCT d.target FROM deliveries d WHERE d.status='pending' AND d.target IN "
        f"({','.join('?' * len(names))}) AND d.alert_id IN (SELECT id FROM alerts WHERE "
        f"{where})", [*names, *args])}
    return [n for n in names if n in waiting]


# -- delivery ----------------------------------------------------------------------
def free_dead_claims(store: Store) -> int:
    """Free the claims of earlier processes; how many.

    Call only while holding the state directory's lock (:mod:`warnd.statelock`): then
    no other process can be sending, so such a claim died with its process. Its
    delivery may have been accepted just before (the one unavoidable duplicate); it is
    sent again with the same Message-ID.
    """
    rows = store.release_claims(except_owner=OWNER)
    if rows:
        log.warning(
            "%d deliveries were being sent by a process that ended; they are sent again "
            "with the same Message-ID: %s", len(rows),
            ", ".join(f"alert={r['alert_id']} target={r['target']}" for r in rows[:10]))
    return len(rows)


def crash_point(name: str) -> None:
    """Test hook: ``WARND_TEST_CRASH_AFTER=<name>`` kills the process here (SIGKILL).

    ``enqueue``: right after an alert and its deliveries are written (inside the
    detection round's transaction for findings, after the commit for a notice);
    ``round``: after a detection round's alerts and episode states are committed,
    before any send; ``send``: after a target accepted a message, before that is
    recorded. Used by the crash tests; never set it in production.
    """
    if os.environ.get("WARND_TEST_CRASH_AFTER") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class _Job:
    """One delivery being rendered and sent in a worker thread."""

    def __init__(self, d: dict[str, Any], url: str, target: Any) -> None:
        self.d = d
        self.url = url
        self.target = target
        #: the Message-ID of the first message of its episode to the target, if any
        self.thread: str | None = None
        #: it reads as its target's opening, and no attempt of it before this one can
        #: have reached the target (:meth:`Store.record_attempt`)
        self.unreached = False
        self.phase = "render"
        self.started = 0.0
        #: monotonic time by which the current phase must end
        self.deadline = 0.0


@dataclass(frozen=True)
class RenderFailed:
    """The message for a delivery could not be built at all."""

    reason: str


def _lazy_store(path: Any) -> Any:
    """A store opened only when needed: a chart, a later message of an episode (its
    thread, whether it reads as the opening). Each worker thread has its own."""

    class Lazy:
        _s: Store | None = None

        def __getattr__(self, name: str) -> Any:
            if self._s is None:
                self._s = Store(path)
            return getattr(self._s, name)

        def close(self) -> None:
            if self._s is not None:
                self._s.close()

    return Lazy()


def _episode(d: dict[str, Any]) -> tuple[str, ...] | None:
    """The (target, substance, kind, direction) whose messages go in order, if any: a
    substance's trend or spike in one direction, or a source's failure and recovery
    (substance "", the source for direction)."""
    if d.get("kind") in EPISODE_KINDS and d.get("substance"):
        return (d["target"], d["substance"], d["kind"], d.get("direction") or "")
    if d.get("kind") == "source_health" and d.get("source"):
        return (d["target"], "", "source_health", d["source"])
    return None


def opens_for_target(store: Store, d: dict[str, Any]) -> bool:
    """Whether a delivery of an escalation or a reminder is the first message of its
    episode its target gets: no earlier message of the episode (from its opening, or
    from the end before it when it has no opening since) was delivered to that target,
    nor held back by a silence after an attempt that may have reached it
    (:func:`warnd.alerting.told.maybe_heard`).
    Its opening expired on a dead relay, was dropped (by an operator, a mute, a
    withdrawal), or went elsewhere (a route by severity that adds the target only at
    the escalation). Such a delivery reads as the episode's opening for that target
    (:func:`warnd.alerting.render.as_opening`) and starts its thread.

    Asked when the delivery is first sent, after the episode's earlier messages to the
    target went or were given up (they go first: :func:`_bring_earlier_along`), and
    recorded before the send (:meth:`Store.record_opens`), so that a retry or a send
    again after a crash reads the same, whatever becomes of the earlier ones. Asked
    again only when an operator queues the episode's messages to the target again and
    no attempt of it can have reached the target (:func:`_reconsider`): an earlier one
    queued again then goes first, and it reads as decided, in that one's thread."""
    scope = _scope(d)
    if d.get("decision") not in ("escalate", "repeat") or d.get("kind") not in EPISODE_KINDS \
            or scope is None:
        return False
    where, args = scope
    aid = int(d["alert_id"])
    start = episode_start(store, scope, aid)
    return not store.q(
        f"SELECT 1 FROM alerts WHERE {where} AND id >= ? AND id < ? AND decision != 'resolve' "
        "AND EXISTS (SELECT 1 FROM deliveries t WHERE t.alert_id = alerts.id AND t.target=? "
        f"AND (t.status='delivered' OR {maybe_heard()})) LIMIT 1",
        [*args, start, aid, d["target"]])


def _acknowledged_reminder(store: Store, d: dict[str, Any]) -> bool:
    """Whether a waiting delivery is a reminder whose episode was acknowledged since it
    was decided (the reminder itself, the opening or escalation it repeats, or a reminder
    of it), to a target that had an earlier message of the episode: it would remind of
    what was acknowledged. One that would be the target's first message of the episode
    (:func:`opens_for_target`) tells it the rise, and goes."""
    scope = _scope(d)
    if d.get("decision") != "repeat" or d.get("kind") not in EPISODE_KINDS or scope is None:
        return False
    where, args = scope
    aid = int(d["alert_id"])
    repeats = store.q(f"SELECT MAX(id) AS id FROM alerts WHERE {where} AND id < ? AND "
                      f"decision IN ('open', 'escalate') AND {NOT_JOINED}",
                      [*args, aid])[0]["id"]
    return bool(repeats is not None and store.q(
        f"SELECT 1 FROM alerts WHERE {where} AND id >= ? AND status='acked' AND decision IN "
        "('open', 'escalate', 'repeat') LIMIT 1", [*args, int(repeats)])
        and not opens_for_target(store, d))


def never_heard(store: Store, d: dict[str, Any]) -> bool:
    """Whether a delivery of an end or a correction goes to a target that never had the
    messages it ends or corrects: each delivery of them to that target was given up
    (expired on a dead relay, failed, or not sent as the routes no longer sent it there:
    :data:`REROUTED`), none delivered nor still to go. Asked when it is
    due: a message still being retried when the end or the correction was decided
    counted as heard then (:func:`warnd.alerting.decide._told_targets`), and may have
    expired since. The messages are the episode's opening, escalations and reminders
    since its opening (or its last end); for a correction, those of them that rest on a
    series it names."""
    scope = _scope(d)
    if d.get("decision") not in ("resolve", "correct") or scope is None:
        return False
    where, args = scope
    aid = int(d["alert_id"])
    start = episode_start(store, scope, aid)
    rows = store.q(
        "SELECT data, (SELECT CASE WHEN t.status='dropped' AND t.last_error=? THEN 'rerouted' "
        "ELSE t.status END FROM deliveries t WHERE t.alert_id = alerts.id AND t.target=?) AS "
        f"status FROM alerts WHERE {where} AND id >= ? AND id < ? AND "
        "decision IN ('open', 'escalate', 'repeat')",
        [REROUTED, d["target"], *args, start, aid])
    if d["decision"] == "correct":
        named = _series_named(d.get("data"))
        if named:
            rows = [r for r in rows if named & _series_named(r["data"])]
    got = {r["status"] for r in rows}
    return not got & {"delivered", "pending"} and bool(got & {"expired", "failed", "rerouted"})


def _series_named(data: Any) -> set[str]:
    """The series an alert's data names among its agreeing sources."""
    try:
        agree = json.loads(data or "{}").get("agree") or []
        return {str(a["series"]) for a in agree if isinstance(a, dict) and a.get("series")}
    except (ValueError, AttributeError):
        return set()


def thread_root(store: Store, d: dict[str, Any]) -> str | None:
    """The Message-ID a delivery's email replies to: that of the message that started
    its target's thread of the episode (a substance's trend or spike in one direction,
    a source's failure); None for a message that starts a thread (an opening, an
    escalation or a reminder that reads as one for its target: ``opens``, any other
    kind).

    The episode is the one opened by the latest opening before it; an escalation or
    a reminder after that episode's end (its opening held back, never an alert) starts
    a thread of its own. Its thread to the target starts with the latest of the
    episode's earlier messages addressed to the target that is an opening or read as
    one (:func:`opens_for_target`), one the target got or still gets before one given up
    (expired, failed, dropped); else (messages sent before that was recorded) with the
    first addressed to it. Read from the alerts and the delivery rows alone, as
    recorded before each was first sent, so a message sent again (a retry, a re-send
    after a crash) carries the same reference; an opening the target never got, with
    none of the episode's messages read as an opening since (an operator dropped one
    after the next went out), is still the one referred to.
    """
    if d.get("decision") in (None, "open") or d.get("opens"):
        return None
    scope = _scope(d)
    if scope is None:
        return None
    where, args = scope
    aid = int(d["alert_id"])
    opened = store.q(f"SELECT MAX(id) AS id FROM alerts WHERE {where} AND id < ? AND "
                     "decision='open'", [*args, aid])[0]["id"]
    if opened is None:
        return None
    if d["decision"] in ("escalate", "repeat") and store.q(
            f"SELECT 1 FROM alerts WHERE {where} AND id > ? AND id < ? AND "
            "decision='resolve' LIMIT 1", [*args, opened, aid]):
        return None
    told = store.q(
        "SELECT a.id, a.dedupe_key, a.created_at, a.decision, t.opens, t.status FROM "
        "deliveries t JOIN alerts a ON a.id = t.alert_id WHERE t.target=? AND a.id IN "
        f"(SELECT id FROM alerts WHERE {where} AND id >= ? AND id < ?) ORDER BY a.id",
        [d["target"], *args, opened, aid])
    if not told:
        return None
    starts = [r for r in told if r["decision"] == "open" or r["opens"]]
    # one the target never got (given up) yields to one it got or still gets: an
    # escalation read as the opening expired, and the opening queued again went since
    got = [r for r in starts if r["status"] not in ("expired", "failed", "dropped")]
    r = (got or starts)[-1] if starts else told[0]
    return message_id(r["id"], d["target"], r["dedupe_key"], r["created_at"],
                      host_part(store))


def host_part(store: Store) -> str:
    """The right part of the store's Message-IDs: the name of the host that sent its
    first message, kept in the store (:meth:`Store.kept`), so that a later message of
    an episode (a retry) carries the reference (the Message-ID) its opening (its first
    attempt) had, also after the store moved to a machine of another name (restored from
    a backup, a container made again)."""
    return store.kept("message_id_host", host_name)


def _quiet_as_configured(config: Config, store: Store, now: datetime) -> None:
    """First attempts put off to the end of the quiet time, brought forward to when
    the quiet hours now configured let them go (at once, when they no longer hold
    them back): a reload that takes quiet hours away, shortens them or lets their
    severity through does not leave messages waiting for the old ones' end."""
    now_s = iso(now)
    earlier = []
    for r in store.q(
        "SELECT d.alert_id, d.target, d.next_attempt_at, a.severity, a.kind FROM deliveries d "
        "JOIN alerts a ON a.id = d.alert_id WHERE d.status='pending' AND d.attempts=0 AND "
        "d.last_error IS NULL AND d.next_attempt_at > ?", [now_s]):
        if r["kind"] == "digest":
            continue
        goes = iso(quiet.due_at(config, r["severity"], now) or now)
        if goes < r["next_attempt_at"]:
            earlier.append((goes, goes, int(r["alert_id"]), r["target"]))
    if earlier:
        with store.write() as db:
            db.conn.executemany(
                "UPDATE deliveries SET next_attempt_at=?, due_at=MIN(due_at, ?) WHERE "
                "alert_id=? AND target=? AND status='pending'", earlier)
        log.info("%d deliveries waiting for the end of quiet hours go earlier, as the quiet "
                 "hours now configured allow", len(earlier))


def _routed_now(config: Config, store: Store, a: dict[str, Any], data: dict[str, Any],
                now: datetime, *, held: bool, silences: list[dict[str, Any]] | None = None,
                ) -> list[str]:
    """Where the routes now configured send a stored message ``a`` (not muted targets),
    its ``data`` parsed (:func:`data_of`). A notice goes where each substance it names
    routes, but for those muted (or, ``held``, silenced now or when it was decided, or
    an edit named it, or muted then: ``muted_then``, which kept it from their targets
    then), as :func:`warnd.alerting.decide.notice_targets` decides; another alert
    nowhere when ``held`` and its substance is muted or silenced now. ``silences``: the
    store's (:meth:`Store.silences` at ``now``), read once by a caller that asks for
    many."""
    if held and silences is None:
        silences = store.silences(now=now)
    one = {"substance": a["substance"] or "", "kind": a["kind"], "severity": a["severity"],
           "source": a.get("source"), "region": a.get("region") or "", "status": "open",
           "regions": sorted({str(x.get("region") or "") for x in data.get("agree") or []
                              if isinstance(x, dict)})}
    subs = (data.get("substances") or [one["substance"]]) if a["kind"] == "notice" \
        else [one["substance"]]
    named_at = data.get("named_at") if isinstance(data.get("named_at"), dict) else {}
    muted_then = set(data.get("muted_then") or ()) if held else set()
    out: list[str] = []
    for sub in subs:
        sc = config.substances.get(sub)
        if a["kind"] == "notice" or held:
            # (a substance an edit of the notice added: silenced when the edit named it)
            if (sc is not None and sc.muted) or sub in muted_then or held and (
                    any(s["active"] and silence_matches(s, {**one, "substance": sub})
                        for s in silences or ())
                    or _silenced_then(silences or [], {**one, "substance": sub},
                                      str(named_at.get(sub) or a["created_at"]))):
                continue
        out += [n for n in route(config, {**one, "substance": sub}) if n not in out]
    return out


def _silenced_then(silences: list[dict[str, Any]], alert: dict[str, Any], at: str) -> bool:
    """Whether one of ``silences`` matching ``alert`` was active at ``at`` (an ISO time)."""
    return any(s["created_at"] <= at < s["until"] and (s["expired_at"] is None
                                                      or s["expired_at"] > at)
               and silence_matches(s, alert) for s in silences)


def _as_routed(config: Config, store: Store, now: datetime) -> None:
    """Messages still waiting (quiet hours, a retry, a back-off) as the routes now configured
    send them: a reload (or another config for ``run --once``, the console) that routes
    a substance, a region or a kind elsewhere applies to what has not gone out yet. An
    opening, escalation, reminder, notice or source failure waiting for a configured
    target the routes no longer send it to is not sent (``dropped``, :data:`REROUTED`):
    for that target it never was, so a later message of its episode reads as its opening
    (:func:`opens_for_target`) and an end or a correction of it is not sent there
    (:func:`never_heard`). One an attempt may have reached (``maybe_sent``) keeps going,
    as it was, and so does one an operator queued again. A configured target the routes
    now send it to that has no delivery of it gets one, due now (or at the end of the
    quiet time), unless the message is out of date: its episode ended, was corrected or
    opened again since, or the target has had a later message of it. A message of an
    episode it never had reads as its opening there. Ends and corrections keep going to
    those who had what they end or correct. Asked at every dispatch, so idempotent: a
    delivery dropped or added is not looked at again."""
    by_name = {t.name: t for t in config.targets}
    if not by_name:
        return
    now_s = iso(now)
    kinds = ",".join("?" * len(ROUTED_KINDS))
    waiting: dict[int, list[dict[str, Any]]] = {}
    for r in store.q(
            "SELECT d.alert_id, d.target, d.attempts, d.maybe_sent, d.claimed_until, "
            "d.last_error, a.substance, a.kind, a.direction, a.source, a.severity, a.region, "
            "a.decision, a.status AS alert_status, a.data, a.created_at FROM deliveries d "
            "JOIN alerts a ON "
            f"a.id = d.alert_id WHERE d.status='pending' AND a.kind IN ({kinds}) AND "
            "a.decision IN ('open', 'escalate', 'repeat') ORDER BY d.alert_id",
            list(ROUTED_KINDS)):
        waiting.setdefault(int(r["alert_id"]), []).append(r)
    if not waiting:
        return
    # read once for all (a backlog to a dead relay is looked at every dispatch): the
    # silences, and every delivery of the messages waiting, whatever its status
    silences = store.silences(now=now)
    have_of: dict[int, set[str]] = {}
    for r in store.q(
            "SELECT alert_id, target FROM deliveries WHERE alert_id IN (SELECT d.alert_id FROM "
            "deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.status='pending' AND "
            f"a.kind IN ({kinds}) AND a.decision IN ('open', 'escalate', 'repeat'))",
            list(ROUTED_KINDS)):
        have_of.setdefault(int(r["alert_id"]), set()).add(r["target"])
    drop: list[tuple[int, str]] = []
    add: list[tuple[int, str, str]] = []
    for aid, rows in waiting.items():
        a = rows[0]
        data = data_of(a)  # parsed once for every question asked of it
        routed = _routed_now(config, store, a, data, now, held=False)
        # its substance taken out of the config: dropped as such when due (_muted_now)
        gone = _taken_out(config, a, data)
        for r in rows:
            t = by_name.get(r["target"])
            if (t is None or t.muted or r["target"] in routed
                    or gone or (r["claimed_until"] and r["claimed_until"] > now_s)
                    or r["maybe_sent"] == 1 or r["maybe_sent"] is None and r["attempts"]
                    or str(r["last_error"] or "").startswith("queued again")):
                # not configured, muted, or its substance taken out of the config (kept;
                # dropped as such when due), may have it, or an operator queued it again
                continue
            drop.append((aid, r["target"]))
        if gone or a["alert_status"] != "open" or not any(r["target"] in by_name
                                                           for r in rows):
            continue
        have = have_of.get(aid, set())
        new = [n for n in _routed_now(config, store, a, data, now, held=True,
                                      silences=silences) if n not in have]
        if not new or store.q(
                "SELECT 1 FROM alerts l JOIN alerts e ON e.id=? WHERE l.id > e.id AND "
                f"{_same_matter('l')} AND l.decision IN ('open', 'resolve', 'correct') LIMIT 1",
                [aid, *EPISODE_KINDS]):
            continue  # out of date: its episode ended, was corrected or opened again since
        if new and (scope := _scope(a)) is not None and data.get("joined"):
            # a region's join goes to the desks that had none of the episode, as their
            # opening: not to a target newly routed that had an earlier message of it
            # addressed to it, as when it was decided (one a silence held back from a
            # desk is none it had)
            where, args = scope
            had = {r["target"] for r in store.q(
                f"SELECT DISTINCT d.target FROM deliveries d WHERE {addressed('d')} AND "
                f"d.alert_id IN (SELECT id FROM alerts WHERE {where} AND id >= ? AND id < ?)",
                [*args, episode_start(store, scope, aid), aid])}
            new = [n for n in new if n not in had]
        due = iso(quiet.due_at(config, a["severity"], now) or now)
        for n in new:
            if not store.q(
                    "SELECT 1 FROM deliveries ld JOIN alerts l ON l.id = ld.alert_id JOIN "
                    "alerts e ON e.id=? WHERE ld.target=? AND l.id > e.id AND "
                    f"{_same_matter('l')} AND (ld.status='delivered' OR ld.attempts > 0 OR "
                    "ld.opens IS NOT NULL OR ld.maybe_sent=1) LIMIT 1",
                    [aid, n, *EPISODE_KINDS]):
                add.append((aid, n, due))
    if not drop and not add:
        return
    with store.write() as db:
        db.conn.executemany(
            "UPDATE deliveries SET status='dropped', claimed_until=NULL, claimed_by=NULL, "
            "last_error=? WHERE alert_id=? AND target=? AND status='pending'",
            [(REROUTED, aid, n) for aid, n in drop])
        db.conn.executemany(
            "INSERT OR IGNORE INTO deliveries (alert_id, target, status, attempts, "
            "next_attempt_at, created_at, due_at) VALUES (?, ?, 'pending', 0, ?, ?, ?)",
            [(aid, n, due, now_s, due) for aid, n, due in add])
    for aid, n in drop:
        log.info("alert=%d target=%s not sent: the configuration no longer routes it there",
                 aid, n)
    for aid, n, due in add:
        log.info("alert=%d target=%s: routed there by the configuration while it waited%s",
                 aid, n, f" (quiet hours: waits until {due})" if due > now_s else "")


def _not_configured(alert_id: int, target: str) -> str:
    """Why a delivery is kept: its target is not configured (taken out, or renamed)."""
    return (f'target "{target}" is not configured; kept until it is again '
            f"(or `warnd outbox drop {alert_id}`)")


def _configured_again(config: Config, store: Store, now: datetime) -> None:
    """Deliveries kept for a target that was not configured (:func:`_prepare`), made due
    now that it is again: a reload that puts the target back sends them with the next
    dispatch, not when their hold, as long as a refused target's back-off, ends."""
    names = [t.name for t in config.targets]
    if not names:
        return
    now_s = iso(now)
    again = [(now_s, int(r["alert_id"]), r["target"]) for r in store.q(
        "SELECT alert_id, target, last_error FROM deliveries WHERE status='pending' AND "
        f"target IN ({','.join('?' * len(names))}) AND next_attempt_at > ? AND "
        "(claimed_until IS NULL OR claimed_until <= ?) AND last_error LIKE 'target %'",
        [*names, now_s, now_s])
        if r["last_error"] == _not_configured(int(r["alert_id"]), r["target"])]
    if again:
        with store.write() as db:
            db.conn.executemany("UPDATE deliveries SET next_attempt_at=? WHERE alert_id=? AND "
                                "target=? AND status='pending'", again)
        log.info("%d deliveries kept for targets not configured go now that they are",
                 len(again))


def _bring_earlier_along(config: Config, store: Store, now: datetime
                         ) -> set[tuple[int, str]]:
    """When a message of an episode goes to a target now (due, and not held by quiet
    hours: urgent, or working time), the episode's earlier messages still waiting for
    that target (quiet hours, a retry) go with it, first: made due now. Their (alert,
    target) keys, which quiet hours do not hold back."""
    now_s = iso(now)
    kinds = (*EPISODE_KINDS, "source_health")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in store.q(
        "SELECT d.alert_id, d.target, d.next_attempt_at, d.claimed_until, a.substance, "
        "a.kind, a.direction, a.source, a.severity FROM deliveries d JOIN alerts a ON "
        f"a.id = d.alert_id WHERE d.status='pending' AND a.kind IN ({','.join('?' * len(kinds))}) "
        "ORDER BY d.alert_id", list(kinds),
    ):
        ep = _episode(r)
        if ep is not None and not (r["claimed_until"] and r["claimed_until"] > now_s):
            groups.setdefault(ep, []).append(r)
    along: list[dict[str, Any]] = []
    for group in groups.values():
        goes = [i for i, r in enumerate(group) if r["next_attempt_at"] <= now_s
                and quiet.due_at(config, r["severity"], now) is None]
        if goes:
            along += group[:goes[-1]]
    bring = [(int(r["alert_id"]), r["target"]) for r in along if r["next_attempt_at"] > now_s]
    if bring:
        with store.write() as db:
            for aid, name in bring:
                db.execute("UPDATE deliveries SET next_attempt_at=? WHERE alert_id=? AND "
                           "target=? AND status='pending'", (now_s, aid, name))
        log.info("sent now, before a later message of the same episode: %s",
                 ", ".join(f"alert={aid} target={name}" for aid, name in bring[:10]))
    return {(int(r["alert_id"]), r["target"]) for r in along}


def _work(job: _Job, config: Config, store_path: Any, send_fn: Callable[..., Any],
          timeout: float, blocked: dict[Any, datetime], now: datetime) -> Any:
    """Render and send one delivery (runs in a worker thread)."""
    d = job.d
    if any(k in blocked and blocked[k] > now for k in (d["target"], _episode(d))):
        # the target, or an earlier message of the episode to it, failed earlier in this
        # round: wait for its next attempt
        return None
    store = _lazy_store(store_path)
    try:
        # (a store error here is a failed attempt, retried: the message is not at fault)
        if d.get("decision") in ("resolve", "correct") and never_heard(store, d):
            # what it ends or corrects expired in this round, just before it
            return UNHEARD_NOW
        opens = d.get("opens")
        if d.get("decision") in ("escalate", "repeat") and _episode(d) is not None:
            # read under the claim: an operator's re-queue may have had it asked again
            # since this round read it (:func:`_reconsider`)
            row = store.q("SELECT opens, maybe_sent FROM deliveries WHERE alert_id=? AND "
                          "target=?", [int(d["alert_id"]), d["target"]])[0]
            opens = row["opens"]
            if opens is None:
                opens = store.record_opens(int(d["alert_id"]), d["target"],
                                           opens_for_target(store, d))
            elif opens and row["maybe_sent"] == 0 and not opens_for_target(store, d):
                # read as the opening while an earlier message of the episode was refused
                # for good (which holds nothing back), no attempt of it can have reached
                # the target, and that one has reached it since: it reads as decided, in
                # that one's thread, not as a second opening
                opens = store.record_opens(int(d["alert_id"]), d["target"], False,
                                           again=True)
        d = {**d, "opens": opens}
        job.thread = thread_root(store, d)
        try:
            data = json.loads(d["data"])
        except Exception as e:
            return RenderFailed(f"message not built: {type(e).__name__}: {e}")
        if d.get("kind") == "digest":  # the alerts it lists as this target got them
            try:
                data = digest.for_target(config, store, data, d["target"],
                                         int(d["alert_id"]))
            except sqlite3.Error:
                raise
            except Exception as e:  # a listed alert's text: the digest goes as written
                log.warning("alert=%d target=%s digest listed as stored: %s: %s",
                            d["alert_id"], d["target"], type(e).__name__, e)
        if d.get("decision") in ("resolve", "correct", "escalate"):  # the rise as it had it
            try:
                data = as_told(data, told_to_target(store, d))
            except sqlite3.Error:
                raise
            except Exception as e:  # a told message's data: the end goes as written
                log.warning("alert=%d target=%s told as stored: %s: %s",
                            d["alert_id"], d["target"], type(e).__name__, e)
        try:
            if opens:  # the first message of its episode this target gets
                data = as_opening(data)
            msg = for_target(job.url, d, data, config, store)
            title, body, fmt, attachments = msg.title, msg.body, msg.body_format, msg.attachments
        except Exception as e:
            return RenderFailed(f"message not built: {type(e).__name__}: {e}")
        mid = message_id(d["alert_id"], d["target"], d.get("dedupe_key") or "",
                         d.get("alert_created_at") or d["created_at"], host_part(store))
        if fmt == "card":
            body = _with_message_id(body, mid, job.thread)
        if d.get("kind") in EPISODE_KINDS and d.get("substance"):
            # whether an attempt may have reached the target, recorded before it: a
            # silence that holds a retry of a substance's message back leaves it as
            # possibly heard; one read as its target's opening may yet read otherwise only
            # while none can have (_reconsider)
            job.unreached = store.record_attempt(int(d["alert_id"]), d["target"])
        job.phase = "send"
        job.deadline = time.monotonic() + timeout + 5
        try:
            extra: dict[str, Any] = {"text_part": msg.text} if msg.text is not None else {}
            if job.thread is not None:
                extra["thread"] = job.thread
            return send_fn(job.url, title=title, body=body, body_format=fmt,
                           attachments=attachments, timeout=timeout, message_id=mid, **extra)
        except Exception as e:  # a send function must not take the round down
            return SendResult(False, "ERROR", f"{type(e).__name__}: {e}", kind="error")
    finally:
        store.close()


def _with_message_id(card_json: str, mid: str, thread: str | None = None) -> str:
    """The Teams message with the delivery's stable identity (``warnd_message_id``) and,
    for a later message of an episode, that of its first (``warnd_thread_id``)."""
    try:
        doc = json.loads(card_json)
    except ValueError:
        return card_json
    if isinstance(doc, dict):
        doc["warnd_message_id"] = mid
        if thread is not None:
            doc["warnd_thread_id"] = thread
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).replace("{{", "{ {")


def with_timeouts(url: str, t: object) -> str:
    """The URL with the target's connect/read timeouts (apprise's ``cto``/``rto``),
    unless the URL sets them itself."""
    from urllib.parse import parse_qsl, urlsplit

    cto = getattr(t, "connect_timeout", None)
    rto = getattr(t, "read_timeout", None)
    try:
        have = {k.lower() for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    except ValueError:
        return url
    extra = []
    if cto and "cto" not in have:
        extra.append(f"cto={parse_duration(cto).total_seconds():g}")
    if rto and "rto" not in have:
        extra.append(f"rto={parse_duration(rto).total_seconds():g}")
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def _bounded(jobs: list[_Job], fn: Callable[[_Job], Any], workers: int, limit: float,
             stop: Callable[[], bool] | None = None) -> Iterator[tuple[_Job, Any]]:
    """Run ``fn`` over ``jobs`` in daemon threads, ``workers`` at a time; yield each
    outcome, or ``TIMEOUT`` for a job still running at its deadline (``limit`` seconds
    after it started; ``fn`` may move ``job.deadline`` when it enters a new phase).
    Once ``stop()`` is true no job begins: those running end, and each not begun is
    yielded with ``STOPPED``.

    A job that overruns is given up and its worker left behind (a Python thread
    cannot be stopped): its slot goes to the next job, so one stuck render or send
    never holds back the others, and the round always ends. A target's jobs run one
    after another, different targets in parallel.
    """
    results: queue.Queue[tuple[int, Any]] = queue.Queue()
    todo = list(enumerate(jobs))[::-1]
    running: dict[int, _Job] = {}

    def call(i: int, job: _Job) -> None:
        try:
            out = fn(job)
        except BaseException as e:  # noqa: BLE001 - reported as the job's outcome
            out = SendResult(False, "ERROR", f"{type(e).__name__}: {e}", kind="error")
        results.put((i, out))

    while todo or running:
        if stop is not None and stop():
            if not running:
                for _i, job in reversed(todo):
                    yield job, STOPPED
                return
        while todo and len(running) < workers and not (stop is not None and stop()):
            # one job per target at a time: a target's back-off (Retry-After, a timeout)
            # then holds its next deliveries in the same round
            busy = {j.d["target"] for j in running.values()}
            pick = next((k for k in range(len(todo) - 1, -1, -1)
                         if todo[k][1].d["target"] not in busy), None)
            if pick is None:
                break
            i, job = todo.pop(pick)
            job.started = time.monotonic()
            job.deadline = job.started + limit
            running[i] = job
            threading.Thread(target=call, args=(i, job), daemon=True,
                             name=f"warnd-send-{job.d['alert_id']}").start()
        if not running:
            continue  # stopped before any began
        first_end = min(j.deadline for j in running.values())
        try:
            i, out = results.get(timeout=max(0.0, first_end - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for i, job in list(running.items()):
                if now >= job.deadline:
                    del running[i]
                    yield job, TIMEOUT
            continue
        job = running.pop(i, None)
        if job is not None:  # else: a job given up earlier finished after all
            yield job, out


#: The outcome of a job that ran past its time limit.
TIMEOUT = object()
#: The outcome of a job not begun: the service is stopping.
STOPPED = object()
#: The outcome of a job of an end or a correction whose target, it turned out as it was
#: about to go, never had what it ends or corrects (:func:`never_heard`).
UNHEARD_NOW = object()


def dispatch_pending(
    config: Config,
    store: Store,
    *,
    now: datetime,
    send: Callable[..., Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    stop: Callable[[], bool] | None = None,
    digests: bool = True,
) -> dict[str, int]:
    """Send every due delivery once; record success, retry time or expiry.

    Also enqueues the digest when one is due (unless ``digests`` is False: the daemon's
    sources not polled yet since it started), marks deliveries a silence now covers,
    and moves retries that fall into quiet hours to the end of the quiet time. Each
    delivery is claimed (:meth:`Store.claim_delivery`) before it is sent, rendered and
    sent in a worker within ``render_timeout`` + ``send_timeout``, and its outcome is
    recorded on its own: a store error for one never affects another. The claims of
    those still to go are renewed as the round goes on (``clock``: the time then; by
    default ``now`` and the time the round has taken), so a long round (a slow target
    working through a backlog) does not leave them looking stalled. Once ``stop()`` is
    true (the service stopping) no send begins: those in flight end and are recorded,
    and the others are freed, as they were, for the next start (a send cut off by the
    exit after it had reached its target would be sent again).
    """
    started = time.monotonic()
    if clock is None:
        def clock() -> datetime:
            return now + timedelta(seconds=time.monotonic() - started)
    send_fn = send or send_message
    by_name = {t.name: t for t in config.targets}
    a = config.alerting
    backoff = parse_duration(a.retry_backoff)
    max_backoff = parse_duration(a.retry_max_backoff)
    expire = parse_duration(a.expire_after)
    timeout = parse_duration(a.send_timeout).total_seconds()
    render_limit = parse_duration(a.render_timeout).total_seconds()
    lease = max(parse_duration(a.claim_lease),
                timedelta(seconds=render_limit + timeout + 60))
    counts = {"delivered": 0, "retrying": 0, "expired": 0, "failed": 0, "silenced": 0,
              "waiting": 0, "held": 0, "unrecorded": 0, "muted": 0, "unheard": 0,
              "acknowledged": 0}
    if config.alerting.digest is not None and digests:
        try:
            digest.maybe_enqueue(config, store, now=now)
        except Exception as e:  # the digest must never block alerts
            log.error("digest not built: %s", e)
    try:
        _quiet_as_configured(config, store, now)
    except sqlite3.Error as e:
        log.error("waiting deliveries not checked against quiet hours: store error: %s", e)
    try:
        _as_routed(config, store, now)
    except sqlite3.Error as e:
        log.error("waiting deliveries not checked against the routes: store error: %s", e)
    try:
        _configured_again(config, store, now)
    except sqlite3.Error as e:
        log.error("deliveries kept for targets not configured not checked: store error: %s", e)
    blocked = targets.blocked_targets(store, now)
    try:
        along = _bring_earlier_along(config, store, now)
    except sqlite3.Error as e:
        log.error("earlier messages not brought along: store error: %s", e)
        along = set()
    jobs: list[_Job] = []
    for d in store.due_deliveries(now):
        try:
            job = _prepare(config, store, d, by_name, blocked, counts, now=now,
                           max_backoff=max_backoff, lease=lease, expire=expire,
                           quiet_applies=(int(d["alert_id"]), d["target"]) not in along)
        except sqlite3.Error as e:
            log.error("alert=%s target=%s not dispatched: store error: %s", d["alert_id"],
                      d["target"], e)
            continue
        if job is not None:
            jobs.append(job)
    if not jobs:
        return counts
    # targets are sent in parallel, so a slow or dead one never holds back another;
    # the outcomes are recorded here, in this thread (the store is per thread)
    # a target (by name) or an episode's messages to it (by _episode) that wait in
    # this round, until when
    round_blocked: dict[Any, datetime] = {}
    round_why: dict[str, str] = {}  # why a target waits: what it answered this round
    # the round's claims not yet answered, renewed well before they could run out: two
    # outcomes are at most one job's time apart, and a claim lasts that and 55 s more
    left = {(int(j.d["alert_id"]), j.d["target"]) for j in jobs}
    renew_every = (lease - timedelta(seconds=render_limit + timeout + 5)) / 2
    renewed = now
    not_begun = 0  # the service is stopping
    for job, result in _bounded(
        jobs,
        lambda j: _work(j, config, store.path, send_fn, timeout, round_blocked, now),
        SEND_WORKERS, render_limit, stop,
    ):
        d = job.d
        aid, name = int(d["alert_id"]), d["target"]
        left.discard((aid, name))
        if result is STOPPED:
            try:
                store.release_claim(aid, name)
            except sqlite3.Error as e:  # freed by the next holder of the state lock
                log.error("alert=%d target=%s: claim not freed: store error: %s", aid, name,
                          e)
            not_begun += 1
            continue
        if left and clock() - renewed >= renew_every:
            renewed = clock()
            try:
                store.extend_claims(left, owner=OWNER, until=renewed + lease)
            except sqlite3.Error as e:
                log.error("claims of the deliveries still to go not renewed: store error: %s",
                          e)
        try:
            if result is TIMEOUT and job.phase == "render":
                result = RenderFailed(f"message not built within {render_limit:g} s")
            elif result is TIMEOUT:
                result = SendResult(False, "TIMEOUT",
                                    f"timeout: the send did not end within {timeout:g} s",
                                    kind="timeout")
            if isinstance(result, RenderFailed):
                store.mark_delivery(aid, name, status="failed", error=result.reason, now=now)
                counts["failed"] += 1
                log.error("alert=%d target=%s failed: %s (retry it with `warnd outbox retry "
                          "%d`)", aid, name, result.reason, aid)
                continue
            if result is UNHEARD_NOW:
                if not _unheard(store, d, counts):
                    store.postpone_delivery(aid, name, now)  # free it: tried next round
                continue
            if result is None:  # its target or an earlier message failed in this round
                if name in round_blocked:
                    until, why = round_blocked[name], round_why[name]
                else:
                    until = round_blocked.get(_episode(d), now + backoff)
                    why = WAITS_FOR_EARLIER
                if not _expire_held(store, d, why, counts, now=now, expire=expire):
                    store.hold_delivery(aid, name, until, why)
                    counts["held"] += 1
                continue
            wait, retry_at = _record(store, d, job.url, result, counts, now=now,
                                     backoff=backoff, max_backoff=max_backoff, expire=expire,
                                     max_retry_after=parse_duration(a.max_retry_after),
                                     unreached=job.unreached)
            if wait is not None:
                round_blocked[name] = wait
                round_why[name] = f"{_error(result)} (target backing off)"
            if retry_at is not None and _episode(d) is not None:
                round_blocked[_episode(d)] = retry_at
        except sqlite3.Error as e:
            counts["unrecorded"] += 1
            log.error("alert=%d target=%s: outcome not recorded (%s); the claim keeps it from "
                      "being sent again until it expires", aid, name, e)
    if not_begun:
        log.info("%d deliveries not begun: stopping; they go at the next start", not_begun)
    return counts


def _rise_unheard(store: Store, d: dict[str, Any], db: Any, now: datetime, *,
                  mark: bool | str = True) -> None:
    """A rise's message silenced before any of its deliveries went out (none delivered,
    none held back after an attempt that may have reached its target:
    :func:`warnd.alerting.told.maybe_heard`, a duplicate opening otherwise): its recipients
    know what they knew before it, and are told when the silence ends
    (:func:`warnd.alerting.decide.enqueue_findings`). An opening: the rise counts as
    not told yet; an escalation: the evidence told is that of the episode's messages
    heard (``unheard``: decide reads it again from them); the end of a told rise: told
    once the silence has ended or the mute is lifted, unless a new rise opens first
    (``end_silenced``, as for an end held back when it was decided). ``mark``: what held
    it back (``True``, a silence; ``"muted"``, its substance muted). So too the end of a
    told spike or fall, unless the same kind opened again since, and a correction: of the
    whole episode as its end, of one source of an episode that goes on
    (``corrections_silenced``) as one held back when it was decided; and a region's join
    of a spike or a fall (``joins_silenced``), as one held back when it was decided. An
    end (a correction) is marked so also when another target already had it: told after
    to the targets that did not."""
    data = data_of(d)
    episode = (d.get("kind"), data.get("direction"))
    # a region's join of a spike (a fall), told to the desks that had none of it
    joins = episode in OTHER_EPISODES and bool(data.get("joined"))
    if (episode not in (("trend", "increase"), *OTHER_EPISODES) or not d.get("substance")
            or data.get("decision") not in (
                ("open", "escalate", "resolve", "correct") if episode == ("trend", "increase")
                else ("escalate", "resolve", "correct") if joins else ("resolve", "correct"))):
        return
    if data["decision"] not in ("resolve", "correct") and db.execute(
            f"SELECT 1 FROM deliveries t WHERE alert_id=? AND (status='delivered' OR "
            f"{maybe_heard()})", (int(d["alert_id"]),)).fetchone():
        return  # someone heard it, or may have: an attempt of it may have reached them
    # an end (a correction) is held back from this target even when another had it: told
    # to those that did not (decide reads who had it)
    scope = substance_scope(d["substance"], *episode)
    if data["decision"] == "correct" and _corrects_one(store, d["substance"], episode, db):
        # of one source of an episode that goes on: told after, as one held back when it
        # was decided (unless the episode opened anew since)
        st = store.episode_state(scope) or {}
        if int(d["alert_id"]) not in st.get("corrections_silenced", []) and not (
                store.opened_since(d["substance"], *episode, int(d["alert_id"]))):
            store.save_episode_state(scope, held_too(st, "corrections_silenced",
                                                     d["alert_id"]), db, now=now)
        return
    if joins and data["decision"] == "escalate":
        # told once nothing holds it back, to its desks that still had none of the
        # episode, as one held back when it was decided
        st = store.episode_state(scope) or {}
        if int(d["alert_id"]) not in st.get("joins_silenced", []):
            store.save_episode_state(scope, held_too(st, "joins_silenced", d["alert_id"]), db,
                                     now=now)
        return
    if episode != ("trend", "increase"):
        st = store.episode_state(scope) or {}
        if not st.get("end_silenced") and not store.opened_since(
                d["substance"], *episode, int(d["alert_id"])):
            store.save_episode_state(scope, {**st, "end_silenced": int(d["alert_id"])}, db,
                                     now=now)
        return
    told = store.episode_state(scope)
    if data["decision"] in ("resolve", "correct"):
        if told is not None and not told.get("open") and not told.get("end_silenced"):
            store.save_episode_state(scope, {**told, "end_silenced": int(d["alert_id"])},
                                     db, now=now)
        return
    if not (told and told.get("open")):
        return
    if data["decision"] == "open":
        told = {**told, "open": False, "silenced": mark}
    else:
        told = {**told, "silenced": mark, "unheard": True}
    store.save_episode_state(scope, told, db, now=now)


def _corrects_one(store: Store, substance: str, episode: tuple[str, str], db: Any) -> bool:
    """True when a correction of the substance's ``episode`` (kind, direction) withdrew
    one source of it only: the episode goes on (a rise: what its recipients were told is
    still open; a spike or a fall: a series of the substance still has it open)."""
    if episode == ("trend", "increase"):
        told = store.episode_state(substance_scope(substance)) or {}
        return bool(told.get("open"))
    return bool(store.open_episode_scopes(substance, ":".join(episode)))


def _taken_out(config: Config, a: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether a stored message is about substances all taken out of the config since:
    a trend's or a spike's substance, or every substance a notice names (``data``: its
    parsed ``data``, :func:`data_of`)."""
    if a["kind"] == "notice":
        subs = data.get("substances") or [a["substance"]]
        return all(s and s not in config.substances for s in subs)
    return a["kind"] in EPISODE_KINDS and a["substance"] not in config.substances


def _speaking_for(config: Config, store: Store, d: dict[str, Any], now: datetime
                  ) -> dict[str, Any]:
    """The waiting delivery as silences and mutes judge it. A notice naming several
    substances is held back from its target only when every one of them that routes to
    the target is silenced, muted or taken out of the config: it is judged as the first
    that is none of these (else the first that routes there, or its own substance)."""
    if d.get("kind") != "notice":
        return d
    subs = data_of(d).get("substances") or []
    if len(subs) < 2:
        return d
    routing = [s for s in subs
               if d["target"] in route(config, {**d, "substance": s, "status": "open"})]
    for sub in routing:
        one = {**d, "substance": sub}
        sc = config.substances.get(sub)
        if sc is not None and not sc.muted and silenced_by(store, one, now) is None:
            return one
    return {**d, "substance": routing[0]} if routing else d


def _muted_now(config: Config, t: Any, d: dict[str, Any]) -> str | None:
    """Why the configuration now keeps a waiting delivery from being sent, if it does:
    its target or its substance muted, or its substance taken out of the config (a
    trend's or a spike's message: nothing judges the substance any more, so no end or
    correction would follow it; a notice, as :func:`_speaking_for` judges it: each
    substance routing it to the target is gone, as a mute of them all would hold it
    back)."""
    if t is not None and t.muted:
        return f'target "{t.name}" is muted in the configuration'
    sub = d.get("substance") or ""
    sc = config.substances.get(sub)
    if sc is not None and sc.muted and d.get("kind") != "digest":
        return f'substance "{sub}" is muted in the configuration'
    if sc is None and sub and d.get("kind") in (*EPISODE_KINDS, "notice"):
        return f'substance "{sub}" is no longer in the configuration'
    return None


def _prepare(
    config: Config, store: Store, d: dict[str, Any], by_name: dict[str, Any],
    blocked: dict[str, tuple[datetime, str]], counts: dict[str, int], *, now: datetime,
    max_backoff: timedelta, lease: timedelta, expire: timedelta, quiet_applies: bool = True,
) -> _Job | None:
    """Silence, mute, quiet hours, missing target, target backoff, claim; a job or None.

    ``quiet_applies`` False: the delivery goes with a later message of its episode
    that is due now (:func:`_bring_earlier_along`), in quiet hours too."""
    t = by_name.get(d["target"])
    aid, name = int(d["alert_id"]), d["target"]
    held = _speaking_for(config, store, d, now)
    sid = silenced_by(store, held, now)
    if sid is not None:  # silenced after it was decided (e.g. while it waited)
        with store.write() as db:
            db.execute("UPDATE deliveries SET status='silenced' WHERE alert_id=? AND target=?",
                       (aid, name))
            # the alert is silenced when none of it went out nor still goes: a target that
            # had it (or may have: an attempt reached it, perhaps) told it, and one still
            # waiting for it (a notice whose other substances route it there, judged on
            # its own when due) may yet
            db.execute("UPDATE alerts SET status='silenced', silenced_by=? WHERE id=? "
                       "AND status='open' AND NOT EXISTS (SELECT 1 FROM deliveries t WHERE "
                       f"alert_id=? AND (status='delivered' OR {maybe_heard()} OR "
                       "status='pending' AND target<>?))", (sid, aid, aid, name))
            _rise_unheard(store, d, db, now)
        counts["silenced"] += 1
        log.info("alert=%d target=%s not sent: silence %d", aid, name, sid)
        return None
    muted = _muted_now(config, t, held)
    if muted:  # muted (taken out) after it was decided, a reload while it waited: never sent
        with store.write() as db:
            db.execute("UPDATE deliveries SET status='dropped', claimed_until=NULL, "
                       "claimed_by=NULL, last_error=? WHERE alert_id=? AND target=? AND "
                       "status='pending'", (f"not sent: {muted}", aid, name))
            if muted.startswith("substance"):  # told once it is no longer muted (is back)
                _rise_unheard(store, d, db, now, mark="muted")
        counts["muted"] += 1
        log.info("alert=%d target=%s not sent: %s", aid, name, muted)
        return None
    if _unheard(store, d, counts):  # what it ends or corrects expired since it was decided
        return None
    if _acknowledged_reminder(store, d):
        with store.write() as db:
            db.execute("UPDATE deliveries SET status='dropped', claimed_until=NULL, "
                       "claimed_by=NULL, last_error=? WHERE alert_id=? AND target=? AND "
                       "status='pending'", (ACKNOWLEDGED, aid, name))
        counts["acknowledged"] += 1
        log.info("alert=%d target=%s reminder not sent: the episode was acknowledged while "
                 "it waited", aid, name)
        return None
    since = _first_due(d)
    if (t is not None and since is not None and now - since >= expire
            and not _after_earlier(store, d) and _expire_held(
                store, d, f"not tried within alerting.expire_after "
                f"({config.alerting.expire_after}) after it became due at {iso(since)}: "
                "nothing dispatched the outbox meanwhile",
                counts, now=now, expire=expire, since=since)):
        return None  # a first attempt as late as that would bring old news
    wait = (quiet.due_at(config, d["severity"], now)
            if d.get("kind") != "digest" and quiet_applies else None)
    if wait is not None:  # a retry that fell into quiet hours
        if _waited(d) and t is not None:
            # it expires while it waits, not at its first attempt after the quiet time
            # (a weekend): looked at again then, it is not sent after it expired
            ends = datetime.fromisoformat(d.get("due_at") or d["created_at"]) + expire
            if _expire_held(store, d, d.get("last_error") or "", counts, now=now,
                            expire=expire):
                return None
            wait = min(wait, ends)
        store.postpone_delivery(aid, name, wait)
        counts["waiting"] += 1
        return None
    if t is None:
        # kept until the target is configured again or an operator drops it
        reason = _not_configured(aid, name)
        store.hold_delivery(aid, name, now + max_backoff, reason)
        counts["held"] += 1
        log.warning("alert=%d target=%s: %s", aid, name, reason)
        return None
    if name in blocked:
        until, why = blocked[name]
        if not _expire_held(store, d, why, counts, now=now, expire=expire):
            store.hold_delivery(aid, name, until, why)
            counts["held"] += 1
        return None
    try:
        url = with_timeouts(target_url(t), t)
    except Exception as e:  # (its password missing): a failed attempt, as a refusal is
        gone = now - datetime.fromisoformat(d.get("due_at") or d["created_at"]) >= expire
        with store.write():
            targets.record_outcome(store, name, ok=False, error=str(e), now=now)
            store.mark_delivery(aid, name, status="expired" if gone else "pending",
                                error=str(e), next_attempt_at=now + max_backoff, now=now)
        counts["expired" if gone else "retrying"] += 1
        log.error("alert=%d target=%s%s: %s", aid, name,
                  f" expired after {int(d['attempts']) + 1} attempts" if gone else "", e)
        return None
    if not store.claim_delivery(aid, name, owner=OWNER, until=now + lease, now=now):
        return None  # another dispatcher has it
    return _Job(d, url, t)


def _first_due(d: dict[str, Any]) -> datetime | None:
    """For a delivery whose first attempt is still to be made (none made, none held back
    with a reason: not one that waited for its target or an earlier message, nor one an
    operator queued again), when it became due: its due time, or the end of the quiet
    time it was put off to, whichever is later. Its expiry counts from then: a message
    decided before the daemon was down for days is not sent days late as a first
    attempt, while the wait for the end of quiet hours does not count against it."""
    if int(d["attempts"]) or d.get("last_error") is not None:
        return None
    due = datetime.fromisoformat(d.get("due_at") or d["created_at"])
    return max(due, datetime.fromisoformat(d["next_attempt_at"]))


def _after_earlier(store: Store, d: dict[str, Any]) -> bool:
    """Whether an earlier message of the delivery's episode still waits for its target:
    it goes first, and this one is held behind it, expiring then if it is due to (an
    end or a correction recorded as not sent when that earlier one expires:
    :func:`_expire_held`)."""
    return bool(store.q(
        "SELECT 1 FROM deliveries p JOIN alerts l ON l.id = p.alert_id JOIN alerts e "
        "ON e.id = ? WHERE p.status='pending' AND p.target=? AND l.id < e.id AND "
        f"{_same_matter('l')} LIMIT 1", [int(d["alert_id"]), d["target"], *EPISODE_KINDS]))


def _waited(d: dict[str, Any]) -> bool:
    """Whether a delivery was tried, or waited without an attempt with its target backing
    off or for an earlier message of its episode: a retry, whose expiry runs while it
    waits for the end of quiet hours (not a first attempt put off to it, nor one an
    operator queued again)."""
    why = str(d.get("last_error") or "")
    if int(d["attempts"]):
        return True
    return not why.startswith("queued again") and (
        why == WAITS_FOR_EARLIER or why.rstrip(")").endswith("target backing off"))


def _unheard(store: Store, d: dict[str, Any], counts: dict[str, int]) -> bool:
    """Record an end or a correction whose target never had the messages it ends or
    corrects (:func:`never_heard`) as not sent (:data:`UNHEARD`); whether it was."""
    if not never_heard(store, d):
        return False
    aid, name = int(d["alert_id"]), d["target"]
    with store.write() as db:
        db.execute("UPDATE deliveries SET status='dropped', claimed_until=NULL, "
                   "claimed_by=NULL, last_error=? WHERE alert_id=? AND target=? AND "
                   "status='pending'", (UNHEARD, aid, name))
    counts["unheard"] += 1
    log.info("alert=%d target=%s %s not sent: the target never had the messages it %s",
             aid, name, d["decision"], "corrects" if d["decision"] == "correct" else "ends")
    return True


def _expire_held(store: Store, d: dict[str, Any], why: str, counts: dict[str, int], *,
                 now: datetime, expire: timedelta, since: datetime | None = None) -> bool:
    """Expire a delivery held without an attempt (its target backing off, an earlier
    message of its episode being retried) once ``expire`` has passed since it became
    due, as an attempt would: a backlog waiting for a dead target expires on time, not
    one message per back-off as each gets its turn (and the rest sent late when the
    target is back). An end or a correction whose target never had what it ends or
    corrects (that expired just before it) is recorded as not sent instead, to go after
    it should an operator queue it again. Whether it expired or was recorded so.
    ``since``: when its expiry counts from (default: when it became due)."""
    if now - (since or datetime.fromisoformat(d.get("due_at") or d["created_at"])) < expire:
        return False
    if _unheard(store, d, counts):
        return True
    aid, name = int(d["alert_id"]), d["target"]
    with store.write() as db:
        db.execute("UPDATE deliveries SET status='expired', last_error=?, claimed_until=NULL, "
                   "claimed_by=NULL WHERE alert_id=? AND target=? AND status='pending'",
                   (why, aid, name))
    counts["expired"] += 1
    log.error("alert=%d target=%s expired after %d attempts, waiting: %s", aid, name,
              int(d["attempts"]), why)
    return True


def _error(result: Any) -> str:
    """A failed send's reason, as recorded (``refused: …``, ``HTTP 429 …``)."""
    return f"{result.status}: {result.detail}".strip(": ")


def _record(
    store: Store, d: dict[str, Any], url: str, result: Any, counts: dict[str, int], *,
    now: datetime, backoff: Any, max_backoff: Any, expire: Any, max_retry_after: Any,
    unreached: bool = False,
) -> tuple[datetime | None, datetime | None]:
    """Record one outcome: for a failure, the time the target may be tried again (when
    the target itself is unwell) and the time of this delivery's next attempt, which
    the episode's later messages to the target wait for (unless it expired, or the
    target refused this message for good: SMTP 5xx, an HTTP 4xx other than 429).
    ``unreached``: no earlier attempt of the delivery can have reached the target; a
    failure showing that this one did not either (``SendResult.unsent``) keeps it so
    (:meth:`Store.record_not_taken`)."""
    aid, name = int(d["alert_id"]), d["target"]
    if result.ok:
        crash_point("send")
        with store.write():
            store.mark_delivery(aid, name, status="delivered", now=now)
            targets.record_outcome(store, name, ok=True, now=now)
        counts["delivered"] += 1
        log.info("alert=%d target=%s delivered (%s)", aid, name, mask(url))
        return None, None
    created = datetime.fromisoformat(d.get("due_at") or d["created_at"])
    err = _error(result)
    kind = getattr(result, "kind", "")
    retry_after = getattr(result, "retry_after", None)
    # (the exponent is capped: 2**40 minutes is far beyond any max_backoff, and an
    # uncapped one overflows timedelta after a long outage)
    delay = min(backoff * (2 ** min(int(d["attempts"]), 40)), max_backoff)
    if retry_after is not None:
        delay = min(max(delay, timedelta(seconds=retry_after)), max_retry_after)
    # the target itself is unwell (not this one message): its other deliveries wait too
    detail = str(getattr(result, "detail", ""))
    whole_target = kind in ("timeout", "refused", "tls", "dns") or (
        kind == "http" and (retry_after is not None or detail.startswith(("HTTP 429", "HTTP 5"))))
    # refused for good: retried all the same, but the episode's next messages do not wait
    for_good = (kind == "smtp" and detail.startswith("SMTP 5")) or (
        kind == "http" and detail.startswith("HTTP 4") and not whole_target)
    with store.write():
        targets.record_outcome(store, name, ok=False, error=err, now=now,
                               blocked_until=now + delay if whole_target else None)
        if unreached and getattr(result, "unsent", False):
            store.record_not_taken(aid, name)
        if now - created >= expire:
            store.mark_delivery(aid, name, status="expired", error=err, now=now)
            counts["expired"] += 1
            log.error("alert=%d target=%s expired after %d attempts: %s", aid, name,
                      int(d["attempts"]) + 1, err)
            return (now + delay if whole_target else None), None
        # looked at again when it expires, if that comes first: not tried after it (with
        # its target still backing off then, it expires without an attempt)
        retry = min(now + delay, created + expire)
        store.mark_delivery(aid, name, status="pending", error=err, next_attempt_at=retry,
                            now=now)
    counts["retrying"] += 1
    log.warning("alert=%d target=%s not accepted (%s); retry at %s", aid, name, err,
                iso(retry))
    return (now + delay if whole_target else None), None if for_good else retry


# -- operator actions (CLI `warnd outbox`, web console) ------------------------------
#: Delivery states an operator can act on.
ACTIONABLE = ("pending", "failed", "expired")


def list_deliveries(
    store: Store, *, statuses: tuple[str, ...] = ACTIONABLE, limit: int = 200,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Deliveries in ``statuses``, newest alert first, with the alert's title.

    ``claimed`` says whether a send is in progress (a live claim).
    """
    from warnd.store import utcnow

    now_s = iso(now or utcnow())
    marks = ",".join("?" * len(statuses))
    rows = store.q(
        "SELECT d.alert_id, d.target, d.status, d.attempts, d.last_error, d.next_attempt_at, "
        "d.created_at, d.due_at, d.delivered_at, d.claimed_until, a.title, a.severity, "
        f"a.kind FROM deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.status IN ({marks}) "
        "ORDER BY d.alert_id DESC, d.target LIMIT ?", [*statuses, limit])
    for r in rows:
        r["claimed"] = bool(r["claimed_until"] and r["claimed_until"] > now_s)
    return rows


def count_deliveries(store: Store, *, statuses: tuple[str, ...] = ACTIONABLE) -> int:
    """How many deliveries are in ``statuses``: all :func:`list_deliveries` would list
    without its ``limit``."""
    marks = ",".join("?" * len(statuses))
    return int(store.q(f"SELECT COUNT(*) AS n FROM deliveries WHERE status IN ({marks})",
                       list(statuses))[0]["n"])


def _select(db: Any, alert_id: int, target: str | None, now_s: str
            ) -> tuple[str, list[Any], list[str]]:
    """The deliveries of ``alert_id`` (to ``target``, or all) an operator may act on:
    in an :data:`ACTIONABLE` state and not being sent right now (a live claim). Their
    ``WHERE`` clause, its parameters and the targets they go to."""
    marks = ",".join("?" * len(ACTIONABLE))
    where = (f"alert_id=? AND status IN ({marks}) "
             "AND (claimed_until IS NULL OR claimed_until <= ?)")
    params: list[Any] = [alert_id, *ACTIONABLE, now_s]
    if target:
        where += " AND target=?"
        params.append(target)
    names = [r[0] for r in db.execute(
        f"SELECT DISTINCT target FROM deliveries WHERE {where}", params)]
    return where, params, names


def _counted(db: Any, where: str, params: list[Any]) -> tuple[int, int]:
    """The send attempts of the deliveries ``where`` selects, and how many of them were
    given up (expired, failed): what ``/metrics`` counts of them
    (``warnd_delivery_attempts``, ``warnd_alerts_failed``), carried in the store
    (:meth:`Store.carry`) before a retry or a drop changes them, so that those counters
    never go down."""
    attempts, given_up = db.execute(
        "SELECT COALESCE(SUM(attempts), 0), COALESCE(SUM(status IN ('expired', 'failed')), 0) "
        f"FROM deliveries WHERE {where}", params).fetchone()
    return int(attempts), int(given_up)


def _same_matter(a: str) -> str:
    """SQL: alert ``a`` is about the same matter as alert ``e`` (a substance's trend or
    spike in one direction, or a source's failure), whichever episode of it; its
    parameters are :data:`EPISODE_KINDS`."""
    kinds = ",".join("?" * len(EPISODE_KINDS))
    return (f"({a}.substance = e.substance AND {a}.kind = e.kind AND "
            f"COALESCE({a}.direction, '') = COALESCE(e.direction, '') AND "
            f"(e.kind IN ({kinds}) AND e.substance != '' OR "
            f"e.kind = 'source_health' AND {a}.source = e.source))")


def _release_later(db: Any, alert_id: int, names: list[str], now_s: str) -> None:
    """The later messages of ``alert_id``'s episode to ``names``, held until its next
    attempt (:data:`WAITS_FOR_EARLIER`), made due now: an operator re-queued or dropped
    it, so that attempt is not what they wait for any more. An earlier message still
    waiting goes first with them (:func:`_bring_earlier_along`), and they wait again
    should it fail."""
    db.conn.executemany(
        "UPDATE deliveries SET next_attempt_at=? WHERE status='pending' AND target=? AND "
        "last_error=? AND next_attempt_at>? AND alert_id>? AND alert_id IN (SELECT l.id "
        f"FROM alerts l JOIN alerts e ON e.id=? WHERE {_same_matter('l')})",
        [(now_s, name, WAITS_FOR_EARLIER, now_s, alert_id, alert_id, *EPISODE_KINDS)
         for name in names])


def _requeue_unheard(db: Any, alert_id: int, names: list[str], now_s: str) -> int:
    """The ends and corrections of ``alert_id``'s episode (up to its next opening; a
    source's recovery after its failure)
    recorded as not sent to ``names`` because those targets never had its messages
    (:data:`UNHEARD`), queued again: an operator queued ``alert_id`` again for them, so
    they hear of the episode now and are told its end or its withdrawal after it (the
    messages of an episode go in order: :func:`_bring_earlier_along`). How many."""
    n = 0
    for name in names:
        n += int(db.execute(
            "UPDATE deliveries SET status='pending', attempts=0, next_attempt_at=?, due_at=?, "
            "last_error='queued again with an earlier message of its episode; before: ' || "
            "last_error WHERE status='dropped' AND target=? AND last_error=? AND alert_id>? "
            f"AND alert_id IN (SELECT l.id FROM alerts l JOIN alerts e ON e.id=? WHERE "
            f"{_same_matter('l')} AND l.id < COALESCE((SELECT MIN(o.id) "
            f"FROM alerts o WHERE {_same_matter('o')} AND o.decision='open' AND o.id>e.id), "
            "l.id + 1))",
            (now_s, now_s, name, UNHEARD, alert_id, alert_id, *EPISODE_KINDS,
             *EPISODE_KINDS)).rowcount)
    return n


def _reconsider(db: Any, alert_id: int, names: list[str], now_s: str) -> int:
    """The messages of ``alert_id``'s episode to ``names`` from it on (up to its next
    opening) that wait to be sent (the one queued again, a later one being retried)
    and read as their target's opening, with no attempt of them that can have reached
    it (``maybe_sent`` 0 or none: each was refused, :meth:`Store.record_attempt`):
    whether they read as the opening is asked again when each is next sent (``opens``
    NULL, :func:`opens_for_target`). An operator queued ``alert_id`` again for those targets:
    an earlier message of the episode may now reach them first, and a later one then
    reads as decided, in its thread, as if each had gone in order the first time. One
    that may have reached its target (a timeout, a connection dropped, a crash during
    its send) keeps its text, Message-ID and thread. How many."""
    n = 0
    for name in names:
        n += int(db.execute(
            "UPDATE deliveries SET opens=NULL, maybe_sent=NULL WHERE status='pending' AND "
            "target=? AND opens=1 AND COALESCE(maybe_sent, 0)=0 AND (claimed_until IS NULL "
            "OR claimed_until <= ?) AND alert_id>=? AND alert_id IN (SELECT l.id FROM alerts l "
            f"JOIN alerts e ON e.id=? WHERE {_same_matter('l')} AND l.id < COALESCE((SELECT "
            f"MIN(o.id) FROM alerts o WHERE {_same_matter('o')} AND o.decision='open' AND "
            "o.id>e.id), l.id + 1))",
            (name, now_s, alert_id, alert_id, *EPISODE_KINDS, *EPISODE_KINDS)).rowcount)
    return n


def _superseded(db: Any, where: str, params: list[Any]) -> dict[str, int]:
    """Of the deliveries ``where`` selects (:func:`_select`), those whose target has had
    a later message of the same episode kind delivered since (a substance's trend or
    spike in one direction, a source's failure; an escalation read as its opening, the
    end, a new opening): by target, the latest such alert. What they told is out of
    date for that target, and sent now it would arrive after what replaced it."""
    rows = db.execute(
        "SELECT d.target, MAX(l.id) FROM deliveries d JOIN alerts e ON e.id = d.alert_id "
        f"JOIN alerts l ON l.id > e.id AND {_same_matter('l')} "
        "JOIN deliveries ld ON ld.alert_id = l.id AND ld.target = d.target "
        "AND ld.status = 'delivered' "
        f"WHERE (d.alert_id, d.target) IN (SELECT alert_id, target FROM deliveries "
        f"WHERE {where}) GROUP BY d.target", (*EPISODE_KINDS, *params)).fetchall()
    return {str(t): int(later) for t, later in rows}


def superseded(store: Store, alert_id: int, target: str | None = None, *,
               now: datetime | None = None) -> dict[str, int]:
    """The failed, expired or waiting deliveries of ``alert_id`` (to ``target``, or all)
    that :func:`retry_delivery` does not queue again, as their targets have had a later
    message of the episode since: by target, that later alert's id."""
    from warnd.store import utcnow

    where, params, _ = _select(store.db, alert_id, target, iso(now or utcnow()))
    return _superseded(store.db, where, params)


def retry_delivery(store: Store, alert_id: int, target: str | None = None, *,
                   now: datetime | None = None) -> int:
    """Queue an alert's failed, expired or waiting deliveries (to ``target``, or all) to
    be sent at the next dispatch, with a fresh retry window; how many were queued.

    A delivery being sent right now (a live claim) is left alone. The back-off its
    target earned by failing (:mod:`warnd.alerting.targets`) ends: the operator says
    the target is worth trying now (a relay repaired, an address corrected), and the
    delivery would otherwise wait for the end of the back-off, up to an hour or a
    ``Retry-After``. Its attempts count from 0 again (its back-off grows with them);
    what ``/metrics`` counted of them is kept (:func:`_counted`). The end or the
    correction of its episode that a target was not sent, as it never had the episode's
    messages (:data:`UNHEARD`), is queued again with it for that target, and goes after
    it (:func:`_requeue_unheard`). A delivery whose target has had a later message of
    the episode since (:func:`_superseded`: an escalation that read as its opening, the
    end) is not queued again: it would arrive after what replaced it, a second and
    older opening (:func:`superseded` says which). A message of the episode, from this
    one on, that read as its target's opening when first tried and waits to be sent
    again, none of its attempts able to have reached the target, has that asked again
    when it goes (:func:`_reconsider`): after an earlier one queued again that reached
    the target it reads as decided, in its thread, not as a second opening.
    """
    from warnd.store import utcnow

    now_s = iso(now or utcnow())
    with store.write() as db:
        where, params, names = _select(db, alert_id, target, now_s)
        stale = _superseded(db, where, params)
        if stale:
            where += f" AND target NOT IN ({','.join('?' * len(stale))})"
            params = [*params, *stale]
            names = [n for n in names if n not in stale]
        attempts, given_up = _counted(db, where, params)
        store.carry(db, delivery_attempts=attempts, deliveries_given_up=given_up)
        cur = db.execute(
            "UPDATE deliveries SET status='pending', attempts=0, next_attempt_at=?, due_at=?, "
            "last_error=CASE WHEN last_error IS NULL THEN NULL "
            "ELSE 'queued again by an operator; before: ' || last_error END "
            f"WHERE {where}",
            (now_s, now_s, *params))
        n = int(cur.rowcount)
        db.conn.executemany("UPDATE target_state SET blocked_until=NULL, block_reason=NULL "
                            "WHERE target=?", [(name,) for name in names])
        _release_later(db, alert_id, names, now_s)
        after = _requeue_unheard(db, alert_id, names, now_s) if n else 0
        if n:
            _reconsider(db, alert_id, names, now_s)
    if n:
        log.info("alert=%d target=%s: %d deliveries queued again by an operator%s", alert_id,
                 target or "*", n, f", with {after} later message(s) of the episode not sent "
                 "before as the target had not heard of it" if after else "")
    for name, later in stale.items():
        log.info("alert=%d target=%s not queued again: the target had the episode's later "
                 "alert %d since", alert_id, name, later)
    return n


def forget_backoff(store: Store, names: list[str], now: datetime) -> int:
    """End the back-off of the targets ``names``, given another address (or password,
    or timeouts) by a reload: what the old one answered (a refusal, a ``Retry-After``)
    says nothing of the new one. Their messages retried, or held while the target backed
    off, are tried with the next dispatch (quiet hours still apply); how many."""
    if not names:
        return 0
    now_s = iso(now)
    marks = ",".join("?" * len(names))
    with store.write() as db:
        db.execute("UPDATE target_state SET blocked_until=NULL, block_reason=NULL WHERE "
                   f"target IN ({marks})", names)
        n = int(db.execute(
            "UPDATE deliveries SET next_attempt_at=? WHERE status='pending' AND target IN "
            f"({marks}) AND next_attempt_at > ? AND (claimed_until IS NULL OR "
            "claimed_until <= ?) AND (attempts > 0 OR last_error LIKE '%(target backing off)')",
            [now_s, *names, now_s, now_s]).rowcount)
    log.info("targets %s changed by the reload: their back-off ended, %d deliveries tried "
             "with the next dispatch", ",".join(names), n)
    return n


def drop_delivery(store: Store, alert_id: int, target: str | None = None, *,
                  now: datetime | None = None) -> int:
    """Give up an alert's pending, failed or expired deliveries (to ``target``, or all)
    for good (status ``dropped``); how many were dropped."""
    from warnd.store import utcnow

    now_s = iso(now or utcnow())
    with store.write() as db:
        where, params, names = _select(db, alert_id, target, now_s)
        store.carry(db, deliveries_given_up=_counted(db, where, params)[1])
        cur = db.execute(
            "UPDATE deliveries SET status='dropped', claimed_until=NULL, claimed_by=NULL, "
            "last_error='dropped by an operator at ' || ? || COALESCE('; before: ' || "
            f"last_error, '') WHERE {where}",
            (now_s, *params))
        n = int(cur.rowcount)
        _release_later(db, alert_id, names, now_s)
    if n:
        log.warning("alert=%d target=%s: %d deliveries dropped by an operator", alert_id,
                    target or "*", n)
    return n
