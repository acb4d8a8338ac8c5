"""The config changed under a running warnd (a reload) while a substance's episode is
open or its messages wait: a target renamed, taken out and put back, or given another
address; a substance routed to another target while its messages wait; a source taken out or paused, or given another dimension; the time zone, the
language, the log level, ``alert_decreases``; a file that cannot be read. Week by week
through detection and dispatch with a real store (a new :class:`Pipeline` with another
config between rounds, as SIGHUP does), or the daemon's own reload: what each recipient
is told afterwards, and what the operator is told."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.alerting_env import SOURCES, target
from tests.conftest import write_config
from tests.scenario import START, put_weekly
from tests.test_stream_config import _lab_rise, _week_end
from warnd.config import load_config
from warnd.store import Store

URL = "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"
QUIET_NOON = '\n[alerting]\nsend_resolved = true\nquiet_hours = "12:00-18:00"\n'


def test_a_target_renamed_while_the_opening_waits_is_not_told_the_end_alone(tmp_path):
    """The lab's spike of ketamine (week 111) is told to mail. The rise's opening is
    decided at noon in week 112, in quiet hours (until 18:00 in Oslo), and waits; before
    it goes, the config is reloaded with mail renamed email (the same address). The
    opening is kept for mail, no longer configured. When the spike ends, email (mail,
    which had it) is told; when the rise ends, nobody is: no target heard of it, and
    email is not told the end of a rise it never had. Before, the rise's end went to
    email as where a new alert routes, its only message of the rise: "Avsluttet: Liten
    økning: ketamin"."""
    from warnd.alerting import outbox
    from warnd.alerting.send import SendResult
    from warnd.pipeline import Pipeline

    mail = load_config(write_config(tmp_path, SOURCES + target("mail", URL) + QUIET_NOON))
    email = load_config(write_config(tmp_path, SOURCES + target("email", URL) + QUIET_NOON,
                                     name="email.toml"))
    weeks, rise, calm, renamed = 155, 110, 125, 112
    lab = _lab_rise(weeks, rise, calm)
    store = Store.in_dir(mail.state_dir)
    try:
        for w in range(rise - 2, weeks):
            put_weekly(mail.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            cfg = mail if w < renamed else email
            Pipeline(mail if w == renamed else cfg, clock=lambda t=noon: t).detect()
            if w == renamed:  # still quiet: the opening waits; then the reload
                outbox.dispatch_pending(mail, store, now=noon + timedelta(hours=1),
                                        send=lambda url, **kw: SendResult(True, "SUCCESS"))
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6),
                                    send=lambda url, **kw: SendResult(True, "SUCCESS"))
        rows = [(r["kind"], r["decision"], r["target"], r["status"]) for r in store.q(
            "SELECT a.kind, a.decision, d.target, d.status FROM alerts a JOIN deliveries d "
            "ON d.alert_id = a.id ORDER BY a.id, d.target")]
        ends = store.q("SELECT kind FROM alerts WHERE decision = 'resolve' ORDER BY id")
    finally:
        store.close()
    assert [r["kind"] for r in ends] == ["spike", "trend"]
    assert rows == [
        ("spike", "open", "mail", "delivered"),
        ("trend", "open", "mail", "pending"),  # kept until mail is configured again
        ("spike", "resolve", "email", "delivered"),
        ("trend", "resolve", "mail", "pending"),  # waits with the opening, after it
    ]


def test_a_reload_changing_the_time_zone_does_not_put_off_polls_at_intervals(tmp_path):
    """A weekly source polled at an interval, and one on a cron schedule. The config is
    reloaded with ``timezone = "Europe/London"`` three days before the weekly poll is
    due: an interval is elapsed time, the same in every zone, so that poll keeps its
    time; the cron source's run moves to its clock time in London. Before, the weekly
    source's next poll was put off to a week after the reload, and its data (a rise in
    it) came four days late."""
    from datetime import UTC, datetime

    from tests.service_kit import counts_csv, write_service_config
    from warnd.service.daemon import Daemon

    (tmp_path / "w.csv").write_bytes(counts_csv(["ketamin"], weeks=12))
    sources = ('\n[[sources]]\nname = "weekly"\nkind = "count_table"\nlocation = "w.csv"\n'
               'interval = "7d"\ndimension = "use"\n'
               '\n[[sources]]\nname = "morning"\nkind = "count_table"\nlocation = "w.csv"\n'
               'cron = "0 6 * * *"\ndimension = "use"\n')
    path = tmp_path / "config.toml"
    write_service_config(path, sources=sources, general='timezone = "Europe/Oslo"\n')
    d = Daemon(load_config(path))
    d.schedule(d.config, first=True)
    d.scheduler.start(paused=True)
    try:
        due = datetime.now(UTC) + timedelta(days=3)
        d.scheduler.modify_job("poll:weekly", next_run_time=due)
        morning = d.scheduler.get_job("poll:morning").next_run_time
        write_service_config(path, sources=sources, general='timezone = "Europe/London"\n')
        assert d.reload() is True
        runs = {j.id: j.next_run_time for j in d.scheduler.get_jobs()}
        assert runs["poll:weekly"] == due
        assert runs["poll:morning"] - morning == timedelta(hours=1)  # 06:00 in London
    finally:
        d.scheduler.shutdown(wait=False)


def test_a_reload_applies_the_log_level_and_stop_timeout_it_gives(tmp_path):
    """The daemon runs at ``log_level = "INFO"`` with the default ``stop_timeout``; the
    operator sets ``DEBUG`` and ``5s`` to look into a slow source, and reloads: the next
    lines are logged at DEBUG, and a stop waits 5 s for running jobs; set back, they are
    back. A level given on the command line (``--log-level``) stands over the config's.
    Before, a reload said "config reloaded" and kept both as they were at the start."""
    import logging

    from tests.service_kit import write_service_config
    from warnd.service.daemon import Daemon

    path = tmp_path / "config.toml"
    root = logging.getLogger()
    was = root.level
    try:
        write_service_config(path, sources="", general='log_level = "INFO"\n')
        root.setLevel(logging.INFO)
        d = Daemon(load_config(path))
        assert d.stop_timeout == 60
        write_service_config(path, sources="",
                             general='log_level = "DEBUG"\nstop_timeout = "5s"\n')
        assert d.reload() is True
        assert (root.level, d.stop_timeout) == (logging.DEBUG, 5)
        assert logging.getLogger("apprise").level == logging.WARNING
        write_service_config(path, sources="", general='log_level = "INFO"\n')
        assert d.reload() is True
        assert (root.level, d.stop_timeout) == (logging.INFO, 60)
        fixed = Daemon(load_config(path), log_level="WARNING", stop_timeout=1.0)
        root.setLevel(logging.WARNING)
        write_service_config(path, sources="",
                             general='log_level = "DEBUG"\nstop_timeout = "5s"\n')
        assert fixed.reload() is True
        assert (root.level, fixed.stop_timeout) == (logging.WARNING, 1.0)
    finally:
        root.setLevel(was)


def test_a_told_fall_is_not_ended_by_a_reload_that_turns_decreases_off(tmp_path):
    """With ``alert_decreases`` the lab's fall of ketamine (a third from week 110 to
    week 125) is told; in week 116 the config is reloaded without the setting while the
    fall goes on. Nothing more is told of it until it ends, and then its end, to those
    told of it (with ``send_resolved``); `warnd status` lists it open until then. Before,
    the reload ended it: "Avsluttet: Nedgang: ketamin" went the week after, while the lab
    still counted a third of its usual, and the fall was no longer listed open."""
    import numpy as np

    from tests.conftest import SUBSTANCES
    from tests.test_stream_config import MAIL, _weeks
    from warnd.service.health import collect_status

    falls = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nalert_decreases = true\n",
        substances=SUBSTANCES))
    rises = load_config(write_config(tmp_path, SOURCES + MAIL, name="rises.toml"))
    weeks, fall, calm, off = 150, 110, 125, 116
    lam = np.full(weeks, 15.0)
    lam[fall:calm] /= 3
    lab = np.random.default_rng(3).poisson(lam).astype(float)
    told, listed = [], {}
    for w in range(fall - 2, weeks):
        cfg = falls if w < off else rises
        told += [(w, k, d) for w, k, d, _ in _weeks(lambda _, c=cfg: c, lab, range(w, w + 1))]
        listed[w] = [a["title"] for a in collect_status(cfg, now=_week_end(w))["open_alerts"]]
    (opened, _, _), (ended, _, _) = told
    assert [(k, d) for _, k, d in told] == [("trend", "open"), ("trend", "resolve")]
    assert opened < off and ended > calm
    assert all(listed[w] == [listed[opened][0]] for w in range(opened, ended))
    assert listed[ended] == []


def test_messages_kept_for_a_target_taken_out_go_at_once_when_it_is_configured_again(
        tmp_path):
    """Ketamine's rise is decided for mail while mail is out of the config (taken out by
    a reload a moment before): the dispatch every 30 s keeps the opening for it, "not
    configured". Ten minutes on, the config is reloaded with mail back: the opening goes
    with the next dispatch. Before, it waited until the hour its hold ran to
    (``alerting.retry_max_backoff``), as if mail had refused it."""
    from tests.alerting_env import finding, make_config, seed_series
    from warnd.alerting import decide, outbox
    from warnd.alerting.send import SendResult

    mail = target("mail", URL)
    ops = target("ops", URL.replace("o@", "ops@"))
    both = make_config(tmp_path, ops + mail)
    no_mail = load_config(write_config(tmp_path, SOURCES + ops, name="ops.toml"))
    store = Store.in_dir(both.state_dir)
    sent: list[tuple[str, str]] = []

    def send(url, **kw):
        sent.append((url.split("to=")[1].split("&")[0], t.isoformat()))
        return SendResult(True, "SUCCESS")

    try:
        seed_series(store, "lab")
        t0 = _week_end(160)
        decide.enqueue_findings(both, store, "ketamin", [(finding("lab"), "open")], {},
                                now=t0)
        t = t0
        while t < t0 + timedelta(minutes=30):
            back = t >= t0 + timedelta(minutes=10)
            outbox.dispatch_pending(both if back else no_mail, store, now=t, send=send)
            t += timedelta(seconds=30)
    finally:
        store.close()
    assert sent == [("ops@example.org", t0.isoformat()),
                    ("o@example.org", (t0 + timedelta(minutes=10)).isoformat())]


def test_a_target_given_another_address_by_a_reload_is_tried_at_once(tmp_path):
    """Teams answers the opening of ketamine's rise with 429 and ``Retry-After: 7200``:
    the card waits two hours, and so would every message to the target. The operator
    finds the flow's address was wrong, corrects the target's ``url`` and reloads: the
    card goes with the next dispatch, to the new address. A reload that leaves the
    target as it was keeps its back-off. Before, the card still waited the two hours
    the old address had asked for."""
    from datetime import UTC, datetime

    from tests.alerting_env import finding, seed_series
    from tests.service_kit import write_service_config
    from warnd.alerting import decide, outbox
    from warnd.alerting.send import SendResult
    from warnd.service.daemon import Daemon

    wrong, right = "workflows://127.0.0.1:4443/wf1/sig1/", "workflows://127.0.0.1:4443/wf2/sig2/"
    path = tmp_path / "config.toml"

    def write(url: str) -> None:
        write_service_config(path, sources="", targets=target("teams", url),
                             general="allow_empty = true\n")

    write(wrong)
    d = Daemon(load_config(path))
    tried: list[str] = []

    def send(url, **kw):
        tried.append(url.split("?")[0])
        if url.startswith(wrong):
            return SendResult(False, "FAILURE", "HTTP 429", kind="http", retry_after=7200)
        return SendResult(True, "SUCCESS")

    store = Store.in_dir(d.config.state_dir)
    try:
        seed_series(store, "lab")
        now = datetime.now(UTC)
        decide.enqueue_findings(d.config, store, "ketamin", [(finding("lab"), "open")], {},
                                now=now)
        outbox.dispatch_pending(d.config, store, now=now, send=send)
        assert d.reload() is True  # nothing changed: still backing off
        outbox.dispatch_pending(d.config, store, now=now + timedelta(minutes=1), send=send)
        assert tried == [wrong]
        write(right)
        assert d.reload() is True
        outbox.dispatch_pending(d.config, store, now=now + timedelta(minutes=2), send=send)
        status = store.q("SELECT status FROM deliveries")
    finally:
        store.close()
    assert tried == [wrong, right]
    assert [r["status"] for r in status] == ["delivered"]


def test_a_message_waiting_when_the_language_changes_names_the_substance_in_the_new_one(
        tmp_path):
    """Ketamine, labelled per language (``{ no = "Ketamin", en = "Ketamine" }``), rises;
    its opening is decided at noon in quiet hours, in Norwegian, and waits. Before it
    goes, the config is reloaded with ``language = "en"``: the message that goes at
    18:00 is English throughout, the substance named "Ketamine". Before, its words were
    English and the substance's name the Norwegian one it was decided with: "Small
    increase: Ketamin"."""
    from tests.alerting_env import finding, seed_series
    from warnd.alerting import decide, outbox
    from warnd.alerting.send import SendResult

    labels = ('[substances.ketamin]\nlabel = { no = "Ketamin", en = "Ketamine" }\n'
              'names = ["ketamin"]\n')
    no = load_config(write_config(tmp_path, SOURCES + target("mail", URL) + QUIET_NOON,
                                  substances=labels))
    en = load_config(write_config(tmp_path, SOURCES + target("mail", URL) + QUIET_NOON,
                                  substances='language = "en"\n' + labels,
                                  name="en.toml"))
    titles: list[str] = []

    def send(url, *, title, **kw):
        titles.append(title)
        return SendResult(True, "SUCCESS")

    store = Store.in_dir(no.state_dir)
    try:
        seed_series(store, "lab")
        noon = _week_end(160)
        (a,) = decide.enqueue_findings(no, store, "ketamin", [(finding("lab"), "open")], {},
                                       now=noon)
        assert "Ketamin " in a["title"]
        outbox.dispatch_pending(en, store, now=noon + timedelta(hours=6), send=send)
    finally:
        store.close()
    assert len(titles) == 1 and "Ketamine" in titles[0] and "increase" in titles[0]


def test_check_config_says_which_waiting_messages_a_target_taken_out_leaves_behind(
        tmp_path, capsys):
    """Ketamine's opening waits for mail (quiet hours). `warnd check-config` on a file
    that renames mail to email says, before the reload, that mail's message would be
    kept waiting for a target of that name; on the file as it is, nothing. Before, it
    said only "OK", and the message stayed waiting unseen until `warnd status`."""
    from tests.alerting_env import finding, seed_series
    from warnd.alerting import decide
    from warnd.cli import main

    mail = load_config(write_config(tmp_path, SOURCES + target("mail", URL) + QUIET_NOON))
    renamed = write_config(tmp_path, SOURCES + target("email", URL) + QUIET_NOON,
                           name="renamed.toml")
    store = Store.in_dir(mail.state_dir)
    try:
        seed_series(store, "lab")
        decide.enqueue_findings(mail, store, "ketamin", [(finding("lab"), "open")], {},
                                now=_week_end(160))
    finally:
        store.close()
    assert main(["check-config", str(mail.path)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["check-config", str(renamed)]) == 0
    err = capsys.readouterr().err
    assert 'warning: targets: "mail" is not configured, and 1 delivery waits for it' in err


@pytest.mark.parametrize("how", ["removed", "paused"])
def test_a_rise_a_silence_held_back_is_told_after_it_though_its_source_was_out_meanwhile(
        tmp_path, how):
    """A silence covers ketamine from week 110 to just before week 121; the lab's rise
    opens under it (week 112: recorded, sent to nobody). In week 115 the lab is taken
    out of the config (or paused), and put back in week 118, the rise going on. The
    first round after the silence tells the rise (week 121), and its end when it comes,
    as without the reload. Before, the weeks without the lab dropped the mark that the
    rise was held back: it was never told, and its end went to nobody."""
    from datetime import timedelta as td

    from tests.conftest import SUBSTANCES
    from tests.test_stream_config import MAIL, _weeks
    from warnd.alerting import actions

    parts = SOURCES.split("[[sources]]")
    without = ("[[sources]]".join([parts[0], *parts[2:]]) if how == "removed" else
               SOURCES.replace('location = "lab/"\n', 'location = "lab/"\nenabled = false\n'))
    full = load_config(write_config(tmp_path, SOURCES + MAIL, substances=SUBSTANCES))
    cut = load_config(write_config(tmp_path, without + MAIL, name="cut.toml"))
    silenced, out, back, ends = 110, 115, 118, 121

    def configs(w: int):
        if w == silenced:
            store = Store.in_dir(full.state_dir)
            try:
                actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                    via="cli", until=_week_end(ends) - td(hours=1),
                                    now=_week_end(w) - td(hours=1))
            finally:
                store.close()
        return cut if out <= w < back else full

    told = _weeks(configs, _lab_rise(150, 110, 125), range(108, 150))
    trend = [(w, d, s) for w, k, d, s in told if k == "trend"]
    assert [(d, s) for _, d, s in trend] == [
        ("open", "silenced"), ("open", "open"), ("resolve", "open")]
    assert trend[1][0] == ends


def test_a_reload_of_a_file_naming_an_include_that_is_no_file_name_is_refused(
        tmp_path, capsys):
    """The operator writes ``include = [1]`` by mistake and reloads: the reload is
    refused and the running config stays, as for any invalid file, and `warnd
    check-config` names the key (exit 78). Before, reading it raised a TypeError out of
    the reload, which ended the daemon (and at the restart, exit 1, not 78: systemd
    restarted it again and again), and check-config printed a traceback."""
    from tests.service_kit import write_service_config
    from warnd.cli import EX_CONFIG, main
    from warnd.service.daemon import Daemon

    path = tmp_path / "config.toml"
    write_service_config(path, sources="", general="allow_empty = true\n")
    d = Daemon(load_config(path))
    running = d.config
    path.write_text("include = [1]\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert d.reload() is False
    assert d.config is running and d.last_reload_ok is False
    assert main(["check-config", str(path)]) == EX_CONFIG
    assert "include[0]: " in capsys.readouterr().err


def test_a_source_given_another_dimension_is_told_and_summed_in_it(tmp_path):
    """The lab's table was configured as ``dimension = "use"``; while its ketamine rise
    is open (told in week 112), the operator corrects it to ``"availability"`` and
    reloads (week 113). From then on the lab's findings are of availability: the end of
    the rise names the lab's series as availability, and the digest sums the lab there.
    Before, the series kept the dimension of its first rows for good: messages and
    digests went on saying "use" for as long as warnd ran."""
    import numpy as np

    from tests.test_stream_config import LAB_IN, MAIL
    from tests.test_stream_config import START as WEEK0
    from warnd.alerting import digest
    from warnd.pipeline import Pipeline

    (tmp_path / "data").mkdir()
    use = load_config(write_config(tmp_path, LAB_IN.format(region="NO") + MAIL))
    availability = load_config(write_config(
        tmp_path, LAB_IN.format(region="NO").replace('"use"', '"availability"') + MAIL,
        name="availability.toml"))
    weeks, corrected = 150, 113
    lam = np.full(weeks, 5.0)
    lam[110:125] *= 3
    values = np.random.default_rng(3).poisson(lam)
    told, summed = [], {}
    for w in range(104, weeks):
        rows = ["period,substance,value"] + [
            f"{WEEK0 + timedelta(weeks=i)},ketamin,{values[i]}" for i in range(w + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        cfg = use if w < corrected else availability
        for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).run_once()["alerts"]:
            told.append((w, a["kind"], a["decision"],
                         [s["dimension"] for s in a["data"].get("agree", [])]))
        if w in (corrected - 1, corrected + 7):
            store = Store.in_dir(cfg.state_dir)
            try:
                summed[w] = digest.build(cfg, store, end=_week_end(w))["substances"][0][
                    "by_dimension"]
            finally:
                store.close()
    trend = [(w, d, dims) for w, k, d, dims in told if k == "trend"]
    assert [(d, dims) for _, d, dims in trend] == [
        ("open", ["use"]), ("resolve", ["availability"])]
    assert summed[corrected - 1]["use"] == 2 and summed[corrected - 1]["availability"] == 0
    assert summed[corrected + 7]["use"] == 0 and summed[corrected + 7]["availability"] == 2


# -- a reload's routes and the messages still waiting ------------------------------------
#: Tuesday 22:00 in Oslo, in quiet hours until 08:00
NIGHT = datetime(2026, 7, 7, 20, 0, tzinfo=UTC)
QUIET_NIGHT = '\n[alerting]\nsend_resolved = true\nquiet_hours = "17:00-08:00"\n'
OPENING = "Liten økning: ketamin — 1 kilde"
STRONG = "Sterk økning: ketamin — 2 kilder"


def _routed(tmp_path, smtp_server, *names: str, name: str):
    """mail and desk, both on the SMTP server; ketamine routed to ``names`` only."""
    listed = ", ".join(f'"{n}"' for n in names)
    return load_config(write_config(
        tmp_path, SOURCES + target("mail", smtp_server.url("mail@example.org"))
        + target("desk", smtp_server.url("desk@example.org"))
        + f'\n[[routes]]\nsubstances = ["ketamin"]\ntargets = [{listed}]\nstop = true\n'
        + QUIET_NIGHT, name=name))


def _night(cfg, store, start: datetime, hours: float) -> None:
    """The dispatch every 30 minutes from ``start`` for ``hours`` with ``cfg``."""
    from warnd.alerting import outbox

    t = start
    while t <= start + timedelta(hours=hours):
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=30)


def _mail(smtp_server) -> list[tuple[str, str, str | None]]:
    return [(m["To"].split("@")[0], m["Subject"], m["In-Reply-To"])
            for m in smtp_server.messages]


def test_an_opening_waiting_for_the_morning_goes_where_a_reload_routes_it(tmp_path,
                                                                          smtp_server):
    """Ketamine's rise opens at 22:00, routed to mail, and waits for the end of the quiet
    hours (08:00). In the evening the config is reloaded with ketamine routed to the desk
    instead. In the morning the desk gets the opening and mail nothing: its delivery is
    not sent, recorded as such and listed by `warnd outbox --status dropped`; the rise's
    escalation and end go to the desk, in its thread, none to mail. Before, mail got the
    opening in the morning (no longer routed ketamine) and the desk heard of the rise
    only at the escalation."""
    from tests.alerting_env import finding, judge_period, seed_series
    from tests.servers import wait_for
    from warnd.alerting import outbox

    old = _routed(tmp_path, smtp_server, "mail", name="old.toml")
    new = _routed(tmp_path, smtp_server, "desk", name="new.toml")
    store = Store.in_dir(old.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        d0 = date(2026, 7, 6)
        (opening,) = judge_period(old, store, d0, {"lab": [finding(
            "lab", detected=d0, rel=0.5, category=1)]}, now=NIGHT)
        assert opening["targets"] == ["mail"] and opening["due_at"] > NIGHT.isoformat()
        outbox.dispatch_pending(old, store, now=NIGHT)
        _night(new, store, NIGHT + timedelta(minutes=30), 12)  # reloaded, till 10:30
        wait_for(lambda: len(smtp_server.messages) == 1, what="the opening")
        assert _mail(smtp_server) == [("desk", OPENING, None)]
        (dropped,) = outbox.list_deliveries(store, statuses=("dropped",))
        assert (dropped["alert_id"], dropped["target"], dropped["last_error"]) == (
            opening["id"], "mail", outbox.REROUTED)
        assert store.q("SELECT delivered_at FROM deliveries WHERE target='desk'")[0][
            "delivered_at"] == "2026-07-08T06:00:00+00:00"  # 08:00 in Oslo
        day = NIGHT + timedelta(weeks=1) - timedelta(hours=8)
        (esc,) = judge_period(new, store, d0 + timedelta(weeks=1), {
            "lab": [finding("lab", detected=d0 + timedelta(weeks=1))],
            "customs": [finding("customs")]}, now=day)
        outbox.dispatch_pending(new, store, now=day)
        for k in range(2, 9):  # the rise ends
            now = day + timedelta(weeks=k - 1)
            judge_period(new, store, d0 + timedelta(weeks=k), {}, now=now)
            outbox.dispatch_pending(new, store, now=now)
        wait_for(lambda: len(smtp_server.messages) == 3, what="the escalation and the end")
        first = smtp_server.messages[0]["Message-ID"]
        assert _mail(smtp_server)[1:] == [("desk", "Forverring: " + STRONG, first),
                                          ("desk", _mail(smtp_server)[2][1], first)]
        assert _mail(smtp_server)[2][1].startswith("Avsluttet: ")
        assert esc["targets"] == ["desk"]
        rows = store.q("SELECT alert_id, status FROM deliveries WHERE target='mail'")
        assert rows == [{"alert_id": opening["id"], "status": "dropped"}]
        counts = store.q("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
        assert {r["status"]: r["n"] for r in counts} == {"delivered": 3, "dropped": 1}
    finally:
        store.close()


def test_a_target_a_reload_adds_gets_the_waiting_escalation_as_its_opening(tmp_path,
                                                                           smtp_server):
    """Ketamine's rise is told to mail at noon; a week later customs agrees at 22:00 and
    the escalation waits for the morning. In the evening the config is reloaded with
    ketamine routed to mail and the desk. In the morning mail gets the escalation, in its
    thread, and the desk, which never had the rise, the same message read as the opening
    ("Sterk økning: …", a thread of its own), once, however often the outbox is
    dispatched; the end goes to both. Before, the desk heard nothing of the rise until a
    later escalation, and not at all when none came."""
    from tests.alerting_env import finding, judge_period, seed_series
    from tests.servers import wait_for
    from warnd.alerting import outbox

    old = _routed(tmp_path, smtp_server, "mail", name="old.toml")
    both = _routed(tmp_path, smtp_server, "mail", "desk", name="both.toml")
    store = Store.in_dir(old.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        d0 = date(2026, 7, 6)
        noon = NIGHT - timedelta(hours=10)
        judge_period(old, store, d0, {"lab": [finding("lab", detected=d0, rel=0.5,
                                                      category=1)]}, now=noon)
        outbox.dispatch_pending(old, store, now=noon)
        wait_for(lambda: len(smtp_server.messages) == 1, what="the opening")
        night = NIGHT + timedelta(weeks=1)
        (esc,) = judge_period(old, store, d0 + timedelta(weeks=1), {
            "lab": [finding("lab", detected=d0 + timedelta(weeks=1))],
            "customs": [finding("customs")]}, now=night)
        assert esc["decision"] == "escalate" and esc["targets"] == ["mail"]
        outbox.dispatch_pending(old, store, now=night)
        _night(both, store, night + timedelta(minutes=30), 12)  # reloaded, till 10:30
        wait_for(lambda: len(smtp_server.messages) == 3, what="the escalation to each")
        opening = smtp_server.messages[0]["Message-ID"]
        got = _mail(smtp_server)
        assert got[0] == ("mail", OPENING, None)
        assert sorted(got[1:]) == [("desk", STRONG, None),
                                   ("mail", "Forverring: " + STRONG, opening)]
        _night(both, store, night + timedelta(hours=13), 2)
        assert len(smtp_server.messages) == 3  # told once
        for k in range(2, 9):  # the rise ends
            now = night + timedelta(weeks=k - 1, hours=-10)
            judge_period(both, store, d0 + timedelta(weeks=k), {}, now=now)
            outbox.dispatch_pending(both, store, now=now)
        wait_for(lambda: len(smtp_server.messages) == 5, what="the end to each")
        desk_first = next(m["Message-ID"] for m in smtp_server.messages
                          if m["To"].startswith("desk"))
        ends = sorted((to, reply) for to, subject, reply in _mail(smtp_server)[3:]
                      if subject.startswith("Avsluttet: "))
        assert ends == [("desk", desk_first), ("mail", opening)]
    finally:
        store.close()


def test_an_end_waiting_with_an_opening_a_reload_routes_elsewhere_goes_to_nobody(
        tmp_path, smtp_server):
    """Ketamine's rise opens at 22:00 and is over within the night (a revision of the
    weeks): the opening and the end wait for mail, which had the rise addressed to it,
    until 08:00. The config is then reloaded with ketamine routed to the desk. Mail, no
    longer routed the rise, gets neither: the opening is not sent, and the end is recorded
    as not sent as mail never had what it ends; the desk is not told of a rise that has
    ended. Before, mail got both in the morning."""
    from tests.alerting_env import finding, judge_period, seed_series
    from warnd.alerting import outbox

    old = _routed(tmp_path, smtp_server, "mail", name="old.toml")
    new = _routed(tmp_path, smtp_server, "desk", name="new.toml")
    store = Store.in_dir(old.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        d0 = date(2026, 7, 6)
        (opening,) = judge_period(old, store, d0, {"lab": [finding(
            "lab", detected=d0, rel=0.5, category=1)]}, now=NIGHT)
        ends = [a for k in range(1, 9) for a in judge_period(
            old, store, d0 + timedelta(weeks=k), {}, now=NIGHT + timedelta(minutes=k))]
        assert [(a["decision"], a["targets"]) for a in ends] == [("resolve", ["mail"])]
        outbox.dispatch_pending(old, store, now=NIGHT + timedelta(minutes=10))
        _night(new, store, NIGHT + timedelta(minutes=30), 12)
        rows = store.q("SELECT alert_id, target, status, last_error FROM deliveries "
                       "ORDER BY alert_id, target")
    finally:
        store.close()
    assert rows == [
        {"alert_id": opening["id"], "target": "mail", "status": "dropped",
         "last_error": outbox.REROUTED},
        {"alert_id": ends[0]["id"], "target": "mail", "status": "dropped",
         "last_error": outbox.UNHEARD}]
    assert smtp_server.messages == []


def test_the_routes_check_of_a_backlog_reads_the_store_a_fixed_number_of_times(tmp_path):
    """A dead relay leaves messages waiting, and each dispatch compares them with the
    routes. The comparison reads the store as often for 200 waiting messages as for 20:
    the silences and the deliveries once for all (before, three reads or more for each
    message, every 30 s: 9,003 statements for 1,000 messages)."""
    from warnd.alerting import outbox

    now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    cfg = load_config(write_config(tmp_path, SOURCES + target(
        "mail", "mailto://a:b@127.0.0.1:1?from=w@example.org&to=x@example.org") + target(
        "desk", "mailto://a:b@127.0.0.1:1?from=w@example.org&to=y@example.org")))
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="heroin", kind=None, source=None, reason="r",
                          until=now - timedelta(days=1), now=now - timedelta(days=2))
        statements = []
        for n in (20, 200):
            while store.q("SELECT COUNT(*) AS c FROM alerts")[0]["c"] < n:
                i = store.q("SELECT COUNT(*) AS c FROM alerts")[0]["c"]
                kind = "notice" if i % 4 == 0 else "trend"
                outbox.enqueue_alert(cfg, store, {
                    "dedupe_key": f"k{i}", "substance": ("ketamin", "heroin")[i % 2],
                    "source": "lab", "region": "", "kind": kind, "direction": "increase",
                    "severity": "warning", "decision": "open", "title": "t", "body": "b",
                    "data": {}}, now=now)
            seen: list[str] = []
            store.db.conn.set_trace_callback(seen.append)
            outbox._as_routed(cfg, store, now)
            store.db.conn.set_trace_callback(None)
            statements.append(len(seen))
        assert store.q("SELECT COUNT(*) AS c FROM deliveries WHERE status='pending'"
                       )[0]["c"] == 400
        assert statements[0] == statements[1], statements
    finally:
        store.close()
