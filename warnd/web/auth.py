"""Accounts, sessions, CSRF, login rate limit, API tokens — and the one permission check.

* **Users** (``warnd user add NAME --role viewer|operator``) have an argon2id password
  hash (argon2-cffi's defaults, RFC 9106's second recommended profile).
* **Sessions** are kept in the store (table ``web_sessions``: user, begun, last seen,
  expires, address, browser, ended): the cookie holds a random token (signed by
  itsdangerous with a key kept in the store, and a CSRF token beside it); the store
  only its SHA-256. A user lists and ends their sessions in the console (``/account``)
  or with ``warnd user sessions NAME`` and ``warnd user logout NAME [--session ID]``;
  logging out ends the session in the store (a copied cookie is worthless after),
  and a changed password or a disabled user ends every session of the user. The
  cookie is ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` unless
  ``[web] secure_cookies = false``.
* **CSRF**: every POST from a page carries the session's token in a hidden field and
  is refused (403) without it; the login form uses a double-submit cookie.
* **Login rate limit**: ``[web] login_attempts`` failures per user name and address
  in 15 minutes, then 429 until the window passes (kept in the store: shared by
  every console process and kept over a restart).
* **API tokens** (``warnd token create NAME --role ROLE``): 32 random bytes shown once,
  stored as their SHA-256 (a random token needs no slow hash), sent as
  ``Authorization: Bearer …``.

:func:`guard` is where every page, form and API call is checked: who is asking
(session or token), whether their role may do it, and the CSRF token of a form.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from warnd.store import Store, iso

ROLES = ("viewer", "operator")
#: What each role may do; an operator may do all a viewer may.
RANK = {"viewer": 1, "operator": 2}
SESSION_COOKIE = "warnd_session"
LOGIN_COOKIE = "warnd_login"
TOKEN_PREFIX = "wt_"
WINDOW_S = 15 * 60

_hasher = PasswordHasher()


class AuthError(Exception):
    pass


# -- users and tokens ------------------------------------------------------------------
def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(store: Store, name: str, role: str, password: str, *, update: bool = False) -> None:
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(
            ".", "").replace("@", "").isalnum():
        raise AuthError(f"{name!r} is not a valid user name (letters, digits, - _ . @)")
    if len(password) < 10:
        raise AuthError("the password must have at least 10 characters")
    h = hash_password(password)
    with store.write() as db:
        exists = db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone()
        if exists and not update:
            raise AuthError(f"user {name!r} exists (use --update to change role or password)")
        if exists:  # a new password or role: whoever is logged in logs in again
            end_sessions(store, name, why="changed")
        db.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET role=excluded.role, "
            "password_hash=excluded.password_hash, disabled_at=NULL",
            (name, role, h, iso(datetime.now(UTC))),
        )


def disable_user(store: Store, name: str) -> bool:
    with store.write() as db:
        cur = db.execute("UPDATE users SET disabled_at=? WHERE name=? AND disabled_at IS NULL",
                         (iso(datetime.now(UTC)), name))
        if cur.rowcount:
            end_sessions(store, name, why="disabled")
        return bool(cur.rowcount)


def remove_user(store: Store, name: str) -> bool:
    """Remove a user (what they did stays in the action log, under their name)."""
    with store.write() as db:
        cur = db.execute("DELETE FROM users WHERE name=?", (name,))
        if cur.rowcount:
            end_sessions(store, name, why="removed")
        return bool(cur.rowcount)


def get_user(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.q("SELECT * FROM users WHERE name=? AND disabled_at IS NULL", [name])
    return rows[0] if rows else None


def check_password(store: Store, name: str, password: str) -> dict[str, Any] | None:
    user = get_user(store, name)
    if user is None:
        _hasher.hash(password)  # same work as a real check: no timing hint
        return None
    try:
        _hasher.verify(user["password_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, role: str) -> str:
    """A new API token (returned once; only its hash is stored)."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.write() as db:
        if db.execute("SELECT 1 FROM api_tokens WHERE name=? AND revoked_at IS NULL",
                      (name,)).fetchone():
            raise AuthError(f"a token named {name!r} exists (revoke it first)")
        db.execute("DELETE FROM api_tokens WHERE name=? AND revoked_at IS NOT NULL", (name,))
        db.execute("INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES (?,?,?,?)",
                   (name, role, token_hash(token), iso(datetime.now(UTC))))
    return token


def revoke_token(store: Store, name: str) -> bool:
    with store.write() as db:
        cur = db.execute("UPDATE api_tokens SET revoked_at=? WHERE name=? AND revoked_at IS NULL",
                         (iso(datetime.now(UTC)), name))
        return bool(cur.rowcount)


def token_principal(store: Store, token: str) -> dict[str, Any] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    rows = store.q("SELECT name, role FROM api_tokens WHERE token_hash=? AND revoked_at IS NULL",
                   [token_hash(token)])
    if not rows:
        return None
    return {"name": f"token:{rows[0]['name']}", "role": rows[0]["role"], "via": "api"}


# -- sessions ----------------------------------------------------------------------------
def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(UTC)


#: A session's last-seen time is written at most this often (seconds).
SEEN_EVERY_S = 60


def end_sessions(store: Store, user: str, *, session_id: str | None = None,
                 keep: str | None = None, why: str = "logout") -> int:
    """End a user's sessions (only ``session_id``; all but ``keep``); the number ended.

    Called inside a write (a password change), it joins that transaction
    (:meth:`Store.write` nests), so the hash and the sessions change together.
    """
    sql = "UPDATE web_sessions SET ended_at=?, ended_why=? WHERE user=? AND ended_at IS NULL"
    args: list[Any] = [iso(_now()), why, user]
    if session_id is not None:
        sql += " AND id=?"
        args.append(session_id)
    if keep is not None:
        sql += " AND id<>?"
        args.append(keep)
    with store.write() as w:
        return int(w.execute(sql, args).rowcount)


def list_sessions(store: Store, user: str, *, all_: bool = False) -> list[dict[str, Any]]:
    """A user's sessions, newest first: the current ones (``all_``: ended ones too)."""
    rows = store.q(
        "SELECT id, user, created_at, last_seen_at, expires_at, address, agent, ended_at, "
        "ended_why FROM web_sessions WHERE user=? ORDER BY created_at DESC, id", [user])
    now = iso(_now())
    for r in rows:
        r["state"] = ("ended" if r["ended_at"] else "expired" if r["expires_at"] <= now
                      else "active")
    return rows if all_ else [r for r in rows if r["state"] == "active"]


class Sessions:
    """Sessions kept in the store: the cookie holds a signed random token, the store
    its hash with the user, when it began and ends, and where it came from."""

    def __init__(self, secret: str, max_age_s: float, secure: bool) -> None:
        self.ser = URLSafeTimedSerializer(secret, salt="warnd.session")
        self.login_ser = URLSafeTimedSerializer(secret, salt="warnd.login")
        self.max_age_s = max_age_s
        self.secure = secure

    def issue(self, store: Store, request: Request, response: Response,
              user: dict[str, Any]) -> str:
        """Begin a session for ``user``; its id (what ``warnd user sessions`` shows)."""
        from datetime import timedelta

        token = secrets.token_urlsafe(32)
        sid = secrets.token_hex(6)
        now = _now()
        with store.write() as db:
            db.execute(
                "INSERT INTO web_sessions (id, token_hash, user, fingerprint, created_at, "
                "expires_at, last_seen_at, address, agent) VALUES (?,?,?,?,?,?,?,?,?)",
                (sid, token_hash(token), user["name"], _fingerprint(user["password_hash"]),
                 iso(now), iso(now + timedelta(seconds=self.max_age_s)), iso(now),
                 request.client.host if request.client else None,
                 (request.headers.get("user-agent") or "")[:200] or None))
            # a session ended or expired a while ago is history no one reads: forget it
            db.execute("DELETE FROM web_sessions WHERE COALESCE(ended_at, expires_at) < ?",
                       (iso(now - timedelta(days=30)),))
        value = self.ser.dumps({"s": token, "c": secrets.token_urlsafe(24)})
        response.set_cookie(SESSION_COOKIE, str(value), max_age=int(self.max_age_s),
                            httponly=True, samesite="lax", secure=self.secure, path="/")
        return sid

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=self.secure)

    def read(self, store: Store, request: Request) -> dict[str, Any] | None:
        """Who the session cookie belongs to, while its session is neither ended nor
        expired, its user active and their password unchanged."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self.ser.loads(raw, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("s"), str):
            return None
        now = _now()
        rows = store.q("SELECT id, user, fingerprint, last_seen_at FROM web_sessions "
                       "WHERE token_hash=? AND ended_at IS NULL AND expires_at > ?",
                       [token_hash(data["s"]), iso(now)])
        if not rows:
            return None
        sess = rows[0]
        user = get_user(store, sess["user"])
        if user is None or not hmac.compare_digest(
                _fingerprint(user["password_hash"]), sess["fingerprint"]):
            return None
        if (now - datetime.fromisoformat(sess["last_seen_at"])).total_seconds() > SEEN_EVERY_S:
            with store.write() as db:
                db.execute("UPDATE web_sessions SET last_seen_at=? WHERE id=?",
                           (iso(now), sess["id"]))
        return {"name": user["name"], "role": user["role"], "csrf": data["c"], "via": "web",
                "session": sess["id"]}

    # login form: double-submit token (no session yet)
    def login_token(self, request: Request) -> tuple[str, bool]:
        raw = request.cookies.get(LOGIN_COOKIE)
        if raw:
            try:
                return str(self.login_ser.loads(raw, max_age=3600)), False
            except BadSignature:
                pass
        return secrets.token_urlsafe(24), True

    def set_login_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(LOGIN_COOKIE, str(self.login_ser.dumps(token)), max_age=3600,
                            httponly=True, samesite="strict", secure=self.secure, path="/")


class RateLimit:
    """Failed logins per key in a sliding window, kept in the store (table
    ``login_failures``): every console process sees the same count, and a restart
    forgets nothing. Rows older than the window are deleted as new ones come."""

    #: Most failures kept at all (the oldest go first): the table stays small.
    MAX_ROWS = 100_000

    def __init__(self, limit: int, store: Callable[[], Store], window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self.store = store

    def blocked(self, key: str) -> bool:
        n = self.store().q("SELECT COUNT(*) AS n FROM login_failures WHERE key=? AND at>?",
                           [key, self.clock() - self.window_s])[0]["n"]
        return bool(n >= self.limit)

    def fail(self, key: str) -> None:
        now = self.clock()
        with self.store().write() as db:
            db.execute("INSERT INTO login_failures (key, at) VALUES (?,?)", (key, now))
            db.execute("DELETE FROM login_failures WHERE at<=?", (now - self.window_s,))
            db.execute("DELETE FROM login_failures WHERE rowid <= (SELECT MAX(rowid) FROM "
                       "login_failures) - ?", (self.MAX_ROWS,))

    def reset(self, key: str) -> None:
        with self.store().write() as db:
            db.execute("DELETE FROM login_failures WHERE key=?", (key,))


# -- the one permission check ----------------------------------------------------------
def allowed(principal: dict[str, Any] | None, role: str) -> bool:
    return principal is not None and RANK.get(principal["role"], 0) >= RANK[role]


def _form_page(request: Request, form: Any) -> str:
    """The page a form was sent from, to show again after a login: its ``next`` field,
    an action link's confirmation (its GET never acts), one alert, or the page of the
    form's kind."""
    nxt = str((form or {}).get("next") or "")
    if nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    path = request.url.path
    if path.startswith("/a/"):
        return path
    parts = path.split("/")
    if parts[1] == "alerts" and len(parts) > 2:
        return f"/alerts/{parts[2]}"
    return {"silences": "/alerts", "outbox": "/outbox", "account": "/account"}.get(
        parts[1], "/")


def guard(role: str = "viewer", *, api: bool = False) -> Callable[..., Any]:
    """Decorate a view: who is asking, may they, and (forms) is the CSRF token right.

    Pages: no session → redirect to the login page; API: no valid bearer token → 401.
    A role below ``role`` → 403. A page POST without the session's CSRF token → 403.
    The view is called as ``view(request, who, store)``.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        async def endpoint(request: Request) -> Response:
            web = request.app.state.web
            form = None
            if request.method == "POST":
                if api:
                    request.state.body = await request.body()
                else:
                    form = await request.form()
            return await web.run(_checked, request, form)

        def _checked(request: Request, form: Any) -> Response:
            web = request.app.state.web
            web.refresh()  # the config as the daemon runs it, after an edit and a reload
            store = web.store()
            if api:
                auth = request.headers.get("authorization", "")
                scheme, _, tok = auth.partition(" ")
                who = token_principal(store, tok.strip()) if scheme.lower() == "bearer" else None
                if who is None:
                    return JSONResponse({"error": "a valid bearer token is needed"},
                                        status_code=401,
                                        headers={"WWW-Authenticate": 'Bearer realm="warnd"'})
                if not allowed(who, role):
                    return JSONResponse({"error": f"role {who['role']} may not do this"},
                                        status_code=403)
                return view(request, who, store)
            who = web.sessions.read(store, request)
            if who is None:
                from urllib.parse import quote

                if request.method == "GET":
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query
                                              else "")
                    return RedirectResponse(f"/login?next={quote(nxt, safe='/?=&')}", 303)
                # a form sent after the session ended (it expired while the page was
                # open): nothing is done; the way to log in leads back to the page
                return web.page(request, None, "message.html", status=401, title="401",
                                message=web.t["login_needed"], link_text=web.t["login"],
                                link=f"/login?next={quote(_form_page(request, form))}")
            if not allowed(who, role):
                return web.error(request, who, 403, "forbidden")
            if request.method == "POST":
                sent = str((form or {}).get("csrf", ""))
                if not sent or not hmac.compare_digest(sent, who["csrf"]):
                    return web.error(request, who, 403, "csrf")
                request.state.form = form
            return view(request, who, store)

        return endpoint

    return wrap
