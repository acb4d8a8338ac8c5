"""The baseline's residual scale for other values (indexes, quantities)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.baseline import Layout, fit_points
from detectors.params import DetectionParams

P = DetectionParams()
LAY = Layout.of(365.25 / 7, P)


def _window(y: np.ndarray, n: int) -> np.ndarray:
    """The values the fit at position ``n - 1`` reads."""
    last = n - 1 - LAY.guard
    return y[last - LAY.window + 1 : last + 1]


@pytest.mark.parametrize("seed", range(4))
def test_a_rounded_index_gets_the_spread_of_its_values_and_an_outlier_moves_it_little(seed):
    """A flat index on three quanta (2.5, 5, 7.5: a low-interest series rescaled after
    a renormalisation): the points one quantum off the usual value are down-weighted
    in the fit, yet they are the data's resolution, so the residual scale is the
    spread of all the values (leaving them out made it about 11 % too small, and a
    run of upper quanta looked like a rise). One value 8 times the usual, far beyond
    the cap, moves the scale by a few per cent, not as much as it moves the plain
    standard deviation."""
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.choice([2.5, 5.0, 7.5], size=n, p=[0.075, 0.795, 0.13])
    fit = fit_points(y, np.array([n - 1]), LAY, P, family="continuous")
    spread = np.std(np.log(_window(y, n) + fit.shift[0]), ddof=1)
    assert fit.scale[0] == pytest.approx(spread, rel=0.03)

    y_out = y.copy()
    y_out[n - 1 - LAY.guard - 30] = 40.0
    fit_out = fit_points(y_out, np.array([n - 1]), LAY, P, family="continuous")
    plain = np.std(np.log(_window(y_out, n) + fit_out.shift[0]), ddof=1)
    assert plain > 1.1 * spread  # the outlier is gross
    assert fit_out.scale[0] < 1.06 * fit.scale[0]
