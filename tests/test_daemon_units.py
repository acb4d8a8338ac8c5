"""Daemon units in-process: signals only enqueue; liveness gates the watchdog."""

from __future__ import annotations

import os
import signal
import time

from tests.service_kit import counts_csv, write_service_config
from warnd.config import load_config
from warnd.service.daemon import HEARTBEAT_EVERY_S, Daemon


def _daemon(tmp_path) -> Daemon:
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=12))
    cfg = write_service_config(
        tmp_path / "config.toml",
        sources='\n[[sources]]\nname = "a"\nkind = "count_table"\nlocation = "a.csv"\n'
                'interval = "1h"\ndimension = "use"\n')
    return Daemon(load_config(cfg))


def test_signal_handler_only_enqueues(tmp_path):
    d = _daemon(tmp_path)
    old = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        d.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        assert d.events.get(timeout=5) == signal.SIGHUP
        assert d.events.get(timeout=5) == signal.SIGTERM
        assert d.config is not None and not d.scheduler.running  # nothing else happened
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def test_liveness_needs_scheduler_thread_and_fresh_heartbeat(tmp_path):
    d = _daemon(tmp_path)
    assert d.liveness()["alive"] is False  # scheduler not started
    d.schedule(d.config)
    d.scheduler.start(paused=True)
    try:
        d.last_heartbeat_at = d.last_loop_at = time.monotonic()
        live = d.liveness()
        assert live["alive"] is True and live["scheduler_running"] is True
        assert {j.id for j in d.scheduler.get_jobs()} == {"poll:a", "detect", "dispatch",
                                                          "heartbeat"}
        assert d.scheduler.get_job("heartbeat").executor == "heartbeat"
        d.last_heartbeat_at = time.monotonic() - 3 * HEARTBEAT_EVERY_S - 1
        assert d.liveness()["alive"] is False  # scheduler stopped dispatching
        d.last_heartbeat_at = time.monotonic()
        d.last_loop_at = time.monotonic() - 3 * d.tick - 2
        assert d.liveness()["alive"] is False  # main loop stuck
        d.heartbeat_job()
        d.last_loop_at = time.monotonic()
        assert d.liveness()["alive"] is True
    finally:
        d.scheduler.shutdown(wait=False)
    assert d.liveness()["alive"] is False  # scheduler gone
