"""Under systemd (``$JOURNAL_STREAM``) each log line carries its journald priority and no
timestamp; secrets are masked in every line; one event is one line."""

from __future__ import annotations

import logging

from warnd import logs


def test_journald_priorities_one_line_and_masked(monkeypatch, capsys):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    logs.setup("DEBUG")
    try:
        log = logging.getLogger("warnd.pipeline")
        log.error("source=%s poll failed: %s", "feed",
                  "https://user:Pa55word@host/x?token=T0ken&apikey=K3y: HTTP 500")
        log.warning("two\nlines")
        log.info("alert=%d target=%s delivered", 7, "mail")
        log.debug("dispatch started")
    finally:
        logs.setup("INFO")
        monkeypatch.delenv("JOURNAL_STREAM")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("<3>warnd.pipeline: source=feed poll failed: https://user:***@host")
    assert "token=***" in lines[0] and "apikey=***" in lines[0]
    assert not any(s in lines[0] for s in ("Pa55word", "T0ken", "K3y"))
    assert lines[1] == "<4>warnd.pipeline: two | lines"
    assert lines[2] == "<6>warnd.pipeline: alert=7 target=mail delivered"
    assert lines[3] == "<7>warnd.pipeline: dispatch started"
    assert len(lines) == 4
