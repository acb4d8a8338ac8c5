"""Backtest: replay an observations CSV as the daemon would have seen it.

The CSV header names at least ``date,substance,source,value`` (ISO dates; optional
``denominator``, ``region``, ``dimension``, ``metric``; a value ``<1``, as in Google
Trends exports, counts as 0.5; ``as_of``, the date a row was published, so that revised
values are replayed as they arrived — see :func:`replay_as_arrived`). Rows are grouped into series by
(substance, source, region, metric). A bad row is reported on stderr with its line
number and skipped; the rest is used.

:func:`run_backtest` replays every series period by period with
:func:`detectors.engine.replay` (each period sees only the data up to it) and the
episode rules of :class:`detectors.episodes.EpisodeTracker`, and returns the messages
that would have been sent. Only increases alert unless a series' params set
``alert_decreases`` (then decrease alerts appear with ``direction == "decrease"``).
"""

from __future__ import annotations

import bisect
import csv
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import cache, partial
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from detectors.base import SCALE, Finding, Series, replaced
from detectors.engine import replay, replay_many
from detectors.episodes import EpisodeTracker
from detectors.params import DetectionParams

REQUIRED = ("date", "substance", "source", "value")
ParamsFor = Callable[[str, str], DetectionParams]
SENT = ("open", "escalate", "repeat", "resolve")


class CsvFormatError(ValueError):
    """The file cannot be read at all (missing file, missing columns)."""


def _num(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    return float(text)


def read_observations_csv(path: Path | str, *, errors: TextIO | None = None) -> list[Series]:
    """The series in an observations CSV; bad rows go to ``errors`` (stderr) and are skipped.

    With an ``as_of`` column a period may have several rows (its versions); the series
    holds each period's latest version (see :func:`read_versions`).

    Raises:
        CsvFormatError: the file is missing or its header lacks a required column.
    """
    return read_versions(path, errors=errors)[0]


Versions = dict[str, dict[date, list[tuple[date, float, float | None]]]]


def read_versions(
    path: Path | str, *, errors: TextIO | None = None
) -> tuple[list[Series], Versions]:
    """:func:`read_observations_csv` plus, per series key, the versions of each period
    that has an ``as_of`` date: ``{series key: {period: [(as_of, value, denominator)]}}``.
    """
    errors = errors or sys.stderr
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvFormatError(f"{path}: cannot open ({exc.strerror})") from exc
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CsvFormatError(
                f"{path} line 1: missing column(s) {', '.join(missing)}; "
                f"expected at least {','.join(REQUIRED)}"
            )
        rows = reader.reader  # the plain reader: lists, no dict per row
        parse = _row_parser(header)
        for row in rows:
            if not row:
                continue  # a blank line
            line = rows.line_num
            try:
                rec = parse(row)
            except ValueError as exc:
                print(f"{path} line {line}: {exc}; row skipped", file=errors)
                continue
            as_of, day, substance, source, value, den, region, metric, dimension = rec
            key = (substance, source, region, metric)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {"dimension": dimension, "rows": {}, "ver": {}, "last": None}
            if as_of is not None:
                vers = g["ver"].setdefault(day, [])
                vers.append((as_of, value, den))
                vers.sort(key=lambda v: v[0])
                latest = vers[-1]
                g["rows"][day] = (latest[1], latest[2])
                continue
            if metric == "index" and g["last"] is not None and day <= g["last"]:
                # the dates start again: the next export of an index, on its own scale
                _fold_export(g)
            g["last"] = day
            if metric == "index" and g.get("stored") is not None:
                g["rows"][day] = (value, den)
                continue
            if day in g["rows"]:
                print(
                    f"{path} line {line}: duplicate period {day} for "
                    f"{substance}/{source}; later row used",
                    file=errors,
                )
            g["rows"][day] = (value, den)
    out = []
    versions: Versions = {}
    for (substance, source, region, metric), g in groups.items():
        if g.get("stored") is not None:
            _fold_export(g)
            g["rows"] = g["stored"]
        days = sorted(g["rows"])
        vals = np.array([g["rows"][d][0] for d in days], dtype=float)
        dens = [g["rows"][d][1] for d in days]
        has_den = any(d is not None for d in dens)
        out.append(
            Series(
                source=source,
                substance=substance,
                periods=tuple(days),
                values=vals,
                region=region,
                metric=metric,
                dimension=g["dimension"] or "use",
                denominators=np.array([np.nan if d is None else d for d in dens])
                if has_den
                else None,
            )
        )
        if g["ver"]:
            versions[out[-1].key] = g["ver"]
    out.sort(key=lambda s: (s.substance, s.source, s.region, s.metric))
    return out, versions


def _fold_export(g: dict[str, Any]) -> None:
    """Put the export read so far onto the scale of the earlier ones, as the daemon does
    with each new Google Trends export (:func:`feeds.trends_csv.rescale_to_overlap`:
    median ratio over the overlapping periods); its values replace the stored ones."""
    from feeds.trends_csv import rescale_to_overlap

    rows = g["rows"]
    if g.get("stored") is None:
        g["stored"] = dict(rows)
    elif rows:
        old = {d: v for d, (v, _) in g["stored"].items()}
        scaled = rescale_to_overlap({d: v for d, (v, _) in rows.items()}, old)
        g["stored"].update({d: (scaled[d], rows[d][1]) for d in rows})
    g["rows"] = {}


Record = tuple[date | None, date, str, str, float, float | None, str, str, str | None]
_MEMO = 4096  # distinct dates or numbers remembered per column (memory bounded)
_FIELDS = ("as_of", "date", "substance", "source", "value", "denominator", "region",
           "metric", "dimension")


def _row_parser(header: list[str]) -> Callable[[list[str]], Record]:
    """A parser of the CSV's rows (lists of fields, as ``csv.reader`` gives them) into
    ``(as_of, date, substance, source, value, denominator, region, metric, dimension)``.

    A row of the header's length whose fields are all well formed takes a short path
    (dates and numbers looked up in what earlier rows already parsed); any other row is
    parsed by :func:`_parse_row`, which names what is wrong (``ValueError``). Both read
    every field the same way, so a row's record does not depend on the path it took.
    """
    width = len(header)
    col = {name: i for i, name in enumerate(header)}  # a repeated column: the last wins
    i_date, i_sub, i_src, i_val = (col[c] for c in REQUIRED)
    i_den, i_as_of, i_reg, i_met, i_dim = (
        col.get(c) for c in ("denominator", "as_of", "region", "metric", "dimension")
    )
    days: dict[str, date] = {}
    values: dict[str, float] = {}
    dens: dict[str, float | None] = {}
    isfinite = math.isfinite

    def as_dict(row: list[str]) -> dict[str | None, Any]:
        # what csv.DictReader makes of the row: missing fields None, extra ones under None
        d: dict[str | None, Any] = dict(zip(header, row))
        if len(row) > width:
            d[None] = row[width:]
        for name in header[len(row):]:
            d[name] = None
        return d

    def slow(row: list[str]) -> Record:
        rec = _parse_row(as_dict(row))
        return tuple(rec[f] for f in _FIELDS)  # type: ignore[return-value]

    def day_of(raw: str) -> date:
        return date.fromisoformat(raw.strip())

    def value_of(raw: str) -> float:
        text = raw.strip()
        value = 0.5 if text.replace(" ", "") == "<1" else float(text)
        if not isfinite(value):
            raise ValueError
        return value

    def den_of(raw: str) -> float | None:
        den = None if raw.strip() == "" else float(raw)
        if den is not None and not (isfinite(den) and den >= 0):
            raise ValueError
        return den

    def parse(row: list[str]) -> Record:
        if len(row) != width:
            return slow(row)
        try:  # a ValueError here sends the row to the careful path
            day = _memo(days, row[i_date], day_of)
            substance = row[i_sub].strip()
            source = row[i_src].strip()
            if not substance or not source:
                raise ValueError
            value = _memo(values, row[i_val], value_of)
            den = None if i_den is None else _memo(dens, row[i_den], den_of)
            as_of = None
            if i_as_of is not None and row[i_as_of].strip():
                as_of = _memo(days, row[i_as_of], day_of)
        except ValueError:
            return slow(row)
        return (
            as_of,
            day,
            substance,
            source,
            value,
            den,
            "" if i_reg is None else row[i_reg].strip(),
            ("" if i_met is None else row[i_met].strip()) or "count",
            ("" if i_dim is None else row[i_dim].strip()) or None,
        )

    return parse


_UNSEEN = object()


def _memo(seen: dict[str, Any], raw: str, parse: Callable[[str], Any]) -> Any:
    """``parse(raw)``, looked up in ``seen`` first (and kept there while it holds fewer
    than ``_MEMO`` texts); ``parse``'s ``ValueError`` passes through."""
    got = seen.get(raw, _UNSEEN)
    if got is _UNSEEN:
        got = parse(raw)
        if len(seen) < _MEMO:
            seen[raw] = got
    return got


def _parse_row(row: dict[str, str | None]) -> dict[str, Any]:
    if None in row:
        raise ValueError("more fields than the header")
    raw_date = (row.get("date") or "").strip()
    try:
        day = date.fromisoformat(raw_date)
    except ValueError:
        raise ValueError(f"date {raw_date!r} is not an ISO date (YYYY-MM-DD)") from None
    substance = (row.get("substance") or "").strip()
    source = (row.get("source") or "").strip()
    if not substance or not source:
        raise ValueError("substance and source must not be empty")
    raw_value = (row.get("value") or "").strip()
    try:
        # "<1" in an index series (a Google Trends export) is stored as 0.5, as the feed does
        value = 0.5 if raw_value.replace(" ", "") == "<1" else _num(raw_value)
    except ValueError:
        raise ValueError(f"value {raw_value!r} is not a number") from None
    if value is None or not math.isfinite(value):
        raise ValueError(f"value {raw_value!r} is not a finite number")
    raw_den = row.get("denominator")
    try:
        den = _num(raw_den)
    except ValueError:
        raise ValueError(f"denominator {raw_den!r} is not a number") from None
    if den is not None and not (math.isfinite(den) and den >= 0):
        raise ValueError(f"denominator {raw_den!r} must be a non-negative number")
    raw_as_of = (row.get("as_of") or "").strip()
    try:
        as_of = date.fromisoformat(raw_as_of) if raw_as_of else None
    except ValueError:
        raise ValueError(f"as_of {raw_as_of!r} is not an ISO date (YYYY-MM-DD)") from None
    return {
        "as_of": as_of,
        "date": day,
        "substance": substance,
        "source": source,
        "value": value,
        "denominator": den,
        "region": (row.get("region") or "").strip(),
        "metric": (row.get("metric") or "").strip() or "count",
        "dimension": (row.get("dimension") or "").strip() or None,
    }


@cache
def _defaults() -> DetectionParams:
    return DetectionParams()  # frozen: one instance serves every series


def _default_params(_substance: str, _source: str) -> DetectionParams:
    return _defaults()


def _clean(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _with_sources(findings: list[Finding], agreeing: Callable[[str], tuple[str, ...]],
                  params: DetectionParams):
    """Increase findings carry the sources agreeing with their kind (``agreeing(kind)``);
    without enough of them they are dropped when ``require_corroboration``."""
    out = []
    for f in findings:
        if f.direction == "increase":
            sources = agreeing(f.kind)
            if params.require_corroboration and len(sources) < params.min_sources_for_strong:
                continue
            ev = {**f.evidence, "n_sources": len(sources), "agreeing_sources": list(sources)}
            f = replaced(f, evidence=ev)
        out.append(f)
    return out


def _counted_only(tracker: EpisodeTracker, found: list[Finding]) -> bool:
    """True for a period with no finding while ``tracker`` has no episode open and
    remembers no run whose level is back: all its ``update()`` would do is count the
    period, done here."""
    state = tracker.state
    if found or state["open"] or state.get("back"):
        return False
    state["period"] += 1
    return True


def backtest_series(
    series: Series,
    params: DetectionParams,
    *,
    findings: list[list[Finding]] | None = None,
    agreeing: Callable[[date, str], tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """The messages the episode rules would have sent for one series.

    ``findings`` is ``replay(series, params)`` when already computed; ``agreeing(d,
    kind)`` names the sources of the substance with an episode of an increase of that
    kind open at ``d`` (:func:`_agreement`; by default only this series' source).
    """
    tracker = EpisodeTracker(params=params)
    out = []
    last: dict[str, Any] = {}
    per_period = findings if findings is not None else replay(series, params)
    for i, found in enumerate(per_period):
        if _counted_only(tracker, found):
            continue
        day = series.periods[i]
        if any(f.direction == "increase" for f in found):
            found = _with_sources(found, partial(agreeing, day) if agreeing is not None
                                  else lambda _: (series.source,), params)
        for d in tracker.update(found):
            f = d.finding
            if f is not None:
                last[d.episode] = f
            if not d.send:
                continue
            f = f or last.get(d.episode)
            kind, direction = d.episode.split(":", 1)
            cat = 0 if f is None else int(f.category)
            out.append(
                {
                    "substance": series.substance,
                    "source": series.source,
                    "region": series.region,
                    "metric": series.metric,
                    "dimension": series.dimension,
                    "fired_at": day.isoformat(),
                    "kind": kind,
                    "direction": direction,
                    "decision": d.action,
                    "onset": None if f is None else f.onset.isoformat(),
                    "level_before": None if f is None else _clean(f.level_before),
                    "level_after": None if f is None else _clean(f.level_after),
                    "relative_change": None if f is None else _clean(f.relative_change),
                    "strength": None if f is None else _clean(f.strength),
                    "p_value": None if f is None else _clean(f.p_value),
                    "category": cat,
                    "category_words": SCALE[cat][1],
                    "n_sources": 0 if f is None else int(f.evidence.get("n_sources", 1)),
                    "method": "" if f is None else f.method,
                    "evidence": {} if f is None else f.evidence,
                }
            )
    return out


def _agreement(
    runs: list[tuple[Series, DetectionParams, list[list[Finding]]]],
) -> dict[str, Callable[[date, str], tuple[str, ...]]]:
    """Per substance: which sources have an episode of an increase of a kind (``trend``,
    ``spike``) open as of a date, as the daemon names the sources that agree with a
    rise (or a spike): each series' findings go through its own
    :class:`~detectors.episodes.EpisodeTracker`, untagged, as the daemon's series
    trackers take them. So a finding too near stable on the scale, or a trend whose level
    is back, opens no episode and agrees with nothing, an episode agrees until it ends,
    ``resolve_after_periods`` periods after its last finding that took part, and a spike
    does not agree with a rise (nor a rise with a spike).

    A source's state at ``d`` is that of its newest period on or before ``d`` (any of its
    regions or metrics), so weekly and monthly sources can agree; nothing after ``d``
    is used.
    """
    # only the periods where a series' episodes change: in between they hold
    events: dict[str, list[tuple[date, str, str, frozenset[str]]]] = {}
    for s, params, per_period in runs:
        key = s.key
        evs = events.setdefault(s.substance, [])
        tracker = EpisodeTracker(params=params)
        was: frozenset[str] = frozenset()
        for day, found in zip(s.periods, per_period, strict=True):
            if _counted_only(tracker, found):
                continue  # nothing open before, nothing now
            tracker.update(found)
            up = frozenset(k.split(":", 1)[0] for k in tracker.state["open"]
                           if k.endswith(":increase"))
            if up != was:
                evs.append((day, key, s.source, up))
                was = up
    out: dict[str, Callable[[date, str], tuple[str, ...]]] = {}
    for substance, evs in events.items():
        evs.sort(key=lambda e: e[0])
        state: dict[str, tuple[str, frozenset[str]]] = {}
        days: list[date] = []
        snapshots: list[dict[str, tuple[str, ...]]] = []
        for day, key, source, up in evs:
            state[key] = (source, up)
            snap: dict[str, set[str]] = {}
            for src, kinds in state.values():
                for kind in kinds:
                    snap.setdefault(kind, set()).add(src)
            sources = {kind: tuple(sorted(srcs)) for kind, srcs in snap.items()}
            if days and days[-1] == day:
                snapshots[-1] = sources
            else:
                days.append(day)
                snapshots.append(sources)

        def lookup(d: date, kind: str, days=days, snapshots=snapshots) -> tuple[str, ...]:
            i = bisect.bisect_right(days, d) - 1
            return snapshots[i].get(kind, ()) if i >= 0 else ()

        out[substance] = lookup
    return out


def run_backtest(path: Path | str, params_for: ParamsFor | None = None) -> list[dict[str, Any]]:
    """Alerts that would have been sent, in date order (then substance, source).

    Each series is replayed on its own; then, date by date, an increase finding is
    tagged with the sources of the same substance that have an episode of an increase
    of its kind open, as the daemon counts them (:func:`_agreement`;
    ``evidence["n_sources"]``, ``evidence["agreeing_sources"]``): more agreeing sources
    escalate an open episode, and with ``require_corroboration`` an increase alerts
    only once ``min_sources_for_strong`` sources agree.
    """
    params_for = params_for or _default_params
    series, versions = read_versions(path)
    params = [params_for(s.substance, s.source) for s in series]
    runs = list(zip(series, params, replay_all(series, versions, params), strict=True))
    agree = _agreement(runs)
    alerts: list[dict[str, Any]] = []
    for s, p, found in runs:
        alerts.extend(backtest_series(s, p, findings=found, agreeing=agree[s.substance]))
    alerts.sort(key=lambda a: (a["fired_at"], a["substance"], a["source"], a["region"], a["kind"]))
    return alerts


def replay_all(
    series: list[Series], versions: Versions, params: list[DetectionParams]
) -> list[list[list[Finding]]]:
    """The findings per period of each series: :func:`detectors.engine.replay`, or for a
    series with versions :func:`replay_as_arrived` — all in one
    :func:`~detectors.engine.replay_many` batch (the snapshots made as it reaches them)."""
    plans = {s.key: _ArrivalPlan(s, versions[s.key]) for s in series if s.key in versions}

    def items() -> Iterator[tuple[Series, DetectionParams]]:
        for s, p in zip(series, params, strict=True):
            if s.key in plans:
                yield from plans[s.key].items(p)
            else:
                yield s, p

    found = replay_many(items())
    return [plans[s.key].findings(found) if s.key in plans else next(found) for s in series]


def replay_as_arrived(
    series: Series, versions: dict[date, list[tuple[date, float, float | None]]],
    params: DetectionParams,
) -> list[list[Finding]]:
    """Findings per period as the daemon would have judged them when each period arrived.

    A period arrives at its first ``as_of`` (a period without one, at its own date); it
    is judged on the data known then — the periods arrived by that day, each at its
    latest version by that day — so a value later revised is judged as first published,
    and a revision counts from the next period judged after it arrived.

    A period's findings depend only on the data up to it (:func:`detectors.engine.replay`),
    so one replay serves every period whose earlier data is still the same when a later
    one arrives: the series is replayed once per run of arrivals that revises nothing
    before them (once in all when nothing is revised and nothing arrives late).
    """
    plan = _ArrivalPlan(series, versions)
    return plan.findings(replay_many(plan.items(params)))


class _ArrivalPlan:
    """The runs of arrivals of a series with versions (see :func:`replay_as_arrived`):
    the snapshots to replay, and which periods each one judges."""

    def __init__(
        self, series: Series, versions: dict[date, list[tuple[date, float, float | None]]]
    ) -> None:
        self.series, self.versions = series, versions
        periods = series.periods
        self.arrive = arrive = [versions[p][0][0] if p in versions else p for p in periods]
        days = sorted(set(arrive))  # the days something is judged
        # the earliest period each judging day sees changed: arrivals, and revisions
        # made since the day before it
        changed: dict[date, int] = {}
        for i, p in enumerate(periods):
            for as_of in [arrive[i], *(v[0] for v in versions.get(p, [])[1:])]:
                k = bisect.bisect_left(days, as_of)
                if k < len(days):
                    changed[days[k]] = min(changed.get(days[k], i), i)
        arriving: dict[date, list[int]] = {}
        for i, a in enumerate(arrive):
            arriving.setdefault(a, []).append(i)
        self.days: list[date] = []  # per run: the day its snapshot is taken
        self.members: list[list[int]] = []  # and the periods judged from it
        latest = -1  # the latest period of the current run
        for day in days:
            if not self.days or changed[day] <= latest:  # a period of the run would see a change
                self.days.append(day)
                self.members.append([])
                latest = -1
            self.days[-1] = day
            self.members[-1].extend(arriving[day])
            latest = max(latest, *arriving[day])

    def items(self, params: DetectionParams) -> Iterator[tuple[Series, DetectionParams]]:
        """The snapshots to replay, in order, made as they are asked for."""
        for day in self.days:
            yield _known_at(self.series, self.versions, self.arrive, day), params

    def findings(self, replays: Iterator[list[list[Finding]]]) -> list[list[Finding]]:
        """Each period's findings, from the next replays of :meth:`items`' snapshots."""
        out: list[list[Finding]] = [[] for _ in self.series.periods]
        for day, members in zip(self.days, self.members, strict=True):
            found = next(replays)
            at = {i: j for j, i in enumerate(i for i, a in enumerate(self.arrive) if a <= day)}
            for i in members:
                out[i] = found[at[i]]
        return out


def _known_at(
    series: Series, versions: dict[date, list[tuple[date, float, float | None]]],
    arrive: list[date], day: date,
) -> Series:
    """The series as known on ``day``: the periods arrived by then, each at its latest
    version by then."""
    dens = series.denominators
    idx = [i for i, a in enumerate(arrive) if a <= day]
    vals, dvals = [], []
    for i in idx:
        q = series.periods[i]
        known = [v for v in versions.get(q, []) if v[0] <= day]
        if known:
            vals.append(known[-1][1])
            dvals.append(np.nan if known[-1][2] is None else known[-1][2])
        else:
            vals.append(float(series.values[i]))
            dvals.append(np.nan if dens is None else float(dens[i]))
    return replace(series, periods=tuple(series.periods[i] for i in idx),
                   values=np.array(vals, dtype=float),
                   denominators=None if dens is None else np.array(dvals))


def run_changepoints(path: Path | str, params_for: ParamsFor | None = None) -> list[dict[str, Any]]:
    """Change points of every series in the file, on its own periods (no re-aggregation).

    ``params_for`` is accepted for symmetry with :func:`run_backtest`; segmentation has
    no per-series parameters.
    """
    from detectors.changepoints import segment

    out = []
    for s in read_observations_csv(path):
        vals = np.asarray(s.values, dtype=float)
        if s.denominators is not None:
            with np.errstate(all="ignore"):
                vals = np.where(s.denominators > 0, vals / s.denominators, np.nan)
        seg = segment(vals, s.periods)
        out.append(
            {
                "substance": s.substance,
                "source": s.source,
                "region": s.region,
                "metric": s.metric,
                "change_points": [s.periods[i].isoformat() for i in seg.change_points],
                "segments": [
                    {
                        "start": s.periods[a].isoformat(),
                        "end": s.periods[b].isoformat(),
                        "level": _clean(level),
                    }
                    for a, b, level in seg.segments
                ],
            }
        )
    return out


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.0%}" if pct else f"{x:.3g}"


def format_backtest_table(alerts: list[dict[str, Any]]) -> str:
    """A readable text table of backtest alerts."""
    if not alerts:
        return "no alerts"
    return _table(
        [
            "fired_at",
            "substance",
            "source",
            "region",
            "metric",
            "kind",
            "decision",
            "onset",
            "before",
            "after",
            "change",
            "p",
            "category",
        ],
        (
            [
                a["fired_at"],
                a["substance"],
                a["source"],
                a["region"] or "-",
                a.get("metric") or "count",
                a["kind"],
                a["decision"],
                a["onset"] or "-",
                _fmt(a["level_before"]),
                _fmt(a["level_after"]),
                _fmt(a["relative_change"], pct=True),
                _fmt(a["p_value"]),
                a["category_words"],
            ]
            for a in alerts
        ),
    )


def format_changepoints_table(results: list[dict[str, Any]]) -> str:
    """A readable text table: one row per segment of every series."""
    if not results:
        return "no series"
    rows = []
    for r in results:
        for seg in r["segments"]:
            rows.append(
                [
                    r["substance"],
                    r["source"],
                    r["region"] or "-",
                    r.get("metric") or "count",
                    seg["start"],
                    seg["end"],
                    _fmt(seg["level"]),
                ]
            )
    # the metric tells a source's series of one substance and region apart (a panel's
    # answers on use and on availability, seizures counted and weighed)
    return _table(["substance", "source", "region", "metric", "start", "end", "level"], rows)
