"""Alert decisions: one message per episode, pure and serialisable.

An *episode* is a run of periods in which a series (or substance) has a finding of one
kind and direction (``trend:increase``, ``spike:increase``, ``trend:decrease``). The
tracker is fed the findings of each period in order and answers with decisions:

* ``open``: a new episode (send); also an episode that opened while its direction was
  not sent (a decrease without ``alert_decreases``), at its first period once it is;
* ``escalate``: the category grew, the relative change grew by ``escalate_factor``
  since the last message, or more sources agree (``evidence["n_sources"]``) (send);
* ``ongoing``: nothing new (suppressed);
* ``repeat``: ``repeat_after_periods`` passed since the last message (send; off by
  default);
* ``resolve``: no finding of that kind for ``resolve_after_periods`` periods (sent only
  when ``send_resolve``).

Findings whose five-step score is nearer to stable than ``min_alert_category`` (a
significant +8 % on a Google Trends index, say) are recorded but neither open nor feed an
episode. Decreases are tracked the same way but are only sent when ``alert_decreases``: a
decrease never produces an increase alert. A spike is its own kind, so a spike never
opens or extends a trend episode. The rules take their numbers from
:class:`~detectors.params.DetectionParams` (``min_alert_category``, ``resolve_after_periods``,
``repeat_after_periods``, ``escalate_factor``, ``send_resolve``, ``alert_decreases``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors.base import Finding
from detectors.params import DetectionParams


@dataclass(frozen=True)
class Decision:
    """What to do about one episode at one period; ``finding`` is None for ``resolve``."""

    action: str  # open | escalate | ongoing | repeat | resolve
    episode: str  # "trend:increase" ...
    send: bool
    finding: Finding | None
    opened_at: int  # period number at which the episode opened


def _n_sources(f: Finding) -> int:
    n = f.evidence.get("n_sources", 1) if isinstance(f.evidence, dict) else 1
    try:
        return int(n)
    except (TypeError, ValueError):
        return 1


def episode_grew(new: dict[str, Any], told: dict[str, Any], params: DetectionParams) -> bool:
    """True when ``new`` evidence (``category``, ``magnitude``, ``n_sources``, as an open
    episode keeps them) is more than an episode's ``told``: a higher category, a change
    ``escalate_factor`` times as large, or more sources — the rule of ``escalate``."""
    factor = params.escalate_factor
    return bool(
        new["category"] > told["category"]
        or (told["magnitude"] > 0 and new["magnitude"] >= factor * told["magnitude"])
        or new["n_sources"] > told["n_sources"]
    )


class EpisodeTracker:
    """Episode state of one series (or one substance).

    Args:
        params: the rules' numbers.
        state: a dict from :meth:`to_dict` to continue from (e.g. after a restart).
    """

    def __init__(self, *, params: DetectionParams, state: dict[str, Any] | None = None) -> None:
        self.params = params
        self.state: dict[str, Any] = state if state is not None else {"period": -1, "open": {}}

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-able data."""
        return {
            "period": self.state["period"],
            "open": {k: dict(v) for k, v in self.state["open"].items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, params: DetectionParams) -> EpisodeTracker:
        return cls(
            params=params,
            state={
                "period": int(data["period"]),
                "open": {k: dict(v) for k, v in data["open"].items()},
            },
        )

    def _sendable(self, direction: str) -> bool:
        return direction == "increase" or self.params.alert_decreases

    def update(self, findings: list[Finding]) -> list[Decision]:
        """Feed the findings of the next period; returns one decision per episode touched."""
        p = self.params
        self.state["period"] += 1
        episodes: dict[str, dict[str, Any]] = self.state["open"]
        if not findings and not episodes:
            return []  # a quiet period with no episode open: nothing to decide
        now = self.state["period"]
        seen: dict[str, Finding] = {}
        for f in findings:
            if abs(f.category) < p.min_alert_category:
                continue  # significant but "stable" on the scale: recorded, not an episode
            key = f"{f.kind}:{f.direction}"
            best = seen.get(key)
            if best is None or (f.category, abs(f.relative_change)) > (
                best.category,
                abs(best.relative_change),
            ):
                seen[key] = f
        out: list[Decision] = []
        for key, f in seen.items():
            send_ok = self._sendable(f.direction)
            mag = abs(f.relative_change) if math.isfinite(f.relative_change) else 1e12
            cat = abs(f.category)
            ep = episodes.get(key)
            if ep is None:
                episodes[key] = {
                    "opened": now,
                    "last_seen": now,
                    "last_sent": now,
                    "category": cat,
                    "magnitude": mag,
                    "n_sources": _n_sources(f),
                    "sent": send_ok,
                }
                out.append(Decision("open", key, send_ok, f, now))
                continue
            ep["last_seen"] = now
            if send_ok and not ep.get("sent", True):
                # opened while its direction was not sent (``alert_decreases`` turned on
                # since): it opens now for those who hear of it
                ep.update(
                    category=max(cat, ep["category"]),
                    magnitude=max(mag, ep["magnitude"]),
                    n_sources=max(_n_sources(f), ep["n_sources"]),
                    last_sent=now,
                    sent=True,
                )
                out.append(Decision("open", key, True, f, ep["opened"]))
                continue
            if episode_grew({"category": cat, "magnitude": mag, "n_sources": _n_sources(f)},
                            ep, p):
                ep.update(
                    category=max(cat, ep["category"]),
                    magnitude=max(mag, ep["magnitude"]),
                    n_sources=max(_n_sources(f), ep["n_sources"]),
                    last_sent=now,
                )
                out.append(Decision("escalate", key, send_ok, f, ep["opened"]))
            elif (
                p.repeat_after_periods is not None
                and now - ep["last_sent"] >= p.repeat_after_periods
            ):
                ep["last_sent"] = now
                out.append(Decision("repeat", key, send_ok, f, ep["opened"]))
            else:
                out.append(Decision("ongoing", key, False, f, ep["opened"]))
        for key in sorted(set(episodes) - set(seen)):
            ep = episodes[key]
            if now - ep["last_seen"] >= p.resolve_after_periods:
                del episodes[key]
                direction = key.split(":", 1)[1]
                send = p.send_resolve and self._sendable(direction)
                out.append(Decision("resolve", key, send, None, ep["opened"]))
        return out
