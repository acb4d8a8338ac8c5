"""Expected values from data strictly before a period: baseline fits at refit points.

The baseline is refitted at *refit points*, every ``refit_weeks`` of time on the grid
(every 4th weekly period, every monthly period, every 28th daily one; positions counted
from the series' first period). The fit at refit point ``r`` uses the window
``r - guard - L + 1 .. r - guard`` (``L`` = ``baseline_years`` of periods, ``guard`` =
``guard_weeks`` of time), so a change under way does not raise its own expectation, and
it is extrapolated to any later period. Nothing at or after ``r - guard`` is used, so a
fit is the same on any longer series (what makes replay, detect and the incremental
state agree).

Two model families share one log-linear design: intercept, a linear time trend (centred
on the window), a yearly sine/cosine pair and, with a year more of history, a half-year
pair (Höhle & Paul 2008, CSDA 52:4357, use harmonics; a second pair follows the
sharper, asymmetric yearly patterns a single pair cannot):

* **counts** (and positives with a denominator, as a log offset): a quasi-Poisson
  log-linear GLM by iteratively reweighted least squares, as in the Farrington algorithm
  (Farrington et al. 1996, J R Stat Soc A 159:547) and its improved version (Noufaily
  et al. 2013, Stat Med 32:1206): overdispersion ``phi`` from the Pearson statistic
  (floored at ``min_dispersion``); Anscombe residuals standardised with the leverage,
  ``r = 3/2 (y^(2/3) - mu^(2/3)) / (mu^(1/6) sqrt(phi (1 - h)))``, and points above
  ``reweight_threshold`` down-weighted by ``(threshold / r)^2`` before the refit.
  The trend is never dropped: its coefficient is shrunk by ``z^2 / (z^2 + trend_z^2)``
  (``z`` its Wald statistic), and set to zero only when the extrapolation would exceed
  1.5 times the window's largest rate (Farrington's guard against runaway trends).
* **continuous values** (indexes, concentrations, quantities, rates without a
  denominator): the same design by weighted least squares on ``log(y + c)`` (``c`` a
  tenth of the window's median positive value; the identity scale when the window has
  negative values) and the same down-weighting (points standardised by a robust
  scale, the MAD). The residual scale is that of the refit over every point, each
  residual winsorised at ``SCALE_CAP`` times the threshold (a point the fit
  down-weights still counts in full below that: on a rounded index it is usually one
  quantum, not an outlier). The scale is floored at 5 % on the log scale and at half
  a *quantum* (the smallest step between
  distinct window values, at the window's median level): quantised indexes (a Trends
  series rounded to whole numbers, or to halves after a renormalisation) cannot make a
  one-step wobble look significant.

Assumptions: the log mean is linear in time with a smooth yearly cycle over the window;
periods are independent given the mean (no autocorrelation model).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from detectors.params import DetectionParams

#: Smallest expected count: keeps all-zero baselines usable.
MIN_EXPECTED = 0.1
#: Largest variance of the fitted log mean used in the predictive variance.
MAX_VAR_ETA = 0.5
#: A trend may extrapolate at most this factor above the highest baseline value.
TREND_HEADROOM = 1.5
#: Smallest residual sd on the log scale (5 %): keeps constant series usable.
MIN_LOG_SD = 0.05
#: Other values: residuals beyond this many times ``reweight_threshold`` (standardised
#: by the robust scale) count in the residual scale as if at that bound (winsorised);
#: the rest count in full, including those the fit down-weights.
SCALE_CAP = 2.0
#: Refit points fitted at once (memory: CHUNK x window x parameters floats).
CHUNK = 512
#: Columns of the design: intercept, trend, two harmonic pairs.
N_PAR = 6


def periods_of(weeks: float, per_year: float, minimum: int = 0) -> int:
    """A duration in weeks as a whole number of periods (at least ``minimum``)."""
    return max(minimum, round(weeks * 7.0 / (365.25 / per_year)))


@dataclass(frozen=True)
class Layout:
    """How the grid is cut into windows for one series (all in periods)."""

    per_year: float
    window: int  # L
    guard: int
    refit: int  # R

    @classmethod
    def of(cls, per_year: float, params: DetectionParams) -> Layout:
        return cls(
            per_year=per_year,
            window=max(params.min_baseline_points, round(params.baseline_years * per_year)),
            guard=periods_of(params.guard_weeks, per_year),
            refit=periods_of(params.refit_weeks, per_year, minimum=1),
        )

    def refit_point(self, t):
        """The refit point whose fit judges position ``t`` (the latest at or before it)."""
        return (np.asarray(t) // self.refit) * self.refit

    @property
    def history(self) -> int:
        """Positions before a refit point that its fit reads."""
        return self.guard + self.window


@dataclass(frozen=True)
class Fits:
    """Baseline fits at refit points (row ``i`` belongs to grid position ``pos[i]``).

    counts: ``scale`` is the dispersion ``phi``; the covariance of ``beta`` is
    ``phi * ainv``. continuous: ``scale`` is the residual sd ``s`` on the transformed
    scale ``log(y + shift)`` (or ``y`` where ``uselog`` is false); covariance
    ``s^2 * ainv``. ``ok`` is false where the window held too few observations.
    """

    family: str
    pos: np.ndarray
    ok: np.ndarray
    beta: np.ndarray
    ainv: np.ndarray
    flags: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    uselog: np.ndarray
    window_max: np.ndarray
    n_obs: np.ndarray
    trend_kept: np.ndarray  # fraction of the fitted trend kept after shrinkage

    def take(self, rows) -> Fits:
        return Fits(self.family, *(getattr(self, name)[rows] for name in _ARRAYS))

    @classmethod
    def concat(cls, family: str, parts: list[Fits]) -> Fits:
        if not parts:
            return empty_fits(family)
        return cls(
            family, *(np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS)
        )

    def to_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """JSON-able (floats are stored exactly as their repr); with ``arrays`` each
        ``data`` is left a flat numpy array (for :mod:`warnd.statecodec`)."""
        out: dict[str, Any] = {"family": self.family}
        for name in _ARRAYS:
            a = getattr(self, name)
            flat = a.ravel()
            out[name] = {"dtype": _dtype_name(a.dtype), "shape": list(a.shape),
                         "data": flat if arrays else flat.tolist()}
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, as they are (what :meth:`from_arrays` takes)."""
        return {name: getattr(self, name) for name in _ARRAYS}

    @classmethod
    def from_arrays(cls, family: str, arrays: dict[str, np.ndarray]) -> Fits:
        """From arrays by name of the right shapes and dtypes, taken as they are (as
        :mod:`warnd.statecodec` reads a stored state's)."""
        return cls(family, *(arrays[name] for name in _ARRAYS))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fits:
        vals = []
        for name in _ARRAYS:
            e = d[name]
            data = e["data"]
            if type(data) is not np.ndarray or _dtype_name(data.dtype) != e["dtype"]:
                data = np.asarray(data, dtype=e["dtype"])
            vals.append(data.reshape(e["shape"]))
        return cls(d["family"], *vals)


_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dt: np.dtype) -> str:
    """``str(dt)`` (numpy's is slow enough to show in a cycle of many series)."""
    name = _DTYPE_NAMES.get(dt)
    if name is None:
        name = _DTYPE_NAMES[dt] = str(dt)
    return name


#: The array fields of :class:`Fits`, in order.
_ARRAYS = tuple(f.name for f in fields(Fits)[1:])


def empty_fits(family: str) -> Fits:
    z = np.zeros(0)
    return Fits(
        family,
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=bool),
        np.zeros((0, N_PAR)),
        np.zeros((0, N_PAR, N_PAR)),
        np.zeros((0, N_PAR)),
        z,
        z,
        z,
        np.zeros(0, dtype=bool),
        z,
        np.zeros(0, dtype=np.int64),
        z,
    )


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN; NaN for an all-NaN row (without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=1)


@functools.lru_cache(maxsize=16)
def _trig(bits: int, per_year: float) -> tuple[np.ndarray, np.ndarray]:
    """Yearly sine and cosine of grid positions ``0 .. 2**bits - 1`` (computed once)."""
    a = 2 * np.pi * np.arange(2**bits, dtype=float) / per_year
    return np.sin(a), np.cos(a)


def _columns(s: np.ndarray, centre: np.ndarray, per_year: float) -> tuple[Any, ...]:
    """The design's six columns at positions ``s`` before the fits' flags: the intercept
    (1.0), the centred time and the two harmonic pairs (the time with ``centre``'s
    shape broadcast in, the harmonics with ``s``'s)."""
    s = np.asarray(s, dtype=float)
    tau = (s - centre) / per_year
    si = np.maximum(s.astype(np.int64), 0)  # positions before the grid carry no weight
    sin_t, cos_t = _trig(int(si.max(initial=0)).bit_length(), per_year)
    s1, c1 = sin_t[si], cos_t[si]
    return 1.0, tau, s1, c1, 2 * s1 * c1, c1 * c1 - s1 * s1


def design(s: np.ndarray, centre: np.ndarray, flags: np.ndarray, per_year: float) -> np.ndarray:
    """Design rows for positions ``s`` (any shape ``S``) under fits with ``centre``/``flags``
    broadcast to ``S`` (flags with a trailing parameter axis)."""
    flags = np.asarray(flags, dtype=float)
    X = np.empty(np.broadcast_shapes(np.shape(s) + (N_PAR,), flags.shape))
    # each column times its flag, written in place (equal to stacking, then multiplying)
    for i, col in enumerate(_columns(s, centre, per_year)):
        np.multiply(col, flags[..., i], out=X[..., i])
    return X


def design_columns(s: np.ndarray, centre: np.ndarray, per_year: float) -> np.ndarray:
    """The design's columns before the fits' flags, with the parameter axis first:
    ``(6, *S)`` for positions ``s`` (any shape ``S``) and ``centre`` broadcast to it,
    each column contiguous (what sums along the positions read fastest); :func:`design`
    multiplies column ``i`` by ``flags[..., i]``."""
    cols = np.empty((N_PAR, *np.broadcast_shapes(np.shape(s), np.shape(centre))))
    for i, col in enumerate(_columns(s, centre, per_year)):
        cols[i] = col
    return cols


#: The 21 distinct entries ``(a, b)``, ``a <= b``, of a symmetric 6 x 6 matrix.
_IU = np.triu_indices(N_PAR)


@functools.lru_cache(maxsize=16)
def _basis(L: int, per_year: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The design of a window's ``L`` positions before it is turned to the window's
    place in the year: for ``j = 0 .. L - 1``, the intercept, the centred time
    ``(j - (L - 1) / 2) / per_year`` and the two harmonic pairs at the angle
    ``2 pi j / per_year``; with its products ``x_a x_b`` for ``a <= b`` (the 21
    distinct entries of ``x xᵀ``) and all 36 of them. Made once per layout (a window
    fitted on its last ``w`` positions reads the last ``w`` rows)."""
    j = np.arange(L, dtype=float)
    a = 2 * np.pi * j / per_year
    X0 = np.stack([np.ones(L), (j - (L - 1) / 2.0) / per_year,
                   np.sin(a), np.cos(a), np.sin(2 * a), np.cos(2 * a)], axis=1)
    P21 = np.ascontiguousarray(X0[:, _IU[0]] * X0[:, _IU[1]])
    P36 = np.ascontiguousarray((X0[:, :, None] * X0[:, None, :]).reshape(L, -1))
    for arr in (X0, P21, P36):
        arr.setflags(write=False)
    return X0, P21, P36


class _Windows:
    """The design of windows of one width, each the shared basis (:func:`_basis`, its
    last ``width`` rows) times a 6 x 6 matrix ``T`` of its own: the harmonic pairs
    turned by the angle of the window's first position (``sin(a + b) = sin a cos b +
    cos a sin b``) and each column times its flag. So ``X = X0 T``, and the weighted
    sums a fit needs are ``Tᵀ (X0ᵀ W X0) T``: one product of each window's weights
    with the basis' 21 products instead of a ``window x 6`` design per window. Every
    product is made one window at a time (a stacked product), so a window's
    arithmetic does not depend on the other windows fitted with it."""

    def __init__(self, start: np.ndarray, flags: np.ndarray, width: int, L: int,
                 per_year: float):
        self.X0, self.P21, self.P36 = (arr[L - width:] for arr in _basis(L, per_year))
        m = len(start)
        b = 2 * np.pi * np.asarray(start, float) / per_year
        c1, s1, c2, s2 = np.cos(b), np.sin(b), np.cos(2 * b), np.sin(2 * b)
        T = np.zeros((m, N_PAR, N_PAR))
        T[:, 0, 0] = T[:, 1, 1] = 1.0
        T[:, 2, 2], T[:, 2, 3], T[:, 3, 2], T[:, 3, 3] = c1, -s1, s1, c1
        T[:, 4, 4], T[:, 4, 5], T[:, 5, 4], T[:, 5, 5] = c2, -s2, s2, c2
        self.T = T * np.asarray(flags, float)[:, None, :]
        self.Tt = np.ascontiguousarray(self.T.transpose(0, 2, 1))

    def lin(self, beta: np.ndarray) -> np.ndarray:
        """``X β`` for each window: the basis times ``T β``."""
        u = np.matmul(self.T, beta[:, :, None])
        return np.matmul(self.X0, u)[:, :, 0]

    def solve(self, W: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted least squares of each window: its coefficients and ``(XᵀWX)⁻¹``."""
        a21 = np.matmul(W[:, None, :], self.P21)[:, 0, :]
        A0 = np.empty((len(W), N_PAR, N_PAR))
        A0[:, _IU[0], _IU[1]] = a21
        A0[:, _IU[1], _IU[0]] = a21
        A = np.matmul(np.matmul(self.Tt, A0), self.T)
        ridge = 1e-8 * (A[:, 0, 0] + 1.0)
        A = A + ridge[:, None, None] * np.eye(N_PAR)[None]
        b0 = np.matmul((W * z)[:, None, :], self.X0)[:, 0, :]
        b = np.matmul(self.Tt, b0[:, :, None])
        Ainv = np.linalg.inv(A)
        return np.matmul(Ainv, b)[:, :, 0], Ainv

    def leverage(self, Ainv: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Each point's leverage ``w xᵀ (XᵀWX)⁻¹ x`` (capped at 0.99)."""
        Q = np.matmul(np.matmul(self.T, Ainv), self.Tt)
        q = np.matmul(self.P36, Q.reshape(len(Q), -1, 1))[:, :, 0]
        return np.minimum(W * q, 0.99)


def _down_weight(r: np.ndarray, bound: float) -> np.ndarray:
    """Weights of standardised residuals ``r``: 1 up to ``bound``, ``(bound / r)²``
    beyond it (Farrington's down-weighting; as a scale weight, a winsorised square)."""
    return np.where(r > bound, (bound / np.maximum(r, bound)) ** 2, 1.0)


def _fit_counts(Y, Off, M, X: _Windows, n_par, params, tw):
    exposure = (np.exp(Off) * M).sum(1) if Off.any() else M.sum(1)
    rate = (Y * M).sum(1) / np.maximum(exposure, 1e-12)
    beta = np.zeros((len(Y), N_PAR))
    beta[:, 0] = np.log(np.maximum(rate, 1e-3))
    Mf = M * tw

    def irls(beta, w, iters):
        Ainv = None
        for _ in range(iters):
            eta = X.lin(beta) + Off
            mu = np.exp(np.clip(eta, -30, 30))
            z = (eta - Off) + (Y - mu) / mu
            beta, Ainv = X.solve(w * mu, z)
        return beta, Ainv

    def dispersion(beta, w):
        # Farrington et al. 1996: the weights are rescaled to sum to the (time-weighted)
        # number of points, so down-weighting outliers does not shrink the estimate
        mu = np.exp(np.clip(X.lin(beta) + Off, -30, 30))
        n_w = Mf.sum(1)
        gamma = n_w / np.maximum(w.sum(1), 1e-12)
        num = gamma * (w * (Y - mu) ** 2 / mu).sum(1)
        den = np.maximum(n_w - n_par, 1.0)
        return np.maximum(num / den, params.min_dispersion), mu

    beta, Ainv = irls(beta, Mf, 3)
    phi, mu = dispersion(beta, Mf)
    h = X.leverage(Ainv, Mf * mu)
    mu23 = mu ** (2 / 3)
    r = 1.5 * (Y ** (2 / 3) - mu23) / (np.sqrt(np.sqrt(mu23)) * np.sqrt(phi[:, None] * (1 - h)))
    thr = params.reweight_threshold
    w = Mf * _down_weight(r, thr)
    beta, Ainv = irls(beta, w, 1)
    phi, _ = dispersion(beta, w)
    return beta, Ainv, phi


def _fit_continuous(G, M, X: _Windows, n_par, params, floor, tw):
    W = M * tw
    beta, Ainv = X.solve(W, G)
    res = G - X.lin(beta)
    s = 1.4826 * _nanmedian(np.where(M, np.abs(res), np.nan))
    s = np.maximum(s, floor)
    h = X.leverage(Ainv, W)
    r = res / (s[:, None] * np.sqrt(1 - h))
    thr = params.reweight_threshold
    w = W * _down_weight(np.abs(r), thr)
    beta, Ainv = X.solve(w, G)
    res = G - X.lin(beta)
    # the scale counts every point in full up to SCALE_CAP times the threshold: a
    # point down-weighted in the fit is often just the data's resolution (a quantum
    # of a rounded index), and leaving it out of the scale made sums look significant
    ws = W * _down_weight(np.abs(r), SCALE_CAP * thr)
    s2 = (ws * res**2).sum(1) / np.maximum(W.sum(1) - n_par, 1.0)
    return beta, Ainv, np.maximum(np.sqrt(s2), floor)


def _quantum(V: np.ndarray) -> np.ndarray:
    """Smallest step between distinct finite values of each row (NaN: none)."""
    srt = np.sort(V, axis=1)  # NaN sort last
    d = np.diff(srt, axis=1)
    d = np.where(d > 1e-9 * (np.abs(srt[:, 1:]) + 1e-9), d, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(d, axis=1) if d.shape[1] else np.full(len(V), np.nan)


def window_positions(rp: np.ndarray, lay: Layout) -> np.ndarray:
    """``(len(rp), L)``: the grid positions the fit at each refit point reads, oldest
    first (negative: before the series' start)."""
    last = np.asarray(rp) - lay.guard
    return last[:, None] - np.arange(lay.window)[None, ::-1]


def gathered_windows(rp, y: np.ndarray, offset: np.ndarray, lay: Layout):
    """What :func:`fit_windows` reads for refit points ``rp`` of one series (``y`` and
    ``offset`` on its grid): the windows' positions, values, log denominators, and
    whether each position is in the series."""
    idx = window_positions(rp, lay)
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    return idx, y[safe], offset[safe], valid


def _fit_rows(rp, y, offset, lay: Layout, params, family) -> Fits:
    idx, yw, offw, valid = gathered_windows(rp, y, offset, lay)
    return fit_windows(rp, idx, yw, offw, valid, lay, params, family)


#: Windows are fitted on their used columns only, rounded up to a multiple of this
#: (a window's unused start, before the series began, adds nothing to any sum).
WIDTH_STEP = 32


def fit_windows(rp, idx, yw, offw, valid, lay: Layout, params, family) -> Fits:
    """Baseline fits at refit points ``rp`` from their windows already gathered:
    ``yw``/``offw`` the values and log denominators at positions ``idx``
    (:func:`window_positions`), ``valid`` false where a position is not in the series.
    Rows are independent: the windows may come from different series (one layout).

    Each row is fitted on its columns from its first observed one, rounded up to a
    multiple of :data:`WIDTH_STEP` (rows of one width together): the arithmetic a row
    gets depends on that row alone, so a fit is the same whichever rows it is made with.
    """
    rp = np.asarray(rp, dtype=np.int64)
    yw, offw = np.asarray(yw, dtype=float), np.asarray(offw, dtype=float)
    M = valid & np.isfinite(yw) & np.isfinite(offw)
    L = M.shape[1]
    used = np.where(M.any(1), L - M.argmax(1), 0)
    width = np.minimum(np.maximum(-(-used // WIDTH_STEP), 1) * WIDTH_STEP, L)
    groups = np.unique(width)
    if len(groups) == 1:
        c = L - int(groups[0])
        return _fit_block(rp, np.ascontiguousarray(idx[:, c:]), np.ascontiguousarray(yw[:, c:]),
                          np.ascontiguousarray(offw[:, c:]), np.ascontiguousarray(M[:, c:]),
                          lay, params, family)
    order, parts = [], []
    for w in groups.tolist():
        rows = np.flatnonzero(width == w)
        c = L - w
        parts.append(_fit_block(rp[rows], idx[rows, c:], yw[rows, c:], offw[rows, c:],
                                M[rows, c:], lay, params, family))
        order.append(rows)
    return Fits.concat(family, parts).take(np.argsort(np.concatenate(order), kind="stable"))


def _fit_block(rp, idx, yw, offw, M, lay: Layout, params, family) -> Fits:
    """:func:`fit_windows` for rows of one width (``M``: the positions used)."""
    L, py = lay.window, lay.per_year
    last = rp - lay.guard
    n_obs = M.sum(1)
    m = len(rp)
    centre = (last - (L - 1) / 2.0).astype(float)
    seas1 = n_obs >= 0.9 * params.seasonal_min_years * py
    seas2 = n_obs >= 0.9 * (params.seasonal_min_years + 1.0) * py
    trd = n_obs >= 0.9 * params.trend_min_years * py
    flags = np.stack([np.ones(m, bool), trd, seas1, seas1, seas2, seas2], axis=-1).astype(float)
    X = _Windows(last - (L - 1), flags, idx.shape[1], L, py)
    n_par = flags.sum(1)
    Yraw = np.where(M, yw, 0.0)
    if params.baseline_half_life_years:
        tw = 0.5 ** ((rp[:, None] - idx) / py / params.baseline_half_life_years)
    else:
        tw = np.ones(idx.shape)
    shift = np.zeros(m)
    uselog = np.zeros(m, dtype=bool)
    if family == "counts":
        Y = np.maximum(Yraw, 0.0)
        Off = np.where(M, offw, 0.0)
        beta, Ainv, scale = _fit_counts(Y, Off, M, X, n_par, params, tw)
        rates = np.where(M, Y / np.exp(Off), 0.0)
        window_max = rates.max(1)
        lim_hi = np.log(np.maximum(window_max, 1e-12))
        cov_scale = scale
    else:
        big = np.where(M, Yraw, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanmin(big, axis=1)
            window_max = np.nanmax(big, axis=1)
        uselog = ~(lo < 0)
        med = _nanmedian(np.where(M & (Yraw > 0), Yraw, np.nan))
        shift = np.where(np.isfinite(med), 0.1 * med, 1.0)
        G = np.where(uselog[:, None], np.log(np.maximum(Yraw, 0.0) + shift[:, None]), Yraw)
        level = _nanmedian(np.where(M, np.abs(Yraw), np.nan))
        level = np.where(np.isfinite(level), level, 0.0)
        q = _quantum(big)
        q = np.where(np.isfinite(q), q, 0.0)
        qfloor = np.where(
            uselog, 0.5 * np.log1p(q / (level + shift)), 0.5 * q
        )
        floor = np.where(uselog, MIN_LOG_SD, 1e-3 * np.maximum(level, 1e-9))
        floor = np.maximum(floor, qfloor)
        beta, Ainv, scale = _fit_continuous(G, M, X, n_par, params, floor, tw)
        lim_hi = np.log(np.maximum(window_max, 1e-12) + shift)
        cov_scale = scale**2
    # shrink the trend (never drop it on a test); Farrington's guard against runaway trends
    se = np.sqrt(np.maximum(cov_scale * Ainv[:, 1, 1], 1e-300))
    z = beta[:, 1] / se
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = np.where(flags[:, 1] > 0, z**2 / np.maximum(z**2 + params.trend_z**2, 1e-300), 0.0)
    beta = beta.copy()
    beta[:, 1] *= keep
    at_r = design(rp.astype(float), centre, flags, py)
    pred = np.einsum("rp,rp->r", at_r, beta)
    if family == "counts" or uselog.any():
        runaway = (pred > lim_hi + math.log(TREND_HEADROOM)) & (
            (family == "counts") | uselog
        )
        beta[runaway, 1] = 0.0
        keep = np.where(runaway, 0.0, keep)
    # the trend's uncertainty is the mean squared error of the shrunken estimate c b
    # (c = keep), c^2 v + (1 - c)^2 beta^2 with beta^2 estimated by b^2 = z^2 v (c v at
    # the MSE-optimal trend_z = 1); its covariances with the other coefficients scale
    # by c. The bias of the shrinkage is uncertainty of the extrapolated baseline.
    mse = np.where(keep > 0, keep**2 + (1 - keep) ** 2 * z**2, 0.0)
    Ainv = Ainv.copy()
    v_tr = Ainv[:, 1, 1].copy()
    Ainv[:, 1, :] *= keep[:, None]
    Ainv[:, :, 1] *= keep[:, None]
    Ainv[:, 1, 1] = v_tr * mse
    # exactly symmetric, as (XᵀWX)⁻¹ is (the inverse's rounding leaves its two triangles
    # up to about 1e-12 apart): the stored state keeps one triangle (warnd.statecodec)
    Ainv = 0.5 * (Ainv + Ainv.transpose(0, 2, 1))
    return Fits(
        family=family,
        pos=rp.astype(np.int64),
        ok=n_obs >= params.min_baseline_points,
        beta=beta,
        ainv=Ainv,
        flags=flags,
        centre=centre,
        scale=scale,
        shift=shift,
        uselog=uselog,
        window_max=window_max,
        n_obs=n_obs.astype(np.int64),
        trend_kept=keep,
    )


def fit_points(
    y: np.ndarray,
    positions: np.ndarray,
    lay: Layout,
    params: DetectionParams,
    *,
    family: str,
    offset: np.ndarray | None = None,
) -> Fits:
    """Baseline fits at grid ``positions`` of ``y`` (a regular grid; NaN = missing).

    ``offset`` (counts only) is the log denominator of each period. Each fit reads only
    ``y[r - guard - L + 1 : r - guard + 1]``.
    """
    positions = np.asarray(positions, dtype=np.int64)
    if offset is None:
        offset = np.zeros(len(y))
    parts = []
    for lo in range(0, len(positions), CHUNK):
        parts.append(_fit_rows(positions[lo : lo + CHUNK], y, offset, lay, params, family))
    return Fits.concat(family, parts)


def predict(fits: Fits, rows: np.ndarray, s: np.ndarray, per_year: float):
    """Prediction of fit ``rows`` at positions ``s``: the linear predictor (without
    offset; on the transformed scale for continuous fits), its variance, the noise
    scale (``phi`` or the residual sd) and the design rows ``X`` it used (for
    :func:`window_var`). ``rows`` names the fit of each position (the shape of ``s``)
    or of each row of positions (``s``'s shape without its last axis: one fit judges
    a whole window, computed without gathering its covariance per position)."""
    rows = np.asarray(rows)
    r = rows[..., None] if rows.ndim == np.ndim(s) - 1 else rows
    X = design(s, fits.centre[r], fits.flags[r], per_year)
    eta = (X * fits.beta[r]).sum(-1)
    return eta, predictor_variance(fits, rows, X), np.broadcast_to(fits.scale[r], np.shape(s)), X


def predictor_variance(fits: Fits, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The variance of the fitted linear predictor ``Xᵀβ``: ``Xᵀ Cov X`` with the fits'
    unscaled covariance times ``phi`` (counts, capped) or the residual variance.
    ``rows``: the fit of each design row, or of each window of rows (see :func:`predict`)."""
    rows = np.asarray(rows)
    if rows.ndim == X.ndim - 2:  # one fit per window: (..., M, p) @ (..., p, p)
        q = (np.matmul(X, fits.ainv[rows]) * X).sum(-1)
        sc = fits.scale[rows][..., None]
    else:
        q = (np.matmul(X[..., None, :], fits.ainv[rows])[..., 0, :] * X).sum(-1)
        sc = fits.scale[rows]
    if fits.family == "counts":
        return np.minimum(sc * q, MAX_VAR_ETA)
    return sc**2 * q


def window_var(fits: Fits, rows: np.ndarray, X: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """For windows of shape ``(K, M)`` (row ``k`` a window start, column ``d`` its
    ``d``-th period; ``X`` their design rows, ``rows`` their fits): the variance of the
    fitted log of each window's weighted total ``sum_{j<=d} weight_j exp(eta_j)`` (counts,
    ``weight`` the expected counts) or of its weighted mean of ``eta`` (continuous,
    ``weight`` 1 for observed periods; ``rows`` per position or per window, as in
    :func:`predict`), by the delta method: ``x̄ᵀ Cov x̄`` with ``x̄`` the
    weighted mean design row of the window. This is the estimation variance that
    Farrington's threshold adds, for a sum of periods: errors of the seasonal terms
    partly cancel over a window, those of the level and the trend do not."""
    w = np.asarray(weight, float)
    cw = np.cumsum(w, axis=1)
    cx = np.cumsum(w[..., None] * X, axis=1)
    xbar = cx / np.where(cw > 0, cw, 1.0)[..., None]
    return predictor_variance(fits, rows, xbar)
