"""Log in and out."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from warnd.web import auth


def _safe_next(nxt: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/"
    return nxt


async def login(request: Request) -> Response:
    web = request.app.state.web
    form = await request.form() if request.method == "POST" else None
    return await web.run(_login, request, form)


def _login(request: Request, form: object) -> Response:
    web = request.app.state.web
    token, fresh = web.sessions.login_token(request)
    nxt = _safe_next(request.query_params.get("next"))
    error = None
    status = 200
    if request.method == "POST":
        f = form or {}
        name = str(f.get("user", "")).strip()[:64]
        password = str(f.get("password", ""))[:1024]
        nxt = _safe_next(str(f.get("next", "")) or nxt)
        sent = str(f.get("csrf", ""))
        client = request.client.host if request.client else "-"
        key = f"{client}|{name.lower()}"
        if not sent or not hmac.compare_digest(sent, token) or fresh:
            error, status = web.t["csrf"], 403
        elif web.logins.blocked(key):
            error, status = web.t["login_blocked"], 429
        else:
            user = auth.check_password(web.store(), name, password)
            if user is None:
                web.logins.fail(key)
                error, status = web.t["login_failed"], 401
            else:
                web.logins.reset(key)
                resp = RedirectResponse(nxt, status_code=303)
                web.sessions.issue(resp, user)
                return resp
    resp = web.page(request, None, "login.html", status=status, csrf=token, next=nxt,
                    error=error)
    web.sessions.set_login_cookie(resp, token)
    return resp


@auth.guard("viewer")
def logout(request: Request, who: dict, store: object) -> Response:
    web = request.app.state.web
    resp = RedirectResponse("/login", status_code=303)
    web.sessions.clear(resp)
    return resp
