"""The baseline: its residual scale for other values (indexes, quantities), and the
windows' design computed from one shared basis."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.baseline import (
    N_PAR,
    Layout,
    _Windows,
    design,
    fit_points,
    fit_windows,
    window_positions,
)
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


@pytest.mark.parametrize("per_year", [365.25 / 7, 12.0, 365.25])
def test_the_windows_design_from_one_basis_is_each_windows_own_design(per_year):
    """A window's design is the shared basis turned to its place in the year and its
    flags applied: its linear predictor, weighted least squares and leverages equal
    those of the design written out position by position (windows starting before
    the series, narrower widths, trend or harmonics off)."""
    lay = Layout.of(per_year, P)
    L = lay.window
    rng = np.random.default_rng(int(per_year))
    rp = rng.integers(lay.guard + L // 2, 6 * L, size=40)  # some start before the series
    last = rp - lay.guard
    flags = np.ones((40, N_PAR))
    flags[::3, 4:] = 0.0  # no half-year pair
    flags[::5, 1:] = 0.0  # intercept only
    for width in (L, L - 3 * 32 if L > 3 * 32 else L):
        idx = window_positions(rp, lay)[:, L - width:]
        X = design(idx, (last - (L - 1) / 2.0)[:, None], flags[:, None, :], per_year)
        win = _Windows(last - (L - 1), flags, width, L, per_year)
        beta = rng.normal(size=(40, N_PAR))
        inside = idx >= 0  # positions before the series weigh nothing in any fit
        np.testing.assert_allclose(win.lin(beta)[inside],
                                   np.einsum("mlp,mp->ml", X, beta)[inside],
                                   rtol=1e-12, atol=1e-12)
        W = rng.random((40, width)) * inside
        z = rng.normal(size=(40, width))
        got_beta, got_ainv = win.solve(W, z)
        A = np.einsum("mlp,ml,mlq->mpq", X, W, X)
        A += (1e-8 * (A[:, 0, 0] + 1.0))[:, None, None] * np.eye(N_PAR)
        want_ainv = np.linalg.inv(A)
        want_beta = np.einsum("mpq,mlq,ml->mp", want_ainv, X, W * z)
        np.testing.assert_allclose(got_beta, want_beta, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(got_ainv, want_ainv, rtol=1e-8, atol=1e-9)
        want_h = np.minimum(W * np.einsum("mlp,mpq,mlq->ml", X, want_ainv, X), 0.99)
        np.testing.assert_allclose(win.leverage(got_ainv, W), want_h, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("family", ["counts", "continuous"])
def test_a_windows_fit_does_not_depend_on_the_windows_fitted_with_it(family):
    """The same window fitted alone, and among others in any order, gives the same
    floats bit for bit (what makes the daemon's batches agree with a replay)."""
    rng = np.random.default_rng(8)
    y = rng.poisson(6.0, 900).astype(float)
    if family == "continuous":
        y = np.round(y * 1.7, 1)
    rp = np.arange(300, 880, 7)
    idx = window_positions(rp, LAY)
    valid = idx >= 0
    yw, off = y[np.where(valid, idx, 0)], np.zeros(idx.shape)
    together = fit_windows(rp, idx, yw, off, valid, LAY, P, family)
    order = rng.permutation(len(rp))
    shuffled = fit_windows(rp[order], idx[order], yw[order], off[order], valid[order],
                           LAY, P, family)
    for i in (0, 17, len(rp) - 1):
        alone = fit_windows(rp[i:i + 1], idx[i:i + 1], yw[i:i + 1], off[i:i + 1],
                            valid[i:i + 1], LAY, P, family)
        j = int(np.flatnonzero(order == i)[0])
        for name, a in alone.arrays().items():
            assert np.array_equal(a[0], together.arrays()[name][i], equal_nan=True), name
            assert np.array_equal(a[0], shuffled.arrays()[name][j], equal_nan=True), name
