"""Offline segmentation of any numeric series into constant-level segments.

Default settings, no per-series tuning:

1. Missing values (NaN/inf) are dropped; indices refer to the input.
2. Scale: strictly positive data spanning a factor of 4 or more is segmented on the log
   scale (heavy right tails, multiplicative changes); otherwise as is.
3. Noise: a robust s from first differences, ``MAD(diff(x)) / 0.6745 / √2``, which a
   level shift barely moves (Fryzlewicz 2014, Ann Stat 42:2243 uses the same idea).
4. Search: exact penalised least squares (PELT, Killick et al. 2012, JASA 107:1590) via
   ruptures ``KernelCPD(kernel="linear")`` with penalty ``3·s²·ln n`` (a BIC-type
   penalty, Yao 1988, inflated for robustness) and minimum segment length
   ``max(3, n // 25)``.
5. Pruning, repeated until nothing changes: the weakest change point is dropped
   unless it is supported. It is supported when
   (a) the two segments it separates differ by a two-sample z test on s at level
   ``0.001`` (Bonferroni over the candidates) **and** two constant levels fit better
   than one straight line over both (a steady trend is not a staircase of steps), or
   (b) two separate straight lines fit significantly better than one (F test, same
   level): the trend itself changes there (a peak, a collapse, a new growth rate).

Assumptions: piecewise-constant mean (on the chosen scale), roughly independent noise.
Strongly autocorrelated series (random walks) violate this; the differencing-based s
then under-states the noise and the pruning in step 5 is what keeps the result sparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import ruptures as rpt
from scipy import stats

PENALTY_FACTOR = 3.0
ALPHA = 0.001


@dataclass(frozen=True)
class Segmentation:
    """``change_points``: input indices where a new segment starts (never 0).
    ``segments``: ``(start_index, end_index_inclusive, level)`` with the level the mean
    of the segment's finite values in the input's units."""

    change_points: list[int] = field(default_factory=list)
    segments: list[tuple[int, int, float]] = field(default_factory=list)
    scale: str = "identity"  # identity | log
    sigma: float = float("nan")


def _sigma(x: np.ndarray) -> float:
    d = np.diff(x)
    if len(d) == 0:
        return 0.0
    s = float(np.median(np.abs(d - np.median(d))) / 0.6745 / np.sqrt(2))
    if s <= 0:
        s = float(np.std(d)) / np.sqrt(2)
    return s


def _rss_const(x: np.ndarray) -> float:
    return float(((x - x.mean()) ** 2).sum())


def _rss_line(x: np.ndarray) -> float:
    t = np.arange(len(x), dtype=float)
    A = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(A, x, rcond=None)
    return float(((x - A @ coef) ** 2).sum())


def _two_lines_p(a: np.ndarray, b: np.ndarray, one_line_rss: float) -> float:
    """F test p-value of two separate lines against one line over ``a`` + ``b``."""
    df = len(a) + len(b) - 4
    if len(a) < 3 or len(b) < 3 or df < 1:
        return 1.0
    rss2 = _rss_line(a) + _rss_line(b)
    f = ((one_line_rss - rss2) / 2) / max(rss2 / df, 1e-300)
    return float(stats.f.sf(f, 2, df))


def _prune(x: np.ndarray, cps: list[int], sigma: float) -> list[int]:
    """Drop the weakest change point until every one is supported (see module doc)."""
    cps = list(cps)
    while cps:
        bounds = [0, *cps, len(x)]
        crit = stats.norm.isf(ALPHA / (2 * len(cps)))
        worst, worst_score = None, np.inf
        for j in range(1, len(bounds) - 1):
            a, b = x[bounds[j - 1] : bounds[j]], x[bounds[j] : bounds[j + 1]]
            z = abs(b.mean() - a.mean()) / (sigma * np.sqrt(1 / len(a) + 1 / len(b)))
            score = z / crit
            line = _rss_line(np.concatenate([a, b]))
            if line <= _rss_const(a) + _rss_const(b):
                score = min(score, 0.0)  # a steady trend, not a step
            if _two_lines_p(a, b, line) < ALPHA / len(cps):
                score = max(score, 1.0)  # the trend itself changes here
            if score < worst_score:
                worst, worst_score = j - 1, score
        if worst is None or worst_score >= 1.0:
            break
        del cps[worst]
    return cps


def segment(
    values: np.ndarray | Sequence[float], periods: Sequence[date] | None = None
) -> Segmentation:
    """Segment ``values`` (``periods`` are accepted for symmetry and not needed)."""
    y = np.asarray(values, dtype=float)
    idx = np.flatnonzero(np.isfinite(y))
    if len(idx) == 0:
        return Segmentation()
    x = y[idx]
    n = len(x)
    scale = "identity"
    if x.min() > 0 and x.max() / x.min() >= 4:
        x = np.log(x)
        scale = "log"
    min_size = max(3, n // 25)
    sigma = _sigma(x)
    cps: list[int] = []
    if n >= 2 * min_size + 1 and sigma > 0 and np.ptp(x) > 0:
        pen = PENALTY_FACTOR * sigma**2 * np.log(n)
        bk = (
            rpt.KernelCPD(kernel="linear", min_size=min_size).fit(x.reshape(-1, 1)).predict(pen=pen)
        )
        cps = _prune(x, [int(b) for b in bk[:-1]], sigma)
    starts = [0, *cps]
    ends = [*cps, n]
    segs = []
    for a, b in zip(starts, ends, strict=True):
        segs.append((int(idx[a]), int(idx[b - 1]), float(np.mean(y[idx[a:b]]))))
    return Segmentation(
        change_points=[int(idx[c]) for c in cps], segments=segs, scale=scale, sigma=sigma
    )
