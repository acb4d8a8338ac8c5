"""Data that changes after it was told: what the digest and the console say of a
substance once a source revised the values a message rested on (week by week through
detection, a real store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.alerting_env import SOURCES, finding, make_config
from tests.conftest import write_config
from tests.test_stream_config_changes import MUTED
from tests.test_stream_revisions import (
    MAIL, _put, _put_each, _rising, _told, _two_sources, _week_end)
from warnd.alerting import actions, digest
from warnd.alerting.commands import print_alerting_status
from warnd.alerting.wording import render_text
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.service.health import collect_status
from warnd.store import Store

ENDS = MAIL + "\n[alerting]\nsend_resolved = true\n"
DIGEST = '\n[alerting.digest]\nschedule = "weekly"\ntargets = ["mail"]\n'


def _digest_of(cfg, day) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The digest for the week ending ``day``: each substance's sources with their
    category, and the substances it lists as open."""
    store = Store.in_dir(cfg.state_dir)
    try:
        d = digest.build(cfg, store, end=day)
    finally:
        store.close()
    return ({s["substance"]: s["sources"] for s in d["substances"]},
            [o["substance"] for o in d["open"]])


def _silence_ketamin(cfg, *, until: int, now: datetime, reason: str = "x") -> None:
    """Kari silences ketamine at ``now`` until an hour before the end of week ``until``."""
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="ketamin", reason=reason, who="kari", via="cli",
                            until=_week_end(until) - timedelta(hours=1), now=now)
    finally:
        store.close()


def test_the_digest_after_a_rise_revised_away_no_longer_lists_it(tmp_path):
    """The lab's ketamine rise is told; the lab then revises those weeks down to the
    usual level and the recipients get a correction. The digest two days later lists no
    increase of ketamine at the lab, as the correction said; revised back up, the rise
    is told again and the digest lists it again. Before, the digest (and the console's
    overview, which reads it) went on listing the lab's withdrawn rise with its
    category, as the findings the revision took away were still read as standing."""
    cfg = make_config(tmp_path, MAIL, DIGEST)
    weeks, rise = 120, 110
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)
    told = []
    for w in range(rise - 1, weeks):
        _put(cfg, risen, w + 1)
        told += _told(cfg, w)
    assert told == ["open"]
    listed, open_ = _digest_of(cfg, _week_end(weeks - 1) + timedelta(days=2))
    assert listed["ketamin"]["lab"] > 0 and open_ == ["ketamin"]
    _put(cfg, usual)  # the last weeks revised down: the rise told is gone
    assert _told(cfg, weeks) == ["correct"]
    assert _digest_of(cfg, _week_end(weeks) + timedelta(days=2)) == ({}, [])
    _put(cfg, risen)  # and back up: told again, and listed again
    assert _told(cfg, weeks + 1) == ["open"]
    listed, open_ = _digest_of(cfg, _week_end(weeks + 1) + timedelta(days=2))
    assert listed["ketamin"]["lab"] > 0 and open_ == ["ketamin"]


@pytest.mark.parametrize("held", ["silenced", "muted"])
def test_a_correction_held_back_is_told_once_nothing_holds_it_back(tmp_path, held):
    """The lab's ketamine rise is told to mail; an operator silences ketamine for two
    weeks (or mutes it by a reload), and in the first of them the lab revises the rise
    away. The correction is held back; the first round after the silence (the mute)
    tells it to mail, once, as the end of a told rise held back so is told. Before, it
    was never told: mail was left believing the rise went on, and no end would come."""
    loud = make_config(tmp_path, MAIL)
    muted = load_config(write_config(tmp_path, SOURCES + MAIL, name="muted.toml",
                                     substances=MUTED))
    weeks, rise = 126, 110
    usual = np.random.default_rng(11).poisson(5.0, weeks).astype(float)
    risen = usual.copy()
    risen[rise:] = np.random.default_rng(6).poisson(15.0, weeks - rise)

    def told(w: int) -> list[tuple[str, str, list[str]]]:
        cfg = muted if held == "muted" and w in (120, 121) else loud
        return [(a["decision"], a["status"], a["targets"])
                for a in Pipeline(cfg, clock=lambda: _week_end(w)).detect()
                if a["kind"] == "trend"]

    said = []
    for w in range(rise - 1, 120):
        _put(loud, risen, w + 1)
        said += told(w)
    assert said == [("open", "open", ["mail"])]
    if held == "silenced":
        _silence_ketamin(loud, until=122, now=_week_end(119) + timedelta(hours=1),
                         reason="moving the lab")
    said = {}
    for w in range(120, weeks):
        _put(loud, usual, w + 1)  # from week 120 on the lab's table shows no rise at all
        said[w] = told(w)
    assert said[120] == [("correct", held, [])]
    assert {w: s for w, s in said.items() if s and w > 120} == {
        122: [("correct", "open", ["mail"])]}
    store = Store.in_dir(loud.state_dir)
    try:
        assert store.q("SELECT decision FROM alerts WHERE status = 'open'") == []
        assert store.held_back() == {}
    finally:
        store.close()


def test_a_revision_of_old_weeks_is_not_news_in_the_next_digest(tmp_path):
    """The lab's ketamine had a rise two and a half years ago that ended; nothing rises
    now, and the weekly digests list nothing. The lab then re-exports its table with the
    counts of three weeks just before that old rise corrected up: judged again, the old
    rise begins a little earlier. That is history: nothing is told, and the next digest
    lists nothing either. Before, the old rise's findings under their new onset counted
    as recorded since the last digest, and the digest (and the console's overview) listed
    a moderate increase of ketamine at the lab."""
    cfg = make_config(tmp_path, MAIL, DIGEST)
    weeks = 172
    lam = np.full(weeks, 5.0)
    lam[30:42] *= 3  # the old rise, long over
    usual = np.random.default_rng(11).poisson(lam).astype(float)
    corrected = usual.copy()
    corrected[27:30] += 8
    for w in range(165, weeks):
        _put(cfg, corrected if w >= 168 else usual, w + 1)
        assert _told(cfg, w) == []
        store = Store.in_dir(cfg.state_dir)
        try:  # the digest of the Monday, due at 08:00, goes at the next dispatch
            digest.maybe_enqueue(cfg, store, now=_week_end(w) + timedelta(minutes=1))
        finally:
            store.close()
    store = Store.in_dir(cfg.state_dir)
    try:
        sent = [json.loads(r["data"]) for r in store.q(
            "SELECT data FROM alerts WHERE kind = 'digest' ORDER BY id")]
    finally:
        store.close()
    assert len(sent) == weeks - 166  # none for the week before the first start
    # each digest, the first (after the first run judged the whole history, the old
    # rise included) and the one after the revision, lists nothing: what the history
    # holds is not news (before, the first digest listed the old rise at the lab)
    assert [d["substances"] for d in sent] == [[]] * len(sent)


def test_a_source_revised_away_after_its_own_rise_ended_is_corrected(tmp_path):
    """The lab's ketamine rise is told (a small increase, to ops), customs agrees (a
    strong increase, to the desk); the lab's own rise is over by week 110 while customs'
    goes on. In week 120 the lab re-exports its table: its rise was never there. Its
    recipients, ops and the desk, are told so ("Rettelse"), as when a source's rise still
    open is revised away, and the end of the rise, when customs' is over, no longer names
    the lab. Nor does it go to ops: ops had only the lab's rise, and was told it was
    withdrawn, so there is no rise left for it to end (before, ops was told the end of
    customs' rise, which it never had). Before, nothing was told in week 120, as the
    lab's own rise had ended before the revision, and the end named the lab's withdrawn
    rise among the sources that rose."""
    weeks = 142
    cfg, usual = _two_sources(tmp_path, weeks)
    lab = _rising(usual, {"lab": 90}, until=100)["lab"]
    customs = _rising(usual, {"customs": 95}, level=25.0)["customs"]
    said = []
    for w in range(88, weeks):
        _put_each(cfg, {"lab": usual["lab"] if w >= 120 else lab, "customs": customs}, w + 1)
        said += [(w, a["decision"], a["source"], sorted(a["targets"]))
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "trend"]
    assert said == [(91, "open", "lab", ["ops"]), (96, "escalate", "customs,lab", ["desk"]),
                    (120, "correct", "lab", ["desk", "ops"]),
                    (140, "resolve", "customs", ["desk"])]


def test_a_correction_of_one_source_is_not_listed_as_an_open_alert(tmp_path):
    """The lab's rise is told, customs agrees, and customs then revises its weeks away:
    the rise goes on at the lab, and the desk gets a correction. `warnd status` lists
    the rise's messages as open, to be acknowledged, and not the correction, which has
    nothing to acknowledge (its message carries no "Kvitter" link, nor says to
    acknowledge or silence). Before, the correction was listed open until the lab's rise
    ended, months later, and its message said to acknowledge it or silence ketamine
    ("Neste steg: kvitter med …"), which would have held back the next rise."""
    weeks = 120
    cfg, usual = _two_sources(tmp_path, weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110})
    for w in range(109, weeks):
        _put_each(cfg, risen, w + 1)
        Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
    _put_each(cfg, {"customs": usual["customs"]})
    (c,) = Pipeline(cfg, clock=lambda: _week_end(weeks)).detect()
    assert (c["decision"], c["source"], c["targets"]) == ("correct", "customs", ["desk"])
    # nothing to acknowledge or silence, and the message does not ask for it, with the
    # console's links (only "Åpne") or without them (no commands)
    for links in ({}, {"open": "https://warnd.example/alerts/3"}):
        body = render_text(c["data"], "no", c["id"], config=cfg, links=links)[1]
        assert "Ingenting å gjøre: kilden har rettet tallene" in body
        assert "kvitter" not in body.lower() and "demp" not in body.lower()
    status = collect_status(cfg, now=_week_end(weeks) + timedelta(hours=1))
    assert [a["title"].split(":")[0] for a in status["open_alerts"]] == [
        "Forverring", "Liten økning"]


def test_a_held_end_is_not_told_to_a_target_whose_rise_was_withdrawn(tmp_path):
    """As above, the lab's rise is withdrawn for ops (it had only the lab's), while
    customs' goes on for the desk; then ketamine is silenced in the weeks customs' rise
    ends. After the silence its end is told to the desk, and not to ops, as an end told
    at once is not."""
    weeks = 146
    cfg, usual = _two_sources(tmp_path, weeks)
    lab = _rising(usual, {"lab": 90}, until=100)["lab"]
    customs = _rising(usual, {"customs": 95}, level=25.0)["customs"]
    said = []
    for w in range(88, weeks):
        if w == 136:
            _silence_ketamin(cfg, until=143, now=_week_end(w) - timedelta(hours=1))
        _put_each(cfg, {"lab": usual["lab"] if w >= 120 else lab, "customs": customs}, w + 1)
        said += [(w, a["decision"], a["status"], sorted(a["targets"]))
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "trend"]
    assert said[2:] == [(120, "correct", "open", ["desk", "ops"]),
                        (140, "resolve", "silenced", []), (143, "resolve", "open", ["desk"])]


def test_findings_withdrawn_whatever_their_evidence_holds(tmp_path):
    """A finding whose evidence holds a figure that is not a number (NaN, which Python
    writes into the JSON and SQLite's JSON functions refuse) is withdrawn and left out of
    the digest like any other, and the digest still reads the rest."""
    from dataclasses import replace

    cfg = make_config(tmp_path, MAIL, DIGEST)
    odd = replace(finding("lab"), evidence={"usual_peak": float("nan"), "n": 3})
    kept = finding("customs", dimension="availability")
    store = Store.in_dir(cfg.state_dir)
    try:
        store.record_findings([odd, kept], now=_week_end(0))
        store.record_findings([], now=_week_end(1), whole={odd.series_key: "ketamin"})
        rows = {r["source"]: json.loads(r["evidence"]) for r in store.q(
            "SELECT source, evidence FROM findings")}
        d = digest.build(cfg, store, end=datetime(2026, 7, 8, tzinfo=UTC))
    finally:
        store.close()
    assert rows["lab"]["withdrawn"] == _week_end(1).date().isoformat()
    assert rows["lab"]["n"] == 3 and "withdrawn" not in rows["customs"]
    assert [(s["substance"], s["sources"]) for s in d["substances"]] == [
        ("ketamin", {"customs": 2})]


def test_a_spike_correction_held_back_by_a_silence_is_told_after_it(tmp_path):
    """So too a told one-off spike the lab revises away in a week ketamine is silenced:
    its correction is told to mail once the silence is over, once."""
    cfg = make_config(tmp_path, MAIL)
    weeks, spike = 130, 115
    values = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    values[spike] = 40
    said = []
    for w in range(spike - 2, weeks):
        if w == 117:
            _silence_ketamin(cfg, until=121, now=_week_end(w) - timedelta(hours=1))
            values[spike] = 5  # the lab's week revised to its usual level
        _put(cfg, values, w + 1)
        said += [(w, a["kind"], a["decision"], a["status"], a["targets"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert said == [(115, "spike", "open", "open", ["mail"]),
                    (117, "spike", "correct", "silenced", []),
                    (121, "spike", "correct", "open", ["mail"])]


def test_a_spike_revised_away_after_its_own_ended_is_corrected(tmp_path):
    """The lab's one-off spike of ketamine is told, customs' three weeks later escalates
    it ("2 kilder"); the lab's own spike is over by week 120, customs' not. In week 120
    the lab revises its week down to the usual level: mail, which had the spike, is told
    so ("Rettelse"), as a rise is, and the spike's end, once customs' is over, names
    customs only. Before, nothing was told, as the lab's own spike had ended before the
    revision, and the end ("Avsluttet: … — 2 kilder") named the lab's withdrawn spike."""
    cfg = make_config(tmp_path, ENDS)
    weeks, spike = 125, 115
    lab = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    lab[spike] = 40
    customs = np.random.default_rng(5).poisson(np.full(weeks, 8.0)).astype(float)
    customs[spike + 3] = 60
    said = []
    for w in range(spike - 2, weeks):
        if w == 120:
            lab[spike] = 5
        _put_each(cfg, {"lab": lab, "customs": customs}, w + 1)
        said += [(w, a["decision"], a["source"], a["targets"],
                  sorted(x["source"] for x in a["data"]["agree"]))
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "spike"]
    assert said == [(115, "open", "lab", ["mail"], ["lab"]),
                    (118, "escalate", "customs,lab", ["mail"], ["customs", "lab"]),
                    (120, "correct", "lab", ["mail"], ["lab"]),
                    (122, "resolve", "customs", ["mail"], ["customs"])]


def test_a_correction_of_one_source_held_back_is_told_after_the_silence(tmp_path):
    """The lab's rise is told (to ops), customs agrees (an escalation, to the desk); an
    operator silences ketamine for two weeks, and in the first of them customs revises
    its weeks away while the lab's rise goes on. The correction is held back; the first
    round after the silence tells it to the desk, which had customs' rise, once, and not
    to ops, which heard nothing of customs. Before, it was never told: the desk was left
    believing customs' rise stood (only a correction of the whole rise was told after)."""
    weeks = 126
    cfg, usual = _two_sources(tmp_path, weeks)
    risen = _rising(usual, {"lab": 110, "customs": 110})
    said = []
    for w in range(109, weeks):
        if w == 120:
            _silence_ketamin(cfg, until=122, now=_week_end(119) + timedelta(hours=1))
        _put_each(cfg, {"lab": risen["lab"],
                        "customs": usual["customs"] if w >= 120 else risen["customs"]}, w + 1)
        said += [(w, a["decision"], a["source"], a["status"], a["targets"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
                 if a["kind"] == "trend"]
    assert said == [(111, "open", "lab", "open", ["ops"]),
                    (113, "escalate", "customs,lab", "open", ["desk"]),
                    (120, "correct", "customs", "silenced", []),
                    (122, "correct", "customs", "open", ["desk"])]
    store = Store.in_dir(cfg.state_dir)
    try:
        assert store.held_back() == {}
    finally:
        store.close()


def test_warnd_status_lists_a_correction_held_back_by_a_silence(tmp_path, capsys):
    """As above: customs revises its rise away while ketamine is silenced and the lab's rise
    goes on, and the correction is held back. While the silence lasts, `warnd status` lists
    that correction (its alert, substance, kind and source), in its JSON and in its text,
    beside the rises held back; once the silence has ended and the correction is told, it
    lists none. Before, it listed held-back rises only, so nothing said that a correction
    was waiting for the silence."""
    cfg, usual = _two_sources(tmp_path, 126)
    risen = _rising(usual, {"lab": 110, "customs": 110})
    held = []
    for w in range(109, 123):
        if w == 120:
            _silence_ketamin(cfg, until=122, now=_week_end(119) + timedelta(hours=1))
        _put_each(cfg, {"lab": risen["lab"],
                        "customs": usual["customs"] if w >= 120 else risen["customs"]}, w + 1)
        Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()
        status = collect_status(cfg, now=_week_end(w) + timedelta(hours=1))
        assert status["held_back_by_silence"] == []  # the rise itself was told
        held.append((w, [(c["substance"], c["kind"], c["direction"], c["source"])
                         for c in status["corrections_held_back_by_silence"]]))
        if w == 121:
            print_alerting_status(status)
            text = capsys.readouterr().out
            aid = status["corrections_held_back_by_silence"][0]["alert_id"]
            assert ("corrections held back by a silence, told when it ends: "
                    f"ketamin (alert #{aid}: customs)") in text
            assert json.loads(json.dumps(status))["corrections_held_back_by_silence"] == [
                {"alert_id": aid, "substance": "ketamin", "kind": "trend",
                 "direction": "increase", "source": "customs",
                 "title": status["corrections_held_back_by_silence"][0]["title"]}]
    late = [(w, h) for w, h in held if w >= 119]
    assert late == [(119, []), (120, [("ketamin", "trend", "increase", "customs")]),
                    (121, [("ketamin", "trend", "increase", "customs")]), (122, [])]
