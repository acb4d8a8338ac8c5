from __future__ import annotations

from datetime import date

import pytest

from feeds.panel import TrendPanelFeed, TrendPanelOptions

from .conftest import FETCHED_AT, SUBSTANCES, fixture_bytes


def parse(name: str, raw: bytes | None = None, **options: object):
    feed = TrendPanelFeed(name="panel", options=TrendPanelOptions(**options), substances=SUBSTANCES)
    raw = fixture_bytes("panel", name) if raw is None else raw
    return feed.parse(raw, location=f"p/{name}", fetched_at=FETCHED_AT)


def scores(result) -> list[tuple]:
    return [
        (o.substance, o.dimension, o.period, o.value, o.denominator) for o in result.observations
    ]


def test_long_layout_sums_answers() -> None:
    result = parse("round_long.csv")
    d = date(2026, 3, 15)
    assert scores(result) == [
        ("heroin", "use", d, -1.0, 2.0),
        ("ketamin", "use", d, 3.0, 2.0),
        ("kokain", "availability", d, 1.0, 1.0),
        ("kokain", "use", d, 4.0, 2.0),
    ]
    assert {o.metric for o in result.observations} == {f"score:{o.dimension}" for o in result.observations}
    assert {o.metric for o in result.observations} >= {"score:use"}
    assert [(p.where, p.message.split(" ")[0]) for p in result.problems] == [
        ("p/round_long.csv line 11", "not"),
        ("p/round_long.csv line 12", "unknown"),
        ("p/round_long.csv line 13", "unknown"),
    ]


def test_wide_layout_with_round_date() -> None:
    result = parse("round_wide.csv", wide=True, round_date=date(2025, 9, 30))
    d = date(2025, 9, 30)
    assert scores(result) == [
        ("ketamin", "use", d, 4.0, 2.0),
        ("kokain", "use", d, 3.0, 2.0),
        ("xanor", "availability", d, -3.0, 3.0),
    ]
    assert result.problems == []


def test_wide_layout_with_answer_columns() -> None:
    result = parse(
        "round_wide.csv",
        wide=True,
        round_date=date(2025, 9, 30),
        answer_columns={"kokain:bruk": "kokain:use"},
    )
    assert [o.substance for o in result.observations] == ["kokain"]


@pytest.mark.parametrize(
    ("raw", "options"),
    [
        (fixture_bytes("panel", "broken.csv"), {}),
        (fixture_bytes("panel", "broken.csv"), {"round_date": date(2026, 3, 1)}),
        (b"\x00\xff" * 100, {}),
        (b"", {}),
    ],
)
def test_broken_input_is_a_problem(raw: bytes, options: dict) -> None:
    result = parse("broken.csv", raw=raw, **options)
    assert result.observations == [] and len(result.problems) == 1


def test_parse_twice_gives_identical_results() -> None:
    assert parse("round_long.csv") == parse("round_long.csv")
