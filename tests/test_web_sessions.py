"""Console sessions kept in the store, and the login rate limit shared by every console.

Real ``warnd web`` processes on loopback, real ``warnd user`` commands, httpx as the
browser (cookies, forms with their CSRF token).
"""

from __future__ import annotations

import json
import re

import httpx

from tests.conftest import write_config
from tests.servers import free_port
from tests.webkit import Console, warnd

KARI = ("kari", "kari-password-1")
WEB = "\n[web]\nsecure_cookies = false\nlogin_attempts = 5\n"


def _setup(tmp_path, *users):
    cfg = write_config(tmp_path, WEB, state_dir=str(tmp_path / "state"))
    state = tmp_path / "state"
    for name, pw in users:
        r = warnd(cfg, state, "user", "add", name, "--role", "viewer", "--password-stdin",
                  stdin=pw + "\n")
        assert r.returncode == 0, r.stderr
    return cfg, state


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _login(console, user, agent="test-browser"):
    c = httpx.Client(base_url=console.url, headers={"User-Agent": agent})
    r = c.post("/login", data={"user": user[0], "password": user[1],
                               "csrf": _csrf(c.get("/login").text)})
    assert r.status_code == 303, r.text
    return c


def _in(c) -> bool:
    """True while the client's session is good (a page, not the way to the login)."""
    r = c.get("/")
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def _sessions(cfg, state, name, *extra):
    r = warnd(cfg, state, "user", "sessions", name, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_sessions_are_listed_and_ended_one_by_one(tmp_path):
    cfg, state = _setup(tmp_path, KARI, ("ola", "ola-password-12"))
    console = Console(cfg, state, free_port()).start()
    clients = []
    try:
        laptop = _login(console, KARI, "laptop")
        phone = _login(console, KARI, "phone")
        clients += [laptop, phone]
        listed = _sessions(cfg, state, "kari")
        assert sorted(s["agent"] for s in listed) == ["laptop", "phone"]
        assert {s["address"] for s in listed} == {"127.0.0.1"}
        assert _in(laptop) and _in(phone)

        # the command line ends one session: that one only
        lap_id = next(s["id"] for s in listed if s["agent"] == "laptop")
        r = warnd(cfg, state, "user", "logout", "kari", "--session", lap_id)
        assert r.returncode == 0 and "1 session of kari ended" in r.stdout
        assert not _in(laptop) and _in(phone)
        r = warnd(cfg, state, "user", "logout", "kari", "--session", lap_id)
        assert r.returncode == 1 and "no current session" in r.stderr
        assert [s["state"] for s in _sessions(cfg, state, "kari", "--all")
                if s["id"] == lap_id] == ["ended"]

        # the console: a user sees their sessions and ends the others
        tablet = _login(console, KARI, "tablet")
        clients.append(tablet)
        page = phone.get("/account").text
        assert "tablet" in page and "phone" in page and "laptop" not in page
        r = phone.post("/account/sessions/end-others", data={"csrf": _csrf(page)})
        assert r.status_code == 303
        assert not _in(tablet) and _in(phone)
        # ... or one of them, and not another user's
        tablet = _login(console, KARI, "tablet")
        clients.append(tablet)
        tab_id = next(s["id"] for s in _sessions(cfg, state, "kari") if s["agent"] == "tablet")
        ola = _login(console, ("ola", "ola-password-12"))
        clients.append(ola)
        r = ola.post(f"/account/sessions/{tab_id}/end", data={"csrf": _csrf(
            ola.get("/account").text)})
        assert r.status_code == 404 and _in(tablet)
        r = phone.post(f"/account/sessions/{tab_id}/end", data={"csrf": _csrf(
            phone.get("/account").text)})
        assert r.status_code == 303 and not _in(tablet)
        # without the form's token, nothing is ended
        assert phone.post("/account/sessions/end-others", data={}).status_code == 403

        # logging out ends the session in the store: a copied cookie is worthless after it
        copied = httpx.Client(base_url=console.url, cookies=dict(phone.cookies))
        clients.append(copied)
        assert _in(copied)
        phone.post("/logout", data={"csrf": _csrf(phone.get("/").text)})
        assert not _in(copied)
        assert _sessions(cfg, state, "kari") == []

        # a changed password ends every session of the user; so does removing a user
        again = _login(console, KARI)
        clients.append(again)
        r = warnd(cfg, state, "user", "add", "kari", "--role", "viewer", "--update",
                  "--password-stdin", stdin="a-new-password-2\n")
        assert r.returncode == 0, r.stderr
        assert not _in(again)
        assert _in(ola)
        r = warnd(cfg, state, "user", "remove", "ola")
        assert r.returncode == 0, r.stderr
        assert not _in(ola)
        assert [s["ended_why"] for s in _sessions(cfg, state, "ola", "--all")] == ["removed"]
        r = warnd(cfg, state, "user", "sessions", "nobody")
        assert r.returncode == 1 and "no user 'nobody'" in r.stderr
    finally:
        for c in clients:
            c.close()
        console.stop()


def test_login_rate_limit_is_shared_by_consoles_and_kept_over_a_restart(tmp_path):
    cfg, state = _setup(tmp_path, KARI)
    one = Console(cfg, state, free_port()).start()
    two = Console(cfg, state, free_port()).start()
    try:
        clients = [httpx.Client(base_url=c.url) for c in (one, two)]
        tokens = [_csrf(c.get("/login").text) for c in clients]

        def attempt(i: int, password: str = "wrong-password") -> int:
            return clients[i].post("/login", data={"user": "kari", "password": password,
                                                   "csrf": tokens[i]}).status_code

        # five failures, spread over two console processes, count together
        assert [attempt(0), attempt(1), attempt(0), attempt(1), attempt(0)] == [401] * 5
        assert attempt(1) == 429 and attempt(0, KARI[1]) == 429
        for c in clients:
            c.close()
        # a restarted console still knows
        one.stop()
        one = Console(cfg, state, free_port()).start()
        with httpx.Client(base_url=one.url) as c:
            r = c.post("/login", data={"user": "kari", "password": KARI[1],
                                       "csrf": _csrf(c.get("/login").text)})
            assert r.status_code == 429
    finally:
        one.stop()
        two.stop()
