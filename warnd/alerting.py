"""From findings to alerts in the outbox, and from the outbox to the targets.

Rules live here, in one place:

* **Episodes** — each series has an :class:`detectors.episodes.EpisodeTracker`
  (the same rules ``warnd backtest`` applies). A substance message is sent when a
  series opens an episode, escalates or repeats; a second source opening while the
  substance is already alerting is an escalation ("more sources agree").
* **Outbox** — an alert and one delivery row per routed target are written in one
  transaction, together with the episode state, *before* anything is sent. The
  alert's ``dedupe_key`` is unique, so a re-run after a crash never adds it twice.
* **Routing** — ``[[routes]]`` in order; the first match (or every match until one
  with ``stop = true``) names targets or tags; no match goes to
  ``alerting.default_targets`` (all targets when unset). Muted targets and
  substances get no deliveries; the alert is still recorded.
* **Delivery** — each target separately, retried with exponential backoff until
  ``alerting.expire_after``; an expired delivery is logged as an error and shown
  by ``warnd status``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from detectors.base import SCALE, Finding, is_score
from warnd import messages
from warnd.config import Config, parse_duration
from warnd.notify import mask, send, target_url
from warnd.store import Store, _json_default, iso

log = logging.getLogger("warnd.alerting")

SEND_ACTIONS = ("open", "escalate", "repeat")
SEVERITIES = ("info", "warning", "critical")


# -- episode tracker adapter (the rules themselves live in detectors.episodes) ------
class SeriesEpisodes:
    """A series' :class:`~detectors.episodes.EpisodeTracker` plus what the daemon keeps
    beside it: the last period judged and the latest finding of each open episode."""

    def __init__(self, state: dict[str, Any] | None, params: Any) -> None:
        from detectors.episodes import EpisodeTracker

        state = state or {}
        self.params = params
        self.tracker = (
            EpisodeTracker.from_dict(state["tracker"], params=params)
            if state.get("tracker")
            else EpisodeTracker(params=params)
        )
        lp = state.get("last_period")
        self.last_period: date | None = date.fromisoformat(lp) if lp else None
        self.active: dict[str, dict[str, Any]] = dict(state.get("active", {}))

    def update(self, period: date, findings: list[Finding]) -> list[tuple[str, Finding]]:
        """Judge one period; return (action, finding) for each decision to send."""
        out: list[tuple[str, Finding]] = []
        for d in self.tracker.update(findings):
            if d.action == "resolve":
                self.active.pop(d.episode, None)
            elif d.finding is not None:
                self.active[d.episode] = finding_to_dict(d.finding)
                if d.send:
                    out.append((d.action, d.finding))
        self.last_period = period
        return out

    def active_findings(self) -> list[Finding]:
        return [finding_from_dict(v) for _, v in sorted(self.active.items())]

    def to_state(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.to_dict(),
            "last_period": self.last_period.isoformat() if self.last_period else None,
            "active": self.active,
        }


def finding_to_dict(f: Finding) -> dict[str, Any]:
    d = dataclasses.asdict(f)
    d["onset"] = f.onset.isoformat()
    d["detected_at"] = f.detected_at.isoformat()
    return json.loads(json.dumps(d, default=_json_default))


def finding_from_dict(d: dict[str, Any]) -> Finding:
    kw = dict(d)
    kw["onset"] = date.fromisoformat(kw["onset"])
    kw["detected_at"] = date.fromisoformat(kw["detected_at"])
    for k in ("level_before", "level_after", "relative_change", "strength"):
        if kw.get(k) is None:
            kw[k] = float("nan")
    return Finding(**kw)


def tracker_from_state(state: dict[str, Any] | None, params: Any) -> SeriesEpisodes:
    return SeriesEpisodes(state, params)


def tracker_state(tracker: SeriesEpisodes) -> dict[str, Any]:
    return tracker.to_state()


def tracker_last_period(tracker: SeriesEpisodes) -> date | None:
    return tracker.last_period


def tracker_update(
    tracker: SeriesEpisodes, period: date, findings: list[Finding]
) -> list[tuple[str, Finding]]:
    return tracker.update(period, findings)


def tracker_active(state: dict[str, Any] | None, params: Any) -> list[Finding]:
    if not state:
        return []
    return SeriesEpisodes(state, params).active_findings()


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


def enqueue_findings(
    config: Config,
    store: Store,
    substance: str,
    firing: Sequence[tuple[Finding, str]],
    states: dict[str, dict[str, Any]],
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """Turn the series decisions of one substance into alerts in the outbox.

    Trend increases of one substance become one message listing every source that
    agrees; spikes and decreases are their own messages. Episode states are saved
    in the same transaction as the alert (or alone when nothing is sent).
    """
    created: list[dict[str, Any]] = []
    trends = [(f, a) for f, a in firing if f.kind == "trend" and f.direction == "increase"]
    spikes = [f for f, _ in firing if f.kind == "spike"]
    others = [(f, a) for f, a in firing if f.kind != "spike" and not (
        f.kind == "trend" and f.direction == "increase")]
    # While the substance is rising, a one-off spike in any of its series is part of
    # that story: it is told in the trend message (or recorded only), not sent alone.
    rising = bool(trends) or _substance_alerting(store, substance) or any(
        "trend:increase" in (st.get("active") or {}) for st in states.values()
    )
    folded: list[Finding] = []
    if rising:
        folded = spikes
        if spikes and not trends:
            log.info("substance=%s %d spike(s) recorded within a rising trend", substance,
                     len(spikes))
    else:
        others += [(f, a) for f, a in firing if f.kind == "spike"]
    groups: list[list[tuple[Finding, str]]] = [trends] if trends else []
    groups += [[x] for x in others]
    pending_states = dict(states)
    for group in groups:
        alert = _build_alert(config, store, substance, group, pending_states, now=now,
                             spikes=folded if group is trends else ())
        if alert["severity"] == "none":
            # require_corroboration: too few sources agree yet; the episode state is kept
            log.info("substance=%s %s from %s held back: needs corroboration", substance,
                     alert["kind"], alert["source"])
            continue
        targets = route(config, alert)
        # the episode states are written in the same transaction as the first alert
        aid = store.add_alert(alert, targets, episodes=pending_states, now=now)
        pending_states = {}
        if aid is not None:
            alert["id"] = aid
            alert["targets"] = targets
            created.append(alert)
            log.info(
                "alert=%d substance=%s kind=%s severity=%s decision=%s targets=%s: %s",
                aid, substance, alert["kind"], alert["severity"], alert["decision"],
                ",".join(targets) or "-", alert["title"],
            )
    if pending_states:
        with store.write() as db:
            for scope, st in pending_states.items():
                store.save_episode_state(scope, st, db)
    return created


def _build_alert(
    config: Config,
    store: Store,
    substance: str,
    group: list[tuple[Finding, str]],
    states: dict[str, dict[str, Any]],
    *,
    now: datetime,
    spikes: Sequence[Finding] = (),
) -> dict[str, Any]:
    lead, action = max(group, key=lambda fa: (fa[0].category, fa[0].strength))
    agree: dict[str, Finding] = {f.series_key: f for f, _ in group}
    disagree: list[str] = []
    panel: list[dict[str, Any]] = []
    spiking = {f.series_key for f in spikes}
    if lead.kind == "trend" and lead.direction == "increase":
        for source, sub, region, metric in store.series_keys(substance):
            skey = ":".join([source, sub, *([region] if region else []),
                             *([metric] if metric != "count" else [])])
            if skey in agree or skey in spiking or metric == "notices":
                continue
            if is_score(metric):  # panel answers: their latest round, not a detector verdict
                last = store.q(
                    "SELECT period, value, denominator, dimension FROM observations WHERE "
                    "source=? AND substance=? AND region=? AND metric=? ORDER BY period DESC "
                    "LIMIT 1", [source, sub, region, metric])
                if last:
                    panel.append({"series": skey, "source": source, **last[0]})
                continue
            try:
                params = config.detection_params(substance, source)
            except Exception:
                continue
            st = states.get(f"series:{skey}") or store.episode_state(f"series:{skey}")
            active = [
                f for f in tracker_active(st, params)
                if f.kind == "trend" and f.direction == "increase"
            ]
            if active:
                agree[skey] = active[0]
            else:
                disagree.append(skey)
    sources = sorted({f.source for f in agree.values()})
    if lead.kind == "trend" and lead.direction == "increase":
        from detectors.synthesis import substance_verdict

        verdict = substance_verdict(agree.values(), config.detection_params(substance))
        category, severity = verdict.category, verdict.severity
    else:
        category = max(f.category for f in agree.values())
        severity = severity_for(len(sources), category)
    decision = "escalate" if any(a == "escalate" for _, a in group) else action
    if decision == "open" and lead.kind == "trend" and _substance_alerting(store, substance):
        decision = "escalate"
    headlines = _headlines(store, substance, since=min(f.onset for f in agree.values()))
    data = {
        "substance": substance,
        "label": config.substance_label(substance),
        "kind": lead.kind,
        "direction": lead.direction,
        "decision": decision,
        "severity": severity,
        "category": category,
        "category_words": SCALE[int(max(-2, min(2, category)))],
        "onset": min(f.onset for f in agree.values()).isoformat(),
        "detected_at": max(f.detected_at for f in agree.values()).isoformat(),
        "agree": [_finding_dict(f) for f in sorted(agree.values(), key=lambda f: f.series_key)],
        "disagree": sorted(disagree),
        "spikes": [_finding_dict(f) for f in spikes],
        "panel": panel,
        "headlines": headlines,
    }
    digest = hashlib.sha256(
        json.dumps(
            [substance, lead.kind, lead.direction, decision,
             sorted((f.series_key, f.onset.isoformat(), f.detected_at.isoformat())
                    for f, _ in group)],
        ).encode()
    ).hexdigest()[:20]
    lang = config.general.language
    title, body = messages.render_text(data, lang)
    return {
        "dedupe_key": f"{substance}:{lead.kind}:{lead.direction}:{decision}:{digest}",
        "substance": substance,
        "source": lead.source if len(sources) == 1 else ",".join(sources),
        "region": lead.region,
        "kind": lead.kind,
        "direction": lead.direction,
        "severity": severity,
        "decision": decision,
        "title": title,
        "body": body,
        "data": data,
        "status": "muted" if _muted(config, substance) else "open",
    }


def _substance_alerting(store: Store, substance: str) -> bool:
    """True when an open trend-increase alert exists for the substance."""
    return bool(
        store.q(
            "SELECT 1 FROM alerts WHERE substance=? AND kind='trend' AND direction='increase' "
            "AND decision IN ('open','escalate','repeat') AND status IN ('open','muted') LIMIT 1",
            [substance],
        )
    )


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "series": f.series_key,
        "source": f.source,
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


def _headlines(store: Store, substance: str, *, since: date, limit: int = 5) -> list[dict[str, str]]:
    rows = store.q(
        "SELECT i.title, i.link, i.published_at, i.source, i.kind FROM items i "
        "JOIN item_substances s ON s.key = i.key WHERE s.substance=? AND i.week >= ? "
        "ORDER BY i.published_at DESC LIMIT ?",
        [substance, since.isoformat(), limit],
    )
    return [
        {"title": r["title"], "link": r["link"] or "", "published_at": r["published_at"][:10],
         "source": r["source"], "kind": r["kind"]}
        for r in rows
    ]


def _muted(config: Config, substance: str) -> bool:
    sc = config.substances.get(substance)
    return bool(sc and sc.muted)


def enqueue_notice(
    config: Config, store: Store, src: Any, item: Any, substance: str, *, now: datetime
) -> int | None:
    """A new warning notice naming a monitored substance is an alert by itself.

    Notices published more than ``alerting.notice_max_age`` before now (history
    read on a first poll) are stored and counted, not alerted.
    """
    if now - item.published_at > parse_duration(config.alerting.notice_max_age):
        return None
    data = {
        "substance": substance,
        "label": config.substance_label(substance),
        "kind": "notice",
        "direction": "increase",
        "decision": "open",
        "severity": "warning",
        "source": src.name,
        "notice": {
            "title": item.title,
            "link": item.link or "",
            "published_at": item.published_at.date().isoformat(),
            "summary": (item.summary or "")[:1000],
        },
    }
    title, body = messages.render_text(data, config.general.language)
    alert = {
        "dedupe_key": f"{substance}:notice:{item.key}",
        "substance": substance,
        "source": src.name,
        "region": item.region or src.region,
        "kind": "notice",
        "direction": "increase",
        "severity": "warning",
        "decision": "open",
        "title": title,
        "body": body,
        "data": data,
        "status": "muted" if _muted(config, substance) else "open",
    }
    targets = route(config, alert)
    aid = store.add_alert(alert, targets, now=now)
    if aid is not None:
        log.info("alert=%d substance=%s kind=notice source=%s: %s", aid, substance, src.name, title)
    return aid


# -- routing -----------------------------------------------------------------------
def route(config: Config, alert: dict[str, Any]) -> list[str]:
    """Target names for an alert (none when muted)."""
    if alert.get("status") == "muted":
        return []
    by_name = {t.name: t for t in config.targets}

    def resolve(names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for n in names:
            if n in by_name:
                out.append(n)
            else:
                out += [t.name for t in config.targets if n in t.tags]
        return out

    sev = SEVERITIES.index(alert["severity"]) if alert["severity"] in SEVERITIES else 0
    chosen: list[str] = []
    matched = False
    for r in config.routes:
        if r.substances is not None and alert["substance"] not in r.substances:
            continue
        if r.kinds is not None and alert["kind"] not in r.kinds:
            continue
        if r.regions is not None and (alert.get("region") or "") not in r.regions:
            continue
        if sev < SEVERITIES.index(r.min_severity):
            continue
        matched = True
        chosen += resolve(r.targets)
        if r.stop:
            break
    if not matched:
        chosen = (
            resolve(config.alerting.default_targets)
            if config.alerting.default_targets is not None
            else list(by_name)
        )
    seen: set[str] = set()
    return [n for n in chosen if not by_name[n].muted and not (n in seen or seen.add(n))]


# -- delivery ----------------------------------------------------------------------
def dispatch_pending(
    config: Config,
    store: Store,
    *,
    now: datetime,
    send: Callable[..., Any] | None = None,
) -> dict[str, int]:
    """Send every due delivery once; record success, retry time or expiry."""
    send_fn = send or globals()["send"]
    by_name = {t.name: t for t in config.targets}
    a = config.alerting
    backoff = parse_duration(a.retry_backoff)
    max_backoff = parse_duration(a.retry_max_backoff)
    expire = parse_duration(a.expire_after)
    timeout = parse_duration(a.send_timeout).total_seconds()
    counts = {"delivered": 0, "retrying": 0, "expired": 0, "failed": 0}
    for d in store.due_deliveries(now):
        t = by_name.get(d["target"])
        aid, name = int(d["alert_id"]), d["target"]
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
        title, body, fmt, attachments = messages.for_target(url, d, data, config, store)
        result = send_fn(url, title=title, body=body, body_format=fmt,
                         attachments=attachments, timeout=timeout)
        if result.ok:
            store.mark_delivery(aid, name, status="delivered", now=now)
            counts["delivered"] += 1
            log.info("alert=%d target=%s delivered (%s)", aid, name, mask(url))
            continue
        created = datetime.fromisoformat(d["created_at"])
        err = f"{result.status}: {result.detail}".strip(": ")
        if now - created >= expire:
            store.mark_delivery(aid, name, status="expired", error=err, now=now)
            counts["expired"] += 1
            log.error("alert=%d target=%s expired after %d attempts: %s", aid, name,
                      int(d["attempts"]) + 1, err)
            continue
        delay = min(backoff * (2 ** int(d["attempts"])), max_backoff)
        store.mark_delivery(aid, name, status="pending", error=err,
                            next_attempt_at=now + delay, now=now)
        counts["retrying"] += 1
        log.warning("alert=%d target=%s not accepted (%s); retry at %s", aid, name, err,
                    iso(now + delay))
    return counts
