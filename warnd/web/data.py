"""What the console's pages show, read from the store.

* :func:`overview` — the live Føre Var table: per substance the five-step score of
  each source over the findings seen or recorded in the latest weeks of data (the
  digest's window) and the open episodes, summed per dimension and
  overall (:func:`detectors.synthesis.aggregate` through
  :func:`warnd.alerting.digest.build`, the same numbers as the digest), the verdict
  in words, the number of agreeing sources, open alerts and a small trend line.
* :func:`substance_page` — every series of one substance with the expected level and
  its 95 % band, the spike threshold, change points and the onset of its findings,
  as chart data.

The expected band comes from the detector's own baseline
(:func:`detectors.engine.expected_levels`, the fits the engine judges with): for counts the
expected count ± 1.96 predictive standard deviations, for continuous values the
same on the log scale transformed back. The threshold line is the upper
``1 − spike_alpha`` predictive quantile (normal approximation): a value above it
is unusual enough for a spike when the engine's other spike rules also hold.
Change points are :func:`detectors.changepoints.segment`'s on the whole series with its
dates (so a season is handled), exactly as ``warnd changepoints`` finds them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from detectors.base import SCALE
from warnd.alerting import digest
from warnd.alerting.charts import expected_band
from warnd.alerting.names import axis_unit, region_name
from warnd.config import Config
from warnd.store import FINDING_STANDS, NAMES_SUBSTANCE, Store

#: Periods in an overview trend line.
SPARK_PERIODS = 52
#: Charts drawn on a substance page (series with findings first); the rest are listed.
MAX_CHARTS = 16
#: Periods in a substance chart.
CHART_PERIODS = 260
DIMS = ("use", "availability", "interest")


def _epoch(d: date) -> int:
    return int(datetime.combine(d, time(0), tzinfo=UTC).timestamp())


def newest_period(store: Store) -> date | None:
    """The newest period a finding was seen in (the end of the overview window).

    Findings carry data dates, so a store replaying old data shows its own latest
    weeks, not an empty table.
    """
    row = store.q("SELECT MAX(last_seen_at) AS f FROM findings")[0]
    obs = store.q("SELECT MAX(last_period) AS p FROM series WHERE source IN "
                  "(SELECT DISTINCT source FROM findings)")[0] if row["f"] else {"p": None}
    cands = [x[:10] for x in (row["f"], obs["p"]) if x]
    return date.fromisoformat(max(cands)) if cands else None


def source_series(store: Store, source: str, substance: str) -> list[tuple[str, str]]:
    """``(region, metric)`` of a source's series of a substance (primary key order)."""
    return [(r["region"], r["metric"]) for r in store.q(
        "SELECT region, metric FROM series WHERE source=? AND substance=? "
        "ORDER BY region, metric", [source, substance])]


def has_denominator(store: Store, source: str, substance: str, region: str,
                    metric: str) -> bool:
    """True for a series of positives with the number of tests: its level is a share."""
    from detectors.base import is_score

    return not is_score(metric) and store.has_denominator((source, substance, region, metric))


def _recent(store: Store, source: str, substance: str, region: str, metric: str,
            n: int) -> list[tuple[str, float]]:
    rows = store.q(
        "SELECT period, value, denominator FROM observations WHERE source=? AND substance=? "
        "AND region=? AND metric=? ORDER BY period DESC LIMIT ?",
        [source, substance, region, metric, n])
    out = []
    for r in reversed(rows):
        v = r["value"]
        if r["denominator"]:
            v = v / r["denominator"]
        out.append((r["period"], float(v)))
    return out


def sparkline(lines: list[list[float]], width: int = 120, height: int = 28) -> str:
    """An inline SVG of up to six lines, each scaled to its own range (shape, not size)."""
    paths = []
    colours = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6")
    for i, ys in enumerate(lines[:6]):
        ys = [y for y in ys if np.isfinite(y)]
        if len(ys) < 2:
            continue
        lo, hi = min(ys), max(ys)
        span = (hi - lo) or 1.0
        step = width / (len(ys) - 1)
        pts = " ".join(f"{j * step:.1f},{height - 2 - (y - lo) / span * (height - 4):.1f}"
                       for j, y in enumerate(ys))
        paths.append(f'<polyline fill="none" stroke="{colours[i % 6]}" stroke-width="1.2" '
                     f'points="{pts}"/>')
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-hidden="true">{"".join(paths)}</svg>')


def overview(cfg: Config, store: Store) -> dict[str, Any]:
    lang = cfg.general.language
    end = newest_period(store)
    if end:
        # the findings of the window shown (seen or recorded in it), not every finding
        # recorded since the last digest: without one sent, that is all of them, and a
        # rise that ended years ago would be shown as now
        until = datetime.combine(end, time(23, 59), tzinfo=UTC)
        since = datetime.combine(digest.data_window_start(cfg, until), time(0), tzinfo=UTC)
        data = digest.build(cfg, store, end=until, since=since)
    else:
        data = {"substances": [], "since": None, "until": None}
    by_sub = {s["substance"]: s for s in data["substances"]}
    # a notice counts under every substance it names
    open_alerts = {r["substance"]: r["n"] for r in store.q(
        "SELECT COALESCE(j.value, a.substance) AS substance, COUNT(*) AS n FROM alerts a "
        "LEFT JOIN json_each(CASE WHEN a.kind='notice' THEN a.data END, '$.substances') j "
        "WHERE a.status='open' GROUP BY 1")}
    rows = []
    sources = [s.name for s in cfg.sources]
    for sid in list(cfg.substances) + sorted(set(by_sub) - set(cfg.substances)):
        d = by_sub.get(sid)
        cat = d["category"] if d else 0
        lines = []
        for src in sources:
            first = store.q("SELECT region, metric FROM observations WHERE source=? AND "
                            "substance=? LIMIT 1", [src, sid])
            if first:
                region, metric = first[0]["region"], first[0]["metric"]
                lines.append([v for _, v in _recent(store, src, sid, region, metric,
                                                    SPARK_PERIODS)])
            if len(lines) >= 6:
                break
        agreeing = sum(1 for c in (d["sources"].values() if d else ()) if c > 0)
        rows.append({
            "substance": sid,
            "label": cfg.substance_label(sid),
            "by_dimension": {k: (d["by_dimension"].get(k, 0) if d else 0) for k in DIMS},
            "sources_by_dimension": {k: (d["sources_by_dimension"].get(k, 0) if d else 0)
                                     for k in DIMS},
            "total": d["total"] if d else 0,
            "n_sources": d["n_sources"] if d else 0,
            "n_agree": agreeing,
            "category": cat,
            "words": SCALE[cat][0 if lang == "no" else 1],
            "sources": d["sources"] if d else {},
            "open_alerts": open_alerts.get(sid, 0),
            "spark": sparkline(lines),
        })
    return {"since": data.get("since"), "until": data.get("until"), "rows": rows}


# -- substance page ------------------------------------------------------------------------
def _clean(a: np.ndarray | None, scale: float = 1.0) -> list[float | None]:
    if a is None:
        return []
    return [None if not np.isfinite(v) else round(float(v) * scale, 4) for v in a]


#: Chart data kept per series until its observations or findings change (bounded).
_CACHE: dict[tuple[Any, ...], dict[str, Any] | None] = {}
_CACHE_MAX = 256


def chart_data(cfg: Config, store: Store, source: str, substance: str, region: str,
               metric: str, findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Chart data of one series, cached until its data or findings change."""
    stamp = store.q(
        "SELECT COUNT(*) AS n, MAX(updated_at) AS u FROM observations WHERE source=? AND "
        "substance=? AND region=? AND metric=?", [source, substance, region, metric])[0]
    key = (str(store.path), id(cfg), source, substance, region, metric, stamp["n"], stamp["u"],
           tuple(sorted((f["kind"], f["onset"]) for f in findings)))
    if key in _CACHE:
        return _CACHE[key]
    out = _chart_data(cfg, store, source, substance, region, metric, findings)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = out
    return out


def _chart_data(cfg: Config, store: Store, source: str, substance: str, region: str,
                metric: str, findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    from detectors.changepoints import segment

    lang = cfg.general.language
    s = store.load_series(source, substance, region, metric)
    if len(s.periods) == 0:
        return None
    n = min(len(s.periods), CHART_PERIODS)
    share = s.denominators is not None
    scale = 100.0 if share else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        level = (np.where(s.denominators > 0, s.values / s.denominators, np.nan)
                 if share else np.asarray(s.values, float))
    band = expected_band(s, cfg.detection_params(substance, source))
    # the whole series with its dates, as `warnd changepoints` segments it (a season
    # removed where there is one); the chart shows those in its window
    seg = segment(level, s.periods)
    first = len(s.periods) - n
    periods = list(s.periods)[-n:]
    onsets = sorted({f["onset"] for f in findings if f["kind"] == "trend"})
    spikes = sorted({f["onset"] for f in findings if f["kind"] == "spike"})
    return {
        "id": f"c{abs(hash((source, region, metric))) % 10**9}",
        "source": source,
        "source_label": cfg.source_label(source),
        "region": region_name(region, lang),
        "region_code": region,
        "metric": metric,
        "unit": axis_unit(metric, lang, share=share, config=cfg, source=source),
        "x": [_epoch(p) for p in periods],
        "y": _clean(level[-n:], scale),
        "expected": _clean(band["expected"][-n:], scale) if band else [],
        "lo": _clean(band["lo"][-n:], scale) if band else [],
        "hi": _clean(band["hi"][-n:], scale) if band else [],
        "thr": _clean(band["thr"][-n:], scale) if band else [],
        "changepoints": [_epoch(s.periods[i]) for i in seg.change_points if i >= first],
        "onsets": [_epoch(date.fromisoformat(o)) for o in onsets
                   if date.fromisoformat(o) >= periods[0]],
        "spikes": [_epoch(date.fromisoformat(o)) for o in spikes
                   if date.fromisoformat(o) >= periods[0]],
        "newest": periods[-1].isoformat(),
        "n": len(periods),
    }


def substance_page(cfg: Config, store: Store, substance: str, *, light: bool = False
                   ) -> dict[str, Any]:
    lang = cfg.general.language
    # as they stand: not those a revision took away (the series judged again no longer
    # gives them)
    findings = store.q(
        f"SELECT * FROM findings WHERE substance=? AND {FINDING_STANDS} "
        "ORDER BY detected_at DESC, key LIMIT 200", [substance])
    by_series: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in findings:
        by_series.setdefault((f["source"], f["region"], f["metric"]), []).append(f)
    keys = []
    for src in cfg.sources:
        for region, metric in source_series(store, src.name, substance):
            keys.append((src.name, region, metric))
    newest = max((f["last_seen_at"] for f in findings), default="")
    # series with recent findings first, then the rest in configuration order
    def rank(k: tuple[str, str, str]) -> tuple[int, str]:
        fs = by_series.get(k, [])
        last = max((f["last_seen_at"] for f in fs), default="")
        return (0 if fs and last >= newest[:7] else 1 if fs else 2, "")

    ordered = sorted(keys, key=rank)
    if light:
        return {"keys": ordered[:MAX_CHARTS]}
    shares = {k for k in ordered[:MAX_CHARTS] if has_denominator(store, k[0], substance, *k[1:])}
    # the chart data itself is fetched by the page, one request per chart (chart_data)
    charts = [{"n": i, "source": k[0], "source_label": cfg.source_label(k[0]),
               "region": region_name(k[1], lang),
               "unit": axis_unit(k[2], lang, share=k in shares, config=cfg, source=k[0]),
               "n_findings": len(by_series.get(k, []))}
              for i, k in enumerate(ordered[:MAX_CHARTS])]
    for f in findings[:40]:
        k = (f["source"], f["region"], f["metric"])
        f["share"] = k in shares if k in ordered[:MAX_CHARTS] else has_denominator(
            store, f["source"], substance, f["region"], f["metric"])
    rest = [{"source_label": cfg.source_label(k[0]), "region": region_name(k[1], lang),
             "unit": axis_unit(k[2], lang, config=cfg, source=k[0])}
            for k in ordered[MAX_CHARTS:]]
    headlines = store.q(
        "SELECT i.published_at, i.title, i.link, i.kind, i.source FROM items i "
        "JOIN item_substances s ON s.key = i.key WHERE s.substance=? "
        "ORDER BY i.published_at DESC LIMIT 15", [substance])
    messages = store.q(
        "SELECT id, created_at, kind, severity, status, title, acked_at, acked_by "
        f"FROM alerts WHERE {NAMES_SUBSTANCE} ORDER BY id DESC LIMIT 50", [substance] * 2)
    for m in messages:
        m["deliveries"] = store.q(
            "SELECT target, status, attempts, delivered_at FROM deliveries WHERE alert_id=? "
            "ORDER BY target", [m["id"]])
    return {"findings": findings[:40], "charts": charts, "rest": rest,
            "headlines": headlines, "messages": messages, "keys": ordered[:MAX_CHARTS],
            "by_series": by_series}


def chart_for(cfg: Config, store: Store, substance: str, n: int) -> dict[str, Any] | None:
    """The data of chart ``n`` of a substance page (same order as the page)."""
    findings = store.q("SELECT source, region, metric, kind, onset FROM findings "
                       f"WHERE substance=? AND {FINDING_STANDS}", [substance])
    by_series: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in findings:
        by_series.setdefault((f["source"], f["region"], f["metric"]), []).append(f)
    page_keys = _ordered_keys(cfg, store, substance)
    if not 0 <= n < min(len(page_keys), MAX_CHARTS):
        return None
    k = page_keys[n]
    return chart_data(cfg, store, k[0], substance, k[1], k[2], by_series.get(k, []))


def _ordered_keys(cfg: Config, store: Store, substance: str) -> list[tuple[str, str, str]]:
    return substance_page(cfg, store, substance, light=True)["keys"]


def since(days: int) -> timedelta:
    return timedelta(days=days)
