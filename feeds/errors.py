"""Errors raised by the source adapters.

    FeedError
    ├── FetchError    a location could not be read: timeout, HTTP error, too large, missing
    └── ParseError    a document could not be parsed at all (most problems are ``Problem``s)

``feeds`` does not import ``warnd``; the daemon maps these onto its own error tree.
``str(err)`` is one line naming the location and the cause.
"""

from __future__ import annotations


class FeedError(Exception):
    """Base of the errors raised by :mod:`feeds`."""


class FetchError(FeedError):
    def __init__(self, location: str, cause: str) -> None:
        self.location = location
        self.cause = cause
        super().__init__(f"{location}: {cause}")


class ParseError(FeedError):
    def __init__(self, location: str, cause: str) -> None:
        self.location = location
        self.cause = cause
        super().__init__(f"{location}: {cause}")
