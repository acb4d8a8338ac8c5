"""Read a source's documents: over HTTP(S), from a file, or from a folder staff drop files in.

Safety limits (all constructor arguments):

* ``timeout``: connect and per-read timeout of one HTTP request, capped by what is left of
  the total deadline, so a fetch ends at the latest about one read after the deadline.
* ``total_deadline``: seconds for the whole fetch, retries and backoff included. The body
  is streamed and the fetch stops when the deadline passes (a server that drips bytes
  cannot hold it).
* ``max_bytes``: largest body (after gzip/deflate decoding, so a compression bomb is cut
  off too) or file. A ``Content-Length`` above it fails before the body is read.
* ``retries`` with exponential ``backoff`` (``backoff * 2**attempt`` seconds, or the
  server's ``Retry-After`` when shorter than the time left) on connect errors, timeouts,
  429 and 5xx. Other 4xx fail at once.
* ``max_redirects``: a redirect loop fails with "too many redirects".

Every failure raises :class:`feeds.errors.FetchError` with one line naming the location.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from feeds.errors import FetchError

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Document:
    """One fetched document. ``not_modified`` documents have empty content and sha256."""

    location: str
    content: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    sha256: str = ""
    #: The response's Content-Type header (None for files).
    content_type: str | None = None


@dataclass(frozen=True)
class UnreadFile:
    """A file of a folder or glob source that could not be read (``error``: why): a
    problem of the source, not a failure of its poll, and read again at the next."""

    location: str
    error: str
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


class LocalDocument:
    """A file of a folder or glob source, read only when its ``content`` is asked for.

    A folder of many large files is hashed one file at a time when listed (in chunks,
    never whole) and each file's bytes are held only while that one is parsed, so a
    poll's memory is bounded by one file (``max_bytes``), not by the folder.
    ``sha256`` is that of the bytes last read.

    ``stat`` identifies the file's version without reading it: size, modification and
    status-change times (nanoseconds) and inode, taken before the file is read. A file
    whose ``stat`` equals the one its caller knew from an earlier poll is not read at
    all (``unchanged``: no ``sha256``, no ``content``). Writing to a file always moves
    its status-change time, which no tool can set back (restoring the modification
    time, as copies that keep times do, moves it too), and a file replaced by
    another has another inode or other times; so on a filesystem that keeps these
    times to the nanosecond an equal ``stat`` means the same bytes (what a coarser
    network share allows is in ``docs/sources.md``).
    """

    etag: str | None = None
    last_modified: str | None = None
    not_modified = False

    def __init__(self, path: Path, max_bytes: int, known: str | None = None) -> None:
        self.location = str(path)
        self.path = path
        self.max_bytes = max_bytes
        self.stat = file_stat(path)
        self.unchanged = known is not None and self.stat == known
        self.sha256 = None if self.unchanged else self._hash()

    def _hash(self) -> str:
        h = hashlib.sha256()
        n = 0
        try:
            with self.path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    n += len(chunk)
                    if n > self.max_bytes:
                        raise FetchError(self.location, f"larger than max_bytes={self.max_bytes}")
                    h.update(chunk)
        except OSError as err:
            raise FetchError(self.location, f"cannot read: {err.strerror or err}") from err
        return h.hexdigest()

    @property
    def content(self) -> bytes:
        try:
            with self.path.open("rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except OSError as err:
            raise FetchError(self.location, f"cannot read: {err.strerror or err}") from err
        if len(data) > self.max_bytes:
            raise FetchError(self.location, f"larger than max_bytes={self.max_bytes}")
        self.sha256 = hashlib.sha256(data).hexdigest()
        return data


def file_stat(path: Path) -> str | None:
    """``size:mtime_ns:ctime_ns:inode`` of a file (None when it cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


class _Retry(Exception):
    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class Fetcher:
    """Fetch documents from ``http(s)://`` URLs, ``file://`` URLs, paths, folders and globs.

    Args:
        timeout: connect/read timeout of one HTTP request, seconds.
        total_deadline: seconds for the whole fetch including retries.
        max_bytes: largest document accepted.
        retries: extra attempts after a temporary failure.
        backoff: first backoff in seconds, doubled each retry.
        user_agent: the ``User-Agent`` header.
        max_redirects: redirects followed before giving up.
        sleep: the sleep function used for backoff (tests pass a recorder).
        transport: an ``httpx`` transport, for tests and proxies.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        total_deadline: float = 60.0,
        max_bytes: int = 20_000_000,
        retries: int = 2,
        backoff: float = 1.0,
        user_agent: str = "warnd/0.1 (+https://github.com/warnd)",
        max_redirects: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.total_deadline = total_deadline
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.max_redirects = max_redirects
        self.sleep = sleep
        self.transport = transport

    def fetch(
        self, location: str, *, etag: str | None = None, last_modified: str | None = None,
        known: dict[str, str] | None = None,
    ) -> list[Any]:
        """Fetch ``location``: one document for a URL or file, one per file for a folder/glob
        (a file of those that cannot be read: an :class:`UnreadFile`).

        ``etag``/``last_modified`` make an HTTP GET conditional; a 304 answer gives one
        document with ``not_modified=True``. Local files ignore them (the runner skips
        documents whose sha256 it already ingested); ``known`` maps a file's location to
        its :attr:`LocalDocument.stat` when it was last ingested, and a file that still
        has that stat is listed ``unchanged`` without being read.
        """
        scheme = urllib.parse.urlsplit(location).scheme.lower()
        if scheme in ("http", "https"):
            return [self._fetch_http(location, etag, last_modified)]
        if scheme == "file":
            path = urllib.request.url2pathname(urllib.parse.urlsplit(location).path)
            return self._fetch_local(path, location, known or {})
        if scheme and len(scheme) > 1:
            raise FetchError(
                location, f"unsupported scheme {scheme!r} (use http, https, file or a path)"
            )
        return self._fetch_local(location, location, known or {})

    # -- local -------------------------------------------------------------------------

    def _fetch_local(self, path: str, location: str,
                     known: dict[str, str]) -> list[Any]:
        if _GLOB_CHARS & set(path):
            files = sorted(p for p in glob.glob(path) if os.path.isfile(p))
            return _some_read(location, [self._read_listed(Path(p), known) for p in files
                                         if _wanted(Path(p))])
        p = Path(path)
        if p.is_dir():
            try:
                files = sorted(c for c in p.iterdir() if c.is_file() and _wanted(c))
            except OSError as err:
                raise FetchError(location, f"cannot list folder: {err.strerror or err}") from err
            return _some_read(location, [self._read_listed(c, known) for c in files])
        if not p.exists():
            raise FetchError(location, "no such file or folder")
        return [self._read_file(p, known)]

    def _read_file(self, path: Path, known: dict[str, str]) -> LocalDocument:
        return LocalDocument(path, self.max_bytes, known.get(str(path)))

    def _read_listed(self, path: Path, known: dict[str, str]) -> LocalDocument | UnreadFile:
        """A file of a folder or glob: one that cannot be read (too large, no
        permission) is an :class:`UnreadFile`, so that the others are still read."""
        try:
            return self._read_file(path, known)
        except FetchError as err:
            return UnreadFile(str(path), err.cause)

    # -- http --------------------------------------------------------------------------

    def _fetch_http(self, url: str, etag: str | None, last_modified: str | None) -> Document:
        end = time.monotonic() + self.total_deadline
        headers = {"User-Agent": self.user_agent}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt = 0
        while True:
            try:
                return self._attempt(url, headers, end)
            except _Retry as retry:
                left = end - time.monotonic()
                if attempt >= self.retries or left <= 0:
                    tries = attempt + 1
                    raise FetchError(
                        url, f"{retry.cause} (after {tries} attempt{'s' * (tries > 1)})"
                    ) from None
                wait = self.backoff * 2**attempt
                if retry.retry_after is not None:
                    wait = retry.retry_after
                if wait >= left:
                    raise FetchError(url, f"{retry.cause} (no time left for a retry)") from None
                self.sleep(wait)
                attempt += 1

    def _attempt(self, url: str, headers: dict[str, str], end: float) -> Document:
        left = end - time.monotonic()
        if left <= 0:
            raise _Retry("total deadline exceeded")
        per_op = min(self.timeout, left)
        timeout = httpx.Timeout(per_op, connect=per_op)
        try:
            with (
                httpx.Client(
                    timeout=timeout,
                    follow_redirects=True,
                    max_redirects=self.max_redirects,
                    transport=self.transport,
                ) as client,
                client.stream("GET", url, headers=headers) as resp,
            ):
                if resp.status_code == 304:
                    return Document(
                        location=url,
                        content=b"",
                        etag=resp.headers.get("etag") or headers.get("If-None-Match"),
                        last_modified=resp.headers.get("last-modified")
                        or headers.get("If-Modified-Since"),
                        not_modified=True,
                    )
                if resp.status_code in _RETRY_STATUS:
                    raise _Retry(f"HTTP {resp.status_code}", _retry_after(resp))
                if resp.status_code >= 400:
                    raise FetchError(url, f"HTTP {resp.status_code} {resp.reason_phrase}".strip())
                length = resp.headers.get("content-length", "")
                if (
                    length.isdigit()
                    and int(length) > self.max_bytes
                    and not resp.headers.get("content-encoding")
                ):
                    raise FetchError(
                        url, f"Content-Length {length} exceeds max_bytes={self.max_bytes}"
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(url, f"body larger than max_bytes={self.max_bytes}")
                    chunks.append(chunk)
                    if time.monotonic() > end:
                        raise FetchError(
                            url, f"total deadline of {self.total_deadline:g} s exceeded"
                        )
                content = b"".join(chunks)
                return Document(
                    location=url,
                    content=content,
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                    sha256=hashlib.sha256(content).hexdigest(),
                    content_type=resp.headers.get("content-type"),
                )
        except httpx.TooManyRedirects:
            raise FetchError(url, f"too many redirects (more than {self.max_redirects})") from None
        except httpx.TimeoutException as err:
            if time.monotonic() >= end:
                raise FetchError(
                    url, f"total deadline of {self.total_deadline:g} s exceeded"
                ) from None
            raise _Retry(f"timed out ({type(err).__name__})") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as err:
            raise _Retry(f"{type(err).__name__}: {_first_line(err)}") from None
        except httpx.DecodingError as err:
            raise FetchError(url, f"cannot decode body: {_first_line(err)}") from None
        except httpx.HTTPError as err:
            raise FetchError(url, f"{type(err).__name__}: {_first_line(err)}") from None


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


def single_document(location: str) -> bool:
    """Whether ``location`` is one document (an http(s) address, a file) rather than a
    folder or glob of files: a new version of it is the whole of what it gives."""
    parts = urllib.parse.urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return True
    path = urllib.request.url2pathname(parts.path) if scheme == "file" else location
    return not (_GLOB_CHARS & set(path)) and not Path(path).is_dir()


def _some_read(location: str, docs: list[Any]) -> list[Any]:
    """A folder's documents, unless not one of its files can be read: then the fetch
    fails, naming the first one's reason (the folder is not readable, as a whole)."""
    if docs and all(isinstance(d, UnreadFile) for d in docs):
        raise FetchError(location, f"no file can be read: {docs[0].location}: {docs[0].error}")
    return docs


def _wanted(path: Path) -> bool:
    """Skip hidden files and office lock files (".~lock.x.csv#", "~$x.xlsx") in folders."""
    name = path.name
    return not (name.startswith((".", "~$")) or name.endswith(("~", ".part", ".tmp")))
