"""The console application: ``warnd web`` (Starlette + uvicorn, Jinja2 templates).

:func:`build_app` makes the ASGI application for a configuration; :func:`serve`
runs it with uvicorn. The routes are listed here; the views live in
:mod:`warnd.web.views` (one module per page family) and every permission check in
:func:`warnd.web.auth.guard`. The console reads and writes the daemon's SQLite store
(WAL mode: both work at the same time), one connection per worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from warnd.alerting.localtime import local_day, wall_clock
from warnd.alerting.names import num, p_value, percent
from warnd.config import Config, config_files, load_config, parse_duration, parse_listen
from warnd.errors import ConfigError
from warnd.store import Store
from warnd.web import auth
from warnd.web.i18n import texts

log = logging.getLogger("warnd.web")
HERE = Path(__file__).parent

#: Sent with every response: no framing, no inline script, no referrer (links carry tokens).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Web:
    """What every view needs: config, a store per thread, templates, sessions."""

    def when(self, text: str | None) -> str:
        """A stored time (ISO, UTC) as staff read it: in ``general.timezone``, to the
        minute, with the zone's short name ("2026-10-26 08:00 CET"), as the commands
        print it (:func:`warnd.alerting.localtime.wall_clock`)."""
        return wall_clock(text, self.tz) if text else ""

    def day(self, text: str | None) -> str:
        """The date of a stored time (ISO, UTC) in ``general.timezone``: an item published
        00:30 Oslo time is of that day, not of the day before in UTC
        (:func:`warnd.alerting.localtime.local_day`)."""
        return local_day(text, self.tz) if text else ""

    def __init__(self, cfg: Config, *, secure_cookies: bool | None = None) -> None:
        self.cfg = cfg
        self.lang = cfg.general.language
        self.tz = ZoneInfo(cfg.general.timezone)
        self.t = texts(self.lang)
        self._local = threading.local()
        self._reload_lock = threading.Lock()
        self._secure_cookies = secure_cookies
        self._files = self._stamp(config_files(cfg.path))
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["num"] = lambda x, d=1: num(x, self.lang, d)
        self.env.filters["pct"] = lambda x: percent(x, self.lang)
        # a p-value as every text writes it ("0,012", "<0,001")
        self.env.filters["pval"] = lambda p: p_value(p, self.lang)
        self.env.filters["signed"] = lambda x: (f"+{x}" if x > 0 else
                                                (f"−{-x}" if x < 0 else "0"))
        self.env.filters["when"] = self.when
        self.env.filters["day"] = self.day
        self.env.globals.update(t=self.t, lang=self.lang)
        store = self.store()
        secure = cfg.web.secure_cookies if secure_cookies is None else secure_cookies
        self.sessions = auth.Sessions(
            store.secret_key("sessions"),
            parse_duration(cfg.web.session_lifetime).total_seconds(), secure)
        self.links_secret = store.secret_key("action-links")
        self.link_max_age = parse_duration(cfg.web.link_lifetime).total_seconds()
        self.logins = auth.RateLimit(cfg.web.login_attempts, self.store)

    @staticmethod
    def _stamp(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
        """Each file's name, size and modification time (-1 for one that is not there)."""
        out = []
        for f in files:
            try:
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(f), -1, -1))
        return tuple(out)

    def refresh(self) -> None:
        """Read the config again when its files changed since it was read (the daemon
        reloaded with an edited file): the console names, lists and accepts the
        substances, sources and settings the daemon runs with. A config that does not load,
        or names another state directory, leaves the running one in place (logged)."""
        files = [Path(name) for name, _, _ in self._files]
        if self._stamp(files) == self._files:
            return
        with self._reload_lock:
            if self._stamp(files) == self._files:
                return  # another request read it
            self._files = self._stamp(config_files(self.cfg.path))
            try:
                cfg = load_config(self.cfg.path)
            except ConfigError as e:
                log.warning("config changed but not read again, keeping the running config: "
                            "%s", e)
                return
            if cfg.state_dir != self.cfg.state_dir:
                log.warning("config changed but not read again: another state directory "
                            "needs a restart of the console")
                return
            self.cfg, self.lang = cfg, cfg.general.language
            self.tz, self.t = ZoneInfo(cfg.general.timezone), texts(cfg.general.language)
            self.env.globals.update(t=self.t, lang=self.lang)
            self.sessions.max_age_s = parse_duration(cfg.web.session_lifetime).total_seconds()
            if self._secure_cookies is None:
                self.sessions.secure = cfg.web.secure_cookies
            self.link_max_age = parse_duration(cfg.web.link_lifetime).total_seconds()
            self.logins.limit = cfg.web.login_attempts
            log.info("config read again from %s", cfg.path)

    def store(self) -> Store:
        s = getattr(self._local, "store", None)
        if s is None:
            busy = parse_duration(self.cfg.general.store_busy_timeout).total_seconds()
            s = self._local.store = Store.in_dir(self.cfg.state_dir, timeout=busy)
        return s

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    def page(self, request: Request, who: dict[str, Any] | None, name: str,
             status: int = 200, **ctx: Any) -> HTMLResponse:
        tpl = self.env.get_template(name)
        html = tpl.render(request=request, who=who, path=request.url.path,
                          can_act=auth.allowed(who, "operator"), **ctx)
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, who: dict[str, Any] | None, status: int, key: str,
              **fmt: Any) -> Response:
        msg = self.t[key].format(**fmt) if fmt else self.t[key]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": msg}, status_code=status)
        return self.page(request, who, "message.html", status=status, message=msg,
                         title=str(status))


def _headers(app: Any) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for k, v in SECURITY_HEADERS.items():
                    headers.append((k.lower().encode(), v.encode()))
                if scope["path"].startswith(("/api/", "/a/")) or scope["path"] == "/login":
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def build_app(cfg: Config, *, secure_cookies: bool | None = None) -> Any:
    from warnd.web.views import alerts, api, outbox, pages, session

    web = Web(cfg, secure_cookies=secure_cookies)
    routes = [
        Route("/", pages.overview),
        Route("/substances/{sid}", pages.substance),
        Route("/substances/{sid}/charts/{n:int}.json", pages.chart_json),
        Route("/sources", pages.sources),
        Route("/alerts", alerts.list_alerts),
        Route("/alerts/{aid:int}", alerts.show_alert),
        Route("/alerts/{aid:int}/ack", alerts.ack, methods=["POST"]),
        Route("/silences", alerts.add_silence, methods=["POST"]),
        Route("/silences/{sid:int}/expire", alerts.expire_silence, methods=["POST"]),
        Route("/a/{token}", alerts.action_link, methods=["GET", "POST"]),
        Route("/outbox", outbox.list_outbox),
        Route("/outbox/{aid:int}/{target}/{what}", outbox.act, methods=["POST"]),
        Route("/login", session.login, methods=["GET", "POST"]),
        Route("/logout", session.logout, methods=["POST"]),
        Route("/account", session.account),
        Route("/account/sessions/{sid}/end", session.end_session, methods=["POST"]),
        Route("/account/sessions/end-others", session.end_others, methods=["POST"]),
        Route("/api/v1/alerts", api.alerts),
        Route("/api/v1/alerts/{aid:int}/ack", api.ack, methods=["POST"]),
        Route("/api/v1/silences", api.silences, methods=["GET", "POST"]),
        Route("/api/v1/substances", api.substances),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.web = web
    return _headers(app)


def serve(cfg: Config, listen: str | None = None) -> int:
    import uvicorn

    host, port = parse_listen(listen or cfg.web.listen)
    app = build_app(cfg)
    log.info("console listening on http://%s:%d (base_url %s)", host, port,
             cfg.web.base_url or "unset")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", server_header=False)
    return 0
