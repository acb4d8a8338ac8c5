"""Whether a source's newest data is unusually old (noted in messages and ``warnd status``).

Kept apart from :mod:`warnd.alerting.decide` so that ``warnd status`` can ask it
without loading what sending needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

#: Days of publication lag allowed beyond twice the usual spacing of periods.
LAG_DAYS = 14


def stale_data(store: Any, source: str, *, now: datetime,
               newest_by_source: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """``{"source", "period", "days"}`` when a source's newest data is unusually old.

    Unusual means older than twice the source's usual spacing of periods (the
    median gap between its 12 newest distinct periods) plus 14 days of publication
    lag: a weekly table without a new week for four weeks, a monthly one without a
    new month for about 2½ months. Data no older than the lag is never unusual, so
    a fresh source costs one read of its newest period (none when the caller read
    them for all sources: :meth:`Store.newest_period_by_source`).
    """
    newest = (store.newest_period(source) if newest_by_source is None
              else newest_by_source.get(source))
    if newest is None or (now.date() - date.fromisoformat(newest[:10])).days <= LAG_DAYS:
        return None
    periods = store.newest_periods(source, 12)
    if len(periods) < 2:
        return None
    days = sorted(date.fromisoformat(p[:10]) for p in periods)
    gaps = sorted((b - a).days for a, b in zip(days, days[1:], strict=False))
    spacing = gaps[len(gaps) // 2]
    age = (now.date() - days[-1]).days
    if age <= 2 * spacing + LAG_DAYS:
        return None
    return {"source": source, "period": days[-1].isoformat(), "days": age}
