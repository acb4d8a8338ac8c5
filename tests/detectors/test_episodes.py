import json
from dataclasses import replace
from datetime import date

from detectors.base import Finding
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
