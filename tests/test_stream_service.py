"""The service over time, in-process: what reloads do to the schedule of jobs already
running (the scheduler started paused, a job's next run moved to stand for time passed),
to the state directory and to messages waiting for quiet hours; a run time passed while
the process stood still; when a source counts as stale as the days of its schedule go
by, a muted target's old failures, detection that keeps failing while data keep coming;
an old store opened by two processes at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from tests.alerting_env import make_config, target
from tests.service_kit import counts_csv, wait_until, write_service_config
from tests.test_outbox_robust import NOW, _notice
from warnd.alerting import decide, outbox
from warnd.config import load_config
from warnd.service.daemon import Daemon
from warnd.service.health import collect_status
from warnd.store import Store

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


def test_a_cron_source_polled_on_every_run_is_not_stale_over_the_weekend(tmp_path):
    """``0 6,18 * * 1-5``: polled each weekday morning and evening. The gap between its
    next two runs is 12 hours on a Saturday, but the last poll (Friday 18:00) missed no
    run: it is stale only once three runs in a row went without a successful poll."""
    src = ('\n[[sources]]\nname = "twice"\nkind = "count_table"\nlocation = "a.csv"\n'
           'cron = "0 6,18 * * 1-5"\ndimension = "use"\n')
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=src))
    oslo = ZoneInfo(cfg.general.timezone)
    friday = datetime(2026, 11, 27, 18, 0, 5, tzinfo=oslo)
    store = Store.in_dir(cfg.state_dir)
    store.record_poll("twice", ok=True, now=friday.astimezone(UTC))
    store.close()

    def stale(at: datetime) -> bool:
        (st,) = collect_status(cfg, now=at.astimezone(UTC))["sources"]
        assert st["healthy"] is not st["stale"]
        return bool(st["stale"])

    hours = [12, 24, 36, 38, 48, 60, 61, 65]  # to Monday 07:00
    assert [stale(friday + timedelta(hours=h)) for h in hours] == [False] * len(hours)
    monday = datetime(2026, 11, 30, tzinfo=oslo)
    assert not stale(monday + timedelta(hours=18, minutes=30))  # two runs missed
    assert not stale(monday + timedelta(days=1, hours=5, minutes=59))
    assert stale(monday + timedelta(days=1, hours=6, minutes=1))  # the third one too


def test_a_failing_target_muted_by_a_reload_no_longer_keeps_warnd_unhealthy(
        tmp_path, teams_server):
    """A Teams workflow that refuses every post is muted while it is mended: it is sent
    nothing from then on, so its failures before can never clear and must not keep
    `warnd status` (and /healthz) red for as long as the mute lasts; unmuted, a send
    that goes through shows it healthy."""
    teams_server.status = 500
    extra = '\n[alerting]\nfailing_after = 2\nretry_backoff = "1m"\n'
    cfg = make_config(tmp_path, target("teams", teams_server.url()), extra)
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "n1", "Advarsel")
    t = NOW
    for _ in range(2):
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(hours=1)
    st = collect_status(cfg, now=t)
    assert [h["target"] for h in st["target_health"]] == ["teams"] and not st["healthy"]

    muted = make_config(tmp_path, target("teams", teams_server.url()) + "muted = true\n",
                        extra)
    assert outbox.dispatch_pending(muted, store, now=t)["muted"] == 1
    for days in (0, 1, 7):
        st = collect_status(muted, now=t + timedelta(days=days))
        assert st["target_health"] == [] and st["healthy"], st["problems"]

    teams_server.status = 202
    t += timedelta(days=7)
    _notice(cfg, store, "n2", "Advarsel 2", now=t)
    assert outbox.dispatch_pending(cfg, store, now=t)["delivered"] == 1
    st = collect_status(cfg, now=t)
    assert st["target_health"] == [] and st["healthy"], st["problems"]


def test_a_reload_naming_another_state_directory_keeps_the_running_one(tmp_path, caplog):
    """The store, the lock that keeps a second dispatcher out and the connection held
    open belong to the directory the daemon started on. A reload that names another
    is refused as a whole (a fresh store there would tell every current episode again);
    the daemon goes on with its store, and a restart takes the new directory."""
    cfg_path = _write(tmp_path, a="1h")
    d = Daemon(load_config(cfg_path))
    started_on = d.config.state_dir
    text = cfg_path.read_text(encoding="utf-8")
    cfg_path.write_text(text.replace('state_dir = "state"', 'state_dir = "moved"')
                        .replace('interval = "1h"', 'interval = "2h"'), encoding="utf-8")
    assert d.reload() is False and d.last_reload_ok is False
    assert d.config.state_dir == d.pipeline.config.state_dir == started_on
    assert d.config.source("a").interval == "1h"
    assert "another state directory needs a restart" in caplog.text
    d.poll_job("a")
    with d.pipeline.session() as store:
        assert store.source_state("a")["n_polls"] == 1
    assert load_config(cfg_path).state_dir != started_on  # what a restart would take


def test_detection_failing_while_new_data_keep_coming_is_behind_all_the_same(
        tmp_path, monkeypatch):
    """Hour by hour through the real pipeline, a source whose table changes at every poll
    (a week more each time) and a substance whose detection fails every pass: its series
    has waited since the first change not judged, not since the latest, so warnd turns
    unhealthy after three detect intervals as it does for data that stand still."""
    from tests.conftest import write_config
    from tests.scenario import LAB_SOURCE, WEEKS, write_lab_csv
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    real = Pipeline._decide_substance

    def ketamin_breaks(self, store, substance, *a, **kw):
        if substance == "ketamin":
            raise RuntimeError("a detector bug")
        return real(self, store, substance, *a, **kw)

    t0 = datetime(2026, 1, 5, 6, tzinfo=UTC)
    write_lab_csv(tmp_path / "data" / "lab.csv")
    Pipeline(cfg, clock=lambda: t0).run_once()  # judged: nothing waits
    monkeypatch.setattr(Pipeline, "_decide_substance", ketamin_breaks)
    seen = []
    for hours in range(1, 6):
        now = t0 + timedelta(hours=hours)
        write_lab_csv(tmp_path / "data" / "lab.csv", weeks=WEEKS + hours)
        Pipeline(cfg, clock=lambda now=now: now).run_once()
        st = collect_status(cfg, now=now + timedelta(minutes=1))
        seen.append((st["detection"]["pending"], st["detection"]["behind"]))
    assert seen == [(1, False)] * 3 + [(1, True)] * 2
    assert st["detection"]["oldest_pending_at"].startswith("2026-01-05T07:00")
    monkeypatch.setattr(Pipeline, "_decide_substance", real)  # mended
    now = t0 + timedelta(hours=6)
    write_lab_csv(tmp_path / "data" / "lab.csv", weeks=WEEKS + 6)
    Pipeline(cfg, clock=lambda: now).run_once()
    st = collect_status(cfg, now=now + timedelta(minutes=1))
    assert st["detection"]["pending"] == 0 and not st["detection"]["behind"]
    write_lab_csv(tmp_path / "data" / "lab.csv", weeks=WEEKS + 7)  # a later change: anew
    now += timedelta(hours=1)
    Pipeline(cfg, clock=lambda: now).run_once()
    assert collect_status(cfg, now=now)["detection"]["pending"] == 0


def test_a_poll_whose_time_passed_while_the_daemon_stood_still_runs_late_once(tmp_path):
    """The host was suspended (or the process stopped) over a weekly source's Monday
    06:00 run: on waking, the poll runs at once — once, however many runs it missed —
    rather than being skipped until the next week."""
    src = ('\n[[sources]]\nname = "weekly"\nkind = "count_table"\nlocation = "a.csv"\n'
           'cron = "0 6 * * 1"\ndimension = "use"\n')
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=12))
    d = Daemon(load_config(write_service_config(tmp_path / "config.toml", sources=src)))
    d.pipeline.open_store().close()  # made before the jobs, as the daemon's start does
    d.schedule(d.config, first=True)
    d.scheduler.start(paused=True)
    try:
        for jid in ("detect", "dispatch", "heartbeat"):
            d.scheduler.pause_job(jid)
        d.scheduler.modify_job("poll:weekly",
                               next_run_time=datetime.now(UTC) - timedelta(hours=2))
        d.scheduler.resume()

        def polled() -> int:
            with d.pipeline.session() as store:
                return int(store.source_state("weekly").get("n_polls") or 0)

        assert wait_until(polled, 30, "the late poll")
        nxt = d.scheduler.get_job("poll:weekly").next_run_time
        assert nxt > datetime.now(UTC) and nxt.weekday() == 0 and nxt.hour == 6
    finally:
        d.scheduler.shutdown(wait=True)
    assert polled() == 1


def test_two_processes_opening_a_store_to_upgrade_at_once_both_open_it(tmp_path):
    """The daemon and the console started together after an upgrade both find the store
    of the version before and upgrade it: one does, the other waits and finds it done,
    rather than running the same steps again and failing to open the store."""
    import threading

    from tests.test_store_migration import FIXTURE_V8, MADE_IN_V8, _unpack
    from warnd.store import MIGRATIONS

    failures: list[str] = []
    for round_ in range(4):
        path = _unpack(tmp_path / str(round_), FIXTURE_V8, MADE_IN_V8)
        ready = threading.Barrier(3)

        def open_it(path=path, ready=ready) -> None:
            ready.wait()
            try:
                Store(path).close()
            except Exception as e:
                failures.append(str(e))

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert failures == []
        s = Store(path)
        assert s.schema_version == len(MIGRATIONS)
        assert s.q("SELECT COUNT(*) AS n FROM series_states")[0]["n"] > 0
        s.close()


def test_a_store_in_rollback_mode_opens_while_another_connection_writes_it(
        tmp_path, monkeypatch):
    """A store copied from a backup (or just made) is in rollback mode; switching it to
    WAL needs every other connection out, and SQLite does not wait for a writer's lock
    there by itself. The open waits for the other writer, as for any lock, instead of
    failing with "database is locked" at once (seen when two processes open such a
    store together)."""
    import sqlite3
    import threading
    import time

    from tests.test_store_migration import FIXTURE_V8, MADE_IN_V8, _unpack

    path = _unpack(tmp_path, FIXTURE_V8, MADE_IN_V8)
    other = sqlite3.connect(path, isolation_level=None)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.execute("BEGIN IMMEDIATE")  # about to write: SQLite's busy handler is not asked
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(s: float) -> None:
        waiting.set()
        real_sleep(s)

    monkeypatch.setattr(time, "sleep", sleep)  # the store pausing between its tries
    opened: list[object] = []

    def open_it() -> None:
        try:
            Store(path).close()
            opened.append("ok")
        except Exception as e:
            opened.append(e)

    th = threading.Thread(target=open_it)
    th.start()
    assert waiting.wait(30), "the open did not wait for the writer"
    other.execute("COMMIT")
    other.close()
    th.join(60)
    assert opened == ["ok"]
    s = Store(path)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_a_message_waiting_for_quiet_hours_goes_when_a_reload_ends_them(
        tmp_path, smtp_server):
    """A warning decided on Friday evening waits for Monday 08:00. A reload that lets
    warnings through at night (or takes quiet hours away) sends it with the next
    dispatch; one that ends the quiet time earlier brings its first attempt forward;
    one that keeps the quiet time as it was changes nothing."""
    quiet = '\n[alerting]\nquiet_hours = "17:00-08:00"\nquiet_days = ["sat", "sun"]\n'
    mail = target("mail", smtp_server.url())
    cfg = make_config(tmp_path, mail, quiet)
    friday = datetime(2026, 7, 10, 16, 0, tzinfo=UTC)  # 18:00 in Oslo
    store = Store.in_dir(cfg.state_dir)

    def notice(key: str, at: datetime) -> None:
        src = SimpleNamespace(name="overdosefare", region="")
        item = SimpleNamespace(key=key, title=f"Advarsel {key}", region="", summary="",
                               link="https://overdosefare.example/" + key,
                               published_at=at - timedelta(hours=1))
        assert decide.enqueue_notice(cfg, store, src, item, "ketamin", now=at) is not None

    def next_attempt(key: str) -> str:
        return store.q("SELECT d.next_attempt_at AS t FROM deliveries d JOIN alerts a ON "
                       "a.id = d.alert_id WHERE a.title LIKE ?", [f"%{key}%"])[0]["t"]

    notice("n1", friday)
    notice("n2", friday)
    assert next_attempt("n1") == "2026-07-13T06:00:00+00:00"  # Monday 08:00 in Oslo
    same = make_config(tmp_path, mail, quiet)
    assert outbox.dispatch_pending(same, store, now=friday + timedelta(minutes=5)) == \
        outbox.dispatch_pending(same, store, now=friday + timedelta(minutes=6))
    assert smtp_server.messages == [] and next_attempt("n1") == "2026-07-13T06:00:00+00:00"

    earlier = make_config(tmp_path, mail, quiet.replace('["sat", "sun"]', '["sun"]'))
    outbox.dispatch_pending(earlier, store, now=friday + timedelta(minutes=10))
    assert smtp_server.messages == [] and next_attempt("n1") == "2026-07-11T06:00:00+00:00"

    urgent = make_config(tmp_path, mail, quiet + 'urgent_severity = "warning"\n')
    counts = outbox.dispatch_pending(urgent, store, now=friday + timedelta(minutes=20))
    assert counts["delivered"] == 2 and len(smtp_server.messages) == 2
