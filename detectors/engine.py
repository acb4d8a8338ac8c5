"""The detection engine: trends and spikes current at the last period of a series.

Method (baseline assumptions in :mod:`detectors.baseline`):

1. **Baseline.** Log-linear fits at refit points (every ``refit_weeks``) on the data
   before a guard gap: quasi-Poisson for counts and for positives with a denominator
   (log offset), least squares on ``log(y + c)`` for other values; shrunken trend,
   harmonics, leverage-aware down-weighting of past outbreaks (Farrington et al. 1996;
   Noufaily et al. 2013).
2. **Trend: generalised likelihood ratio** (Höhle & Paul 2008, CSDA 52:4357, the
   ``glrnb`` detector of the R package ``surveillance``). For every candidate change
   start ``k`` in the last ``glr_window_weeks`` the in-control means ``mu_s`` of
   ``s = k..t`` are those of the baseline fitted *before* ``k`` (frozen at the candidate
   start, so the change never leaks into its own reference), and the mean is allowed to
   change by a factor ``exp(kappa)`` from ``k`` on. Counts: with ``Y`` the observed and
   ``E`` the expected total the maximised log likelihood ratio is
   ``(Y log(Y/E) - (Y - E)) / phi_eff``, the negative-binomial (NB1, variance
   ``phi * mu``) quasi-likelihood, with ``phi_eff = phi + E * var(log E)`` adding the
   uncertainty of the fitted baseline for the window's total (delta method,
   :func:`detectors.baseline.window_var`). Other values: ``S^2 / (2 Var S)`` for the sum
   ``S`` of residuals on the transformed scale. The statistic is the maximum over ``k``.
   **Spikes are kept out by needing evidence from more than one period**: the same ratio
   with the window's most extreme period left out must reach ``glr_loo_h``, and the
   window must span two periods and ``min_trend_days``. A trend is current while
   ``max_k min(LR/glr_h, LR_loo/glr_loo_h) >= 1``; its onset is the maximising ``k`` at
   the run's first alarm (kept while the run lasts, so ``Finding.key`` stays fixed).
   ``level_before``/``level_after`` are the mean expected and observed values from the
   onset (over the last ``glr_window_weeks`` once the run is longer); the p-value is the
   signed-root normal tail ``Φ(-√(2 LR))`` at that change time (nominal: it does not
   count the search over ``k``).
3. **Spike** (increase only): the newest value's upper tail probability under the
   baseline (negative binomial with the predictive mean and variance ``phi mu + mu^2
   var(log mu)``; normal on the transformed scale for other values) is below
   ``spike_alpha``, it is at least ``spike_min_ratio`` times the expectation and (counts)
   at least ``spike_min_excess`` above it, (other values) above every value of the
   baseline window (EARS-like one-period threshold; Hutwagner et al. 2003). One-period
   drops are not reported.

Every quantity at grid position ``t`` reads data up to ``t`` only and at most about
``baseline_years + guard_weeks + glr_window_weeks`` back (plus the run's onset), which is
what makes :func:`replay`, :func:`detect` and the incremental :class:`SeriesState` give
the same findings. A series with fewer than ``min_points`` observed values, or without a
baseline yet, has no findings. A series with metric ``"score"`` or
``"score:<dimension>"`` (trend panel answers) has no findings here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
from scipy import special

from detectors.base import Finding, Series, is_score
from detectors.baseline import (
    CHUNK,
    MIN_EXPECTED,
    Fits,
    Layout,
    design,
    design_columns,
    empty_fits,
    fit_points,
    fit_windows,
    gathered_windows,
    predict,
    predictor_variance,
    window_positions,
    window_var,
)
from detectors.grid import PER_YEAR, grid_positions, infer_step, on_grid, prefix_steps
from detectors.params import DetectionParams
from detectors.scale import categorize

COUNT_METHOD = "quasi-Poisson baseline + negative-binomial GLR"
CONT_METHOD = "log-linear baseline + Gaussian GLR"
STEP_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}
#: The engine's version in a state; a state of another version is replayed, except
#: a counts state of a version in :data:`COUNTS_SAME_SINCE` or later (counts baselines
#: have not changed since: version 2 changed only the residual scale of other values).
STATE_VERSION = 2
COUNTS_SAME_SINCE = 1
#: Why a stored state cannot continue, for the two reasons that come for many series
#: at once (an upgrade, a config change): the daemon counts these and says so once.
OTHER_VERSION = "state from another engine version"
OTHER_PARAMS = "detection params changed"


def nb_sf(k, mean, var) -> np.ndarray:
    """``P(Y >= k)`` for a negative binomial with this mean and variance (Poisson when
    ``var <= mean``): the regularised incomplete beta ``I_{1-p}(k, size)`` and gamma
    ``P(k, mean)`` of ``scipy.special``, the functions behind ``scipy.stats.nbinom.sf``
    and ``poisson.sf``, without their per-call overhead (this runs for every period)."""
    k, mean, var = np.broadcast_arrays(
        np.asarray(k, float), np.asarray(mean, float), np.asarray(var, float)
    )
    over = var > mean * (1 + 1e-9)
    size = np.where(over, mean**2 / np.where(over, var - mean, 1.0), 1.0)
    prob = np.where(over, size / (size + mean), 0.5)
    kk = np.maximum(np.floor(k), 1.0)
    out = np.where(
        over,
        special.betainc(kk, size, 1 - prob),
        special.gammainc(kk, np.maximum(mean, 1e-300)),
    )
    return np.where(np.floor(k) <= 0, 1.0, out)


# -- the series on its grid ---------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    y: np.ndarray  # values on the grid (NaN: missing)
    den: np.ndarray | None
    off: np.ndarray  # log denominator (0 without)
    family: str
    base: int = 0  # grid position of y[0]


#: Metrics whose values are counts of events (judged with the count model).
COUNT_METRICS = frozenset({"count", "visits"})


def _family(series_metric: str, has_den: bool) -> str:
    return "counts" if (has_den or series_metric in COUNT_METRICS) else "continuous"


def _grid_of(series: Series, step: str) -> tuple[np.ndarray, _Grid]:
    pos = grid_positions(series.periods, step)
    y = on_grid(series.values, pos)
    den = None
    off = np.zeros(len(y))
    if series.denominators is not None:
        den = on_grid(series.denominators, pos)
        den = np.where(den > 0, den, np.nan)
        y = np.where(np.isfinite(den), y, np.nan)
        off = np.where(np.isfinite(den), np.log(np.where(np.isfinite(den), den, 1.0)), np.nan)
    return pos, _Grid(y, den, off, _family(series.metric, series.denominators is not None))


@dataclass(frozen=True)
class _Geometry:
    lay: Layout
    M: int  # change times searched
    span: int  # periods a trend's evidence must span

    @classmethod
    def of(cls, step: str, params: DetectionParams) -> _Geometry:
        py = PER_YEAR[step]
        lay = Layout.of(py, params)
        days = STEP_DAYS[step]
        M = max(2, round(params.glr_window_weeks * 7 / days))
        span = max(2, math.ceil(params.min_trend_days / days - 1e-9))
        return cls(lay, M, span)


# -- the GLR table: rows = candidate change start k, columns = d (t = k + d) ---------


@dataclass
class _Table:
    k0: int  # grid position of row 0
    valid: np.ndarray  # (K,) a baseline exists at k and y_k observed
    mu: np.ndarray  # (K, M) in-control mean (counts: expected count; else transformed)
    var_eta: np.ndarray
    scale: np.ndarray  # (K,) phi or sd
    Y: np.ndarray  # cumulative observed (counts: count; else residual sum)
    E: np.ndarray  # cumulative expected (counts) / unused
    N: np.ndarray  # cumulative observed periods
    D: np.ndarray | None  # cumulative denominators
    Yraw: np.ndarray  # cumulative observed value (units)
    Eraw: np.ndarray  # cumulative expected value (units)
    lr_up: np.ndarray
    lr_dn: np.ndarray
    st_up: np.ndarray
    st_dn: np.ndarray
    # spike inputs at d = 0
    y0: np.ndarray
    window_max: np.ndarray
    shift: np.ndarray  # (K,) continuous transform of each row's fit
    uselog: np.ndarray
    spike_p: np.ndarray  # (K,) upper tail of y_k under its baseline
    spike: np.ndarray  # (K,) the spike rule holds at k
    before: np.ndarray  # (K,) expected value at k in the series' units
    after: np.ndarray  # (K,) observed value at k in the series' units
    z: np.ndarray  # (K,) residual z at k
    recurring: np.ndarray  # (K,) the factor a recurring peak raised k's expected value by


def rate_dispersion(sc, mean_mu, kappa):
    """The dispersion that judges positives with a denominator: the fitted ``phi``, but
    at least ``1 + kappa * mean_mu``, the variance-to-mean ratio of binomial positives
    whose positivity itself varies with relative variance ``kappa`` (negative binomial
    with variance ``mu + kappa mu^2``, as the beta-binomial for small positivities).
    ``kappa`` 0 (no denominator) leaves ``phi`` as it is."""
    if not np.any(kappa):
        return sc
    return np.maximum(sc, 1.0 + kappa * mean_mu)


def _rate_kappa(params: DetectionParams, has_den: bool) -> float:
    return params.rate_min_variation**2 if has_den else 0.0


def _lr_counts(Y, E, phi_eff):
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = (special.xlogy(Y, Y / E) - (Y - E)) / phi_eff
    return np.where(np.isfinite(lr), np.maximum(lr, 0.0), 0.0)


def _lr(family, Y, E, N, sc, var_tot, kappa=0.0):
    """:func:`_glr`'s likelihood ratio of a change against none from window sums, with
    whether the change is an increase, and the dispersion it used (counts: ``phi``
    floored by :func:`rate_dispersion`; otherwise the residual sd)."""
    if family == "counts":
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = rate_dispersion(sc, np.where(N > 0, E / np.maximum(N, 1), 0.0), kappa)
        return _lr_counts(Y, E, sc + E * var_tot), Y > E, sc
    var = N * sc**2 + N**2 * var_tot
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(var > 0, Y**2 / (2 * var), 0.0)
    return lr, Y > 0, sc


def _glr(family, Y, E, N, sc, var_tot, hi, lo, elig, params: DetectionParams, kappa=0.0):
    """The likelihood ratios of increase and decrease from window sums (``Y`` observed,
    ``E`` expected for counts; ``Y`` the residual sum otherwise; ``N`` observed
    periods; ``sc`` phi or the residual sd; ``var_tot`` the baseline's variance for the
    window's total), the same without the window's most extreme period (``hi``/``lo``:
    its observed and expected value or residual), and the statistics
    ``min(LR / glr_h, LR_loo / glr_loo_h)`` where ``elig``. ``kappa`` > 0 (positives with
    a denominator) floors ``phi`` at the window's mean expected count
    (:func:`rate_dispersion`). Elementwise, so the table and the screen share it:
    ``(lr_up, lr_dn, st_up, st_dn)``."""
    (hi_y, hi_m), (lo_y, lo_m) = hi, lo
    lr, up, sc = _lr(family, Y, E, N, sc, var_tot, kappa)
    if family == "counts":
        Yu, Eu = Y - hi_y, E - hi_m
        loo_up = np.where(Yu > Eu, _lr_counts(Yu, Eu, sc + Eu * var_tot), 0.0)
        Yd, Ed = Y - lo_y, E - lo_m
        loo_dn = np.where(Yd < Ed, _lr_counts(Yd, Ed, sc + Ed * var_tot), 0.0)
    else:
        N1 = N - 1
        var1 = N1 * sc**2 + N1**2 * var_tot
        with np.errstate(divide="ignore", invalid="ignore"):
            Su, Sd = Y - hi_y, Y - lo_y
            loo_up = np.where((var1 > 0) & (Su > 0), Su**2 / (2 * var1), 0.0)
            loo_dn = np.where((var1 > 0) & (Sd < 0), Sd**2 / (2 * var1), 0.0)
    lr_up = np.where(up, lr, 0.0)
    lr_dn = np.where(up, 0.0, lr)
    st_up = np.where(elig, np.minimum(lr_up / params.glr_h, loo_up / params.glr_loo_h), 0.0)
    st_dn = np.where(elig, np.minimum(lr_dn / params.glr_h, loo_dn / params.glr_loo_h), 0.0)
    return lr_up, lr_dn, st_up, st_dn


def _table(g: _Grid, fits: Fits, geo: _Geometry, params: DetectionParams, k0: int, k1: int):
    """Rows ``k0 .. k1 - 1`` (grid positions, relative to ``g.base``-shifted arrays)."""
    tab = _table_core(g.family, *_gathered(g, fits, geo, k0, k1), geo, params,
                      past=_past_of(g), series_of=np.zeros(max(k1 - k0, 0), dtype=np.int64))
    tab.k0 = k0
    return tab


def _past_of(g: _Grid):
    """What :func:`_table_core` reads of earlier years for one series: ``past(rows,
    pos)`` gives the values and log denominators at grid positions ``pos`` (NaN / 0
    outside the series; ``rows``, the table rows asking, are all this series')."""

    def past(rows: np.ndarray, pos: np.ndarray):
        local = pos - g.base
        inside = (local >= 0) & (local < len(g.y))
        at = np.clip(local, 0, max(len(g.y) - 1, 0))
        return np.where(inside, g.y[at], np.nan), np.where(inside, g.off[at], 0.0)

    return past


def _gathered(g: _Grid, fits: Fits, geo: _Geometry, k0: int, k1: int):
    """What :func:`_table_core` reads for change starts ``k0 .. k1 - 1``: positions,
    values, log denominators, denominators, and the fits' rows (``fits`` passed on)."""
    n = g.base + len(g.y)  # grid positions known: < n
    ks = np.arange(k0, k1)
    s = ks[:, None] + np.arange(geo.M)[None, :]
    inside = s < n
    si = np.where(inside, s - g.base, 0)
    y = np.where(inside, g.y[si], np.nan)
    off = np.where(inside, g.off[si], 0.0)
    den = None if g.den is None else np.where(inside, g.den[si], np.nan)
    frow, have = _fit_rows_of(fits, geo.lay.refit_point(ks))
    return s, y, off, den, fits, frow, have


def _find(keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``q`` in the sorted ``keys``: its index (0 where absent) and whether
    it is there."""
    if not len(keys):
        return np.zeros(np.shape(q), dtype=np.int64), np.zeros(np.shape(q), bool)
    at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return at, keys[at] == q


def _fit_rows_of(fits: Fits, rp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row of ``fits`` for each refit point in ``rp`` (0 where none) and whether
    there is a usable fit there."""
    frow, found = _find(fits.pos, rp)
    return frow, found & fits.ok[frow] if len(fits.pos) else found


def _table_core(family, s, y, off, den, fits: Fits, frow_c, have, geo: _Geometry,
                params: DetectionParams, past, series_of: np.ndarray | None = None) -> _Table:
    """The GLR table from gathered windows: row ``i`` is a change start at position
    ``s[i, 0]``, column ``d`` the period ``s[i, d]``; ``y``/``off``/``den`` the values,
    log denominators and denominators there (NaN / 0 / NaN outside the series), and
    ``fits`` row ``frow_c[i]`` the baseline judging the row (``have``: one exists).
    Rows are independent, so they may come from different series (one family).
    ``past(rows, pos)``: the values and log denominators of those rows' series at
    earlier grid positions ``pos`` (for recurring peaks, :func:`_recurring_rows`).

    ``series_of`` (each row's series) says the rows are consecutive positions of their
    series, so position ``t`` is judged on the anti-diagonal of cells ``(k, t - k)``.
    Then the likelihood ratios and statistics are computed only for the rows whose
    cells lie on the anti-diagonal of a position that may alarm: one with a cell whose
    bound (:func:`_screen_bound`) reaches the screen's margin. The other rows get 0:
    every cell of a position that cannot alarm is under 1 whatever it holds, and the
    findings read cells of alarming positions only."""
    lay, M = geo.lay, geo.M
    K = len(s)
    obs = np.isfinite(y)
    valid = have & obs[:, 0]
    fr = frow_c  # one fit judges each row's whole window
    if len(fits.pos):
        eta, var_eta, sc, X = predict(fits, fr, s, lay.per_year)
        scale = fits.scale[frow_c]
    else:
        eta = np.zeros(s.shape)
        var_eta = np.zeros(s.shape)
        scale = np.ones(K)
        X = None
    obsf = obs & valid[:, None]
    N = np.cumsum(obsf, axis=1)
    yv = np.where(obsf, y, 0.0)
    Yraw = np.cumsum(yv, axis=1)
    D = None
    wm = fits.window_max[frow_c] if len(fits.pos) else np.zeros(K)
    shift_k = fits.shift[frow_c] if len(fits.pos) else np.zeros(K)
    uselog_k = fits.uselog[frow_c] if len(fits.pos) else np.zeros(K, bool)
    recurring = np.ones(K)
    if family == "counts":
        mu = np.maximum(np.exp(np.clip(eta + np.where(obsf, off, 0.0), -30, 30)), MIN_EXPECTED)
        mu = np.where(obsf, mu, 0.0)
        # a period that stood out in earlier years too: its expectation raised (rows are
        # consecutive positions of a series, so cell (i, d) is the position of row i + d;
        # past a series' last row the cells are not observed)
        recurring = _recurring_rows(past, s[:, 0], valid, y[:, 0], mu[:, 0], scale, fits,
                                    frow_c, geo, params, den is not None)
        if (recurring > 1.0).any():
            mu = mu * _by_cell(recurring, M, 1.0)
        Y = Yraw
        E = np.cumsum(mu, axis=1)
        weight = mu
        ex = np.where(obsf, yv - mu, np.nan)
        if den is not None:
            dv = np.where(obsf, den, 0.0)
            D = np.cumsum(dv, axis=1)
            Eraw = E
        else:
            Eraw = E
    else:
        shift = shift_k[:, None]
        uselog = uselog_k[:, None]
        gy = np.where(uselog, np.log(np.maximum(yv, 0.0) + shift), yv)
        # a recurring peak raises the position's linear predictor (see the counts)
        lift = _recurring_shift(past, s[:, 0], valid, y[:, 0], eta[:, 0], scale, fits,
                                frow_c, geo, params)
        if (lift > 0.0).any():
            before0 = np.where(uselog_k, np.exp(eta[:, 0]) - shift_k, eta[:, 0])
            eta = eta + _by_cell(lift, M, 0.0)
            after0 = np.where(uselog_k, np.exp(eta[:, 0]) - shift_k, eta[:, 0])
            with np.errstate(divide="ignore", invalid="ignore"):
                recurring = np.where((lift > 0.0) & (before0 > 0), after0 / before0, 1.0)
        r = np.where(obsf, gy - eta, 0.0)
        mu = eta
        Y = np.cumsum(r, axis=1)
        E = np.zeros_like(Y)
        weight = obsf
        ex = np.where(obsf, r, np.nan)
        back = np.where(uselog, np.exp(eta) - shift, eta)
        Eraw = np.cumsum(np.where(obsf, back, 0.0), axis=1)
    yc = yv if family == "counts" else r
    mc = mu if family == "counts" else np.zeros_like(r)
    kappa = _rate_kappa(params, den is not None)
    den0 = None if den is None else den[:, 0]
    sp = _spike_rule(family, den0, valid, y[:, 0], mu[:, 0], var_eta[:, 0], scale, wm,
                     shift_k, uselog_k, params)
    elig = valid[:, None] & (N >= 2) & (np.arange(M)[None, :] + 1 >= geo.span) & obs
    rows: Any = slice(None)  # every row, as views (no copies), unless only some may alarm
    if series_of is not None and K:
        some = _rows_that_may_alarm(family, Y, E, N, scale, elig, params, kappa, series_of)
        if len(some) < K:
            rows = some
    X_r = None if X is None else X[rows]
    fits_rows = fr[rows]
    var_tot = (window_var(fits, fits_rows, X_r, weight[rows]) if X_r is not None
               else np.zeros(Y[rows].shape))
    # leave the most extreme period out (running arg-extreme along d)
    at_hi, at_lo = _running_extreme(ex[rows], True), _running_extreme(ex[rows], False)
    yr, mr = yc[rows], mc[rows]
    got = _glr(family, Y[rows], E[rows], N[rows], scale[rows, None], var_tot,
               (_taken(yr, at_hi), _taken(mr, at_hi)), (_taken(yr, at_lo), _taken(mr, at_lo)),
               elig[rows], params, kappa)
    if isinstance(rows, slice):
        lr_up, lr_dn, st_up, st_dn = got
    else:
        lr_up, lr_dn, st_up, st_dn = (np.zeros((K, M)) for _ in range(4))
        for whole, part in zip((lr_up, lr_dn, st_up, st_dn), got, strict=True):
            whole[rows] = part
    return _Table(
        0, valid, mu, var_eta, scale, Y, E, N, D, Yraw, Eraw, lr_up, lr_dn, st_up, st_dn,
        y[:, 0], wm, shift_k, uselog_k, *sp, recurring,
    )


def _rows_that_may_alarm(family, Y, E, N, scale, elig, params: DetectionParams, kappa,
                         series_of: np.ndarray) -> np.ndarray:
    """For a table whose rows are consecutive positions of their series (``series_of``),
    the rows whose cells lie on the anti-diagonal of a position that may alarm: a
    position ``t`` with a cell ``(k, t - k)`` whose :func:`_screen_bound` reaches
    ``1 - SCREEN_MARGIN``; every row ``t - M + 1 .. t`` of its series then."""
    K, M = Y.shape
    hot = _screen_bound(family, Y, E, N, scale[:, None], elig, params, kappa) >= 1.0 - SCREEN_MARGIN
    i, d = np.nonzero(hot)
    t = i + d
    same = t < K
    same[same] = series_of[t[same]] == series_of[i[same]]
    loud = np.zeros(K + 1, dtype=np.int64)
    loud[t[same] + 1] = 1  # a cell past its series is not observed, so never hot
    # row r is needed when a loud position lies in r .. r + M - 1 (the same series)
    c = np.cumsum(loud)  # c[j]: loud positions among rows < j
    last = np.minimum(np.arange(K) + M, K)
    ends = np.searchsorted(series_of, series_of, side="right")  # series_of is sorted
    return np.flatnonzero(c[np.minimum(last, ends)] - c[np.arange(K)] > 0)


def _by_cell(per_row: np.ndarray, M: int, beyond: float) -> np.ndarray:
    """A value per table row spread to the cells ``(i, d)`` of the position of row
    ``i + d``: the rows are consecutive positions of a series, and a cell past the last
    row (``beyond``) is past the series' end, not observed."""
    K = len(per_row)
    cell = np.arange(K)[:, None] + np.arange(M)[None, :]
    return np.where(cell < K, per_row[np.minimum(cell, K - 1)], beyond)


def _running_extreme(ex: np.ndarray, high: bool, last_on_tie: bool = False) -> np.ndarray:
    """For each row of ``ex`` (NaN: not observed) and each column ``d``: the column of
    the largest (``high``) or smallest value among columns ``0 .. d``, the first one on
    a tie (the last with ``last_on_tie``); -1 before the first observed."""
    ok = np.isfinite(ex)
    none = -np.inf if high else np.inf
    e = np.where(ok, ex, none)
    run = (np.maximum if high else np.minimum).accumulate(e, axis=1)
    prev = np.concatenate([np.full((len(e), 1), none), run[:, :-1]], axis=1)
    if last_on_tie:
        record = ok & ((e >= prev) if high else (e <= prev))
    else:
        record = ok & ((e > prev) if high else (e < prev))
    cols = np.where(record, np.arange(e.shape[1])[None, :], -1)
    return np.maximum.accumulate(cols, axis=1)


def _taken(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``a[row, at]`` per row and column, 0 where ``at`` is -1."""
    return np.where(at >= 0, np.take_along_axis(a, np.maximum(at, 0), axis=1), 0.0)


@functools.lru_cache(maxsize=64)
def _recurring_back(per_year: float, window: int, years: int) -> np.ndarray | None:
    """How far back the same period of each earlier year lies, ``(J, D)``: ``J`` the
    whole years the baseline window spans (so every position is within what a state
    keeps), ``D`` the period itself and, for weeks and days, one on either side (a
    holiday on a fixed date moves between neighbouring weeks from year to year). None
    when fewer than ``years`` earlier years are within reach."""
    J = int(window // per_year)
    if years <= 0 or J < years:
        return None
    near = (0,) if per_year == 12 else (-1, 0, 1)
    return np.array([[round(j * per_year) - d for d in near] for j in range(1, J + 1)],
                    dtype=np.int64)


def _recurring_factor(fits: Fits, fr, pos, py, poff, per_year: float,
                      params: DetectionParams, has_den: bool) -> np.ndarray:
    """For change starts ``k`` judged by fits ``fr``, with ``pos`` ``(C, J, D)`` the same
    period in earlier years and ``py``/``poff`` the values and log denominators there:
    the median of the years in which that period stood out above the baseline
    (upper tail below ``recurring_alpha`` under the fit judging ``k``, taken back
    to those positions) of their largest observed / expected ratio, at least 1; 1 when
    fewer than ``recurring_years`` years stood out."""
    obs = np.isfinite(py) & (pos >= 0)
    eta = _eta_back(fits, fr, pos, per_year)
    mu = np.maximum(np.exp(np.clip(eta + np.where(obs, poff, 0.0), -30, 30)), MIN_EXPECTED)
    sc = rate_dispersion(fits.scale[fr][:, None, None], mu, _rate_kappa(params, has_den))
    yv = np.where(obs, py, 0.0)
    tail = nb_sf(np.floor(np.maximum(yv, 0.0) + 0.5), mu, sc * mu)
    return _median_of_years(obs, tail, yv / mu, params, 1.0)


def _eta_back(fits: Fits, fr, pos, per_year: float) -> np.ndarray:
    """The linear predictor of fit ``fr[c]`` at the earlier positions ``pos[c]``
    (``(C, J, D)``; a negative position gives a number no one reads)."""
    X = design(np.maximum(pos, 0), fits.centre[fr][:, None, None],
               fits.flags[fr][:, None, None, :], per_year)
    return (X * fits.beta[fr][:, None, None, :]).sum(-1)


def _median_of_years(obs, tail, excess, params: DetectionParams, floor: float) -> np.ndarray:
    """Per row of ``(C, J, D)`` arrays (``obs``: observed; ``tail``: upper-tail
    probability under the baseline): the median over the earlier years in which the
    period stood out of its largest ``excess``, at least ``floor``; ``floor`` when it
    did not come back. It came back when at least ``recurring_years`` years stood out
    at ``recurring_alpha``, or every observed year, at least
    :data:`RECURRING_EVERY_MIN_YEARS` of them, at ``recurring_every_alpha`` (then
    the median is over those)."""
    tail = np.where(obs, tail, 1.0)
    best = np.where(tail < params.recurring_alpha, excess, -np.inf).max(axis=2)  # (C, J)
    ok = np.isfinite(best).sum(axis=1) >= params.recurring_years
    loose = params.recurring_every_alpha
    if loose > 0:
        seen = obs.any(axis=2)
        every = ((seen.sum(axis=1) >= RECURRING_EVERY_MIN_YEARS)
                 & np.all(~seen | (tail.min(axis=2) < loose), axis=1) & ~ok)
        if every.any():
            wide = np.where(tail < loose, excess, -np.inf).max(axis=2)
            best = np.where(every[:, None], wide, best)
            ok = ok | every
    out = np.full(len(best), floor)
    if ok.any():
        b = best[ok]
        out[ok] = np.maximum(np.nanmedian(np.where(np.isfinite(b), b, np.nan), axis=1), floor)
    return out


#: The looser test of :func:`_median_of_years` (every earlier year at
#: ``recurring_every_alpha``) needs at least this many observed earlier years: with two,
#: chance alone would pass it about once in fifty periods.
RECURRING_EVERY_MIN_YEARS = 3


def _recurring_reach(fits: Fits, geo: _Geometry, params: DetectionParams):
    """:func:`_recurring_back` for this geometry and params, or None when there is
    nothing to look at (no fits, or too few years)."""
    if not len(fits.pos):
        return None
    return _recurring_back(geo.lay.per_year, geo.lay.window, params.recurring_years)


#: A period's value is looked at for a recurring peak when it is this many standard
#: deviations (``sqrt(phi mu)``) above its baseline.
RECURRING_GATE_Z = 2.0


def _recurring_rows(past, k, valid, y0, mu0, scale, fits: Fits, fr, geo: _Geometry,
                    params: DetectionParams, has_den: bool) -> np.ndarray:
    """The factor by which each position ``k`` (a table row's own period, judged by fit
    ``fr``, with value ``y0`` and expected count ``mu0``) is raised because the same
    period stood out in earlier years (:func:`_recurring_factor`); 1 where it did not,
    where ``k``'s own value is not at least :data:`RECURRING_GATE_Z` standard deviations
    above its baseline (so a usual period costs nothing). The table and
    :func:`_screen` both use it on the same inputs, so they agree."""
    f = np.ones(len(k))
    back = _recurring_reach(fits, geo, params)
    if back is None:
        return f
    sc = rate_dispersion(scale, mu0, _rate_kappa(params, has_den))
    with np.errstate(invalid="ignore"):
        gate = valid & (np.where(valid, y0, 0.0) - mu0 > RECURRING_GATE_Z * np.sqrt(sc * mu0))
    cand = np.flatnonzero(gate)
    if not len(cand):
        return f
    pos = k[cand, None, None] - back[None, :, :]
    py, poff = past(cand, pos)
    f[cand] = _recurring_factor(fits, fr[cand], pos, py, poff, geo.lay.per_year, params,
                                has_den)
    return f


def _recurring_shift(past, k, valid, y0, eta0, scale, fits: Fits, fr, geo: _Geometry,
                     params: DetectionParams) -> np.ndarray:
    """Other values' counterpart of :func:`_recurring_rows`, on the transformed scale
    (``log(y + c)`` or ``y``) of the fit ``fr`` judging each position ``k``: where
    ``k``'s residual is at least :data:`RECURRING_GATE_Z` residual sds, the median over
    the earlier years in which the same period (give or take one) stood out — its
    residual above the normal quantile of ``1 - recurring_alpha`` — of their largest
    residual, when at least ``recurring_years`` years did; 0 elsewhere. The table and
    :func:`_screen` add it to the position's linear predictor."""
    d = np.zeros(len(k))
    back = _recurring_reach(fits, geo, params)
    if back is None:
        return d
    sh, ul = fits.shift[fr], fits.uselog[fr]
    yv = np.where(valid, y0, 0.0)
    g0 = np.where(ul, np.log(np.maximum(yv, 0.0) + sh), yv)
    with np.errstate(invalid="ignore"):
        gate = valid & (scale > 0) & (g0 - eta0 > RECURRING_GATE_Z * scale)
    cand = np.flatnonzero(gate)
    if not len(cand):
        return d
    pos = k[cand, None, None] - back[None, :, :]
    py, _ = past(cand, pos)
    obs = np.isfinite(py) & (pos >= 0)
    pv = np.where(obs, py, 0.0)
    gp = np.where(ul[cand][:, None, None], np.log(np.maximum(pv, 0.0) + sh[cand][:, None, None]),
                  pv)
    r = gp - _eta_back(fits, fr[cand], pos, geo.lay.per_year)
    tail = special.ndtr(-r / np.maximum(scale[cand][:, None, None], 1e-300))
    d[cand] = _median_of_years(obs, tail, r, params, 0.0)
    return d


def _spike_rule(family, den, valid, y, mu, v, sc, wm, shift, uselog, params, slack=0.0):
    """Upper-tail probability of each row's own value and the spike rule, vectorised
    (``den``: each row's denominator, None without). ``slack`` > 0 loosens every
    comparison on a computed number by that relative amount: the rule then holds
    wherever it could hold for inputs that differ from these by rounding
    (:func:`_screen`)."""
    yy = np.where(valid, y, 0.0)
    if family == "counts":
        sc = rate_dispersion(sc, mu, _rate_kappa(params, den is not None))
        var = sc * mu + mu * mu * v
        p = nb_sf(np.floor(np.maximum(yy, 0.0) + 0.5), np.maximum(mu, MIN_EXPECTED), var)
        if den is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                before, after = mu / den, yy / den
        else:
            before, after = mu, yy
        excess = params.spike_min_excess
        if slack:
            excess = excess - slack * (np.abs(mu) + 1.0)
        ok = yy - mu >= excess
        z = special.ndtri(np.clip(1.0 - p, 1e-12, 1 - 1e-12))
    else:
        sd = np.sqrt(sc * sc + v)
        gy = np.where(uselog, np.log(np.maximum(yy, 0.0) + shift), yy)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (gy - mu) / sd
        p = special.ndtr(-z)
        before = np.where(uselog, np.exp(mu) - shift, mu)
        after = yy
        ok = yy > wm
    alpha, low = params.spike_alpha, before
    if slack:
        alpha, low = alpha * (1.0 + slack), before - slack * (np.abs(before) + 1.0)
    with np.errstate(invalid="ignore"):
        spike = (
            valid
            & (p < alpha)
            & ok
            & (after > low)
            & (after >= params.spike_min_ratio * low)
        )
    return p, spike, before, after, z


def _best(tab: _Table, ts: np.ndarray, M: int):
    """For each position in ``ts`` and each direction (up, then down): the largest
    statistic over change starts, and the change start with the largest likelihood
    ratio (the onset estimate; with at least two observed periods, whatever
    ``min_trend_days`` asks before an alarm)."""
    d = np.arange(M)[None, :]
    rows = ts[:, None] - d - tab.k0
    okr = (rows >= 0) & (rows < tab.st_up.shape[0])
    flat = np.where(okr, rows, 0) * M + d  # the anti-diagonal of each position
    cand = okr & tab.valid[flat // M] & (tab.N.ravel()[flat] >= 2)
    out = []
    for st, lr in ((tab.st_up, tab.lr_up), (tab.st_dn, tab.lr_dn)):
        vals = np.where(okr, st.ravel()[flat], -1.0)
        j = np.argmax(vals, axis=1)
        lj = np.argmax(np.where(cand, lr.ravel()[flat], -1.0), axis=1)
        out += [vals[np.arange(len(ts)), j], ts - lj]
    return out


# -- per-position results ------------------------------------------------------------


@dataclass
class _Eval:
    """What the findings at positions ``ts`` need."""

    ts: np.ndarray
    tab: _Table
    fits: Fits
    stat_up: np.ndarray
    stat_dn: np.ndarray
    kbest_up: np.ndarray
    kbest_dn: np.ndarray
    onset_up: np.ndarray
    onset_dn: np.ndarray


def _runs(alarm: np.ndarray, kbest: np.ndarray, prev_alarm: bool, prev_onset: int):
    onset = np.full(len(alarm), -1, dtype=np.int64)
    a, o = prev_alarm, prev_onset
    for i, (al, kb) in enumerate(zip(alarm.tolist(), kbest.tolist(), strict=True)):
        if al:
            if not a:
                o = kb
            onset[i] = o
        else:
            o = -1
        a = al
    return onset, a, o


def _evaluate(g, fits, geo, params, ts, run_state, tab: _Table | None = None):
    """``tab``: the table of rows ``k0 .. ts[-1]`` when already made."""
    M = geo.M
    k0 = max(int(ts[0]) - M + 1, 0)
    if tab is None:
        tab = _table(g, fits, geo, params, k0, int(ts[-1]) + 1)
    su, ku, sd, kd = _best(tab, ts, M)
    ou, au, oou = _runs(su >= 1.0, ku, run_state["up"], run_state["onset_up"])
    od, ad, ood = _runs(sd >= 1.0, kd, run_state["dn"], run_state["onset_dn"])
    new_state = {"up": au, "onset_up": oou, "dn": ad, "onset_dn": ood}
    return _Eval(ts, tab, fits, su, sd, ku, kd, ou, od), new_state


# -- findings ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    source: str
    substance: str
    region: str
    metric: str
    dimension: str


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else float("inf")


def _round(v: float) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _recent_change(tab, r: int, d: int, m: int, family: str, has_den: bool,
                   up: bool = True) -> tuple[float | None, float | None]:
    """The relative change of the window's latest ``m`` periods (row ``r``, length
    ``d + 1``) against the same expected values as the whole window, and the same with
    their most extreme period in the change's direction (``up``) left out, as the
    statistic leaves it out (:func:`_glr`), when the window reaches back before them
    (else the two are the same); None when none of them is observed or nothing was
    expected."""
    lo = d - m  # the cumulative column before the latest m periods; < 0: the whole window

    def part(a) -> float:
        return float(a[r, d] - (a[r, lo] if lo >= 0 else 0.0))

    n = part(tab.N)
    if n <= 0:
        return None, None
    if family == "counts":
        if (part(tab.D) if has_den else n) <= 0:
            return None, None
        ys, es = tab.Y, tab.E
    else:
        ys, es = tab.Yraw, tab.Eraw
    # a mean over the same periods (and denominators) on both sides: the ratio of sums
    y, e = part(ys), part(es)
    whole = y / e - 1.0 if e > 0 else None
    if lo < 0 or n < 2:
        return whole, whole
    cy, ce = np.diff(ys[r, lo:d + 1]), np.diff(es[r, lo:d + 1])
    ex = np.where(np.diff(tab.N[r, lo:d + 1]) > 0, cy - ce, np.nan)
    j = int(np.nanargmax(ex) if up else np.nanargmin(ex))
    y, e = y - float(cy[j]), e - float(ce[j])
    return whole, (y / e - 1.0 if e > 0 else None)


def _trend(meta, ev: _Eval, i: int, up: bool, params, date_at, family: str, has_den: bool):
    t = int(ev.ts[i])
    stat = ev.stat_up[i] if up else ev.stat_dn[i]
    onset = int((ev.onset_up if up else ev.onset_dn)[i])
    if onset < 0:
        return None
    tab = ev.tab
    row = onset if t - onset < len(tab.mu[0]) else int((ev.kbest_up if up else ev.kbest_dn)[i])
    r, d = row - tab.k0, t - row
    n_obs = tab.N[r, d]
    if n_obs <= 0:
        return None
    lr = float((tab.lr_up if up else tab.lr_dn)[r, d])
    if family == "counts":
        if has_den:
            before, after = tab.E[r, d] / tab.D[r, d], tab.Y[r, d] / tab.D[r, d]
        else:
            before, after = tab.E[r, d] / n_obs, tab.Y[r, d] / n_obs
    else:
        before, after = tab.Eraw[r, d] / n_obs, tab.Yraw[r, d] / n_obs
    before, after = float(before), float(after)
    rel = after / before - 1.0 if before > 0 else float("inf")
    if (up and rel < params.trend_min_relative_change) or (
        not up and rel > -params.trend_min_relative_change
    ):
        return None
    p = float(special.ndtr(-math.sqrt(2.0 * max(lr, 0.0))))
    # periods of the window whose expectation holds their usual yearly peak
    peaks = int(np.count_nonzero(tab.recurring[r:r + d + 1] > 1.0))
    # where the level of the latest periods stands (the episode rules end a change whose
    # level is back: detectors/episodes.py)
    recent, recent_loo = _recent_change(tab, r, d, 2 * params.resolve_after_periods, family,
                                        has_den, up)
    return Finding(
        source=meta.source,
        substance=meta.substance,
        kind="trend",
        direction="increase" if up else "decrease",
        onset=date_at(onset),
        detected_at=date_at(t),
        level_before=before,
        level_after=after,
        relative_change=_finite(rel),
        strength=float(stat),
        p_value=p,
        category=categorize(rel, p, params),
        region=meta.region,
        metric=meta.metric,
        dimension=meta.dimension,
        method=COUNT_METHOD if family == "counts" else CONT_METHOD,
        evidence={
            "log_likelihood_ratio": round(lr, 4),
            "threshold": params.glr_h,
            "leave_one_out_threshold": params.glr_loo_h,
            "change_window_start": date_at(row).isoformat(),
            "periods_since_onset": int(t - onset + 1),
            "observed_periods": int(n_obs),
            "dispersion": _round(tab.scale[r]),
            **({"usual_peak_periods": peaks} if peaks else {}),
            **({"recent_relative_change": _round(recent)} if recent is not None else {}),
            # the same, the most extreme of those periods left out: what brings the level
            # back in full (one period, a spike, does not)
            **({"recent_relative_change_leave_one_out": _round(recent_loo)}
               if recent_loo is not None else {}),
        },
    )


def _spike(meta, ev: _Eval, i: int, params, date_at, family: str):
    t = int(ev.ts[i])
    tab = ev.tab
    r = t - tab.k0
    if not tab.spike[r]:
        return None
    before, after = float(tab.before[r]), float(tab.after[r])
    p, z = float(tab.spike_p[r]), float(tab.z[r])
    rel = after / before - 1.0 if before > 0 else float("inf")
    when = date_at(t)
    return Finding(
        source=meta.source,
        substance=meta.substance,
        kind="spike",
        direction="increase",
        onset=when,
        detected_at=when,
        level_before=before,
        level_after=after,
        relative_change=_finite(rel),
        strength=z,
        p_value=p,
        category=categorize(rel, p, params),
        region=meta.region,
        metric=meta.metric,
        dimension=meta.dimension,
        method=(
            "quasi-Poisson baseline, upper tail"
            if family == "counts"
            else "log-linear baseline, upper tail"
        ),
        evidence={
            "expected": _round(before),
            "value": _round(after),
            "threshold_p": params.spike_alpha,
            "residual": _round(z),
            "dispersion": _round(tab.scale[r]),
            **({"recurring_factor": _round(tab.recurring[r])} if tab.recurring[r] > 1 else {}),
        },
    )


def _findings(meta, ev: _Eval, i: int, params, date_at, g: _Grid) -> list[Finding]:
    if ev.onset_up[i] < 0 and ev.onset_dn[i] < 0 and not ev.tab.spike[int(ev.ts[i]) - ev.tab.k0]:
        return []
    out = []
    has_den = g.den is not None
    for f in (
        _trend(meta, ev, i, True, params, date_at, g.family, has_den),
        _trend(meta, ev, i, False, params, date_at, g.family, has_den),
        _spike(meta, ev, i, params, date_at, g.family),
    ):
        if f is not None:
            out.append(f)
    return out


# -- public API -------------------------------------------------------------------------


def _step(series: Series, params: DetectionParams) -> str:
    return infer_step(series.periods) if params.period == "auto" else params.period


def _usable(series: Series, params: DetectionParams) -> bool:
    return not is_score(series.metric) and len(series.periods) >= params.min_points


def _meta(series: Series) -> _Meta:
    return _Meta(series.source, series.substance, series.region, series.metric, series.dimension)


def _all_fits(g: _Grid, geo: _Geometry, params, n: int) -> Fits:
    rps = np.arange(0, n, geo.lay.refit)
    return fit_points(g.y, rps, geo.lay, params, family=g.family, offset=g.off)


@dataclass
class _Prep:
    """A series laid out for a whole replay: the step of each prefix, the series' step,
    grid positions, grid and geometry."""

    steps: list[str]
    step: str
    pos: np.ndarray
    g: _Grid
    geo: _Geometry
    rps: np.ndarray | None = None  # refit points to fit (set by replay_many)

    @classmethod
    def of(cls, series: Series, params: DetectionParams) -> _Prep:
        if params.period == "auto":
            steps = prefix_steps(series.periods)
            step = steps[-1] if steps else "week"
        else:
            step = params.period
            steps = [step] * len(series.periods)
        pos, g = _grid_of(series, step)
        return cls(steps, step, pos, g, _Geometry.of(step, params))


def _full(series: Series, params: DetectionParams, step: str, fits: Fits | None = None,
          prep: _Prep | None = None, tab: _Table | None = None):
    if prep is None:
        pos, g = _grid_of(series, step)
        geo = _Geometry.of(step, params)
    else:
        pos, g, geo = prep.pos, prep.g, prep.geo
    n = len(g.y)
    if fits is None:
        fits = _all_fits(g, geo, params, n)
    run0 = {"up": False, "onset_up": -1, "dn": False, "onset_dn": -1}
    ev, run = _evaluate(g, fits, geo, params, np.arange(n), run0, tab)
    return pos, g, geo, fits, ev, run


def _date_fn(series: Series, pos: np.ndarray):
    periods = series.periods
    # index of the first period at or after each grid position (one lookup per call)
    at = np.minimum(np.searchsorted(pos, np.arange(int(pos[-1]) + 1)), len(periods) - 1).tolist()
    last = len(periods) - 1

    def date_at(t: int):
        return periods[at[t] if 0 <= t < len(at) else (0 if t < 0 else last)]

    return date_at


def detect(series: Series, params: DetectionParams) -> list[Finding]:
    """The findings current at the last period of ``series`` (never raises on short,
    constant, all-zero or gappy input)."""
    if not _usable(series, params):
        return []
    pos, g, geo, fits, ev, _ = _full(series, params, _step(series, params))
    n_seen = int(np.isfinite(np.asarray(series.values, float)).sum())
    if n_seen < params.min_points:
        return []
    return _findings(_meta(series), ev, int(pos[-1]), params, _date_fn(series, pos), g)


def replay(series: Series, params: DetectionParams) -> list[list[Finding]]:
    """``[detect(series.upto(i + 1), params) for i in range(len(series.periods))]``,
    computed in one pass: every quantity at period i uses data up to i only."""
    return _replay(series, params, with_state=False)[0]


def replay_with_state(
    series: Series, params: DetectionParams
) -> tuple[list[list[Finding]], SeriesState | None]:
    """:func:`replay` and the :class:`SeriesState` after the last period (None when the
    series cannot be continued incrementally: a score series, or no periods)."""
    return _replay(series, params, with_state=True)


#: Baseline windows gathered at once by :func:`replay_many` (rows of ``window`` floats).
MANY_ROWS = 4096


def replay_many(
    items: Iterable[tuple[Series, DetectionParams]], *, with_state: bool = False,
) -> Iterator[Any]:
    """:func:`replay` (with ``with_state``: :func:`replay_with_state`) of each
    ``(series, params)``, in order, with the baseline fits and GLR tables of many
    series made together: the windows are sorted by the columns they use and fitted
    :data:`~detectors.baseline.CHUNK` at a time (one call's cost is mostly per window,
    and a window is as wide as the history before it), the tables made
    :data:`TABLE_ROWS` rows at a time. The results equal the one-series functions':
    each fit's and each table row's arithmetic depends on its own data only. ``items``
    is read lazily, about :data:`MANY_ROWS` windows' worth of series at a time."""
    todo: list[tuple[Series, DetectionParams, _Prep | None]] = []
    rows = 0
    for series, params in items:
        prep = _planned(series, params, with_state)
        todo.append((series, params, prep))
        rows += 0 if prep is None else len(prep.rps)
        if rows >= MANY_ROWS:
            yield from _replay_planned(todo, with_state)
            todo, rows = [], 0
    yield from _replay_planned(todo, with_state)


def _planned(series: Series, params: DetectionParams, with_state: bool) -> _Prep | None:
    """A series laid out for :func:`replay_many`, with the refit points to fit (with the
    state, the fits it makes ahead of time, :func:`_ahead`, too); None: nothing to fit."""
    if is_score(series.metric) or not series.periods:
        return None
    prep = _Prep.of(series, params)
    lay, n = prep.geo.lay, len(prep.g.y)
    prep.rps = np.arange(0, n, lay.refit)
    if with_state:
        phase = _phase(_key_of(series))
        ahead = sorted({r for p in range(max(0, n - lay.guard), n)
                        if (r := _ahead(p, lay, phase)) >= n})
        prep.rps = np.concatenate([prep.rps, np.asarray(ahead, dtype=np.int64)])
    return prep


def _replay_planned(todo: list, with_state: bool) -> Iterator[Any]:
    groups: dict[Any, list[int]] = {}  # equal params (not only one object) share the calls
    for i, (_, params, prep) in enumerate(todo):
        if prep is not None:
            key = (prep.geo.lay, prep.g.family, params_digest(params))
            groups.setdefault(key, []).append(i)
    fits: dict[int, Fits] = {}
    tabs: dict[int, _Table] = {}
    for members in groups.values():
        params = todo[members[0]][1]
        preps = [todo[i][2] for i in members]
        fits.update(zip(members, _fits_of(preps, params), strict=True))
        for has_den in (False, True):
            same = [i for i in members if (todo[i][2].g.den is not None) == has_den]
            tabs.update(_tables_of(same, [todo[i][2] for i in same], fits, params))
    for i, (series, params, prep) in enumerate(todo):
        out = _replay(series, params, with_state=with_state, fits=fits.pop(i, None),
                      prep=prep, tab=tabs.pop(i, None))
        yield out if with_state else out[0]


def _fits_of(preps: list[_Prep], params: DetectionParams) -> list[Fits]:
    """The fits at each series' refit points (``prep.rps``; one layout and family)."""
    lay, family = preps[0].geo.lay, preps[0].g.family
    idx, yw, offw, valid = (np.concatenate(c) for c in zip(
        *(gathered_windows(p.rps, p.g.y, p.g.off, lay) for p in preps)))
    ends = np.cumsum([len(p.rps) for p in preps])
    M = valid & np.isfinite(yw) & np.isfinite(offw)
    first = np.where(M.any(1), M.argmax(1), M.shape[1])
    order = np.argsort(first, kind="stable")  # windows of one width together
    rp = np.concatenate([p.rps for p in preps])
    parts = [
        fit_windows(rp[o], idx[o], yw[o], offw[o], valid[o], lay, params, family)
        for o in (order[lo : lo + CHUNK] for lo in range(0, len(order), CHUNK))
    ]
    every = Fits.concat(family, parts).take(np.argsort(order, kind="stable"))
    return [every.take(np.arange(hi - len(p.rps), hi)) for p, hi in zip(preps, ends,
                                                                        strict=True)]


#: GLR table rows computed at once by :func:`replay_many` (each ``M`` floats wide).
TABLE_ROWS = 4096


def _tables_of(members: list[int], preps: list[_Prep], fits: dict[int, Fits],
               params: DetectionParams) -> dict[int, _Table]:
    """The whole-series GLR tables of ``members`` (one family, geometry and params; all
    with or all without denominators), :data:`TABLE_ROWS` rows per call of
    :func:`_table_core`: rows are independent, so each equals :func:`_table`'s."""
    out: dict[int, _Table] = {}
    lo = 0
    while lo < len(members):
        hi, rows = lo, 0
        while hi < len(members) and (hi == lo or rows + len(preps[hi].g.y) <= TABLE_ROWS):
            rows += len(preps[hi].g.y)
            hi += 1
        parts, base = [], 0
        for i, prep in zip(members[lo:hi], preps[lo:hi], strict=True):
            s, y, off, den, _, frow, have = _gathered(prep.g, fits[i], prep.geo, 0,
                                                      len(prep.g.y))
            parts.append((s, y, off, den, frow + base, have))
            base += len(fits[i].pos)
        s, y, off, den, frow, have = (np.concatenate(c) if c[0] is not None else None
                                      for c in zip(*parts))
        every = Fits.concat(preps[lo].g.family, [fits[i] for i in members[lo:hi]])
        tab = _table_core(preps[lo].g.family, s, y, off, den, every, frow, have,
                          preps[lo].geo, params, past=_past_of_many(preps[lo:hi]),
                          series_of=np.repeat(np.arange(hi - lo),
                                              [len(p.g.y) for p in preps[lo:hi]]))
        at = 0
        for i, prep in zip(members[lo:hi], preps[lo:hi], strict=True):
            out[i] = _rows(tab, at, at + len(prep.g.y), 0)
            at += len(prep.g.y)
        lo = hi
    return out


def _past_of_many(preps: list[_Prep]):
    """:func:`_past_of` for a table whose rows are the whole grids of ``preps``, one
    after another."""
    ends = np.cumsum([len(p.g.y) for p in preps])
    pasts = [_past_of(p.g) for p in preps]

    def past(rows: np.ndarray, pos: np.ndarray):
        owner = np.searchsorted(ends, rows, side="right")
        py = np.full(pos.shape, np.nan)
        poff = np.zeros(pos.shape)
        for o in np.unique(owner).tolist():
            mine = owner == o
            py[mine], poff[mine] = pasts[o](rows[mine], pos[mine])
        return py, poff

    return past


def _replay(series: Series, params: DetectionParams, with_state: bool,
            fits: Fits | None = None, prep: _Prep | None = None, tab: _Table | None = None):
    n = len(series.periods)
    if is_score(series.metric) or n == 0:
        return [[] for _ in range(n)], None
    prep = prep or _Prep.of(series, params)
    step, steps = prep.step, prep.steps
    pos, g, geo, fits, ev, run = _full(series, params, step, fits, prep, tab)
    n_seen = np.cumsum(np.isfinite(np.asarray(series.values, float)))
    meta, date_at = _meta(series), _date_fn(series, pos)
    out: list[list[Finding]] = []
    busy = (ev.onset_up >= 0) | (ev.onset_dn >= 0) | ev.tab.spike
    for i in range(n):
        if i + 1 < params.min_points or n_seen[i] < params.min_points or not busy[pos[i]]:
            out.append([])
        elif steps[i] != step:  # the prefix looks like another period length
            out.append(detect(series.upto(i + 1), params))
        else:
            out.append(_findings(meta, ev, int(pos[i]), params, date_at, g))
    if not with_state:
        return out, None
    state = SeriesState._build(series, params, step, g, geo, fits, run, int(n_seen[-1]))
    return out, state


def expected_levels(series: Series, params: DetectionParams) -> dict[str, np.ndarray] | None:
    """Per period of ``series``: the expected value the engine judged it against, the 95 %
    predictive band and the ``1 - spike_alpha`` threshold (normal approximation), in the
    series' units (positives per test with a denominator); NaN where no baseline exists.
    None for a score series or one without periods."""
    if is_score(series.metric) or len(series.periods) == 0:
        return None
    pos, g, geo, fits, ev, _ = _full(series, params, _step(series, params))
    tab = ev.tab
    ok = tab.valid
    mu, v, sc = tab.mu[:, 0], tab.var_eta[:, 0], tab.scale
    zt = float(special.ndtri(1 - params.spike_alpha))
    with np.errstate(all="ignore"):
        if g.family == "counts":
            sc = rate_dispersion(sc, mu, _rate_kappa(params, g.den is not None))
            sd = np.sqrt(sc * mu + mu * mu * v)
            out = {"expected": mu, "lo": np.maximum(mu - 1.96 * sd, 0), "hi": mu + 1.96 * sd,
                   "thr": mu + zt * sd}
            if g.den is not None:
                out = {k: a / g.den for k, a in out.items()}
        else:
            sd = np.sqrt(sc * sc + v)

            def back(a):
                return np.where(tab.uselog, np.exp(a) - tab.shift, a)

            out = {"expected": back(mu), "lo": back(mu - 1.96 * sd), "hi": back(mu + 1.96 * sd),
                   "thr": back(mu + zt * sd)}
    return {k: np.where(ok, a, np.nan)[pos] for k, a in out.items()}


# -- incremental state ------------------------------------------------------------------


class NeedsReplay(Exception):
    """The state cannot take this period (the period length changed, the params differ,
    or the period is not after the last one): call :func:`replay_with_state` on the whole
    series instead."""


#: parameters that only judge series with a denominator: a state without one does not
#: depend on them, so they stay out of its fingerprint (changing them, or a version
#: that added them, does not replay such series)
DENOMINATOR_ONLY = frozenset({"rate_min_variation"})
#: parameters added with a rule that each of them can turn off: while the rule is off
#: (its switch at 0) they are left out of the fingerprint, so a state stored before
#: the rule existed continues under params that keep it off
SWITCHED = {"recurring_years": ("recurring_years", "recurring_alpha", "recurring_every_alpha"),
            "recurring_every_alpha": ("recurring_every_alpha",),
            "rate_min_variation": ("rate_min_variation",)}
#: parameters that only decide whether a period is a spike: no state depends on them
#: (a state holds the tail, the fits and the trend's run), so changing them replays
#: nothing. They are hashed at their defaults, so states stored before keep their
#: fingerprint.
SPIKE_ONLY = ("spike_alpha", "spike_min_ratio", "spike_min_excess")


@functools.lru_cache(maxsize=1024)
def params_fingerprint(params: DetectionParams, has_den: bool = True) -> str:
    """A short digest of every parameter's value that can change the stored state of a
    series with (``has_den``) or without a denominator (params are frozen, so equal
    params, whichever object holds them, are looked up once)."""
    fields = DetectionParams.model_fields
    fixed = params.model_copy(update={n: fields[n].default for n in SPIKE_ONLY})
    exclude = set() if has_den else set(DENOMINATOR_ONLY)
    for switch, names in SWITCHED.items():
        if not getattr(params, switch):
            exclude.update(names)
    dump = fixed.model_dump_json(exclude=exclude or None)
    return hashlib.sha256(dump.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def params_digest(params: DetectionParams) -> str:
    """A short digest of every parameter's value: series judged together share it
    (unlike :func:`params_fingerprint`, which leaves out what a state does not hold)."""
    return hashlib.sha256(params.model_dump_json().encode()).hexdigest()[:16]


def _fingerprints(params: DetectionParams) -> tuple[str, str]:
    """The fingerprints of a state without and with a denominator (index ``has_den``)."""
    return params_fingerprint(params, False), params_fingerprint(params, True)


def _floats(v: Any) -> np.ndarray:
    """A stored tail (a list of floats with None for missing, or a float array) as a
    float array with NaN for missing."""
    if isinstance(v, np.ndarray):
        return v.astype(float, copy=False)
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def _listed(v: Any) -> list[float | None]:
    """A tail as JSON-able floats (None for missing)."""
    a = _floats(v)
    return [None if not math.isfinite(x) else x for x in a.tolist()]


def _finite_or_nan(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)


def _version_ok(d: dict[str, Any]) -> None:
    """Raises :class:`NeedsReplay` for a state of another engine version (a counts state
    of :data:`COUNTS_SAME_SINCE` or later continues)."""
    version = d.get("version")
    if version != STATE_VERSION and not (
            type(version) is int and COUNTS_SAME_SINCE <= version < STATE_VERSION
            and _family(d["meta"][3], d["has_den"]) == "counts"):
        raise NeedsReplay(OTHER_VERSION)


@dataclass
class _Checked:
    """A state's next period, checked (:func:`_check`)."""

    t: int  # the period's grid position
    n_old: int  # grid positions seen before it
    step: str
    origin: date
    geo: _Geometry
    family: str
    all_first: bool
    min_diff: int
    all_week: bool
    denominator: float | None


def _check(d: dict[str, Any], period: date, params: DetectionParams,
           denominator: float | None, fingerprints: tuple[str, str]) -> _Checked:
    """Whether the state ``d`` can take ``period`` (raises :class:`NeedsReplay` as
    :meth:`SeriesState.advance` does) and where the period lies on its grid; the state
    is not changed."""
    fingerprint = fingerprints[bool(d["has_den"])]
    if fingerprint != d["params"]:
        raise NeedsReplay(OTHER_PARAMS)
    last = date.fromisoformat(d["last_period"])
    if period <= last:
        raise NeedsReplay(f"period {period} is not after the last one ({last})")
    diff = (period - last).days
    all_first = d["all_first"] and period.day == 1
    min_diff = diff if d["min_diff"] is None else min(d["min_diff"], diff)
    all_week = d["all_week"] and diff % 7 == 0
    if d["auto"]:
        step = "month" if all_first and min_diff >= 28 else "week" if all_week else "day"
        if step != d["step"]:
            raise NeedsReplay(f"period length changes to {step}")
    step = d["step"]
    if d["has_den"] and denominator is None:
        denominator = float("nan")
    elif not d["has_den"] and denominator is not None:
        raise NeedsReplay("the series gains a denominator")
    origin = date.fromisoformat(d["origin"])
    t = _position(origin, period, step)
    n_old = d["n_grid"]
    if t < n_old:
        raise NeedsReplay("period falls on a position already seen")
    return _Checked(t, n_old, step, origin, _geometry(step, params, fingerprint),
                    _family(d["meta"][3], d["has_den"]), all_first, min_diff, all_week,
                    denominator)


@dataclass
class _Step:
    """A state's next period, checked and laid out on its grid (see
    :meth:`SeriesState._prepare`)."""

    state: SeriesState
    period: date
    value: float
    t: int  # the period's grid position
    n_old: int  # grid positions seen before it
    step: str
    origin: date
    geo: _Geometry
    g: _Grid  # the tail with the new period (and NaN for skipped positions)
    fits: Fits
    all_first: bool
    min_diff: int
    all_week: bool


class SeriesState:
    """Everything the next period's findings need (:meth:`to_dict` is JSON-able,
    :meth:`to_store` the form :mod:`warnd.statecodec` packs).

    Holds the series' identity, the period step, the tail of the grid the baseline and
    the change-time search read (about ``baseline_years + guard_weeks +
    glr_window_weeks``), the cached baseline fits of the recent refit points (and of
    the next one, made ahead of time: :func:`_ahead`) and the current alarm runs.
    :meth:`advance` judges one new period at the cost of at most one baseline fit plus
    the change-time search, independent of the series' length; :func:`advance_many`
    does the same for many series in shared numpy calls.
    """

    def __init__(self, d: dict[str, Any]):
        self.d = d

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-able data (the tail as floats with None for missing)."""
        d = dict(self.d)
        d["y"] = _listed(d["y"])
        if d["den"] is not None:
            d["den"] = _listed(d["den"])
        if isinstance(d["fits"], Fits):
            d["fits"] = d["fits"].to_dict()
        return d

    def to_store(self) -> dict[str, Any]:
        """:meth:`to_dict` with the tail and the fits' data as numpy arrays, for
        :func:`warnd.statecodec.pack` (no Python loop per number); it unpacks to the
        same dict as :meth:`to_dict`."""
        d, y, den, fits = self.parts()
        return {**d, "y": y, "den": den, "fits": fits.to_dict(arrays=True)}

    def parts(self) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None, Fits]:
        """What :meth:`to_store` is made of, without the fits' dict: the state's items
        (the tail, denominators and fits among them, as held), the tail and the
        denominators as float arrays with NaN for missing, and the fits (for
        :func:`warnd.statecodec.pack_series_state`)."""
        d = self.d
        y = _finite_or_nan(_floats(d["y"]))
        den = None if d["den"] is None else _finite_or_nan(_floats(d["den"]))
        fits = d["fits"] if isinstance(d["fits"], Fits) else Fits.from_dict(d["fits"])
        return d, y, den, fits

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesState:
        """From :meth:`to_dict`'s data, or from :meth:`to_store`'s (arrays allowed, and
        the fits as :class:`Fits`)."""
        _version_ok(d)
        return cls(d)

    @property
    def last_period(self) -> date:
        return date.fromisoformat(self.d["last_period"])

    def _fits(self, family: str) -> Fits:
        f = self.d["fits"]
        if isinstance(f, Fits):
            return f
        return Fits.from_dict(f) if len(f["pos"]["data"]) else empty_fits(family)

    @classmethod
    def _build(cls, series, params, step, g: _Grid, geo: _Geometry, fits: Fits, run, n_seen):
        n = len(g.y)
        phase = _phase(_key_of(series))
        ahead = [r for p in range(max(0, n - geo.lay.guard), n)
                 if (r := _ahead(p, geo.lay, phase)) >= n]
        fits = _with_fits(fits, g, geo, params, ahead)
        keep_from = max(0, _keep_from(n, geo))
        fkeep = fits.pos >= _oldest_fit(n, geo)
        per = series.periods
        all_first = all(p.day == 1 for p in per)
        diffs = [(b - a).days for a, b in zip(per, per[1:], strict=False)]
        d = {
            "version": STATE_VERSION,
            "params": params_fingerprint(params, series.denominators is not None),
            "meta": [series.source, series.substance, series.region, series.metric,
                     series.dimension],
            "has_den": series.denominators is not None,
            "step": step,
            "auto": params.period == "auto",
            "origin": per[0].isoformat(),
            "last_period": per[-1].isoformat(),
            "n_periods": len(per),
            "all_first": all_first,
            "min_diff": min(diffs) if diffs else None,
            "all_week": all(x % 7 == 0 for x in diffs),
            "n_seen": int(n_seen),
            "n_grid": n,
            "tail_from": keep_from,
            "y": _finite_or_nan(g.y[keep_from:]),
            "den": None if g.den is None else _finite_or_nan(g.den[keep_from:]),
            "fits": fits.take(np.flatnonzero(fkeep)),
            "run": dict(run),
        }
        return cls(d)

    def advance(
        self, period: date, value: float, params: DetectionParams, denominator: float | None = None
    ) -> list[Finding]:
        """The findings current at ``period`` (after the state's last period) given its
        value, and the state moved on to it; equal to what :func:`replay` gives for that
        period on the whole series.

        Raises:
            NeedsReplay: other params, a period not after the last one, or a period that
                changes the inferred period length.
        """
        st = self._prepare(period, value, params, denominator, _fingerprints(params))
        return _advance_one(st, params)

    def _prepare(self, period: date, value: float, params: DetectionParams,
                 denominator: float | None, fingerprints: tuple[str, str]) -> _Step:
        """Check that the state can take ``period`` and lay it out (the state is not
        changed); raises :class:`NeedsReplay` as :meth:`advance` does. ``fingerprints``:
        :func:`_fingerprints` of ``params``."""
        d = self.d
        c = _check(d, period, params, denominator, fingerprints)
        denominator, t, n_old, geo = c.denominator, c.t, c.n_old, c.geo
        gap = t - n_old
        pad = np.full(gap, np.nan)
        y = np.concatenate([_floats(d["y"]), pad, [float(value)]])
        den = None
        off = np.zeros(len(y))
        if d["has_den"]:
            den = np.concatenate([_floats([] if d["den"] is None else d["den"]), pad,
                                  [float(denominator)]])
            den = np.where(den > 0, den, np.nan)
            y = np.where(np.isfinite(den), y, np.nan)
            off = np.where(np.isfinite(den), np.log(np.where(np.isfinite(den), den, 1.0)), np.nan)
        g = _Grid(y, den, off, c.family, d["tail_from"])
        return _Step(self, period, float(value), t, n_old, c.step, c.origin, geo, g,
                     self._fits(c.family), c.all_first, c.min_diff, c.all_week)

    def _finish(self, st: _Step, ev: _Eval | None, i: int, fits: Fits, run: dict[str, Any],
                params: DetectionParams) -> list[Finding]:
        """The findings at ``st.period`` (from row ``i`` of ``ev``; None: there are none)
        and the state moved on to it."""
        d = self.d
        n_seen = d["n_seen"] + (1 if math.isfinite(st.value) else 0)
        n_periods = d["n_periods"] + 1
        findings: list[Finding] = []
        if ev is not None and n_periods >= params.min_points and n_seen >= params.min_points:

            def date_at(pos_: int, _p=st.period, _t=st.t):
                return _p if pos_ >= _t else _date_of(st.origin, st.step, pos_)

            findings = _findings(_Meta(*d["meta"]), ev, i, params, date_at, st.g)
        n_new = st.t + 1
        keep_from = max(0, _keep_from(n_new, st.geo))
        cut = keep_from - st.g.base
        fkeep = fits.pos >= _oldest_fit(n_new, st.geo)
        if not fkeep.all():
            fits = fits.take(np.flatnonzero(fkeep))
        d.update(
            last_period=st.period.isoformat(),
            n_periods=n_periods,
            all_first=st.all_first,
            min_diff=st.min_diff,
            all_week=st.all_week,
            n_seen=n_seen,
            n_grid=n_new,
            tail_from=keep_from,
            y=_finite_or_nan(st.g.y[cut:]),
            den=None if st.g.den is None else _finite_or_nan(st.g.den[cut:]),
            fits=fits,
            run=run,
        )
        return findings


def _position(origin: date, period: date, step: str) -> int:
    """The grid position of ``period`` on a grid starting at ``origin``."""
    if step == "week":
        return (period - origin).days // 7
    if step == "day":
        return (period - origin).days
    return int(grid_positions([origin, period], step)[1])


_GEOMETRY: dict[tuple[str, str], _Geometry] = {}


def _geometry(step: str, params: DetectionParams, fingerprint: str) -> _Geometry:
    key = (step, fingerprint)
    geo = _GEOMETRY.get(key)
    if geo is None:
        if len(_GEOMETRY) > 64:
            _GEOMETRY.clear()
        geo = _GEOMETRY[key] = _Geometry.of(step, params)
    return geo


def _advance_one(st: _Step, params: DetectionParams) -> list[Finding]:
    """One state's next period on its own (any gap since its last period)."""
    g, geo = st.g, st.geo
    due = _fits_due(st.n_old, st.t, geo.lay, _phase(st.state.d["meta"]))
    fits = _with_fits(st.fits, g, geo, params, due)
    ts = np.arange(st.n_old, st.t + 1)
    ev, run = _evaluate(g, fits, geo, params, ts, st.state.d["run"])
    return st.state._finish(st, ev, len(ts) - 1, fits, run, params)


def advance_many(
    items: list[tuple[SeriesState, date, float, float | None]], params: DetectionParams
) -> list[list[Finding] | NeedsReplay]:
    """``[state.advance(period, value, params, denominator=den) for state, period,
    value, den in items]`` in shared numpy calls: the baseline refits and the
    change-time search of every series that takes the period right after its last one
    are computed together, which takes a fraction of the time of one call per series
    (``benchmarks/batch.py``; numbers in ``docs/operations.md``). Each state may
    appear once. A state that cannot take its period gets the :class:`NeedsReplay` in
    its place (and is left unchanged); the others are moved on, with the findings
    :meth:`SeriesState.advance` gives (a test proves them equal)."""
    fp = _fingerprints(params)
    out: list[list[Finding] | NeedsReplay] = [[] for _ in items]
    groups: dict[tuple[str, bool, str], list[tuple[int, _Step]]] = {}
    for i, (state, period, value, den) in enumerate(items):
        try:
            st = state._prepare(period, value, params, den, fp)
        except NeedsReplay as e:
            out[i] = e
            continue
        if st.t != st.n_old or st.t < st.geo.M - 1:
            out[i] = _advance_one(st, params)  # a skipped period, or a short series
            continue
        groups.setdefault((st.g.family, st.g.den is not None, st.step), []).append((i, st))
    for grp in groups.values():
        for lo in range(0, len(grp), BATCH):
            part = grp[lo : lo + BATCH]
            found = _advance_batch([st for _, st in part], params)
            for (i, _), f in zip(part, found, strict=True):
                out[i] = f
    return out


#: Series advanced in one set of numpy calls (memory: BATCH x M x M floats per array of
#: the table, built only for the series the screen leaves; docs/detection.md 1.5).
BATCH = 256


@dataclass
class BlockStep:
    """What :func:`advance_block` did with each state (index ``i``): ``found[i]`` its
    findings at the new period, the :class:`NeedsReplay` it raised, or None when the
    period is not the position right after its last one, the series is too short
    for the batch step, has denominators or its state does not hold together (the
    caller advances those as :class:`SeriesState`, which says what is wrong); for the
    states taken, ``tails[i]`` the new tail and ``fits`` their fits, ``counts[i]`` rows
    each, one series after another (in index order)."""

    found: list[list[Finding] | NeedsReplay | None]
    tails: list[np.ndarray | None]
    fits: Fits
    counts: np.ndarray


def advance_block(states: list[dict[str, Any]], tails: list[np.ndarray], fits: Fits,
                  counts: np.ndarray, items: list[tuple[date, float]],
                  params: DetectionParams) -> BlockStep:
    """:func:`advance_many` for states held as arrays rather than as
    :class:`SeriesState`: state ``i`` is the dict ``states[i]`` (its tail, denominators
    and fits left out; changed in place), its tail ``tails[i]`` and its ``counts[i]``
    fits, the rows of ``fits`` one series after another; ``items[i]`` its next period
    and value. No denominators. The same findings, and the same state after, as
    :func:`advance_many` gives for these states (a test proves it), without a Python
    object per series and fit: what a steady detect pass does for most series."""
    fp = _fingerprints(params)
    S = len(states)
    found: list[list[Finding] | NeedsReplay | None] = [None] * S
    new_tails: list[np.ndarray | None] = [None] * S
    checked: list[_Checked | None] = [None] * S
    groups: dict[tuple[str, str], list[int]] = {}
    for i, d in enumerate(states):
        try:
            _version_ok(d)
            if d["has_den"]:
                raise ValueError("denominators")
            c = checked[i] = _check(d, items[i][0], params, None, fp)
            _holds_together(d)
        except NeedsReplay as e:
            found[i] = e
            continue
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            continue  # denominators, or a damaged state: the per-state path says which
        if c.t == c.n_old and c.t >= c.geo.M - 1 and c.family == fits.family:
            groups.setdefault((c.family, c.step), []).append(i)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    new_counts = np.zeros(S, dtype=np.int64)
    parts: list[Fits] = []
    owners: list[np.ndarray] = []
    for (family, _), members in groups.items():
        for lo in range(0, len(members), BATCH):
            chunk = np.array(members[lo : lo + BATCH], dtype=np.int64)
            got = _advance_chunk(states, tails, fits, counts, starts, items, checked, chunk,
                                 family, params, found, new_tails)
            parts.append(got[0])
            owners.append(got[1])
            new_counts[chunk] = got[2]
    if parts:
        kept = Fits.concat(fits.family, parts)
        owner = np.concatenate(owners)
        kept = kept.take(np.argsort(owner, kind="stable"))  # series after series
    else:
        kept = fits.take(np.zeros(0, dtype=np.int64))
    return BlockStep(found, new_tails, kept, new_counts)


def _holds_together(d: dict[str, Any]) -> None:
    """Raises (KeyError, TypeError, ...) unless the state's items that the batch step
    reads beyond :func:`_check`'s are there and of their types."""
    run = d["run"]
    for flag, onset in (("up", "onset_up"), ("dn", "onset_dn")):
        if type(run[flag]) is not bool or type(run[onset]) is not int:
            raise TypeError(f"run {flag}")
    for name in ("tail_from", "n_seen", "n_periods"):
        if type(d[name]) is not int:
            raise TypeError(name)
    if len(d["meta"]) != 5 or not all(type(m) is str for m in d["meta"]):
        raise TypeError("meta")


def _advance_chunk(states, tails, fits: Fits, counts, starts, items, checked, chunk,
                   family: str, params: DetectionParams, found, new_tails):
    """One batch of :func:`advance_block`: the states of ``chunk`` (indexes) step
    together; their findings and tails are set in ``found`` and ``new_tails``, their
    dicts moved on; returns their kept fits (by series, then position), the series
    each row belongs to, and each series' number of rows."""
    cs = [checked[i] for i in chunk.tolist()]
    geo = cs[0].geo
    S = len(chunk)
    t = np.array([c.t for c in cs], dtype=np.int64)
    base = np.array([states[i]["tail_from"] for i in chunk.tolist()], dtype=np.int64)
    lens = np.array([len(tails[i]) + 1 for i in chunk.tolist()], dtype=np.int64)
    W = int(lens.max())
    Y = np.full((S, W), np.nan)
    for j, i in enumerate(chunk.tolist()):
        n = lens[j] - 1
        Y[j, :n] = tails[i]
        Y[j, n] = float(items[i][1])
    OFF = np.zeros((S, W))
    n_old = counts[chunk]
    rows = np.repeat(starts[chunk] - np.concatenate([[0], np.cumsum(n_old)[:-1]]),
                     n_old) + np.arange(int(n_old.sum()))
    old = fits.take(rows)
    old_own = np.repeat(np.arange(S), n_old)
    phases = np.array([_phase(states[i]["meta"]) for i in chunk.tolist()], dtype=np.int64)
    b = _batch_step(family, geo, params, t, base, Y, OFF, None, [old], old_own, phases,
                    [states[i]["run"] for i in chunk.tolist()])
    n_new = t + 1
    keep_from = np.maximum(0, _oldest_fit(n_new, geo) - geo.lay.history - 1)
    cut = keep_from - base
    Yf = _finite_or_nan(Y)
    for j, i in enumerate(chunk.tolist()):
        d, c = states[i], cs[j]
        period, value = items[i][0], float(items[i][1])
        n_seen = d["n_seen"] + (1 if math.isfinite(value) else 0)
        n_periods = d["n_periods"] + 1
        findings: list[Finding] = []
        ev = b.eval_of(j, b.own_fits(j)) if j in b.ev_of else None
        if ev is not None and n_periods >= params.min_points and n_seen >= params.min_points:
            n = int(lens[j])

            def date_at(pos_: int, _p=period, _t=c.t, _c=c):
                return _p if pos_ >= _t else _date_of(_c.origin, _c.step, pos_)

            g = _Grid(Y[j, :n].copy(), None, OFF[j, :n], family, int(base[j]))
            findings = _findings(_Meta(*d["meta"]), ev, 0, params, date_at, g)
        found[i] = findings
        new_tails[i] = Yf[j, int(cut[j]) : int(lens[j])]
        d.update(
            last_period=period.isoformat(),
            n_periods=n_periods,
            all_first=c.all_first,
            min_diff=c.min_diff,
            all_week=c.all_week,
            n_seen=n_seen,
            n_grid=c.t + 1,
            tail_from=int(keep_from[j]),
            run=b.run(j),
        )
    sel = b.order[b.kept]
    return b.fits.take(sel), chunk[b.own[sel]], b.n_kept


def _advance_batch(sts: list[_Step], params: DetectionParams) -> list[list[Finding]]:
    """:func:`_advance_one` for states that all take the position right after their
    last one and share family, denominators and period length."""
    first = sts[0]
    geo, family, has_den = first.geo, first.g.family, first.g.den is not None
    S = len(sts)
    t = np.array([st.t for st in sts], dtype=np.int64)
    base = np.array([st.g.base for st in sts], dtype=np.int64)
    lens = np.array([len(st.g.y) for st in sts], dtype=np.int64)
    W = int(lens.max())
    Y = np.full((S, W), np.nan)
    OFF = np.zeros((S, W))
    DEN = np.full((S, W), np.nan) if has_den else None
    for j, st in enumerate(sts):
        n = len(st.g.y)
        Y[j, :n] = st.g.y
        OFF[j, :n] = st.g.off
        if DEN is not None:
            DEN[j, :n] = st.g.den
    old_own = np.repeat(np.arange(S), [len(st.fits.pos) for st in sts])
    phases = np.array([_phase(st.state.d["meta"]) for st in sts], dtype=np.int64)
    b = _batch_step(family, geo, params, t, base, Y, OFF, DEN, [st.fits for st in sts],
                    old_own, phases, [st.state.d["run"] for st in sts])
    out = []
    for i, st in enumerate(sts):
        own_fits = st.fits if b.same[i] else b.own_fits(i)  # unchanged: the state's own
        out.append(st.state._finish(st, b.eval_of(i, own_fits), 0, own_fits, b.run(i),
                                    params))
    return out


@dataclass
class _Batched:
    """What :func:`_batch_step` found for each series of a batch (row ``i``)."""

    t: np.ndarray
    fits: Fits  # the series' fits before and the ones made now, in no order
    order: np.ndarray  # rows of ``fits`` by series, then position
    starts: np.ndarray  # each series' first place in ``order``
    ends: np.ndarray
    kept: np.ndarray  # along ``order``: kept for the next periods
    n_kept: np.ndarray  # each series' kept fits
    same: np.ndarray  # no fit made or dropped: the series' fits as before
    au: np.ndarray
    ou: np.ndarray
    ad: np.ndarray
    od: np.ndarray
    ev_of: dict[int, Any]  # a busy series: its rows of the table and its results
    own: np.ndarray  # the series each row of ``fits`` belongs to

    def own_fits(self, i: int) -> Fits:
        """Series ``i``'s fits for the next periods, in position order."""
        sl = slice(self.starts[i], self.ends[i])
        return self.fits.take(self.order[sl][self.kept[sl]])

    def run(self, i: int) -> dict[str, Any]:
        return {"up": bool(self.au[i]), "onset_up": int(self.ou[i]),
                "dn": bool(self.ad[i]), "onset_dn": int(self.od[i])}

    def eval_of(self, i: int, own_fits: Fits) -> _Eval | None:
        """What series ``i``'s findings need (None: it is quiet, it has none)."""
        if i not in self.ev_of:
            return None
        view, *stats = self.ev_of[i]
        return _Eval(self.t[i : i + 1], view, own_fits, *stats, self.ou[i : i + 1],
                     self.od[i : i + 1])


def _batch_step(family: str, geo: _Geometry, params: DetectionParams, t: np.ndarray,
                base: np.ndarray, Y: np.ndarray, OFF: np.ndarray, DEN: np.ndarray | None,
                old_parts: list[Fits], old_own: np.ndarray, phases: np.ndarray,
                runs: list[dict[str, Any]]) -> _Batched:
    """The batch step of :func:`_advance_batch` on arrays: series ``i`` takes grid
    position ``t[i]``, right after its last one; row ``i`` of ``Y`` (``OFF``, ``DEN``)
    holds its grid from position ``base[i]`` with the new value last; the fits of
    ``old_parts`` one after another are the series' (row ``r`` is series
    ``old_own[r]``'s), ``phases[i]`` its refit phase and ``runs[i]`` its alarm runs."""
    lay, M, S = geo.lay, geo.M, len(t)
    W = Y.shape[1]
    old_pos = np.concatenate([p.pos for p in old_parts])

    def gather(A, rows, pos, fill):
        local = pos - base[rows].reshape(rows.shape + (1,) * (pos.ndim - 1))
        ok = (local >= 0) & (local < W)
        return np.where(ok, A[rows.reshape(ok.shape[:1] + (1,) * (pos.ndim - 1)),
                              np.clip(local, 0, W - 1)], fill)

    # the baseline fits to make now, all in one call: those reached at the new
    # position that were not made ahead of time, and those made ahead (_ahead); by
    # series, the reached one first (as _fits_due gives them)
    series = np.arange(S)
    cand_row = np.concatenate([series, series])
    cand_rp = np.concatenate([t, t + lay.guard - phases % max(min(lay.refit, lay.guard), 1)])
    valid = np.concatenate([t % lay.refit == 0,
                            (cand_rp[S:] % lay.refit == 0)
                            & (lay.refit >= 2) & (min(lay.refit, lay.guard) >= 1)])
    big = int(max(int(t.max()), int(cand_rp.max()), int(old_pos.max(initial=0)))) + 1
    valid &= ~_find(np.sort(old_own * big + old_pos), cand_row * big + cand_rp)[1]
    pick = np.flatnonzero(valid)
    pick = pick[np.lexsort((pick // S, cand_row[pick]))]
    parts, owner = list(old_parts), [old_own]
    if len(pick):
        need, rp_new = cand_row[pick], cand_rp[pick]
        idx = window_positions(rp_new, lay)
        nf = fit_windows(rp_new, idx, gather(Y, need, idx, np.nan),
                         gather(OFF, need, idx, np.nan), idx >= 0, lay, params, family)
        parts.append(nf)
        owner.append(need)
    fits = Fits.concat(family, parts)
    own = np.concatenate(owner)
    key = own * big + fits.pos
    order = np.argsort(key, kind="stable")
    skey = key[order]
    # the change-time search: M change starts per series, each with M periods; the
    # series the screen finds quiet need none of it (no run on, no findings)
    ks = t[:, None] - (M - 1) + np.arange(M)[None, :]  # (S, M)
    at, found = _find(skey, (series[:, None] * big + lay.refit_point(ks)).ravel())
    frow = order[at] if len(skey) else at
    have = found & fits.ok[frow] if len(skey) else found

    def past_of(series_rows, pos):  # the values and log denominators of earlier periods
        return gather(Y, series_rows, pos, np.nan), gather(OFF, series_rows, pos, 0.0)

    loud = np.flatnonzero(~_screen(family, t, M, Y, OFF, DEN, base, W, fits, frow, have,
                                   geo, params, past_of))
    au, ad = np.zeros(S, bool), np.zeros(S, bool)
    ou, od = np.full(S, -1, dtype=np.int64), np.full(S, -1, dtype=np.int64)
    busy = np.zeros(S, bool)
    ev_of: dict[int, Any] = {}
    if len(loud):
        L = len(loud)
        lrows = (loud[:, None] * M + np.arange(M)[None, :]).ravel()
        s = (ks[loud][:, :, None] + np.arange(M)[None, None, :]).reshape(L * M, M)
        rows = np.repeat(loud, M)
        y = gather(Y, rows, s, np.nan)
        off = gather(OFF, rows, s, 0.0)
        den = gather(DEN, rows, s, np.nan) if DEN is not None else None
        tab = _table_core(family, s, y, off, den, fits, frow[lrows], have[lrows], geo, params,
                          past=lambda r, pos: past_of(rows[r], pos))
        # the best change start for the new position: each block's last row stands for
        # its series' t (the anti-diagonal of the block), shifted back to t after
        last_row = np.arange(L) * M + M - 1
        su, ku, sd, kd = _best(tab, last_row, M)
        ku, kd = ku - last_row + t[loud], kd - last_row + t[loud]
        lruns = [runs[i] for i in loud.tolist()]

        def onsets(stat, kbest, a_key, o_key):
            prev_a = np.array([bool(r[a_key]) for r in lruns])
            prev_o = np.array([int(r[o_key]) for r in lruns], dtype=np.int64)
            alarm = stat >= 1.0
            return alarm, np.where(alarm, np.where(prev_a, prev_o, kbest), -1)

        au[loud], ou[loud] = onsets(su, ku, "up", "onset_up")
        ad[loud], od[loud] = onsets(sd, kd, "dn", "onset_dn")
        spike_now = tab.spike.reshape(L, M)[:, M - 1]
        busy[loud] = (ou[loud] >= 0) | (od[loud] >= 0) | spike_now
        for m, i in enumerate(loud.tolist()):
            if busy[i]:
                ev_of[i] = (_rows(tab, m * M, (m + 1) * M, int(t[i]) - M + 1),
                            su[m : m + 1], sd[m : m + 1], ku[m : m + 1], kd[m : m + 1])
    # each series' own fits, in position order
    starts = np.searchsorted(skey, series * big)
    ends = np.searchsorted(skey, (series + 1) * big)
    # only the fits the next periods read are kept (as _finish would)
    kept = fits.pos[order] >= _oldest_fit(t[own[order]] + 1, geo)
    c_kept = np.concatenate([[0], np.cumsum(kept)])
    n_kept = c_kept[ends] - c_kept[starts]
    same = (n_kept == np.bincount(old_own, minlength=S)) & (ends - starts == n_kept)
    return _Batched(t, fits, order, starts, ends, kept, n_kept, same, au, ou, ad, od, ev_of,
                    own)


#: How far below 1 a statistic computed by :func:`_screen` must be for the series to
#: count as quiet. Its sums are added in another order than the table's, so they
#: differ from the table's by rounding (relative 1e-13 or less): this margin is
#: ten million times that.
SCREEN_MARGIN = 1e-6


def _suffix(a: np.ndarray) -> np.ndarray:
    """Sums from each position to the last, along the last axis."""
    return np.cumsum(a[..., ::-1], axis=-1)[..., ::-1]


def _suffix_extreme(ex: np.ndarray, high: bool) -> np.ndarray:
    """For each row of ``ex`` (NaN: not observed) and column ``j``: the column of the
    largest (``high``) or smallest value among columns ``j ..`` the last, the first
    one on a tie (as :func:`_running_extreme` picks for a window starting at ``j``);
    -1 where none is observed. The running extreme of the reversed row, whose last
    on a tie is the first here."""
    at = _running_extreme(ex[:, ::-1], high, last_on_tie=True)[:, ::-1]
    return np.where(at >= 0, ex.shape[1] - 1 - at, -1)


def _screen(family, t, M, Y, OFF, DEN, base, W, fits: Fits, frow, have,
            geo: _Geometry, params: DetectionParams, past_of) -> np.ndarray:
    """Which series of a batch step are certainly quiet at their new position ``t``:
    no trend statistic within :data:`SCREEN_MARGIN` of 1 and no spike possible, so
    neither run is on and there are no findings. The rest get the exact table.

    The statistic at ``t`` reads, per change start ``k``, sums over ``k .. t`` under
    the fit judging ``k``. Here each fit's cells are computed once for the ``M``
    positions up to ``t`` and summed from the end (``M`` cells a fit, a handful of
    fits a series), instead of the table's ``M`` by ``M`` cells a series. The numbers
    are those of :func:`_table_core` up to rounding, which the margin covers; a test
    checks that the batch step's findings and states equal one series' replay."""
    S = len(t)
    rows = np.arange(S * M)
    owner_of_row = rows // M
    F1 = len(fits.pos) + 1
    # one block of cells per (series, fit): the series' last M positions
    key = owner_of_row * F1 + np.where(have, frow, -1) + 1
    pair = np.unique(key)
    p_owner, p_fit = pair // F1, pair % F1 - 1
    real = p_fit >= 0
    fr = np.where(real, p_fit, 0)
    s_pos = t[p_owner, None] - (M - 1) + np.arange(M)[None, :]
    local = s_pos - base[p_owner, None]
    inside = (local >= 0) & (local < W)
    li = np.clip(local, 0, W - 1)
    y = np.where(inside, Y[p_owner[:, None], li], np.nan)
    off = np.where(inside, OFF[p_owner[:, None], li], 0.0)
    obs = np.isfinite(y) & real[:, None]
    # the design by column (parameter, block, position) and each block's flags: the
    # sums below run along the positions, which this layout keeps contiguous
    if len(fits.pos):
        cols = design_columns(s_pos, fits.centre[fr][:, None], geo.lay.per_year)
        flags = fits.flags[fr]
        eta = np.einsum("ipm,pi->pm", cols, flags * fits.beta[fr])
    else:
        cols, flags = np.ones((1, *s_pos.shape)), np.zeros((len(pair), 1))
        eta = np.zeros(s_pos.shape)
    yv = np.where(obs, y, 0.0)
    blk = np.searchsorted(pair, key)  # each (series, change start) row: its fit's block
    j = rows % M
    # recurring peaks as the table has them: each position judged by its own fit (the
    # fit of the change start there), what it gives then raising every block
    fr_row = np.where(have, frow, 0)
    scale = fits.scale[fr_row] if len(fits.pos) else np.ones(S * M)
    k_own = t[owner_of_row] - (M - 1) + j

    def past(r, pos):
        return past_of(owner_of_row[r], pos)

    if family == "counts":
        mu = np.where(obs, np.maximum(np.exp(np.clip(eta + np.where(obs, off, 0.0), -30, 30)),
                                      MIN_EXPECTED), 0.0)
        own = _recurring_rows(past, k_own, have & obs[blk, j], y[blk, j], mu[blk, j],
                              scale, fits, fr_row, geo, params, DEN is not None)
        if (own > 1.0).any():
            mu = mu * own.reshape(S, M)[p_owner]
        val, wgt, ex_val = yv, mu, np.where(obs, yv - mu, np.nan)
    else:
        lift = _recurring_shift(past, k_own, have & obs[blk, j], y[blk, j], eta[blk, j],
                                scale, fits, fr_row, geo, params)
        if (lift > 0.0).any():
            eta = eta + lift.reshape(S, M)[p_owner]
        shift = fits.shift[fr][:, None]
        uselog = fits.uselog[fr][:, None]
        gy = np.where(uselog, np.log(np.maximum(yv, 0.0) + shift), yv)
        r = np.where(obs, gy - eta, 0.0)
        mu = np.zeros_like(r)
        val, wgt, ex_val = r, obs.astype(float), np.where(obs, r, np.nan)
    # sums from each position to t of the values, the weights and the observed; each
    # (series, change start) row reads its fit's block at its own column
    Ysum, Wsum, N = _suffix(np.stack([val, wgt, obs]))[:, blk, j]
    valid = have & obs[blk, j]
    d = M - 1 - j
    now = t - base  # the new position in each series' row of Y (its last)
    obs_t = np.isfinite(Y[np.arange(S), now])
    elig = valid & (N >= 2) & (d + 1 >= geo.span) & obs_t[owner_of_row]
    kappa = _rate_kappa(params, DEN is not None)
    # first a bound on the statistic (most series are calm by it, most weeks)
    bound = _screen_bound(family, Ysum, Wsum, N, scale, elig, params, kappa)
    calm = (bound < 1.0 - SCREEN_MARGIN).reshape(S, M).all(axis=1)
    left = np.flatnonzero(~calm)
    if len(left):  # the statistic itself, for the series and blocks the bound left
        rr = np.flatnonzero(~calm[owner_of_row])  # their rows, series after series
        pk = np.flatnonzero(~calm[p_owner])
        at_pk = np.full(len(pair), -1)
        at_pk[pk] = np.arange(len(pk))
        b2, j2 = at_pk[blk[rr]], j[rr]
        # the weighted design summed from each position to t, for the window's mean row
        WXs = _suffix(wgt[pk] * cols[:, pk])
        W2 = Wsum[rr]
        xbar = (WXs[:, b2, j2].T * flags[blk[rr]]) / np.where(W2 > 0, W2, 1.0)[:, None]
        var_tot = (predictor_variance(fits, fr_row[rr], xbar) if len(fits.pos)
                   else np.zeros(len(rr)))
        v2, m2 = val[pk], mu[pk]

        def taken(a, at):
            return np.where(at >= 0, a[b2, np.maximum(at, 0)], 0.0)

        ex2 = ex_val[pk]
        hi, lo = _suffix_extreme(ex2, True)[b2, j2], _suffix_extreme(ex2, False)[b2, j2]
        _, _, st_up, st_dn = _glr(family, Ysum[rr], W2, N[rr], scale[rr], var_tot,
                                  (taken(v2, hi), taken(m2, hi)), (taken(v2, lo), taken(m2, lo)),
                                  elig[rr], params, kappa)
        ok = (st_up < 1.0 - SCREEN_MARGIN) & (st_dn < 1.0 - SCREEN_MARGIN)
        calm[left] = ok.reshape(len(left), M).all(axis=1)
    # the spike rule at t (the change start k = t, its first period), loosened
    last = rows[j == M - 1]
    b_last, c_last = blk[last], M - 1
    if len(fits.pos):
        v_last = predictor_variance(fits, fr_row[last], cols[:, b_last, c_last].T * flags[b_last])
        wm, sh, ul = (fits.window_max[fr_row[last]], fits.shift[fr_row[last]],
                      fits.uselog[fr_row[last]])
    else:
        v_last, wm = np.zeros(S), np.zeros(S)
        sh, ul = np.zeros(S), np.zeros(S, bool)
    den_t = None
    if DEN is not None:
        den_t = DEN[np.arange(S), now]
    mu_t = mu[b_last, c_last] if family == "counts" else eta[b_last, c_last]
    spike = _spike_rule(family, den_t, valid[last], y[b_last, c_last], mu_t, v_last,
                        scale[last], wm, sh, ul, params, slack=SCREEN_MARGIN)[1]
    return calm & ~spike


def _screen_bound(family, Y, E, N, sc, elig, params: DetectionParams, kappa):
    """At least each row's statistic (:func:`_glr`), cheaply: the likelihood ratio with
    the baseline taken as exact (its variance left out, which only lowers the ratio:
    the dispersion it divides by or the variance of the sum grow with it) and with the
    window's most extreme period kept (the statistic is at most ``LR / glr_h``), over
    ``glr_h``. Infinite where the dispersion is not positive (there the ratio without
    the baseline's variance says nothing); 0 where the row is not eligible."""
    lr, _, _ = _lr(family, Y, E, N, sc, 0.0, kappa)
    return np.where(elig, np.where(sc > 0, lr / params.glr_h, np.inf), 0.0)


def _rows(tab: _Table, lo: int, hi: int, k0: int) -> _Table:
    """Rows ``lo .. hi - 1`` of a table as a table of their own starting at ``k0``."""
    vals = {}
    for f in fields(tab):
        v = getattr(tab, f.name)
        vals[f.name] = k0 if f.name == "k0" else (None if v is None else v[lo:hi])
    return _Table(**vals)


def _phase(meta: list[str]) -> int:
    """A series' place in the staggered refit schedule: a stable hash of its identity
    (source, substance, region, metric)."""
    digest = hashlib.blake2b("\x1f".join(meta[:4]).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def _key_of(series: Series) -> list[str]:
    """What a series' refit phase is a hash of."""
    return [series.source, series.substance, series.region, series.metric]


def _ahead(t: int, lay: Layout, phase: int) -> int:
    """The refit point whose fit a series computes ahead of time at position ``t``
    (-1: none). A fit at refit point ``r`` reads data up to ``r - guard`` only, so it
    can be made in any of the ``guard`` periods before ``r``; a series makes it at
    ``r - guard + phase % spread`` (``spread = min(refit, guard)``), which spreads the
    refits of series that share their refit points (started the same week) evenly
    over the weeks before, instead of all of them every ``refit``-th week. The fit is
    the same whenever it is made, so the findings do not change."""
    spread = min(lay.refit, lay.guard)
    if lay.refit < 2 or spread < 1:
        return -1
    r = t + lay.guard - phase % spread
    return r if r % lay.refit == 0 else -1


def _fits_due(first: int, last: int, lay: Layout, phase: int) -> list[int]:
    """The refit points whose fits are to be made as positions ``first .. last`` arrive:
    those reached (made then unless made ahead already) and those made ahead
    (:func:`_ahead`)."""
    reached = [r for r in range(first, last + 1) if r % lay.refit == 0]
    return reached + [r for p in range(first, last + 1) if (r := _ahead(p, lay, phase)) >= 0]


def _with_fits(fits: Fits, g: _Grid, geo: _Geometry, params: DetectionParams,
               rps: list[int]) -> Fits:
    """``fits`` and the fits at refit points ``rps`` it lacks, in position order."""
    todo = sorted(set(rps) - set(fits.pos.tolist()))
    if not todo:
        return fits
    yfull, offfull = _absolute(g)  # fits read absolute positions
    nf = fit_points(yfull, np.array(todo), geo.lay, params, family=g.family, offset=offfull)
    both = Fits.concat(g.family, [fits, nf])
    return both.take(np.argsort(both.pos, kind="stable"))


def _oldest_fit(n, geo: _Geometry):
    """The oldest refit point whose fit the next period (after ``n`` grid positions;
    an array of them allowed) can read: the one judging the earliest change start."""
    if isinstance(n, int):  # one series (in Python: numpy costs more per scalar)
        return max(n - geo.M + 1, 0) // geo.lay.refit * geo.lay.refit
    return geo.lay.refit_point(np.maximum(np.asarray(n) - geo.M + 1, 0))


def _keep_from(n: int, geo: _Geometry) -> int:
    """First grid position the next period can read."""
    return int(_oldest_fit(n, geo)) - geo.lay.history - 1


def _absolute(g: _Grid) -> tuple[np.ndarray, np.ndarray]:
    pad = np.full(g.base, np.nan)
    return np.concatenate([pad, g.y]), np.concatenate([pad, g.off])


def _date_of(origin: date, step: str, pos: int) -> date:
    """The date of grid position ``pos`` (exact for observed periods: they lie on the grid)."""
    from datetime import timedelta

    if step == "week":
        return origin + timedelta(weeks=pos)
    if step == "day":
        return origin + timedelta(days=pos)
    m = origin.month - 1 + pos
    return date(origin.year + m // 12, m % 12 + 1, 1)


def state_json(state: SeriesState) -> str:
    return json.dumps(state.to_dict(), separators=(",", ":"))
