"""Alerting keys in config.toml: each bad value is one line naming the key."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import write_config
from warnd.config import load_config
from warnd.errors import ConfigError
from warnd.store import MIGRATIONS, Store, _m1

MAIL = (
    '[[targets]]\nname = "ops"\n'
    'url = "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org"\ntags = ["email"]\n'
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[alerting]\nquiet_hours = "5pm-8am"\n',
            'alerting.quiet_hours: "5pm" is not a time of day',
        ),
        (
            '[alerting]\nquiet_hours = "08:00-08:00"\n',
            'alerting.quiet_hours: "08:00-08:00" is empty',
        ),
        (
            '[alerting]\nquiet_days = ["sat", "sunday"]\n',
            "alerting.quiet_days[1]: 'sunday' is not allowed",
        ),
        (
            '[alerting]\nquiet_days = ["mon","tue","wed","thu","fri","sat","sun"]\n',
            "alerting.quiet_days: every day is quiet",
        ),
        (
            '[alerting]\nurgent_severity = "high"\n',
            "alerting.urgent_severity: 'high' is not allowed",
        ),
        ("[alerting]\nsend_resolve = true\n", "alerting.send_resolve: unknown key"),
        (
            '[alerting.digest]\nschedule = "weekly"\ntargets = ["nobody"]\n',
            'alerting.digest.targets: "nobody" matches no target name or tag',
        ),
        (
            '[alerting.digest]\nschedule = "hourly"\ntargets = ["email"]\n',
            "alerting.digest.schedule: 'hourly' is not allowed",
        ),
        (
            '[alerting.digest]\nat = "25:00"\ntargets = ["email"]\n',
            'alerting.digest.at: "25:00" is not a time of day',
        ),
        ("[general]\nunhealthy_after = 0\n", "general.unhealthy_after"),
        (
            '[[targets]]\nname = "t"\nurl = "msteams://a/b/c/d"\n',
            "create a Teams Workflow (Power Automate) and use workflows://",
        ),
        (
            '[[targets]]\nname = "broken-mail"\nurl = "mailto://127.0.0.1:25?to=o@example.org"\n',
            'targets[1].url: target "broken-mail" cannot be used: mail through a server given '
            "by IP address (127.0.0.1) needs from=ADDRESS in the URL",
        ),
    ],
)
def test_alerting_errors_name_the_key(tmp_path, body, expected):
    if body.startswith("[general]"):
        p = write_config(tmp_path, MAIL)
        p.write_text(
            p.read_text().replace(
                'log_level = "DEBUG"\n', 'log_level = "DEBUG"\nunhealthy_after = 0\n'
            )
        )
    else:
        p = write_config(tmp_path, MAIL + body)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert any(expected in m for m in ei.value.messages), ei.value.messages


def test_alerting_keys_load(tmp_path):
    p = write_config(
        tmp_path,
        MAIL + '[alerting]\nquiet_hours = "17:00-08:00"\n'
        'quiet_days = ["sat", "sun"]\nurgent_severity = "warning"\nsend_resolved = true\n'
        '[alerting.digest]\nschedule = "weekly"\nweekday = "mon"\nat = "08:00"\n'
        'targets = ["email"]\n',
    )
    a = load_config(p).alerting
    assert a.quiet_days == ["sat", "sun"] and a.digest.targets == ["email"] and a.send_resolved


def test_store_upgrades_a_version_1_file(tmp_path):
    p = tmp_path / "old.sqlite"
    conn = sqlite3.connect(p)
    _m1(__import__("sqlite_utils").Database(conn))
    conn.execute(
        "INSERT INTO deliveries (alert_id, target, status, next_attempt_at, created_at) "
        "VALUES (1, 'ops', 'pending', '2026-01-01', '2026-01-01')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    s = Store(p)
    assert s.schema_version == len(MIGRATIONS) >= 2
    assert s.q("SELECT target, due_at FROM deliveries") == [{"target": "ops", "due_at": None}]
    sid = s.add_silence(
        substance="ketamin",
        kind=None,
        source=None,
        reason="r",
        until=__import__("datetime").datetime(2030, 1, 1, tzinfo=__import__("datetime").UTC),
    )
    assert [r["id"] for r in s.silences(active_only=True)] == [sid]
    s.close()
    assert Store(p).schema_version == len(MIGRATIONS)  # re-opening is a no-op


def test_every_alerting_key_and_command_is_documented(root):
    from warnd.config import AlertingConfig, DigestConfig

    doc = (root / "docs" / "alerting.md").read_text(encoding="utf-8")
    for key in AlertingConfig.model_fields:
        assert f"`{key}`" in doc, key
    for key in DigestConfig.model_fields:
        assert f"`digest.{key}`" in doc, key
    assert "[general] unhealthy_after" in doc
    for cmd in ("warnd test-notify", "warnd silence add", "warnd silence list",
                "warnd silence expire", "warnd alerts ack", "warnd digest",
                "WARND_TEST_CRASH_AFTER=enqueue"):
        assert cmd in doc, cmd
