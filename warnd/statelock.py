"""One dispatching warnd per state directory: an exclusive lock on ``warnd.lock``.

The daemon (``warnd run``) and ``warnd run --once`` hold an exclusive ``flock`` on
``<state_dir>/warnd.lock`` for as long as they run; the file holds the holder's pid.
A second one exits at once with :data:`EX_LOCKED` and a line naming the holder.
The kernel drops the lock when its holder dies (even by SIGKILL), so a stale file
never blocks a restart. Commands that only read or change rows (``status``,
``alerts``, ``outbox``, ``silence``, ``backup``) do not take it.

Holding the lock also proves that no other process is sending: claims on
deliveries left by an earlier holder died with it and are freed at once
(:func:`warnd.alerting.outbox.free_dead_claims`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from warnd.errors import WarndError

LOCK_NAME = "warnd.lock"
#: Exit code when another warnd holds the state directory (EX_TEMPFAIL).
EX_LOCKED = 75


class StateLocked(WarndError):
    """Another process holds the state directory's lock."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"state directory {state_dir} is in use by another warnd ({who}; lock file "
            f"{Path(state_dir) / LOCK_NAME}); stop it first or use another state_dir"
        )


class StateLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(state_dir: Path) -> int | None:
    try:
        text = (Path(state_dir) / LOCK_NAME).read_text(encoding="ascii").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def acquire(state_dir: Path) -> StateLock:
    """Take the lock or raise :class:`StateLocked` at once (never waits)."""
    state_dir = Path(state_dir)
    path = state_dir / LOCK_NAME
    writable = True
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        # a read-only state directory: lock the existing file anyway (flock needs no
        # write access); the store then reports that it cannot write
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
        except OSError:
            raise WarndError(
                f"cannot create the lock file {path}: {e.strerror} (is the state directory "
                "read-only or not writable?)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLocked(state_dir, holder_pid(state_dir)) from None
    if writable:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return StateLock(state_dir, fd)

