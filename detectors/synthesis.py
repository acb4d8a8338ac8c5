"""The Føre Var synthesis: five-step scores per source, sums per dimension, verdicts.

Our design (the Føre Var reports do not publish their scoring):

* Each source's change between two windows (by default the last complete half-year
  against the one before) is scored -2..+2 by :func:`score_change`.
* A trend-panel series (metric ``"score"``) is already on the scale: every answer is
  -2..+2 and the source contributes the **sum of the answers** in the current window
  (30 of 34 informants reporting "small increase" give +30), as the printed sums
  suggest.
* :func:`aggregate` sums the scores per dimension (use, availability, interest) and
  overall, with the number of sources beside each sum.
* :func:`substance_verdict`: a substance is a *strong increase* only when a source is a
  strong increase **and** at least ``min_sources_for_strong`` independent sources agree
  (the report's triangulation); a lone strong source can still alert at ``info``
  severity unless ``require_corroboration``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from detectors.base import SCALE, Finding, Series, is_score
from detectors.params import DetectionParams
from detectors.ranktest import mannwhitneyu_p
from detectors.scale import categorize

DIMENSIONS = ("use", "availability", "interest")
SEVERITIES = ("none", "info", "warning", "critical")


@dataclass(frozen=True)
class SourceChange:
    """One source's change between two windows on the five-step scale."""

    level_before: float
    level_after: float
    relative_change: float
    p_value: float | None
    category: int
    test: str

    @property
    def words(self) -> str:
        return SCALE[self.category][1]

    @property
    def words_no(self) -> str:
        return SCALE[self.category][0]


def _clean(a, d=None):
    a = np.asarray(a if a is not None else [], dtype=float)
    if d is None:
        return a[np.isfinite(a)], None
    d = np.asarray(d, dtype=float)
    ok = np.isfinite(a) & np.isfinite(d) & (d > 0)
    return a[ok], d[ok]


def _is_counts(*arrays: np.ndarray) -> bool:
    vals = np.concatenate(arrays) if arrays else np.zeros(0)
    return bool(len(vals)) and bool(np.all(vals >= 0)) and bool(np.all(vals == np.round(vals)))


def _quasi_poisson(x1: np.ndarray, x2: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> float:
    """Two-sided p of the rate ratio of two count windows with exposures ``e``.

    Wald test on log(rate2/rate1) with variance ``phi*(1/X1 + 1/X2)``, ``phi`` the
    pooled Pearson dispersion of the periods around their window rate (floored at 1;
    quasi-Poisson). With 0.5 added to zero totals.
    """
    s1, s2, t1, t2 = x1.sum(), x2.sum(), e1.sum(), e2.sum()
    if s1 + s2 == 0:
        return 1.0
    num = den = 0.0
    for x, e, s, t in ((x1, e1, s1, t1), (x2, e2, s2, t2)):
        m = e * (s / t)
        ok = m > 0
        num += float(((x[ok] - m[ok]) ** 2 / m[ok]).sum())
        den += max(int(ok.sum()) - 1, 0)
    phi = max(num / den, 1.0) if den > 0 else 1.0
    a, b = max(s1, 0.5), max(s2, 0.5)
    z = (math.log(b / t2) - math.log(a / t1)) / math.sqrt(phi * (1 / a + 1 / b))
    return math.erfc(abs(z) / math.sqrt(2))  # two-sided normal tail, 2·Φ(−|z|)


def score_change(
    before: Sequence[float] | np.ndarray,
    after: Sequence[float] | np.ndarray,
    params: DetectionParams,
    *,
    denominators_before: Sequence[float] | np.ndarray | None = None,
    denominators_after: Sequence[float] | np.ndarray | None = None,
    counts: bool | None = None,
) -> SourceChange:
    """Score the change from the ``before`` window to the ``after`` window.

    Levels are the mean per period (or, with denominators, the total of the values over
    the total of the denominators: positives per test). Test:

    * counts (non-negative integers, or ``counts=True``, or with denominators): the
      quasi-Poisson rate-ratio Wald test (periods or denominators as exposure);
    * other values (indexes, prices, concentrations): the two-sided Mann-Whitney U test.

    An empty window gives a stable result with no p-value.
    """
    b, db = _clean(before, denominators_before)
    a, da = _clean(after, denominators_after)
    if len(a) == 0 or len(b) == 0:
        return SourceChange(math.nan, math.nan, math.nan, None, 0, "none")
    use_counts = counts if counts is not None else (db is not None or _is_counts(a, b))
    if db is not None and da is not None:
        lb, la = b.sum() / db.sum(), a.sum() / da.sum()
        eb, ea = db, da
    else:
        lb, la = float(b.mean()), float(a.mean())
        eb, ea = np.ones_like(b), np.ones_like(a)
    # from nothing: stable if still nothing, else an infinite increase
    rel = la / lb - 1.0 if lb > 0 else (0.0 if la == 0 else math.inf)
    if use_counts:
        p = _quasi_poisson(b, a, eb, ea)
        test = "quasi-Poisson rate ratio"
    elif np.ptp(np.concatenate([a, b])) == 0:
        p, test = 1.0, "Mann-Whitney U"
    elif 2 / math.comb(len(a) + len(b), len(a)) >= params.alpha:
        # so few values (one wastewater campaign a half-year) that the test cannot
        # reach `alpha` whatever they are: no test applies, the size of the change
        # decides (`categorize`), as a change of the mean is judged with one value
        p, test = None, "none: too few values"
    else:
        p = mannwhitneyu_p(a, b)  # scipy.stats' test without loading scipy.stats
        test = "Mann-Whitney U"
    return SourceChange(float(lb), float(la), float(rel), p, categorize(rel, p, params), test)


# --- half-years --------------------------------------------------------------------


def _half_start(d: date, params: DetectionParams) -> date:
    starts = sorted(params.half_year_start_months)
    cands = []
    for year in (d.year - 1, d.year):
        for m in starts:
            s = date(year, m, 1)
            if s <= d:
                cands.append(s)
    return max(cands)


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def half_years(
    d: date, params: DetectionParams | None = None
) -> tuple[tuple[date, date], tuple[date, date]]:
    """The half-year containing ``d`` and the one before, each ``(first day, last day)``.

    Default half-years: April-September and October-March (Føre Var): for any day in
    October 2025 - March 2026 this is ((2025-10-01, 2026-03-31), (2025-04-01, 2025-09-30)).
    """
    params = params or DetectionParams()
    s = _half_start(d, params)
    prev = _add_months(s, -6)
    return (s, _add_months(s, 6) - timedelta(days=1)), (prev, s - timedelta(days=1))


def latest_complete_half_year(
    last_data_date: date, params: DetectionParams | None = None
) -> tuple[date, date]:
    """The newest half-year whose last month has data (``last_data_date`` is the start of
    the newest period): data up to a period starting on 2026-03-02 completes Oct-Mar."""
    params = params or DetectionParams()
    (cs, ce), (ps, pe) = half_years(last_data_date, params)
    return (cs, ce) if last_data_date >= date(ce.year, ce.month, 1) else (ps, pe)


def series_change(
    series: Series,
    current: tuple[date, date],
    previous: tuple[date, date],
    params: DetectionParams,
) -> tuple[int, SourceChange | None]:
    """The score a series contributes for ``current`` against ``previous``.

    A ``"score"`` series contributes the sum of its answers in ``current`` and no
    SourceChange; any other series its :func:`score_change` category. A score value is
    the sum of one round's answers with the number of answers as denominator, so it is
    bounded by ``±2·n``; without a denominator it is one answer, bounded by ±2.
    """
    per = np.array(series.periods, dtype="datetime64[D]")
    vals = np.asarray(series.values, dtype=float)
    cur = (per >= np.datetime64(current[0])) & (per <= np.datetime64(current[1]))
    prv = (per >= np.datetime64(previous[0])) & (per <= np.datetime64(previous[1]))
    if is_score(series.metric):
        v = vals[cur]
        n = (np.ones_like(v) if series.denominators is None
             else np.nan_to_num(np.asarray(series.denominators, float)[cur], nan=1.0))
        ok = np.isfinite(v)
        bound = 2.0 * np.maximum(n[ok], 1.0)
        return int(np.clip(np.round(v[ok]), -bound, bound).sum()), None
    den = series.denominators
    ch = score_change(
        vals[prv],
        vals[cur],
        params,
        denominators_before=None if den is None else den[prv],
        denominators_after=None if den is None else den[cur],
        counts=True if series.metric == "count" else None,
    )
    return ch.category, ch


# --- aggregation -------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """Sums of five-step scores per dimension and overall (the aggregated difference)."""

    by_dimension: dict[str, int] = field(default_factory=dict)
    sources_by_dimension: dict[str, int] = field(default_factory=dict)
    total: int = 0
    n_sources: int = 0


def aggregate(changes: Iterable[tuple[str, str, int]]) -> Aggregate:
    """Sum ``(dimension, source, category)`` items per dimension and overall.

    Several items of one source (e.g. one per panel answer) all count in the sum; the
    source counts once in the number of sources.
    """
    sums = {d: 0 for d in DIMENSIONS}
    srcs: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
    for dim, source, cat in changes:
        sums[dim] = sums.get(dim, 0) + int(cat)
        srcs.setdefault(dim, set()).add(source)
    every = set().union(*srcs.values()) if srcs else set()
    return Aggregate(
        by_dimension=sums,
        sources_by_dimension={d: len(s) for d, s in srcs.items()},
        total=sum(sums.values()),
        n_sources=len(every),
    )


# --- substance verdict -------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    category: int
    corroborating_sources: tuple[str, ...]
    disagreeing_sources: tuple[str, ...]
    severity: str  # none | info | warning | critical


def _per_source(items: Iterable[Finding | tuple[str, int]]) -> dict[str, int]:
    best: dict[str, int] = {}
    for it in items:
        if isinstance(it, Finding):
            src, cat = it.source, int(it.category)
        else:
            src, cat = str(it[0]), int(it[1])
        old = best.get(src)
        if old is None or (abs(cat), cat) > (abs(old), old):
            best[src] = cat
    return best


def substance_verdict(
    items: Iterable[Finding | tuple[str, int]], params: DetectionParams
) -> Verdict:
    """Combine the sources of one substance (findings, or ``(source, category)`` pairs).

    Each source counts once, with its largest category. With more sources up than down
    the verdict is an increase: ``2`` when some source is ``2`` and at least
    ``min_sources_for_strong`` sources are up, else ``1``. Severity (increases only):
    ``critical`` for a strong increase with ``critical_sources`` or more agreeing
    sources, ``warning`` for a strong increase, ``info`` for an increase from too few
    sources (``none`` instead when ``require_corroboration``). Decreases mirror the
    category and always have severity ``none``: they never alert.
    """
    per = _per_source(items)
    up = tuple(sorted(s for s, c in per.items() if c > 0))
    down = tuple(sorted(s for s, c in per.items() if c < 0))
    if not up and not down:
        return Verdict(0, (), (), "none")
    if len(up) >= len(down):
        strong = any(per[s] == 2 for s in up)
        corroborated = len(up) >= params.min_sources_for_strong
        cat = 2 if strong and corroborated else 1
        if cat == 2:
            sev = "critical" if len(up) >= params.critical_sources else "warning"
        else:
            sev = "none" if params.require_corroboration and not corroborated else "info"
        return Verdict(cat, up, down, sev)
    strong = any(per[s] == -2 for s in down)
    cat = -2 if strong and len(down) >= params.min_sources_for_strong else -1
    return Verdict(cat, down, up, "none")
