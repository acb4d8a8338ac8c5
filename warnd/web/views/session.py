"""Log in and out; a user's own sessions (``/account``): list them, end one or all others."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from warnd.store import Store
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
                web.sessions.issue(web.store(), request, resp, user)
                return resp
    resp = web.page(request, None, "login.html", status=status, csrf=token, next=nxt,
                    error=error)
    web.sessions.set_login_cookie(resp, token)
    return resp


@auth.guard("viewer")
def logout(request: Request, who: dict[str, Any], store: Store) -> Response:
    web = request.app.state.web
    auth.end_sessions(store, who["name"], session_id=who["session"], why="logout")
    resp = RedirectResponse("/login", status_code=303)
    web.sessions.clear(resp)
    return resp


@auth.guard("viewer")
def account(request: Request, who: dict[str, Any], store: Store) -> Response:
    web = request.app.state.web
    return web.page(request, who, "account.html", title=web.t["account"],
                    sessions=auth.list_sessions(store, who["name"]))


@auth.guard("viewer")
def end_session(request: Request, who: dict[str, Any], store: Store) -> Response:
    """End one of one's own sessions (ending the current one is logging out)."""
    web = request.app.state.web
    sid = request.path_params["sid"]
    if not auth.end_sessions(store, who["name"], session_id=sid, why="ended in the console"):
        return web.error(request, who, 404, "not_found")
    if sid == who["session"]:
        resp = RedirectResponse("/login", status_code=303)
        web.sessions.clear(resp)
        return resp
    return RedirectResponse("/account", status_code=303)


@auth.guard("viewer")
def end_others(request: Request, who: dict[str, Any], store: Store) -> Response:
    """End every session of one's own but this one."""
    auth.end_sessions(store, who["name"], keep=who["session"], why="ended in the console")
    return RedirectResponse("/account", status_code=303)
