"""Sources that hang, fail, loop, flood or attack: bounded time and memory, each recorded
as that source's error or problem, and the good source next to them unaffected.

A real ``warnd run --once`` in a subprocess against a local HTTP server, with
small limits set in ``[general]``. Memory is the child's own peak RSS, compared
with a run over the good source alone: a bound rather than a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.service_kit import (
    MEASURED,
    LocalHTTP,
    child_env,
    counts_csv,
    stray_tracebacks,
    write_service_config,
)
from tests.test_service import integrity, n_rows, source


def test_hostile_sources_are_bounded_and_isolated(tmp_path):
    http = LocalHTTP()
    try:
        http.add_file("good.csv", counts_csv(["ketamin", "heroin"], weeks=30))
        sources = (
            source("good", f"{http.url}/files/good.csv")
            + source("hang", f"{http.url}/hang")
            + source("errors", f"{http.url}/500")
            + source("loop", f"{http.url}/loop")
            + source("huge", f"{http.url}/big")
            + source("drip", f"{http.url}/drip")
            + source("laughs", f"{http.url}/laughs", kind="overdosefare",
                     dimension="availability")
        )
        cfg = write_service_config(
            tmp_path / "config.toml", sources=sources,
            general='fetch_timeout = "1s"\nfetch_deadline = "3s"\nfetch_max_bytes = 1000000\n'
                    'fetch_retries = 1\nfetch_max_redirects = 5')
        # the same run with the good source alone: the memory every run needs
        base_cfg = write_service_config(
            tmp_path / "base.toml", sources=source("good", f"{http.url}/files/good.csv"),
            state_dir="base-state")
        base_file = tmp_path / "base-maxrss"
        b = subprocess.run([sys.executable, "-c", MEASURED, str(base_file), "--config",
                            str(base_cfg), "run", "--once"], env=child_env(),
                           capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
        assert b.returncode == 0, b.stderr
        base_kib = int(base_file.read_text())
        rss_file = tmp_path / "maxrss"
        r = subprocess.run(
            [sys.executable, "-c", MEASURED, str(rss_file),
             "--config", str(cfg), "run", "--once", "--json"],
            env=child_env(), capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
        peak_kib = int(rss_file.read_text())
        assert r.returncode == 0, r.stderr
        assert not stray_tracebacks(r.stderr)
        polls = {p["source"]: p for p in json.loads(r.stdout)["polls"]}
        assert polls["good"]["ok"] and polls["good"]["observations"] == 60
        errors = {k: (p["error"] or "") for k, p in polls.items()}
        assert "total deadline of 3 s exceeded" in errors["hang"] or "timed out" in errors["hang"]
        assert "HTTP 500" in errors["errors"]
        assert "too many redirects" in errors["loop"]
        assert "exceeds max_bytes=1000000" in errors["huge"] or "larger than" in errors["huge"]
        assert "deadline" in errors["drip"] or "max_bytes" in errors["drip"]
        for name in ("hang", "errors", "loop", "huge", "drip"):
            assert not polls[name]["ok"], name
        # the entity bomb is refused by the parser: a problem of that source, nothing expanded
        assert polls["laughs"]["problems"] == 1
        # peak memory stays bounded: the 100 MB body is never held (it would add 100 MiB)
        assert peak_kib - base_kib < 60 * 1024, f"peak RSS {peak_kib} KiB vs {base_kib} KiB"
    finally:
        http.close()
    db = tmp_path / "state" / "warnd.sqlite"
    assert integrity(db) == "ok"
    assert n_rows(db, "observations", "source='good'") == 60
    assert n_rows(db, "source_state", "consecutive_failures=1") == 5
    assert n_rows(db, "problems", "source='laughs' AND message LIKE '%ENTITY%'") == 1
    status = subprocess.run(
        [sys.executable, "-m", "warnd.cli", "--config", str(cfg), "status", "--json"],
        env=child_env(), capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    st = {s["name"]: s for s in json.loads(status.stdout)["sources"]}
    assert st["errors"]["last_error"] and "HTTP 500" in st["errors"]["last_error"]
    assert st["good"]["last_error"] is None
