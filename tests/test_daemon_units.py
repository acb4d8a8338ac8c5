"""Daemon units in-process: signals only enqueue; liveness gates the watchdog; polls that
finish while a detect pass runs are judged together after it."""

from __future__ import annotations

import os
import signal
import threading
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


def _three_sources(tmp_path) -> Daemon:
    sources = ""
    for i, name in enumerate("abc"):
        (tmp_path / f"{name}.csv").write_bytes(counts_csv(["ketamin"], weeks=60, seed=i + 1))
        sources += (f'\n[[sources]]\nname = "{name}"\nkind = "count_table"\n'
                    f'location = "{name}.csv"\ninterval = "1h"\ndimension = "use"\n')
    return Daemon(load_config(write_service_config(tmp_path / "config.toml", sources=sources)))


def _recorded(d: Daemon, hold: threading.Event | None = None,
              started: threading.Event | None = None) -> list:
    """The sources of the series each detect pass was asked to judge; the first pass
    waits for ``hold`` once it has said so on ``started``."""
    passes: list = []
    real = d.pipeline.detect

    def detect(series=None, **kw):
        passes.append(None if series is None else sorted({k[0] for k in series}))
        if hold is not None and len(passes) == 1:
            started.set()
            assert hold.wait(60)
        return real(series, **kw)

    d.pipeline.detect = detect
    return passes


def test_a_poll_alone_is_judged_before_its_job_returns(tmp_path):
    d = _three_sources(tmp_path)
    passes = _recorded(d)
    d.poll_job("a")
    assert passes == [["a"]]
    with d.pipeline.session() as store:
        assert store.pending_series() == {}


def test_a_poll_job_polls_judges_and_dispatches_on_one_store_connection(tmp_path):
    d = _three_sources(tmp_path)
    opened, used = [], []
    real_open, real_poll, real_dispatch = (d.pipeline.open_store, d.pipeline.poll,
                                           d.pipeline.dispatch)

    def open_store(*a, **kw):
        opened.append(real_open(*a, **kw))
        return opened[-1]

    def poll(name, *, store=None):
        used.append(("poll", store))
        return real_poll(name, store=store)

    def dispatch(*, store=None, **kw):
        used.append(("dispatch", store))
        return real_dispatch(store=store, **kw)

    d.pipeline.open_store, d.pipeline.poll, d.pipeline.dispatch = open_store, poll, dispatch
    d.poll_job("a")
    assert len(opened) == 1  # one connection for the whole job
    assert used == [("poll", opened[0]), ("dispatch", opened[0])]


def test_polls_that_finish_while_a_pass_runs_are_judged_together_after_it(tmp_path):
    d = _three_sources(tmp_path)
    hold, started = threading.Event(), threading.Event()
    passes = _recorded(d, hold, started)
    first = threading.Thread(target=d.poll_job, args=("a",))
    first.start()
    try:
        assert started.wait(60)  # a's pass is running (and held)
        d.poll_job("b")  # these return at once: their series wait for the running pass
        d.poll_job("c")
        assert passes == [["a"]]
        with d.pipeline.session() as store:  # stored, not yet judged
            assert {k[0] for k in store.pending_series()} == {"a", "b", "c"}
    finally:
        hold.set()
        first.join(60)
    assert not first.is_alive()
    assert passes == [["a"], ["b", "c"]]  # one more pass, for both
    with d.pipeline.session() as store:
        assert store.pending_series() == {}
    d.detect_job()  # the hourly pass: every series with something new, none now
    assert passes[-1] is None
