"""Real parts for service tests, the fault injection script and the load benchmark.

* :class:`LocalHTTP`: a threaded HTTP server on 127.0.0.1 with hostile endpoints
  (slow, hanging, 500, endless redirects, 100 MB, billion laughs) and files.
* :class:`JsonSink`: the receiving end of an apprise ``json://`` target; counts
  every message it is sent.
* :class:`NotifySocket`: an AF_UNIX datagram socket standing in for systemd's
  ``$NOTIFY_SOCKET``.
* :class:`DaemonProcess`: ``warnd run`` as a subprocess with its log in a file;
  waits for log lines with a deadline (never sleeps to synchronise).
* data generators for count tables and notice feeds.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def wait_until(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    """Return ``cond()`` once it is truthy; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def stray_tracebacks(log: str) -> list[str]:
    """Log lines with a traceback, except detection failures (logged with one on purpose)."""
    return [ln for ln in log.splitlines()
            if "Traceback" in ln and not re.search(r"substance=\S+ detection failed", ln)]


# -- HTTP ------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (timeouts, size limits) are the point of these servers


class LocalHTTP:
    """Endpoints:

    ``/files/NAME``    a file registered with :meth:`add_file` (changeable between polls)
    ``/slow?s=N``      the file ``slow`` after N seconds (default 2)
    ``/hang``          accepts the request and never answers (until :meth:`close`)
    ``/500``           HTTP 500, every time
    ``/loop``          302 to itself, forever
    ``/big``           100 MB of data (streamed, Content-Length set)
    ``/drip``          a byte every 0.2 s, forever
    ``/laughs``        a billion-laughs XML document
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        kit = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                with kit._lock:
                    kit.hits[path] = kit.hits.get(path, 0) + 1
                try:
                    kit._route(self, path, query)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add_file(self, name: str, content: bytes) -> str:
        self.files[name] = content
        return f"{self.url}/files/{name}"

    def _route(self, h: Any, path: str, query: str) -> None:
        if path.startswith("/files/"):
            body = self.files.get(path[len("/files/"):])
            if body is None:
                h._send(404, b"no such file")
            else:
                h._send(200, body, "application/xml" if body.lstrip().startswith(b"<") else "text/csv")
        elif path == "/slow":
            secs = float(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("s", 2))
            self._stop.wait(secs)
            h._send(200, self.files.get("slow", b""), "text/csv")
        elif path == "/hang":
            self._stop.wait()
        elif path == "/500":
            h._send(500, b"server error")
        elif path == "/loop":
            h._send(302, b"", headers={"Location": "/loop"})
        elif path == "/big":
            size = 100 * 1024 * 1024
            h.send_response(200)
            h.send_header("Content-Type", "text/csv")
            h.send_header("Content-Length", str(size))
            h.end_headers()
            chunk = b"x" * 65536
            sent = 0
            while sent < size and not self._stop.is_set():
                h.wfile.write(chunk)
                sent += len(chunk)
        elif path == "/drip":
            h.send_response(200)
            h.send_header("Content-Type", "text/csv")
            h.send_header("Content-Length", "100000000")
            h.end_headers()
            while not self._stop.wait(0.2):
                h.wfile.write(b"x")
                h.wfile.flush()
        elif path == "/laughs":
            h._send(200, billion_laughs(), "application/rss+xml")
        else:
            h._send(404, b"not found")

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class JsonSink:
    """Receives apprise ``json://127.0.0.1:PORT/`` posts; :attr:`messages` holds them."""

    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.rejected = 0
        self.fail = fail
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    # a sender killed mid-request leaves a truncated body: like any real
                    # endpoint, answer 400 and take no message
                    msg = None
                if msg is not None:
                    msg["_auth"] = self.headers.get("Authorization")
                with sink._lock:
                    if not sink.fail and msg is not None:
                        sink.messages.append(msg)
                    else:
                        sink.rejected += 1
                code = 500 if sink.fail else 200 if msg is not None else 400
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def titles(self) -> list[str]:
        with self._lock:
            return [m.get("title", "") for m in self.messages]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- systemd notification ----------------------------------------------------------------
class NotifySocket:
    """A datagram socket the daemon reports READY=1, WATCHDOG=1, ... to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Receive until a message containing ``text`` arrives; return it."""
        end = time.monotonic() + timeout
        for m in self.messages:
            if text in m:
                return m
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no notification with {text!r} in {timeout:g} s "
                                   f"(got {self.messages!r})")
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if text in msg:
                return msg

    def close(self) -> None:
        self.sock.close()


# -- the daemon as a subprocess ------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                        "WARND_STATE_DIR", "STATE_DIRECTORY", "WARND_CONFIG",
                        "CREDENTIALS_DIRECTORY")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class DaemonProcess:
    """``python -m warnd.cli --config FILE run`` with stderr appended to ``log``."""

    def __init__(self, config: Path, log: Path, *, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ("run",)) -> None:
        self.config = config
        self.log = log
        self.env = env or child_env()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0

    def start(self) -> DaemonProcess:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warnd.cli", "--config", str(self.config), *self.args],
            stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=str(self.config.parent),
        )
        fh.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def text(self) -> str:
        """This run's log so far."""
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float = 60, count: int = 1) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) occurs ``count`` times in this run's log."""
        rx = re.compile(pattern)

        def found() -> re.Match[str] | None:
            ms = list(rx.finditer(self.text()))
            if len(ms) >= count:
                return ms[count - 1]
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode} before "
                                     f"{pattern!r}:\n{self.text()[-4000:]}")
            return None

        try:
            return wait_until(found, timeout, f"log line {pattern!r}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n--- log ---\n{self.text()[-4000:]}") from None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


# -- data ---------------------------------------------------------------------------------
def counts_csv(substances: list[str], *, weeks: int = 120, seed: int = 1,
               jump: dict[str, int] | None = None, start: date = date(2024, 1, 1),
               base: int = 20) -> bytes:
    """A long count table; ``jump`` = {substance: week index} quadruples counts from there."""
    rnd = random.Random(seed)
    lines = ["period,substance,value"]
    for i in range(weeks):
        d = start + timedelta(weeks=i)
        for sub in substances:
            level = base * 4 if jump and sub in jump and i >= jump[sub] else base
            lines.append(f"{d.isoformat()},{sub},{rnd.randint(level - 4, level + 4)}")
    return ("\n".join(lines) + "\n").encode()


def notices_rss(n: int, substance: str, *, tag: str = "") -> bytes:
    """An RSS feed of ``n`` warning notices, each naming ``substance``.

    Notice ``i`` is dated ``i % 7`` days before today: recent enough to be alerted
    (``alerting.notice_max_age``), and the same date whenever the feed is rewritten.
    """
    items = []
    today = date.today()
    for i in range(n):
        d = today - timedelta(days=i % 7)
        items.append(
            f"<item><title>Varsel {tag}{i}: farlig {substance} i omløp</title>"
            f"<link>https://notices.example/{tag}{i}</link>"
            f"<pubDate>{d.strftime('%a, %d %b %Y')} 08:00:00 +0000</pubDate>"
            f"<description>Det er funnet sterk {substance} ({tag}{i}).</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Varsler</title><link>https://notices.example/</link><description>x</description>"
        + "".join(items) + "</channel></rss>"
    ).encode()


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else f"lol{i - 1}"
        ents.append(f'<!ENTITY lol{i} "{("&" + prev + ";") * 10}">')
    return (
        '<?xml version="1.0"?><!DOCTYPE rss [' + "".join(ents) + "]>"
        '<rss version="2.0"><channel><title>&lol9;</title>'
        "<item><title>&lol9;</title></item></channel></rss>"
    ).encode()


SUBSTANCES_TOML = """
[substances.ketamin]
label = "ketamin"
names = ["ketamin", "ketamine"]

[substances.heroin]
label = "heroin"
names = ["heroin"]
"""


def write_service_config(path: Path, *, sources: str, targets: str = "", general: str = "",
                         state_dir: str = "state", substances: str = SUBSTANCES_TOML) -> Path:
    level = "" if "log_level" in general else 'log_level = "INFO"\n'
    if ("[[sources]]" not in sources or "[[targets]]" not in targets) and \
            "allow_empty" not in general:
        level += "allow_empty = true\n"  # refused otherwise (nothing monitored or told)
    path.write_text(
        f'[general]\nstate_dir = "{state_dir}"\n{level}{general}\n'
        + substances + sources + targets,
        encoding="utf-8",
    )
    return path


#: ``python -c MEASURED RSS_FILE ARGS…``: runs ``warnd ARGS…`` and writes the process's
#: peak RSS (KiB) to RSS_FILE, also when the command fails.
MEASURED = """
import resource, sys
from warnd.cli import main
out = sys.argv.pop(1)
try:
    rc = main(sys.argv[1:])
finally:
    with open(out, "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(rc)
"""
