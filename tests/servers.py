"""Real local servers standing in for the mail relay and the Teams workflow endpoint."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond, *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail after ``timeout`` seconds (a deadline, not a sleep)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[Any] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(envelope)
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``start()``/``stop()`` may be called again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        # aiosmtpd logs each connection at INFO from its own thread, also after a test's
        # captured stderr is closed
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.port = port or free_port()
        self.handler = _Handler()
        self.ctl: Controller | None = None

    @property
    def messages(self) -> list[Any]:
        with self.handler.lock:
            return list(self.handler.messages)

    def start(self) -> SmtpServer:
        self.ctl = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.ctl.start()
        return self

    def stop(self) -> None:
        if self.ctl is not None:
            self.ctl.stop()
            self.ctl = None

    def url(self, to: str = "ops@example.org") -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=alerts@example.org&to={to}"
                f"&mode=insecure&cto=5")


#: A Microsoft host name for pasted Teams workflow URLs; tests resolve it to the
#: loopback sink (``tests.conftest.microsoft_host``) and the sink's certificate names it.
MICROSOFT_HOST = "prod-00.westeurope.logic.azure.com"


class HttpsServer:
    """A TLS http.server recording POST bodies (the Teams workflow stand-in).

    Its certificate is for 127.0.0.1 and :data:`MICROSOFT_HOST`.
    """

    def __init__(self, ca: Any, status: int = 202) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.status = status
        #: extra response headers (e.g. Retry-After) and a delay before answering
        self.reply_headers: dict[str, str] = {}
        self.delay = 0.0
        self.release = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": raw})
                if outer.delay:
                    outer.release.wait(outer.delay)  # a slow endpoint (stop() ends it)
                self.send_response(outer.status)
                for k, v in outer.reply_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", MICROSOFT_HOST).configure_cert(ctx)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> HttpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def url(self) -> str:
        return f"workflows://127.0.0.1:{self.port}/wf0123abcd/Sig_abc-123XYZ/?image=no"


class BlackHole:
    """Accepts TCP connections and says nothing until released (a hung mail relay)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()

    def release(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()
