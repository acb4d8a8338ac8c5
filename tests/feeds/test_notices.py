from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feeds.notices import NoticePageFeed, NoticePageOptions

from .conftest import FETCHED_AT, SUBSTANCES, fixture_bytes

URL = "https://overdosefare.no/varsler"


def parse(name: str, raw: bytes | None = None, location: str = URL, **options: object):
    feed = NoticePageFeed(
        name="overdosefare", options=NoticePageOptions(**options), substances=SUBSTANCES
    )
    raw = fixture_bytes("notices", name) if raw is None else raw
    return feed.parse(raw, location=location, fetched_at=FETCHED_AT)


def summary(result) -> list[tuple[str, str, tuple[str, ...], str | None]]:
    return [
        (i.title, i.published_at.date().isoformat(), i.substances, i.link) for i in result.items
    ]


def test_listing_page() -> None:
    result = parse("listing.html")
    assert summary(result) == [
        (
            "Ksalol-tabletter inneholdt nitazener",
            "2026-02-12",
            ("xanor",),
            "https://overdosefare.no/varsler/ksalol-med-nitazener",
        ),
        (
            "Ketamin med høy styrke",
            "2026-03-03",
            ("ketamin",),
            "https://overdosefare.no/varsler/hoy-styrke-ketamin?utm_source=nyhetsbrev",
        ),
        (
            "Falske oksykodon-tabletter",
            "2026-03-19",
            (),
            "https://overdosefare.no/varsler/falske-oxy",
        ),
    ]
    assert result.problems == []
    assert {i.kind for i in result.items} == {"notice"}
    assert result.items[1].key == "url:https://overdosefare.no/varsler/hoy-styrke-ketamin"
    assert "nalokson" in result.items[0].summary
    assert result.items[0].published_at == datetime(2026, 2, 12, tzinfo=UTC)


def test_unmatched_notices_can_be_dropped() -> None:
    result = parse("listing.html", keep_unmatched=False)
    assert [i.title for i in result.items] == [
        "Ksalol-tabletter inneholdt nitazener",
        "Ketamin med høy styrke",
    ]


def test_changed_layout_falls_back_to_headings() -> None:
    result = parse("changed_layout.html")
    assert summary(result) == [
        (
            "Crack blandet med levamisol",
            "2026-03-05",
            ("kokain",),
            "https://overdosefare.no/varsler/crack-levamisol",
        ),
        ("Heroin med fentanyl", "2026-03-14", ("heroin",), None),
    ]
    assert len(result.problems) == 1 and "layout" in result.problems[0].message


def test_changed_layout_with_updated_selectors() -> None:
    result = parse(
        "changed_layout.html",
        item_selector="li.warning-card",
        title_selector=".warning-card__title",
        date_selector=".warning-card__date",
        text_selector=".warning-card__body",
    )
    assert [i.title for i in result.items] == ["Crack blandet med levamisol", "Heroin med fentanyl"]
    assert result.problems == []
    assert result.items[1].summary == "Det er funnet fentanyl i heroin solgt i Trondheim."


def test_broken_page_keeps_what_it_can() -> None:
    result = parse("broken.html")
    titles = [i.title for i in result.items]
    assert "Xanor-lignende tabletter med bromazolam" in titles
    assert "Ketamin & MDMA på festival" in titles
    assert "Varsel uten dato" not in titles
    messages = " | ".join(p.message for p in result.problems)
    assert "no date" in messages and "no title" in messages
    items = {i.title: i for i in result.items}
    assert items["Xanor-lignende tabletter med bromazolam"].substances == ("xanor",)
    assert items["Ketamin & MDMA på festival"].published_at.date().isoformat() == "2026-01-22"


def test_atom_feed_is_delegated_to_feedparser() -> None:
    result = parse("feed.xml", location="https://overdosefare.no/varsler.atom")
    assert summary(result) == [
        (
            "Ketamin med høy styrke",
            "2026-03-03",
            ("ketamin",),
            "https://overdosefare.no/varsler/hoy-styrke-ketamin",
        ),
        ("Nitazener i omløp", "2026-02-01", (), "https://overdosefare.no/varsler/nitazener"),
    ]
    assert {i.kind for i in result.items} == {"notice"}


def test_same_notice_on_page_and_feed_has_one_key() -> None:
    page = {i.title: i.key for i in parse("listing.html").items}
    feed = {i.title: i.key for i in parse("feed.xml").items}
    assert page["Ketamin med høy styrke"] == feed["Ketamin med høy styrke"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\x13garbage" * 30,
        b"<html><body><p>Ingen varsler her.</p></body></html>",
        fixture_bytes("rss", "billion_laughs.xml"),
    ],
)
def test_bad_input_is_a_problem(raw: bytes) -> None:
    result = parse("x", raw=raw)
    assert result.items == [] and len(result.problems) == 1


def test_local_file_links_stay_relative() -> None:
    result = parse("listing.html", location="tests/fixtures/notices/listing.html")
    assert result.items[0].link == "/varsler/ksalol-med-nitazener"
    assert result.items[0].key.startswith("sha256:")


def test_parse_twice_gives_identical_results() -> None:
    assert parse("listing.html") == parse("listing.html")


def test_bad_selector_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is not a CSS selector"):
        NoticePageOptions(item_selector="article[")
