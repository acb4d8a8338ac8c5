"""The daily or weekly digest: what is open and what changed, on the five-step scale.

``[alerting.digest]`` sends, at ``at`` (local time) every day or every ``weekday``,
one message to its ``targets`` summarising every episode open at that time, the
findings recorded and the alerts sent since the previous digest (whatever the period
of their source), and findings whose data lie in the past period plus one detection
period (so ``warnd digest --end DATE`` can look back): per substance the five-step
score of each source (its largest category), the sums per dimension (use,
availability, interest) and overall with the number of sources — the aggregated
difference of :func:`detectors.synthesis.aggregate` — and the substance verdict
(:func:`detectors.synthesis.substance_verdict`); a rise whose message is held back and
told to no one yet (a silence, a mute, corroboration) is in neither until it is told.
A digest is an alert of kind
``digest`` with a dedupe key per scheduled time, so it is sent once even across
restarts (the previous digest is the last that went out: one a silence held back told
no one, and the next covers its time too; so for each target: a target that did not get
the previous one, its delivery there expired or dropped, gets the next made again since
the last it had, :func:`missed`); a scheduled time missed by more than a day,
or by more than half the time between two (12 hours for a daily one), is skipped, not
sent late, and
so is one before the first start (no digest about a time warnd was not running), or
one on the day of the latest digest or before it (a reload that changed the time zone
or ``at``: :func:`_sent_that_day`). The
first digest covers one schedule period (a day, a week) before its time. The alerts
it lists as sent leave out those a silence or a muted substance kept from everyone.
Each target's copy lists an alert as that target got it: an escalation or a reminder
that read as the episode's opening for it under the opening's title, an end or a
correction of a rise under the title it had, told as that target was told the rise
(:func:`for_target`, when the digest goes to that target).
A digest is not an open alert: ``warnd status`` does not list it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from detectors.base import SCALE
from detectors.episodes import level_holds
from detectors.synthesis import aggregate, substance_verdict
from warnd.alerting.localtime import instant, local_day
from warnd.alerting.told import went_out
from warnd.config import Config, parse_hhmm
from warnd.store import FINDING_STANDS, Store, iso

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# an alert ``a`` went out: delivered to a target, or on its way (quiet hours, a retry)
_WENT_OUT = f"SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND {went_out('d')}"
DIMS = ("use", "availability", "interest")


def last_scheduled(config: Config, now: datetime) -> datetime | None:
    """The latest scheduled digest time at or before ``now`` (UTC), if configured: the
    first moment the clock shows ``at`` (on the night of a change of the clock, a time
    in the hour skipped is the jump, one in the hour repeated its first pass:
    :func:`warnd.alerting.localtime.instant`)."""
    dg = config.alerting.digest
    if dg is None:
        return None
    tz = ZoneInfo(config.general.timezone)
    now = now.astimezone(UTC)
    h, m = parse_hhmm(dg.at)
    for back in range(0, 8):
        day = now.astimezone(tz).date() - timedelta(days=back)
        if dg.schedule == "weekly" and WEEKDAYS[day.weekday()] != dg.weekday:
            continue
        t = instant(day, time(h, m), tz)
        if t <= now:  # instants, not clock times
            return t
    return None


def schedule_span(config: Config) -> timedelta:
    """The period a digest covers: a week (also without digests configured) or a day."""
    dg = config.alerting.digest
    return timedelta(days=7 if dg is None or dg.schedule == "weekly" else 1)


def data_window_start(config: Config, end: datetime) -> date:
    """The first data date a digest ending at ``end`` looks at: its period (a week or
    a day) and one more week, so data published late is not missed."""
    return (end - schedule_span(config) - timedelta(days=7)).date()


def _level_holds(row: dict[str, Any]) -> bool:
    """A stored trend finding whose latest periods are back to the expected level
    (:func:`detectors.episodes.level_holds`, on the evidence it was last seen with) keeps
    no episode open, and the digest does not score it either: the week its end is told,
    the table does not call the rise a strong increase."""
    if row["kind"] != "trend" or not row.get("evidence"):
        return True
    try:
        evidence = json.loads(row["evidence"])
    except ValueError:
        return True
    return level_holds(SimpleNamespace(kind="trend", evidence=evidence, direction=row[
        "direction"], relative_change=float(row["relative_change"] or 0.0)))


def _previous(store: Store, *, end: datetime, target: str | None = None,
              before_id: int | None = None) -> tuple[int | None, dict[str, Any], str | None]:
    """The previous digest of one made at ``end``: the last made before it (and before
    alert ``before_id``) that went out — to ``target`` when given, of those that had a
    delivery to it. Its id (None when none went out), its data, and when none went out
    where the first of them began (its ``since_at``: the time it covered from)."""
    went_out = _WENT_OUT + (" AND d.target = ?" if target is not None else "")
    had = ("EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND d.target = ?)"
           if target is not None else "1")
    low = " AND a.id < ?" if before_id is not None else ""
    args = [iso(end), *([before_id] if before_id is not None else [])]
    prev = store.q(
        f"SELECT id, data FROM alerts a WHERE kind='digest' AND created_at < ?{low} AND EXISTS "
        f"({went_out}) ORDER BY created_at DESC, id DESC LIMIT 1",
        [*args, *([target] if target is not None else [])])
    if prev:
        return int(prev[0]["id"]), json.loads(prev[0]["data"] or "{}"), None
    first = store.q(f"SELECT data FROM alerts a WHERE kind='digest' AND created_at < ?{low} "
                    f"AND {had} ORDER BY created_at, id LIMIT 1",
                    [*args, *([target] if target is not None else [])])
    return None, {}, (json.loads(first[0]["data"] or "{}").get("since_at") if first else None)


def _had_digest(store: Store, target: str, before_id: int) -> bool:
    """True when a digest before alert ``before_id`` was meant for ``target`` (a delivery
    to it, whatever became of it): a target just added to the digest has nothing missed."""
    return bool(store.q("SELECT 1 FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
                        "WHERE a.kind='digest' AND a.id < ? AND d.target = ? LIMIT 1",
                        [before_id, target]))


def build(config: Config, store: Store, *, end: datetime,
          since: datetime | None = None, as_sent: bool = False,
          target: str | None = None, before_id: int | None = None,
          upto_id: int | None = None) -> dict[str, Any]:
    """The digest's data for the period ending at ``end``.

    It covers what is open and what changed: every episode open at ``end`` (whatever
    its source's period — a monthly figure dated the 1st is as current as a weekly
    one), the findings recorded since the previous digest (``since``; by default the
    time of the last digest sent before ``end``, else one schedule period before it), and
    the alerts sent in that time (delivered or on their way). Findings whose data lie
    in the last period plus one detection period count too, so ``warnd digest --end
    DATE`` can look back. ``as_sent``: as the digest's targets get it, without a rise
    whose message is held back and told to no one yet (the console's overview shows it).
    ``target``: since the last digest that went out to that target (one made before alert
    ``before_id``), for a target that missed digests others got; ``upto_id``: the last
    alert it may list (the digest's own ``last_alert_id``). ``previous_id`` in the result:
    the digest it follows (None for the first, or with ``since`` given).
    """
    dg = config.alerting.digest
    after_id = None  # the alerts listed: those after the last the previous digest saw
    before: dict[str, Any] = {}
    previous_id = None
    if since is None:
        # the previous digest is the last that went out: one a silence held back (or no
        # target had) told no one what it listed, and the next covers its time too; none
        # went out: from where the first digest began
        previous_id, before, began = _previous(store, end=end, target=target,
                                               before_id=before_id)
        until_at = before.get("until_at") if previous_id is not None else began
        after_id = before.get("last_alert_id")
        # the first digest covers one schedule period, as the scheduled first one does
        # (not everything since warnd started)
        since = datetime.fromisoformat(until_at) if until_at else end - schedule_span(config)
    data_since = data_window_start(config, end)
    rows = store.q(
        "SELECT substance, source, dimension, kind, direction, category, relative_change, onset, "
        "last_seen_at, evidence FROM findings WHERE kind IN ('trend','spike') AND ("
        "(last_seen_at >= ? AND last_seen_at <= ?) OR (recorded_at > ? AND recorded_at <= ?)) "
        # not one a revision took away: the series judged again no longer gives it
        f"AND {FINDING_STANDS} "
        "ORDER BY substance, source",
        [data_since.isoformat(), end.date().isoformat(), iso(since), iso(end)],
    )
    # a rise whose message is held back (a silence, a mute, corroboration) and told to
    # no one yet: the digest does not tell it either, until its message goes out
    untold = {sub for sub, st in store.held_back().items()
              if st.get("silenced") and not st.get("open")} if as_sent else set()
    rows = [r for r in rows if (r["substance"] not in untold
            or (r["kind"], r["direction"]) != ("trend", "increase")) and _level_holds(r)]
    open_eps: dict[str, dict[str, Any]] = {}
    watched = config.watched_sources()
    for st in store.open_episode_states(fed_only=True).values():
        for key, f in (st.get("active") or {}).items():
            # only what warnd watches: a source or a substance taken out of the config
            # keeps its series, no longer judged, and their episodes never end
            if (not key.startswith("trend:") or f.get("metric") == "notices"
                    or f.get("source") not in watched
                    or f.get("substance") not in config.substances
                    or f.get("substance") in untold):
                continue
            rows.append({**f, "kind": "trend"})
            ep = open_eps.setdefault(f["substance"], {"sources": set(), "onset": f["onset"]})
            ep["sources"].add(f["source"])
            ep["onset"] = min(ep["onset"], f["onset"])
    lang = config.general.language
    per: dict[str, dict[str, tuple[str, int]]] = {}
    for r in rows:
        cat = int(r["category"] or 0)
        if r["kind"] == "spike":
            cat = min(cat, 1)  # a one-off spike is at most a small increase
        src = per.setdefault(r["substance"], {})
        old = src.get(r["source"])
        if old is None or (abs(cat), cat) > (abs(old[1]), old[1]):
            src[r["source"]] = (r["dimension"] or "use", cat)
    substances = []
    for sub, sources in sorted(per.items()):
        agg = aggregate([(dim, s, c) for s, (dim, c) in sources.items()])
        params = config.detection_params(sub) if sub in config.substances else None
        verdict = (
            substance_verdict([(s, c) for s, (_, c) in sources.items()], params)
            if params is not None
            else None
        )
        cat = verdict.category if verdict else 0
        substances.append(
            {
                "substance": sub,
                "label": config.substance_label(sub),
                "by_dimension": agg.by_dimension,
                "sources_by_dimension": agg.sources_by_dimension,
                "total": agg.total,
                "n_sources": agg.n_sources,
                "category": cat,
                "words": SCALE[cat][0 if lang == "no" else 1],
                "sources": {s: c for s, (_, c) in sorted(sources.items())},
                "open": sub in open_eps,
            }
        )
    # sent: delivered to a target, or on its way (quiet hours, a retry); not one held
    # back by a silence or a mute, dropped, or never delivered. Bounded by alert ids
    # where the previous digest said which it saw: times are kept to the second, and an
    # alert of the previous digest's second committed after it read is listed here
    last_id = (upto_id if upto_id is not None
               else store.q("SELECT COALESCE(MAX(id), 0) AS n FROM alerts")[0]["n"])
    low, arg = ("id > ?", after_id) if after_id is not None else ("created_at > ?", iso(since))
    changed = store.q(
        "SELECT id, substance, kind, decision, severity, title, created_at FROM alerts a "
        f"WHERE kind != 'digest' AND {low} AND id <= ? AND created_at <= ? AND EXISTS "
        f"({_WENT_OUT}) ORDER BY id", [arg, last_id, iso(end)])
    if after_id is not None:
        # an older alert the previous digest did not list (its deliveries had expired
        # or failed) that went out since, re-queued by an operator: sent in this time
        listed = {a.get("id") for a in before.get("changed", [])}
        late = store.q(
            "SELECT id, substance, kind, decision, severity, title, created_at FROM alerts a "
            "WHERE kind != 'digest' AND id <= ? AND EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.alert_id=a.id AND d.status='delivered' AND d.delivered_at > ? AND "
            "d.delivered_at <= ?) ORDER BY id", [after_id, iso(since), iso(end)])
        changed = [a for a in late if a["id"] not in listed] + changed
    openings = _read_as_openings(config, store, [a["id"] for a in changed])
    ended = {k: v[1] for k, v in _ends_as_told(config, store, [a["id"] for a in changed],
                                               None).items()}
    tz = ZoneInfo(config.general.timezone)
    for a in changed:
        a["opened_for"], a["opening_title"] = openings.get(a["id"], ([], None))
        if ended.get(a["id"]):  # an end: how long the episode lasted, how high it went
            a["ended"] = ended[a["id"]]
        # the local day it was made, as the title names days
        a["created_on"] = local_day(a["created_at"], tz)
    return {
        "since": min(since.date(), data_since).isoformat(),
        "until": end.date().isoformat(),
        # the time the digest is about, as its title names it (local dates): since the
        # previous digest, or one schedule period for the first; the table also takes in
        # findings on data of the week before it (`since`), which may come late
        "covers_from": since.astimezone(tz).date().isoformat(),
        "covers_until": end.astimezone(tz).date().isoformat(),
        "since_at": iso(since),
        "until_at": iso(end),
        "last_alert_id": last_id,
        "previous_id": previous_id,
        "schedule": dg.schedule if dg else "weekly",
        "substances": substances,
        "open": [
            {"substance": sub, "label": config.substance_label(sub), "onset": ep["onset"],
             "sources": sorted(ep["sources"]),
             "source_labels": [config.source_label(s) for s in sorted(ep["sources"])]}
            for sub, ep in sorted(open_eps.items())
        ],
        "changed": changed,
    }


def _read_as_openings(config: Config, store: Store, ids: list[int], target: str | None = None
                      ) -> dict[int, tuple[list[str], str]]:
    """Of the alerts ``ids``, those that read as their episode's opening for a target
    (an escalation or a reminder that target had as the first message of the episode:
    the ``opens`` recorded with its delivery, :func:`warnd.alerting.outbox.
    opens_for_target`): per alert the targets (only ``target``, when given) and the
    title that target got."""
    if not ids:
        return {}
    from warnd.alerting.render import as_opening
    from warnd.alerting.wording import render_text

    got: dict[int, tuple[list[str], str]] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        marks = ",".join("?" * len(part))
        rows = store.q(
            "SELECT a.id, a.data, d.target FROM alerts a JOIN deliveries d ON "
            f"d.alert_id = a.id WHERE a.id IN ({marks}) AND d.opens = 1"
            + (" AND d.target = ?" if target is not None else "")
            + " ORDER BY a.id, d.target", [*part, *([target] if target is not None else [])])
        for r in rows:
            if r["id"] not in got:
                data = as_opening(json.loads(r["data"] or "{}"))
                title = render_text(data, config.general.language, r["id"], config=config)[0]
                got[r["id"]] = ([], title)
            got[r["id"]][0].append(r["target"])
    return got


def _ends_as_told(config: Config, store: Store, ids: list[int], target: str | None
                  ) -> dict[int, tuple[str, str]]:
    """Of the alerts ``ids``, the ends and corrections of a rise (a spike, a fall) that
    went out to ``target`` (to anyone: None), as that target was told the rise
    (:func:`warnd.alerting.render.as_told`; as stored for None): per alert the title that
    target got and, of an end, the episode's line
    (:func:`warnd.alerting.wording.episode_line`)."""
    from warnd.alerting.render import as_told
    from warnd.alerting.told import told_to_target
    from warnd.alerting.wording import episode_line, render_text

    lang = config.general.language
    got: dict[int, tuple[str, str]] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = store.q(
            "SELECT DISTINCT a.id, a.data, a.substance, a.kind, a.direction, a.decision "
            "FROM alerts a JOIN deliveries d ON d.alert_id = a.id WHERE a.id IN "
            f"({','.join('?' * len(part))}) AND a.kind IN ('trend', 'spike')"
            " AND a.decision IN ('resolve', 'correct')"
            + (" AND d.target = ?" if target is not None else "")
            + f" AND {went_out('d')} ORDER BY a.id",
            [*part, *([target] if target is not None else [])])
        for r in rows:
            data = json.loads(r["data"] or "{}")
            if target is not None:
                data = as_told(data, told_to_target(store, {**r, "alert_id": r["id"],
                                                            "target": target}))
            got[r["id"]] = (render_text(data, lang, r["id"], config=config)[0],
                            episode_line(data, lang))
    return got


def missed(config: Config, store: Store, data: dict[str, Any], target: str,
           alert_id: int) -> dict[str, Any]:
    """The digest ``alert_id`` (its stored ``data``) for ``target``: as made, unless the
    digest it follows (``previous_id``) did not reach that target — its delivery there
    expired, failed, was silenced or dropped (a target muted) while others had it. Then
    it is made again for that target, since the last digest that went out to it, so it
    tells what that one listed too: the time it covers (its title), the findings, the
    alerts sent. Its end and the last alert it lists are the digest's own; what is open
    is read when it goes. A digest stored before ``previous_id`` was kept, and a target
    that had no digest before (just added), get it as made."""
    if "previous_id" not in data or not data.get("until_at"):
        return data
    if not _had_digest(store, target, alert_id):
        return data
    end = datetime.fromisoformat(data["until_at"])
    theirs, _, _ = _previous(store, end=end, target=target, before_id=alert_id)
    if theirs == data["previous_id"]:
        return data
    own = build(config, store, end=end, as_sent=True, target=target, before_id=alert_id,
                upto_id=data.get("last_alert_id"))
    title, text = render(own, config.general.language)
    return {**data, **own, "label": title, "title": title, "text": text}


def for_target(config: Config, store: Store, data: dict[str, Any], target: str,
               alert_id: int | None = None) -> dict[str, Any]:
    """The digest's data as ``target`` gets it: since the last digest that target had
    (:func:`missed`, with the digest's ``alert_id``), and an alert it lists that read as its
    episode's opening for that target (:func:`_read_as_openings`) is listed under the
    title that target got, not the one stored ("Forverring: …", a message the target
    never had), and so is an end or a correction told to that target as it was told
    the rise (:func:`_ends_as_told`); its text is written again where that changes it.
    Read from the deliveries when the digest goes to the target, as the alerts it lists
    went out before it (the same dispatch sends a target's messages in the order
    decided)."""
    if alert_id is not None:
        data = missed(config, store, data, target, alert_id)
    changed = data.get("changed") or []
    ids = [int(a["id"]) for a in changed if str(a.get("id", "")).isdigit()]
    titles = {k: v[1] for k, v in _read_as_openings(config, store, ids, target).items()}
    ends = _ends_as_told(config, store, ids, target)
    titles.update({k: v[0] for k, v in ends.items()})
    if not titles:
        return data
    told = [{**{k: v for k, v in a.items() if k != "ended"}, "title": titles[a["id"]],
             **({"ended": ends[a["id"]][1]} if ends.get(a["id"], ("", ""))[1] else {})}
            if a.get("id") in titles else a for a in changed]
    out = {**data, "changed": told}
    out["text"] = render(out, config.general.language)[1]
    return out


def render(data: dict[str, Any], lang: str) -> tuple[str, str]:
    no = lang == "no"
    head = (
        ("Ukeoversikt" if data["schedule"] == "weekly" else "Dagsoversikt")
        if no
        else ("Weekly digest" if data["schedule"] == "weekly" else "Daily digest")
    )
    # a digest stored before `covers_from` was kept is named by its data window
    title = (f"{head}: {data.get('covers_from', data['since'])} – "
             f"{data.get('covers_until', data['until'])}")
    cols = ("bruk", "tilgj.", "interesse") if no else ("use", "avail.", "interest")
    # the substance's whole label where it fits (up to 32 characters)
    w = max([14] + [min(32, len(s["label"])) for s in data["substances"]])
    lines = [
        f"{'':{w}} {cols[0]:>8} {cols[1]:>8} {cols[2]:>9} {'sum':>5} "
        f"{'kilder' if no else 'sources':>7}  {'vurdering' if no else 'assessment'}"
    ]
    for s in data["substances"]:
        d = s["by_dimension"]
        lines.append(
            f"{s['label'][:w]:{w}} {d.get('use', 0):>+8d} {d.get('availability', 0):>+8d} "
            f"{d.get('interest', 0):>+9d} {s['total']:>+5d} {s['n_sources']:>7d}  {s['words']}"
        )
    if not data["substances"]:
        lines.append("Ingen funn i perioden." if no else "No findings in the period.")
    if data.get("open"):
        lines += ["", "Åpne episoder:" if no else "Open episodes:"]
        for ep in data["open"]:
            lines.append(f"  - {ep['label']}: {'siden' if no else 'since'} {ep['onset']} "
                         f"({', '.join(ep.get('source_labels') or ep['sources'])})")
    if data.get("changed"):
        lines += ["", "Sendt siden forrige oversikt:" if no else "Sent since the last digest:"]
        for a in data["changed"]:
            # a digest stored before `created_on` was kept: the UTC day
            day = a.get("created_on") or a["created_at"][:10]
            lines.append(f"  - #{a['id']} {day} {a['title']}")
            if a.get("ended"):
                lines.append(f"    {a['ended']}")
    lines += [
        "",
        (
            "Poeng per kilde: −2 sterk nedgang … +2 sterk økning; summert per dimensjon."
            if no
            else "Score per source: −2 strong decrease … +2 strong increase; summed per dimension."
        ),
    ]
    return title, "\n".join(lines)


def _sent_that_day(config: Config, store: Store, at: datetime) -> bool:
    """True when the latest digest was made for a time on the day of ``at`` or later,
    on the clock now configured: a reload that changed ``general.timezone`` or the
    digest's ``at`` moves its times, and a time of the new clock not sent yet on a day
    that had its digest (or one before it) is not another digest."""
    rows = store.q("SELECT dedupe_key FROM alerts WHERE kind='digest' ORDER BY id DESC "
                   "LIMIT 1")
    if not rows:
        return False
    try:  # digest:<schedule>:<the scheduled instant>
        last = datetime.fromisoformat(str(rows[0]["dedupe_key"]).split(":", 2)[2])
    except (IndexError, ValueError):
        return False
    tz = ZoneInfo(config.general.timezone)
    return last.astimezone(tz).date() >= at.astimezone(tz).date()


def maybe_enqueue(config: Config, store: Store, *, now: datetime) -> int | None:
    """Enqueue the digest when a scheduled time has passed and it was not sent yet."""
    from warnd.alerting.routing import resolve_targets

    dg = config.alerting.digest
    if dg is None:
        return None
    first = store.episode_state("digest")
    if first is None:  # the first start: digests begin with the next scheduled time
        with store.write() as db:
            store.save_episode_state("digest", {"since": iso(now)}, db, now=now)
        first = {"since": iso(now)}
    at = last_scheduled(config, now)
    # a time missed (warnd down) by more than a day, or by more than half the time to
    # the next (a daily digest's 08:00 found at 07:30 the day after), is skipped: the
    # next one tells what changed since the last digest sent
    if at is None or now - at > min(timedelta(days=1), schedule_span(config) / 2):
        return None
    if at <= datetime.fromisoformat(first["since"]):
        return None
    key = f"digest:{dg.schedule}:{at.isoformat()}"
    if store.q("SELECT 1 FROM alerts WHERE dedupe_key=?", [key]):
        return None
    if _sent_that_day(config, store, at):
        return None
    # what is open now, what changed until now: since the previous digest, or for the
    # first one (also when digests are first configured after a year of running),
    # since one schedule period before it, not since warnd's first alert
    earlier = store.q("SELECT 1 FROM alerts WHERE kind='digest' AND created_at < ? LIMIT 1",
                      [iso(now)])
    data = build(config, store, end=now,
                 since=None if earlier else at - schedule_span(config), as_sent=True)
    title, text = render(data, config.general.language)
    data.update(
        kind="digest",
        substance="",
        label=title,
        title=title,
        text=text,
        decision="open",
        severity="info",
    )
    targets = resolve_targets(config, dg.targets)
    aid = store.add_alert(
        {
            "dedupe_key": key,
            "substance": "",
            "source": None,
            "region": "",
            "kind": "digest",
            "direction": None,
            "severity": "info",
            "decision": "open",
            "title": title,
            "body": text,
            "data": data,
            "status": "open",
        },
        targets,
        now=now,
    )
    return aid
