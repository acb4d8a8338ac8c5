"""Accounts, sessions, CSRF, login rate limit, API tokens — and the one permission check.

* **Users** (``warnd user add NAME --role viewer|operator``) have an argon2id password
  hash (argon2-cffi's defaults, RFC 9106's second recommended profile).
* **Sessions** are a signed, expiring cookie (itsdangerous, key kept in the store)
  holding the user name, a CSRF token and a fingerprint of the password hash: a
  changed password or a disabled user ends every session at the next request.
  The cookie is ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` unless
  ``[web] secure_cookies = false``.
* **CSRF**: every POST from a page carries the session's token in a hidden field and
  is refused (403) without it; the login form uses a double-submit cookie.
* **Login rate limit**: ``[web] login_attempts`` failures per user name and address
  in 15 minutes, then 429 until the window passes (kept in the process's memory).
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
import threading
import time
from collections import deque
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


class Sessions:
    def __init__(self, secret: str, max_age_s: float, secure: bool) -> None:
        self.ser = URLSafeTimedSerializer(secret, salt="warnd.session")
        self.login_ser = URLSafeTimedSerializer(secret, salt="warnd.login")
        self.max_age_s = max_age_s
        self.secure = secure

    def issue(self, response: Response, user: dict[str, Any]) -> None:
        value = self.ser.dumps({"u": user["name"], "c": secrets.token_urlsafe(24),
                                "f": _fingerprint(user["password_hash"])})
        response.set_cookie(SESSION_COOKIE, str(value), max_age=int(self.max_age_s),
                            httponly=True, samesite="lax", secure=self.secure, path="/")

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=self.secure)

    def read(self, store: Store, request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self.ser.loads(raw, max_age=self.max_age_s)
        except BadSignature:
            return None
        user = get_user(store, str(data.get("u")))
        if user is None or not hmac.compare_digest(
                _fingerprint(user["password_hash"]), str(data.get("f"))):
            return None
        return {"name": user["name"], "role": user["role"], "csrf": data["c"], "via": "web"}

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
    """Failed logins per key in a sliding window, in memory (one console process)."""

    def __init__(self, limit: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        cutoff = self.clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key)) >= self.limit

    def fail(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self.clock())
            if len(self._fails) > 10_000:  # bounded memory: forget the idle keys
                for k in [k for k, q in self._fails.items() if not q][:5000]:
                    del self._fails[k]

    def reset(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)


# -- the one permission check ----------------------------------------------------------
def allowed(principal: dict[str, Any] | None, role: str) -> bool:
    return principal is not None and RANK.get(principal["role"], 0) >= RANK[role]


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
                if request.method == "GET":
                    from urllib.parse import quote

                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query
                                              else "")
                    return RedirectResponse(f"/login?next={quote(nxt, safe='/?=&')}", 303)
                return web.error(request, None, 401, "login_needed")
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
