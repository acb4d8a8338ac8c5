"""Staff acting in the console over time: the real ``warnd web`` on loopback, logged-in
users as browsers (httpx: cookies, forms with their CSRF token), the real decide and
outbox with a real SMTP server. The console acts at the wall clock's now, as it does in
service, so the clock the alerting is moved by starts there."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest

from tests.alerting_env import finding, make_config, seed_series, target
from tests.servers import free_port, wait_for
from tests.test_stream_staff import Weeks, _level
from tests.webkit import Console, warnd
from warnd.alerting import decide, outbox
from warnd.alerting.localtime import wall_clock
from warnd.config import load_config
from warnd.service.health import collect_status
from warnd.store import Store
from warnd.web.auth import add_user

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
    store = Store.in_dir(cfg.state_dir)
    for name, pw in (KARI, OLA):  # as `warnd user add` makes them (tests/test_web_accounts.py)
        add_user(store, name, "operator", pw)
    console = Console(cfg.path, cfg.state_dir, port).start()
    console.browsers = []
    try:
        yield cfg, store, console
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
        store.close()


def _mailed_rise(cfg, store, smtp_server) -> tuple[dict, str]:
    """The lab's ketamine rise told now and mailed to the desk: its alert, and the
    "Kvitter" link of its email."""
    seed_series(store, "lab")
    now = datetime.now(UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=now)
    assert a.get("status", "open") == "open"
    assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the rise's email")
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    (link,) = re.findall(r"Kvitter: (\S+)", text)
    return a, link


def test_a_kvitter_link_followed_after_a_colleague_acknowledged_names_the_colleague(
        desk, smtp_server):
    """Ketamine's rise is mailed to the desk. Kari acknowledges it in the console; a
    little later Ola, reading the same email, follows its "Kvitter" link and confirms.
    The store keeps Kari's acknowledgement, and the page Ola gets says so: acknowledged
    by kari. Before, it told Ola the alert was acknowledged by ola, while the console
    and `warnd alerts --json` said kari."""
    cfg, store, console = desk
    a, link = _mailed_rise(cfg, store, smtp_server)
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
    goes on, and the reminder is acknowledged with the message it repeats. Before, only
    an acknowledgement of the latest message (the reminder, which she had not opened)
    counted: the rise was reminded of every four weeks for as long as it lasted, each
    reminder one more open alert."""
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
    # its reminder, telling the same, is acknowledged with it: nothing of the rise is
    # listed as waiting for someone
    (reminder,) = [aid for _, d, aid in run.told if d == "repeat"]
    assert run.status_of(reminder) == "acked"
    assert [a["kind"] for a in collect_status(run.cfg)["open_alerts"]
            if a["substance"] == "ketamin" and a["kind"] == "trend"] == []
    told = len(run.told)
    for w in range(w, weeks):
        run.run(w)
    assert run.told[told:] == []
    store = Store.in_dir(run.cfg.state_dir)
    assert store.episode_state("substance:ketamin:trend:increase")["open"]  # still rising
    store.close()


def test_the_console_follows_an_edited_config_without_a_restart(tmp_path, smtp_server):
    """The console runs; the config is edited (heroin taken out, MDMA added) and the
    daemon reloaded. MDMA rises and its message is mailed; Kari opens it in the console
    and silences MDMA from its page: the silence is made, the alerts page offers MDMA and
    no longer heroin, and the overview names MDMA. An edit that does not load leaves
    the console on the config it had. Before, the console kept the config it was started
    with: it refused to silence MDMA ("substance 'mdma'") until someone restarted it."""
    from tests.alerting_env import SOURCES
    from tests.conftest import SUBSTANCES, write_config
    from warnd.config import load_config

    port = free_port()
    body = (SOURCES + target("mail", smtp_server.url())
            + f'\n[web]\nsecure_cookies = false\nbase_url = "http://127.0.0.1:{port}"\n')
    cfg = load_config(write_config(tmp_path, body))
    r = warnd(cfg.path, cfg.state_dir, "user", "add", KARI[0], "--role", "operator",
              "--password-stdin", stdin=KARI[1] + "\n")
    assert r.returncode == 0, r.stderr
    console = Console(cfg.path, cfg.state_dir, port).start()
    console.browsers = []
    store = Store.in_dir(cfg.state_dir)
    try:
        kari = _login(console, KARI)
        assert "heroin" in kari.get("/alerts").text
        edited = SUBSTANCES.split("[substances.heroin]")[0] + (
            '\n[substances.mdma]\nlabel = "MDMA"\nnames = ["mdma", "ecstasy"]\n')
        cfg = load_config(write_config(tmp_path, body, substances=edited))  # the reload
        seed_series(store, "lab", substance="mdma")
        now = datetime.now(UTC)
        (a,) = decide.enqueue_findings(cfg, store, "mdma",
                                       [(finding("lab", substance="mdma"), "open")], {},
                                       now=now)
        assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 1
        wait_for(lambda: len(smtp_server.messages) == 1, what="MDMA's email")
        page = kari.get(f"/alerts/{a['id']}")
        assert page.status_code == 200 and 'name="substance" value="mdma"' in page.text
        r = kari.post("/silences", data={"csrf": _csrf(page.text), "substance": "mdma",
                                         "alert_id": str(a["id"]), "duration": "14d",
                                         "reason": "known cause", "next": f"/alerts/{a['id']}"})
        assert r.status_code == 303, r.text
        assert [(s["substance"], s["created_by"]) for s in store.silences(active_only=True)
                ] == [("mdma", "kari")]
        listed = kari.get("/alerts").text
        assert '<option value="mdma">MDMA</option>' in listed
        assert '<option value="heroin">' not in listed
        assert "MDMA" in kari.get("/").text
        cfg.path.write_text(cfg.path.read_text() + "\n[broken\n")  # not TOML
        assert '<option value="mdma">MDMA</option>' in kari.get("/alerts").text
    finally:
        store.close()
        for c in console.browsers:
            c.close()
        console.stop()


def test_a_silence_form_sent_twice_makes_one_silence_that_ends_when_ended(desk,
                                                                         smtp_server):
    """Kari silences ketamine for a day from the alerts page; the form goes twice (a
    second click while the first is slow to answer, the page open in another tab), and
    another form four times at once. One silence each is made. She ends it
    early from the list, and ketamine's rise that comes next is mailed. Before, the form
    made two silences: ending the one she saw left the other holding the rise back
    for the rest of the day, told to nobody."""
    cfg, store, console = desk
    kari = _login(console, KARI)
    page = kari.get("/alerts").text
    form = {"csrf": _csrf(page), "substance": "ketamin", "duration": "1d",
            "reason": "festival"}
    for _ in range(2):
        assert kari.post("/silences", data=form).status_code == 303
    (s,) = store.silences(active_only=True)
    # sent at the same moment
    from concurrent.futures import ThreadPoolExecutor

    twice = {**form, "reason": "festival, day two"}
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: kari.post("/silences", data=twice).status_code,
                             range(4)))
    assert done == [303] * 4
    assert len(store.silences(active_only=True)) == 2
    (other,) = [x for x in store.silences(active_only=True) if x["id"] != s["id"]]
    listed = kari.get("/alerts").text
    assert kari.post(f"/silences/{other['id']}/expire",
                     data={"csrf": _csrf(listed)}).status_code == 303
    listed = kari.get("/alerts").text
    assert listed.count('action="/silences/') == 1
    r = kari.post(f"/silences/{s['id']}/expire", data={"csrf": _csrf(listed)})
    assert r.status_code == 303
    assert store.silences(active_only=True) == []
    # a second silence of another length is the person's choice: it is made
    assert kari.post("/silences", data={**form, "duration": "2d"}).status_code == 303
    assert kari.post("/silences", data={**form, "duration": "1d"}).status_code == 303
    assert len(store.silences(active_only=True)) == 2
    for sid in [x["id"] for x in store.silences(active_only=True)]:
        assert kari.post(f"/silences/{sid}/expire",
                         data={"csrf": _csrf(listed)}).status_code == 303
    a, _ = _mailed_rise(cfg, store, smtp_server)


def test_a_link_confirmed_after_the_session_ran_out_leads_back_to_it(desk, smtp_server):
    """In the evening Kari follows the "Kvitter" link of a rise's email and leaves the
    confirmation open; by the morning her session has run out, and she presses the
    button. Nothing is acknowledged, and the page says she must log in, with the way to
    do it; after logging in she is back at the confirmation, and confirming
    acknowledges the alert, by her, once. Before, the page said only that she must log
    in: no way on, and the login led to the overview, the link's confirmation lost."""
    cfg, store, console = desk
    a, link = _mailed_rise(cfg, store, smtp_server)
    path = link.removeprefix(console.url)
    kari = _login(console, KARI)
    confirm = kari.get(path)
    assert confirm.status_code == 200
    with store.write() as db:  # the session's lifetime runs out overnight
        db.execute("UPDATE web_sessions SET expires_at=?", ("2000-01-01T00:00:00+00:00",))
    late = kari.post(path, data={"csrf": _csrf(confirm.text)})
    assert late.status_code == 401
    assert store.q("SELECT status, acked_by FROM alerts") == [
        {"status": "open", "acked_by": None}]
    login = re.search(r'href="(/login\?next=[^"]+)"', late.text).group(1)
    form = kari.get(login.replace("&amp;", "&"))
    nxt = re.search(r'name="next" value="([^"]*)"', form.text).group(1)
    assert nxt == path
    r = kari.post("/login", data={"user": KARI[0], "password": KARI[1], "next": nxt,
                                  "csrf": _csrf(form.text)})
    assert r.status_code == 303 and r.headers["location"] == path
    again = kari.get(path)
    assert kari.post(path, data={"csrf": _csrf(again.text)}).status_code == 200
    assert store.q("SELECT status, acked_by FROM alerts") == [
        {"status": "acked", "acked_by": "kari"}]
    assert [(h["who"], h["via"], h["action"]) for h in store.q("SELECT * FROM actions")] == [
        ("kari", "link", "ack")]


def test_a_reminder_waiting_for_the_morning_is_not_sent_once_the_rise_is_acknowledged(
        tmp_path, smtp_server):
    """Reminders every four weeks, quiet hours 17:00-08:00 and weekends. The rise is
    mailed on a Monday; four weeks later its data come on a Friday evening, and the
    reminder waits for Monday 08:00. On Saturday Kari acknowledges the rise in the
    console. On Monday the reminder is not sent: its delivery is dropped, saying why,
    and nothing more is reminded of while the rise goes on. Before, the reminder of an
    acknowledged rise went out on Monday morning."""
    from tests.scenario import START

    weeks, rise = 116, 100
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, weeks)))]
    run = Weeks(tmp_path, lab, "\n[detection]\nrepeat_after_periods = 4\n"
                + target("mail", smtp_server.url())
                + '\n[alerting]\nquiet_hours = "17:00-08:00"\nquiet_days = ["sat", "sun"]\n'
                "\n[web]\nsecure_cookies = false\n")
    r = warnd(run.cfg.path, run.cfg.state_dir, "user", "add", KARI[0], "--role",
              "operator", "--password-stdin", stdin=KARI[1] + "\n")
    assert r.returncode == 0, r.stderr
    w = rise - 2
    while "open" not in [d for _, d, _ in run.told]:
        run.run(w)  # Mondays 12:00 UTC: working time
        w += 1
    (opening,) = [aid for _, d, aid in run.told if d == "open"]
    store = Store.in_dir(run.cfg.state_dir)
    mailed = store.q("SELECT COUNT(*) AS n FROM deliveries WHERE status='delivered'")[0]["n"]
    wait_for(lambda: len(smtp_server.messages) == mailed, what="the rise's email")

    def friday(w: int) -> datetime:  # the week's data on Friday 18:00 in Oslo
        return datetime.combine(START + timedelta(weeks=w + 1, days=4), datetime.min.time(),
                                UTC) + timedelta(hours=17)

    from warnd.pipeline import Pipeline

    def run_on(w: int, at: datetime) -> list:
        rows = ["period,substance,value"] + [
            f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{lab[i]}" for i in range(w + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n")
        return [a for a in Pipeline(run.cfg, clock=lambda: at).run_once()["alerts"]
                if a["kind"] == "trend"]

    got = []
    while not got:
        got = run_on(w, friday(w))
        w += 1
    assert [a["decision"] for a in got] == ["repeat"]
    assert store.q("SELECT status FROM deliveries WHERE alert_id=?", [got[0]["id"]]) == [
        {"status": "pending"}]
    console = Console(run.cfg.path, run.cfg.state_dir, free_port()).start()
    console.browsers = []
    try:
        kari = _login(console, KARI)
        page = kari.get(f"/alerts/{opening}").text
        assert kari.post(f"/alerts/{opening}/ack",
                         data={"csrf": _csrf(page)}).status_code == 303
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
    monday = friday(w - 1) + timedelta(days=2, hours=15)  # Monday 08:00 in Oslo
    counts = outbox.dispatch_pending(run.cfg, store, now=monday)
    assert counts["delivered"] == 0 and counts["acknowledged"] == 1
    (d,) = store.q("SELECT status, last_error FROM deliveries WHERE alert_id=?",
                   [got[0]["id"]])
    assert d["status"] == "dropped" and "acknowledged" in d["last_error"]
    for w in range(w, weeks):
        assert run_on(w, friday(w)) == []
    outbox.dispatch_pending(run.cfg, store, now=friday(weeks) + timedelta(days=3))
    store.close()
    assert len(smtp_server.messages) == mailed


def test_acknowledging_an_escalation_acknowledges_the_opening_it_grew_from(desk):
    """Ketamine's rise is told (the lab), then customs agrees: an escalation. Kari
    acknowledges the escalation in the console: the opening is acknowledged with it
    (logged as such), and `warnd status` lists nothing of the rise as open. Before,
    the opening stayed open, listed as waiting for someone until the rise ended."""
    from tests.test_alerting import _period
    from warnd.alerting import actions

    cfg, store, console = desk
    for s in ("lab", "customs"):
        seed_series(store, s)
    d0 = datetime(2026, 7, 6).date()
    told = []
    for k, sources in enumerate((("lab",), ("lab", "customs"))):
        period = d0 + timedelta(weeks=k)
        told += _period(cfg, store, period, {s: [finding(s, detected=period)]
                                             for s in sources}, now=datetime.now(UTC))
    assert [a["decision"] for a in told] == ["open", "escalate"]
    opening, escalation = (a["id"] for a in told)
    kari = _login(console, KARI)
    page = kari.get(f"/alerts/{escalation}").text
    assert kari.post(f"/alerts/{escalation}/ack",
                     data={"csrf": _csrf(page)}).status_code == 303
    assert store.q("SELECT status, acked_by FROM alerts ORDER BY id") == [
        {"status": "acked", "acked_by": "kari"}] * 2
    assert collect_status(cfg)["open_alerts"] == []
    (h,) = actions.history(store, alert_id=opening)
    assert (h["who"], h["via"], h["detail"]) == ("kari", "web", f"with #{escalation}")
    assert f"with #{escalation}" in kari.get(f"/alerts/{opening}").text


def _row(html: str, element_id: str) -> str:
    return re.search(rf'<tr id="{element_id}">(.*?)</tr>', html, re.S).group(1)


def test_a_muted_alert_is_named_in_words_and_listed_by_its_own_filter(desk, tmp_path):
    """Ketamine is muted in the configuration when its rise opens (recorded as `muted`,
    sent to nobody); heroin's opens as usual. The Norwegian console names the state in
    its words on the alerts list, the alert's page and the substance's timeline, and its
    status filter offers "muted", listing that alert only. Before, the badge read a raw
    "muted" and the filter had no such state (`?state=muted` listed every alert)."""
    cfg, store, console = desk
    muted_path = tmp_path / "muted.toml"
    muted_path.write_text(cfg.path.read_text(encoding="utf-8").replace(
        "[substances.ketamin]\n", "[substances.ketamin]\nmuted = true\n"), encoding="utf-8")
    muted = load_config(muted_path)
    assert muted.substances["ketamin"].muted and muted.state_dir == cfg.state_dir
    for substance in ("ketamin", "heroin"):
        seed_series(store, "lab", substance)
    now = datetime.now(UTC)
    decide.enqueue_findings(muted, store, "ketamin", [(finding("lab"), "open")], {}, now=now)
    decide.enqueue_findings(cfg, store, "heroin",
                            [(finding("lab", substance="heroin"), "open")], {}, now=now)
    ids = {r["substance"]: (r["id"], r["status"])
           for r in store.q("SELECT id, substance, status FROM alerts")}
    assert ids == {"ketamin": (ids["ketamin"][0], "muted"), "heroin": (ids["heroin"][0], "open")}
    ket, her = ids["ketamin"][0], ids["heroin"][0]
    kari = _login(console, KARI)
    listed = kari.get("/alerts").text
    assert 'state-muted">dempet i oppsettet</span>' in _row(listed, f"alert-{ket}")
    assert 'href="/alerts?state=muted"' in listed
    only = kari.get("/alerts?state=muted").text
    assert f'id="alert-{ket}"' in only and f'id="alert-{her}"' not in only
    assert 'state-muted">dempet i oppsettet</span>' in kari.get(f"/alerts/{ket}").text
    assert 'state-muted">dempet i oppsettet</span>' in kari.get("/substances/ketamin").text
    assert ">muted<" not in listed + only


def test_the_substance_page_names_a_silence_of_a_kind_or_a_source_that_holds_it_back(desk):
    """Active silences of every trend (`--kind trend`) and of the lab (`--source lab`),
    which has ketamine's series, hold back ketamine's messages: its page says it is
    silenced and names both (id, what they cover, until when, why). One of customs, which
    has no ketamine data, and one of digests hold back nothing of it and are not named.
    Before, the page named only a silence of the substance itself: here, none."""
    from warnd.alerting import actions

    cfg, store, console = desk
    seed_series(store, "lab")
    now = datetime.now(UTC)
    made = {}
    for what, reason in (({"kind": "trend"}, "trend review"),
                         ({"source": "lab"}, "lab migration"),
                         ({"source": "customs"}, "customs outage"),
                         ({"kind": "digest"}, "digest paused")):
        made[reason] = actions.add_silence(store, substance=None, **what, reason=reason,
                                           until=now + timedelta(days=1), who="ola",
                                           via="cli", now=now)
    kari = _login(console, KARI)
    page = kari.get("/substances/ketamin").text
    note = re.search(r'<p class="note silenced">(.*?)</p>', page, re.S).group(1)
    assert note.startswith("dempet: ")
    assert f"#{made['trend review']} (type trend) til " in note and "(trend review)" in note
    assert (f"#{made['lab migration']} (kilde {cfg.source_label('lab')}) til " in note
            and "(lab migration)" in note)
    assert "customs outage" not in note and "digest paused" not in note
    # what the page says is what the alerting does: the substance's rise is held back
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=now)
    assert a["status"] == "silenced"


def test_a_headline_s_date_is_its_day_in_the_configured_time_zone(desk):
    """An article published 00:30 Oslo time on 2 July (22:30 UTC on 1 July) is listed
    under ketamine's headlines as of 2 July, the day people there read it. Before, its
    date was cut from the UTC time: 1 July."""
    from tests.alerting_env import seed_headline

    cfg, store, console = desk
    assert cfg.general.timezone == "Europe/Oslo"
    seed_headline(store, "Ketamin beslaglagt", "https://example.org/ketamin",
                  when=datetime(2026, 7, 1, 22, 30, tzinfo=UTC))
    page = _login(console, KARI).get("/substances/ketamin").text
    assert '<li>2026-07-02 <a href="https://example.org/ketamin"' in page
    assert "2026-07-01" not in page


def test_a_rise_is_not_listed_as_held_back_once_its_silence_is_ended_early(desk):
    """Kari silences ketamine for a day in the console; its rise opens under the
    silence, sent to nobody, and `warnd status` lists it as held back by a silence. She
    ends the silence early: `warnd status` no longer lists it at once (the next
    detection pass tells it). Before, it was listed as held back until that pass, while
    no silence held it."""
    import json

    cfg, store, console = desk
    kari = _login(console, KARI)
    page = kari.get("/alerts").text
    assert kari.post("/silences", data={"csrf": _csrf(page), "substance": "ketamin",
                                        "duration": "1d", "reason": "festival"}
                     ).status_code == 303
    (s,) = store.silences(active_only=True)
    seed_series(store, "lab")
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=datetime.now(UTC))
    assert a["status"] == "silenced"

    def held() -> list[str]:
        r = warnd(cfg.path, cfg.state_dir, "status", "--json")
        return json.loads(r.stdout)["held_back_by_silence"]

    assert held() == ["ketamin"]
    text = warnd(cfg.path, cfg.state_dir, "status").stdout
    assert "rises held back by a silence, told when it ends: ketamin" in text
    assert kari.post(f"/silences/{s['id']}/expire",
                     data={"csrf": _csrf(kari.get("/alerts").text)}).status_code == 303
    assert held() == []
    assert "rises held back" not in warnd(cfg.path, cfg.state_dir, "status").stdout


def test_an_api_silence_retried_finds_the_one_it_made(desk):
    """A script posts the same silence twice (a retry after a timeout) and four times at
    once: one silence is made, and every answer is the one a fresh creation gives (201,
    the silence's row) with its id. Ended, it holds nothing back: no twin is left. A
    silence of another reason or length is added. Before, each call added one."""
    from concurrent.futures import ThreadPoolExecutor

    cfg, store, console = desk
    r = warnd(cfg.path, cfg.state_dir, "token", "create", "nightly", "--role", "operator")
    assert r.returncode == 0, r.stderr
    api = httpx.Client(base_url=console.url, timeout=30,
                       headers={"Authorization": f"Bearer {r.stdout.strip()}"})
    console.browsers.append(api)
    body = {"substance": "ketamin", "duration": "1d", "reason": "known cause"}
    first = api.post("/api/v1/silences", json=body)
    assert first.status_code == 201
    again = api.post("/api/v1/silences", json=body)
    assert (again.status_code, again.json()) == (201, first.json())
    assert first.json()["created_by"] == "token:nightly"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: api.post("/api/v1/silences", json=body), range(4)))
    assert [(x.status_code, x.json()) for x in answers] == [(201, first.json())] * 4
    assert [x["id"] for x in store.silences(active_only=True)] == [first.json()["id"]]
    other = api.post("/api/v1/silences", json={**body, "reason": "another cause"})
    longer = api.post("/api/v1/silences", json={**body, "duration": "2d"})
    assert other.status_code == longer.status_code == 201
    assert len({first.json()["id"], other.json()["id"], longer.json()["id"]}) == 3
    for x in store.silences(active_only=True):
        store.expire_silence(x["id"])
    seed_series(store, "lab")
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=datetime.now(UTC))
    assert a.get("status", "open") == "open"


def test_the_outbox_page_says_how_many_deliveries_it_leaves_out(desk):
    """A relay down for weeks and a notice every hour: 503 deliveries wait. The outbox page
    lists the newest 500, as it always did, and says in the console's language that 3 more
    are not listed and how to list them all. Before, the page cut the list silently. Once
    a few are dropped and all of them fit, nothing is said."""
    cfg, store, console = desk
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=503)
    src = SimpleNamespace(name="overdosefare", region="")
    for hour in range(503):
        at = start + timedelta(hours=hour)
        item = SimpleNamespace(key=f"n{hour}", title=f"Advarsel n{hour}",
                               link=f"https://overdosefare.example/n{hour}",
                               published_at=at - timedelta(hours=1), region="", summary="")
        assert decide.enqueue_notice(cfg, store, src, item, "ketamin", now=at) is not None
    kari = _login(console, KARI)
    page = kari.get("/outbox").text
    assert page.count('action="/outbox/') == 2 * 500  # retry and drop per delivery
    assert ('id="outbox-more">3 til er ikke vist: de nyeste 500 av 503 leveringer er vist; '
            "warnd outbox --limit 503 viser alle.</p>") in page
    oldest = store.q("SELECT alert_id, target FROM deliveries ORDER BY alert_id LIMIT 3")
    for r in oldest:
        assert f'action="/outbox/{r["alert_id"]}/' not in page
        r = kari.post(f"/outbox/{r['alert_id']}/{r['target']}/drop",
                      data={"csrf": _csrf(page)}, follow_redirects=False)
        assert r.status_code == 303
    page = kari.get("/outbox").text
    assert page.count('action="/outbox/') == 2 * 500 and "outbox-more" not in page


def test_a_silence_from_a_message_ended_early_is_in_the_alert_s_history(desk, smtp_server):
    """Ketamine's rise is mailed to the desk. Kari follows the email's "Demp 14 dager"
    link and confirms: ketamine is silenced, and the alert's page lists her silence in
    its history. The next morning Ola ends that silence in the console. The alert's page
    now lists his early end after her silence, so whoever opens it sees that ketamine is
    no longer silenced, and by whom. Before, it listed her silence alone: read from the
    alert, ketamine was silenced for two weeks still."""
    cfg, store, console = desk
    a, _ = _mailed_rise(cfg, store, smtp_server)
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    (link,) = re.findall(r"Demp 14 dager: (\S+)", text)
    kari, ola = _login(console, KARI), _login(console, OLA)
    confirm = kari.get(link.removeprefix(console.url))
    done = kari.post(link.removeprefix(console.url), data={"csrf": _csrf(confirm.text)})
    assert done.status_code == 200 and "er dempet til" in done.text
    (s,) = store.silences(active_only=True)

    def history() -> list[str]:
        page = kari.get(f"/alerts/{a['id']}").text
        return re.findall(r"<li>[^<]*? (\w+ \(\w+\): \w+)", page.split("<h2>", 2)[-1])

    assert history() == ["kari (link): silence"]
    assert ola.post(f"/silences/{s['id']}/expire",
                    data={"csrf": _csrf(ola.get("/alerts").text)}).status_code == 303
    assert store.silences(active_only=True) == []
    assert history() == ["ola (web): expire_silence", "kari (link): silence"]


def _weekly_desk(tmp_path, smtp_server, lab: list[int]):
    """The lab's ketamine counts week by week through the real pipeline, its messages
    mailed to the desk (ends too), operators kari and ola made by `warnd user add`, and
    ``warnd web`` on the port the messages' links point to: (weeks, console)."""
    port = free_port()
    run = Weeks(tmp_path, lab, target("mail", smtp_server.url())
                + "\n[alerting]\nsend_resolved = true\n"
                + f'\n[web]\nsecure_cookies = false\nbase_url = "http://127.0.0.1:{port}"\n')
    for name, pw in (KARI, OLA):
        r = warnd(run.cfg.path, run.cfg.state_dir, "user", "add", name, "--role",
                  "operator", "--password-stdin", stdin=pw + "\n")
        assert r.returncode == 0, r.stderr
    console = Console(run.cfg.path, run.cfg.state_dir, port)
    console.browsers = []
    return run, console


def _link_of(smtp_server, aid: int, button: str = "Kvitter") -> str:
    """The ``button`` link of the email that told alert ``aid``."""
    wait_for(lambda: any(f"#{aid}" in m.get_body(("plain",)).get_content()
                         for m in smtp_server.messages), what=f"the email of #{aid}")
    (text,) = [t for t in (m.get_body(("plain",)).get_content() for m in smtp_server.messages)
               if f"#{aid}" in t]
    return re.findall(rf"{button}: (\S+)", text)[0]


def _first_ack_and(run, opening: int, later: int) -> tuple[dict, str, str]:
    """The opening's first acknowledgement (``acked_by``, ``acked_at``), and on the
    desk's wall clock when it was given and when alert ``later`` was made."""
    store = Store.in_dir(run.cfg.state_dir)
    try:
        (first,) = store.q("SELECT acked_by, acked_at FROM alerts WHERE id=?", [opening])
        (made,) = store.q("SELECT created_at FROM alerts WHERE id=?", [later])
    finally:
        store.close()
    tz = ZoneInfo(run.cfg.general.timezone)
    return first, wall_clock(first["acked_at"], tz), wall_clock(made["created_at"], tz)


def _ack_by_ola(run, opening: int, kari_at: str, became: str) -> None:
    """Ola's `warnd alerts ack` of the opening Kari acknowledged (at ``kari_at``) exits 0
    and says so, and what ``became`` of it."""
    r = warnd(run.cfg.path, run.cfg.state_dir, "alerts", "ack", str(opening), "--by", "ola")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"alert {opening} acknowledged",
        f"  already acknowledged by kari at {kari_at}: that acknowledgement is kept",
        f"  {became}"]


def _handled_lines(html: str) -> list[str]:
    return re.findall(r'<p class="handled">([^<]*)</p>', html)


def test_a_kvitter_link_to_a_rise_a_colleague_acknowledged_and_that_ended_says_so_first(
        tmp_path, smtp_server):
    """Ketamine rises in the lab's counts and the rise is mailed to the desk. Kari
    follows the email's "Kvitter" link and confirms. The rise goes on, then ends, and
    its end is mailed. Weeks later Ola, going through his mail, follows the same link:
    the page asks him to confirm and says, before he does, that Kari acknowledged the
    alert (and when), that confirming changes nothing, and that the rise has ended (when
    its end was told, and its alert). He confirms anyway: Kari's acknowledgement stands.
    In the shell, `warnd alerts ack` of the alert exits 0 as before and names Kari, her
    time and the end. Before, the page only asked, and the command only said
    "acknowledged", as if Ola had been the first and the rise still went on."""
    weeks, rise, calm = 150, 100, 112
    lab = [int(x) for x in np.random.default_rng(3).poisson(
        _level(weeks, (rise, calm)))]
    run, console = _weekly_desk(tmp_path, smtp_server, lab)
    w = rise - 2
    while not run.told:
        run.run(w)
        w += 1
    (opening,) = [aid for _, d, aid in run.told if d == "open"]
    link = _link_of(smtp_server, opening)
    console.start()
    try:
        kari = _login(console, KARI)
        confirm = kari.get(link.removeprefix(console.url))
        assert _handled_lines(confirm.text) == []  # nobody acted on it yet; it goes on
        assert kari.post(link.removeprefix(console.url),
                         data={"csrf": _csrf(confirm.text)}).status_code == 200
        while "resolve" not in [d for _, d, _ in run.told] and w < weeks:
            run.run(w)
            w += 1
        (end,) = [aid for _, d, aid in run.told if d == "resolve"]
        first, kari_at, end_at = _first_ack_and(run, opening, end)
        assert first["acked_by"] == "kari"
        ola = _login(console, OLA)
        confirm = ola.get(link.removeprefix(console.url))
        assert confirm.status_code == 200
        assert _handled_lines(confirm.text) == [
            f"Allerede kvittert av kari {kari_at}. Å bekrefte endrer ingenting.",
            f"Hendelsen er over: slutten ble meldt {end_at} (varsel #{end})."]
        assert 'name="csrf"' in confirm.text  # still safe to confirm
        done = ola.post(link.removeprefix(console.url), data={"csrf": _csrf(confirm.text)})
        assert f"Varsel #{opening} er kvittert av kari." in done.text
        assert f"Hendelsen er over: slutten ble meldt {end_at}" in ola.get(
            f"/alerts/{opening}").text
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
    _ack_by_ola(run, opening, kari_at, f"its episode has ended at {end_at} (alert {end})")
    store = Store.in_dir(run.cfg.state_dir)
    try:
        assert store.q("SELECT acked_by, acked_at FROM alerts WHERE id=?", [opening]) == [
            first]
    finally:
        store.close()


def test_a_kvitter_link_to_a_rise_revised_away_says_it_was_withdrawn_first(
        tmp_path, smtp_server):
    """Ketamine's rise in the lab's counts is mailed to the desk, and Kari acknowledges
    it in the shell (`warnd alerts ack`). The next week the lab revises those weeks back
    to the usual level: a correction is mailed, and nothing is left of the rise. Ola then
    follows the rise's "Kvitter" link: before he confirms, the page says Kari
    acknowledged it and that it was withdrawn by a correction (when, which alert);
    `warnd alerts ack` says so too. Before, neither said anything but "acknowledged"."""
    weeks, rise = 110, 100
    usual = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks))]
    risen = usual[:rise] + [int(x) for x in np.random.default_rng(6).poisson(
        15.0, weeks - rise)]
    run, console = _weekly_desk(tmp_path, smtp_server, risen)
    w = rise - 2
    while not run.told:
        run.run(w)
        w += 1
    (opening,) = [aid for _, d, aid in run.told if d == "open"]
    r = warnd(run.cfg.path, run.cfg.state_dir, "alerts", "ack", str(opening), "--by", "kari")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"alert {opening} acknowledged"]  # the first; it goes on
    run.lab = usual  # the lab's weeks revised: no rise at all
    run.run(w)
    (correction,) = [aid for _, d, aid in run.told if d == "correct"]
    link = _link_of(smtp_server, opening)
    _link_of(smtp_server, correction, "Åpne")  # the correction was mailed
    _, kari_at, told_at = _first_ack_and(run, opening, correction)
    console.start()
    try:
        ola = _login(console, OLA)
        confirm = ola.get(link.removeprefix(console.url))
        assert _handled_lines(confirm.text) == [
            f"Allerede kvittert av kari {kari_at}. Å bekrefte endrer ingenting.",
            "Trukket tilbake: kilden rettet tallene varselet bygde på, og rettelsen ble "
            f"meldt {told_at} (varsel #{correction})."]
        done = ola.post(link.removeprefix(console.url), data={"csrf": _csrf(confirm.text)})
        assert f"Varsel #{opening} er kvittert av kari." in done.text
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
    _ack_by_ola(run, opening, kari_at, "withdrawn by a correction of the figures it rested "
                f"on at {told_at} (alert {correction})")


def test_a_demp_link_a_colleague_followed_says_so_before_confirming_in_the_desk_s_language(
        desk, smtp_server):
    """Ketamine's rise is mailed to the desk. Kari follows its "Demp 14 dager" link and
    confirms, then acknowledges the alert in the console. Ola opens the same link: the
    page says, before he confirms, that Kari acknowledged the alert (when) and silenced
    it (until when); confirming finds her silence rather than adding one. The desk then
    switches the console to English: the pages say it in English, and the "Kvitter"
    link's page adds that confirming changes nothing. Before, both pages only asked."""
    cfg, store, console = desk
    a, ack_link = _mailed_rise(cfg, store, smtp_server)
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    (link,) = re.findall(r"Demp 14 dager: (\S+)", text)
    kari, ola = _login(console, KARI), _login(console, OLA)
    confirm = kari.get(link.removeprefix(console.url))
    assert _handled_lines(confirm.text) == []
    assert kari.post(link.removeprefix(console.url),
                     data={"csrf": _csrf(confirm.text)}).status_code == 200
    page = kari.get(f"/alerts/{a['id']}").text
    assert kari.post(f"/alerts/{a['id']}/ack", data={"csrf": _csrf(page)}).status_code == 303
    (s,) = store.silences(active_only=True)
    (acked,) = store.q("SELECT acked_at FROM alerts WHERE id=?", [a["id"]])
    tz = ZoneInfo(cfg.general.timezone)
    at, until = wall_clock(acked["acked_at"], tz), wall_clock(s["until"], tz)[:10]
    confirm = ola.get(link.removeprefix(console.url))
    assert _handled_lines(confirm.text) == [f"Allerede kvittert av kari {at}.",
                                            f"Allerede dempet av kari til {until}."]
    done = ola.post(link.removeprefix(console.url), data={"csrf": _csrf(confirm.text)})
    assert f"er dempet til {until} av kari." in done.text
    assert [x["id"] for x in store.silences(active_only=True)] == [s["id"]]
    cfg.path.write_text(cfg.path.read_text().replace(
        'log_level = "DEBUG"', 'log_level = "DEBUG"\nlanguage = "en"'))
    assert _handled_lines(ola.get(link.removeprefix(console.url)).text) == [
        f"Already acknowledged by kari on {at}.", f"Already silenced by kari until {until}."]
    assert _handled_lines(ola.get(ack_link.removeprefix(console.url)).text) == [
        f"Already acknowledged by kari on {at}. Confirming changes nothing."]
