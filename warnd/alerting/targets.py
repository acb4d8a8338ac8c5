"""Per-target delivery state: back-off shared by a target's deliveries, failing targets.

A target that times out, refuses, fails TLS or answers with an HTTP error is not
tried again for any of its deliveries until its back-off ends (the longer of the
delivery's exponential back-off and the target's ``Retry-After``, at most
``alerting.max_retry_after``); its other deliveries wait without an attempt being
counted. ``target_state`` also counts failed attempts in a row, so health can name
a target whose last ``alerting.failing_after`` attempts failed, with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warnd.store import Store, iso


def blocked_targets(store: Store, now: datetime) -> dict[str, tuple[datetime, str]]:
    """Targets in back-off: name → (until, reason)."""
    out = {}
    for r in store.q("SELECT target, blocked_until, block_reason FROM target_state "
                     "WHERE blocked_until > ?", [iso(now)]):
        out[r["target"]] = (datetime.fromisoformat(r["blocked_until"]),
                            r["block_reason"] or "target backing off")
    return out


def record_outcome(store: Store, target: str, *, ok: bool, now: datetime,
                   error: str | None = None, blocked_until: datetime | None = None) -> None:
    """Count a send to ``target`` (in the caller's transaction when there is one)."""
    now_s = iso(now)
    with store.write() as db:
        db.execute("INSERT OR IGNORE INTO target_state (target) VALUES (?)", (target,))
        if ok:
            db.execute("UPDATE target_state SET consecutive_failures=0, last_success_at=?, "
                       "blocked_until=NULL, block_reason=NULL WHERE target=?", (now_s, target))
        else:
            db.execute(
                "UPDATE target_state SET consecutive_failures=consecutive_failures+1, "
                "last_error=?, last_error_at=?, blocked_until=?, block_reason=? WHERE target=?",
                (error, now_s, iso(blocked_until) if blocked_until else None,
                 f"{error} (target backing off)" if blocked_until else None, target))


def failing_targets(store: Store, threshold: int) -> list[dict[str, Any]]:
    """Targets whose last ``threshold`` or more attempts failed, with the last reason."""
    return store.q(
        "SELECT target, consecutive_failures, last_error, last_error_at, last_success_at, "
        "blocked_until FROM target_state WHERE consecutive_failures >= ? ORDER BY target",
        [threshold])
