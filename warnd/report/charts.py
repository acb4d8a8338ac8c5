
"""Charts of the half-year report (matplotlib ``Figure`` objects, Agg, no display).

* :func:`longterm_chart` ("Figur 1 – langtidstrender"): one line per dimension, an
  index per half-year. Each series is averaged per half-year and divided by its own
  mean over all half-years (×100), so sources of different units and sizes can be
  averaged; a dimension's index is the mean of its series' indexes. Trend-panel
  answers (already changes, not levels) and overdosefare notice counts (too short a
  history) are left out of the index.
* :func:`sources_chart`: one small panel per series (weekly or monthly values), the
  constant levels between change points found by
  :func:`detectors.changepoints.segment` (dashed vertical lines at each change
  point) and the spikes the detectors recorded (red dots).

Both return PNG bytes; :func:`data_uri` embeds them in the HTML. :class:`ChartCache`
keeps drawn charts by a hash of their data, so a chart is drawn once and reused.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Series, is_score
from detectors.params import DetectionParams
from detectors.synthesis import DIMENSIONS, half_years

#: Series left out of the long-term index (see the module docstring).
NOT_INDEXED = ("notices",)
COLORS = {"use": "#1f5f99", "availability": "#b5541b", "interest": "#4b8a3c"}

TEXT = {
    "no": {
        "use": "bruk", "availability": "tilgjengelighet", "interest": "interesse",
        "index": "indeks (eget snitt = 100)", "longterm": "Langtidstrend",
        "period": "rapportperioden", "spike": "topp (spike)", "level": "nivå mellom brudd",
        "changepoint": "endringspunkt",
    },
    "en": {
        "use": "use", "availability": "availability", "interest": "interest",
        "index": "index (own mean = 100)", "longterm": "Long-term trend",
        "period": "report period", "spike": "spike", "level": "level between breaks",
        "changepoint": "change point",
    },
}


def _segment() -> Any:
    try:
        from detectors.changepoints import segment
    except ImportError:  # an engine without offline segmentation: no change points drawn
        return None
    return segment


def half_year_means(series: Series, params: DetectionParams) -> dict[date, float]:
    """Mean of the finite values per half-year, keyed by the half-year's first day."""
    groups: dict[date, list[float]] = {}
    for p, v in zip(series.periods, np.asarray(series.values, dtype=float), strict=True):
        if math.isfinite(v):
            groups.setdefault(half_years(p, params)[0][0], []).append(float(v))
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}


def trend_index(
    series: Sequence[Series], params: DetectionParams
) -> dict[str, list[tuple[date, float]]]:
    """Per dimension: ``(half-year start, index)`` with each series at 100 on its mean.

    A series whose mean is zero or that has fewer than two half-years is skipped.
    """
    per_dim: dict[str, dict[date, list[float]]] = {}
    for s in series:
        if s.metric in NOT_INDEXED or is_score(s.metric):
            continue
        means = half_year_means(s, params)
        if len(means) < 2:
            continue
        m = float(np.mean(list(means.values())))
        if not m > 0:
            continue
        d = per_dim.setdefault(s.dimension, {})
        for k, v in means.items():
            d.setdefault(k, []).append(100.0 * v / m)
    return {
        dim: [(k, float(np.mean(v))) for k, v in sorted(per_dim[dim].items())]
        for dim in DIMENSIONS
        if dim in per_dim
    }


def _half_label(d: date) -> str:
    return f"{d.year}-{d.month:02d}"


def _png(fig: Any) -> bytes:
    # the constrained layout fits everything already; bbox_inches="tight" would draw
    # the whole figure a second time to measure it
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


#: Raised when a chart's drawing changes, so cached PNGs of the old look are not reused.
CHART_VERSION = 1


class ChartCache:
    """PNG charts kept by a hash of everything they show, drawn once and reused.

    ``warnd report`` keeps them in ``<state_dir>/charts/``: a second report over
    the same data (another format run, another ``--out``, the same period next
    morning) draws nothing. A chart whose data changed gets a new hash; the
    oldest files beyond ``keep`` are removed. A directory that cannot be written
    only means charts are drawn each time.
    """

    def __init__(self, directory: Path | None, *, keep: int = 500) -> None:
        self.directory = directory
        self.keep = keep
        self.hits = 0
        self.drawn = 0

    def png(self, kind: str, inputs: Any, draw: Callable[[], bytes]) -> bytes:
        digest = hashlib.sha256(json.dumps(
            [CHART_VERSION, kind, inputs], default=_plain, sort_keys=True).encode()).hexdigest()
        path = self.directory / f"{kind}-{digest[:32]}.png" if self.directory else None
        if path is not None and path.exists():
            try:
                data = path.read_bytes()
                os.utime(path)
                self.hits += 1
                return data
            except OSError:
                pass
        data = draw()
        self.drawn += 1
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
                self._prune()
            except OSError:
                pass
        return data

    def _prune(self) -> None:
        assert self.directory is not None
        files = sorted(self.directory.glob("*.png"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return [None if not math.isfinite(x) else x for x in o.astype(float).tolist()]
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, Series):
        return [o.key, o.dimension, o.metric, o.periods, o.values, o.denominators]
    raise TypeError(type(o).__name__)


def longterm_png(cache: ChartCache, label: str, index: dict[str, list[tuple[date, float]]],
                 current: tuple[date, date], lang: str = "no") -> bytes:
    """:func:`longterm_chart` through the cache."""
    return cache.png("longterm", [label, index, current, lang],
                     lambda: longterm_chart(label, index, current, lang))


def sources_png(cache: ChartCache, series: Sequence[Series], spikes: dict[str, list[date]],
                current: tuple[date, date], previous: tuple[date, date],
                lang: str = "no") -> bytes:
    """:func:`sources_chart` through the cache."""
    shown = {s.key for s in series}
    inputs = [sorted(series, key=lambda s: s.key),
              {k: v for k, v in sorted(spikes.items()) if k in shown}, current, previous, lang]
    return cache.png("sources", inputs,
                     lambda: sources_chart(series, spikes, current, previous, lang))


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def longterm_chart(
    label: str,
    index: dict[str, list[tuple[date, float]]],
    current: tuple[date, date],
    lang: str = "no",
) -> bytes:
    """PNG: the half-year index per dimension, the report period shaded."""
    t = TEXT[lang]
    fig = _figure(8.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    starts = sorted({k for pts in index.values() for k, _ in pts})
    pos = {k: i for i, k in enumerate(starts)}
    for dim, pts in index.items():
        ax.plot([pos[k] for k, _ in pts], [v for _, v in pts], marker="o", lw=2,
                color=COLORS.get(dim, "#555"), label=t.get(dim, dim))
    if current[0] in pos:
        i = pos[current[0]]
        ax.axvspan(i - 0.4, i + 0.4, color="#f2d16b", alpha=0.35, label=t["period"])
    ax.axhline(100, color="#999", lw=0.8, ls=":")
    ax.set_xticks(range(len(starts)))
    ax.set_xticklabels([_half_label(k) for k in starts], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(t["index"], fontsize=9)
    ax.set_title(f"{t['longterm']} – {label}", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    if index:
        ax.legend(fontsize=8, loc="upper left", frameon=False)
    return _png(fig)


@dataclass(frozen=True)
class Marks:
    """What a series' panel shows: the plotted values (positives per test where there is
    a denominator), segments ``(first, last index, level)``, change-point and spike
    indices."""

    values: np.ndarray
    segments: list[tuple[int, int, float]]
    change_points: list[int]
    spikes: list[int]


def series_marks(s: Series, spikes: dict[str, list[date]]) -> Marks:
    y = np.asarray(s.values, dtype=float)
    if s.denominators is not None and not is_score(s.metric):
        den = np.asarray(s.denominators, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(den > 0, y / den, np.nan)
    segments: list[tuple[int, int, float]] = []
    cps: list[int] = []
    seg = _segment()
    if seg is not None and len(y) >= 6 and not is_score(s.metric):
        res = seg(y, list(s.periods))
        segments, cps = list(res.segments), list(res.change_points)
    hit = set(spikes.get(s.key, ()))
    return Marks(y, segments, cps, [j for j, p in enumerate(s.periods) if p in hit])


def sources_chart(
    series: Sequence[Series],
    spikes: dict[str, list[date]],
    current: tuple[date, date],
    previous: tuple[date, date],
    lang: str = "no",
) -> bytes:
    """PNG: one panel per series with segment levels, change points and spikes."""
    t = TEXT[lang]
    order = {d: i for i, d in enumerate(DIMENSIONS)}  # as in the table: use, availability, …
    shown = sorted((s for s in series if len(s.periods) > 0),
                   key=lambda s: (order.get(s.dimension, 9), s.key))
    n = max(1, len(shown))
    cols = 2
    rows = math.ceil(n / cols)
    fig = _figure(10.0, 1.9 * rows + 0.4)
    lo = min([s.periods[0] for s in shown] + [previous[0]])
    hi = max([s.periods[-1] for s in shown] + [current[1]])
    for i, s in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        m = series_marks(s, spikes)
        x = np.array(s.periods, dtype="datetime64[D]")
        y = m.values
        ax.axvspan(np.datetime64(previous[0]), np.datetime64(current[1]) + 1,
                   color="#f2d16b", alpha=0.18, lw=0)
        ax.axvline(np.datetime64(current[0]), color="#c9a227", lw=0.8)
        ax.plot(x, y, color="#1f5f99", lw=0.9, marker="." if len(x) < 30 else None)
        for a, b, level in m.segments:
            ax.hlines(level, x[a], x[b], colors="#333", lw=1.6)
        for cp in m.change_points:
            ax.axvline(x[cp], color="#333", ls="--", lw=0.9)
        if m.spikes:
            ax.plot(x[m.spikes], y[m.spikes], "o", color="#c0392b", ms=4)
        ax.set_title(f"{s.key} [{t.get(s.dimension, s.dimension)}]", fontsize=8)
        ax.set_xlim(np.datetime64(lo), np.datetime64(hi))
        ax.tick_params(labelsize=7)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="#333", lw=1.6, label=t["level"]),
        Line2D([], [], color="#333", ls="--", lw=0.9, label=t["changepoint"]),
        Line2D([], [], color="#c0392b", marker="o", ls="", ms=4, label=t["spike"]),
        Patch(color="#f2d16b", alpha=0.5, label=t["period"]),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=4, fontsize=8,
               frameon=False)
    return _png(fig)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
