"""Signed, expiring action links for messages: open, acknowledge, silence 14 days.

A link carries the alert id and the action, signed (HMAC-SHA1 by itsdangerous'
``URLSafeTimedSerializer``) with a random key kept in the store, so the daemon that
writes a message and the console that follows the link agree without configuration.
Following a link only shows a confirmation page (mail gateways open links to scan
them); the console acts on the form's POST, as the person logged in.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

KEY_NAME = "action-links"
SALT = "warnd.action"
#: Actions a link may carry; "silence" silences the alert's substance for SILENCE_DAYS.
ACTIONS = ("ack", "silence")
SILENCE_DAYS = 14


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def sign(secret: str, alert_id: int, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown link action {action!r}")
    return str(_serializer(secret).dumps({"a": int(alert_id), "do": action}))


def read(secret: str, token: str, max_age_s: float) -> tuple[dict[str, Any] | None, str | None]:
    """``(payload, None)`` for a good link, else ``(None, "expired" | "invalid")``."""
    try:
        data = _serializer(secret).loads(token, max_age=max_age_s)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    if not isinstance(data, dict) or data.get("do") not in ACTIONS:
        return None, "invalid"
    return data, None


def action_links(store: Any, base_url: str | None, alert_id: int | None) -> dict[str, str]:
    """``{"open": url, "ack": url, "silence": url}`` for an alert, or {} without base_url."""
    if not base_url or alert_id is None:
        return {}
    base = base_url.rstrip("/")
    secret = store.secret_key(KEY_NAME)
    return {
        "open": f"{base}/alerts/{int(alert_id)}",
        "ack": f"{base}/a/{sign(secret, alert_id, 'ack')}",
        "silence": f"{base}/a/{sign(secret, alert_id, 'silence')}",
    }
