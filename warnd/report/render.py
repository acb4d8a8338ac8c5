
"""Render a :class:`warnd.report.tables.Report` as HTML (one self-contained file), Markdown or CSV.

The three formats carry the same numbers: HTML and Markdown format them for reading
(Norwegian with decimal comma), CSV gives them raw (dot decimals, empty when missing).
The CSV columns are listed in :data:`CSV_COLUMNS` and documented in ``docs/report.md``.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from detectors.base import SCALE
from detectors.params import DetectionParams
from detectors.synthesis import DIMENSIONS
from warnd.alerting.names import level, num, p_value, percent
from warnd.alerting.wording import MONTHS, severity_words
from warnd.report.tables import LABELS, Report, SourceRow, SubstanceTable

T = {
    "no": {
        "title": "Føre Var – halvårsrapport",
        "compared": "sammenlignet med",
        "generated": "laget",
        "findings": "Hovedfunn",
        "figure1": "Figur 1 – langtidstrender",
        "figure1_note": "Indeks per halvår: hver kilde delt på sitt eget snitt (= 100), "
        "snitt per dimensjon. Trendpanel og varsler er ikke med.",
        "table": "Tabell",
        "aggregated": "Aggregert differanse",
        "score": "Skår",
        "sources": "Kilder",
        "assessment": "Vurdering",
        "source": "Kilde",
        "dimension": "Dimensjon",
        "before": "Før",
        "after": "Etter",
        "change": "Endring",
        "p": "p",
        "category": "Kategori",
        "words": "Ord",
        "per_source": "Kildene",
        "alerts": "Varsler fra warnd i perioden",
        "no_alerts": "Ingen varsler i perioden.",
        "not_sent": "sendt til ingen",
        "corrected": "rettet ved",
        "revised": "Reviderte tall",
        "revised_one": "{name}: {n} {periods} i de to periodene endret av kilden etter at "
        "de først ble lest inn (sist {day})",
        "period_one": "verdi",
        "period_many": "verdier",
        "notices": "Varsler på overdosefare.no som nevner stoffet",
        "no_notices": "Ingen varsler i perioden.",
        "figure_sources": "Kildene over tid med endringspunkter og topper",
        "panel": "trendpanel: sum av svar",
        "method": "Slik er tallene regnet ut",
        "method_text": "Hver kilde sammenligner perioden med halvåret før og får en skår "
        "fra −2 (sterk nedgang) til +2 (sterk økning); trendpanelet bidrar med summen av "
        "svarene (hvert svar −2 … +2). Skårene summeres per dimensjon og samlet "
        "(aggregert differanse). En dimensjon endrer seg bare når over halvparten av "
        "kildene går samme vei. Skalaen og grensene er warnds egne (docs/report.md).",
        "total": "Aggregert differanse",
        "severity": "alvorlighet",
        "onset": "siden",
        "ongoing": "pågår fra forrige periode",
        "ended": "avsluttet",
        "not_over": "Perioden er ikke over: data til og med {day}",
    },
    "en": {
        "title": "Føre Var – half-year report",
        "compared": "compared with",
        "generated": "generated",
        "findings": "Main findings",
        "figure1": "Figure 1 – long-term trends",
        "figure1_note": "Index per half-year: each source divided by its own mean (= 100), "
        "averaged per dimension. Trend panel and warnings are left out.",
        "table": "Table",
        "aggregated": "Aggregated difference",
        "score": "Score",
        "sources": "Sources",
        "assessment": "Assessment",
        "source": "Source",
        "dimension": "Dimension",
        "before": "Before",
        "after": "After",
        "change": "Change",
        "p": "p",
        "category": "Category",
        "words": "Words",
        "per_source": "The sources",
        "alerts": "warnd alerts in the period",
        "no_alerts": "No alerts in the period.",
        "not_sent": "sent to no one",
        "corrected": "corrected by",
        "revised": "Revised figures",
        "revised_one": "{name}: {n} {periods} in the two periods changed by the source after "
        "they were first read (last on {day})",
        "period_one": "value",
        "period_many": "values",
        "notices": "Warnings on overdosefare.no naming the substance",
        "no_notices": "No warnings in the period.",
        "figure_sources": "The sources over time with change points and spikes",
        "panel": "trend panel: sum of answers",
        "method": "How the numbers are computed",
        "method_text": "Each source compares the period with the half-year before and "
        "scores from −2 (strong decrease) to +2 (strong increase); the trend panel "
        "contributes the sum of its answers (each −2 … +2). The scores are summed per "
        "dimension and overall (the aggregated difference). A dimension moves only when "
        "more than half of its sources move the same way. The scale and cut-offs are "
        "warnd's own (docs/report.md).",
        "total": "Aggregated difference",
        "severity": "severity",
        "onset": "since",
        "ongoing": "ongoing since the previous period",
        "ended": "ended",
        "not_over": "The period is not over: data up to {day}",
    },
}

CSV_COLUMNS = [
    "row_type", "substance", "substance_label", "dimension", "series", "source", "region",
    "metric", "status", "level_before", "level_after", "relative_change", "p_value",
    "category", "score", "words", "n_sources", "n_before", "n_after",
    "period_from", "period_to", "previous_from", "previous_to", "series_name",
    "revised_periods", "last_revised", "data_to",
]


# -- formatting ----------------------------------------------------------------------------

def _upper_first(text: str) -> str:
    """The text with its first letter upper-case and the rest as it is
    (``str.capitalize`` would write "October 2025 – march 2026")."""
    return text[:1].upper() + text[1:]


def period_label(p: tuple[date, date], lang: str) -> str:
    m = MONTHS[lang]
    return f"{m[p[0].month - 1]} {p[0].year} – {m[p[1].month - 1]} {p[1].year}"


def fmt_level(x: float | None, lang: str, *, share: bool = False) -> str:
    """A level as the alert messages write it (:func:`warnd.alerting.names.level`: the
    language's decimal mark and thousands separator, a share of tests in per cent);
    whole numbers without decimals."""
    if x is not None and not share and math.isfinite(x) and x == int(x):
        return num(x, lang, 0)
    return level(x, lang, share=share)


def fmt_rel(x: float | None, lang: str) -> str:
    """A relative change as the messages write it ("+54 %", "−12 %"); from nothing "+∞"."""
    return percent(x, lang)


def _signed(n: int, lang: str) -> str:
    """A score with its sign ("+2", "−3"; the minus as numbers write it in ``lang``)."""
    if not n:
        return "0"
    return f"+{n}" if n > 0 else ("−" if lang == "no" else "-") + str(-n)


def words(cat: int, lang: str) -> str:
    return SCALE[int(cat)][0 if lang == "no" else 1]


def dim_label(d: str, lang: str) -> str:
    return LABELS[lang].get(d, d)


def _row_cells(rep: Report, r: SourceRow, lang: str) -> list[str]:
    share = r.key in rep.shares
    before = fmt_level(r.level_before, lang, share=share)
    after = fmt_level(r.level_after, lang, share=share)
    change = T[lang]["panel"] if r.status == "panel" else fmt_rel(r.relative_change, lang)
    score = _signed(r.score, lang) if r.counted else "–"
    return [rep.name(r.key, lang), dim_label(r.dimension, lang), before, after, change,
            p_value(r.p_value, lang), score, r.words(lang)]


def revised_note(rep: Report, t: SubstanceTable, lang: str) -> str:
    """"Revised figures: …" for the table's series a source revised in the compared
    periods (the figures are the revised ones), or ""."""
    w = T[lang]
    said = []
    for r in t.rows:
        if r.key in rep.revised:
            n, day = rep.revised[r.key]
            said.append(w["revised_one"].format(
                name=rep.name(r.key, lang), n=n, day=day,
                periods=w["period_one"] if n == 1 else w["period_many"]))
    return f"{w['revised']}: " + "; ".join(said) + "." if said else ""


def _summary_rows(t: SubstanceTable, lang: str) -> list[list[str]]:
    out = []
    for d in DIMENSIONS:
        n = t.aggregate.sources_by_dimension.get(d, 0)
        score = _signed(t.aggregate.by_dimension.get(d, 0), lang)
        out.append([dim_label(d, lang).capitalize(), score, str(n),
                    words(t.dimension_verdicts[d].category, lang) if n else "–"])
    n = t.aggregate.n_sources
    out.append([T[lang]["total"], _signed(t.aggregate.total, lang), str(n),
                words(t.verdict.category, lang) if n else "–"])
    return out


# -- Markdown ------------------------------------------------------------------------------
def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc: Callable[[str], str] = lambda s: s.replace("|", "\\|")
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def alert_title(alert: dict[str, Any], lang: str) -> str:
    """An alert's title in the report's language where it can be said in it, else as
    stored (in ``general.language``)."""
    return str((alert.get("titles") or {}).get(lang) or alert["title"])


def corrected_by(alert: dict[str, Any], lang: str) -> str:
    """The corrections that later withdrew an alert, with their days ("rettet ved #7
    2025-10-20"), or ""."""
    said = ", ".join(f"#{i} {day}" for i, day in alert.get("corrected_by") or ())
    return f"{T[lang]['corrected']} {said}" if said else ""


def alert_notes(alert: dict[str, Any], lang: str) -> list[str]:
    """What the report says of a listed alert after its title, each in brackets: when
    its change began, that its episode goes on from the period before and the day it
    ended, that it went to no one, the corrections that withdrew it."""
    t = T[lang]
    notes = [f"{t['onset']} {alert['onset']}"] if alert.get("onset") else []
    if "ended" in alert:  # an episode opened before the period (tables._ongoing)
        notes.append(t["ongoing"])
        if alert["ended"]:
            notes.append(f"{t['ended']} {alert['ended']}")
    if alert.get("sent") is False:
        notes.append(t["not_sent"])
    if fixed := corrected_by(alert, lang):
        notes.append(fixed)
    return notes


def listed_alerts(s: SubstanceTable) -> list[dict[str, Any]]:
    """The alerts listed under a substance's table: the openings of its episodes that go
    on from the period before, then the alerts of the period; none twice."""
    return [*s.ongoing, *s.alerts]


def not_over(rep: Report, lang: str) -> str:
    """"The period is not over: data up to …" when it is not (:attr:`Report.data_to`),
    else ""."""
    return T[lang]["not_over"].format(day=rep.data_to.isoformat()) if rep.data_to else ""


def md_text(text: Any) -> str:
    """Feed text as literal Markdown: markup characters escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))


def md_link(url: Any) -> str:
    """A link shown as an autolink only when it is a plain http(s) URL; else nothing."""
    u = str(url or "").strip()
    if re.fullmatch(r"https?://[^\s<>()\[\]`]+", u):
        return f"<{u}>"
    return ""


def render_markdown(rep: Report, lang: str = "no", *, generated: date | None = None) -> str:
    t = T[lang]
    cur = period_label(rep.current, lang)
    open_ = not_over(rep, lang)  # a period not over is scored from the data so far
    lines = [f"# {t['title']}: {cur}", "",
             f"{_upper_first(cur)}, {t['compared']} {period_label(rep.previous, lang)}."
             + (f" {t['generated'].capitalize()} {generated.isoformat()}." if generated else "")
             + (f" **{open_}.**" if open_ else ""),
             "", f"## {t['findings']}", ""] + ([f"*{open_}.*", ""] if open_ else [])
    lines += [f"- **{s.name(lang)}** – {s.headline(lang).split(' – ', 1)[1]}"
              for s in rep.substances]
    lines.append("")
    for i, s in enumerate(rep.substances, 1):
        lines += [f"## {t['table']} {i} – {s.name(lang)}", "",
                  f"{t['aggregated']}, {cur}." + (f" {open_}." if open_ else ""), ""]
        lines += _md_table([t["dimension"], t["score"], t["sources"], t["assessment"]],
                           _summary_rows(s, lang))
        lines += ["", f"### {t['per_source']}", ""]
        lines += _md_table(
            [t["source"], t["dimension"], t["before"], t["after"], t["change"], t["p"],
             t["score"], t["words"]],
            [_row_cells(rep, r, lang) for r in s.rows])
        if note := revised_note(rep, s, lang):
            lines += ["", md_text(note)]
        lines += ["", f"### {t['alerts']}", ""]
        lines += [f"- #{a['id']} {a['detected_at']} \\[{severity_words(a['severity'], lang)}\\] "
                  f"{md_text(alert_title(a, lang))}"
                  + "".join(f" \\({n}\\)" for n in alert_notes(a, lang))
                  for a in listed_alerts(s)] or [t["no_alerts"]]
        lines += ["", f"### {t['notices']}", ""]
        lines += [f"- {str(n['published_at'])[:10]} {md_text(n['title'])}"
                  + (f" ({md_link(n['link'])})" if md_link(n.get("link")) else "")
                  for n in s.notices] or [t["no_notices"]]
        lines.append("")
    lines += [f"## {t['method']}", "", t["method_text"], ""]
    return "\n".join(lines)


# -- CSV -----------------------------------------------------------------------------------
def _raw(x: float | None) -> str:
    if x is not None and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x is None or not math.isfinite(x):
        return ""
    return repr(round(float(x), 6))


def render_csv(rep: Report, lang: str = "no") -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    per = {"period_from": rep.current[0].isoformat(), "period_to": rep.current[1].isoformat(),
           "previous_from": rep.previous[0].isoformat(),
           "previous_to": rep.previous[1].isoformat(),
           "data_to": rep.data_to.isoformat() if rep.data_to else ""}
    for s in rep.substances:
        sub = {"substance": s.substance, "substance_label": s.name(lang)}
        for r in s.rows:
            w.writerow({
                "row_type": "source", **sub, "dimension": r.dimension, "series": r.key,
                "source": r.source, "region": r.region, "metric": r.metric,
                "status": r.status, "level_before": _raw(r.level_before),
                "level_after": _raw(r.level_after), "relative_change": _raw(r.relative_change),
                "p_value": _raw(r.p_value), "category": r.category if r.counted else "",
                "score": r.score if r.counted else "", "words": r.words(lang),
                "n_sources": "", "n_before": r.n_before, "n_after": r.n_after, **per,
                "series_name": rep.name(r.key, lang),
                "revised_periods": rep.revised.get(r.key, (0, ""))[0],
                "last_revised": rep.revised.get(r.key, (0, ""))[1],
            })
        for d in DIMENSIONS:
            v = s.dimension_verdicts[d]
            w.writerow({"row_type": "dimension", **sub, "dimension": d, "status": "",
                        "category": v.category, "score": s.aggregate.by_dimension.get(d, 0),
                        "words": words(v.category, lang),
                        "n_sources": s.aggregate.sources_by_dimension.get(d, 0), **per})
        w.writerow({"row_type": "total", **sub, "category": s.verdict.category,
                    "score": s.aggregate.total, "words": s.headline(lang).split(" – ", 1)[1],
                    "n_sources": s.aggregate.n_sources, **per})
    return buf.getvalue()


# -- HTML ----------------------------------------------------------------------------------
CSS = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #1d1d1d;
       max-width: 1100px; margin: 1.5em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; border-bottom: 3px solid #1f5f99; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.6em; color: #1f5f99; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: .92em; }
th, td { border: 1px solid #c8ccd2; padding: .25em .6em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num.words { white-space: normal; }
thead th { background: #e8eef5; }
tr.total td { font-weight: bold; background: #f4f6f8; }
tr.dimhead td { background: #f7f3e3; font-weight: bold; }
td.cat-2 { background: #f5c6c0; } td.cat-1 { background: #fbe4e0; }
td.cat--1 { background: #e0ecf8; } td.cat--2 { background: #c3d9f0; }
td.nodata { color: #777; font-style: italic; }
ul.findings li { font-size: 1.1em; margin: .2em 0; }
figure { margin: .5em 0 1em; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: .85em; color: #555; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: .5em; }
.meta { color: #555; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  section.substance { break-before: page; }
  figure, table { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _html_table(head: list[str], rows: list[tuple[list[str], dict[int, str], str]],
                num_cols: set[int]) -> str:
    e = html.escape
    out = ["<table>", "<thead><tr>"]
    out += [f'<th{" class=num" if i in num_cols else ""}>{e(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for cells, classes, row_class in rows:
        out.append(f'<tr class="{row_class}">' if row_class else "<tr>")
        for i, c in enumerate(cells):
            cls = " ".join(x for x in ("num" if i in num_cols else "", classes.get(i, "")) if x)
            out.append(f'<td class="{cls}">{e(c)}</td>' if cls else f"<td>{e(c)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(
    rep: Report,
    lang: str = "no",
    *,
    params: DetectionParams | None = None,
    generated: date | None = None,
    charts: bool = True,
    chart_cache: Any = None,
) -> str:
    """One self-contained HTML page (inline CSS, charts as SVG data URIs).

    ``chart_cache``: a :class:`warnd.report.charts.ChartCache` that keeps charts
    drawn before (default: none, every chart is drawn).
    """
    from warnd.report import charts as rc

    cache = chart_cache if chart_cache is not None else rc.ChartCache(None)

    params = params or DetectionParams()
    t, e = T[lang], html.escape
    cur = period_label(rep.current, lang)
    open_ = not_over(rep, lang)  # a period not over is scored from the data so far
    parts = [
        "<!DOCTYPE html>", f'<html lang="{"nb" if lang == "no" else "en"}"><head>',
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(t['title'])}: {e(cur)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(t['title'])}: {e(cur)}</h1>",
        f'<p class="meta">{e(_upper_first(cur))}, {e(t["compared"])} '
        f"{e(period_label(rep.previous, lang))}."
        + (f" {e(t['generated'].capitalize())} {generated.isoformat()}." if generated else "")
        + (f' <strong class="not-over">{e(open_)}.</strong>' if open_ else "") + "</p>",
        f"<h2>{e(t['findings'])}</h2>",
        *([f'<p class="meta not-over">{e(open_)}.</p>'] if open_ else []),
        '<ul class="findings">',
    ]
    parts += [f"<li><strong>{e(s.name(lang))}</strong> – "
              f"{e(s.headline(lang).split(' – ', 1)[1])}</li>" for s in rep.substances]
    parts.append("</ul>")
    if charts:
        parts += [f"<h2>{e(t['figure1'])}</h2>", '<div class="grid">']
        for s in rep.substances:
            svg = rc.longterm_svg(cache, s.name(lang),
                                  rc.trend_index(rep.series.get(s.substance, []), params),
                                  rep.current, lang)
            parts.append(f'<figure class="longterm"><img alt="{e(t["figure1"])}: '
                         f'{e(s.name(lang))}" src="{rc.data_uri(svg)}"></figure>')
        parts.append(f'</div><p class="meta">{e(t["figure1_note"])}</p>')
    for i, s in enumerate(rep.substances, 1):
        parts += [f'<section class="substance" id="{e(s.substance)}">',
                  f"<h2>{e(t['table'])} {i} – {e(s.name(lang))}</h2>",
                  f"<h3>{e(t['aggregated'])} – {e(cur)}</h3>"]
        if open_:
            parts.append(f'<p class="meta not-over">{e(open_)}.</p>')
        srows = _summary_rows(s, lang)
        rows = []
        for j, cells in enumerate(srows):
            cat = (s.verdict if j == len(srows) - 1
                   else s.dimension_verdicts[DIMENSIONS[j]]).category
            rows.append((cells, {3: f"cat-{cat}"}, "total" if j == len(srows) - 1 else ""))
        parts.append(_html_table([t["dimension"], t["score"], t["sources"], t["assessment"]],
                                 rows, {1, 2}))
        parts.append(f"<h3>{e(t['per_source'])}</h3>")
        body: list[tuple[list[str], dict[int, str], str]] = []
        for d in DIMENSIONS:
            drows = s.rows_in(d)
            if not drows:
                continue
            body.append(([f"{dim_label(d, lang).capitalize()}", "", "", "", "", "",
                          _signed(s.aggregate.by_dimension.get(d, 0), lang), ""], {}, "dimhead"))
            for r in drows:
                cls = {7: f"cat-{r.category}" if r.counted else "nodata"}
                if r.status == "panel":  # words, not a number, in the change column
                    cls[4] = "words"
                body.append((_row_cells(rep, r, lang), cls, ""))
        parts.append(_html_table(
            [t["source"], t["dimension"], t["before"], t["after"], t["change"], t["p"],
             t["score"], t["words"]], body, {2, 3, 4, 5, 6}))
        if note := revised_note(rep, s, lang):
            parts.append(f'<p class="meta">{e(note)}</p>')
        parts.append(f"<h3>{e(t['alerts'])}</h3>")
        if listed_alerts(s):
            parts.append("<ul>" + "".join(
                f"<li>#{a['id']} {e(a['detected_at'])} "
                f"[{e(severity_words(a['severity'], lang))}] {e(alert_title(a, lang))}"
                + "".join(f" ({e(n)})" for n in alert_notes(a, lang)) + "</li>"
                for a in listed_alerts(s)) + "</ul>")
        else:
            parts.append(f"<p>{e(t['no_alerts'])}</p>")
        parts.append(f"<h3>{e(t['notices'])}</h3>")
        if s.notices:
            items = []
            for n in s.notices:
                link = str(n.get("link") or "")
                title = e(n["title"])
                if link.startswith(("http://", "https://")):
                    title = f'<a href="{e(link)}">{title}</a>'
                elif link:
                    title += f" ({e(link)})"
                items.append(f"<li>{e(str(n['published_at'])[:10])} {title}</li>")
            parts.append("<ul>" + "".join(items) + "</ul>")
        else:
            parts.append(f"<p>{e(t['no_notices'])}</p>")
        if charts and rep.series.get(s.substance):
            svg = rc.sources_svg(cache, rep.series[s.substance], rep.spikes, rep.current,
                                 rep.previous, lang, rep.panels(lang))
            parts.append(f'<figure class="sources"><img alt="{e(t["figure_sources"])}: '
                         f'{e(s.name(lang))}" src="{rc.data_uri(svg)}"><figcaption>'
                         f"{e(t['figure_sources'])} – {e(s.name(lang))}</figcaption></figure>")
        parts.append("</section>")
    parts += [f"<h2>{e(t['method'])}</h2>", f"<p>{e(t['method_text'])}</p>", "</body></html>"]
    return "\n".join(parts)


RENDERERS: dict[str, Any] = {"md": render_markdown, "csv": render_csv, "html": render_html}
