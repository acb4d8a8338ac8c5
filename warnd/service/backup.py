"""``warnd backup FILE``: a consistent copy of the store while the daemon runs.

SQLite's online backup API (:meth:`sqlite3.Connection.backup`) copies the
database in one step under a single read transaction; in WAL mode that never
blocks the daemon's writers, and the copy is the database as of one commit. (A
copy in several steps would restart each time another process commits, and
might never finish next to a busy daemon.) The copy is
written next to FILE, switched to a single self-contained file
(``journal_mode=DELETE``), checked with ``PRAGMA integrity_check`` and only then
renamed over FILE, so FILE is either the old backup or a complete new one.

Restore: stop the service, copy the backup over ``warnd.sqlite`` in the state
directory, delete any ``warnd.sqlite-wal`` and ``warnd.sqlite-shm`` left there,
start the service (docs/operations.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from warnd.errors import StoreError
from warnd.store import DB_NAME


def integrity(path: Path) -> str:
    """``"ok"`` or the first problems ``PRAGMA integrity_check`` reports."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def backup(state_dir: Path, dest: Path, *, pages: int = -1) -> dict[str, Any]:
    src_path = Path(state_dir) / DB_NAME
    if not src_path.exists():
        raise StoreError(f"{src_path}: no store to back up")
    dest = dest.resolve()
    if dest == src_path.resolve():
        raise StoreError(f"{dest}: the backup cannot overwrite the store itself")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        src = sqlite3.connect(str(src_path), timeout=30)
        try:
            src.execute("PRAGMA busy_timeout = 30000")
            dst = sqlite3.connect(str(tmp))
            try:
                src.backup(dst, pages=pages)
                dst.execute("PRAGMA journal_mode = DELETE")
                n_pages = dst.execute("PRAGMA page_count").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        result = integrity(tmp)
        if result == "ok":
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
    except sqlite3.Error as e:
        raise StoreError(f"backup of {src_path} to {dest} failed: {e}") from None
    except OSError as e:
        raise StoreError(f"backup of {src_path} to {dest} failed: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"source": str(src_path), "file": str(dest), "pages": n_pages,
            "bytes": dest.stat().st_size if result == "ok" else 0, "integrity": result}
