"""Quiet hours: when non-urgent alerts wait.

``[alerting] quiet_hours = "17:00-08:00"`` (local time in ``general.timezone``, may
wrap past midnight) and ``quiet_days = ["sat", "sun"]``. An alert below
``urgent_severity`` that is decided in quiet time gets its deliveries' first attempt
at the end of the quiet time; an urgent one goes out at once. On the nights the clock
changes, a quiet time ends the first moment the clock shows its end
(:func:`quiet_until`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from warnd.alerting.localtime import instant
from warnd.config import Config, parse_quiet_hours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEVERITIES = ("info", "warning", "critical")


def is_urgent(config: Config, severity: str) -> bool:
    want = SEVERITIES.index(config.alerting.urgent_severity)
    return severity in SEVERITIES and SEVERITIES.index(severity) >= want


def _spans(config: Config, tz: ZoneInfo, around: date) -> list[tuple[datetime, datetime]]:
    """The quiet times of the days around ``around`` as (UTC) instants, by start: each
    quiet day from midnight to midnight, each day's quiet hours from their start to
    their end (the next day's when they wrap), each bound the first moment the clock
    shows it (:func:`warnd.alerting.localtime.instant`)."""
    a = config.alerting
    hours = parse_quiet_hours(a.quiet_hours) if a.quiet_hours else None
    spans = []
    for k in range(-2, 10):
        day = around + timedelta(days=k)
        if WEEKDAYS[day.weekday()] in a.quiet_days:
            spans.append((instant(day, time(0), tz), instant(day + timedelta(days=1), time(0), tz)))
        if hours is not None:
            (sh, sm), (eh, em) = hours
            end_day = day if (sh, sm) < (eh, em) else day + timedelta(days=1)
            spans.append((instant(day, time(sh, sm), tz), instant(end_day, time(eh, em), tz)))
    # on the spring night a span may be empty (both its bounds in the skipped hour)
    return sorted(s for s in spans if s[0] < s[1])


def quiet_until(config: Config, now: datetime) -> datetime | None:
    """None when ``now`` is working time, else the (UTC) end of the quiet time.

    A quiet time is one stretch from its start to the first moment the clock shows its
    end: an end in the hour the clock runs through twice (autumn) is its first
    occurrence, and the second run through that hour is working time; an end in the
    hour the clock skips (spring) is the moment of the jump (02:30 → 03:00)."""
    a = config.alerting
    if not a.quiet_hours and not a.quiet_days:
        return None
    tz = ZoneInfo(config.general.timezone)
    now = now.astimezone(UTC)
    end: datetime | None = None
    for s, e in _spans(config, tz, now.astimezone(tz).date()):
        if end is None:
            if s <= now < e:
                end = e
        elif s <= end:  # quiet again the moment it ends: one stretch (Friday night, Saturday)
            end = max(end, e)
    return end


def due_at(config: Config, severity: str, now: datetime) -> datetime | None:
    """When an alert's deliveries may first be attempted (None: now)."""
    if is_urgent(config, severity):
        return None
    return quiet_until(config, now)
