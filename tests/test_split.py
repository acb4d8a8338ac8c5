"""The O(n) best single split agrees with ruptures' KernelCPD (linear kernel)."""

from __future__ import annotations

import numpy as np
import ruptures as rpt

from detectors.split import best_split


def _ruptures(x: np.ndarray) -> int:
    return int(rpt.KernelCPD(kernel="linear", min_size=2).fit(x.reshape(-1, 1))
               .predict(n_bkps=1)[0])


def _cost(x: np.ndarray, b: int) -> float:
    return float(((x[:b] - x[:b].mean()) ** 2).sum() + ((x[b:] - x[b:].mean()) ** 2).sum())


def test_same_split_as_ruptures_on_normal_and_count_data():
    rng = np.random.default_rng(7)
    differ = 0
    for t in range(1500):
        n = int(rng.integers(4, 80))
        if t % 2:
            x = rng.normal(size=n)
            x[n // 2:] += 3.0 * (t % 4 == 1)
        else:  # log ratios of counts, as the engine dates an onset
            y = rng.poisson(3, size=n).astype(float)
            y[n // 3:] += rng.poisson(4, size=n - n // 3) * (t % 4 == 0)
            x = np.log((y + 0.5) / 3.5)
        a, b = _ruptures(x), best_split(x)
        if a != b:  # only where both splits cost the same
            differ += 1
            assert abs(_cost(x, a) - _cost(x, b)) < 1e-9
    assert differ <= 5


def test_known_break_and_too_short():
    x = np.r_[np.zeros(10), np.full(7, 5.0)]
    assert best_split(x) == 10
    assert best_split(np.array([1.0, 2.0, 3.0])) == 3
