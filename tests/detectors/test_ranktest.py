"""Tests written without scipy (Mann–Whitney U, the F survival function) give scipy's values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.ranktest import mannwhitneyu_p


@pytest.mark.parametrize("seed", range(6))
def test_p_values_equal_scipy_exact_and_asymptotic_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    seen = set()
    for _ in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 25, 2))
        if rng.random() < 0.5:  # continuous: exact for small samples
            a, b = rng.normal(0, 1, n1), rng.normal(rng.normal(0, 1), 1, n2)
        else:  # index-like values with ties: asymptotic with the tie correction
            a, b = rng.integers(0, 6, n1) * 0.5, rng.integers(0, 8, n2) * 0.5
        if np.ptp(np.concatenate([a, b])) == 0:
            continue
        want = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        assert mannwhitneyu_p(a, b) == pytest.approx(want, rel=1e-9, abs=1e-12), (n1, n2)
        assert mannwhitneyu_p(b, a) == pytest.approx(want, rel=1e-9, abs=1e-12)
        ties = len(np.unique(np.concatenate([a, b]))) < n1 + n2
        seen.add("exact" if min(n1, n2) <= 8 and not ties else "asymptotic")
    assert seen == {"exact", "asymptotic"}


def test_separated_samples_and_empty_input():
    assert mannwhitneyu_p([1, 2, 3], [10, 11, 12]) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert mannwhitneyu_p(range(20), range(100, 120)) < 1e-6
    assert np.isnan(mannwhitneyu_p([], [1.0]))


def test_f_survival_for_even_numerator_degrees_equals_scipy():
    from scipy.special import fdtrc

    from detectors.changepoints import f_sf_even

    rng = np.random.default_rng(5)
    for _ in range(3000):
        d1, d2 = 2 * int(rng.integers(1, 6)), float(rng.integers(1, 400))
        f = float(rng.exponential(3))
        assert f_sf_even(d1, d2, f) == pytest.approx(float(fdtrc(d1, d2, f)), rel=1e-9,
                                                     abs=1e-300)
    assert f_sf_even(4, 10, 0.0) == 1.0
    with pytest.raises(ValueError, match="even"):
        f_sf_even(3, 10, 1.0)
