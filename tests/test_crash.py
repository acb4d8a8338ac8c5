"""A real ``warnd run --once`` killed (SIGKILL) between deciding and sending."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.alerting_env import make_config, target
from tests.conftest import env_with_root
from tests.servers import wait_for
from tests.test_alerting import COUNTS, write_counts
from warnd.store import Store


def _run(cfg_path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = env_with_root()
    env.pop("WARND_TEST_CRASH_AFTER", None)
    if crash:
        env["WARND_TEST_CRASH_AFTER"] = crash
    return subprocess.run(
        [sys.executable, "-m", "warnd.cli", "--config", str(cfg_path), "run", "--once", "--json"],
        env=env, capture_output=True, text=True, timeout=240,
    )


def _setup(tmp_path, smtp_server):
    write_counts(tmp_path, 60, jump_weeks=5)
    return make_config(tmp_path, target("mail", smtp_server.url()), sources=COUNTS)


def test_sigkill_after_enqueue_then_restart_delivers_exactly_once(tmp_path, smtp_server):
    cfg = _setup(tmp_path, smtp_server)
    r = _run(cfg.path, crash="enqueue")
    assert r.returncode == -9, r.stderr
    assert smtp_server.messages == []
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT target, status, attempts FROM deliveries") == [
        {"target": "mail", "status": "pending", "attempts": 0}]
    store.close()
    r = _run(cfg.path)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    assert "ketamin" in smtp_server.messages[0]["Subject"]
    r = _run(cfg.path)  # nothing new, nothing resent
    assert r.returncode == 0, r.stderr
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 1
    assert store.q("SELECT status FROM deliveries") == [{"status": "delivered"}]
    assert len(smtp_server.messages) == 1


def test_sigkill_after_accept_before_record_resends_once(tmp_path, smtp_server):
    """The one documented window: accepted but not yet recorded → sent again (at least once)."""
    cfg = _setup(tmp_path, smtp_server)
    r = _run(cfg.path, crash="send")
    assert r.returncode == -9, r.stderr
    wait_for(lambda: len(smtp_server.messages) == 1, what="the first email")
    assert _run(cfg.path).returncode == 0
    wait_for(lambda: len(smtp_server.messages) == 2, what="the resent email")
    assert _run(cfg.path).returncode == 0
    assert len(smtp_server.messages) == 2
    assert os.path.exists(cfg.state_dir / "warnd.sqlite")
