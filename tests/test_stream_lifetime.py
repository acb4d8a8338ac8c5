"""The daemon over a long life: its wall clock stepped back while it runs; stopped in
the middle of a round of sends and started again; a daily digest's time missed while it
was down, and a digest due when it starts after a downtime."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apscheduler.schedulers.base
import pytest

import warnd.service.daemon as daemon_module
from tests.service_kit import (
    DaemonProcess,
    JsonSink,
    counts_csv,
    notices_rss,
    wait_until,
    write_service_config,
)
from warnd.config import load_config
from warnd.service.daemon import Daemon

SOURCES = ('\n[[sources]]\nname = "hourly"\nkind = "count_table"\nlocation = "a.csv"\n'
           'interval = "1h"\ndimension = "use"\n'
           '\n[[sources]]\nname = "weekly"\nkind = "count_table"\nlocation = "a.csv"\n'
           'cron = "0 6 * * 1"\ndimension = "use"\n')
NOTICES = ('\n[[sources]]\nname = "notices"\nkind = "overdosefare"\nlocation = "n.xml"\n'
           'interval = "1h"\ndimension = "availability"\n')


def test_a_wall_clock_stepped_back_an_hour_keeps_the_jobs_going(tmp_path, monkeypatch):
    """NTP steps back a clock that ran an hour fast while ``warnd run`` runs. The jobs
    that run after an interval (heartbeat, dispatch, detection, an hourly poll) keep the
    time they had still to wait, and the daemon stays alive for the watchdog and
    ``/healthz``; a source polled at clock times keeps them. A notice refused by its
    target just before the step (HTTP 500) is retried after its back-off (a second), not
    an hour later. Before, the scheduler kept the jobs' run times on the wall clock, and
    the outbox its retries and back-offs: every one of them waited the hour more, the
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
    (tmp_path / "n.xml").write_bytes(notices_rss(1, "ketamin"))
    sink = JsonSink(fail=True)
    d = Daemon(load_config(write_service_config(
        tmp_path / "config.toml", sources=SOURCES + NOTICES,
        targets=f'\n[[targets]]\nname = "hook"\nurl = "{sink.url}"\n'
                '\n[alerting]\nretry_backoff = "1s"\n')))
    d.pipeline.clock = lambda: Stepped.now(UTC)  # the outbox's clock
    seen: dict[str, object] = {}

    def step_and_look() -> None:
        try:
            wait_until(lambda: d.scheduler.running and d.scheduler.get_job("startup") is None,
                       30, "the start-up cycle")
            wait_until(lambda: d.dispatch_job() or sink.rejected, 30, "the refused notice",
                       poll=0.2)
            sink.fail = False
            before = {j.id: j.next_run_time for j in d.scheduler.get_jobs()}
            Stepped.offset = -timedelta(hours=1)
            stepped_at = time.monotonic()
            wait_until(lambda: d.last_heartbeat_at > stepped_at, 10, "a heartbeat after the step")
            seen.update(before=before, live=d.liveness(), now=Stepped.now(UTC),
                        after={j.id: j.next_run_time for j in d.scheduler.get_jobs()})
            wait_until(lambda: d.dispatch_job() or sink.messages, 10, "the notice's retry",
                       poll=0.2)
            seen["retried"] = True
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
        sink.close()
        for s, h in handlers.items():
            signal.signal(s, h)
    assert seen, "no heartbeat after the clock was stepped back"
    assert seen["live"]["alive"] is True
    now, after, before = seen["now"], seen["after"], seen["before"]
    assert after["dispatch"] <= now + timedelta(seconds=30)
    assert after["detect"] <= now + timedelta(hours=1)
    assert after["poll:hourly"] <= now + timedelta(hours=1)
    assert after["poll:weekly"] == before["poll:weekly"]  # Monday 06:00 by the clock
    assert seen.get("retried"), "the refused notice was not retried after the step"
    assert len(sink.messages) == 1


class SlowSink:
    """A Teams-like endpoint that takes each message at once and answers ``delay``
    seconds later (a slow relay working through a backlog), and, given a ``gate``, only
    once it is open."""

    def __init__(self, delay: float, gate: threading.Event | None = None) -> None:
        self.titles: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                msg = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                sink.titles.append(msg.get("title", ""))
                if gate is not None:
                    gate.wait(60)
                time.sleep(delay)  # the relay's own pace, not a synchronisation
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _six_notices_to(tmp_path, sink, general: str = ""):
    """A config of one source of six warning notices of ketamine and one target, ``sink``."""
    (tmp_path / "n.xml").write_bytes(notices_rss(6, "ketamin"))
    return write_service_config(
        tmp_path / "config.toml",
        sources=('\n[[sources]]\nname = "notices"\nkind = "overdosefare"\n'
                 'location = "n.xml"\ninterval = "1h"\ndimension = "availability"\n'),
        targets=f'\n[[targets]]\nname = "hook"\nurl = "{sink.url}"\n', general=general)


def test_sigterm_in_a_round_to_a_slow_target_sends_nothing_new_and_nothing_twice(tmp_path):
    """Six warning notices go to a target that takes a second a message; the service is
    stopped (``systemctl restart``) as the first goes out. The send in flight ends and
    is recorded, no further one begins, and the daemon exits well within
    ``stop_timeout``; started again, it sends the other five, each once. Before, the
    round went on sending after SIGTERM until ``stop_timeout`` cut it off in the middle
    of a send the target had taken: that one was sent again after the restart."""
    sink = SlowSink(delay=1.0)
    try:
        cfg = _six_notices_to(tmp_path, sink, general='stop_timeout = "2.5s"\n')
        d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
        try:
            d.wait_for(r"sending to json://")
            d.signal(signal.SIGTERM)
            assert d.wait(timeout=30) == 0
        finally:
            d.kill()
        first = d.text()
        assert "exiting anyway" not in first
        assert "sending to" not in first.split("SIGTERM: stopping")[1]  # none begun since
        assert "deliveries not begun: stopping" in first
        again = DaemonProcess(cfg, tmp_path / "daemon.log").start()
        try:
            wait_until(lambda: len(sink.titles) >= 6, 60, "the other five notices")
            again.signal(signal.SIGTERM)
            assert again.wait(timeout=30) == 0
        finally:
            again.kill()
        assert len(sink.titles) == 6 and len(set(sink.titles)) == 6  # each once
    finally:
        sink.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_once_stopped_in_a_round_to_a_slow_target_sends_each_once(tmp_path, sig):
    """`warnd run --once` from a timer sends six warning notices to a target that holds
    each message; it is stopped (the unit's stop, or Ctrl-C) while the target holds the
    first. That send ends and is recorded, no further one begins, and the run exits
    with 128 + the signal's number, saying what is left; the next run sends the other
    five, each once. Before, the signal killed the process in the middle of the send
    the target had taken: the next run sent that notice again."""
    gate = threading.Event()
    sink = SlowSink(delay=0.0, gate=gate)
    try:
        cfg = _six_notices_to(tmp_path, sink)
        once = DaemonProcess(cfg, tmp_path / "once.log", args=("run", "--once")).start()
        try:
            wait_until(lambda: sink.titles, 60, "the first notice at the target")
            once.signal(sig)
            once.wait_for(f"{sig.name}: stopping")
            gate.set()
            assert once.wait(timeout=30) == 128 + sig
        finally:
            once.kill()
        first = once.text()
        assert len(sink.titles) == 1
        assert "Traceback" not in first
        assert "sending to" not in first.split(f"{sig.name}: stopping")[1]  # none begun since
        assert f"STOPPED by {sig.name}: 0 series to judge and 5 deliveries to send" in first
        again = DaemonProcess(cfg, tmp_path / "once.log", args=("run", "--once")).start()
        try:
            assert again.wait(timeout=60) == 0
        finally:
            again.kill()
        assert "STOPPED" not in again.text()
        assert len(sink.titles) == 6 and len(set(sink.titles)) == 6  # each once
    finally:
        gate.set()
        sink.close()


def test_a_daily_digest_missed_while_down_is_not_sent_just_before_the_next(tmp_path):
    """A daily digest at 08:00; the host is down from Tuesday 09:00 until Friday 07:30.
    The next digest, at 08:00 on Friday, covers everything since Tuesday's; Thursday's,
    missed by 23½ hours, is not sent half an hour before it. Before, a missed time was
    skipped only when missed by more than a day, which a daily one never is: the desk got
    "Dagsoversikt: 2026-07-07 – 2026-07-10" at 07:30 and, half an hour on, one of its
    own half hour. A time missed by less than half a day still goes when warnd is back
    (down from 07:50 until 10:00: Saturday's at 10:00, not Sunday's the day after)."""
    from tests.test_stream_clock_changes import _local, _own_config
    from warnd.alerting import outbox
    from warnd.alerting.send import SendResult
    from warnd.store import Store
    from zoneinfo import ZoneInfo

    oslo = ZoneInfo("Europe/Oslo")
    cfg = _own_config(tmp_path / "daily", '\n[alerting.digest]\nschedule = "daily"\n'
                      'at = "08:00"\ntargets = ["mail"]\n')
    store = Store.in_dir(cfg.state_dir)

    def up(start: datetime, end: datetime) -> None:  # dispatch every 10 minutes
        t = start.astimezone(UTC)
        while t < end:
            outbox.dispatch_pending(cfg, store, now=t,
                                    send=lambda url, **kw: SendResult(True, "SUCCESS"))
            t += timedelta(minutes=10)

    up(datetime(2026, 7, 6, 12, tzinfo=oslo), datetime(2026, 7, 7, 9, tzinfo=oslo))
    up(datetime(2026, 7, 10, 7, 30, tzinfo=oslo), datetime(2026, 7, 11, 7, 50, tzinfo=oslo))
    up(datetime(2026, 7, 11, 10, tzinfo=oslo), datetime(2026, 7, 11, 11, tzinfo=oslo))
    made = [(_local(datetime.fromisoformat(r["created_at"])), r["title"]) for r in store.q(
        "SELECT created_at, title FROM alerts WHERE kind='digest' ORDER BY id")]
    assert made == [("Tue 07 08:00 CEST", "Dagsoversikt: 2026-07-06 – 2026-07-07"),
                    ("Fri 10 08:00 CEST", "Dagsoversikt: 2026-07-07 – 2026-07-10"),
                    ("Sat 11 10:00 CEST", "Dagsoversikt: 2026-07-10 – 2026-07-11")]


def test_a_message_waiting_for_quiet_hours_waits_for_them_after_the_clock_steps_back(
        tmp_path, smtp_server):
    """Quiet hours 17:00-08:00: a notice decided at 23:00 waits for 08:00. At 07:30 the
    clock is stepped back an hour: the outbox's waits are moved back with it, and this
    one, due by then at 07:00, is put off again to the end of the quiet time when it
    comes due. It goes at 08:00 by the clock, not at 07:00 in quiet time."""
    from types import SimpleNamespace

    from tests.alerting_env import make_config, target
    from warnd.alerting import decide, outbox
    from warnd.store import Store

    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      '\n[alerting]\nquiet_hours = "17:00-08:00"\n')
    store = Store.in_dir(cfg.state_dir)
    evening = datetime(2026, 7, 7, 21, 0, tzinfo=UTC)  # Tuesday 23:00 in Oslo
    item = SimpleNamespace(key="n1", title="Advarsel n1", region="", summary="",
                           link="https://overdosefare.example/n1",
                           published_at=evening - timedelta(hours=1))
    decide.enqueue_notice(cfg, store, SimpleNamespace(name="overdosefare", region=""), item,
                          "ketamin", now=evening)
    stepped = datetime(2026, 7, 8, 4, 30, tzinfo=UTC)  # 06:30, a moment after 07:30
    assert store.clock_stepped_back(-timedelta(hours=1), stepped) == 1
    t = stepped
    while not smtp_server.messages and t < stepped + timedelta(hours=3):
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=10)
    assert len(smtp_server.messages) == 1
    assert t - timedelta(minutes=10) == datetime(2026, 7, 8, 6, 0, tzinfo=UTC)  # 08:00


def test_a_digest_due_at_start_is_made_after_the_catch_up(tmp_path, monkeypatch,
                                                           smtp_server):
    """warnd was down over its daily digest's time and starts ten minutes after it; its
    sources show a rise that began while it was down. The digest goes after the start-up
    cycle has polled and judged them, so it lists ketamin's rise as open, as the opening
    sent with it tells. Before, the dispatch at start made the digest before any source
    was polled: "nothing open" at once, and "Sterk økning: ketamin" a moment later."""
    from zoneinfo import ZoneInfo

    from tests.alerting_env import target
    from tests.conftest import write_config
    from tests.test_alerting import COUNTS, write_counts
    from warnd.store import Store, iso

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    write_counts(tmp_path, 60, jump_weeks=5)
    cfg = load_config(write_config(tmp_path, COUNTS + target("mail", smtp_server.url())))
    at = (datetime.now(UTC) - timedelta(minutes=10)).astimezone(
        ZoneInfo(cfg.general.timezone))
    cfg = load_config(write_config(tmp_path, COUNTS + target("mail", smtp_server.url())
                                   + f'\n[alerting.digest]\nschedule = "daily"\n'
                                   f'at = "{at:%H:%M}"\ntargets = ["mail"]\n'))
    store = Store.in_dir(cfg.state_dir)
    with store.write() as db:  # started first a day before, and stopped since
        store.save_episode_state("digest", {"since": iso(at - timedelta(days=1))}, db,
                                 now=at - timedelta(days=1))
    store.close()
    d = Daemon(cfg)

    def digest_made() -> list[dict]:
        with d.pipeline.session() as st:
            return st.q("SELECT data FROM alerts WHERE kind='digest'")

    def stop_when_done() -> None:
        try:
            wait_until(lambda: d.scheduler.running and d.scheduler.get_job("startup") is None
                       and digest_made(), 60, "the start-up cycle and the digest")
        except TimeoutError:
            pass
        finally:
            d.events.put(signal.SIGTERM)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    driver = threading.Thread(target=stop_when_done)
    driver.start()
    try:
        assert d.run() == 0
    finally:
        driver.join()
        for s, h in handlers.items():
            signal.signal(s, h)
    made = digest_made()
    assert len(made) == 1
    data = json.loads(made[0]["data"])
    assert [s["substance"] for s in data["substances"] if s["open"]] == ["ketamin"]
