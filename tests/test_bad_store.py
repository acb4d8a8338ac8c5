"""A damaged, truncated or vanished store: warnd refuses to run with a clear line,
never starts afresh where a store existed, and a store that cannot be opened is
reported by the daemon's jobs, not raised as a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.service_kit import stray_tracebacks
from tests.test_store_faults import _config, run_once
from warnd.config import load_config
from warnd.pipeline import Pipeline


def _damage(db: Path) -> None:
    """Overwrite pages in the middle of the file (the header stays intact)."""
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):
        data[start + 100:start + 600] = b"\xa5" * 500
    db.write_bytes(bytes(data))


def test_damaged_store_is_refused_at_start(tmp_path):
    cfg = _config(tmp_path, tmp_path / "state", weeks=400)
    assert run_once(cfg).returncode == 0
    db = tmp_path / "state" / "warnd.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    _damage(db)
    r = run_once(cfg)
    assert r.returncode == 1, r.stderr
    assert "damaged" in r.stderr and "restore it from a backup" in r.stderr, r.stderr
    assert not stray_tracebacks(r.stderr)
    assert "poll " not in r.stdout  # nothing was polled into a damaged store


def test_zero_byte_or_missing_store_is_not_silently_started_afresh(tmp_path):
    cfg = _config(tmp_path, tmp_path / "state")
    assert run_once(cfg).returncode == 0
    db = tmp_path / "state" / "warnd.sqlite"
    assert (tmp_path / "state" / "warnd.sqlite.marker").exists()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"")
    r = run_once(cfg)
    assert r.returncode == 1
    assert "the store is empty, but a store existed here" in r.stderr, r.stderr
    assert not stray_tracebacks(r.stderr)
    assert db.stat().st_size == 0  # nothing was created in its place
    db.unlink()
    r = run_once(cfg)
    assert r.returncode == 1 and "the store is missing" in r.stderr, r.stderr
    # an operator who wants a fresh store says so by removing the marker
    (tmp_path / "state" / "warnd.sqlite.marker").unlink()
    assert run_once(cfg).returncode == 0


def test_store_open_errors_in_the_stages_are_logged_not_raised(tmp_path, caplog):
    cfg_path = _config(tmp_path, tmp_path / "state")
    cfg = load_config(cfg_path)
    pipe = Pipeline(cfg)
    pipe.dispatch()  # makes the store (and its marker)
    (tmp_path / "state" / "warnd.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp_path / "state" / "warnd.sqlite") + suffix).unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR):
        res = pipe.poll("lab")
        assert not res.ok and "the store is missing" in res.error
        assert pipe.detect() == []
        assert pipe.dispatch()["delivered"] == 0
    msgs = [r.getMessage() for r in caplog.records]
    assert any("poll not stored" in m for m in msgs)
    assert any("detection not run" in m for m in msgs)
    assert any("dispatch not run" in m for m in msgs)


# -- smaller checks ---------------------------------------------------------------------
def test_empty_config_is_refused_unless_allowed(tmp_path, capsys):
    from warnd.cli import main

    p = tmp_path / "empty.toml"
    p.write_text('[general]\nstate_dir = "state"\n', encoding="utf-8")
    assert main(["check-config", str(p)]) == 78
    err = capsys.readouterr().err
    assert "no source is configured" in err and "no target is configured" in err
    p.write_text('[general]\nstate_dir = "state"\nallow_empty = true\n', encoding="utf-8")
    assert main(["check-config", str(p)]) == 0


def test_check_config_catches_a_missing_password_variable(tmp_path, capsys, monkeypatch):
    from tests.conftest import write_config
    from warnd.cli import main

    monkeypatch.delenv("WARND_TEST_SMTP_PASSWORD", raising=False)
    p = write_config(tmp_path, '''
[[sources]]
name = "lab"
kind = "count_table"
location = "lab/"
dimension = "use"

[[targets]]
name = "mail"
url = "mailtos://alerts@smtp.example.org?to=ops@example.org"
password_env = "WARND_TEST_SMTP_PASSWORD"
''')
    assert main(["check-config", str(p)]) == 78
    assert "environment variable WARND_TEST_SMTP_PASSWORD is not set" in capsys.readouterr().err
    monkeypatch.setenv("WARND_TEST_SMTP_PASSWORD", "s3cret")
    assert main(["check-config", str(p)]) == 0


def test_health_listener_on_every_address_is_warned_about(tmp_path, capsys):
    from tests.conftest import write_config
    from warnd.cli import main

    p = write_config(tmp_path, "", name="c.toml")
    text = p.read_text().replace('log_level = "DEBUG"', 'log_level = "DEBUG"\nhealth_listen = '
                                 '"0.0.0.0:9464"')
    p.write_text(text)
    assert main(["check-config", str(p)]) == 0
    assert "accepts connections from every network" in capsys.readouterr().err


def test_secret_url_parameters_are_masked():
    from warnd.logs import redact

    line = redact("GET https://h.example/a?secret=s1&client_secret=s2&signature=s3"
                  "&X-Amz-Signature=s4&auth=s5&session=s6&page=2")
    for s in ("s1", "s2", "s3", "s4", "s5", "s6"):
        assert f"={s}" not in line
    assert "page=2" in line


def test_markdown_report_escapes_feed_titles():
    from warnd.report.render import md_link, md_text

    assert md_text("[klikk](http://evil.example) <b>*fet*</b>") == (
        "\\[klikk\\]\\(http://evil.example\\) \\<b\\>\\*fet\\*\\</b\\>")
    assert md_link("javascript:alert(1)") == ""
    assert md_link("https://ok.example/a") == "<https://ok.example/a>"
