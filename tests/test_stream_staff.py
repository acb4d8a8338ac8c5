"""What staff see and do over time: acknowledging, silencing, the states the alerts are
shown in. Week by week through the real pipeline (the clock passed in), with the
console's and the command line's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from tests.conftest import write_config
from tests.scenario import LAB_SOURCE, START
from tests.servers import wait_for
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.service.health import collect_status
from warnd.store import Store


def _level(weeks: int, *rises: tuple[int, int]) -> list[float]:
    """Weekly means: 5, three times that over each ``(from, to)`` week range."""
    lam = np.full(weeks, 5.0)
    for lo, hi in rises:
        lam[lo:hi] *= 3.0
    return lam.tolist()


def week_end(w: int) -> datetime:
    return datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(),
                            UTC) + timedelta(hours=12)


class Weeks:
    """The lab's ketamine counts written week by week, a ``run --once`` at each week's end."""

    def __init__(self, tmp_path, lab: list[int], extra: str = "") -> None:
        self.tmp, self.lab = tmp_path, lab
        (tmp_path / "data").mkdir()
        self.cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h") + extra))
        self.told: list[tuple[int, str, int]] = []  # week, decision, alert id

    def run(self, w: int) -> list[dict]:
        rows = ["period,substance,value"] + [
            f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{self.lab[i]}"
            for i in range(w + 1)]
        (self.tmp / "data" / "lab.csv").write_text("\n".join(rows) + "\n")
        res = Pipeline(self.cfg, clock=lambda: week_end(w)).run_once()
        out = [a for a in res["alerts"] if a["kind"] == "trend" and a["substance"] == "ketamin"]
        self.told += [(w, a["decision"], a["id"]) for a in out]
        return out

    def status_of(self, aid: int) -> str:
        store = Store.in_dir(self.cfg.state_dir)
        try:
            return store.q("SELECT status FROM alerts WHERE id=?", [aid])[0]["status"]
        finally:
            store.close()

    def open_in_status(self) -> set[int]:
        return {a["id"] for a in collect_status(self.cfg)["open_alerts"]}


def test_an_alert_whose_rise_ended_is_no_longer_shown_open(tmp_path):
    """Ketamine rises, its rise ends (no end is sent: ``send_resolved`` is off), and
    rises again months later. Once the first rise has ended, its message is
    ``resolved``: ``warnd status`` and the console no longer list it among the open
    alerts, while the next rise's message is open. Before, every message stayed
    ``open`` for good (no alert ever became ``resolved``): `warnd status` listed rises
    that had ended a year ago, and the console's "resolved" list was always empty."""
    weeks, rise, calm, again = 170, 100, 112, 150
    lab = [int(x) for x in np.random.default_rng(3).poisson(
        _level(weeks, (rise, calm), (again, weeks)))]
    run = Weeks(tmp_path, lab)
    for w in range(rise - 2, again):
        run.run(w)
    first = [aid for w, d, aid in run.told if d in ("open", "escalate")]
    assert first and run.told[0][1] == "open"
    store = Store.in_dir(run.cfg.state_dir)
    told = store.episode_state("substance:ketamin:trend:increase")
    store.close()
    assert not told["open"]  # the rise has ended
    assert {run.status_of(a) for a in first} == {"resolved"}
    assert run.open_in_status().isdisjoint(first)
    for w in range(again, weeks):
        run.run(w)
    new = [(w, d, aid) for w, d, aid in run.told if w >= again]
    assert new and new[0][1] == "open"
    assert run.status_of(new[0][2]) == "open" and new[0][2] in run.open_in_status()


def test_a_source_failure_that_ended_is_no_longer_shown_open(tmp_path, root):
    """A feed fails poll after poll (one ``source_health`` alert), then is back. With
    ``send_resolved`` off nothing more is sent, and `warnd status` no longer lists the
    failure's alert as open. Before, it stayed open after the source had recovered."""
    import shutil

    from tests.test_alerting import RSS_SOURCE

    cfg = load_config(write_config(tmp_path, RSS_SOURCE))
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = {"t": t0}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    for k in range(4):
        clock["t"] = t0 + timedelta(hours=k)
        assert pipe.poll("media").ok is False
    assert [a["kind"] for a in collect_status(cfg)["open_alerts"]] == ["source_health"]
    (tmp_path / "feeds").mkdir()
    shutil.copy(root / "tests/fixtures/rss/ba_2026-03.xml", tmp_path / "feeds/ba.xml")
    clock["t"] = t0 + timedelta(hours=5)
    assert pipe.poll("media").ok is True
    assert collect_status(cfg)["open_alerts"] == []
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT decision, status FROM alerts") == [
        {"decision": "open", "status": "resolved"}]
    store.close()


def test_the_command_line_acts_as_the_console_does(tmp_path, capsys):
    """An alert acknowledged in the console, then again on the command line (a second
    person, a script run twice); a silence added and ended on the command line. The
    store ends as the console leaves it: the first acknowledgement is kept, and every
    action is in the action log (the alert's history), ``via = cli``. Before, `warnd
    alerts ack` overwrote who had acknowledged and when, and neither it nor `warnd
    silence add|expire` was logged."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from warnd.alerting import actions, decide
    from warnd.cli import main

    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    t0 = datetime(2026, 7, 7, 10, tzinfo=UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=t0)
    assert actions.ack_alert(store, a["id"], who="kari", via="web", now=t0)
    first = store.q("SELECT status, acked_by, acked_at FROM alerts")[0]
    conf = ["--config", str(cfg.path)]
    assert main([*conf, "alerts", "ack", str(a["id"]), "--by", "ola"]) == 0
    assert store.q("SELECT status, acked_by, acked_at FROM alerts")[0] == first
    assert main([*conf, "alerts", "ack", "99", "--by", "ola"]) == 1  # no such alert
    assert main([*conf, "silence", "add", "--substance", "ketamin", "--for", "2d",
                 "--reason", "festival", "--by", "ola"]) == 0
    (sid,) = [s["id"] for s in store.silences(active_only=True)]
    assert main([*conf, "silence", "expire", str(sid)]) == 0
    assert store.silences(active_only=True) == []
    log = [(r["who"], r["via"], r["action"], r["silence_id"])
           for r in reversed(actions.history(store))]
    assert log[0] == ("kari", "web", "ack", None)  # the second acknowledgement: no action
    assert [(via, act, s) for _, via, act, s in log[1:]] == [
        ("cli", "silence", sid), ("cli", "expire_silence", sid)]
    assert log[1][0] == "ola" and log[2][0]  # the user who ran it when --by is not given
    store.close()
    capsys.readouterr()


def test_an_escalation_silenced_while_it_waited_is_told_when_the_silence_ends(
        tmp_path, smtp_server):
    """The rise is told (the lab); in the evening customs agrees, and the escalation
    waits for the end of quiet hours; a silence is added that night and covers it
    when it is due, so nobody hears of it. When the silence has ended and both
    sources still rise, the escalation is told, once, as one made under the silence
    is. Before, a silence that came while an escalation waited made it count as told:
    recipients never heard that a second source agreed."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from tests.test_alerting import QUIET, _period
    from warnd.alerting import actions, outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    d0 = datetime(2026, 7, 6).date()
    noon = datetime(2026, 7, 7, 10, tzinfo=UTC)  # Tuesday 12:00 in Oslo
    told = []

    def week(k: int, now: datetime, sources: tuple[str, ...]) -> None:
        period = d0 + timedelta(weeks=k)
        got = _period(cfg, store, period, {s: [finding(s, detected=period)] for s in sources},
                      now=now)
        told.extend((k, a["decision"], a.get("status", "open"), len(a["data"]["agree"]))
                    for a in got)
        assert outbox.dispatch_pending(cfg, store, now=now)["failed"] == 0

    week(0, noon, ("lab",))
    evening = noon + timedelta(weeks=1, hours=8)  # Tuesday 20:00: quiet hours
    week(1, evening, ("lab", "customs"))
    assert told == [(0, "open", "open", 1), (1, "escalate", "open", 2)]
    actions.add_silence(store, substance="ketamin", duration=timedelta(days=3),
                        reason="known", who="kari", via="web", now=evening + timedelta(hours=1))
    morning = noon + timedelta(weeks=1, days=1, hours=-4)  # Wednesday 08:00
    assert outbox.dispatch_pending(cfg, store, now=morning)["silenced"] == 1
    for k in (2, 3):  # the silence is over; both sources still rise
        week(k, noon + timedelta(weeks=k), ("lab", "customs"))
    assert told[2:] == [(2, "escalate", "open", 2)]
    store.close()
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    assert [m["Subject"].split(":")[0] for m in smtp_server.messages] == [
        "Liten økning", "Forverring"]


def test_the_digest_lists_as_sent_only_what_went_out(tmp_path, smtp_server):
    """Over a day: heroin's rise is told; ketamine's is held back by a silence (and a
    muted substance's is recorded only). The next morning's digest lists under "sent
    since the last digest" heroin's message only. Before, it listed every alert
    recorded, so the silenced rise reached the silenced recipients through the digest,
    said to have been sent."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from warnd.alerting import actions, decide, outbox

    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()),
        '\n[alerting.digest]\nschedule = "daily"\nat = "07:00"\ntargets = ["mail"]\n'
        "\n[substances.amfetamin]\nnames = [\"amfetamin\"]\nmuted = true\n")
    store = Store.in_dir(cfg.state_dir)
    monday = datetime(2026, 7, 13, 8, tzinfo=UTC)  # 10:00 in Oslo
    outbox.dispatch_pending(cfg, store, now=monday)  # running since: digests from now on
    actions.add_silence(store, substance="ketamin", duration=timedelta(days=3),
                        reason="known", who="kari", via="web", now=monday)
    got = {}
    for sub in ("heroin", "ketamin", "amfetamin"):
        seed_series(store, "lab", substance=sub)
        (a,) = decide.enqueue_findings(cfg, store, sub, [(finding("lab", substance=sub),
                                                          "open")], {}, now=monday)
        got[sub] = a
    assert [got[s]["status"] for s in got] == ["open", "silenced", "muted"]
    assert outbox.dispatch_pending(cfg, store, now=monday)["delivered"] == 1
    tuesday = monday + timedelta(days=1, hours=-3)  # 07:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=tuesday)["delivered"] == 1
    (dg,) = store.q("SELECT data FROM alerts WHERE kind='digest'")
    listed = [a["id"] for a in json.loads(dg["data"])["changed"]]
    assert listed == [got["heroin"]["id"]]
    store.close()
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    text = smtp_server.messages[1].get_body(("plain", "html")).get_content()
    assert got["heroin"]["title"] in text and got["ketamin"]["title"] not in text


def test_a_message_one_target_had_is_not_shown_silenced(tmp_path, smtp_server):
    """A rise's message reaches the mail target; the second target refuses and is
    retried. Someone who read the mail follows its "silence 14 days" link. The
    retry is then held back (silenced), but the message was told: it stays open in
    `warnd status` and the console (where it can be acknowledged) and its rise counts
    as told. Before, the whole alert was shown silenced, told to nobody, and could not
    be acknowledged in the console."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from warnd.alerting import actions, decide, outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("pager", "mailto://127.0.0.1:1?from=a@example.org&to=p@x.org"))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    t0 = datetime(2026, 7, 7, 10, tzinfo=UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=t0)
    counts = outbox.dispatch_pending(cfg, store, now=t0)
    assert counts["delivered"] == 1 and counts["retrying"] == 1
    actions.add_silence(store, substance="ketamin", duration=timedelta(days=14),
                        reason=f"#{a['id']}", who="kari", via="link", alert_id=a["id"],
                        now=t0 + timedelta(minutes=5))
    assert outbox.dispatch_pending(cfg, store, now=t0 + timedelta(hours=1))["silenced"] == 1
    assert {d["target"]: d["status"] for d in store.alerts()[0]["deliveries"]} == {
        "mail": "delivered", "pager": "silenced"}
    assert store.q("SELECT status FROM alerts")[0]["status"] == "open"
    assert [x["id"] for x in collect_status(cfg)["open_alerts"]] == [a["id"]]
    assert not store.rises_held_back()
    store.close()


def test_a_substance_taken_out_of_the_config_leaves_the_digest(tmp_path):
    """Ketamine rises and its rise is told; then ketamine is taken out of the config
    (its rows are skipped from then on, its series stay in the store, no longer
    judged, their episode left open). Weeks later the digest no longer lists it among
    the open episodes. Before, every digest listed it as open for good, though nothing
    watched it and nothing could end it."""
    from warnd.alerting import digest

    weeks, rise, removed = 125, 100, 108
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, weeks)))]
    run = Weeks(tmp_path, lab)
    for w in range(rise - 2, removed):
        run.run(w)
    assert [d for _, d, _ in run.told][:1] == ["open"]
    store = Store.in_dir(run.cfg.state_dir)
    assert [e["substance"] for e in digest.build(run.cfg, store, end=week_end(removed))[
        "open"]] == ["ketamin"]
    run.cfg = load_config(write_config(
        tmp_path, LAB_SOURCE.format(interval="1h"), name="heroin-only.toml",
        substances='\n[substances.heroin]\nlabel = "heroin"\nnames = ["heroin"]\n'))
    for w in range(removed, weeks):
        assert run.run(w) == []
    assert digest.build(run.cfg, store, end=week_end(weeks - 1))["open"] == []
    store.close()


def test_the_overview_shows_the_latest_weeks_not_every_rise_ever(tmp_path):
    """Ketamine rose a year and a half ago and has been calm since; no digest is
    configured. The console's overview, "the live Føre Var table" of the window it
    names, shows ketamine stable, while it rose it showed the rise. Before, without
    a digest sent, it scored every finding ever recorded: the old rise was shown as
    current, under the dates of the latest weeks."""
    from warnd.web import data

    weeks, rise = 190, 100
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, 112)))]
    run = Weeks(tmp_path, lab)
    store = Store.in_dir(run.cfg.state_dir)

    def ketamine() -> dict:
        return next(r for r in data.overview(run.cfg, store)["rows"]
                    if r["substance"] == "ketamin")

    for w in range(rise - 2, 108):
        run.run(w)
    assert ketamine()["total"] > 0  # rising
    for w in range(108, weeks):
        run.run(w)
    ov = data.overview(run.cfg, store)
    assert ov["since"] > (START + timedelta(weeks=weeks - 4)).isoformat()
    assert (ketamine()["total"], ketamine()["words"]) == (0, "stabil")
    store.close()


def test_silencing_a_source_failure_from_its_message_silences_that_only(tmp_path,
                                                                         smtp_server):
    """A source fails and its message (with the console's links) arrives; an operator
    follows its "Demp 14 dager" link and confirms in the console. That silences the
    source's failure messages, and ketamine's rise the next day is sent. Before, the
    alert had no substance, so the link made a silence with no field at all, which
    matches every alert: nothing at all was sent for two weeks, digests included."""
    import re

    import httpx

    from tests.servers import free_port
    from tests.test_alerting import RSS_SOURCE
    from tests.webkit import Console, warnd
    from tests.alerting_env import finding, seed_series
    from warnd.alerting import decide, outbox

    port = free_port()
    body = (RSS_SOURCE + LAB_SOURCE.format(interval="1h")
            + f'\n[[targets]]\nname = "mail"\nurl = "{smtp_server.url()}"\n'
            + f'\n[web]\nbase_url = "http://127.0.0.1:{port}"\nsecure_cookies = false\n')
    path = write_config(tmp_path, body, state_dir=str(tmp_path / "state"))
    cfg = load_config(path)
    t0 = datetime.now(UTC)
    pipe = Pipeline(cfg, clock=lambda: t0)
    for _ in range(3):
        assert pipe.poll("media").ok is False
    assert pipe.dispatch()["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the failure's email")
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    link = re.search(r"Demp 14 dager: (\S+)", text).group(1)
    r = warnd(path, tmp_path / "state", "user", "add", "ola", "--role", "operator",
              "--password-stdin", stdin="operator-pass-1\n")
    assert r.returncode == 0, r.stderr
    console = Console(path, tmp_path / "state", port).start()
    try:
        with httpx.Client(base_url=console.url) as c:
            page = c.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            assert c.post("/login", data={"user": "ola", "password": "operator-pass-1",
                                          "csrf": csrf}).status_code == 303
            page = c.get(link).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            assert c.post(link, data={"csrf": csrf}).status_code == 200
            # the same link followed again (a second click, a colleague's copy of the
            # email) finds the silence it made: no second, overlapping one
            again = c.post(link, data={"csrf": csrf})
            assert again.status_code == 200 and "er dempet til" in again.text
    finally:
        console.stop()
    store = Store.in_dir(cfg.state_dir)
    (s,) = store.silences(active_only=True)
    assert (s["substance"], s["kind"], s["source"]) == (None, "source_health", "media")
    seed_series(store, "lab")
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=t0 + timedelta(days=1))
    assert a["status"] == "open"
    assert outbox.dispatch_pending(cfg, store, now=t0 + timedelta(days=1))["delivered"] == 1
    store.close()


def test_an_acknowledgement_ends_the_reminders_of_its_rise_only(tmp_path):
    """Reminders every four weeks. Ketamine's rise is told and acknowledged in the
    console at once: no reminders follow. The rise ends, and a new one months later
    is told as new (open) and reminded of as usual: the old acknowledgement does not
    swallow it. The acknowledged message ends ``acked``, the new one is open."""
    from warnd.alerting import actions

    weeks, rise, calm, again = 185, 100, 116, 150
    lab = [int(x) for x in np.random.default_rng(3).poisson(
        _level(weeks, (rise, calm), (again, weeks)))]
    run = Weeks(tmp_path, lab, "\n[detection]\nrepeat_after_periods = 4\n")
    store = Store.in_dir(run.cfg.state_dir)
    for w in range(rise - 2, again):
        for a in run.run(w):
            if a["decision"] == "open":
                assert actions.ack_alert(store, a["id"], who="kari", via="web")
    first = [(d, aid) for w, d, aid in run.told if w < again]
    assert first[0][0] == "open" and "repeat" not in [d for d, _ in first]
    for w in range(again, weeks):
        run.run(w)
    new = [d for w, d, _ in run.told if w >= again]
    assert new[0] == "open" and "repeat" in new
    assert run.status_of(first[0][1]) == "acked"
    store.close()


def test_a_silence_ended_before_a_waiting_message_is_due_holds_nothing_back(
        tmp_path, smtp_server):
    """Friday evening a rise's message waits for the end of quiet hours (Monday 08:00).
    On Saturday a silence is added for a week and on Sunday ended early in the
    console: on Monday the message goes out; one whose silence is still on is held
    back."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from tests.test_alerting import QUIET
    from warnd.alerting import actions, decide, outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    store = Store.in_dir(cfg.state_dir)
    friday = datetime(2026, 7, 10, 16, 30, tzinfo=UTC)  # 18:30 in Oslo
    got = {}
    for sub in ("ketamin", "heroin"):
        seed_series(store, "lab", substance=sub)
        (got[sub],) = decide.enqueue_findings(
            cfg, store, sub, [(finding("lab", substance=sub), "open")], {}, now=friday)
    assert got["ketamin"]["due_at"] == "2026-07-13T06:00:00+00:00"
    sids = {sub: actions.add_silence(store, substance=sub, duration=timedelta(days=7),
                                     reason="r", who="kari", via="web",
                                     now=friday + timedelta(days=1)) for sub in got}
    assert actions.expire_silence(store, sids["ketamin"], who="kari", via="web",
                                  now=friday + timedelta(days=2))
    counts = outbox.dispatch_pending(cfg, store, now=datetime(2026, 7, 13, 6, tzinfo=UTC))
    assert (counts["delivered"], counts["silenced"]) == (1, 1)
    assert {r["substance"]: r["status"] for r in store.q("SELECT substance, status "
                                                          "FROM alerts")} == {
        "ketamin": "open", "heroin": "silenced"}
    store.close()
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    assert "ketamin" in smtp_server.messages[0]["Subject"]


def test_acknowledging_a_silenced_message_does_not_make_its_rise_told(tmp_path):
    """A rise opens under a silence (its message recorded, sent to nobody), and an
    operator acknowledges that message in the console. Four weeks later the rise ends
    in the week the silence is ended early: no end is told of a rise nobody heard of,
    and the message is still shown as silenced (acknowledged by whom is kept). Before,
    the acknowledgement turned it into an ``acked`` message, as if it had gone out, and
    an "ended" message was sent for it."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from tests.test_alerting import _period
    from warnd.alerting import actions

    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        "\n[alerting]\nsend_resolved = true\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = datetime(2026, 7, 6).date()
    t0 = datetime(2026, 7, 7, 12, tzinfo=UTC)
    sid = actions.add_silence(store, substance="ketamin", duration=timedelta(weeks=20),
                              reason="festival", who="kari", via="web", now=t0)
    told = []
    for k in range(8):
        now = t0 + timedelta(weeks=k)
        if k == 4:
            assert actions.expire_silence(store, sid, who="kari", via="web", now=now)
        got = _period(cfg, store, d0 + timedelta(weeks=k),
                      {"lab": [finding("lab")]} if k == 0 else {}, now=now)
        told += [(k, a["decision"], a.get("status", "open")) for a in got]
        if k == 0:
            assert actions.ack_alert(store, got[0]["id"], who="ola", via="api", now=now)
    assert told == [(0, "open", "silenced")]
    assert store.q("SELECT status, acked_by FROM alerts") == [
        {"status": "silenced", "acked_by": "ola"}]
    store.close()


def test_the_end_of_a_told_rise_held_back_by_a_silence_is_told_after_it(tmp_path):
    """Ketamine's rise is told (``send_resolved`` on); a silence of four weeks comes,
    and the rise ends under it (its end recorded, sent to nobody). The first round
    after the silence tells the end, once: recipients last heard that ketamine rises.
    Before, nothing told them it had ended."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from tests.test_alerting import _period
    from warnd.alerting import actions

    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        "\n[alerting]\nsend_resolved = true\n")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = datetime(2026, 7, 6).date()
    t0 = datetime(2026, 7, 7, 12, tzinfo=UTC)
    told = []
    for k in range(12):
        now = t0 + timedelta(weeks=k)
        if k == 2:
            actions.add_silence(store, substance="ketamin", duration=timedelta(weeks=4),
                                reason="festival", who="kari", via="web", now=now)
        period = d0 + timedelta(weeks=k)
        got = _period(cfg, store, period,
                      {"lab": [finding("lab", detected=period)]} if k < 2 else {}, now=now)
        told += [(k, a["decision"], a.get("status", "open")) for a in got]
    assert told == [(0, "open", "open"), (5, "resolve", "silenced"), (6, "resolve", "open")]
    store.close()


def test_a_source_failure_nobody_heard_of_gets_no_recovery_message(tmp_path, root):
    """A feed is being moved: the operator silences its failure messages for a day,
    the feed fails (its failure message held back) and is back after the silence has
    ended. No "recovered" message goes out for a failure nobody was told of (with
    ``send_resolved``); a failure that was told gets its recovery as before."""
    import shutil

    from tests.test_alerting import RSS_SOURCE
    from warnd.alerting import actions

    cfg = load_config(write_config(tmp_path, RSS_SOURCE + '\n[[targets]]\nname = "mail"\n'
                                   'url = "mailto://127.0.0.1:1?from=a@x.org&to=o@x.org"\n'
                                   "\n[alerting]\nsend_resolved = true\n"))
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = {"t": t0}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    store = Store.in_dir(cfg.state_dir)
    actions.add_silence(store, substance=None, kind="source_health", source="media",
                        duration=timedelta(days=1), reason="moving the feed", who="kari",
                        via="web", now=t0)
    feed = root / "tests/fixtures/rss/ba_2026-03.xml"

    def poll(at: datetime, ok: bool) -> None:
        clock["t"] = at
        assert pipe.poll("media").ok is ok

    for k in range(3):
        poll(t0 + timedelta(hours=k), False)
    (tmp_path / "feeds").mkdir()
    shutil.copy(feed, tmp_path / "feeds/ba.xml")
    poll(t0 + timedelta(days=2), True)
    rows = store.q("SELECT decision, status FROM alerts ORDER BY id")
    assert rows == [{"decision": "open", "status": "silenced"}]
    (tmp_path / "feeds/ba.xml").unlink()  # later a failure that is told, and its end
    for k in range(3):
        poll(t0 + timedelta(days=3, hours=k), False)
    shutil.copy(feed, tmp_path / "feeds/ba.xml")
    poll(t0 + timedelta(days=4), True)
    rows = store.q("SELECT decision, status FROM alerts ORDER BY id")
    assert [r["decision"] for r in rows] == ["open", "open", "resolve"]
    assert [r["status"] for r in rows][1:] == ["resolved", "resolved"]
    store.close()


def test_ending_a_silence_that_has_run_out_changes_nothing(tmp_path):
    """A silence of two days; three days later an operator asks to end it (from an old
    list): it has ended already, so nothing is changed or logged, and the console says
    there is no such active silence. Before, it was "expired" a day after it had ended, and
    the history showed an operator ending it."""
    from tests.alerting_env import make_config, target
    from warnd.alerting import actions

    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"))
    store = Store.in_dir(cfg.state_dir)
    t0 = datetime(2026, 7, 7, 10, tzinfo=UTC)
    sid = actions.add_silence(store, substance="ketamin", duration=timedelta(days=2),
                              reason="r", who="kari", via="web", now=t0)
    later = t0 + timedelta(days=3)
    assert not actions.expire_silence(store, sid, who="ola", via="web", now=later)
    (s,) = store.silences(now=later)
    assert s["expired_at"] is None and not s["active"]
    assert [r["action"] for r in actions.history(store)] == ["silence"]
    store.close()


def test_an_alert_of_the_digest_s_own_second_is_listed_by_the_next_one(tmp_path,
                                                                       smtp_server):
    """Times are kept to the second. The morning's digest is made at 07:00:00.2; a rise's
    message is committed at 07:00:00.6 (another job, the same second). The next
    morning's digest lists it as sent; before, it fell between the two digests' times
    and was in neither."""
    from tests.alerting_env import finding, make_config, seed_series, target
    from warnd.alerting import decide, outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      '\n[alerting.digest]\nschedule = "daily"\nat = "07:00"\n'
                      'targets = ["mail"]\n')
    store = Store.in_dir(cfg.state_dir)
    outbox.dispatch_pending(cfg, store, now=datetime(2026, 7, 13, 8, tzinfo=UTC))
    seven = datetime(2026, 7, 14, 5, 0, 0, 200_000, tzinfo=UTC)  # 07:00 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=seven)["delivered"] == 1  # the digest
    seed_series(store, "lab")
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=seven + timedelta(milliseconds=400))
    outbox.dispatch_pending(cfg, store, now=seven + timedelta(seconds=1))
    outbox.dispatch_pending(cfg, store, now=seven + timedelta(days=1))
    digests = [json.loads(r["data"]) for r in
               store.q("SELECT data FROM alerts WHERE kind='digest' ORDER BY id")]
    store.close()
    assert [[c["id"] for c in d["changed"]] for d in digests] == [[], [a["id"]]]


def test_warnd_status_lists_the_end_of_a_told_rise_a_silence_holds_back(tmp_path, capsys):
    """Ketamine's rise is told, and a one-off spike in it (``send_resolved`` on); Kari
    silences ketamine for fourteen weeks, and the spike and then the rise end under the
    silence. While the silence lasts, `warnd status` lists each end (its alert,
    substance, kind and source), in its JSON and in its text: the desk still believes
    they go on, and will be told when the silence ends. Once it has ended and the ends
    are told, it lists none. Before, `warnd status` listed held-back rises and
    corrections only: nothing said that an end was waiting."""
    from warnd.alerting import actions
    from warnd.alerting.commands import print_alerting_status

    weeks, rise, calm = 130, 100, 112
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, calm)))]
    run = Weeks(tmp_path, lab, "\n[alerting]\nsend_resolved = true\n")
    held = []
    for w in range(rise - 2, weeks):
        if w == 110:
            store = Store.in_dir(run.cfg.state_dir)
            actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                                via="cli", until=week_end(124) - timedelta(hours=1),
                                now=week_end(109) + timedelta(hours=1))
            store.close()
        run.run(w)
        status = collect_status(run.cfg, now=week_end(w) + timedelta(hours=1))
        assert status["held_back_by_silence"] == []  # the rise itself was told
        ends = status["ends_held_back_by_silence"]
        held.append((w, [(e["kind"], e["source"], e["title"].split(":")[0]) for e in ends]))
        if w == 121:
            print_alerting_status(status)
            text = capsys.readouterr().out
            assert ("ends held back by a silence, told when it ends: " + ", ".join(
                f"ketamin (alert #{e['alert_id']}: lab)" for e in ends)) in text
            assert json.loads(json.dumps(ends)) == [
                {k: e[k] for k in ("alert_id", "substance", "kind", "direction", "source",
                                   "title")} for e in ends]
    told = [(w, d, run.status_of(aid)) for w, d, aid in run.told]
    assert told == [(104, "open", "resolved"), (120, "resolve", "silenced"),
                    (124, "resolve", "resolved")]  # held back, then told
    spike, rise_end = ("spike", "lab", "Avsluttet"), ("trend", "lab", "Avsluttet")
    assert [h for w, h in held if w < 110] == [[]] * 12
    assert [h for w, h in held if 110 <= w < 120] == [[spike]] * 10
    assert [h for w, h in held if 120 <= w < 124] == [[spike, rise_end]] * 4
    assert [h for w, h in held if w >= 124] == [[]] * 6
