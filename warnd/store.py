"""The SQLite store (sqlite-utils): observations, items, findings, alerts, outbox.

One ``Store`` per thread (SQLite connections are not shared across threads). WAL
mode and a 30 s busy timeout; every multi-statement write runs in
``BEGIN IMMEDIATE`` so concurrent writers (the daemon, a CLI command) queue on the
busy handler instead of failing. The schema carries a version and forward
migrations (:data:`MIGRATIONS`); opening an older file upgrades it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import struct
import sys
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from feeds.base import Item, Observation, Problem
from feeds.text import period_end
from warnd import checkpointer
from warnd.errors import StoreError

log = logging.getLogger("warnd.store")

if TYPE_CHECKING:
    import sqlite_utils

    from warnd.statecodec import MakeFits


def _import_sqlite_utils() -> Any:
    """``sqlite_utils``, without letting it import numpy or pandas.

    At import, sqlite_utils imports numpy (and tries pandas) only to map their scalar
    types to column types in its insert helpers, which warnd does not use (every write
    here is SQL with plain values). numpy is a fifth of a second of every process's
    start, so a command that needs no numpy (``status``, ``check-config``) would pay
    it for nothing. While sqlite_utils is imported, both names are
    marked as not importable; then they are what they were before, so numpy imports
    as usual when the detectors need it. When numpy is loaded already, sqlite_utils
    is imported as is."""
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        import sqlite_utils as mod

        return mod
    saved = {name: sys.modules.get(name) for name in ("numpy", "pandas")}
    sys.modules.update(dict.fromkeys(saved))  # None: "import numpy" raises ImportError
    try:
        import sqlite_utils as mod
    finally:
        for name, was in saved.items():
            if was is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = was
    return mod


sqlite_utils = _import_sqlite_utils()  # noqa: F811

if TYPE_CHECKING:
    from detectors.base import Series

# numpy and the detectors are imported where a series is built, not here: commands
# that only read counts (`warnd status`) start without them

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
    elif "malformed" in low or "not a database" in low or "corrupt" in low:
        hint = "the store is damaged; restore it from a backup (docs/operations.md)"
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


def _m4(db: sqlite_utils.Database) -> None:
    """Delivery claims (a lease taken before a send) and per-target delivery state."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)").fetchall()}
    if "claimed_until" not in cols:
        db.execute("ALTER TABLE deliveries ADD COLUMN claimed_until TEXT")
    if "claimed_by" not in cols:
        db.execute("ALTER TABLE deliveries ADD COLUMN claimed_by TEXT")
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS target_state (
            target TEXT PRIMARY KEY, blocked_until TEXT, block_reason TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            last_error_at TEXT, last_success_at TEXT
        );
        """
    )


_OBS_V5 = """
CREATE TABLE observations_v5 (
    source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
    metric TEXT NOT NULL, period TEXT NOT NULL,
    value REAL NOT NULL, denominator REAL, dimension TEXT, flag TEXT, ref TEXT,
    first_seen_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, substance, region, metric, period)
) WITHOUT ROWID
"""
_OBS_COLS = ("source, substance, region, metric, period, value, denominator, dimension, flag, "
             "ref, first_seen_at, updated_at")


def _m5(db: sqlite_utils.Database) -> None:
    """The ``series`` table; observations clustered on their natural key.

    * ``observations`` becomes a WITHOUT ROWID table: rows are stored in key order,
      so a series' history is one contiguous range read (no row lookups through a
      separate index) and the file is about a third smaller.
    * ``series``: one row per series, kept by :meth:`Store.ingest` in the same
      transaction as its observations: first and last period, number of
      observations, ``data_version`` (raised by every change) against
      ``judged_version`` (what detection last judged), the earliest period changed
      since then, and a column for the detector's own state. Listing a substance's
      series, the series with something new, or a source's size reads this table,
      never a DISTINCT over all observations.

    Built from the stored observations; a series is marked judged when its episode
    state (``episodes``) has judged its last period already, so an upgrade does not
    judge anything twice.
    """
    sql = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='observations'"
    ).fetchone()[0]
    if "WITHOUT ROWID" not in sql.upper():
        db.execute("DROP TABLE IF EXISTS observations_v5")
        db.execute(_OBS_V5)
        db.execute(f"INSERT INTO observations_v5 ({_OBS_COLS}) SELECT {_OBS_COLS} FROM observations "
                   "ORDER BY source, substance, region, metric, period")
        db.execute("DROP TABLE observations")
        db.execute("ALTER TABLE observations_v5 RENAME TO observations")
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS series (
            source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
            metric TEXT NOT NULL, key TEXT NOT NULL, dimension TEXT,
            first_period TEXT NOT NULL, last_period TEXT NOT NULL,
            n_observations INTEGER NOT NULL DEFAULT 0,
            data_version INTEGER NOT NULL DEFAULT 1,
            judged_version INTEGER NOT NULL DEFAULT 0,
            judged_period TEXT, changed_from TEXT, detector_state TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (source, substance, region, metric)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS series_substance ON series (substance);
        CREATE INDEX IF NOT EXISTS series_key ON series (key);
        CREATE INDEX IF NOT EXISTS series_pending ON series (substance)
            WHERE data_version > judged_version;
        CREATE INDEX IF NOT EXISTS alerts_substance ON alerts (substance, kind, direction);
        CREATE INDEX IF NOT EXISTS item_substances_substance ON item_substances (substance);
        """
    )
    from detectors.base import series_key

    now_s = iso(utcnow())
    rows = db.execute(
        "SELECT source, substance, region, metric, MAX(dimension), MIN(period), MAX(period), "
        "COUNT(*) FROM observations GROUP BY source, substance, region, metric"
    ).fetchall()
    db.conn.executemany(
        "INSERT OR IGNORE INTO series (source, substance, region, metric, key, dimension, "
        "first_period, last_period, n_observations, data_version, judged_version, "
        "changed_from, updated_at) VALUES (?,?,?,?,?,?,?,?,?,1,0,?,?)",
        [(*r[:4], series_key(*r[:4]), r[4], r[5], r[6], r[7], r[5], now_s) for r in rows],
    )
    # each series judged up to its episode state's last period; read by Python's JSON,
    # as written (SQLite before 3.42 refuses the Infinity of a rise from nothing)
    judged = []
    for scope, state in db.conn.execute(
            "SELECT scope, state FROM episodes WHERE substr(scope, 1, 7) = 'series:'"):
        try:
            last = json.loads(state).get("last_period")
        except (ValueError, AttributeError):
            continue
        if isinstance(last, str):
            judged.append((last, scope.removeprefix("series:")))
    db.conn.executemany("UPDATE series SET judged_period = ? WHERE key = ?", judged)
    db.execute(
        "UPDATE series SET judged_version = data_version, changed_from = NULL "
        "WHERE judged_period >= last_period"
    )
    db.execute(
        "UPDATE series SET changed_from = (SELECT MIN(o.period) FROM observations o "
        "WHERE o.source = series.source AND o.substance = series.substance "
        "AND o.region = series.region AND o.metric = series.metric "
        "AND o.period > series.judged_period) "
        "WHERE judged_period IS NOT NULL AND data_version > judged_version"
    )


def _m6(db: sqlite_utils.Database) -> None:
    """Console sessions kept in the store (listed, ended one by one) and failed logins
    (the rate limit, shared by every console process and kept over a restart)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS web_sessions (
            id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, user TEXT NOT NULL,
            fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL, address TEXT, agent TEXT, ended_at TEXT, ended_why TEXT
        );
        CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user);
        CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
        CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
        """
    )


def _m7(db: sqlite_utils.Database) -> None:
    """A covering index for the per-source figures ``status``, the console and the
    freshness check read (series and observations counted, newest period): the
    ``series`` rows hold each series' packed detector state (about 4 kB), so a scan of
    the table read 100 MB at 100,000 series; the index holds only these columns."""
    db.execute("CREATE INDEX IF NOT EXISTS series_source ON series "
               "(source, last_period, n_observations)")


def _m8(db: sqlite_utils.Database) -> None:
    """Each ingested file's version (:func:`feeds.fetch.file_stat`), so a poll of a folder
    reads only its new and changed files, not every file it ever held."""
    db.execute("CREATE TABLE IF NOT EXISTS document_stats (source TEXT NOT NULL, "
               "location TEXT NOT NULL, stat TEXT NOT NULL, PRIMARY KEY (source, location)) "
               "WITHOUT ROWID")


def _m9(db: sqlite_utils.Database) -> None:
    """Each series' packed detector state in a table of its own, ``series_states``,
    instead of a column of ``series``.

    ``series`` is a WITHOUT ROWID table, and such a table keeps a row larger than about
    a quarter of a page partly on overflow pages: with a five-year weekly state (about
    4 kB) every row of it spilled onto an overflow page. A poll bumps the counters of
    the series it touches (``data_version``, ``last_period``), and SQLite writes a
    whole row again when one of its columns changes, so every new week of a series
    rewrote its state's pages too. ``series_states`` is an ordinary table, written
    only when detection judges the series; the ``series`` rows are a few dozen bytes.
    The states move as they are (the same bytes), so detection continues
    incrementally after the upgrade."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS series_states (
            source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
            metric TEXT NOT NULL, state BLOB NOT NULL,
            UNIQUE (source, substance, region, metric)
        );
        INSERT OR REPLACE INTO series_states (source, substance, region, metric, state)
            SELECT source, substance, region, metric, detector_state FROM series
            WHERE detector_state IS NOT NULL ORDER BY source, substance, region, metric;
        ALTER TABLE series DROP COLUMN detector_state;
        """
    )


def _m10(db: sqlite_utils.Database) -> None:
    """Each episode state marked when it has an episode open (``is_open``, set by
    :meth:`Store.save_episode_state`), and a partial index of the marked ones.

    Whether another series of a substance still has an episode open (a resolve), or has a
    rising trend open (a spike folded into it), was answered by reading the stored
    episode state of every series of the substance with SQLite's JSON functions: about
    16 ms at 100,000 series, each time a round of the episode rules asked, and an error
    for a state holding an infinite change (``Infinity``, as Python's JSON writes a rise
    from nothing, is not JSON to SQLite before 3.42). The index holds only the open ones
    (a few in a quiet week), so the question costs what is open, not what is watched,
    and no JSON is read in SQL. The states stored before are marked here, read by
    Python's JSON (a state it cannot read counts as none open)."""
    if "is_open" not in {r[1] for r in db.execute("PRAGMA table_info(episodes)")}:
        db.execute("ALTER TABLE episodes ADD COLUMN is_open INTEGER NOT NULL DEFAULT 0")
    opened = []
    for rowid, state in db.conn.execute("SELECT rowid, state FROM episodes"):
        try:
            if _has_open(json.loads(state)):
                opened.append((rowid,))
        except ValueError:
            continue
    db.conn.executemany("UPDATE episodes SET is_open = 1 WHERE rowid = ?", opened)
    db.execute("CREATE INDEX IF NOT EXISTS episodes_open ON episodes (scope) WHERE is_open")


def _m11(db: sqlite_utils.Database) -> None:
    """Counts an operator's action took out of the rows a counter of ``/metrics`` is read
    from (``counters``: :data:`CARRIED`), kept so the counter does not go down.

    ``warnd outbox retry`` starts a delivery afresh (no attempts, not expired), and
    ``warnd outbox drop`` takes an expired one out of the expired: ``/metrics`` counted
    the attempts and the giving up from those rows, so each went down, which Prometheus
    reads as a restart. Nothing was carried before, so an upgraded store's counters
    start from what its rows showed."""
    db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, "
               "value INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")


def _has_open(state: Any) -> bool:
    """Whether an episode state has an episode open (its ``active`` not empty)."""
    return isinstance(state, dict) and bool(state.get("active"))


def _m12(db: sqlite_utils.Database) -> None:
    """Every identity of each item (``item_ids``: a feed's guid within its source, the
    normalised link, a content hash), each naming the key the item is stored under.

    An item was known by its key alone, the link when it had one: an article whose link
    changed (an edited slug, a site moved to a new domain, an aggregator's redirect)
    came back under a new key and was counted again, although its feed's guid was the
    same. The items stored before are known by their keys; an item stored under a guid
    (``guid:<guid>``, when it had no link) also by that guid within its source. The
    guid of an item stored by its link is learnt when its feed is next read."""
    from feeds.feedxml import guid_id

    db.execute("CREATE TABLE IF NOT EXISTS item_ids (id TEXT PRIMARY KEY, key TEXT NOT NULL) "
               "WITHOUT ROWID")
    db.execute("INSERT OR IGNORE INTO item_ids (id, key) SELECT key, key FROM items")
    rows = db.execute("SELECT key, source FROM items WHERE key LIKE 'guid:%'").fetchall()
    db.conn.executemany("INSERT OR IGNORE INTO item_ids (id, key) VALUES (?, ?)",
                        [(guid_id(source, key[5:]), key) for key, source in rows])


def _m13(db: sqlite_utils.Database) -> None:
    """Each file's share of a period, for the sources whose files add up (a count table
    with ``files = "add"``: one file a day summed into weeks).

    * ``shares``: what the latest version of each file gave each period (its sum or
      mean, with the rows the mean was taken over), so that a period's value is
      aggregated over all of its files and a file read again replaces only its own
      share (before, each file's value was taken as the period's whole value, and a
      week of daily files kept only its last day);
    * ``share_documents``: the version (sha256) of each file whose shares are kept, so
      that a source switched to adding reads each of its files once more;
    * ``shares_due``: the periods whose value waits for the period to end (a week still
      being filled is not stored as the week's value)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS shares (
            source TEXT NOT NULL, location TEXT NOT NULL, substance TEXT NOT NULL,
            region TEXT NOT NULL, metric TEXT NOT NULL, period TEXT NOT NULL,
            value REAL NOT NULL, rows INTEGER NOT NULL, denominator REAL,
            denominator_rows INTEGER NOT NULL, dimension TEXT, ref TEXT,
            PRIMARY KEY (source, location, substance, region, metric, period)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS shares_period ON shares
            (source, substance, region, metric, period);
        CREATE TABLE IF NOT EXISTS share_documents (
            source TEXT NOT NULL, location TEXT NOT NULL, sha256 TEXT NOT NULL,
            PRIMARY KEY (source, location)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS shares_due (
            source TEXT NOT NULL, substance TEXT NOT NULL, region TEXT NOT NULL,
            metric TEXT NOT NULL, period TEXT NOT NULL, due TEXT NOT NULL,
            PRIMARY KEY (source, substance, region, metric, period)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS shares_due_at ON shares_due (source, due);
        """
    )


def _m14(db: sqlite_utils.Database) -> None:
    """The terms each substance's items were matched with (``substance_terms``:
    :func:`feeds.matching.terms_of`), so that a change of them, by a reload or while
    warnd was stopped, is found and the stored items are matched again
    (:meth:`Store.match_terms`). ``changed_at`` is when they last changed, and
    ``counted_from`` the week from which a source keeping only the items that name a
    watched substance counts the substance afresh (terms added to it: what it did not
    keep cannot be matched again). ``source_terms``: what a source of tables or exports
    was last read with (its options and its substances' terms), so that a change of
    them has its documents read again (:meth:`Store.source_terms`)."""
    db.execute("CREATE TABLE IF NOT EXISTS substance_terms (substance TEXT PRIMARY KEY, "
               "terms TEXT NOT NULL, changed_at TEXT, counted_from TEXT) WITHOUT ROWID")
    db.execute("CREATE TABLE IF NOT EXISTS source_terms (source TEXT PRIMARY KEY, "
               "terms TEXT NOT NULL) WITHOUT ROWID")


def _m15(db: sqlite_utils.Database) -> None:
    """Whether a delivery of an escalation or a reminder was, when it was first sent,
    the first message of its episode its target was sent (``deliveries.opens``: 1, it
    reads as the episode's opening for that target and starts its thread; 0, it reads
    as decided; NULL, not sent yet or another decision). Recorded before the send, so
    a retry or a send again after a crash reads the same (:mod:`warnd.alerting.outbox`).
    Deliveries sent before have none; their threads are worked out as before."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)").fetchall()}
    if "opens" not in cols:
        db.execute("ALTER TABLE deliveries ADD COLUMN opens INTEGER")


def _m16(db: sqlite_utils.Database) -> None:
    """``substance_terms.counted_before``: the terms a substance counted afresh (its
    ``counted_from`` set) was counted with before, so that terms changed back, or to
    ones naming nothing those did not, count its whole history again (before, the
    history was removed for good, though every item the terms name had been kept)."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(substance_terms)").fetchall()}
    if "counted_before" not in cols:
        db.execute("ALTER TABLE substance_terms ADD COLUMN counted_before TEXT")


def _m17(db: sqlite_utils.Database) -> None:
    """``share_documents.copy_of``: the file whose share a file of a source adding its
    files up stands for, when it was found a copy of it (the same bytes as that file's
    version whose share is kept, under another name: a browser's ``amk (1).csv``, a
    transfer retried under a timestamped name). A copy gives no share of its own, and
    written again it replaces the share it stands for (before, a copy was one more
    share: its periods counted twice). The files' versions are indexed by their hash
    (with ``copy_of``: the index answers the look-up alone), so that a copy is found
    without reading the row of every file of its source."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(share_documents)").fetchall()}
    if "copy_of" not in cols:
        db.execute("ALTER TABLE share_documents ADD COLUMN copy_of TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS share_documents_sha256 ON share_documents "
               "(source, sha256, copy_of)")


def _m18(db: sqlite_utils.Database) -> None:
    """``notice_edits``: when an edit of a warning notice first named a substance (the
    notice's ``item_substances`` row says only that it names it now), so that
    ``warnd backtest --replay store`` tells the edit when the daemon did, to the targets
    the substance brings, instead of the notice naming it from the start. Notices
    edited before have none: their substances read as named from the start."""
    db.execute("CREATE TABLE IF NOT EXISTS notice_edits (key TEXT NOT NULL, substance TEXT "
               "NOT NULL, named_at TEXT NOT NULL, PRIMARY KEY (key, substance))")


def _m19(db: sqlite_utils.Database) -> None:
    """``deliveries.maybe_sent``: for a delivery that reads as its target's opening
    (``opens`` 1), whether an attempt of it may have reached the target (1: one was
    under way, or ended without showing that the target did not take it; 0: each attempt
    so far was refused before the target took it; NULL: none was sent). Only while none
    may have, an operator's re-queue of the episode's messages has its reading asked
    again (:func:`warnd.alerting.outbox.retry_delivery`). Deliveries that read as the
    opening before have no record of their attempts: they count as possibly sent (1)."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)").fetchall()}
    if "maybe_sent" not in cols:
        db.execute("ALTER TABLE deliveries ADD COLUMN maybe_sent INTEGER")
        db.execute("UPDATE deliveries SET maybe_sent=1 WHERE opens=1")


def _m20(db: sqlite_utils.Database) -> None:
    """``source_state.unread_from``, ``unread_until``: the weeks of a news feed's
    articles that no poll read (the feed was down, and came back showing only entries
    newer than its last read), which are not known to be weeks without articles
    (:meth:`Store.note_unread`); NULL for none."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(source_state)").fetchall()}
    for col in ("unread_from", "unread_until"):
        if col not in cols:
            db.execute(f"ALTER TABLE source_state ADD COLUMN {col} TEXT")


#: A finding as it stands (SQL): not one a revision took away, which the series judged
#: again no longer gives (:meth:`Store.record_findings` writes ``withdrawn`` first in its
#: evidence; read as text, not with SQLite's JSON functions: an evidence may hold NaN,
#: which Python writes and reads but SQLite's JSON does not).
WITHDRAWN = '{"withdrawn": '
FINDING_STANDS = f"COALESCE(substr(evidence, 1, {len(WITHDRAWN)}), '') != '{WITHDRAWN}'"

#: The problems kept of each source, the newest (``warnd status`` and the console show 5;
#: a problem seen again with the same words updates its row): older ones are deleted.
PROBLEMS_KEPT = 50

#: Forward migrations; index + 1 is the schema version they produce.
MIGRATIONS = [_m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8, _m9, _m10, _m11, _m12, _m13, _m14,
              _m15, _m16, _m17, _m18, _m19, _m20]

#: The counters of ``/metrics`` read from rows an operator may change, and what each
#: keeps in the ``counters`` table: the send attempts of deliveries queued again (their
#: ``attempts`` start from 0), and the deliveries given up (expired, failed) that were
#: queued again or dropped since. Each counter is its rows' count plus this.
CARRIED = ("delivery_attempts", "deliveries_given_up")

SeriesKey = tuple[str, str, str, str]  # source, substance, region, metric

#: Items matched again at a time when a substance's terms change (:meth:`Store.match_terms`).
MATCH_CHUNK = 2000


class Shares(NamedTuple):
    """How a source's files add up to a period's value (``files = "add"``)."""

    aggregate: str  # sum | mean
    period: str  # week | month | day | as_is: a period is stored once it has ended


class Whole(NamedTuple):
    """A document that is the whole of what its source gives (a count table read from one
    file or address): a period it no longer gives inside the span it gives for a series
    (between its first and last period) is withdrawn."""

    unread: frozenset[date]  # periods some row of which could not be read: kept as stored


class Pending(NamedTuple):
    """What detection needs of a series with something new (:meth:`Store.pending_series`)."""

    data_version: int  # the version read before the series is loaded (mark_judged)
    judged_period: str | None  # the last period judged so far
    changed_from: str | None  # the earliest period changed since (a revision if judged)
    last_period: str | None  # the newest period stored


class Store:
    """The one facade over the database. Not thread-safe: one per thread."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._depth = 0
        self._checkpoints: checkpointer.Checkpointer | None = None
        self._owns_checkpoints = False
        self._changes = 0  # the connection's rows changed when the checkpointer last heard
        on_disk = str(path) != ":memory:"
        try:
            if on_disk:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._refuse_lost_store()
            conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=True)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
            if str(path) != ":memory:":
                mode = self._enter_wal(timeout)
                if mode.lower() != "wal":
                    raise StoreError(f"{path}: cannot switch to WAL mode (got {mode})")
            self.db.execute("PRAGMA synchronous = NORMAL")
            # a migration that rewrites a table (schema 5's observations, schema 9's
            # series) sorts it in temporary files, not in memory (470 MB at 100,000
            # series); after them, the ingest's staging table is kept in memory
            self.db.execute("PRAGMA temp_store = FILE")
            if on_disk and self.schema_version == 0 and self.marker.exists():
                conn.close()
                self._refuse_lost_store(empty=True)
            self.migrate()
            self.db.execute("PRAGMA temp_store = MEMORY")
            if on_disk and not self.marker.exists():
                self._write_marker()
            if on_disk and (ck := checkpointer.running(self.path)) is not None:
                self._use_checkpointer(ck)
        except sqlite3.Error as e:
            raise StoreError(
                f"{path}: cannot open the store: "
                + store_problem(e, self.path.parent).removeprefix("store error: ")
            ) from None
        except OSError as e:
            raise StoreError(f"{path}: cannot open the store: {e.strerror}") from None

    def _enter_wal(self, timeout: float) -> str:
        """``PRAGMA journal_mode = WAL``, waiting for another connection's lock.

        Switching a store out of rollback mode (one just made, or copied from a
        backup) needs an exclusive lock, and SQLite asks for it without calling the
        busy handler: the daemon and the console opening such a store together would
        see "database is locked" at once. The switch is tried again for as long as
        any other lock is waited for."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                return str(self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    # -- a store that existed is never silently replaced by an empty one ---------------
    @property
    def marker(self) -> Path:
        """``warnd.sqlite.marker``: written next to the store when it is first made.

        It lives outside the database, so a store that was deleted, truncated to zero
        bytes or replaced by an empty file is noticed instead of silently started
        afresh (which would forget what was sent and send recent notices again).
        """
        return self.path.with_name(self.path.name + ".marker")

    def _write_marker(self) -> None:
        try:
            self.marker.write_text(json.dumps({"created_at": iso(utcnow()),
                                               "schema_version": self.schema_version}) + "\n",
                                   encoding="utf-8")
        except OSError:
            pass  # a read-only state directory: the open itself reports that

    def _refuse_lost_store(self, *, empty: bool = False) -> None:
        if not self.marker.exists():
            return
        missing = not self.path.exists()
        if not (empty or missing or self.path.stat().st_size == 0):
            return
        try:
            since = json.loads(self.marker.read_text(encoding="utf-8")).get("created_at", "?")
        except (OSError, ValueError):
            since = "?"
        what = "missing" if missing else "empty"
        raise StoreError(
            f"{self.path}: the store is {what}, but a store existed here (made {since}, "
            f"see {self.marker}); restore it from a backup (docs/operations.md), or remove "
            f"{self.marker.name} to start with an empty store on purpose")

    def quick_check(self) -> None:
        """``PRAGMA quick_check``; a :class:`StoreError` naming the damage unless ``ok``."""
        try:
            rows = [r[0] for r in self.db.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.Error as e:
            rows = [str(e)]
        if rows != ["ok"]:
            raise StoreError(
                f"{self.path}: the store is damaged (quick_check: {'; '.join(rows)[:300]}); "
                "restore it from a backup (docs/operations.md)")

    @classmethod
    def in_dir(cls, state_dir: Path, *, timeout: float = 30.0) -> Store:
        return cls(Path(state_dir) / DB_NAME, timeout=timeout)

    def close(self) -> None:
        if self._owns_checkpoints and self._checkpoints is not None:
            self._checkpoints.close()
        self.db.conn.close()

    # -- the WAL checkpointed on a thread of its own ---------------------------------
    def checkpoint_in_background(self, *, limit_pages: int = checkpointer.LIMIT_PAGES,
                                 min_pages: int = checkpointer.MIN_PAGES,
                                 wait: float = 5.0) -> checkpointer.Checkpointer | None:
        """Checkpoint the WAL on a thread of its own (:mod:`warnd.checkpointer`) until
        this store is closed: for a connection held for a whole cycle or the daemon's
        life. The process's other connections to this store opened meanwhile use it too.
        None for a store in memory, or when the thread's connection cannot be opened
        (then SQLite's own checkpoints go on as before)."""
        if str(self.path) == ":memory:":
            return None
        ck = checkpointer.running(self.path)
        if ck is None:
            try:
                mine = checkpointer.Checkpointer(
                    self.path, wait=wait, limit_pages=limit_pages, min_pages=min_pages,
                    explain=lambda e: store_problem(e, self.path.parent))
            except sqlite3.Error as e:
                log.warning("store=%s checkpoints stay in the writers' commits: %s",
                            self.path, store_problem(e, self.path.parent))
                return None
            ck = mine.register()
            if ck is mine:
                self._owns_checkpoints = True
            else:  # another thread's came first
                mine.close()
        self._use_checkpointer(ck)
        return ck

    def _use_checkpointer(self, ck: checkpointer.Checkpointer) -> None:
        self.db.execute("PRAGMA wal_autocheckpoint = 0")
        self.db.execute("PRAGMA journal_size_limit = %d" % (ck.limit_pages * checkpointer.PAGE))
        self._checkpoints = ck
        self._changes = self.db.conn.total_changes

    def _checkpoint_nudge(self, ck: checkpointer.Checkpointer) -> None:
        changes = self.db.conn.total_changes
        rows, self._changes = changes - self._changes, changes
        if not ck.nudge(rows):  # it stopped: checkpoint as SQLite does by default
            self._checkpoints = None
            self.db.execute("PRAGMA wal_autocheckpoint = 1000")

    # -- plumbing ---------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

        Nested ``write()`` blocks join the outermost one: everything commits (or rolls
        back) together when it ends, so a caller can make several writes one unit.
        """
        conn = self.db.conn
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            conn.rollback()
            raise
        else:
            self._depth = 0
            conn.commit()
            if self._checkpoints is not None:
                self._checkpoint_nudge(self._checkpoints)

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
        if version == len(MIGRATIONS):
            return
        with self._upgrading():
            # read again: another connection (the daemon and the console opening an
            # old store together) may have upgraded it meanwhile
            for i in range(self.schema_version, len(MIGRATIONS)):
                with self.write():
                    MIGRATIONS[i](self.db)
                    self.db.execute(f"PRAGMA user_version = {i + 1}")

    @contextmanager
    def _upgrading(self) -> Iterator[None]:
        """One connection at a time upgrades the store, in this process or another.

        A migration's ``executescript`` commits the write transaction it runs in, so
        the store's own lock does not keep a second connection from starting the same
        step; an exclusive ``flock`` on ``warnd.sqlite.upgrade`` next to the store
        does (taken only when there is something to upgrade)."""
        if str(self.path) == ":memory:":
            yield
            return
        import fcntl

        fd = os.open(self.path.with_name(self.path.name + ".upgrade"),
                     os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the lock

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

    def location_read(self, source: str, location: str) -> bool:
        """Whether the source has ingested a document from this location."""
        return bool(self.q("SELECT 1 FROM documents WHERE source=? AND location=? LIMIT 1",
                           [source, location]))

    def _prune_problems(self, db: Any, source: str) -> None:
        """Keep a source's newest :data:`PROBLEMS_KEPT` problems: one that repeats in
        other words at every poll (times in it, a file read again) adds a row each time."""
        db.execute(
            "DELETE FROM problems WHERE source=? AND id NOT IN (SELECT id FROM problems "
            "WHERE source=? ORDER BY seen_at DESC, id DESC LIMIT ?)",
            (source, source, PROBLEMS_KEPT))

    def _end_problems(self, db: Any, source: str, location: str,
                      lasting: Sequence[str] = ()) -> None:
        """End the problems recorded of the document at ``location`` (of the document, or
        of a line, a column, an item or a notice in it: ``"<location> line 12"``), as it
        is read anew: what its new reading finds is recorded after. Those at ``location``
        whose message begins with one of ``lasting`` are the polls', not the document's,
        and stay.

        A line's or a column's problem stored before they were located by the document's
        location, as ``"<file name> line 12"``, ends with the file of that name whose
        reading saw it last; it is kept while another file of that name was read then too
        (whose problem it is cannot be told)."""
        name = location.rsplit("/", 1)[-1]
        kept = "".join(" AND substr(message, 1, ?) != ?" for _ in lasting)
        db.execute(
            "DELETE FROM problems WHERE source=?1 AND (location=?2 "
            "OR substr(location, 1, length(?2) + 1)=?2 || ' ' "
            "OR ((substr(location, 1, length(?3) + 6)=?3 || ' line ' "
            "OR substr(location, 1, length(?3) + 8)=?3 || ' column ') "
            "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.source=?1 "
            "AND d.location!=?2 AND d.ingested_at=problems.seen_at "
            "AND (d.location=?3 OR substr(d.location, -length(?3) - 1)='/' || ?3)))) "
            + kept,
            [source, location, name, *(x for m in lasting for x in (len(m), m))])

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
        shares: Shares | None = None,
        copy_of: str | None = None,
        whole: Whole | None = None,
        read_anew: bool = False,
        lasting: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Store one parsed document atomically; return what changed.

        Observations upsert on their natural key; a changed value or denominator is
        kept in ``revisions``. Items insert once (the first source to see an article
        owns it): an item one of whose identities (``Item.ids``: its guid within its
        source, its normalised link) is known is the item stored under that identity,
        the strongest first, and its other identities are recorded for it. When its
        own source gives it a new link, the stored link becomes that one.
        ``items_added`` lists the keys of the items stored now. A notice of the same
        source whose text was edited since (its title or summary differ) also records
        the substances the edit names (``notices_renamed``: (parsed key, stored key) of
        those that named one more). The document's hash is recorded in the same
        transaction, so a crash never leaves a half-ingested file marked as done.

        With ``shares`` the observations are the document's shares of their periods:
        they replace what this location gave before, and each period it gives or gave
        waits to be stored as the aggregate over every location's share by
        :meth:`settle_shares`, once the period has ended; with ``copy_of`` too, the
        document is a copy of that file (:meth:`kept_copy`) and gives no share of its own.

        With ``whole`` the document is all its source gives: a stored value of a series
        it gives, inside the span it gives for that series and not given by it any more,
        is withdrawn (:meth:`_withdraw_removed`; ``observations_withdrawn`` lists them).

        With ``read_anew`` the document was read (a file of a folder, a feed's address, a
        single file): the problems recorded of it before end (:meth:`_end_problems`), and
        ``problems`` are those of this reading, so that a document refused, half written
        or with a malformed entry at one poll and read cleanly at a later one has no
        problem listed any more; those of the polls at its location (the messages
        beginning with one of ``lasting``) stay.
        """
        now_s = iso(now or utcnow())
        added: list[str] = []
        renamed: list[tuple[str, str]] = []
        new_item_weeks: set[tuple[str, str]] = set()
        with self.write() as db:
            if shares is not None:
                self._take_shares(source, location, sha256, observations, shares, copy_of)
                observations = ()
            observations = list(observations)
            n_new_obs, n_rev, touched = self._upsert_observations(observations, now_s)
            withdrawn: list[tuple[Any, ...]] = []
            if whole is not None:
                withdrawn = self._withdraw_removed(observations, whole, location, now_s)
                touched = list(dict.fromkeys([*touched, *(tuple(w[:4]) for w in withdrawn)]))
            for it in items:
                ids = tuple(dict.fromkeys((*it.ids, it.key)))
                known = dict(db.execute(
                    f"SELECT id, key FROM item_ids WHERE id IN ({','.join('?' * len(ids))})",
                    ids).fetchall())
                key = next((known[i] for i in ids if i in known), None)
                if key is None:
                    key = it.key
                    wk = week_start(it.published_at.astimezone(UTC).date()).isoformat()
                    cur = db.execute(
                        "INSERT OR IGNORE INTO items (key, source, kind, published_at, week, "
                        "title, link, summary, region, first_seen_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (it.key, it.source, it.kind, iso(it.published_at), wk, it.title,
                         it.link, it.summary, it.region, now_s),
                    )
                    if cur.rowcount:
                        added.append(it.key)
                        for sub in it.substances:
                            db.execute("INSERT OR IGNORE INTO item_substances VALUES (?, ?)",
                                       (it.key, sub))
                        new_item_weeks.add((it.source, it.region))
                else:
                    if it.kind == "notice" and it.substances and db.execute(
                            "SELECT 1 FROM items WHERE key=? AND source=? AND kind='notice' "
                            "AND (title IS NOT ? OR summary IS NOT ?)",
                            (key, it.source, it.title, it.summary)).fetchone():
                        # an edited notice: the substances it names now are named by it
                        named = [sub for sub in it.substances if db.execute(
                            "INSERT OR IGNORE INTO item_substances VALUES (?, ?)",
                            (key, sub)).rowcount]
                        if named:
                            renamed.append((it.key, key))
                            db.conn.executemany(
                                "INSERT OR IGNORE INTO notice_edits VALUES (?, ?, ?)",
                                [(key, sub, now_s) for sub in named])
                    if it.link and any(i.startswith("url:") and i not in known for i in ids):
                        db.execute("UPDATE items SET link=? WHERE key=? AND source=?",
                                   (it.link, key, it.source))
                db.conn.executemany("INSERT OR IGNORE INTO item_ids (id, key) VALUES (?, ?)",
                                    [(i, key) for i in ids if i not in known])
            if read_anew:
                self._end_problems(db, source, location, lasting)
            for p in problems:
                db.execute(
                    "INSERT INTO problems (source, location, message, seen_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (source, location, message) DO UPDATE SET seen_at=excluded.seen_at",
                    (source, p.where, p.message, now_s),
                )
            if problems:
                self._prune_problems(db, source)
            if sha256 is not None:
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?)",
                    (source, location, sha256, now_s, n_new_obs + n_rev + len(withdrawn),
                     len(added)),
                )
        return {
            "observations_new": n_new_obs,
            "observations_revised": n_rev,
            "observations_withdrawn": withdrawn,
            "items_new": len(added),
            "items_added": added,
            "notices_renamed": renamed,
            "series_touched": touched,
            "item_sources": sorted(new_item_weeks),
        }

    def shares_read(self, source: str, location: str, sha256: str) -> bool:
        """Whether this version of a document is the one whose shares are kept."""
        return bool(self.db.execute(
            "SELECT 1 FROM share_documents WHERE source=? AND location=? AND sha256=?",
            [source, location, sha256]).fetchone())

    def kept_copy(self, source: str, location: str, sha256: str) -> tuple[str, str] | None:
        """The file of the source whose version kept has these bytes, when it is not
        ``location`` (its own version kept is :meth:`shares_read`), and the file whose
        share it stands for: itself, or the file it was found a copy of. ``None`` when
        no other file kept has them, or they stand for ``location``'s own share (a file
        written back to the bytes its copies still have)."""
        row = self.db.execute(
            "SELECT location, COALESCE(copy_of, location) FROM share_documents WHERE "
            "source=? AND sha256=? AND location != ? AND COALESCE(copy_of, '') != ? "
            "ORDER BY copy_of IS NOT NULL, location LIMIT 1",
            [source, sha256, location, location]).fetchone()
        return None if row is None else (row[0], row[1])

    def fold_copies(self, source: str, period: str) -> list[tuple[str, str]]:
        """Files of the source counted as shares of their own while they are copies of
        each other (the same bytes kept, the same shares: a copy read before copies were
        found, by an earlier version) made one share: the file first read with these
        bytes keeps it, and the others and their copies stand for it. Their periods wait
        for :meth:`settle_shares` (to be stored counted once). Returns ``(copy, file)``."""
        conn = self.db.conn
        ask = ("SELECT s.location FROM share_documents s LEFT JOIN documents d USING "
               "(source, location, sha256) WHERE s.source=? AND s.copy_of IS NULL "
               "AND s.sha256=? GROUP BY s.location ORDER BY MIN(d.ingested_at), s.location")
        twice = conn.execute("SELECT sha256 FROM share_documents WHERE source=? AND copy_of "
                             "IS NULL GROUP BY sha256 HAVING COUNT(*) > 1", (source,)).fetchall()
        if not twice:
            return []

        def given(loc: str) -> list[tuple[Any, ...]]:
            return sorted(conn.execute(
                "SELECT substance, region, metric, period, value, rows, denominator, "
                "denominator_rows FROM shares WHERE source=? AND location=?",
                (source, loc)).fetchall())

        folded: list[tuple[str, str]] = []
        waiting: set[tuple[Any, ...]] = set()
        with self.write():
            for (sha,) in twice:
                keep, *others = [r[0] for r in conn.execute(ask, (source, sha)).fetchall()]
                kept = given(keep)
                for loc in others if kept else ():  # files that give nothing add nothing
                    if given(loc) != kept:  # the same bytes read otherwise: not one share
                        continue
                    conn.execute("DELETE FROM shares WHERE source=? AND location=?",
                                 (source, loc))
                    conn.execute("UPDATE share_documents SET copy_of=? WHERE source=? AND "
                                 "(location=? OR copy_of=?)", (keep, source, loc, loc))
                    folded.append((loc, keep))
                    waiting.update(tuple(k[:4]) for k in kept)
            rows = []
            for k in waiting:
                end = period_end(date.fromisoformat(k[3]), period)
                rows.append((source, *k, "" if end is None else end.isoformat()))
            conn.executemany("INSERT OR REPLACE INTO shares_due VALUES (?,?,?,?,?,?)", rows)
        return folded

    def has_shares(self, source: str) -> bool:
        """Whether a share of a period is kept of any of the source's files."""
        return self.db.execute("SELECT 1 FROM shares WHERE source=? LIMIT 1",
                               [source]).fetchone() is not None

    def convert_shares(self, source: str, was: str, aggregate: str, terms: str, *,
                       period: str | None) -> None:
        """Take the source's shares kept as ``was`` (``sum`` or ``mean``) as
        ``aggregate`` (a file's sum is its mean times its rows), so that the shares of
        files no longer read (taken out of the folder) add up with those read again;
        with ``period`` (the source adds its files up now) its periods wait for
        :meth:`settle_shares` to be stored over them. ``terms``: what the source is read
        with once they are converted, recorded in the same transaction, so that they are
        converted once."""
        if {was, aggregate} != {"sum", "mean"}:
            return
        op = "/" if aggregate == "mean" else "*"
        with self.write() as db:
            db.execute(f"UPDATE shares SET value = CASE WHEN rows > 0 THEN value {op} rows "
                       "ELSE value END, denominator = CASE WHEN denominator_rows > 0 THEN "
                       f"denominator {op} denominator_rows ELSE denominator END "
                       "WHERE source = ?", (source,))
            if period is not None:
                self.shares_all_due(source, period)
            db.execute("INSERT INTO source_terms VALUES (?, ?) ON CONFLICT (source) "
                       "DO UPDATE SET terms = excluded.terms", (source, terms))

    def shares_all_due(self, source: str, period: str) -> None:
        """Every period the source's files' shares give waits for :meth:`settle_shares`
        to be stored over them (a source switched back to adding its files up, whose
        periods were given whole values meanwhile)."""
        with self.write() as db:
            keys = db.execute("SELECT DISTINCT substance, region, metric, period FROM shares "
                              "WHERE source = ?", (source,)).fetchall()
            waiting = []
            for k in keys:
                end = period_end(date.fromisoformat(k[3]), period)
                waiting.append((source, *k, "" if end is None else end.isoformat()))
            db.conn.executemany("INSERT OR REPLACE INTO shares_due VALUES (?,?,?,?,?,?)",
                                waiting)

    def settle_shares(self, source: str, shares: Shares, *,
                      now: datetime | None = None) -> tuple[int, list[SeriesKey]]:
        """Store the value of each of the source's periods whose shares changed, once the
        period has ended by ``now`` (called after a poll's documents: a period that many
        files of one poll give is stored once). Returns the number of values new or
        changed and the series they belong to."""
        now_dt = now or utcnow()
        today = now_dt.astimezone(UTC).date().isoformat()
        ask = "SELECT substance, region, metric, period FROM shares_due WHERE source=? AND due <= ?"
        if self.db.execute(ask + " LIMIT 1", [source, today]).fetchone() is None:
            return 0, []
        with self.write() as db:
            keys = [tuple(r) for r in db.execute(ask, [source, today]).fetchall()]
            n_new, n_rev, touched = self._upsert_observations(
                self._combined(source, keys, shares.aggregate), iso(now_dt))
        return n_new + n_rev, touched

    def _take_shares(self, source: str, location: str, sha256: str | None,
                     observations: Iterable[Observation], shares: Shares,
                     copy_of: str | None = None) -> None:
        """Replace a document's shares (inside :meth:`ingest`'s transaction); the periods
        it gives or gave wait for :meth:`settle_shares`, each until it has ended. A
        document that gives nothing (empty, half written, every row a problem) leaves
        the shares it gave before as they were, as it would leave the values of a
        document read whole.

        ``copy_of``: the document is a copy of that file's version kept (the same bytes,
        :meth:`kept_copy`): it gives no share of its own, and it and the copies of it
        stand for that file's share. A copy that gives a share of its own when written
        again is that file written again: its share replaces the one it stood for, and
        that file and the other copies stand for it from then on."""
        conn = self.db.conn
        new = {(o.substance, o.region, o.metric, o.period.isoformat()): o for o in observations}
        row = conn.execute("SELECT copy_of FROM share_documents WHERE source=? AND location=?",
                           (source, location)).fetchone()
        was_copy_of = None if row is None else row[0]
        gone: list[str] = []  # the files whose shares this document replaces
        if copy_of is not None or new:
            gone.append(location)
        if copy_of is None and new and was_copy_of is not None:
            gone.append(was_copy_of)
        old: list[Any] = []
        for loc in gone:
            old += conn.execute("SELECT substance, region, metric, period FROM shares "
                                "WHERE source=? AND location=?", (source, loc)).fetchall()
            conn.execute("DELETE FROM shares WHERE source=? AND location=?", (source, loc))
        if copy_of is not None:
            new = {}
        conn.executemany(
            "INSERT INTO shares VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(source, location, *k, o.value, o.rows, o.denominator, o.denominator_rows,
              o.dimension, o.ref) for k, o in new.items()])
        holder = copy_of if copy_of is not None else was_copy_of if not new else None
        if len(gone) > 1:  # the file whose share a copy stood for, and its other copies
            conn.execute("UPDATE share_documents SET copy_of=? WHERE source=? AND "
                         "(copy_of=? OR location=?) AND location != ?",
                         (location, source, gone[1], gone[1], location))
        if copy_of is not None:  # the copies of this document stand for its holder's share
            conn.execute("UPDATE share_documents SET copy_of=? WHERE source=? AND copy_of=?",
                         (copy_of, source, location))
        if sha256 is not None:
            conn.execute("INSERT OR REPLACE INTO share_documents (source, location, sha256, "
                         "copy_of) VALUES (?,?,?,?)", (source, location, sha256, holder))
        waiting: list[tuple[Any, ...]] = []
        for k in {tuple(r) for r in old} | set(new):
            end = period_end(date.fromisoformat(k[3]), shares.period)
            waiting.append((source, *k, "" if end is None else end.isoformat()))
        conn.executemany("INSERT OR REPLACE INTO shares_due VALUES (?,?,?,?,?,?)", waiting)

    def _combined(self, source: str, keys: list[tuple[Any, ...]],
                  aggregate: str) -> list[Observation]:
        """The value of each period ``(substance, region, metric, period)`` over the
        shares of all of the source's documents: their sum, or their mean weighted by
        the rows each was taken over. A period no document gives any more has none
        (its stored value stays). The periods are no longer waiting."""
        if not keys:
            return []
        conn = self.db.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS share_keys (substance TEXT, region TEXT, "
                     "metric TEXT, period TEXT, PRIMARY KEY (substance, region, metric, period)) "
                     "WITHOUT ROWID")
        conn.execute("DELETE FROM temp.share_keys")
        conn.executemany("INSERT OR IGNORE INTO temp.share_keys VALUES (?,?,?,?)", keys)
        conn.execute("DELETE FROM shares_due WHERE source = ? AND EXISTS (SELECT 1 FROM "
                     "temp.share_keys k WHERE k.substance = shares_due.substance "
                     "AND k.region = shares_due.region AND k.metric = shares_due.metric "
                     "AND k.period = shares_due.period)", (source,))
        if aggregate == "mean":
            value = "SUM(s.value * s.rows) / SUM(s.rows)"
            den = ("SUM(s.denominator * s.denominator_rows) / SUM(CASE WHEN s.denominator "
                   "IS NOT NULL THEN s.denominator_rows END)")
        else:
            value, den = "SUM(s.value)", "SUM(s.denominator)"
        rows = conn.execute(
            f"SELECT s.substance, s.region, s.metric, s.period, {value}, {den}, "
            "MAX(s.dimension), COUNT(*), MIN(s.location), MAX(s.location), MAX(s.ref) "
            "FROM temp.share_keys k JOIN main.shares s ON s.source = ? "
            "AND s.substance = k.substance AND s.region = k.region AND s.metric = k.metric "
            "AND s.period = k.period GROUP BY s.substance, s.region, s.metric, s.period "
            "HAVING SUM(s.rows) > 0", (source,)).fetchall()
        conn.execute("DELETE FROM temp.share_keys")
        return [
            Observation(source=source, substance=sub, region=region, metric=metric,
                        period=date.fromisoformat(period), value=float(v),
                        denominator=None if d is None else float(d), dimension=dim,
                        ref=ref if n == 1 else
                        f"{n} files, {first.rsplit('/', 1)[-1]} to {last.rsplit('/', 1)[-1]}")
            for sub, region, metric, period, v, d, dim, n, first, last, ref in rows
        ]

    def _withdraw_removed(self, observations: list[Observation], whole: Whole,
                          location: str, now_s: str) -> list[tuple[Any, ...]]:
        """Withdraw what a document that is the whole of its source's table no longer
        gives (inside :meth:`ingest`'s transaction): for each series it gives, a stored
        period between its first and last period for that series that it does not give
        (a row deleted, a week taken back). The value is kept in ``revisions`` with no
        new value, the observation removed (a gap to the detectors, not a zero), and the
        series marked changed from there, so that it is judged again as after any
        revision. Periods outside that span (a table showing only its latest weeks, a
        file of one period) and the periods some row of which could not be read stay.
        Returns the withdrawn ``(source, substance, region, metric, period, value)``."""
        given: dict[SeriesKey, set[str]] = {}
        for o in observations:
            given.setdefault((o.source, o.substance, o.region, o.metric),
                             set()).add(o.period.isoformat())
        unread = {p.isoformat() for p in whole.unread}
        conn = self.db.conn
        gone: list[tuple[Any, ...]] = []
        for key, periods in given.items():
            gone += [
                tuple(r) for r in conn.execute(
                    "SELECT source, substance, region, metric, period, value, denominator "
                    "FROM observations WHERE source=? AND substance=? AND region=? AND metric=? "
                    "AND period > ? AND period < ? ORDER BY period",
                    (*key, min(periods), max(periods))).fetchall()
                if r[4] not in periods and r[4] not in unread]
        return self._withdraw_rows(gone, f"{location.rsplit('/', 1)[-1]}: no longer given",
                                   now_s)

    def withdraw(self, keys: Iterable[tuple[str, str, str, str, date]], *, ref: str,
                 now: datetime | None = None) -> list[tuple[Any, ...]]:
        """Withdraw the stored values of these ``(source, substance, region, metric,
        period)`` as a document that no longer gives them does (:meth:`_withdraw_removed`:
        kept in ``revisions`` with no new value, removed, the series judged again from
        there); a key with no stored value is left. Returns what was withdrawn, as
        :meth:`ingest`'s ``observations_withdrawn``."""
        conn = self.db.conn
        with self.write():
            gone = [tuple(r) for k in keys for r in conn.execute(
                "SELECT source, substance, region, metric, period, value, denominator "
                "FROM observations WHERE source=? AND substance=? AND region=? AND metric=? "
                "AND period=?", (*k[:4], k[4].isoformat())).fetchall()]
            out = self._withdraw_rows(gone, ref, iso(now or utcnow()))
            # unlike a document's, these may be a series' first or last periods
            conn.executemany(
                "UPDATE series SET first_period = COALESCE((SELECT MIN(period) FROM "
                "observations o WHERE o.source=series.source AND o.substance=series.substance "
                "AND o.region=series.region AND o.metric=series.metric), first_period), "
                "last_period = COALESCE((SELECT MAX(period) FROM observations o WHERE "
                "o.source=series.source AND o.substance=series.substance "
                "AND o.region=series.region AND o.metric=series.metric), last_period) "
                "WHERE source=? AND substance=? AND region=? AND metric=?",
                list(dict.fromkeys(g[:4] for g in gone)))
            return out

    def _withdraw_rows(self, gone: list[tuple[Any, ...]], ref: str,
                       now_s: str) -> list[tuple[Any, ...]]:
        """Withdraw these stored ``(source, substance, region, metric, period, value,
        denominator)`` rows (inside a write transaction)."""
        if not gone:
            return []
        conn = self.db.conn
        conn.executemany(
            "INSERT INTO revisions (source, substance, region, metric, period, old_value, "
            "new_value, old_denominator, new_denominator, ref, revised_at) "
            "VALUES (?,?,?,?,?,?,NULL,?,NULL,?,?)", [(*g, ref, now_s) for g in gone])
        conn.executemany("DELETE FROM observations WHERE source=? AND substance=? AND region=? "
                         "AND metric=? AND period=?", [g[:5] for g in gone])
        by_series: dict[tuple[Any, ...], list[str]] = {}
        for g in gone:
            by_series.setdefault(g[:4], []).append(g[4])
        # the span's ends are stored, so the series' first and last periods stay
        conn.executemany(
            "UPDATE series SET n_observations = n_observations - ?, "
            "data_version = data_version + 1, changed_from = MIN(COALESCE(changed_from, ?), ?), "
            "updated_at = CASE WHEN data_version > judged_version THEN updated_at ELSE ? END "
            "WHERE source=? AND substance=? AND region=? AND metric=?",
            [(len(ps), min(ps), min(ps), now_s, *k) for k, ps in by_series.items()])
        return [g[:6] for g in gone]

    def _upsert_observations(
        self, observations: Iterable[Observation], now_s: str
    ) -> tuple[int, int, list[SeriesKey]]:
        """Upsert a batch in a few set-based statements (inside :meth:`ingest`'s transaction).

        The batch goes into a temporary table; one join against the stored rows
        finds what is new and what is revised; revisions are copied in one
        statement, observations upserted in one, and the ``series`` rows of the
        series that changed in one more. Within a batch the last row for a key wins.
        Returns (new, revised, series changed).
        """
        rows = [(o.source, o.substance, o.region, o.metric, o.period.isoformat(), o.value,
                 o.denominator, o.dimension, o.flag, o.ref) for o in observations]
        if not rows:
            return 0, 0, []
        conn = self.db.conn
        pk = "source, substance, region, metric, period"
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming (source TEXT, substance TEXT, region TEXT, "
            "metric TEXT, period TEXT, value REAL, denominator REAL, dimension TEXT, flag TEXT, "
            f"ref TEXT, is_new INTEGER, PRIMARY KEY ({pk})) WITHOUT ROWID"
        )
        conn.execute("DELETE FROM temp.incoming")
        conn.executemany(
            "INSERT OR REPLACE INTO temp.incoming VALUES (?,?,?,?,?,?,?,?,?,?,NULL)", rows
        )
        # what is stored already and unchanged is dropped; is_new tells new from revised
        conn.execute(
            "UPDATE temp.incoming SET is_new = NOT EXISTS (SELECT 1 FROM main.observations o "
            "WHERE o.source = incoming.source AND o.substance = incoming.substance "
            "AND o.region = incoming.region AND o.metric = incoming.metric "
            "AND o.period = incoming.period)"
        )
        conn.execute(
            "DELETE FROM temp.incoming WHERE NOT is_new AND EXISTS (SELECT 1 FROM "
            "main.observations o WHERE o.source = incoming.source "
            "AND o.substance = incoming.substance AND o.region = incoming.region "
            "AND o.metric = incoming.metric AND o.period = incoming.period "
            "AND o.value IS incoming.value AND o.denominator IS incoming.denominator)"
        )
        n_new, n_rev = conn.execute(
            "SELECT COALESCE(SUM(is_new), 0), COALESCE(SUM(NOT is_new), 0) FROM temp.incoming"
        ).fetchone()
        if n_new + n_rev == 0:
            return 0, 0, []
        if n_rev:
            conn.execute(
                "INSERT INTO revisions (source, substance, region, metric, period, old_value, "
                "new_value, old_denominator, new_denominator, ref, revised_at) "
                "SELECT i.source, i.substance, i.region, i.metric, i.period, o.value, i.value, "
                "o.denominator, i.denominator, i.ref, ? FROM temp.incoming i "
                f"JOIN main.observations o USING ({pk}) WHERE NOT i.is_new ORDER BY {pk}",
                (now_s,),
            )
        conn.execute(
            f"INSERT INTO main.observations ({_OBS_COLS}) "
            f"SELECT {pk}, value, denominator, dimension, flag, ref, ?, ? FROM temp.incoming "
            f"WHERE true ORDER BY {pk} ON CONFLICT ({pk}) DO UPDATE SET value=excluded.value, "
            "denominator=excluded.denominator, dimension=excluded.dimension, flag=excluded.flag, "
            "ref=excluded.ref, updated_at=excluded.updated_at",
            (now_s, now_s),
        )
        from detectors.base import series_key

        changed = conn.execute(
            "SELECT source, substance, region, metric, MAX(dimension), MIN(period), MAX(period), "
            "SUM(is_new) FROM temp.incoming GROUP BY source, substance, region, metric"
        ).fetchall()
        conn.executemany(
            "INSERT INTO series (source, substance, region, metric, key, dimension, first_period, "
            "last_period, n_observations, data_version, judged_version, changed_from, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,1,0,?,?) ON CONFLICT (source, substance, region, metric) "
            "DO UPDATE SET dimension=COALESCE(series.dimension, excluded.dimension), "
            "first_period=MIN(series.first_period, excluded.first_period), "
            "last_period=MAX(series.last_period, excluded.last_period), "
            "n_observations=series.n_observations + excluded.n_observations, "
            "data_version=series.data_version + 1, "
            "changed_from=MIN(COALESCE(series.changed_from, excluded.changed_from), "
            "excluded.changed_from), updated_at=CASE WHEN series.data_version > "
            "series.judged_version THEN series.updated_at ELSE excluded.updated_at END",
            [(*r[:4], series_key(*r[:4]), r[4], r[5], r[6], int(r[7]), r[5], now_s)
             for r in changed],
        )
        conn.execute("DELETE FROM temp.incoming")
        return int(n_new), int(n_rev), [tuple(r[:4]) for r in changed]

    def match_terms(
        self,
        terms: dict[str, str],
        *,
        now: datetime,
        widened: Callable[[str, str], bool],
        matcher: Callable[[list[str]], Callable[[str, str, str], Collection[str]]],
        losable: Callable[[str, str, str], bool],
    ) -> dict[str, tuple[int, int, bool]]:
        """Record the substances' matching terms (``terms``: id → their
        :func:`feeds.matching.terms_of`) and match the stored items again for each
        substance whose terms changed since they were recorded.

        ``matcher(changed)`` gives a function telling which of the ``changed`` substances
        an item's stored text names (its source, title and summary), as its source
        matches them now. An item that now names one of them gets it; one that no longer
        does loses it if ``losable(source, summary, substance)``: not when its stored
        text is not all that was matched (a summary cut short when stored, tags not
        kept), nor when its source does not watch the substance (now), which keep it.
        A substance whose terms were ``widened(old, new)`` gets the week of ``now`` as its
        ``counted_from`` (see :meth:`derive_item_counts`), and, the first time, ``old``
        as its ``counted_before``; one whose terms name nothing its ``counted_before``
        did not (changed back) loses both, and is counted whole again. A substance
        recorded for the first time (newly watched, or a store from before the terms
        were kept) is not matched again.

        The items are read in chunks by key and each chunk's changes written in a
        transaction of its own, so what is held in memory does not grow with the store
        and the write lock is held a chunk at a time (about 40 µs an item; one process
        at a time: the caller's). The terms are recorded last: a crash part-way leaves
        the old ones, and the items are matched again at the next start. Returns, per
        changed substance, (items that now name it, items that no longer do, whether its
        terms were widened).
        """
        db = self.db
        stored = dict(db.execute("SELECT substance, terms FROM substance_terms").fetchall())
        if first := [(sub, t) for sub, t in terms.items() if sub not in stored]:
            with self.write():
                db.conn.executemany("INSERT OR IGNORE INTO substance_terms (substance, terms) "
                                    "VALUES (?, ?)", first)
        changed = sorted(sub for sub, t in terms.items() if sub in stored and stored[sub] != t)
        if not changed:
            return {}
        names = matcher(changed)
        marks = ",".join("?" * len(changed))
        added = dict.fromkeys(changed, 0)
        dropped = dict.fromkeys(changed, 0)
        after = ""
        while rows := db.execute(
                "SELECT key, source, title, summary FROM items WHERE key > ? ORDER BY key "
                "LIMIT ?", (after, MATCH_CHUNK)).fetchall():
            after = rows[-1][0]
            had = set(db.execute(
                "SELECT key, substance FROM item_substances WHERE key >= ? AND key <= ? "
                f"AND substance IN ({marks})", (rows[0][0], after, *changed)).fetchall())
            add, drop = [], []
            for key, source, title, summary in rows:
                named = names(source, title, summary or "")
                for sub in changed:
                    if sub in named:
                        if (key, sub) not in had:
                            add.append((key, sub))
                            added[sub] += 1
                    elif (key, sub) in had and losable(source, summary or "", sub):
                        drop.append((key, sub))
                        dropped[sub] += 1
            if add or drop:  # a chunk at a time: the write lock is not held for long
                with self.write():
                    db.conn.executemany("INSERT OR IGNORE INTO item_substances VALUES (?, ?)",
                                        add)
                    db.conn.executemany(
                        "DELETE FROM item_substances WHERE key = ? AND substance = ?", drop)
        # the terms last, once every item is matched with them: after a crash part-way
        # the items are matched again (the same outcome)
        wide = {sub: widened(stored[sub], terms[sub]) for sub in changed}
        week = week_start(now.astimezone(UTC).date()).isoformat()
        # a substance counted afresh whose terms now name nothing the terms before it did
        # not (changed back): every item they name was kept all along, and its whole
        # history is counted again
        before = dict(db.execute("SELECT substance, counted_before FROM substance_terms "
                                 "WHERE counted_before IS NOT NULL").fetchall())
        whole = {sub for sub in changed
                 if not wide[sub] and sub in before and not widened(before[sub], terms[sub])}
        with self.write():
            db.conn.executemany(
                "UPDATE substance_terms SET terms = ?, changed_at = ?, counted_before = CASE "
                "WHEN ? THEN NULL WHEN ? AND counted_from IS NULL THEN ? ELSE counted_before "
                "END, counted_from = CASE WHEN ? THEN NULL WHEN ? THEN ? ELSE counted_from "
                "END WHERE substance = ?",
                [(terms[sub], iso(now), sub in whole, wide[sub], stored[sub], sub in whole,
                  wide[sub], week, sub) for sub in changed])
        return {sub: (added[sub], dropped[sub], wide[sub]) for sub in changed}

    def source_terms(self, source: str) -> str | None:
        """What a source of tables or exports was last read with (None: not recorded)."""
        row = self.db.execute("SELECT terms FROM source_terms WHERE source = ?",
                              [source]).fetchone()
        return None if row is None else str(row[0])

    def keep_source_terms(self, source: str, terms: str) -> None:
        """Record what a source was read with (after a poll that read it so)."""
        with self.write() as db:
            db.execute("INSERT INTO source_terms VALUES (?, ?) ON CONFLICT (source) "
                       "DO UPDATE SET terms = excluded.terms", (source, terms))

    def counted_from(self) -> dict[str, date]:
        """Per substance, the week from which a source keeping only the items that name
        a watched substance counts it (its terms were widened then: :meth:`match_terms`)."""
        return {r[0]: date.fromisoformat(r[1]) for r in self.db.execute(
            "SELECT substance, counted_from FROM substance_terms "
            "WHERE counted_from IS NOT NULL")}

    def derive_item_counts(
        self,
        source: str,
        substances: Sequence[str],
        *,
        region: str = "",
        now: datetime | None = None,
        kind: str = "article",
        read: bool = True,
        reach: datetime | None = None,
        counted_from: dict[str, date] | None = None,
    ) -> list[tuple[str, str, str, str]]:
        """Weekly counts of a source's items per substance, upserted as observations.

        Weeks run from the source's first item to the last complete week before
        ``now``, with zeros for weeks without items: the caller has just read the
        source, so a week after its latest item had none (a series ending at the
        latest item would keep a burst as its newest value for good). The current,
        incomplete week is left out. When the poll could not ``read`` the source (its
        documents were no feed), the weeks after its latest item are not counted.
        Articles are counted only as far as the feed reaches: to the week of its newest
        entry, matched or not, in the documents read now (``reach``), or as far as they
        were counted before: a feed whose newest entry is months old (a feed no longer
        kept, a sample file) has no known weeks after it, and its source shows old data.

        A substance the source has begun to watch since (its series is new while others
        of the source exist) starts at its own first item, at most at the last complete
        week: the weeks before it was watched are not known to be zero (its articles
        were not kept), and counting them as zero would make a substance talked about
        all along look like a rise. So does a substance in ``counted_from`` (its terms
        were widened that week, and the source did not keep the items it did not name
        then): from that week on, its weeks before it removed once a week after it can
        be counted, so that the whole series is counted with the same terms
        (:meth:`_restart_series`). Returns the series keys whose values changed.
        """
        rows = self.q(
            "SELECT MIN(week) AS a, MAX(week) AS b FROM items WHERE source=? AND kind=?",
            [source, kind],
        )
        if not rows or rows[0]["a"] is None:
            return []
        first = date.fromisoformat(rows[0]["a"])
        last = week_start((now or utcnow()).astimezone(UTC).date()) - timedelta(days=7)
        if kind == "article":
            before = self.db.execute(
                "SELECT MAX(last_period) FROM series WHERE source=? AND region=? AND "
                "metric='count'", [source, region]).fetchone()[0]
            ends = [date.fromisoformat(rows[0]["b"])]
            ends += [date.fromisoformat(before[:10])] if before else []
            ends += [week_start(reach.astimezone(UTC).date())] if read and reach else []
            last = min(last, max(ends))
        elif not read:
            last = min(last, date.fromisoformat(rows[0]["b"]))
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
        spans = self.q("SELECT substance, first_period, last_period, n_observations FROM series "
                       "WHERE source=? AND region=? AND metric=?", [source, region, metric])
        started = {r["substance"]: date.fromisoformat(r["first_period"]) for r in spans}
        unwatched = self._unwatched_weeks(source, region, metric, spans, substances)
        # weeks of articles no poll read (the feed down, back with newer entries only)
        unread: set[date] = set()
        st = self.source_state(source) if kind == "article" else {}
        if st.get("unread_from") and st.get("unread_until"):
            d, end = (date.fromisoformat(st[k]) for k in ("unread_from", "unread_until"))
            while d <= end:
                unread.add(d)
                d += timedelta(days=7)
        own_first: dict[str, date] = {}
        for sub, wk in counts:
            d = date.fromisoformat(wk)
            own_first[sub] = min(own_first.get(sub, d), d)
        obs = []
        restart: list[tuple[str, date]] = []
        for sub in substances:
            d = first
            if sub in started:  # its own start, or earlier with an older item of its own
                d = min(started[sub], own_first.get(sub, started[sub]))
            elif started:  # watched since another substance's series began: from now on
                d = min(own_first.get(sub, last), last)
            since = (counted_from or {}).get(sub)
            if since is not None and d < since:  # counted afresh from its terms' change
                d = since
                if since <= last and started.get(sub, since) < since:
                    restart.append((sub, since))
            skip = unread.union(unwatched.get(sub, ()))
            while d <= last:
                if d not in skip:
                    obs.append(
                        Observation(
                            source=source, substance=sub, period=d, region=region,
                            metric=metric, value=float(counts.get((sub, d.isoformat()), 0)),
                            ref="items",
                        )
                    )
                d += timedelta(days=7)
        with self.write():
            restarted = [self._restart_series((source, sub, region, metric), since, now=now)
                         for sub, since in restart]
            res = self.ingest(source, location="items", sha256=None, observations=obs,
                              items=(), problems=(), now=now)
        return list(dict.fromkeys([*res["series_touched"], *filter(None, restarted)]))

    def _unwatched_weeks(self, source: str, region: str, metric: str,
                         spans: list[dict[str, Any]],
                         substances: Sequence[str]) -> dict[str, set[date]]:
        """Per substance of ``substances`` with a series of the source's counts, the weeks
        within it that the source counted for its other substances and not for it: it
        was not watched then (taken out of the config or of the source's
        ``substances``, and put back), so its items were not kept, and those weeks are
        not known to be zero. They stay without a value (a gap, which the detectors
        leave out), rather than zeros that make its return look like a rise: weeks
        after its last counted one up to the newest the source counted, and weeks
        missing within it (left out so at an earlier poll). The weeks from the one before
        its terms last changed are not among them: those a substance counted afresh
        waits for (:meth:`match_terms`) are counted when its terms are changed back."""
        if not spans:
            return {}
        frontier = max(r["last_period"] for r in spans)
        changed = {sub: week_start(datetime.fromisoformat(at).astimezone(UTC).date())
                   for sub, at in self.db.execute(
                       "SELECT substance, changed_at FROM substance_terms "
                       "WHERE changed_at IS NOT NULL")}
        out: dict[str, set[date]] = {}
        wanted = set(substances)
        for r in spans:
            sub = r["substance"]
            if sub not in wanted:
                continue
            first, own_last = (date.fromisoformat(r[k][:10]) for k in ("first_period",
                                                                         "last_period"))
            weeks: set[date] = set()
            if r["n_observations"] < (own_last - first).days // 7 + 1:  # a gap within it
                stored = {date.fromisoformat(p[0][:10]) for p in self.db.execute(
                    "SELECT period FROM observations WHERE source=? AND substance=? AND "
                    "region=? AND metric=?", [source, sub, region, metric])}
                weeks |= {first + timedelta(weeks=k) for k in range(
                    (own_last - first).days // 7 + 1)} - stored
            d, end = own_last + timedelta(days=7), date.fromisoformat(frontier[:10])
            if sub in changed:
                end = min(end, changed[sub] - timedelta(days=14))
            while d <= end:  # counted for the others since, not for it
                weeks.add(d)
                d += timedelta(days=7)
            if weeks:
                out[sub] = weeks
        return out

    def _restart_series(self, key: SeriesKey, since: date, *,
                        now: datetime | None) -> SeriesKey | None:
        """Remove a series' values before ``since`` (inside a write), and its detector
        state, which holds them: the series is judged from its new start (replayed whole),
        from the periods not judged before on. What it told stays told: an episode open
        on the old values ends as its periods from ``since`` show no change (it is not
        corrected: they were not shown wrong, only counted with other terms). Returns
        the key when values were removed."""
        where = "source=? AND substance=? AND region=? AND metric=?"
        gone = self.db.execute(f"DELETE FROM observations WHERE {where} AND period < ?",
                               (*key, since.isoformat())).rowcount
        if not gone:
            return None
        self.db.execute(f"DELETE FROM series_states WHERE {where}", key)
        self.db.execute(
            "UPDATE series SET first_period = ?, n_observations = n_observations - ?, "
            "data_version = data_version + 1, updated_at = CASE WHEN data_version > "
            f"judged_version THEN updated_at ELSE ? END WHERE {where}",
            (since.isoformat(), gone, iso(now or utcnow()), *key))
        from detectors.base import series_key

        log.info("series=%s counted afresh from %s: %d earlier weeks, counted with other "
                 "terms, removed", series_key(*key), since, gone)
        return key

    def index_points(self, source: str, substance: str, region: str) -> dict[date, float]:
        return {
            date.fromisoformat(r["period"]): float(r["value"])
            for r in self.q(
                "SELECT period, value FROM observations WHERE source=? AND substance=? "
                "AND region=? AND metric='index'",
                [source, substance, region],
            )
        }

    def index_ref(self, source: str, substance: str, region: str) -> str | None:
        """Where the newest index value of a series came from (its ``ref``)."""
        row = self.db.execute(
            "SELECT ref FROM observations WHERE source=? AND substance=? AND region=? "
            "AND metric='index' ORDER BY period DESC LIMIT 1",
            [source, substance, region]).fetchone()
        return row[0] if row else None

    # -- source health ------------------------------------------------------------
    def document_stats(self, source: str, *, shared: bool = False) -> dict[str, str]:
        """The version (:func:`feeds.fetch.file_stat`) of each of a source's files when
        it was last ingested or found already ingested, by location; ``shared``: only of
        the files whose shares are kept (a source whose files add up)."""
        if shared:
            return dict(self.db.execute(
                "SELECT d.location, d.stat FROM document_stats d JOIN share_documents s "
                "USING (source, location) WHERE d.source=?", [source]).fetchall())
        return dict(self.db.execute(
            "SELECT location, stat FROM document_stats WHERE source=?", [source]).fetchall())

    def record_poll(
        self, source: str, *, ok: bool, error: str | None = None, etag: str | None = None,
        last_modified: str | None = None, now: datetime | None = None,
        stats: Iterable[tuple[str, str]] = (),
    ) -> None:
        """The poll's outcome; ``stats``: ``(location, file_stat)`` of the files the poll
        ingested or found ingested (written with the outcome, after their documents, so
        a crash between the two reads those files again rather than skip them)."""
        now_s = iso(now or utcnow())
        with self.write() as db:
            db.conn.executemany(
                "INSERT INTO document_stats VALUES (?,?,?) ON CONFLICT (source, location) "
                "DO UPDATE SET stat=excluded.stat", [(source, loc, st) for loc, st in stats])
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

    def note_unread(self, source: str, *, since: str | None, oldest: datetime | None,
                    region: str = "") -> None:
        """Keep the weeks of a news feed's articles that no poll read: the feed read now
        after missed polls (failed, or none for a while) begins (its ``oldest`` entry)
        after the source's last successful poll (``since``), so the entries published
        between the two may have left it unread (a feed showing only its latest
        entries). Those weeks, from the one of that poll to the one of the oldest entry,
        are not known to be without articles: :meth:`derive_item_counts` leaves them
        without a value (a gap), and a week counted after them keeps it so (a gap within
        the series). A gap kept before and not yet followed by a week counted is kept
        with it."""
        if since is None or oldest is None:
            return
        last = datetime.fromisoformat(since)
        last, oldest = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (last, oldest))
        if oldest <= last:
            return
        start = week_start(last.astimezone(UTC).date())
        end = week_start(oldest.astimezone(UTC).date())
        st = self.source_state(source)
        counted = self.db.execute(
            "SELECT MAX(last_period) FROM series WHERE source=? AND region=? AND "
            "metric='count'", [source, region]).fetchone()[0]
        if st.get("unread_from") and st.get("unread_until") and (
                counted is None or st["unread_until"] > counted[:10]):
            start = min(start, date.fromisoformat(st["unread_from"]))
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
            db.execute("UPDATE source_state SET unread_from=?, unread_until=? WHERE source=?",
                       (start.isoformat(), end.isoformat(), source))

    def source_state(self, source: str) -> dict[str, Any]:
        rows = self.q("SELECT * FROM source_state WHERE source=?", [source])
        return rows[0] if rows else {}

    # -- series ---------------------------------------------------------------------
    def series_keys(self, substance: str | None = None, *,
                    fed_only: bool = False) -> list[SeriesKey]:
        """Every stored series (of one substance), from the ``series`` table; with
        ``fed_only``, only those their source still feeds (:func:`no_longer_fed`)."""
        sql = "SELECT source, substance, region, metric" + (
            f", {_FED_SPAN} FROM series s" if fed_only else " FROM series")
        params: list[Any] = []
        if substance:
            sql += " WHERE substance=?"
            params.append(substance)
        rows = self.db.execute(sql + " ORDER BY 1,2,3,4", params).fetchall()
        return [tuple(r[:4]) for r in rows if not (fed_only and no_longer_fed(*r[4:]))]

    def pending_series(self) -> dict[SeriesKey, Pending]:
        """Series with data detection has not judged yet (``data_version > judged_version``).

        Read through a partial index that holds only such series, so with nothing
        new this costs one index probe however many series there are. Rows are read
        one at a time into tuples whose repeated texts (sources, substances, regions,
        periods) are shared: 100,000 pending series take about 20 MB, not 75.
        """
        shared: dict[Any, Any] = {}
        one = shared.setdefault
        cur = self.db.execute(
            "SELECT source, substance, region, metric, data_version, judged_period, "
            "changed_from, last_period FROM series "
            "WHERE data_version > judged_version"
        )
        return {
            (one(a, a), one(b, b), one(c, c), one(d, d)):
                Pending(v, one(jp, jp), one(cf, cf), one(lp, lp))
            for a, b, c, d, v, jp, cf, lp in cur
        }

    def pending_summary(self, sources: Iterable[str]) -> tuple[int, str | None]:
        """How many series of ``sources`` have data detection has not judged yet, and
        the oldest time one of them was changed (``updated_at``, set by the ingest that
        changed it, and kept by further changes until it is judged: a series whose
        detection keeps failing while new data keep coming has waited since the first
        of them): through the same partial index as :meth:`pending_series`. (A source
        removed from the config keeps its series, which are no longer judged.)"""
        n, oldest = self.db.execute(
            "SELECT COUNT(*), MIN(updated_at) FROM series WHERE data_version > judged_version "
            "AND source IN (SELECT value FROM json_each(?))", [json.dumps(sorted(sources))]
        ).fetchone()
        return int(n), oldest

    def mark_judged(self, judged: Iterable[tuple[Any, ...]]) -> None:
        """Record that detection judged these series as of ``data_version``.

        ``(key, data_version read before the series was loaded, last judged period)``,
        optionally with a fourth item, the detector's state after it (a JSON-able dict,
        or :func:`pack_state` bytes, kept packed in ``series_states``; None
        keeps the stored one).
        A change ingested meanwhile has raised ``data_version`` further, so the
        series stays pending and is judged again.
        """
        rows, states = [], []
        for k, v, p, *rest in judged:
            state = rest[0] if rest else None
            if state is not None:
                states.append((*k, state if isinstance(state, bytes) else _pack(state)))
            rows.append((v, p, v, *k))
        if not rows:
            return
        with self.write() as db:  # one transaction: the judgements and the states
            db.conn.executemany(
                "UPDATE series SET judged_version=MAX(judged_version, ?), judged_period=?, "
                "changed_from=CASE WHEN data_version <= ? THEN NULL ELSE changed_from END "
                "WHERE source=? AND substance=? AND region=? AND metric=?",
                rows,
            )
            if states:  # most series have one already; the first judgement adds it
                cur = db.conn.executemany(
                    "UPDATE series_states SET state=?5 WHERE source=?1 AND substance=?2 "
                    "AND region=?3 AND metric=?4", states)
                if cur.rowcount < len(states):  # kept only beside its series' row
                    db.conn.executemany(
                        "INSERT OR IGNORE INTO series_states (source, substance, region, "
                        "metric, state) SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 "
                        "FROM series WHERE source=?1 AND substance=?2 AND region=?3 AND "
                        "metric=?4)", states)

    def nth_last_period(self, key: SeriesKey, n: int) -> date | None:
        """The ``n``-th last period of a series (1: its last), read from the key's end."""
        row = self.db.execute(
            "SELECT period FROM observations WHERE source=? AND substance=? AND region=? "
            "AND metric=? ORDER BY period DESC LIMIT 1 OFFSET ?", [*key, max(n - 1, 0)]
        ).fetchone()
        return date.fromisoformat(row[0]) if row else None

    def has_denominator(self, key: SeriesKey) -> bool:
        """True when a series has values with a denominator (positives of so many tests)."""
        row = self.db.execute(
            "SELECT 1 FROM observations WHERE source=? AND substance=? AND region=? "
            "AND metric=? AND denominator IS NOT NULL LIMIT 1", list(key)).fetchone()
        return row is not None

    def detector_state(self, key: SeriesKey, *, arrays: bool = False) -> dict[str, Any] | None:
        """The detector state stored with a series by :meth:`mark_judged` (None when there
        is none or it is unreadable); with ``arrays`` its packed arrays as numpy arrays
        (:func:`warnd.statecodec.unpack`)."""
        return self.detector_states([key], arrays=arrays).get(key)

    def detector_states(
        self, keys: Iterable[SeriesKey], *, arrays: bool = False,
    ) -> dict[SeriesKey, dict[str, Any]]:
        """:meth:`detector_state` of many series in few queries (those with a readable
        state; the others are left out)."""
        return readable_states(self.state_blobs(keys), arrays=arrays)

    def states_with_rows(
        self, wanted: Iterable[tuple[SeriesKey, date]]
    ) -> dict[SeriesKey, tuple[bytes, list[tuple[Any, ...]]]]:
        """For each ``(key, after)`` of a series with a stored detector state: the state
        as stored (:meth:`state_blobs`) and the series' observation rows after
        ``after``, ``(period, value, denominator, dimension)`` in period order, read
        together in few queries (each on the primary keys)."""
        out: dict[SeriesKey, tuple[bytes, list[tuple[Any, ...]]]] = {}
        for part in _chunks(list(wanted), _KEYS_PER_QUERY):
            rows = self.db.execute(
                f"WITH k(a, b, c, d, e) AS (VALUES {','.join(['(?,?,?,?,?)'] * len(part))}) "
                "SELECT s.source, s.substance, s.region, s.metric, s.state, o.period, "
                "o.value, o.denominator, o.dimension FROM k CROSS JOIN series_states s "
                "ON s.source=k.a AND s.substance=k.b AND s.region=k.c AND s.metric=k.d "
                "LEFT JOIN observations o ON o.source=k.a AND o.substance=k.b "
                "AND o.region=k.c AND o.metric=k.d AND o.period > k.e "
                "ORDER BY 1, 2, 3, 4, 6",
                [x for key, after in part for x in (*key, after.isoformat())]).fetchall()
            for r in rows:
                got = out.get(r[:4])
                if got is None:
                    got = out[r[:4]] = (r[4], [])
                if r[5] is not None:
                    got[1].append(r[5:])
        return out

    def state_blobs(self, keys: Iterable[SeriesKey]) -> Iterator[tuple[SeriesKey, bytes]]:
        """The stored detector states of these series as stored (those that have one),
        read a few hundred series a query, each on the primary key."""
        for part in _chunks(list(keys), _KEYS_PER_QUERY):
            rows = self.db.execute(
                f"WITH k(a, b, c, d) AS (VALUES {','.join(['(?,?,?,?)'] * len(part))}) "
                "SELECT s.source, s.substance, s.region, s.metric, s.state "
                "FROM k JOIN series_states s ON s.source=k.a AND s.substance=k.b "
                "AND s.region=k.c AND s.metric=k.d",
                [x for key in part for x in key]).fetchall()
            for *key, blob in rows:
                yield tuple(key), blob  # type: ignore[misc]

    def series_tails(
        self, wanted: Iterable[tuple[SeriesKey, date, str]]
    ) -> dict[SeriesKey, Series]:
        """For each ``(key, after, dimension)``: :meth:`load_series` of the series'
        observations after ``after``, read in few queries (each on the primary key)."""
        wanted = list(wanted)
        rows_of: dict[SeriesKey, list[tuple[Any, ...]]] = {w[0]: [] for w in wanted}
        for part in _chunks(wanted, _KEYS_PER_QUERY):
            rows = self.db.execute(
                f"WITH k(a, b, c, d, e) AS (VALUES {','.join(['(?,?,?,?,?)'] * len(part))}) "
                "SELECT o.source, o.substance, o.region, o.metric, o.period, o.value, "
                "o.denominator, o.dimension FROM k CROSS JOIN observations o "
                "ON o.source=k.a AND o.substance=k.b AND o.region=k.c AND o.metric=k.d "
                "AND o.period > k.e ORDER BY 1, 2, 3, 4, 5",
                [x for key, after, _ in part for x in (*key, after.isoformat())]).fetchall()
            for r in rows:
                rows_of[r[:4]].append(r[4:])
        return {key: _series_of(key, rows_of[key], dimension) for key, _, dimension in wanted}

    def series_counts(self) -> dict[str, dict[str, Any]]:
        """Per source: number of series and of observations, and its newest period, in
        one read of ``series``' covering index."""
        return {
            r[0]: {"series": int(r[1]), "observations": int(r[2]), "newest_period": r[3]}
            for r in self.db.execute(
                "SELECT source, COUNT(*), COALESCE(SUM(n_observations), 0), "
                "MAX(last_period) FROM series GROUP BY source"
            ).fetchall()
        }

    def newest_periods(self, source: str, n: int = 12) -> list[str]:
        """A source's ``n`` newest distinct periods, newest first.

        Read from each of the source's series' newest ``n`` observations (the
        clustered key's end), not from all of its history: any period among the
        source's ``n`` newest is among the ``n`` newest of the series it belongs to.
        """
        rows = self.db.execute(
            "WITH f AS MATERIALIZED (SELECT source, substance, region, metric, "
            "COALESCE((SELECT period FROM observations p WHERE p.source = s.source "
            "AND p.substance = s.substance AND p.region = s.region AND p.metric = s.metric "
            "ORDER BY period DESC LIMIT 1 OFFSET ?), '') AS floor FROM series s "
            "WHERE s.source = ?) "
            "SELECT DISTINCT o.period FROM f JOIN observations o ON o.source = f.source "
            "AND o.substance = f.substance AND o.region = f.region AND o.metric = f.metric "
            "AND o.period >= f.floor ORDER BY o.period DESC LIMIT ?",
            [max(n - 1, 0), source, n],
        ).fetchall()
        return [r[0] for r in rows]

    def newest_period(self, source: str) -> str | None:
        """A source's newest period (from ``series``)."""
        return self.db.execute(  # type: ignore[no-any-return]
            "SELECT MAX(last_period) FROM series WHERE source=?", [source]).fetchone()[0]

    def newest_period_by_source(
        self, counts: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, str]:
        """Every source's newest period (:meth:`series_counts`' ``newest_period``; from
        ``counts`` when the caller has read them already)."""
        counts = self.series_counts() if counts is None else counts
        return {source: c["newest_period"] for source, c in counts.items()}

    def last_period(self) -> str | None:
        """The latest period of any measured series: not of the weekly counts of warning
        notices, which run to the last complete week whenever their page is read (weeks
        without a warning are zero), so that a report's period follows the data."""
        return self.db.execute(
            "SELECT MAX(last_period) FROM series WHERE metric != 'notices'").fetchone()[0]

    def active_episode_states(self, substance: str, *, sources: Collection[str] | None = None,
                              ) -> dict[str, dict[str, Any]]:
        """Episode states (by scope ``series:<key>``) of a substance's series (of
        ``sources`` only, when given, and then only series their source still feeds:
        :func:`no_longer_fed`) that have an episode open, read from the index of open
        episodes (:func:`_m10`): the cost grows with the episodes open, not with the
        series watched."""
        rows = [(scope, state) for scope, state, source in self.db.execute(
                    "SELECT e.scope, e.state, s.source " + _OPEN_OF_SUBSTANCE, [substance])
                if sources is None or source in sources]
        left = set() if sources is None else self._left_behind(scope for scope, _ in rows)
        return {scope: json.loads(state) for scope, state in rows if scope not in left}

    def _left_behind(self, scopes: Iterable[str]) -> set[str]:
        """Of these series' scopes (``series:<key>``), those their source no longer
        feeds (:func:`no_longer_fed`), in a few queries by the ``series`` key."""
        keys = [scope.removeprefix("series:") for scope in scopes]
        left: set[str] = set()
        for lo in range(0, len(keys), 500):
            part = keys[lo : lo + 500]
            left.update("series:" + r[0] for r in self.db.execute(
                f"SELECT s.key, {_FED_SPAN} "
                f"FROM series s WHERE s.key IN ({','.join('?' * len(part))})", part)
                if no_longer_fed(*r[1:]))
        return left

    def rises_held_back(self) -> list[str]:
        """The substances whose rise's message a silence held back, so that their
        recipients have not been told it yet (:mod:`warnd.alerting.decide`: told when
        the silence ends, if the rise still holds)."""
        # held by a silence (not by a mute, or for corroboration: decide._held_by)
        return [sub for sub, st in self.held_back().items() if st.get("silenced") is True]

    def corrections_held_back(self) -> list[tuple[str, int]]:
        """The corrections of one source of an episode that goes on held back (a silence,
        a mute: ``corrections_silenced``, told once nothing holds them back), as
        (substance, alert id), by substance and id."""
        return self._held_ids("corrections_silenced")

    def joins_held_back(self) -> list[tuple[str, int]]:
        """The messages of a region's series joining an open spike (fall), for the desks
        that had none of it, held back (a silence, a mute: ``joins_silenced``, told once
        nothing holds them back), as (substance, alert id), by substance and id."""
        return self._held_ids("joins_silenced")

    def _held_ids(self, key: str) -> list[tuple[str, int]]:
        """The messages held back under ``key`` in the substances' episode states, as
        (substance, alert id), by substance and id."""
        return sorted((name.partition(":")[0], int(held))
                      for name, st in self._states_of("substance", having=key).items()
                      for held in st.get(key) or [])

    def ends_held_back(self) -> list[tuple[str, int]]:
        """The ends of a substance's told episodes (a rise, a spike, a fall) held back (a
        silence, a mute: ``end_silenced``, told once nothing holds them back), as
        (substance, alert id), by substance and id."""
        return sorted((name.partition(":")[0], int(st["end_silenced"]))
                      for name, st in self._states_of(
                          "substance", having="end_silenced").items()
                      if st.get("end_silenced"))

    def held_back(self) -> dict[str, dict[str, Any]]:
        """The told state of each substance with a message about its rise held back: the
        rise's (a silence, a mute, corroboration), the end of a told rise or the correction
        of one of its sources (a silence, a mute); also, with its rise's told state (else
        ``{}``), each whose end of a told spike or fall, correction of one of its
        sources, or region's join of it, was held back."""
        rises: dict[str, dict[str, Any]] = {}
        other_ends: set[str] = set()  # a spike's or a fall's end held back
        for name, st in self._states_of("substance").items():
            substance, _, episode = name.partition(":")
            if episode == "trend:increase":
                rises[substance] = st
            elif (st.get("end_silenced") or st.get("corrections_silenced")
                  or st.get("joins_silenced")):
                other_ends.add(substance)
        return {sub: rises.get(sub, {}) for sub in sorted({*rises, *other_ends})
                if sub in other_ends or rises[sub].get("silenced")
                or rises[sub].get("end_silenced") or rises[sub].get("corrections_silenced")}

    def _states_of(self, prefix: str, *, having: str = "") -> dict[str, dict[str, Any]]:
        """The episode states whose scope is ``<prefix>:<name>`` (a range of the key),
        by name; only those whose text holds ``having``, when given (read before any is
        parsed); a state that is not a JSON object is left out."""
        out = {}
        for scope, state in self.db.execute(
                "SELECT scope, state FROM episodes WHERE scope >= ? AND scope < ? "
                "AND instr(state, ?) > 0 ORDER BY scope", [f"{prefix}:", f"{prefix};", having]):
            try:
                st = json.loads(state)
            except ValueError:
                continue
            if isinstance(st, dict):
                out[scope.removeprefix(f"{prefix}:")] = st
        return out

    def open_episode_states(self, *, fed_only: bool = False) -> dict[str, dict[str, Any]]:
        """Every series' episode state (by scope ``series:<key>``) with an episode open,
        in the order they were first stored, from the index of open episodes
        (:func:`_m10`) rather than every series' state; with ``fed_only``, only those of
        series their source still feeds (:func:`no_longer_fed`)."""
        rows = self.db.execute(
            # named: in rowid order a scan of the whole table looks cheaper to SQLite
            "SELECT scope, state FROM episodes INDEXED BY episodes_open WHERE is_open "
            "AND substr(scope, 1, 7) = 'series:' ORDER BY rowid").fetchall()
        left = self._left_behind(scope for scope, _ in rows) if fed_only else set()
        return {scope: json.loads(state) for scope, state in rows if scope not in left}

    def open_episode_scopes(self, substance: str, episode: str, *,
                            sources: Collection[str] | None = None) -> set[str]:
        """Scopes (``series:<key>``) of a substance's series (of ``sources`` only, when
        given) whose stored episode state has ``episode`` (``kind:direction``, e.g.
        ``trend:increase``) open, among the open ones (:meth:`active_episode_states`)."""
        return {scope for scope, st in self.active_episode_states(
                    substance, sources=sources).items()
                if episode in (st.get("active") or {})}

    def load_series(
        self, source: str, substance: str, region: str = "", metric: str = "count",
        *, dimension: str = "use", after: date | None = None,
    ) -> Series:
        """A series' observations in period order (only those after ``after``, if given)."""
        key = (source, substance, region, metric)
        rows = self.db.execute(
            "SELECT period, value, denominator, dimension FROM observations WHERE source=? "
            "AND substance=? AND region=? AND metric=? AND period > ? ORDER BY period",
            [*key, after.isoformat() if after else ""],
        ).fetchall()
        return _series_of(key, rows, dimension)

    # -- findings, episodes -------------------------------------------------------------
    def record_finding(self, f: Any, *, now: datetime | None = None) -> bool:
        """Store a finding; True when it is new (never seen with this key)."""
        return self.record_findings([f], now=now) == 1

    def record_findings(self, findings: Iterable[Any], *, now: datetime | None = None,
                        whole: Mapping[str, str] | None = None,
                        history: Collection[str] = ()) -> int:
        """Store findings in one transaction; a known key updates its latest figures (and
        is no longer withdrawn).

        ``whole``: the series judged again from their start (a revision), each key to
        its substance. Their stored findings that this judgement no longer gives are
        marked withdrawn (the day, in their evidence's ``withdrawn``), so that what reads
        the findings as they stand (the digest, the console) leaves them out; the rows
        are kept (``/metrics`` counts them). ``history``: the keys of findings of the
        past such a judgement brought (older than the periods a pass tells of), recorded
        as of their detection day rather than ``now``, so that the digest does not take
        them for news. Returns how many were new.
        """
        now_s = iso(now or utcnow())
        n_new = 0
        with self.write() as db:
            for key, substance in sorted((whole or {}).items()):
                # all of them first: those this judgement gives are written below, with
                # their evidence as it is now
                mark = WITHDRAWN + json.dumps(now_s[:10])
                db.execute(
                    "UPDATE findings SET evidence=CASE WHEN COALESCE(evidence, 'null') IN "
                    "('null', '{}', '') THEN ? || '}' ELSE ? || ', ' || substr(evidence, 2) END "
                    "WHERE substance=? AND series_key=? AND (evidence IS NULL OR evidence IN "
                    f"('null', '') OR substr(evidence, 1, 1) = '{{') AND {FINDING_STANDS}",
                    [mark, mark, substance, key])
            for f in findings:
                evidence = json.dumps(f.evidence, default=_json_default)
                cur = db.execute(
                    "INSERT OR IGNORE INTO findings VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (f.key, f.series_key, f.source, f.substance, f.region, f.metric,
                     f.dimension, f.kind, f.direction, f.onset.isoformat(),
                     f.detected_at.isoformat(), f.detected_at.isoformat(),
                     _num(f.level_before), _num(f.level_after), _num(f.relative_change),
                     _num(f.strength), _num(f.p_value), f.category, f.method, evidence,
                     f"{f.detected_at.isoformat()}T00:00:00+00:00" if f.key in history
                     else now_s),
                )
                if cur.rowcount:
                    n_new += 1
                    continue
                db.execute(
                    "UPDATE findings SET last_seen_at=?, level_after=?, relative_change=?, "
                    "strength=?, p_value=?, category=?, evidence=?, dimension=? WHERE key=?",
                    (f.detected_at.isoformat(), _num(f.level_after), _num(f.relative_change),
                     _num(f.strength), _num(f.p_value), f.category, evidence, f.dimension,
                     f.key),
                )
        return n_new

    def opened_since(self, substance: str, kind: str, direction: str, alert_id: int) -> bool:
        """Whether the substance's episode (``kind``, ``direction``) opened anew after
        alert ``alert_id``: an ``open`` alert of it made since."""
        return bool(self.q(
            "SELECT 1 FROM alerts WHERE substance=? AND kind=? AND direction=? AND id>? AND "
            "decision='open' LIMIT 1", [substance, kind, direction, int(alert_id)]))

    def episode_state(self, scope: str) -> dict[str, Any] | None:
        rows = self.q("SELECT state FROM episodes WHERE scope=?", [scope])
        return json.loads(rows[0]["state"]) if rows else None

    def episode_states(self, scopes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored episode states of these scopes (those that have one), read in
        chunks instead of one query per scope."""
        wanted = list(dict.fromkeys(scopes))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for scope, state in self.db.execute(
                    f"SELECT scope, state FROM episodes WHERE scope IN ({marks})", part).fetchall():
                out[scope] = json.loads(state)
        return out

    def save_episode_state(self, scope: str, state: dict[str, Any], db: Any = None,
                           now: datetime | None = None) -> None:
        """Store an episode's state, stamped ``now`` (the caller's clock; the wall
        clock when None)."""
        (db or self.db).execute(
            "INSERT INTO episodes (scope, state, updated_at, is_open) VALUES (?,?,?,?) "
            "ON CONFLICT(scope) DO UPDATE SET state=excluded.state, "
            "updated_at=excluded.updated_at, is_open=excluded.is_open",
            (scope, json.dumps(state, default=_json_default), iso(now or utcnow()),
             int(_has_open(state))),
        )

    # -- alerts and outbox -------------------------------------------------------------
    def add_alert(
        self, alert: dict[str, Any], targets: Sequence[str], *,
        episodes: dict[str, dict[str, Any]] | None = None, now: datetime | None = None,
        due_at: datetime | None = None, unsent: Mapping[str, str] | None = None,
    ) -> int | None:
        """Write an alert and its pending deliveries (and the episode state) atomically.

        Returns the new alert id, or None when an alert with the same dedupe key
        exists already (a re-run after a crash never alerts twice). ``due_at`` delays
        the first attempt (quiet hours); expiry counts from it. ``unsent``: targets the
        alert is recorded for as not sent (``dropped``), each with the reason.
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
                self.save_episode_state(scope, state, db, now=now)
            if not cur.rowcount:
                return None
            alert_id = int(cur.lastrowid or 0)
            for t in targets:
                db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, target, status, attempts, "
                    "next_attempt_at, created_at, due_at) VALUES (?,?,?,?,?,?,?)",
                    (alert_id, t, "pending", 0, due_s, now_s, due_s),
                )
            for t, why in (unsent or {}).items():
                db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, target, status, attempts, "
                    "next_attempt_at, created_at, due_at, last_error) VALUES (?,?,?,?,?,?,?,?)",
                    (alert_id, t, "dropped", 0, now_s, now_s, now_s, why),
                )
            return alert_id

    def extend_alert(
        self, alert_id: int, alert: dict[str, Any], targets: Sequence[str], *,
        now: datetime | None = None, due_at: datetime | None = None,
    ) -> list[str]:
        """An alert that names more than it did (a notice edited to name another
        substance): its title, body, data and status as in ``alert``, and pending
        deliveries to those of ``targets`` that have none of it yet, or had it held back
        while it waited (``silenced``, or ``dropped`` as muted: "not sent: …"), atomically.
        Which targets were added."""
        now_s = iso(now or utcnow())
        due_s = iso(due_at) if due_at else now_s
        added: list[str] = []
        with self.write() as db:
            db.execute(
                "UPDATE alerts SET title=?, body=?, data=?, status=CASE WHEN status IN "
                "('silenced', 'muted') THEN ? ELSE status END, silenced_by=CASE WHEN status "
                "IN ('silenced', 'muted') AND ?='open' THEN NULL ELSE silenced_by END "
                "WHERE id=?",
                (alert["title"], alert["body"],
                 json.dumps(alert.get("data", {}), default=_json_default),
                 alert.get("status", "open"), alert.get("status", "open"), alert_id))
            for t in targets:
                fresh = db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, target, status, attempts, "
                    "next_attempt_at, created_at, due_at) VALUES (?,?,?,?,?,?,?)",
                    (alert_id, t, "pending", 0, due_s, now_s, due_s)).rowcount
                # (its attempts stay: what /metrics counted of them never goes down)
                held = not fresh and db.execute(
                    "UPDATE deliveries SET status='pending', next_attempt_at=?, due_at=?, "
                    "last_error=NULL, claimed_until=NULL, claimed_by=NULL WHERE alert_id=? "
                    "AND target=? AND (status='silenced' OR status='dropped' AND "
                    "last_error LIKE 'not sent:%')", (due_s, due_s, alert_id, t)).rowcount
                if fresh or held:
                    added.append(t)
        return added

    def due_deliveries(self, now: datetime | None = None) -> list[dict[str, Any]]:
        return self.q(
            "SELECT d.*, a.title, a.body, a.data, a.substance, a.kind, a.direction, a.severity, "
            "a.source, a.region, a.decision, a.status AS alert_status, a.dedupe_key, "
            "a.created_at AS alert_created_at "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.status='pending' AND d.next_attempt_at <= ? "
            "AND (d.claimed_until IS NULL OR d.claimed_until <= ?) ORDER BY d.alert_id, d.target",
            [iso(now or utcnow())] * 2,
        )

    def claim_delivery(
        self, alert_id: int, target: str, *, owner: str, until: datetime, now: datetime
    ) -> bool:
        """Take the lease on a due delivery before sending it; False when it is not free.

        Only a pending, due delivery without a live claim can be claimed, so two
        dispatchers never send the same delivery; a claim whose outcome was never
        recorded (a crash, a store error) is sent again only after ``until``.
        """
        now_s = iso(now)
        with self.write() as db:
            cur = db.execute(
                "UPDATE deliveries SET claimed_until=?, claimed_by=? WHERE alert_id=? AND "
                "target=? AND status='pending' AND next_attempt_at <= ? AND "
                "(claimed_until IS NULL OR claimed_until <= ?)",
                (iso(until), owner, alert_id, target, now_s, now_s),
            )
            return bool(cur.rowcount)

    def extend_claims(self, keys: Iterable[tuple[int, str]], *, owner: str,
                      until: datetime) -> None:
        """Move the claims ``owner`` holds on these deliveries (alert id, target) to
        ``until``: a dispatch round still working towards them."""
        with self.write() as db:
            db.conn.executemany(
                "UPDATE deliveries SET claimed_until=? WHERE alert_id=? AND target=? AND "
                "claimed_by=? AND status='pending'",
                [(iso(until), aid, name, owner) for aid, name in keys])

    def record_opens(self, alert_id: int, target: str, opens: bool, *,
                     again: bool = False) -> bool:
        """Record, before a delivery is first sent, whether it is the first message of
        its episode its target is sent (it then reads as the opening); a value recorded
        before (a retry, a send again after a crash) stands, unless an operator's re-queue
        had it asked again (:func:`warnd.alerting.outbox._reconsider`), or ``again``: it
        was asked again as no attempt of it can have reached the target (``maybe_sent``
        0). The value recorded."""
        with self.write() as db:
            db.execute("UPDATE deliveries SET opens=? WHERE alert_id=? AND target=? AND "
                       "(opens IS NULL OR ? AND maybe_sent=0)",
                       (int(opens), alert_id, target, int(again)))
            row = db.execute("SELECT opens FROM deliveries WHERE alert_id=? AND target=?",
                             (alert_id, target)).fetchone()
        return bool(row and row[0])

    def record_attempt(self, alert_id: int, target: str) -> bool:
        """Record, before an attempt of a delivery of a substance's trend or spike message
        is sent, that it may reach the target (``maybe_sent`` 1: so it stays after a crash
        or an outcome not recorded). Whether no attempt of it before could have (none was
        1), which :meth:`record_not_taken` restores after a failure showing that the
        target did not take this one. Read for
        a delivery that reads as its target's opening (an operator's re-queue asks again
        whether it does only while none may have reached the target) and for one a
        silence holds back (one that may have reached its target counts as heard:
        :func:`warnd.alerting.told.maybe_heard`). Deliveries tried before it was recorded
        for each such message (it was, only for one read as the opening) have none
        (NULL)."""
        with self.write() as db:
            row = db.execute("SELECT maybe_sent FROM deliveries WHERE alert_id=? AND "
                             "target=?", (alert_id, target)).fetchone()
            db.execute("UPDATE deliveries SET maybe_sent=1 WHERE alert_id=? AND target=?",
                       (alert_id, target))
        return not (row and row[0])

    def record_not_taken(self, alert_id: int, target: str) -> None:
        """Record that no attempt of a delivery can have reached the target
        (``maybe_sent`` 0): each failed showing that the target did not take it
        (:meth:`record_attempt`)."""
        with self.write() as db:
            db.execute("UPDATE deliveries SET maybe_sent=0 WHERE alert_id=? AND target=?",
                       (alert_id, target))

    def release_claims(self, *, except_owner: str | None = None) -> list[dict[str, Any]]:
        """Free every claim not held by ``except_owner``; return the deliveries freed.

        Called by the holder of the state-directory lock: no other process can be
        sending, so a claim left by another process died with it.
        """
        if not self.q("SELECT 1 FROM deliveries WHERE claimed_until IS NOT NULL AND "
                      "claimed_by IS NOT ? LIMIT 1", [except_owner]):
            return []
        with self.write() as db:
            rows = [dict(zip(("alert_id", "target", "claimed_by"), r, strict=True))
                    for r in db.execute(
                        "SELECT alert_id, target, claimed_by FROM deliveries WHERE "
                        "claimed_until IS NOT NULL AND claimed_by IS NOT ?", (except_owner,))]
            db.execute("UPDATE deliveries SET claimed_until=NULL, claimed_by=NULL WHERE "
                       "claimed_until IS NOT NULL AND claimed_by IS NOT ?", (except_owner,))
        return rows

    def mark_delivery(
        self, alert_id: int, target: str, *, status: str, error: str | None = None,
        next_attempt_at: datetime | None = None, now: datetime | None = None,
    ) -> None:
        now_s = iso(now or utcnow())
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET status=?, attempts=attempts+1, last_error=?, "
                "next_attempt_at=COALESCE(?, next_attempt_at), claimed_until=NULL, "
                "claimed_by=NULL, "
                "delivered_at=CASE WHEN ?='delivered' THEN ? ELSE delivered_at END "
                "WHERE alert_id=? AND target=?",
                (status, error, iso(next_attempt_at) if next_attempt_at else None, status, now_s,
                 alert_id, target),
            )

    def postpone_delivery(self, alert_id: int, target: str, until: datetime) -> None:
        """Move a pending delivery's next attempt without an attempt (a retry that fell
        into quiet hours); its expiry still counts from when it first became due, so
        quiet nights do not keep a message to a dead target alive for ever."""
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at=?, claimed_until=NULL, "
                "claimed_by=NULL WHERE alert_id=? AND target=? AND status='pending'",
                (iso(until), alert_id, target),
            )

    def clock_stepped_back(self, step: timedelta, now: datetime) -> int:
        """The wall clock was stepped back by ``step`` (negative): the outbox's waits ahead
        of ``now`` (a retry's back-off, a target's ``Retry-After``, a message held behind
        them), counted in elapsed time, end as far ahead as they did before, not later by
        the step. A wait for the end of quiet hours brought forward so is put off to it
        again by the dispatch that finds it due. Returns the waits moved."""
        now_s = iso(now)
        with self.write() as db:
            rows = db.execute("SELECT alert_id, target, next_attempt_at FROM deliveries "
                              "WHERE status='pending' AND next_attempt_at > ?",
                              (now_s,)).fetchall()
            for aid, target, nxt in rows:
                db.execute("UPDATE deliveries SET next_attempt_at=? WHERE alert_id=? AND "
                           "target=?", (iso(max(now, datetime.fromisoformat(nxt) + step)),
                                        aid, target))
            blocked = db.execute("SELECT target, blocked_until FROM target_state "
                                 "WHERE blocked_until > ?", (now_s,)).fetchall()
            for target, until in blocked:
                db.execute("UPDATE target_state SET blocked_until=? WHERE target=?",
                           (iso(max(now, datetime.fromisoformat(until) + step)), target))
        return len(rows) + len(blocked)

    def release_claim(self, alert_id: int, target: str) -> None:
        """Free a pending delivery's claim, nothing else: its send was not begun (the
        service stopping), and it goes as it was with the next dispatch."""
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET claimed_until=NULL, claimed_by=NULL "
                "WHERE alert_id=? AND target=? AND status='pending'", (alert_id, target))

    def hold_delivery(self, alert_id: int, target: str, until: datetime, reason: str) -> None:
        """Keep a pending delivery waiting until ``until`` without counting an attempt
        (its target is not configured, or the target asked to wait: Retry-After)."""
        with self.write() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at=?, last_error=?, claimed_until=NULL, "
                "claimed_by=NULL WHERE alert_id=? AND target=? AND status='pending'",
                (iso(until), reason, alert_id, target),
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

    def failing_sources(self) -> dict[str, dict[str, Any]]:
        """The failure episode state of each source with one open (scope
        ``source:<name>``, :func:`warnd.alerting.decide.check_source_health`)."""
        return {name: st for name, st in self._states_of("source", having="true").items()
                if st.get("open") is True}

    def resolve_alerts_of_removed(self, substances: Collection[str]) -> int:
        """Resolve the open trend and spike alerts of substances no longer configured
        (not ``substances``): nothing judges their data any more, so their episodes
        never end, and `warnd status` and the console would list them as open for good.
        Notices stay open until acknowledged. How many."""
        keep = sorted(substances)
        where = ("status='open' AND kind IN ('trend','spike') AND substance != '' AND "
                 f"substance NOT IN ({','.join('?' * len(keep)) or 'NULL'})")
        rows = self.db.execute(f"SELECT id, substance FROM alerts WHERE {where}",
                               keep).fetchall()
        if not rows:
            return 0  # the usual case: no write
        with self.write() as db:
            self.set_aside(db, rows)
            return db.execute(f"UPDATE alerts SET status='resolved' WHERE {where}",
                              keep).rowcount

    def set_aside(self, db: Any, alerts: Iterable[tuple[int, str]]) -> None:
        """Remember these alerts (id, substance), resolved as nothing judges their episode
        any more (their substance or source taken out of the config), in their
        substance's ``substance:<id>:set-aside`` state: they are opened again when their
        episode goes on in a configured source (:func:`warnd.alerting.decide.
        reopen_returned`)."""
        by: dict[str, set[int]] = {}
        for aid, sub in alerts:
            by.setdefault(sub, set()).add(int(aid))
        for sub, ids in by.items():
            scope = f"substance:{sub}:set-aside"
            row = db.execute("SELECT state FROM episodes WHERE scope=?", (scope,)).fetchone()
            had = set(json.loads(row[0]).get("alerts") or []) if row else set()
            self.save_episode_state(scope, {"alerts": sorted(had | ids)}, db)

    def set_aside_alerts(self) -> dict[str, list[int]]:
        """The alerts :meth:`set_aside` remembers, by substance."""
        return {name.removesuffix(":set-aside"): list(st.get("alerts") or [])
                for name, st in self._states_of("substance", having="alerts").items()
                if name.endswith(":set-aside")}

    def resolve_alerts(self, db: Any, *, kind: str, substance: str = "",
                       direction: str | None = None, source: str | None = None,
                       keep: Collection[int] = ()) -> int:
        """Mark the ``open`` alerts of an episode that ended ``resolved`` (inside the
        caller's write transaction ``db``): a substance's ``kind``/``direction``, or a
        source's ``source_health``; alerts ``keep`` (ids) stay open. How many."""
        sql = "UPDATE alerts SET status='resolved' WHERE status='open' AND kind=? AND substance=?"
        params: list[Any] = [kind, substance]
        if direction is not None:
            sql += " AND direction=?"
            params.append(direction)
        if source is not None:
            sql += " AND source=?"
            params.append(source)
        if keep:
            sql += f" AND id NOT IN ({','.join('?' * len(keep))})"
            params += [int(k) for k in keep]
        return int(db.execute(sql, params).rowcount or 0)

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
                "UPDATE silences SET expired_at=? WHERE id=? AND expired_at IS NULL "
                "AND until > ?",
                (iso(now or utcnow()), silence_id, iso(now or utcnow())),
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

    def carry(self, db: Any, **counts: int) -> None:
        """Add ``counts`` (names of :data:`CARRIED`) to the ``counters`` table, inside the
        caller's write transaction ``db``: what the change it makes takes out of the
        rows a counter is read from."""
        unknown = set(counts) - set(CARRIED)
        if unknown:
            raise ValueError(f"not a carried counter: {', '.join(sorted(unknown))}")
        db.conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = value + excluded.value",
            [(name, int(n)) for name, n in counts.items() if n])

    def delivery_counts(self) -> dict[str, Any]:
        """``by_status``: the deliveries in each status; ``attempts``: every send attempt
        made (those of deliveries queued again since included); ``given_up``: every time
        a delivery expired or failed (also one queued again or dropped since). Read in
        one statement, so a change committed meanwhile is in all of them or in none."""
        rows = self.db.execute(
            "SELECT 'status', status, COUNT(*) FROM deliveries GROUP BY status "
            "UNION ALL SELECT 'sum', 'attempts', COALESCE(SUM(attempts), 0) FROM deliveries "
            "UNION ALL SELECT 'carried', name, value FROM counters").fetchall()
        by: dict[str, dict[str, int]] = {"status": {}, "sum": {}, "carried": {}}
        for part, name, n in rows:
            by[part][name] = int(n)
        status, carried = by["status"], by["carried"]
        return {"by_status": status,
                "attempts": by["sum"].get("attempts", 0) + carried.get("delivery_attempts", 0),
                "given_up": (status.get("expired", 0) + status.get("failed", 0)
                             + carried.get("deliveries_given_up", 0))}

    def secret_key(self, name: str) -> str:
        """A random key kept in the store (made on first use): signs sessions and links."""
        import secrets

        return self.kept(name, lambda: secrets.token_urlsafe(32))

    def kept(self, name: str, make: Callable[[], str]) -> str:
        """The value kept in the store under ``name`` (table ``secret_keys``), made by
        ``make`` on first use and the same ever after, on any machine the store is moved
        to: a random key (:meth:`secret_key`), the host part of the Message-IDs
        (:func:`warnd.alerting.outbox.host_part`)."""
        rows = self.q("SELECT value FROM secret_keys WHERE name=?", [name])
        if rows:
            return str(rows[0]["value"])
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO secret_keys VALUES (?,?,?)",
                       (name, make(), iso(utcnow())))
        return str(self.q("SELECT value FROM secret_keys WHERE name=?", [name])[0]["value"])

    def alerts(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The newest alerts (of ``status``), with their deliveries and the substances
        each names (:func:`alert_substances`). A digest is not an open alert (``warnd
        status`` leaves it out too): ``status="open"`` lists none."""
        sql = "SELECT * FROM alerts"
        params: list[Any] = []
        if status:
            sql += " WHERE status=?" + (" AND kind != 'digest'" if status == "open" else "")
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        out = self.q(sql, params)
        for a in out:
            a["substances"] = alert_substances(a)
            a["deliveries"] = self.q(
                "SELECT target, status, attempts, last_error, delivered_at FROM deliveries "
                "WHERE alert_id=? ORDER BY target",
                [a["id"]],
            )
        return out


#: an alert that names a substance (two parameters, the substance twice): an alert of
#: the substance, or a warning notice naming it among others (``data["substances"]``)
NAMES_SUBSTANCE = ("(substance=? OR (kind='notice' AND EXISTS (SELECT 1 FROM "
                   "json_each(data, '$.substances') WHERE value=?)))")


def alert_substances(alert: dict[str, Any]) -> list[str]:
    """The substances an alert names: a notice every one it concerns, any other alert
    its own (none for a source's failure or a digest). ``data`` parsed or as stored."""
    data = alert.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    named = data.get("substances") if isinstance(data, dict) else None
    if isinstance(named, list) and named:
        return [str(s) for s in named]
    return [alert["substance"]] if alert.get("substance") else []


def _series_of(key: SeriesKey, rows: Sequence[Sequence[Any]], dimension: str) -> Series:
    """A series from its observation rows ``(period, value, denominator, dimension)`` in
    period order; ``dimension`` when no row names one."""
    import numpy as np

    from detectors.base import Series

    dens = [r[2] for r in rows]
    den = (np.array([np.nan if d is None else d for d in dens], dtype=float)
           if any(d is not None for d in dens) else None)
    return Series(
        source=key[0], substance=key[1], region=key[2], metric=key[3],
        periods=tuple(date.fromisoformat(r[0]) for r in rows),
        values=np.array([r[1] for r in rows], dtype=float),
        dimension=next((r[3] for r in rows if r[3]), None) or dimension, denominators=den)


#: Series named in one query (5 parameters each: within SQLite's oldest limit of 999).
_KEYS_PER_QUERY = 190


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def pack_state(state: dict[str, Any]) -> bytes:
    """A detector state as stored: its arrays packed binary (:mod:`warnd.statecodec`)."""
    from warnd.statecodec import pack

    return pack(state)


_pack = pack_state


def readable_states(
    blobs: Iterable[tuple[SeriesKey, bytes]], *, arrays: bool = False,
    make_fits: MakeFits | None = None,
) -> dict[SeriesKey, dict[str, Any]]:
    """Stored detector states ``(key, bytes)`` unpacked (:func:`warnd.statecodec.unpack`,
    ``arrays`` and ``make_fits`` as it takes them); those that do not unpack are left
    out: the caller replays their series."""
    from warnd.statecodec import unpack

    out: dict[SeriesKey, dict[str, Any]] = {}
    for key, blob in blobs:
        try:
            out[key] = unpack(blob, arrays=arrays, make_fits=make_fits)
        except (zlib.error, ValueError, TypeError, KeyError, IndexError, struct.error):
            continue
    return out


def pack_series(state: Any) -> bytes:
    """A series' detector state (:class:`detectors.engine.SeriesState`) as stored: the
    bytes of ``pack_state(state.to_store())``, written from its arrays without
    building that dict."""
    from warnd.statecodec import pack_series_state

    skeleton, y, den, fits = state.parts()
    packed = pack_series_state(skeleton, y, den, fits.family, fits.arrays())
    return packed if packed is not None else pack_state(state.to_store())


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def substance_scope(substance: str, kind: str = "trend", direction: str = "increase") -> str:
    """Episode-state scope of what a substance's recipients were told about an episode
    (beside the series' own, ``series:<key>``)."""
    return f"substance:{substance}:{kind}:{direction}"


#: The open episodes of a substance's series: the index of open episodes scanned, each
#: one's series looked up by key. Not driven from the substance's series: that read
#: every series' state.
#: days a series may lag behind the newest period of its source beyond twice its usual
#: spacing of periods (as ``warnd.alerting.freshness`` allows a source's publication)
FED_LAG_DAYS = 14


#: what :func:`no_longer_fed` reads of a series ``s``: its span, its number of periods
#: and its source's newest period
_FED_SPAN = ("s.first_period, s.last_period, s.n_observations, "
             "(SELECT MAX(o.last_period) FROM series o WHERE o.source = s.source)")


def no_longer_fed(first: str | None, last: str | None, n: int | None,
                  newest: str | None) -> bool:
    """True for a series its source has gone on without: its newest period is older than
    its source's newest by more than twice its usual spacing of periods plus
    ``FED_LAG_DAYS`` (a weekly series four weeks behind the rest of its source). So is a
    series left behind when a source's region, metric or substances change, or when a
    table stops listing a substance: an episode open there would otherwise stay open for
    good and hold its substance's episode open (:mod:`warnd.alerting.decide`)."""
    if not (first and last and newest and n and n > 1):
        return False
    a, b, c = (date.fromisoformat(x[:10]) for x in (first, last, newest))
    spacing = (b - a).days / (n - 1)
    return (c - b).days > 2 * spacing + FED_LAG_DAYS


_OPEN_OF_SUBSTANCE = (
    "FROM episodes e JOIN series s ON s.key = substr(e.scope, 8) "
    "WHERE e.is_open AND substr(e.scope, 1, 7) = 'series:' AND s.substance = ?"
)


def _json_default(o: Any) -> Any:
    if isinstance(o, date | datetime):
        return o.isoformat()
    np = sys.modules.get("numpy")  # a numpy value exists only once numpy is loaded
    if np is not None:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            v = float(o)
            return v if math.isfinite(v) else None
        if isinstance(o, np.ndarray):
            return o.tolist()
    if isinstance(o, set | tuple):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
