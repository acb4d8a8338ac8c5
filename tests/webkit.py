"""A real console for tests: the demo store, users and tokens, ``warnd web`` on loopback.

The store is filled by the real pipeline on the shipped demo scenario; the console
runs as its own process (``warnd web --listen 127.0.0.1:PORT``) exactly as a user
starts it. Browser tests drive Debian's chromium through Playwright.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, env_with_root
from tests.servers import free_port, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
OPERATOR = ("ola", "operator-pass-1")
VIEWER = ("kari", "viewer-pass-12")


def demo_config(dir_: Path, *, base_url: str, lang: str = "no") -> Path:
    """The shipped config.toml and its sources, with locations made absolute, plus [web]."""
    main = (ROOT / "config.toml").read_text(encoding="utf-8")
    src = (ROOT / "examples" / "config.sources.toml").read_text(encoding="utf-8")
    src = src.replace('location = "examples/', f'location = "{ROOT}/examples/')
    (dir_ / "sources.toml").write_text(src, encoding="utf-8")
    main = main.replace('include = ["examples/config.sources.toml"]', 'include = ["sources.toml"]')
    main = main.replace('language = "no"', f'language = "{lang}"')
    assert "\n[web]\n" in main
    main = main.replace("\n[web]\n", f'\n[web]\nbase_url = "{base_url}"\nlogin_attempts = 5\n')
    p = dir_ / "config.toml"
    p.write_text(main, encoding="utf-8")
    return p


def warnd(config: Path, state: Path, *args: str, stdin: str | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = env_with_root()
    env["WARND_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-c", "from warnd.cli import main; raise SystemExit(main())",
         "--config", str(config), *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False)


class Console:
    """``warnd web`` as a child process on a free loopback port."""

    def __init__(self, config: Path, state: Path, port: int) -> None:
        self.config, self.state, self.port = config, state, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Console:
        env = env_with_root()
        env["WARND_STATE_DIR"] = str(self.state)
        self.log = open(self.state.parent / "web.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from warnd.cli import main; raise SystemExit(main())",
             "--config", str(self.config), "web", "--listen", f"127.0.0.1:{self.port}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "warnd web exited"
            try:
                return httpx.get(self.url + "/login", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=60, what="warnd web to answer")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def demo_console(tmp_path_factory) -> Any:
    """(console, config path, state dir, tokens) on a store the demo pipeline filled."""
    base = tmp_path_factory.mktemp("web")
    state = base / "state"
    port = free_port()
    cfg = demo_config(base, base_url=f"http://127.0.0.1:{port}")
    r = warnd(cfg, state, "run", "--once", "--json")
    assert r.returncode == 0, r.stderr
    for (name, pw), role in ((OPERATOR, "operator"), (VIEWER, "viewer")):
        r = warnd(cfg, state, "user", "add", name, "--role", role, "--password-stdin",
                  stdin=pw + "\n")
        assert r.returncode == 0, r.stderr
    tokens = {}
    for role in ("viewer", "operator"):
        r = warnd(cfg, state, "token", "create", f"script-{role}", "--role", role)
        assert r.returncode == 0, r.stderr
        tokens[role] = r.stdout.strip()
    console = Console(cfg, state, port).start()
    try:
        yield console, cfg, state, tokens
    finally:
        console.stop()


def launch_browser() -> Any:
    """Debian's chromium through Playwright, for the ``browser`` fixture of
    ``tests/conftest.py`` (one for the whole run: a second Playwright cannot start in
    the same process while one is open)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("chromium is not installed: run `make test` or `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                              else shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def login(browser: Any, console: Console, user: tuple[str, str]) -> Any:
    ctx = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=user]", user[0])
    page.fill("input[name=password]", user[1])
    page.click("form.login button")
    page.wait_for_url(console.url + "/")
    return page


os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
