"""One substance's rise that starts in one region and spreads, week by week through
detection on a real store and out to a real SMTP server, read per desk: a regional desk
routed by `regions`, a national desk, and ops for everything; and what the messages of
several sources of one substance tell over the weeks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np

from feeds.base import Observation
from tests.alerting_env import SOURCES as LAB_CUSTOMS
from tests.alerting_env import finding, judge_period, make_config, seed_series, target
from tests.scenario import noon_after_week
from tests.servers import wait_for
from warnd.alerting import actions, decide, digest
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
D0 = date(2026, 7, 6)  # a Monday after the series seed_series writes
WEEKS = 150

SOURCES = """
[[sources]]
name = "lab"
kind = "count_table"
location = "lab/"
dimension = "use"

[[sources]]
name = "customs"
kind = "count_table"
location = "customs/"
dimension = "availability"
"""

ROUTES = """
[[routes]]
regions = ["46"]
targets = ["vestland"]

[[routes]]
regions = ["03"]
targets = ["oslo"]

[[routes]]
regions = ["NO"]
targets = ["national"]

[[routes]]
targets = ["ops"]

[alerting]
send_resolved = true
chart = false
"""

#: reminders every four weeks
REMIND = "\n[detection]\nrepeat_after_periods = 4\n"


def _desks(smtp) -> str:
    """Vestland's desk, Oslo's, the national desk (national sources: region "NO") and
    ops for everything, all on one SMTP server (told apart by their addresses)."""
    out = ""
    for name, to in (("vestland", "v@example.org"), ("oslo", "o@example.org"),
                     ("national", "n@example.org"), ("ops", "ops@example.org")):
        out += f'\n[[targets]]\nname = "{name}"\nurl = "{smtp.url(to)}"\n'
    return out + ROUTES


def _desks_no_server() -> str:
    """The same desks and routes, at an address nothing listens on."""
    return "".join(target(n, f"mailto://127.0.0.1:1?from=a@example.org&to={n}@example.org")
                   for n in ("vestland", "oslo", "national", "ops")) + ROUTES


def _series(seed: int, rise: int | None, *, base: float = 5.0, factor: float = 4.0,
            until: int | None = None) -> np.ndarray:
    lam = np.full(WEEKS, base)
    if rise is not None:
        lam[rise:until] *= factor
    return np.random.default_rng(seed).poisson(lam).astype(float)


def _put(cfg, source: str, region: str, values, upto: int, now: datetime | None = None) -> None:
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest(source, location=f"{source}.csv", sha256=None, problems=(), items=(),
                     observations=[Observation(source=source, substance="ketamin",
                                               region=region, period=START + timedelta(weeks=i),
                                               value=float(v))
                                   for i, v in enumerate(values[:upto])], now=now)
    finally:
        store.close()


def _by_desk(smtp) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in smtp.messages:
        out.setdefault(str(m["To"]).split("@")[0], []).append(str(m["Subject"]))
    return out


def _run(cfg, smtp, series: dict[tuple[str, str], np.ndarray], weeks: range, *,
         stored_then: bool = False) -> list:
    """Week by week: each ``(source, region)`` series as published to the week's end,
    detection and dispatch at noon the day after; what each round decided.
    ``stored_then``: the values stored at that noon, as a poll then would (for a replay
    of the store), not at the wall clock's time."""
    stream = []
    sent = len(smtp.messages)  # those of the weeks before
    for w in weeks:
        for (source, region), values in series.items():
            _put(cfg, source, region, values, w + 1,
                 noon_after_week(START, w) if stored_then else None)
        p = Pipeline(cfg, clock=lambda w=w: noon_after_week(START, w))
        made = p.detect()
        stream += [(w, a["kind"], a["decision"], a.get("targets")) for a in made]
        res = p.dispatch()
        sent += res.get("delivered", 0)
        wait_for(lambda: len(smtp.messages) == sent, what=f"{sent} emails")
    return stream


def _trend(desk: list[str]) -> list[str]:
    """A desk's trend messages, by their first words."""
    return [s.split(":")[0] for s in desk if "topp" not in s]


def test_a_rise_spreading_from_a_region_escalates_and_reminds_each_desk_it_names(
        tmp_path, smtp_server):
    """Ketamine rises at the lab's Vestland series (week 90); from week 100 customs,
    a national source, sees it too, and more strongly; reminders every four weeks.
    Vestland's desk and ops have the opening. When customs agrees, both hear
    "Forverring" that week, and the national desk has it as its opening; the reminders
    that follow name Vestland's rise and reach Vestland's desk as they reach the others.
    Before, the week customs' rise opened was also a week the lab's spike was reminded
    of: the lab's series was left out of the rising sources, customs was judged alone,
    no more than told, and the escalation was lost (ops heard of the strong rise only in
    a reminder); and every message whose strongest series was customs' went only where
    region "NO" routes: Vestland's desk never heard that the rise it had been told of
    grew, nor any reminder of it."""
    cfg = make_config(tmp_path, _desks(smtp_server) + REMIND, sources=SOURCES)
    series = {("lab", "46"): _series(1, 90), ("customs", "NO"): _series(3, 100, factor=8.0)}
    stream = _run(cfg, smtp_server, series, range(88, 110))
    assert [(w, d) for w, k, d, _ in stream if k == "trend"] == [
        (92, "open"), (96, "repeat"), (100, "repeat"), (101, "escalate"), (105, "repeat"),
        (109, "repeat")]
    desks = _by_desk(smtp_server)
    for desk in ("v", "ops"):
        assert _trend(desks[desk]) == ["Liten økning", "Påminnelse", "Påminnelse",
                                       "Forverring", "Påminnelse", "Påminnelse"]
    assert _trend(desks["n"]) == ["Sterk økning", "Påminnelse", "Påminnelse"]
    assert "o" not in desks  # Oslo's series never rose: its desk hears nothing


def test_a_rise_opening_in_two_regions_at_once_reaches_both_desks(tmp_path, smtp_server):
    """Customs (national) and the lab's Vestland series rise the same week; customs'
    rise is the stronger. The opening names both, and reaches Vestland's desk as well as
    the national desk; customs' spike alone, the week before, goes only where "NO"
    routes. Before, the opening went only where its strongest series' region routed:
    Vestland's desk never heard of a rise in its own region."""
    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    series = {("lab", "46"): _series(1, 100), ("customs", "NO"): _series(3, 100, factor=8.0)}
    stream = _run(cfg, smtp_server, series, range(98, 104))
    assert stream == [(100, "spike", "open", ["national", "ops"]),
                      (101, "trend", "open", ["national", "ops", "vestland"])]
    assert _by_desk(smtp_server)["v"] == ["Sterk økning: ketamin — 2 kilder"]


def test_a_second_region_of_one_source_is_told_to_its_desk_when_it_joins(
        tmp_path, smtp_server):
    """The lab's Vestland series rises from week 90, its Oslo series from week 98, and
    customs (national) from week 102; all fall back at week 112. The lab's second region
    is no second source: nothing more is sent to Vestland's desk or ops, but Oslo's desk
    has the rise as its opening the week its region joins (week 99). The escalation
    customs brings names both of the lab's regions and reaches every desk. The end goes
    to every desk that had the rise, once no series holds it open. Before, Oslo's desk
    heard nothing of the rise in its region until customs' escalation."""
    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    series = {
        ("lab", "46"): _series(1, 90, until=112),
        ("lab", "03"): _series(2, 98, until=112),
        ("customs", "NO"): _series(3, 102, until=112),
    }
    stream = _run(cfg, smtp_server, series, range(88, 140))
    assert [(w, d, t) for w, k, d, t in stream if k == "trend"] == [
        (92, "open", ["vestland", "ops"]),
        (99, "escalate", ["oslo"]),
        (103, "escalate", ["national", "ops", "oslo", "vestland"]),
        (121, "resolve", ["national", "ops", "oslo", "vestland"])]
    desks = _by_desk(smtp_server)
    assert _trend(desks["o"]) == ["Liten økning", "Forverring", "Avsluttet"]
    assert _trend(desks["v"]) == ["Liten økning", "Forverring", "Avsluttet"]


def test_a_region_joining_the_rise_is_told_to_its_desk_alone_once(tmp_path, smtp_server):
    """The lab's Vestland series rises from week 90 (told week 92: Vestland's desk and
    ops), its Oslo series from week 98; reminders every four weeks. Oslo's series adds
    no evidence (the same source): Oslo's desk alone hears of the rise the week its
    region joins, once, as its opening (its own thread), and Vestland's desk and ops hear
    nothing more than their reminders, still every four weeks from the opening. The
    alert is stored and listed as Oslo's desk read it. Before, Oslo's desk heard nothing
    of the rise in its region until a reminder came, and the national desk never."""
    cfg = make_config(tmp_path, _desks(smtp_server) + REMIND, sources=SOURCES)
    series = {("lab", "46"): _series(1, 90), ("lab", "03"): _series(2, 98)}
    stream = _run(cfg, smtp_server, series, range(88, 106), stored_then=True)
    assert [(w, d, sorted(t)) for w, k, d, t in stream if k == "trend"] == [
        (92, "open", ["ops", "vestland"]),
        (96, "repeat", ["ops", "vestland"]),
        (99, "escalate", ["oslo"]),
        (100, "repeat", ["ops", "oslo", "vestland"]),
        (104, "repeat", ["ops", "oslo", "vestland"])]
    desks = _by_desk(smtp_server)
    assert _trend(desks["o"]) == ["Liten økning", "Påminnelse", "Påminnelse"]
    for desk in ("v", "ops"):
        assert _trend(desks[desk]) == ["Liten økning", "Påminnelse", "Påminnelse",
                                       "Påminnelse"]
    assert "n" not in desks
    oslo = [m for m in smtp_server.messages if str(m["To"]).startswith("o@")]
    assert oslo[0]["In-Reply-To"] is None  # it starts Oslo's thread
    assert [m["In-Reply-To"] for m in oslo[1:]] == [oslo[0]["Message-ID"]] * 2
    store = Store.in_dir(cfg.state_dir)
    try:
        joined = store.q("SELECT title, status FROM alerts WHERE decision='escalate'")
        opens = store.q("SELECT target, opens FROM deliveries d JOIN alerts a ON "
                        "a.id = d.alert_id WHERE a.decision='escalate'")
        # the week's digest lists it as Oslo's desk had it: its opening
        week = digest.build(cfg, store, end=noon_after_week(START, 101),
                            since=noon_after_week(START, 97))
    finally:
        store.close()
    assert joined == [{"title": "Liten økning: ketamin — 1 kilde", "status": "open"}]
    assert opens == [{"target": "oslo", "opens": 1}]
    assert [(a["decision"], a["title"], a["opened_for"]) for a in week["changed"]
            if a["kind"] == "trend"] == [
        ("escalate", "Liten økning: ketamin — 1 kilde", ["oslo"]),
        ("repeat", "Påminnelse: Liten økning: ketamin — 1 kilde", [])]
    assert [o["substance"] for o in week["open"]] == ["ketamin"]
    # `warnd backtest --replay store` tells the same messages to the same desks
    msgs = replay(cfg, start=noon_after_week(START, 88).date(),
                  end=noon_after_week(START, 105).date(), every=7)
    assert [(m["date"], m["decision"], sorted(m["targets"])) for m in msgs
            if m["kind"] == "trend"] == [
        (noon_after_week(START, w).date().isoformat(), d, sorted(t))
        for w, k, d, t in stream if k == "trend"]


def test_a_joined_regions_desk_hears_the_end_when_the_whole_rise_ends(tmp_path):
    """The lab's Vestland series' rise is told (week 0); its Oslo series rises from week
    2 to week 4, told then to Oslo's desk alone, as its opening. Oslo's series' own
    episode ends while Vestland's goes on: nothing is told (the rise Oslo's desk was
    told of goes on). When Vestland's ends too, the end goes to every desk that had the
    rise, Oslo's desk among them."""
    cfg = make_config(tmp_path, _desks_no_server(), sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 30)
        told, oslo_open = [], []
        for w in range(30):
            period, now = _week(w)
            lab = replace(finding("lab", category=1, rel=1.0, detected=period), region="46")
            per = {("lab", "46"): [lab] if w < 12 else [],
                   ("lab", "03"): [replace(lab, region="03")] if 2 <= w < 5 else []}
            told += [(w, a["decision"], sorted(a["targets"]))
                     for a in _judge(cfg, store, period, per, now=now)]
            oslo_open.append(bool(decide.tracker_active(
                store.episode_state("series:lab:ketamin:03"))))
    finally:
        store.close()
    end = told[-1][0]
    assert told == [(0, "open", ["ops", "vestland"]), (2, "escalate", ["oslo"]),
                    (end, "resolve", ["ops", "oslo", "vestland"])]
    # Oslo's series' episode ended weeks before the whole rise did, told to no one
    closed = oslo_open.index(False, 2)
    assert oslo_open[2] and 5 <= closed < end, (closed, end)


def test_a_region_joining_the_rise_under_a_silence_is_told_to_its_desk_after_it(tmp_path):
    """The lab's Vestland series' rise is told (week 0); a silence of ketamine holds
    back the substance's messages from week 1 to week 3. Oslo's series rises in week 2:
    its desk is told nothing then, and the week after the silence ends it hears of the
    rise, alone, as its opening; Vestland's desk and ops hear nothing more. Oslo's
    series' rise held back by a silence is not lost."""
    cfg = make_config(tmp_path, _desks_no_server(), sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 10)
        told = []
        for w in range(8):
            period, now = _week(w)
            if w == 1:
                actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                                    via="cli", until=now + timedelta(weeks=2, hours=1),
                                    now=now)
            lab = replace(finding("lab", category=1, rel=1.0, detected=period), region="46")
            per = {("lab", "46"): [lab], ("lab", "03"): [replace(lab, region="03")]
                   if w >= 2 else []}
            told += [(w, a["decision"], a.get("status"), sorted(a["targets"]))
                     for a in _judge(cfg, store, period, per, now=now)]
    finally:
        store.close()
    assert told == [(0, "open", "open", ["ops", "vestland"]),
                    (2, "escalate", "silenced", []),
                    (4, "escalate", "open", ["oslo"])]


def test_a_region_joining_an_acknowledged_rise_keeps_it_acknowledged(tmp_path):
    """The lab's Vestland series' rise is told (week 0), reminders every four weeks;
    ops acknowledges the opening in week 1. Oslo's series rises in week 5: its desk is
    told, as its opening, and the rise stays acknowledged: no reminder follows (the
    message to Oslo's desk waits for that desk's own acknowledgement). Before, it was
    taken for an escalation telling more, which needs its own acknowledgement: every
    desk was reminded again from week 8."""
    cfg = make_config(tmp_path, _desks_no_server() + REMIND, sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 16)
        told = []
        for w in range(14):
            period, now = _week(w)
            lab = replace(finding("lab", category=1, rel=1.0, detected=period), region="46")
            per = {("lab", "46"): [lab], ("lab", "03"): [replace(lab, region="03")]
                   if w >= 5 else []}
            made = _judge(cfg, store, period, per, now=now)
            told += [(w, a["decision"], sorted(a["targets"])) for a in made]
            if w == 1:
                opening = store.q("SELECT id FROM alerts WHERE decision='open'")[0]["id"]
                actions.ack_alert(store, opening, who="ops", via="cli", now=now)
        statuses = store.q("SELECT decision, status FROM alerts WHERE kind='trend' ORDER BY id")
    finally:
        store.close()
    assert told == [(0, "open", ["ops", "vestland"]), (5, "escalate", ["oslo"])]
    assert statuses == [{"decision": "open", "status": "acked"},
                        {"decision": "escalate", "status": "open"}]


def test_a_source_agreeing_the_week_a_reminder_is_due_is_told_as_an_escalation(tmp_path):
    """The lab's rise is told (one source), reminders every four weeks; customs agrees
    for the first time the very week the lab's reminder is due, and the lab's series
    leads the round. The recipients hear "Forverring" (two sources now), as they do any
    other week, and the reminder after it counts from it. Before, the round was sent
    as a reminder ("Påminnelse … 2 kilder") and what was told stayed one source: which
    of the two the recipients got hung on which series led the round."""
    mail = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")
    cfg = make_config(tmp_path, mail, REMIND, sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        told = []
        for w in range(10):
            per = {"lab": [finding("lab", category=1, rel=1.0)]}
            if w >= 4:
                per["customs"] = [finding("customs", category=1, rel=1.0)]
            period, now = _week(w)
            told += [(w, a["decision"], a["title"].split(":")[0])
                     for a in judge_period(cfg, store, period, per, now=now)]
        told_state = store.episode_state("substance:ketamin:trend:increase")
    finally:
        store.close()
    assert told == [(0, "open", "Liten økning"), (4, "escalate", "Forverring"),
                    (8, "repeat", "Påminnelse")]
    assert told_state["n_sources"] == 2


def _week(w: int) -> tuple[date, datetime]:
    """Week ``w`` after :data:`START`: its period (a Monday) and that day's noon, UTC,
    when it is judged."""
    period = START + timedelta(weeks=w)
    return period, datetime.combine(period, datetime.min.time(), UTC) + timedelta(hours=12)


def _lab_weeks(store: Store, n: int) -> None:
    """``n`` ordinary weeks of the lab's ketamine in Vestland (46) and Oslo (03)."""
    for region in ("46", "03"):
        store.ingest("lab", location="lab.csv", sha256=None, problems=(), items=(),
                     observations=[Observation(source="lab", substance="ketamin",
                                               region=region, value=5.0 + i % 3,
                                               period=START + timedelta(weeks=i))
                                   for i in range(n)])


def _judge(cfg, store: Store, period: date, per_series: dict, *, now: datetime) -> list[dict]:
    """:func:`tests.alerting_env.judge_period` for ketamine series by ``(source,
    region)``, judged in the order given."""
    firing, states = [], {}
    for (src, region), found in per_series.items():
        scope = "series:" + ":".join([src, "ketamin", region])
        tr = decide.tracker_from_state(
            store.episode_state(scope), cfg.detection_params("ketamin", src))
        for action, f in decide.tracker_update(tr, period, found):
            if action in decide.SEND_ACTIONS:
                firing.append((f, action))
        states[scope] = decide.tracker_state(tr)
    return decide.enqueue_findings(cfg, store, "ketamin", firing, states, now=now)


def test_a_series_opening_the_week_a_reminder_is_due_keeps_the_reminder(tmp_path):
    """The lab's Vestland series' rise is told, reminders every four weeks. The week the
    reminder is due, the lab's Oslo series' rise opens and leads the round; it is no
    second source and tells no more than was told. The reminder is sent all the same,
    to Vestland's desk and ops, and to Oslo's desk, whose first message of the rise it
    is. Before, the round was judged by its leading series alone, as an escalation
    telling nothing new, and nothing was sent: the reminder was lost."""
    cfg = make_config(tmp_path, _desks_no_server() + REMIND, sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 12)
        told = []
        for w in range(10):
            period, now = _week(w)
            lab = replace(finding("lab", category=1, rel=1.0, detected=period), region="46")
            per = {("lab", "46"): [lab]}
            if w >= 4:  # Oslo's series first: it leads the round
                per = {("lab", "03"): [replace(lab, region="03")], **per}
            told += [(w, a["decision"], a["targets"])
                     for a in _judge(cfg, store, period, per, now=now)]
    finally:
        store.close()
    assert told == [(0, "open", ["vestland", "ops"]),
                    (4, "repeat", ["oslo", "ops", "vestland"]),
                    (8, "repeat", ["oslo", "ops", "vestland"])]


def test_the_end_of_a_spike_tells_the_spikes_its_messages_told(tmp_path):
    """Customs' ketamine spikes (told: "Enkeltstående topp", since week 0). The week
    after, the lab's rise opens with a spike of its own, told in the rise's message.
    Customs' spike is over by week 3 but the lab's holds the spike episode open; when
    that ends, the end tells the spikes the recipients were told of: customs' and the
    lab's, since week 0. Before, it told the lab's spike alone, since week 1 ("1 av 1
    kilde"): to a desk that had only customs' spike message, the end of a spike it never
    had, and no word that customs' had ended."""
    cfg = make_config(tmp_path, target(
        "mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        "\n[alerting]\nsend_resolved = true\n", sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        told = []
        for w in range(10):
            period = D0 + timedelta(weeks=w)
            per: dict[str, list] = {"lab": []}
            if w < 3:
                per["customs"] = [finding("customs", kind="spike", onset=D0,
                                          detected=period)]
            if 1 <= w < 6:
                per["lab"].append(finding("lab", kind="spike", detected=period,
                                          onset=D0 + timedelta(weeks=1)))
            if w >= 1:
                per["lab"].append(finding("lab", onset=D0 + timedelta(weeks=1),
                                          detected=period, category=1, rel=1.0))
            now = datetime.combine(period, datetime.min.time(), UTC) + timedelta(hours=12)
            told += [(w, a["kind"], a["decision"], a["title"], a["data"]["onset"],
                      [d["source"] for d in a["data"]["agree"]])
                     for a in judge_period(cfg, store, period, per, now=now)]
    finally:
        store.close()
    assert [t for t in told if t[1] == "spike"] == [
        (0, "spike", "open", "Enkeltstående topp: ketamin — 1 kilde", str(D0),
         ["customs"]),
        (9, "spike", "resolve", "Avsluttet: Enkeltstående topp: ketamin — 2 kilder",
         str(D0), ["customs", "lab"])]


def test_a_desk_a_silence_kept_the_opening_from_is_told_the_join_a_reload_routes_to_it(
        tmp_path, smtp_server):
    """The lab's Vestland series' rise is told at noon (week 0): ops has it, Vestland's
    relay is down and the opening waits for it; a silence of ketamine added that
    afternoon keeps it from Vestland's desk, which never has it. Later the operator
    routes Vestland's region to nobody but ops; Oslo's series rises in week 2 and its
    desk is told the rise at night, as its opening (it waits for 08:00). In the evening
    the routes are put back, and Vestland's relay is up again: in the morning Oslo's
    desk and Vestland's both hear of the rise, as their opening; ops nothing more.
    Before, the message waiting for Oslo's desk was not added for Vestland's, counted
    as one that had the episode because a silence held its opening back: Vestland's desk
    never heard of the rise in its own region."""
    from tests.servers import SmtpServer
    from warnd.alerting import outbox

    vestland = SmtpServer()  # Vestland's relay, down at first
    desks = "".join(
        f'\n[[targets]]\nname = "{n}"\nurl = "{srv.url(to)}"\n'
        for n, srv, to in (("vestland", vestland, "v@example.org"),
                           ("oslo", smtp_server, "o@example.org"),
                           ("ops", smtp_server, "ops@example.org")))
    quiet = '\n[alerting]\nchart = false\nquiet_hours = "17:00-08:00"\n'
    routes = ('\n[[routes]]\nregions = ["46"]\ntargets = ["vestland"]\n'
              '\n[[routes]]\nregions = ["03"]\ntargets = ["oslo"]\n'
              '\n[[routes]]\ntargets = ["ops"]\n')
    cfg = make_config(tmp_path, desks + routes + quiet, sources=LAB_CUSTOMS)
    ops_only = make_config(tmp_path, desks + routes.split("\n[[routes]]", 2)[2].join(
        ["\n[[routes]]", ""]) + quiet, sources=LAB_CUSTOMS)
    assert [r.targets for r in ops_only.routes] == [["oslo"], ["ops"]]
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 6)
        told = []
        for w in range(3):
            period, noon = _week(w)
            now = noon if w < 2 else noon + timedelta(hours=8)  # 22:00 in Oslo
            lab = replace(finding("lab", category=1, rel=1.0, detected=period), region="46")
            per = {("lab", "46"): [lab], ("lab", "03"): [replace(lab, region="03")]
                   if w >= 2 else []}
            told += [(w, a["decision"], sorted(a["targets"]))
                     for a in _judge(cfg if w < 1 else ops_only, store, period, per, now=now)]
            outbox.dispatch_pending(cfg if w < 1 else ops_only, store, now=now)
            if w == 0:
                actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                                    via="cli", until=noon + timedelta(days=3), now=noon)
                outbox.dispatch_pending(cfg, store, now=noon + timedelta(minutes=30))
        vestland.start()  # the relay is up again, and the routes put back, at night
        t = now + timedelta(minutes=30)
        while t <= now + timedelta(hours=12):
            outbox.dispatch_pending(cfg, store, now=t)
            t += timedelta(minutes=30)
        wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
        silenced = store.q("SELECT target FROM deliveries WHERE status='silenced'")
    finally:
        store.close()
        vestland.stop()
    assert told == [(0, "open", ["ops", "vestland"]), (2, "escalate", ["oslo"])]
    assert silenced == [{"target": "vestland"}]
    assert _by_desk(smtp_server) == {"ops": ["Liten økning: ketamin — 1 kilde"],
                                     "o": ["Liten økning: ketamin — 1 kilde"]}
    assert [str(m["Subject"]) for m in vestland.messages] == [
        "Liten økning: ketamin — 1 kilde"]


def test_a_region_spiking_while_another_s_spike_is_open_is_told_to_its_desk(
        tmp_path, smtp_server):
    """The lab's ketamine count spikes in Vestland in week 120 (told: Vestland's desk and
    ops) and in Oslo the week after, while Vestland's spike is still open. Oslo's is no
    second source: Vestland's desk and ops hear nothing more, but Oslo's desk hears of the
    spike in its region that week, alone, as its opening, and the end when the whole
    spike ends. `warnd backtest --replay store` tells the same. Before, Oslo's desk heard
    nothing of the spike in its own region, only "Avsluttet" weeks later."""
    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    vestland, oslo = _series(1, None), _series(2, None)
    vestland[120], oslo[121] = 45, 45
    stream = _run(cfg, smtp_server, {("lab", "46"): vestland, ("lab", "03"): oslo},
                  range(116, 132), stored_then=True)
    assert [(w, k, d, sorted(t)) for w, k, d, t in stream][:2] == [
        (120, "spike", "open", ["ops", "vestland"]),
        (121, "spike", "escalate", ["oslo"])]
    assert [(k, d, sorted(t)) for _, k, d, t in stream[2:]] == [
        ("spike", "resolve", ["ops", "oslo", "vestland"])]
    spike = ["Enkeltstående topp: ketamin — 1 kilde",
             "Avsluttet: Enkeltstående topp: ketamin — 1 kilde"]
    assert _by_desk(smtp_server) == {"v": spike, "ops": spike, "o": spike}
    oslo_mail = [m for m in smtp_server.messages if str(m["To"]).startswith("o@")]
    assert oslo_mail[0]["In-Reply-To"] is None  # it starts Oslo's thread
    assert oslo_mail[1]["In-Reply-To"] == oslo_mail[0]["Message-ID"]
    msgs = replay(cfg, start=noon_after_week(START, 116).date(),
                  end=noon_after_week(START, 131).date(), every=7)
    assert [(m["date"], m["decision"], sorted(m["targets"])) for m in msgs] == [
        (noon_after_week(START, w).date().isoformat(), d, sorted(t))
        for w, k, d, t in stream]


def test_a_region_s_spike_join_a_silence_holds_back_is_listed_by_status_until_told(
        tmp_path, smtp_server):
    """The lab's ketamine count spikes in Vestland in week 120 (told: Vestland's desk and
    ops); an operator silences ketamine for a day, and Oslo's count spikes in week 121:
    the message for Oslo's desk, which had none of the spike, is held back. `warnd
    status` says so, in words and in its JSON, as it lists a rise held back: the spike,
    the region and the desk it waits for. The silence ended early, it is no longer
    listed, and the next week's pass tells Oslo's desk, alone. Before, status listed
    held rises only, and nothing said a region's spike waited behind the silence."""
    import json

    from tests.webkit import warnd

    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    vestland, oslo = _series(1, None), _series(2, None)
    vestland[120], oslo[121] = 45, 45
    series = {("lab", "46"): vestland, ("lab", "03"): oslo}

    def status() -> tuple[dict, str]:
        done = warnd(cfg.path, cfg.state_dir, "status", "--json")
        return (json.loads(done.stdout),
                warnd(cfg.path, cfg.state_dir, "status").stdout)

    stream = _run(cfg, smtp_server, series, range(116, 121))
    # a day of the wall clock: the moved clock's weeks are before its end
    added = warnd(cfg.path, cfg.state_dir, "silence", "add", "--substance", "ketamin",
                  "--for", "1d", "--reason", "festival")
    assert added.returncode == 0, added.stderr
    stream += _run(cfg, smtp_server, series, range(121, 122))
    doc, text = status()
    (held,) = doc["joins_held_back_by_silence"]
    assert held == {"alert_id": held["alert_id"], "substance": "ketamin", "kind": "spike",
                    "direction": "increase", "source": "lab",
                    "title": "Enkeltstående topp: ketamin — 1 kilde", "targets": ["oslo"],
                    "regions": ["03"], "region_names": ["Oslo"]}
    assert doc["held_back_by_silence"] == []  # no rise: the field is as it was
    assert ("regions joining a spike or a fall held back by a silence, told to their desks "
            f"when it ends: ketamin spike in Oslo (alert #{held['alert_id']}: for oslo)"
            ) in text
    (silence,) = doc["active_silences"]
    ended = warnd(cfg.path, cfg.state_dir, "silence", "expire", str(silence["id"]))
    assert ended.returncode == 0, ended.stderr
    doc, text = status()
    assert doc["joins_held_back_by_silence"] == [] and "regions joining" not in text
    stream += _run(cfg, smtp_server, series, range(122, 132))
    assert [(w, k, d, sorted(t)) for w, k, d, t in stream] == [
        (120, "spike", "open", ["ops", "vestland"]),
        (121, "spike", "escalate", []),
        (122, "spike", "escalate", ["oslo"]),
        (125, "spike", "resolve", ["ops", "oslo", "vestland"])]
    spike = ["Enkeltstående topp: ketamin — 1 kilde",
             "Avsluttet: Enkeltstående topp: ketamin — 1 kilde"]
    assert _by_desk(smtp_server) == {"v": spike, "ops": spike, "o": spike}
    assert status()[0]["joins_held_back_by_silence"] == []
    # the digest lists it as sent once it went out, as it does a held rise, and not the
    # message the silence held back
    store = Store.in_dir(cfg.state_dir)
    try:
        listed = digest.build(cfg, store, since=noon_after_week(START, 119),
                              end=noon_after_week(START, 123), as_sent=True)["changed"]
        told = store.q("SELECT id FROM alerts WHERE decision='escalate' AND id > ?",
                       [held["alert_id"]])
    finally:
        store.close()
    assert [a["id"] for a in listed] == [1, told[0]["id"]]


def _spikes(cfg, store: Store, weeks: range, oslo: range, *, silence: int | None = None,
            ack: int | None = None) -> list[tuple]:
    """Week by week: the lab's Vestland spike (from week 0 to week 8) and its Oslo spike
    in the weeks ``oslo``; a silence of ketamine from week ``silence`` for two weeks; the
    opening acknowledged in week ``ack``. What each round decided."""
    told = []
    for w in weeks:
        period, now = _week(w)
        if w == silence:
            actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                                via="cli", until=now + timedelta(weeks=2, hours=1), now=now)
        spike = finding("lab", kind="spike", onset=START, detected=period)
        per = {("lab", "46"): [replace(spike, region="46")] if w < 9 else [],
               ("lab", "03"): [replace(spike, region="03", onset=START + timedelta(
                   weeks=oslo[0]))] if w in oslo else []}
        told += [(w, a["decision"], a.get("status"), sorted(a["targets"]))
                 for a in _judge(cfg, store, period, per, now=now)]
        if w == ack:
            opening = store.q("SELECT id FROM alerts WHERE decision='open'")[0]["id"]
            actions.ack_alert(store, opening, who="ops", via="cli", now=now)
    return told


def test_a_region_joining_a_spike_keeps_the_reminders_and_the_end_of_the_others(tmp_path):
    """The lab's Vestland spike is told (week 0), reminders every four weeks; its Oslo
    series spikes in weeks 2 to 4. Oslo's desk is told in week 2, alone; the reminders of
    Vestland's desk and ops still come every four weeks from the opening (weeks 4 and 8),
    and the end goes to every desk that had the spike, Oslo's among them."""
    cfg = make_config(tmp_path, _desks_no_server() + REMIND, sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 14)
        told = _spikes(cfg, store, range(14), range(2, 5))
    finally:
        store.close()
    assert told == [(0, "open", "open", ["ops", "vestland"]),
                    (2, "escalate", "open", ["oslo"]),
                    (4, "repeat", "open", ["ops", "oslo", "vestland"]),
                    (8, "repeat", "open", ["ops", "vestland"]),
                    (12, "resolve", "open", ["ops", "oslo", "vestland"])]


def test_a_region_joining_a_spike_under_a_silence_is_told_to_its_desk_after_it(tmp_path):
    """The lab's Vestland spike is told (week 0); a silence of ketamine holds back its
    messages from week 1 to week 3, and its Oslo series spikes from week 2: Oslo's desk
    is told nothing then, and alone, the week the silence is over; nobody else is told
    again."""
    cfg = make_config(tmp_path, _desks_no_server(), sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 10)
        told = _spikes(cfg, store, range(7), range(2, 7), silence=1)
    finally:
        store.close()
    assert told == [(0, "open", "open", ["ops", "vestland"]),
                    (2, "escalate", "silenced", []),
                    (4, "escalate", "open", ["oslo"])]


def test_a_region_joining_an_acknowledged_spike_keeps_it_acknowledged(tmp_path):
    """The lab's Vestland spike is told (week 0) and acknowledged in week 1, reminders
    every four weeks; its Oslo series spikes in week 2: Oslo's desk is told, and the
    spike stays acknowledged: no reminder follows."""
    cfg = make_config(tmp_path, _desks_no_server() + REMIND, sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 10)
        told = _spikes(cfg, store, range(8), range(2, 8), ack=1)
    finally:
        store.close()
    assert told == [(0, "open", "open", ["ops", "vestland"]),
                    (2, "escalate", "open", ["oslo"])]


def test_a_region_s_spike_join_waiting_when_a_silence_came_is_told_after_it(
        tmp_path, smtp_server):
    """The lab's Vestland spike is told (week 0, noon); its Oslo series spikes in week 2,
    decided at night: the message to Oslo's desk waits for 08:00, and a silence of
    ketamine added that evening for a day holds it back. Once the silence is over, the
    pass that tells what silences held back tells Oslo's desk, alone; nobody else."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, _desks(smtp_server).replace(
        "[alerting]", '[alerting]\nquiet_hours = "17:00-08:00"'), sources=LAB_CUSTOMS)
    store = Store.in_dir(cfg.state_dir)
    try:
        _lab_weeks(store, 6)
        told = []
        for w in range(3):
            period, noon = _week(w)
            now = noon if w < 2 else noon + timedelta(hours=8)  # 22:00 in Oslo
            spike = finding("lab", kind="spike", onset=START, detected=period)
            per = {("lab", "46"): [replace(spike, region="46")],
                   ("lab", "03"): [replace(spike, region="03")] if w == 2 else []}
            told += [(w, a["decision"], sorted(a["targets"]))
                     for a in _judge(cfg, store, period, per, now=now)]
            outbox.dispatch_pending(cfg, store, now=now)
        wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
        actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                            via="cli", until=now + timedelta(days=1),
                            now=now + timedelta(minutes=10))
        outbox.dispatch_pending(cfg, store, now=now + timedelta(hours=12))  # the morning
        held = store.q("SELECT target, status FROM deliveries WHERE alert_id = "
                       "(SELECT MAX(id) FROM alerts)")
        after = now + timedelta(days=1, minutes=5)
        released = [(a["decision"], sorted(a["targets"]))
                    for sub in store.held_back()
                    for a in decide.tell_held(cfg, store, sub, now=after)]
        outbox.dispatch_pending(cfg, store, now=after + timedelta(hours=12))  # morning
        wait_for(lambda: len(smtp_server.messages) == 3, what="three emails")
    finally:
        store.close()
    assert told == [(0, "open", ["ops", "vestland"]), (2, "escalate", ["oslo"])]
    assert held == [{"target": "oslo", "status": "silenced"}]
    assert released == [("escalate", ["oslo"])]
    spike = ["Enkeltstående topp: ketamin — 1 kilde"]
    assert _by_desk(smtp_server) == {"v": spike, "ops": spike, "o": spike}
