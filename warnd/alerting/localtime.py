"""Wall-clock times in ``general.timezone`` made instants, across clock changes.

A time of day (the end of quiet hours, a digest's ``at``, the end of a silence given
in days) names what the clock shows, and on the two nights a year the clock changes
that is not one instant: in spring the clock jumps over an hour (in Europe/Oslo
02:00-03:00 does not exist), in autumn it runs through an hour twice. :func:`instant`
takes the first moment the clock shows that time or a later one: the first of the
two in the repeated hour, and for a time in the missing hour the moment of the jump
(02:30 on the spring night is 03:00 summer time). Python's own rule (``fold=0``) gives
a time in the missing hour the offset before the jump, an instant an hour after it by
the clock (02:30 → 03:30), and comparing two datetimes of the same zone compares
their clock times, not their instants; here everything is compared in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta, tzinfo


def instant(day: date, at: time, tz: tzinfo) -> datetime:
    """The first (UTC) instant at which the clock in ``tz`` shows ``day`` ``at`` or later."""
    return wall_instant(datetime.combine(day, at), tz)


def wall_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The first (UTC) instant at which the clock in ``tz`` shows ``wall`` (naive) or later."""
    wall = wall.replace(tzinfo=None, fold=0)
    first = wall.replace(tzinfo=tz).astimezone(UTC)  # the earlier offset: fold=0
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first  # it exists (in the repeated hour: its first occurrence)
    # in a gap: the instant the two offsets give lie either side of the jump; the
    # first whole second whose clock time is at or after ``wall``
    lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())  # before the jump
    hi = math.ceil(first.timestamp())  # after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def add_days(start: datetime, days: int, tz: tzinfo) -> datetime:
    """The (UTC) instant ``days`` calendar days after ``start`` at the same clock time in
    ``tz`` (14 days from Monday 09:00 is Monday 09:00, a clock change between or not)."""
    local = start.astimezone(tz)
    return wall_instant(local.replace(tzinfo=None) + timedelta(days=days), tz)


def wall_clock(stored: str, tz: tzinfo) -> str:
    """A stored time (ISO, UTC) as staff read it: on the clock in ``tz``, to the minute,
    with the zone's short name ("2026-04-01 00:10 CEST"), as the console shows it."""
    try:
        t = datetime.fromisoformat(stored)
    except ValueError:
        return stored[:16].replace("T", " ")
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(tz).strftime(
        "%Y-%m-%d %H:%M %Z")


def local_day(stored: str | datetime, tz: tzinfo) -> str:
    """The day (``YYYY-MM-DD``) on the clock in ``tz`` of a stored time (ISO, UTC, or an
    aware datetime): what a message shows people. A time written without a zone is UTC,
    one that is not a time at all keeps its first ten characters."""
    if isinstance(stored, str):
        try:
            stored = datetime.fromisoformat(stored)
        except ValueError:
            return stored[:10]
    t = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
    return t.astimezone(tz).date().isoformat()
