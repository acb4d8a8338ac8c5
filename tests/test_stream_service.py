"""The service over time, in-process: what reloads do to the schedule of jobs already
running (the scheduler started paused, a job's next run moved to stand for time passed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.service_kit import counts_csv, write_service_config
from warnd.config import load_config
from warnd.service.daemon import Daemon

SOURCE = ('\n[[sources]]\nname = "{name}"\nkind = "count_table"\nlocation = "{name}.csv"\n'
          'interval = "{interval}"\ndimension = "use"\n')


def _write(tmp_path, **intervals: str):
    sources = ""
    for name, interval in intervals.items():
        (tmp_path / f"{name}.csv").write_bytes(counts_csv(["ketamin"], weeks=12))
        sources += SOURCE.format(name=name, interval=interval)
    return write_service_config(tmp_path / "config.toml", sources=sources)


def _next_runs(d: Daemon) -> dict[str, datetime]:
    return {j.id: j.next_run_time for j in d.scheduler.get_jobs()}


def test_reloads_do_not_put_off_the_polls_of_sources_whose_schedule_stayed(tmp_path):
    """A reload every half hour (configuration management, a changed target) must not
    keep an hourly source from ever being polled: an unchanged job keeps its next run;
    a changed schedule counts from the reload; a source added is polled at once."""
    d = Daemon(load_config(_write(tmp_path, a="1h", b="1h")))
    d.schedule(d.config, first=True)
    d.scheduler.start(paused=True)
    try:
        t0 = datetime.now(UTC)
        for reload in range(3):  # half an hour passes before each reload
            due = t0 + timedelta(minutes=30 - 10 * reload)
            for jid in ("poll:a", "poll:b", "detect"):
                d.scheduler.modify_job(jid, next_run_time=due)
            assert d.reload() is True
            runs = _next_runs(d)
            assert runs["poll:a"] == runs["poll:b"] == runs["detect"] == due
        _write(tmp_path, a="1h", b="10m", c="1h")
        before = datetime.now(UTC)
        assert d.reload() is True
        runs = _next_runs(d)
        assert runs["poll:a"] == runs["detect"] == due  # unchanged
        assert before + timedelta(minutes=10) <= runs["poll:b"]  # the new interval
        assert runs["poll:b"] <= datetime.now(UTC) + timedelta(minutes=10)
        assert runs["poll:c"] <= datetime.now(UTC)  # added: polled at once
        _write(tmp_path, a="1h", b="10m")
        assert d.reload() is True
        assert "poll:c" not in _next_runs(d)
    finally:
        d.scheduler.shutdown(wait=False)
