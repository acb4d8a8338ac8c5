"""Rich alert bodies from Jinja2 templates: the email's HTML and the Teams card.

The built-in templates are ``warnd/alerting/templates/email.html.j2`` and ``teams.json.j2``;
a file of the same name in ``[alerting] templates_dir`` replaces one. Both get the
same ``view`` (see :func:`view`). Everything that comes from a feed (headlines,
notice titles and summaries, links, error messages) is data, never markup:

* the HTML template is rendered with autoescaping on, and links are only made
  clickable for ``http``/``https`` URLs;
* the card template writes every value through ``|tojson``; feed text goes into
  ``TextRun`` elements, which Teams shows verbatim (no Markdown), and links are shown
  as text. ``{{`` is broken up in the rendered card because apprise's template
  engine would otherwise substitute its own tokens there.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import jinja2

from detectors.base import SCALE
from warnd.alerting.names import certainty, level, num, p_value, percent
from warnd.alerting.told import rise_told, severity_rank, strength_sign, told_evidence
from warnd.alerting.wording import (
    T,
    agree_title,
    agreement_words,
    corrected_line,
    disagree_labels,
    episode_line,
    grew_line,
    link_lines,
    next_step,
    render_text,
    scale_words,
    series_label,
    severity_words,
    stale_lines,
    substance_labels,
    target_kind,
    usual_peak,
)

BUILTIN = Path(__file__).parent / "templates"
#: Power Automate rejects larger request bodies; stay well under them.
MAX_CARD_BYTES = 28_000
#: The longest title (email subject, card heading) sent, in UTF-8 bytes; longer ones
#: are cut and end in "…".
MAX_TITLE_BYTES = 280


class Rendered(NamedTuple):
    """What one target receives."""

    title: str
    body: str
    #: text | html | card
    body_format: str
    attachments: list[str] | None = None
    #: an email's plain-text part, written beside its HTML (``email.txt.j2``)
    text: str | None = None


@cache
def _env(templates_dir: str | None, autoescape: bool, lines: bool = False) -> jinja2.Environment:
    """Templates from ``templates_dir`` first, then the built-in ones. ``lines``: a
    block tag on its own line leaves no line behind (the plain-text template)."""
    dirs = [str(BUILTIN)]
    if templates_dir:
        dirs.insert(0, templates_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=lines,
        lstrip_blocks=lines,
    )
    env.filters["safe_url"] = safe_url
    return env


def _templates_dir(config: Any) -> str | None:
    d = config.alerting.templates_dir
    if not d:
        return None
    p = Path(d)
    return str(p if p.is_absolute() else Path(config.base_dir) / p)


def safe_url(url: Any) -> str:
    """The URL when it is a plain http(s) link, else an empty string."""
    u = str(url or "").strip()
    try:
        parsed = urlparse(u)
    except ValueError:
        return ""
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.netloc
        or any(c in u for c in " \n\r\t<>\"'")
    ):
        return ""
    return u


def view(data: dict[str, Any], config: Any, *, alert_id: Any, title: str,
         links: dict[str, str] | None = None, chart_cid: str | None = None) -> dict[str, Any]:
    """Everything a template may show, as plain values (names, units, words for people)."""
    lang = config.general.language
    t = T.get(lang, T["no"])
    kind = data.get("kind")
    agree = []
    for a in data.get("agree", []):
        agree.append(
            {
                "series": series_label(a, config, lang),
                "source": a["source"],
                "dimension": t["dimensions"].get(
                    a.get("dimension") or "", a.get("dimension") or ""
                ),
                "before": level(a.get("level_before"), lang, share=bool(a.get("share"))),
                "after": level(a.get("level_after"), lang, share=bool(a.get("share"))),
                "change": percent(a.get("relative_change"), lang),
                "words": scale_words(int(a.get("category") or 0), lang),
                "certainty": certainty(a.get("p_value"), lang),
                "strength": num(a.get("strength"), lang, 2),
                "p_value": p_value(a.get("p_value"), lang),
                "onset": a.get("onset", ""),
                "usual_peak": usual_peak(a, lang),
            }
        )
    n_sources = len({a["source"] for a in agree})
    spikes = [
        {
            "series": series_label(sp, config, lang),
            "detected_at": sp.get("detected_at", ""),
            "before": level(sp.get("level_before"), lang, share=bool(sp.get("share"))),
            "after": level(sp.get("level_after"), lang, share=bool(sp.get("share"))),
            "usual_peak": usual_peak(sp, lang),
        }
        for sp in data.get("spikes") or []
    ]
    panel = []
    for pn in data.get("panel") or []:
        try:
            value = f"{float(pn['value']):+.0f}"
        except (TypeError, ValueError, KeyError):
            value = "?"
        n = int(pn["denominator"]) if pn.get("denominator") else "?"
        panel.append(
            {
                "series": series_label(pn.get("series", ""), config, lang),
                "period": pn.get("period", ""),
                "dimension": t["dimensions"].get(pn.get("dimension") or "", ""),
                "value": value,
                "answers": f"{n} {t['answers']}",
            }
        )
    facts = []
    severity = severity_words(data.get("severity", ""), lang)
    if kind in ("trend", "spike"):
        facts = [
            (t["since"], f"{data.get('onset', '?')} "
             f"({t['detected'].format(d=data.get('detected_at', '?'))})"),
            (t["words"], scale_words(int(data.get("category") or 0), lang)),
            (t["severity"], severity),
            (
                t["n_sources"],
                agreement_words(data, n_sources, lang),
            ),
        ]
    elif kind == "source_health" and data.get("decision") != "resolve":
        facts = [(t["severity"], severity)]
    notice = data.get("notice")
    if notice:
        notice = {**notice, "href": safe_url(notice.get("link"))}
    headlines = [{**h, "href": safe_url(h.get("link"))} for h in (data.get("headlines") or [])[:5]]
    next_steps = [s for s in [next_step(data, lang, alert_id, links)] if s]
    resolved_what = (
        t["spike"] if kind == "spike"
        else t["decrease"] if data.get("direction") == "decrease"
        else scale_words(int(data.get("category") or 0), lang)
    ).lower()
    # an episode of findings ended (a source's recovery is told as such, below)
    resolved = data.get("decision") == "resolve" and kind != "source_health"
    corrected = corrected_line(data, config, lang)
    stale = stale_lines(data, config, lang)
    return {
        "lang": lang,
        "t": t,
        "title": title,
        "alert_id": alert_id,
        "kind": kind,
        "decision": data.get("decision"),
        "severity": data.get("severity"),
        "label": substance_labels(data, config, lang),
        "onset": data.get("onset"),
        "detected_at": data.get("detected_at"),
        "facts": facts,
        "agree": agree,
        "agree_title": agree_title(data, lang),
        "disagree": disagree_labels(data, config, lang),
        "links": links or {},
        "link_lines": link_lines(links, lang) if links else "",
        "chart_cid": chart_cid,
        "why_lower": (kind == "trend" and bool(agree) and max(
            int(a.get("category") or 0) for a in data.get("agree", []))
            > int(data.get("category") or 0)),
        "grew": grew_line(data, lang),
        "spikes": spikes,
        "panel": panel,
        "headlines": headlines,
        "notice": notice,
        # a failing source's failure; its recovery says since when it polls again
        "health": (data if kind == "source_health" and data.get("decision") != "resolve"
                   else None),
        "recovered": (t["health_since"].format(at=data.get("last_success_at_local")
                                               or data.get("last_success_at") or "?")
                      if kind == "source_health" and data.get("decision") == "resolve"
                      else ""),
        "digest": data if kind == "digest" else None,
        "next_steps": next_steps,
        "resolved": resolved,
        "resolved_what": resolved_what,
        "ended": episode_line(data, lang) if resolved else "",
        "corrected": corrected,
        "stale": stale,
    }


def email_html(data: dict[str, Any], config: Any, *, alert_id: Any, title: str,
               links: dict[str, str] | None = None, chart_cid: str | None = None) -> str:
    tpl = _env(_templates_dir(config), True).get_template("email.html.j2")
    return tpl.render(**view(data, config, alert_id=alert_id, title=title, links=links,
                             chart_cid=chart_cid))


def email_text(data: dict[str, Any], config: Any, *, alert_id: Any, title: str,
               links: dict[str, str] | None = None) -> str:
    """The email's plain-text part: the HTML's content as lines, links as bare URLs."""
    tpl = _env(_templates_dir(config), False, True).get_template("email.txt.j2")
    text = tpl.render(**view(data, config, alert_id=alert_id, title=title, links=links))
    # no run of blank lines, whatever a template override leaves behind
    out: list[str] = []
    for line in text.splitlines():
        line = line.rstrip() if line != "-- " else line
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def teams_card(data: dict[str, Any], config: Any, *, alert_id: Any, title: str,
               links: dict[str, str] | None = None) -> str:
    """The Adaptive Card message as JSON text, under :data:`MAX_CARD_BYTES`."""
    tpl = _env(_templates_dir(config), False).get_template("teams.json.j2")
    v = view(data, config, alert_id=alert_id, title=title, links=links)
    # Every step makes the card strictly smaller or is skipped, and there are at most
    # len(headlines) + a fixed number of them: the loop always ends.
    for _ in range(len(v["headlines"]) + 16):
        text = tpl.render(**v)
        try:
            card = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"teams.json.j2 does not render valid JSON: {e}") from None
        # ASCII only: apprise reads the template file in the locale's encoding
        out = json.dumps(card, ensure_ascii=True, separators=(",", ":")).replace("{{", "{ {")
        if len(out.encode()) <= MAX_CARD_BYTES:
            return out
        if not _shorten_card_view(v):
            break
    raise ValueError(f"the Teams card is larger than {MAX_CARD_BYTES} bytes")


def _clip(text: str, n: int) -> str:
    """``text`` cut to at most ``n`` characters, the last one an ellipsis."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _clip_bytes(text: str, n: int) -> str:
    """``text`` cut to at most ``n`` UTF-8 bytes, ending in an ellipsis when cut."""
    if len(text.encode()) <= n:
        return text
    cut = text.encode()[: n - 3].decode("utf-8", "ignore")
    return cut + "…"


def _shorten_card_view(v: dict[str, Any]) -> bool:
    """Make the card's view smaller by one step; False when nothing is left to cut.

    In turn: drop headlines, shorten the notice summary, the notice title and link,
    the disagreeing list, the agreeing list, the digest and health texts, the title.
    """
    if v["headlines"]:
        v["headlines"] = v["headlines"][:-1]
        return True
    notice = v.get("notice")
    if notice:
        for key, n in (("summary", 200), ("title", 300), ("link", 300)):
            val = str(notice.get(key) or "")
            if len(val) > n:
                v["notice"] = notice = {**notice, key: _clip(val, n)}
                return True
    if len(v["disagree"]) > 4:
        v["disagree"] = [*v["disagree"][:3], "…"]
        return True
    if len(v["agree"]) > 3:
        v["agree"] = v["agree"][:3]
        return True
    for key, field, n in (("digest", "text", 20_000), ("health", "last_error", 500)):
        doc = v.get(key)
        if doc and len(str(doc.get(field) or "")) > n:
            v[key] = {**doc, field: _clip(str(doc.get(field) or ""), n)}
            return True
    if len(v["title"]) > 300:
        v["title"] = _clip(v["title"], 300)
        return True
    return False


def as_opening(data: dict[str, Any]) -> dict[str, Any]:
    """An escalation's or a reminder's data as its episode's opening, for a target that
    had none of the episode's earlier messages (:func:`warnd.alerting.outbox.
    opens_for_target`): the same evidence, titled and told as an opening, without what
    grew beyond a message that target never had."""
    return {**{k: v for k, v in data.items() if k != "told_before"}, "decision": "open"}


def as_told(data: dict[str, Any], told: list[dict[str, Any]]) -> dict[str, Any]:
    """An end's or a correction's data as its target was told the rise: ``told`` is the
    data of the episode's messages that target had (:func:`warnd.alerting.told.
    told_to_target`), oldest first. An end of a rise names the sources those messages
    named (of those the end names), with their figures as last told to that target,
    since their earliest onset, in the words and the severity of the strongest of them,
    detected when the latest of those figures was; a correction names its series as
    last told to that target, in words and a severity no stronger than the strongest of
    them, and its peak (``peak``) as the strongest of them and the largest change they
    told. So too a spike's and a fall's (whose strongest words are its lowest). An
    escalation of a rise says what grew beyond what those messages told
    (``told_before``: :func:`warnd.alerting.told.told_evidence`), not beyond what other
    targets were told. Unchanged when that is what the data says, or when the target was
    told nothing of it (the data as stored)."""
    if not told or data.get("kind") not in ("trend", "spike"):
        return data
    if data.get("decision") == "escalate":  # what grew beyond what that target had
        if not data.get("told_before"):
            return data
        kept = set(rise_told(told)["agree"])
        withdrawn = {str(a.get("series")) for m in told if m.get("decision") == "correct"
                     for a in m.get("agree", [])} - kept
        before = told_evidence([m for m in told if m.get("decision") != "correct"],
                               withdrawn)
        return {**data, "told_before": before}
    named = [str(a.get("series")) for a in data.get("agree", [])]
    if data.get("decision") == "correct":  # the messages that rested on the series
        told = [m for m in told if m.get("decision") == "correct" or set(named) & {
            str(a.get("series")) for a in m.get("agree", [])}]
    sign = strength_sign(data.get("direction"))  # a fall's strongest is its lowest
    rise = rise_told(told, data.get("direction"))
    last, onset, category = rise["agree"], rise["onset"], rise["category"]
    heard = [last[k] for k in sorted(named) if k in last]
    stored = int(data.get("category") or 0)
    severity = rise["severity"] or data.get("severity")
    if data.get("decision") == "resolve":
        if not heard:
            return data
        # its peak as told to that target; how long it lasted is the episode's
        peak = {"category": category, "change": rise["change"], "at": rise["change_at"]}
        if "peak" in data and peak != data["peak"]:
            data = {**data, "peak": peak}
        if heard == data.get("agree") and sign * category >= sign * stored \
                and severity == data.get("severity"):
            return data
        sources = {a.get("source") for a in heard}
        detected = [str(a["detected_at"]) for a in heard if a.get("detected_at")]
        return {**data, "agree": heard, "category": category,
                "category_words": SCALE[max(-2, min(2, category))],
                "severity": severity,
                "onset": onset or data.get("onset"),
                "detected_at": max(detected) if detected else data.get("detected_at"),
                "stale": [s for s in data.get("stale") or [] if s.get("source") in sources]}
    if data.get("decision") == "correct" and len(heard) == len(named):
        category = sign * min(sign * category, sign * stored)
        severity = min(severity, data.get("severity"), key=severity_rank)
        if heard == data.get("agree") and category == stored \
                and severity == data.get("severity"):
            return data
        return {**data, "agree": heard, "category": category,
                "category_words": SCALE[max(-2, min(2, category))], "severity": severity}
    return data


def for_target(
    url: str, delivery: dict[str, Any], data: dict[str, Any], config: Any, store: Any
) -> Rendered:
    """What one target receives: title, body, body format, attachments, text part.

    * email: an HTML body, its plain-text part (``email.txt.j2``: sent as the
      text/plain alternative, :func:`warnd.alerting.send.send`) and a PNG chart
      shown inline;
    * Teams (workflows): body format ``card``: the body is the Adaptive Card JSON
      (:func:`warnd.alerting.send.send` hands it to apprise's workflows plugin as its
      template); no chart (the plugin drops attachments);
    * anything else: plain text.
    """
    lang = config.general.language
    alert_id = delivery["alert_id"]
    links = _links(config, store, alert_id)
    if data.get("decision") in ("resolve", "correct") or data.get("kind") == "digest":
        # an end or a correction: nothing to acknowledge (its alert is resolved), and
        # a silence from it would hold back the substance's next rise; a digest: a
        # summary, not an open alert, and a silence from it would hold back every
        # desk's digests; open it only
        links = {k: v for k, v in links.items() if k == "open"}
    title, text = render_text(data, lang, alert_id, config=config, links=links)
    # a title quoting a feed (a notice) can be any length, but mail servers refuse a
    # header line over 998 characters, and apprise writes the subject as one
    # quoted-printable line (up to 3 characters per UTF-8 byte)
    title = _clip_bytes(" ".join(title.split()), MAX_TITLE_BYTES)
    try:
        return _rich(url, alert_id, title, data, config, store, links)
    except Exception as e:  # e.g. a broken template override: send plain text, never nothing
        import logging

        logging.getLogger("warnd.messages").error(
            "alert=%s: rich message failed, sending plain text: %s", alert_id, e)
        return Rendered(title, text, "text")


def _links(config: Any, store: Any, alert_id: Any) -> dict[str, str]:
    """Console links (open, acknowledge, silence 14 days) when ``[web] base_url`` is set."""
    base = getattr(getattr(config, "web", None), "base_url", None)
    if not base or store is None or not str(alert_id).isdigit():
        return {}
    from warnd.alerting.links import action_links

    try:
        return action_links(store, base, int(alert_id))
    except Exception as e:  # a link problem must not stop the alert
        import logging

        logging.getLogger("warnd.messages").warning("alert=%s: no action links: %s",
                                                    alert_id, e)
        return {}


def _rich(
    url: str, alert_id: Any, title: str, data: dict[str, Any], config: Any, store: Any,
    links: dict[str, str] | None = None,
) -> Rendered:
    lang = config.general.language
    text = render_text(data, lang, alert_id, config=config, links=links)[1]
    kind = target_kind(url)
    if kind == "email":
        attachments = None
        path = None
        if config.alerting.chart and data.get("agree"):
            try:
                from warnd.alerting.charts import chart_for_alert

                path = chart_for_alert(store, data, config.state_dir / "charts",
                                       alert_id=alert_id, lang=lang, config=config)
                attachments = [str(path)] if path else None
            except Exception as e:  # a chart problem must not stop the alert
                import logging

                logging.getLogger("warnd.messages").warning(
                    "alert=%s chart not rendered: %s", alert_id, e)
        html = email_html(data, config, alert_id=alert_id, title=title, links=links,
                          chart_cid=Path(path).name if path else None)
        plain = email_text(data, config, alert_id=alert_id, title=title, links=links)
        return Rendered(title, html, "html", attachments, plain)
    if kind == "teams":
        return Rendered(title, teams_card(data, config, alert_id=alert_id, title=title,
                                          links=links), "card")
    return Rendered(title, text, "text")
