"""The daemon as a real subprocess: systemd notifications, SIGHUP reload, SIGTERM.

Every wait has a deadline and looks for a log line, a notification or a file;
nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_kit import (
    DaemonProcess,
    LocalHTTP,
    NotifySocket,
    child_env,
    counts_csv,
    wait_until,
    write_service_config,
)


def source(name: str, location: str, interval: str = "1h", kind: str = "count_table",
           dimension: str = "use") -> str:
    return (f'\n[[sources]]\nname = "{name}"\nkind = "{kind}"\nlocation = "{location}"\n'
            f'interval = "{interval}"\ndimension = "{dimension}"\n')


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def n_rows(db: Path, table: str, where: str = "1", params: tuple = ()) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


@pytest.fixture
def http():
    h = LocalHTTP()
    yield h
    h.close()


def test_notify_reload_add_remove_and_reject(tmp_path, notify):
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=30))
    (tmp_path / "b.csv").write_bytes(counts_csv(["heroin"], weeks=30, seed=2))
    cfg = write_service_config(tmp_path / "config.toml", sources=source("alpha", "a.csv", "1s"))
    env = child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="2000000")
    d = DaemonProcess(cfg, tmp_path / "daemon.log", env=env).start()
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=running 1 sources" in ready and f"MAINPID={d.pid}" in ready
        d.wait_for(r"source=alpha polled")
        notify.wait_for("WATCHDOG=1")

        # a valid new config: a source is added and its job runs at once
        cfg.write_text(cfg.read_text() + source("beta", "b.csv", "1h"))
        d.signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        assert "MONOTONIC_USEC=" in notify.wait_for("RELOADING=1")
        d.wait_for(r"config reloaded from .*: 2 sources scheduled")
        d.wait_for(r"source=beta polled: 1 new documents")
        notify.messages.clear()

        # an invalid config: rejected, errors logged, the old one keeps polling
        good = cfg.read_text()
        cfg.write_text(good.replace('interval = "1h"', 'interval = "10 parsecs"'))
        d.signal(signal.SIGHUP)
        d.wait_for(r"reload rejected, keeping the running config: .*interval.*10 parsecs")
        assert "reload rejected" in notify.wait_for("STATUS=reload rejected")
        n = len(re.findall(r"source=alpha polled", d.text()))
        d.wait_for(r"source=alpha polled", count=n + 2)

        # removing a source stops its job
        cfg.write_text(write_service_config(
            tmp_path / "config.toml", sources=source("beta", "b.csv", "1h")).read_text())
        d.signal(signal.SIGHUP)
        d.wait_for(r"job=poll:alpha removed")
        d.wait_for(r"config reloaded from .*: 1 sources scheduled")

        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
        notify.wait_for("STOPPING=1")
        d.wait_for(r"warnd stopped")
    finally:
        d.kill()
    db = tmp_path / "state" / "warnd.sqlite"
    assert integrity(db) == "ok"
    assert n_rows(db, "observations", "source='beta'") == 30
    assert not re.search(r"job=\S+ failed", d.text())


def test_sigterm_during_slow_poll_lets_it_finish(tmp_path, http):
    http.files["slow"] = counts_csv(["ketamin", "heroin"], weeks=40)
    cfg = write_service_config(
        tmp_path / "config.toml", sources=source("slow", f"{http.url}/slow?s=2"),
        general='stop_timeout = "30s"\nfetch_timeout = "20s"\nfetch_deadline = "25s"')
    d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
    try:
        d.wait_for(r"warnd started")
        wait_until(lambda: http.hits.get("/slow"), 30, "the slow request to arrive")
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
    finally:
        d.kill()
    log = d.text()
    assert "SIGTERM: stopping" in log
    assert "source=slow polled: 1 new documents" in log  # the poll in flight finished
    assert log.index("SIGTERM: stopping") < log.index("source=slow polled")
    db = tmp_path / "state" / "warnd.sqlite"
    assert integrity(db) == "ok"
    assert n_rows(db, "observations", "source='slow'") == 80


def test_run_once_stopped_in_a_slow_poll_polls_and_judges_the_rest_next_time(tmp_path, http):
    """`warnd run --once --json` polls a slow lab table, then a second one; SIGTERM comes
    while the first is being fetched. That poll ends and is stored; the second source is
    not polled and detection not run, and the run says so (exit 143, ``stopped`` in the
    JSON). The next run polls the second source and judges both, so nothing polled is
    left unjudged. Before, SIGTERM ended the process in the middle of the poll."""
    http.files["slow"] = counts_csv(["ketamin"], weeks=40)
    (tmp_path / "b.csv").write_bytes(counts_csv(["heroin"], weeks=40, seed=2))
    cfg = write_service_config(
        tmp_path / "config.toml",
        sources=source("slow", f"{http.url}/slow?s=2") + source("beta", "b.csv"),
        general='fetch_timeout = "20s"\nfetch_deadline = "25s"')
    once = DaemonProcess(cfg, tmp_path / "once.log", args=("run", "--once", "--json")).start()
    try:
        wait_until(lambda: http.hits.get("/slow"), 30, "the slow request to arrive")
        once.signal(signal.SIGTERM)
        assert once.wait(timeout=60) == 143
    finally:
        once.kill()
    log = once.text()
    assert log.index("SIGTERM: stopping") < log.index("source=slow polled: 1 new documents")
    assert "source=beta" not in log and "detection started" not in log
    assert json.loads(log[log.index("\n{") + 1:])["stopped"] == {
        "signal": "SIGTERM", "not_polled": ["beta"], "detection_run": False,
        "series_waiting": 1, "deliveries_waiting": 0}
    db = tmp_path / "state" / "warnd.sqlite"
    assert n_rows(db, "observations", "source='slow'") == 40
    assert n_rows(db, "series", "data_version > judged_version") == 1
    again = DaemonProcess(cfg, tmp_path / "once.log", args=("run", "--once")).start()
    try:
        assert again.wait(timeout=60) == 0
    finally:
        again.kill()
    assert n_rows(db, "observations", "source='beta'") == 40
    assert n_rows(db, "series") == 2
    assert n_rows(db, "series", "data_version > judged_version") == 0
    assert integrity(db) == "ok"


def test_sigterm_during_hung_poll_exits_within_the_bound(tmp_path, http):
    (tmp_path / "ok.csv").write_bytes(counts_csv(["ketamin"], weeks=30))
    cfg = write_service_config(
        tmp_path / "config.toml",
        sources=source("good", "ok.csv") + source("hung", f"{http.url}/hang"),
        general='stop_timeout = "2s"\nfetch_timeout = "600s"\nfetch_deadline = "600s"')
    d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
    try:
        d.wait_for(r"source=good polled")
        from tests.service_kit import wait_until

        wait_until(lambda: http.hits.get("/hang"), 30, "the hanging request to arrive")
        d.signal(signal.SIGTERM)
        # the bound: stop_timeout (2 s) plus interpreter exit; a deadline, not a timing assert
        assert d.wait(timeout=30) == 0
    finally:
        d.kill()
    assert "jobs still running after 2 s; exiting anyway" in d.text()
    db = tmp_path / "state" / "warnd.sqlite"
    assert integrity(db) == "ok"
    assert n_rows(db, "observations", "source='good'") == 30


def test_invalid_config_at_start_exits_78(tmp_path):
    cfg = write_service_config(tmp_path / "config.toml",
                               sources=source("x", "a.csv", "soon"))
    r = subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg), "run"],
                       env=child_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    assert 'sources[0].interval: "soon" is not a duration' in r.stderr


def test_config_option_before_and_after_the_command(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    cfg = write_service_config(tmp_path / "elsewhere" / "site.toml",
                               sources=source("x", "a.csv", "soon"))
    for args in (["--config", str(cfg), "check-config"], ["check-config", "--config", str(cfg)],
                 ["--config", str(cfg), "run"], ["run", "--config", str(cfg)]):
        r = subprocess.run([sys.executable, "-m", "warnd.cli", *args], env=child_env(),
                           capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
        assert r.returncode == 78, (args, r.stderr)
        assert "site.toml" in r.stderr and '"soon" is not a duration' in r.stderr, args


def test_sigint_stops_cleanly(tmp_path, notify):
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=20))
    cfg = write_service_config(tmp_path / "config.toml", sources=source("alpha", "a.csv"))
    d = DaemonProcess(cfg, tmp_path / "daemon.log",
                      env=child_env(NOTIFY_SOCKET=str(notify.path))).start()
    try:
        notify.wait_for("READY=1")
        d.wait_for(r"source=alpha polled")
        d.signal(signal.SIGINT)
        assert d.wait(timeout=60) == 0
        notify.wait_for("STOPPING=1")
    finally:
        d.kill()
    assert "SIGINT: stopping" in d.text() and "warnd stopped" in d.text()
    assert "WATCHDOG=1" not in " ".join(notify.messages)  # no WATCHDOG_USEC, no pings


def test_reload_applies_changed_limits_without_restart(tmp_path, http):
    url = http.add_file("big.csv", counts_csv(["ketamin", "heroin"], weeks=200))
    assert len(http.files["big.csv"]) > 5000
    cfg = write_service_config(tmp_path / "config.toml", sources=source("big", url, "1s"),
                               general="fetch_max_bytes = 5000\nfetch_retries = 0")
    d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
    try:
        d.wait_for(r"source=big poll failed: .*larger than max_bytes=5000|"
                   r"source=big poll failed: .*exceeds max_bytes=5000")
        cfg.write_text(cfg.read_text().replace("fetch_max_bytes = 5000",
                                               "fetch_max_bytes = 5000000"))
        d.signal(signal.SIGHUP)
        d.wait_for(r"config reloaded")
        d.wait_for(r"source=big polled: 1 new documents, 0 unchanged, 400 observations")
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
    finally:
        d.kill()
    assert d.text().count("warnd started") == 1  # one process throughout


def test_a_reload_of_a_file_that_cannot_be_read_keeps_the_running_config(tmp_path, notify):
    """What happens to config.toml on a real host while warnd runs, each followed by a
    reload (SIGHUP): a deploy leaves a directory in its place, an editor saves it in
    Latin-1, it is removed, its symlink points to itself, an include names a file with a
    NUL character, an interval or a duration is given more digits than the calendar
    holds, its arrays nest without end, the health listener is moved to a host name the
    socket layer cannot encode. Each reload is refused and says why with the file
    (the journal, systemd's status line, ``/healthz``); the running config goes on
    polling, and the corrected file is reloaded. Before, all but the first four raised
    out of the reload (a ValueError, an OverflowError from the scheduler once the new
    config was half in force, a RecursionError, a TypeError from binding the listener),
    which ended the daemon."""
    from tests.test_config import LONG_LABEL
    from tests.test_health import free_port, get

    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=20))
    (tmp_path / "b.csv").write_bytes(counts_csv(["heroin"], weeks=20, seed=2))
    port = free_port()
    cfg = write_service_config(tmp_path / "config.toml", sources=source("alpha", "a.csv", "1s"),
                               general=f'health_listen = "127.0.0.1:{port}"\n')
    good = cfg.read_text(encoding="utf-8")
    path = str(cfg)

    def replaced_by_directory() -> None:
        cfg.unlink()
        cfg.mkdir()

    def linked_to_itself() -> None:
        cfg.unlink()
        cfg.symlink_to(cfg)

    triggers = [
        (replaced_by_directory, f"{path}: cannot read config file: Is a directory"),
        (lambda: cfg.write_bytes(good.encode() + "# økt\n".encode("latin-1")),
         f"{path}: not UTF-8 text (byte {len(good.encode()) + 2})"),
        (cfg.unlink, f"{path}: config file not found"),
        (linked_to_itself, f"{path}: cannot read config file: Too many levels of symbolic"),
        (lambda: cfg.write_text('include = ["extra\\u0000.toml"]\n' + good, encoding="utf-8"),
         repr(str(tmp_path / "extra\0.toml")) + ": cannot read config file: its name holds "
         "a NUL character"),
        (lambda: cfg.write_text(good.replace('"1s"', '"36500000d"'), encoding="utf-8"),
         f'{path}: sources[0].interval: "36500000d" is too long (at most 100 years'),
        (lambda: cfg.write_text(good.replace("[general]\n", '[general]\nstop_timeout = '
                                             '"99999999999999s"\n'), encoding="utf-8"),
         f'{path}: general.stop_timeout: "99999999999999s" is too long a duration'),
        (lambda: cfg.write_text(good + "x = " + "[" * 5000 + "]" * 5000 + "\n",
                                encoding="utf-8"),
         f"{path}: not valid TOML: arrays or tables nested too deeply"),
        (lambda: cfg.write_text(good.replace("127.0.0.1:", f"{LONG_LABEL}.example.no:"),
                                encoding="utf-8"),
         f'{path}: general.health_listen: "{LONG_LABEL}.example.no:{port}" is not a host '
         "name"),
    ]
    d = DaemonProcess(cfg, tmp_path / "daemon.log",
                      env=child_env(NOTIFY_SOCKET=str(notify.path))).start()
    try:
        notify.wait_for("READY=1")
        d.wait_for(r"source=alpha polled")
        for n, (trigger, why) in enumerate(triggers, 1):
            trigger()
            notify.messages.clear()
            d.signal(signal.SIGHUP)
            notify.wait_for("STATUS=reload rejected; running the previous config")
            assert f"reload rejected, keeping the running config: {why}" in d.text(), why
            status, body = get(f"http://127.0.0.1:{port}/healthz")
            daemon = json.loads(body)["daemon"]
            assert (status, daemon["last_reload_ok"], daemon["reloads"]) == (200, False, n)
            polls = d.text().count("source=alpha polled")
            d.wait_for(r"source=alpha polled", count=polls + 1)  # the running config
            if cfg.is_dir():
                cfg.rmdir()
            cfg.unlink(missing_ok=True)
            cfg.write_text(good, encoding="utf-8")
        cfg.write_text(good + source("beta", "b.csv"), encoding="utf-8")
        d.signal(signal.SIGHUP)
        d.wait_for(r"config reloaded from .*: 2 sources scheduled")
        assert json.loads(get(f"http://127.0.0.1:{port}/healthz")[1])["daemon"][
            "last_reload_ok"] is True
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
    finally:
        d.kill()
    assert "Traceback" not in d.text()
    assert d.text().count("warnd started") == 1  # one process throughout
