"""`warnd backtest --replay` over time: what it prints against what the daemon sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from feeds.base import Item
from tests.alerting_env import make_config, target
from tests.conftest import ROOT, write_config
from tests.scenario import LAB_SOURCE, noon_after_week, put_weekly
from warnd.config import Config, load_config
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store

START = date(2024, 1, 1)  # a Monday

NOTICES = """
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "varsler.html"
dimension = "availability"
"""


def _notice(store: Store, key: str, when: datetime) -> None:
    it = Item(key=key, source="overdosefare", published_at=when, title=f"Varsel {key}",
              link=f"https://overdosefare.example/{key}", summary="Farlig ketamin",
              substances=("ketamin",), kind="notice")
    store.ingest("overdosefare", location="varsler.html", sha256=None, observations=(),
                 items=[it], problems=(), now=when)


def test_replay_from_a_date_treats_older_warnings_as_an_installation_would(tmp_path):
    """A replay that starts on a date acts as an installation on that day: warnings
    published long before it are history (stored, not told), one published a few days
    before is told on the first date, and no message is dated before the first date."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), sources=NOTICES)
    store = Store.in_dir(cfg.state_dir)
    try:
        _notice(store, "old", datetime(2026, 1, 10, 9, tzinfo=UTC))  # months before
        _notice(store, "recent", datetime(2026, 5, 28, 9, tzinfo=UTC))  # 4 days before
        _notice(store, "later", datetime(2026, 6, 10, 9, tzinfo=UTC))  # after the start
    finally:
        store.close()
    start = date(2026, 6, 1)
    msgs = replay(cfg, start=start, end=date(2026, 6, 22), every=7)
    told = [(m["date"], m["title"]) for m in msgs if m["kind"] == "notice"]
    assert all(m["date"] >= start.isoformat() for m in msgs), told
    assert len(told) == 2, told
    assert told[0][0] == start.isoformat() and "recent" in told[0][1], told
    assert told[1][0] == "2026-06-10" and "later" in told[1][1], told


def test_replay_of_the_store_tells_a_rise_on_the_daemons_dates(tmp_path):
    """The daemon judged the lab's weekly ketamine counts each Tuesday, when the week
    before had ended and been polled; a rise came in its last weeks. `backtest --replay
    store` on the same Tuesdays gives the same trend messages on the same dates: a week
    is fed to the replay once it has ended, never on its Monday (which told the rise a
    week before anyone could have known it)."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"))
    weeks, rise = 120, 108
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    sent = []
    for w in range(100, weeks):
        now = noon_after_week(START, w)
        put_weekly(cfg.state_dir, values[:w + 1], start=START, now=now)
        sent += [(now.date().isoformat(), a["decision"])
                 for a in Pipeline(cfg, clock=lambda now=now: now).detect()
                 if a["kind"] == "trend"]
    assert sent and sent[0][1] == "open", sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"]) for m in msgs if m["kind"] == "trend"] == sent


def test_replay_tells_a_warning_naming_two_substances_once(tmp_path):
    """A warning naming ketamine and heroin is one message in the replay, as the daemon
    sends it: naming both, to the target once (before, one per substance)."""
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), sources=NOTICES)
    store = Store.in_dir(cfg.state_dir)
    try:
        when = datetime(2026, 6, 10, 9, tzinfo=UTC)
        it = Item(key="both", source="overdosefare", published_at=when,
                  title="Ketamin blandet med heroin", link="https://overdosefare.example/both",
                  summary="", substances=("ketamin", "heroin"), kind="notice")
        store.ingest("overdosefare", location="varsler.html", sha256=None, observations=(),
                     items=[it], problems=(), now=when)
    finally:
        store.close()
    msgs = replay(cfg, start=date(2026, 6, 8), end=date(2026, 6, 15), every=7)
    told = [(m["title"], m["targets"]) for m in msgs if m["kind"] == "notice"]
    assert told == [("Ny advarsel: ketamin og heroin — Ketamin blandet med heroin", ["ops"])]


def _publish(path, values, weeks) -> None:
    """The lab's table as it is published: the given weeks of ``values``."""
    lines = ["period,substance,value"]
    lines += [f"{(START + timedelta(weeks=w)).isoformat()},ketamin,{int(values[w])}"
              for w in weeks]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _daemon(tmp_path, values, shown, before=None,
            extra: str = "") -> tuple[Config, list[tuple[str, str, str]]]:
    """The daemon installed on the Monday after week 100 with the lab's table, polling
    and judging every Monday after that; ``shown(w)`` the weeks the table gives then;
    ``before(cfg, now)`` what staff do before the run at ``now``; ``extra`` more of
    the config. Its messages as (date, decision, title)."""
    (tmp_path / "data").mkdir()
    table = tmp_path / "data" / "lab.csv"
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), extra,
                      sources=LAB_SOURCE.format(interval="1d"))
    sent = []
    for w in range(100, len(values)):
        now = noon_after_week(START, w)
        _publish(table, values, shown(w))
        if before is not None:
            before(cfg, now)
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        sent += [(now.date().isoformat(), a["decision"], a["title"]) for a in p.detect()]
    return cfg, sent


def _told(msgs: list[dict]) -> list[tuple[str, str, str]]:
    return [(m["date"], m["decision"], m["title"]) for m in msgs]


def test_store_replay_tells_a_late_source_when_the_daemon_could(tmp_path):
    """The lab publishes each week a week after it ended. The daemon told its rise on
    the Monday after the table first showed it; `backtest --replay store` tells it on
    the same Monday with the same decisions and titles, as each value comes when warnd
    stored it. Fed each period once it had ended (`--latest-values`, the only way
    before), the replay told the rise a week before anyone could have known it."""
    weeks, rise = 116, 106
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    cfg, sent = _daemon(tmp_path, values, lambda w: range(w))
    assert sent and sent[0][1] == "open", sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    assert _told(replay(cfg, start=first, end=last, every=7)) == sent
    before = _told(replay(cfg, start=first, end=last, every=7, as_known=False))
    week_early = (date.fromisoformat(sent[0][0]) - timedelta(weeks=1)).isoformat()
    assert before[0] == (week_early, *sent[0][1:]), (before, sent)


def test_store_replay_gives_the_messages_the_daemon_sent_from_late_and_withdrawn_weeks(
        tmp_path):
    """The lab publishes each week a week after it ended, and later withdraws the weeks
    of a rise (mis-coded samples). The daemon, installed with two years of history and
    polling and judging every Monday, told the rise when the table first showed it and
    corrected it when the weeks were withdrawn. `backtest --replay store` gives the same
    dates, decisions and titles: each value comes when warnd stored it and the
    withdrawal when it was made. Fed each period's latest value when the period ended
    (`--latest-values`, the only way before), the replay knew nothing of the rise (its
    weeks are gone) and sent nothing of what the daemon sent."""
    weeks, rise, pulled = 124, 108, 120
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:pulled - 2] = np.random.default_rng(4).poisson(20.0, pulled - 2 - rise)
    # from the run after week `pulled` on, the rise's weeks are withdrawn
    cfg, sent = _daemon(tmp_path, values, lambda w: [
        x for x in range(w) if w < pulled or not rise <= x < pulled - 2])
    decisions = [d for _, d, _ in sent]
    assert decisions[0] == "open" and decisions[-1] == "correct", sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    assert _told(replay(cfg, start=first, end=last, every=7)) == sent
    before = _told(replay(cfg, start=first, end=last, every=7, as_known=False))
    assert not set(before) & set(sent), before


def _two_labs(tmp_path, values, shown, added: int) -> tuple[Config, list[tuple[str, str, str]]]:
    """The daemon installed on the Monday after week 100 with the lab's heroin table,
    polling and judging every Monday; from week ``added`` on, a second lab's ketamin
    table is in the config too (``shown(w)``: the weeks it gives then, history
    included). Its messages as (date, decision, title)."""
    (tmp_path / "data").mkdir()
    heroin = np.random.default_rng(5).poisson(6.0, len(values)).astype(float)
    one = LAB_SOURCE.format(interval="1d").replace("data/", f"{tmp_path}/data/")
    two = one + one.replace('"lab"', '"lab2"').replace("lab.csv", "lab2.csv")
    cfgs = []
    for name, sources in (("before", one), ("after", two)):
        (tmp_path / name).mkdir()
        cfgs.append(load_config(write_config(
            tmp_path / name, sources + target("ops", "json://localhost/x"),
            state_dir=str(tmp_path / "state"))))
    sent = []
    for w in range(100, len(values)):
        now = noon_after_week(START, w)
        lines = [f"{(START + timedelta(weeks=x)).isoformat()},heroin,{int(heroin[x])}"
                 for x in range(w)]
        (tmp_path / "data" / "lab.csv").write_text(
            "\n".join(["period,substance,value", *lines]) + "\n", encoding="utf-8")
        cfg = cfgs[w >= added]
        if w >= added:
            _publish(tmp_path / "data" / "lab2.csv", values, shown(w))
        p = Pipeline(cfg, clock=lambda now=now: now)
        for s in cfg.sources:
            assert p.poll(s.name).ok
        sent += [(now.date().isoformat(), a["decision"], a["title"]) for a in p.detect()]
    return cfgs[1], sent


def test_store_replay_tells_a_source_added_later_when_the_daemon_read_it(tmp_path):
    """A second lab is added to the config three months after the installation; its
    first poll reads two years of ketamin counts with a rise that began two months
    before. The daemon judged that history on the day it read it (one opening, the rise
    still under way). `backtest --replay store` gives the same: the added source's first
    poll comes on the day of that poll. Before, its history came period by period as if
    warnd had watched the lab all along, and the rise was told two months early."""
    weeks, rise, added = 124, 104, 112
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    cfg, sent = _two_labs(tmp_path, values, lambda w: range(w), added)
    assert sent and sent[0][:2] == (noon_after_week(START, added).date().isoformat(),
                                    "open"), sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    assert _told(replay(cfg, start=first, end=last, every=7)) == sent


def test_store_replay_tells_a_region_new_in_a_table_when_the_daemon_read_it(tmp_path):
    """Three months after the installation the lab's table gains a column of counts
    for Bergen, two years of them, with a rise that began two months before. The
    daemon judged the new series on the day it first read it; `backtest --replay store`
    gives the same messages on the same dates (before, the new region's rise was told
    two months early)."""
    weeks, rise, added = 124, 104, 112
    national = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    bergen = np.random.default_rng(5).poisson(6.0, weeks).astype(float)
    bergen[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    (tmp_path / "data").mkdir()
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"),
                      sources=LAB_SOURCE.format(interval="1d") + 'columns = { period = '
                      '"period", substance = "substance", value = "value", region = '
                      '"region" }\n')
    sent = []
    for w in range(100, weeks):
        now = noon_after_week(START, w)
        rows = [(x, "", national) for x in range(w)]
        rows += [(x, "Bergen", bergen) for x in range(w) if w >= added]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(
            ["period,substance,value,region"]
            + [f"{(START + timedelta(weeks=x)).isoformat()},ketamin,{int(v[x])},{r}"
               for x, r, v in rows]) + "\n", encoding="utf-8")
        p = Pipeline(cfg, clock=lambda now=now: now)
        assert p.poll("lab").ok
        sent += [(now.date().isoformat(), a["decision"], a["title"]) for a in p.detect()]
    assert sent and sent[0][:2] == (noon_after_week(START, added).date().isoformat(),
                                    "open"), sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    assert _told(replay(cfg, start=first, end=last, every=7)) == sent


def test_store_replay_holds_back_what_a_silence_held_back(tmp_path):
    """Staff silenced ketamin for six weeks on the day its spike was first told. The
    daemon recorded the spike and the rise that followed as silenced (sent to nobody)
    and told the rise when the silence had ended. `backtest --replay store` on the
    daemon's dates gives the same messages, dates and targets: the store's silences
    apply from when they were added until they ended. Before, the replay knew no
    silence: it gave the spike and the rise to ops weeks early and never told the rise
    after the silence."""
    weeks, rise = 124, 106
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)
    day = noon_after_week(START, rise)

    def silence(cfg, now):
        if now == day:
            store = Store.in_dir(cfg.state_dir)
            try:
                store.add_silence(substance="ketamin", kind=None, source=None, reason="test",
                                  until=now + timedelta(weeks=6), now=now)
            finally:
                store.close()

    cfg, _ = _daemon(tmp_path, values, lambda w: range(w), silence)
    store = Store.in_dir(cfg.state_dir)
    try:
        sent = [(a["created_at"][:10], a["decision"], a["title"], sorted(
            d["target"] for d in store.q("SELECT target FROM deliveries WHERE alert_id=?",
                                         [a["id"]]))) for a in store.q(
            "SELECT * FROM alerts ORDER BY id")]
    finally:
        store.close()
    assert [t for *_, t in sent] == [[], [], ["ops"]], sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent


def _sent(cfg: Config) -> list[tuple[str, str, str, list[str]]]:
    """The daemon's messages as (date, decision, title, targets), from its store."""
    store = Store.in_dir(cfg.state_dir)
    try:
        return [(a["created_at"][:10], a["decision"], a["title"], sorted(
            d["target"] for d in store.q("SELECT target FROM deliveries WHERE alert_id=?",
                                         [a["id"]]))) for a in store.q(
            "SELECT * FROM alerts ORDER BY id")]
    finally:
        store.close()


def test_store_replay_sends_no_reminder_an_acknowledgement_stopped(tmp_path):
    """With ``repeat_after_periods = 2`` the daemon reminded ops of ketamin's rise every
    two weeks until Ana acknowledged the latest reminder (the console, on the Tuesday
    after it): no reminder came after. `backtest --replay store` on the daemon's dates
    gives the same messages, dates and targets: the store's acknowledgements apply
    from when they were made, each to the replay's message of the same episode.
    Before, acknowledgements were not replayed: the replay listed the reminders the
    acknowledgement had stopped."""
    from warnd.alerting.actions import ack_alert

    weeks, rise, acked = 124, 106, 113
    values = np.random.default_rng(3).poisson(6.0, weeks).astype(float)
    values[rise:] = np.random.default_rng(4).poisson(20.0, weeks - rise)

    def ack(cfg, now):
        if now == noon_after_week(START, acked):
            store = Store.in_dir(cfg.state_dir)
            try:
                latest = store.q("SELECT id FROM alerts WHERE kind='trend' "
                                 "ORDER BY id DESC LIMIT 1")[0]["id"]
                assert ack_alert(store, latest, who="ana", via="web",
                                 now=now - timedelta(days=6))
            finally:
                store.close()

    cfg, _ = _daemon(tmp_path, values, lambda w: range(w), ack,
                     "\n[detection]\nrepeat_after_periods = 2\n")
    sent = _sent(cfg)
    repeats = [d for d, decision, *_ in sent if decision == "repeat"]
    acked_day = noon_after_week(START, acked).date().isoformat()
    assert repeats and max(repeats) < acked_day, sent
    first, last = noon_after_week(START, 100).date(), noon_after_week(START, weeks - 1).date()
    msgs = replay(cfg, start=first, end=last, every=7)
    assert [(m["date"], m["decision"], m["title"], sorted(m["targets"]))
            for m in msgs] == sent


def test_store_replay_tells_an_edited_warning_when_and_to_whom_the_daemon_did(
        tmp_path, smtp_server):
    """A warning naming cocaine and fentanyl went to the three desks they route to; a
    week later its text was edited to name heroin too, and the heroin desk alone was
    told then, the warning naming all three. `backtest --replay store` gives the same
    messages, dates, titles and recipients. Before, it told the warning naming heroin
    from the start, to all four desks on the first day, and nothing on the day of the
    edit (when a substance came to be named was not kept)."""
    from tests.test_stream_notices import MIXED, T0, _config, _inbox, _page, _round

    cfg = load_config(_config(tmp_path, smtp_server))
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    edited = (MIXED[0], MIXED[1], "Det er funnet kokain blandet med fentanyl og heroin.",
              MIXED[3])
    _page(tmp_path, edited)
    _round(cfg, T0 + timedelta(days=8))
    inbox = _inbox(smtp_server)
    assert inbox["heroin@example.org"] == [
        "Ny advarsel: kokain, fentanyl og heroin — Kokain blandet med fentanyl"], inbox
    address = {"ops": "ops@example.org", "cocaine-desk": "kokain@example.org",
               "opioid-desk": "opioid@example.org", "heroin-desk": "heroin@example.org"}
    msgs = replay(cfg, start=T0.date(), end=T0.date() + timedelta(days=14), every=7)
    assert [(m["date"], m["title"], sorted(m["targets"])) for m in msgs] == [
        ("2026-03-10", "Ny advarsel: kokain og fentanyl — Kokain blandet med fentanyl",
         ["cocaine-desk", "opioid-desk", "ops"]),
        ("2026-03-18", "Ny advarsel: kokain, fentanyl og heroin — Kokain blandet med fentanyl",
         ["heroin-desk"])]
    told: dict[str, list[str]] = {}
    for m in msgs:
        for t in m["targets"]:
            told.setdefault(address[t], []).append(m["title"])
    assert told == inbox


def test_store_replay_does_not_tell_a_warning_a_new_word_matched_again(
        tmp_path, smtp_server):
    """A warning naming cocaine and "dop" went to the cocaine desks; then heroin got the
    slang word "dop" (a reload), the warnings kept were matched again and this one came
    to name heroin, counted but not told to the heroin desk. A week later a new warning
    of "dop" went to the heroin desk. `backtest --replay store` gives the same
    messages, dates, titles and recipients: a substance that names a warning only
    since its terms changed is not told, as the daemon does not tell it. Before, the
    replay told the first warning naming heroin too, to the heroin desk as well."""
    from tests.test_stream_notices import T0, _config, _inbox, _page, _round

    old = ("v/2", "Farlig kokain i omløp", "Det er funnet kokain i dop solgt i Bergen.",
           T0 - timedelta(days=1))
    path = _config(tmp_path, smtp_server)
    _page(tmp_path, old)
    _round(load_config(path), T0)
    path.write_text(path.read_text(encoding="utf-8").replace(
        'names = ["heroin"]\n', 'names = ["heroin"]\nslang = ["dop"]\n'
        'slang_needs_context = false\n'), encoding="utf-8")
    cfg = load_config(path)
    _round(cfg, T0 + timedelta(hours=1))
    new = ("v/3", "Sterk dop i Bergen", "Det selges sterk dop i Bergen.",
           T0 + timedelta(days=7))
    _page(tmp_path, old, new)
    _round(cfg, T0 + timedelta(days=7, hours=1))
    inbox = _inbox(smtp_server)
    assert inbox == {"ops@example.org": ["Ny advarsel: kokain — Farlig kokain i omløp"],
                     "kokain@example.org": ["Ny advarsel: kokain — Farlig kokain i omløp"],
                     "heroin@example.org": ["Ny advarsel: heroin — Sterk dop i Bergen"]}, inbox
    address = {"ops": "ops@example.org", "cocaine-desk": "kokain@example.org",
               "opioid-desk": "opioid@example.org", "heroin-desk": "heroin@example.org"}
    msgs = replay(cfg, start=T0.date(), end=T0.date() + timedelta(days=14), every=7)
    assert [(m["date"], m["title"], sorted(m["targets"])) for m in msgs] == [
        ("2026-03-10", "Ny advarsel: kokain — Farlig kokain i omløp", ["cocaine-desk", "ops"]),
        ("2026-03-17", "Ny advarsel: heroin — Sterk dop i Bergen", ["heroin-desk"])], msgs
    told: dict[str, list[str]] = {}
    for m in msgs:
        for t in m["targets"]:
            told.setdefault(address[t], []).append(m["title"])
    assert told == inbox


def test_store_replay_of_an_installation_from_trends_exports_reads_them_as_history(tmp_path):
    """warnd is installed on a folder of Google Trends exports made every four weeks,
    each scaled to its own peak, and a warnings page: its first poll reads the exports
    all, each after the first rescaling the weeks it shares with the others (revisions
    made by that poll), then the page a minute later. Everything was read at the
    installation, so `backtest --replay store` (by default the half-year up to the day
    after the newest week ended) gives what `--latest-values` gives: the rise as its
    weeks ended, the warning when published. Before, the rescaling came as news on the
    day of the installation, a month after the data (the default half-year ran up to
    it, the weeks before it judged on the first export's scale), and the warning, read
    a minute after the installation's first poll, was taken for one learned then."""
    from tests.test_stream_notices import _page

    drop = tmp_path / "drop"
    drop.mkdir()
    sunday = date(2024, 1, 7)
    weeks = 150
    level = np.random.default_rng(3).gamma(40.0, 1 / 40.0, weeks) * 30
    level[136:] *= 3.0
    for end in range(104, weeks + 1, 4):  # an export of the 104 weeks up to `end`
        span = level[end - 104:end]
        rows = "".join(f"{(sunday + timedelta(weeks=end - 104 + i)).isoformat()},"
                       f"{round(100 * v / span.max())}\n" for i, v in enumerate(span))
        (drop / f"multiTimeline_{end}.csv").write_text(
            f"Category: All categories\n\nWeek,ketamin: (Norway)\n{rows}", encoding="utf-8")
    cfg = make_config(tmp_path, target("ops", "json://localhost/x"), sources=f"""
[[sources]]
name = "trends"
kind = "google_trends"
location = "{drop}/*.csv"
dimension = "interest"
""" + NOTICES.replace("varsler.html", f"{tmp_path}/od/varsler.html"))
    _page(tmp_path, ("v/1", "Sterk ketamin", "Farlig ketamin i omløp.", datetime.combine(
        sunday + timedelta(weeks=weeks - 3), datetime.min.time(), UTC)))
    installed = datetime.combine(sunday + timedelta(weeks=weeks + 4), datetime.min.time(),
                                 UTC)
    assert Pipeline(cfg, clock=lambda: installed).poll("trends").ok
    a_minute_later = installed + timedelta(minutes=1)
    assert Pipeline(cfg, clock=lambda: a_minute_later).poll("overdosefare").ok
    store = Store.in_dir(cfg.state_dir)
    try:
        assert store.q("SELECT COUNT(*) AS n FROM revisions")[0]["n"] >= 50
    finally:
        store.close()
    latest = _told(replay(cfg, as_known=False))
    assert latest[-1][0] < installed.date().isoformat(), latest
    assert {"trend", "notice"} <= {m["kind"] for m in replay(cfg, as_known=False)}
    assert _told(replay(cfg)) == latest, (_told(replay(cfg)), latest)


def test_store_replay_of_an_upgraded_demo_store_is_what_its_data_tell(tmp_path, monkeypatch):
    """A store made by an older warnd (schema 8: the demo, whose one run read years of
    history files, Trends exports rescaling each other, and the warnings page) is
    upgraded and replayed. Nothing in it was learned live, so `backtest --replay store`
    gives what `--latest-values` gives: the rises and the warnings of its last
    half-year. Before, its default half-year ran up to the day of that run, months
    after its data, and told two rises and no warning."""
    from tests.test_store_migration import FIXTURE_V8, MADE_IN_V8, _unpack

    _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace(
        'include = ["examples/config.sources.toml"]',
        f'include = ["{ROOT / "examples" / "config.sources.toml"}"]')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    latest = replay(cfg, as_known=False)
    assert {"open", "escalate"} <= {m["decision"] for m in latest}
    assert len([m for m in latest if m["kind"] == "notice"]) >= 4, latest
    assert replay(cfg) == latest


def test_store_replay_has_no_trace_of_weeks_a_substance_was_counted_before_afresh(tmp_path):
    """Ketamin's articles in a news feed tripled and the rise was told; then "ket" is
    added to its slang, and the feed's counts of it start afresh from that week: the
    weeks before are removed, not stored as revisions (docs/detection.md, "Replay
    through the daemon"). A store replay over those dates lists neither the rise the
    daemon told nor anything else: the store keeps only the weeks from the change."""
    from tests.test_stream_sources import _ket_articles, _terms_config, _write_feed

    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    feed = tmp_path / "feed.xml"
    _write_feed(feed, _ket_articles(start, range(52)))
    now = start + timedelta(weeks=52)
    before = _terms_config(tmp_path, "a.toml", 'names = ["ketamin"]', location=str(feed))
    Pipeline(before, clock=lambda: now).run_once()
    after = _terms_config(tmp_path, "b.toml", 'names = ["ketamin"]\nslang = ["ket"]',
                          location=str(feed))
    for k in range(1, 7):
        _write_feed(feed, _ket_articles(start, range(50 + k, 52 + k)))
        Pipeline(after, clock=lambda k=k: now + timedelta(weeks=k, hours=k)).run_once()
    store = Store.in_dir(after.state_dir)
    try:
        sent = [(a["created_at"][:10], a["decision"], a["title"])
                for a in store.q("SELECT * FROM alerts ORDER BY id")]
        kept = store.q("SELECT MIN(period) AS p FROM observations WHERE substance='ketamin'")
        revised = store.q("SELECT COUNT(*) AS n FROM revisions")[0]["n"]
    finally:
        store.close()
    assert sent == [("2026-01-05", "open", "Liten økning: ketamin — 1 kilde")]
    assert kept[0]["p"] == "2026-01-12" and revised == 0
    assert replay(after, start=(now - timedelta(days=3)).date(),
                  end=(now + timedelta(weeks=7)).date(), every=7) == []


def test_store_replay_of_a_trends_series_first_fed_a_past_90_days_export(tmp_path):
    """The first Google Trends export dropped into the folder is a "past 90 days" one
    (daily rows), the "past 12 months" ones follow, and searches for ketamin rise: the
    daemon tells the rise and its growth in a weekly series. `backtest --replay store`
    on the Mondays it ran gives the same messages on the same days: the weeks read from
    the days come as the daemon first stored them, the weekly exports' rescaling of
    them as the revisions they were."""
    from tests.service_kit import JsonSink
    from tests.test_stream_trends_exports import (RISE, Desk, daily, scaled, week_start,
                                                  write_export)

    sink = JsonSink()
    try:
        desk = Desk(tmp_path, sink)
        write_export(desk.drop / "past 90 days.csv", "Day", daily(60, RISE))
        desk.cycle(60)
        for k in range(61, 70):
            values = dict(scaled({week_start(w): RISE[w] for w in range(k - 51, k + 1)}))
            write_export(desk.drop / f"week {k}.csv", "Week", values)
            desk.cycle(k)
    finally:
        sink.close()
    store = Store.in_dir(desk.cfg.state_dir)
    try:
        sent = [(a["created_at"][:10], a["decision"], a["title"]) for a in store.q(
            "SELECT * FROM alerts WHERE kind='trend' ORDER BY id")]
    finally:
        store.close()
    assert [d for _, d, _ in sent] == ["open", "escalate"], sent
    msgs = replay(desk.cfg, start=desk.now(60).date(), end=desk.now(69).date(), every=7)
    assert _told([m for m in msgs if m["kind"] == "trend"]) == sent
