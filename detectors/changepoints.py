"""Offline segmentation of any numeric series: where did its level or course change?

A series is split into segments — constant levels, or straight lines (a level and a
slope), whichever the data support — only where that explains the data clearly better
than one smooth course (a trend, a gentle curve and, for monthly, weekly or quarterly
data, a season). Default settings, no per-series tuning:

1. Missing values (NaN/inf) are dropped; indices refer to the input.
2. Scale: strictly positive data spanning a factor of 4 or more is segmented on the log
   scale (growth is multiplicative, right tails are heavy); otherwise as is.
3. Season: with ``periods`` on a monthly, weekly or quarterly grid and at least three
   years of data, a yearly profile (``SEASON_HARMONICS`` sine/cosine pairs of the time of
   year) is fitted by least squares to the deviations from a centred moving average of
   one year (the classical decomposition, smoothed); it is removed when its F test
   against the residual scatter (:func:`f_sf_even`, equal to scipy ``special.fdtrc``)
   gives ``p < SEASON_ALPHA``.
4. Search: for every number of changes ``K ≤ MAX_CHANGES``, and for constant and for
   straight-line segments, the exact least-squares segmentation into segments of at
   least ``max(MIN_SEGMENT, n // SEGMENT_DIVISOR)`` points (dynamic programming,
   Bellman 1961 / Auger & Lawrence 1989, on cumulative sums).
5. Choice among these: the Bayesian information criterion with the residual variance
   profiled out, ``n·ln(RSS/n) + λ·p·ln n`` with ``p`` the free parameters (one or two
   per segment, one per change location; Schwarz 1978, Yao 1988 for change points).
   ``λ = (1+ρ)/(1−ρ)`` is the long-run variance factor of AR(1) noise, with ρ the lag-1
   autocorrelation of the chosen fit's residuals (corrected for its bias ``p/(n−p)``),
   re-estimated until the choice is stable: correlated noise carries less information
   than its length suggests, so each parameter must buy that much more fit (Lavielle &
   Moulines 2000 treat change points under dependent noise alike). The noise scale is
   that of the residuals of a fitted model, never of first differences alone, so
   quantised or very smooth series do not get a collapsing noise estimate.
6. Pruning against the smooth course: a change point stays only when its two
   neighbouring segments beat one polynomial over both — a straight line for two levels
   (a slope is not a staircase), a quadratic for two lines (a curve is not a set of
   chords) — by the same criterion (residual variance of the chosen fit times λ).
   Finally the segmentation must beat a cubic trend over the whole series by the
   criterion, else there is no change.
7. Long series: above ``MAX_POINTS`` the search runs on means of equal bins (time and
   memory grow linearly with ``n``) and each change point is then placed exactly within
   its bins (least squares of the two neighbouring segments, on cumulative sums).

Assumptions: between change points the series is a constant or a straight line (on the
chosen scale) plus a fixed season and stationary, roughly AR(1) noise. A change of
variance alone is not looked for. The dynamic programme is written here on cumulative
sums because ruptures' segment-wise linear cost is pure Python (hundreds of times slower
at these sizes); its constant-mean cost is the same least squares as ruptures
``KernelCPD(kernel="linear")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

MIN_SEGMENT = 4
SEGMENT_DIVISOR = 25
MAX_CHANGES = 15
MAX_POINTS = 1000
SEASON_ALPHA = 0.01
SEASON_HARMONICS = 6
MAX_RHO = 0.95
SMOOTH_DEGREE = 3


@dataclass(frozen=True)
class Segmentation:
    """``change_points``: input indices where a new segment starts (never 0).
    ``segments``: ``(start_index, end_index_inclusive, level)`` with the level the mean
    of the segment's finite values in the input's units. ``sigma``: residual standard
    deviation of the chosen model on the chosen ``scale``; ``season_period``: the
    seasonal period removed (0: none)."""

    change_points: list[int] = field(default_factory=list)
    segments: list[tuple[int, int, float]] = field(default_factory=list)
    scale: str = "identity"  # identity | log
    sigma: float = float("nan")
    season_period: int = 0


def _season_period(periods: Sequence[date] | None, n: int) -> int:
    if periods is None or len(periods) < 3:
        return 0
    step = float(np.median(np.diff([p.toordinal() for p in periods])))
    m = 12 if 27 <= step <= 32 else 52 if 6 <= step <= 8 else 4 if 88 <= step <= 93 else 0
    return m if m and n >= 3 * m else 0


def f_sf_even(d1: int, d2: float, f: float) -> float:
    """``P(F > f)`` for an F distribution with an even ``d1`` (here ``2·harmonics``).

    With ``x = d2 / (d2 + d1·f)`` this is the regularised incomplete beta
    ``I_x(d2/2, d1/2)``, which for an integer second parameter ``k = d1/2`` is the
    finite sum ``x^(d2/2) · Σ_{j<k} C(d2/2 + j − 1, j) (1 − x)^j`` (Abramowitz &
    Stegun 26.5.6 / 6.6.2): the same value as scipy's ``special.fdtrc(d1, d2, f)``
    without loading ``scipy.special`` (about half a second) into a short command.
    """
    if d1 % 2 or d1 <= 0:
        raise ValueError(f"d1 must be a positive even number, not {d1}")
    if f <= 0:
        return 1.0
    x = d2 / (d2 + d1 * f)
    a = d2 / 2
    term, total = 1.0, 1.0
    for j in range(1, d1 // 2):
        term *= (a + j - 1) / j * (1 - x)
        total += term
    return min(1.0, math.exp(a * math.log(x)) * total)


def _deseasonalise(x: np.ndarray, m: int, days: np.ndarray) -> tuple[np.ndarray, bool]:
    """Remove a significant yearly profile (see module doc, step 3).

    ``days``: day numbers of the values; the profile is ``SEASON_HARMONICS`` sine/cosine
    pairs of the time of year, fitted to the deviations from a centred moving average of
    one year (``m`` periods)."""
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.convolve(x, w, mode="valid")
    h = (len(w) - 1) // 2
    dev = x[h : h + len(trend)] - trend
    harmonics = min(SEASON_HARMONICS, m // 2)
    angle = 2 * np.pi * days / 365.2425
    design = np.column_stack(
        [f(k * angle) for k in range(1, harmonics + 1) for f in (np.sin, np.cos)]
    )
    part = design[h : h + len(trend)]
    coef, *_ = np.linalg.lstsq(part, dev - dev.mean(), rcond=None)
    resid = dev - dev.mean() - part @ coef
    df1, df2 = 2 * harmonics, len(dev) - 2 * harmonics - 1
    ss_res = float(resid @ resid)
    ss_fit = float(((part @ coef) ** 2).sum())
    if df2 < 1 or ss_fit <= 0:
        return x, False
    if ss_res > 0 and f_sf_even(df1, df2, (ss_fit / df1) / (ss_res / df2)) >= SEASON_ALPHA:
        return x, False
    return x - design @ coef, True


def _cumsums(y: np.ndarray) -> tuple[np.ndarray, ...]:
    t = np.arange(len(y), dtype=float) / len(y)
    return tuple(
        np.concatenate([[0.0], np.cumsum(v)]) for v in (np.ones_like(y), t, t * t, y, t * y, y * y)
    )


def _segment_rss(
    sums: tuple[np.ndarray, ...], a: np.ndarray, b: np.ndarray, degree: int
) -> np.ndarray:
    """Residual sum of squares of a least-squares constant (``degree`` 0) or straight line
    (``degree`` 1) on ``y[a:b]``, broadcast over ``a`` and ``b``."""
    s1, st, stt, sy, sty, syy = sums
    n = s1[b] - s1[a]
    y = sy[b] - sy[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = y * y / n
        if degree == 1:
            t = st[b] - st[a]
            ty = sty[b] - sty[a]
            det = n * (stt[b] - stt[a]) - t * t
            line = ((stt[b] - stt[a]) * y * y - 2 * t * y * ty + n * ty * ty) / det
            explained = np.where(det > 0, line, explained)
    return np.maximum(syy[b] - syy[a] - np.nan_to_num(explained), 0.0)


def _partitions(
    y: np.ndarray, min_size: int, kmax: int, degree: int
) -> list[tuple[float, list[int]]]:
    """Exact best split into ``K+1`` segments (constants or lines, ``degree``) for every
    ``K ≤ kmax``: ``(rss, change points)``."""
    n = len(y)
    sums = _cumsums(y)
    pos = np.arange(n + 1)
    # cost[b, a]: RSS of one segment y[a:b]; rows are segment ends, so each step of the
    # recursion below reads memory in order
    cost = np.empty((n + 1, n + 1))
    for lo in range(0, n + 1, 64):  # in row blocks: temporaries stay small
        ends = pos[lo : lo + 64, None]
        block = _segment_rss(sums, pos[None, :], ends, degree)
        block[ends - pos[None, :] < min_size] = np.inf
        cost[lo : lo + 64] = block
    best = [cost[:, 0].copy()]
    back = []
    total = np.empty_like(cost)
    for _ in range(kmax):
        np.add(cost, best[-1][None, :], out=total)
        arg = total.argmin(axis=1)
        best.append(total[pos, arg])
        back.append(arg)
    del total, cost
    out = []
    for k in range(kmax + 1):
        if not np.isfinite(best[k][n]):
            break
        cps, b = [], n
        for j in range(k, 0, -1):
            b = int(back[j - 1][b])
            cps.append(b)
        out.append((float(best[k][n]), sorted(cps)))
    return out


def _poly_rss(y: np.ndarray, deg: int) -> float:
    t = np.linspace(-1.0, 1.0, len(y))
    coef = np.polynomial.polynomial.polyfit(t, y, deg)
    r = y - np.polynomial.polynomial.polyval(t, coef)
    return float(r @ r)


def _residuals(y: np.ndarray, cps: list[int], degree: int) -> np.ndarray:
    out = np.empty_like(y)
    for a, b in zip([0, *cps], [*cps, len(y)], strict=True):
        t = np.linspace(-1.0, 1.0, b - a)
        coef = np.polynomial.polynomial.polyfit(t, y[a:b], degree)
        out[a:b] = y[a:b] - np.polynomial.polynomial.polyval(t, coef)
    return out


def _inflation(r: np.ndarray, params: int) -> float:
    """Long-run variance factor ``(1+ρ)/(1−ρ)`` of AR(1) noise, ρ ∈ [0, MAX_RHO].

    ρ is the lag-1 autocorrelation of least-squares residuals plus ``p/(n−p)``, its bias
    under white noise with ``p`` smooth regressors (E Σ r_t r_t+1 ≈ −σ² tr H = −σ² p)."""
    r = r - r.mean()
    den = float(r @ r)
    n = len(r)
    rho = 0.0 if den <= 0 else float(r[1:] @ r[:-1]) / den + params / max(n - params, 1)
    rho = min(max(rho, 0.0), MAX_RHO)
    return (1 + rho) / (1 - rho)


def _params(k: int, degree: int) -> int:
    """Free parameters of ``k`` changes: ``degree+1`` per segment and each location."""
    return (degree + 1) * (k + 1) + k


@dataclass(frozen=True)
class _Fit:
    degree: int
    cps: list[int]
    rss: float


def _choose(y: np.ndarray, fits: list[_Fit]) -> tuple[_Fit, float]:
    """The fit with the least inflated BIC, the inflation re-estimated from the chosen
    fit's residuals until the choice is stable (see module doc, step 5)."""
    n = len(y)
    rss = np.array([max(f.rss, 1e-12 * n) for f in fits])
    params = np.array([_params(len(f.cps), f.degree) for f in fits])
    base = n * np.log(rss / n)

    def inflation(i: int) -> float:
        f = fits[i]
        return _inflation(_residuals(y, f.cps, f.degree), int(params[i]))

    i: int | None = None
    lam = 1.0
    history: list[int] = []
    for _ in range(20):
        i_new = int(np.argmin(base + lam * params * np.log(n)))
        if i_new == i:
            break
        if i_new in history:  # a cycle: keep the simplest model in it
            i = min(history[history.index(i_new) :], key=lambda j: params[j])
            lam = inflation(i)
            break
        history.append(i_new)
        i = i_new
        lam = inflation(i)
    assert i is not None
    return fits[i], lam


def _prune(y: np.ndarray, cps: list[int], degree: int, s2: float) -> list[int]:
    """Drop the change point whose two segments one polynomial of one degree more fits as
    well (a staircase on a slope, chords on a curve), until none is left to drop."""
    n = len(y)
    cps = list(cps)
    smooth = max(degree + 1, 2)
    pen = max(_params(1, degree) - (smooth + 1), 0) * np.log(n)
    while cps:
        bounds = [0, *cps, n]
        scores = []
        for j in range(1, len(bounds) - 1):
            a, c, b = bounds[j - 1], bounds[j], bounds[j + 1]
            two = _poly_rss(y[a:c], degree) + _poly_rss(y[c:b], degree)
            scores.append((_poly_rss(y[a:b], smooth) - two) / s2 - pen)
        worst = int(np.argmin(scores))
        if scores[worst] >= 0:
            break
        del cps[worst]
    return cps


def _segment_points(y: np.ndarray) -> tuple[list[int], int, float]:
    """Change points, segment degree and residual sd of a standardised series of at most
    ``MAX_POINTS`` values."""
    n = len(y)
    min_size = max(MIN_SEGMENT, n // SEGMENT_DIVISOR)
    kmax = min(MAX_CHANGES, n // min_size - 1)
    none = ([], 1, float(np.sqrt(_poly_rss(y, 1) / n)))
    if kmax < 1:
        return none
    fits = [
        _Fit(degree, cps, rss)
        for degree in (0, 1)
        for rss, cps in _partitions(y, min_size, kmax, degree)
    ]
    fit, lam = _choose(y, fits)
    if not fit.cps:
        return ([], fit.degree, float(np.sqrt(fit.rss / n)))
    cps = _prune(y, fit.cps, fit.degree, max(fit.rss, 1e-12 * n) / n * lam)
    if not cps:
        return none
    r = _residuals(y, cps, fit.degree)
    rss = max(float(r @ r), 1e-12 * n)
    smooth = max(_poly_rss(y, SMOOTH_DEGREE), 1e-12 * n)
    if n * np.log(rss / n) + lam * _params(len(cps), fit.degree) * np.log(n) >= n * np.log(
        smooth / n
    ) + lam * (SMOOTH_DEGREE + 1) * np.log(n):
        return none
    return cps, fit.degree, float(np.sqrt(rss / n))


def _refine(x: np.ndarray, cps: list[int], width: int, degree: int) -> list[int]:
    """Place each change point of a binned search exactly within ``±width`` points."""
    sums = _cumsums((x - x.mean()) / (x.std() or 1.0))
    n = len(x)
    out = []
    bounds = [0, *cps, n]
    for j in range(1, len(bounds) - 1):
        left, right = bounds[j - 1], bounds[j + 1]
        lo = max(bounds[j] - width, left + MIN_SEGMENT, (out[-1] if out else 0) + MIN_SEGMENT)
        hi = min(bounds[j] + width, right - MIN_SEGMENT)
        if hi <= lo:
            out.append(bounds[j])
            continue
        c = np.arange(lo, hi + 1)
        rss = _segment_rss(sums, np.full_like(c, left), c, degree)
        rss += _segment_rss(sums, c, np.full_like(c, right), degree)
        out.append(int(c[np.argmin(rss)]))
    return out


def segment(
    values: np.ndarray | Sequence[float], periods: Sequence[date] | None = None
) -> Segmentation:
    """Segment ``values``; ``periods`` (dates of the values) let a season be removed."""
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
    season = 0
    if periods is not None and len(periods) == len(y):
        m = _season_period([periods[i] for i in idx], n)
        if m:
            days = np.array([periods[i].toordinal() for i in idx], dtype=float)
            x, removed = _deseasonalise(x, m, days)
            season = m if removed else 0
    cps: list[int] = []
    sd = float(x.std())
    sigma = 0.0
    if n >= 2 * MIN_SEGMENT and sd > 0:
        z = (x - x.mean()) / sd
        if n <= MAX_POINTS:
            cps, _, s = _segment_points(z)
        else:
            width = -(-n // MAX_POINTS)
            nb = n // width
            binned = z[: nb * width].reshape(nb, width).mean(axis=1)
            coarse, degree, _ = _segment_points(binned)
            cps = _refine(x, [c * width for c in coarse], width, degree)
            r = _residuals(z, cps, degree)
            s = float(np.sqrt(r @ r / n))
        sigma = s * sd
    starts = [0, *cps]
    ends = [*cps, n]
    segs = [
        (int(idx[a]), int(idx[b - 1]), float(np.mean(y[idx[a:b]])))
        for a, b in zip(starts, ends, strict=True)
    ]
    return Segmentation(
        change_points=[int(idx[c]) for c in cps],
        segments=segs,
        scale=scale,
        sigma=sigma,
        season_period=season,
    )
