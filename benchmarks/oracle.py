"""What a detector that knows everything but the onset finds at the bar's false-alert rate.

The detection benchmark's bar (``docs/detection.md`` 8.1) asks for a probability of
detection within 26 weeks of 0.90 for x1.5 rises and 0.98 for x2, and a median delay
of at most 3 weeks over steps and ramps, at no more than 0.05 false increase alerts
per series-year. This benchmark measures how much of that the data allow, with a
reference detector far better informed than any real one. For each cell of the
benchmark's grid (:func:`benchmarks.detection.scenarios`: level, yearly cycle, trend,
dispersion) and each event shape (a step or the benchmark's 12-week ramp to x1.5, x2
or x3) the reference knows

* the true weekly mean ``mu_t`` (trend and season included: no baseline to estimate),
* the count distribution (Poisson, or the negative binomial with variance ``phi·mu``
  and its ``phi``),
* the shape and size of the rise,

and not the week it starts. Its statistic is the likelihood ratio of "the rise started
at week ``tau``" against "no rise", maximised over the 26 possible start weeks
``tau`` of a 26-week window (Lai 1995, *J R Stat Soc B* 57:613; for a step this is
Page's CUSUM restricted to the window, Page 1954): ``S_t = max_tau sum_{s=tau..t}
log p(y_s | f(s - tau) mu_s) / p(y_s | mu_s)``, with ``f`` the event's factor that
many weeks after its start. It alarms when ``S_t >= h`` and then starts afresh (only
starts after the alarm count), so alarms are separate messages. The threshold ``h``
is set, separately for every (level, dispersion) cell and every event shape, so that
the event-free series of that cell raise exactly the bar's 0.05 alarms per
series-year over the scored weeks (156-259), found by bisection. A real detector has
one statistic for every shape and size, one false-alert budget for all of them, and
must estimate the mean, its trend, season and dispersion from the history: it can
only do worse than this reference, up to the budget's allocation between cells (the
bar pools the false alerts of a grid; spending them where counts are low would move
the reference's pooled figures a little, see the docs).

Two more references (``--size-unknown``, ``--spike-guard``): without the rise's shape
and size, one step likelihood ratio maximised over size and start for every event and
one threshold a cell (warnd's statistic with the true mean); and that one with warnd's
spike guard (the ratio without the window's largest excess must reach
``glr_loo_h / glr_h`` of the threshold), its threshold raised where needed so that at
most ``--max-spikes`` of one-week x8 spikes are followed by an alarm within 26 weeks.
``--sizes`` replaces the maximised size by the mean of the ratios of the given step
factors (one factor: Page's CUSUM for that step within the window).

Scored as the benchmark scores warnd: detected when an alarm falls within 26 weeks
of the onset (weeks ``onset .. onset + 25``), the delay from the onset to the first
such alarm; figures pooled over cells with equal weight, steps and ramps pooled by
size, the median delay over every detected step and ramp.

    python -m benchmarks.oracle                     # seed 1, 500 event-free series a cell
    python -m benchmarks.oracle --seeds 1,2,3 --null 1000 --events 200
    python -m benchmarks.oracle --rates 0.05,0.1,0.2   # the same at other false-alert rates
    python -m benchmarks.oracle --size-unknown         # one statistic for every rise
    python -m benchmarks.oracle --spike-guard --max-spikes 0.05
    python -m benchmarks.oracle --sizes 1.5 --spike-guard --max-spikes 0.05
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
from scipy.special import gammaln

from benchmarks.detection import (
    EXTRA_LEVELS,
    EXTRA_TRENDS,
    HORIZON,
    LEVELS,
    N,
    SCORE_FROM,
    YEARS_SCORED,
    _counts,
    mean_of,
)

#: The event shapes: kind and size, as :data:`benchmarks.detection.EVENTS` has them.
SHAPES = [("step", 1.5), ("step", 2.0), ("step", 3.0), ("ramp", 1.5), ("ramp", 2.0),
          ("ramp", 3.0)]
#: A one-week spike (as the benchmark's): judged by the size-unknown reference only,
#: where an alarm within 26 weeks is a spike read as a trend.
SPIKE = ("spike", 8.0)
#: The statistic's window: starts up to this many weeks back (the PoD window's length).
WINDOW = HORIZON
#: Weeks before the scored part the statistic starts from: it looks back ``WINDOW``
#: weeks, so earlier weeks only matter through an earlier alarm's fresh start.
FROM = SCORE_FROM - 2 * WINDOW


def factors(kind: str, size: float) -> np.ndarray:
    """The mean factor ``j`` weeks after the rise's start, ``j = 0 .. WINDOW - 1`` (the
    benchmark's :func:`benchmarks.detection.simulate`)."""
    j = np.arange(WINDOW)
    if kind == "step":
        return np.full(WINDOW, size)
    return 1 + (size - 1) * np.minimum((j + 1) / 12.0, 1.0)


def llr(y: np.ndarray, mu: np.ndarray, phi: float, f: np.ndarray) -> np.ndarray:
    """``log p(y | f mu) - log p(y | mu)`` for every series, week and factor: shape
    ``(series, weeks, len(f))``. Poisson for ``phi`` 1; else the negative binomial the
    benchmark draws from (size ``mu / (phi - 1)``, success probability ``1 / phi``,
    the same for any mean)."""
    y3, mu3, f3 = y[:, :, None], mu[None, :, None], f[None, None, :]
    if phi <= 1.0:
        return y3 * np.log(f3) - (f3 - 1.0) * mu3
    r0 = mu3 / (phi - 1.0)
    r1 = f3 * r0
    return (gammaln(y3 + r1) - gammaln(r1) - gammaln(y3 + r0) + gammaln(r0)
            + (r1 - r0) * math.log(1.0 / phi))


def alarms(table: np.ndarray, h: float) -> list[np.ndarray]:
    """The weeks (of ``table``'s week axis) at which each series alarms: the windowed
    likelihood ratio maximised over the start, starting afresh after an alarm."""
    n, weeks, width = table.shape
    sums = np.full((n, width), -np.inf)  # sums[:, k]: the rise started k weeks back
    hits = np.zeros((n, weeks), dtype=bool)
    for t in range(weeks):
        sums[:, 1:] = sums[:, :-1] + table[:, t, 1:]
        sums[:, 0] = table[:, t, 0]
        hit = sums.max(axis=1) >= h
        hits[:, t] = hit
        sums[hit] = -np.inf
    return [np.flatnonzero(row) for row in hits]


class SizeUnknown:
    """The reference without the rise's size: the step likelihood ratio maximised over
    the size as well (``f >= 1``) — warnd's statistic (``docs/detection.md`` 1.3) with
    the true mean in place of the estimated baseline. For ``phi`` above 1 it is the
    quasi-Poisson ratio (the Poisson ratio divided by ``phi``), as in warnd.

    With ``guard`` (a fraction of ``h``) it has warnd's spike guard as well: the same
    ratio with the window's most extreme week (the largest ``y - mu``) left out must
    reach ``guard · h``, so a single week never alarms alone.

    With ``sizes`` the size is not maximised over but averaged: the log of the mean of
    the step likelihood ratios for those factors (a mixture alternative; one size is
    Page's CUSUM for that step, restricted to the window)."""

    def __init__(self, y: np.ndarray, mu: np.ndarray, phi: float,
                 guard: float | None = None, sizes: tuple[float, ...] = ()) -> None:
        self.y, self.mu, self.phi, self.guard, self.sizes = y, mu, phi, guard, sizes
        self.shape = (y.shape[0], y.shape[1], WINDOW)


def _ratio(ys: np.ndarray, ms: np.ndarray, phi: float, sizes: tuple[float, ...] = ()
           ) -> np.ndarray:
    """The log likelihood ratio of a step from window sums: maximised over the size
    (``sizes`` empty) or the log mean over ``sizes``; quasi-Poisson (divided by ``phi``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if not sizes:
            return np.where(ys > ms, ys * np.log(ys / ms) - (ys - ms), 0.0) / phi
        each = np.stack([(ys * math.log(f) - (f - 1.0) * ms) / phi for f in sizes])
        top = each.max(axis=0)
        mean = top + np.log(np.exp(each - top).mean(axis=0))
        return np.where(np.isfinite(top), mean, -np.inf)


def _glr_alarms(t: SizeUnknown, h: float) -> list[np.ndarray]:
    n, weeks, width = t.shape
    ys = np.zeros((n, width))
    ms = np.full((n, width), np.inf)  # no start yet: a ratio of 0
    # the most extreme week of each window: its excess, value and mean
    hx, hy, hm = np.full((n, width), -np.inf), np.zeros((n, width)), np.zeros((n, width))
    hits = np.zeros((n, weeks), dtype=bool)
    for w in range(weeks):
        y, m = t.y[:, w], t.mu[:, w]
        ys[:, 1:] = ys[:, :-1] + y[:, None]
        ms[:, 1:] = ms[:, :-1] + m[:, None]
        ys[:, 0], ms[:, 0] = y, m
        ok = _ratio(ys, ms, t.phi, t.sizes) >= h
        if t.guard is not None:
            x = (y - m)[:, None]
            hx[:, 1:], hy[:, 1:], hm[:, 1:] = hx[:, :-1], hy[:, :-1], hm[:, :-1]
            hx[:, 0], hy[:, 0], hm[:, 0] = -np.inf, 0.0, 0.0
            new = x > hx
            hx = np.where(new, x, hx)
            hy = np.where(new, y[:, None], hy)
            hm = np.where(new, m[:, None], hm)
            ok &= _ratio(ys - hy, ms - hm, t.phi, t.sizes) >= t.guard * h
        hit = ok.any(axis=1)
        hits[:, w] = hit
        ys[hit], ms[hit], hx[hit] = 0.0, np.inf, -np.inf
    return [np.flatnonzero(row) for row in hits]


def _alarms(table: np.ndarray | SizeUnknown, h: float) -> list[np.ndarray]:
    return _glr_alarms(table, h) if isinstance(table, SizeUnknown) else alarms(table, h)


def false_rate(null_table: np.ndarray | SizeUnknown, h: float) -> float:
    """Alarms per series-year over the scored weeks of event-free series."""
    scored = SCORE_FROM - FROM
    n = sum(int(np.count_nonzero(w >= scored)) for w in _alarms(null_table, h))
    return n / (null_table.shape[0] * YEARS_SCORED)


def _lowest(too_many: Callable[[float], bool]) -> float:
    """The lowest threshold in 0-40 (to 0.01, by bisection) at which ``too_many`` (of
    alarms, falling as the threshold rises) is false."""
    lo, hi = 0.0, 40.0
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if too_many(mid) else (lo, mid)
    return hi


def threshold(null_table: np.ndarray | SizeUnknown, rate: float) -> float:
    """The lowest ``h`` (to 0.01) at which the event-free series raise at most ``rate``
    alarms per series-year."""
    return _lowest(lambda h: false_rate(null_table, h) > rate)


def cells(extra: bool) -> list[tuple[float, float, float, float]]:
    """(level, seasonal, trend, phi) of the main grid or the low-count/trend cells."""
    levels = EXTRA_LEVELS if extra else LEVELS
    trends = EXTRA_TRENDS if extra else (0.0, 0.1)
    return [(lv, s, tr, phi) for lv in levels for s in (0.0, 0.4) for tr in trends
            for phi in (1.0, 2.0)]


def _events(rng: np.random.Generator, mu: np.ndarray, phi: float, kind: str, size: float,
            n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` series of mean ``mu`` with the event from an onset drawn as the benchmark
    draws it: counts and onsets."""
    onsets = rng.integers(SCORE_FROM + 8, N - HORIZON + 1, size=n)
    k = np.arange(N)[None, :] - onsets[:, None]
    mult = np.ones((n, N))
    rising = k >= 0
    if kind == "spike":
        mult[k == 0] = size
    else:
        mult[rising] = (size if kind == "step" else
                        1 + (size - 1) * np.minimum((k[rising] + 1) / 12.0, 1.0))
    return _counts(rng, mu[None, :] * mult, phi), onsets


def _delays(table: np.ndarray | SizeUnknown, onsets: np.ndarray, h: float) -> list[int | None]:
    """Weeks from each onset to the first alarm within the PoD window (None: none)."""
    out: list[int | None] = []
    for on, when in zip(onsets, _alarms(table, h), strict=True):
        late = when[(when + FROM >= on) & (when + FROM < on + HORIZON)]
        out.append(int(late[0] + FROM - on) if late.size else None)
    return out


def _all_delays(tables: list, h: float) -> list[int | None]:
    """:func:`_delays` of every ``(table, onsets)`` of ``tables``, one list."""
    return [d for t, on in tables for d in _delays(t, on, h)]


def evaluate(seed: int, n_null: int, n_events: int, rates: list[float],
             extra: bool = False, size_known: bool = True, guard: float | None = None,
             max_spikes: float | None = None, sizes: tuple[float, ...] = ()) -> dict:
    """Per (level, phi) cell and shape: the threshold for each rate, and per rate the
    detections and delays of the events (``n_events`` a cell of the grid, onsets drawn
    as the benchmark draws them). With ``max_spikes`` (size unknown only) the threshold
    is raised where needed so that at most that share of one-week spikes is followed by
    an alarm within the PoD window (a spike read as a trend)."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[float, float], list] = {}
    for cell in cells(extra):
        groups.setdefault((cell[0], cell[3]), []).append(cell)
    out: dict = {}
    for (level, phi), members in groups.items():
        mus = [mean_of(level, s, tr) for lv, s, tr, _ in members]
        nulls = [_counts(rng, np.broadcast_to(mu, (n_null, N)), phi) for mu in mus]
        shapes = SHAPES if size_known else [SPIKE, *SHAPES]
        if not size_known:  # one statistic, one threshold for every shape
            null_table = SizeUnknown(np.concatenate([y[:, FROM:] for y in nulls]),
                                     np.concatenate([np.broadcast_to(mu[FROM:], (n_null, N - FROM))
                                                     for mu in mus]), phi, guard, sizes)
            shared = {rate: threshold(null_table, rate) for rate in rates}
            del null_table
        for kind, size in shapes:
            f = factors(kind, size) if size_known else None
            if size_known:
                null_table = np.concatenate([llr(y[:, FROM:], mu[FROM:], phi, f)
                                             for y, mu in zip(nulls, mus, strict=True)])
                hs = {rate: threshold(null_table, rate) for rate in rates}
                del null_table
            else:
                hs = shared
            drawn = [_events(rng, mu, phi, kind, size, n_events) for mu in mus]
            tables = [(llr(y[:, FROM:], mu[FROM:], phi, f) if size_known else
                       SizeUnknown(y[:, FROM:], np.broadcast_to(mu[FROM:], y[:, FROM:].shape),
                                   phi, guard, sizes), onsets)
                      for (y, onsets), mu in zip(drawn, mus, strict=True)]
            if kind == "spike" and max_spikes is not None:
                h_spikes = _lowest(lambda h, tables=tables: float(np.mean(
                    [d is not None for d in _all_delays(tables, h)])) > max_spikes)
                shared = hs = {rate: max(h, h_spikes) for rate, h in shared.items()}
            found = {rate: _all_delays(tables, h) for rate, h in hs.items()}
            out[(level, phi, kind, size)] = {"h": hs, "delays": found}
    return out


def summary(res: dict, rate: float) -> dict[str, float]:
    """The bar's figures at ``rate``: PoD by size (steps and ramps pooled over cells with
    equal weight), the median delays, and (when judged) the share of spikes read as
    trends."""
    rises = {k: v for k, v in res.items() if k[2] != "spike"}

    def pod(size: float) -> float:
        per = [np.mean([d is not None for d in v["delays"][rate]])
               for (_, _, _, s), v in rises.items() if s == size]
        return float(np.mean(per))

    every = [d for v in rises.values() for d in v["delays"][rate] if d is not None]
    steps = [d for (_, _, kind, _), v in rises.items() if kind == "step"
             for d in v["delays"][rate] if d is not None]
    spikes = [d is not None for (_, _, kind, _), v in res.items() if kind == "spike"
              for d in v["delays"][rate]]
    return {"pod_x1_5": pod(1.5), "pod_x2": pod(2.0), "pod_x3": pod(3.0),
            "delay_steps": float(np.median(steps)), "delay_all": float(np.median(every)),
            "spikes_as_trends": float(np.mean(spikes)) if spikes else math.nan}


def cell_table(res: dict, rate: float) -> str:
    """PoD (and median delay) by (level, phi) and shape at ``rate``, with ``h``."""
    shapes = [sh for sh in [*SHAPES, SPIKE] if (*next(iter(res))[:2], *sh) in res]
    head = ["level / week", "phi", *[f"{k} x{s:g}" for k, s in shapes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level, phi in sorted({(lv, phi) for lv, phi, _, _ in res}):
        row = []
        for kind, size in shapes:
            v = res[(level, phi, kind, size)]
            d = v["delays"][rate]
            got = [x for x in d if x is not None]
            med = f"{np.median(got):.0f}" if got else "-"
            row.append(f"{np.mean([x is not None for x in d]):.0%} ({med}; h {v['h'][rate]:.1f})")
        lines.append(f"| {level:g} | {phi:g} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1", help="comma-separated seeds, one run each")
    ap.add_argument("--null", type=int, default=500,
                    help="event-free series per cell of the grid, to set the thresholds")
    ap.add_argument("--events", type=int, default=200,
                    help="series per cell of the grid and event shape")
    ap.add_argument("--rates", default="0.05",
                    help="false alerts per series-year to set the thresholds at")
    ap.add_argument("--low-count", action="store_true",
                    help="also the low-count and steep-trend cells")
    ap.add_argument("--size-unknown", action="store_true",
                    help="the reference that does not know the rise's size or shape: one "
                         "step likelihood ratio maximised over size and start, one threshold")
    ap.add_argument("--spike-guard", nargs="?", type=float, const=-1.0, metavar="FRACTION",
                    help="the size-unknown reference with warnd's spike guard: the ratio "
                         "without the window's most extreme week must reach FRACTION of h "
                         "(default glr_loo_h / glr_h, as warnd)")
    ap.add_argument("--sizes", default="", metavar="F,F,...",
                    help="the size-unknown reference with the likelihood ratio averaged over "
                         "these step factors instead of maximised over the size")
    ap.add_argument("--max-spikes", type=float, default=None, metavar="SHARE",
                    help="the size-unknown reference's threshold raised, where needed, so "
                         "that at most SHARE of one-week spikes are read as trends")
    args = ap.parse_args(argv)
    guard = args.spike_guard
    if guard is not None:
        if guard < 0:
            from detectors.params import DetectionParams

            d = DetectionParams()
            guard = d.glr_loo_h / d.glr_h
        args.size_unknown = True
    sizes = tuple(float(x) for x in args.sizes.split(",") if x)
    if args.max_spikes is not None or sizes:
        args.size_unknown = True
    rates = [float(x) for x in args.rates.split(",")]
    groups = [(False, "main")] + ([(True, "low-count/trend")] if args.low_count else [])
    rows = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        for extra, label in groups:
            res = evaluate(seed, args.null, args.events, rates, extra,
                           size_known=not args.size_unknown, guard=guard,
                           max_spikes=args.max_spikes, sizes=sizes)
            for rate in rates:
                print(f"## seed {seed} {label}, {rate:g} false alerts per series-year: "
                      f"PoD (median delay in weeks; threshold h)\n")
                print(cell_table(res, rate))
                print()
                rows.append((f"{seed} {label} at {rate:g}", summary(res, rate)))
    print("| seed / cells / false alerts per series-year | PoD x1.5 | PoD x2 | PoD x3 | "
          "median delay steps | median delay all | spikes as trends |")
    print("|---|---|---|---|---|---|---|")
    for name, b in rows:
        spikes = "-" if math.isnan(b["spikes_as_trends"]) else f"{b['spikes_as_trends']:.0%}"
        print(f"| {name} | {b['pod_x1_5']:.0%} | {b['pod_x2']:.0%} | {b['pod_x3']:.0%} | "
              f"{b['delay_steps']:.0f} | {b['delay_all']:.0f} | {spikes} |")


if __name__ == "__main__":
    main()
