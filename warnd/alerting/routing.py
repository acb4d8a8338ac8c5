"""Who gets an alert: ``[[routes]]``, tags, default targets, muted targets.

``[[routes]]`` are tried in order; the first match (or every match until one with
``stop = true``) names targets or tags; no match goes to
``alerting.default_targets`` (all targets when unset). Muted targets and substances
get no deliveries; the alert is still recorded. An end or a correction goes to the
targets that had what it ends or corrects (:func:`route_told`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warnd.config import Config

SEVERITIES = ("info", "warning", "critical")


def resolve_targets(config: Config, names: Iterable[str]) -> list[str]:
    """Target names for names or tags, in order, without duplicates or muted targets."""
    by_name = {t.name: t for t in config.targets}
    out: list[str] = []
    for n in names:
        if n in by_name:
            out.append(n)
        else:
            out += [t.name for t in config.targets if n in t.tags]
    seen: set[str] = set()
    return [n for n in out if not by_name[n].muted and not (n in seen or seen.add(n))]


def route(config: Config, alert: dict[str, Any]) -> list[str]:
    """Target names for an alert (none when muted). An alert about series of several
    regions (``regions``: a substance's message naming a rise in each) goes where each
    region routes, as an alert of its own would (the targets joined, in order)."""
    if alert.get("status") == "muted":
        return []
    regions = list(dict.fromkeys([alert.get("region") or "", *(alert.get("regions") or ())]))
    if len(regions) > 1:
        out: list[str] = []
        for region in regions:
            out += [n for n in _route_one(config, {**alert, "region": region}) if n not in out]
        return out
    return _route_one(config, alert)


def _route_one(config: Config, alert: dict[str, Any]) -> list[str]:
    """Target names for an alert of one region."""
    by_name = {t.name: t for t in config.targets}
    resolve = lambda names: resolve_targets(config, names)

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


def route_told(config: Config, alert: dict[str, Any], had: Iterable[str],
               reached: Iterable[str] | None = None) -> list[str]:
    """Target names for an end or a correction: of ``had`` (the targets that had the
    messages it ends or corrects, delivered or still waiting), those still configured
    and not muted. Routed as usual (:func:`route`) only when none of ``had`` is in the
    config any more (taken out, or renamed) and one of them had a message of those
    (``reached``, of ``had``; all of them when not given); none when ``had`` is empty:
    nobody heard of what it ends or corrects (its deliveries expired, failed or were
    dropped), and a recipient who never heard of a rise is not told that it ended or
    was withdrawn. Nor when every message of those still waits for a target no longer
    configured (renamed while the opening waited for the end of quiet hours): the
    target under its new name never had them."""
    had = list(had)
    by_name = {t.name: t for t in config.targets}
    kept = [n for n in had if n in by_name]
    if had and not kept:
        heard = had if reached is None else set(reached)
        return route(config, alert) if any(n in heard for n in had) else []
    seen: set[str] = set()
    return [n for n in kept if not by_name[n].muted and not (n in seen or seen.add(n))]
