"""``warnd user``, ``warnd token``, ``warnd web --listen`` and action-link signatures."""

from __future__ import annotations

import io
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import write_config
from warnd.alerting import links
from warnd.cli import main
from warnd.store import Store
from warnd.web import auth


def _cfg(tmp_path):
    return str(write_config(tmp_path, "", state_dir=str(tmp_path / "state")))


def test_user_add_hashes_the_password_and_checks_input(tmp_path, monkeypatch, capsys):
    cfg = _cfg(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["--config", cfg, "user", "add", "kari", "--role", "operator",
                 "--password-stdin"]) == 0
    store = Store.in_dir(tmp_path / "state")
    try:
        row = store.q("SELECT role, password_hash FROM users WHERE name='kari'")[0]
        assert row["role"] == "operator" and row["password_hash"].startswith("$argon2id$")
        assert "a-long-password" not in row["password_hash"]
        assert auth.check_password(store, "kari", "a-long-password")["name"] == "kari"
        assert auth.check_password(store, "kari", "wrong-password") is None
    finally:
        store.close()
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", cfg, "user", "add", "ola", "--role", "viewer",
                 "--password-stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("another-password\n"))
    assert main(["--config", cfg, "user", "add", "kari", "--role", "viewer",
                 "--password-stdin"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["--config", cfg, "user", "disable", "kari"]) == 0
    store = Store.in_dir(tmp_path / "state")
    try:
        assert auth.check_password(store, "kari", "a-long-password") is None
    finally:
        store.close()


def test_token_is_shown_once_and_stored_hashed(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert main(["--config", cfg, "token", "create", "nightly", "--role", "viewer"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("wt_") and len(token) > 40
    store = Store.in_dir(tmp_path / "state")
    try:
        row = store.q("SELECT token_hash FROM api_tokens WHERE name='nightly'")[0]
        assert token not in row["token_hash"] and row["token_hash"] == auth.token_hash(token)
        assert auth.token_principal(store, token)["role"] == "viewer"
        assert main(["--config", cfg, "token", "create", "nightly", "--role", "viewer"]) == 2
        assert main(["--config", cfg, "token", "revoke", "nightly"]) == 0
        assert auth.token_principal(store, token) is None
    finally:
        store.close()


def test_web_refuses_a_bad_listen_address(tmp_path, capsys):
    assert main(["--config", _cfg(tmp_path), "web", "--listen", "localhost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_action_links_expire_and_resist_tampering():
    secret = "k" * 40
    tok = links.sign(secret, 7, "ack")
    assert links.read(secret, tok, 3600) == ({"a": 7, "do": "ack"}, None)
    assert links.read("other-key-" * 4, tok, 3600) == (None, "invalid")
    assert links.read(secret, tok[:-2] + "AA", 3600) == (None, "invalid")

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 86400

    old = URLSafeTimedSerializer(secret, salt=links.SALT, signer=Old).dumps({"a": 7, "do": "ack"})
    assert links.read(secret, old, 7 * 86400) == (None, "expired")


def test_login_rate_limit_window(tmp_path):
    now = [1000.0]
    store = Store.in_dir(tmp_path)
    try:
        rl = auth.RateLimit(3, lambda: store, window_s=60, clock=lambda: now[0])
        for _ in range(3):
            assert not rl.blocked("a")
            rl.fail("a")
        assert rl.blocked("a") and not rl.blocked("b")
        # another console process on the same store sees the same count
        assert auth.RateLimit(3, lambda: store, window_s=60, clock=lambda: now[0]).blocked("a")
        now[0] += 61
        assert not rl.blocked("a")
        rl.fail("b")  # a new failure clears those older than the window: the table stays small
        assert store.q("SELECT key FROM login_failures") == [{"key": "b"}]
        rl.reset("b")
        assert not store.q("SELECT 1 FROM login_failures")
    finally:
        store.close()


def test_the_console_shows_times_in_the_configured_zone(tmp_path):
    """Stored times are UTC; the console shows them as staff read them, in
    ``general.timezone`` with the zone's name, across the autumn change of the clocks."""
    from warnd.config import load_config
    from warnd.web.app import Web

    web = Web(load_config(_cfg(tmp_path)), secure_cookies=False)
    when = web.env.from_string("{{ t|when }}")
    assert when.render(t="2026-10-24T22:30:00+00:00") == "2026-10-25 00:30 CEST"
    assert when.render(t="2026-10-25T07:00:00+00:00") == "2026-10-25 08:00 CET"
    assert when.render(t=None) == ""
