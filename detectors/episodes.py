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
  when ``send_resolve``). A trend's finding whose latest periods are back to the
  expected level does not count (:func:`level_holds`), so a rise that stopped ends within
  weeks, not when its statistic stops being current months later. While findings of
  its kind go on (no gap of ``resolve_after_periods`` periods), none opens an episode
  again unless its level comes back in full (:func:`level_regained`; the period of the
  last such finding is kept in the state's ``back``).

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


def on_scale(f: Finding, params: DetectionParams) -> bool:
    """True for a finding whose five-step score is at least ``min_alert_category`` away
    from stable: only such a finding opens or feeds an episode (a significant +8 % on a
    Google Trends index is recorded, not an episode)."""
    return abs(f.category) >= params.min_alert_category


def level_holds(f: Finding) -> bool:
    """False for a trend whose latest periods are back: the mean of its latest
    ``2 * resolve_after_periods`` periods (``evidence["recent_relative_change"]``, against the
    same expected values as the whole window) is nearer the expected level than the
    change's level (the finding's ``relative_change``, from its onset). Nearer: on the
    expected side of the logarithmic mean of the two levels, where a count's Poisson
    likelihood is the same at either. The statistic of a rise that stopped stays current
    for months, as its window from the onset still holds the excess; such a finding no
    longer keeps the episode open, so the episode ends ``resolve_after_periods`` later."""
    recent = f.evidence.get("recent_relative_change") if isinstance(f.evidence, dict) else None
    if f.kind != "trend" or recent is None or not math.isfinite(f.relative_change):
        return True
    level = 1.0 + f.relative_change  # the change's level, as a multiple of the expected
    if level <= 0.0 or level == 1.0:
        return True  # a fall to nothing (or no change) has no middle: it holds
    middle = (level - 1.0) / math.log(level)
    return 1.0 + recent > middle if level > 1.0 else 1.0 + recent < middle


def level_regained(f: Finding) -> bool:
    """True when a trend's latest periods are at least as far from the expected level as
    its change from the onset (``recent_relative_change`` beyond ``relative_change``): a
    run of the statistic whose level was back opens an episode again only then. The
    evidence holds ``recent_relative_change`` to four decimals, so the change is compared
    as rounded alike: a window no longer than the latest periods (a new rise the
    statistic measures from its own start) has the two equal, and is regained. The
    latest periods are taken with their most extreme one left out
    (``evidence["recent_relative_change_leave_one_out"]``, when the finding has it), as
    the statistic leaves it out: one period (a spike) does not bring the level back."""
    ev = f.evidence if isinstance(f.evidence, dict) else {}
    recent = ev.get("recent_relative_change_leave_one_out",
                    ev.get("recent_relative_change"))
    if f.kind != "trend" or recent is None:
        return True
    change = round(f.relative_change, 4)  # as the evidence rounds the recent one
    return recent >= change if f.direction == "increase" else recent <= change


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
        out: dict[str, Any] = {
            "period": self.state["period"],
            "open": {k: dict(v) for k, v in self.state["open"].items()},
        }
        if self.state.get("back"):
            out["back"] = dict(self.state["back"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, params: DetectionParams) -> EpisodeTracker:
        return cls(
            params=params,
            state={
                "period": int(data["period"]),
                "open": {k: dict(v) for k, v in data["open"].items()},
                **({"back": {k: int(v) for k, v in data["back"].items()}}
                   if data.get("back") else {}),
            },
        )

    def _sendable(self, direction: str) -> bool:
        return direction == "increase" or self.params.alert_decreases

    def update(self, findings: list[Finding]) -> list[Decision]:
        """Feed the findings of the next period; returns one decision per episode touched."""
        p = self.params
        self.state["period"] += 1
        episodes: dict[str, dict[str, Any]] = self.state["open"]
        now = self.state["period"]
        back: dict[str, int] = self.state.get("back", {})
        if back:
            # a change whose level was back is forgotten as an episode ends: after
            # ``resolve_after_periods`` periods without a finding of its kind
            kinds = {f"{f.kind}:{f.direction}" for f in findings}
            for key in list(back):
                if key in kinds:
                    back[key] = now
                elif now - back[key] >= p.resolve_after_periods:
                    del back[key]
            if not back:
                self.state.pop("back", None)
        if not findings and not episodes:
            return []  # a quiet period with no episode open: nothing to decide
        seen: dict[str, Finding] = {}
        for f in findings:
            if not on_scale(f, p):
                continue  # significant but "stable" on the scale: recorded, not an episode
            key = f"{f.kind}:{f.direction}"
            if not level_holds(f):
                # its latest periods are back to the expected level: recorded only, and
                # while findings of its kind go on none opens an episode again unless its
                # level comes back in full
                self.state.setdefault("back", {})[key] = now
                continue
            if key not in episodes and key in self.state.get("back", {}) and not (
                    level_regained(f)):
                continue
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
