"""The SQLite store (sqlite-utils): observations, items, findings, alerts, outbox.

One ``Store`` per thread (SQLite connections are not shared across threads). WAL
mode and a 30 s busy timeout; every multi-statement write runs in
``BEGIN IMMEDIATE`` so concurrent writers (the daemon, a CLI command) queue on the
busy handler instead of failing. The schema carries a version and forward
migrations (:data:`MIGRATIONS`); opening an older file upgrades it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from detectors.base import Series
from feeds.base import Item, Observation, Problem
from warnd.errors import StoreError

DB_NAME = "warnd.sqlite"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def store_problem(e: sqlite3.Error, state_dir: Any) -> str:
    """One line for an SQLite error, with what the operator can do about it."""
    msg = str(e) or type(e).__name__
    low = msg.lower()
    if "locked" in low or "busy" in low:
        hint = "another process holds a write lock on the store; the work is retried"
    elif "full" in low:
        hint = f"no space left for {state_dir}; free space and the work is retried"
    elif "readonly" in low or "read-only" in low:
        hint = f"{state_dir} is read-only; make it writable and the work is retried"
    elif "unable to open" in low and not os.access(state_dir, os.W_OK):
        hint = (f"{state_dir} is not writable (read-only file system or permissions); "
                "make it writable and the work is retried")
    elif "i/o" in low:
        hint = f"I/O error under {state_dir}; check free space and the disk"
    else:
        hint = f"state directory {state_dir}"
    return f"store error: {msg} ({hint})"


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _m1(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS observations (
            source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
            metric TEXT NOT NULL, period TEXT NOT NULL,
            value REAL NOT NULL, denominator REAL, dimension TEXT, flag TEXT, ref TEXT,
            first_seen_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (source, substance, region, metric, period)
        );
        CREATE TABLE IF NOT EXISTS revisions (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
            metric TEXT NOT NULL, period TEXT NOT NULL,
            old_value REAL, new_value REAL, old_denominator REAL, new_denominator REAL,
            ref TEXT, revised_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS items (
            key TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,
            published_at TEXT NOT NULL, week TEXT NOT NULL, title TEXT NOT NULL, link TEXT,
            summary TEXT, region TEXT NOT NULL DEFAULT '', first_seen_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS item_substances (
            key TEXT NOT NULL, substance TEXT NOT NULL, PRIMARY KEY (key, substance)
        );
        CREATE INDEX IF NOT EXISTS items_source_week ON items (source, week);
        CREATE TABLE IF NOT EXISTS documents (
            source TEXT NOT NULL, location TEXT NOT NULL, sha256 TEXT NOT NULL,
            ingested_at TEXT NOT NULL, n_observations INTEGER, n_items INTEGER,
            PRIMARY KEY (source, location, sha256)
        );
        CREATE TABLE IF NOT EXISTS source_state (
            source TEXT PRIMARY KEY, etag TEXT, last_modified TEXT,
            last_poll_at TEXT, last_success_at TEXT, last_error TEXT, last_error_at TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            n_polls INTEGER NOT NULL DEFAULT 0, n_failures INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS problems (
            id INTEGER PRIMARY KEY, source TEXT NOT NULL, location TEXT NOT NULL,
            message TEXT NOT NULL, seen_at TEXT NOT NULL,
            UNIQUE (source, location, message)
        );
        CREATE TABLE IF NOT EXISTS findings (
            key TEXT PRIMARY KEY, series_key TEXT NOT NULL, source TEXT NOT NULL,
            substance TEXT NOT NULL, region TEXT NOT NULL, metric TEXT NOT NULL,
            dimension TEXT, kind TEXT NOT NULL, direction TEXT NOT NULL, onset TEXT NOT NULL,
            detected_at TEXT NOT NULL, last_seen_at TEXT NOT NULL,
            level_before REAL, level_after REAL, relative_change REAL, strength REAL,
            p_value REAL, category INTEGER, method TEXT, evidence TEXT,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS findings_substance ON findings (substance, detected_at);
        CREATE TABLE IF NOT EXISTS episodes (
            scope TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY, dedupe_key TEXT NOT NULL UNIQUE,
            substance TEXT NOT NULL, source TEXT, region TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL, direction TEXT, severity TEXT NOT NULL, decision TEXT NOT NULL,
            title TEXT NOT NULL, body TEXT NOT NULL, data TEXT NOT NULL,
            created_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',
            silenced_by INTEGER, acked_at TEXT, acked_by TEXT
        );
        CREATE TABLE IF NOT EXISTS deliveries (
            alert_id INTEGER NOT NULL, target TEXT NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL, last_error TEXT, delivered_at TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (alert_id, target)
        );
        CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (status, next_attempt_at);
        """
    )


def _m2(db: sqlite_utils.Database) -> None:
    """Silences; the time a delivery first became due (quiet hours push it)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS silences (
            id INTEGER PRIMARY KEY, substance TEXT, kind TEXT, source TEXT,
            reason TEXT NOT NULL, created_by TEXT, created_at TEXT NOT NULL,
            until TEXT NOT NULL, expired_at TEXT
        );
        CREATE INDEX IF NOT EXISTS silences_until ON silences (until);
        """
    )
    cols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)").fetchall()}
    if "due_at" not in cols:
        db.execute("ALTER TABLE deliveries ADD COLUMN due_at TEXT")


def _m3(db: sqlite_utils.Database) -> None:
    """The web console: users, API tokens, the action log, signing keys."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS users (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL, disabled_at TEXT
        );
        CREATE TABLE IF NOT EXISTS api_tokens (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE TABLE IF NOT EXISTS actions (
            id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, via TEXT NOT NULL,
            action TEXT NOT NULL, alert_id INTEGER, silence_id INTEGER, detail TEXT
        );
        CREATE INDEX IF NOT EXISTS actions_alert ON actions (alert_id);
        CREATE TABLE IF NOT EXISTS secret_keys (
            name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at TEXT NOT NULL
        );
        """
    )


#: Forward migrations; index + 1 is the schema version they produce.
MIGRATIONS = [_m1, _m2, _m3]


class Store:
    """The one facade over the database. Not thread-safe: one per thread."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=True)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
            if str(path) != ":memory:":
                mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{path}: cannot switch to WAL mode (got {mode})")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.migrate()
        except sqlite3.Error as e:
            raise StoreError(
                f"{path}: cannot open the store: "
                + store_problem(e, self.path.parent).removeprefix("store error: ")
            ) from None
        except OSError as e:
            raise StoreError(f"{path}: cannot open the store: {e.strerror}") from None

    @classmethod
    def in_dir(cls, state_dir: Path, *, timeout: float = 30.0) -> Store:
        return cls(Path(state_dir) / DB_NAME, timeout=timeout)

    def close(self) -> None:
        self.db.conn.close()

    # -- plumbing ---------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this warnd "
                f"({len(MIGRATIONS)}); upgrade warnd"
            )
        for i in range(version, len(MIGRATIONS)):
            with self.write():
                MIGRATIONS[i](self.db)
                self.db.execute(f"PRAGMA user_version = {i + 1}")

    def q(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    # -- ingestion ----------------------------------------------------------------
    def document_seen(self, source: str, location: str, sha256: str) -> bool:
        return bool(
            self.q(
                "SELECT 1 FROM documents WHERE source=? AND location=? AND sha256=?",
                [source, location, sha256],
            )
        )

    def ingest(
        self,
        source: str,
        *,
        location: str,
        sha256: str | None,
        observations: Iterable[Observation],
        items: Iterable[Item],
        problems: Iterable[Problem],
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Store one parsed document atomically; return what changed.

        Observations upsert on their natural key; a changed value or denominator is
        kept in ``revisions``. Items insert once by key (the first source to see an
        article owns it). The document's hash is recorded in the same transaction,
        so a crash never leaves a half-ingested file marked as done.
        """
        now_s = iso(now or utcnow())
        touched: set[tuple[str, str, str, str]] = set()
        n_new_obs = n_rev = n_items = 0
        new_item_weeks: set[tuple[str, str]] = set()
        with self.write() as db:
            for o in observations:
                key = (o.source, o.substance, o.region, o.metric, o.period.isoformat())
                old = db.execute(
                    "SELECT value, denominator FROM observations WHERE source=? AND substance=? "
                    "AND region=? AND metric=? AND period=?",
                    key,
                ).fetchone()
                if old is None:
                    db.execute(
                        "INSERT INTO observations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (*key, o.value, o.denominator, o.dimension, o.flag, o.ref, now_s, now_s),
                    )
                    n_new_obs += 1
                elif old[0] != o.value or old[1] != o.denominator:
                    db.execute(
                        "INSERT INTO revisions (source, substance, region, metric, period, "
                        "old_value, new_value, old_denominator, new_denominator, ref, revised_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (*key, old[0], o.value, old[1], o.denominator, o.ref, now_s),
                    )
                    db.execute(
                        "UPDATE observations SET value=?, denominator=?, dimension=?, flag=?, "
                        "ref=?, updated_at=? WHERE source=? AND substance=? AND region=? "
                        "AND metric=? AND period=?",
                        (o.value, o.denominator, o.dimension, o.flag, o.ref, now_s, *key),
                    )
                    n_rev += 1
                else:
                    continue
                touched.add(key[:4])
            for it in items:
                wk = week_start(it.published_at.astimezone(UTC).date()).isoformat()
                cur = db.execute(
                    "INSERT OR IGNORE INTO items (key, source, kind, published_at, week, title, "
                    "link, summary, region, first_seen_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (it.key, it.source, it.kind, iso(it.published_at), wk, it.title, it.link,
                     it.summary, it.region, now_s),
                )
                if cur.rowcount:
                    n_items += 1
                    for sub in it.substances:
                        db.execute(
                            "INSERT OR IGNORE INTO item_substances VALUES (?, ?)", (it.key, sub)
                        )
                    new_item_weeks.add((it.source, it.region))
            for p in problems:
                db.execute(
                    "INSERT INTO problems (source, location, message, seen_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (source, location, message) DO UPDATE SET seen_at=excluded.seen_at",
                    (source, p.where, p.message, now_s),
                )
            if sha256 is not None:
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?)",
                    (source, location, sha256, now_s, n_new_obs + n_rev, n_items),
                )
        return {
            "observations_new": n_new_obs,
            "observations_revised": n_rev,
            "items_new": n_items,
            "series_touched": sorted(touched),
            "item_sources": sorted(new_item_weeks),
        }

    def derive_item_counts(
        self,
        source: str,
        substances: Sequence[str],
        *,
        region: str = "",
        now: datetime | None = None,
        kind: str = "article",
    ) -> list[tuple[str, str, str, str]]:
        """Weekly counts of a source's items per substance, upserted as observations.

        Weeks run from the source's first item to its latest one, with zeros in
        between; the current, incomplete week is left out. Returns the series keys
        whose values changed.
        """
        rows = self.q(
            "SELECT MIN(week) AS a, MAX(week) AS b FROM items WHERE source=? AND kind=?",
            [source, kind],
        )
        if not rows or rows[0]["a"] is None:
            return []
        first = date.fromisoformat(rows[0]["a"])
        last = date.fromisoformat(rows[0]["b"])
        this_week = week_start((now or utcnow()).astimezone(UTC).date())
        if last >= this_week:
            last = this_week - timedelta(days=7)
        if last < first:
            return []
        counts: dict[tuple[str, str], int] = {}
        for r in self.q(
            "SELECT s.substance AS sub, i.week AS week, COUNT(*) AS n FROM items i "
            "JOIN item_substances s ON s.key = i.key WHERE i.source=? AND i.kind=? "
            "GROUP BY s.substance, i.week",
            [source, kind],
        ):
            counts[(r["sub"], r["week"])] = int(r["n"])
        metric = "count" if kind == "article" else "notices"
        obs = []
        for sub in substances:
            d = first
            while d <= last:
                obs.append(
                    Observation(
                        source=source, substance=sub, period=d, region=region, metric=metric,
                        value=float(counts.get((sub, d.isoformat()), 0)), ref="items",
                    )
                )
                d += timedelta(days=7)
        res = self.ingest(source, location="items", sha256=None, observations=obs, items=(),
                          problems=(), now=now)
        return list(res["series_touched"])

    def index_points(self, source: str, substance: str, region: str) -> dict[date, float]:
        return {
            date.fromisoformat(r["period"]): float(r["value"])
            for r in self.q(
                "SELECT period, value FROM observations WHERE source=? AND substance=? "
                "AND region=? AND metric='index'",
                [source, substance, region],
            )
        }

    # -- source health ------------------------------------------------------------
    def record_poll(
        self, source: str, *, ok: bool, error: str | None = None, etag: str | None = None,
        last_modified: str | None = None, now: datetime | None = None,
    ) -> None:
        now_s = iso(now or utcnow())
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
            if ok:
                db.execute(
                    "UPDATE source_state SET last_poll_at=?, last_success_at=?, "
                    "consecutive_failures=0, n_polls=n_polls+1, "
                    "etag=COALESCE(?, etag), last_modified=COALESCE(?, last_modified) "
                    "WHERE source=?",
                    (now_s, now_s, etag, last_modified, source),
                )
            else:
                db.execute(
                    "UPDATE source_state SET last_poll_at=?, last_error=?, last_error_at=?, "
                    "consecutive_failures=consecutive_failures+1, n_polls=n_polls+1, "
                    "n_failures=n_failures+1 WHERE source=?",
                    (now_s, (error or "")[:1000], now_s, source),
                )

    def source_state(self, source: str) -> dict[str, Any]:
        rows = self.q("SELECT * FROM source_state WHERE source=?", [source])
        return rows[0] if rows else {}

    # -- series ---------------------------------------------------------------------
    def series_keys(self, substance: str | None = None) -> list[tuple[str, str, str, str]]:
        sql = "SELECT DISTINCT source, substance, region, metric FROM observations"
        params: list[Any] = []
        if substance:
            sql += " WHERE substance=?"
            params.append(substance)
        return [
            (r["source"], r["substance"], r["region"], r["metric"])
            for r in self.q(sql + " ORDER BY 1,2,3,4", params)
        ]

    def load_series(
        self, source: str, substance: str, region: str = "", metric: str = "count",
        *, dimension: str = "use",
    ) -> Series:
        rows = self.q(
            "SELECT period, value, denominator, dimension FROM observations WHERE source=? "
            "AND substance=? AND region=? AND metric=? ORDER BY period",
            [source, substance, region, metric],
        )
        periods = tuple(date.fromisoformat(r["period"]) for r in rows)
        values = np.array([r["value"] for r in rows], dtype=float)
        dens = [r["denominator"] for r in rows]
        den = (
            np.array([np.nan if d is None else d for d in dens], dtype=float)
            if any(d is not None for d in dens)
            else None
        )
        dim = next((r["dimension"] for r in rows if r["dimension"]), None) or dimension
        return Series(
            source=source, substance=substance, periods=periods, values=values, region=region,
            metric=metric, dimension=dim, denominators=den,
        )

    # -- findings, episodes -------------------------------------------------------------
    def record_finding(self, f: Any, *, now: datetime | None = None) -> bool:
        """Store a finding; True when it is new (never seen with this key)."""
        return self.record_findings([f], now=now) == 1

    def record_findings(self, findings: Iterable[Any], *, now: datetime | None = None) -> int:
        """Store findings in one transaction; a known key updates its latest figures.

        Returns how many were new.
        """
        now_s = iso(now or utcnow())
        n_new = 0
        with self.write() as db:
            for f in findings:
                evidence = json.dumps(f.evidence, default=_json_default)
                cur = db.execute(
                    "INSERT OR IGNORE INTO findings VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (f.key, f.series_key, f.source, f.substance, f.region, f.metric,
                     f.dimension, f.kind, f.direction, f.onset.isoformat(),
                     f.detected_at.isoformat(), f.detected_at.isoformat(),
                     _num(f.level_before), _num(f.level_after), _num(f.relative_change),
                     _num(f.strength), _num(f.p_value), f.category, f.method, evidence, now_s),
                )
                if cur.rowcount:
                    n_new += 1
                    continue
                db.execute(
                    "UPDATE findings SET last_seen_at=?, level_after=?, relative_change=?, "
                    "strength=?, p_value=?, category=?, evidence=? WHERE key=?",
                    (f.detected_at.isoformat(), _num(f.level_after), _num(f.relative_change),
                     _num(f.strength), _num(f.p_value), f.category, evidence, f.key),
                )
        return n_new

    def episode_state(self, scope: str) -> dict[str, Any] | None:
        rows = self.q("SELECT state FROM episodes WHERE scope=?", [scope])
        return json.loads(rows[0]["state"]) if rows else None

    def save_episode_state(self, scope: str, state: dict[str, Any], db: Any = None) -> None:
        (db or self.db).execute(
            "INSERT INTO episodes VALUES (?,?,?) ON CONFLICT(scope) DO UPDATE SET "
            "state=excluded.state, updated_at=excluded.updated_at",
            (scope, json.dumps(state, default=_json_default), iso(utcnow())),
        )

    # -- alerts and outbox -------------------------------------------------------------
    def add_alert(
        self, alert: dict[str, Any], targets: Sequence[str], *,
        episodes: dict[str, dict[str, Any]] | None = None, now: datetime | None = None,
        due_at: datetime | None = None,
    ) -> int | None:
        """Write an alert and its pending deliveries (and the episode state) atomically.

        Returns the new alert id, or None when an alert with the same dedupe key
        exists already (a re-run after a crash never alerts twice). ``due_at`` delays
        the first attempt (quiet hours); expiry counts from it.
        """
        now_s = iso(now or utcnow())
        due_s = iso(due_at) if due_at else now_s
        with self.write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO alerts (dedupe_key, substance, source, region, kind, "
                "direction, severity, decision, title, body, data, created_at, status, "
                "silenced_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (alert["dedupe_key"], alert["substance"], alert.get("source"),
                 alert.get("region", ""), alert["kind"], alert.get("direction"),
                 alert["severity"], alert["decision"], alert["title"], alert["body"],
                 json.dumps(alert.get("data", {}), default=_json_default), now_s,
                 alert.get("status", "open"), alert.get("silenced_by")),
            )
            for scope, state in (episodes or {}).items():
                self.save_episode_state(scope, state, db)
            if not cur.rowcount:
                return None
            alert_id = int(cur.lastrowid or 0)
            for t in targets:
                db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, target, status, attempts, "
                    "next_attempt_at, created_at, due_at) VALUES (?,?,?,?,?,?,?)",
                    (alert_id, t, "pending", 0, due_s, now_s, due_s),
                )
            return alert_id

    def due_deliveries(self, now: datetime | None = None) -> list[dict[str, Any]]:
        return self.q(
            "SELECT d.*, a.title, a.body, a.data, a.substance, a.kind, a.severity, a.source, "
            "a.status AS alert_status "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.status='pending' AND d.next_attempt_at <= ? ORDER BY d.alert_id, d.target",
            [iso(now or utcnow())],
        )

    def mark_delivery(
        self, alert_id: int, target: str, *, status: str, error: str | None = None,
        next_attempt_at: datetime | None = None, now: datetime | None = None,
    ) -> None:
        now_s = iso(now or utcnow())
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET status=?, attempts=attempts+1, last_error=?, "
                "next_attempt_at=COALESCE(?, next_attempt_at), "
                "delivered_at=CASE WHEN ?='delivered' THEN ? ELSE delivered_at END "
                "WHERE alert_id=? AND target=?",
                (status, error, iso(next_attempt_at) if next_attempt_at else None, status, now_s,
                 alert_id, target),
            )

    def postpone_delivery(self, alert_id: int, target: str, until: datetime) -> None:
        """Move a pending delivery's next attempt (and its expiry start) without an attempt."""
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at=?, due_at=? "
                "WHERE alert_id=? AND target=? AND status='pending'",
                (iso(until), iso(until), alert_id, target),
            )

    # -- silences ----------------------------------------------------------------------
    def add_silence(
        self, *, substance: str | None, kind: str | None, source: str | None, reason: str,
        until: datetime, created_by: str | None = None, now: datetime | None = None,
    ) -> int:
        with self.write() as db:
            cur = db.execute(
                "INSERT INTO silences (substance, kind, source, reason, created_by, created_at, "
                "until) VALUES (?,?,?,?,?,?,?)",
                (substance, kind, source, reason, created_by, iso(now or utcnow()), iso(until)),
            )
            return int(cur.lastrowid or 0)

    def silences(self, *, now: datetime | None = None, active_only: bool = False
                 ) -> list[dict[str, Any]]:
        now_s = iso(now or utcnow())
        rows = self.q("SELECT * FROM silences ORDER BY id")
        for r in rows:
            r["active"] = r["expired_at"] is None and r["until"] > now_s
        return [r for r in rows if r["active"]] if active_only else rows

    def expire_silence(self, silence_id: int, *, now: datetime | None = None) -> bool:
        with self.write() as db:
            cur = db.execute(
                "UPDATE silences SET expired_at=? WHERE id=? AND expired_at IS NULL",
                (iso(now or utcnow()), silence_id),
            )
            return bool(cur.rowcount)

    # -- people's actions, keys ----------------------------------------------------------
    def record_action(
        self, db: Any, *, who: str, via: str, action: str, alert_id: int | None = None,
        silence_id: int | None = None, detail: str | None = None, now: datetime | None = None,
    ) -> None:
        """Log what a person did (inside the caller's write transaction ``db``)."""
        db.execute(
            "INSERT INTO actions (at, who, via, action, alert_id, silence_id, detail) "
            "VALUES (?,?,?,?,?,?,?)",
            (iso(now or utcnow()), who, via, action, alert_id, silence_id, detail),
        )

    def secret_key(self, name: str) -> str:
        """A random key kept in the store (made on first use): signs sessions and links."""
        rows = self.q("SELECT value FROM secret_keys WHERE name=?", [name])
        if rows:
            return str(rows[0]["value"])
        import secrets

        with self.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO secret_keys VALUES (?,?,?)",
                (name, secrets.token_urlsafe(32), iso(utcnow())),
            )
        return str(self.q("SELECT value FROM secret_keys WHERE name=?", [name])[0]["value"])

    def alerts(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM alerts"
        params: list[Any] = []
        if status:
            sql += " WHERE status=?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        out = self.q(sql, params)
        for a in out:
            a["deliveries"] = self.q(
                "SELECT target, status, attempts, last_error, delivered_at FROM deliveries "
                "WHERE alert_id=? ORDER BY target",
                [a["id"]],
            )
        return out


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _json_default(o: Any) -> Any:
    if isinstance(o, date | datetime):
        return o.isoformat()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        v = float(o)
        return v if np.isfinite(v) else None
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | tuple):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
