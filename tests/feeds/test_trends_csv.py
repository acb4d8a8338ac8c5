from __future__ import annotations

from datetime import date, timedelta

import pytest

from feeds.trends_csv import TrendsCsvFeed, TrendsCsvOptions, rescale_to_overlap

from .conftest import FETCHED_AT, SUBSTANCES, fixture_bytes


def parse(name: str, raw: bytes | None = None, **options: object):
    feed = TrendsCsvFeed(
        name="gt", options=TrendsCsvOptions(**options), substances=SUBSTANCES, region="NO"
    )
    raw = fixture_bytes("trends", name) if raw is None else raw
    return feed.parse(raw, location=f"t/{name}", fetched_at=FETCHED_AT)


def series(result, substance: str) -> list[tuple[date, float, str | None]]:
    return [(o.period, o.value, o.flag) for o in result.observations if o.substance == substance]


def test_localized_classic_weekly_export() -> None:
    result = parse("no_weekly_localized.csv")
    # Sundays move to the ISO Monday after; kokain + crack columns share a scale and add up
    assert series(result, "kokain") == [
        (date(2026, 1, 5), 50.0, None),
        (date(2026, 1, 12), 54.0, None),
        (date(2026, 1, 19), 1.0, "lt1"),
        (date(2026, 1, 26), 75.0, None),
    ]
    assert series(result, "ketamin") == [
        (date(2026, 1, 5), 0.5, "lt1"),
        (date(2026, 1, 12), 1.0, None),
        (date(2026, 1, 19), 2.0, None),
    ]
    # the empty xanor cell is missing, not 0
    assert [p for p, _, _ in series(result, "xanor")] == [
        date(2026, 1, 5),
        date(2026, 1, 19),
        date(2026, 1, 26),
    ]
    assert {o.metric for o in result.observations} == {"index"}
    assert {o.region for o in result.observations} == {"NO"}
    assert [(p.where, "not a number" in p.message) for p in result.problems] == [
        ("t/no_weekly_localized.csv line 7", True)
    ]


def test_geo_as_region() -> None:
    result = parse("no_weekly_localized.csv", geo_as_region=True)
    assert {o.region for o in result.observations} == {"Norge"}


def test_a_term_compared_across_geographies_keeps_one_geography_per_region() -> None:
    """An export comparing a term in Norway and in Oslo: without ``geo_as_region`` the
    two columns would add up into one series; the second is reported and ignored. Each
    value's ``ref`` names its geography, whichever language named it."""
    raw = (b"Week,kokain: (Norway),kokain: (Oslo),crack: (Norge)\n"
           b"2026-01-04,40,70,5\n2026-01-11,42,75,6\n")
    result = parse("compare.csv", raw)
    assert series(result, "kokain") == [(date(2026, 1, 5), 45.0, None),
                                        (date(2026, 1, 12), 48.0, None)]
    assert [o.ref for o in result.observations] == ["compare.csv line 2 (Norway)",
                                                    "compare.csv line 3 (Norway)"]
    assert [(p.where, p.message) for p in result.problems] == [(
        "t/compare.csv column 3",
        "term 'kokain' of Oslo, but column 2 is of Norway: ignored, lest the two be mixed "
        "(geo_as_region = true keeps each geography as a region)")]
    both = parse("compare.csv", raw, geo_as_region=True)
    assert {(o.region, o.value) for o in both.observations if o.period == date(2026, 1, 5)} \
        == {("Norway", 40.0), ("Oslo", 70.0), ("Norge", 5.0)}


def test_monthly_classic_with_quoted_term() -> None:
    result = parse("monthly_classic.csv")
    assert series(result, "heroin") == [
        (date(2025, 10, 1), 30.0, None),
        (date(2025, 11, 1), 28.0, None),
        (date(2025, 12, 1), 31.0, None),
    ]
    assert series(result, "xanor")[-1] == (date(2025, 12, 1), 0.5, "lt1")


def test_terms_option_maps_columns() -> None:
    result = parse("gtrends_multiTimeline_weekly_2terms.csv", terms={"house pet": "heroin"})
    obs = series(result, "heroin")
    assert obs[0] == (date(2022, 5, 2), 40.0, None)  # 2022-05-01 was a Sunday
    assert all(p.weekday() == 0 for p, _, _ in obs)
    assert len(obs) == 51
    assert [p.message for p in result.problems] == [
        "term 'house plant' names no monitored substance; ignored"
    ]


@pytest.mark.parametrize(
    ("name", "term", "first", "count"),
    [
        ("gtrends_time_quoted_2026.csv", "alnatura", (date(2021, 2, 1), 97.0, None), 61),
        ("gtrends_daily_lt1_resaved.csv", "amber heard", (date(2022, 4, 1), 0.5, "lt1"), 76),
    ],
)
def test_real_layouts(name: str, term: str, first: tuple, count: int) -> None:
    result = parse(name, terms={term: "kokain"})
    obs = series(result, "kokain")
    assert obs[0] == first
    assert len(obs) == count


def test_geomap_export_is_reported_not_read() -> None:
    result = parse("gtrends_geoMap_region.csv", terms={"mongodb": "kokain"})
    assert result.observations == []
    assert "geoMap" in result.problems[0].message


@pytest.mark.parametrize(
    "raw", [b"", b"\x00\x01\x02garbage\xff" * 20, fixture_bytes("trends", "broken.csv")]
)
def test_broken_input_is_a_problem(raw: bytes) -> None:
    result = parse("broken.csv", raw=raw)
    assert result.observations == [] and len(result.problems) == 1


def test_cp1252_and_bom() -> None:
    text = "Uke,kokain: (Sør-Norge)\n2026-01-04,40\n"
    for raw in (text.encode("cp1252"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        result = parse("x.csv", raw=raw, geo_as_region=True)
        assert [(o.region, o.value) for o in result.observations] == [("Sør-Norge", 40.0)]


def test_crlf_and_no_trailing_newline() -> None:
    raw = b'"Time","ketamin"\r\n"2025-12-01",91\r\n"2026-01-01",100'
    assert series(parse("x.csv", raw=raw), "ketamin") == [
        (date(2025, 12, 1), 91.0, None),
        (date(2026, 1, 1), 100.0, None),
    ]


def test_parse_twice_gives_identical_results() -> None:
    assert parse("no_weekly_localized.csv") == parse("no_weekly_localized.csv")


def test_rescale_to_overlap_uses_median_ratio() -> None:
    days = [date(2026, 1, 5) + timedelta(weeks=i) for i in range(6)]
    old = {d: v for d, v in zip(days[:5], [40, 50, 60, 80, 100], strict=True)}
    new = {d: v for d, v in zip(days[1:], [25, 30, 40, 50, 100], strict=True)}
    new[days[4]] = 70  # one week Google revised: the median ignores it
    out = rescale_to_overlap(new, old)
    assert out[days[1]] == pytest.approx(50)
    assert out[days[5]] == pytest.approx(200)
    assert set(out) == set(new)


def test_rescale_without_enough_overlap_returns_new_unchanged() -> None:
    new = {date(2026, 1, 5): 10.0, date(2026, 1, 12): 20.0}
    old = {date(2026, 1, 5): 40.0, date(2026, 1, 12): 80.0}
    assert rescale_to_overlap(new, old) == new
    assert rescale_to_overlap(new, old, min_overlap=2) == {
        date(2026, 1, 5): 40.0,
        date(2026, 1, 12): 80.0,
    }


def test_rescale_ignores_lt1_values() -> None:
    d = [date(2026, 1, 5) + timedelta(weeks=i) for i in range(5)]
    old = {d[0]: 0.5, d[1]: 10, d[2]: 20, d[3]: 30, d[4]: 40}
    new = {d[0]: 5, d[1]: 5, d[2]: 10, d[3]: 15, d[4]: 20}
    assert rescale_to_overlap(new, old)[d[0]] == pytest.approx(10)
