"""Seeded synthetic series for the detector tests."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from detectors.base import Series

START = date(2020, 1, 6)  # a Monday


def weeks(n: int, start: date = START) -> tuple[date, ...]:
    return tuple(start + timedelta(weeks=i) for i in range(n))


def nb_counts(mu: np.ndarray, seed: int, size: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = np.asarray(mu, dtype=float)
    return rng.negative_binomial(size, size / (size + mu)).astype(float)


def count_series(
    values, *, metric: str = "count", denominators=None, source: str = "lab"
) -> Series:
    values = np.asarray(values, dtype=float)
    return Series(
        source=source,
        substance="cocaine",
        periods=weeks(len(values)),
        values=values,
        metric=metric,
        denominators=None if denominators is None else np.asarray(denominators, float),
    )


def seasonal_mean(n: int, level: float, amplitude: float = 0.3) -> np.ndarray:
    return level * np.exp(amplitude * np.sin(2 * np.pi * np.arange(n) / 52.18))
