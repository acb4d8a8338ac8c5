"""Replay the store or the configured sources through the daemon's own alerting.

``warnd backtest --replay store`` (or ``sources``) answers "what would staff have
received?": the observations of the store (or of one fresh poll of every configured
source) are fed, date by date, into a scratch store (each period once it has ended),
and at each date the real :meth:`warnd.pipeline.Pipeline.detect` judges them — the
same episode rules, grouping per substance, severity, routing and silencing-free outbox
as the daemon — with the clock set to that date. Warning notices published up to the
date are alerted the way a poll alerts them (when they appear: the page is polled
often). Nothing is sent: each message is returned with its date, decision (open /
escalate / repeat / resolve / correct), severity and the targets it would go to. The
first date behaves like an installation on that day (history recorded, what is open at
the newest period opens, warnings older than ``alerting.notice_max_age`` on that day
are not told).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from detectors.grid import infer_step
from feeds.base import Item, Observation
from warnd.config import Config
from warnd.pipeline import Pipeline
from warnd.store import Store


class _ScratchPipeline(Pipeline):
    """The daemon's pipeline on a store of its own (the real one is never written)."""

    def __init__(self, config: Config, state_dir: Path, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._dir = state_dir

    def open_store(self) -> Store:
        return Store.in_dir(self._dir)


def _polled_store(config: Config, workdir: Path) -> Path:
    """Poll every enabled source once into a scratch store; its directory."""
    d = workdir / "polled"
    d.mkdir()
    p = _ScratchPipeline(config, d)
    for s in config.sources:
        if s.enabled:
            p.poll(s.name)
    return d


def replay(
    config: Config, *, what: str = "store", start: date | None = None,
    end: date | None = None, every: int = 7,
) -> list[dict[str, Any]]:
    """The messages the daemon would have sent, run every ``every`` days from ``start``
    to ``end`` (default: the last half-year of the data), in date order."""
    if what not in ("store", "sources"):
        raise ValueError(f"replay: {what!r} is not 'store' or 'sources'")
    with tempfile.TemporaryDirectory(prefix="warnd-replay-") as tmp:
        work = Path(tmp)
        src_dir = config.state_dir if what == "store" else _polled_store(config, work)
        src = Store.in_dir(src_dir)
        try:
            obs = src.q("SELECT * FROM observations ORDER BY period")
            notices = src.q(
                "SELECT i.*, json_group_array(s.substance) AS subs FROM items i JOIN "
                "item_substances s ON s.key = i.key WHERE i.kind='notice' GROUP BY i.key "
                "ORDER BY i.published_at")
        finally:
            src.close()
        if not obs and not notices:
            return []
        obs = _by_arrival(obs)
        newest = max([r["arrives"] for r in obs]
                     + [datetime.fromisoformat(r["published_at"]).date() for r in notices])
        end = end or newest
        start = start or end - timedelta(weeks=26)
        scratch = work / "replay"
        scratch.mkdir()
        return _run(config, scratch, obs, notices, start, end, max(int(every), 1))


def _run(config: Config, scratch: Path, obs: list[dict[str, Any]],
         notices: list[dict[str, Any]], start: date, end: date,
         every: int) -> list[dict[str, Any]]:
    from warnd.alerting import decide

    out: list[dict[str, Any]] = []
    i_obs = i_not = 0
    day = start
    installed = datetime.combine(start, time(12), UTC)
    while day <= end:
        now = datetime.combine(day, time(12), UTC)
        p = _ScratchPipeline(config, scratch, clock=lambda now=now: now)
        store = p.open_store()
        try:
            batch: dict[str, list[Observation]] = {}
            while i_obs < len(obs) and obs[i_obs]["arrives"] <= day:
                r = obs[i_obs]
                batch.setdefault(r["source"], []).append(_observation(r))
                i_obs += 1
            for source, group in batch.items():
                store.ingest(source, location="replay", sha256=None, observations=group,
                             items=(), problems=(), now=now)
            made: list[dict[str, Any]] = []
            while (i_not < len(notices)
                   and datetime.fromisoformat(notices[i_not]["published_at"]) <= now):
                r = notices[i_not]
                i_not += 1
                try:
                    src_cfg = config.source(r["source"])
                except KeyError:
                    continue
                subs = decide.notice_substances(config, json.loads(r["subs"]))
                if not subs:
                    continue
                it = _item(r, subs)
                store.ingest(r["source"], location="replay", sha256=None, observations=(),
                             items=[it], problems=(), now=now)
                # the warnings page is polled often: a notice is told when it appears;
                # one published before the first date is history the installation reads
                seen = max(it.published_at, installed)
                aid = decide.enqueue_notice(config, store, src_cfg, it, subs, now=seen)
                if aid is not None:
                    alert = store.q("SELECT * FROM alerts WHERE id=?", [aid])[0]
                    alert["targets"] = [d["target"] for d in store.q(
                        "SELECT target FROM deliveries WHERE alert_id=?", [aid])]
                    out.append(_message(seen.date(), alert))
        finally:
            store.close()
        made += p.detect()
        out += [_message(day, a) for a in made]
        day += timedelta(days=every)
    return out


def _by_arrival(obs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The observations in the order they can arrive, each with the day it can
    (``arrives``): the day after its period ended (a week on the Monday after it, a
    month on the first of the next), as no source publishes a period before its end."""
    periods: dict[tuple[str, ...], list[date]] = {}
    for r in obs:
        r["_period"] = date.fromisoformat(r["period"][:10])
        key = (r["source"], r["substance"], r["region"] or "", r["metric"])
        periods.setdefault(key, []).append(r["_period"])
    steps = {key: infer_step(sorted(set(ps))) for key, ps in periods.items()}
    for r in obs:
        p = r.pop("_period")
        step = steps[(r["source"], r["substance"], r["region"] or "", r["metric"])]
        if step == "month":
            r["arrives"] = date(p.year + p.month // 12, p.month % 12 + 1, 1)
        else:
            r["arrives"] = p + timedelta(days=7 if step == "week" else 1)
    return sorted(obs, key=lambda r: r["arrives"])


def _observation(r: dict[str, Any]) -> Observation:
    return Observation(
        source=r["source"], substance=r["substance"],
        period=date.fromisoformat(r["period"][:10]), value=float(r["value"]),
        metric=r["metric"], region=r["region"] or "", denominator=r["denominator"],
        dimension=r["dimension"], flag=r["flag"], ref=r["ref"])


def _item(r: dict[str, Any], substances: list[str]) -> Item:
    return Item(key=r["key"], source=r["source"],
                published_at=datetime.fromisoformat(r["published_at"]), title=r["title"],
                link=r["link"], summary=r["summary"] or "", substances=tuple(substances),
                kind="notice", region=r["region"] or "")


def _message(day: date, a: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "decision": a["decision"],
        "severity": a["severity"],
        "substance": a["substance"],
        "kind": a["kind"],
        "source": a.get("source") or "",
        "targets": list(a.get("targets") or []),
        "title": a["title"],
    }


def format_replay_table(messages: Iterable[dict[str, Any]]) -> str:
    """Per date, the messages the daemon would have sent."""
    msgs = list(messages)
    if not msgs:
        return "no messages"
    lines = []
    for m in msgs:
        lines.append(f"{m['date']}  {m['decision']:9} {m['severity']:8} {m['kind']:8} "
                     f"{m['substance'] or '-':12} → {', '.join(m['targets']) or '(no target)'}"
                     f"  {m['title']}")
    return "\n".join(lines)
