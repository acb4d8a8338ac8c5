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


def test_sigkill_inside_the_round_leaves_nothing_half_done(tmp_path, smtp_server):
    """Killed after the first alert is written but before the round commits: no alert,
    no episode state, so the restart decides the round again and sends it once."""
    cfg = _setup(tmp_path, smtp_server)
    r = _run(cfg.path, crash="enqueue")
    assert r.returncode == -9, r.stderr
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0
    assert store.q("SELECT COUNT(*) AS n FROM episodes WHERE scope LIKE 'series:%'")[0]["n"] == 0
    store.close()
    assert _run(cfg.path).returncode == 0
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    assert _run(cfg.path).returncode == 0
    assert len(smtp_server.messages) == 1


def _write(dir_, name, values):
    from datetime import date, timedelta

    lines = ["period,substance,value"]
    start = date(2025, 1, 6)
    lines += [f"{(start + timedelta(weeks=i)).isoformat()},ketamin,{v}"
              for i, v in enumerate(values)]
    (dir_ / name).mkdir(exist_ok=True)
    (dir_ / name / f"{name}.csv").write_text("\n".join(lines) + "\n")


def test_sigkill_between_two_alerts_of_one_substance_loses_neither(tmp_path, smtp_server):
    """One series rising, one falling (alert_decreases): two alerts in one round. A kill
    after the first is written loses neither: the restart sends both, each once."""
    import random

    rnd = random.Random(3)
    up = [max(0, round(rnd.gauss(6 if i < 55 else 24, 2))) for i in range(60)]
    down = [max(0, round(rnd.gauss(30 if i < 55 else 4, 2))) for i in range(60)]
    _write(tmp_path, "lab", up)
    _write(tmp_path, "lab2", down)
    sources = COUNTS + COUNTS.replace('"lab"', '"lab2"').replace("lab/", "lab2/")
    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      "\n[detection]\nalert_decreases = true\n", sources=sources)
    r = _run(cfg.path, crash="enqueue")
    assert r.returncode == -9, r.stderr
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0
    store.close()
    r = _run(cfg.path)
    assert r.returncode == 0, r.stderr
    store = Store.in_dir(cfg.state_dir)
    rows = store.q("SELECT direction FROM alerts ORDER BY direction")
    assert [x["direction"] for x in rows] == ["decrease", "increase"]
    wait_for(lambda: len(smtp_server.messages) == 2, what="both emails")
    assert store.q("SELECT DISTINCT status FROM deliveries") == [{"status": "delivered"}]
    store.close()
    assert _run(cfg.path).returncode == 0
    assert len(smtp_server.messages) == 2


def test_sigkill_after_the_round_commits_then_restart_delivers_exactly_once(
        tmp_path, smtp_server):
    cfg = _setup(tmp_path, smtp_server)
    r = _run(cfg.path, crash="round")
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
    # the repeat is recognisably the same message
    first, again = smtp_server.messages
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith("<warnd.1.mail.")
