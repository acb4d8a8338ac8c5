from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feeds.errors import FetchError
from feeds.fetch import Fetcher

Handler = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A real HTTP server on 127.0.0.1 that answers with the handler set per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        routes, hits = self.routes, self.hits

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                routes[self.path](self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fetcher(**kw: object) -> Fetcher:
    kw.setdefault("sleep", Sleeps())
    return Fetcher(**kw)  # type: ignore[arg-type]


def test_200(server: Server) -> None:
    server.routes["/feed"] = reply(
        200, b"<rss/>", {"ETag": '"v1"', "Last-Modified": "Mon, 16 Mar 2026 08:00:00 GMT"}
    )
    [doc] = fetcher().fetch(server.url("/feed"))
    assert doc.content == b"<rss/>"
    assert doc.etag == '"v1"' and doc.last_modified == "Mon, 16 Mar 2026 08:00:00 GMT"
    assert doc.sha256 == hashlib.sha256(b"<rss/>").hexdigest()
    assert doc.not_modified is False


def test_304_with_etag(server: Server) -> None:
    seen: list[str | None] = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        seen.append(h.headers.get("If-None-Match"))
        if h.headers.get("If-None-Match") == '"v1"':
            reply(304, headers={"ETag": '"v1"'})(h)
        else:
            reply(200, b"new", {"ETag": '"v1"'})(h)

    server.routes["/feed"] = handle
    [doc] = fetcher().fetch(server.url("/feed"), etag='"v1"')
    assert doc.not_modified is True and doc.content == b"" and doc.etag == '"v1"'
    assert seen == ['"v1"']


def test_if_modified_since_is_sent(server: Server) -> None:
    seen: list[str | None] = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        seen.append(h.headers.get("If-Modified-Since"))
        reply(304)(h)

    server.routes["/f"] = handle
    [doc] = fetcher().fetch(server.url("/f"), last_modified="Mon, 16 Mar 2026 08:00:00 GMT")
    assert doc.not_modified and doc.last_modified == "Mon, 16 Mar 2026 08:00:00 GMT"
    assert seen == ["Mon, 16 Mar 2026 08:00:00 GMT"]


def test_500_then_retry_succeeds(server: Server) -> None:
    answers = iter([reply(500, b"oops"), reply(503, b"busy"), reply(200, b"ok")])
    server.routes["/flaky"] = lambda h: next(answers)(h)
    sleeps = Sleeps()
    [doc] = fetcher(retries=2, backoff=0.25, sleep=sleeps).fetch(server.url("/flaky"))
    assert doc.content == b"ok"
    assert sleeps == [0.25, 0.5]
    assert server.hits["/flaky"] == 3


def test_retries_exhausted(server: Server) -> None:
    server.routes["/down"] = reply(502, b"bad gateway")
    with pytest.raises(FetchError, match=r"HTTP 502 \(after 3 attempts\)") as err:
        fetcher(retries=2).fetch(server.url("/down"))
    assert server.url("/down") in str(err.value) and "\n" not in str(err.value)


def test_429_honours_retry_after(server: Server) -> None:
    answers = iter([reply(429, headers={"Retry-After": "3"}), reply(200, b"ok")])
    server.routes["/rl"] = lambda h: next(answers)(h)
    sleeps = Sleeps()
    fetcher(sleep=sleeps).fetch(server.url("/rl"))
    assert sleeps == [3.0]


def test_404_is_not_retried(server: Server) -> None:
    server.routes["/missing"] = reply(404, b"nope")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher().fetch(server.url("/missing"))
    assert server.hits["/missing"] == 1


def test_redirect_loop(server: Server) -> None:
    server.routes["/a"] = reply(302, headers={"Location": "/b"})
    server.routes["/b"] = reply(302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="too many redirects"):
        fetcher(max_redirects=4).fetch(server.url("/a"))


def test_redirect_followed(server: Server) -> None:
    server.routes["/old"] = reply(301, headers={"Location": "/new"})
    server.routes["/new"] = reply(200, b"moved")
    assert fetcher().fetch(server.url("/old"))[0].content == b"moved"


def test_too_large_by_content_length(server: Server) -> None:
    server.routes["/big"] = reply(200, b"x" * 2000)
    with pytest.raises(FetchError, match="exceeds max_bytes=1000"):
        fetcher(max_bytes=1000).fetch(server.url("/big"))


def test_too_large_while_streaming(server: Server) -> None:
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(10):
            h.wfile.write(b"200\r\n" + b"y" * 0x200 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    server.routes["/stream"] = chunked
    with pytest.raises(FetchError, match="body larger than max_bytes=1000"):
        fetcher(max_bytes=1000).fetch(server.url("/stream"))


def test_gzip_is_decoded_and_bomb_capped(server: Server) -> None:
    body = b"<rss>" + b"kokain " * 100 + b"</rss>"
    server.routes["/gz"] = reply(200, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert fetcher().fetch(server.url("/gz"))[0].content == body
    server.routes["/bomb"] = reply(
        200, gzip.compress(b"\0" * 5_000_000), {"Content-Encoding": "gzip"}
    )
    with pytest.raises(FetchError, match="max_bytes"):
        fetcher(max_bytes=100_000).fetch(server.url("/bomb"))


def test_hang_beyond_deadline(server: Server) -> None:
    def hang(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"partial")
        h.wfile.flush()
        server.release.wait()

    server.routes["/hang"] = hang
    with pytest.raises(FetchError, match="deadline"):
        fetcher(timeout=30.0, total_deadline=0.5, retries=3).fetch(server.url("/hang"))


def test_connection_refused_retries_then_fails() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(FetchError, match="ConnectError"):
        fetcher(retries=1, backoff=0.1, sleep=sleeps).fetch(f"http://127.0.0.1:{port}/x")
    assert sleeps == [0.1]


def test_user_agent_sent(server: Server) -> None:
    seen: list[str | None] = []
    server.routes["/ua"] = lambda h: (seen.append(h.headers.get("User-Agent")), reply(200, b"")(h))
    fetcher(user_agent="warnd-test/1").fetch(server.url("/ua"))
    assert seen == ["warnd-test/1"]


# -- local files ---------------------------------------------------------------------


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    (tmp_path / "b.csv").write_bytes(b"b")
    (tmp_path / "a.csv").write_bytes(b"a")
    (tmp_path / "notes.txt").write_bytes(b"n")
    (tmp_path / ".hidden.csv").write_bytes(b"h")
    (tmp_path / "~$open.xlsx").write_bytes(b"lock")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.csv").write_bytes(b"c")
    return tmp_path


def test_folder_lists_regular_files_sorted(drop: Path) -> None:
    docs = fetcher().fetch(str(drop))
    assert [Path(d.location).name for d in docs] == ["a.csv", "b.csv", "notes.txt"]
    assert docs[0].content == b"a" and docs[0].sha256 == hashlib.sha256(b"a").hexdigest()


def test_glob(drop: Path) -> None:
    docs = fetcher().fetch(str(drop / "*.csv"))
    assert [Path(d.location).name for d in docs] == ["a.csv", "b.csv"]


def test_file_url_and_plain_path(drop: Path) -> None:
    assert fetcher().fetch((drop / "a.csv").as_uri())[0].content == b"a"
    assert fetcher().fetch(str(drop / "b.csv"))[0].content == b"b"


def test_missing_file(drop: Path) -> None:
    with pytest.raises(FetchError, match="no such file"):
        fetcher().fetch(str(drop / "nope.csv"))


def test_file_too_large(drop: Path) -> None:
    (drop / "big.csv").write_bytes(b"z" * 50)
    with pytest.raises(FetchError, match="max_bytes=10"):
        fetcher(max_bytes=10).fetch(str(drop / "big.csv"))


def test_unsupported_scheme() -> None:
    with pytest.raises(FetchError, match="unsupported scheme 'ftp'"):
        fetcher().fetch("ftp://example.org/x")


def test_single_document_tells_one_file_or_address_from_a_folder_or_glob(tmp_path):
    """A new version of one file or address is the whole of what it gives (a count table
    withdraws the rows it no longer has); a folder's or glob's files each give a part."""
    from feeds.fetch import single_document

    (tmp_path / "lab.csv").write_text("period,substance,value\n", encoding="utf-8")
    assert single_document(str(tmp_path / "lab.csv"))
    assert single_document((tmp_path / "lab.csv").as_uri())
    assert single_document("https://example.org/lab.csv")
    assert not single_document(str(tmp_path))
    assert not single_document(tmp_path.as_uri())
    assert not single_document(str(tmp_path / "*.csv"))
