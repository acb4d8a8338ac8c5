
"""Charts of the half-year report, as SVG.

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

Both return SVG written here (no plotting library: a chart takes milliseconds and
stays sharp in print), with labelled axes, units and the language's decimal mark;
:func:`data_uri` embeds them in the HTML. :class:`ChartCache` keeps drawn charts by
a hash of their data, so a chart is drawn once and reused.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
        "changepoint": "endringspunkt", "halfyear": "halvår (første måned)",
        "sources": "Kildene over tid", "share": "andel positive", "year": "år",
        "month": "måned",
        "units": {"count": "antall", "quantity": "mengde", "index": "indeks", "rate": "rate",
                  "concentration": "konsentrasjon", "score": "skår", "notices": "varsler"},
    },
    "en": {
        "use": "use", "availability": "availability", "interest": "interest",
        "index": "index (own mean = 100)", "longterm": "Long-term trend",
        "period": "report period", "spike": "spike", "level": "level between breaks",
        "changepoint": "change point", "halfyear": "half-year (first month)",
        "sources": "The sources over time", "share": "share positive", "year": "year",
        "month": "month",
        "units": {"count": "count", "quantity": "quantity", "index": "index", "rate": "rate",
                  "concentration": "concentration", "score": "score", "notices": "notices"},
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


# -- SVG ------------------------------------------------------------------------------
# Charts are SVG written here, not drawn by a plotting library: a report draws its
# charts in milliseconds, they stay sharp at any zoom and in print, and the text in
# them is text (searchable, in the page's font).

FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def fmt_tick(x: float, step: float, lang: str) -> str:
    """A tick value with as many decimals as the step needs, in the language's
    notation: decimal comma and a space between thousands in Norwegian."""
    # as many as the step has: 2.5 apart needs one ("−2,5", "−7,5"; not "−2", "−8")
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * step), 6) \
        if step > 0 else 0
    text = f"{x:,.{decimals}f}"
    if lang == "no":
        return text.replace(",", "\u00a0").replace(".", ",").replace("-", "\u2212")
    return text.replace("-", "\u2212")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2, 2.5 or 5 × 10^k apart) covering lo..hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 10))
        k += 1
    if ticks[-1] < hi:
        ticks.append(round(first + k * step, 10))
    return ticks


class _Svg:
    """A tiny SVG writer: shapes and text in pixel coordinates."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width, self.height = width, height
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" {FONT} '
            f'font-size="11" role="img"><title>{html.escape(title)}</title>',
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>']

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, text: str, *, size: float = 11, anchor: str = "start",
             weight: str = "normal", rotate: float = 0, color: str = "#222") -> None:
        rot = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
        bold = ' font-weight="bold"' if weight != "normal" else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" '
                          f'text-anchor="{anchor}" fill="{color}"{bold}{rot}>{html.escape(text)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1,
             dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                          f'stroke="{color}" stroke-width="{width:g}"{d}/>')

    def rect(self, x: float, y: float, w: float, h: float, color: str,
             opacity: float = 1.0) -> None:
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
                          f'height="{max(h, 0):.1f}" fill="{color}" '
                          f'fill-opacity="{opacity:g}"/>')

    def polyline(self, points: Sequence[tuple[float, float] | None], color: str,
                 width: float = 1.0) -> None:
        """A line through the points; ``None`` (a missing value) breaks it."""
        run: list[str] = []
        for pt in [*points, None]:
            if pt is None:
                if len(run) > 1:
                    self.parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                                      f'stroke="{color}" stroke-width="{width:g}" '
                                      'stroke-linejoin="round"/>')
                run = []
            else:
                run.append(f"{pt[0]:.1f},{pt[1]:.1f}")

    def dot(self, x: float, y: float, r: float, color: str) -> None:
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{color}"/>')

    def bytes(self) -> bytes:
        return ("".join(self.parts) + "</svg>").encode("utf-8")


@dataclass(frozen=True)
class _Frame:
    """A plot area: data ranges mapped to pixels."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / ((self.x1 - self.x0) or 1) * self.width

    def y(self, v: float) -> float:
        return self.top + self.height - (v - self.y0) / ((self.y1 - self.y0) or 1) * self.height


def _y_axis(svg: _Svg, f: _Frame, ticks: list[float], lang: str, *, size: float = 9,
            grid: bool = True) -> None:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for v in ticks:
        y = f.y(v)
        if grid:
            svg.line(f.left, y, f.left + f.width, y, "#e3e3e3", 0.8)
        svg.line(f.left - 3, y, f.left, y, "#444", 0.8)
        svg.text(f.left - 5, y + size * 0.35, fmt_tick(v, step, lang), size=size, anchor="end")


def _frame_box(svg: _Svg, f: _Frame) -> None:
    svg.add(f'<rect x="{f.left:.1f}" y="{f.top:.1f}" width="{f.width:.1f}" '
            f'height="{f.height:.1f}" fill="none" stroke="#444" stroke-width="0.8"/>')


def _legend(svg: _Svg, x: float, y: float, entries: list[tuple[str, str]],
            size: float = 10) -> None:
    """Entries ``(kind, label)`` in a row from (x, y); kind is ``line:color``,
    ``dash:color``, ``dot:color`` or ``band:color``."""
    for kind, label in entries:
        what, color = kind.split(":", 1)
        if what == "band":
            svg.rect(x, y - 7, 18, 10, color, 0.5)
        elif what == "dot":
            svg.dot(x + 9, y - 2, 3.5, color)
        else:
            svg.line(x, y - 2, x + 18, y - 2, color, 2 if what == "line" else 1,
                     "4 3" if what == "dash" else "")
        svg.text(x + 23, y + 2, label, size=size)
        x += 23 + 0.6 * size * len(label) + 18


#: Raised when a chart's drawing changes, so cached charts of the old look are not reused.
CHART_VERSION = 2


class ChartCache:
    """Charts (SVG) kept by a hash of everything they show, drawn once and reused.

    ``warnd report`` keeps them in ``<state_dir>/charts/``: a second report over
    the same data (another format run, another ``--out``, the same period next
    morning) draws nothing. A chart whose data changed gets a new hash; the
    oldest files beyond ``keep`` are removed. A directory that cannot be written
    only means charts are drawn each time.
    """

    suffix = ".svg"

    def __init__(self, directory: Path | None, *, keep: int = 500) -> None:
        self.directory = directory
        self.keep = keep
        self.hits = 0
        self.drawn = 0

    def chart(self, kind: str, inputs: Any, draw: Callable[[], bytes]) -> bytes:
        digest = hashlib.sha256(json.dumps(
            [CHART_VERSION, kind, inputs], default=_plain, sort_keys=True).encode()).hexdigest()
        path = self.directory / f"{kind}-{digest[:32]}{self.suffix}" if self.directory else None
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
        files = sorted((p for p in self.directory.iterdir() if p.suffix in (".svg", ".png")),
                       key=lambda p: p.stat().st_mtime)
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


def longterm_svg(cache: ChartCache, label: str, index: dict[str, list[tuple[date, float]]],
                 current: tuple[date, date], lang: str = "no") -> bytes:
    """:func:`longterm_chart` through the cache."""
    return cache.chart("longterm", [label, index, current, lang],
                       lambda: longterm_chart(label, index, current, lang))


def sources_svg(cache: ChartCache, series: Sequence[Series], spikes: dict[str, list[date]],
                current: tuple[date, date], previous: tuple[date, date],
                lang: str = "no", panels: dict[str, tuple[str, str]] | None = None) -> bytes:
    """:func:`sources_chart` through the cache."""
    shown = {s.key for s in series}
    inputs = [sorted(series, key=lambda s: s.key),
              {k: v for k, v in sorted(spikes.items()) if k in shown}, current, previous, lang,
              {k: list(v) for k, v in sorted((panels or {}).items()) if k in shown}]
    return cache.chart("sources", inputs,
                       lambda: sources_chart(series, spikes, current, previous, lang, panels))


def longterm_chart(
    label: str,
    index: dict[str, list[tuple[date, float]]],
    current: tuple[date, date],
    lang: str = "no",
) -> bytes:
    """SVG: the half-year index per dimension, the report period shaded."""
    t = TEXT[lang]
    svg = _Svg(720, 300, f"{t['longterm']} – {label}")
    starts = sorted({k for pts in index.values() for k, _ in pts})
    pos = {k: i for i, k in enumerate(starts)}
    values = [v for pts in index.values() for _, v in pts] + [100.0]
    ticks = nice_ticks(min(values), max(values))
    f = _Frame(left=62, top=52, width=640, height=176, x0=-0.5,
               x1=max(len(starts) - 0.5, 0.5), y0=ticks[0], y1=ticks[-1])
    svg.text(360, 20, f"{t['longterm']} – {label}", size=13, anchor="middle", weight="bold")
    _y_axis(svg, f, ticks, lang)
    if current[0] in pos:
        i = pos[current[0]]
        svg.rect(f.x(i - 0.4), f.top, f.x(i + 0.4) - f.x(i - 0.4), f.height, "#f2d16b", 0.35)
    svg.line(f.left, f.y(100), f.left + f.width, f.y(100), "#999", 0.8, "2 2")
    for i, k in enumerate(starts):
        x = f.x(i)
        svg.line(x, f.top + f.height, x, f.top + f.height + 3, "#444", 0.8)
        svg.text(x + 3, f.top + f.height + 12, _half_label(k), size=9, anchor="end",
                 rotate=-45)
    for dim, pts in index.items():
        color = COLORS.get(dim, "#555")
        xy = [(f.x(pos[k]), f.y(v)) for k, v in pts]
        svg.polyline(xy, color, 2)
        for x, y in xy:
            svg.dot(x, y, 3.2, color)
    _frame_box(svg, f)
    svg.text(16, f.top + f.height / 2, t["index"], size=10, anchor="middle", rotate=-90)
    svg.text(f.left + f.width / 2, 296, t["halfyear"], size=10, anchor="middle")
    entries = [(f"line:{COLORS.get(d, '#555')}", t.get(d, d)) for d in index]
    if current[0] in pos:
        entries.append(("band:#f2d16b", t["period"]))
    _legend(svg, f.left, 40, entries)
    return svg.bytes()


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


def _unit(s: Series, lang: str) -> str:
    """The y axis of a series' panel in words."""
    t = TEXT[lang]
    if is_score(s.metric):
        return t["units"]["score"]
    if s.denominators is not None:
        return t["share"]
    return t["units"].get(s.metric, s.metric)


def _date_ticks(lo: date, hi: date) -> tuple[list[date], str]:
    """Years (or half-years, or months on a short span) between lo and hi, and the
    label format."""
    span = (hi - lo).days
    if span > 3 * 365:
        return [date(y, 1, 1) for y in range(lo.year, hi.year + 1) if date(y, 1, 1) >= lo], "y"
    step = 6 if span > 400 else (3 if span > 120 else 1)
    out, y, m = [], lo.year, 1
    while date(y, m, 1) <= hi:
        if date(y, m, 1) >= lo:
            out.append(date(y, m, 1))
        m += step
        if m > 12:
            y, m = y + 1, m - 12
    return out, "m"


def sources_chart(
    series: Sequence[Series],
    spikes: dict[str, list[date]],
    current: tuple[date, date],
    previous: tuple[date, date],
    lang: str = "no",
    panels: dict[str, tuple[str, str]] | None = None,
) -> bytes:
    """SVG: one panel per series with segment levels, change points and spikes. A
    series in ``panels`` is titled with its source and region and its axis says what it
    measures, as the report's tables name it (a share of tests in per cent, as the tables
    give it); without, the title is its key and the axis its metric."""
    t = TEXT[lang]
    order = {d: i for i, d in enumerate(DIMENSIONS)}  # as in the table: use, availability, …
    shown = sorted((s for s in series if len(s.periods) > 0),
                   key=lambda s: (order.get(s.dimension, 9), s.key))
    cols = 2
    rows = max(1, math.ceil(len(shown) / cols))
    pw, ph = 450, 172  # one panel
    svg = _Svg(pw * cols, 36 + ph * rows, t["sources"])
    lo = min([s.periods[0] for s in shown] + [previous[0]])
    hi = max([s.periods[-1] for s in shown] + [current[1]])
    day0 = lo.toordinal()
    xticks, fmt = _date_ticks(lo, hi)
    _legend(svg, 120, 20, [("line:#333", t["level"]), ("dash:#333", t["changepoint"]),
                           ("dot:#c0392b", t["spike"]), ("band:#f2d16b", t["period"])])
    for i, s in enumerate(shown):
        ox, oy = (i % cols) * pw, 36 + (i // cols) * ph
        m = series_marks(s, spikes)
        title, unit = (panels or {}).get(s.key) or (s.key, _unit(s, lang))
        # a share of tests on an axis "(%)" in per cent, as the tables give it
        scale = 100.0 if s.key in (panels or {}) and unit.endswith("(%)") else 1.0
        y = m.values * scale
        m = replace(m, segments=[(a, b, lv * scale) for a, b, lv in m.segments])
        finite = y[np.isfinite(y)]
        levels = [lv for _, _, lv in m.segments]
        ticks = nice_ticks(min([0.0, *finite.tolist(), *levels]),
                           max([*finite.tolist(), *levels, 0.0]), 4)
        f = _Frame(left=ox + 62, top=oy + 22, width=pw - 80, height=ph - 62,
                   x0=0, x1=hi.toordinal() + 1 - day0, y0=ticks[0], y1=ticks[-1])
        svg.text(ox + pw / 2 + 20, oy + 14, f"{title} [{t.get(s.dimension, s.dimension)}]",
                 size=10, anchor="middle")
        _y_axis(svg, f, ticks, lang, size=8)
        svg.rect(f.x(previous[0].toordinal() - day0), f.top,
                 f.x(current[1].toordinal() + 1 - day0) - f.x(previous[0].toordinal() - day0),
                 f.height, "#f2d16b", 0.18)
        xc = f.x(current[0].toordinal() - day0)
        svg.line(xc, f.top, xc, f.top + f.height, "#c9a227", 0.8)
        for d in xticks:
            x = f.x(d.toordinal() - day0)
            svg.line(x, f.top + f.height, x, f.top + f.height + 3, "#444", 0.8)
            svg.text(x, f.top + f.height + 13, str(d.year) if fmt == "y" else
                     f"{d.year}-{d.month:02d}", size=8, anchor="middle")
        xs = [f.x(p.toordinal() - day0) for p in s.periods]
        svg.polyline([(x, f.y(v)) if math.isfinite(v) else None for x, v in zip(xs, y.tolist(),
                      strict=True)], "#1f5f99", 1.0)
        if len(xs) < 30:
            for x, v in zip(xs, y.tolist(), strict=True):
                if math.isfinite(v):
                    svg.dot(x, f.y(v), 1.6, "#1f5f99")
        for a, b, level in m.segments:
            svg.line(xs[a], f.y(level), xs[b], f.y(level), "#333", 1.6)
        for cp in m.change_points:
            svg.line(xs[cp], f.top, xs[cp], f.top + f.height, "#333", 0.9, "4 3")
        for j in m.spikes:
            if math.isfinite(y[j]):
                svg.dot(xs[j], f.y(float(y[j])), 3.5, "#c0392b")
        _frame_box(svg, f)
        svg.text(ox + 14, f.top + f.height / 2, unit, size=9, anchor="middle", rotate=-90)
        svg.text(f.left + f.width / 2, f.top + f.height + 27,
                 t["year"] if fmt == "y" else t["month"], size=8, anchor="middle",
                 color="#555")
    return svg.bytes()


def data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
