from datetime import date

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.base import Finding, Series
from detectors.params import DetectionParams
from detectors.scale import categorize, words
from detectors.synthesis import (
    aggregate,
    half_years,
    latest_complete_half_year,
    score_change,
    series_change,
    substance_verdict,
)

P = DetectionParams()


def test_params_merge_later_wins_and_rejects_unknown_keys():
    p = DetectionParams().merged({"glr_h": 4.0, "alpha": 0.01}, None, {"glr_h": 8.0})
    assert p.glr_h == 8.0 and p.alpha == 0.01
    with pytest.raises(ValidationError):
        DetectionParams().merged({"glr_hh": 1})
    with pytest.raises(ValidationError):
        DetectionParams().merged({"strong_increase": 0.05})  # below small_increase
    for name, field in DetectionParams.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize(
    ("rel", "p", "cat"),
    [
        (0.6, 0.01, 2),
        (0.6, 0.2, 1),
        (0.2, 0.5, 1),
        (0.05, 0.001, 0),
        (-0.1, 0.001, 0),
        (-0.2, 0.3, -1),
        (-0.4, 0.01, -2),
        (-0.4, 0.2, -1),
        (float("nan"), 0.0, 0),
    ],
)
def test_five_step_cutoffs(rel, p, cat):
    assert categorize(rel, p, P) == cat


def test_small_requires_significance_when_configured():
    strict = P.merged({"require_significance_for_small": True})
    assert categorize(0.2, 0.5, strict) == 0
    assert words(2) == "strong increase" and words(-1, "no") == "liten nedgang"


def test_score_change_counts_by_hand():
    # before 6 weeks of 3.5 on average (21), after 6 of 8.1667 (49): rate ratio 7/3
    ch = score_change([3, 4, 2, 5, 3, 4], [8, 9, 7, 10, 6, 9], P)
    assert ch.level_before == 3.5 and ch.relative_change == pytest.approx(49 / 21 - 1)
    # Pearson dispersion is below 1 in both windows -> phi = 1; z = ln(49/21)/sqrt(1/21+1/49)
    z = np.log(49 / 21) / np.sqrt(1 / 21 + 1 / 49)
    from scipy import stats

    assert ch.p_value == pytest.approx(2 * stats.norm.sf(z))
    assert ch.category == 2 and ch.words == "strong increase" and ch.words_no == "sterk økning"


def test_score_change_rates_and_indexes():
    # positives per test: 50/1000 -> 100/1000 is a doubling even with more tests
    ch = score_change(
        [25, 25], [100, 100], P, denominators_before=[500, 500], denominators_after=[2000, 2000]
    )
    assert ch.level_before == pytest.approx(0.05) and ch.level_after == pytest.approx(0.05)
    assert ch.category == 0
    idx = score_change([40.5, 41.2, 39.9, 40.1], [60.2, 61.3, 59.8, 62.0], P)
    assert idx.test == "Mann-Whitney U" and idx.category in (1, 2)
    empty = score_change([], [1, 2], P)
    assert empty.category == 0 and empty.p_value is None


def test_half_years():
    cur, prev = half_years(date(2026, 1, 15))
    assert cur == (date(2025, 10, 1), date(2026, 3, 31))
    assert prev == (date(2025, 4, 1), date(2025, 9, 30))
    cur, prev = half_years(date(2026, 7, 1))
    assert cur == (date(2026, 4, 1), date(2026, 9, 30)) and prev[0] == date(2025, 10, 1)
    assert latest_complete_half_year(date(2026, 3, 30)) == (date(2025, 10, 1), date(2026, 3, 31))
    assert latest_complete_half_year(date(2026, 2, 2)) == (date(2025, 4, 1), date(2025, 9, 30))


def test_aggregate_reproduces_cocaine_row():
    # hand-made per-source categories giving the Føre Var spring 2026 cocaine row
    panel_use = [("use", "panel", 1)] * 20 + [("use", "panel", 2)] * 2  # 24 from answers
    use = [*panel_use, ("use", "consumption_room", 2)]  # 26
    availability = [("availability", "panel_avail", 1)] * 12 + [
        ("availability", "customs_count", 2),
        ("availability", "customs_qty", 2),
    ]  # 16
    interest = [
        ("interest", "google", 2),
        ("interest", "ba_search", 2),
        ("interest", "bt_articles", 1),
        ("interest", "rusinfo", 2),
    ]  # 7
    agg = aggregate(use + availability + interest)
    assert agg.by_dimension == {"use": 26, "availability": 16, "interest": 7}
    assert agg.total == 49
    assert agg.sources_by_dimension == {"use": 2, "availability": 3, "interest": 4}
    assert agg.n_sources == 9


def test_panel_score_series_sums_answers():
    per = (date(2025, 11, 1), date(2026, 2, 1), date(2025, 5, 1))
    s = Series(
        source="panel",
        substance="ketamine",
        periods=tuple(sorted(per)),
        values=np.array([2.0, 1.0, 2.0]),
        metric="score",
    )
    cur, prev = half_years(date(2026, 1, 1))
    cat, change = series_change(s, cur, prev, P)
    assert cat == 3 and change is None


def _f(source, cat):
    return Finding(
        source=source,
        substance="cocaine",
        kind="trend",
        direction="increase",
        onset=date(2026, 1, 5),
        detected_at=date(2026, 2, 2),
        level_before=1,
        level_after=2,
        relative_change=1.0,
        strength=1.0,
        category=cat,
    )


def test_substance_verdict_needs_corroboration_for_strong():
    lone = substance_verdict([("customs", 2)], P)
    assert lone.category == 1 and lone.severity == "info"
    strict = substance_verdict([("customs", 2)], P.merged({"require_corroboration": True}))
    assert strict.severity == "none"
    two = substance_verdict([_f("customs", 2), _f("lab", 1), ("media", -1)], P)
    assert two.category == 2 and two.severity == "warning"
    assert two.corroborating_sources == ("customs", "lab")
    assert two.disagreeing_sources == ("media",)
    three = substance_verdict([("a", 2), ("b", 2), ("c", 1)], P)
    assert three.severity == "critical"
    down = substance_verdict([("a", -2), ("b", -1)], P)
    assert down.category == -2 and down.severity == "none"
    assert substance_verdict([], P).category == 0


def test_panel_round_sums_are_bounded_by_their_number_of_answers():
    # two rounds in the current half-year: 30 answers summing to +47, 5 answers to +12
    s = Series(
        source="panel",
        substance="kokain",
        periods=(date(2025, 11, 15), date(2026, 3, 15)),
        values=np.array([47.0, 12.0]),
        denominators=np.array([30.0, 5.0]),
        metric="score:use",
        dimension="use",
    )
    cur, prev = half_years(date(2026, 3, 31))
    cat, change = series_change(s, cur, prev, P)
    assert cat == 47 + 10 and change is None  # 12 from 5 answers is capped at 2·5
