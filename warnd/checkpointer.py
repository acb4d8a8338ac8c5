"""The store's WAL checkpointed on a thread of its own.

SQLite in WAL mode appends every commit to ``warnd.sqlite-wal``; a *checkpoint*
copies those pages back into the database file and syncs it. By default the
connection that commits past 1,000 pages does that itself, in the middle of a poll
or a detect pass: its commit then waits for the pages to be written back to scattered
places of a large file and synced (at 100,000 series most of a commit's time).

A :class:`Checkpointer` does it on a thread with its own connection instead, while
the daemon or a ``run --once`` cycle goes on with the next source (SQLite releases
the GIL while it writes). Connections of this process that use it turn their own
automatic checkpoints off and nudge it after each commit with the rows it changed.
It checkpoints once about ``min_pages`` wait to be copied back (1,000, as SQLite's own
automatic checkpoint; counted as rows changed, about a page each here: a state, an
observation in its series' leaf), so a daemon committing a few rows at a time does
not pay a checkpoint's syncs for each; nudges that come while it works are served by
one checkpoint. (The exact count of pages is in the WAL index, the ``-shm`` file, but
a process must not open and close that file itself: closing any descriptor of it
drops every POSIX lock the process's SQLite connections hold on it.) Each checkpoint
is ``PASSIVE`` (never in a writer's way). A writer that never pauses would let the WAL
grow as long as it writes, so past ``limit_pages`` the thread makes a ``RESTART`` checkpoint: it waits (at most
``wait``) for the writer's commit and the readers of older pages, copies everything and
lets the next commit start the WAL from its beginning (``journal_size_limit`` then
truncates the file to the limit). A reader that holds an old snapshot for longer (a
long report, a backup) is reported once, and the next ``RESTART`` is tried only when
the WAL has doubled since, so writers are not held up again and again.

Crash safety is SQLite's: a commit is in the WAL before it returns, a checkpoint can
be cut off at any point, and whatever it had not copied is copied by the next one
(or by the next connection that opens the store). An error (a full disk) is logged
with what to do and the next commit's nudge tries again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("warnd.store")

#: WAL pages (4 KiB) above which a checkpoint restarts the WAL: 64 MiB
LIMIT_PAGES = 16_384
#: pages waiting to be copied back before a checkpoint is worth its syncs (SQLite's
#: own automatic checkpoint waits for as many)
MIN_PAGES = 1000
PAGE = 4096

#: the running checkpointer of each store file in this process
_RUNNING: dict[str, Checkpointer] = {}
_RUNNING_LOCK = threading.Lock()


def running(path: Path) -> Checkpointer | None:
    """The checkpointer this process runs for the store at ``path``, if any."""
    with _RUNNING_LOCK:
        ck = _RUNNING.get(_key(path))
    # a forked child inherits the registry but not the thread
    return ck if ck is not None and ck.pid == os.getpid() else None


def _key(path: Path) -> str:
    return str(Path(path).resolve())


class Checkpointer:
    """Checkpoints one store file's WAL on a thread; see the module's docstring.

    Made by :meth:`warnd.store.Store.checkpoint_in_background` (which also registers
    it for the process's other connections to that store) and stopped by that store's
    ``close``.
    """

    def __init__(self, path: Path, *, wait: float = 5.0, limit_pages: int = LIMIT_PAGES,
                 min_pages: int = MIN_PAGES,
                 explain: Callable[[sqlite3.Error], str] = str) -> None:
        self.path = Path(path)
        self.min_pages = min_pages
        self._waiting = 0  # rows committed since the last checkpoint
        self._explain = explain  # an SQLite error in the operator's words
        self.pid = os.getpid()
        self.limit_pages = limit_pages
        # timeout: SQLite's busy timeout, how long a RESTART waits for the others
        self._con = sqlite3.connect(str(path), timeout=wait, check_same_thread=False,
                                    isolation_level=None)
        self._cond = threading.Condition()
        self._asked = 0  # nudges so far
        self._served = 0  # nudges a finished checkpoint has covered
        self._closing = False
        self._restart_at = limit_pages  # WAL pages at which the next RESTART is tried
        self._failing: str | None = None  # the last error or hold-up reported
        #: counts for tests, benchmarks and ``/metrics``-style curiosity
        self.stats = {"checkpoints": 0, "restarts": 0, "held_back": 0, "errors": 0,
                      "frames_max": 0}
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"checkpoint {self.path.name}")
        self._thread.start()

    # -- used by the store's connections -----------------------------------------------
    def nudge(self, rows: int = 1) -> bool:
        """Say that a commit changed ``rows`` rows (a checkpoint follows once about
        ``min_pages`` wait); False once it has stopped (the caller then checkpoints as
        SQLite does by default)."""
        with self._cond:
            if self._closing:
                return False
            self._asked += 1
            self._waiting += max(rows, 1)
            self._cond.notify_all()
        return True

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every nudge so far has been served (by a checkpoint, where at
        least ``min_pages`` waited)."""
        with self._cond:
            target = self._asked
            return self._cond.wait_for(lambda: self._served >= target or self._closing,
                                       timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop after the checkpoint under way (pending nudges are left to the last
        connection's close, which checkpoints everything)."""
        self._unregister()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _unregister(self) -> None:
        with _RUNNING_LOCK:
            if _RUNNING.get(_key(self.path)) is self:
                del _RUNNING[_key(self.path)]

    def register(self) -> Checkpointer:
        """This process's checkpointer for its store: this one, or one already running."""
        with _RUNNING_LOCK:
            return _RUNNING.setdefault(_key(self.path), self)

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._asked > self._served or self._closing)
                    if self._closing:
                        return
                    target = self._asked
                    due = self._waiting >= self.min_pages
                    if due:
                        self._waiting = 0
                if due and not self._checkpoint():
                    with self._cond:  # failed: the next commit tries again
                        self._waiting += self.min_pages
                with self._cond:
                    self._served = target
                    self._cond.notify_all()
        except Exception:  # a bug: say so, and let the writers checkpoint again
            log.exception("store=%s the checkpointing thread stopped; the writers' commits "
                          "checkpoint the WAL again, as SQLite does by default", self.path)
        finally:
            self._unregister()
            with self._cond:
                self._closing = True  # nudge() says False: the store turns its own on
                self._cond.notify_all()
            self._con.close()

    def _checkpoint(self) -> bool:
        """One checkpoint (and a ``RESTART`` past the limit); False when it failed."""
        try:
            busy, frames, done = self._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.stats["checkpoints"] += 1
            self.stats["frames_max"] = max(self.stats["frames_max"], frames)
            if frames >= self._restart_at:
                busy, frames, done = self._con.execute(
                    "PRAGMA wal_checkpoint(RESTART)").fetchone()
                if busy:
                    self.stats["held_back"] += 1
                    self._restart_at = 2 * max(frames, self._restart_at)
                    self._report(
                        f"the WAL holds {frames} pages ({frames * PAGE / 2**20:.1f} MiB) "
                        "that could not be copied back while another connection used older "
                        "pages (a long report, a backup or a long write); it shrinks once "
                        "that ends", level=logging.WARNING, kind="held back")
                    return True
                self.stats["restarts"] += 1
            elif busy or done < frames:
                return True  # a reader holds older pages: copied by a later checkpoint
            self._restart_at = self.limit_pages
            self._recovered()
            return True
        except sqlite3.Error as e:
            self.stats["errors"] += 1
            self._report(f"checkpoint failed: {self._explain(e)}; "
                         "the next commit tries again, nothing committed is lost")
            return False

    def _report(self, what: str, *, level: int = logging.ERROR,
                kind: str | None = None) -> None:
        if (kind or what) != self._failing:  # the same problem again is not repeated
            log.log(level, "store=%s %s", self.path, what)
            self._failing = kind or what

    def _recovered(self) -> None:
        if self._failing is not None:
            log.info("store=%s checkpoints work again", self.path)
            self._failing = None


def stats_of(path: Path) -> dict[str, Any] | None:
    """The running checkpointer's counts for the store at ``path`` (None: none runs)."""
    ck = running(path)
    return None if ck is None else dict(ck.stats)
