from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

import pytest

from feeds.feedxml import normalise_link
from feeds.rss import RssFeed, RssOptions

from .conftest import FETCHED_AT, SUBSTANCES, fixture_bytes


def make(**options: object) -> RssFeed:
    return RssFeed(name="bt", options=RssOptions(**options), substances=SUBSTANCES, region="46")


def parse(name: str, **options: object):
    return make(**options).parse(
        fixture_bytes("rss", name), location=f"tests/{name}", fetched_at=FETCHED_AT
    )


def test_items_from_a_norwegian_feed() -> None:
    result = parse("bt_2026-03.xml")
    got = [(i.title, i.substances) for i in result.items]
    assert got == [
        ("Politiet: Mer crackkokain på gata i Bergen", ("kokain",)),
        ("Ketaminbeslag på Flesland", ("ketamin",)),
        ("Falske Xanor-tabletter i omløp", ("xanor",)),
        ("Heroinmisbrukere får nytt tilbud", ("heroin",)),
    ]
    first = result.items[0]
    assert first.published_at == datetime(2026, 3, 16, 8, 30, tzinfo=UTC)
    assert first.summary == "Sprøyterommet melder om dobbelt så mange som røyker crack."
    assert first.key == "url:https://bt.no/nyheter/lokalt/i/abc123/mer-crack"
    assert first.source == "bt" and first.region == "46" and first.kind == "article"


def test_item_keys_fall_back_to_guid_then_hash() -> None:
    items = {i.title: i for i in parse("bt_2026-03.xml").items}
    assert items["Falske Xanor-tabletter i omløp"].key == "guid@bt:bt-xanor-1"
    assert items["Heroinmisbrukere får nytt tilbud"].key.startswith("sha256:")


def test_item_identities_are_the_guid_within_the_source_then_the_link() -> None:
    items = {i.title: i for i in parse("bt_2026-03.xml").items}
    crack = items["Politiet: Mer crackkokain på gata i Bergen"]
    assert crack.ids == ("guid@bt:bt-abc123", "url:https://bt.no/nyheter/lokalt/i/abc123/mer-crack")
    assert items["Ketaminbeslag på Flesland"].ids == (
        "url:https://bt.no/nyheter/lokalt/i/def456/ketaminbeslag",)
    assert items["Falske Xanor-tabletter i omløp"].ids == ("guid@bt:bt-xanor-1",)
    heroin = items["Heroinmisbrukere får nytt tilbud"]
    assert heroin.ids == (heroin.key,)


def test_a_guid_that_is_a_url_is_normalised_as_a_link_is() -> None:
    def ids(guid: str) -> tuple[str, ...]:
        raw = (f"<rss version='2.0'><channel><title>t</title><item><title>Ketamin</title>"
               f"<guid>{guid}</guid><pubDate>Mon, 02 Mar 2026 09:00:00 +0000</pubDate>"
               "</item></channel></rss>").encode()
        return make().parse(raw, location="x", fetched_at=FETCHED_AT).items[0].ids

    assert ids("http://www.bt.no/a/1/") == ids("https://bt.no/a/1?utm_source=rss") == (
        "guid@bt:https://bt.no/a/1", "url:https://bt.no/a/1")


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://www.BT.no/a/b/?utm_source=x&id=3&fbclid=1#top", "https://bt.no/a/b?id=3"),
        ("http://bt.no/a/b", "https://bt.no/a/b"),
        ("https://bt.no/a?b=2&a=1", "https://bt.no/a?a=1&b=2"),
        ("https://bt.no:8443/a", "https://bt.no:8443/a"),
    ],
)
def test_normalise_link(link: str, expected: str) -> None:
    assert normalise_link(link) == expected


def test_malformed_feed_keeps_entries_and_reports() -> None:
    result = parse("malformed_bare_ampersand.xml")
    assert [i.substances for i in result.items] == [("kokain", "ketamin"), ("heroin",)]
    assert len(result.problems) == 1
    assert "malformed feed" in result.problems[0].message


def test_atom_with_html_title() -> None:
    result = parse("atom.xml")
    assert [(i.title, i.key, i.published_at) for i in result.items] == [
        (
            "Økt bruk av ketamin blant unge",
            "guid@bt:urn:rusinfo:2026:17",
            datetime(2026, 3, 10, 11, 0, tzinfo=UTC),
        )
    ]
    assert result.items[0].summary == "Flere spør om ketamin."


@pytest.mark.parametrize("name", ["not_a_feed.html", "not_a_feed.json", "garbage.bin"])
def test_not_a_feed_is_a_problem(name: str) -> None:
    result = parse(name)
    assert result.items == []
    assert len(result.problems) == 1


@pytest.mark.parametrize("raw", [b"", b"   \n"])
def test_empty_document_is_a_problem(raw: bytes) -> None:
    result = make().parse(raw, location="x", fetched_at=FETCHED_AT)
    assert result.items == [] and result.problems[0].message == "empty document"


def test_billion_laughs_is_refused_with_bounded_memory() -> None:
    raw = fixture_bytes("rss", "billion_laughs.xml")
    tracemalloc.start()
    try:
        result = make().parse(raw, location="lol.xml", fetched_at=FETCHED_AT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.items == []
    assert "ENTITY" in result.problems[0].message
    assert peak < 5_000_000


def test_match_fields_title_only() -> None:
    result = parse("bt_2026-03.xml", match_fields=("title",))
    # "Heroinmisbrukere" is in the title, the crack article's title names crack too
    assert len(result.items) == 4
    raw = b"""<rss version="2.0"><channel><title>t</title><item><title>Nytt tilbud</title>
    <link>https://e.no/1</link><pubDate>Mon, 02 Mar 2026 09:00:00 +0000</pubDate>
    <description>om heroin</description></item></channel></rss>"""
    assert make(match_fields=("title",)).parse(raw, location="x", fetched_at=FETCHED_AT).items == []
    assert len(make().parse(raw, location="x", fetched_at=FETCHED_AT).items) == 1


def test_parse_twice_gives_identical_results() -> None:
    assert parse("bt_2026-03.xml") == parse("bt_2026-03.xml")


def test_options_reject_unknown_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        RssOptions(match_feilds=("title",))  # type: ignore[call-arg]
