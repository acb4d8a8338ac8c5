"""The daemon over a long life: its wall clock stepped while it runs."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import apscheduler.schedulers.base

import warnd.service.daemon as daemon_module
from tests.service_kit import counts_csv, wait_until, write_service_config
from warnd.config import load_config
from warnd.service.daemon import Daemon

SOURCES = ('\n[[sources]]\nname = "hourly"\nkind = "count_table"\nlocation = "a.csv"\n'
           'interval = "1h"\ndimension = "use"\n'
           '\n[[sources]]\nname = "weekly"\nkind = "count_table"\nlocation = "a.csv"\n'
           'cron = "0 6 * * 1"\ndimension = "use"\n')


def test_a_wall_clock_stepped_back_an_hour_keeps_the_jobs_going(tmp_path, monkeypatch):
    """NTP steps back a clock that ran an hour fast while ``warnd run`` runs. The jobs
    that run after an interval (heartbeat, dispatch, detection, an hourly poll) keep the
    time they had still to wait, and the daemon stays alive for the watchdog and
    ``/healthz``; a source polled at clock times keeps them. Before, the scheduler kept
    their run times on the wall clock: every one of them waited the hour more, the
    outbox was not dispatched, and the heartbeat stopped, so systemd's watchdog killed
    the daemon (a day's step: nothing sent for a day without the watchdog)."""

    class Stepped(datetime):
        """The wall clock, as the scheduler and the daemon read it."""
        offset = timedelta(0)

        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) + cls.offset

    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", Stepped)
    monkeypatch.setattr(daemon_module, "datetime", Stepped)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # the main loop looks every 0.5 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=12))
    d = Daemon(load_config(write_service_config(tmp_path / "config.toml", sources=SOURCES)))
    seen: dict[str, object] = {}

    def step_and_look() -> None:
        try:
            wait_until(lambda: d.scheduler.running and d.scheduler.get_job("startup") is None,
                       30, "the start-up cycle")
            before = {j.id: j.next_run_time for j in d.scheduler.get_jobs()}
            Stepped.offset = -timedelta(hours=1)
            stepped_at = time.monotonic()
            wait_until(lambda: d.last_heartbeat_at > stepped_at, 10, "a heartbeat after the step")
            seen.update(before=before, live=d.liveness(), now=Stepped.now(UTC),
                        after={j.id: j.next_run_time for j in d.scheduler.get_jobs()})
        except TimeoutError:
            pass  # told by the assertions below
        finally:
            d.events.put(signal.SIGTERM)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    driver = threading.Thread(target=step_and_look)
    driver.start()
    try:
        assert d.run() == 0
    finally:
        driver.join()
        for s, h in handlers.items():
            signal.signal(s, h)
    assert seen, "no heartbeat after the clock was stepped back"
    assert seen["live"]["alive"] is True
    now, after, before = seen["now"], seen["after"], seen["before"]
    assert after["dispatch"] <= now + timedelta(seconds=30)
    assert after["detect"] <= now + timedelta(hours=1)
    assert after["poll:hourly"] <= now + timedelta(hours=1)
    assert after["poll:weekly"] == before["poll:weekly"]  # Monday 06:00 by the clock
