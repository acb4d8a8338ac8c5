"""Small synthetic inputs for pipeline and daemon tests (seeded, written to a temp dir)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

START = date(2023, 1, 2)  # a Monday
WEEKS = 156


def weekly_counts(seed: int, base: float, *, rise_from: int | None = None,
                  factor: float = 3.0, weeks: int = WEEKS) -> list[int]:
    rng = np.random.default_rng(seed)
    lam = np.full(weeks, base)
    if rise_from is not None:
        lam[rise_from:] *= factor
    return [int(x) for x in rng.poisson(lam)]


def write_lab_csv(path: Path, *, weeks: int = WEEKS, rise_from: int | None = WEEKS - 8) -> Path:
    """ketamin rises ×3 over the last weeks; heroin is stable."""
    ket = weekly_counts(1, 5.0, rise_from=rise_from, weeks=weeks)
    her = weekly_counts(2, 5.0, weeks=weeks)
    lines = ["period,substance,value"]
    for i in range(weeks):
        d = (START + timedelta(weeks=i)).isoformat()
        lines.append(f"{d},ketamin,{ket[i]}")
        lines.append(f"{d},heroin,{her[i]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_rss(path: Path, titles: list[tuple[datetime, str]], *, base: str = "https://news.example") -> Path:
    items = []
    for i, (when, title) in enumerate(titles):
        items.append(
            f"<item><title>{escape(title)}</title><link>{base}/a/{i}</link>"
            f"<guid>{base}/a/{i}</guid>"
            f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>{base}</link><description>d</description>{''.join(items)}</channel></rss>",
        encoding="utf-8",
    )
    return path


def media_titles(weeks: int = WEEKS) -> list[tuple[datetime, str]]:
    ket = weekly_counts(3, 2.0, rise_from=weeks - 8, factor=4.0, weeks=weeks)
    out = []
    for i in range(weeks):
        day = datetime.combine(START + timedelta(weeks=i), datetime.min.time(), UTC)
        for j in range(ket[i]):
            out.append((day + timedelta(hours=10 + j), f"Politiet beslagla ketamin uke {i} nr {j}"))
        out.append((day + timedelta(hours=9), f"Været blir fint i uke {i}"))
    return out


LAB_SOURCE = """
[[sources]]
name = "lab"
kind = "count_table"
location = "data/lab.csv"
interval = "{interval}"
dimension = "use"
"""

WASTEWATER_SOURCE = """
[[sources]]
name = "ww"
kind = "count_table"
location = "data/ww.csv"
interval = "1h"
dimension = "use"
metric = "{metric}"
"""

MEDIA_SOURCE = """
[[sources]]
name = "media"
kind = "rss"
location = "data/media/"
interval = "{interval}"
dimension = "interest"
"""


def put_weekly(state_dir: Path, values, *, start: date, source: str = "lab",
               substance: str = "ketamin", now: datetime | None = None) -> None:
    """Store one series' weekly values from ``start`` as a poll of its table would at
    ``now`` (default: the wall clock; a value already stored and changed is a revision)."""
    from feeds.base import Observation
    from warnd.store import Store

    store = Store.in_dir(state_dir)
    try:
        store.ingest(source, location=f"{source}.csv", sha256=None, problems=(), items=(),
                     observations=[Observation(source=source, substance=substance,
                                               period=start + timedelta(weeks=i),
                                               value=float(v))
                                   for i, v in enumerate(values)], now=now)
    finally:
        store.close()


def noon_after_week(start: date, w: int) -> datetime:
    """Noon of the day after week ``w`` (from ``start``) ended: when it is judged."""
    return datetime.combine(start + timedelta(weeks=w + 1), datetime.min.time(),
                            UTC) + timedelta(hours=12)
