"""Send one message to one target through apprise.

Each target is its own ``Apprise`` object built per send, so one slow or dead target
never holds back another and apprise's per-plugin throttle never sleeps between
alerts. Passwords can come from an environment variable or a credentials file
(systemd ``LoadCredential``) instead of sitting in ``config.toml``.

Two things apprise 2.3 does not hand to a caller are taken from inside the send
(:func:`_install_hooks`, active only within :func:`send`, through a context variable
that apprise copies into its worker threads):

* the **Message-ID** of an email: apprise's email plugin always writes its own random
  one (``make_msgid``) after the caller's extra headers, so a header of ours would be
  a second Message-ID; the plugin's ``make_msgid`` returns ours during a send instead;
* the **plain-text part** of an HTML email: the plugin makes it from the HTML
  (``convert_between``: one table cell per line, links dropped); during a send with
  a ``text_part`` it is ours instead (``email.txt.j2``). Were the hook ever gone (a
  different apprise), the email still goes, with apprise's own text part, and a
  warning is logged;
* the **HTTP answer** of a webhook target (status and ``Retry-After``) and the
  transport error of a failed request (timeout, TLS, refused), which the workflows
  plugin only logs as text: ``requests``' ``Session.send`` records them.

The recorded reason says which it was: ``timeout``, ``TLS``, ``refused``,
``HTTP <status>``, ``SMTP <code>`` or the plugin's own words.

The **thread** of an email (``In-Reply-To`` and ``References`` naming the first message
of its episode) needs no hook: the plugin writes its ``headers`` (which a URL's
``+Name=value`` fills) into each email, before its own Subject, From, To, Message-ID
and Date; a send sets them on its own plugin instance.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import apprise

from warnd.errors import ConfigError

_PLACEHOLDER = "{password}"
#: Hosts on which apprise (2.3 and newer) accepts a pasted https:// Teams workflow URL.
MICROSOFT_HOSTS = ("logic.azure.com", "powerplatform.com")


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: str  # SUCCESS | FAILURE | TIMEOUT | NOMATCH | PARTIAL | ERROR
    detail: str = ""
    #: what went wrong, in one word: timeout | tls | refused | http | smtp | error | ""
    kind: str = ""
    #: seconds the target asked to wait (HTTP Retry-After), when it did
    retry_after: float | None = None
    #: the failure shows that the message did not reach the target
    #: (:func:`not_taken`); False when it may have
    unsent: bool = False


_CALL: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "warnd_send_call", default=None)
_HOOKS_LOCK = threading.Lock()
_hooks_installed = False
#: apprise records below this level are kept for the send's reason but not logged
_apprise_threshold = logging.WARNING


def _capture_apprise_debug() -> None:
    """Let apprise make its DEBUG records (the transport error's text) while passing on
    only those at the level logging was set up with (``warnd.logs.setup`` may set
    the apprise logger again at any time)."""
    global _apprise_threshold
    alog = logging.getLogger("apprise")
    if alog.level != logging.DEBUG:
        _apprise_threshold = alog.getEffectiveLevel()
        alog.setLevel(logging.DEBUG)


def _install_hooks() -> None:
    """Let a send set the email's Message-ID and see the HTTP answer (see module doc)."""
    global _hooks_installed
    with _HOOKS_LOCK:
        if _hooks_installed:
            return
        import requests.sessions

        try:
            from apprise.plugins.email import base as email_base
        except ImportError:  # pragma: no cover - another apprise layout
            email_base = None
        if email_base is not None and hasattr(email_base, "make_msgid"):
            original_msgid = email_base.make_msgid

            def make_msgid(*a: Any, **kw: Any) -> str:
                call = _CALL.get()
                if call and call.get("message_id"):
                    return str(call["message_id"])
                return str(original_msgid(*a, **kw))

            email_base.make_msgid = make_msgid
        if email_base is not None and hasattr(email_base, "convert_between"):
            original_convert = email_base.convert_between

            def convert_between(from_format: Any, to_format: Any, content: Any,
                                *a: Any, **kw: Any) -> Any:
                call = _CALL.get()
                if (call and call.get("text_part") is not None
                        and from_format == apprise.NotifyFormat.HTML
                        and to_format == apprise.NotifyFormat.TEXT):
                    call["text_part_used"] = True
                    return call["text_part"]
                return original_convert(from_format, to_format, content, *a, **kw)

            email_base.convert_between = convert_between
        original_send = requests.sessions.Session.send

        def session_send(self: Any, request: Any, **kw: Any) -> Any:
            call = _CALL.get()
            try:
                r = original_send(self, request, **kw)
            except Exception as e:
                if call is not None:
                    call["errors"].append(e)
                raise
            if call is not None:
                call["responses"].append((r.status_code, r.headers.get("Retry-After")))
            return r

        requests.sessions.Session.send = session_send  # type: ignore[method-assign]

        # apprise tells a transport error's text (refused, timed out, certificate) only
        # at DEBUG: let those records be made, keep them for the send that caused them,
        # and pass on only what the root level lets through (as before)
        def keep_socket_errors(record: logging.LogRecord) -> bool:
            call = _CALL.get()
            if call is not None and record.levelno < logging.INFO:
                msg = record.getMessage()
                if "exception" in msg.lower():
                    call["errors"].append(msg)
            return record.levelno >= _apprise_threshold

        logging.getLogger("apprise").addFilter(keep_socket_errors)
        _hooks_installed = True


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(exc_texts: list[str]) -> tuple[str, str]:
    """(kind, words) for the transport error texts of a failed send."""
    text = " ".join(exc_texts)
    low = text.lower()
    if "certificate" in low or "ssl" in low or "tls" in low:
        return "tls", "TLS: the server's certificate or handshake was refused"
    if "timed out" in low or "timeout" in low:
        return "timeout", "timeout: the server did not answer in time"
    if "refused" in low or "errno 111" in low:
        return "refused", "refused: nothing accepts connections at that address"
    m = re.search(r"\((\d{3}), b?['\"]([^'\"]*)", text)
    if m:
        return "smtp", f"SMTP {m.group(1)}: {m.group(2)[:200]}"
    if "name or service not known" in low or "getaddrinfo" in low or "resolve" in low:
        return "dns", "DNS: the server's name does not resolve"
    return "", ""


def _secret(t: object) -> str | None:
    env = getattr(t, "password_env", None)
    file = getattr(t, "password_file", None)
    name = getattr(t, "name", "?")
    if env:
        val = os.environ.get(env)
        if val is None:
            raise ConfigError(f'target "{name}": environment variable {env} is not set')
        return val
    if file:
        p = Path(file)
        if not p.is_absolute():
            cred = os.environ.get("CREDENTIALS_DIRECTORY")
            p = Path(cred) / file if cred else p
        try:
            return p.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f'target "{name}": cannot read password file {p}: {e.strerror}') from None
    return None


def target_url(t: object, *, check_secret: bool = True) -> str:
    """The target's URL with its password filled in.

    Write ``{password}`` where the password goes (``mailtos://user:{password}@host``);
    without the placeholder and with a password configured, it is added as the
    user's password.
    """
    url: str = t.url  # type: ignore[attr-defined]
    has_secret = bool(getattr(t, "password_env", None) or getattr(t, "password_file", None))
    if not has_secret:
        return url
    secret = _secret(t) if check_secret else "placeholder"
    enc = quote(secret or "", safe="")
    if _PLACEHOLDER in url:
        return url.replace(_PLACEHOLDER, enc)
    scheme, rest = url.split("://", 1)
    userinfo, sep, tail = rest.partition("@")
    if sep and ":" not in userinfo:
        return f"{scheme}://{userinfo}:{enc}@{tail}"
    raise ConfigError(
        f'target "{getattr(t, "name", "?")}": password_env/password_file needs "{{password}}" '
        "in the URL or a user name before @"
    )


def host_name() -> str:
    """This machine's host name as a Message-ID's right part may carry it."""
    import socket

    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname() or "localhost") or "localhost"


def message_id(alert_id: Any, target: str, dedupe_key: str, created_at: str,
               host: str | None = None) -> str:
    """The stable Message-ID of one alert to one target: a repeat carries the same one.

    The hash covers the alert's dedupe key and creation time, so a store started
    afresh (ids counting from 1 again) never reuses one for a different alert. ``host``
    is its right part (this machine's name when not given; the outbox gives the one its
    store keeps: :func:`warnd.alerting.outbox.host_part`).
    """
    import hashlib

    digest = hashlib.sha256(f"{dedupe_key}|{created_at}|{target}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9.-]", "-", target)
    return f"<warnd.{alert_id}.{name}.{digest}@{host or host_name()}>"


def mask(url: str) -> str:
    """A URL safe for logs and status output (apprise's privacy mode)."""
    ap = apprise.Apprise()
    if ap.add(url) and len(ap):
        return str(ap[0].url(privacy=True))
    head = url.split("://", 1)[0]
    return f"{head}://***"


def send(
    url: str,
    *,
    title: str,
    body: str,
    body_format: str = "text",
    attachments: list[str] | None = None,
    timeout: float = 30.0,
    message_id: str | None = None,
    text_part: str | None = None,
    thread: str | None = None,
) -> SendResult:
    """Send to one apprise URL and say whether the service accepted it.

    ``message_id`` becomes the email's Message-ID, ``text_part`` the plain-text
    alternative of an HTML email and ``thread`` (a Message-ID) its ``In-Reply-To``
    and ``References`` (other targets ignore all three).
    """
    _install_hooks()
    _capture_apprise_debug()
    ap = apprise.Apprise()
    if not ap.add(url) or len(ap) == 0:
        return SendResult(False, "ERROR", "apprise rejected the URL")
    for s in ap:
        s.request_rate_per_sec = 0
        if thread and _is_email(s):
            # a reply to the episode's first message (RFC 5322 3.6.4): its References
            # are the parent's (none: it starts the thread) and the parent's own id
            s.headers.update({"In-Reply-To": thread, "References": thread})
        if body_format == "html" and attachments and hasattr(s, "inline"):
            # email: images referenced as cid:NAME in the HTML go inline (RFC 2387)
            s.inline = True
    card_file = None
    if body_format == "card":
        # an Adaptive Card for the workflows plugin: handed over as its template file
        card_file = _card_template(ap, body)
        if card_file is None:
            return SendResult(False, "ERROR", "a card can only go to a workflows:// target")
        body = title
    fmt = {
        "text": apprise.NotifyFormat.TEXT,
        "html": apprise.NotifyFormat.HTML,
        "markdown": apprise.NotifyFormat.MARKDOWN,
        "card": apprise.NotifyFormat.TEXT,
    }[body_format]
    attach = None
    if attachments:
        attach = apprise.AppriseAttachment()
        for a in attachments:
            attach.add(a)
    call: dict[str, Any] = {"message_id": message_id, "responses": [], "errors": [],
                            "text_part": text_part if body_format == "html" else None}
    token = _CALL.set(call)
    try:
        r = ap.notify(title=title, body=body, body_format=fmt, attach=attach, timeout=timeout,
                      log_level=logging.DEBUG)
    except Exception as e:  # a plugin bug must not take the daemon down
        return SendResult(False, "ERROR", f"{type(e).__name__}: {e}", kind="error")
    finally:
        _CALL.reset(token)
        if card_file is not None:
            Path(card_file).unlink(missing_ok=True)
    status = getattr(getattr(r, "status", None), "name", "SUCCESS" if r else "FAILURE")
    if call["text_part"] is not None and not call.get("text_part_used") and r:
        logging.getLogger("warnd.messages").warning(
            "this apprise made the email's plain-text part from its HTML, not warnd's")
    if r:
        return SendResult(True, "SUCCESS")
    single = all(_addresses(s) <= 1 for s in ap if _is_email(s))
    return _failure(r, status, call, timeout, single=single)


def _addresses(service: Any) -> int:
    """How many addresses an email service sends to (To, Cc, Bcc)."""
    return sum(len(getattr(service, name, None) or ()) for name in ("targets", "cc", "bcc"))


#: A transport error that ended a send before the target was reached at all.
_NOT_REACHED = re.compile(r"connection refused|errno 111\b|name or service not known|"
                          r"nodename nor servname|getaddrinfo failed|name resolution", re.I)
_SMTP_REPLY = re.compile(r"\(([45])\d\d, b?['\"]")


def not_taken(texts: list[str], codes: list[int], *, single: bool) -> bool:
    """Whether a failed send shows that the message did not reach its target, from the
    transport errors' ``texts`` and the HTTP status ``codes`` it met: each was a
    connection refused or a name that does not resolve, an SMTP error reply when the
    email goes to one address (with several, an address before it may have taken it:
    the plugin sends to each in turn), or an HTTP 4xx (the service refused the
    request). Not so after a timeout, a connection dropped, an HTTP 5xx (a gateway may
    have passed the request on), a TLS error or anything else, nor when nothing was told:
    the target may have taken the message before the send failed."""
    if not texts and not codes:
        return False
    if any(not 400 <= c < 500 for c in codes):
        return False
    for t in texts:
        if "timed out" in t.lower() or "timeout" in t.lower():
            return False
        if not (_NOT_REACHED.search(t) or single and _SMTP_REPLY.search(t)):
            return False
    return True


def _failure(r: Any, status: str, call: dict[str, Any], timeout: float, *,
             single: bool = True) -> SendResult:
    """A failed send, with the reason told apart (timeout, TLS, refused, HTTP status),
    and whether it shows that the message did not reach the target (``unsent``)."""
    entries: list[Any] = []
    try:
        entries = list(r.logs())
    except Exception:
        pass
    warnings = [str(e.message) for e in entries
                if str(getattr(e, "level", "")).upper() in ("WARNING", "ERROR", "CRITICAL")]
    sockets = [str(e.message) for e in entries
               if "exception" in str(getattr(e, "message", "")).lower()]
    if status == "TIMEOUT":
        return SendResult(False, status, f"timeout: no answer within {timeout:g} s",
                          kind="timeout")
    texts = [e if isinstance(e, str) else f"{type(e).__name__}: {e}" for e in call["errors"]]
    unsent = not_taken(texts + sockets, [code for code, _ in call["responses"]],
                       single=single)
    for code, retry in reversed(call["responses"]):
        if code >= 300:
            wait = parse_retry_after(retry)
            words = f"HTTP {code}"
            try:
                from http import HTTPStatus

                words += " " + HTTPStatus(code).phrase
            except ValueError:
                pass
            if wait is not None:
                words += f" (Retry-After {wait:.0f} s)"
            return SendResult(False, status, words, kind="http", retry_after=wait,
                              unsent=unsent)
    kind, words = classify(texts + sockets)
    parts = [words] if words else []
    try:
        # one target is one apprise service (a mailto:// URL with several recipients is
        # still one service, so it is accepted or retried as a whole)
        parts += [f"{s.name}: {s.status.name}" for s in r if not s]
    except Exception:
        pass
    parts += warnings[-2:]
    return SendResult(False, status, "; ".join(parts)[:500], kind=kind or "error",
                      unsent=unsent)


def _is_email(service: Any) -> bool:
    """True for apprise's email plugin (whose ``headers`` go into the message; another
    plugin's ``headers`` may be HTTP headers)."""
    try:
        from apprise.plugins.email.base import NotifyEmail
    except ImportError:  # pragma: no cover - another apprise layout
        return False
    return isinstance(service, NotifyEmail) and isinstance(getattr(service, "headers", None),
                                                           dict)


def _card_template(ap: apprise.Apprise, card_json: str) -> str | None:
    import tempfile

    services = list(ap)
    if not services or not all(hasattr(s, "gen_payload") and hasattr(s, "template")
                               for s in services):
        return None
    fd, name = tempfile.mkstemp(prefix="warnd-card-", suffix=".json")
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(card_json)
    for s in services:
        tpl = apprise.AppriseAttachment(asset=s.asset)
        tpl.add(name)
        tpl[0].max_file_size = 35_000
        s.template = tpl
    return name


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refusal_reason(url: str) -> str | None:
    """Why apprise refuses ``url``, in an operator's words; None when it accepts it.

    The common cases are named: a pasted Teams workflow URL on a host that is not
    Microsoft's, mail through a server given by IP address without ``from=``, an
    unknown scheme. Anything else carries apprise's own explanation.
    """
    captured: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                captured.append(record.getMessage())

    handler = _Keep()
    alog = logging.getLogger("apprise")
    alog.addHandler(handler)
    try:
        if apprise.Apprise().add(url):
            return None
    finally:
        alog.removeHandler(handler)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.lower()
    if scheme in ("http", "https") and "/workflows/" in path and "/triggers/" in path:
        if not any(host == h or host.endswith("." + h) for h in MICROSOFT_HOSTS):
            port = f":{parts.port}" if parts.port else ""
            return (f'a pasted Teams workflow URL is accepted only on a Microsoft host '
                    f'(…{" or …".join(MICROSOFT_HOSTS)}), not "{host}"; for another host write '
                    f"workflows://{host}{port}/WORKFLOW_ID/SIGNATURE/")
        return "the pasted Teams workflow URL lacks its workflow id or its sig= signature"
    if scheme in ("mailto", "mailtos", "email"):
        query = {k.lower() for k in parse_qs(parts.query)}
        if _is_ip(host) and "from" not in query:
            return (f"mail through a server given by IP address ({host}) needs from=ADDRESS "
                    "in the URL: no sender address can be derived from it")
    if scheme not in apprise.manager_plugins.NotificationManager().schemas():
        return (f'unknown scheme "{scheme}://" (email: mailto:// or mailtos://; Teams: '
                "workflows:// or the pasted https:// workflow URL)")
    # apprise's own words, without the URL itself (it may hold a secret)
    said = [m.strip() for m in captured if "://" not in m]
    return "; ".join(dict.fromkeys(said)) or "a part apprise needs is missing or malformed"
