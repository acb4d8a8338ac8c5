"""One dispatching warnd per state directory (real processes, a real flock)."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import env_with_root, write_config
from tests.daemonproc import DaemonProcess
from tests.scenario import LAB_SOURCE, write_lab_csv
from warnd.statelock import EX_LOCKED


def _cli(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg), *args],
                          env=env_with_root(), capture_output=True, text=True, timeout=120,
                          cwd=str(cfg.parent))


def test_second_daemon_and_run_once_are_refused_while_one_runs(tmp_path):
    write_lab_csv(tmp_path / "data" / "lab.csv")
    cfg = write_config(tmp_path, LAB_SOURCE.format(interval="1h"))
    d = DaemonProcess(cfg)
    try:
        d.wait_for("warnd started")
        pid = d.proc.pid
        for args in (("run",), ("run", "--once")):
            r = _cli(cfg, *args)
            assert r.returncode == EX_LOCKED == 75, (args, r.stderr)
            assert f"in use by another warnd (pid {pid}" in r.stderr
            assert "Traceback" not in r.stderr
        # reading commands still work beside the daemon
        assert _cli(cfg, "outbox").returncode == 0
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
    finally:
        d.kill()
    # the lock went with the process: a new run takes it
    r = _cli(cfg, "run", "--once")
    assert r.returncode == 0, r.stderr


def test_lock_of_a_killed_daemon_does_not_block_the_next(tmp_path):
    write_lab_csv(tmp_path / "data" / "lab.csv")
    cfg = write_config(tmp_path, LAB_SOURCE.format(interval="1h"))
    d = DaemonProcess(cfg)
    try:
        d.wait_for("warnd started")
        d.signal(signal.SIGKILL)
        d.wait()
    finally:
        d.kill()
    assert (tmp_path / "state" / "warnd.lock").exists()
    r = _cli(cfg, "run", "--once")
    assert r.returncode == 0, r.stderr
