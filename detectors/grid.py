"""Regular period grids: which step a series has and where each period sits on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np

#: Periods per year for each step.
PER_YEAR = {"day": 365.25, "week": 365.25 / 7.0, "month": 12.0}


def infer_step(periods: Sequence[date]) -> str:
    """``"month"`` when every period is a 1st and steps are 28+ days, ``"week"`` when
    every step is a multiple of 7 days, else ``"day"``. One period: ``"week"``."""
    return prefix_steps(periods)[-1] if len(periods) else "week"


def prefix_steps(periods: Sequence[date]) -> list[str]:
    """``infer_step(periods[:i + 1])`` for every i, in one pass."""
    out: list[str] = []
    all_first = True
    min_diff = 10**9
    all_week = True
    prev: date | None = None
    for p in periods:
        all_first = all_first and p.day == 1
        if prev is not None:
            d = (p - prev).days
            min_diff = min(min_diff, d)
            all_week = all_week and d % 7 == 0
        prev = p
        if prev is not None and min_diff == 10**9:
            out.append("week")
        elif all_first and min_diff >= 28:
            out.append("month")
        elif all_week:
            out.append("week")
        else:
            out.append("day")
    return out


def grid_positions(periods: Sequence[date], step: str) -> np.ndarray:
    """Index of each period on the regular grid starting at ``periods[0]``."""
    if not len(periods):
        return np.zeros(0, dtype=np.int64)
    p0 = periods[0]
    if step == "month":
        pos = [(p.year - p0.year) * 12 + (p.month - p0.month) for p in periods]
    elif step == "week":
        pos = [(p - p0).days // 7 for p in periods]
    else:
        pos = [(p - p0).days for p in periods]
    return np.asarray(pos, dtype=np.int64)


def on_grid(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``values`` spread onto the full grid; absent periods are NaN."""
    n = int(positions[-1]) + 1 if len(positions) else 0
    out = np.full(n, np.nan)
    out[positions] = np.asarray(values, dtype=float)
    return out
