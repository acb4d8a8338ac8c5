"""The detection engine: trends and spikes current at the last period of a series.

Method (assumptions in :mod:`detectors.baseline`):

1. **Baseline.** Each period's expected value and predictive variance come from a
   log-linear regression on the data before it (quasi-Poisson GLM for counts and for
   positives with a denominator, least squares on ``log(y + c)`` for other values), with
   a guard gap, trend and yearly seasonality, and down-weighting of past outbreaks
   (Farrington et al. 1996; Noufaily et al. 2013, Stat Med 32:1206).
2. **Standardised residuals.** Counts: the mid-p quantile residual
   ``z = Φ⁻¹(F(y-1) + f(y)/2)`` under a negative binomial with the predictive mean and
   variance (Dunn & Smyth 1996, J Comput Graph Stat 5:236), which stays well behaved at
   2-10 counts per week. Other values: ``(g(y) - ĝ) / sd``.
3. **Trend**: two one-sided CUSUMs (Page 1954, Biometrika 41:100; for surveillance
   counts Höhle & Paul 2008, CSDA 52:4357) on the residuals capped at
   ``±residual_cap``, ``S_t = max(0, S_{t-1} + min(z_t, cap) - k)``. A trend is current
   while ``S_t > h`` and at least ``min_trend_periods`` periods have passed since the
   sum left zero. Because each residual is capped, one outlier adds at most
   ``cap - k`` (1.5 by default, against ``h = 5.5``): a one-period excursion that returns
   to baseline is a spike, never a trend. The onset is then placed by an exact
   single change point (the least-squares cost of ruptures ``KernelCPD(kernel="linear")``,
   computed by :func:`detectors.split.best_split` from cumulative sums; Killick et al.
   2012 for the PELT family) in the log ratio observed/expected
   around the CUSUM start (once, at the run's first alarm, so the onset and
   ``Finding.key`` stay fixed); the levels before/after are the mean expected and the mean
   observed value from the onset on, and the p-value is the tail of the total count
   from the onset under the baseline (negative binomial with summed mean and variance;
   normal on the transformed scale for other values).
4. **Spike** (increase only): the newest value's upper tail probability under the
   baseline is below ``spike_alpha``, it is at least ``spike_min_ratio`` times the
   expectation and (counts) at least ``spike_min_excess`` above it, (other values)
   above every value of the baseline window, in the spirit of
   the EARS C-methods' one-period threshold (Hutwagner et al. 2003, J Urban Health
   80:i89). One-period drops are not reported: a lone low value is far more often a
   reporting gap than a change, and decreases never alert.

Missing periods (absent or NaN) leave the CUSUM unchanged. A series with fewer than
``min_points`` observed values, or without a baseline yet, has no findings. A series with
metric ``"score"`` or ``"score:<dimension>"`` (trend panel answers) is already on the five-step scale and has no
findings here; :mod:`detectors.synthesis` sums it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from detectors.base import Finding, Series, is_score
from detectors.baseline import Baseline, fit_baseline
from detectors.grid import PER_YEAR, grid_positions, infer_step, on_grid, prefix_steps
from detectors.params import DetectionParams
from detectors.scale import categorize
from detectors.split import best_split

COUNT_METHOD = "quasi-Poisson baseline + capped CUSUM"
CONT_METHOD = "log-linear baseline + capped CUSUM"


def nb_cdf(k, mean, var) -> np.ndarray:
    """``P(Y <= k)`` for a negative binomial with this mean and variance (Poisson when
    ``var <= mean``), via the regularised incomplete beta/gamma functions."""
    k, mean, var, over, size, prob = _nb_args(k, mean, var)
    kk = np.maximum(k, 0) + 1
    out = np.where(
        over,
        special.betainc(size, kk, prob),
        special.gammaincc(kk, np.maximum(mean, 1e-300)),
    )
    return np.where(k < 0, 0.0, out)


def nb_sf(k, mean, var) -> np.ndarray:
    """``P(Y >= k)`` for a negative binomial with this mean and variance."""
    k, mean, var, over, size, prob = _nb_args(np.asarray(k, float) - 1, mean, var)
    kk = np.maximum(k, 0) + 1
    out = np.where(
        over,
        special.betainc(kk, size, 1 - prob),
        special.gammainc(kk, np.maximum(mean, 1e-300)),
    )
    return np.where(k < 0, 1.0, out)


def nb_pmf(k, mean, var) -> np.ndarray:
    """``P(Y == k)`` for a negative binomial with this mean and variance."""
    k, mean, var, over, size, prob = _nb_args(k, mean, var)
    kk = np.maximum(k, 0)
    m = np.maximum(mean, 1e-300)
    lnb = (
        special.gammaln(kk + size)
        - special.gammaln(size)
        - special.gammaln(kk + 1)
        + size * np.log(prob)
        + kk * np.log1p(-prob)
    )
    lpo = kk * np.log(m) - m - special.gammaln(kk + 1)
    return np.where(k < 0, 0.0, np.exp(np.where(over, lnb, lpo)))


def _nb_args(k, mean, var):
    k, mean, var = np.broadcast_arrays(
        np.asarray(k, float), np.asarray(mean, float), np.asarray(var, float)
    )
    over = var > mean * (1 + 1e-9)
    size = np.where(over, mean**2 / np.where(over, var - mean, 1.0), 1.0)
    prob = np.where(over, size / (size + mean), 0.5)
    return k, mean, var, over, size, prob


@dataclass(frozen=True)
class _Track:
    """Everything the findings at any period need, computed once for the series."""

    pos: np.ndarray  # grid position of each series period
    y: np.ndarray  # values on the grid
    den: np.ndarray | None
    base: Baseline
    expected: np.ndarray  # expected value in the series' units (count, rate, value)
    z: np.ndarray  # standardised residual (NaN: not judged)
    s_up: np.ndarray
    s_dn: np.ndarray
    start_up: np.ndarray
    start_dn: np.ndarray
    spike_p: np.ndarray
    spike: np.ndarray
    n_seen: np.ndarray  # observed values up to each series period


def _residuals(y, base: Baseline) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(y) & np.isfinite(base.expected)
    z = np.full(len(y), np.nan)
    p_up = np.full(len(y), np.nan)
    if not ok.any():
        return z, p_up
    mu, var, yy = base.expected[ok], base.variance[ok], y[ok]
    if base.family == "counts":
        k = np.floor(np.maximum(yy, 0) + 0.5)
        u = nb_cdf(k - 1, mu, var) + 0.5 * nb_pmf(k, mu, var)
        z[ok] = special.ndtri(np.clip(u, 1e-12, 1 - 1e-12))
        p_up[ok] = nb_sf(k, mu, var)
    else:
        g = _transform(yy, base.shift[ok], base.uselog[ok])
        zz = (g - mu) / np.sqrt(var)
        z[ok] = zz
        p_up[ok] = special.ndtr(-zz)
    return z, p_up


def _transform(y, shift, uselog):
    return np.where(uselog, np.log(np.maximum(y, 0) + shift), y)


def _cusum(z: np.ndarray, params: DetectionParams):
    n = len(z)
    cap, k = params.residual_cap, params.cusum_k
    smax = 3.0 * params.cusum_h
    zc = np.clip(z, -cap, cap)
    s_up, s_dn = np.zeros(n), np.zeros(n)
    st_up, st_dn = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    su = sd = 0.0
    bu = bd = -1
    for t, v in enumerate(zc.tolist()):
        if v == v:  # not NaN
            nu = min(max(0.0, su + v - k), smax)
            nd = min(max(0.0, sd - v - k), smax)
            if nu > 0 and su == 0:
                bu = t
            if nd > 0 and sd == 0:
                bd = t
            su, sd = nu, nd
        s_up[t], s_dn[t], st_up[t], st_dn[t] = su, sd, bu, bd
    return s_up, s_dn, st_up, st_dn


def _track(series: Series, params: DetectionParams, step: str) -> _Track:
    pos = grid_positions(series.periods, step)
    y = on_grid(series.values, pos)
    den = None
    offset = None
    if series.denominators is not None:
        den = on_grid(series.denominators, pos)
        den = np.where(den > 0, den, np.nan)
        y = np.where(np.isfinite(den), y, np.nan)
        offset = np.log(den)
    family = "counts" if (den is not None or series.metric == "count") else "continuous"
    base = fit_baseline(y, PER_YEAR[step], params, family=family, offset=offset)
    if family == "counts":
        expected = base.expected if den is None else base.expected / den
    else:
        expected = np.where(base.uselog, np.exp(base.expected) - base.shift, base.expected)
    z, p_up = _residuals(y, base)
    s_up, s_dn, st_up, st_dn = _cusum(z, params)
    with np.errstate(invalid="ignore"):
        level = y if den is None else y / den
        spike = (
            (p_up < params.spike_alpha)
            & (level >= params.spike_min_ratio * expected)
            & (level > expected)
        )
        if family == "counts":
            spike &= y - base.expected >= params.spike_min_excess
        else:
            # indexes and concentrations are often sparse or quantised: a value the
            # baseline window has already seen is not exceptional
            spike &= y > base.window_max
    n_seen = np.cumsum(np.isfinite(np.asarray(series.values, float)))
    return _Track(pos, y, den, base, expected, z, s_up, s_dn, st_up, st_dn, p_up, spike, n_seen)


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else float("inf")


def _onset(tr: _Track, start: int, t: int, up: bool) -> int:
    """Refine the CUSUM start with one exact change point (KernelCPD, linear kernel)."""
    lo = max(0, start - 12)
    seg = np.arange(lo, t + 1)
    y = tr.y[seg]
    e = tr.expected[seg] if tr.den is None else tr.expected[seg] * tr.den[seg]
    ok = np.isfinite(y) & np.isfinite(e)
    if ok.sum() < 6:
        return start
    idx = seg[ok]
    r = np.log((np.maximum(y[ok], 0) + 0.5) / (np.maximum(e[ok], 0) + 0.5))
    b = best_split(r, min_size=2)  # = ruptures KernelCPD(linear).predict(n_bkps=1)
    if b <= 0 or b >= len(r):
        return start
    before, after = r[:b].mean(), r[b:].mean()
    if (after > before) != up:
        return start
    return int(idx[b])


def _trend(series: Series, tr: _Track, t: int, up: bool, params: DetectionParams):
    s = tr.s_up if up else tr.s_dn
    start = int((tr.start_up if up else tr.start_dn)[t])
    if not (s[t] > params.cusum_h) or start < 0 or t - start + 1 < params.min_trend_periods:
        return None
    # The onset is placed once, at the first period of this CUSUM run that alarmed, so it
    # (and Finding.key) stays the same while the run lasts.
    run = np.arange(start, t + 1)
    alarmed = run[(s[run] > params.cusum_h) & (run - start + 1 >= params.min_trend_periods)]
    onset = _onset(tr, start, int(alarmed[0]), up)
    seg = np.arange(onset, t + 1)
    ok = np.isfinite(tr.y[seg]) & np.isfinite(tr.base.expected[seg])
    seg = seg[ok]
    if len(seg) == 0:
        return None
    base = tr.base
    if base.family == "counts":
        obs, exp_ = tr.y[seg].sum(), base.expected[seg].sum()
        var = base.variance[seg].sum()
        if tr.den is None:
            before, after = exp_ / len(seg), obs / len(seg)
        else:
            d = tr.den[seg].sum()
            before, after = exp_ / d, obs / d
        k = np.floor(obs + 0.5)
        p = nb_sf(k, exp_, var) if up else nb_cdf(k, exp_, var)
    else:
        g = _transform(tr.y[seg], base.shift[seg], base.uselog[seg])
        zsum = (g - base.expected[seg]).sum() / np.sqrt(base.variance[seg].sum())
        p = special.ndtr(-zsum) if up else special.ndtr(zsum)
        before, after = float(np.mean(tr.expected[seg])), float(np.nanmean(tr.y[seg]))
    rel = after / before - 1.0 if before > 0 else float("inf")
    if (up and rel < params.trend_min_relative_change) or (
        not up and rel > -params.trend_min_relative_change
    ):
        return None
    p = float(p)
    recent = np.arange(max(0, t - 7), t + 1)
    return Finding(
        source=series.source,
        substance=series.substance,
        kind="trend",
        direction="increase" if up else "decrease",
        onset=_period_at(series, tr, onset),
        detected_at=series.periods[_series_index(tr, t)],
        level_before=float(before),
        level_after=float(after),
        relative_change=_finite(rel),
        strength=float(s[t] / params.cusum_h),
        p_value=p,
        category=categorize(rel, p, params),
        region=series.region,
        metric=series.metric,
        dimension=series.dimension,
        method=COUNT_METHOD if base.family == "counts" else CONT_METHOD,
        evidence={
            "cusum": round(float(s[t]), 4),
            "threshold": params.cusum_h,
            "k": params.cusum_k,
            "cusum_start": _period_at(series, tr, start).isoformat(),
            "periods_since_onset": int(t - onset + 1),
            "baseline_points": int(base.n_obs[t]),
            "seasonal": bool(base.seasonal[t]),
            "trend_in_baseline": bool(base.trend[t]),
            "dispersion": _round(base.dispersion[t]),
            "recent_expected": [_round(v) for v in tr.expected[recent]],
            "recent_values": [_round(v) for v in tr.y[recent]],
        },
    )


def _round(v: float) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _spike(series: Series, tr: _Track, t: int, params: DetectionParams):
    if not tr.spike[t]:
        return None
    before = float(tr.expected[t])
    after = float(tr.y[t] if tr.den is None else tr.y[t] / tr.den[t])
    rel = after / before - 1.0 if before > 0 else float("inf")
    p = float(tr.spike_p[t])
    when = series.periods[_series_index(tr, t)]
    return Finding(
        source=series.source,
        substance=series.substance,
        kind="spike",
        direction="increase",
        onset=when,
        detected_at=when,
        level_before=before,
        level_after=after,
        relative_change=_finite(rel),
        strength=float(tr.z[t]),
        p_value=p,
        category=categorize(rel, p, params),
        region=series.region,
        metric=series.metric,
        dimension=series.dimension,
        method=(
            "quasi-Poisson baseline, upper tail"
            if tr.base.family == "counts"
            else "log-linear baseline, upper tail"
        ),
        evidence={
            "expected": _round(before),
            "value": _round(after),
            "threshold_p": params.spike_alpha,
            "residual": _round(tr.z[t]),
            "baseline_points": int(tr.base.n_obs[t]),
            "dispersion": _round(tr.base.dispersion[t]),
        },
    )


def _series_index(tr: _Track, t: int) -> int:
    return int(np.searchsorted(tr.pos, t))


def _period_at(series: Series, tr: _Track, t: int):
    i = min(int(np.searchsorted(tr.pos, t)), len(series.periods) - 1)
    return series.periods[i]


def _findings_at(series: Series, tr: _Track, i: int, params: DetectionParams) -> list[Finding]:
    if tr.n_seen[i] < params.min_points:
        return []
    t = int(tr.pos[i])
    out = []
    for f in (
        _trend(series, tr, t, True, params),
        _trend(series, tr, t, False, params),
        _spike(series, tr, t, params),
    ):
        if f is not None:
            out.append(f)
    return out


def _step(series: Series, params: DetectionParams) -> str:
    return infer_step(series.periods) if params.period == "auto" else params.period


def _usable(series: Series, params: DetectionParams) -> bool:
    return not is_score(series.metric) and len(series.periods) >= params.min_points


def detect(series: Series, params: DetectionParams) -> list[Finding]:
    """The findings current at the last period of ``series`` (never raises on short,
    constant, all-zero or gappy input)."""
    if not _usable(series, params):
        return []
    tr = _track(series, params, _step(series, params))
    return _findings_at(series, tr, len(series.periods) - 1, params)


def replay(series: Series, params: DetectionParams) -> list[list[Finding]]:
    """``[detect(series.upto(i + 1), params) for i in range(len(series.periods))]``,
    computed in one pass: every quantity at period i uses data up to i only."""
    n = len(series.periods)
    if not _usable(series, params):
        return [[] for _ in range(n)]
    step = _step(series, params)
    tr = _track(series, params, step)
    steps = prefix_steps(series.periods) if params.period == "auto" else [step] * n
    out: list[list[Finding]] = []
    for i in range(n):
        if i + 1 < params.min_points:
            out.append([])
        elif steps[i] != step:  # the prefix looks like another period length
            out.append(detect(series.upto(i + 1), params))
        else:
            out.append(_findings_at(series, tr, i, params))
    return out
