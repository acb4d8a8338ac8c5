"""Health and metrics, read from the store: ``warnd status``, ``/healthz``, ``/metrics``.

Everything here is computed from the SQLite store at the moment it is asked for,
so the numbers survive restarts and agree between the CLI and the HTTP listener.

A source is **unhealthy** when it failed ``general.unhealthy_after`` (3) polls in a
row or is **stale**: no successful poll for more than
``general.stale_after_intervals`` (default 3) of its intervals (for a cron
schedule, of its runs since the last successful poll: :func:`stale_at`). A source
that has never been polled is neither. Disabled sources are never unhealthy.
The whole is unhealthy when a source is, a delivery expired or failed, the outbox
makes no progress (:func:`outbox_progress`: a delivery due for longer than
``alerting.stall_after`` without an attempt), or a target's last
``alerting.failing_after`` attempts failed; ``problems`` says which, in words. The
daemon adds its own liveness (scheduler thread, main loop, outbox progress) on
``/healthz``.

The optional HTTP listener (``general.health_listen``) runs in a thread of the
daemon and serves ``GET /healthz`` (200 or 503, JSON) and ``GET /metrics``
(Prometheus text format). Its counters never go down: each is read from rows that
only grow, or, for the outbox's, from the deliveries plus what an operator's retry or
drop took out of them (:meth:`warnd.store.Store.delivery_counts`). The daemon records
which address it serves, and which it could not bind, in ``<state_dir>/`` +
:data:`LISTENER_FILE` for ``warnd status`` (:func:`write_listener`, :func:`read_listener`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from warnd.config import Config, SourceConfig, cron_fields, parse_duration, parse_listen
from warnd.logs import redact

log = logging.getLogger("warnd.health")

#: The running daemon's health listener, in the state directory: ``pid``, ``serving``
#: (the address served, or null), ``configured`` (``general.health_listen``) and
#: ``error`` (why ``configured`` is not served, or null).
LISTENER_FILE = "health-listener.json"


def write_listener(state_dir: Path, doc: dict[str, Any]) -> None:
    """Record the daemon's health listener (:data:`LISTENER_FILE`), replacing the file
    whole so a reader never sees half of it."""
    path = Path(state_dir) / LISTENER_FILE
    tmp = path.with_name(f".{LISTENER_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), **doc}) + "\n")
    os.replace(tmp, path)


def clear_listener(state_dir: Path) -> None:
    """The daemon stops: no listener of it is served any more."""
    try:
        (Path(state_dir) / LISTENER_FILE).unlink(missing_ok=True)
    except OSError as e:  # read_listener finds its process gone
        log.error("%s not removed: %s", LISTENER_FILE, e)


def read_listener(state_dir: Path) -> dict[str, Any] | None:
    """The health listener of the daemon running on ``state_dir``, as it recorded it;
    None when no daemon runs there (the file missing, or its process gone)."""
    try:
        doc = json.loads((Path(state_dir) / LISTENER_FILE).read_text())
        os.kill(int(doc["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # the daemon runs as another user: it is alive
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: doc.get(k) for k in ("pid", "serving", "configured", "error")}


def source_interval(src: SourceConfig, tz: str = "UTC", now: datetime | None = None) -> float:
    """Seconds between two polls of ``src`` (for cron: between its next two runs)."""
    if not src.cron:
        return parse_duration(src.interval or "1h").total_seconds()
    from apscheduler.triggers.cron import CronTrigger

    trig = CronTrigger(**cron_fields(src.cron), timezone=tz)
    t0 = now or datetime.now(UTC)
    a = trig.get_next_fire_time(None, t0)
    b = trig.get_next_fire_time(a, a + timedelta(seconds=1)) if a else None
    return (b - a).total_seconds() if a and b else 86400.0


#: Most runs of a cron schedule walked to find when a source turns stale.
STALE_RUNS_MAX = 1000


def stale_at(src: SourceConfig, last_ok: datetime, factor: float, tz: str = "UTC") -> datetime:
    """When ``src``, last polled successfully at ``last_ok``, turns stale: ``factor``
    intervals later; for a cron schedule, once ``factor`` of its runs have passed
    since (a fraction of a run: that share of the gap to the next), so the long gaps
    of a schedule (a weekend, a night) count as one run, as they are; and not before
    ``factor`` times the gap between its next two runs after ``last_ok`` (a poll
    between two runs, such as the start-up's, does not shorten the wait)."""
    if not src.cron:
        return last_ok + timedelta(seconds=factor * source_interval(src, tz))
    from apscheduler.triggers.cron import CronTrigger

    trig = CronTrigger(**cron_fields(src.cron), timezone=tz)
    floor = last_ok + timedelta(seconds=factor * source_interval(src, tz, last_ok))
    whole = min(int(factor), STALE_RUNS_MAX)
    at: datetime = last_ok
    for _ in range(whole):
        nxt = trig.get_next_fire_time(None, at + timedelta(microseconds=1))
        if nxt is None:
            return max(at, floor)
        at = nxt
    part = factor - int(factor)
    if part:
        nxt = trig.get_next_fire_time(None, at + timedelta(microseconds=1))
        if nxt is not None:
            at = at + (nxt - at) * part
    return max(at, floor)


def _ts(text: str | None) -> datetime | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _redact_rows(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    for r in rows:
        for k in keys:
            if isinstance(r.get(k), str):
                r[k] = redact(r[k])
    return rows


def collect_status(cfg: Config, *, now: datetime | None = None) -> dict[str, Any]:
    """The state of every source, open alerts and the outbox (``warnd status --json``)."""
    from warnd.alerting.commands import alerting_status
    from warnd.alerting.freshness import stale_data
    from warnd.store import Store

    now = now or datetime.now(UTC)
    store = Store.in_dir(cfg.state_dir)
    try:
        sources = []
        unhealthy: list[str] = []
        stale_names: list[str] = []
        stale_data_names: list[str] = []
        factor = cfg.general.stale_after_intervals
        # one read of each table for all sources, not a few queries per source (the
        # series' counts and newest periods in one scan of an index)
        counts = store.series_counts()
        states = {r["source"]: r for r in store.q("SELECT * FROM source_state")}
        recent: dict[str, list[dict[str, Any]]] = {}
        for r in store.q(
                "SELECT source, location, message, seen_at FROM (SELECT *, ROW_NUMBER() OVER "
                "(PARTITION BY source ORDER BY seen_at DESC, id DESC) AS n FROM problems) "
                "WHERE n <= 5 ORDER BY source, n"):
            recent.setdefault(r.pop("source"), []).append(r)
        newest = store.newest_period_by_source(counts)  # from the same read
        for s in cfg.sources:
            st = states.get(s.name, {})
            n_series = counts.get(s.name, {}).get("series", 0)
            problems = _redact_rows(recent.get(s.name, []), "location", "message")
            fails = int(st.get("consecutive_failures") or 0)
            interval = source_interval(s, cfg.general.timezone, now)
            last_ok = _ts(st.get("last_success_at"))
            stale = bool(
                s.enabled and last_ok is not None
                and now > stale_at(s, last_ok, factor, cfg.general.timezone)
            )
            # a table or export that is fetched and parsed but yields no series at all
            # (a wrong column name, a term mapped to nothing) is not working either
            unusable = None
            if (s.enabled and last_ok is not None and n_series == 0 and problems
                    and s.kind in ("count_table", "google_trends", "trend_panel")):
                unusable = f"polled, but no usable data: {problems[0]['message']}"
            healthy = not s.enabled or (fails < cfg.general.unhealthy_after and not stale
                                        and unusable is None)
            if stale:
                stale_names.append(s.name)
            old_data = (stale_data(store, s.name, now=now, newest_by_source=newest)
                        if s.enabled else None)
            if old_data:
                stale_data_names.append(s.name)
            if not healthy:
                unhealthy.append(s.name)
            sources.append({
                "name": s.name, "kind": s.kind, "enabled": s.enabled, "schedule": s.schedule,
                "last_poll_at": st.get("last_poll_at"), "last_success_at": st.get("last_success_at"),
                "last_error": redact(st["last_error"]) if st.get("last_error") else None,
                "last_error_at": st.get("last_error_at"),
                "consecutive_failures": fails, "series": n_series, "healthy": healthy,
                "stale": stale, "stale_after_s": factor * interval,
                "n_polls": int(st.get("n_polls") or 0), "n_failures": int(st.get("n_failures") or 0),
                "recent_problems": problems,
                "unusable": unusable,
                "newest_period": old_data["period"] if old_data else None,
                "data_stale_days": old_data["days"] if old_data else None,
                # the newest period of its data, old or not (None: no data yet)
                "newest_data": str(newest[s.name])[:10] if newest.get(s.name) else None,
            })
        open_alerts = store.q(
            "SELECT id, substance, kind, severity, title, created_at FROM alerts "
            "WHERE status='open' AND kind != 'digest' ORDER BY id DESC LIMIT 20")
        # the list shows the newest; how many there are, however many that is
        open_count = store.q("SELECT COUNT(*) AS n FROM alerts WHERE status='open' "
                             "AND kind != 'digest'")[0]["n"]
        outbox = {r["status"]: r["n"] for r in store.q(
            "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")}
        # the target's latest error (its state), not the one of its deliveries' that
        # sorts last as text
        # per target tried and not delivered: ``n`` (as before: retried or expired after
        # an attempt), what waits for it (retried, or held without an attempt behind its
        # back-off or an earlier message: all pending but first attempts not made yet) and
        # what expired (also without an attempt); not an expired one counted as waiting
        failing_targets = _redact_rows(store.q(
            "SELECT d.target, SUM(d.attempts > 0) AS n, "
            "SUM(d.status='pending') AS n_waiting, SUM(d.status='expired') AS n_expired, "
            "COALESCE(MAX(s.last_error), MAX(d.last_error)) AS last_error FROM deliveries d "
            "LEFT JOIN target_state s ON s.target = d.target WHERE d.status='expired' OR "
            "d.status='pending' AND (d.attempts > 0 OR d.last_error IS NOT NULL) "
            "GROUP BY d.target HAVING n > 0"),
            "last_error")
        delivery = alerting_status(store, now=now, substances=cfg.substances, config=cfg)
        _redact_rows(delivery.get("expired_deliveries", []), "last_error")
        progress = outbox_progress(cfg, store, now)
        detection = detection_backlog(cfg, store, counts, now)
        problems = [f"source {n} unhealthy" for n in unhealthy]
        if detection["behind"]:
            problems.append(
                f"detection is behind: {detection['pending']} series with data not judged "
                f"yet, the oldest waiting for {_duration(detection['waited_s'])} (more than "
                f"{DETECTION_BEHIND_INTERVALS} × general.detect_interval); the log says why")
        if outbox.get("expired"):
            problems.append(f"{outbox['expired']} expired deliveries (warnd outbox list)")
        if outbox.get("failed"):
            problems.append(f"{outbox['failed']} failed deliveries (warnd outbox list)")
        if progress["stalled"]:
            problems.append(
                f"outbox makes no progress: {progress['stalled']} deliveries due for more "
                f"than {cfg.alerting.stall_after} without an attempt")
        for t in progress["failing_targets"]:
            problems.append(f"target {t['target']}: last {t['consecutive_failures']} attempts "
                            f"failed: {t['last_error']}")
        return {
            "state_dir": str(cfg.state_dir),
            "schema_version": store.schema_version,
            "sources": sources,
            "open_alerts": open_alerts,
            "open_alerts_count": open_count,
            "outbox": outbox,
            "failing_targets": failing_targets,
            **delivery,
            "stalled_deliveries": progress["stalled"],
            "unconfigured_targets": progress["unconfigured_targets"],
            "target_health": progress["failing_targets"],
            "deliveries_by_target": progress["by_target"],
            "detection": detection,
            "problems": problems,
            "healthy": not problems,
            "unhealthy_sources": unhealthy,
            "stale_sources": stale_names,
            "stale_data_sources": stale_data_names,
            "health_listener": read_listener(cfg.state_dir),
        }
    finally:
        store.close()


#: Series waiting longer than this many ``general.detect_interval`` to be judged make
#: warnd unhealthy: every poll's series are judged when it ends and every series with
#: something new each interval, so such a wait means detection fails (or does not run).
DETECTION_BEHIND_INTERVALS = 3


def detection_backlog(cfg: Config, store: Any, counts: dict[str, dict[str, Any]],
                      now: datetime) -> dict[str, Any]:
    """The series watched, those of configured sources with data not judged yet, and
    how long the oldest of those has waited (``behind`` when longer than
    :data:`DETECTION_BEHIND_INTERVALS` detect intervals)."""
    from warnd.config import parse_duration

    pending, oldest = store.pending_summary(s.name for s in cfg.sources)
    since = _ts(oldest)
    waited = max(0.0, (now - since).total_seconds()) if pending and since else 0.0
    interval = parse_duration(cfg.general.detect_interval).total_seconds()
    limit = DETECTION_BEHIND_INTERVALS * interval
    return {"series": sum(int(counts.get(s.name, {}).get("series", 0)) for s in cfg.sources),
            "pending": pending, "oldest_pending_at": oldest if pending else None,
            "waited_s": round(waited, 1), "behind": bool(pending) and waited > limit,
            "behind_after_s": limit}


def _duration(seconds: float) -> str:
    """A wait in words: minutes under two hours, hours under two days, else days."""
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def outbox_progress(cfg: Config, store: Any, now: datetime) -> dict[str, Any]:
    """Whether the outbox moves: stalled deliveries, failing and unconfigured targets.

    A delivery is **stalled** when it has been due for longer than
    ``alerting.stall_after`` without an attempt and nobody holds a live claim on it:
    nothing is dispatching (a stuck or dead dispatcher, a store that cannot be
    written). Deliveries to a target that is no longer configured are held, not
    stalled; they are listed under ``unconfigured_targets``. A muted target is sent
    nothing, so the failures it had before its mute (which no attempt can clear
    while it lasts) do not count as failing.
    """
    from warnd.alerting.targets import failing_targets
    from warnd.store import iso

    names = {t.name for t in cfg.targets}
    since = iso(now - parse_duration(cfg.alerting.stall_after))
    rows = store.q(
        "SELECT target, COUNT(*) AS n FROM deliveries WHERE status='pending' AND "
        "next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) "
        "GROUP BY target", [since, iso(now)])
    stalled = sum(r["n"] for r in rows if r["target"] in names)
    unconfigured = [
        r for r in store.q("SELECT target, COUNT(*) AS n FROM deliveries "
                           "WHERE status='pending' GROUP BY target ORDER BY target")
        if r["target"] not in names]
    sent_to = {t.name for t in cfg.targets if not t.muted}
    failing = _redact_rows([r for r in failing_targets(store, cfg.alerting.failing_after)
                            if r["target"] in sent_to], "last_error")
    by_target = store.q("SELECT target, status, COUNT(*) AS n FROM deliveries "
                        "GROUP BY target, status ORDER BY target, status")
    return {"stalled": stalled, "unconfigured_targets": unconfigured,
            "failing_targets": failing, "by_target": by_target}


def _size(path: Any) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:  # no WAL at this moment
        return 0


class StoreCollector:
    """Prometheus collector: every number read from the store at scrape time."""

    def __init__(self, config_getter: Callable[[], Config],
                 liveness: Callable[[], dict[str, Any]] | None = None) -> None:
        self._config = config_getter
        self._liveness = liveness

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from warnd.store import Store

        cfg = self._config()
        now = datetime.now(UTC)
        status = collect_status(cfg, now=now)
        store = Store.in_dir(cfg.state_dir)
        try:
            polls = CounterMetricFamily("warnd_source_polls", "Polls of a source.", labels=["source"])
            fails = CounterMetricFamily("warnd_source_poll_failures",
                                        "Failed polls of a source.", labels=["source"])
            consec = GaugeMetricFamily("warnd_source_consecutive_failures",
                                       "Failed polls in a row.", labels=["source"])
            last_ok = GaugeMetricFamily("warnd_source_last_success_timestamp_seconds",
                                        "Unix time of the last successful poll.", labels=["source"])
            healthy = GaugeMetricFamily("warnd_source_healthy",
                                        "1 when the source is healthy (not failing, not stale).",
                                        labels=["source"])
            for s in status["sources"]:
                polls.add_metric([s["name"]], s["n_polls"])
                fails.add_metric([s["name"]], s["n_failures"])
                consec.add_metric([s["name"]], s["consecutive_failures"])
                healthy.add_metric([s["name"]], 1 if s["healthy"] else 0)
                t = _ts(s["last_success_at"])
                if t is not None:
                    last_ok.add_metric([s["name"]], t.timestamp())
            yield from (polls, fails, consec, last_ok, healthy)

            obs = GaugeMetricFamily("warnd_observations", "Observations stored.", labels=["source"])
            for source, c in sorted(store.series_counts().items()):
                obs.add_metric([source], c["observations"])
            yield obs
            rev = CounterMetricFamily("warnd_observation_revisions",
                                      "Stored observations whose value was revised.")
            rev.add_metric([], store.q("SELECT COUNT(*) AS n FROM revisions")[0]["n"])
            yield rev
            docs = CounterMetricFamily("warnd_documents_ingested", "Documents ingested.",
                                       labels=["source"])
            for r in store.q("SELECT source, COUNT(*) AS n FROM documents GROUP BY source"):
                docs.add_metric([r["source"]], r["n"])
            yield docs
            fnd = CounterMetricFamily("warnd_findings", "Findings recorded.",
                                      labels=["kind", "direction"])
            for r in store.q("SELECT kind, direction, COUNT(*) AS n FROM findings "
                             "GROUP BY kind, direction"):
                fnd.add_metric([r["kind"], r["direction"]], r["n"])
            yield fnd
            alerts = CounterMetricFamily("warnd_alerts", "Alerts created.",
                                         labels=["kind", "severity"])
            for r in store.q("SELECT kind, severity, COUNT(*) AS n FROM alerts "
                             "GROUP BY kind, severity"):
                alerts.add_metric([r["kind"], r["severity"]], r["n"])
            yield alerts
            # one read: a retry or a drop moves counts from the rows to the carried ones
            delivery = store.delivery_counts()
            by_status = delivery["by_status"]
            sent = CounterMetricFamily("warnd_alerts_sent", "Deliveries accepted by a target.")
            sent.add_metric([], by_status.get("delivered", 0))
            failed = CounterMetricFamily(
                "warnd_alerts_failed", "Deliveries given up (expired or failed), each time; "
                "one queued again or dropped since still counts.")
            failed.add_metric([], delivery["given_up"])
            queued = GaugeMetricFamily("warnd_alerts_queued", "Deliveries waiting to be sent.")
            queued.add_metric([], by_status.get("pending", 0))
            per_target = GaugeMetricFamily(
                "warnd_deliveries", "Deliveries per target and outcome (status).",
                labels=["target", "status"])
            for r in status["deliveries_by_target"]:
                per_target.add_metric([r["target"], r["status"]], r["n"])
            yield per_target
            stalled = GaugeMetricFamily(
                "warnd_deliveries_stalled",
                "Deliveries due for longer than alerting.stall_after without an attempt.")
            stalled.add_metric([], status["stalled_deliveries"])
            yield stalled
            tfail = GaugeMetricFamily("warnd_target_consecutive_failures",
                                      "Failed send attempts in a row per target.",
                                      labels=["target"])
            for r in store.q("SELECT target, consecutive_failures FROM target_state"):
                tfail.add_metric([r["target"]], r["consecutive_failures"])
            yield tfail
            attempts = CounterMetricFamily(
                "warnd_delivery_attempts",
                "Send attempts (also those of deliveries queued again since).")
            attempts.add_metric([], delivery["attempts"])
            yield from (sent, failed, queued, attempts)
            det = status["detection"]
            watched = GaugeMetricFamily("warnd_series", "Series watched.")
            watched.add_metric([], det["series"])
            waiting = GaugeMetricFamily("warnd_series_pending",
                                        "Series with data detection has not judged yet.")
            waiting.add_metric([], det["pending"])
            age = GaugeMetricFamily("warnd_series_pending_age_seconds",
                                    "How long the oldest series with data not judged has "
                                    "waited (0: none waits).")
            age.add_metric([], det["waited_s"])
            yield from (watched, waiting, age)
            wal = GaugeMetricFamily("warnd_store_wal_bytes",
                                    "Size of the store's write-ahead log (warnd.sqlite-wal).")
            wal.add_metric([], _size(store.path.with_name(store.path.name + "-wal")))
            yield wal
        finally:
            store.close()
        live = self._liveness() if self._liveness else {}
        ok = GaugeMetricFamily("warnd_healthy", "1 when /healthz answers 200.")
        ok.add_metric([], 1 if status["healthy"] and live.get("alive", True) else 0)
        yield ok
        if "heartbeat_age_s" in live:
            hb = GaugeMetricFamily("warnd_scheduler_heartbeat_age_seconds",
                                   "Seconds since the scheduler last ran its heartbeat job.")
            hb.add_metric([], live["heartbeat_age_s"])
            yield hb


class HealthServer:
    """The optional HTTP listener: ``/healthz`` and ``/metrics``."""

    def __init__(self, listen: str, config_getter: Callable[[], Config],
                 liveness: Callable[[], dict[str, Any]]) -> None:
        # the listener's modules load with it, not with `warnd status`
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.registry import CollectorRegistry

        self.listen = listen
        self.config_getter = config_getter
        self.liveness = liveness
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(config_getter, liveness))  # type: ignore[arg-type]
        host, port = parse_listen(listen)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/healthz":
                        code, ctype, body = server.healthz()
                    elif path == "/metrics":
                        code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(server.registry)
                    else:
                        code, ctype, body = 404, "text/plain", b"not found\n"
                except Exception as e:  # the store may be unreadable: say so, stay up
                    log.error("health listener: %s: %s", type(e).__name__, e)
                    code, ctype = 503, "application/json"
                    body = json.dumps({"healthy": False, "error": redact(str(e))}).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health listener: " + format, *args)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health",
                                       daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]  # type: ignore[return-value]

    def healthz(self) -> tuple[int, str, bytes]:
        st = collect_status(self.config_getter())
        live = self.liveness()
        healthy = bool(st["healthy"] and live.get("alive", True))
        doc = {
            "healthy": healthy,
            "daemon": live,
            "unhealthy_sources": st["unhealthy_sources"],
            "stale_sources": st["stale_sources"],
            "problems": st["problems"] + ([] if live.get("alive", True)
                                          else [live.get("reason") or "daemon not alive"]),
            "outbox": st["outbox"],
            "stalled_deliveries": st["stalled_deliveries"],
            "target_health": st["target_health"],
            "sources": [
                {k: s[k] for k in ("name", "healthy", "stale", "consecutive_failures",
                                   "last_success_at", "last_error")}
                for s in st["sources"]
            ],
        }
        body = json.dumps(doc, default=str).encode()
        return (200 if healthy else 503), "application/json", body

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health listener on http://%s:%d (/healthz, /metrics)", *self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
