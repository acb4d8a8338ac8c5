"""Expected values for every period, from data strictly before it (batched over periods).

For period ``t`` the baseline window holds the periods ``t - guard - L + 1 .. t - guard``
(``L`` = ``baseline_years`` of periods, ``guard`` = ``guard_periods``): the newest
periods are left out so a change under way does not raise its own expectation. Nothing
at or after ``t`` is used, so the result for ``t`` is the same on any longer series.

Two model families share one log-linear design (intercept; a linear time trend; one
yearly sine/cosine pair), fitted separately for each period:

* **counts** (and positives with a denominator, as a log offset): a quasi-Poisson
  log-linear GLM by iteratively reweighted least squares, as in the Farrington
  algorithm (Farrington et al. 1996, J R Stat Soc A 159:547) and its improved version
  (Noufaily et al. 2013, Stat Med 32:1206): overdispersion ``phi`` from the Pearson
  statistic (floored at 1), baseline points with Anscombe residuals above 2.58
  down-weighted by ``(2.58/r)^2`` and the model refitted, the trend kept only when its
  Wald z exceeds ``trend_z`` and the prediction stays below 1.5 times the window's
  maximum (Farrington's rule, relaxed). Points may be down-weighted by age
  (``baseline_half_life_years``). Instead of the same-weeks-of-past-years factor we use one
  harmonic pair (as in Höhle & Paul 2008, CSDA 52:4357, and the R ``surveillance``
  package's ``glrnb``), entered only with ``seasonal_min_years`` of history.
  The predictive variance of a count is ``phi*mu + mu^2 * var(eta)``: sampling noise,
  overdispersion and the uncertainty of the fitted mean.
* **continuous values** (indexes, concentrations, quantities, rates without
  denominator): the same design by weighted least squares on ``log(y + c)`` with
  ``c`` a tenth of the window's median positive value (identity scale when the window
  has negative values), robust residual scale (MAD) and the same down-weighting.

Assumptions: the log mean is linear in time and has one smooth yearly cycle over
the window; periods are independent given the mean (no autocorrelation model).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from detectors.params import DetectionParams

#: Smallest expected count: keeps all-zero baselines usable.
MIN_EXPECTED = 0.1
#: Periods fitted at once (memory: CHUNK x window x 4 floats per array).
CHUNK = 256
#: Largest variance of the fitted log mean used in the predictive variance.
MAX_VAR_ETA = 0.5
#: A trend may extrapolate at most this factor above the highest baseline value.
TREND_HEADROOM = 1.5
#: Smallest residual sd on the log scale (5 %): keeps constant series usable.
MIN_LOG_SD = 0.05


@dataclass(frozen=True)
class Baseline:
    """Per-period expectation on the model scale; NaN where no baseline exists.

    counts: ``expected`` is the expected count, ``variance`` its predictive variance.
    continuous: ``expected``/``variance`` are on the transformed scale ``log(y + shift)``
    (or ``y`` where ``uselog`` is false).
    """

    family: str  # "counts" | "continuous"
    expected: np.ndarray
    variance: np.ndarray
    dispersion: np.ndarray
    n_obs: np.ndarray
    seasonal: np.ndarray
    trend: np.ndarray
    shift: np.ndarray
    uselog: np.ndarray
    window_max: np.ndarray  # largest observed value in the window (rate with an offset)


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN; NaN for an all-NaN row (without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=1)


def _windows(n: int, per_year: float, params: DetectionParams) -> tuple[np.ndarray, np.ndarray]:
    length = max(params.min_baseline_points, round(params.baseline_years * per_year))
    last = np.arange(n) - params.guard_periods
    idx = last[:, None] - np.arange(length)[None, :]
    return idx, idx >= 0


def _design(idx: np.ndarray, t: np.ndarray, per_year: float) -> tuple[np.ndarray, np.ndarray]:
    tau = (idx - t[:, None]) / per_year
    ang = 2 * np.pi * idx / per_year
    X = np.stack([np.ones_like(tau), tau, np.sin(ang), np.cos(ang)], axis=-1)
    at = 2 * np.pi * t / per_year
    xt = np.stack([np.ones_like(at), np.zeros_like(at), np.sin(at), np.cos(at)], axis=-1)
    return X, xt


def _lin(X: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.matmul(X, beta[:, :, None])[:, :, 0]


def _solve(X: np.ndarray, W: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    XW = X * W[:, :, None]
    A = np.matmul(XW.transpose(0, 2, 1), X)
    ridge = 1e-8 * (A[:, 0, 0] + 1.0)
    A = A + ridge[:, None, None] * np.eye(X.shape[-1])[None]
    b = np.matmul(XW.transpose(0, 2, 1), z[:, :, None])[:, :, 0]
    Ainv = np.linalg.inv(A)
    return np.matmul(Ainv, b[:, :, None])[:, :, 0], Ainv


def _fit_counts(Y, Off, M, X, xt, ot, n_par, params, tw):
    rate = (Y * M).sum(1) / np.maximum((np.exp(Off) * M).sum(1), 1e-12)
    beta = np.zeros(X.shape[::2])
    beta[:, 0] = np.log(np.maximum(rate, 1e-3))
    w = tw

    def irls(beta, w, iters):
        Ainv = None
        for _ in range(iters):
            eta = _lin(X, beta) + Off
            mu = np.exp(np.clip(eta, -30, 30))
            z = (eta - Off) + (Y - mu) / mu
            beta, Ainv = _solve(X, w * M * mu, z)
        return beta, Ainv

    def dispersion(beta, w):
        mu = np.exp(np.clip(_lin(X, beta) + Off, -30, 30))
        num = (w * M * (Y - mu) ** 2 / mu).sum(1)
        den = np.maximum((w * M).sum(1) - n_par, 1.0)
        return np.maximum(num / den, params.min_dispersion), mu

    beta, Ainv = irls(beta, w, 6)
    phi, mu = dispersion(beta, w)
    r = 1.5 * (Y ** (2 / 3) - mu ** (2 / 3)) / (mu ** (1 / 6) * np.sqrt(phi)[:, None])
    thr = params.reweight_threshold
    w = tw * np.where(r > thr, (thr / np.maximum(r, thr)) ** 2, 1.0)
    beta, Ainv = irls(beta, w, 3)
    phi, mu = dispersion(beta, w)
    eta_t = np.einsum("rp,rp->r", xt, beta) + ot
    # Capped: with (nearly) all-zero windows the fitted log mean diverges and its
    # variance explodes; the expected count is then floored (MIN_EXPECTED) anyway.
    var_eta = np.minimum(phi * np.einsum("rp,rpq,rq->r", xt, Ainv, xt), MAX_VAR_ETA)
    cov_trend = phi * Ainv[:, 1, 1]
    return beta, eta_t, var_eta, phi, cov_trend


def _fit_continuous(G, M, X, xt, n_par, params, floor, tw):
    W = M * tw
    beta, Ainv = _solve(X, W, G)
    res = G - _lin(X, beta)
    s = 1.4826 * _nanmedian(np.where(M, np.abs(res), np.nan))
    s = np.maximum(s, floor)
    r = res / s[:, None]
    thr = params.reweight_threshold
    w = np.where(np.abs(r) > thr, (thr / np.maximum(np.abs(r), thr)) ** 2, 1.0)
    beta, Ainv = _solve(X, W * w, G)
    res = G - _lin(X, beta)
    s2 = (w * W * res**2).sum(1) / np.maximum((w * W).sum(1) - n_par, 1.0)
    s = np.maximum(np.sqrt(s2), floor)
    eta_t = np.einsum("rp,rp->r", xt, beta)
    var_pred = s**2 * (1.0 + np.einsum("rp,rpq,rq->r", xt, Ainv, xt))
    cov_trend = s**2 * Ainv[:, 1, 1]
    return beta, eta_t, var_pred, s, cov_trend


def _fit_chunk(
    rows, idx, safe, M_all, n_obs, y, offset, per_year, params, family, out, seasonal, trend, uselog
) -> None:
    idx_r, safe_r, M = idx[rows], safe[rows], M_all[rows]
    X, xt = _design(idx_r.astype(float), rows.astype(float), per_year)
    if params.baseline_half_life_years:
        age = (rows[:, None] - idx_r) / per_year
        tw = 0.5 ** (age / params.baseline_half_life_years)
    else:
        tw = np.ones(idx_r.shape)
    seas = n_obs[rows] >= 0.9 * params.seasonal_min_years * per_year
    trd = n_obs[rows] >= 0.9 * params.trend_min_years * per_year
    Yraw = np.where(M, y[safe_r], 0.0)

    if family == "counts":
        Y = np.maximum(Yraw, 0.0)
        Off = np.where(M, offset[safe_r], 0.0)
        ot = offset[rows]
    else:
        big = np.where(M, Yraw, np.nan)
        lo = np.nanmin(big, axis=1)
        logr = (lo >= 0) & (y[rows] >= 0)
        pos = np.where(M & (Yraw > 0), Yraw, np.nan)
        med = _nanmedian(pos)
        c = np.where(np.isfinite(med), 0.1 * med, 1.0)
        G = np.where(logr[:, None], np.log(np.maximum(Yraw, 0.0) + c[:, None]), Yraw)
        scale = _nanmedian(np.where(M, np.abs(Yraw), np.nan))
        floor = np.where(logr, MIN_LOG_SD, 1e-3 * np.maximum(scale, 1e-9))

    def run(sel: np.ndarray, seas_f: np.ndarray, trd_f: np.ndarray):
        flags = np.stack([np.ones_like(seas_f), trd_f, seas_f, seas_f], axis=-1).astype(float)
        Xs = X[sel] * flags[:, None, :]
        xts = xt[sel] * flags
        n_par = 1 + trd_f.astype(int) + 2 * seas_f.astype(int)
        if family == "counts":
            return _fit_counts(Y[sel], Off[sel], M[sel], Xs, xts, ot[sel], n_par, params, tw[sel])
        return _fit_continuous(G[sel], M[sel], Xs, xts, n_par, params, floor[sel], tw[sel])

    all_rows = np.arange(len(rows))
    beta, eta_t, var_t, disp, cov_trend = run(all_rows, seas, trd)
    # Farrington's rule, relaxed: keep the trend only when significant and the prediction
    # stays below TREND_HEADROOM times the window's maximum (the strict rule drops real
    # growth trends and then the baseline lags behind).
    z_trend = beta[:, 1] / np.sqrt(np.maximum(cov_trend, 1e-300))
    if family == "counts":
        lim_hi = np.log(np.maximum((Y / np.exp(Off) * M).max(1), 1e-12))
        pred_rate = eta_t - ot
    else:
        lim_hi = np.nanmax(np.where(M, G, np.nan), axis=1)
        pred_rate = eta_t
    drop = trd & (
        (np.abs(z_trend) < params.trend_z) | (pred_rate > lim_hi + np.log(TREND_HEADROOM))
    )
    trd2 = trd & ~drop
    redo = np.flatnonzero(drop)
    if len(redo):
        _, e2, v2, d2, _ = run(redo, seas[redo], trd2[redo])
        eta_t[redo], var_t[redo], disp[redo] = e2, v2, d2

    if family == "counts":
        mu = np.maximum(np.exp(np.clip(eta_t, -30, 30)), MIN_EXPECTED)
        out["expected"][rows] = mu
        out["variance"][rows] = disp * mu + mu**2 * var_t
        out["shift"][rows] = 0.0
    else:
        out["expected"][rows] = eta_t
        out["variance"][rows] = var_t
        out["shift"][rows] = c
        uselog[rows] = logr
    out["dispersion"][rows] = disp
    if family == "counts":
        out["window_max"][rows] = (Y / np.exp(Off) * M).max(1)
    else:
        out["window_max"][rows] = np.nanmax(np.where(M, Yraw, np.nan), axis=1)
    seasonal[rows] = seas
    trend[rows] = trd2


def _make(family, out, n_obs, seasonal, trend, uselog) -> Baseline:
    return Baseline(
        family=family,
        expected=out["expected"],
        variance=out["variance"],
        dispersion=out["dispersion"],
        n_obs=n_obs,
        seasonal=seasonal,
        trend=trend,
        shift=out["shift"],
        uselog=uselog,
        window_max=out["window_max"],
    )


def fit_baseline(
    y: np.ndarray,
    per_year: float,
    params: DetectionParams,
    *,
    family: str,
    offset: np.ndarray | None = None,
) -> Baseline:
    """The baseline of every period of ``y`` (a regular grid; NaN = missing).

    ``offset`` (counts only) is the log denominator of each period.
    """
    n = len(y)
    nan = np.full(n, np.nan)
    out = {k: nan.copy() for k in ("expected", "variance", "dispersion", "shift", "window_max")}
    n_obs = np.zeros(n, dtype=np.int64)
    seasonal = np.zeros(n, dtype=bool)
    trend = np.zeros(n, dtype=bool)
    uselog = np.zeros(n, dtype=bool)
    if offset is None:
        offset = np.zeros(n)
    ok = np.isfinite(y) & np.isfinite(offset)
    if n == 0:
        return _make(family, out, n_obs, seasonal, trend, uselog)

    idx, valid = _windows(n, per_year, params)
    safe = np.where(valid, idx, 0)
    M_all = valid & ok[safe]
    n_obs = M_all.sum(1)
    rows = np.flatnonzero(ok & (n_obs >= params.min_baseline_points))
    if len(rows) == 0:
        return _make(family, out, n_obs, seasonal, trend, uselog)
    # Rows are independent: fitting in chunks bounds memory on long daily series.
    for lo in range(0, len(rows), CHUNK):
        _fit_chunk(
            rows[lo : lo + CHUNK],
            idx,
            safe,
            M_all,
            n_obs,
            y,
            offset,
            per_year,
            params,
            family,
            out,
            seasonal,
            trend,
            uselog,
        )
    return _make(family, out, n_obs, seasonal, trend, uselog)
