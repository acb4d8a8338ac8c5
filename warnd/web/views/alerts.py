"""Alerts: list and filter, one alert, acknowledge, silence, end a silence, action links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from warnd.alerting import actions, links
from warnd.alerting.silences import silence_end
from warnd.alerting.wording import joined, render_text, severity_words
from warnd.config import parse_duration
from warnd.store import alert_substances, iso
from warnd.web.auth import allowed, guard

#: An alert's states (``muted``: its substance muted in the configuration, recorded and
#: sent to nobody), in the order the alerts page offers them as filters.
STATES = ("open", "acked", "silenced", "muted", "resolved")
#: Longest silence the console accepts.
MAX_SILENCE = timedelta(days=365)


def alert_rows(store: Any, state: str | None, limit: int = 200) -> list[dict[str, Any]]:
    rows = store.alerts(limit=limit, status=state if state in STATES else None)
    for r in rows:
        r.pop("data", None)
    return rows


def named(cfg: Any, substances: list[str]) -> list[tuple[str, str]]:
    """The substances an alert names with their labels (a notice: every one it concerns)."""
    return [(s, cfg.substance_label(s)) for s in substances]


@guard("viewer")
def list_alerts(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    state = request.query_params.get("state") or None
    if state and state not in STATES:
        state = None
    rows = alert_rows(store, state)
    for r in rows:
        r["named"] = named(web.cfg, r["substances"])
        r["label"] = joined([label for _, label in r["named"]], web.lang)
        r["severity_words"] = severity_words(r["severity"], web.lang)
    silences = store.silences(active_only=True)
    for s in silences:
        s["label"] = web.cfg.substance_label(s["substance"]) if s["substance"] else ""
        s["source_label"] = web.cfg.source_label(s["source"]) if s["source"] else ""
    return web.page(request, who, "alerts.html", title=web.t["alerts"], rows=rows,
                    state=state, states=STATES, silences=silences,
                    substances=[(k, web.cfg.substance_label(k)) for k in web.cfg.substances])


@guard("viewer")
def show_alert(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    aid = request.path_params["aid"]
    rows = store.q("SELECT * FROM alerts WHERE id=?", [aid])
    if not rows:
        return web.error(request, who, 404, "not_found")
    a = rows[0]
    a["deliveries"] = store.q("SELECT * FROM deliveries WHERE alert_id=? ORDER BY target", [aid])
    try:
        a["data"] = json.loads(a["data"])
    except (TypeError, ValueError):
        a["data"] = {}
    a["named"] = named(web.cfg, alert_substances(a))
    a["label"] = joined([label for _, label in a["named"]], web.lang)
    if isinstance(a["data"], dict) and a["data"].get("kind"):
        # the body as the messages say it now (labels, units, shares in per cent), without
        # the commands to run: the page has the buttons
        try:
            a["body"] = render_text(a["data"], web.lang, aid, config=web.cfg,
                                    next_steps=False)[1]
        except (KeyError, TypeError, ValueError):
            pass  # an alert written by an older warnd: its stored body
    # who acknowledged it is on the page already; whether its episode goes on, not
    over = over_words(web, (actions.handled(store, aid) or {}).get("over"))
    return web.page(request, who, "alert.html", title=f"#{aid}", a=a, notes=over,
                    history=actions.history(store, alert_id=aid))


def _back(request: Request, default: str) -> str:
    nxt = str(request.state.form.get("next", "") or "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else default


@guard("operator")
def ack(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    aid = request.path_params["aid"]
    if not actions.ack_alert(store, aid, who=who["name"], via="web"):
        return web.error(request, who, 404, "not_found")
    return RedirectResponse(_back(request, f"/alerts/{aid}"), status_code=303)


def parse_silence(form: Any, cfg: Any, now: datetime
                  ) -> tuple[dict[str, Any] | None, str | None]:
    """Check a silence form or API body; ``(fields, None)`` or ``(None, what is wrong)``."""
    substance = str(form.get("substance") or "").strip() or None
    kind = str(form.get("kind") or "").strip() or None
    source = str(form.get("source") or "").strip() or None
    reason = str(form.get("reason") or "").strip()
    dur = str(form.get("duration") or "").strip()
    if not (substance or kind or source):
        return None, "substance, kind or source"
    if substance and substance not in cfg.substances:
        return None, f"substance {substance!r}"
    if source and source not in {s.name for s in cfg.sources}:
        return None, f"source {source!r}"
    if kind and kind not in ("trend", "spike", "notice", "source_health", "digest"):
        return None, f"kind {kind!r}"
    if not reason or len(reason) > 500:
        return None, "reason (1–500 characters)"
    try:
        span = parse_duration(dur)
    except ValueError:
        return None, f"duration {dur[:20]!r} (e.g. 14d, 12h)"
    if not timedelta(minutes=1) <= span <= MAX_SILENCE:
        return None, "duration (1 minute to 365 days)"
    # days and weeks end at the clock time the silence begins, in general.timezone
    return {"substance": substance, "kind": kind, "source": source, "reason": reason,
            "until": silence_end(now, dur, cfg.general.timezone)}, None


@guard("operator")
def add_silence(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    now = datetime.now(UTC)
    fields, bad = parse_silence(request.state.form, web.cfg, now)
    if fields is None:
        return web.error(request, who, 400, "bad_input", what=bad)
    aid = request.state.form.get("alert_id")
    with store.write():  # asked and added in one transaction: two at once make one
        if made_already(store, fields, str(request.state.form.get("duration")).strip(),
                        who["name"], now, web.cfg.general.timezone) is None:
            actions.add_silence(store, **fields, who=who["name"], via="web", now=now,
                                alert_id=int(aid) if aid and str(aid).isdigit() else None)
    return RedirectResponse(_back(request, "/alerts"), status_code=303)


def made_already(store: Any, fields: dict[str, Any], duration: str, who: str,
                 now: datetime, timezone: str) -> int | None:
    """The id of the silence a form (an API call) sent before made, while it is active:
    one of the same fields and reason, by the same person, as long as this one would be
    (a second click while the first was slow to answer, the page open in another tab, a
    script retrying); else None. A second one would outlive an early end of the first,
    holding back what the person meant to let through."""
    return next((
        int(s["id"]) for s in store.silences(now=now, active_only=True)
        if (s["substance"], s["kind"], s["source"], s["reason"], s["created_by"])
        == (fields["substance"], fields["kind"], fields["source"], fields["reason"], who)
        and s["until"] == iso(silence_end(datetime.fromisoformat(s["created_at"]), duration,
                                          timezone))), None)


@guard("operator")
def expire_silence(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    if not actions.expire_silence(store, request.path_params["sid"], who=who["name"],
                                  via="web"):
        return web.error(request, who, 404, "not_found")
    return RedirectResponse(_back(request, "/alerts"), status_code=303)


@guard("viewer")
def action_link(request: Request, who: dict[str, Any], store: Any) -> Response:
    """GET: a confirmation page, never an action. POST (operator, CSRF): do it."""
    web = request.app.state.web
    payload, problem = links.read(web.links_secret, request.path_params["token"],
                                  web.link_max_age)
    if payload is None:
        return web.error(request, who, 410 if problem == "expired" else 400,
                         f"link_{problem}")
    aid = int(payload["a"])
    rows = store.q("SELECT id, substance, kind, source, title, status, data FROM alerts "
                   "WHERE id=?", [aid])
    if not rows:
        return web.error(request, who, 404, "not_found")
    a = rows[0]
    subs = alert_substances(a)  # a notice: every substance it names
    label = (joined([web.cfg.substance_label(s) for s in subs], web.lang) if subs
             else a["title"])
    what = payload["do"]
    reason = f"#{aid}: {a['title']}"[:500]  # of the silences the link makes
    if request.method == "GET":
        key = "confirm_ack" if what == "ack" else "confirm_silence"
        notes = handled_notes(web, store, aid, acking=what == "ack")
        if what != "ack":  # the link followed before: confirming finds that silence
            notes += [web.t["already_silenced"].format(who=s["created_by"], until=web.when(
                s["until"])[:10]) for s in _made_by_link(store, reason)][-1:]
        return web.page(request, who, "confirm.html", title=web.t["confirm"],
                        question=web.t[key].format(id=aid, title=a["title"], label=label),
                        notes=notes, token=request.path_params["token"], a=a,
                        allowed=allowed(who, "operator"))
    if not allowed(who, "operator"):
        return web.error(request, who, 403, "forbidden")
    if what == "ack":
        actions.ack_alert(store, aid, who=who["name"], via="link")
        # a colleague's acknowledgement before this one is kept (ack_alert): name theirs
        by = store.q("SELECT acked_by FROM alerts WHERE id=?", [aid])[0]["acked_by"]
        msg = web.t["done_ack"].format(id=aid, who=by or who["name"])
    else:
        now = datetime.now(UTC)
        # SILENCE_DAYS days on the clock: it ends at the time of day it was made
        until = silence_end(now, f"{links.SILENCE_DAYS}d", web.cfg.general.timezone)
        # the alert's substance (a notice: each it names, as it is held back only when
        # all are); an alert of none (a source's failure, a digest): its kind, of its
        # source — never a silence of no field, which would match everything
        whats = ([{"substance": s} for s in subs] if subs
                 else [{"substance": None, "kind": a["kind"], "source": a["source"] or None}])
        with store.write():  # asked and added in one transaction: two at once make one
            by, ends = _silence_from_link(store, whats, until, reason, who["name"], aid, now)
        msg = web.t["done_silence"].format(label=label, who=by, until=web.when(ends)[:10])
    return web.page(request, who, "message.html", title=web.t["confirm"], message=msg,
                    link=f"/alerts/{aid}")


def handled_notes(web: Any, store: Any, aid: int, *, acking: bool) -> list[str]:
    """What became of alert ``aid`` already, in words, for one about to act on it: who
    acknowledged it and when (and, ``acking``, that confirming changes nothing), and
    whether its episode has ended or a correction withdrew it
    (:func:`warnd.alerting.actions.handled`)."""
    st = actions.handled(store, aid)
    if st is None:
        return []
    t, notes = web.t, []
    if st["acked_by"]:
        notes.append(t["already_acked"].format(who=st["acked_by"], when=web.when(
            st["acked_at"])) + (" " + t["ack_again"] if acking else ""))
    return notes + over_words(web, st["over"])


def over_words(web: Any, over: dict[str, Any] | None) -> list[str]:
    """That an alert's episode has ended, or a correction withdrew it (when told, and
    the alert that told it), in the console's words; nothing while it goes on."""
    if over is None:
        return []
    key = f"was_{over['how']}" + ("_at" if over["at"] else "")
    return [web.t[key].format(when=web.when(over["at"]), id=over["alert_id"])]


def _made_by_link(store: Any, reason: str, now: datetime | None = None
                  ) -> list[dict[str, Any]]:
    """The active silences a "Demp" link made (their ``reason`` names its alert)."""
    return [x for x in store.silences(now=now, active_only=True) if x["reason"] == reason]


def _silence_from_link(store: Any, whats: list[dict[str, Any]], until: datetime,
                       reason: str, who: str, aid: int, now: datetime) -> tuple[str, str]:
    """Silence each of ``whats`` for a "Demp" link, or find the silence the link made;
    who made the (last) one and when it ends."""
    by, ends = who, until.isoformat()
    active = _made_by_link(store, reason, now)
    for what in whats:
        # the link followed again (a second click, a colleague's copy of the message)
        # finds the silence it made, rather than adding an overlapping one
        made = [x for x in active if (x["substance"], x["kind"], x["source"])
                == (what["substance"], what.get("kind"), what.get("source"))]
        if made:
            by, ends = made[0]["created_by"] or who, made[0]["until"]
        else:
            actions.add_silence(store, **what, until=until, reason=reason, who=who,
                                via="link", alert_id=aid, now=now)
            by, ends = who, until.isoformat()
    return by, ends
