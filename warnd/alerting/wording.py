"""Alert wording: subject and body, Norwegian by default, English selectable."""

from __future__ import annotations

import re
from typing import Any

from detectors.base import SCALE

T = {
    "no": {
        "sources": ("kilde", "kilder"),
        "notice": "Ny advarsel",
        "spike": "Enkeltstående topp",
        "decrease": "Nedgang",
        "since": "Siden",
        "agree": "Kilder som viser økning",
        "disagree": "Kilder uten økning",
        "headlines": "Siste saker og varsler",
        "spikes": "Enkeltstående topper (ikke regnet som trend)",
        "panel": "Trendpanelet, siste runde",
        "answers": "svar",
        "before_after": "nivå før {b} → etter {a} ({rel})",
        "sure": "styrke {s}, p = {p}",
        "next": "Neste steg: kvitter med `warnd alerts ack {id}` eller demp med "
        "`warnd silence add --substance {sub} --for 14d --reason ...`.",
        "escalate": "Forverring",
        "repeat": "Påminnelse",
        "detected": "oppdaget {d}",
        "resolve": "Avsluttet",
        "resolved_body": "Episoden er over: ingen av kildene viser lenger {what}.",
        "correct": "Rettelse",
        "corrected_body": "Tallene et tidligere varsel bygde på, er rettet av kilden. Med de "
        "rettede tallene viser {series} ikke lenger {what}; se bort fra det varselet.",
        "stale": "Merk: nyeste data fra {src} er fra {period} ({days} dager gamle).",
        "health": "Kilde feiler",
        "health_ok": "Kilde i orden igjen",
        "health_body": "{n} mislykkede hentinger på rad. Siste feil ({at}): {err}",
        "health_since": "Siste vellykkede henting: {at}",
        "health_next": "Sjekk kilden og loggen (`journalctl -u warnd`); `warnd status` viser "
        "tilstanden. Demp med `warnd silence add --source {src} --for 1d --reason ...`.",
        "severity": "Alvorlighet",
        "change": "Endring",
        "how_sure": "Hvor sikkert",
        "what_next": "Hva nå",
        "series": "Serie",
        "dimension": "Dimensjon",
        "words": "Vurdering",
        "test": "Dette er en testmelding fra warnd. Kom den fram, er målet satt opp riktig.",
        "test_title": "warnd: testmelding",
        "n_sources": "Kilder",
        "severities": {"info": "info", "warning": "advarsel", "critical": "kritisk"},
        "dimensions": {"use": "bruk", "availability": "tilgjengelighet", "interest": "interesse"},
    },
    "en": {
        "sources": ("source", "sources"),
        "notice": "New warning",
        "spike": "One-off spike",
        "decrease": "Decrease",
        "since": "Since",
        "agree": "Sources showing an increase",
        "disagree": "Sources without an increase",
        "headlines": "Latest articles and notices",
        "spikes": "One-off spikes (not counted as a trend)",
        "panel": "Trend panel, latest round",
        "answers": "answers",
        "before_after": "level before {b} → after {a} ({rel})",
        "sure": "strength {s}, p = {p}",
        "next": "Next: acknowledge with `warnd alerts ack {id}` or silence with "
        "`warnd silence add --substance {sub} --for 14d --reason ...`.",
        "escalate": "Escalation",
        "repeat": "Reminder",
        "detected": "detected {d}",
        "resolve": "Ended",
        "resolved_body": "The episode is over: no source shows {what} any more.",
        "correct": "Correction",
        "corrected_body": "The figures an earlier alert rested on were corrected by the "
        "source. With the corrected figures {series} no longer shows {what}; disregard that "
        "alert.",
        "stale": "Note: the newest data from {src} is from {period} ({days} days old).",
        "health": "Source failing",
        "health_ok": "Source recovered",
        "health_body": "{n} failed polls in a row. Last error ({at}): {err}",
        "health_since": "Last successful poll: {at}",
        "health_next": "Check the source and the log (`journalctl -u warnd`); `warnd status` "
        "shows its state. Silence with `warnd silence add --source {src} --for 1d --reason ...`.",
        "severity": "Severity",
        "change": "Change",
        "how_sure": "How sure",
        "what_next": "What next",
        "series": "Series",
        "dimension": "Dimension",
        "words": "Assessment",
        "test": "This is a test message from warnd. If it arrived, the target is set up right.",
        "test_title": "warnd: test message",
        "n_sources": "Sources",
        "severities": {"info": "info", "warning": "warning", "critical": "critical"},
        "dimensions": {"use": "use", "availability": "availability", "interest": "interest"},
    },
}


def _plain(text: str) -> str:
    """Feed text for a subject line: tags removed, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]*>", " ", str(text)).split())


def scale_words(category: int, lang: str) -> str:
    no, en = SCALE[int(max(-2, min(2, category)))]
    return no if lang == "no" else en


def _fmt(x: Any, nd: int = 1) -> str:
    """Numbers with ``nd`` decimals, or three significant digits when small."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:
        return "–"
    if v != 0 and abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:.{nd}f}"


def _rel(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    if x == float("inf"):
        return "fra 0"
    return f"{x * 100:+.0f} %"


def render_text(data: dict[str, Any], lang: str = "no", alert_id: int | str = "ID") -> tuple[str, str]:
    """Plain-text subject and body for an alert's data."""
    t = T.get(lang, T["no"])
    label = data.get("label") or data["substance"]
    kind = data["kind"]
    if kind == "source_health":
        src = data.get("source", "")
        if data.get("decision") == "resolve":
            return f"{t['health_ok']}: {src}", t["health_since"].format(
                at=data.get("last_success_at") or "?")
        body = "\n".join([
            t["health_body"].format(n=data.get("failures", "?"), at=data.get("last_error_at", "?"),
                                    err=data.get("last_error", "")),
            t["health_since"].format(at=data.get("last_success_at") or "–"), "",
            t["health_next"].format(src=src),
        ])
        return f"{t['health']}: {src}"[:200], body
    if kind == "digest":
        return data.get("title", "digest"), data.get("text", "")
    if kind == "notice":
        n = data["notice"]
        title = f"{t['notice']}: {label} — {_plain(n['title'])}"
        body = "\n".join(
            [f"{n['title']} ({n['published_at']})", n.get("link", ""), "", n.get("summary", ""),
             "", t["next"].format(id=alert_id, sub=data["substance"])]
        )
        return title[:200], body
    agree = data.get("agree", [])
    n_src = len({a["source"] for a in agree})
    if kind == "spike":
        head = t["spike"]
    elif data.get("direction") == "decrease":
        head = t["decrease"]
    else:
        head = scale_words(int(data.get("category", 2)), lang).capitalize()
    prefix = {"escalate": t["escalate"] + ": ", "repeat": t["repeat"] + ": ",
              "resolve": t["resolve"] + ": ", "correct": t["correct"] + ": "}.get(data.get("decision", ""), "")
    word = t["sources"][0] if n_src == 1 else t["sources"][1]
    title = f"{prefix}{head}: {label} — {n_src} {word}"
    lines = [f"{t['since']} {data.get('onset', '?')} "
             f"({t['detected'].format(d=data.get('detected_at', '?'))})", ""]
    if data.get("decision") == "resolve":
        lines += [t["resolved_body"].format(what=head.lower()), ""]
    if data.get("decision") == "correct":
        lines += [t["corrected_body"].format(
            what=head.lower(), series=", ".join(a["series"] for a in agree)), ""]
    for st in data.get("stale", []):
        lines += [t["stale"].format(src=st["source"], period=st["period"], days=st["days"])]
    if data.get("stale"):
        lines.append("")
    lines.append(f"{t['agree']}:")
    for a in agree:
        lines.append(
            f"  - {a['series']} [{a.get('dimension') or '-'}]: "
            + t["before_after"].format(
                b=_fmt(a["level_before"]), a=_fmt(a["level_after"]), rel=_rel(a["relative_change"])
            )
            + f"; {scale_words(int(a.get('category') or 0), lang)}; "
            + t["sure"].format(s=_fmt(a.get("strength"), 2), p=_fmt(a.get("p_value"), 4))
        )
    if data.get("disagree"):
        lines += ["", f"{t['disagree']}: " + ", ".join(data["disagree"])]
    if data.get("panel"):
        lines += ["", f"{t['panel']}:"]
        for pn in data["panel"]:
            n = int(pn["denominator"]) if pn.get("denominator") else "?"
            lines.append(f"  - {pn['series']} [{pn.get('dimension') or '-'}] {pn['period']}: "
                         f"{float(pn['value']):+.0f} ({n} {t['answers']})")
    if data.get("spikes"):
        lines += ["", f"{t['spikes']}:"]
        for sp in data["spikes"]:
            lines.append(f"  - {sp['series']} {sp['detected_at']}: {_fmt(sp['level_before'])} → "
                         f"{_fmt(sp['level_after'])}")
    if data.get("headlines"):
        lines += ["", f"{t['headlines']}:"]
        for h in data["headlines"]:
            lines.append(f"  - {h['published_at']} {h['title']} {h.get('link') or ''}".rstrip())
    lines += ["", t["next"].format(id=alert_id, sub=data["substance"])]
    return title[:200], "\n".join(lines)


def target_kind(url: str) -> str:
    """``email``, ``teams`` or ``text`` (any other apprise service)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("mailto", "mailtos", "email"):
        return "email"
    if scheme in ("workflows", "workflow"):
        return "teams"
    low = url.lower()
    if scheme == "https" and "/workflows/" in low and "/triggers/" in low:
        return "teams"
    return "text"
