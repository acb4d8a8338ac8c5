"""Revised values over time: what a substance's recipients are told when a source
revises periods already judged (week by week through detection, a real store)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from tests.alerting_env import SOURCES, make_config, target
from tests.conftest import write_config
from tests.scenario import noon_after_week, put_weekly
from warnd.backtest import run_backtest
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
MAIL = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")


def _put(cfg, values, upto: int | None = None) -> None:
    put_weekly(cfg.state_dir, values[:upto], start=START)


def _week_end(w: int) -> datetime:
    return noon_after_week(START, w)


def _told(cfg, w: int) -> list[str]:
    return [a["decision"] for a in Pipeline(cfg, clock=lambda: _week_end(w)).detect()
            if a["kind"] == "trend"]


def _tell_a_rise(cfg) -> tuple[np.ndarray, int]:
    """The lab's weeks rising threefold from week 120, put week by week until the rise is
    told: the usual values (to revise it away with) and the week it was told."""
    weeks, rise = 130, 120
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        if _told(cfg, w):
            return usual, w
    raise AssertionError("the rise was never told")


def test_a_rise_revised_away_is_corrected_though_an_older_episode_had_ended(tmp_path):
    """The lab's ketamine series had a rise a year and more ago that ended. A new rise
    comes in its last weeks and is told; the lab then revises those weeks down to the
    usual level. The recipients get a correction. Before, the series judged again from
    its start counted the old episode's end as the end of the told one: with
    ``send_resolved`` off nothing was sent, so the withdrawn rise stood uncorrected."""
    cfg = make_config(tmp_path, MAIL)
    weeks, rise = 170, 160
    lam = np.full(weeks, 5.0)
    lam[30:42] *= 3  # the old rise, long over
    usual = np.random.default_rng(11).poisson(lam).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    told = []
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        told += _told(cfg, w)
    assert told == ["open"]
    _put(cfg, usual)  # the last weeks revised down: the rise told is gone
    assert _told(cfg, weeks) == ["correct"]
    assert _told(cfg, weeks) == []


def test_a_rise_revised_away_and_back_is_told_again_each_time(tmp_path):
    """A source that cannot make up its mind: the lab's last weeks show a rise (told),
    are revised down (corrected), then back up, then down again. Each revision changes
    what is true, and the recipients hear each change: open, correction, open,
    correction. Before, the second opening and the second correction rested on the
    same findings as the first ones and were dropped as their duplicates, while the
    substance's state said the rise was told: the recipients were left believing it
    withdrawn while it stood."""
    cfg = make_config(tmp_path, MAIL)
    weeks, rise = 120, 110
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    told = []
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        told += _told(cfg, w)
    assert told == ["open"]
    for values, decision in [(usual, "correct"), (risen, "open"), (usual, "correct")]:
        _put(cfg, values)
        assert _told(cfg, weeks) == [decision]
    store = Store.in_dir(cfg.state_dir)
    try:
        sent = store.q("SELECT decision FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
                       "WHERE a.kind = 'trend' ORDER BY a.id")
    finally:
        store.close()
    assert [r["decision"] for r in sent] == ["open", "correct", "open", "correct"]


WEEKS, RISE = 150, 110


def _growing() -> np.ndarray:
    """Ketamine at the lab: doubled from week 110, five times its level from week 118."""
    lam = np.full(WEEKS, 5.0)
    lam[RISE:RISE + 8] *= 2
    lam[RISE + 8:] *= 5
    return np.random.default_rng(11).poisson(lam).astype(float)


def _weekly_stream(tmp_path, *, preliminary: bool, extra: str = "") -> list[tuple[int, str]]:
    """The lab's trend messages week by week (:func:`_growing`), as ``(week,
    decision)``. With ``preliminary`` the lab's newest week is two short each time, and
    is revised up the week after. ``extra``: more of the config."""
    tmp_path.mkdir()
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL + extra,
                                   state_dir=str(tmp_path / "state")))
    weeks, rise = WEEKS, RISE
    true = _growing()
    told = []
    for w in range(rise - 1, weeks):
        shown = true[: w + 1].copy()
        if preliminary:
            shown[-1] = max(shown[-1] - 2, 0)
        _put(cfg, shown)
        told += [(w, d) for d in _told(cfg, w)]
    return told


def test_a_table_revising_its_newest_week_escalates_as_one_that_does_not(tmp_path):
    """Many tables publish their newest week short and complete it the week after, so
    every poll revises a week already judged. Such a lab's rise is told as that of a lab
    that does not: opened, and escalated as it grows (each a week later, when the week
    is complete). Before, a revised series told only an episode's opening and end: every
    escalation was lost, as the series judged again from its start showed its episode
    open before and after; `warnd backtest` on the same versions told both."""
    plain = _weekly_stream(tmp_path / "plain", preliminary=False)
    late = _weekly_stream(tmp_path / "late", preliminary=True)
    assert [d for _, d in plain] == ["open", "escalate", "escalate"]
    assert [d for _, d in late] == [d for _, d in plain]
    assert all(0 <= w2 - w1 <= 1 for (w1, _), (w2, _) in zip(plain, late, strict=True))
    # `warnd backtest` on the same versions (as_of) tells the same rise the same way
    lines = ["as_of,date,substance,source,value"]
    for i, v in enumerate(_growing()):
        p = START + timedelta(weeks=i)
        lines.append(f"{p + timedelta(weeks=1)},{p},ketamin,lab,{max(v - 2, 0):g}")
        lines.append(f"{p + timedelta(weeks=2)},{p},ketamin,lab,{v:g}")
    (tmp_path / "lab.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fired = [a for a in run_backtest(tmp_path / "lab.csv")
             if a["kind"] == "trend" and a["fired_at"] >= f"{START + timedelta(weeks=RISE)}"]
    assert [a["decision"] for a in fired] == [d for _, d in late]


def test_a_table_revising_its_newest_week_reminds_as_one_that_does_not(tmp_path):
    """With ``repeat_after_periods``, the rise of a lab whose newest week is revised each
    week is recalled as often as that of a lab whose weeks are final. Before, a revised
    series never reminded."""
    extra = "\n[detection]\nrepeat_after_periods = 4\n"
    plain = _weekly_stream(tmp_path / "plain", preliminary=False, extra=extra)
    late = _weekly_stream(tmp_path / "late", preliminary=True, extra=extra)
    assert [d for _, d in plain].count("repeat") >= 5
    assert [d for _, d in late] == [d for _, d in plain]
    assert all(0 <= w2 - w1 <= 1 for (w1, _), (w2, _) in zip(plain, late, strict=True))


ROUTED = target("desk", "mailto://127.0.0.1:1?from=a@example.org&to=d@example.org") + target(
    "ops", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org") + """
[[routes]]
min_severity = "warning"
targets = ["desk"]

[alerting]
default_targets = ["ops"]
send_resolved = true
"""


#: quiet hours around midday, when the tests' weeks are judged
QUIET = '\n[alerting]\nquiet_hours = "11:00-15:00"\n'


def _usual(weeks: int) -> dict[str, np.ndarray]:
    """The lab's and customs' usual weekly counts of ketamine (about five)."""
    return {s: np.random.default_rng(i).poisson(5.0, weeks).astype(float)
            for i, s in enumerate(("lab", "customs"))}


def _rising(usual: dict[str, np.ndarray], starts: dict[str, int], *, level: float = 15.0,
            until: int | None = None) -> dict[str, np.ndarray]:
    """``usual`` with each source of ``starts`` at about ``level`` from its week there to
    before ``until`` (the end when None)."""
    out = {s: v.copy() for s, v in usual.items()}
    for i, (s, v) in enumerate(out.items()):
        if s in starts:
            hi = len(v) if until is None else until
            v[starts[s]:hi] = np.random.default_rng(10 + i).poisson(level, hi - starts[s])
    return out


def _put_each(cfg, values: dict[str, np.ndarray], upto: int | None = None) -> None:
    """Each source's values (up to week ``upto``) as its table now stands."""
    for source, v in values.items():
        put_weekly(cfg.state_dir, v[:upto], start=START, source=source)


def _two_sources(tmp_path, weeks: int) -> tuple[Any, dict[str, np.ndarray]]:
    """Lab and customs watch ketamine; warnings and worse go to the desk, anything else
    to ops. The config and each source's usual values."""
    return make_config(tmp_path, ROUTED), _usual(weeks)


def _trend_messages(cfg, values, weeks: range) -> list[tuple[str, str, list[str]]]:
    """Week by week: the trend messages, as ``(decision, severity, targets)``."""
    told = []
    for w in weeks:
        _put_each(cfg, values, w + 1)
        told += [(a["decision"], a["severity"], a["targets"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "trend"]
    return told


def test_a_correction_reaches_those_who_had_the_rise_it_corrects(tmp_path):
    """The lab's rise opens (a small increase, to ops); customs agrees (a warning, to the
    desk); customs then revises its weeks away. The correction, a small matter by its
    own severity, goes to the desk, which had the warning that rested on customs, and
    not to ops, whose message rested on the lab alone. Before, it was routed by its own
    severity to ops alone, and the desk kept a warning whose figures were gone."""
    weeks = 120
    cfg, usual = _two_sources(tmp_path, weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110})
    told = _trend_messages(cfg, risen, range(109, weeks))
    assert told == [("open", "info", ["ops"]), ("escalate", "warning", ["desk"])]
    _put_each(cfg, {"customs": usual["customs"]})
    (c,) = Pipeline(cfg, clock=lambda: _week_end(weeks)).detect()
    assert (c["decision"], c["source"]) == ("correct", "customs")
    assert c["targets"] == ["desk"]


def test_the_end_of_a_rise_reaches_everyone_who_had_it(tmp_path):
    """As above, but the rise is real and ends after twelve weeks: its end, told with
    ``send_resolved``, goes to ops and to the desk, which was warned of it. Before, the
    end went by its own severity to ops alone: for the desk the rise never ended."""
    weeks = 150
    cfg, usual = _two_sources(tmp_path, weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110}, until=122)
    told = _trend_messages(cfg, risen, range(109, weeks))
    assert [(d, sorted(t)) for d, _, t in told] == [
        ("open", ["ops"]), ("escalate", ["desk"]), ("resolve", ["desk", "ops"])]


def test_a_rise_revised_away_while_its_opening_waits_for_quiet_hours_is_not_sent(
        tmp_path, smtp_server):
    """The lab's rise is told at midday, inside quiet hours (11:00–15:00), so its opening
    waits; within the hour the lab revises the weeks down to the usual level. When the
    quiet time ends the recipient gets nothing: neither the rise nor its withdrawal.
    Before, the opening and its correction went out together at 15:00."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    usual, w = _tell_a_rise(cfg)
    opened = _week_end(w)
    store = Store.in_dir(cfg.state_dir)
    (o,) = store.q("SELECT d.status, d.next_attempt_at FROM deliveries d JOIN alerts a "
                   "ON a.id = d.alert_id WHERE a.decision = 'open'")
    assert o["status"] == "pending" and o["next_attempt_at"] > opened.isoformat()
    _put(cfg, usual, w + 1)  # revised down half an hour later
    later = opened + timedelta(minutes=30)
    assert [a["decision"] for a in Pipeline(cfg, clock=lambda: later).detect()] == []
    after_quiet = opened + timedelta(hours=4)
    assert outbox.dispatch_pending(cfg, store, now=after_quiet)["delivered"] == 0
    assert smtp_server.messages == []
    (o,) = store.q("SELECT d.status, d.last_error FROM deliveries d JOIN alerts a "
                   "ON a.id = d.alert_id WHERE a.decision = 'open'")
    assert o["status"] == "dropped" and "revised away" in o["last_error"]
    store.close()


def test_a_rise_revised_away_while_its_opening_waits_on_a_dead_relay_is_not_sent(
        tmp_path, smtp_server):
    """The lab's rise is told at midday to mail and to the desk, whose relay is down: its
    opening is refused and waits for a retry. Half an hour later the lab revises the weeks
    down to the usual level: mail, which had the rise, gets the correction; the desk gets
    nothing, neither when the correction is decided nor once its relay is up again: its
    opening is dropped as withdrawn before it went out, as one waiting for the end of
    quiet hours is. Before, an attempt that the relay refused counted as one the desk may
    have had: it was sent the opening of a rise that no longer existed once its relay
    was up, and then its correction."""
    from tests.servers import SmtpServer, wait_for
    from warnd.alerting import outbox

    relay = SmtpServer()  # the desk's relay, down at first
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("desk", relay.url("desk@example.org")))
    usual, w = _tell_a_rise(cfg)
    opened = _week_end(w)
    store = Store.in_dir(cfg.state_dir)
    try:
        assert outbox.dispatch_pending(cfg, store, now=opened)["delivered"] == 1
        _put(cfg, usual, w + 1)  # revised down half an hour later
        later = opened + timedelta(minutes=30)
        made = Pipeline(cfg, clock=lambda: later).detect()
        relay.start()
        for k in range(1, 5):
            outbox.dispatch_pending(cfg, store, now=later + timedelta(hours=k))
        wait_for(lambda: len(smtp_server.messages) == 2, what="the opening and correction")
        (o,) = store.q("SELECT d.status, d.last_error FROM deliveries d JOIN alerts a "
                       "ON a.id = d.alert_id WHERE a.decision = 'open' AND d.target='desk'")
    finally:
        store.close()
        relay.stop()
    assert [(a["decision"], a["targets"]) for a in made] == [("correct", ["mail"])]
    assert [m["Subject"].split(":")[0] for m in smtp_server.messages] == [
        "Liten økning", "Rettelse"]
    assert relay.messages == []
    assert o["status"] == "dropped" and "revised away" in o["last_error"]


TABLE_START = date(2024, 1, 1)  # a Monday


def _table_config(tmp_path, location: str, extra: str = "", targets: str = ""):
    from tests.service_kit import write_service_config
    from tests.test_service import source

    return load_config(write_service_config(
        tmp_path / "config.toml", sources=source("lab", location, interval="1d") + extra,
        targets=targets))


def _write_table(path, rows: dict[int, str]) -> None:
    """The lab's table as a single CSV file: ``rows`` maps a week to its value cell."""
    path.write_text("period,substance,value\n" + "".join(
        f"{TABLE_START + timedelta(weeks=w)},ketamin,{v}\n" for w, v in sorted(rows.items())),
        encoding="utf-8")


def _stored(cfg) -> tuple[dict[int, float], list[tuple[str, float | None, float | None]]]:
    """The lab's stored weekly values (by week) and its revisions (period, old, new)."""
    store = Store.in_dir(cfg.state_dir)
    try:
        values = {(date.fromisoformat(r["period"]) - TABLE_START).days // 7: r["value"]
                  for r in store.q("SELECT period, value FROM observations WHERE source='lab'")}
        revised = [(r["period"], r["old_value"], r["new_value"]) for r in store.q(
            "SELECT period, old_value, new_value FROM revisions ORDER BY id")]
    finally:
        store.close()
    return values, revised


def test_a_week_removed_from_a_rewritten_table_is_withdrawn_and_its_spike_corrected(
        tmp_path, smtp_server):
    """The lab re-exports its whole table to one CSV file each week. Week 108's ketamine
    positives were typed as 60 instead of 6; the spike is told. A week later the lab
    has deleted the wrong row (and added the new week). The value the source withdrew
    is withdrawn from the store too (kept in ``revisions``, a gap to the detectors, not
    a zero), the series is judged again, and the recipient gets the correction. Before,
    the store only upserted what the file gave: the 60 stayed for good, uncorrected, and
    the report kept it."""
    table = tmp_path / "lab.csv"
    cfg = _table_config(tmp_path, str(table), targets=target("mail", smtp_server.url()))
    weeks, wrong = 112, 108
    rows = {w: f"{v:g}" for w, v in enumerate(np.random.default_rng(11).poisson(5.0, weeks))}
    rows[wrong] = "60"
    told = []
    for w in range(100, weeks):
        _write_table(table, {k: v for k, v in rows.items()
                             if k <= w and not (k == wrong and w > wrong)})
        res = Pipeline(cfg, clock=lambda w=w: noon_after_week(TABLE_START, w)).run_once()
        told += [(w, a["kind"], a["decision"]) for a in res["alerts"]]
    assert told == [(wrong, "spike", "open"), (wrong + 1, "spike", "correct")]
    subjects = [m["Subject"] for m in smtp_server.messages]
    assert len(subjects) == 2 and "ketamin" in subjects[1], subjects
    values, revised = _stored(cfg)
    assert wrong not in values and sorted(values) == [w for w in range(weeks) if w != wrong]
    assert revised == [((TABLE_START + timedelta(weeks=wrong)).isoformat(), 60.0, None)]


def test_weeks_a_table_no_longer_shows_outside_its_span_or_unreadable_are_kept(tmp_path):
    """A lab's file shows only its last 12 weeks: the weeks that fall out of its window
    are not withdrawn. A week whose cell cannot be read ("12a") is not withdrawn either,
    nor is anything while a row's date cannot be read (the rows it hides are not known).
    A row deleted from inside the window is withdrawn once the file reads cleanly."""
    table = tmp_path / "lab.csv"
    cfg = _table_config(tmp_path, str(table))
    values = {w: float(5 + w % 4) for w in range(30)}

    def poll(w: int, rows: dict[int, str], extra: str = "") -> None:
        _write_table(table, rows)
        if extra:
            with table.open("a", encoding="utf-8") as fh:
                fh.write(extra)
        assert Pipeline(cfg, clock=lambda: noon_after_week(TABLE_START, w)).poll("lab").ok

    def window(w: int) -> dict[int, str]:
        return {k: f"{values[k]:g}" for k in range(max(0, w - 11), w + 1)}

    for w in range(25):
        poll(w, window(w))
    poll(25, {**window(25), 20: "12a"})  # a cell typed wrong: a problem, not a withdrawal
    poll(26, {k: v for k, v in window(26).items() if k != 21}, "31.02.2024,ketamin,4\n")
    stored, revised = _stored(cfg)
    assert stored == {w: values[w] for w in range(27)} and revised == []
    poll(27, {k: v for k, v in window(27).items() if k != 21})
    stored, revised = _stored(cfg)
    assert sorted(stored) == [w for w in range(28) if w != 21]
    assert revised == [((TABLE_START + timedelta(weeks=21)).isoformat(), values[21], None)]


def test_a_folder_and_a_table_set_to_keep_removed_rows_keep_them(tmp_path):
    """A source reading a folder (each file holds only its own periods) and a single
    file with ``removed_rows = "keep"`` both keep a week their file no longer gives."""
    for name, extra in [("folder", ""), ("keep", 'removed_rows = "keep"\n')]:
        where = tmp_path / name
        where.mkdir()
        table = where / "lab.csv"
        cfg = _table_config(where, str(where if name == "folder" else table), extra)
        rows = {w: str(5 + w % 3) for w in range(10)}
        for w, shown in [(9, rows), (10, {k: v for k, v in rows.items() if k != 5})]:
            _write_table(table, shown)
            assert Pipeline(cfg, clock=lambda w=w: noon_after_week(TABLE_START, w)
                            ).poll("lab").ok
        stored, revised = _stored(cfg)
        assert sorted(stored) == list(range(10)) and revised == [], name


def test_a_rise_revised_away_while_its_escalation_waits_is_corrected_without_it(
        tmp_path, smtp_server):
    """The lab's rise is told (its opening waits out the quiet hours, 11:00–15:00, and
    goes at 15:00); a later week it grows fivefold, told at midday, so the escalation
    waits. Within the hour the lab revises the weeks down to the usual level. When the
    quiet time ends the recipient, who had the opening, gets its correction, replying to
    the opening, and not the escalation of a rise already withdrawn. Before, the
    escalation and then the correction went out together at 15:00."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    risen = _growing()
    usual = np.random.default_rng(11).poisson(5.0, WEEKS).astype(float)
    store = Store.in_dir(cfg.state_dir)
    try:
        told: list[str] = []
        for w in range(RISE - 1, WEEKS):
            _put(cfg, risen, w + 1)
            told += _told(cfg, w)
            if "escalate" in told:
                break
            outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(hours=4))
        assert told == ["open", "escalate"], told
        assert [str(m["Subject"]) for m in smtp_server.messages] == [
            "Liten økning: ketamin — 1 kilde"]
        _put(cfg, usual, w + 1)  # revised down half an hour later
        later = _week_end(w) + timedelta(minutes=30)
        assert [a["decision"] for a in Pipeline(cfg, clock=lambda: later).detect()] == [
            "correct"]
        outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(hours=4))
        (e,) = store.q("SELECT d.status, d.last_error FROM deliveries d JOIN alerts a "
                       "ON a.id = d.alert_id WHERE a.decision = 'escalate'")
    finally:
        store.close()
    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert len(subjects) == 2 and subjects[1].startswith("Rettelse"), subjects
    opening, correction = smtp_server.messages
    assert correction["In-Reply-To"] == opening["Message-ID"]
    assert e["status"] == "dropped" and "revised away" in e["last_error"]


def test_a_source_revised_away_while_its_escalation_waits_is_not_told_at_all(
        tmp_path, smtp_server):
    """The lab's rise is told (after the quiet hours, 11:00–15:00); weeks later customs
    agrees, told at midday, so the escalation ("2 kilder") waits. Within the hour customs
    revises its weeks down: the lab's rise goes on, customs never rose. At 15:00 the
    recipient, who heard only of the lab, gets nothing: neither the escalation resting on
    customs nor its correction. When customs does rise later, that is told as what it is,
    more than was told. Before, "Forverring: Sterk økning: ketamin — 2 kilder" and its
    "Rettelse" went out together at 15:00, and a later rise of customs was not told."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    weeks = 130
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 114})
    store = Store.in_dir(cfg.state_dir)
    try:
        told: list[str] = []
        for w in range(109, weeks):
            _put_each(cfg, risen, w + 1)
            told += _told(cfg, w)
            if "escalate" in told:
                break
            outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(hours=4))
        assert told == ["open", "escalate"], told
        heard = [str(m["Subject"]) for m in smtp_server.messages]
        assert heard[-1] == "Liten økning: ketamin — 1 kilde", heard
        _put_each(cfg, {"customs": usual["customs"]}, w + 1)  # revised down half an hour later
        later = _week_end(w) + timedelta(minutes=30)
        assert [a["decision"] for a in Pipeline(cfg, clock=lambda: later).detect()] == []
        outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(hours=4))
        assert [str(m["Subject"]) for m in smtp_server.messages] == heard
        (e,) = store.q("SELECT d.status, d.last_error FROM deliveries d JOIN alerts a "
                       "ON a.id = d.alert_id WHERE a.decision = 'escalate'")
        assert e["status"] == "dropped" and "revised away" in e["last_error"]
        # customs does rise: told as more than was told, replying to the lab's opening
        _put_each(cfg, risen, w + 1)
        again = _week_end(w) + timedelta(days=1)
        assert [a["decision"] for a in Pipeline(cfg, clock=lambda: again).detect()] == [
            "escalate"]
        outbox.dispatch_pending(cfg, store, now=again + timedelta(hours=4))
    finally:
        store.close()
    last = smtp_server.messages[-1]
    assert str(last["Subject"]).startswith("Forverring"), str(last["Subject"])
    assert last["In-Reply-To"] == smtp_server.messages[len(heard) - 1]["Message-ID"]


def test_one_source_of_a_rise_revised_away_and_back_is_told_each_time(tmp_path):
    """The lab's rise is told; customs agrees (an escalation, "2 kilder"); customs revises
    its weeks down (a correction: customs no longer shows an increase, the lab's rise goes
    on), then back up, then down again. Each change is told: escalation, correction,
    escalation, correction. Before, customs rising again after its correction was not
    told: the recipients had been told two sources agreed, and customs agreeing again
    was "no more than already told", so they were left believing it withdrawn."""
    cfg = make_config(tmp_path, MAIL)
    weeks = 130
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 114})
    told: list[str] = []
    for w in range(109, weeks):
        _put_each(cfg, risen, w + 1)
        told += _told(cfg, w)
        if "escalate" in told:
            break
    assert told == ["open", "escalate"], told
    for values, decision in [(usual, "correct"), (risen, "escalate"), (usual, "correct")]:
        _put_each(cfg, {"customs": values["customs"]}, w + 1)
        assert _told(cfg, w) == [decision]


def test_one_source_revised_away_while_the_opening_waits_leaves_the_rise_told(
        tmp_path, smtp_server):
    """Lab and customs rise together; the opening ("2 kilder") is decided at midday and
    waits out the quiet hours (11:00–15:00). Within the hour customs revises its weeks
    down, while the lab's rise goes on. At 15:00 the recipient hears of the rise, then
    that customs is withdrawn from it. Before, the waiting opening was dropped with
    customs, and the lab's rise, going on, was never told."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    weeks = 130
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110}, level=30.0)
    for w in range(109, weeks):
        _put_each(cfg, risen, w + 1)
        if _told(cfg, w):
            break
    store = Store.in_dir(cfg.state_dir)
    try:
        (o,) = store.q("SELECT title FROM alerts WHERE kind='trend' AND decision='open'")
        assert o["title"] == "Sterk økning: ketamin — 2 kilder"
        _put_each(cfg, {"customs": usual["customs"]}, w + 1)  # revised down half an hour later
        later = _week_end(w) + timedelta(minutes=30)
        assert "correct" in [a["decision"] for a in Pipeline(cfg, clock=lambda: later).detect()
                             if a["kind"] == "trend"]
        outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(hours=4))
    finally:
        store.close()
    trend = [str(m["Subject"]) for m in smtp_server.messages
             if "økning" in str(m["Subject"])]
    assert trend[0] == "Sterk økning: ketamin — 2 kilder", trend
    assert [s.startswith("Rettelse") for s in trend] == [False, True], trend


#: warnings go to the desk, everything to ops; each end is sent
DESK_AND_OPS = ('\n[[routes]]\nmin_severity = "warning"\ntargets = ["desk"]\n'
                '\n[[routes]]\ntargets = ["ops", "teams"]\n'
                '\n[alerting]\nsend_resolved = true\nchart = false\n')


def test_the_end_of_a_rise_does_not_name_a_source_its_correction_withdrew(
        tmp_path, smtp_server, teams_server):
    """Week by week through the pipeline, to two real mailboxes: the lab's small rise is
    told to ops and its Teams channel ("Liten økning: ketamin — 1 kilde"); customs
    agrees, and the desk (routed warnings) and ops hear "Sterk økning: ketamin — 2 kilder"; customs revises its weeks
    down and both are told to disregard it ("Rettelse: …"). The lab's rise then ends:
    each is told the end of the lab's rise, "Avsluttet: Liten økning: ketamin — 1 kilde",
    customs named nowhere, the lab's figures as last told; so too the Teams card. Before, both were told
    "Avsluttet: Sterk økning: ketamin — 2 kilder", "2 av 2 kilder økte", listing customs
    again after its correction. Each end's peak is the lab's largest change that target
    was told (ops: the opening's; the desk, whose first message was the escalation: its),
    in the words left after the correction, not customs' withdrawn strong increase."""
    from warnd.alerting import outbox

    cfg = make_config(tmp_path, target("desk", smtp_server.url("desk@example.org"))
                      + target("ops", smtp_server.url("ops@example.org"))
                      + target("teams", teams_server.url()), DESK_AND_OPS)
    weeks = 150
    usual = _usual(weeks)
    risen = _rising(usual, {"lab": 110, "customs": 114}, until=130)
    store = Store.in_dir(cfg.state_dir)
    told = []
    try:
        for w in range(109, weeks):
            _put_each(cfg, risen if w < 120 else {"lab": risen["lab"],
                                                  "customs": usual["customs"]}, w + 1)
            told += [(a["decision"], sorted(a["targets"]))
                     for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                     if a["kind"] == "trend"]
            outbox.dispatch_pending(cfg, store, now=_week_end(w) + timedelta(minutes=5))
        assert [(d, [n for n in names if n != "teams"]) for d, names in told] == [
            ("open", ["ops"]), ("escalate", ["desk", "ops"]), ("correct", ["desk", "ops"]),
            ("resolve", ["desk", "ops"])]
        assert all("teams" in names for _, names in told)
        (stored,) = store.q("SELECT title, data FROM alerts WHERE decision='resolve'")
        assert stored["title"] == "Avsluttet: Liten økning: ketamin — 1 kilde"
        assert [a["source"] for a in json.loads(stored["data"])["agree"]] == ["lab"]
    finally:
        store.close()
    trend = [m for m in smtp_server.messages if "økning" in str(m["Subject"])]
    by = {to: [m for m in trend if m["To"] == to] for to in ("desk@example.org",
                                                            "ops@example.org")}
    assert [[str(m["Subject"]).split(":")[0] for m in got] for got in by.values()] == [
        ["Sterk økning", "Rettelse", "Avsluttet"],
        ["Liten økning", "Forverring", "Rettelse", "Avsluttet"]]
    told_lab = _lab_figures(by["ops@example.org"][1])  # the lab as last told, both
    assert told_lab == _lab_figures(by["desk@example.org"][0])
    for got in by.values():
        end = got[-1]
        assert end["Subject"] == "Avsluttet: Liten økning: ketamin — 1 kilde"
        # how high it went: the lab's largest change that target was told, in the words
        # left after the correction (desk: the escalation's; ops: the opening's)
        changes = [_lab_figures(m).rsplit("(", 1)[1][:-1] for m in got[:-2]]
        peak = max(changes, key=lambda c: int(c.strip("+ %").replace(" ", "")))
        for part in ("plain", "html"):
            body = " ".join(end.get_body((part,)).get_content().split())
            assert "1 av 1 kilde økte" in body and told_lab in body
            assert "Customs" not in body and "2 kilder" not in body
            assert f"; høyest: liten økning, {peak} (uke " in body
    assert len({g[-1].get_body(("plain",)).get_content().split("høyest")[1][:30]
                for g in by.values()}) == 2  # each its own
    cards = [json.dumps(p, ensure_ascii=False) for p in teams_server.payloads()
             if "økning" in json.dumps(p, ensure_ascii=False)]
    assert "Avsluttet: Liten økning: ketamin — 1 kilde" in cards[-1]
    assert "1 av 1 kilde økte" in cards[-1] and told_lab in cards[-1]
    assert "Customs" not in cards[-1] and "2 kilder" not in cards[-1]


def _lab_figures(msg) -> str:
    """The lab's figures ("… → … (+… %)") in a message's plain text."""
    body = " ".join(msg.get_body(("plain",)).get_content().split())
    start = body.index("Lab: ")
    end = body.index("%)", start) + 2
    return body[body.rindex(": ", start, end) + 2:end]
