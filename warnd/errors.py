"""Errors raised by warnd.

    WarndError
    ├── ConfigError        the config file is missing, unreadable or invalid (exit 78)
    ├── StoreError         the state directory or database cannot be used
    ├── FetchError         a source could not be fetched (timeout, HTTP error, too large)
    ├── ParseError         a document could not be parsed at all
    └── DeliveryError      a notification target rejected or did not take a message
"""

from __future__ import annotations


class WarndError(Exception):
    """Base of all warnd errors; ``str(err)`` is a one-line message for operators."""


class ConfigError(WarndError):
    def __init__(self, messages: list[str] | str, *, path: str | None = None) -> None:
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        self.path = path
        head = f"{path}: " if path else ""
        super().__init__(head + "; ".join(self.messages))


class StoreError(WarndError):
    pass


class FetchError(WarndError):
    pass


class ParseError(WarndError):
    pass


class DeliveryError(WarndError):
    pass
