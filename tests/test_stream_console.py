"""Staff acting in the console over time: the real ``warnd web`` on loopback, logged-in
users as browsers (httpx: cookies, forms with their CSRF token), the real decide and
outbox with a real SMTP server. The console acts at the wall clock's now, as it does in
service, so the clock the alerting is moved by starts there."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from tests.alerting_env import finding, make_config, seed_series, target
from tests.servers import free_port, wait_for
from tests.webkit import Console, warnd
from warnd.alerting import decide, outbox
from warnd.store import Store

KARI = ("kari", "kari-password-1")
OLA = ("ola", "ola-password-12")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _login(console: Console, user: tuple[str, str]) -> httpx.Client:
    """A browser logged in as ``user`` (closed with the console: ``desk``)."""
    c = httpx.Client(base_url=console.url, timeout=30)
    console.browsers.append(c)
    r = c.post("/login", data={"user": user[0], "password": user[1],
                               "csrf": _csrf(c.get("/login").text)})
    assert r.status_code == 303, r.text
    return c


@pytest.fixture
def desk(tmp_path, smtp_server):
    """(config, store, console): mail to a real SMTP server, operators kari and ola, and
    ``warnd web`` on the port the messages' links point to."""
    port = free_port()
    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      f'\n[web]\nsecure_cookies = false\nbase_url = "http://127.0.0.1:{port}"\n')
    for name, pw in (KARI, OLA):
        r = warnd(cfg.path, cfg.state_dir, "user", "add", name, "--role", "operator",
                  "--password-stdin", stdin=pw + "\n")
        assert r.returncode == 0, r.stderr
    store = Store.in_dir(cfg.state_dir)
    console = Console(cfg.path, cfg.state_dir, port).start()
    console.browsers = []
    try:
        yield cfg, store, console
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
        store.close()


def test_a_kvitter_link_followed_after_a_colleague_acknowledged_names_the_colleague(
        desk, smtp_server):
    """Ketamine's rise is mailed to the desk. Kari acknowledges it in the console; a
    little later Ola, reading the same email, follows its "Kvitter" link and confirms.
    The store keeps Kari's acknowledgement, and the page Ola gets says so: acknowledged
    by kari. Before, it told Ola the alert was acknowledged by ola, while the console
    and `warnd alerts --json` said kari."""
    cfg, store, console = desk
    seed_series(store, "lab")
    now = datetime.now(UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=now)
    assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the rise's email")
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    (link,) = re.findall(r"Kvitter: (\S+)", text)
    kari, ola = _login(console, KARI), _login(console, OLA)
    page = kari.get(f"/alerts/{a['id']}").text
    assert kari.post(f"/alerts/{a['id']}/ack", data={"csrf": _csrf(page)}).status_code == 303
    confirm = ola.get(link.removeprefix(console.url))
    assert confirm.status_code == 200
    done = ola.post(link.removeprefix(console.url), data={"csrf": _csrf(confirm.text)})
    assert done.status_code == 200
    assert store.q("SELECT status, acked_by FROM alerts") == [
        {"status": "acked", "acked_by": "kari"}]
    assert f"Varsel #{a['id']} er kvittert av kari." in done.text
    assert "av ola" not in done.text
    assert "kari" in ola.get(f"/alerts/{a['id']}").text


def test_acknowledging_the_rise_after_its_reminder_came_ends_the_reminders(tmp_path):
    """Reminders every four weeks. Ketamine's rise is told, and four weeks later its
    reminder; only then does Kari, in the console, acknowledge the rise's message (the
    one she was sent first). No reminder follows it, week after week, while the rise
    goes on. Before, only an acknowledgement of the latest message (the reminder, which
    she had not opened) counted: the rise was reminded of every four weeks for as long
    as it lasted, each reminder one more open alert."""
    import numpy as np

    from tests.test_stream_staff import Weeks, _level

    weeks, rise = 122, 100
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, weeks)))]
    run = Weeks(tmp_path, lab, "\n[detection]\nrepeat_after_periods = 4\n"
                "\n[web]\nsecure_cookies = false\n")
    r = warnd(run.cfg.path, run.cfg.state_dir, "user", "add", KARI[0], "--role",
              "operator", "--password-stdin", stdin=KARI[1] + "\n")
    assert r.returncode == 0, r.stderr
    w = rise - 2
    while "repeat" not in [d for _, d, _ in run.told]:
        run.run(w)
        w += 1
    (opening,) = [aid for _, d, aid in run.told if d == "open"]
    console = Console(run.cfg.path, run.cfg.state_dir, free_port()).start()
    console.browsers = []
    try:
        kari = _login(console, KARI)
        page = kari.get("/alerts").text
        assert kari.post(f"/alerts/{opening}/ack",
                         data={"csrf": _csrf(page)}).status_code == 303
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
    assert run.status_of(opening) == "acked"
    told = len(run.told)
    for w in range(w, weeks):
        run.run(w)
    assert run.told[told:] == []
    store = Store.in_dir(run.cfg.state_dir)
    assert store.episode_state("substance:ketamin:trend:increase")["open"]  # still rising
    store.close()
