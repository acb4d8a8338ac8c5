"""Silences: ``warnd silence add|list|expire``, and which alerts they hold back.

A silence matches an alert when every field it sets matches: ``substance``, ``kind``
(trend, spike, notice, source_health, digest) and ``source`` (any of the alert's
sources). A matching alert is still recorded, with status ``silenced`` and
``silenced_by`` = the silence id, but gets no deliveries; a delivery still waiting
(quiet hours, retries) when a matching silence is added is not sent either.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warnd.jsonout import print_json

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


def silenced_by(store: Store, alert: dict[str, Any], now: datetime) -> int | None:
    """The id of the first active silence matching the alert, or None."""
    for s in store.silences(now=now, active_only=True):
        if matches(s, alert):
            return int(s["id"])
    return None


# -- commands ---------------------------------------------------------------------
def cmd_silence(
    args: argparse.Namespace, store: Store, *, config: Any = None, now: datetime | None = None
) -> int:
    now = now or datetime.now(UTC)
    sub = getattr(args, "silence_cmd", None) or "list"
    if sub == "add":
        if not (args.substance or args.kind or args.source):
            print("warnd: silence add needs --substance, --kind or --source", file=sys.stderr)
            return 2
        if config is not None:  # a typo would silence nothing, silently
            if args.substance and args.substance not in config.substances:
                print(f'warnd: --substance: "{args.substance}" is not a configured substance '
                      f"({', '.join(sorted(config.substances))})", file=sys.stderr)
                return 2
            names = [s.name for s in config.sources]
            if args.source and args.source not in names:
                print(f'warnd: --source: "{args.source}" is not a configured source '
                      f"({', '.join(sorted(names))})", file=sys.stderr)
                return 2
        from warnd.config import parse_duration

        try:
            span = parse_duration(args.duration)
        except ValueError as e:
            print(f"warnd: --for: {e}", file=sys.stderr)
            return 2
        sid = store.add_silence(
            substance=args.substance, kind=args.kind, source=args.source, reason=args.reason,
            until=now + span, created_by=args.by, now=now,
        )
        what = ", ".join(
            f"{k}={v}" for k, v in (("substance", args.substance), ("kind", args.kind),
                                     ("source", args.source)) if v
        )
        print(f"silence {sid} added: {what} until {(now + span).isoformat(timespec='minutes')}")
        return 0
    if sub == "expire":
        if store.expire_silence(args.id, now=now):
            print(f"silence {args.id} expired")
            return 0
        print(f"warnd: no active silence with id {args.id}", file=sys.stderr)
        return 1
    show_all = bool(getattr(args, "all", False))
    rows = store.silences(now=now, active_only=not show_all)
    if getattr(args, "json", False):
        print_json(rows)
        return 0
    if not rows:
        print("no silences" if show_all else "no active silences")
    for r in rows:
        what = ", ".join(
            f"{k}={r[k]}" for k in ("substance", "kind", "source") if r.get(k)
        )
        state = "active" if r["active"] else "ended"
        print(f"#{r['id']} {state:6} {what}  until {r['until'][:16]}  — {r['reason']}")
    return 0


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
