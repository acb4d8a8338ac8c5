"""What the commands print over time: `warnd alerts` and `warnd silence list` after a
warning told through the real pipeline (the notices page read from a file, a real SMTP
server on localhost, the clock moved on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.alerting_env import notice_config, target
from tests.test_stream_digests import OSLO, _config
from tests.test_stream_notices import _page, _round
from warnd.store import Store


def test_warnd_alerts_and_silence_list_show_times_on_the_local_clock(
        tmp_path, smtp_server, capsys):
    """The warning told at 00:10 on 1 April in Oslo is listed by `warnd alerts` at
    "2026-04-01 00:10 CEST", as the console shows it, a silence for 7 days from there
    ends "2026-04-08 00:10 CEST" in `warnd silence list`, and `warnd status` says the
    notices page was last polled at "2026-04-01 00:10 CEST" (before, each printed the
    UTC time without saying so: 31 March 22:10, 7 April 22:10, 31 March 22:10)."""
    from warnd.alerting import actions
    from warnd.cli import main

    cfg = _config(tmp_path, smtp_server)
    told = datetime(2026, 4, 1, 0, 10, tzinfo=OSLO)
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     told - timedelta(minutes=5)))
    _round(cfg, told.astimezone(UTC))
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="heroin", until=told + timedelta(days=7),
                            reason="kjent", who="kari", via="cli", now=told)
    finally:
        store.close()
    capsys.readouterr()
    assert main(["--config", str(cfg.path), "alerts"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("#1 2026-04-01 00:10 CEST [warning] open "), line
    assert main(["--config", str(cfg.path), "silence", "list", "--all"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "until 2026-04-08 00:10 CEST" in line, line
    main(["--config", str(cfg.path), "status"])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("overdosefare")]
    assert " 2026-04-01 00:10 CEST " in line, line


def test_warnd_outbox_shows_a_waiting_message_s_next_attempt_on_the_local_clock(
        tmp_path, smtp_server, capsys):
    """A warning found at 23:00 in Oslo waits for the end of the quiet hours, 07:00:
    `warnd outbox` lists its next attempt at "2026-04-02 07:00 CEST" (before,
    "2026-04-02T05:00", the UTC time without saying so)."""
    from warnd.cli import main

    cfg = notice_config(tmp_path, target("ops", smtp_server.url("ops@example.org")),
                        '\n[alerting]\ndefault_targets = ["ops"]\nquiet_hours = "22:00-07:00"\n')
    night = datetime(2026, 4, 1, 23, 0, tzinfo=OSLO)
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     night - timedelta(minutes=5)))
    _round(cfg, night.astimezone(UTC))
    assert smtp_server.messages == []
    capsys.readouterr()
    assert main(["--config", str(cfg.path), "outbox"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "pending  next attempt 2026-04-02 07:00 CEST" in line, line
