import numpy as np
import pytest

from detectors.changepoints import segment


def test_known_breaks_found_within_two_periods():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(10, 1, 60), rng.normal(14, 1, 50), rng.normal(8, 1, 70)])
    seg = segment(y)
    assert len(seg.change_points) == 2
    assert abs(seg.change_points[0] - 60) <= 2 and abs(seg.change_points[1] - 110) <= 2
    assert seg.segments[0][0] == 0 and seg.segments[-1][1] == len(y) - 1
    assert seg.segments[1][2] == pytest.approx(14, abs=0.5)


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


def test_linear_trend_is_not_a_staircase():
    rng = np.random.default_rng(2)
    y = np.linspace(0, 30, 200) + rng.normal(0, 1, 200)
    assert len(segment(y).change_points) <= 1


def test_counts_and_heavy_tails_use_log_scale():
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.poisson(5, 80), rng.poisson(40, 80)]).astype(float) + 1
    seg = segment(y)
    assert seg.scale == "log" and len(seg.change_points) == 1
    assert abs(seg.change_points[0] - 80) <= 2
