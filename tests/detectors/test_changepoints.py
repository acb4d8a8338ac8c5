import json
from datetime import date, timedelta

import numpy as np
import pytest

from benchmarks.changepoints import DATA, covering, f1, load
from detectors.changepoints import MAX_POINTS, segment


def months(n, start=2005):
    return [date(start + i // 12, i % 12 + 1, 1) for i in range(n)]


def weeks(n):
    return [date(2020, 1, 6) + timedelta(weeks=i) for i in range(n)]


def test_known_breaks_found_within_two_periods():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(10, 1, 60), rng.normal(14, 1, 50), rng.normal(8, 1, 70)])
    seg = segment(y)
    assert len(seg.change_points) == 2
    assert abs(seg.change_points[0] - 60) <= 2 and abs(seg.change_points[1] - 110) <= 2
    assert seg.segments[0][0] == 0 and seg.segments[-1][1] == len(y) - 1
    assert seg.segments[1][2] == pytest.approx(14, abs=0.5)
    assert seg.sigma == pytest.approx(1, rel=0.2)


def test_noise_constant_short_and_nan():
    rng = np.random.default_rng(1)
    assert segment(rng.normal(0, 1, 300)).change_points == []
    assert segment(np.full(50, 3.0)).change_points == []
    assert segment(np.array([])).segments == []
    assert segment(np.array([1.0, 2.0])).change_points == []
    y = np.concatenate([np.full(30, 5.0), np.full(30, 9.0)]) + rng.normal(0, 0.3, 60)
    y[[10, 40]] = np.nan
    seg = segment(y)
    assert seg.change_points and abs(seg.change_points[0] - 30) <= 1
    assert all(isinstance(c, int) for c in seg.change_points)


def test_smooth_growth_and_season_give_no_change():
    t = np.arange(180)
    found = {"line": [], "logistic": [], "growth": []}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        line = np.linspace(0, 30, 180) + rng.normal(0, 1, 180)
        found["line"].append(len(segment(line).change_points))
        logistic = 100 / (1 + np.exp(-(t - 90) / 30)) + 50 + 8 * np.sin(2 * np.pi * t / 12)
        seg = segment(logistic + rng.normal(0, 2, 180), months(180))
        assert seg.season_period == 12 and seg.scale == "identity"
        found["logistic"].append(len(seg.change_points))
        growth = 50 * np.exp(0.01 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
        seg = segment(growth * np.exp(rng.normal(0, 0.05, 180)), months(180))
        assert seg.season_period == 12 and seg.scale == "log"
        found["growth"].append(len(seg.change_points))
    assert found["line"] == [0] * 10 and found["growth"] == [0] * 10
    # an S-curve bends sharply at its knees: rarely, and then only there, a change of slope
    assert sum(k > 0 for k in found["logistic"]) <= 1 and max(found["logistic"]) <= 2


def test_quantised_and_correlated_series_stay_quiet():
    t = np.arange(260)
    found = {"index": [], "halves": [], "ar": []}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        index = np.round(3 + 0.5 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 0.4, 260))
        found["index"].append(len(segment(index, weeks(260)).change_points))
        halves = np.round(2 * (1 + rng.normal(0, 0.3, 260))) / 2  # 0.5 <-> 1 <-> 1.5 ...
        found["halves"].append(len(segment(halves).change_points))
        ar = np.zeros(260)
        for i in range(1, 260):
            ar[i] = 0.7 * ar[i - 1] + rng.normal()
        found["ar"].append(len(segment(ar).change_points))
    assert found["halves"] == [0] * 10
    assert sum(k > 0 for k in found["index"]) <= 2 and max(found["index"]) <= 1
    assert sum(k > 0 for k in found["ar"]) <= 1 and max(found["ar"]) <= 1


def test_quantised_step_is_found():
    rng = np.random.default_rng(4)
    y = np.round(np.where(np.arange(200) >= 120, 6.0, 3.0) + rng.normal(0, 0.6, 200))
    assert [abs(c - 120) <= 2 for c in segment(y).change_points] == [True]


def test_step_under_a_season_and_a_change_of_slope():
    rng = np.random.default_rng(5)
    t = np.arange(180)
    y = np.where(t >= 100, 30.0, 20.0) + 6 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, 180)
    seg = segment(y, months(180))
    assert seg.season_period == 12 and len(seg.change_points) == 1
    assert abs(seg.change_points[0] - 100) <= 2
    kink = np.where(t < 100, 0.2 * t, 20 - 0.3 * (t - 100)) + rng.normal(0, 1, 180)
    seg = segment(kink)
    assert len(seg.change_points) == 1 and abs(seg.change_points[0] - 100) <= 5


def test_counts_and_heavy_tails_use_log_scale():
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.poisson(5, 80), rng.poisson(40, 80)]).astype(float) + 1
    seg = segment(y)
    assert seg.scale == "log" and len(seg.change_points) == 1
    assert abs(seg.change_points[0] - 80) <= 2


def test_long_series_are_binned_then_placed_exactly():
    rng = np.random.default_rng(6)
    n = 40 * MAX_POINTS
    y = rng.normal(0, 1, n) + np.where(np.arange(n) >= 12_345, 1.0, 0.0)
    y -= np.where(np.arange(n) >= 30_001, 2.0, 0.0)
    seg = segment(y)
    assert len(seg.change_points) == 2
    assert abs(seg.change_points[0] - 12_345) <= 10 and abs(seg.change_points[1] - 30_001) <= 10
    assert seg.segments[1][2] == pytest.approx(1.0, abs=0.05)
    assert segment(rng.normal(0, 1, n)).change_points == []


def test_benchmark_metrics_match_tcpdbench_and_data_is_complete():
    data = load()
    values, anns, _ = data["nile"]
    # TCPDBench analysis/output/summaries/summary_nile.json: no change scores F1
    # 0.8235294117647058 and cover 0.75808; a point at 27 scores 1.0 and 0.8800821917808218
    assert f1(anns, []) == pytest.approx(0.8235294117647058)
    assert covering(anns, [], len(values)) == pytest.approx(0.75808)
    assert covering(anns, [27], len(values)) == pytest.approx(0.8800821917808218)
    raw = json.loads(DATA.read_text())
    assert len(raw["series"]) == 31
    for name, item in raw["series"].items():
        assert item["licence"] and item["annotations"], name
        assert all(v is None or isinstance(v, int | float) for v in item["values"]), name
