"""Quiet hours: when non-urgent alerts wait.

``[alerting] quiet_hours = "17:00-08:00"`` (local time in ``general.timezone``, may
wrap past midnight) and ``quiet_days = ["sat", "sun"]``. An alert below
``urgent_severity`` that is decided in quiet time gets its deliveries' first attempt
at the end of the quiet time; an urgent one goes out at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from warnd.config import Config, parse_quiet_hours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEVERITIES = ("info", "warning", "critical")


def is_urgent(config: Config, severity: str) -> bool:
    want = SEVERITIES.index(config.alerting.urgent_severity)
    return severity in SEVERITIES and SEVERITIES.index(severity) >= want


def _quiet_local(config: Config, local: datetime) -> bool:
    a = config.alerting
    if WEEKDAYS[local.weekday()] in a.quiet_days:
        return True
    if not a.quiet_hours:
        return False
    (sh, sm), (eh, em) = parse_quiet_hours(a.quiet_hours)
    t, s, e = (local.hour, local.minute), (sh, sm), (eh, em)
    return s <= t < e if s < e else (t >= s or t < e)


def quiet_until(config: Config, now: datetime) -> datetime | None:
    """None when ``now`` is working time, else the (UTC) end of the quiet time."""
    a = config.alerting
    if not a.quiet_hours and not a.quiet_days:
        return None
    tz = ZoneInfo(config.general.timezone)
    local = now.astimezone(tz)
    if not _quiet_local(config, local):
        return None
    ends = [time(0, 0)]
    if a.quiet_hours:
        (_, _), (eh, em) = parse_quiet_hours(a.quiet_hours)
        ends.append(time(eh, em))
    candidates = []
    for d in range(0, 9):
        day = local.date() + timedelta(days=d)
        for t in ends:
            c = datetime.combine(day, t, tzinfo=tz)
            if c > local and not _quiet_local(config, c):
                candidates.append(c)
    if not candidates:  # every day quiet: rejected at config load; be safe anyway
        return None
    return min(candidates).astimezone(UTC)


def due_at(config: Config, severity: str, now: datetime) -> datetime | None:
    """When an alert's deliveries may first be attempted (None: now)."""
    if is_urgent(config, severity):
        return None
    return quiet_until(config, now)
