"""Detection benchmark: simulated weekly drug-trend counts, warnd against classic methods.

Run: ``python -m benchmarks.detection [--quick]``; ``--null-reps N --seeds 1,2,3`` gives
only warnd's false-alert rate, on the event-free series of ``N`` replicates per seed (and
the renormalised index cells of ``N`` replicates, detection included).

Simulation in the style of Noufaily et al. 2013 (Stat Med 32:1206), adapted: 260 weeks
(5 years) of counts with mean ``level · exp(trend·years + seasonal·sin(2πt/52.18))``,
Poisson (φ = 1) or negative binomial with variance ``φ·μ`` (φ = 2); levels 2 to 150
per week, with and without a trend (+10 %/year) and a yearly cycle (amplitude 0.4 on
the log scale). Into each series one event is injected at a week drawn in the last two
years (weeks 164-234): a sustained step x1.5/x2/x3, a 12-week linear ramp to x1.5/x2/x3
then sustained, a one-week spike x8 or a one-week drop x0.5; ``none`` series have no
event. Only the last two years (weeks 156-259) are scored.

Every method's per-week findings go through the same episode rules
(:class:`detectors.episodes.EpisodeTracker`, default params), so the alert counts are
comparable. Methods:

* ``warnd``: :func:`detectors.engine.replay`. A step or ramp counts as detected only by
  a *trend* alert (a spike alert at the step does not count).
* ``EARS C2`` / ``EARS C3`` (Hutwagner et al. 2003/2005): 7-week baseline with a 2-week
  lag; C2 alarms when ``(y - m)/s > 3`` (s floored at 0.5); C3 when the sum of
  ``max(0, C2 - 1)`` over the last 3 weeks exceeds 2.
* ``Noufaily-Farrington``: a compact Farrington-flexible variant (Farrington 1996 with
  Noufaily 2013's improvements): reference weeks ``t - 52k + j`` (k = 1..3, |j| <= 3),
  quasi-Poisson log-linear fit with trend kept only when significant (|z| > 1.96) and
  not extrapolating above the references, Anscombe residuals > 2.58 down-weighted,
  negative binomial plug-in threshold at alpha = 0.005; no alarm with fewer than 5 counts in
  the last 4 weeks.
* ``ruptures BIC``: at every week ``KernelCPD(kernel="linear")`` on the whole prefix with
  the textbook BIC penalty ``2·s²·ln n`` (s from differences); an alarm while the last
  change point is at most 26 weeks old and the last segment's mean is 10 % or more above
  the previous one.

The classic methods have one alarm kind, reported as ``trend``; for them any alert
counts as a detection and any alert at or after a spike counts as "spike raised as
trend".

Extra cells, each run with every seed: low counts and steep trends (levels 1 and 3 a
week, trends -20 % and +25 %/year, same events); monthly positivity series with a
denominator (:func:`rate_cells`: a x1.5 or x2 rise of positivity at ~100 positives a
month, or only the number of tests doubling); renormalised, quantised Google-Trends-like
index series (:func:`index_cells`). ``--seeds`` runs independent replicates; the
detector's parameters were chosen on the default seed only.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import ruptures as rpt
from scipy import stats

from detectors.base import Finding, Series
from detectors.engine import replay
from detectors.episodes import EpisodeTracker
from detectors.params import DetectionParams

N = 260
SCORE_FROM = 156
HORIZON = 26
START = date(2019, 1, 7)
PERIODS = tuple(START + timedelta(weeks=i) for i in range(N))
YEARS_SCORED = (N - SCORE_FROM) / 52.18
EVENTS = [
    ("none", 1.0),
    ("step", 1.5),
    ("step", 2.0),
    ("step", 3.0),
    ("ramp", 1.5),
    ("ramp", 2.0),
    ("ramp", 3.0),
    ("spike", 8.0),
    ("drop", 0.5),
]
LEVELS = [2, 5, 10, 30, 60, 150]
#: Extra cells: low counts (at most 3 a week) and steeper trends, scored like the main grid.
EXTRA_LEVELS = [1, 3]
EXTRA_TRENDS = [-0.2, 0.25]


def simulate(
    rng: np.random.Generator,
    level: float,
    seasonal: float,
    trend: float,
    phi: float,
    event: str,
    size: float,
    onset: int,
) -> np.ndarray:
    t = np.arange(N)
    mu = mean_of(level, seasonal, trend)
    mult = np.ones(N)
    if event == "step":
        mult[onset:] = size
    elif event == "ramp":
        ramp = np.minimum((t[onset:] - onset + 1) / 12.0, 1.0)
        mult[onset:] = 1 + (size - 1) * ramp
    elif event in ("spike", "drop"):
        mult[onset] = size
    return _counts(rng, mu * mult, phi)


def mean_of(level: float, seasonal: float, trend: float) -> np.ndarray:
    """The weekly mean before any event: ``level · exp(trend·years + seasonal·sin(2πt/52.18))``."""
    t = np.arange(N)
    return level * np.exp(trend * t / 52.18 + seasonal * np.sin(2 * np.pi * t / 52.18))


def _counts(rng: np.random.Generator, mu: np.ndarray, phi: float) -> np.ndarray:
    """Counts with mean ``mu``: Poisson, or negative binomial with variance ``phi``
    times the mean."""
    if phi <= 1.0:
        return rng.poisson(mu).astype(float)
    r = mu / (phi - 1)
    return rng.negative_binomial(r, r / (r + mu)).astype(float)


def _finding(t: int, rel: float, kind: str = "trend") -> Finding:
    return Finding(
        source="sim",
        substance="x",
        kind=kind,
        direction="increase",
        onset=PERIODS[t],
        detected_at=PERIODS[t],
        level_before=1.0,
        level_after=1.0 + rel,
        relative_change=rel,
        strength=1.0,
        category=2 if rel >= 0.5 else 1,
    )


# --- methods: each returns findings per week for weeks SCORE_FROM..N-1 ------------------


def m_warnd(y: np.ndarray, params: DetectionParams | None = None) -> list[list[Finding]]:
    s = Series(source="sim", substance="x", periods=PERIODS, values=y)
    return replay(s, params or DetectionParams())[SCORE_FROM:]


def _ears(y: np.ndarray, c3: bool) -> list[list[Finding]]:
    c2 = np.full(N, np.nan)
    for t in range(9, N):
        base = y[t - 9 : t - 2]
        m, s = base.mean(), max(base.std(ddof=1), 0.5)
        c2[t] = (y[t] - m) / s
    out = []
    for t in range(SCORE_FROM, N):
        m = y[t - 9 : t - 2].mean()
        rel = y[t] / m - 1 if m > 0 else 10.0
        if c3:
            stat = np.nansum(np.maximum(0, c2[t - 2 : t + 1] - 1))
            alarm = stat > 2
        else:
            alarm = c2[t] > 3
        out.append([_finding(t, rel)] if alarm and rel > 0 else [])
    return out


def m_ears_c2(y):
    return _ears(y, False)


def m_ears_c3(y):
    return _ears(y, True)


def m_farrington(y: np.ndarray, alpha: float = 0.005) -> list[list[Finding]]:
    ts = np.arange(SCORE_FROM, N)
    ref = np.array([-round(52.18 * k) + j for k in (1, 2, 3) for j in range(-3, 4)])
    idx = ts[:, None] + ref[None, :]
    Y = y[idx]
    X = np.stack([np.ones_like(idx, dtype=float), idx / 52.18], axis=-1)
    xt = np.stack([np.ones(len(ts)), ts / 52.18], axis=-1)

    def fit(X, w):
        beta = np.zeros((len(ts), X.shape[-1]))
        beta[:, 0] = np.log(np.maximum(Y.mean(1), 0.1))
        for _ in range(8):
            eta = np.einsum("rlp,rp->rl", X, beta)
            mu = np.exp(eta)
            W = w * mu
            z = eta + (Y - mu) / mu
            A = np.einsum("rlp,rl,rlq->rpq", X, W, X) + 1e-9 * np.eye(X.shape[-1])
            b = np.einsum("rlp,rl->rp", X, W * z)
            beta = np.linalg.solve(A, b[..., None])[..., 0]
        mu = np.exp(np.einsum("rlp,rp->rl", X, beta))
        phi = np.maximum((w * (Y - mu) ** 2 / mu).sum(1) / (w.sum(1) - X.shape[-1]), 1.0)
        return beta, np.linalg.inv(A), mu, phi

    w = np.ones_like(Y, dtype=float)
    beta, Ainv, mu, phi = fit(X, w)
    r = 1.5 * (Y ** (2 / 3) - mu ** (2 / 3)) / (mu ** (1 / 6) * np.sqrt(phi)[:, None])
    w = np.where(r > 2.58, (2.58 / np.maximum(r, 2.58)) ** 2, 1.0)
    beta, Ainv, mu, phi = fit(X, w)
    se = np.sqrt(phi * Ainv[:, 1, 1])
    pred_t = np.exp(np.einsum("rp,rp->r", xt, beta))
    keep = (np.abs(beta[:, 1] / se) > 1.96) & (pred_t <= Y.max(1))
    beta0, _, _, phi0 = fit(X[..., :1], w)
    mu0 = np.where(keep, pred_t, np.exp(beta0[:, 0]))
    phi = np.where(keep, phi, phi0)
    over = phi > 1.0 + 1e-9
    size = np.where(over, mu0 / np.where(over, phi - 1, 1), 1.0)
    with np.errstate(all="ignore"):
        u = np.where(
            over,
            stats.nbinom.ppf(1 - alpha, size, size / (size + mu0)),
            stats.poisson.ppf(1 - alpha, mu0),
        )
    out = []
    for i, t in enumerate(ts):
        recent = y[max(0, t - 3) : t + 1].sum()
        alarm = y[t] > u[i] and recent >= 5
        out.append([_finding(int(t), y[t] / mu0[i] - 1)] if alarm else [])
    return out


def m_ruptures(y: np.ndarray) -> list[list[Finding]]:
    out = []
    for t in range(SCORE_FROM, N):
        x = y[: t + 1]
        d = np.diff(x)
        s = np.median(np.abs(d - np.median(d))) / 0.6745 / np.sqrt(2) or (np.std(x) or 1.0)
        bk = (
            rpt.KernelCPD(kernel="linear", min_size=2)
            .fit(x.reshape(-1, 1))
            .predict(pen=2 * s * s * np.log(len(x)))
        )
        cps = [0, *[int(b) for b in bk[:-1]]]
        found = []
        if len(cps) >= 2 and cps[-1] >= t - HORIZON + 1:
            before, after = x[cps[-2] : cps[-1]].mean(), x[cps[-1] :].mean()
            if before > 0 and after >= 1.1 * before:
                found = [_finding(t, after / before - 1)]
        out.append(found)
    return out


METHODS: dict[str, Callable[[np.ndarray], list[list[Finding]]]] = {
    "warnd": m_warnd,
    "EARS C2": m_ears_c2,
    "EARS C3": m_ears_c3,
    "Noufaily-Farrington": m_farrington,
    "ruptures BIC": m_ruptures,
}


def alerts(findings: list[list[Finding]]) -> list[tuple[int, str]]:
    """(week, kind) of every increase message the episode rules send."""
    tracker = EpisodeTracker(params=DetectionParams())
    out = []
    for i, fs in enumerate(findings):
        for d in tracker.update(fs):
            if d.send and d.episode.endswith(":increase") and d.action != "resolve":
                out.append((SCORE_FROM + i, d.episode.split(":")[0]))
    return out


def scenarios(reps: int, seed: int = 20240601, extra: bool = False):
    """The main grid (levels 2-150, trend 0 or +10 %/year) or, with ``extra``, the
    low-count and steep-trend cells (levels 1 and 3 a week, trends -20 % and +25 %/year)."""
    rng = np.random.default_rng(seed)
    levels = EXTRA_LEVELS if extra else LEVELS
    for rep in range(reps):
        for level in levels:
            for seasonal in (0.0, 0.4):
                for trend in (EXTRA_TRENDS if extra else (0.0, 0.1)):
                    for phi in (1.0, 2.0):
                        for event, size in EVENTS:
                            onset = int(rng.integers(SCORE_FROM + 8, N - HORIZON + 1))
                            y = simulate(rng, level, seasonal, trend, phi, event, size, onset)
                            yield dict(
                                rep=rep,
                                level=level,
                                seasonal=seasonal,
                                trend=trend,
                                phi=phi,
                                event=event,
                                size=size,
                                onset=onset,
                                y=y,
                            )


def evaluate(
    reps: int, seed: int = 20240601, methods: dict | None = None, sims: list | None = None
) -> dict[str, dict[str, object]]:
    sims = sims if sims is not None else list(scenarios(reps, seed))
    results: dict[str, dict[str, object]] = {}
    for name, method in (methods or METHODS).items():
        t0 = time.perf_counter()
        detected: dict[str, list[bool]] = {}
        by_level: dict[tuple[str, int], list[bool]] = {}
        delays: dict[str, list[int]] = {}
        false_alerts = 0
        n_null = 0
        spike_trend = []
        spike_seen = []
        drop_alerts = []
        for s in sims:
            sent = alerts(method(s["y"]))
            ev, on = s["event"], s["onset"]
            if ev == "none":
                n_null += 1
                false_alerts += len(sent)
            elif ev in ("step", "ramp"):
                ok_kinds = ("trend",) if name == "warnd" else ("trend", "spike")
                hits = [t for t, k in sent if on <= t < on + HORIZON and k in ok_kinds]
                key = f"{ev} x{s['size']:g}"
                detected.setdefault(key, []).append(bool(hits))
                by_level.setdefault((key, s["level"]), []).append(bool(hits))
                if hits:
                    delays.setdefault(key, []).append(hits[0] - on)
            elif ev == "spike":
                spike_trend.append(any(on <= t < on + HORIZON and k == "trend" for t, k in sent))
                spike_seen.append(any(t == on for t, _ in sent))
            elif ev == "drop":
                drop_alerts.append(any(on <= t < on + HORIZON for t, _ in sent))
        elapsed = time.perf_counter() - t0
        results[name] = dict(
            detected={k: float(np.mean(v)) for k, v in detected.items()},
            all_delays={k: list(v) for k, v in delays.items()},
            delay={k: float(np.median(v)) if v else math.nan for k, v in delays.items()},
            false_per_year=false_alerts / (n_null * YEARS_SCORED),
            spike_as_trend=float(np.mean(spike_trend)),
            spike_alerted=float(np.mean(spike_seen)),
            drop_alerted=float(np.mean(drop_alerts)),
            seconds=elapsed,
            by_level={k: float(np.mean(v)) for k, v in by_level.items()},
            n_series=len(sims),
        )
    return results


# --- monthly positivity series and renormalised index series (warnd only) -----------

MONTHS = 84
MONTH_PERIODS = tuple(date(2019 + i // 12, i % 12 + 1, 1) for i in range(MONTHS))
MONTH_SCORE_FROM = 60
RATE_EVENTS = [("none", 1.0), ("positivity", 1.5), ("positivity", 2.0), ("tests", 2.0)]


def rate_cells(reps: int, seed: int):
    """Monthly lab series: about 2000 tests a month (seasonal +-20 %), positivity 5 % with
    month-to-month noise (sd 5 % on the log scale), so about 100 positives a month. At a
    month drawn in 62-77 the positivity rises x1.5 or x2, or only the number of tests
    doubles (positivity unchanged: must never alert), or nothing happens."""
    rng = np.random.default_rng(seed + 1)
    t = np.arange(MONTHS)
    for rep in range(reps):
        for seasonal in (0.0, 0.2):
            for event, size in RATE_EVENTS:
                for _ in range(4):
                    onset = int(rng.integers(MONTH_SCORE_FROM + 2, MONTHS - 6))
                    tests = 2000 * np.exp(seasonal * np.sin(2 * np.pi * t / 12))
                    p = 0.05 * np.exp(rng.normal(0, 0.05, MONTHS))
                    if event == "tests":
                        tests[onset:] *= size
                    elif event == "positivity":
                        p[onset:] *= size
                    n = rng.poisson(tests).astype(float)
                    y = rng.binomial(n.astype(int), np.minimum(p, 1)).astype(float)
                    yield dict(rep=rep, event=event, size=size, onset=onset, y=y, den=n)


def index_cells(reps: int, seed: int):
    """Weekly Google-Trends-like index of low interest (latent level 2, 5 or 15 on the
    stored scale, lognormal noise sd 0.2, optional yearly cycle), rounded to whole numbers
    with ``<1`` stored as 0.5. From a week drawn in 110-200 the values come from a new
    export whose scale is 0.4x, 0.5x or 2x the old one, put back on the old scale by
    :func:`feeds.trends_csv.rescale_to_overlap` over 52 overlapping weeks (so they are
    quantised in steps of 2.5, 2 or 0.5). Event: none or a step x2 at a week in 164-234."""
    from feeds.trends_csv import rescale_to_overlap

    rng = np.random.default_rng(seed + 2)
    t = np.arange(N)

    def shown(v):
        r = np.round(v)
        return np.where((v > 0) & (r < 1), 0.5, r)

    for rep in range(reps):
        for level in (2.0, 5.0, 15.0):
            for seasonal in (0.0, 0.3):
                for event in ("none", "step"):
                    for f in (0.4, 0.5, 2.0):
                        onset = int(rng.integers(SCORE_FROM + 8, N - HORIZON + 1))
                        lam = level * np.exp(seasonal * np.sin(2 * np.pi * t / 52.18))
                        lam = lam * np.exp(rng.normal(0, 0.2, N))
                        if event == "step":
                            lam[onset:] *= 2.0
                        cut = int(rng.integers(110, 201))
                        old = {PERIODS[i]: float(v) for i, v in enumerate(shown(lam[:cut]))}
                        new_raw = shown(lam[cut - 52 :] * f)
                        new = {PERIODS[cut - 52 + i]: float(v) for i, v in enumerate(new_raw)}
                        scaled = rescale_to_overlap(new, old)
                        y = np.array(
                            [old[p] if i < cut else scaled[p] for i, p in enumerate(PERIODS)]
                        )
                        yield dict(rep=rep, event=event, level=level, onset=onset, y=y, f=f)


#: the recurring peaks: the first ISO week of the year (New Year) and a summer season
#: of one to four weeks from ISO week 27 (festivals), each its own factor
NEW_YEAR, SUMMER = 1, 27
RECURRING_EVENTS = ("none", "spike", "larger")


#: the ISO week of each period
ISO_WEEKS = np.array([p.isocalendar()[1] for p in PERIODS])


def _recurring_grid(reps: int):
    """The cells of the recurring-peak series: ``(rep, level, phi, mean)`` for levels 5,
    20 and 60 a week, flat or with the yearly cycle, Poisson or variance 2x the mean."""
    t = np.arange(N)
    for rep in range(reps):
        for level in (5.0, 20.0, 60.0):
            for seasonal in (0.0, 0.4):
                for phi in (1.0, 2.0):
                    yield rep, level, phi, level * np.exp(seasonal * np.sin(2 * np.pi * t / 52.18))


def _with_peaks(rng: np.random.Generator, mu: np.ndarray):
    """``mu`` with its New Year week and a summer season of one to four weeks from ISO
    week :data:`SUMMER` each 1.5-3 times as high (a copy), and the summer's length."""
    summer = int(rng.integers(1, 5))
    mu = mu.copy()
    iso = ISO_WEEKS
    mu[iso == NEW_YEAR] *= float(rng.uniform(1.5, 3.0))
    mu[(iso >= SUMMER) & (iso < SUMMER + summer)] *= float(rng.uniform(1.5, 3.0))
    return mu, summer


def recurring_cells(reps: int, seed: int):
    """Weekly counts (Poisson or variance 2x the mean; level 5, 20 or 60 a week, flat
    or with the yearly cycle) whose New Year week and a summer season of one to four
    weeks are 1.5-3 times the level every year, and the same as a search index
    (rounded, lognormal noise of sd 0.1 or 0.2 in place of the two count noises).
    Event: none (every message is a false alert); a one-week x8 spike at another week
    drawn in 164-250 (should alert); or the last scored New Year at six times its usual
    peak (should alert)."""
    rng = np.random.default_rng(seed + 3)
    iso = ISO_WEEKS
    for rep, level, phi, base in _recurring_grid(reps):
        for event in RECURRING_EVENTS:
            mu, summer = _with_peaks(rng, base)
            peaks = (NEW_YEAR, *range(SUMMER, SUMMER + summer))
            onset = -1
            if event == "spike":
                free = [i for i in range(SCORE_FROM + 8, N - 10)
                        if all(abs(int(iso[i]) - w) > 1 for w in peaks)]
                onset = int(rng.choice(free))
                mu[onset] *= 8.0
            elif event == "larger":
                onset = int(np.flatnonzero(iso == NEW_YEAR)[-1])
                mu[onset] *= 6.0
            yield dict(rep=rep, event=event, level=level, onset=onset,
                       y=_counts(rng, mu, phi), metric="count")
            noise = rng.normal(0, 0.1 * phi, N)
            yield dict(rep=rep, event=event, level=level, onset=onset,
                       y=np.round(mu * np.exp(noise)), metric="index")


def recurring_rise_cells(reps: int, seed: int):
    """Rises in series with recurring peaks, and the same without them: weekly counts at
    5, 20 or 60 a week (flat or with the yearly cycle, Poisson or variance 2x the mean)
    stepping up x1.5 or x2 at a week drawn in 164-234, once with a New Year week and a
    summer season of one to four weeks at 1.5-3 times the level (as
    :func:`recurring_cells`) and once without them (other random numbers than
    :func:`recurring_cells`, so its figures stay as they were)."""
    rng = np.random.default_rng(seed + 5)
    for rep, _, phi, base in _recurring_grid(reps):
        for size in (1.5, 2.0):
            peaked, _ = _with_peaks(rng, base)
            onset = int(rng.integers(164, 235))
            step = np.where(np.arange(N) >= onset, size, 1.0)
            for peaks, mu in ((True, peaked), (False, base)):
                yield dict(rep=rep, size=size, peaks=peaks, onset=onset,
                           y=_counts(rng, mu * step, phi))


def _rises(reps: int, seed: int, params: DetectionParams) -> dict:
    """Share of :func:`recurring_rise_cells` found by a trend message within
    :data:`HORIZON` weeks of the onset, and the median delay, with and without peaks."""
    found: dict[str, list[bool]] = {}
    delays: dict[str, list[int]] = {}
    for c in recurring_rise_cells(reps, seed):
        s = Series(source="ambulance", substance="x", periods=PERIODS, values=c["y"])
        on = c["onset"]
        hits = [t for t, k in _warnd_alerts(s, params, SCORE_FROM)
                if on <= t < on + HORIZON and k == "trend"]
        key = f"x{c['size']:g} {'with' if c['peaks'] else 'without'} peaks"
        found.setdefault(key, []).append(bool(hits))
        if hits:
            delays.setdefault(key, []).append(hits[0] - on)
    return {k: dict(found=float(np.mean(v)),
                    median_delay=float(np.median(delays[k])) if k in delays else None)
            for k, v in found.items()}


def evaluate_recurring(reps: int, seed: int, params: DetectionParams | None = None) -> dict:
    params = params or DetectionParams()
    tally = {m: dict(false=0, null=0, by_level={}, spike=[], larger=[]) for m in ("count", "index")}
    for c in recurring_cells(reps, seed):
        s = Series(source="ambulance", substance="x", periods=PERIODS, values=c["y"],
                   metric=c["metric"])
        sent = _warnd_alerts(s, params, SCORE_FROM)
        m = tally[c["metric"]]
        if c["event"] == "none":
            m["false"] += len(sent)
            m["null"] += 1
            if sent:
                level = f"level {c['level']:g}"
                m["by_level"][level] = m["by_level"].get(level, 0) + len(sent)
        else:
            m[c["event"]].append(any(t == c["onset"] for t, _ in sent))
    out = {metric: dict(
        false_per_year=m["false"] / (m["null"] * YEARS_SCORED),
        false_alerts=m["false"],
        false_by_level=m["by_level"],
        other_week_spike_alerted=float(np.mean(m["spike"])),
        larger_peak_alerted=float(np.mean(m["larger"])),
    ) for metric, m in tally.items()}
    out["count"]["rises"] = _rises(reps, seed, params)
    return out


def _warnd_alerts(series: Series, params: DetectionParams, offset: int) -> list[tuple[int, str]]:
    found = replay(series, params)
    tracker = EpisodeTracker(params=params)
    out = []
    for i, fs in enumerate(found):
        for d in tracker.update(fs):
            if d.send and d.episode.endswith(":increase") and d.action != "resolve":
                if i >= offset:
                    out.append((i, d.episode.split(":")[0]))
    return out


def evaluate_rates(reps: int, seed: int, params: DetectionParams | None = None) -> dict:
    params = params or DetectionParams()
    det: dict[str, list[bool]] = {}
    delays: dict[str, list[int]] = {}
    false_alerts, null_years, tests_alerted, n_tests = 0, 0.0, 0, 0
    for c in rate_cells(reps, seed):
        s = Series(
            source="lab", substance="x", periods=MONTH_PERIODS, values=c["y"],
            denominators=c["den"],
        )
        sent = _warnd_alerts(s, params, MONTH_SCORE_FROM)
        on = c["onset"]
        if c["event"] == "none":
            false_alerts += len(sent)
            null_years += (MONTHS - MONTH_SCORE_FROM) / 12
        elif c["event"] == "tests":
            n_tests += 1
            tests_alerted += bool(sent and any(t >= on for t, _ in sent))
        else:
            key = f"positivity x{c['size']:g}"
            hits = [t for t, k in sent if on <= t < on + 12 and k == "trend"]
            det.setdefault(key, []).append(bool(hits) and hits[0] - on <= 2)
            if hits:
                delays.setdefault(key, []).append(hits[0] - on)
    return dict(
        within_2_months={k: float(np.mean(v)) for k, v in det.items()},
        median_delay_months={k: float(np.median(v)) for k, v in delays.items()},
        false_per_year=false_alerts / null_years,
        false_alerts=false_alerts,
        tests_doubling_alerted=tests_alerted / max(n_tests, 1),
        tests_doubling_series=f"{tests_alerted} of {n_tests}",
    )


def evaluate_index(reps: int, seed: int, params: DetectionParams | None = None) -> dict:
    params = params or DetectionParams()
    det, delays = [], []
    false_alerts, n_null = 0, 0
    for c in index_cells(reps, seed):
        s = Series(source="trends", substance="x", periods=PERIODS, values=c["y"], metric="index")
        sent = _warnd_alerts(s, params, SCORE_FROM)
        on = c["onset"]
        if c["event"] == "none":
            false_alerts += len(sent)
            n_null += 1
        else:
            hits = [t for t, k in sent if on <= t < on + HORIZON and k == "trend"]
            det.append(bool(hits))
            if hits:
                delays.append(hits[0] - on)
    return dict(
        pod_step_x2=float(np.mean(det)),
        median_delay=float(np.median(delays)) if delays else math.nan,
        false_per_year=false_alerts / (n_null * YEARS_SCORED),
    )


def evaluate_null(reps: int, seed: int, extra: bool = False,
                  params: DetectionParams | None = None) -> dict:
    """warnd's false increase alerts on the event-free series of ``reps`` replicates of
    the main grid (or, with ``extra``, the low-count and steep-trend cells): the same
    simulations as :func:`scenarios` (their other series drawn but not judged), so
    more replicates than the detection run can afford narrow the rate's estimate. Per
    series-year, overall and by cell (level, trend, phi) where any were raised."""
    params = params or DetectionParams()
    n, alerts_n = 0, 0
    by_cell: dict[str, int] = {}
    for s in scenarios(reps, seed, extra=extra):
        if s["event"] != "none":
            continue
        k = len(alerts(m_warnd(s["y"], params)))
        n += 1
        alerts_n += k
        if k:
            cell = f"level {s['level']:g}, trend {s['trend']:+g}, phi {s['phi']:g}"
            by_cell[cell] = by_cell.get(cell, 0) + k
    return dict(series=n, series_years=n * YEARS_SCORED, alerts=alerts_n,
                false_per_year=alerts_n / (n * YEARS_SCORED), alerts_by_cell=by_cell)


def level_table(results: dict[str, dict[str, object]], levels=LEVELS) -> str:
    """Probability of detection of x1.5 changes by weekly level, per method."""
    keys = ["step x1.5", "ramp x1.5"]
    head = ["method", *[f"{k} @ {lv}/week" for k in keys for lv in levels]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        bl = r["by_level"]
        lines.append(
            "| " + " | ".join([name, *[f"{bl[(k, lv)]:.0%}" for k in keys for lv in levels]]) + " |"
        )
    return "\n".join(lines)


def table(results: dict[str, dict[str, object]]) -> str:
    keys = [f"{e} x{s:g}" for e, s in EVENTS if e in ("step", "ramp")]
    head = [
        "method",
        *[f"PoD {k}" for k in keys],
        "median delay x1.5/x2/x3 (step)",
        "false alerts / series-year",
        "spikes as trends",
        "spikes alerted",
        "drops alerted",
        "seconds",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        det, dl = r["detected"], r["delay"]
        cells = [
            name,
            *[f"{det[k]:.0%}" for k in keys],
            " / ".join(f"{dl.get(f'step x{s:g}', math.nan):.0f}" for s in (1.5, 2, 3)),
            f"{r['false_per_year']:.3f}",
            f"{r['spike_as_trend']:.0%}",
            f"{r['spike_alerted']:.0%}",
            f"{r['drop_alerted']:.0%}",
            f"{r['seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def backtest_speed(n_series: int = 256, seed: int = 7) -> tuple[float, int]:
    """Seconds for :func:`warnd.backtest.run_backtest` on ``n_series`` x 260 weeks."""
    from warnd.backtest import run_backtest

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "obs.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["date", "substance", "source", "value"])
            for i in range(n_series):
                event, size = EVENTS[i % len(EVENTS)]
                y = simulate(
                    rng,
                    LEVELS[i % len(LEVELS)],
                    0.4 * (i % 2),
                    0.1 * (i // 2 % 2),
                    1.0 + (i // 4 % 2),
                    event,
                    size,
                    int(rng.integers(164, 235)),
                )
                for p, v in zip(PERIODS, y, strict=True):
                    w.writerow([p.isoformat(), f"s{i // 8}", f"src{i % 8}", int(v)])
        t0 = time.perf_counter()
        out = run_backtest(path)
        return time.perf_counter() - t0, len(out)


def bar_summary(r: dict[str, object]) -> dict[str, float]:
    """The headline numbers: PoD by size (steps and ramps pooled), median delays."""
    det, dl = r["detected"], r["all_delays"]

    def pod(size):
        return float(np.mean([det[f"{e} x{size:g}"] for e in ("step", "ramp")]))

    steps = [d for k, v in dl.items() if k.startswith("step") for d in v]
    every = [d for v in dl.values() for d in v]
    return dict(
        pod_x1_5=pod(1.5),
        pod_x2=pod(2),
        pod_x3=pod(3),
        delay_steps=float(np.median(steps)) if steps else math.nan,
        delay_all=float(np.median(every)) if every else math.nan,
        false_per_year=float(r["false_per_year"]),
        spike_as_trend=float(r["spike_as_trend"]),
    )


def summary_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = ["seed / cells", "PoD x1.5", "PoD x2", "PoD x3", "median delay steps",
            "median delay all", "false alerts / series-year", "spikes as trends"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, b in rows:
        lines.append(
            f"| {name} | {b['pod_x1_5']:.0%} | {b['pod_x2']:.0%} | {b['pod_x3']:.0%} | "
            f"{b['delay_steps']:.0f} | {b['delay_all']:.0f} | {b['false_per_year']:.3f} | "
            f"{b['spike_as_trend']:.0%} |"
        )
    return "\n".join(lines)


def information_bound(
    levels=(1, 2, 3, 5, 10, 30), phis=(1.0, 2.0), h: float | None = None, weeks: int = HORIZON
) -> str:
    """What any detector can find in the PoD window: the expected log likelihood ratio
    (Kullback-Leibler information) of the true change against no change with the baseline
    *known*, summed over the ``weeks`` after the onset, ``sum mu0 (f ln f - f + 1) / phi``
    for the mean factor ``f`` of each week (a step x1.5 or x2, or the benchmark's 12-week
    ramp), and the probability that the ratio at the true change time reaches ``h``
    (``glr_h``) by the end of the window, ``Phi(sqrt(2 L) - sqrt(2 h))`` (2 LR is
    noncentral chi-square with one degree of freedom and noncentrality ``2 L``; the
    lower tail of the signed root is ignored). An estimated baseline, the search over
    change times and the need to alert within the window only lower it."""
    h = DetectionParams().glr_h if h is None else h
    w = np.arange(1, weeks + 1)

    def info(f):
        return float(np.sum(f * np.log(f) - f + 1))

    shapes = {
        "step x1.5": np.full(weeks, 1.5),
        "step x2": np.full(weeks, 2.0),
        "ramp x1.5": 1 + 0.5 * np.minimum(w / 12.0, 1.0),
        "ramp x2": 1 + 1.0 * np.minimum(w / 12.0, 1.0),
    }
    def pod(lv, phi, f):
        return float(stats.norm.cdf(math.sqrt(2 * lv * info(f) / phi) - math.sqrt(2 * h)))

    head = ["level / week", "phi", *[f"{k}: E[LLR] (PoD at bound)" for k in shapes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lv in levels:
        for phi in phis:
            cells = [f"{lv * info(f) / phi:.1f} ({pod(lv, phi, f):.0%})" for f in shapes.values()]
            lines.append(f"| {lv} | {phi:g} | " + " | ".join(cells) + " |")
    for name, lvs in (("main grid", LEVELS), ("low-count cells", EXTRA_LEVELS)):
        cells = [f"({np.mean([pod(lv, phi, f) for lv in lvs for phi in phis]):.0%})"
                 for f in shapes.values()]
        lines.append(f"| {name}, pooled | 1 and 2 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def advance_speed(n_series: int = 32, seed: int = 7) -> tuple[float, float, int]:
    """Milliseconds per period for :meth:`detectors.engine.SeriesState.advance` (one new
    week of a 260-week series, JSON round trip of the state included) against a full
    :func:`replay` of the series, and the state's size in bytes as JSON."""
    import json as _json

    from detectors.engine import SeriesState, replay_with_state

    rng = np.random.default_rng(seed)
    params = DetectionParams()
    t_adv = t_rep = 0.0
    steps = 0
    size = 0
    for i in range(n_series):
        y = simulate(rng, LEVELS[i % len(LEVELS)], 0.4, 0.1, 2.0, "step", 2.0, 220)
        s = Series(source="sim", substance="x", periods=PERIODS, values=y)
        t0 = time.perf_counter()
        _, state = replay_with_state(s, params)
        t_rep += time.perf_counter() - t0
        _, state = replay_with_state(s.upto(N - 26), params)
        t0 = time.perf_counter()
        for j in range(N - 26, N):
            blob = _json.dumps(state.to_dict())
            size = max(size, len(blob))
            state = SeriesState.from_dict(_json.loads(blob))
            state.advance(PERIODS[j], float(y[j]), params)
            steps += 1
        t_adv += time.perf_counter() - t0
    return 1000 * t_adv / steps, 1000 * t_rep / n_series, size


def _params(pairs: list[str]) -> DetectionParams:
    """``DetectionParams`` with ``KEY=VALUE`` overrides (the value read as JSON, else as
    text)."""
    over: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param {pair!r}: expected KEY=VALUE")
        try:
            over[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            over[key.strip()] = raw
    try:
        return DetectionParams(**over)
    except ValueError as e:  # pydantic's ValidationError: an unknown key or a bad value
        raise SystemExit(f"--param: {e}") from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one replicate per scenario")
    ap.add_argument("--reps", type=int, default=None, help="replicates per scenario")
    ap.add_argument("--seeds", default="20240601", help="comma-separated seeds, one run each")
    ap.add_argument("--warnd-only", action="store_true", help="skip the classic methods")
    ap.add_argument("--no-speed", action="store_true", help="skip the backtest timing")
    ap.add_argument("--null-reps", type=int, default=None, metavar="N",
                    help="only the false-alert rate of warnd: the event-free series of N "
                         "replicates of both grids, and N replicates of the index cells, "
                         "per seed")
    ap.add_argument("--rate-reps", type=int, default=None, metavar="N",
                    help="only warnd's monthly positivity cells: N replicates (32 series "
                         "each) per seed")
    ap.add_argument("--recurring-reps", type=int, default=None, metavar="N",
                    help="only warnd's cells with peaks that come back every year: N "
                         "replicates (36 count and 36 index series each, and 48 count "
                         "series with a rise, with and without the peaks) per seed")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a detection parameter for warnd other than its default (JSON "
                         "value, e.g. rate_min_variation=0); repeatable")
    args = ap.parse_args(argv)
    params = _params(args.param)
    if args.recurring_reps:
        for seed in [int(x) for x in args.seeds.split(",")]:
            print(f"seed {seed} recurring peaks: "
                  f"{json.dumps(evaluate_recurring(args.recurring_reps, seed, params))}")
        return
    if args.rate_reps:
        for seed in [int(x) for x in args.seeds.split(",")]:
            print(f"seed {seed} monthly positivity: "
                  f"{json.dumps(evaluate_rates(args.rate_reps, seed, params))}")
        return
    if args.null_reps:
        for seed in [int(x) for x in args.seeds.split(",")]:
            for extra, label in ((False, "main"), (True, "low-count/trend")):
                print(f"seed {seed} {label}: "
                      f"{json.dumps(evaluate_null(args.null_reps, seed, extra, params))}")
            print(f"seed {seed} renormalised index: "
                  f"{json.dumps(evaluate_index(args.null_reps, seed, params))}")
        return
    reps = args.reps or (1 if args.quick else 3)
    methods = dict(METHODS)
    methods["warnd"] = functools.partial(m_warnd, params=params)
    if args.warnd_only:
        methods = {"warnd": methods["warnd"]}
    summary = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        res = evaluate(reps, seed, methods)
        n = next(iter(res.values()))["n_series"]
        print(f"## seed {seed}: {n} simulated series x {N} weeks, scored weeks "
              f"{SCORE_FROM}-{N - 1}\n")
        print(table(res))
        print()
        print(level_table(res))
        ext = evaluate(reps, seed, methods, sims=list(scenarios(reps, seed, extra=True)))
        n = next(iter(ext.values()))["n_series"]
        print(f"\nlow-count and steep-trend cells (levels {EXTRA_LEVELS}/week, trends "
              f"{EXTRA_TRENDS}/year): {n} series\n")
        print(table(ext))
        print()
        print(level_table(ext, EXTRA_LEVELS))
        rates = evaluate_rates(reps, seed, params)
        index = evaluate_index(reps, seed, params)
        recurring = evaluate_recurring(reps, seed, params)
        print(f"\nmonthly positivity (warnd): {json.dumps(rates)}")
        print(f"renormalised index (warnd): {json.dumps(index)}")
        print(f"recurring peaks (warnd): {json.dumps(recurring)}\n")
        summary.append((f"{seed} main", bar_summary(res["warnd"])))
        summary.append((f"{seed} low-count/trend", bar_summary(ext["warnd"])))
    print(summary_table(summary))
    print(f"\ninformation bound over {HORIZON} weeks (glr_h {DetectionParams().glr_h:g}):\n")
    print(information_bound())
    if not args.no_speed:
        adv, rep, size = advance_speed()
        print(f"\nincremental: {adv:.1f} ms per new week (state {size / 1000:.0f} kB as JSON) "
              f"against {rep:.0f} ms for a replay of 260 weeks")
        secs, n_alerts = backtest_speed()
        print(f"\nbacktest 256 series x {N} weeks: {secs:.1f} s ({n_alerts} alerts)")


if __name__ == "__main__":
    main()
