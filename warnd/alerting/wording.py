"""Alert wording: subject and body, Norwegian by default, English selectable."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from detectors.base import SCALE
from warnd.alerting.names import (
    agreement,
    certainty,
    level,
    num,
    percent,
    series_name,
    source_name,
)

#: The months' names, by language (the report's periods, an end's peak month).
MONTHS = {
    "no": ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august",
           "september", "oktober", "november", "desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}

T = {
    "no": {
        "sources": ("kilde", "kilder"),
        "notice": "Ny advarsel",
        "spike": "Enkeltstående topp",
        "decrease": "Nedgang",
        "since": "Siden",
        "agree": "Kilder som viser økning",
        "agree_down": "Kilder som viser nedgang",
        "agreed": "Kilder som viste økning",
        "agreed_down": "Kilder som viste nedgang",
        "disagree": "Kilder uten økning",
        "headlines": "Siste saker og varsler",
        "spikes": "Enkeltstående topper (ikke regnet som trend)",
        "panel": "Trendpanelet, siste runde",
        "answers": "svar",
        "before_after": "nivå før {b} → etter {a} ({rel})",
        "usual_peak": "forventet med den vanlige toppen på denne tiden av året "
        "({x} × grunnlinjen)",
        "usual_peak_periods": "forventet med den vanlige toppen på denne tiden av året "
        "i {n} av {m} perioder",
        "sure": "{c} (styrke {s}, p = {p})",
        "next": "Neste steg: kvitter med `warnd alerts ack {id}` eller demp med "
        "`warnd silence add --substance {sub} --for 14d --reason ...`.",
        "next_links": "Neste steg: åpne varselet i konsollen, kvitter for at det er sett, "
        "eller demp stoffet i 14 dager (lenkene over).",
        "escalate": "Forverring",
        "grew": "Mer enn sist varslet: {parts}.",
        "grew_sources": "{n} {sources} (før {m})",
        "grew_words": "{words} (før {was})",
        "grew_change": "største endring {new} (før {old})",
        "repeat": "Påminnelse",
        "detected": "oppdaget {d}",
        "resolve": "Avsluttet",
        "next_ended": "Ingenting å gjøre: episoden er over; en ny varsles som en ny episode.",
        "next_corrected": "Ingenting å gjøre: kilden har rettet tallene; nye endringer "
        "varsles som vanlig.",
        "resolved_body": "Episoden er over: ingen av kildene viser lenger {what}.",
        "lasted": "Varte {n} {unit} ({start} – {end})",
        "peak": ("høyest", "lavest"),
        "steps": {"day": ("dag", "dager"), "week": ("uke", "uker"),
                  "month": ("måned", "måneder")},
        "week_no": "uke {n}",
        "correct": "Rettelse",
        "corrected_body": "Tallene et tidligere varsel bygde på, er rettet av kilden. Med de "
        "rettede tallene viser {series} ikke lenger {what}: se bort fra det varselet sa om "
        "denne kilden.",
        "corrected_what": {"increase": "økning", "decrease": "nedgang",
                           "spike": "en enkeltstående topp"},
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
        "overall": "Samlet vurdering: {words} — {agreement}.",
        "why_lower": "Hver kilde for seg kan vise mer; en sterk økning samlet krever flere "
        "kilder som er enige.",
        "this_source": "for denne kilden",
        "certain": "sikkerhet",
        "links": "Åpne: {open}\nKvitter: {ack}\nDemp 14 dager: {silence}",
        "open": "Åpne",
        "ack": "Kvitter",
        "silence14": "Demp 14 dager",
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
        "agree_down": "Sources showing a decrease",
        "agreed": "Sources that showed an increase",
        "agreed_down": "Sources that showed a decrease",
        "disagree": "Sources without an increase",
        "headlines": "Latest articles and notices",
        "spikes": "One-off spikes (not counted as a trend)",
        "panel": "Trend panel, latest round",
        "answers": "answers",
        "before_after": "level before {b} → after {a} ({rel})",
        "usual_peak": "expected with this time of year's usual peak ({x} × the baseline)",
        "usual_peak_periods": "expected with this time of year's usual peak in {n} of its "
        "{m} periods",
        "sure": "{c} (strength {s}, p = {p})",
        "next": "Next: acknowledge with `warnd alerts ack {id}` or silence with "
        "`warnd silence add --substance {sub} --for 14d --reason ...`.",
        "next_links": "Next: open the alert in the console, acknowledge that it was seen, "
        "or silence the substance for 14 days (the links above).",
        "escalate": "Escalation",
        "grew": "More than last told: {parts}.",
        "grew_sources": "{n} {sources} (before {m})",
        "grew_words": "{words} (before {was})",
        "grew_change": "largest change {new} (before {old})",
        "repeat": "Reminder",
        "detected": "detected {d}",
        "resolve": "Ended",
        "next_ended": "Nothing to do: the episode is over; a new one is told as a new episode.",
        "next_corrected": "Nothing to do: the source corrected its figures; further changes "
        "are told as usual.",
        "resolved_body": "The episode is over: no source shows a {what} any more.",
        "lasted": "Lasted {n} {unit} ({start} – {end})",
        "peak": ("at its highest", "at its lowest"),
        "steps": {"day": ("day", "days"), "week": ("week", "weeks"),
                  "month": ("month", "months")},
        "week_no": "week {n}",
        "correct": "Correction",
        "corrected_body": "The figures an earlier alert rested on were corrected by the "
        "source. With the corrected figures {series} no longer shows {what}: disregard what "
        "that alert said of this source.",
        "corrected_what": {"increase": "an increase", "decrease": "a decrease",
                           "spike": "a one-off spike"},
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
        "overall": "Overall: {words} — {agreement}.",
        "why_lower": "A single source may show more; a strong increase overall needs several "
        "sources that agree.",
        "this_source": "for this source",
        "certain": "certainty",
        "links": "Open: {open}\nAcknowledge: {ack}\nSilence 14 days: {silence}",
        "open": "Open",
        "ack": "Acknowledge",
        "silence14": "Silence 14 days",
        "severities": {"info": "info", "warning": "warning", "critical": "critical"},
        "dimensions": {"use": "use", "availability": "availability", "interest": "interest"},
    },
}


def _plain(text: str) -> str:
    """Feed text for a subject line: tags removed, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]*>", " ", str(text)).split())


def joined(words: list[str], lang: str) -> str:
    """Words as a list is said: "kokain", "kokain og fentanyl", "a, b og c"."""
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} {'og' if lang == 'no' else 'and'} {words[-1]}"


def substance_labels(data: dict[str, Any], config: Any, lang: str) -> str:
    """The substances an alert names, as people say them in ``lang``: a notice names
    every substance it concerns ("kokain og fentanyl"), any other alert its own. A
    configured substance by its label as configured now, in ``lang`` (a message decided
    before a reload changed ``general.language`` or the label goes in the words it is
    sent in); else as the alert was decided."""
    subs = [str(s) for s in data.get("substances") or () if s]
    if config is None:
        return str(data.get("label") or data.get("substance") or "")
    if len(subs) >= 2:
        return joined([config.substance_label(s, lang) for s in subs], lang)
    sub = str(data.get("substance") or "")
    if sub and sub in (getattr(config, "substances", None) or {}):
        return str(config.substance_label(sub, lang))
    return str(data.get("label") or sub)


def severity_words(severity: Any, lang: str) -> str:
    """An alert's severity as the messages say it ("kritisk", "critical")."""
    sev = str(severity or "")
    return str(T.get(lang, T["en"])["severities"].get(sev, sev))


def scale_words(category: int, lang: str) -> str:
    no, en = SCALE[int(max(-2, min(2, category)))]
    return no if lang == "no" else en


def split_key(key: str) -> tuple[str, str, str]:
    """``source:substance[:region][:metric]`` → (source, region, metric)."""
    parts = str(key).split(":")
    return parts[0], parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else "count"


def series_label(a: dict[str, Any] | str, config: Any, lang: str, *,
                 share: bool = False) -> str:
    """A series as people say it: source label, region name, what is measured.

    A finding's dict says itself whether the series is a share of tests (``share``);
    for a bare series key the caller says it.
    """
    if isinstance(a, str):
        src, region, metric = split_key(a)
        return series_name(config, src, region, metric, lang, share=share)
    else:
        src, region, metric = a["source"], a.get("region") or "", a.get("metric") or "count"
    return series_name(config, src, region, metric, lang, share=bool(a.get("share")))


def told_ended(data: dict[str, Any]) -> bool:
    """True for an end or a correction: its sources are told as they were (past tense)."""
    return data.get("decision") in ("resolve", "correct")


def agree_title(data: dict[str, Any], lang: str) -> str:
    """The heading of the agreeing sources: "Kilder som viser økning", for a decrease
    "… nedgang", for an end or a correction in the past tense ("Kilder som viste …")."""
    t = T.get(lang, T["no"])
    key = "agreed" if told_ended(data) else "agree"
    return str(t[key + "_down" if data.get("direction") == "decrease" else key])


def agreement_words(data: dict[str, Any], n_agree: int, lang: str) -> str:
    """How many sources agree, of all (``"2 av 3 kilder øker"``; for an end or a
    correction ``"2 av 2 kilder økte"``)."""
    return agreement(n_agree, max(n_all_sources(data), n_agree), lang,
                     data.get("direction") or "increase", past=told_ended(data))


def n_all_sources(data: dict[str, Any]) -> int:
    agree = {a["source"] for a in data.get("agree", [])}
    return len(agree | {split_key(k)[0] for k in data.get("disagree") or []})


#: A finding's evidence of its usual yearly peak, by the alert data's key: the factor of
#: a spike's period, or the periods of a trend's window that held the peak (of those
#: observed). Engine findings carry the factor only where it is above 1.
USUAL_PEAK_EVIDENCE = {"usual_peak": "recurring_factor",
                       "usual_peak_periods": "usual_peak_periods",
                       "observed_periods": "observed_periods"}


def usual_peak_fields(evidence: dict[str, Any]) -> dict[str, Any]:
    """The alert data's keys for a finding's ``evidence`` of its usual yearly peak
    (:data:`USUAL_PEAK_EVIDENCE`); {} when it has none."""
    out: dict[str, Any] = {}
    if (evidence.get("recurring_factor") or 0) > 1:
        out["usual_peak"] = evidence["recurring_factor"]
    if evidence.get("usual_peak_periods"):  # a trend: that many periods of its window
        out["usual_peak_periods"] = evidence["usual_peak_periods"]
        out["observed_periods"] = evidence.get("observed_periods")
    return out


def usual_peak(a: dict[str, Any], lang: str) -> str:
    """For a finding judged against the peak its period shows every year (New Year, a
    festival summer): that the expected level holds it, and how large it is (a spike)
    or in how many periods of the trend's window; "" for any other."""
    t = T.get(lang, T["no"])
    if a.get("usual_peak"):
        return str(t["usual_peak"].format(x=num(a["usual_peak"], lang, 1)))
    if a.get("usual_peak_periods"):
        return str(t["usual_peak_periods"].format(n=a["usual_peak_periods"],
                                                  m=a.get("observed_periods") or "?"))
    return ""


def source_line(a: dict[str, Any], config: Any, lang: str) -> str:
    """One agreeing source in words: level before → after, change, certainty."""
    t = T.get(lang, T["no"])
    share = bool(a.get("share"))
    peak = usual_peak(a, lang)
    return (f"{series_label(a, config, lang)}: "
            + t["before_after"].format(b=level(a.get("level_before"), lang, share=share),
                                       a=level(a.get("level_after"), lang, share=share),
                                       rel=percent(a.get("relative_change"), lang))
            + (f"; {peak}" if peak else "")
            + f"; {scale_words(int(a.get('category') or 0), lang)} {t['this_source']}"
            + f"; {certainty(a.get('p_value'), lang)}")


def grew_line(data: dict[str, Any], lang: str) -> str:
    """For an escalation, what grew beyond what its recipients were told before (more
    sources, a higher category, a larger change); "" for any other message."""
    before = data.get("told_before")
    if data.get("decision") != "escalate" or not before:
        return ""
    t = T.get(lang, T["no"])
    agree = data.get("agree", [])
    n = len({a["source"] for a in agree})
    rels = [abs(float(a["relative_change"])) for a in agree
            if a.get("relative_change") is not None
            and math.isfinite(float(a["relative_change"]))]
    parts = []
    if n > int(before.get("n_sources") or 0):
        parts.append(t["grew_sources"].format(n=n, sources=t["sources"][n != 1],
                                              m=int(before.get("n_sources") or 0)))
    if int(data.get("category") or 0) > int(before.get("category") or 0):
        parts.append(t["grew_words"].format(
            words=scale_words(int(data.get("category") or 0), lang),
            was=scale_words(int(before.get("category") or 0), lang)))
    old = float(before.get("magnitude") or 0)
    if rels and old > 0 and max(rels) > old:
        parts.append(t["grew_change"].format(new=percent(max(rels), lang),
                                             old=percent(old, lang)))
    return str(t["grew"].format(parts="; ".join(parts))) if parts else ""


def episode_line(data: dict[str, Any], lang: str) -> str:
    """For the end of a substance's rise (spike, fall), the episode in one line: how
    long it lasted, from its onset to its last rising period (``last_at``), in the steps
    of its series (``step``: days, weeks, months), and its peak as its reader was told
    it (``peak``: the strongest category, the largest change and the period of that
    change) — "Varte 9 uker (2026-03-02 – 2026-05-04); høyest: sterk økning, +180 %
    (uke 14)"; "" for any other message, or an end stored without them."""
    if data.get("decision") != "resolve" or data.get("kind") not in ("trend", "spike") \
            or not data.get("last_at") or not data.get("onset"):
        return ""
    t = T.get(lang, T["no"])
    step = data.get("step") if data.get("step") in t["steps"] else "week"
    try:
        start = date.fromisoformat(str(data["onset"])[:10])
        end = max(start, date.fromisoformat(str(data["last_at"])[:10]))
    except ValueError:
        return ""
    n = max(1, (end.year - start.year) * 12 + end.month - start.month if step == "month"
            else (end - start).days // (7 if step == "week" else 1))
    line = str(t["lasted"].format(n=n, unit=t["steps"][step][n != 1],
                                  start=start.isoformat(), end=end.isoformat()))
    peak = data.get("peak") or {}
    if "category" not in peak:
        return line
    words = [scale_words(int(peak["category"] or 0), lang)]
    if peak.get("change") is not None:
        words.append(percent(peak["change"], lang))
    at = _period_words(peak.get("at"), step, lang)
    high = t["peak"][data.get("direction") == "decrease" and data.get("kind") == "trend"]
    return f"{line}; {high}: {', '.join(words)}" + (f" ({at})" if at else "")


def _period_words(at: Any, step: str, lang: str) -> str:
    """A period as people name it in a series of that step: "uke 14" ("week 14"),
    "mars 2026", or the day ("" when there is none)."""
    try:
        d = date.fromisoformat(str(at)[:10])
    except ValueError:
        return ""
    t = T.get(lang, T["no"])
    if step == "week":
        return str(t["week_no"].format(n=d.isocalendar().week))
    if step == "month":
        return f"{MONTHS.get(lang, MONTHS['no'])[d.month - 1]} {d.year}"
    return d.isoformat()


def disagree_labels(data: dict[str, Any], config: Any, lang: str) -> list[str]:
    """The sources without an increase, as people say them."""
    shares = set(data.get("disagree_shares") or ())
    return [series_label(k, config, lang, share=k in shares) for k in data.get("disagree") or []]


def corrected_line(data: dict[str, Any], config: Any, lang: str) -> str:
    """For a correction, the sentence saying which told episode revised data took
    back and in which series ("" for any other decision). It names no category: with
    the corrected figures the series shows no increase at all (not merely a smaller
    one), and another source's rise told in the same alert may stand."""
    if data.get("decision") != "correct":
        return ""
    t = T.get(lang, T["no"])
    what = t["corrected_what"]["spike" if data.get("kind") == "spike"
                               else str(data.get("direction") or "increase")]
    return str(t["corrected_body"].format(
        what=what, series=", ".join(series_label(a, config, lang)
                                    for a in data.get("agree", []))))


def stale_lines(data: dict[str, Any], config: Any, lang: str) -> list[str]:
    """The sources whose newest data is unusually old: one line for the sources whose
    newest data is of one day ("… fra Brukerrommet, Google-søk og Laboratoriet er fra
    2026-03-23 (254 dager gamle)"), in the order they are listed."""
    t = T.get(lang, T["no"])
    by_day: dict[tuple[Any, Any], list[str]] = {}
    for st in data.get("stale") or []:
        by_day.setdefault((st["period"], st["days"]), []).append(
            source_name(config, st["source"], lang))
    last = " og " if lang == "no" else " and "
    return [t["stale"].format(src=names[0] if len(names) == 1 else
                              ", ".join(names[:-1]) + last + names[-1],
                              period=period, days=days)
            for (period, days), names in by_day.items()]


def next_step(data: dict[str, Any], lang: str, alert_id: Any,
              links: dict[str, str] | None) -> str:
    """What the reader can do now: the links when the message has them, else commands."""
    t = T.get(lang, T["no"])
    if data.get("kind") == "source_health":
        if data.get("decision") == "resolve":
            return ""  # recovered: nothing to check
        return str(t["health_next"].format(src=data.get("source", "")))
    if data.get("kind") == "digest":
        return ""  # a summary: nothing to acknowledge
    if data.get("decision") == "resolve":
        # the end's alert is resolved at once: acknowledging it does nothing, and a
        # silence of the substance would hold back its next rise
        return str(t["next_ended"])
    if data.get("decision") == "correct":
        # so too a correction's: it carries no acknowledge or silence link either
        return str(t["next_corrected"])
    if links:
        return str(t["next_links"])
    return str(t["next"].format(id=alert_id, sub=data.get("substance") or "..."))


def render_text(data: dict[str, Any], lang: str = "no", alert_id: int | str = "ID", *,
                config: Any = None, links: dict[str, str] | None = None,
                next_steps: bool = True) -> tuple[str, str]:
    """Plain-text subject and body for an alert's data.

    ``next_steps=False`` leaves out what to do next (the console has buttons for it).

    ``config`` gives source labels (else source names); ``links`` (open, ack,
    silence: :func:`warnd.alerting.links.action_links`) adds the console's links.
    """
    t = T.get(lang, T["no"])
    label = substance_labels(data, config, lang)
    kind = data["kind"]
    if kind == "source_health":
        src = data.get("source", "")
        # the local times (alerts stored before they were kept give the stored UTC ones)
        ok_at = data.get("last_success_at_local") or data.get("last_success_at")
        err_at = data.get("last_error_at_local") or data.get("last_error_at", "?")
        if data.get("decision") == "resolve":
            return f"{t['health_ok']}: {source_name(config, src, lang)}", t["health_since"].format(
                at=ok_at or "?")
        body = "\n".join([
            t["health_body"].format(n=data.get("failures", "?"), at=err_at,
                                    err=data.get("last_error", "")),
            t["health_since"].format(at=ok_at or "–"), "",
            t["health_next"].format(src=src),
        ])
        return f"{t['health']}: {source_name(config, src, lang)}"[:200], body
    if kind == "digest":
        return data.get("title", "digest"), data.get("text", "")
    if kind == "notice":
        n = data["notice"]
        label = substance_labels(data, config, lang)  # every substance the notice names
        title = f"{t['notice']}: {label} — {_plain(n['title'])}"
        parts = [f"{n['title']} ({n['published_at']})", n.get("link", ""), "",
                 n.get("summary", ""), ""]
        if links:
            parts += [link_lines(links, lang), ""]
        body = "\n".join([*parts, next_step(data, lang, alert_id, links) if next_steps
                          else ""]).rstrip("\n")
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
    n_all = max(n_all_sources(data), n_src)
    overall = scale_words(int(data.get("category", 2)), lang) if kind != "spike" else head.lower()
    lines = [f"{t['since']} {data.get('onset', '?')} "
             f"({t['detected'].format(d=data.get('detected_at', '?'))})",
             t["overall"].format(words=overall, agreement=agreement_words(data, n_src, lang))]
    cats = [int(a.get("category") or 0) for a in agree]
    if kind != "spike" and cats and max(cats) > int(data.get("category", 2)):
        lines.append(t["why_lower"])
    if grew := grew_line(data, lang):
        lines.append(grew)
    lines.append("")
    if data.get("decision") == "resolve":
        lines += [t["resolved_body"].format(what=head.lower()), ""]
        if ended := episode_line(data, lang):
            lines[-1:-1] = [ended]
    if data.get("decision") == "correct":
        lines += [corrected_line(data, config, lang), ""]
    stale = stale_lines(data, config, lang)
    if stale:
        lines += [*stale, ""]
    lines.append(f"{agree_title(data, lang)}:")
    for a in agree:
        lines.append(f"  - {source_line(a, config, lang)} "
                     f"[{t['dimensions'].get(a.get('dimension') or '', '-')}]")
    if data.get("disagree"):
        lines += ["", f"{t['disagree']}: "
                  + "; ".join(disagree_labels(data, config, lang))]
    if data.get("panel"):
        lines += ["", f"{t['panel']}:"]
        for pn in data["panel"]:
            n = int(pn["denominator"]) if pn.get("denominator") else "?"
            dim = t["dimensions"].get(pn.get("dimension") or "", "")
            lines.append(f"  - {series_label(pn['series'], config, lang)} [{dim}] {pn['period']}: "
                         f"{float(pn['value']):+.0f} ({n} {t['answers']})")
    if data.get("spikes"):
        lines += ["", f"{t['spikes']}:"]
        for sp in data["spikes"]:
            peak = usual_peak(sp, lang)
            lines.append(f"  - {series_label(sp, config, lang)} {sp['detected_at']}: "
                         f"{level(sp['level_before'], lang, share=bool(sp.get('share')))} → "
                         f"{level(sp['level_after'], lang, share=bool(sp.get('share')))}"
                         + (f" ({peak})" if peak else ""))
    if data.get("headlines"):
        lines += ["", f"{t['headlines']}:"]
        for h in data["headlines"]:
            lines.append(f"  - {h['published_at']} {h['title']} {h.get('link') or ''}".rstrip())
    if links:
        lines += ["", link_lines(links, lang)]
    if next_steps:
        lines += ["", next_step(data, lang, alert_id, links)]
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


def link_lines(links: dict[str, str], lang: str) -> str:
    """The console links a message carries, a line each ("Åpne: …", "Kvitter: …",
    "Demp 14 dager: …"), of those it has: an end has only "open"."""
    t = T.get(lang, T["no"])
    return "\n".join(line.format(**links) for line in t["links"].split("\n")
                     if line[line.index("{") + 1:line.index("}")] in links)
