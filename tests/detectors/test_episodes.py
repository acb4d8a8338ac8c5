import json
from dataclasses import replace
from datetime import date, timedelta

import numpy as np

from detectors.base import Finding, Series
from detectors.engine import replay
from detectors.episodes import EpisodeTracker
from detectors.params import DetectionParams

P = DetectionParams()


def f(kind="trend", direction="increase", rel=0.6, cat=1, n_sources=1):
    return Finding(
        source="lab",
        substance="cocaine",
        kind=kind,
        direction=direction,
        onset=date(2026, 1, 5),
        detected_at=date(2026, 1, 5),
        level_before=1.0,
        level_after=1 + rel,
        relative_change=rel,
        strength=1.0,
        category=cat,
        evidence={"n_sources": n_sources},
    )


def actions(tracker, findings):
    return [(d.action, d.episode, d.send) for d in tracker.update(findings)]


def test_open_once_then_ongoing_then_resolve():
    tr = EpisodeTracker(params=P)
    assert actions(tr, [f()]) == [("open", "trend:increase", True)]
    for _ in range(5):
        assert actions(tr, [f()]) == [("ongoing", "trend:increase", False)]
    for _ in range(P.resolve_after_periods - 1):
        assert actions(tr, []) == []
    assert actions(tr, []) == [("resolve", "trend:increase", False)]
    assert actions(tr, [f()]) == [("open", "trend:increase", True)]


def test_escalate_on_category_change_size_and_sources():
    tr = EpisodeTracker(params=P)
    tr.update([f(rel=0.3, cat=1)])
    assert actions(tr, [f(rel=0.35, cat=1)])[0][0] == "ongoing"
    assert actions(tr, [f(rel=0.6, cat=2)]) == [("escalate", "trend:increase", True)]
    assert actions(tr, [f(rel=0.85, cat=2)])[0][0] == "ongoing"  # < 1.5 x 0.6
    assert actions(tr, [f(rel=0.95, cat=2)])[0][0] == "escalate"  # >= 1.5 x 0.6
    assert actions(tr, [f(rel=0.95, cat=2, n_sources=3)])[0][0] == "escalate"


def test_repeat_only_when_configured():
    tr = EpisodeTracker(params=P.merged({"repeat_after_periods": 3}))
    got = [actions(tr, [f()])[0][0] for _ in range(7)]
    assert got == ["open", "ongoing", "ongoing", "repeat", "ongoing", "ongoing", "repeat"]


def test_decrease_never_sends_and_spike_is_its_own_episode():
    tr = EpisodeTracker(params=P)
    out = actions(tr, [f(direction="decrease", rel=-0.5, cat=-2)])
    assert out == [("open", "trend:decrease", False)]
    out = actions(tr, [f(kind="spike", rel=4.0, cat=2)])
    assert ("open", "spike:increase", True) in out
    # the spike did not open a trend increase episode
    assert "trend:increase" not in tr.to_dict()["open"]
    loud = EpisodeTracker(params=P.merged({"alert_decreases": True, "send_resolve": True}))
    assert actions(loud, [f(direction="decrease", rel=-0.5)])[0][2] is True


def test_state_round_trips_through_json():
    tr = EpisodeTracker(params=P)
    tr.update([f()])
    tr.update([f()])
    state = json.loads(json.dumps(tr.to_dict()))
    again = EpisodeTracker.from_dict(state, params=P)
    assert actions(again, [f()]) == [("ongoing", "trend:increase", False)]
    assert actions(tr, [replace(f(), category=2)])[0][0] == "escalate"


def test_a_change_the_scale_calls_stable_opens_no_episode():
    tr = EpisodeTracker(params=P)
    assert actions(tr, [f(rel=0.08, cat=0)]) == []
    # once the change is big enough to be a small increase, the episode opens
    assert actions(tr, [f(rel=0.2, cat=1)]) == [("open", "trend:increase", True)]
    loose = EpisodeTracker(params=P.merged({"min_alert_category": 0}))
    assert actions(loose, [f(rel=0.08, cat=0)]) == [("open", "trend:increase", True)]


def _recent(finding, recent, onset=date(2026, 1, 5)):
    return replace(finding, onset=onset,
                   evidence={**finding.evidence, "recent_relative_change": recent})


def test_a_rise_whose_latest_periods_are_back_ends_though_its_trend_is_current():
    """A rise of +100 % (level 2) whose statistic stays current: its findings keep the
    episode open while the latest periods are nearer level 2 than the expected level (the
    logarithmic mean, 1/ln 2 = 1.44); once they are back, the episode ends
    ``resolve_after_periods`` periods later, though a finding comes every period. The
    fall-back opens nothing else. Before, any current finding kept the episode open."""
    tr = EpisodeTracker(params=P.merged({"send_resolve": True}))
    up = f(rel=1.0, cat=2)
    assert actions(tr, [_recent(up, 1.0)]) == [("open", "trend:increase", True)]
    assert actions(tr, [_recent(up, 0.5)]) == [("ongoing", "trend:increase", False)]
    for _ in range(P.resolve_after_periods - 1):
        assert actions(tr, [_recent(up, 0.4)]) == []
    assert actions(tr, [_recent(up, 0.4)]) == [("resolve", "trend:increase", True)]
    # the same run goes on, its latest periods a little above the middle: no new episode
    assert actions(tr, [_recent(up, 0.6)]) == []
    # until its level comes back in full
    assert actions(tr, [_recent(up, 1.0)]) == [("open", "trend:increase", True)]


def test_a_change_whose_level_was_back_is_forgotten_as_an_episode_ends():
    """While findings of its kind go on, with gaps shorter than ``resolve_after_periods``
    (the statistic's run stopping and starting again, a new onset within the old change),
    none opens an episode unless its level comes back in full; the memory (in the state
    as JSON) is forgotten after ``resolve_after_periods`` periods without one, and then a
    finding opens as usual."""
    tr = EpisodeTracker(params=P)
    up = f(rel=1.0, cat=2)
    tr.update([_recent(up, 1.0)])
    for _ in range(P.resolve_after_periods):
        tr.update([_recent(up, 0.0)])
    assert not tr.state["open"]
    state = json.loads(json.dumps(tr.to_dict()))
    assert state["back"] == {"trend:increase": state["period"]}
    again = EpisodeTracker.from_dict(state, params=P)
    assert actions(again, []) == []
    restarted = _recent(up, 0.6, onset=date(2026, 1, 19))
    assert actions(again, [restarted]) == []
    for _ in range(P.resolve_after_periods - 1):
        assert actions(again, []) == []
    assert "back" in again.to_dict()
    assert actions(again, []) == []
    assert "back" not in again.to_dict()
    later = _recent(up, 0.6, onset=date(2026, 3, 2))
    assert actions(again, [later]) == [("open", "trend:increase", True)]


def test_a_fall_whose_level_is_back_ends_too():
    """A fall to half (level 0.5; middle 0.5/ln 2 = 0.72): the latest periods back at the
    expected level end it as a rise's."""
    tr = EpisodeTracker(params=P.merged({"alert_decreases": True}))
    down = f(direction="decrease", rel=-0.5, cat=-2)
    assert actions(tr, [_recent(down, -0.5)]) == [("open", "trend:decrease", True)]
    assert actions(tr, [_recent(down, -0.35)]) == [("ongoing", "trend:decrease", False)]
    for _ in range(P.resolve_after_periods - 1):
        assert actions(tr, [_recent(down, -0.2)]) == []
    assert actions(tr, [_recent(down, -0.2)]) == [("resolve", "trend:decrease", False)]


def test_a_new_rise_measured_from_its_own_start_regains_its_level():
    """A new rise the statistic measures from its own start, no longer than the latest
    ``2 * resolve_after_periods`` periods, has its recent change equal to its change (the
    evidence holds the recent one to four decimals): it opens an episode while a run whose
    level was back is remembered. Before, a change that rounded down (4.70433 held as
    4.7043) was not "at least as far" as itself, and the new rise opened a week late."""
    tr = EpisodeTracker(params=P)
    tr.state["back"] = {"trend:increase": 0}
    new = _recent(f(rel=4.704326, cat=2), 4.7043)
    assert actions(tr, [new]) == [("open", "trend:increase", True)]
    down = EpisodeTracker(params=P.merged({"alert_decreases": True}))
    down.state["back"] = {"trend:decrease": 0}
    fall = _recent(f(direction="decrease", rel=-0.612346, cat=-2), -0.6123)
    assert actions(down, [fall]) == [("open", "trend:decrease", True)]


def test_a_second_rise_after_the_first_fell_back_opens_when_first_found():
    """Through the real detector: weekly counts at 3 a week, ×3 for 8 weeks, back for 16,
    then ×3 again. The first rise's run is current all along (its level back, so the
    episode ended and the run is remembered); the second is found in its second week,
    measured from its own start (two periods: the recent change is the whole window's),
    and opens then, not a week later."""
    rng = np.random.default_rng(14)
    start = date(2023, 1, 2)
    periods = tuple(start + timedelta(weeks=i) for i in range(150))
    lam = np.full(150, 3.0)
    lam[120:128] *= 3
    lam[144:] *= 3
    series = Series("lab", "cocaine", periods, rng.poisson(lam).astype(float))
    tr = EpisodeTracker(params=P)
    opened = []
    for i, found in enumerate(replay(series, P)):
        for d in tr.update(found):
            if d.action == "open" and d.episode == "trend:increase":
                opened.append((periods[i], d.finding.evidence["observed_periods"]))
    assert opened[0][0] < date(2025, 6, 1)  # the first rise
    assert opened[1] == (date(2025, 10, 20), 2)  # the second, in the week it is found


def test_a_spike_after_a_rise_fell_back_does_not_open_its_trend_again():
    """Through the real detector: weekly counts at 6 a week, ×3 for 8 weeks, then back,
    and one week of 40 thirteen weeks later (a spike), while the rise's statistic is
    still current. The spike is told as a spike; the rise's trend episode ended and stays
    ended: its level comes back in full only without the latest periods' most extreme
    one, as the statistic leaves it out. Before, the one week lifted the mean of the
    latest 8 weeks past the change's level from its onset, and the trend episode opened
    again (a rise told anew, the spike folded into it) and stayed open for weeks."""
    start = date(2023, 1, 2)
    periods = tuple(start + timedelta(weeks=i) for i in range(150))
    lam = np.full(150, 6.0)
    lam[120:128] *= 3
    values = np.random.default_rng(1).poisson(lam).astype(float)
    values[140] = 40.0
    tr = EpisodeTracker(params=P)
    told = []
    for i, found in enumerate(replay(Series("lab", "cocaine", periods, values), P)):
        told += [(i, d.action, d.episode) for d in tr.update(found)
                 if i >= 128 and d.action in ("open", "resolve")]
    trend = [(i, a) for i, a, e in told if e == "trend:increase"]
    assert len(trend) == 1 and trend[0][1] == "resolve" and trend[0][0] < 140
    assert (140, "open", "spike:increase") in told
