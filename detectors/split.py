"""The best single split of a series into two constant levels (least squares).

Equivalent to ``ruptures.KernelCPD(kernel="linear", min_size=m).fit(x).predict(n_bkps=1)``
(the linear kernel's cost is the within-segment sum of squares, Truong, Oudre &
Vayatis 2020, "Selective review of offline change point detection methods",
Signal Processing 167), computed from cumulative sums in O(n) without importing
ruptures (which loads scipy.stats, ~50 MB, into the daemon). Where two splits cost
exactly the same (possible with integer counts) this takes the earlier one and
ruptures may take the other; both are optimal (2 of 3,000 random Poisson series in
``tests/test_split.py``'s comparison).
"""

from __future__ import annotations

import numpy as np


def best_split(x: np.ndarray, min_size: int = 2) -> int:
    """Index ``b`` minimising SSE(x[:b]) + SSE(x[b:]), both parts ≥ ``min_size`` long.

    Returns ``len(x)`` when no split is possible (as ruptures' last breakpoint).
    """
    x = np.asarray(x, dtype=float).ravel()
    n = len(x)
    if n < 2 * min_size:
        return n
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    b = np.arange(min_size, n - min_size + 1)
    left = c2[b] - c1[b] ** 2 / b
    right = (c2[n] - c2[b]) - (c1[n] - c1[b]) ** 2 / (n - b)
    return int(b[int(np.argmin(left + right))])
