"""The daemon as a real process: scheduling, failure isolation, clean stop."""

from __future__ import annotations

import signal

from tests.conftest import write_config
from tests.daemonproc import DaemonProcess
from tests.scenario import LAB_SOURCE, media_titles, write_lab_csv, write_rss

BROKEN = """
[[sources]]
name = "broken"
kind = "rss"
location = "data/missing.xml"
interval = "1s"
dimension = "interest"
"""


def test_daemon_polls_alerts_survives_failing_job_and_stops_cleanly(tmp_path):
    write_lab_csv(tmp_path / "data" / "lab.csv")
    write_rss(tmp_path / "data" / "media" / "f.xml", media_titles())
    cfg = write_config(tmp_path, LAB_SOURCE.format(interval="1s") + BROKEN)
    d = DaemonProcess(cfg)
    try:
        d.wait_for("warnd started: 2 sources scheduled")
        d.wait_for("substance=ketamin kind=trend")  # the alert, decided by the daemon
        # the broken source keeps failing, and the good one keeps being polled
        d.wait_for("source=broken poll failed", count=3)
        d.wait_for("source=lab polled", count=3)
        assert not any("substance=heroin kind=trend" in ln for ln in d.lines)
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
        assert any("warnd stopped" in ln for ln in d.lines)
    finally:
        d.kill()


def test_invalid_config_exits_78_with_the_key(tmp_path):
    cfg = write_config(tmp_path, LAB_SOURCE.format(interval="10 parsecs"))
    d = DaemonProcess(cfg)
    try:
        assert d.wait() == 78
        assert any('sources[0].interval: "10 parsecs" is not a duration' in ln for ln in d.lines)
    finally:
        d.kill()


def test_daemon_on_the_demo_data(root, tmp_path):
    """The shipped config as a real service process: alerts for the rising substances."""
    d = DaemonProcess(root / "config.toml", env={"WARND_STATE_DIR": str(tmp_path / "state")})
    try:
        d.wait_for("warnd started: 10 sources scheduled")
        d.wait_for("substance=kokain kind=trend severity=critical", timeout=120)
        d.wait_for("substance=ketamin kind=trend severity=critical", timeout=120)
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
        assert not any("substance=heroin kind=trend" in ln or "substance=xanor kind=trend" in ln
                       for ln in d.lines)
        # history is judged after every source is in: one message per substance
        assert len([ln for ln in d.lines if "substance=kokain kind=trend" in ln]) == 1
    finally:
        d.kill()
