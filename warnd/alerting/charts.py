"""The chart in an alert email: every agreeing series with its expected band and onset.

One panel per agreeing series (their scales differ), on one time axis: the values of
the last two years before the newest period of the alert's series, weekly and monthly
alike (a series with denominators shows the share in per cent), the
detector's expected level with its 95 % band (:func:`expected_band`, the baseline the
engine fits, see ``docs/web.md``) and a line at the onset of the change. Rendered
with matplotlib (Agg) at 2× resolution, so it is sharp on high-DPI screens and in
print; the email shows it inline (``cid:``) at 640 px width.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Series

#: Panels drawn at most (an alert rarely has more agreeing series).
MAX_SERIES = 12
#: The window shown: this many days back from the newest period of the alert's series
#: (two years, whatever the spacing of their periods: the panels share their time axis).
WINDOW_DAYS = 731
#: Pixels per inch: 6.4 in wide → 1280 px, shown at 640 px (2×).
DPI = 200


def expected_band(series: Series, params: Any) -> dict[str, np.ndarray] | None:
    """Expected level, 95 % band and spike threshold per period of ``series``: the fits
    the engine judges with (:func:`detectors.engine.expected_levels`)."""
    from detectors.engine import expected_levels

    if len(series.periods) < 3:
        return None
    return expected_levels(series, params)


def chart_for_alert(
    store: Any, data: dict[str, Any], out_dir: Path, *, alert_id: Any, lang: str = "no",
    config: Any = None,
) -> Path | None:
    """Render (once) the agreeing series of an alert; None when there is nothing to plot."""
    path = Path(out_dir) / f"alert-{alert_id}.png"
    if path.exists() and path.stat().st_size > 0:
        return path
    panels = chart_panels(store, data, lang=lang, config=config)
    if not panels:
        return None
    return _draw(panels, data, lang, path)


def chart_panels(store: Any, data: dict[str, Any], *, lang: str = "no",
                 config: Any = None) -> list[tuple[Any, ...]]:
    """The panels of an alert's chart, one per agreeing series: its name with unit, the
    periods and values of the window (:data:`WINDOW_DAYS`), the expected band and the
    onset."""
    from warnd.alerting.names import axis_unit, series_head

    series = []
    for a in (data.get("agree") or [])[:MAX_SERIES]:
        s = store.load_series(a["source"], data["substance"], a.get("region") or "",
                              a.get("metric") or "count")
        if len(s.periods) == 0:
            continue
        share = s.denominators is not None
        values = np.asarray(s.values, float)
        if share:  # the finding is about the share, so plot it (per cent)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(s.denominators > 0, s.values / s.denominators * 100, np.nan)
        band = None
        if config is not None:
            try:
                band = expected_band(s, config.detection_params(data["substance"], a["source"]))
            except Exception:  # the band is a help, never a reason to drop the chart
                band = None
        unit = axis_unit(a.get("metric"), lang, share=share, config=config, source=a["source"])
        name = f"{series_head(config, a['source'], a.get('region'), lang)}: {unit}"
        scale = 100.0 if share else 1.0
        series.append((name, list(s.periods), values,
                       {k: v * scale for k, v in band.items()} if band else None,
                       date.fromisoformat(a["onset"])))
    if not series:
        return []
    start = max(p[1][-1] for p in series) - timedelta(days=WINDOW_DAYS)
    panels = []
    for name, periods, values, band, onset in series:
        i = next((k for k, p in enumerate(periods) if p >= start), len(periods))
        panels.append((name, periods[i:], values[i:],
                       {k: v[i:] for k, v in band.items()} if band else None, onset))
    return panels


def _draw(panels: list[tuple[Any, ...]], data: dict[str, Any], lang: str,
          path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    no = lang == "no"
    fig = Figure(figsize=(6.4, 0.9 + 1.45 * len(panels)), dpi=DPI)
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    onset_word = "endring fra" if no else "change from"
    for ax, (name, periods, values, band, onset) in zip(axes, panels, strict=True):
        if band is not None:
            ax.fill_between(periods, band["lo"], band["hi"], color="#7f7f7f", alpha=0.18,
                            linewidth=0, label="forventet område" if no else "expected range")
            ax.plot(periods, band["expected"], color="#7f7f7f", linewidth=1, linestyle="--",
                    label="forventet" if no else "expected")
        ax.plot(periods, values, color="#1f4e79", linewidth=1.4, marker=".", markersize=3)
        ax.axvline(onset, color="#c00000", linewidth=1.2,
                   label=f"{onset_word} {onset.isoformat()}")
        ax.set_title(name, fontsize=8.5, loc="left")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="upper left", frameon=False, ncol=3)
        ax.grid(alpha=0.3)
        if no:
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(
                lambda v, _: f"{v:g}".replace(".", ",").replace("-", "−")))
    fig.suptitle(str(data.get("label") or data["substance"]), fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
