"""The store under adverse conditions: a lock held by another process, a full disk, a
read-only state directory; and ``warnd backup`` while another process writes.

Each case checks for a clear one-line error, no corruption (``PRAGMA
integrity_check``), and recovery once the condition clears.

The full disk is a 1 MiB tmpfs and the read-only directory a tmpfs remounted
read-only when the tests run as root (mount needs it); otherwise the disk-full
case limits the writer's file size (``RLIMIT_FSIZE``, so writes fail with EFBIG)
and the read-only case removes write permission, which binds any non-root user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_kit import (
    child_env,
    counts_csv,
    stray_tracebacks,
    wait_until,
    write_service_config,
)
from tests.test_service import integrity, n_rows, source


def run_once(cfg: Path, *, preexec=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warnd.cli", "--config", str(cfg), "run", "--once"],
        env=child_env(), capture_output=True, text=True, timeout=120, cwd=str(cfg.parent),
        preexec_fn=preexec,
    )


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/warnd-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount()


@contextlib.contextmanager
def small_fs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _config(tmp_path: Path, state_dir: Path, weeks: int = 30) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "w1.csv").write_bytes(counts_csv(["ketamin", "heroin"], weeks=weeks))
    return write_service_config(tmp_path / "config.toml", state_dir=str(state_dir),
                                sources=source("lab", "data"),
                                general='store_busy_timeout = "1s"')


def _add_data(tmp_path: Path, name: str, weeks: int, seed: int) -> None:
    from datetime import date

    (tmp_path / "data" / name).write_bytes(
        counts_csv(["ketamin", "heroin"], weeks=weeks, seed=seed, start=date(2030, 1, 7)))


def test_store_locked_by_another_process(tmp_path):
    state = tmp_path / "state"
    cfg = _config(tmp_path, state)
    assert run_once(cfg).returncode == 0
    db = state / "warnd.sqlite"
    _add_data(tmp_path, "w2.csv", 10, 5)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys
            c = sqlite3.connect({str(db)!r}, isolation_level=None)
            c.execute("BEGIN EXCLUSIVE")
            c.execute("INSERT INTO problems (source, location, message, seen_at) "
                      "VALUES ('x', 'y', 'held', 'now')")
            print("locked", flush=True)
            sys.stdin.readline()
            c.execute("ROLLBACK")
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = run_once(cfg)
        assert r.returncode == 1
        assert "store error: database is locked (another process holds a write lock" in r.stderr
        assert not stray_tracebacks(r.stderr)
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert integrity(db) == "ok"
    r = run_once(cfg)
    assert r.returncode == 0, r.stderr
    assert n_rows(db, "observations") == 2 * 40
    assert n_rows(db, "problems", "message='held'") == 0


def test_disk_full_then_space_freed(tmp_path):
    state = tmp_path / "state"
    filler = None
    with contextlib.ExitStack() as stack:
        if CAN_MOUNT:
            stack.enter_context(small_fs(state, "1m"))
        cfg = _config(tmp_path, state)
        assert run_once(cfg).returncode == 0
        db = state / "warnd.sqlite"
        before = n_rows(db, "observations")
        _add_data(tmp_path, "w2.csv", 400, 6)
        if CAN_MOUNT:
            filler = state / "filler"
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
                while True:  # fill the filesystem to the last block
                    fh.write(b"\0" * 4096)
            r = run_once(cfg)
        else:
            import resource

            size = db.stat().st_size + 4096
            r = run_once(cfg, preexec=lambda: resource.setrlimit(
                resource.RLIMIT_FSIZE, (size, size)))
        assert r.returncode == 1
        assert "store" in r.stderr and not stray_tracebacks(r.stderr)
        assert "full" in r.stderr or "I/O error" in r.stderr, r.stderr
        if filler is not None:
            filler.unlink()  # (opening the store needs a little space for its -shm file)
        # checked before anything writes again: intact, and nothing half-written
        assert integrity(db) == "ok"
        assert n_rows(db, "observations") == before
        r = run_once(cfg)
        assert r.returncode == 0, r.stderr
        assert n_rows(db, "observations") == before + 2 * 400
        assert integrity(db) == "ok"


def test_read_only_state_directory_then_writable(tmp_path):
    state = tmp_path / "state"
    with contextlib.ExitStack() as stack:
        if CAN_MOUNT:
            stack.enter_context(small_fs(state, "4m"))
        cfg = _config(tmp_path, state)
        assert run_once(cfg).returncode == 0
        db = state / "warnd.sqlite"
        before = n_rows(db, "observations")
        _add_data(tmp_path, "w2.csv", 10, 7)
        if CAN_MOUNT:
            subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
            r = run_once(cfg)
            subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)
        else:
            state.chmod(0o555)
            db.chmod(0o444)
            try:
                r = run_once(cfg)
            finally:
                state.chmod(0o700)
                db.chmod(0o600)
        assert r.returncode == 1
        assert "warnd: " in r.stderr and not stray_tracebacks(r.stderr)
        assert "is not writable (read-only file system or permissions)" in r.stderr \
            or "read-only" in r.stderr, r.stderr
        assert integrity(db) == "ok"
        assert n_rows(db, "observations") == before
        r = run_once(cfg)
        assert r.returncode == 0, r.stderr
        assert n_rows(db, "observations") == before + 2 * 10


WRITER = """
import sys
from datetime import date, timedelta
from pathlib import Path
from feeds.base import Observation
from warnd.store import Store
store = Store.in_dir(Path(sys.argv[1]))
stop = Path(sys.argv[2])
n = 0
while not stop.exists() and n < 50000:
    obs = [Observation(source="w", substance="ketamin", period=date(1, 1, 1)
                       + timedelta(days=n * 50 + i), value=float(i)) for i in range(50)]
    store.ingest("w", location=f"doc{n}", sha256=str(n), observations=obs, items=(),
                 problems=())
    n += 1
    if n == 5:
        print("writing", flush=True)
print(n, flush=True)
"""


def test_backup_while_another_process_writes(tmp_path):
    state = tmp_path / "state"
    cfg = _config(tmp_path, state)
    assert run_once(cfg).returncode == 0
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state), str(stop)],
                              env=child_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        sizes = []
        for i in range(3):
            out = tmp_path / f"backup{i}.sqlite"
            r = subprocess.run(
                [sys.executable, "-m", "warnd.cli", "--config", str(cfg), "backup", str(out),
                 "--json"], env=child_env(), capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            assert '"integrity": "ok"' in r.stdout
            conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
                n = conn.execute("SELECT COUNT(*) FROM observations WHERE source='w'").fetchone()[0]
                docs = conn.execute("SELECT COUNT(*) FROM documents WHERE source='w'").fetchone()[0]
            finally:
                conn.close()
            assert n == 50 * docs  # a whole number of writer transactions: one consistent commit
            sizes.append(n)
        assert sizes == sorted(sizes) and sizes[-1] > 0
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=60)[0].strip().splitlines()[-1])
    assert written >= 5
    assert n_rows(state / "warnd.sqlite", "observations", "source='w'") == 50 * written


def test_backup_refuses_to_overwrite_the_store(tmp_path):
    state = tmp_path / "state"
    cfg = _config(tmp_path, state)
    assert run_once(cfg).returncode == 0
    r = subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg), "backup",
                        str(state / "warnd.sqlite")], env=child_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "cannot overwrite the store itself" in r.stderr


@pytest.mark.parametrize("force_fallback", [True])
def test_fallbacks_without_root_are_real_errors_too(tmp_path, force_fallback):
    """The disk-full fallback (RLIMIT_FSIZE) produces a store error, checked here even as root."""
    import resource

    state = tmp_path / "state"
    cfg = _config(tmp_path, state)
    assert run_once(cfg).returncode == 0
    db = state / "warnd.sqlite"
    before = n_rows(db, "observations")
    _add_data(tmp_path, "w2.csv", 400, 6)
    # the new rows' write-ahead log must not fit (a limit of its own, not a share of
    # the store's size, which grows with the schema)
    size = 48 * 1024
    r = run_once(cfg, preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size)))
    assert r.returncode == 1 and "store" in r.stderr, r.stderr
    assert "full" in r.stderr or "I/O error" in r.stderr, r.stderr
    assert integrity(db) == "ok" and n_rows(db, "observations") == before
    wait_until(lambda: run_once(cfg).returncode == 0, 60, "a run without the limit to succeed")
    assert n_rows(db, "observations") == before + 2 * 400


def test_run_once_exits_1_when_a_substances_detection_is_not_stored(tmp_path, monkeypatch,
                                                                   capsys):
    """The store refuses ketamine's detection (a disk error after the poll was stored:
    aimed at that one write, which a real full disk cannot be): `run --once` says so and
    exits 1, so a script running it sees the cycle was not whole, although every poll
    succeeded; heroin's detection stands. The next run judges ketamine and exits 0.
    Before, such a run exited 0 and only the log told."""
    import json

    from warnd.cli import main
    from warnd.pipeline import Pipeline
    from warnd.store import Store

    state = tmp_path / "state"
    cfg = _config(tmp_path, state)
    monkeypatch.chdir(tmp_path)
    real = Pipeline._decide_substance

    def refused(self, store, substance, *args, **kwargs):
        if substance == "ketamin":
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, store, substance, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_decide_substance", refused)
    assert main(["--config", str(cfg), "run", "--once", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["detect_failed"] == ["ketamin"]
    assert all(p["ok"] for p in out["polls"])
    assert main(["--config", str(cfg), "run", "--once"]) == 1
    assert "detection FAILED for ketamin" in capsys.readouterr().out
    monkeypatch.setattr(Pipeline, "_decide_substance", real)  # the disk has room again
    assert main(["--config", str(cfg), "run", "--once", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["detect_failed"] == []
    store = Store(state / "warnd.sqlite")
    try:
        assert not store.q("SELECT 1 FROM series WHERE data_version > judged_version")
    finally:
        store.close()
