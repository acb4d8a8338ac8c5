"""Memory stays bounded by one document: element and depth limits before parsing, and
folder sources read one file at a time."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from feeds.feedxml import refuse_reason
from feeds.fetch import Fetcher
from feeds.text import MAX_ELEMENTS, MAX_XML_DEPTH, markup_too_big


def test_deeply_nested_html_is_refused_before_parsing():
    page = b"<html><body>" + b"<div>" * 2_000_000 + b"</body></html>"
    assert "elements; refused (memory bound)" in markup_too_big(page)
    ok = b"<html><body>" + b"<p>ketamin</p>" * 1000 + b"</body></html>"
    assert markup_too_big(ok) is None


def test_deep_xml_is_refused_but_html_in_cdata_is_not_nesting():
    deep = b"<rss><channel>" + b"<x>" * (MAX_XML_DEPTH + 5) + b"</x>" * (MAX_XML_DEPTH + 5)
    assert "nested deeper" in refuse_reason(deep + b"</channel></rss>")
    items = b"".join(b"<item><title>t</title><description><![CDATA[<p>a<br>b]]></description>"
                     b"</item>" for _ in range(2 * MAX_XML_DEPTH))
    assert refuse_reason(b"<rss><channel>" + items + b"</channel></rss>") is None
    assert MAX_ELEMENTS >= 100_000


def test_notice_page_with_a_million_elements_is_a_problem_not_a_crash():
    from feeds.base import SubstanceSpec
    from feeds.notices import NoticePageFeed, NoticePageOptions

    feed = NoticePageFeed(name="n", options=NoticePageOptions(),
                          substances=[SubstanceSpec(id="ketamin", label="ketamin",
                                                    names=("ketamin",))])
    res = feed.parse(b"<html><body>" + b"<div>" * 1_000_000 + b"</body></html>",
                     location="n.html", fetched_at=datetime(2026, 7, 1, tzinfo=UTC))
    assert res.items == [] and "refused (memory bound)" in res.problems[0].message


def test_folder_source_holds_one_file_at_a_time(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}.csv").write_bytes(b"x" * 2_000_000)
    tracemalloc.start()
    try:
        docs = Fetcher(max_bytes=5_000_000).fetch(str(tmp_path))
        after_listing = tracemalloc.get_traced_memory()[1]
        sizes = [len(d.content) for d in docs]  # each read when asked, then let go
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sizes == [2_000_000] * 10
    assert after_listing < 3_000_000  # ten 2 MB files hashed, none kept
    assert peak < 6_000_000  # one file (plus its copy) at a time, not 20 MB


def test_a_shared_resolver_remembers_a_bounded_number_of_cells(monkeypatch):
    """Tables of one shape share a resolver (made once, not once a poll), whose memory
    of cells it resolved starts afresh past CACHE_MAX, still resolving each right."""
    import feeds.resolve as resolve
    from feeds.base import SubstanceSpec

    subs = [SubstanceSpec(id="ketamin", label="Ketamin", names=("ketamin",)),
            SubstanceSpec(id="kokain", label="Kokain", names=("kokain",))]
    one = resolve.resolver_for(subs, {"K": "ketamin"})
    assert resolve.resolver_for(list(subs), {"K": "ketamin"}) is one  # equal specs: shared
    assert resolve.resolver_for(subs, {"K": "kokain"}) is not one
    monkeypatch.setattr(resolve, "CACHE_MAX", 50)
    for i in range(120):  # ever-new texts, as a hostile table might hold
        assert one.resolve(f"prøve {i} kokain") == "kokain"
        assert len(one.cache) <= 50
    assert one.resolve("K") == "ketamin" and one.resolve("ukjent") is None
