"""Outbox: deliveries waiting, failed or expired, with their reasons; retry or drop."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from warnd.alerting import actions, outbox
from warnd.logs import redact
from warnd.web.auth import guard

#: Most deliveries the page lists (the newest); it says how many more there are.
LIMIT = 500


@guard("viewer")
def list_outbox(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    rows = store.q(
        "SELECT d.*, a.title, a.substance FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
        "WHERE d.status IN ('pending','failed','expired') ORDER BY d.alert_id DESC, d.target "
        f"LIMIT {LIMIT}")
    for r in rows:
        r["last_error"] = redact(r["last_error"]) if r["last_error"] else None
    counts = {r["status"]: r["n"] for r in store.q(
        "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")}
    # the list is the newest LIMIT: say so when more are left out (as `warnd outbox` does)
    total = outbox.count_deliveries(store) if len(rows) >= LIMIT else len(rows)
    return web.page(request, who, "outbox.html", title=web.t["outbox"], rows=rows,
                    counts=counts, total=total)


@guard("operator")
def act(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    aid, target, what = (request.path_params[k] for k in ("aid", "target", "what"))
    if what not in ("retry", "drop"):
        return web.error(request, who, 404, "not_found")
    fn = actions.retry_delivery if what == "retry" else actions.drop_delivery
    if not fn(store, aid, target, who=who["name"], via="web"):
        later = outbox.superseded(store, aid, target).get(target) if what == "retry" else None
        if later is not None:  # out of date for the target: said, and why
            return web.error(request, who, 409, "superseded", target=target, later=later)
        return web.error(request, who, 404, "not_found")
    return RedirectResponse("/outbox", status_code=303)
