"""The long-running service: scheduler, signals, reload, systemd notification.

Signal handlers only put the signal on a queue; the main thread handles it
(``SIGHUP`` → validate the new config, then swap; ``SIGTERM``/``SIGINT`` → stop
scheduling, let running jobs finish within ``stop_timeout``, exit 0). A config
that fails validation on reload, or cannot be loaded at all, is logged and the old one
stays in force.

Liveness: a heartbeat job runs every few seconds on its own one-thread executor,
so it proves the scheduler thread still dispatches jobs even when every worker
is busy with a slow poll. Every 30 s the heartbeat also checks that the outbox
makes progress (no delivery due for longer than ``alerting.stall_after`` without an
attempt). ``WATCHDOG=1`` is sent from the main loop only while the scheduler thread
is alive, the heartbeat is fresh and the outbox moves; a stuck main loop sends
nothing at all. Either way systemd's ``WatchdogSec`` restarts the service.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from warnd.config import Config, cron_fields, load_config, parse_duration
from warnd.errors import ConfigError
from warnd.pipeline import Pipeline

log = logging.getLogger("warnd.daemon")

DISPATCH_EVERY_S = 30
HEARTBEAT_EVERY_S = 5.0
#: How often the heartbeat checks that the outbox makes progress.
PROGRESS_EVERY_S = 30.0
#: A wall clock that moved back by more than this against elapsed time was stepped.
CLOCK_STEP_S = 2.0


def sd_notify(message: str) -> bool:
    """Send a notification to systemd; does nothing outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError as e:
        log.warning("sd_notify failed: %s", e)
        return False


class _Queued:
    """Series waiting for a detect pass, shared by the daemon's threads: a set of keys,
    or everything with something new (:meth:`add` of None)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[Any] = set()
        self._all = False

    def add(self, series: Any) -> None:
        with self._lock:
            if series is None:
                self._all = True
            else:
                self._keys.update(series)

    def take(self) -> Any:
        """What is queued (None: every series), leaving nothing queued."""
        with self._lock:
            got = None if self._all else self._keys
            self._keys, self._all = set(), False
            return got

    def __bool__(self) -> bool:
        with self._lock:
            return self._all or bool(self._keys)


class Daemon:
    """Owns the scheduler; jobs call the pipeline's stages."""

    def __init__(self, config: Config, *, config_path: str | None = None,
                 stop_timeout: float | None = None, log_level: str | None = None) -> None:
        """``stop_timeout`` and ``log_level`` (``--log-level``), when given, stand over
        the config's, also after a reload."""
        self.config = config
        self.config_path = config_path or str(config.path)
        self._stop_timeout_given = stop_timeout is not None
        self.stop_timeout = (
            stop_timeout if stop_timeout is not None
            else parse_duration(config.general.stop_timeout).total_seconds()
        )
        self._log_level_given = log_level
        #: set on SIGTERM: a dispatch round then begins no more sends
        self.stopping = threading.Event()
        self.pipeline = Pipeline(config, stopping=self.stopping)
        self.events: queue.Queue[int] = queue.Queue()
        self._detect_lock = threading.Lock()
        self._queued = _Queued()
        self._dispatch_lock = threading.Lock()
        #: set once the start-up cycle has polled and judged the sources
        self._caught_up = threading.Event()
        self.scheduler = BackgroundScheduler(
            timezone=config.general.timezone,
            executors={"default": ThreadPoolExecutor(4), "heartbeat": ThreadPoolExecutor(1)},
            # a run whose time passed while the process stood still (a suspended host, a
            # stopped process) runs late, once, rather than waiting for the next: a
            # weekly source's poll is not put off a week
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(
            self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self.started_at = time.monotonic()
        self.last_loop_at = time.monotonic()
        self.last_heartbeat_at = time.monotonic()
        self.tick = 5.0
        self.health: Any = None
        self.health_error: str | None = None  # why health_listen is not served
        self._anchor: Any = None
        self.n_reloads = 0
        self.last_reload_ok: bool | None = None
        self.outbox_stalled = 0
        self._progress_checked_at = 0.0
        self._when: dict[str, Any] = {}  # each job's schedule as last configured
        self._clock_offset: float | None = None  # wall clock minus elapsed time

    # -- jobs ----------------------------------------------------------------------
    def poll_job(self, source_name: str) -> None:
        with self.pipeline.session() as store:  # one connection for poll, detect, dispatch
            res = self.pipeline.poll(source_name, store=store)
            if res.series:
                self._detect(res.series, store=store)
            self.dispatch_job(store=store)

    def _detect(self, series: Any = None, *, store: Any = None) -> None:
        """Judge ``series`` (every series with something new when None), coalesced:
        one detect pass runs at a time, and a pass asked for while another runs is
        not waited for but queued, so the running one's thread judges everything
        queued meanwhile in one more pass (polls that finish together, such as many
        sources on one schedule, are judged together: the batch step's cost is per
        pass and substance, not only per series). Then what the passes freed goes
        back to the system, so the idle daemon does not keep a cycle's arrays."""
        from warnd.allocator import release_freed_blocks

        self._queued.add(series)
        while self._queued and self._detect_lock.acquire(blocking=False):
            # whoever holds the lock judges what is queued; after releasing it looks
            # again, so nothing queued while it judged is left behind
            try:
                while self._queued:
                    self.pipeline.detect(self._queued.take(), store=store)
            finally:
                self._detect_lock.release()
        release_freed_blocks()

    def startup_job(self) -> None:
        """First cycle after start: poll every source, then judge once.

        Judging after all sources are in means a first run over history sends one
        message per substance with every agreeing source, not one per source; and a
        digest that fell due while warnd was down tells where things stand now. The
        judging covers every stored series, not only those this poll touched: periods
        a previous process stored but was killed before judging are judged now (a
        series with nothing new costs a read).
        """
        from concurrent.futures import ThreadPoolExecutor as Pool

        names = [s.name for s in self.config.sources if s.enabled]
        try:
            with Pool(max_workers=4, thread_name_prefix="startup") as pool:
                results = list(pool.map(self.pipeline.poll, names))
            self._detect()
        finally:
            self._caught_up.set()
        self.dispatch_job()
        log.info("startup cycle done: %d sources polled, %d failed", len(results),
                 sum(not r.ok for r in results))

    def detect_job(self) -> None:
        self._detect()

    def dispatch_job(self, store: Any = None) -> None:
        """Send what is due (on ``store``, the calling job's connection, or one of its
        own). A digest is made only once the start-up cycle has polled and judged the
        sources: what is open and what changed, not what was when warnd stopped."""
        if not self._dispatch_lock.acquire(blocking=False):
            return  # another thread is dispatching; it will pick ours up
        try:
            self.pipeline.dispatch(store=store, digests=self._caught_up.is_set())
        finally:
            self._dispatch_lock.release()

    def heartbeat_job(self) -> None:
        self.last_heartbeat_at = now = time.monotonic()
        if now - self._progress_checked_at >= PROGRESS_EVERY_S:
            self._progress_checked_at = now
            self.check_outbox_progress()

    def check_outbox_progress(self) -> None:
        """Count deliveries due for longer than ``alerting.stall_after`` without an
        attempt (the outbox makes no progress); liveness turns false while any are."""
        from warnd.service.health import outbox_progress

        try:
            store = self.pipeline.open_store()
        except Exception as e:  # the store cannot be read: say so; polls report it too
            log.error("outbox progress not checked: %s", e)
            return
        try:
            stalled = int(outbox_progress(self.config, store, datetime.now(UTC))["stalled"])
        except Exception as e:
            log.error("outbox progress not checked: %s", e)
            return
        finally:
            store.close()
        if stalled and not self.outbox_stalled:
            log.error("outbox makes no progress: %d deliveries due for more than %s without "
                      "an attempt", stalled, self.config.alerting.stall_after)
        elif self.outbox_stalled and not stalled:
            log.info("outbox moving again")
        self.outbox_stalled = stalled

    # -- liveness -------------------------------------------------------------------
    def scheduler_alive(self) -> bool:
        thread = getattr(self.scheduler, "_thread", None)
        return bool(self.scheduler.running and thread is not None and thread.is_alive())

    def liveness(self) -> dict[str, Any]:
        """What the watchdog and ``/healthz`` judge the daemon by."""
        now = time.monotonic()
        hb_age = now - self.last_heartbeat_at
        loop_age = now - self.last_loop_at
        sched = self.scheduler_alive()
        alive = sched and hb_age <= 3 * HEARTBEAT_EVERY_S and loop_age <= 3 * self.tick + 1
        reason = None
        if not sched:
            reason = "scheduler not running"
        elif hb_age > 3 * HEARTBEAT_EVERY_S:
            reason = f"scheduler heartbeat {hb_age:.0f} s old"
        elif loop_age > 3 * self.tick + 1:
            reason = f"main loop stuck for {loop_age:.0f} s"
        elif self.outbox_stalled:
            reason = (f"outbox makes no progress ({self.outbox_stalled} deliveries due for "
                      f"more than {self.config.alerting.stall_after})")
        alive = alive and not self.outbox_stalled
        return {
            "alive": alive,
            "reason": reason,
            "outbox_stalled": self.outbox_stalled,
            "pid": os.getpid(),
            "scheduler_running": sched,
            "heartbeat_age_s": round(hb_age, 3),
            "main_loop_age_s": round(loop_age, 3),
            "uptime_s": round(now - self.started_at, 3),
            "config": self.config_path,
            "reloads": self.n_reloads,
            "last_reload_ok": self.last_reload_ok,
            "jobs": len(self.scheduler.get_jobs()) if sched else 0,
            **{f"health_listen_{k}": v for k, v in self.health_served().items()},
        }

    def _on_job_event(self, ev: Any) -> None:
        job_id = getattr(ev, "job_id", "?")
        if getattr(ev, "exception", None) is not None:
            log.error("job=%s failed: %s: %s", job_id, type(ev.exception).__name__, ev.exception)
        elif ev.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("job=%s still running; this run is skipped", job_id)
        else:
            log.warning("job=%s missed its run time", job_id)

    # -- scheduling -----------------------------------------------------------------
    def schedule(self, config: Config, *, first: bool = False) -> None:
        """Make the scheduler's jobs match ``config``: add, replace, remove.

        On ``first`` (start-up) every source is polled by the start-up cycle and its
        own job first runs one interval later; a source added by a reload is polled
        at once. A job whose schedule a reload leaves as it was keeps its next run
        time: reloading does not put off a source's poll (nor the detect pass) by up
        to an interval each time; a changed schedule counts from the reload (a changed
        time zone changes a cron schedule, not an interval).
        """
        tz = config.general.timezone
        wanted: set[str] = set()
        now = datetime.now(UTC)
        existing = {j.id for j in self.scheduler.get_jobs()}

        def add(jid: str, func: Any, trigger: Any, when: Any, **kwargs: Any) -> None:
            """Add or replace job ``jid``, unless it exists with the same ``when``."""
            if jid in existing and self._when.get(jid) == when:
                return
            self._when[jid] = when
            self.scheduler.add_job(func, trigger, id=jid, name=jid, replace_existing=True,
                                   **kwargs)

        for src in config.sources:
            if not src.enabled:
                continue
            jid = f"poll:{src.name}"
            wanted.add(jid)
            if src.cron:
                trigger: Any = CronTrigger(**cron_fields(src.cron), timezone=tz)
            else:
                trigger = IntervalTrigger(
                    seconds=parse_duration(src.interval or "1h").total_seconds(), timezone=tz
                )
            kwargs: dict[str, Any] = {}
            if jid not in existing and not first:
                kwargs["next_run_time"] = now  # poll a source added by a reload at once
            # an interval is elapsed time, the same in every zone: a changed time zone
            # moves a cron schedule's runs, not an interval's
            add(jid, self.poll_job, trigger, (src.cron, src.interval, tz if src.cron else None),
                args=[src.name], **kwargs)
        wanted |= {"detect", "dispatch", "startup", "heartbeat"}
        add("heartbeat", self.heartbeat_job, IntervalTrigger(seconds=HEARTBEAT_EVERY_S),
            HEARTBEAT_EVERY_S, executor="heartbeat")
        add("detect", self.detect_job,
            IntervalTrigger(seconds=parse_duration(config.general.detect_interval).total_seconds()),
            config.general.detect_interval)
        # At start, deliveries a previous process left pending go out at once, not
        # only after the start-up cycle has polled every source.
        add("dispatch", self.dispatch_job, IntervalTrigger(seconds=DISPATCH_EVERY_S),
            DISPATCH_EVERY_S, **({} if "dispatch" in existing else {"next_run_time": now}))
        for jid in existing - wanted:
            self.scheduler.remove_job(jid)
            self._when.pop(jid, None)
            log.info("job=%s removed (source no longer configured or disabled)", jid)

    def follow_clock(self) -> None:
        """Keep the elapsed-time jobs going when the wall clock is stepped back (NTP
        correcting a clock that ran fast, a virtual machine restored from a snapshot).

        The scheduler keeps run times on the wall clock: stepped back an hour, every job
        that runs after an interval (the heartbeat, dispatch, detection, a source polled
        every hour) would wait that hour more, and the daemon, its heartbeat stopped,
        would send nothing and be taken for hung. Such a job keeps the time it had
        still to wait, and so do the outbox's retries and back-offs, counted in elapsed
        time too (:meth:`warnd.store.Store.clock_stepped_back`); a source polled at
        clock times (``cron``) keeps them. A step forward needs nothing: a run whose
        time passed runs late, once, as after a suspended host.
        """
        offset = datetime.now(UTC).timestamp() - time.monotonic()
        before, self._clock_offset = self._clock_offset, offset
        if before is None or offset - before > -CLOCK_STEP_S:
            return
        step = timedelta(seconds=offset - before)
        for job in self.scheduler.get_jobs():
            if job.next_run_time is not None and not isinstance(job.trigger, CronTrigger):
                self.scheduler.modify_job(job.id, next_run_time=job.next_run_time + step)
        log.warning("wall clock stepped back by %.0f s; jobs run after an interval keep the "
                    "time they had to wait", -step.total_seconds())
        # so do the outbox's retries and back-offs (off the main loop: a store write)
        self.scheduler.add_job(self._outbox_clock_stepped, args=[step],
                               next_run_time=datetime.now(UTC))

    def _outbox_clock_stepped(self, step: timedelta) -> None:
        n = self._on_store("outbox waits not moved after the clock step",
                           lambda store: store.clock_stepped_back(step, datetime.now(UTC)))
        if n:
            log.info("%d outbox waits moved back by the clock step", n)

    def _on_store(self, failed: str, fn: Callable[[Any], Any]) -> Any:
        """``fn`` on a store connection of its own, closed after; on any error, the error
        logged after ``failed`` and None returned (the next dispatch reports a store it
        cannot use)."""
        try:
            store = self.pipeline.open_store()
            try:
                return fn(store)
            finally:
                store.close()
        except Exception as e:
            log.error("%s: %s", failed, e)
            return None

    # -- signals and main loop ----------------------------------------------------------
    def _enqueue_signal(self, signum: int, _frame: Any) -> None:
        self.events.put(signum)

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._enqueue_signal)

    def reload(self) -> bool:
        """Validate the config file again and swap to it; keep the running one when it
        is invalid or names another state directory (the store, its lock and the
        connection held open stay with the directory the daemon started on: a new one
        needs a restart, or its fresh store would tell current episodes again, beside a
        `run --once` no lock keeps out)."""
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load_config(self.config_path)
            if new.state_dir != self.config.state_dir:
                raise ConfigError(
                    f"general.state_dir: {new.state_dir} is not the running "
                    f"{self.config.state_dir}; another state directory needs a restart",
                    path=self.config_path)
        except ConfigError as e:
            return self._reload_rejected(e.path, e.messages)
        except Exception as e:  # noqa: BLE001 - whatever reading it raised: never ends warnd
            return self._reload_rejected(
                self.config_path, [f"not loaded: {type(e).__name__}: {e}"])
        self.n_reloads += 1
        old_listen = self.config.general.health_listen
        if not self._stop_timeout_given:
            self.stop_timeout = parse_duration(new.general.stop_timeout).total_seconds()
        if self._log_level_given is None and new.general.log_level != self.config.general.log_level:
            from warnd import logs

            logs.set_level(new.general.log_level)
        readdressed = _readdressed(self.config, new)
        self.config = new
        self.pipeline = Pipeline(new, stopping=self.stopping)
        self.schedule(new)
        if readdressed:
            self._forget_backoff(readdressed)
        if new.general.health_listen != old_listen or self.health_error:
            self._rebind_health()  # also one that could not be bound before
        self.last_reload_ok = True
        n = len([s for s in new.sources if s.enabled])
        log.info("config reloaded from %s: %d sources scheduled", self.config_path, n)
        sd_notify(f"READY=1\nSTATUS=running {n} sources")
        return True

    def _reload_rejected(self, path: str | None, messages: list[str]) -> bool:
        """A reload refused: why, in the journal (the file and each cause), in
        ``/healthz`` (``last_reload_ok``) and systemd's status line; the running config
        stays."""
        for m in messages:
            log.error("reload rejected, keeping the running config: %s: %s", path, m)
        self.n_reloads += 1
        self.last_reload_ok = False
        sd_notify("READY=1\nSTATUS=reload rejected; running the previous config")
        return False

    def _forget_backoff(self, names: list[str]) -> None:
        """The targets ``names`` have another address: their back-off ends."""
        from warnd.alerting.outbox import forget_backoff

        self._on_store(f"back-off of targets {','.join(names)} not ended",
                       lambda store: forget_backoff(store, names, datetime.now(UTC)))

    def _start_health(self) -> None:
        self.health_error = None
        listen = self.config.general.health_listen
        if listen:
            try:
                self.health = self._bind_health(listen).start()
            except OSError as e:
                self.health_error = e.strerror or str(e)
                log.error("health listener on %s not started: %s", listen, self.health_error)
                self.health = None
        self._record_health()

    def _bind_health(self, listen: str) -> Any:
        """A health listener bound to ``listen``, not yet serving; OSError when the
        address cannot be bound."""
        from warnd.config import parse_listen
        from warnd.service.health import HealthServer

        if parse_listen(listen)[0] in ("0.0.0.0", "::", ""):
            log.warning("health listener on %s accepts connections from every network and has "
                        "no authentication; bind it to 127.0.0.1 or a management address",
                        listen)
        return HealthServer(listen, lambda: self.config, self.liveness)

    def _rebind_health(self) -> None:
        """A reload changed ``general.health_listen``: serve the new address, and stop
        the old listener only once the new one is bound. When it cannot be (its port in
        use), the old one keeps serving, and the error names the address and why."""
        from warnd.config import parse_listen

        listen = self.config.general.health_listen
        old = self.health
        if not listen:
            self._stop_health()
            self.health_error = None
            self._record_health()
            return
        try:
            try:
                new = self._bind_health(listen)
            except OSError:
                # the old listener may hold the port itself (another host, the same port)
                if old is None or parse_listen(old.listen)[1] != parse_listen(listen)[1]:
                    raise
                old.stop()
                self.health = None
                try:
                    new = self._bind_health(listen)
                except OSError:
                    try:
                        self.health = self._bind_health(old.listen).start()
                    except OSError as e:
                        log.error("health listener on %s not started again: %s", old.listen,
                                  e.strerror or e)
                    raise
        except OSError as e:
            self.health_error = e.strerror or str(e)
            if self.health is not None:
                log.error("health listener on %s not started: %s; still serving %s", listen,
                          self.health_error, self.health.listen)
            else:
                log.error("health listener on %s not started: %s", listen, self.health_error)
            self._record_health()
            return
        if self.health is not None:
            self.health.stop()
        self.health = new.start()
        self.health_error = None
        self._record_health()

    def health_served(self) -> dict[str, Any]:
        """The health listener's address served (None: none), the one configured, and
        why that one is not served (None when it is, or none is configured)."""
        return {"serving": self.health.listen if self.health is not None else None,
                "configured": self.config.general.health_listen or None,
                "error": self.health_error}

    def _record_health(self) -> None:
        """Tell ``warnd status`` which health listener is served
        (:func:`warnd.service.health.write_listener`)."""
        from warnd.service.health import write_listener

        try:
            write_listener(self.config.state_dir, self.health_served())
        except OSError as e:
            log.error("health listener not recorded in %s: %s", self.config.state_dir, e)

    def _stop_health(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None

    def _hold_store(self) -> None:
        """Keep one store connection open while the daemon runs.

        SQLite checkpoints the WAL into the database file whenever the *last*
        connection closes; with this one open, a job closing its own connection
        does not. This connection's checkpointing thread (:mod:`warnd.checkpointer`)
        copies the WAL back while the jobs go on; their connections use it.
        """
        try:
            self._anchor = self.pipeline.open_store()
            self._anchor.checkpoint_in_background()
        except Exception as e:  # the jobs report a store they cannot open themselves
            log.warning("cannot hold the store open: %s", e)

    def run(self) -> int:
        self.install_signal_handlers()
        self._hold_store()
        self.schedule(self.config, first=True)
        self.scheduler.add_job(self.startup_job, id="startup", name="startup",
                               next_run_time=datetime.now(UTC))
        self.scheduler.start()
        self.follow_clock()  # the clock as the jobs were scheduled
        self.last_heartbeat_at = time.monotonic()
        self._start_health()
        n = len([s for s in self.config.sources if s.enabled])
        log.info("warnd started: %d sources scheduled, state in %s", n, self.config.state_dir)
        sd_notify(f"READY=1\nSTATUS=running {n} sources\nMAINPID={os.getpid()}")
        watchdog_us = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_us and os.environ.get("WATCHDOG_PID", str(os.getpid())) != str(os.getpid()):
            watchdog_us = 0  # the watchdog is meant for another process
        self.tick = min(5.0, watchdog_us / 2e6) if watchdog_us else 5.0
        last_ping = 0.0
        try:
            while True:
                try:
                    signum = self.events.get(timeout=self.tick)
                except queue.Empty:
                    signum = 0
                self.last_loop_at = now = time.monotonic()
                self.follow_clock()
                if watchdog_us and now - last_ping >= self.tick:
                    live = self.liveness()
                    if live["alive"]:
                        sd_notify("WATCHDOG=1")
                        last_ping = now
                    else:
                        log.error("not alive (%s); no watchdog ping", live["reason"])
                if not signum:
                    continue
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: reloading %s", self.config_path)
                    self.reload()
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    log.info("%s: stopping", signal.Signals(signum).name)
                    break
        finally:
            sd_notify("STOPPING=1")
            self._stop_health()
            from warnd.service.health import clear_listener

            clear_listener(self.config.state_dir)
            self._shutdown()
            if self._anchor is not None:
                self._anchor.close()
        log.info("warnd stopped")
        return 0

    def _shutdown(self) -> None:
        self.stopping.set()  # a round of sends ends with those in flight
        self.scheduler.pause()
        done = threading.Event()

        def stop() -> None:
            try:
                self.scheduler.shutdown(wait=True)
            finally:
                done.set()

        threading.Thread(target=stop, name="shutdown", daemon=True).start()
        if not done.wait(self.stop_timeout):
            log.error("jobs still running after %.0f s; exiting anyway (work is transactional)",
                      self.stop_timeout)
            # Worker threads are not daemon threads; leave without joining them. Every
            # store write is one transaction, so what was not committed never happened.
            logging.shutdown()
            os._exit(0)


def _readdressed(old: Config, new: Config) -> list[str]:
    """The targets of both configs that ``new`` reaches otherwise: another ``url``,
    password or timeouts."""
    keys = ("url", "password_env", "password_file", "connect_timeout", "read_timeout")
    was = {t.name: t for t in old.targets}
    return [t.name for t in new.targets if t.name in was
            and any(getattr(t, k) != getattr(was[t.name], k) for k in keys)]
