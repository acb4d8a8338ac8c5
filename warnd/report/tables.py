
"""The half-year report: per substance, each source's change on the five-step scale,
grouped by dimension, with the aggregated difference (Føre Var's tables).

The table logic is pure (:func:`source_row`, :func:`substance_table`) and works on
:class:`detectors.base.Series` objects; :func:`build_report` loads them from the store
together with the period's alerts and overdosefare warnings. Rendering (HTML, Markdown,
CSV) lives in :mod:`warnd.report.render`, charts in :mod:`warnd.report.charts`.

Scoring (our design, see ``docs/report.md``):

* a series with values (counts, visits, index, concentration, …) is compared with
  :func:`detectors.synthesis.score_change` (current half-year against the one before)
  and contributes its five-step category −2..+2;
* a trend-panel series (metric ``score`` or ``score:<dimension>``) contributes the
  **sum** of its answers in the current half-year (each stored round is the sum of that
  round's answers, with their number as denominator); for the verdicts it
  counts as one source with the category of its mean answer (:func:`panel_category`);
* a series without data in either half-year contributes nothing and says so;
* sums per dimension and overall come from :func:`detectors.synthesis.aggregate`; the
  words per dimension and for the substance from
  :func:`detectors.synthesis.substance_verdict` (a strong increase needs agreeing
  independent sources).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from detectors.base import SCALE, Series, is_score, replaced, series_key
from detectors.grid import infer_step
from detectors.params import DetectionParams
from detectors.synthesis import (
    DIMENSIONS,
    Aggregate,
    SourceChange,
    Verdict,
    aggregate,
    half_years,
    latest_complete_half_year,
    series_change,
    substance_verdict,
)
from feeds.text import period_end
from warnd.alerting.localtime import local_day
from warnd.alerting.told import (
    EPISODE_KINDS,
    data_of,
    episode_scope,
    episode_start,
    rise_told,
    told_later,
    went_out,
)
from warnd.errors import WarndError
from warnd.store import FINDING_STANDS, NAMES_SUBSTANCE, iso, substance_scope

Period = tuple[date, date]

#: Row status values (the CSV ``status`` column).
OK, PANEL, NO_DATA, NO_DATA_BEFORE = "ok", "panel", "no_data", "no_data_before"

LABELS: dict[str, dict[str, str]] = {
    "no": {
        "use": "bruk",
        "availability": "tilgjengelighet",
        "interest": "interesse",
        "and": "og",
        "in": "i",
        "stable": "stabil",
        "no_data": "ingen data i perioden",
        "no_data_before": "ingen data i perioden før",
    },
    "en": {
        "use": "use",
        "availability": "availability",
        "interest": "interest",
        "and": "and",
        "in": "in",
        "stable": "stable",
        "no_data": "no data in the period",
        "no_data_before": "no data in the period before",
    },
}


class ReportError(WarndError):
    """A report cannot be made (bad period, empty store)."""


# -- periods ---------------------------------------------------------------------------
def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ReportError(f"{what}: {text!r} is not a date (use YYYY-MM-DD)") from None


def choose_periods(
    last_data_date: date | None,
    params: DetectionParams,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[Period, Period]:
    """The report period and the one before it, each ``(first day, last day)``.

    Without ``start``/``end``: the latest complete half-year in the data (the half-year
    months come from ``params.half_year_start_months``) and the half-year before.
    With both: that range and the equally long range right before it; a range of whole
    calendar months (a half-year, a month) is compared with as many whole months before
    it. With only one of them: the half-year that contains it.
    """
    if start is not None and end is not None:
        if end < start:
            raise ReportError(f"--from {start} is after --to {end}")
        prev_end = start - timedelta(days=1)
        after = end + timedelta(days=1)
        if start.day == 1 and after.day == 1:
            months = (after.year - start.year) * 12 + after.month - start.month
            first = start.year * 12 + start.month - 1 - months
            return (start, end), (date(first // 12, first % 12 + 1, 1), prev_end)
        return (start, end), (prev_end - (end - start), prev_end)
    if start is not None or end is not None:
        cur, prev = half_years(start or end, params)  # type: ignore[arg-type]
        return cur, prev
    if last_data_date is None:
        raise ReportError("the store holds no observations; run `warnd run --once` first")
    cur = latest_complete_half_year(last_data_date, params)
    _, prev = half_years(cur[0], params)
    return cur, prev


# -- tables ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceRow:
    """One series of one substance in the report period."""

    key: str  # series key, e.g. "lab-mbf:kokain:46"
    source: str
    region: str
    metric: str
    dimension: str
    status: str  # ok | panel | no_data | no_data_before
    score: int  # what the row adds to the sums (0 without data)
    category: int  # five-step category (panel: of the mean answer)
    level_before: float | None = None
    level_after: float | None = None
    relative_change: float | None = None
    p_value: float | None = None
    n_before: int = 0
    n_after: int = 0
    test: str = ""

    @property
    def counted(self) -> bool:
        return self.status in (OK, PANEL)

    def words(self, lang: str = "no") -> str:
        if not self.counted:
            return LABELS[lang][self.status]
        return SCALE[self.category][0 if lang == "no" else 1]


@dataclass(frozen=True)
class SubstanceTable:
    substance: str
    label: str
    rows: tuple[SourceRow, ...]
    aggregate: Aggregate
    dimension_verdicts: dict[str, Verdict]
    verdict: Verdict
    alerts: tuple[dict[str, Any], ...] = ()
    notices: tuple[dict[str, Any], ...] = ()
    #: the episodes (a rise, a fall, a spike) opened before the period and open in it:
    #: each its opening, as an alert of :attr:`alerts`, with ``ended``, the day of its
    #: end when it ended in the period ("" when it goes on)
    ongoing: tuple[dict[str, Any], ...] = ()
    #: the substance's name in each language when the config gives one per language
    labels: tuple[tuple[str, str], ...] = ()

    def name(self, lang: str = "no") -> str:
        """The substance's name in ``lang`` (its label when given in one language)."""
        return dict(self.labels).get(lang, self.label)

    def rows_in(self, dimension: str) -> list[SourceRow]:
        return [r for r in self.rows if r.dimension == dimension]

    def headline(self, lang: str = "no") -> str:
        return f"{self.name(lang)} – {finding_phrase(self, lang)}"


#: A panel's mean answer from which it counts as a small / strong change in the verdicts.
PANEL_SMALL, PANEL_STRONG = 0.25, 1.0


def panel_category(mean_answer: float) -> int:
    """The five-step category of a panel's mean answer (−2..2) for the verdicts: ±1 from
    ±0.25 (net a quarter of the informants report a change), ±2 from ±1.0 (the
    typical informant reports at least a small change)."""
    a = abs(mean_answer)
    step = 2 if a >= PANEL_STRONG else 1 if a >= PANEL_SMALL else 0
    return step if mean_answer >= 0 else -step


def _in(series: Series, period: Period) -> np.ndarray:
    per = np.array(series.periods, dtype="datetime64[D]")
    if len(per) == 0:
        return np.zeros(0, dtype=bool)
    ok = (per >= np.datetime64(period[0])) & (per <= np.datetime64(period[1]))
    return ok & np.isfinite(np.asarray(series.values, dtype=float))


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _panel_sum(series: Series, mask: np.ndarray) -> tuple[int, float]:
    """Sum of the answer scores in ``mask`` and the number of answers.

    A stored panel value is the sum of one round's answers with the number of answers
    as denominator (``feeds.panel``); without a denominator a value is one answer.
    """
    vals = np.asarray(series.values, dtype=float)[mask]
    den = series.denominators
    if den is None:
        n = np.ones_like(vals)
    else:
        n = np.asarray(den, dtype=float)[mask]
        n = np.where(np.isfinite(n) & (n > 0), n, 1.0)
    total = np.clip(np.round(vals), -2 * n, 2 * n).sum()
    return int(total), float(n.sum())


def _panel_row(
    series: Series, cur: np.ndarray, prv: np.ndarray, base: dict[str, Any]
) -> SourceRow:
    score, n_answers = _panel_sum(series, cur)
    before = _panel_sum(series, prv)[0] if prv.any() else None
    return SourceRow(
        status=PANEL, score=score,
        category=panel_category(score / n_answers) if n_answers else 0,
        level_before=None if before is None else float(before), level_after=float(score),
        test=f"panel sum of {n_answers:.0f} answers", **base,
    )


def source_row(
    series: Series, current: Period, previous: Period, params: DetectionParams
) -> SourceRow:
    """Score one series for ``current`` against ``previous``."""
    cur, prv = _in(series, current), _in(series, previous)
    base = dict(
        key=series.key, source=series.source, region=series.region, metric=series.metric,
        dimension=series.dimension, n_before=int(prv.sum()), n_after=int(cur.sum()),
    )
    if not cur.any():
        return SourceRow(status=NO_DATA, score=0, category=0, **base)  # type: ignore[arg-type]
    vals = np.asarray(series.values, dtype=float)
    if is_score(series.metric):
        return _panel_row(series, cur, prv, base)
    if not prv.any():
        den = series.denominators
        after = float(vals[cur].mean())
        if den is not None and np.nansum(den[cur]) > 0:
            after = float(vals[cur].sum() / np.nansum(den[cur]))
        return SourceRow(
            status=NO_DATA_BEFORE, score=0, category=0,
            level_after=_f(after), **base,  # type: ignore[arg-type]
        )
    cat, ch = series_change(series, current, previous, params)
    assert isinstance(ch, SourceChange)
    return SourceRow(
        status=OK, score=cat, category=cat, level_before=_f(ch.level_before),
        level_after=_f(ch.level_after),
        relative_change=None if math.isnan(ch.relative_change) else ch.relative_change,
        p_value=ch.p_value, test=ch.test, **base,  # type: ignore[arg-type]
    )


def substance_table(
    substance: str,
    series: Iterable[Series],
    current: Period,
    previous: Period,
    params: DetectionParams | Callable[[str], DetectionParams],
    *,
    label: str | None = None,
    alerts: Sequence[dict[str, Any]] = (),
    ongoing: Sequence[dict[str, Any]] = (),
    notices: Sequence[dict[str, Any]] = (),
    labels: dict[str, str] | None = None,
) -> SubstanceTable:
    """The table of one substance: a row per series, sums and verdicts.

    ``params`` is one parameter set or a function of the source name (per-source
    overrides); the substance verdicts use the parameters of the substance itself
    (``params("")`` when a function).
    """
    pf = params if callable(params) else (lambda _s: params)
    dim_order = {d: i for i, d in enumerate(DIMENSIONS)}
    rows = sorted(
        (source_row(s, current, previous, pf(s.source)) for s in series),
        key=lambda r: (dim_order.get(r.dimension, 9), r.source, r.region, r.metric),
    )
    counted = [r for r in rows if r.counted]
    agg = aggregate((r.dimension, r.source, r.score) for r in counted)
    sp = pf("")
    dims = {
        d: majority_verdict([(r.source, r.category) for r in counted if r.dimension == d], sp)
        for d in DIMENSIONS
    }
    return SubstanceTable(
        substance=substance, label=label or substance, rows=tuple(rows), aggregate=agg,
        dimension_verdicts=dims,
        verdict=majority_verdict([(r.source, r.category) for r in counted], sp),
        alerts=tuple(alerts), notices=tuple(notices), ongoing=tuple(ongoing),
        labels=tuple(sorted((labels or {}).items())),
    )


def majority_verdict(items: Sequence[tuple[str, int]], params: DetectionParams) -> Verdict:
    """The words for a group of sources (a dimension, or all of a substance's sources).

    Each source counts once, with its largest category. The group moves only when
    more than half of its sources with data move the same way; then
    :func:`detectors.synthesis.substance_verdict` decides small or strong (a strong
    change needs a strong source and ``min_sources_for_strong`` agreeing sources).
    Otherwise it is stable: one source out of four going down is not a decrease.
    """
    per: dict[str, int] = {}
    for src, cat in items:
        old = per.get(src)
        if old is None or (abs(cat), cat) > (abs(old), old):
            per[src] = int(cat)
    up = sum(1 for c in per.values() if c > 0)
    down = sum(1 for c in per.values() if c < 0)
    v = substance_verdict(list(per.items()), params)
    if 2 * max(up, down) <= len(per) or v.category == 0:
        return Verdict(0, (), v.disagreeing_sources + v.corroborating_sources, "none")
    return v


def _phrase(dimension: str, category: int, lang: str) -> str:
    lab = LABELS[lang]
    if category == 0:
        return f"{lab['stable']} {lab[dimension]}"
    return f"{SCALE[category][0 if lang == 'no' else 1]} {lab['in']} {lab[dimension]}"


def finding_phrase(table: SubstanceTable, lang: str = "no") -> str:
    """The main finding in words: "sterk økning i bruk", "stabil bruk og liten nedgang i
    tilgjengelighet".

    Our rule: the use dimension leads; when use is stable, the other dimensions that
    changed are added (as the report's "stabil bruk og nedgang i tilgjengelighet"). A
    substance without use sources leads with its first dimension that has sources.
    """
    with_sources = [
        d for d in DIMENSIONS if any(r.counted for r in table.rows_in(d))
    ]
    if not with_sources:
        return LABELS[lang]["no_data"]
    lead = "use" if "use" in with_sources else with_sources[0]
    parts = [_phrase(lead, table.dimension_verdicts[lead].category, lang)]
    if table.dimension_verdicts[lead].category == 0:
        parts += [
            _phrase(d, table.dimension_verdicts[d].category, lang)
            for d in with_sources
            if d != lead and table.dimension_verdicts[d].category != 0
        ]
    return f" {LABELS[lang]['and']} ".join(parts)


# -- the whole report from the store ------------------------------------------------------
@dataclass(frozen=True)
class Report:
    current: Period
    previous: Period
    substances: tuple[SubstanceTable, ...]
    series: dict[str, list[Series]] = field(default_factory=dict)  # for the charts
    spikes: dict[str, list[date]] = field(default_factory=dict)  # series key -> periods
    #: series key -> its name as people say it, per language ("no", "en")
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    #: series keys whose levels are shares of tests (shown in per cent)
    shares: frozenset[str] = frozenset()
    #: series key -> (periods of the two compared periods whose values were revised
    #: after they were first read, the day of the latest revision)
    revised: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: series key -> (its source and region, what its axis shows) per language, for
    #: the charts' panels ("AMK Bergen (ambulanse), Vestland", "utrykninger per uke")
    axes: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    #: the last day the data cover when the report period is not over in them (its last
    #: month has no data yet: :func:`data_to`); None for a period that is over
    data_to: date | None = None

    def name(self, key: str, lang: str) -> str:
        """A series' name for the tables (its key when the report has no names)."""
        return self.names.get(key, {}).get(lang, key)

    def panels(self, lang: str) -> dict[str, tuple[str, str]]:
        """Each series' panel title and axis in ``lang`` (none when the report has no
        names: the charts then say the series' key)."""
        return {key: by_lang[lang] for key, by_lang in self.axes.items() if lang in by_lang}


def _titles(data: dict[str, Any], aid: int, cfg: Any) -> dict[str, str]:
    """An alert's title in each report language, as its message says it in that
    language (the substances by their labels in it); none for an alert whose data
    cannot be said again (one written by an older warnd keeps its stored title)."""
    from warnd.alerting.wording import joined, render_text
    from warnd.store import alert_substances

    if cfg is None or not data.get("kind") or data.get("kind") == "digest":
        return {}
    subs = alert_substances({"kind": data["kind"], "substance": data.get("substance"),
                             "data": data})
    out = {}
    for lang in ("no", "en"):
        said = {**data, "label": joined([cfg.substance_label(s, lang) for s in subs], lang)
                } if subs and all(s in cfg.substances for s in subs) else data
        try:
            out[lang] = render_text(said, lang, aid, config=cfg)[0]
        except (KeyError, TypeError, ValueError):
            return {}
    return out


def _alert_day(data: dict[str, Any], created_at: str, tz: tzinfo) -> str:
    """The day an alert is listed under: its evidence's ``detected_at`` (a data date),
    else the day it was made, local (``tz``), as its message dated it."""
    return str(data.get("detected_at") or local_day(created_at, tz))[:10]


def _corrected(store: Any, substance: str, tz: tzinfo) -> dict[int, list[tuple[int, str]]]:
    """The substance's told rises (falls, spikes) a later correction withdrew, in whole
    or in part: each opening, escalation or reminder of an episode to the corrections
    told in that episode after it, ``(id, day)`` (the day as :func:`_alert_day`)."""
    out: dict[int, list[tuple[int, str]]] = {}
    for c in store.q("SELECT id, kind, direction, created_at, data FROM alerts WHERE "
                     f"substance=? AND decision='correct' AND NOT {told_later()} ORDER BY id",
                     [substance]):
        scope = episode_scope({"kind": c["kind"], "substance": substance,
                               "direction": c["direction"]})
        if scope is None:
            continue
        where, args = scope
        day = _alert_day(data_of(c), c["created_at"], tz)
        for a in store.q(f"SELECT id FROM alerts WHERE {where} AND id >= ? AND id < ? AND "
                         "decision IN ('open', 'escalate', 'repeat')",
                         [*args, episode_start(store, scope, c["id"]), c["id"]]):
            out.setdefault(a["id"], []).append((c["id"], day))
    return out


def _listed(a: dict[str, Any], data: dict[str, Any], when: str,
            corrected: dict[int, list[tuple[int, str]]], cfg: Any) -> dict[str, Any]:
    """An alert row as the report lists it (:func:`_period_alerts`)."""
    return {**a, "sent": bool(a["sent"]), "detected_at": when,
            "onset": str(data.get("onset") or "")[:10], "titles": _titles(data, a["id"], cfg),
            "corrected_by": corrected.get(a["id"], [])}


#: SQL: the columns of an alert the report lists; ``sent``: delivered to a target, or on
#: its way, as the digest counts it
_LISTED = ("SELECT id, substance, source, kind, direction, severity, title, created_at, "
           "status, decision, EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = "
           f"alerts.id AND {went_out('d')}) AS sent, data FROM alerts")


def _period_alerts(store: Any, substance: str, period: Period, tz: tzinfo = UTC,
                   cfg: Any = None) -> list[dict[str, Any]]:
    """The substance's alerts whose evidence was detected in ``period`` (listed under
    :func:`_alert_day`). ``titles``: the title in each report language (with ``cfg``);
    ``sent``: whether it went to anyone (a silence, a mute, or nobody left to tell of a
    rise none had heard can keep it from everyone; one held back and told later is
    left out, its told copy listed); ``corrected_by``: the corrections
    that later withdrew it, ``(id, day)`` (:func:`_corrected`)."""
    out = []
    corrected = _corrected(store, substance, tz)
    # one held back and told later is listed once, as told
    for a in store.q(f"{_LISTED} WHERE {NAMES_SUBSTANCE} AND NOT {told_later()} ORDER BY id",
                     [substance, substance]):
        data = data_of(a)
        del a["data"]
        when = _alert_day(data, a["created_at"], tz)
        if period[0].isoformat() <= when <= period[1].isoformat():
            out.append(_listed(a, data, when, corrected, cfg))
    return out


def _ongoing(store: Any, substance: str, period: Period, tz: tzinfo = UTC,
             cfg: Any = None) -> list[dict[str, Any]]:
    """The substance's episodes (a rise, a fall, a spike: :data:`EPISODE_KINDS`, one
    direction) opened before ``period`` that were still open when it began: each its
    opening as :func:`_period_alerts` lists an alert, with ``ended``, the day of the
    episode's end when it is in the period ("" when the episode goes on past it, or the
    day is not known). An episode ends with its end (``resolve``, else as its episode
    state says when the end was not sent); one whose every series a correction withdrew,
    as the figures stand now, is left out: there was no rise. The messages held back and
    told later count as told (:func:`_period_alerts`)."""
    start, stop = period[0].isoformat(), period[1].isoformat()
    corrected = _corrected(store, substance, tz)
    episodes: list[dict[str, Any]] = []
    current: dict[tuple[str, str], dict[str, Any]] = {}
    kinds = ",".join("?" * len(EPISODE_KINDS))
    for a in store.q(f"{_LISTED} WHERE substance=? AND kind IN ({kinds}) AND NOT "
                     f"{told_later()} ORDER BY id", [substance, *EPISODE_KINDS]):
        data = data_of(a)
        del a["data"]
        when = _alert_day(data, a["created_at"], tz)
        scope = (a["kind"], a["direction"])
        if a["decision"] == "open":
            current[scope] = {"alert": a, "data": data, "day": when, "ended": None,
                              "last": when, "messages": [{**data, "decision": "open"}]}
            episodes.append(current[scope])
        elif (ep := current.get(scope)) is None:
            continue
        elif a["decision"] == "resolve":
            ep["ended"] = ep["last"] = when
            del current[scope]
        else:
            ep["messages"].append({**data, "decision": a["decision"]})
            ep["last"] = when
    for (kind, direction), ep in current.items():
        # an end not told (``alerting.send_resolved`` off) is in the episode states: the
        # day a rise ended; of a spike or a fall only that none of its series has it open
        # (it went on at least to its last message)
        if (kind, direction) == ("trend", "increase"):
            state = store.episode_state(substance_scope(substance)) or {}
            if not state.get("open") and state.get("ended"):
                ep["ended"] = ep["last"] = str(state["ended"])
        elif not store.open_episode_scopes(substance, f"{kind}:{direction}"):
            ep["ended"] = ""
    return [{**_listed(ep["alert"], ep["data"], ep["day"], corrected, cfg),
             "ended": ep["ended"] if ep["ended"] and ep["ended"] <= stop else ""}
            for ep in episodes
            if ep["day"] < start and (ep["ended"] is None or ep["last"] >= start)
            and rise_told(ep["messages"], ep["alert"]["direction"])["agree"]]


def _period_notices(store: Any, substance: str, period: Period, tz: tzinfo = UTC
                    ) -> list[dict[str, Any]]:
    """The warnings published in ``period`` (local days, ``tz``) naming the substance,
    newest first, each with its ``published_at`` in local time."""
    start = datetime.combine(period[0], time(0), tz)
    stop = datetime.combine(period[1] + timedelta(days=1), time(0), tz)
    rows = store.q(
        "SELECT i.published_at, i.title, i.link, i.source FROM items i "
        "JOIN item_substances s ON s.key = i.key WHERE i.kind='notice' AND s.substance=? "
        "AND i.published_at >= ? AND i.published_at < ? ORDER BY i.published_at DESC",
        [substance, iso(start), iso(stop)],
    )
    return [{**r, "published_at": datetime.fromisoformat(r["published_at"]).astimezone(tz)
             .isoformat()} for r in rows]


def _revised(store: Any, current: Period, previous: Period, tz: tzinfo = UTC
             ) -> dict[str, tuple[int, str]]:
    """The series whose values in the compared periods a source revised after they were
    first read (the ``revisions`` table): how many periods, and the latest day (local,
    ``tz``)."""
    first, last = min(current[0], previous[0]), max(current[1], previous[1])
    return {
        series_key(r["source"], r["substance"], r["region"], r["metric"]):
            (int(r["n"]), local_day(str(r["at"]), tz))
        for r in store.q(
            "SELECT source, substance, region, metric, COUNT(DISTINCT period) AS n, "
            "MAX(revised_at) AS at FROM revisions WHERE period BETWEEN ? AND ? "
            "GROUP BY source, substance, region, metric",
            [first.isoformat(), last.isoformat()])
    }


def data_to(series: Iterable[Series], current: Period) -> date | None:
    """The last day the measured data cover (the end of the newest week, month or day of
    any series; not the weekly counts of warnings, which run to the last complete week
    whenever their page is read) when ``current`` is not over in them: when no series
    has a value in its last month, the rule that makes the default period the latest
    complete half-year (:func:`choose_periods`). None when the period is over."""
    ends = []
    for s in series:
        if s.metric == "notices" or not s.periods:
            continue
        last = s.periods[-1]
        # infer_step gives a day, a week or a month: each has a known end
        ends.append((last, period_end(last, infer_step(s.periods)) - timedelta(days=1)))
    if not ends or max(ends)[0] >= current[1].replace(day=1):
        return None
    return max(end for _, end in ends)


def build_report(
    store: Any,
    cfg: Any,
    *,
    start: date | None = None,
    end: date | None = None,
) -> Report:
    """Load every series from the store and compute the tables of the report period."""
    last = store.last_period()
    base_params = cfg.detection_params("")
    current, previous = choose_periods(
        date.fromisoformat(last) if last else None, base_params, start=start, end=end
    )
    keys = store.series_keys()
    tz = ZoneInfo(cfg.general.timezone)  # the alerts' and warnings' days are local
    substances = list(cfg.substances) + sorted(
        {k[1] for k in keys} - set(cfg.substances)
    )
    dims = {s.name: s.dimension for s in cfg.sources}
    tables, all_series, spikes = [], {}, {}
    for sub in substances:
        loaded = (store.load_series(src, sub, region, metric, dimension=dims.get(src, "use"))
                  for src, s2, region, metric in keys if s2 == sub)
        # in its source's dimension as configured now, as alerts and digests tell it: the
        # rows first stored keep the dimension of their day (a panel's series keep the
        # one their answers are about, ``score:<dimension>``)
        series = [replaced(s, dimension=dims[s.source])
                  if s.source in dims and not s.metric.startswith("score:") else s
                  for s in loaded]
        if not series:
            continue

        def pf(source: str, sub: str = sub) -> DetectionParams:
            return cfg.detection_params(sub, source or None)  # type: ignore[no-any-return]

        tables.append(
            substance_table(
                sub, series, current, previous, pf, label=cfg.substance_label(sub),
                labels={lang: cfg.substance_label(sub, lang) for lang in ("no", "en")},
                alerts=_period_alerts(store, sub, current, tz, cfg),
                ongoing=_ongoing(store, sub, current, tz, cfg),
                notices=_period_notices(store, sub, current, tz),
            )
        )
        all_series[sub] = series
    # the spikes as they stand: not one a revision took away
    for r in store.q(f"SELECT series_key, onset FROM findings WHERE kind='spike' AND "
                     f"{FINDING_STANDS}"):
        spikes.setdefault(r["series_key"], []).append(date.fromisoformat(r["onset"]))
    from warnd.alerting.names import axis_unit, series_head, series_name

    names, shares, axes = {}, set(), {}
    for series in all_series.values():
        for s in series:
            share = s.denominators is not None and not is_score(s.metric)
            if share:
                shares.add(s.key)
            names[s.key] = {lang: series_name(cfg, s.source, s.region, s.metric, lang,
                                              share=share) for lang in ("no", "en")}
            axes[s.key] = {lang: (series_head(cfg, s.source, s.region, lang),
                                  axis_unit(s.metric, lang, share=share, config=cfg,
                                            source=s.source)) for lang in ("no", "en")}
    return Report(current, previous, tuple(tables), all_series, spikes, names,
                  frozenset(shares), _revised(store, current, previous, tz), axes,
                  data_to([s for series in all_series.values() for s in series], current))
