from __future__ import annotations

import random

import pytest
from pydantic import BaseModel, ValidationError

from feeds.base import FeedOptions, ParseResult
from feeds.registry import FEEDS, _build, feed_class

from .conftest import FETCHED_AT, SUBSTANCES


def test_kinds() -> None:
    assert sorted(FEEDS) == ["count_table", "google_trends", "overdosefare", "rss", "trend_panel"]
    assert feed_class("rss").__name__ == "RssFeed"


def test_each_kind_is_its_class_kind_and_imported_on_use() -> None:
    import subprocess
    import sys

    assert _build(*FEEDS.values()) == dict(FEEDS)
    # a fresh interpreter that asks for count tables only does not load the HTML parser
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from feeds.registry import FEEDS; "
         "FEEDS['count_table']; sorted(FEEDS); assert 'overdosefare' in FEEDS; "
         "assert 'atom' not in FEEDS; print('bs4' in sys.modules, "
         "'feeds.notices' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(
        KeyError, match="unknown source kind 'atom'; known kinds: count_table, google_trends"
    ):
        feed_class("atom")


def test_duplicate_kind_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        _build(FEEDS["rss"], FEEDS["rss"])


GARBAGE = [
    b"",
    b"\x00" * 10,
    bytes(random.Random(3).randrange(256) for _ in range(5000)),
    "æøå;ÆØÅ\n1;2\n".encode("cp1252"),
    b"<html><body>" + b"<div>" * 3000 + b"</body></html>",
    b"a,b\n" + b"1,2\n" * 20000,
]


@pytest.mark.parametrize("kind", sorted(FEEDS))
class TestContract:
    def test_options_model(self, kind: str) -> None:
        cls = FEEDS[kind]
        assert issubclass(cls.Options, FeedOptions)
        assert cls.produces in ("items", "observations")
        cls.Options()  # every key has a default
        with pytest.raises(ValidationError):
            cls.Options(no_such_key=1)
        assert cls.Options().model_config.get("extra") == "forbid"
        for field in cls.Options.model_fields.values():
            if isinstance(field.default, BaseModel):
                assert field.default.model_config.get("extra") == "forbid"

    @pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
    def test_garbage_gives_problems_not_exceptions(self, kind: str, raw: bytes) -> None:
        cls = FEEDS[kind]
        feed = cls(name="s", options=cls.Options(), substances=SUBSTANCES, region="")
        first = feed.parse(raw, location="g", fetched_at=FETCHED_AT)
        assert isinstance(first, ParseResult)
        assert first == feed.parse(raw, location="g", fetched_at=FETCHED_AT)
        for item in first.items:
            assert item.published_at.tzinfo is not None
