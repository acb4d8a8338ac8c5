"""Health: ``warnd status`` exit codes and stale sources, the /healthz and /metrics listener,
and secrets kept out of logs and status output."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta

from tests.service_kit import (
    DaemonProcess,
    JsonSink,
    LocalHTTP,
    child_env,
    counts_csv,
    notices_rss,
    wait_until,
    write_service_config,
)
from tests.test_service import source
from warnd.config import load_config
from warnd.service.health import collect_status
from warnd.store import Store


def cli(cfg, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg), *args],
                          env=env or child_env(), capture_output=True, text=True, timeout=120,
                          cwd=str(cfg.parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_stale_source_makes_status_unhealthy(tmp_path):
    cfg_path = write_service_config(
        tmp_path / "config.toml",
        sources=source("hourly", "a.csv", "1h")
        + '\n[[sources]]\nname = "weekly"\nkind = "count_table"\nlocation = "b.csv"\n'
        'cron = "0 6 * * 1"\ndimension = "use"\n'
        + source("fresh", "c.csv", "1h") + source("never", "d.csv", "1h"))
    cfg = load_config(cfg_path)
    now = datetime.now(UTC)
    store = Store.in_dir(cfg.state_dir)
    store.record_poll("hourly", ok=True, now=now - timedelta(hours=3, minutes=1))
    store.record_poll("weekly", ok=True, now=now - timedelta(days=20))
    store.record_poll("fresh", ok=True, now=now - timedelta(minutes=30))
    store.close()
    st = collect_status(cfg, now=now)
    by = {s["name"]: s for s in st["sources"]}
    assert by["hourly"]["stale"] and not by["hourly"]["healthy"]
    assert by["hourly"]["stale_after_s"] == 3 * 3600
    assert by["weekly"]["stale_after_s"] == 3 * 7 * 86400
    assert not by["weekly"]["stale"]
    assert by["fresh"]["healthy"] and by["never"]["healthy"]
    assert st["stale_sources"] == ["hourly"] and not st["healthy"]

    r = cli(cfg_path, "status")
    assert r.returncode == 1
    assert "stale: hourly" in r.stdout and "UNHEALTHY: hourly" in r.stdout
    j = cli(cfg_path, "status", "--json")
    assert j.returncode == 1 and json.loads(j.stdout)["stale_sources"] == ["hourly"]


def test_health_listener_and_metrics(tmp_path):
    http = LocalHTTP()
    sink = JsonSink()
    port = free_port()
    try:
        (tmp_path / "n.xml").write_bytes(notices_rss(2, "ketamin"))
        (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin", "heroin"], weeks=20))
        cfg = write_service_config(
            tmp_path / "config.toml",
            sources=source("lab", "a.csv", "1h")
            + source("notices", "n.xml", "1h", kind="overdosefare", dimension="availability")
            + source("broken", f"{http.url}/500", "1s"),
            targets=f'\n[[targets]]\nname = "hook"\nurl = "{sink.url}"\n',
            general=f'health_listen = "127.0.0.1:{port}"\nfetch_retries = 0')
        d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
        try:
            d.wait_for(r"health listener on http://127.0.0.1:\d+")
            d.wait_for(r"source=lab polled")
            d.wait_for(r"alert=2 target=hook delivered")
            # the failing source turns the daemon unhealthy after 3 failed polls in a row
            d.wait_for(r"source=broken poll failed: .*HTTP 500", count=3)
            d.wait_for(r"alert=3 target=hook delivered")  # the source_health alert
            code, body = wait_until(
                lambda: (r := get(f"http://127.0.0.1:{port}/healthz"))[0] == 503 and r,
                30, "/healthz to answer 503")
            doc = json.loads(body)
            assert doc["healthy"] is False and doc["unhealthy_sources"] == ["broken"]
            assert doc["daemon"]["alive"] is True and doc["daemon"]["scheduler_running"] is True
            code, metrics = get(f"http://127.0.0.1:{port}/metrics")
            text = metrics.decode()
            assert code == 200
            assert 'warnd_source_polls_total{source="lab"} 1.0' in text
            assert 'warnd_source_poll_failures_total{source="broken"}' in text
            assert 'warnd_observations{source="lab"} 40.0' in text
            assert "warnd_alerts_sent_total 3.0" in text  # two notices, one source_health
            assert "warnd_alerts_queued 0.0" in text
            assert 'warnd_source_last_success_timestamp_seconds{source="lab"}' in text
            assert 'warnd_source_healthy{source="broken"} 0.0' in text
            assert "warnd_healthy 0.0" in text
            assert "warnd_series_pending 0.0" in text  # every series polled was judged
            assert "warnd_series_pending_age_seconds 0.0" in text
            assert re.search(r"^warnd_series [1-9]\d*\.0$", text, re.M)
            wal = re.search(r"^warnd_store_wal_bytes (\d+)\.0$", text, re.M)
            assert wal and 0 < int(wal[1]) <= 64 * 2**20 + 2**20  # written, and bounded
            assert get(f"http://127.0.0.1:{port}/nope")[0] == 404

            # drop the broken source with a reload: healthy again (200)
            cfg.write_text(cfg.read_text().replace(f'location = "{http.url}/500"',
                                                   f'location = "{http.url}/500"\nenabled = false'))
            d.signal(signal.SIGHUP)
            d.wait_for(r"config reloaded")
            code, body = get(f"http://127.0.0.1:{port}/healthz")
            assert code == 200 and json.loads(body)["healthy"] is True
            d.signal(signal.SIGTERM)
            assert d.wait(timeout=60) == 0
        finally:
            d.kill()
        # the numbers come from the store, so they survive the restart
        st = collect_status(load_config(cfg))
        assert {s["name"]: s["n_polls"] for s in st["sources"]}["lab"] == 1
    finally:
        http.close()
        sink.close()


def test_a_health_host_name_the_socket_layer_cannot_encode_is_refused_at_start(tmp_path):
    """A host name with a part (between dots) longer than 63 characters, not all ASCII:
    `warnd run` and `run --once` refuse it as a config error, one line naming the key,
    exit 78, before anything is bound. Before, the daemon started, and binding the
    listener raised a TypeError."""
    from tests.test_config import LONG_LABEL

    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=20))
    listen = f"{LONG_LABEL}.example.no:{free_port()}"
    cfg = write_service_config(tmp_path / "config.toml", sources=source("lab", "a.csv", "1h"),
                               general=f'health_listen = "{listen}"\n')
    for args in (("run",), ("run", "--once")):
        done = cli(cfg, *args)
        assert done.returncode == 78, done.stderr
        assert (f'general.health_listen: "{listen}" is not a host name: each part between '
                "dots must be 1 to 63 characters long") in done.stderr
        assert "Traceback" not in done.stderr


def test_secrets_never_in_logs_or_status(tmp_path):
    http = LocalHTTP()
    sink = JsonSink()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "hook-password").write_text("Hunter2-target-secret\n")
    try:
        (tmp_path / "n.xml").write_bytes(notices_rss(1, "ketamin"))
        host = http.url.removeprefix("http://")
        cfg = write_service_config(
            tmp_path / "config.toml",
            sources=source("notices", "n.xml", "1h", kind="overdosefare",
                           dimension="availability")
            + source("private", f"http://feeduser:S3cretFeedPass@{host}/500?token=TokSecret99",
                     "1h")
            + source("keyed", f"{http.url}/missing.csv?apikey=KeySecret77", "1h"),
            targets=f'\n[[targets]]\nname = "hook"\n'
                    f'url = "json://alerts:{{password}}@127.0.0.1:{sink.port}/"\n'
                    'password_file = "hook-password"\n',
            general="fetch_retries = 0")
        env = child_env(CREDENTIALS_DIRECTORY=str(creds))
        once = cli(cfg, "--log-level", "DEBUG", "run", "--once", env=env)
        assert once.returncode == 0, once.stderr
        assert len(sink.messages) == 1
        assert sink.messages[0]["_auth"].startswith("Basic ")  # the password was used
        status = cli(cfg, "status", env=env)
        status_json = cli(cfg, "status", "--json", env=env)
        alerts = cli(cfg, "alerts", "--json", env=env)
        everything = "\n".join(
            [once.stdout, once.stderr, status.stdout, status.stderr, status_json.stdout,
             alerts.stdout])
        assert "HTTP 500" in everything and "HTTP 404" in everything  # the errors are shown
        for secret in ("Hunter2-target-secret", "S3cretFeedPass", "TokSecret99", "KeySecret77"):
            assert secret not in everything, secret
    finally:
        http.close()
        sink.close()


def test_healthz_answers_503_when_the_store_cannot_be_opened(tmp_path):
    from warnd.service.health import HealthServer

    (tmp_path / "not-a-dir").write_text("x")
    cfg = load_config(write_service_config(
        tmp_path / "config.toml", state_dir=str(tmp_path / "not-a-dir"),
        sources=source("a", "a.csv")))
    srv = HealthServer("127.0.0.1:0", lambda: cfg, lambda: {"alive": True}).start()
    try:
        host, port = srv.address
        code, body = get(f"http://{host}:{port}/healthz")
        assert code == 503
        doc = json.loads(body)
        assert doc["healthy"] is False and "cannot open the store" in doc["error"]
        assert get(f"http://{host}:{port}/metrics")[0] == 503
    finally:
        srv.stop()


def test_detection_that_keeps_failing_makes_warnd_unhealthy_after_three_intervals(
        tmp_path, monkeypatch):
    """Hour by hour through the real pipeline: a substance whose detection fails every
    pass keeps its series waiting to be judged; for up to three detect intervals that is
    shown but healthy, after that ``warnd status`` is unhealthy and says why, and once
    detection works again the series is judged and warnd is healthy."""
    from tests.conftest import write_config
    from tests.scenario import LAB_SOURCE, write_lab_csv
    from warnd.pipeline import Pipeline

    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    write_lab_csv(tmp_path / "data" / "lab.csv")
    real = Pipeline._decide_substance

    def ketamin_breaks(self, store, substance, *a, **kw):
        if substance == "ketamin":
            raise RuntimeError("a detector bug")
        return real(self, store, substance, *a, **kw)

    monkeypatch.setattr(Pipeline, "_decide_substance", ketamin_breaks)
    t0 = datetime(2026, 1, 5, 6, tzinfo=UTC)
    seen = []
    for hours in range(5):  # the daemon's hourly poll and pass, detection failing
        now = t0 + timedelta(hours=hours)
        Pipeline(cfg, clock=lambda now=now: now).run_once()
        st = collect_status(cfg, now=now + timedelta(minutes=1))
        seen.append((st["detection"]["pending"], st["detection"]["behind"], st["healthy"]))
    assert seen == [(1, False, True)] * 3 + [(1, True, False)] * 2  # past 3 hours: behind
    det = st["detection"]
    assert det["series"] == 2 and det["waited_s"] == 4 * 3600 + 60
    assert det["oldest_pending_at"].startswith("2026-01-05T06:00")
    assert st["problems"] == ["detection is behind: 1 series with data not judged yet, the "
                              "oldest waiting for 4 h (more than 3 × general.detect_interval); "
                              "the log says why"]
    r = cli(tmp_path / "config.toml", "status")
    assert r.returncode == 1 and "detection is behind: 1 series" in r.stdout
    assert "detection: 2 series, 1 with data not judged yet (the oldest since 2026-01-05T06:00" \
        in r.stdout
    monkeypatch.setattr(Pipeline, "_decide_substance", real)  # mended
    now = t0 + timedelta(hours=5)
    Pipeline(cfg, clock=lambda: now).run_once()
    # a source no longer in the config keeps its series, which are not judged: not a wait
    from feeds.base import Observation

    store = Store.in_dir(cfg.state_dir)
    store.ingest("gone", location="x.csv", sha256="0" * 64, items=(), problems=(), now=t0,
                 observations=[Observation(source="gone", substance="ketamin", region="",
                                           metric="count", period=date(2025, 12, 1),
                                           value=3.0)])
    assert len(store.pending_series()) == 1
    store.close()
    st = collect_status(cfg, now=now + timedelta(minutes=1))
    assert st["detection"]["pending"] == 0 and not st["detection"]["behind"] and st["healthy"]
    assert "detection: 2 series, all judged" in cli(tmp_path / "config.toml", "status").stdout
