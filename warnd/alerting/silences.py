"""Silences: which alerts they hold back, and the parser of ``warnd silence
add|list|expire`` (the command: :func:`warnd.alerting.commands.cmd_silence`).

A silence matches an alert when every field it sets matches: ``substance``, ``kind``
(trend, spike, notice, source_health, digest) and ``source`` (any of the alert's
sources). A matching alert is still recorded, with status ``silenced`` and
``silenced_by`` = the silence id, but gets no deliveries; a delivery still waiting
(quiet hours, retries) when a matching silence is added is not sent either. A silence
given in days or weeks ends at the clock time it began (:func:`silence_end`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warnd.store import Store


def matches(silence: dict[str, Any], alert: dict[str, Any]) -> bool:
    if silence.get("substance") and silence["substance"] != alert.get("substance"):
        return False
    if silence.get("kind") and silence["kind"] != alert.get("kind"):
        return False
    if silence.get("source"):
        sources = {s for s in str(alert.get("source") or "").split(",") if s}
        if silence["source"] not in sources:
            return False
    return True


#: The kinds of alert about a substance (a source's failure and a digest are of none).
SUBSTANCE_KINDS = ("trend", "spike", "notice")


def holds_back(silence: dict[str, Any], substance: str, sources: Iterable[str]) -> bool:
    """True when the silence matches some alert about ``substance`` (:func:`matches`):
    of one of its kinds, from one of ``sources`` (those with data of the substance).
    A silence of a kind or a source alone holds back the substance's alerts of it too."""
    return any(matches(silence, {"substance": substance, "kind": kind, "source": source})
               for kind in SUBSTANCE_KINDS for source in [*sources] or [""])


def silence_end(start: datetime, duration: str, timezone: str) -> datetime:
    """When a silence from ``start`` for ``duration`` ends (UTC). Its days and weeks count
    on the clock in ``timezone``: "14d" from Monday 09:00 ends Monday 09:00 two weeks
    later, a change of the clock between or not (on a day whose clock skips that time,
    at the jump: :func:`warnd.alerting.localtime.instant`). Its hours, minutes and
    seconds are elapsed time: "336h" is 336 hours, 08:00 by the clock after the autumn
    change."""
    from zoneinfo import ZoneInfo  # (the command-line parser below is built for every command)

    from warnd.alerting.localtime import add_days
    from warnd.config import split_duration

    days, rest = split_duration(duration)
    return add_days(start, days, ZoneInfo(timezone)) + rest


def silenced_by(store: Store, alert: dict[str, Any], now: datetime) -> int | None:
    """The id of the first active silence matching the alert, or None."""
    for s in store.silences(now=now, active_only=True):
        if matches(s, alert):
            return int(s["id"])
    return None


# -- command line (the command itself: warnd.alerting.commands.cmd_silence) -------
def add_parser(sub: Any, common: argparse.ArgumentParser, func: Any) -> None:
    s = sub.add_parser("silence", parents=[common],
                       help="hold back alerts for a while: silence add|list|expire")
    ssub = s.add_subparsers(dest="silence_cmd")
    a = ssub.add_parser("add", parents=[common], help="add a silence")
    a.add_argument("--substance", help="substance id (as in config.toml)")
    a.add_argument("--kind", choices=["trend", "spike", "notice", "source_health", "digest"])
    a.add_argument("--source", help="source name")
    a.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                   help='how long, e.g. "14d", "12h"')
    a.add_argument("--reason", required=True, help="why (shown in `silence list`)")
    a.add_argument("--by", default=None, help="who adds it (recorded)")
    ls = ssub.add_parser("list", parents=[common], help="active silences (the default)")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--all", action="store_true", help="include ended silences")
    e = ssub.add_parser("expire", parents=[common], help="end a silence now")
    e.add_argument("id", type=int)
    s.set_defaults(func=func)
