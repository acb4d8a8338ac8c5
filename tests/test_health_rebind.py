"""A reload that moves ``general.health_listen`` to an address that cannot be bound keeps
the old listener serving, says why, and ``/healthz`` and ``warnd status`` name the address
served; a later reload binds the new address once it is free."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error

from tests.service_kit import DaemonProcess, counts_csv, wait_until, write_service_config
from tests.test_health import cli, free_port, get
from tests.test_service import source


def refused(url: str) -> bool:
    try:
        get(url)
    except urllib.error.URLError:
        return True
    return False


def test_a_busy_new_health_address_keeps_the_old_listener(tmp_path):
    (tmp_path / "a.csv").write_bytes(counts_csv(["ketamin"], weeks=20))
    old, new = free_port(), free_port()
    cfg = write_service_config(tmp_path / "config.toml", sources=source("lab", "a.csv", "1h"),
                               general=f'health_listen = "127.0.0.1:{old}"')
    busy = socket.socket()
    busy.bind(("127.0.0.1", new))
    busy.listen()
    d = DaemonProcess(cfg, tmp_path / "daemon.log").start()
    try:
        d.wait_for(rf"health listener on http://127.0.0.1:{old}")
        cfg.write_text(cfg.read_text().replace(f":{old}", f":{new}"))
        d.signal(signal.SIGHUP)
        d.wait_for(rf"health listener on 127.0.0.1:{new} not started: Address already in use; "
                   rf"still serving 127.0.0.1:{old}")
        d.wait_for(r"config reloaded")
        code, body = get(f"http://127.0.0.1:{old}/healthz")  # still answers
        live = json.loads(body)["daemon"]
        assert code in (200, 503) and live["reloads"] == 1
        assert live["health_listen_serving"] == f"127.0.0.1:{old}"
        assert live["health_listen_configured"] == f"127.0.0.1:{new}"
        assert live["health_listen_error"] == "Address already in use"
        st = cli(cfg, "status")
        assert (f"health listener: http://127.0.0.1:{old} (general.health_listen "
                f"127.0.0.1:{new} not bound: Address already in use)") in st.stdout
        doc = json.loads(cli(cfg, "status", "--json").stdout)["health_listener"]
        assert doc["serving"] == f"127.0.0.1:{old}" and doc["pid"] == d.pid
        assert doc["error"] == "Address already in use"

        # the port freed, the next reload binds it and lets the old one go
        busy.close()
        d.signal(signal.SIGHUP)
        d.wait_for(rf"health listener on http://127.0.0.1:{new}")
        code, body = wait_until(
            lambda: (r := get(f"http://127.0.0.1:{new}/healthz")) and r, 30, "the new listener")
        live = json.loads(body)["daemon"]
        assert live["health_listen_serving"] == f"127.0.0.1:{new}"
        assert live["health_listen_error"] is None
        assert refused(f"http://127.0.0.1:{old}/healthz")
        assert f"health listener: http://127.0.0.1:{new}\n" in cli(cfg, "status").stdout
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
    finally:
        busy.close()
        d.kill()
    # stopped: no listener is said to be served
    assert json.loads(cli(cfg, "status", "--json").stdout)["health_listener"] is None


def test_a_health_listener_moved_to_every_address_on_its_port_is_rebound(tmp_path):
    """Moved from 127.0.0.1:P to 0.0.0.0:P the new address clashes with the old listener
    itself: that one is let go and the new one bound. When 0.0.0.0:P cannot be bound even
    so (another socket holds 127.0.0.2:P), the old listener is bound again and serves."""
    from warnd.config import load_config
    from warnd.service.daemon import Daemon

    port = free_port()
    path = write_service_config(tmp_path / "config.toml", sources="",
                                general=f'health_listen = "127.0.0.1:{port}"')
    d = Daemon(load_config(path))
    d._start_health()
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)
        other = socket.socket()
        other.bind(("127.0.0.2", port))
        other.listen()
        try:
            path.write_text(path.read_text().replace("127.0.0.1:", "0.0.0.0:"))
            assert d.reload() is True
            assert d.health_served() == {"serving": f"127.0.0.1:{port}",
                                         "configured": f"0.0.0.0:{port}",
                                         "error": "Address already in use"}
            assert get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)
        finally:
            other.close()
        assert d.reload() is True  # tried again: bound now
        assert d.health_served() == {"serving": f"0.0.0.0:{port}",
                                     "configured": f"0.0.0.0:{port}", "error": None}
        code, body = get(f"http://127.0.0.1:{port}/healthz")
        assert json.loads(body)["daemon"]["health_listen_serving"] == f"0.0.0.0:{port}"
        assert json.loads((tmp_path / "state" / "health-listener.json").read_text())[
            "serving"] == f"0.0.0.0:{port}"
    finally:
        d._stop_health()
