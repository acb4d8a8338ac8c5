"""Shared types for detection."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

KINDS = ("trend", "spike", "notice")
DIRECTIONS = ("increase", "decrease")
#: The five-step scale, score -> Norwegian / English words.
SCALE = {
    -2: ("sterk nedgang", "strong decrease"),
    -1: ("liten nedgang", "small decrease"),
    0: ("stabil", "stable"),
    1: ("liten økning", "small increase"),
    2: ("sterk økning", "strong increase"),
}


def series_key(source: str, substance: str, region: str = "", metric: str = "count") -> str:
    """``source:substance[:region][:metric]`` (region and metric only when not default)."""
    parts = [source, substance]
    if region:
        parts.append(region)
    if metric != "count":
        parts.append(metric)
    return ":".join(parts)


def replaced(record: Any, **changes: Any) -> Any:
    """``dataclasses.replace(record, **changes)`` without re-running ``__init__`` (a
    shallow copy of a plain dataclass's fields: a fraction of the cost, which shows
    where every observation or finding of a history is copied). A class with
    ``__post_init__`` or slots goes through ``dataclasses.replace``."""
    cls = type(record)
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        return dataclasses.replace(record, **changes)
    new = object.__new__(cls)
    new.__dict__.update(record.__dict__, **changes)
    return new


def is_score(metric: str) -> bool:
    """Trend-panel answers, already on the five-step scale: metric ``score`` or
    ``score:<dimension>`` (a panel asks about use and availability, each its own series)."""
    return metric == "score" or metric.startswith("score:")


@dataclass(frozen=True)
class Series:
    """One series: a substance in one source (optionally one region and metric).

    ``periods`` are period starts in ascending order with no duplicates; missing
    periods are simply absent (detectors decide how to treat gaps). ``denominators``
    is None when the source gives no denominator; NaN where one period lacks it.
    """

    source: str
    substance: str
    periods: tuple[date, ...]
    values: np.ndarray
    region: str = ""
    metric: str = "count"
    dimension: str = "use"
    denominators: np.ndarray | None = None

    @property
    def key(self) -> str:
        return series_key(self.source, self.substance, self.region, self.metric)

    def upto(self, n: int) -> Series:
        """The first ``n`` periods: what was known at period ``n - 1``."""
        return Series(
            source=self.source,
            substance=self.substance,
            periods=self.periods[:n],
            values=self.values[:n],
            region=self.region,
            metric=self.metric,
            dimension=self.dimension,
            denominators=None if self.denominators is None else self.denominators[:n],
        )


@dataclass(frozen=True)
class Finding:
    """What a detector concluded about a series at one period.

    ``key`` is stable for the same change seen again at a later period, so the
    episode logic can tell a new change from one already reported.
    """

    source: str
    substance: str
    kind: str  # trend | spike | notice
    direction: str  # increase | decrease
    onset: date  # first period of the change
    detected_at: date  # period at which the evidence sufficed
    level_before: float
    level_after: float
    relative_change: float  # (after - before) / before; inf when before == 0
    strength: float  # detector statistic, larger = stronger (documented per method)
    p_value: float | None = None
    category: int = 0  # five-step score -2..2
    region: str = ""
    metric: str = "count"
    dimension: str = "use"
    method: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def series_key(self) -> str:
        return series_key(self.source, self.substance, self.region, self.metric)

    @property
    def key(self) -> str:
        return f"{self.series_key}:{self.kind}:{self.direction}:{self.onset.isoformat()}"
