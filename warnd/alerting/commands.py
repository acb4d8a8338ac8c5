"""``warnd test-notify`` and ``warnd silence``: the alert-delivery commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warnd.errors import ConfigError
from warnd.jsonout import print_json

#: What a region joins, in the words of `warnd status`.
JOINED_WHAT = {("spike", "increase"): "spike", ("trend", "decrease"): "fall"}

if TYPE_CHECKING:  # the parsers are built for every command; the config module is not needed
    from warnd.config import Config
    from warnd.store import Store


def alerting_status(store: Any, now: datetime | None = None, *, substances: Any = None,
                    config: Config | None = None) -> dict[str, Any]:
    """The alert-delivery part of ``warnd status --json`` (what a silence holds back of
    ``substances`` only, when given: the configured ones; ``config``: the routes that say
    which region's series a held join is for, :func:`joins_held`)."""
    from warnd.store import iso

    now = now or datetime.now(UTC)
    expired = store.q(
        "SELECT d.alert_id, d.target, d.attempts, d.last_error, a.title FROM deliveries d "
        "JOIN alerts a ON a.id = d.alert_id WHERE d.status='expired' "
        "ORDER BY d.alert_id DESC LIMIT 20")
    # first attempts put off to the end of the quiet time; not those held (with the
    # reason) behind a target's back-off or a target no longer configured
    waiting = store.q(
        "SELECT COUNT(*) AS n, MIN(next_attempt_at) AS until FROM deliveries "
        "WHERE status='pending' AND attempts=0 AND last_error IS NULL "
        "AND next_attempt_at > ?", [iso(now)])[0]
    return {
        "expired_deliveries": expired,
        "active_silences": store.silences(now=now, active_only=True),
        "waiting_deliveries": {"n": waiting["n"], "until": waiting["until"]},
        "held_back_by_silence": [s for s in store.rises_held_back()
                                 if (substances is None or s in substances)
                                 and still_held(store, s, now)],
        "corrections_held_back_by_silence": corrections_held(store, now, substances),
        "ends_held_back_by_silence": ends_held(store, now, substances),
        "joins_held_back_by_silence": joins_held(store, now, substances, config),
    }


def corrections_held(store: Any, now: datetime, substances: Any = None
                     ) -> list[dict[str, Any]]:
    """The corrections of one source of an episode that goes on that an active silence
    holds back (told when it ends), of ``substances`` only when given: each with its
    alert's id, substance, kind, direction, source and title. One held back by a mute
    alone is not listed, nor one whose silence was ended early (told at the next pass)."""
    return _silenced_now(store, now, store.corrections_held_back(), substances)


def ends_held(store: Any, now: datetime, substances: Any = None) -> list[dict[str, Any]]:
    """The ends of a told rise (spike, fall) that an active silence holds back (told when
    it ends), listed as :func:`corrections_held` lists corrections."""
    return _silenced_now(store, now, store.ends_held_back(), substances)


def joins_held(store: Any, now: datetime, substances: Any = None,
               config: Config | None = None) -> list[dict[str, Any]]:
    """The messages of a region's series joining an open spike (fall) that an active
    silence holds back from the desks that had none of it (told to them when it ends),
    of ``substances`` only when given, as :func:`corrections_held` lists corrections,
    each also with ``targets``, the desks it is for, and ``regions``, the regions of
    the series it names that route to them (with ``config``; else every region it
    names), and their names, ``region_names``."""
    from warnd.alerting.names import region_name

    out = []
    for row in _silenced_now(store, now, store.joins_held_back(), substances,
                             also=", region, severity, data"):
        data = json.loads(row.pop("data") or "{}")
        joined = list(data.get("joined") or [])
        named = sorted({str(a.get("region") or "") for a in data.get("agree") or []})
        if config is not None:
            from warnd.alerting.routing import route

            named = [r for r in named if set(joined) & set(route(config, {
                **row, "region": r, "regions": [], "status": "open"}))]
        del row["region"], row["severity"]
        out.append({**row, "targets": joined, "regions": named,
                    "region_names": [region_name(r, "en") for r in named]})
    return out


def _silenced_now(store: Any, now: datetime, held: list[tuple[str, int]],
                  substances: Any = None, *, also: str = "") -> list[dict[str, Any]]:
    """Of the messages ``held`` back (substance, alert id), those of ``substances`` (all,
    when None) an active silence holds back: each alert's id, substance, kind,
    direction, source and title (and the columns ``also`` names)."""
    from warnd.alerting.silences import matches

    silences = store.silences(now=now, active_only=True)
    out = []
    for substance, aid in held:
        if substances is not None and substance not in substances:
            continue
        rows = store.q("SELECT id AS alert_id, substance, kind, direction, source, title"
                       f"{also} FROM alerts WHERE id=?", [aid])
        if rows and any(matches(s, rows[0]) for s in silences):
            out.append(rows[0])
    return out


def still_held(store: Any, substance: str, now: datetime) -> bool:
    """True while an active silence covers the substance's rise (the sources of its
    latest message): a silence ended early leaves its rise held back only until the next
    detection pass tells it, and ``warnd status`` no longer lists it as held back by one."""
    from warnd.alerting.silences import matches

    latest = store.q("SELECT source FROM alerts WHERE substance=? AND kind='trend' AND "
                     "direction='increase' ORDER BY id DESC LIMIT 1", [substance])
    probe = {"substance": substance, "kind": "trend",
             "source": latest[0]["source"] if latest else ""}
    return any(matches(s, probe) for s in store.silences(now=now, active_only=True))


def print_alerting_status(st: dict[str, Any]) -> None:
    """The text lines of :func:`alerting_status` for ``warnd status``."""
    for e in st.get("expired_deliveries", []):
        print(f"  EXPIRED alert #{e['alert_id']} to {e['target']} after {e['attempts']} "
              f"attempts: {e['last_error']}")
    w = st.get("waiting_deliveries") or {}
    if w.get("n"):
        print(f"  {w['n']} waiting for the end of quiet hours (first at {w['until']})")
    if st.get("active_silences"):
        print(f"active silences: {len(st['active_silences'])} (warnd silence list)")
    if st.get("held_back_by_silence"):
        print("rises held back by a silence, told when it ends: "
              + ", ".join(st["held_back_by_silence"]))
    if st.get("corrections_held_back_by_silence"):
        print("corrections held back by a silence, told when it ends: " + ", ".join(
            f"{c['substance']} (alert #{c['alert_id']}: {c['source']})"
            for c in st["corrections_held_back_by_silence"]))
    if st.get("ends_held_back_by_silence"):
        print("ends held back by a silence, told when it ends: " + ", ".join(
            f"{c['substance']} (alert #{c['alert_id']}: {c['source']})"
            for c in st["ends_held_back_by_silence"]))
    if st.get("joins_held_back_by_silence"):
        print("regions joining a spike or a fall held back by a silence, told to their desks "
              "when it ends: " + ", ".join(
                  f"{j['substance']} {JOINED_WHAT.get((j['kind'], j['direction']), j['kind'])}"
                  + (f" in {' and '.join(j['region_names'])}" if j["region_names"] else "")
                  + f" (alert #{j['alert_id']}: for {', '.join(j['targets'])})"
                  for j in st["joins_held_back_by_silence"]))


def cli_user() -> str:
    """Who runs a command, for the action log when ``--by`` does not say."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container, a dynamic user)
        return "cli"


def cmd_ack(args: argparse.Namespace, store: Store, timezone: str) -> int:
    """``warnd alerts ack ID``: acknowledge as the console does (the first
    acknowledgement is kept, and logged), and say what became of the alert before:
    who acknowledged it first and when, and whether its episode has ended or was
    withdrawn (:func:`warnd.alerting.actions.handled`). Exit 0 either way; 1 when there
    is no such alert."""
    from zoneinfo import ZoneInfo

    from warnd.alerting.actions import ack_alert, handled
    from warnd.alerting.localtime import wall_clock
    from warnd.store import iso

    now, who = datetime.now(UTC), args.by or cli_user()
    if not ack_alert(store, args.id, who=who, via="cli", now=now):
        print(f"no alert with id {args.id}", file=sys.stderr)
        return 1
    print(f"alert {args.id} acknowledged")
    st = handled(store, args.id) or {}
    tz = ZoneInfo(timezone)  # as the console shows it, not in UTC
    if st.get("acked_at") and (st["acked_by"], st["acked_at"]) != (who, iso(now)):
        print(f"  already acknowledged by {st['acked_by']} at "
              f"{wall_clock(st['acked_at'], tz)}: that acknowledgement is kept")
    over = st.get("over")
    if over:
        when = f" at {wall_clock(over['at'], tz)} (alert {over['alert_id']})" if over[
            "at"] else ""
        print(f"  its episode has ended{when}" if over["how"] == "ended" else
              f"  withdrawn by a correction of the figures it rested on{when}")
    return 0


def cmd_silence(
    args: argparse.Namespace, store: Store, *, config: Any = None, now: datetime | None = None
) -> int:
    """``warnd silence add|list|expire``: adding and ending are the console's own
    actions (:mod:`warnd.alerting.actions`), logged with ``via = cli``."""
    from warnd.alerting import actions

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
        from warnd.alerting.silences import silence_end
        from warnd.config import GeneralConfig

        # days and weeks end at the clock time the silence begins, in general.timezone
        tz = (config.general.timezone if config is not None
              else GeneralConfig.model_fields["timezone"].default)
        try:
            until = silence_end(now, args.duration, tz)
        except ValueError as e:
            print(f"warnd: --for: {e}", file=sys.stderr)
            return 2
        sid = actions.add_silence(
            store, substance=args.substance, kind=args.kind, source=args.source,
            until=until, reason=args.reason, who=args.by or cli_user(), via="cli", now=now,
        )
        what = ", ".join(
            f"{k}={v}" for k, v in (("substance", args.substance), ("kind", args.kind),
                                     ("source", args.source)) if v
        )
        print(f"silence {sid} added: {what} until {until.isoformat(timespec='minutes')}")
        return 0
    if sub == "expire":
        if actions.expire_silence(store, args.id, who=cli_user(), via="cli", now=now):
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
    from zoneinfo import ZoneInfo

    from warnd.alerting.localtime import wall_clock

    # its end on the clock it was given by (a silence in days ends at a clock time)
    tz = ZoneInfo(config.general.timezone) if config is not None else UTC
    for r in rows:
        what = ", ".join(
            f"{k}={r[k]}" for k in ("substance", "kind", "source") if r.get(k)
        )
        state = "active" if r["active"] else "ended"
        print(f"#{r['id']} {state:6} {what}  until {wall_clock(r['until'], tz)}  "
              f"— {r['reason']}")
    return 0


def send_test_messages(
    cfg: Config, names: list[str], url: str | None, *, send: Callable[..., Any] | None = None
) -> list[dict[str, Any]]:
    """Send a test message to each chosen target (all when none is named)."""
    from warnd.alerting.send import mask, target_url
    from warnd.alerting.send import send as send_message
    from warnd.alerting.wording import T
    from warnd.config import parse_duration

    send_fn = send or send_message
    t = T.get(cfg.general.language, T["no"])
    title = t["test_title"]
    body = t["test"] + f"\n\n{datetime.now(UTC).isoformat(timespec='seconds')}"
    timeout = parse_duration(cfg.alerting.send_timeout).total_seconds()
    chosen: list[tuple[str, str | None, str | None]] = []  # name, url, error
    if url:
        chosen.append(("(url)", url, None))
    by_name = {tc.name: tc for tc in cfg.targets}
    for n in names:
        if n not in by_name:
            raise ConfigError(f'test-notify: no target named "{n}" '
                              f"(targets: {', '.join(sorted(by_name)) or 'none'})")
    for tc in cfg.targets if not (names or url) else [by_name[n] for n in names]:
        try:
            chosen.append((tc.name, target_url(tc), None))
        except ConfigError as e:
            chosen.append((tc.name, None, "; ".join(e.messages)))
    out = []
    for name, u, err in chosen:
        if u is None:
            out.append({"target": name, "accepted": False, "status": "ERROR", "detail": err})
            continue
        r = send_fn(u, title=title, body=body, body_format="text", attachments=None,
                    timeout=timeout)
        out.append({"target": name, "url": mask(u), "accepted": bool(r.ok),
                    "status": r.status, "detail": r.detail})
    return out


def record_test_outcomes(cfg: Config, results: list[dict[str, Any]],
                         now: datetime | None = None) -> None:
    """Count each test message to a configured target as an attempt of that target,
    as a delivery's is (``target_state``): an accepted one clears the target's failures
    and back-off, so a repaired target turns health green without waiting for an
    alert; a refused one counts as a failed attempt. Nothing is recorded without a
    store in the state directory (none is made), for a URL given on the command line
    or a target whose URL cannot be built; a store that cannot be written is said on
    stderr and changes nothing else."""
    import sqlite3
    from pathlib import Path

    from warnd.alerting import targets
    from warnd.errors import StoreError
    from warnd.store import DB_NAME, Store

    tried = [r for r in results if r["target"] != "(url)" and "url" in r]
    if not tried or not (Path(cfg.state_dir) / DB_NAME).exists():
        return
    now = now or datetime.now(UTC)
    try:
        store = Store.in_dir(cfg.state_dir)
    except (sqlite3.Error, StoreError) as e:
        print(f"warnd: test-notify: outcomes not recorded: {e}", file=sys.stderr)
        return
    try:
        with store.write():
            for r in tried:
                targets.record_outcome(
                    store, r["target"], ok=bool(r["accepted"]), now=now,
                    error=None if r["accepted"] else f"{r['status']}: {r['detail']}")
    except sqlite3.Error as e:
        print(f"warnd: test-notify: outcomes not recorded: {e}", file=sys.stderr)
    finally:
        store.close()


def cmd_test_notify(args: argparse.Namespace, cfg: Config) -> int:
    results = send_test_messages(cfg, list(args.target or []), args.url)
    record_test_outcomes(cfg, results)
    if not results:
        print("warnd: no targets configured", file=sys.stderr)
        return 1
    if args.json:
        print_json(results)
    else:
        for r in results:
            state = "accepted" if r["accepted"] else f"FAILED ({r['status']}: {r['detail']})"
            print(f"{r['target']}: {state}  {r.get('url', '')}".rstrip())
    return 0 if all(r["accepted"] for r in results) else 1


def cmd_digest(args: argparse.Namespace, cfg: Config) -> int:
    """Print the digest for the period ending now, or at the end of ``--end DATE``
    (nothing is sent)."""
    from datetime import date, time, timedelta

    from warnd.alerting import digest
    from warnd.store import Store

    end = datetime.now(UTC)
    if getattr(args, "end", None):
        try:
            day = date.fromisoformat(args.end)
        except ValueError:
            print(f"warnd: digest: --end {args.end!r} is not a date (YYYY-MM-DD)",
                  file=sys.stderr)
            return 2
        end = datetime.combine(day + timedelta(days=1), time(0), UTC)
    store = Store.in_dir(cfg.state_dir)
    try:
        data = digest.build(cfg, store, end=end, as_sent=True)
    finally:
        store.close()
    if args.json:
        print_json(data)
    else:
        title, text = digest.render(data, cfg.general.language)
        print(title + "\n\n" + text)
    return 0


def cmd_outbox(args: argparse.Namespace, cfg: Config) -> int:
    """``warnd outbox``: list deliveries waiting, failed or expired; retry or drop them."""
    from warnd.alerting import outbox
    from warnd.logs import redact
    from warnd.store import Store

    store = Store.in_dir(cfg.state_dir)
    try:
        action = getattr(args, "outbox_cmd", None) or "list"
        if action in ("retry", "drop"):
            import getpass

            fn = outbox.retry_delivery if action == "retry" else outbox.drop_delivery
            with store.write() as db:
                n = fn(store, args.id, args.target)
                if n:  # the action log the console shows (who, how, when)
                    store.record_action(db, who=getpass.getuser(), via="cli",
                                        action=f"{action}_delivery", alert_id=args.id,
                                        detail=args.target or "*")
            what = f"alert {args.id}" + (f" to {args.target}" if args.target else "")
            stale = outbox.superseded(store, args.id, args.target) if action == "retry" else {}
            for name, later in stale.items():
                print(f"warnd: outbox: alert {args.id} to {name} not queued again: {name} "
                      f"has had a later message on the same matter since (alert {later}), and "
                      "this one would arrive after it, out of date; drop it with `warnd "
                      f"outbox drop {args.id} --target {name}`", file=sys.stderr)
            if not n and stale:
                return 1
            if not n:
                print(f"warnd: outbox: no pending, failed or expired delivery of {what} "
                      "(or it is being sent right now)", file=sys.stderr)
                return 1
            done = "queued again" if action == "retry" else "dropped"
            print(f"{what}: {n} {'delivery' if n == 1 else 'deliveries'} {done}")
            return 0
        statuses = tuple(args.status) if getattr(args, "status", None) else outbox.ACTIONABLE
        rows = outbox.list_deliveries(store, statuses=statuses, limit=args.limit)
        names = {t.name for t in cfg.targets}
        for r in rows:
            r["last_error"] = redact(r["last_error"]) if r["last_error"] else None
            r["target_configured"] = r["target"] in names
        total = outbox.count_deliveries(store, statuses=statuses) if rows else 0
        # the list is the newest --limit: say so when more are left out (stderr with
        # --json, whose output stays the list scripts read)
        more = (f"the newest {len(rows)} of {total} deliveries listed; `--limit {total}` "
                "lists them all") if total > len(rows) else ""
        if args.json:
            print_json(rows)
            if more:
                print(f"warnd: outbox: {more}", file=sys.stderr)
            return 0
        if not rows:
            print("outbox: nothing pending, failed or expired")
        from zoneinfo import ZoneInfo

        from warnd.alerting.localtime import wall_clock

        tz = ZoneInfo(cfg.general.timezone)
        for r in rows:
            when = (f"next attempt {wall_clock(r['next_attempt_at'], tz)}"
                    if r["status"] == "pending" else f"{r['attempts']} attempts")
            extra = " (being sent)" if r["claimed"] else ""
            extra += "" if r["target_configured"] else " (target not configured)"
            print(f"#{r['alert_id']} {r['target']:16} {r['status']:8} {when}{extra}  "
                  f"{r['title']}")
            if r["last_error"]:
                print(f"    {r['last_error']}")
        if more:
            print(f"{total - len(rows)} more not listed: {more}")
        return 0
    finally:
        store.close()


def add_parsers(sub: Any, common: argparse.ArgumentParser,
                test_notify_func: Any, silence_func: Any, digest_func: Any,
                outbox_func: Any = None) -> None:
    from warnd.alerting import silences

    tn = sub.add_parser("test-notify", parents=[common],
                        help="send a test message to targets; exit 1 if any did not accept it")
    tn.add_argument("--target", action="append", metavar="NAME",
                    help="a configured target (repeatable; default: all targets)")
    tn.add_argument("url", nargs="?", help="an apprise URL to try instead")
    tn.add_argument("--json", action="store_true")
    tn.set_defaults(func=test_notify_func)
    silences.add_parser(sub, common, silence_func)
    dg = sub.add_parser("digest", parents=[common],
                        help="print the findings digest for the period ending now (sends nothing)")
    dg.add_argument("--json", action="store_true")
    dg.add_argument("--end", metavar="DATE",
                    help="the digest for the period ending with this day (YYYY-MM-DD)")
    dg.set_defaults(func=digest_func)
    if outbox_func is None:
        return
    ob = sub.add_parser("outbox", parents=[common],
                        help="deliveries pending, failed or expired; `outbox retry ID`, "
                        "`outbox drop ID`")
    ob.add_argument("--limit", type=int, default=200,
                    help="list at most this many, the newest first (default 200)")
    ob.add_argument("--json", action="store_true")
    ob.add_argument("--status", action="append",
                    choices=["pending", "failed", "expired", "delivered", "dropped", "silenced"],
                    help="only deliveries in this state (repeatable; default: pending, "
                    "failed, expired)")
    osub = ob.add_subparsers(dest="outbox_cmd")
    ol = osub.add_parser("list", parents=[common], help="the deliveries (the default)")
    ol.add_argument("--limit", type=int, default=200,
                    help="list at most this many, the newest first (default 200)")
    ol.add_argument("--json", action="store_true")
    ol.add_argument("--status", action="append",
                    choices=["pending", "failed", "expired", "delivered", "dropped", "silenced"])
    for name, help_ in (("retry", "send an alert's failed, expired or waiting deliveries "
                                  "at the next dispatch, with a fresh retry window"),
                        ("drop", "give up an alert's undelivered deliveries for good")):
        op = osub.add_parser(name, parents=[common], help=help_)
        op.add_argument("id", type=int, help="the alert id (warnd outbox list)")
        op.add_argument("--target", metavar="NAME", help="only the delivery to this target")
    ob.set_defaults(func=outbox_func)
