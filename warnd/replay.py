"""Replay the store or the configured sources through the daemon's own alerting.

``warnd backtest --replay store`` (or ``sources``) answers "what would staff have
received?": the observations of the store (or of one fresh poll of every configured
source) are fed, date by date, into a scratch store, and at each date the real
:meth:`warnd.pipeline.Pipeline.detect` judges them — the same episode rules, grouping
per substance, severity, routing and outbox as the daemon, the store's silences and
acknowledgements as they were on that date (none for ``sources`` or ``as_known=False``)
— with the clock set to that date. The store's values are fed as warnd learned them
(:func:`_as_known`): each when it was first stored, but not before its period ended,
then each of its revisions when it was made, a withdrawal as a removal; the values the
store's first poll stored (history read at installation) once their period has ended,
those of a series first polled later (a source or series that came since) on the day
of that poll, all at once; the values due at a run are judged in the passes the daemon
judged them in, poll by poll (:func:`_passes`), each at its poll's time with the
silences and acknowledgements as they were then, the notices that came between them
told between them. All values of ``sources`` and, with ``as_known=False``, of the store
come once their period has ended (each period's latest value, :func:`_by_arrival`).
Warning notices published up to the date are alerted the way a poll alerts them (when
they appear: the page is polled often), an edit naming another substance when it was
made (:func:`_edits`); a substance that names a notice only since its terms changed
(matched again) is not told, as the daemon does not tell it. Nothing is sent: each
message is returned with its date, decision (open / escalate / repeat / resolve /
correct), severity and the targets it would go to. The first date behaves like an
installation on that day (what was known by then is history, what is open at the newest
period opens, warnings older than ``alerting.notice_max_age`` on that day are not told).
"""

from __future__ import annotations

import json
import statistics
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
    end: date | None = None, every: int = 7, as_known: bool = True,
) -> list[dict[str, Any]]:
    """The messages the daemon would have sent, run every ``every`` days from ``start``
    to ``end`` (default: the last half-year of the data), in date order. The store's
    values come as warnd learned them (``as_known``, :func:`_as_known`) or, with
    ``as_known=False``, each period's latest value once the period has ended."""
    if what not in ("store", "sources"):
        raise ValueError(f"replay: {what!r} is not 'store' or 'sources'")
    with tempfile.TemporaryDirectory(prefix="warnd-replay-") as tmp:
        work = Path(tmp)
        src_dir = config.state_dir if what == "store" else _polled_store(config, work)
        src = Store.in_dir(src_dir)
        try:
            obs = src.q("SELECT * FROM observations ORDER BY period")
            known = as_known and what == "store"
            revs = src.q("SELECT * FROM revisions ORDER BY id") if known else []
            # as learned, not a substance that names a notice only since its terms changed
            # (matched again: counted, not told, as the daemon does not tell it:
            # :func:`warnd.alerting.decide.enqueue_renamed_notice`)
            renamed = ("AND (t.changed_at IS NULL OR i.first_seen_at >= t.changed_at) "
                       if known else "")
            notices = src.q(
                "SELECT i.*, json_group_array(s.substance) AS subs, "
                "json_group_array(e.named_at) AS named FROM items i JOIN item_substances s "
                "ON s.key = i.key LEFT JOIN notice_edits e ON e.key = s.key AND "
                "e.substance = s.substance LEFT JOIN substance_terms t ON t.substance = "
                f"s.substance WHERE i.kind='notice' {renamed}GROUP BY i.key "
                "ORDER BY i.published_at")
            silences = src.q("SELECT * FROM silences ORDER BY id") if known else []
            acks = src.q(
                "SELECT substance, kind, direction, decision, created_at, acked_at, acked_by "
                "FROM alerts WHERE acked_at IS NOT NULL ORDER BY acked_at") if known else []
        finally:
            src.close()
        if not obs and not notices:
            return []
        # the store's first poll: warnd's installation
        first = min((_when(r["first_seen_at"]) for r in [*obs, *notices]), default=None)
        obs = _as_known(obs, revs, first) if known else _by_arrival(obs)
        notices = _notices_as_known(_edits(notices) if known else notices,
                                    first if known else None)
        newest = max([r["arrives"] for r in obs]
                     + [datetime.fromisoformat(r["published_at"]).date() for r in notices])
        end = end or newest
        start = start or end - timedelta(weeks=26)
        scratch = work / "replay"
        scratch.mkdir()
        return _run(config, scratch, obs, notices, start, end, max(int(every), 1),
                    silences, acks, first if known else None)


def _silences_at(store: Store, silences: list[dict[str, Any]], at: datetime) -> None:
    """The scratch store's silences as the store's were at ``at``: those added by then,
    ended if they had been ended (``expired_at``) by then."""
    rows = [(r["id"], r["substance"], r["kind"], r["source"], r["reason"], r["created_by"],
             r["created_at"], r["until"],
             r["expired_at"] if r["expired_at"] and _when(r["expired_at"]) <= at else None)
            for r in silences if _when(r["created_at"]) <= at]
    with store.write() as db:
        db.execute("DELETE FROM silences")
        db.conn.executemany("INSERT INTO silences (id, substance, kind, source, reason, "
                            "created_by, created_at, until, expired_at) VALUES "
                            "(?,?,?,?,?,?,?,?,?)", rows)


def _acks_at(store: Store, acks: list[dict[str, Any]], at: datetime, every: int,
             start: date) -> None:
    """The store's acknowledgements made by ``at`` that are not yet applied, each to the
    scratch store's message of the same episode (substance, kind, direction) with the
    same decision that stands where the acknowledged one did: the first made on or
    after the day the daemon made it, by the day of the acknowledgement (or by the run
    after the daemon's message, runs ``every`` days apart); one the daemon made before
    the replay's first run (``start``), to the latest made by the day of the
    acknowledgement. The daemon's alert ids are not the replay's. Applied ones are
    taken out of ``acks``. One whose message the replay has not made (yet) waits."""
    from warnd.alerting.actions import ack_alert

    for a in [a for a in acks if _when(a["acked_at"]) <= at]:
        made = _when(a["created_at"]).date()
        by = max(_when(a["acked_at"]).date() + timedelta(days=1),
                 made + timedelta(days=every))
        order = "id"
        if made < start:  # the replay has no message of that day
            made, by, order = date.min, _when(a["acked_at"]).date() + timedelta(days=1), "id DESC"
        rows = store.q(
            "SELECT id FROM alerts WHERE substance IS ? AND kind=? AND direction IS ? AND "
            f"decision=? AND created_at >= ? AND created_at < ? ORDER BY {order} LIMIT 1",
            [a["substance"], a["kind"], a["direction"], a["decision"], made.isoformat(),
             by.isoformat()])
        if rows:
            ack_alert(store, int(rows[0]["id"]), who=a["acked_by"] or "?", via="replay",
                      now=_when(a["acked_at"]))
            acks.remove(a)


def _pass(config: Config, scratch: Path, at: datetime, out: list[dict[str, Any]], day: date,
          *, group: list[dict[str, Any]] | None = None, notices: list[dict[str, Any]],
          i_not: int, now: datetime, installed: datetime,
          silences: list[dict[str, Any]] | None, acks: list[dict[str, Any]], every: int,
          start: date, before: datetime | None = None) -> int:
    """One detection pass of the replay at ``at``, as the daemon's: the notices polled
    by then (``before``) told first, the pass's values (``group``) fed, the silences and
    acknowledgements as they were then; its messages added to ``out``. Returns the index
    of the first notice not yet told."""
    p = _ScratchPipeline(config, scratch, clock=lambda: at)
    store = p.open_store()
    try:
        i_not = _tell_notices(config, store, notices, i_not, now, installed,
                              silences or [], out, before=before)
        if group is not None:
            _feed(store, group, at)
        if silences:
            _silences_at(store, silences, at)
        if acks:
            _acks_at(store, acks, at, every, start)
    finally:
        store.close()
    out += [_message(day, a) for a in p.detect()]
    return i_not


def _run(config: Config, scratch: Path, obs: list[dict[str, Any]],
         notices: list[dict[str, Any]], start: date, end: date,
         every: int, silences: list[dict[str, Any]] | None = None,
         acks: list[dict[str, Any]] | None = None,
         installed_at: datetime | None = None) -> list[dict[str, Any]]:
    """The messages of the runs from ``start`` to ``end``; the first is an installation,
    judged at the time of the store's first poll (``installed_at``) when that was on
    that day, else at its noon."""
    acks = list(acks or [])

    out: list[dict[str, Any]] = []
    i_obs = i_not = 0
    day = start
    installed = datetime.combine(start, time(12), UTC)
    if installed_at is not None and installed_at.date() == start:
        installed = installed_at
    floor = installed - timedelta(days=1)  # the scratch store's clock never goes back
    while day <= end:
        now = datetime.combine(day, time(12), UTC)
        due: dict[tuple[str, ...], dict[str, Any]] = {}
        while i_obs < len(obs) and obs[i_obs]["arrives"] <= day:
            r = obs[i_obs]
            due[_key(r)] = r  # a value's latest version by this date
            i_obs += 1
        # judged in the passes the daemon judged them in (the installation's in one),
        # each at the time of its poll, with the silences and acknowledgements as they
        # were then; the notices polled meanwhile told between them, in the order they
        # came
        passes = _passes(list(due.values()), together=day == start)
        polled = [min((r["_at"] for r in g if r.get("_at") is not None), default=None)
                  if day != start else installed for g in passes]  # an installation
        for n, group in enumerate(passes):
            until = polled[n] or next((t for t in polled[n:] if t is not None), None)
            at = floor = max(until or now, floor)
            i_not = _pass(config, scratch, at, out, day, group=group, notices=notices,
                          i_not=i_not, now=now, installed=installed, silences=silences,
                          acks=acks, every=every, start=start, before=until)
        if at < now:
            floor = now
            # the daemon's hourly pass: what a silence ended since the poll held back is
            # told by it; so are the notices that came after the day's last poll
            i_not = _pass(config, scratch, now, out, day, notices=notices, i_not=i_not,
                          now=now, installed=installed, silences=silences, acks=acks,
                          every=every, start=start)
        elif i_not < len(notices) and notices[i_not]["_due"] <= now:
            store = Store.in_dir(scratch)  # those that came after the day's last poll
            try:
                i_not = _tell_notices(config, store, notices, i_not, now, installed,
                                      silences or [], out)
            finally:
                store.close()
        day += timedelta(days=every)
    return out


#: Values stored this close to each other were judged in one pass (one ``warnd run
#: --once``, polls on one schedule finishing together); further apart, each poll's own.
SAME_PASS = timedelta(minutes=10)


def _passes(rows: list[dict[str, Any]], *, together: bool) -> list[list[dict[str, Any]]]:
    """The values due at a run in the detection passes the daemon judged them in: those
    not learned live (history, ``_at`` None) first, then those of each poll in the order
    they were stored, polls less than :data:`SAME_PASS` apart in one pass (each poll of
    the daemon is judged on its own: a source's spike an hour after another's escalates
    it). ``together``: all in one pass (the first run: an installation judges
    everything its first polls read at once). Always at least one (maybe empty) pass."""
    if together:
        return [rows]
    out: list[list[dict[str, Any]]] = [[r for r in rows if r.get("_at") is None]]
    last: datetime | None = None
    for r in sorted((r for r in rows if r.get("_at") is not None), key=lambda r: r["_at"]):
        if last is None or r["_at"] - last >= SAME_PASS:
            out.append([])
        out[-1].append(r)
        last = r["_at"]
    return [g for g in out if g] or [[]]


def _feed(store: Store, rows: list[dict[str, Any]], now: datetime) -> None:
    """Store ``rows`` (values as a poll stores them, a withdrawal as a removal)."""
    batch: dict[str, list[Observation]] = {}
    for r in rows:
        if r["value"] is not None:
            batch.setdefault(r["source"], []).append(_observation(r))
    for source, group in batch.items():
        store.ingest(source, location="replay", sha256=None, observations=group,
                     items=(), problems=(), now=now)
    gone = [(*_key(r)[:4], date.fromisoformat(r["period"][:10]))
            for r in rows if r["value"] is None]
    if gone:
        store.withdraw(gone, ref="replay: withdrawn", now=now)


def _tell_notices(config: Config, store: Store, notices: list[dict[str, Any]], i_not: int,
                  now: datetime, installed: datetime, silences: list[dict[str, Any]],
                  out: list[dict[str, Any]], before: datetime | None = None) -> int:
    """Alert the notices due by ``now`` (and seen before ``before``, when given: a poll
    judged after them) from ``notices[i_not]`` on, as a poll alerts them, each message
    added to ``out``; the index of the first not yet told."""
    from warnd.alerting import decide

    while (i_not < len(notices) and notices[i_not]["_due"] <= now
           and (before is None or notices[i_not]["_seen"] < before)):
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
        if r.get("_edit"):  # an edit naming more substances, told as the daemon did
            told = _edit_told(config, store, src_cfg, it, r["_seen"])
            if told is not None:
                out.append(_message(r["_seen"].date(), told))
            continue
        store.ingest(r["source"], location="replay", sha256=None, observations=(),
                     items=[it], problems=(), now=now)
        # the warnings page is polled often: a notice is told when it appears;
        # one published before the first date is history the installation reads
        seen = max(it.published_at, installed, r["_seen"])
        if silences:
            _silences_at(store, silences, seen)
        aid = decide.enqueue_notice(config, store, src_cfg, it, subs, now=seen)
        if aid is not None:
            alert = store.q("SELECT * FROM alerts WHERE id=?", [aid])[0]
            alert["targets"] = [d["target"] for d in store.q(
                "SELECT target FROM deliveries WHERE alert_id=?", [aid])]
            out.append(_message(seen.date(), alert))
    return i_not


def _edits(notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each notice with the substances it named when first stored, and after it each of
    its edits (``_edit``) with the substances it named then, stored then
    (``notice_edits``)."""
    out = []
    for r in notices:
        by: dict[str | None, list[str]] = {}
        for sub, at in zip(json.loads(r["subs"]), json.loads(r["named"]), strict=True):
            by.setdefault(at, []).append(sub)
        out.append({**r, "subs": json.dumps(by.pop(None, []))})
        out += [{**r, "subs": json.dumps(subs), "first_seen_at": at, "_edit": True}
                for at, subs in sorted(by.items())]
    return out


def _edit_told(config: Config, store: Store, src: Any, it: Item,
               at: datetime) -> dict[str, Any] | None:
    """A notice's edit naming ``it.substances`` besides what it named: the alert as
    told then (:func:`warnd.alerting.decide.enqueue_renamed_notice`) with the targets
    it went to, or None when it went to none."""
    from warnd.alerting import decide

    with store.write() as db:
        db.conn.executemany("INSERT OR IGNORE INTO item_substances VALUES (?, ?)",
                            [(it.key, sub) for sub in it.substances])
    told = decide.enqueue_renamed_notice(config, store, src, it, now=at)
    if not told:
        return None
    alert = store.q("SELECT * FROM alerts WHERE dedupe_key=?", [f"notice:{it.key}"])[0]
    return {**alert, "targets": told}


def _notices_as_known(notices: list[dict[str, Any]],
                      installed_at: datetime | None) -> list[dict[str, Any]]:
    """The notices in the order they are told, each with the time its run is due
    (``_due``) and the time it was seen (``_seen``): when published (the page is polled
    often) or, given when the store's first poll was (``installed_at``), when warnd
    first stored it (``first_seen_at``: its run is the first on or after that day),
    unless it was stored on the day of that first poll (history read at installation:
    the installation's polls of its sources take a while)."""
    for r in notices:
        published, stored = _when(r["published_at"]), _when(r["first_seen_at"])
        r["_due"] = r["_seen"] = published
        if (installed_at is not None and stored.date() > installed_at.date()
                and stored > published):
            r["_seen"] = stored
            r["_due"] = max(published, datetime.combine(stored.date(), time(), UTC))
    return sorted(notices, key=lambda r: r["_due"])


def _key(r: dict[str, Any]) -> tuple[str, ...]:
    return (r["source"], r["substance"], r["region"] or "", r["metric"], r["period"])


def _ends(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], date]:
    """For each value's key, the day after its period ended (a week on the Monday after
    it, a month on the first of the next, a day the next day): no source publishes a
    period before its end. A series' period length is inferred from its periods."""
    periods: dict[tuple[str, ...], set[str]] = {}
    for r in rows:
        k = _key(r)
        periods.setdefault(k[:4], set()).add(k[4])
    out: dict[tuple[str, ...], date] = {}
    for series, ps in periods.items():
        step = infer_step(sorted({date.fromisoformat(p[:10]) for p in ps}))
        for p in ps:
            d = date.fromisoformat(p[:10])
            if step == "month":
                out[(*series, p)] = date(d.year + d.month // 12, d.month % 12 + 1, 1)
            else:
                out[(*series, p)] = d + timedelta(days=7 if step == "week" else 1)
    return out


def _by_arrival(obs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The observations in the order they can arrive, each with the day it can
    (``arrives``): the day after its period ended."""
    ends = _ends(obs)
    for r in obs:
        r["arrives"] = ends[_key(r)]
    return sorted(obs, key=lambda r: r["arrives"])


def _when(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _as_known(obs: list[dict[str, Any]], revs: list[dict[str, Any]],
              installed_at: datetime | None = None) -> list[dict[str, Any]]:
    """Every version of every value the store knows, in the order warnd learned them,
    each with the day it did (``arrives``; a withdrawal has ``value`` None).

    A value comes when it was first stored (``first_seen_at``) but not before its
    period ended (:func:`_ends`); then each of its revisions (``revisions``, in order)
    when it was made, the value first stored being the first revision's old value. The
    values stored by the store's first poll (``installed_at``: the history read at
    installation) were not learned live: they come when their period ended, with the
    revisions made on the day of that poll (exports read together rescaling each
    other). Those of a series' first poll on a later day (a source added to the config,
    a new region or substance in a table) come on that day, all at once (with that
    day's revisions), as the daemon read them: its
    history is then judged as the daemon judged it, not told as if it had been watched
    all along. A value withdrawn since has no ``first_seen_at`` left: it is taken to
    have come as long after its period's end as the series' other values did (the
    median), not after it was withdrawn. A value
    withdrawn and stored again comes back when it was (``first_seen_at`` of the stored
    row) or, if withdrawn again since, with its next change."""
    rows = {_key(r): r for r in obs}
    changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for v in revs:
        changes.setdefault(_key(v), []).append(v)
    ends = _ends([*obs, *revs])
    first_poll: dict[tuple[str, ...], datetime] = {}
    dims: dict[tuple[str, ...], str | None] = {}
    for k, r in rows.items():
        t = _when(r["first_seen_at"])
        if k[:4] not in first_poll or t < first_poll[k[:4]]:
            first_poll[k[:4]] = t
        dims.setdefault(k[:4], r["dimension"])
    # the day a series' first poll was learned: None for the installation's (history)
    came: dict[tuple[str, ...], date | None] = {
        s: (t.date() if installed_at is not None and t.date() > installed_at.date()
            else None) for s, t in first_poll.items()}
    lags: dict[tuple[str, ...], list[int]] = {}
    for k, r in rows.items():
        t = _when(r["first_seen_at"])
        if t > first_poll[k[:4]] and not any(v["new_value"] is None
                                             for v in changes.get(k, ())):
            lags.setdefault(k[:4], []).append(max((t.date() - ends[k]).days, 0))

    out: list[dict[str, Any]] = []
    for k in dict.fromkeys([*rows, *changes]):
        cur, vs, end = rows.get(k), changes.get(k, []), ends[k]
        base = dict(cur) if cur is not None else {
            **vs[0], "dimension": dims.get(k[:4]), "flag": None, "value": None,
            "denominator": None}
        # (day it comes, value, denominator, ref, when it was stored: None if not live)
        versions: list[tuple[date, float | None, float | None, str | None,
                             datetime | None]] = []
        seen = _when(cur["first_seen_at"]) if cur is not None else None
        changed = _when(vs[0]["revised_at"]) if vs else None
        added = came.get(k[:4])
        polled = first_poll.get(k[:4])
        # a series' first poll on a later day was learned live, in one poll
        at: datetime | None = polled if added else None
        if seen is not None and (changed is None or seen <= changed):
            day = (max(end, added or end) if seen <= first_poll[k[:4]]
                   else max(end, seen.date()))
            at = at if seen <= first_poll[k[:4]] else seen
        else:  # first stored, then withdrawn: when it came is not kept
            guess = end + timedelta(days=int(statistics.median(lags.get(k[:4]) or [0])))
            history = k[:4] not in first_poll or guess <= first_poll[k[:4]].date()
            cap = changed.date() if changed is not None else guess
            day = max(end, added or end) if history else max(end, min(guess, cap))
            at = at if history else None
        if vs:
            versions.append((day, vs[0]["old_value"], vs[0]["old_denominator"], base["ref"],
                             at))
        else:
            versions.append((day, base["value"], base["denominator"], base["ref"], at))
        for i, v in enumerate(vs):
            at = _when(v["revised_at"])
            # made on the day of the series' first poll (the exports or files it read
            # then revising each other): part of what that poll read
            first = polled is not None and at.date() <= polled.date()
            versions.append((max(end, added or end) if first else max(end, at.date()),
                             v["new_value"], v["new_denominator"],
                             v["ref"] if v["new_value"] is not None else base["ref"],
                             (polled if added else None) if first else at))
            if v["new_value"] is not None:
                continue
            nxt = vs[i + 1] if i + 1 < len(vs) else None
            if (cur is not None and seen is not None and seen > at
                    and (nxt is None or seen <= _when(nxt["revised_at"]))):
                value = cur["value"] if nxt is None else nxt["old_value"]
                denominator = cur["denominator"] if nxt is None else nxt["old_denominator"]
                versions.append((max(end, seen.date()), value, denominator, base["ref"],
                                 seen))
        last = end
        for day, value, denominator, ref, when in versions:
            last = max(last, day)
            out.append({**base, "value": value, "denominator": denominator, "ref": ref,
                        "arrives": last, "_at": when})
    return sorted(out, key=lambda r: r["arrives"])


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
