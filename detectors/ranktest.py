"""The two-sided Mann–Whitney U test without importing ``scipy.stats``.

Loading ``scipy.stats`` takes seconds and about 50 MB in a short command such as
``warnd report``; this module gives the same p-value as
``scipy.stats.mannwhitneyu(x, y, alternative="two-sided")`` (method ``"auto"``,
continuity correction on), which it follows step by step (Mann & Whitney 1947;
the tie-corrected normal approximation as in scipy's ``_mannwhitneyu.py``):

* ranks of the pooled sample, ties given their average rank;
* ``U1 = R1 - n1 (n1 + 1) / 2``; the two-sided test uses ``U = max(U1, n1 n2 - U1)``;
* **exact** when one sample has at most 8 values and there are no ties: the null
  distribution of U counted exactly (the number of orderings giving each U, from
  the generating function ``∏ (1 - q^(n2+i)) / (1 - q^i)``, i = 1..n1), ``p = 2 P(U'
  ≥ U)``;
* otherwise **asymptotic**: ``z = (U - n1 n2 / 2 - 0.5) / σ`` with
  ``σ² = n1 n2 / 12 · ((n + 1) - Σ(t³ - t) / (n (n - 1)))`` over the tie groups t,
  ``p = 2 Φ(-z)``;
* ``p`` clipped to [0, 1].

Assumptions: independent observations, a continuous or ordinal scale; with many
ties the normal approximation is used whatever the sizes (as scipy does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: Up to this size of the smaller sample (and without ties) the exact test is used.
EXACT_MAX = 8


def _average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties averaged, and the size of each tie group."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    sizes = np.diff(np.r_[starts, len(xs)])
    avg = starts + (sizes + 1) / 2.0  # mean of ranks starts+1 .. starts+size
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.repeat(avg, sizes)
    return ranks, sizes


@lru_cache(maxsize=64)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """Number of orderings of n1 + n2 values giving U = 0 .. n1 n2 (no ties)."""
    poly = [1]  # coefficients of the Gaussian binomial [n1 + n2 choose n1] in q
    for i in range(1, n1 + 1):
        # multiply by (1 - q^(n2+i)), then divide by (1 - q^i)
        top = n2 + i
        grown = poly + [0] * top
        for k in range(len(poly)):
            grown[k + top] -= poly[k]
        for k in range(i, len(grown)):
            grown[k] += grown[k - i]
        poly = grown[: len(grown) - i]
    return tuple(poly)


def mannwhitneyu_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the Mann–Whitney U test of ``x`` against ``y``."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return math.nan
    ranks, ties = _average_ranks(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if (n1 <= EXACT_MAX or n2 <= EXACT_MAX) and not (ties > 1).any():
        counts = _u_counts(min(n1, n2), max(n1, n2))
        k = int(round(u))
        p = 2 * sum(counts[k:]) / math.comb(n1 + n2, n1)
    else:
        n = n1 + n2
        tie_term = float((ties.astype(float) ** 3 - ties).sum())
        s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        z = (u - n1 * n2 / 2 - 0.5) / s if s > 0 else math.inf
        p = 2 * 0.5 * math.erfc(z / math.sqrt(2))
    return min(max(p, 0.0), 1.0)
