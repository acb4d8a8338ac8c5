"""Send one message to one target through apprise.

Each target is its own ``Apprise`` object built per send, so one slow or dead target
never holds back another and apprise's per-plugin throttle never sleeps between
alerts. Passwords can come from an environment variable or a credentials file
(systemd ``LoadCredential``) instead of sitting in ``config.toml``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
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
) -> SendResult:
    """Send to one apprise URL and say whether the service accepted it."""
    ap = apprise.Apprise()
    if not ap.add(url) or len(ap) == 0:
        return SendResult(False, "ERROR", "apprise rejected the URL")
    for s in ap:
        s.request_rate_per_sec = 0
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
    try:
        r = ap.notify(title=title, body=body, body_format=fmt, attach=attach, timeout=timeout)
    except Exception as e:  # a plugin bug must not take the daemon down
        return SendResult(False, "ERROR", f"{type(e).__name__}: {e}")
    finally:
        if card_file is not None:
            Path(card_file).unlink(missing_ok=True)
    status = getattr(getattr(r, "status", None), "name", "SUCCESS" if r else "FAILURE")
    if r:
        return SendResult(True, "SUCCESS")
    parts = []
    try:
        # one target is one apprise service (a mailto:// URL with several recipients is
        # still one service, so it is accepted or retried as a whole)
        parts += [f"{s.name}: {s.status.name}" for s in r if not s]
        parts += [e.message for e in r.logs() if getattr(e, "level", 0) >= 30][-3:]
    except Exception:
        pass
    return SendResult(False, status, "; ".join(parts)[:500])


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
