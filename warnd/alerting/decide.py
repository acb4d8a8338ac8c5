"""From findings to alerts: episodes, grouping per substance, severity.

* **Episodes** — each series has an :class:`detectors.episodes.EpisodeTracker`
  (the same rules ``warnd backtest`` applies). A substance message is sent when a
  series opens an episode, escalates or repeats; a second source opening while the
  substance is already alerting is an escalation ("more sources agree").
* **Notices** — one warning alert per overdosefare notice, naming every substance it
  concerns (:func:`enqueue_notice`).
* **Source health** — :func:`check_source_health`, one alert per failure episode.

Every alert goes into the outbox through :func:`warnd.alerting.outbox.enqueue_alert`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Sequence
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from detectors.base import SCALE, Finding, is_score, series_key
from detectors.grid import infer_step
from warnd.alerting import quiet
from warnd.alerting.freshness import stale_data
from warnd.alerting.localtime import local_day, wall_clock
from warnd.alerting.outbox import crash_point, enqueue_alert
from warnd.alerting.routing import route
from warnd.alerting.silences import silenced_by
from warnd.alerting.told import (ADDRESSED, NOT_JOINED, OTHER_EPISODES, evidence, had,
                                 held_too, maybe_heard, rise_told, still_held, told_evidence)
from warnd.alerting.wording import (
    USUAL_PEAK_EVIDENCE,
    joined,
    render_text,
    usual_peak_fields,
)
from warnd.config import Config, parse_duration
from warnd.store import Store, iso, substance_scope

log = logging.getLogger("warnd.alerting")

SEND_ACTIONS = ("open", "escalate", "repeat", "resolve", "correct")
#: statuses of a message told to nobody, held back: its substance's recipients hear of
#: the rise once nothing holds it back (a silence ended, the substance no longer muted)
HELD = ("silenced", "muted")


# -- episode tracker adapter (the rules themselves live in detectors.episodes) ------
class SeriesEpisodes:
    """A series' :class:`detectors.episodes.EpisodeTracker` plus what alerting needs.

    The tracker counts periods; we also keep the date of the last judged period (so a
    restart continues where it stopped) and the latest finding of each open episode
    (so a substance message can list sources whose episode is still open, and a
    resolve can say what ended). Stored as one JSON document per series in
    ``episodes``.
    """

    def __init__(self, tracker: Any, last_period: date | None,
                 active: dict[str, dict[str, Any]]) -> None:
        self.tracker = tracker
        self.last_period = last_period
        self.active = active

    def active_findings(self) -> list[Finding]:
        """The latest finding of each open episode."""
        return [finding_from_dict(v) for _, v in sorted(self.active.items())]


def tracker_from_state(state: dict[str, Any] | None, params: Any) -> SeriesEpisodes:
    from detectors.episodes import EpisodeTracker

    if not state or "tracker" not in state:
        return SeriesEpisodes(EpisodeTracker(params=params), None, {})
    return SeriesEpisodes(
        EpisodeTracker.from_dict(state["tracker"], params=params),
        last_period_of(state),
        dict(state.get("active") or {}),
    )


def last_period_of(state: dict[str, Any] | None) -> date | None:
    """The last period a stored series state was judged to (as its tracker has it)."""
    last = (state or {}).get("last_period")
    return date.fromisoformat(last) if last else None


def tracker_state(tracker: SeriesEpisodes) -> dict[str, Any]:
    return {
        "tracker": tracker.tracker.to_dict(),
        "last_period": tracker.last_period.isoformat() if tracker.last_period else None,
        "active": tracker.active,
    }


def tracker_quiet(state: dict[str, Any] | None) -> bool:
    """True for a stored series state with no episode open: all it holds that matters is
    its last judged period (the period count only matters while an episode is open).
    A tracker that remembers a run whose level is back (``back``) is not quiet: it
    forgets the run in the first period without it."""
    return bool(state and "tracker" in state and not state["tracker"].get("open")
                and not state["tracker"].get("back") and not state.get("active"))


def tracker_update(
    tracker: SeriesEpisodes, period: date, findings: list[Finding]
) -> list[tuple[str, Finding]]:
    """Feed one period; ``(action, finding)`` for each decision that may be sent.

    ``open``, ``escalate`` and ``repeat`` when the rules send them (a decrease only
    with ``alert_decreases``); every ``resolve``, carrying the episode's last
    finding (whether an end is sent is decided in :func:`enqueue_findings`).
    ``ongoing`` decisions only update the state.
    """
    out: list[tuple[str, Finding]] = []
    for d in tracker.tracker.update(findings):
        if d.action == "resolve":
            last = tracker.active.pop(d.episode, None)
            if last is not None:
                out.append(("resolve", finding_from_dict(last)))
            continue
        if d.finding is None:
            continue
        tracker.active[d.episode] = _finding_dict(d.finding)
        if d.send and d.action in ("open", "escalate", "repeat"):
            out.append((d.action, d.finding))
    tracker.last_period = period
    return out


def tracker_active(state: dict[str, Any] | None) -> list[Finding]:
    """The latest finding of each open episode in a stored series state."""
    if not state:
        return []
    return [finding_from_dict(f) for f in (state.get("active") or {}).values()]


def finding_from_dict(d: dict[str, Any]) -> Finding:
    return Finding(
        source=d["source"], substance=d.get("substance", ""), kind=d["kind"],
        direction=d["direction"], onset=date.fromisoformat(d["onset"]),
        detected_at=date.fromisoformat(d["detected_at"]),
        level_before=_f(d.get("level_before")), level_after=_f(d.get("level_after")),
        relative_change=_f(d.get("relative_change")), strength=_f(d.get("strength")),
        p_value=d.get("p_value"), category=int(d.get("category") or 0),
        region=d.get("region") or "", metric=d.get("metric") or "count",
        dimension=d.get("dimension") or "use", method=d.get("method") or "",
        # what _finding_dict kept of the evidence, as evidence again
        evidence={ev: d[k] for k, ev in USUAL_PEAK_EVIDENCE.items() if k in d},
    )


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


# -- deciding ----------------------------------------------------------------------
def severity_for(n_agree: int, category: int) -> str:
    """Severity of spikes and other single-series alerts (trend increases of a
    substance use :func:`detectors.synthesis.substance_verdict`): critical when three
    or more sources agree, warning for two or one strong, info otherwise."""
    if n_agree >= 3:
        return "critical"
    if n_agree >= 2 or category >= 2:
        return "warning"
    return "info"


def evidence_grew(new: dict[str, Any], told: dict[str, Any], escalate_factor: float) -> bool:
    """More agreeing sources, a higher category, or a change ``escalate_factor`` times the
    largest one told — anything else (a source's episode closing and reopening, the same
    sources again) is not news."""
    return (new["n_sources"] > int(told.get("n_sources", 0))
            or new["category"] > int(told.get("category", 0))
            or (float(told.get("magnitude", 0)) > 0
                and new["magnitude"] >= escalate_factor * float(told["magnitude"])))


def enqueue_findings(
    config: Config,
    store: Store,
    substance: str,
    firing: Sequence[tuple[Finding, str]],
    states: dict[str, dict[str, Any]],
    *,
    now: datetime,
    release: bool = False,
) -> list[dict[str, Any]]:
    """Turn the series decisions of one substance into alerts in the outbox.

    Trend increases of one substance become one message listing every source that
    agrees; spikes and decreases are their own messages, except that while the
    substance is rising a spike is told in the trend message (or only recorded); a
    trend whose verdict has severity ``none`` (``require_corroboration`` and too few
    sources) is held back. What recipients were told about the substance's rise is
    kept in its own episode state (:func:`substance_scope`): the first message of an
    episode is always ``open``, whatever the series decided; later messages are
    ``escalate`` only when the evidence grew (:func:`evidence_grew`) and are not sent
    otherwise, but to the desks of a region that joins the rise and had none of it
    (:func:`_joined_targets`; so too for a spike or a fall). ``resolve`` decisions become
    one "ended" message per episode kind, sent only with ``alerting.send_resolved`` (or
    the detection rule ``send_resolve``) and only when no other source of the substance
    still has that episode open;
    ``correct`` decisions (an episode gone once already judged values were revised)
    become a correction when a message that was sent rested on that series. A
    ``repeat`` of an episode (kind and direction) that is acknowledged (:func:`_acked`)
    is not sent, whatever else the round brings. The alerts of the
    round and every episode state (the series' and the substance's) are saved in one
    transaction. ``release``: a round without new data, to tell what a silence held
    back once it has ended (:func:`tell_held`).
    """
    created: list[dict[str, Any]] = []
    if not firing and not states and not release:  # a quiet round: nothing to tell
        crash_point("round")
        return created
    live = [(f, a) for f, a in firing if a not in ("resolve", "correct")]
    ends = [(f, a) for f, a in firing if a == "resolve"]
    corrections = [(f, a) for f, a in firing if a == "correct"]
    for f, a in [x for x in live if x[1] == "repeat"]:
        # a reminder of an acknowledged episode (its own kind and direction) is not sent,
        # whatever else the round brings
        if _acked(store, substance, f.kind, f.direction):
            log.info("substance=%s %s:%s repeat suppressed: the episode is acknowledged",
                     substance, f.kind, f.direction)
            live.remove((f, a))
    trends = [(f, a) for f, a in live if f.kind == "trend" and f.direction == "increase"]
    spikes = [f for f, _ in live if f.kind == "spike"]
    others = [(f, a) for f, a in live if f.kind != "spike" and not (
        f.kind == "trend" and f.direction == "increase")]
    # While the substance is rising, a one-off spike in any of its series is part of
    # that story: it is told in the trend message (or recorded only), not sent alone.
    # (Asked only when there is a spike: the question reads every series of the
    # substance with an episode open.)
    rising = bool(trends) or (bool(spikes) and _substance_rising(config, store, substance, states))
    folded: list[Finding] = []
    if rising:
        folded = spikes
        if spikes and not trends:
            log.info("substance=%s %d spike(s) recorded within a rising trend", substance,
                     len(spikes))
    else:
        others += [(f, a) for f, a in live if f.kind == "spike"]
    groups: list[list[tuple[Finding, str]]] = [trends] if trends else []
    # a substance's spike (or fall) is one episode whichever of its sources shows it: the
    # series of one kind and direction that open or grow this round make one message
    by_kind: dict[tuple[str, str], list[tuple[Finding, str]]] = {}
    for f, a in others:
        by_kind.setdefault((f.kind, f.direction), []).append((f, a))
    groups += list(by_kind.values())
    pending_states = dict(states)

    def state_of(scope: str) -> dict[str, Any]:
        """An episode state as this round has it: changed in the round, else stored."""
        return pending_states.get(scope) or store.episode_state(scope) or {}

    def opens_anew(kind: str, direction: str) -> bool:
        """Whether an episode of that kind and direction opens this round (not a spike
        folded into the rise)."""
        return any(f.kind == kind and f.direction == direction and a == "open"
                   and not any(f is g for g in folded) for f, a in live)

    ended: set[tuple[str, str]] = set()  # episodes that end this round: their alerts resolve
    told_scope = substance_scope(substance)
    told = pending_states.get(told_scope) or store.episode_state(told_scope) or _told_before(
        store, substance)
    if (told.get("open") and trends and all(a == "open" for _, a in trends)
            and not store.open_episode_scopes(substance, "trend:increase",
                                              sources=config.watched_sources())):
        # what was told is still open, but before this round no watched series held it
        # open: the series that did were taken out of the config (or paused) before
        # theirs ended, so no end was told. These rises open a new episode.
        told = {**told, "open": False}
        ended.add(("trend", "increase"))
    retold = False
    held_back = bool(told.get("silenced"))  # the rise's message told to nobody yet
    if held_back:
        # a trend message was silenced: what recipients were told is what they knew
        # before it. Once no silence covers the substance, its rise, if it still holds,
        # is told (as the message an episode opens with, or as more than was told).
        if told.get("unheard"):  # an escalation silenced while it waited for delivery
            told = {**told, **_heard_evidence(store, substance)}
        told = {k: v for k, v in told.items() if k not in ("silenced", "unheard")}
        pending_states[told_scope] = told
        if not trends:
            held = _held_by_silence(config, store, substance, states, now=now)
            if held is None:  # still silenced (or muted): keep the mark
                told = pending_states[told_scope] = {**told, "silenced": _held_by(
                    config, substance, "silenced")}
            elif held:
                trends, retold = held, True
                groups.insert(0, trends)
    told_to: dict[int, list[str]] = {}  # by id(group): who had what an end or correction is about
    unheard: dict[int, list[str]] = {}  # by id(group): to whom all of that failed to go
    # with the held end's id (to bound the episode: a spike's, a fall's) and that of the
    # alert held back (its targets that had it or still will are not told it again)
    late_ends: list[tuple[dict[str, Any], int | None, int]] = []
    if told.get("end_silenced") and not told.get("open"):
        # the end of a told rise was held back by a silence: told once none covers it
        # (moot when a new rise is told this round, its opening says since when: the
        # state it opens leaves the mark behind; a new rise held back as well keeps it)
        held_id = int(told["end_silenced"])
        end = _end_held(config, store, held_id, now=now)
        if end is not None and not trends:
            told = pending_states[told_scope] = {
                k: v for k, v in told.items() if k != "end_silenced"}
            if end:
                late_ends.append((end, None, held_id))
                ended.add(("trend", "increase"))
    for kind, direction in OTHER_EPISODES:
        # so too the end of a told spike (or fall): moot when the same kind opens anew
        scope = substance_scope(substance, kind, direction)
        held_end = state_of(scope).get("end_silenced")
        end = None if not held_end else _end_held(config, store, int(held_end), now=now)
        if end is None:
            continue
        pending_states[scope] = {k: v for k, v in state_of(scope).items()
                                 if k != "end_silenced"}
        if end and not opens_anew(kind, direction):
            late_ends.append((end, int(held_end), int(held_end)))
            ended.add((kind, direction))
    # the correction of one source of an episode that goes on, held back by a silence or
    # a mute: told once nothing holds it back, as a held end is (moot once the episode
    # opened anew)
    late_corrections: list[tuple[dict[str, Any], int]] = []  # with the held alert's id
    for kind, direction in (("trend", "increase"), *OTHER_EPISODES):
        scope = substance_scope(substance, kind, direction)
        st = told if scope == told_scope else state_of(scope)
        if not st.get("corrections_silenced"):
            continue
        kept, due = _due_held(config, store, st["corrections_silenced"], now=now)
        late_corrections += [
            (c, held_id) for c, held_id in due
            if not store.opened_since(substance, kind, direction, held_id) and not (
                trends and not told.get("open") if scope == told_scope
                else opens_anew(kind, direction))]
        st = pending_states[scope] = still_held(st, "corrections_silenced", kept)
        if scope == told_scope:
            told = st
    # a region's join of a spike (a fall) held back by a silence or a mute: told once
    # nothing holds it back, if the episode goes on (and did not open anew), to the desks
    # that still had none of it, as a rise's is
    late_joins: list[dict[str, Any]] = []
    for kind, direction in OTHER_EPISODES:
        scope = substance_scope(substance, kind, direction)
        if not (held_joins := state_of(scope).get("joins_silenced")):
            continue
        kept, due = _due_held(config, store, held_joins, now=now)
        late_joins += [
            j for j, held_id in due
            if not store.opened_since(substance, kind, direction, held_id)
            and not opens_anew(kind, direction) and _episode_open(
                config, store, substance, f"{kind}:{direction}", states, done=set())]
        pending_states[scope] = still_held(state_of(scope), "joins_silenced", kept)
    by_episode: dict[tuple[str, str], list[tuple[Finding, str]]] = {}
    for f, a in ends:
        by_episode.setdefault((f.kind, f.direction), []).append((f, a))
    # a spike that opens this round within the rise is only recorded (or told in the trend
    # message): it does not keep a told spike that ends this round from being told ended
    recorded: dict[tuple[str, str], list[tuple[Finding, str]]] = {}
    for f, a in live:
        if f.kind == "spike" and a == "open" and any(f is g for g in folded):
            recorded.setdefault((f.kind, f.direction), []).append((f, a))
    for (kind, direction), group in sorted(by_episode.items()):
        if _still_active(config, store, substance, kind, direction,
                         [*group, *recorded.get((kind, direction), [])], states):
            continue
        rise = (kind, direction) == ("trend", "increase")
        if not rise:
            ended.add((kind, direction))
        # it ended before anyone was told of it (silenced, muted, held back for
        # corroboration): no end to tell. A spike or a fall was told when any of its
        # messages was, not only its latest (another source's, silenced by its source)
        if (rise and not told.get("open") and (
                held_back or _latest_status(store, substance, kind, direction) in HELD)
                or not rise and _told_nobody(store, substance, kind, direction)):
            continue
        if kind == "trend" and direction == "increase" and told.get("open"):
            told = {**told, "open": False, "ended": now.date().isoformat()}
            pending_states[told_scope] = told
            ended.add((kind, direction))
        if not _send_resolved(config, substance, group[0][0].source):
            continue
        if not _substance_alerting(store, substance, kind=kind, direction=direction):
            continue  # the episode was never alerted (e.g. history before the first run)
        groups.append(group)
        told_to[id(group)] = _told_targets(store, substance, kind, direction, told)
        if rise:
            # not to a target a correction told that every source it had of the rise
            # was withdrawn: for it there is no rise left to end
            gone_for = _withdrawn_for(store, substance, told, told_to[id(group)])
            told_to[id(group)] = [t for t in told_to[id(group)] if t not in gone_for]
        unheard[id(group)] = _unheard_targets(store, substance, kind, direction, told)
    withdrawn: dict[int, Finding] = {}  # by id(group): the series a correction withdraws
    gone: set[int] = set()  # corrections that leave nothing of their episode
    for f, a in corrections:
        if _told_about(store, f):
            groups.append([(f, a)])
            withdrawn[id(groups[-1])] = f
            told_to[id(groups[-1])] = _told_targets(store, substance, f.kind, f.direction,
                                                    told, series=f)
            unheard[id(groups[-1])] = _unheard_targets(store, substance, f.kind,
                                                       f.direction, told, series=f)
            if not _still_active(config, store, substance, f.kind, f.direction, [(f, a)],
                                 states):
                gone.add(id(groups[-1]))
                if f.kind == "trend" and f.direction == "increase" and told.get("open"):
                    told = {**told, "open": False, "ended": now.date().isoformat()}
                    pending_states[told_scope] = told
                    ended.add((f.kind, f.direction))
        else:
            log.info("substance=%s series=%s episode withdrawn after a revision; it was "
                     "never told", substance, f.series_key)
    # One transaction for the whole round: every alert, its deliveries and the episode
    # states they rest on (the series' and what the substance's recipients were told)
    # commit together, or (a crash, a full disk) none of them does and the next
    # detection decides the same round again.
    with store.write() as db:
        for alert, held_id in late_corrections:
            # to those that had the source's messages before it and not the correction
            f = finding_from_dict(alert["data"]["agree"][0])
            kind, direction = alert["kind"], alert["direction"]
            _, owed = _still_owed(store, substance, kind, direction, told, held_id,
                                  series=f, before=held_id)
            if not owed:
                continue
            if enqueue_alert(config, store, alert, now=now, told_to=owed, unheard=(
                    _unheard_targets(store, substance, kind, direction, told, series=f,
                                     before=held_id))) is not None:
                created.append(alert)
        for group in groups:
            alert = _build_alert(config, store, substance, group, pending_states, now=now,
                                 spikes=folded if group is trends else (), carried=[
                                     f for f, _ in ends if group is not trends
                                     and (f.kind, f.direction) == (group[0][0].kind,
                                                                   group[0][0].direction)])
            if alert["severity"] == "none":
                # require_corroboration: too few sources agree yet; the episode state
                # is kept
                log.info("substance=%s %s from %s held back: needs corroboration",
                         substance, alert["kind"], alert["source"])
                if group is trends and not told.get("open"):
                    # held back as a silence holds it: told once it needs no more
                    # (another source agrees, or the config no longer asks for it)
                    told = pending_states[told_scope] = {**told, "silenced": "corroboration"}
                continue
            told_before = told
            if group is trends:
                ev = evidence(alert["data"])
                # a series' rise opened or grew this round: an escalation if it tells more
                # than was told, whichever series (one whose reminder is due) leads it
                news = any(a in ("open", "escalate") for _, a in group)
                factor = float(config.detection_params(substance).escalate_factor)
                if not told.get("open"):
                    if alert["decision"] != "open":  # the first message of an episode opens it
                        alert = _build_alert(config, store, substance, group, pending_states,
                                             now=now, spikes=folded, decision="open")
                    told = {"open": True, "opened": now.date().isoformat(),
                            "n": int(told.get("n", 0)) + 1, **ev}
                elif news and not evidence_grew(ev, told, factor):
                    if not any(a == "repeat" for _, a in group):
                        newcomers = _joined_targets(config, store, substance, alert, told)
                        if not newcomers:
                            log.info("substance=%s not sent: %d source(s), category %d, no "
                                     "more than already told", substance, ev["n_sources"],
                                     ev["category"])
                            continue
                        # no more than told, but a series of a region whose desk had no
                        # message of the rise joins it: told to that desk alone (it reads
                        # as its opening), not again to those that had the episode
                        log.info("substance=%s %d source(s), category %d, no more than "
                                 "already told: sent only to %s, whose region joins the rise",
                                 substance, ev["n_sources"], ev["category"], ",".join(newcomers))
                        if alert["decision"] != "escalate":
                            alert = _build_alert(config, store, substance, group,
                                                 pending_states, now=now, spikes=folded,
                                                 decision="escalate")
                        told_to[id(group)] = _as_joined(config, alert, newcomers)
                    elif alert["decision"] != "repeat":
                        # no more than told, and a reminder is due: it is sent as one
                        alert = _build_alert(config, store, substance, group, pending_states,
                                             now=now, spikes=folded, decision="repeat")
                elif news:
                    if alert["decision"] != "escalate":
                        alert = _build_alert(config, store, substance, group, pending_states,
                                             now=now, spikes=folded, decision="escalate")
                    # the message says what grew beyond what was told
                    alert["data"]["told_before"] = {k: told.get(k) for k in (
                        "n_sources", "category", "magnitude")}
                    alert["title"], alert["body"] = render_text(
                        alert["data"], config.general.language, config=config)
                    told = {**told, "n_sources": max(ev["n_sources"], int(told["n_sources"])),
                            "category": max(ev["category"], int(told["category"])),
                            "magnitude": max(ev["magnitude"], float(told.get("magnitude", 0)))}
                pending_states[told_scope] = told
            elif alert["decision"] == "escalate" and not _grew_beyond_told(config, store,
                                                                           alert):
                # a spike (a fall) opening again in a source already told in the episode,
                # or growing in it, no more than told: not news, but to the desks of a
                # region that joins it and had none of it, as for a rise
                newcomers = _joined_targets(config, store, substance, alert, told)
                if not newcomers:
                    log.info("substance=%s %s:%s not sent: no more than already told",
                             substance, alert["kind"], alert["direction"])
                    continue
                log.info("substance=%s %s:%s no more than already told: sent only to %s, "
                         "whose region joins it", substance, alert["kind"],
                         alert["direction"], ",".join(newcomers))
                told_to[id(group)] = _as_joined(config, alert, newcomers)
            if (alert["kind"] == "trend" and alert["direction"] == "increase"
                    and told.get("n")):
                # the episode told: a rise revised away and back is told again on the
                # same findings, and that is news, not a duplicate
                alert["dedupe_key"] += f":{told['n']}"
                if told.get("withdrawn"):
                    alert["dedupe_key"] += f"w{told['withdrawn']}"
            if group is trends and retold:
                # its findings may be those of the silenced message: not a duplicate
                alert["dedupe_key"] += ":after-silence"
            if id(group) in withdrawn:
                # the messages resting on the series that still wait (quiet hours) are not
                # sent; a target that had none of them go out hears nothing of the series,
                # neither them nor their withdrawal
                f = withdrawn[id(group)]
                addressed = told_to.get(id(group)) or []
                told_to[id(group)] = _withdraw_unsent(
                    store, db, substance, f.kind, f.direction, told_before, series=f,
                    targets=addressed, now=now, whole=id(group) in gone)
                if (id(group) not in gone and (f.kind, f.direction) == ("trend", "increase")
                        and told.get("open")):
                    # the rise goes on: what its recipients were told is what went out,
                    # less the series withdrawn (told it no longer rises, or told nothing of
                    # it), and the series rising again is news, not a duplicate of what was
                    # told or dropped before (its key counts the withdrawals)
                    told = pending_states[told_scope] = {
                        **told, **_heard_evidence(store, substance, without={f.series_key}),
                        "withdrawn": int(told.get("withdrawn", 0)) + 1}
                if addressed and not told_to[id(group)]:
                    log.info("substance=%s correction of %s not sent: no recipient had "
                             "heard of it yet", substance, f.series_key)
                    continue
            # an end or a correction goes to those who had the messages it ends or
            # corrects, not where its own (often lower) severity routes, and to nobody
            # when none had them (every delivery of them expired, failed or was dropped)
            if enqueue_alert(config, store, alert, now=now, told_to=told_to.get(id(group)),
                             unheard=unheard.get(id(group), ())) is not None:
                created.append(alert)
            if group is trends and alert.get("status") in HELD and (
                    alert["decision"] != "repeat" or held_back or evidence_grew(
                        evidence(alert["data"]), told_before,
                        float(config.detection_params(substance).escalate_factor))):
                # nobody was told: recipients know what they knew, and hear of the rise
                # once the silence (or the substance's mute) has ended (a reminder held
                # back of no more than they were told leaves nothing to tell, unless a
                # message before it was held back too)
                told = pending_states[told_scope] = {
                    **told_before, "silenced": _held_by(config, substance, alert["status"])}
            elif ((alert["decision"] == "resolve" or id(group) in gone)
                  and alert.get("status") in HELD and alert.get("id")):
                # the end of a told rise (spike, fall), held back (a silence, the substance
                # muted): told when the silence has ended, or the substance is no longer
                # muted; so too a correction that withdraws the whole episode (its
                # recipients would otherwise believe the rise goes on)
                if (alert["kind"], alert["direction"]) == ("trend", "increase"):
                    told = pending_states[told_scope] = {**told, "end_silenced": alert["id"]}
                else:
                    scope = substance_scope(substance, alert["kind"], alert["direction"])
                    pending_states[scope] = {**state_of(scope), "end_silenced": alert["id"]}
            elif "joined" in alert["data"] and alert.get("status") in HELD and alert.get("id"):
                # a region's join of a spike (a fall), held back: told once nothing holds
                # it back (its desks would otherwise hear nothing of it)
                _hold_join(pending_states, state_of, alert)
            elif id(group) in withdrawn and alert.get("status") in HELD and alert.get("id"):
                # a correction of one source of an episode that goes on, held back: told
                # once nothing holds it back (its recipients would otherwise believe that
                # source's rise, spike or fall stands)
                scope = substance_scope(substance, alert["kind"], alert["direction"])
                st = told if scope == told_scope else state_of(scope)
                st = pending_states[scope] = held_too(st, "corrections_silenced", alert["id"])
                if scope == told_scope:
                    told = st
        for alert in late_joins:
            alert["regions"] = sorted({str(a.get("region") or "")
                                       for a in alert["data"].get("agree", [])})
            newcomers = _joined_targets(config, store, substance, alert, told)
            if not newcomers:
                continue  # every desk it was for had the episode meanwhile
            alert["data"]["joined"] = newcomers
            if enqueue_alert(config, store, alert, now=now, told_to=newcomers) is not None:
                created.append(alert)
            if alert.get("status") in HELD and alert.get("id"):
                _hold_join(pending_states, state_of, alert)
        for alert, held_end, held_id in late_ends:
            kind, direction = alert["kind"], alert["direction"]
            # the held end goes to those that had the episode and not the end itself: a
            # target that had it before the silence (or still will) is not told it twice
            any_had, owed = _still_owed(store, substance, kind, direction, told, held_id,
                                        before=held_end)
            if (kind, direction) == ("trend", "increase"):
                # as an end told at once: not to a target all of whose rise was withdrawn
                gone_for = _withdrawn_for(store, substance, told, owed)
                owed = [t for t in owed if t not in gone_for]
            if any_had and not owed:
                continue  # every target that had the episode had its end too
            if enqueue_alert(config, store, alert, now=now, told_to=owed, unheard=(
                    _unheard_targets(store, substance, kind, direction, told,
                                     before=held_end))) is not None:
                created.append(alert)
        # (a message only to the desks of a region that joins the rise reminds no one
        # else: the reminders still count from the last message all had)
        told_now = {(a["kind"], a["direction"]) for a in created
                    if a["decision"] in ("open", "escalate", "repeat")
                    and a.get("status") not in HELD and "joined" not in a["data"]}
        for kind, direction in sorted(told_now - {("trend", "increase")}):
            # a spike's (a fall's) reminders too count from its latest message
            _remind_from_now(config, store, substance, pending_states,
                             episode=f"{kind}:{direction}")
        if ("trend", "increase") in told_now:
            _remind_from_now(config, store, substance, pending_states)
        else:
            # a spike that opened within the rise and was only recorded (no message told
            # it) leaves no episode behind: the next spike, once the rise is over, is
            # told as the first anyone hears of
            for f, a in live:
                if f.kind == "spike" and a == "open" and any(f is g for g in folded):
                    _forget_episode(pending_states, f)
        # the alerts of an episode that ended are no longer open (`warnd status`, the
        # console), the end's own message included; a new episode's stay open
        new = [a["id"] for a in created if a["decision"] in ("open", "escalate", "repeat")]
        # a correction leaves nothing to acknowledge: its alert is resolved at once, also
        # when the rise goes on in other sources (the episode itself does not end)
        withdrawals = [int(a["id"]) for a in created
                       if a["decision"] == "correct" and a.get("status") == "open"]
        if withdrawals:
            db.execute(f"UPDATE alerts SET status='resolved' WHERE status='open' AND id IN "
                       f"({','.join('?' * len(withdrawals))})", withdrawals)
        for kind, direction in sorted(ended):
            store.resolve_alerts(db, kind=kind, direction=direction, substance=substance,
                                 keep=new)
        for scope, st in pending_states.items():
            store.save_episode_state(scope, st, db, now=now)
    crash_point("round")
    return created


def _grew_beyond_told(config: Config, store: Store, alert: dict[str, Any]) -> bool:
    """Whether the escalation ``alert`` of a substance's spike (fall) tells more than
    the messages of its episode someone had told (:func:`_rise_told`), by the rule of
    a rise's (:func:`evidence_grew`): more sources, a higher category (in either
    direction), or a change ``escalate_factor`` times the largest one told. True when
    none was told."""
    told = list(_rise_told(store, alert["substance"], alert["kind"], alert["direction"])[
        "agree"].values())
    if not told:
        return True

    def of(agree: list[dict[str, Any]]) -> dict[str, Any]:
        return {**evidence({"agree": agree}), "category": max(
            abs(int(a.get("category") or 0)) for a in agree)}

    factor = float(config.detection_params(alert["substance"]).escalate_factor)
    return evidence_grew(of(alert["data"]["agree"]), of(told), factor)


def _remind_from_now(config: Config, store: Store, substance: str,
                     states: dict[str, dict[str, Any]], *,
                     episode: str = "trend:increase") -> None:
    """The substance's rise (its ``episode``: ``"spike:increase"``, a spike) was just
    told: every watched series with that episode open counts ``repeat_after_periods``
    from now (its latest period), so the recipients are reminded that long after the
    last message they had, whichever source it came from, not on each source's own
    cadence. The changed states go into ``states`` (saved with the round)."""
    stored = store.active_episode_states(substance, sources=config.watched_sources())
    for scope, st in {**stored, **states}.items():
        tracker = st.get("tracker") if scope.startswith("series:") else None
        ep = (tracker or {}).get("open", {}).get(episode)
        if ep is None or ep.get("last_sent") == tracker["period"]:
            continue
        states[scope] = {**st, "tracker": {**tracker, "open": {
            **tracker["open"], episode: {**ep, "last_sent": tracker["period"]}}}}


def _forget_episode(states: dict[str, dict[str, Any]], f: Finding) -> None:
    """Drop the episode of ``f`` (its kind and direction) from its series' state in
    ``states``, as if it had not opened."""
    scope = "series:" + f.series_key
    st = states.get(scope)
    key = f"{f.kind}:{f.direction}"
    if not st or key not in (st.get("tracker") or {}).get("open", {}):
        return
    tracker = st["tracker"]
    states[scope] = {
        **st,
        "tracker": {**tracker, "open": {k: v for k, v in tracker["open"].items() if k != key}},
        "active": {k: v for k, v in (st.get("active") or {}).items() if k != key},
    }


def tell_held(config: Config, store: Store, substance: str, *, now: datetime,
              ) -> list[dict[str, Any]]:
    """The messages of a substance that a silence held back (its rise's, or the end of a
    told rise, spike or fall, or a correction of one), told now if no silence covers them
    any more and the rise still holds,
    without waiting for the substance's next data: a round of :func:`enqueue_findings`
    with no new decision. Nothing when they are still held."""
    return enqueue_findings(config, store, substance, [], {}, now=now, release=True)


def _held_by_silence(config: Config, store: Store, substance: str,
                     states: dict[str, dict[str, Any]], *, now: datetime,
                     ) -> list[tuple[Finding, str]] | None:
    """The substance's rise as it stands (the open trend-increase episodes of its
    watched series, this round's states over the stored ones), to be told now that the
    silence that held back its message has ended; ``[]`` when no rise is open any
    more, ``None`` while a silence still covers it or the substance is muted, or while
    only series of sources not watched now (taken out of the config, or paused) hold it
    open: put back, their rise goes on, and is told then."""
    watched = config.watched_sources()
    stored = store.active_episode_states(substance, sources=watched)
    found = []
    for scope, st in {**stored, **states}.items():
        if not scope.startswith("series:"):
            continue
        for f in tracker_active(st):
            if f.kind == "trend" and f.direction == "increase" and f.source in watched:
                found.append((f, "open"))
    if not found:
        rising = store.open_episode_scopes(substance, "trend:increase")
        away = rising - store.open_episode_scopes(substance, "trend:increase", sources=watched)
        return None if away else []
    probe = {"substance": substance, "kind": "trend",
             "source": ",".join(sorted({f.source for f, _ in found}))}
    if _muted(config, substance) or silenced_by(store, probe, now) is not None:
        return None
    return found


def _end_held(config: Config, store: Store, alert_id: int, *, now: datetime,
              ) -> dict[str, Any] | None:
    """The message a silence or a mute held back (alert ``alert_id``: an end, a
    correction, a region's join of a spike or a fall), to be sent now that no silence
    covers it and its substance is not muted; None while one does or it is, ``{}`` when
    it is gone."""
    rows = store.q("SELECT * FROM alerts WHERE id=?", [alert_id])
    if not rows:
        return {}
    a = rows[0]
    if _muted(config, a["substance"]) or silenced_by(store, a, now) is not None:
        return None
    return {
        "dedupe_key": f"{a['dedupe_key']}:after-silence", "substance": a["substance"],
        "source": a["source"], "region": a["region"], "kind": a["kind"],
        "direction": a["direction"], "severity": a["severity"], "decision": a["decision"],
        "title": a["title"], "body": a["body"], "data": json.loads(a["data"] or "{}"),
        "status": "open",
    }


def _due_held(config: Config, store: Store, held: list[int], *, now: datetime
              ) -> tuple[list[int], list[tuple[dict[str, Any], int]]]:
    """Of the messages a silence or a mute held back (their alerts' ids, ``held``), the
    ids still held back, and those due now with their ids (:func:`_end_held`; one gone
    from the store is in neither)."""
    kept: list[int] = []
    due: list[tuple[dict[str, Any], int]] = []
    for held_id in held:
        m = _end_held(config, store, int(held_id), now=now)
        if m is None:
            kept.append(held_id)
        elif m:
            due.append((m, int(held_id)))
    return kept, due


def _heard(store: Store, substance: str) -> list[dict[str, Any]]:
    """The data of the messages of the substance's current rise that were heard (or
    may have been: :func:`warnd.alerting.told.maybe_heard`; or still go out), oldest
    first."""
    rows = store.q(
        "SELECT a.data FROM alerts a WHERE a.substance=? AND a.kind='trend' AND "
        "a.direction='increase' AND a.decision IN ('open','escalate','repeat') AND a.id >= "
        "(SELECT COALESCE(MAX(id), 0) FROM alerts WHERE substance=? AND kind='trend' AND "
        "direction='increase' AND decision='open') AND EXISTS (SELECT 1 FROM deliveries d "
        f"WHERE d.alert_id=a.id AND {had('d')}) ORDER BY a.id",
        [substance, substance])
    return [json.loads(r["data"] or "{}") for r in rows]


def _heard_evidence(store: Store, substance: str, *, without: Collection[str] = ()
                    ) -> dict[str, Any]:
    """The evidence of the messages of the substance's current rise that were heard (or
    still go out): :func:`warnd.alerting.told.told_evidence`, of their sources but the
    series ``without`` (withdrawn by a correction)."""
    return told_evidence(_heard(store, substance), without)


def _rise_told(store: Store, substance: str, kind: str = "trend",
               direction: str = "increase") -> dict[str, Any]:
    """What the messages of the substance's current rise (or of its episode of another
    kind and direction: a spike) told (delivered or still going out), less the series a
    correction of them withdrew (:func:`rise_told`): each series' latest figures
    (``agree``, by series key), the earliest onset and the highest category; empty when
    none was told."""
    rows = store.q(
        "SELECT a.data FROM alerts a WHERE a.substance=? AND a.kind=? AND "
        "a.direction=? AND a.decision IN ('open','escalate','repeat','correct') "
        "AND a.id >= (SELECT COALESCE(MAX(id), 0) FROM alerts WHERE substance=? AND "
        "kind=? AND direction=? AND decision='open') AND EXISTS (SELECT 1 "
        f"FROM deliveries d WHERE d.alert_id=a.id AND {had('d')}) "
        "ORDER BY a.id", [substance, kind, direction, substance, kind, direction])
    return rise_told([json.loads(r["data"] or "{}") for r in rows], direction)


def _held_by(config: Config, substance: str, status: str) -> bool | str:
    """The mark of a rise whose message was told to nobody, in the substance's episode
    state: ``True`` for a silence (``warnd status`` lists such rises, told when the
    silence ends), else what held it back (``"muted"``, ``"corroboration"``)."""
    return "muted" if status == "muted" or _muted(config, substance) else True


def _told_before(store: Store, substance: str) -> dict[str, Any]:
    """What a store written before substance episode states existed had told."""
    rows = store.q(
        "SELECT decision, data FROM alerts WHERE substance=? AND kind='trend' AND "
        "direction='increase' ORDER BY id DESC LIMIT 1", [substance])
    if not rows or rows[0]["decision"] in ("resolve", "correct"):
        return {}
    return {"open": True, **evidence(json.loads(rows[0]["data"] or "{}"))}


def rise_withdrawn(store: Store, substance: str, series: str, found: Sequence[Finding],
                   kind: str = "trend", direction: str = "increase", *,
                   sources: Collection[str] | None = None) -> Finding | None:
    """The rise of ``series`` its recipients were told in the substance's rise that goes
    on, when the series, judged again after a revision, no longer shows it (``found``:
    its findings now, its rise ended before the revision or not): the finding last told
    of it, to be corrected; None when the rise told is not open, the series was not
    told in it or was corrected since, or still rose in the time told (its episode
    ended: that is its end, told with the substance's). So too a spike or a fall
    (``kind``, ``direction``) told in the substance's episode of that kind that goes on:
    one its end was not decided for, that another series of ``sources`` (the watched
    ones) holds open."""
    rise = (kind, direction) == ("trend", "increase")
    if rise and not (store.episode_state(substance_scope(substance)) or {}).get("open"):
        return None
    if not rise and not (store.open_episode_scopes(
            substance, f"{kind}:{direction}", sources=sources) - {f"series:{series}"}):
        return None  # the substance's spike (fall) ended with the series' own
    rows = store.q(
        "SELECT decision, data FROM alerts WHERE substance=? AND kind=? AND direction=? "
        "AND decision IN ('open','escalate','repeat','correct','resolve') AND id >= "
        "(SELECT COALESCE(MAX(id), 0) FROM alerts WHERE substance=? AND kind=? AND "
        "direction=? AND decision='open') AND data LIKE ? ORDER BY id DESC LIMIT 1",
        [substance, kind, direction, substance, kind, direction, f'%"series": "{series}"%'])
    if not rows or rows[0]["decision"] in ("correct", "resolve"):
        return None
    data = json.loads(rows[0]["data"] or "{}")
    last = next((a for a in data.get("agree", []) if a.get("series") == series
                 and a.get("kind") == kind and a.get("direction") == direction), None)
    if last is None:
        return None
    f = finding_from_dict(last)
    if any(g.kind == kind and g.direction == direction and g.detected_at >= f.onset
           for g in found):
        return None
    return f


def _withdrawn_for(store: Store, substance: str, told: dict[str, Any],
                   targets: Sequence[str]) -> set[str]:
    """Of ``targets``, those that had a correction of the substance's rise (since the
    episode ``told`` opened) that withdrew every source they were told of it (the rise's
    messages they had, :func:`warnd.alerting.told.rise_told`, leave none)."""
    out: set[str] = set()
    for target in targets:
        rows = store.q(
            "SELECT a.data FROM alerts a JOIN deliveries d ON d.alert_id = a.id WHERE "
            "a.substance=? AND a.kind='trend' AND a.direction='increase' AND "
            "a.created_at >= ? AND a.decision IN ('open','escalate','repeat','correct') "
            f"AND d.target=? AND {had('d')} ORDER BY a.id",
            [substance, told.get("opened") or "", target])
        messages = [json.loads(r["data"] or "{}") for r in rows]
        if (any(m.get("decision") == "correct" for m in messages)
                and not rise_told(messages)["agree"]):
            out.add(target)
    return out


def _told_about(store: Store, f: Finding) -> bool:
    """True when a message that was sent (not a resolve) rested on ``f``'s series."""
    rows = store.q(
        "SELECT id FROM alerts WHERE substance=? AND kind=? AND decision IN "
        "('open','escalate','repeat') AND data LIKE ? LIMIT 1",
        [f.substance, f.kind, f'%"series": "{f.series_key}"%'],
    )
    return bool(rows)


def _told_deliveries(store: Store, substance: str, kind: str, direction: str,
                     told: dict[str, Any], *, series: Finding | None = None,
                     statuses: Sequence[str] = ("pending", "delivered"),
                     before: int | None = None) -> list[dict[str, Any]]:
    """The deliveries sent (or still to be sent) of the substance's messages of an
    episode (``kind``, ``direction``): of its rise, since the episode ``told`` opened;
    of another episode, since its last end (with ``before``, an end held back: its last
    end before that alert, and only messages before it). Only those that rested on ``series``'
    series when given; those in ``statuses`` (other than sent or to be sent: given up,
    ``expired`` or ``failed``, for :func:`_unheard_targets`). Sent includes one a silence
    held back after an attempt that may have reached its target
    (:func:`warnd.alerting.told.maybe_heard`)."""
    since = told.get("opened") if (kind, direction) == ("trend", "increase") else None
    upto = [] if before is None else [before]
    if since is None:
        last = store.q(
            "SELECT MAX(created_at) AS t FROM alerts WHERE substance=? AND kind=? AND "
            "direction=? AND decision='resolve'" + " AND id < ?" * len(upto),
            [substance, kind, direction, *upto])
        since = last[0]["t"] or ""
    sql = ("SELECT d.alert_id, d.target, d.status, d.attempts, d.maybe_sent, "
           "d.claimed_until, d.next_attempt_at, a.decision "
           "FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
           "WHERE a.substance=? AND a.kind=? AND a.direction=? AND a.created_at >= ? "
           "AND a.decision IN ('open','escalate','repeat') "
           f"AND (d.status IN ({','.join('?' * len(statuses))})"
           + (f" OR {maybe_heard('d')})" if "delivered" in statuses else ")"))
    args: list[Any] = [substance, kind, direction, since, *statuses]
    if before is not None:
        sql += " AND a.id < ?"
        args.append(before)
    if series is not None:
        sql += " AND a.data LIKE ?"
        args.append(f'%"series": "{series.series_key}"%')
    return store.q(sql + " ORDER BY d.target, d.alert_id", args)


def _joined_targets(config: Config, store: Store, substance: str, alert: dict[str, Any],
                    told: dict[str, Any]) -> list[str]:
    """Of the targets a message ``alert`` of a rise (a spike, a fall) routes to (by the
    region of every series it names: :func:`warnd.alerting.routing.route`, as if no
    silence or mute held it back), those no message of its episode (of a rise: the one
    ``told`` opened) was addressed to (delivered, waiting, or given up; not one a silence
    or a mute held back from them: :func:`warnd.alerting.told.addressed`, as the outbox
    asks when the routes change while it waits): the desk of a region whose series joins
    the episode, which had none of it. Such a message telling no more than was told goes
    to them alone (:func:`_as_joined`)."""
    had_it = {d["target"] for d in _told_deliveries(
        store, substance, alert["kind"], alert["direction"], told, statuses=ADDRESSED)}
    return [t for t in route(config, {**alert, "status": "open"}) if t not in had_it]


def _hold_join(states: dict[str, dict[str, Any]], state_of: Any,
               alert: dict[str, Any]) -> None:
    """Mark the message ``alert``, a region's join of a spike (a fall) that a silence or a
    mute held back, in its episode's state (``joins_silenced``, in ``states``; read
    through ``state_of``): told once nothing holds it back (:func:`enqueue_findings`)."""
    scope = substance_scope(alert["substance"], alert["kind"], alert["direction"])
    states[scope] = held_too(state_of(scope), "joins_silenced", alert["id"])


def _as_joined(config: Config, alert: dict[str, Any], newcomers: list[str]) -> list[str]:
    """Make the escalation ``alert``, which tells no more than was told, the message told
    only to ``newcomers``, the desks of a region that joins the episode
    (:func:`_joined_targets`): its data names them (``joined``), its dedupe key says so
    (:data:`warnd.alerting.told.NOT_JOINED`), and it is stored as its desks read it (the
    console, `warnd status`, the digest): the opening they had, not an escalation nobody
    got. Its targets: ``newcomers``."""
    alert["data"]["joined"] = newcomers
    alert["dedupe_key"] += ":joined"
    alert["title"], alert["body"] = render_text(
        {**alert["data"], "decision": "open"}, config.general.language, config=config)
    return newcomers


def _still_owed(store: Store, substance: str, kind: str, direction: str,
                told: dict[str, Any], held_id: int, *, series: Finding | None = None,
                before: int | None = None) -> tuple[bool, list[str]]:
    """To whom a message a silence held back (alert ``held_id``) is still owed: the
    targets that had the episode (of ``series``, before alert ``before``) less those that
    had the held message itself or still will (:func:`_told_targets`); and whether any
    target had it."""
    got = {r["target"] for r in store.q(
        f"SELECT target FROM deliveries t WHERE alert_id=? AND {had()}", [held_id])}
    return bool(got), [t for t in _told_targets(store, substance, kind, direction, told,
                                                series=series, before=before)
                       if t not in got]


def _told_targets(store: Store, substance: str, kind: str, direction: str,
                  told: dict[str, Any], *, series: Finding | None = None,
                  before: int | None = None) -> list[str]:
    """The targets of :func:`_told_deliveries`."""
    return sorted({d["target"] for d in _told_deliveries(
        store, substance, kind, direction, told, series=series, before=before)})


def _unheard_targets(store: Store, substance: str, kind: str, direction: str,
                     told: dict[str, Any], *, series: Finding | None = None,
                     before: int | None = None) -> list[str]:
    """The targets that never had the messages :func:`_told_targets` reads, though they
    were addressed to them: each delivery of them to the target was given up (expired
    on a dead relay, refused for good). An end or a correction is recorded for them as
    not sent, and goes after one of those messages an operator queues again."""
    heard = set(_told_targets(store, substance, kind, direction, told, series=series,
                              before=before))
    return sorted({d["target"] for d in _told_deliveries(
        store, substance, kind, direction, told, series=series,
        statuses=("expired", "failed"), before=before)} - heard)


def _withdraw_unsent(store: Store, db: Any, substance: str, kind: str, direction: str,
                     told: dict[str, Any], *, series: Finding, targets: Sequence[str],
                     now: datetime, whole: bool) -> list[str]:
    """Of ``targets``, those that have heard, or are about to hear, of ``series`` in the
    episode a correction withdraws it from (a delivery made, tried by an attempt that may
    have reached its target, being tried, or due for its first attempt, of a message
    resting on it). Its messages that wait for later (the end of quiet hours, a retry
    after each attempt was refused: a relay down), for whichever target, are dropped: a
    target with no other of them hears neither them nor the correction, and one that
    heard of the series gets the correction without them (an escalation resting on it),
    whether the correction goes to it or not. An opening still waiting goes all the same unless
    the correction withdraws the ``whole`` episode: the rise goes on in its other
    series, and its recipients hear of it, then of the withdrawal of this one."""
    now_s = iso(now)
    rows = _told_deliveries(store, substance, kind, direction, told, series=series)

    def going(d: dict[str, Any]) -> bool:
        return bool(d["status"] == "delivered" or d["maybe_sent"] == 1
                    or (d["maybe_sent"] is None and d["attempts"])
                    or (d["claimed_until"] and d["claimed_until"] > now_s)
                    or (not d["attempts"] and d["next_attempt_at"] <= now_s)
                    or (not whole and d["decision"] == "open"))

    heard = {d["target"] for d in rows if going(d)}
    # every target's: none is sent a message of what no longer is, whether or not the
    # correction goes to it
    unsent = [(int(d["alert_id"]), d["target"]) for d in rows if not going(d)]
    if unsent:
        db.conn.executemany(
            "UPDATE deliveries SET status='dropped', last_error=? WHERE alert_id=? AND "
            "target=? AND status='pending' AND COALESCE(maybe_sent, attempts > 0) = 0 AND "
            "(attempts > 0 OR next_attempt_at > ?)",
            [(f"not sent: withdrawn at {now_s} before it went out (the values it rested "
              "on were revised away)", aid, name, now_s) for aid, name in unsent])
        log.info("substance=%s %s: messages not yet sent withdrawn before they went out: %s",
                 substance, series.series_key,
                 ", ".join(f"alert={aid} target={name}" for aid, name in unsent))
    return [t for t in targets if t in heard]


def _substance_rising(config: Config, store: Store, substance: str,
                      states: dict[str, dict[str, Any]]) -> bool:
    """True when any watched series of the substance has a trend-increase episode open."""
    return _episode_open(config, store, substance, "trend:increase", states, done=set())


def _episode_open(config: Config, store: Store, substance: str, episode: str,
                  states: dict[str, dict[str, Any]], *, done: set[str]) -> bool:
    """True when a watched series of the substance other than those of ``done`` (series
    keys) has ``episode`` (``kind:direction``) open: its state in ``states`` (this
    round's) or else the stored one."""
    for scope, st in states.items():
        if scope.removeprefix("series:") not in done and episode in (st.get("active") or {}):
            return True
    return any(scope not in states and scope.removeprefix("series:") not in done
               for scope in store.open_episode_scopes(substance, episode,
                                                      sources=config.watched_sources()))


def _acked(store: Store, substance: str, kind: str = "trend",
           direction: str = "increase") -> bool:
    """True when the substance's episode (``kind``, ``direction``) is acknowledged: its
    latest opening or escalation, or a reminder of it since, is ``acked``. The message a
    reminder repeats acknowledged after the reminder came counts (an escalation, telling
    more, needs its own acknowledgement; not one told only to the desks of a region that
    joined the rise, :func:`_joined_targets`: it tells no more)."""
    return bool(store.q(
        "SELECT 1 FROM alerts WHERE substance=? AND kind=? AND direction=? "
        "AND status='acked' AND decision IN ('open','escalate','repeat') AND id >= "
        "(SELECT COALESCE(MAX(id), 0) FROM alerts WHERE substance=? AND kind=? AND "
        f"direction=? AND decision IN ('open','escalate') AND {NOT_JOINED}) LIMIT 1",
        [substance, kind, direction] * 2))


def _latest_status(store: Store, substance: str, kind: str = "trend",
                   direction: str = "increase") -> str | None:
    """The status of the substance's latest message of an episode (by default of a
    rising trend: ``acked``, ``silenced`` or ``muted``: told to nobody, …), None when
    there is none."""
    rows = store.q(
        "SELECT status FROM alerts WHERE substance=? AND kind=? AND direction=? "
        "AND decision IN ('open','escalate','repeat') ORDER BY id DESC LIMIT 1",
        [substance, kind, direction],
    )
    return rows[0]["status"] if rows else None


def _told_nobody(store: Store, substance: str, kind: str, direction: str) -> bool:
    """True when every message of the substance's episode (``kind``, ``direction``)
    since its last end was held back (``silenced``, ``muted``): nobody was told of it."""
    return not store.q(
        "SELECT 1 FROM alerts WHERE substance=? AND kind=? AND direction=? AND decision IN "
        "('open','escalate','repeat') AND status NOT IN ('silenced','muted') AND id > "
        "(SELECT COALESCE(MAX(id), 0) FROM alerts WHERE substance=? AND kind=? AND "
        "direction=? AND decision='resolve') LIMIT 1",
        [substance, kind, direction, substance, kind, direction])


def _send_resolved(config: Config, substance: str, source: str) -> bool:
    if config.alerting.send_resolved:
        return True
    try:
        return bool(config.detection_params(substance, source).send_resolve)
    except Exception:
        return False


def _still_active(
    config: Config, store: Store, substance: str, kind: str, direction: str,
    ending: list[tuple[Finding, str]], states: dict[str, dict[str, Any]],
) -> bool:
    """True when another series of the substance still has this episode open."""
    return _episode_open(config, store, substance, f"{kind}:{direction}", states,
                         done={f.series_key for f, _ in ending})


def _build_alert(
    config: Config,
    store: Store,
    substance: str,
    group: list[tuple[Finding, str]],
    states: dict[str, dict[str, Any]],
    *,
    now: datetime,
    spikes: Sequence[Finding] = (),
    decision: str | None = None,
    carried: Sequence[Finding] = (),
) -> dict[str, Any]:
    """The alert of ``group``. ``carried``: of a spike or a fall, the series whose
    episode of its kind ends this round: a series opening it this round carries that
    episode on, so they agree."""
    forced = decision
    lead, action = max(group, key=lambda fa: (fa[0].category, fa[0].strength))
    agree: dict[str, Finding] = {f.series_key: f for f, _ in group}
    disagree: list[str] = []
    disagree_parts: dict[str, tuple[str, str, str, str]] = {}
    panel: list[dict[str, Any]] = []
    spiking = {f.series_key for f in spikes}
    if lead.kind == "trend" and lead.direction == "increase" and action not in (
            "resolve", "correct"):
        watched = config.watched_sources()
        stored = store.active_episode_states(substance, sources=watched)
        for source, sub, region, metric in store.series_keys(substance, fed_only=True):
            skey = series_key(source, sub, region, metric)
            if skey in agree or metric == "notices" or source not in watched:
                continue
            if is_score(metric):  # panel answers: their latest round, not a detector verdict
                last = store.q(
                    "SELECT period, value, denominator, dimension FROM observations WHERE "
                    "source=? AND substance=? AND region=? AND metric=? ORDER BY period DESC "
                    "LIMIT 1", [source, sub, region, metric])
                if last:
                    panel.append({"series": skey, "source": source, **last[0]})
                continue
            st = states.get(f"series:{skey}") or stored.get(f"series:{skey}")
            active = [
                f for f in tracker_active(st)
                if f.kind == "trend" and f.direction == "increase"
            ]
            if active:
                # also a series whose spike this message tells: its rise still agrees
                agree[skey] = active[0]
            elif skey not in spiking:
                disagree.append(skey)
                disagree_parts[skey] = (source, sub, region, metric)
    elif action not in ("resolve", "correct"):
        # a spike (a fall) another watched series still has open is the same episode of
        # the substance: that series agrees (this round's states over the stored ones)
        watched = config.watched_sources()
        stored = store.active_episode_states(substance, sources=watched)
        for scope, st in {**stored, **states}.items():
            for f in tracker_active(st) if scope.startswith("series:") else ():
                if ((f.kind, f.direction) == (lead.kind, lead.direction)
                        and f.source in watched and f.series_key not in agree):
                    agree[f.series_key] = f
        if any(a == "open" for _, a in group):
            for f in carried:
                if f.source in watched:
                    agree.setdefault(f.series_key, f)
    sources = sorted({f.source for f in agree.values()})
    if lead.kind == "trend" and lead.direction == "increase":
        from detectors.synthesis import substance_verdict

        verdict = substance_verdict(agree.values(), config.detection_params(substance))
        category, severity = verdict.category, verdict.severity
        if action in ("resolve", "correct") and severity == "none":
            severity = "info"  # an end is news even for an uncorroborated episode
    else:
        category = max(f.category for f in agree.values())
        severity = severity_for(len(sources), category)
    decision = "escalate" if any(a == "escalate" for _, a in group) else action
    rise = (lead.kind, lead.direction) == ("trend", "increase")
    if not rise and decision == "repeat" and any(a == "open" for _, a in group):
        decision = "open"  # a spike (a fall) opens in a series this round: not a reminder
    group_series = {f.series_key for f, _ in group}
    if decision == "open" and set(agree) - group_series and (rise or _substance_alerting(
            store, substance, kind=lead.kind, direction=lead.direction)):
        # another source's episode is open already (for a spike or a fall: one a message of
        # its own opened, not one only told within a rise): more sources agree
        decision = "escalate"
    if forced is not None:
        decision = forced
    if decision in ("resolve", "correct"):
        disagree = []
    onset = min(f.onset for f in agree.values()).isoformat()
    # a source whose newest data is unusually old and ends before the rise began has
    # said nothing of it: it does not disagree (nor count among the sources), its
    # data's age is noted instead; one whose data cover the rise's time disagrees,
    # however old they are now
    silent = {src: st for src in sorted({disagree_parts[k][0] for k in disagree})
              if src not in sources and (st := stale_data(store, src, now=now))
              and st["period"] < onset}
    disagree = [k for k in disagree if disagree_parts[k][0] not in silent]
    shares = _share_series(store, [*agree.values(), *spikes], disagree_parts)
    agree_dicts = [_finding_dict(f, shares)
                   for f in sorted(agree.values(), key=lambda f: f.series_key)]
    if decision == "resolve":
        # what ended is the rise (the spike, the fall) as told: every series of a watched source
        # its messages named (one that ended earlier too), since its first onset, in the
        # words of its strongest message
        told = _rise_told(store, substance, lead.kind, lead.direction)
        watched = config.watched_sources()
        agree_dicts = sorted([*agree_dicts, *(d for k, d in told["agree"].items()
                                                if k not in agree and d["source"] in watched)],
                             key=lambda d: str(d["series"]))
        sources = sorted({str(d["source"]) for d in agree_dicts})
        if lead.direction == "increase":  # (a fall's categories are negative)
            category = max(category, told["category"])
        onset = min(onset, told["onset"] or onset)
    headlines = _headlines(store, substance, since=date.fromisoformat(onset),
                           tz=ZoneInfo(config.general.timezone))
    stale = [st for st in (stale_data(store, src, now=now) for src in sources) if st]
    stale += silent.values()
    data = {
        "substance": substance,
        "label": config.substance_label(substance),
        "kind": lead.kind,
        "direction": lead.direction,
        "decision": decision,
        "severity": severity,
        "category": category,
        "category_words": SCALE[int(max(-2, min(2, category)))],
        "onset": onset,
        "detected_at": max(f.detected_at for f in agree.values()).isoformat(),
        "agree": agree_dicts,
        "disagree": sorted(disagree),
        "disagree_shares": sorted(k for k in disagree if k in shares),
        "spikes": [_finding_dict(f, shares) for f in spikes],
        "panel": panel,
        "headlines": headlines,
        "stale": stale,
    }
    if decision == "resolve":
        # the episode in one line (:func:`warnd.alerting.wording.episode_line`): to its
        # last rising period, in the steps of its series, at its peak as told (each
        # target's as it was told it: :func:`warnd.alerting.render.as_told`)
        data.update(last_at=data["detected_at"], step=_step_of(store, agree_dicts),
                    peak={"category": told["category"] if told["agree"] else category,
                          "change": told["change"], "at": told["change_at"]})
    digest = hashlib.sha256(
        json.dumps(
            [substance, lead.kind, lead.direction, decision,
             sorted((f.series_key, f.onset.isoformat(), f.detected_at.isoformat())
                    for f, _ in group)],
        ).encode()
    ).hexdigest()[:20]
    lang = config.general.language
    title, body = render_text(data, lang, config=config)
    return {
        "dedupe_key": f"{substance}:{lead.kind}:{lead.direction}:{decision}:{digest}",
        "substance": substance,
        "source": lead.source if len(sources) == 1 else ",".join(sources),
        "region": lead.region,
        # routed by the region of every series it names as rising or spiking, not only
        # by the strongest one's
        "regions": sorted({f.region for f in agree.values()}),
        "kind": lead.kind,
        "direction": lead.direction,
        "severity": severity,
        "decision": decision,
        "title": title,
        "body": body,
        "data": data,
        "status": "muted" if _muted(config, substance) else "open",
    }


def _step_of(store: Store, agree: list[dict[str, Any]]) -> str:
    """The step of the series ``agree`` names (``day``, ``week``, ``month``: the
    finest of them, as their latest periods give it; ``week`` when none has any)."""
    steps = set()
    for a in agree:
        rows = store.q(
            "SELECT period FROM observations WHERE source=? AND substance=? AND region=? "
            "AND metric=? ORDER BY period DESC LIMIT 12",
            [a.get("source"), a.get("substance"), a.get("region") or "",
             a.get("metric") or "count"])
        if len(rows) > 1:
            steps.add(infer_step(sorted(date.fromisoformat(str(r["period"])[:10])
                                        for r in rows)))
    return next((s for s in ("day", "week", "month") if s in steps), "week")


def _substance_alerting(
    store: Store, substance: str, *, kind: str = "trend", direction: str = "increase"
) -> bool:
    """True when the substance's latest alert of this kind is not a resolve."""
    rows = store.q(
        "SELECT decision FROM alerts WHERE substance=? AND kind=? AND direction=? "
        "ORDER BY id DESC LIMIT 1",
        [substance, kind, direction],
    )
    return bool(rows) and rows[0]["decision"] != "resolve"


def _share_series(store: Store, findings: Sequence[Finding],
                  others: dict[str, tuple[str, str, str, str]]) -> set[str]:
    """Which of these series have values with a denominator (positives of so many
    tests): their levels are shares, shown in per cent."""
    wanted = {f.series_key: (f.source, f.substance, f.region, f.metric) for f in findings}
    wanted.update(others)
    return {k for k, key in wanted.items()
            if not is_score(key[3]) and store.has_denominator(key)}


def _finding_dict(f: Finding, shares: set[str] | None = None) -> dict[str, Any]:
    d = {
        "series": f.series_key,
        "source": f.source,
        "substance": f.substance,
        "region": f.region,
        "metric": f.metric,
        "dimension": f.dimension,
        "kind": f.kind,
        "direction": f.direction,
        "onset": f.onset.isoformat(),
        "detected_at": f.detected_at.isoformat(),
        "level_before": f.level_before,
        "level_after": f.level_after,
        "relative_change": f.relative_change,
        "strength": f.strength,
        "p_value": f.p_value,
        "category": f.category,
        "method": f.method,
    }
    if shares is not None:
        # level_before/after are positives per test: a share, shown in per cent
        d["share"] = f.series_key in shares
    # the expected level holds the peak the period shows every year (New Year, a
    # festival summer): the reader is told, or 'before' looks too high
    d.update(usual_peak_fields(f.evidence or {}))
    return d


def _headlines(
    store: Store, substance: str, *, since: date, tz: tzinfo, limit: int = 5
) -> list[dict[str, str]]:
    """The substance's newest articles and warnings (at most ``limit``) from the week of
    ``since`` on, each dated by its local day (``tz``, ``general.timezone``) as the rest of
    the message dates things: one published at 00:30 on 1 April in Oslo says 1 April."""
    rows = store.q(
        "SELECT i.title, i.link, i.published_at, i.source, i.kind FROM items i "
        "JOIN item_substances s ON s.key = i.key WHERE s.substance=? AND i.week >= ? "
        "ORDER BY i.published_at DESC LIMIT ?",
        [substance, since.isoformat(), limit],
    )
    return [
        {"title": r["title"], "link": r["link"] or "",
         "published_at": local_day(r["published_at"], tz), "source": r["source"],
         "kind": r["kind"]}
        for r in rows
    ]


def _muted(config: Config, substance: str) -> bool:
    sc = config.substances.get(substance)
    return bool(sc and sc.muted)


def notice_substances(config: Config, named: str | Sequence[str]) -> list[str]:
    """The configured substances a notice names, in the config's order (the first is
    the alert's ``substance``)."""
    wanted = {named} if isinstance(named, str) else set(named)
    return [s for s in config.substances if s in wanted]


def notice_told(store: Store, key: str, substances: Sequence[str] = ()) -> bool:
    """True when the notice ``key`` has its alert: the one alert of the notice, or
    (written by an older warnd) one alert per substance it names."""
    older = [f"{s}:notice:{key}" for s in substances]
    marks = ",".join("?" * (1 + len(older)))
    return bool(store.q(
        f"SELECT 1 FROM alerts WHERE dedupe_key IN ({marks}) OR dedupe_key IN (SELECT "
        "substance || ':notice:' || key FROM item_substances WHERE key=?) LIMIT 1",
        [f"notice:{key}", *older, key]))


def notice_targets(config: Config, store: Store, alert: dict[str, Any],
                   substances: Sequence[str], *, now: datetime
                   ) -> tuple[list[str], str, int | None]:
    """Who hears of a notice naming these substances: ``(targets, status, silence id)``.

    Each substance routes as an alert of its own would; a substance that is muted or
    silenced routes nowhere. A target hears of the notice when any substance that routes
    to it is neither (once: the targets are joined); the notice is held back
    (``silenced``, else ``muted``) only when every substance it names is."""
    targets: list[str] = []
    heard = False
    silence: int | None = None
    for sub in substances:
        one = {**alert, "substance": sub, "status": "open"}
        if _muted(config, sub):
            continue
        sid = silenced_by(store, one, now)
        if sid is not None:
            silence = silence or sid
            continue
        heard = True
        targets += [t for t in route(config, one) if t not in targets]
    if heard:
        return targets, "open", None
    return [], "silenced" if silence is not None else "muted", silence


def enqueue_notice(
    config: Config, store: Store, src: Any, item: Any, substances: str | Sequence[str], *,
    now: datetime,
) -> int | None:
    """A new warning notice naming monitored substances is one alert by itself.

    One alert per notice, however many substances it names: its message names them
    all ("kokain og fentanyl") and goes once to every target any of them routes to
    (:func:`notice_targets`). Its ``substance`` is the first of them in the config's
    order, ``data["substances"]`` all of them. A notice that has its alert already (also
    one per substance, from an older warnd: :func:`notice_told`) is not told again.
    Notices published more than ``alerting.notice_max_age`` before now (history read on
    a first poll) are stored and counted, not alerted.
    """
    subs = notice_substances(config, substances)
    if not subs or now - item.published_at > parse_duration(config.alerting.notice_max_age):
        return None
    if notice_told(store, item.key, subs):
        return None
    lead = subs[0]
    data = {
        "substance": lead,
        "substances": subs,
        "label": joined([config.substance_label(s) for s in subs], config.general.language),
        "kind": "notice",
        "direction": "increase",
        "decision": "open",
        "severity": "warning",
        "source": src.name,
        "notice": {
            "title": " ".join((item.title or "").split())[:500],
            "link": item.link or "",
            # its local day, as the rest of the message and the report date it
            "published_at": local_day(item.published_at, ZoneInfo(config.general.timezone)),
            "summary": (item.summary or "")[:1000],
        },
    }
    title, body = render_text(data, config.general.language, config=config)
    alert = {
        "dedupe_key": f"notice:{item.key}",
        "substance": lead,
        "source": src.name,
        "region": item.region or src.region,
        "kind": "notice",
        "direction": "increase",
        "severity": "warning",
        "decision": "open",
        "title": title,
        "body": body,
        "data": data,
    }
    targets, alert["status"], sid = notice_targets(config, store, alert, subs, now=now)
    if sid is not None:
        alert["silenced_by"] = sid
    if muted := [s for s in subs if _muted(config, s)]:
        # the substances a mute kept the notice from: their targets are not told it later
        # (:func:`warnd.alerting.outbox._routed_now`), as a silence's are not
        data["muted_then"] = muted
    return enqueue_alert(config, store, alert, now=now, routed=targets)


def enqueue_renamed_notice(
    config: Config, store: Store, src: Any, item: Any, *, now: datetime
) -> list[str]:
    """A notice told before, edited since to name another configured substance: told to
    the targets that substance brings (:func:`notice_targets` of the added substances),
    those that had the notice not again. Its alert names every substance it names now
    and gets the new deliveries; which targets. Nothing for a notice too old to be
    alerted, or told by an older warnd (one alert per substance)."""
    if now - item.published_at > parse_duration(config.alerting.notice_max_age):
        return []
    rows = store.q("SELECT id, data FROM alerts WHERE dedupe_key=?", [f"notice:{item.key}"])
    if not rows:
        return []
    aid, data = int(rows[0]["id"]), json.loads(rows[0]["data"] or "{}")
    before = list(data.get("substances") or [data["substance"]])
    # not a substance that names it only since its terms changed (matched again: counted,
    # not news)
    named = [r["substance"] for r in store.q(
        "SELECT s.substance FROM item_substances s JOIN items i ON i.key = s.key "
        "LEFT JOIN substance_terms t ON t.substance = s.substance WHERE s.key=? "
        "AND (t.changed_at IS NULL OR i.first_seen_at >= t.changed_at)", [item.key])]
    added = [s for s in notice_substances(config, named) if s not in before]
    if not added:
        return []
    subs = before + added
    # when each added substance came to be named: a silence then kept the notice from the
    # targets it alone brings, and the routes checked while it waits do not add them
    # (:func:`warnd.alerting.outbox._routed_now`)
    data = {**data, "substances": subs,
            "label": joined([config.substance_label(s) for s in subs], config.general.language),
            "named_at": {**(data.get("named_at") or {}), **{s: iso(now) for s in added}}}
    if muted := [s for s in added if _muted(config, s)]:
        data["muted_then"] = [*(data.get("muted_then") or []), *muted]
    title, body = render_text(data, config.general.language, config=config)
    alert = {"substance": subs[0], "source": src.name, "region": item.region or src.region,
             "kind": "notice", "severity": "warning", "title": title, "body": body,
             "data": data}
    # the targets the added substances bring, not one an earlier substance routes to that
    # a silence or a mute kept from the notice (held back, it is not told later)
    targets, alert["status"], _ = notice_targets(config, store, alert, added, now=now)
    # a target the notice was held back from while it waited (silenced, or dropped as
    # muted) did not have it
    had = {r["target"] for r in store.q(
        "SELECT target FROM deliveries WHERE alert_id=? AND status<>'silenced' AND NOT "
        "(status='dropped' AND last_error LIKE 'not sent:%')", [aid])}
    new = [t for t in targets if t not in had]
    told = store.extend_alert(aid, alert, new, now=now,
                              due_at=quiet.due_at(config, "warning", now) if new else None)
    log.info("alert=%d notice edited to name %s: told to %s", aid, ",".join(added),
             ",".join(told) or "-")
    return told


def resolve_unwatched(config: Config, store: Store) -> int:
    """Resolve the open trend and spike alerts of configured substances whose episode
    (kind and direction) no series of a configured source holds open any more: the
    sources whose series held it were taken out of the config, or no longer feed those
    series (:meth:`Store.active_episode_states`), so nothing judged ends it, and `warnd
    status` and the console would list its alerts as open for good. No end is told (a
    rise of a watched source opens a new episode). A paused source (``enabled = false``)
    still holds them: resumed, its episode goes on. How many."""
    watched = {s.name for s in config.sources}
    n = 0
    for r in store.q("SELECT DISTINCT substance, kind, direction FROM alerts WHERE "
                     "status='open' AND kind IN ('trend','spike') AND substance != ''"):
        sub, kind, direction = r["substance"], r["kind"], r["direction"]
        if sub not in config.substances or store.open_episode_scopes(
                sub, f"{kind}:{direction}", sources=watched):
            continue
        with store.write() as db:
            store.set_aside(db, [(int(r["id"]), sub) for r in store.q(
                "SELECT id FROM alerts WHERE status='open' AND substance=? AND kind=? AND "
                "direction IS ?", [sub, kind, direction])])
            n += store.resolve_alerts(db, kind=kind, substance=sub, direction=direction)
        log.info("substance=%s %s:%s no configured source holds the episode open any "
                 "more: its alerts are resolved", sub, kind, direction)
    return n


def reopen_returned(config: Config, store: Store) -> int:
    """Open again the alerts resolved as their substance (or the sources holding their
    episode) were taken out of the config (:meth:`Store.set_aside`), once it is back
    and a watched series holds their episode open (a rise: while its recipients were
    told it goes on), so that `warnd status` and the console list them until it ends.
    Those of an episode no series holds open any more are forgotten. How many."""
    watched = config.watched_sources()
    n = 0
    for sub, ids in store.set_aside_alerts().items():
        if sub not in config.substances:
            continue
        told_open = bool((store.episode_state(substance_scope(sub)) or {}).get("open"))
        again, kept = [], []
        for r in store.q(f"SELECT id, kind, direction FROM alerts WHERE id IN "
                         f"({','.join('?' * len(ids)) or 'NULL'}) AND status='resolved'", ids):
            episode = f"{r['kind']}:{r['direction']}"
            if store.open_episode_scopes(sub, episode, sources=watched):
                if told_open or episode != "trend:increase":
                    again.append(int(r["id"]))
            elif store.open_episode_scopes(sub, episode):
                kept.append(int(r["id"]))  # held open by a source out of the config
        if len(kept) == len(ids):
            continue
        with store.write() as db:
            if again:
                db.execute(f"UPDATE alerts SET status='open' WHERE id IN "
                           f"({','.join('?' * len(again))})", again)
            if kept:
                store.save_episode_state(f"substance:{sub}:set-aside", {"alerts": kept}, db)
            else:
                db.execute("DELETE FROM episodes WHERE scope=?", (f"substance:{sub}:set-aside",))
        if again:
            n += len(again)
            log.info("substance=%s: %d alert(s) of episodes that go on in a configured "
                     "source are open again", sub, len(again))
    return n


def close_removed_failures(config: Config, store: Store, *, now: datetime) -> list[str]:
    """End, without a message, the failure episodes of sources taken out of the config
    or paused (``enabled = false``): nothing polls them any more, so the episode would
    stay open for as long (for good), and a source of that name added again (or resumed)
    later would fail without anyone being told (its failures then counted on from the
    old ones). Their alerts are resolved. The names."""
    watched = config.watched_sources()
    gone = [name for name in store.failing_sources() if name not in watched]
    for name in gone:
        with store.write() as db:
            _end_failure(store, name, store.episode_state(f"source:{name}") or {}, db,
                         now=now)
            db.execute("UPDATE source_state SET consecutive_failures=0 WHERE source=?",
                       (name,))
        log.info("source=%s taken out of the config or paused: its failure episode ended",
                 name)
    return gone


def _end_failure(store: Store, source: str, ep: dict[str, Any], db: Any, *,
                 now: datetime) -> None:
    """A source's failure episode ``ep`` ended without a message (in the caller's
    transaction ``db``): its state closed, its alerts resolved."""
    store.save_episode_state(f"source:{source}", {"open": False, "n": int(ep.get("n", 0)),
                                                   "since": None}, db, now=now)
    store.resolve_alerts(db, kind="source_health", source=source)


def check_source_health(
    config: Config, store: Store, source: str, *, now: datetime
) -> int | None:
    """One ``source_health`` alert per failure episode of a source, and its end.

    A source is failing from ``general.unhealthy_after`` consecutive poll failures
    (``source_state.consecutive_failures``) until its next successful poll. The
    episode state (``episodes`` scope ``source:<name>``) is written with the alert,
    so a restart neither repeats nor forgets it. The recovery is sent only with
    ``alerting.send_resolved``.
    """
    st = store.source_state(source)
    fails = int(st.get("consecutive_failures") or 0)
    scope = f"source:{source}"
    ep = store.episode_state(scope) or {"open": False, "n": 0}
    if fails >= config.general.unhealthy_after and not ep.get("open"):
        n = int(ep.get("n", 0)) + 1
        new = {"open": True, "n": n, "since": st.get("last_error_at") or iso(now)}
        decision = "open"
    elif fails >= config.general.unhealthy_after and _failure_held(store, source, ep, now):
        # a failure a silence held back, told to nobody, that goes on once nothing holds
        # it back: told now, as the next failure (its recovery then goes to those it
        # reaches)
        new = {"open": True, "n": int(ep.get("n", 0)) + 1,
               "since": ep.get("since") or st.get("last_error_at") or iso(now)}
        decision = "open"
    elif fails == 0 and ep.get("open"):
        new = {"open": False, "n": int(ep.get("n", 0)), "since": None}
        decision = "resolve"
        told = store.q("SELECT status FROM alerts WHERE dedupe_key=?",
                       [f"source_health:{source}:{new['n']}:open"])
        # no recovery for a failure nobody was told of (its message held by a silence)
        if not config.alerting.send_resolved or (told and told[0]["status"] == "silenced"):
            with store.write() as db:
                _end_failure(store, source, ep, db, now=now)
            log.info("source=%s recovered", source)
            return None
    elif ep.get("end_silenced") and not ep.get("open"):
        # a recovery is told with a poll that succeeded, not with one that failed (fewer
        # times than make it failing): it waits for the next one that succeeds
        return _tell_held_recovery(config, store, source, ep, now=now) if fails == 0 else None
    else:
        return None
    data = {
        "substance": "",
        "label": source,
        "kind": "source_health",
        "direction": None,
        "decision": decision,
        "severity": "warning",
        "source": source,
        "failures": fails,
        "last_error": st.get("last_error") or "",
        "last_error_at": st.get("last_error_at") or "",
        "last_success_at": st.get("last_success_at") or "",
    }
    # the times as people read them: on the local clock, with the zone's name
    tz = ZoneInfo(config.general.timezone)
    data.update({f"{k}_local": wall_clock(data[k], tz) if data[k] else ""
                 for k in ("last_error_at", "last_success_at")})
    title, body = render_text(data, config.general.language, config=config)
    alert = {
        "dedupe_key": f"source_health:{source}:{new['n']}:{decision}",
        "substance": "",
        "source": source,
        "region": "",
        "kind": "source_health",
        "direction": None,
        "severity": "warning",
        "decision": decision,
        "title": title,
        "body": body,
        "data": data,
        "status": "open",
    }
    if decision == "open":
        return enqueue_alert(config, store, alert, now=now, episodes={scope: new})
    # the recovery goes to those the failure's message reached or still goes to, not to
    # one it never reached (expired on a dead relay, failed): it is recorded as not sent
    # to that one, and goes after the failure's message queued again; to nobody when the
    # failure went to nobody (every target muted then, unmuted since or not)
    told_to, unheard = _failure_told(store, source, int(new["n"]))
    with store.write() as db:  # the failure's alerts, and this one, are no longer open
        aid = enqueue_alert(config, store, alert, now=now, episodes={scope: new},
                            told_to=told_to, unheard=unheard)
        if aid is not None and alert.get("status") == "silenced":
            # the recovery of a told failure held back by a silence: told once it ended
            store.save_episode_state(scope, {**new, "end_silenced": aid}, db, now=now)
        store.resolve_alerts(db, kind="source_health", source=source)
    return aid


def _failure_held(store: Store, source: str, ep: dict[str, Any], now: datetime) -> bool:
    """Whether the source's open failure ``ep`` was told to nobody, its message held
    back by a silence (when it was decided, or while it waited), and no silence holds it
    back now."""
    if not ep.get("open"):
        return False
    rows = store.q("SELECT * FROM alerts WHERE dedupe_key=?",
                   [f"source_health:{source}:{int(ep.get('n', 0))}:open"])
    return bool(rows) and rows[0]["status"] == "silenced" and silenced_by(
        store, rows[0], now) is None


def _failure_told(store: Store, source: str, n: int) -> tuple[list[str] | None, list[str]]:
    """Who had the message of the source's failure ``n``: the targets it reached or
    still goes to (None when it had no deliveries recorded), and those it never reached
    (expired, failed)."""
    had = store.q("SELECT d.target, d.status FROM alerts a LEFT JOIN deliveries d ON "
                  "a.id = d.alert_id WHERE a.dedupe_key=?",
                  [f"source_health:{source}:{n}:open"])
    told_to = None if not had else sorted(
        {r["target"] for r in had if r["status"] in ("pending", "delivered")})
    unheard = sorted({r["target"] for r in had if r["status"] in ("expired", "failed")}
                     - set(told_to or ()))
    return told_to, unheard


def _tell_held_recovery(config: Config, store: Store, source: str, ep: dict[str, Any], *,
                        now: datetime) -> int | None:
    """The recovery of a told failure that a silence held back (``end_silenced`` in the
    source's episode state), told now that no silence covers it (with a poll that
    succeeded), to those who had the failure; None while one does."""
    rows = store.q("SELECT * FROM alerts WHERE id=?", [int(ep["end_silenced"])])
    if rows and silenced_by(store, rows[0], now) is not None:
        return None
    scope, rest = f"source:{source}", {k: v for k, v in ep.items() if k != "end_silenced"}
    if not rows:
        with store.write() as db:
            store.save_episode_state(scope, rest, db, now=now)
        return None
    a = rows[0]
    alert = {
        "dedupe_key": f"{a['dedupe_key']}:after-silence", "substance": "", "source": source,
        "region": "", "kind": "source_health", "direction": None, "severity": a["severity"],
        "decision": "resolve", "title": a["title"], "body": a["body"],
        "data": json.loads(a["data"] or "{}"), "status": "open",
    }
    told_to, unheard = _failure_told(store, source, int(ep.get("n", 0)))
    with store.write() as db:
        aid = enqueue_alert(config, store, alert, now=now, episodes={scope: rest},
                            told_to=told_to, unheard=unheard)
        store.resolve_alerts(db, kind="source_health", source=source)
    return aid


