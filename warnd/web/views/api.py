"""The HTTP API for scripts (bearer tokens): alerts, acknowledge, silences, substances."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warnd.alerting import actions
from warnd.web import data
from warnd.web.auth import allowed, guard
from warnd.web.views.alerts import STATES, alert_rows, made_already, parse_silence


@guard("viewer", api=True)
def alerts(request: Request, who: dict[str, Any], store: Any) -> Response:
    state = request.query_params.get("state")
    if state and state not in STATES:
        return JSONResponse({"error": f"state must be one of {', '.join(STATES)}"}, 400)
    try:
        limit = max(1, min(int(request.query_params.get("limit", "100")), 1000))
    except ValueError:
        return JSONResponse({"error": "limit must be a number"}, 400)
    return JSONResponse(alert_rows(store, state, limit))


@guard("operator", api=True)
def ack(request: Request, who: dict[str, Any], store: Any) -> Response:
    aid = request.path_params["aid"]
    if not actions.ack_alert(store, aid, who=who["name"], via="api"):
        return JSONResponse({"error": f"no alert {aid}"}, 404)
    row = store.q("SELECT id, status, acked_at, acked_by FROM alerts WHERE id=?", [aid])[0]
    return JSONResponse(row)


@guard("viewer", api=True)
def silences(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    if request.method == "GET":
        return JSONResponse(store.silences(active_only=request.query_params.get("all") != "1"))
    if not allowed(who, "operator"):
        return JSONResponse({"error": f"role {who['role']} may not do this"}, 403)
    try:
        body = json.loads(request.state.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return JSONResponse({"error": "the body must be a JSON object"}, 400)
    now = datetime.now(UTC)
    fields, bad = parse_silence(body, web.cfg, now)
    if fields is None:
        return JSONResponse({"error": f"invalid {bad}"}, 400)
    with store.write():  # asked and added in one transaction: two at once make one
        # a call retried while the silence it made is active finds that one (as the
        # console's form does) and answers as it did: one silence to end, not two
        sid = made_already(store, fields, str(body.get("duration")).strip(), who["name"],
                           now, web.cfg.general.timezone)
        if sid is None:
            sid = actions.add_silence(store, **fields, who=who["name"], via="api", now=now)
    row = store.q("SELECT * FROM silences WHERE id=?", [sid])[0]
    return JSONResponse(row, 201)


@guard("viewer", api=True)
def substances(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    ov = data.overview(web.cfg, store)
    for r in ov["rows"]:
        r.pop("spark", None)
    return JSONResponse(ov)
