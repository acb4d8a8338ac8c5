"""A small PNG chart of an alert's series, change onset marked (matplotlib, Agg)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

MAX_SERIES = 4
MAX_PERIODS = 104


def chart_for_alert(
    store: Any, data: dict[str, Any], out_dir: Path, *, alert_id: Any, lang: str = "no"
) -> Path | None:
    """Render (once) the agreeing series of an alert; None when there is nothing to plot.

    One panel per series (their scales differ; a series with denominators shows the
    share), the last two years at most, from the store's observations; a dashed line
    at each series' onset.
    """
    path = Path(out_dir) / f"alert-{alert_id}.png"
    if path.exists() and path.stat().st_size > 0:
        return path
    panels = []
    for a in (data.get("agree") or [])[:MAX_SERIES]:
        s = store.load_series(a["source"], data["substance"], a.get("region") or "",
                              a.get("metric") or "count")
        if len(s.periods) == 0:
            continue
        values = s.values
        name = a["series"]
        if s.denominators is not None:  # the finding is about the share, so plot it
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(s.denominators > 0, s.values / s.denominators, np.nan)
            name += " (andel)" if lang == "no" else " (share)"
        periods = list(s.periods)[-MAX_PERIODS:]
        panels.append((name, periods, list(values)[-MAX_PERIODS:], date.fromisoformat(a["onset"])))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 1.5 + 1.3 * len(panels)), dpi=80)
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    onset_word = "endring fra" if lang == "no" else "change from"
    for ax, (name, periods, values, onset) in zip(axes, panels, strict=True):
        ax.plot(periods, values, color="#1f4e79", linewidth=1.4, marker=".", markersize=3)
        ax.axvline(onset, color="#c00000", linestyle="--", linewidth=1.2,
                   label=f"{onset_word} {onset.isoformat()}")
        ax.set_title(name, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle(str(data.get("label") or data["substance"]), fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
