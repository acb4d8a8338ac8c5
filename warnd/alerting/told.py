"""What a target was told of a substance's rise: the messages of its episode that
reached that target, read from the alerts and their deliveries; and what an episode's
messages are (:func:`episode_scope`, :func:`episode_start`), which the outbox asks too.

An end or a correction tells each target the rise as that target was told it
(:func:`warnd.alerting.render.as_told`), in the message itself
(:mod:`warnd.alerting.outbox`) and in the digest's list of what was sent
(:mod:`warnd.alerting.digest`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from warnd.store import Store

#: The kinds of a substance's alerts whose messages make episodes (told in order).
EPISODE_KINDS = ("trend", "spike")

#: A substance's episodes other than its rise (kind, direction): the end of one that was
#: told, held back by a silence or a mute, is told once nothing holds it back, as the
#: rise's is.
OTHER_EPISODES = (("spike", "increase"), ("trend", "decrease"))

#: SQL, of the alerts' table: not a message told only to the desks of a region that
#: joined an open rise, which had none of it (its dedupe key says so:
#: :func:`warnd.alerting.decide._joined_targets`). Such a message tells no more than
#: the episode's messages before it: it is not the escalation a reminder repeats or an
#: acknowledgement must answer.
NOT_JOINED = "instr(dedupe_key, ':joined') = 0"


def maybe_heard(alias: str = "t") -> str:
    """SQL, of the deliveries' table ``alias``: a delivery a silence held back after an
    attempt of it that may have reached its target (one was under way, or ended without
    showing that the target did not take it: a timeout, a connection dropped after the
    message was read; ``maybe_sent`` 1, recorded by the outbox before each attempt). Its
    message counts as one the target may have, as a delivered one does."""
    return f"({alias}.status = 'silenced' AND {alias}.maybe_sent = 1)"


def went_out(alias: str = "t") -> str:
    """SQL, of the deliveries' table ``alias``: a delivery that went out, delivered to its
    target or on its way (quiet hours, a retry); what the digest lists as sent and the
    report does not mark "sent to no one"."""
    return f"{alias}.status IN ('delivered', 'pending')"


def had(alias: str = "t") -> str:
    """SQL, of the deliveries' table ``alias``: a delivery whose message its target had
    or still gets (:func:`went_out`, or :func:`maybe_heard`)."""
    return f"({went_out(alias)} OR {maybe_heard(alias)})"


#: The statuses of a delivery of a message addressed to its target: delivered, still
#: to go, or given up (expired, refused for good, dropped); not ``silenced``, one a
#: silence held back, unless an attempt of it may have reached the target
#: (:func:`addressed`).
ADDRESSED = ("pending", "delivered", "expired", "failed", "dropped")


def addressed(alias: str = "t") -> str:
    """SQL, of the deliveries' table ``alias``: a delivery of a message addressed to its
    target (:data:`ADDRESSED`, or :func:`maybe_heard`). A desk with such a delivery of
    an open rise's messages had the episode: a region joining the rise is not told to it
    (:func:`warnd.alerting.decide._joined_targets`), when it is decided nor when the
    routes change while it waits (:func:`warnd.alerting.outbox._as_routed`); one whose
    every message of the episode a silence held back had none of it, and is told."""
    return f"({alias}.status IN {ADDRESSED!r} OR {maybe_heard(alias)})"


def held_too(state: dict[str, Any], key: str, alert_id: int) -> dict[str, Any]:
    """An episode's ``state`` with the message ``alert_id`` added to those a silence or a
    mute held back under ``key`` (``corrections_silenced``, ``joins_silenced``): told
    once nothing holds it back (:func:`warnd.alerting.decide.enqueue_findings`)."""
    return {**state, key: [*state.get(key, []), int(alert_id)]}


def still_held(state: dict[str, Any], key: str, kept: list[int]) -> dict[str, Any]:
    """An episode's ``state`` whose messages held back under ``key`` are ``kept`` only
    (the key left out when none is)."""
    return {k: v for k, v in state.items() if k != key} | ({key: kept} if kept else {})


#: An alert's severities, weakest first.
SEVERITIES = ("info", "warning", "critical")


def episode_scope(d: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The alerts of a delivery's episode kind (a substance's trend or spike in one
    direction, a source's failure): their ``WHERE`` clause and its parameters, read
    through the index alerts_substance; None for any other kind."""
    if d.get("kind") in EPISODE_KINDS and d.get("substance"):
        return ("substance=? AND kind=? AND direction IS ?",
                [d["substance"], d["kind"], d.get("direction")])
    if d.get("kind") == "source_health" and d.get("source"):
        return "substance='' AND kind='source_health' AND source=?", [d["source"]]
    return None


def episode_start(store: Store, scope: tuple[str, list[Any]], alert_id: int) -> int:
    """The id the episode of alert ``alert_id`` (of ``scope``: :func:`episode_scope`)
    starts from: its latest opening or end before it (0 when none): the messages of the
    episode are those of the scope from there up to the alert. An end a silence or a
    mute held back and that was told later (its alert ``…:after-silence``) does not
    count: the messages told after it (a correction held back with it, then the end
    itself) end or correct the episode it ended, and tell it as their targets had it."""
    where, args = scope
    return int(store.q(
        f"SELECT MAX(id) AS id FROM alerts WHERE {where} AND id < ? AND decision IN "
        f"('open', 'resolve') AND NOT (decision = 'resolve' AND {told_later()})",
        [*args, alert_id])[0]["id"] or 0)


def data_of(a: dict[str, Any]) -> dict[str, Any]:
    """A stored alert's (a delivery's) ``data``, parsed (empty when it is not a JSON
    object)."""
    try:
        data = json.loads(a.get("data") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def told_later(alias: str = "alerts") -> str:
    """SQL, of the alerts' table ``alias``: a message a silence or a mute held back and
    that was told later, as its alert ``…:after-silence``."""
    return (f"EXISTS (SELECT 1 FROM alerts l WHERE "
            f"l.dedupe_key = {alias}.dedupe_key || ':after-silence')")


def rise_told(messages: list[dict[str, Any]], direction: Any = "increase"
              ) -> dict[str, Any]:
    """What ``messages`` (the data of a rise's messages someone had, oldest first: its
    opening, escalations, reminders and corrections) told of the rise: each series'
    latest figures (``agree``, by series key), the earliest onset, the strongest category
    (the highest; of a fall, ``direction`` "decrease", the lowest) and the highest
    severity (``severity``: "" when none), and the largest change any of them told
    (``change``: a series' relative change, None when none) with the period it was
    detected at (``change_at``). A correction withdraws its
    series: it is no longer told, and the messages that rested on it no longer give the
    words nor the severity (when none is left, they are the correction's, no stronger
    than theirs) nor the largest change; a later message naming the series again tells
    it again."""
    sign = strength_sign(direction)
    last: dict[str, dict[str, Any]] = {}
    figures: list[dict[str, Any]] = []  # every series' figures told, oldest first
    # (series, category, onset, severity rank) per message
    heard: list[tuple[set[str], int, Any, int]] = []
    for m in messages:
        series = {str(a.get("series")) for a in m.get("agree", [])}
        category = sign * int(m.get("category") or 0)  # its strength
        rank = severity_rank(m.get("severity"))
        if m.get("decision") == "correct":
            for k in series:
                last.pop(k, None)
            figures = [a for a in figures if str(a.get("series")) not in series]
            kept = [h for h in heard if not h[0] & series]
            if heard and not kept and last:
                onsets = [h[2] for h in heard if h[2]]
                kept = [(set(last), min(category, max(h[1] for h in heard)),
                         min(onsets) if onsets else None,
                         min(rank, max(h[3] for h in heard)))]
            heard = kept
            continue
        for a in m.get("agree", []):
            last[str(a.get("series"))] = a
        figures += m.get("agree", [])
        heard.append((series, category, m.get("onset"), rank))
    onsets = [h[2] for h in heard if h[2]]
    rank = max((h[3] for h in heard), default=-1)
    largest = max((a for a in figures if _change(a) is not None),
                  key=lambda a: abs(_change(a) or 0.0), default=None)
    return {"agree": last, "onset": min(onsets) if onsets else None,
            "category": sign * max((h[1] for h in heard), default=0),
            "severity": SEVERITIES[rank] if rank >= 0 else "",
            "change": _change(largest) if largest else None,
            "change_at": largest.get("detected_at") if largest else None}


def _change(a: dict[str, Any]) -> float | None:
    """A series' relative change as told (None when it told none: not a number)."""
    try:
        x = float(a.get("relative_change"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def strength_sign(direction: Any) -> int:
    """1 for a rise (a spike), whose strongest category is the highest; -1 for a fall,
    whose categories are negative: its strongest is the lowest."""
    return -1 if direction == "decrease" else 1


def evidence(data: dict[str, Any]) -> dict[str, Any]:
    """What a message of a rise tells, to judge whether a later one tells more
    (:func:`warnd.alerting.decide.evidence_grew`): how many sources agree, its category,
    its largest change."""
    rels = [a.get("relative_change") for a in data.get("agree", [])]
    rels = [abs(float(r)) for r in rels if r is not None and math.isfinite(float(r))]
    return {"n_sources": len({a["source"] for a in data.get("agree", [])}),
            "category": int(data.get("category") or 0),
            "magnitude": max(rels) if rels else 0.0}


def told_evidence(messages: list[dict[str, Any]], without: Collection[str] = ()
                  ) -> dict[str, Any]:
    """The largest :func:`evidence` of each of ``messages`` (a rise's openings,
    escalations and reminders someone had), of their sources but the series ``without``
    (withdrawn by a correction); zero when there is none."""
    told = {"n_sources": 0, "category": 0, "magnitude": 0.0}
    for data in messages:
        agree = [a for a in data.get("agree", []) if a.get("series") not in without]
        ev = evidence({**data, "agree": agree})
        told = {k: max(told[k], ev[k]) for k in told}
    return told


def severity_rank(severity: Any) -> int:
    """A message's severity as its place in :data:`SEVERITIES` (-1 when none of them)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def told_to_target(store: Store, d: dict[str, Any]) -> list[dict[str, Any]]:
    """The data of the messages a delivery ``d`` of an end or a correction of a trend (a
    spike) ends or corrects that its target had (delivered, still to go before it, or held back
    by a silence after an attempt that may have reached it: :func:`maybe_heard`), oldest
    first: the episode's opening, escalations and reminders since its opening (or its
    last end), as :func:`warnd.alerting.outbox.never_heard` reads them, and the
    corrections it had among them. What the end or the correction tells that target is
    the rise as those messages told it (:func:`rise_told`), not as others were told it.

    Read when it is sent: the episode's earlier messages to the target went or were
    given up before it (the outbox sends them first), and none of them goes again
    unless an operator queues it again (then the end or the correction goes after it,
    and tells what the target has had by then); so a retry or a send again after a
    crash reads the same. So too for an escalation: what grew is what grew beyond those
    messages (:func:`warnd.alerting.render.as_told`)."""
    scope = episode_scope(d)
    if d.get("decision") not in ("resolve", "correct", "escalate") \
            or d.get("kind") not in EPISODE_KINDS or scope is None:
        return []
    where, args = scope
    aid = int(d["alert_id"])
    start = episode_start(store, scope, aid)
    rows = store.q(
        "SELECT a.data FROM alerts a JOIN deliveries t ON t.alert_id = a.id WHERE "
        f"t.target=? AND {had()} AND a.decision IN "
        "('open', 'escalate', 'repeat', 'correct') AND a.id IN (SELECT id FROM alerts "
        f"WHERE {where} AND id >= ? AND id < ?) ORDER BY a.id",
        [d["target"], *args, start, aid])
    told = []
    for r in rows:
        try:
            told.append(json.loads(r["data"] or "{}"))
        except ValueError:
            continue
    return told
