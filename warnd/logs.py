"""Logging set-up: one line per event on stderr, journald-friendly.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with the syslog priority
(``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) so journald files it at
the right level, and carries no timestamp (journald adds one).
"""

from __future__ import annotations

import logging
import os
import re
import sys

_PRIORITY = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7,
}
# user:password@ in URLs, and apprise-style secrets in query strings
_SECRET_RE = re.compile(
    r"(://[^/\s:@]+:)[^@\s/]+@|"
    r"((?<![A-Za-z0-9])(?:pass|passwd|password|pwd|token|access_token|refresh_token|sig|"
    r"signature|x-amz-signature|x-amz-credential|x-amz-security-token|key|apikey|api_key|"
    r"secret|client_secret|auth|authorization|session|sessionid)=)[^&\s]+", re.I)


def redact(text: str) -> str:
    return _SECRET_RE.sub(lambda m: (m.group(1) + "***@") if m.group(1) else m.group(2) + "***",
                          text)


class _Formatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = "%(name)s: %(message)s" if journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record)).replace("\n", " | ")
        if self.journald:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Formatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root.addHandler(h)
    set_level(level)


def set_level(level: str) -> None:
    """Log at ``level`` from now on (a reload's ``general.log_level``); the libraries'
    chatter no lower than warnings."""
    root = logging.getLogger()
    root.setLevel(level)
    for noisy in ("apscheduler", "apprise", "httpx", "httpcore", "matplotlib", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
