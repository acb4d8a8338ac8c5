"""Shared fixtures: config files written to a temp dir, a real SQLite store, a fixed clock."""

from __future__ import annotations

import os
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's config or writes outside its temp dir."""
    for var in ("WARND_CONFIG", "WARND_STATE_DIR", "STATE_DIRECTORY", "NOTIFY_SOCKET",
                "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "WATCHDOG_USEC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers  # `main()` binds a handler to the captured stderr
    root.setLevel(level)


SUBSTANCES = """
[substances.ketamin]
label = "ketamin"
names = ["ketamin", "ketamine"]
slang = ["ket"]

[substances.heroin]
label = "heroin"
names = ["heroin"]
slang = ["minus"]
"""


def write_config(dir_: Path, body: str, *, substances: str = SUBSTANCES,
                 state_dir: str = "state", name: str = "config.toml") -> Path:
    p = dir_ / name
    # a config without sources or targets is refused unless it says so on purpose
    empty_ok = "[[sources]]" not in body or "[[targets]]" not in body
    p.write_text(
        textwrap.dedent(
            f"""
            [general]
            state_dir = "{state_dir}"
            log_level = "DEBUG"
            """
        )
        + ("allow_empty = true\n" if empty_ok else "")
        + textwrap.dedent(substances)
        + textwrap.dedent(body),
        encoding="utf-8",
    )
    return p


@pytest.fixture(scope="session")
def browser():
    """A real browser (Debian's chromium, Playwright), shared by every test module."""
    from tests.webkit import launch_browser

    yield from launch_browser()


@pytest.fixture
def fixed_now():
    return datetime(2026, 4, 6, 8, 0, tzinfo=UTC)


@pytest.fixture
def root() -> Path:
    return ROOT


def env_with_root() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def smtp_server():
    from tests.servers import SmtpServer

    srv = SmtpServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory):
    import trustme

    ca = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ca, bundle


@pytest.fixture
def teams_server(tls_ca, monkeypatch):
    """The Teams workflow stand-in: HTTPS with a test CA that requests trusts."""
    from tests.servers import HttpsServer

    ca, bundle = tls_ca
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    srv = HttpsServer(ca).start()
    yield srv
    srv.stop()


@pytest.fixture
def microsoft_host(monkeypatch):
    """Resolve the Microsoft workflow host name to the loopback sink, as DNS would
    resolve it to Microsoft: apprise's own URL rules stay as they are."""
    import socket

    from tests.servers import MICROSOFT_HOST

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == MICROSOFT_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return MICROSOFT_HOST
