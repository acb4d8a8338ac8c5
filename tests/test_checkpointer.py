"""The store's WAL checkpointed on a thread of its own (``warnd/checkpointer.py``).

What the thread did is read where SQLite keeps it: the WAL index (``-shm``) says how
many frames the log holds (``mxFrame``) and how many are copied back into the database
file (``nBackfill``), and the ``-wal`` file's size is what the disk holds. The index is
read by a process of its own: closing a descriptor of that file in this one would drop
the POSIX locks this process's connections hold on it.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.service_kit import child_env, stray_tracebacks
from warnd import checkpointer
from warnd.store import Store


READ_INDEX = """
import struct, sys
head = open(sys.argv[1], "rb").read(136)
print(struct.unpack_from("=I", head, 16)[0],  # WalIndexHdr.mxFrame
      struct.unpack_from("=I", head, 96)[0])  # WalCkptInfo.nBackfill
"""


def wal_index(db: Path) -> tuple[int, int]:
    """(frames in the WAL, frames copied back) from the WAL index's header."""
    out = subprocess.run([sys.executable, "-c", READ_INDEX, str(db.with_name(db.name + "-shm"))],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    frames, copied = map(int, out.split())
    return frames, copied


def commit_pages(store: Store, n: int, tag: str = "x") -> None:
    """One transaction writing about ``n`` new pages."""
    with store.write() as db:
        db.execute("CREATE TABLE IF NOT EXISTS filler (tag TEXT, b BLOB)")
        db.conn.executemany("INSERT INTO filler VALUES (?, randomblob(3900))",
                            [(tag,)] * n)


def count(db: Path, tag: str | None = None) -> int:
    con = sqlite3.connect(db)
    try:
        if tag is None:
            return con.execute("SELECT COUNT(*) FROM filler").fetchone()[0]
        return con.execute("SELECT COUNT(*) FROM filler WHERE tag=?", [tag]).fetchone()[0]
    finally:
        con.close()


def test_the_thread_copies_commits_back_and_the_writers_do_not(tmp_path):
    db = tmp_path / "warnd.sqlite"
    quiet = Store(db)
    quiet.db.execute("PRAGMA wal_autocheckpoint = 0")
    store = Store(db)
    ck = store.checkpoint_in_background(min_pages=100)
    assert ck is not None and checkpointer.running(db) is ck
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    other = Store(db)  # opened meanwhile: it uses the same thread
    assert other.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    quiet.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema's pages: start at 0
    for i in range(20):
        commit_pages(store if i % 2 else other, 60)
        assert ck.settle(timeout=30)
        frames, copied = wal_index(db)
        if i % 2 == 0:  # 60 rows wait: fewer than min_pages, not worth a checkpoint yet
            assert frames - copied >= 60
        else:  # 120: copied back, all that was committed is in the database file
            assert frames and copied == frames
    assert ck.stats["checkpoints"] == 10 and ck.stats["errors"] == 0
    # without it, nobody copies back: the writers' own checkpoints are off
    other.close()
    store.close()
    assert checkpointer.running(db) is None and not ck._thread.is_alive()
    commit_pages(quiet, 60)
    frames, copied = wal_index(db)
    assert copied < frames
    quiet.close()
    assert count(db) == 21 * 60


def test_a_connection_outliving_the_thread_checkpoints_as_sqlite_does(tmp_path):
    db = tmp_path / "warnd.sqlite"
    owner = Store(db)
    owner.checkpoint_in_background()
    job = Store(db)
    assert job.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    owner.close()
    commit_pages(job, 5)
    assert job.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    later = Store(db)  # no thread runs: SQLite's default
    assert later.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    later.close()
    job.close()


def test_a_thread_that_breaks_hands_checkpoints_back_to_the_writers(tmp_path, caplog,
                                                                     monkeypatch):
    db = tmp_path / "warnd.sqlite"
    store = Store(db)
    ck = store.checkpoint_in_background(min_pages=1)

    def broken(self):  # a bug in the thread, which nothing real here can cause
        raise RuntimeError("bug")

    monkeypatch.setattr(checkpointer.Checkpointer, "_checkpoint", broken)
    caplog.set_level(logging.ERROR, logger="warnd.store")
    commit_pages(store, 5)
    assert ck.settle(timeout=30)
    ck._thread.join(30)
    assert not ck._thread.is_alive() and checkpointer.running(db) is None
    assert any("checkpointing thread stopped" in r.getMessage() for r in caplog.records)
    commit_pages(store, 5)  # the store notices and checkpoints as SQLite does
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    store.close()
    assert count(db) == 10


def test_a_reader_holding_old_pages_is_reported_once_and_the_wal_shrinks_after(
        tmp_path, caplog):
    db = tmp_path / "warnd.sqlite"
    store = Store(db)
    ck = store.checkpoint_in_background(limit_pages=64, min_pages=1, wait=0.05)
    assert ck is not None
    commit_pages(store, 10, "before")
    assert ck.settle(timeout=30)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM filler").fetchone()[0] == 10
    caplog.set_level(logging.INFO, logger="warnd.store")
    for i in range(12):  # 360 pages, five times the limit, while the reader holds on
        commit_pages(store, 30, "held")
        assert ck.settle(timeout=30)
    frames, copied = wal_index(db)
    assert frames > 300 and copied < frames
    held = [r for r in caplog.records if "could not be copied back" in r.getMessage()]
    # tried at 64 pages, again only once the WAL had doubled (128, 256)
    assert 1 <= ck.stats["held_back"] <= 3, ck.stats
    assert len(held) == 1  # said once while it lasts
    assert "pages (" in held[0].getMessage() and "MiB)" in held[0].getMessage()
    assert held[0].levelno == logging.WARNING and str(db) in held[0].getMessage()
    reader.execute("COMMIT")
    reader.close()
    for _ in range(3):  # the next checkpoint copies all back; the next commit starts over
        commit_pages(store, 2, "after")
        assert ck.settle(timeout=30)
    frames, copied = wal_index(db)
    assert copied == frames and frames < 64
    wal = db.with_name(db.name + "-wal").stat().st_size
    assert wal <= 64 * 4096 + 64 * 4120  # truncated to the limit when the WAL started over
    assert any("checkpoints work again" in r.getMessage() for r in caplog.records)
    store.close()
    assert (count(db, "before"), count(db, "held"), count(db, "after")) == (10, 360, 6)


FAILING = """
import logging, resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from warnd.store import Store
from tests.test_checkpointer import commit_pages, wal_index

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
db = Path({db!r})
store = Store(db)
ck = store.checkpoint_in_background(min_pages=50)
commit_pages(store, 200, "first")  # the WAL file now has room for 200 frames
assert ck.settle(timeout=30)
size = db.stat().st_size
# the database file cannot grow (EFBIG); the WAL is rewritten from its start in place
resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
for i in range(3):  # the third commit brings 60 rows, past min_pages: a checkpoint
    commit_pages(store, 20, "while-full")
    assert ck.settle(timeout=30)
frames, copied = wal_index(db)
print("stuck", frames, copied, ck.stats["errors"], flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
commit_pages(store, 1, "after")  # one row: a checkpoint only because the last one failed
assert ck.settle(timeout=30)
frames, copied = wal_index(db)
print("after", frames, copied, flush=True)
store.close()
"""


def test_a_checkpoint_that_fails_is_reported_and_the_next_one_catches_up(tmp_path):
    db = tmp_path / "warnd.sqlite"
    root = str(Path(__file__).resolve().parents[1])
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(FAILING).format(root=root,
                                                                               db=str(db))],
                       env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = dict((ln.split()[0], ln.split()[1:]) for ln in r.stdout.splitlines())
    frames, copied, errors = map(int, out["stuck"])
    assert copied < frames and errors >= 1  # nothing could be copied back meanwhile
    failed = [ln for ln in r.stderr.splitlines() if "checkpoint failed" in ln]
    assert len(failed) == 1, r.stderr  # said once, not at every commit
    assert str(db) in failed[0] and ("full" in failed[0] or "I/O" in failed[0])
    assert "nothing committed is lost" in failed[0]
    assert "checkpoints work again" in r.stderr and not stray_tracebacks(r.stderr)
    frames, copied = map(int, out["after"])
    assert copied == frames
    assert (count(db, "first"), count(db, "while-full"), count(db, "after")) == (200, 60, 1)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
