"""The ``warnd`` command.

Every command takes ``--config FILE`` (default: ``$WARND_CONFIG``, then
``./config.toml``, then ``/etc/warnd/config.toml``). Exit codes: 0 success, 1 a
failure or an unhealthy status, 2 usage, 75 (EX_TEMPFAIL) another warnd holds the
state directory (``run``, ``run --once``), 78 (EX_CONFIG) an invalid config, 128 + the
signal's number when ``run --once`` was stopped part way (143 SIGTERM, 130 SIGINT).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warnd import __version__, logs
from warnd.errors import ConfigError, WarndError
from warnd.jsonout import print_json
from warnd.statelock import EX_LOCKED, StateLocked

if TYPE_CHECKING:
    from warnd.config import Config

__all__ = ["collect_status", "main"]


# The config module (its validation models) is imported when a command reads a config:
# ``backtest`` and ``changepoints`` without one never do.
def load_config(path: str | Path | None, *, light: bool = False) -> Config:
    from warnd import config

    return config.load_config(path, light=light)


def __getattr__(name: str) -> Any:
    if name == "collect_status":  # the health module needs the config module
        from warnd.service.health import collect_status

        return collect_status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

EX_CONFIG = 78
log = logging.getLogger("warnd")


def _load(args: argparse.Namespace, *, light: bool = False) -> Config:
    cfg = load_config(args.config, light=light)
    logs.setup(args.log_level or cfg.general.log_level)
    return cfg


# -- run ---------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from warnd import statelock

    # one dispatching warnd per state directory; a second exits here (EX_LOCKED)
    lock = statelock.acquire(cfg.state_dir)
    try:
        return _run_locked(args, cfg)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, cfg: Config) -> int:
    from warnd.pipeline import Pipeline
    from warnd.store import alert_substances

    Pipeline(cfg).prepare_store()
    if args.once:
        pipeline = Pipeline(cfg)
        with _stopped_by_signals(pipeline.stopping) as signals:
            res = pipeline.run_once()
        stopped = res["stopped"]
        if stopped is not None:
            stopped = {"signal": signals[0], **stopped}
            log.warning("%s: stopped; %s", stopped["signal"], _left_waiting(stopped))
        polls = res["polls"]
        failed = [p for p in polls if not p.ok]
        if args.json:
            print_json(
                {
                    "polls": [
                        {k: v for k, v in vars(p).items() if k != "series"} for p in polls
                    ],
                    "alerts": [
                        {**{k: a[k] for k in ("id", "substance", "kind", "severity",
                                              "decision", "title", "targets")},
                         "substances": alert_substances(a)}
                        for a in res["alerts"]
                    ],
                    "deliveries": res["deliveries"],
                    "detect_failed": res["detect_failed"],
                    "stopped": stopped,
                }
            )
        else:
            for p in polls:
                state = "ok" if p.ok else f"FAILED: {logs.redact(p.error or '')}"
                print(f"poll {p.source}: {state} ({_count(p.documents, 'document')}, "
                      f"{_count(p.observations, 'observation')}, {_count(p.items, 'item')}, "
                      f"{_count(p.problems, 'problem')})")
            if not res["alerts"]:
                print("no new alerts")
            for a in res["alerts"]:
                print(f"\nALERT #{a['id']} [{a['severity']}] {a['title']}")
                print("  " + a["body"].replace("\n", "\n  "))
            d = res["deliveries"]
            print(f"\ndeliveries: {d['delivered']} delivered, {d['retrying']} to retry, "
                  f"{d['expired']} expired")
            if res["detect_failed"]:
                print(f"detection FAILED for {', '.join(res['detect_failed'])} (the log "
                      "says why; judged again at the next run)")
            if stopped is not None:
                print(f"\nSTOPPED by {stopped['signal']}: {_left_waiting(stopped)}")
        if stopped is not None:  # the cycle is not complete: as the shell tells a signal
            return 128 + signal.Signals[stopped["signal"]].value
        # every poll failed, or a substance's detection failed: a script sees it
        return 1 if (failed and len(failed) == len(polls)) or res["detect_failed"] else 0
    from warnd.service.daemon import Daemon

    return Daemon(cfg, config_path=str(cfg.path), log_level=args.log_level).run()


@contextmanager
def _stopped_by_signals(stopping: threading.Event) -> Iterator[list[str]]:
    """SIGTERM and SIGINT set ``stopping`` (the cycle ends cleanly, as
    :meth:`warnd.pipeline.Pipeline.run_once` says) and are named in the list yielded;
    a second one does what it did before (SIGINT: KeyboardInterrupt, exit 130; SIGTERM
    ends the process), for an operator who will not wait for a slow send."""
    got: list[str] = []
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def stop(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        got.append(name)
        for s, handler in before.items():
            signal.signal(s, handler)
        stopping.set()
        log.warning("%s: stopping: sends in flight end and are recorded, none begins "
                    "(another SIGTERM or SIGINT stops at once)", name)

    for s in before:
        signal.signal(s, stop)
    try:
        yield got
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _left_waiting(stopped: dict[str, Any]) -> str:
    """What a stopped ``run --once`` left for the next run, in a line."""
    parts = []
    if stopped["not_polled"]:
        parts.append(f"not polled: {', '.join(stopped['not_polled'])}")
    if not stopped["detection_run"]:
        parts.append("detection not run")
    n = stopped["deliveries_waiting"]
    parts.append(f"{stopped['series_waiting']} series to judge and {n} "
                 f"{'delivery' if n == 1 else 'deliveries'} to send at the next run")
    return "; ".join(parts)


# -- check-config ---------------------------------------------------------------------
def _count(n: int, noun: str) -> str:
    """``"1 document"``, ``"3 documents"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or args.config
    try:
        cfg = load_config(path)
    except ConfigError as e:
        from warnd.config import find_config_path

        for m in e.messages:
            print(f"{e.path or find_config_path(path)}: {m}", file=sys.stderr)
        return EX_CONFIG
    from warnd.alerting.send import target_url

    problems = []
    for i, t in enumerate(cfg.targets):  # the password must be there when it is needed
        try:
            target_url(t)
        except ConfigError as e:
            problems += [f"targets[{i}]: {m}" for m in e.messages]
    problems += period_errors(cfg)
    if problems:
        for m in problems:
            print(f"{cfg.path}: {m}", file=sys.stderr)
        return EX_CONFIG
    for w in (listen_warnings(cfg) + workers_warnings(cfg) + terms_warnings(cfg)
              + targets_warnings(cfg) + trends_step_warnings(cfg)):
        print(f"{cfg.path}: warning: {w}", file=sys.stderr)
    print(f"{cfg.path}: OK — {len(cfg.substances)} substances, {len(cfg.sources)} sources, "
          f"{len(cfg.targets)} targets, {len(cfg.routes)} routes")
    return 0


def listen_warnings(cfg: Config) -> list[str]:
    """Warnings about a health listener reachable from every network."""
    listen = cfg.general.health_listen
    if not listen:
        return []
    from warnd.config import parse_listen

    host, _ = parse_listen(listen)
    if host in ("0.0.0.0", "::", ""):
        return [f"general.health_listen = \"{listen}\" accepts connections from every "
                "network, and the listener has no authentication; bind it to 127.0.0.1 or a "
                "management address"]
    return []


def workers_warnings(cfg: Config) -> list[str]:
    """A warning when a large detect pass would run in more processes than this machine
    runs at once: the extra ones only wait, each with a pass's memory."""
    import os

    workers = cfg.general.detect_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and workers > cores:
        return [f"general.detect_workers = {workers}, but this machine runs {cores} processes "
                "at once: the others only wait, each holding a detect pass's memory"]
    return []


def terms_warnings(cfg: Config) -> list[str]:
    """What the next polls count or read again: the substances whose matching terms, and
    the sources of tables whose options or substance terms, differ from those the store
    was counted or read with (docs/sources.md, "When the terms change"). The store is
    only read; without one, or one from before it kept them, there is nothing to say."""
    from feeds.matching import read_with, same_reading, terms_of, widened, with_option
    from feeds.registry import FEEDS

    kept = _kept_terms(cfg)
    if kept is None:
        return []
    counted, read, shared = kept
    out = []
    for spec in cfg.substance_specs():
        old, new = counted.get(spec.id), terms_of(spec)
        if old is None or old == new:
            continue
        msg = (f"substances.{spec.id}: its matching terms are not those its stored articles "
               "and notices were counted with; at the next poll they are matched again and "
               "its counts revised")
        kept_some = [s.name for s in cfg.sources if FEEDS[s.kind].produces == "items"
                     and (s.substances is None or spec.id in s.substances)
                     and not getattr(FEEDS[s.kind].Options.model_validate(s.options_dict),
                                     "keep_unmatched", False)]
        if widened(old, new) and kept_some:
            msg += (f"; {', '.join(kept_some)} kept only the items naming a watched "
                    "substance, so its counts there start afresh from that week")
        out.append(msg)
    for src in cfg.sources:
        if FEEDS[src.kind].produces == "items" or src.name not in read:
            continue
        was = read[src.name]
        if src.name in shared and src.options_dict.get("files") == "add":
            # the shares kept are taken as a new aggregate: nothing is read again for it
            was = with_option(was, "aggregate", src.options_dict.get("aggregate"))
        if not same_reading(was, read_with(src.kind, src.options_dict,
                                           cfg.substance_specs(src.substances))):
            out.append(f"sources.{src.name}: read before with other options or substance "
                       "terms; every document of it is read again at its next poll")
        elif (src.options_dict.get("files") == "add"
              and json.loads(was)["options"].get("files") != "add"):
            out.append(f"sources.{src.name}: its files now add up; each of them is read once "
                       "more at its next poll to learn its share")
    return out


def targets_warnings(cfg: Config) -> list[str]:
    """The targets the store keeps messages for that the config does not name (taken
    out, or renamed): they wait until a target of that name is configured again, or an
    operator drops them (docs/alerting.md, "The outbox and its guarantees", 7). The
    store is only read; without one there is nothing to say."""
    rows = _store_rows(cfg, "SELECT target, COUNT(*) FROM deliveries WHERE "
                       "status='pending' GROUP BY target ORDER BY target")
    names = {t.name for t in cfg.targets}
    return [f'targets: "{name}" is not configured, and {n} '
            f"{'delivery waits' if n == 1 else 'deliveries wait'} for it; they are "
            "kept until a target of that name is configured again (`warnd outbox --status "
            "pending` lists them, `warnd outbox drop ID` gives one up)"
            for name, n in rows if name not in names]


def trends_step_warnings(cfg: Config) -> list[str]:
    """The daily series the store holds of Google Trends sources that do not ask for
    them (``daily``): stored by a warnd that kept a first "past 90 days" export's days,
    they read no weekly export (docs/sources.md, "Exports of another range"). The store
    is only read; without one there is nothing to say."""
    from datetime import date

    from feeds.trends_csv import TrendsCsvOptions, step_of

    names = [s.name for s in cfg.sources if s.kind == "google_trends"
             and not TrendsCsvOptions.model_validate(s.options_dict).daily]
    if not names:
        return []
    periods: dict[tuple[str, str, str], list[str]] = {}
    for source, sub, region, period in _store_rows(
            cfg, "SELECT source, substance, region, period FROM observations WHERE "
            f"metric='index' AND source IN ({','.join('?' * len(names))}) "
            "ORDER BY source, substance, region", names):
        periods.setdefault((source, sub, region), []).append(period)
    return [f"sources.{source}: its stored series of {cfg.substance_label(sub, 'en')}"
            f"{f' ({region})' if region else ''} is daily (its first export was read as "
            "days), and weekly exports are not read into it; set daily = true to keep it "
            "daily, or give the source a new name to read its exports afresh into a weekly "
            "series"
            for (source, sub, region), ps in periods.items()
            if step_of(date.fromisoformat(p) for p in ps) == "day"]


def _store_rows(cfg: Config, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """The rows of a query of the store, opened read-only (none without a store)."""
    import sqlite3

    from warnd.store import DB_NAME

    db = cfg.state_dir / DB_NAME
    if not db.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute(sql, list(params)).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def period_errors(cfg: Config) -> list[str]:
    """The sources whose files' shares are kept (``files = "add"``) given another
    ``period`` than the one they were read with: they would not be polled."""
    from feeds.matching import option_change
    from feeds.registry import FEEDS

    kept = _kept_terms(cfg)
    if kept is None:
        return []
    _, read, shared = kept
    out = []
    for src in cfg.sources:
        if src.name not in read or src.name not in shared:
            continue
        options = FEEDS[src.kind].Options.model_validate(src.options_dict)
        was, now = option_change(options, read[src.name], "period")
        if was != now:
            out.append(f"sources.{src.name}: period = {now!r}, but the shares its files gave "
                       f"were kept by {was!r}, and the two would mix in one series (it is "
                       f"not polled so); put period = {was!r} back, or give the source a "
                       f"new name to count its files afresh by {now!r}")
    return out


def _kept_terms(cfg: Config) -> tuple[dict[str, str], dict[str, str], set[str]] | None:
    """From the store, read only: the terms each substance was counted with, what each
    source of tables was read with, and the sources whose files' shares are kept (None:
    no store, or one from before it kept them)."""
    import sqlite3

    from warnd.store import DB_NAME

    db = cfg.state_dir / DB_NAME
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            counted = dict(conn.execute("SELECT substance, terms FROM substance_terms"))
            read = dict(conn.execute("SELECT source, terms FROM source_terms"))
            shared = {r[0] for r in conn.execute("SELECT DISTINCT source FROM shares")}
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return counted, read, shared


def _has_store(cfg: Config, command: str) -> bool:
    """Whether the state directory holds a store; if not, says so for ``command`` (a
    command that only reads or changes what is stored makes none: a mistyped
    directory would otherwise get a new, empty store, and `status` would call it
    healthy)."""
    from warnd.store import DB_NAME

    if (Path(cfg.state_dir) / DB_NAME).exists():
        return True
    print(f"warnd: {command}: no store in {cfg.state_dir} (set general.state_dir or "
          "$WARND_STATE_DIR, or run `warnd run --once` first)", file=sys.stderr)
    return False


# -- status --------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    # status reads the store and sends nothing: target URLs and each kind's source
    # options are checked by check-config and run (they load apprise and the parsers)
    from warnd.service.health import collect_status

    cfg = _load(args, light=True)
    if not _has_store(cfg, "status"):
        return 1
    st = collect_status(cfg)
    if args.json:
        print_json(st)
    else:
        from zoneinfo import ZoneInfo

        from warnd.alerting.localtime import wall_clock

        tz = ZoneInfo(cfg.general.timezone)  # as the console shows times, not in UTC
        print(f"state: {st['state_dir']} (schema v{st['schema_version']})")
        print(f"{'source':24} {'kind':14} {'last poll':20} {'series':>6} {'fails':>5}  last error")
        for s in st["sources"]:
            polled = wall_clock(s["last_poll_at"], tz) if s["last_poll_at"] else "never"
            print(f"{s['name']:24} {s['kind']:14} {polled:20} "
                  f"{s['series']:>6} {s['consecutive_failures']:>5}  {s['last_error'] or ''}")
            for p in s["recent_problems"][:3]:  # when each was last seen: old ones read so
                print(f"{'':26}problem (seen {wall_clock(p['seen_at'], tz)}): "
                      f"{p['location']}: {p['message']}")
        shown = len(st["open_alerts"])
        print(f"\nopen alerts: {st['open_alerts_count']}"
              + (f" (the newest {shown} listed)" if shown < st["open_alerts_count"] else ""))
        for a in st["open_alerts"]:
            print(f"  #{a['id']} [{a['severity']}] {a['title']}")
        print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(st["outbox"].items()))
                            or "empty"))
        for t in st["failing_targets"]:
            counted = [f"{t[k]} {word}" for k, word in (("n_waiting", "waiting"),
                                                        ("n_expired", "expired")) if t[k]]
            print(f"  target {t['target']}: {', '.join(counted)}, last error: "
                  f"{t['last_error']}")
        for s in st["sources"]:
            if s.get("unusable"):
                print(f"unusable: {s['name']}: {s['unusable']}")
            if s.get("newest_period"):
                print(f"old data: {s['name']}: newest period {s['newest_period']} "
                      f"({s['data_stale_days']} days old)")
        for name in st["stale_sources"]:
            print(f"stale: {name} (no successful poll for more than "
                  f"{cfg.general.stale_after_intervals:g} intervals)")
        det = st["detection"]
        print(f"detection: {det['series']} series, " + (
            f"{det['pending']} with data not judged yet (the oldest since "
            f"{det['oldest_pending_at'][:19]})" if det["pending"] else "all judged"))
        hl = st["health_listener"]
        if hl and (hl["serving"] or hl["configured"]):
            print("health listener: " + (f"http://{hl['serving']}" if hl["serving"] else "none")
                  + (f" (general.health_listen {hl['configured']} not bound: {hl['error']})"
                     if hl["error"] else ""))
        from warnd.alerting.commands import print_alerting_status

        print_alerting_status(st)
        for t in st["unconfigured_targets"]:
            print(f"  target {t['target']} is not configured: {t['n']} deliveries kept "
                  "(configure it again, or `warnd outbox drop`)")
        others = [p for p in st["problems"] if not p.startswith("source ")]
        print("healthy" if st["healthy"] else "UNHEALTHY: " + "; ".join(
            ([", ".join(st["unhealthy_sources"])] if st["unhealthy_sources"] else []) + others))
    return 0 if st["healthy"] else 1


# -- backup --------------------------------------------------------------------------
def cmd_backup(args: argparse.Namespace) -> int:
    from warnd.service.backup import backup

    cfg = _load(args)
    res = backup(cfg.state_dir, Path(args.file))
    if args.json:
        print_json(res)
    else:
        print(f"backup of {res['source']} written to {res['file']}: {res['bytes']} bytes, "
              f"{res['pages']} pages, integrity {res['integrity']}")
    return 0 if res["integrity"] == "ok" else 1


# -- alerts --------------------------------------------------------------------------
def cmd_alerts(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from warnd.store import Store

    if not _has_store(cfg, "alerts"):
        return 1
    store = Store.in_dir(cfg.state_dir)
    try:
        if getattr(args, "alerts_cmd", None) == "ack":
            from warnd.alerting.commands import cmd_ack

            return cmd_ack(args, store, cfg.general.timezone)
        rows = store.alerts(limit=args.limit)
        if args.json:
            for r in rows:
                r["data"] = json.loads(r["data"])
            print_json(rows)
            return 0
        if not rows:
            print("no alerts")
        from zoneinfo import ZoneInfo

        from warnd.alerting.localtime import wall_clock

        tz = ZoneInfo(cfg.general.timezone)  # as the console shows it, not in UTC
        for r in rows:
            dl = ", ".join(f"{d['target']}:{d['status']}" for d in r["deliveries"]) or "no targets"
            print(f"#{r['id']} {wall_clock(r['created_at'], tz)} [{r['severity']}] "
                  f"{r['status']:8} {r['title']}  ({dl})")
        return 0
    finally:
        store.close()


# -- test-notify, silence ------------------------------------------------------------
def cmd_test_notify(args: argparse.Namespace) -> int:
    from warnd.alerting.commands import cmd_test_notify as run

    return run(args, _load(args))


def cmd_digest(args: argparse.Namespace) -> int:
    from warnd.alerting.commands import cmd_digest as run

    cfg = _load(args)
    return run(args, cfg) if _has_store(cfg, "digest") else 1


def cmd_outbox(args: argparse.Namespace) -> int:
    from warnd.alerting.commands import cmd_outbox as run

    cfg = _load(args)
    return run(args, cfg) if _has_store(cfg, "outbox") else 1


def cmd_silence(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from warnd.alerting.commands import cmd_silence as run
    from warnd.store import Store

    # a silence may be added before the first run (it makes the store); nothing else
    if (getattr(args, "silence_cmd", None) or "list") != "add" and not _has_store(
            cfg, "silence"):
        return 1
    store = Store.in_dir(cfg.state_dir)
    try:
        return run(args, store, config=cfg)
    finally:
        store.close()


# -- web console, accounts -------------------------------------------------------------
def cmd_web(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from warnd.web.app import serve

    listen = getattr(args, "listen", None)
    if listen:
        from warnd.config import parse_listen

        try:
            parse_listen(listen)
        except ValueError as e:
            print(f"warnd: web: --listen: {e}", file=sys.stderr)
            return 2
    return serve(cfg, listen)


def _with_store(args: argparse.Namespace, name: str) -> int:
    cfg = _load(args)
    from warnd.store import Store
    from warnd.web import accounts

    store = Store.in_dir(cfg.state_dir)
    try:
        return int(getattr(accounts, name)(args, store))
    finally:
        store.close()


def cmd_user(args: argparse.Namespace) -> int:
    return _with_store(args, "cmd_user")


def cmd_token(args: argparse.Namespace) -> int:
    return _with_store(args, "cmd_token")


# -- backtest / changepoints -------------------------------------------------------------
def _params_for(args: argparse.Namespace) -> Any:
    if not args.config and not Path("config.toml").exists():
        return None
    try:  # only the detection settings are read: no source parsers or apprise loaded
        cfg = load_config(args.config, light=True)
    except ConfigError:
        if args.config:
            raise
        return None
    return cfg.detection_params


def _offline(args: argparse.Namespace, run: Any, table: Any) -> int:
    """``backtest`` and ``changepoints``: read the CSV, print JSON or a table."""
    logs.setup(args.log_level or "WARNING")
    results = run(Path(args.observations), _params_for(args))
    if args.json:
        print_json(results)
    else:
        print(table(results))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    if args.replay:
        return _replay(args)
    if not args.observations:
        print("warnd: backtest: give --observations FILE.csv or --replay store|sources",
              file=sys.stderr)
        return 2
    from warnd.backtest import format_backtest_table, run_backtest

    return _offline(args, run_backtest, format_backtest_table)


def _replay(args: argparse.Namespace) -> int:
    from datetime import date

    days = {}
    for key, flag in (("date_from", "--from"), ("date_to", "--to")):
        v = getattr(args, key)
        try:
            days[key] = date.fromisoformat(v) if v else None
        except ValueError:
            print(f"warnd: backtest: {flag} {v!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
            return 2
    cfg = _load(args)
    logs.setup(args.log_level or "WARNING")
    from warnd.replay import format_replay_table, replay

    msgs = replay(cfg, what=args.replay, start=days["date_from"], end=days["date_to"],
                  every=args.every, as_known=not args.latest_values)
    if args.json:
        print_json(msgs)
    else:
        print(format_replay_table(msgs))
    return 0


def cmd_changepoints(args: argparse.Namespace) -> int:
    from warnd.backtest import format_changepoints_table, run_changepoints

    return _offline(args, run_changepoints, format_changepoints_table)


# -- report --------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from warnd.report.tables import ReportError, parse_date

    try:
        start = parse_date(args.date_from, "--from") if args.date_from else None
        end = parse_date(args.date_to, "--to") if args.date_to else None
        if start and end and end < start:
            raise ReportError(f"--from {start} is after --to {end}")
    except ReportError as e:
        print(f"warnd: report: {e}", file=sys.stderr)
        return 2
    cfg = _load(args, light=True)  # the report sends nothing
    from datetime import date

    from warnd.report.render import RENDERERS
    from warnd.report.tables import build_report
    from warnd.store import Store

    lang = args.lang or cfg.general.language
    if not _has_store(cfg, "report"):
        return 1
    store = Store.in_dir(cfg.state_dir)
    try:
        rep = build_report(store, cfg, start=start, end=end)
    finally:
        store.close()
    kw: dict[str, Any] = {}
    if args.format == "html":
        from warnd.report.charts import ChartCache

        kw = {"params": cfg.detection_params(""), "generated": date.today(),
              "chart_cache": ChartCache(Path(cfg.state_dir) / "charts")}
    elif args.format == "md":
        kw = {"generated": date.today()}
    text = RENDERERS[args.format](rep, lang, **kw)
    if not args.out:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"report-{rep.current[0].isoformat()}_{rep.current[1].isoformat()}"
                  f"-{lang}.{args.format}")
    path.write_text(text, encoding="utf-8")
    print(path)
    return 0


# -- parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's unset option must not reset `warnd --config FILE COMMAND`
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="FILE",
                        help="config file (default: $WARND_CONFIG, ./config.toml, "
                        "/etc/warnd/config.toml)")
    common.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p = argparse.ArgumentParser(prog="warnd", parents=[common],
                                description="Early-warning daemon for drug trends.")
    # The options are accepted before and after the command. After it they must not
    # reset a value given before it (`warnd --config X run`) to None: no defaults there.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="FILE",
                        help="config file (default: $WARND_CONFIG, ./config.toml, "
                        "/etc/warnd/config.toml)")
    common.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--version", action="version", version=f"warnd {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", parents=[common], help="run the daemon (foreground)")
    r.add_argument("--once", action="store_true",
                   help="one poll → detect → alert cycle, then exit")
    r.add_argument("--json", action="store_true", help="with --once: print a JSON summary")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", parents=[common], help="validate a config file")
    c.add_argument("file", nargs="?", help="file to check (default: --config)")
    c.set_defaults(func=cmd_check_config)

    s = sub.add_parser("status", parents=[common],
                       help="sources, health, open alerts, outbox (exit 1 when unhealthy)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    bk = sub.add_parser("backup", parents=[common],
                        help="copy the store to FILE with SQLite's online backup (safe while "
                        "the daemon runs)")
    bk.add_argument("file", metavar="FILE")
    bk.add_argument("--json", action="store_true")
    bk.set_defaults(func=cmd_backup)

    a = sub.add_parser("alerts", parents=[common], help="recent alerts; `alerts ack ID`")
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--json", action="store_true")
    asub = a.add_subparsers(dest="alerts_cmd")
    al = asub.add_parser("list", parents=[common], help="recent alerts (the default)")
    al.add_argument("--limit", type=int, default=20)
    al.add_argument("--json", action="store_true")
    ack = asub.add_parser("ack", parents=[common], help="acknowledge an alert")
    ack.add_argument("id", type=int)
    ack.add_argument("--by", default=None, help="who acknowledges (recorded)")
    a.set_defaults(func=cmd_alerts)

    from warnd.alerting.commands import add_parsers

    add_parsers(sub, common, cmd_test_notify, cmd_silence, cmd_digest, cmd_outbox)
    from warnd.web.accounts import add_parsers as add_web_parsers

    add_web_parsers(sub, common, cmd_web, cmd_user, cmd_token)

    for name, func, help_ in (
        ("backtest", cmd_backtest, "replay observations and print the alerts that would fire"),
        ("changepoints", cmd_changepoints, "offline segmentation of each series"),
    ):
        b = sub.add_parser(name, parents=[common], help=help_)
        b.add_argument("--observations", required=name != "backtest", metavar="FILE.csv",
                       help="CSV with date,substance,source,value[,denominator,region,"
                       "dimension,metric,as_of]")
        b.add_argument("--json", action="store_true")
        if name == "backtest":
            b.add_argument("--replay", choices=("store", "sources"),
                           help="replay the store (or one poll of the configured sources) "
                           "through the daemon's grouping and routing; print per date the "
                           "messages it would send")
            b.add_argument("--from", dest="date_from", metavar="DATE",
                           help="with --replay: first run date (default: half a year before "
                           "the newest data)")
            b.add_argument("--to", dest="date_to", metavar="DATE",
                           help="with --replay: last run date (default: the day the newest "
                           "value is fed: the day after its period ended, or the day warnd "
                           "stored it if later)")
            b.add_argument("--every", type=int, default=7, metavar="DAYS",
                           help="with --replay: days between runs (default 7)")
            b.add_argument("--latest-values", action="store_true",
                           help="with --replay store: feed each period's latest stored value "
                           "once the period has ended, not each value and revision when "
                           "warnd learned it")
        b.set_defaults(func=func)
    rp = sub.add_parser("report", parents=[common],
                        help="half-year report: five-step tables, aggregated difference, charts")
    rp.add_argument("--from", dest="date_from", metavar="DATE",
                    help="first day of the report period (default: the latest complete "
                    "half-year in the data)")
    rp.add_argument("--to", dest="date_to", metavar="DATE", help="last day of the period")
    rp.add_argument("--format", choices=["html", "md", "csv"], default="html")
    rp.add_argument("--out", metavar="DIR",
                    help="write report-FROM_TO-LANG.FORMAT into DIR (default: stdout)")
    rp.add_argument("--lang", choices=["no", "en"],
                    help="language (default: general.language)")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    from warnd.allocator import keep_freed_blocks

    keep_freed_blocks()  # the detectors' temporary arrays reused without page faults
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("config", "log_level"):
        if not hasattr(args, name):
            setattr(args, name, None)
    # status and check-config are short and read only: Python's cycle collector is off
    # while they run (it walked the objects of the imports and the config again and
    # again as they were made: 35-50 ms of `status` with 2,500 sources, of about 0.9 s)
    short = args.func in (cmd_status, cmd_check_config) and gc.isenabled()
    if short:
        gc.disable()
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        for m in e.messages:
            print(f"warnd: {e.path + ': ' if e.path else ''}{m}", file=sys.stderr)
        return EX_CONFIG
    except StateLocked as e:
        print(f"warnd: {e}", file=sys.stderr)
        return EX_LOCKED
    except WarndError as e:
        print(f"warnd: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if _stdout_open():
            raise  # another pipe (a socket): a failure like any other
        # the reader of the output went away (`warnd alerts | head`): nothing more to
        # say, and no traceback; the shell's code for a process ended by SIGPIPE
        return EX_PIPE
    finally:
        if short:
            gc.enable()


#: the exit code of a command whose output was closed under it (128 + SIGPIPE)
EX_PIPE = 141


def _stdout_open() -> bool:
    """Whether standard output still has a reader (a pipe whose reader went away polls
    as an error); if not, it is pointed at /dev/null, so that Python's own flush at
    exit does not fail again."""
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        if not any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0)):
            return True
    except (OSError, ValueError):  # no descriptor (output captured): take it as open
        return True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
