from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from feeds.counts import CountTableFeed, CountTableOptions

from .conftest import FETCHED_AT, SUBSTANCES, fixture_bytes


def parse(name: str, raw: bytes | None = None, **options: object):
    feed = CountTableFeed(
        name="lab", options=CountTableOptions(**options), substances=SUBSTANCES, region="46"
    )
    raw = fixture_bytes("counts", name) if raw is None else raw
    return feed.parse(raw, location=f"data/{name}", fetched_at=FETCHED_AT)


def rows(result) -> list[tuple]:
    return [
        (o.substance, o.period, o.value, o.denominator, o.metric, o.region)
        for o in result.observations
    ]


LAB = {
    "columns": {
        "period": "Uke",
        "substance": "Stoff",
        "value": "Positive",
        "denominator": "Analyser",
    }
}


def test_lab_positives_semicolon_decimal_comma_iso_weeks() -> None:
    result = parse("lab_positives.csv", **LAB)
    assert rows(result) == [
        ("ketamin", date(2026, 3, 2), 12.0, 412.0, "count", "46"),
        ("kokain", date(2026, 3, 2), 31.0, 412.0, "count", "46"),
        ("kokain", date(2026, 3, 9), 35.0, 398.0, "count", "46"),
        ("kokain", date(2026, 3, 16), 3.5, 1020.0, "count", "46"),
        ("xanor", date(2026, 3, 2), 4.0, 412.0, "count", "46"),
    ]
    assert [(p.where, p.message.split(":")[0]) for p in result.problems] == [
        ("data/lab_positives.csv line 5", "unknown substance 'Amfetamin'; row skipped"),
        ("data/lab_positives.csv line 7", "not a number"),
        ("data/lab_positives.csv line 8", "2 cells, expected at least 3"),
    ]
    assert result.observations[0].ref == "lab_positives.csv line 3"


def test_aliases_override() -> None:
    result = parse("lab_positives.csv", substance_aliases={"Amfetamin": "heroin"}, **LAB)
    assert ("heroin", date(2026, 3, 2), 20.0, 412.0, "count", "46") in rows(result)


def test_cp1252_monthly_with_region_column() -> None:
    result = parse(
        "lab_cp1252.csv",
        columns={
            "period": "Måned",
            "substance": "Stoff",
            "value": "Utrykninger",
            "region": "Område",
        },
        period="month",
    )
    assert rows(result) == [
        ("ketamin", date(2026, 2, 1), 4.0, None, "count", "Sør-Vest"),
        ("kokain", date(2026, 1, 1), 12.0, None, "count", "Øst"),
        ("kokain", date(2026, 2, 1), 15.0, None, "count", "Øst"),
    ]
    assert result.problems == []


def test_xlsx_with_preamble_and_two_metrics() -> None:
    result = parse(
        "seizures.xlsx",
        header_row=3,
        columns={
            "period": "Måned",
            "substance": "Stoff",
            "value": None,
            "values": {"Antall beslag": "count", "Mengde (g)": "quantity"},
        },
    )
    assert rows(result) == [
        ("ketamin", date(2026, 1, 1), 6.0, None, "count", "46"),
        ("ketamin", date(2026, 1, 1), 812.0, None, "quantity", "46"),
        ("kokain", date(2026, 1, 1), 14.0, None, "count", "46"),
        ("kokain", date(2026, 2, 1), 19.0, None, "count", "46"),
        ("kokain", date(2026, 1, 1), 5230.5, None, "quantity", "46"),
    ]
    assert [p.where for p in result.problems] == ["data/seizures.xlsx line 7"]


def test_wide_wastewater_mean_per_week() -> None:
    result = parse(
        "wastewater_wide.csv",
        wide=True,
        columns={"period": "date", "region": "city"},
        metric="concentration",
        period="week",
        aggregate="mean",
    )
    got = {(o.substance, o.region): o.value for o in result.observations}
    assert got == {
        ("kokain", "Oslo"): pytest.approx(345.5),
        ("ketamin", "Oslo"): pytest.approx((20.1 + 19.9 + 2000) / 3),
        ("kokain", "Bergen"): 200.0,
        ("ketamin", "Bergen"): 10.0,
    }
    assert {o.period for o in result.observations} == {date(2025, 10, 6)}
    assert [p.message for p in result.problems] == ["'MDMA' names no monitored substance; ignored"]


def test_wide_with_explicit_substance_columns() -> None:
    result = parse(
        "wastewater_wide.csv",
        wide=True,
        columns={"period": "date", "region": "city"},
        substance_columns={"ketamin": "ketamin"},
        period="day",
    )
    assert {o.substance for o in result.observations} == {"ketamin"}
    assert result.problems == []


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("broken.csv", None, "no period column 'Uke'"),
        ("broken.xlsx", None, "not a readable XLSX workbook"),
        ("g.bin", b"\x00\x01\x02\x03" * 100, "binary data"),
        ("e.csv", b"", "empty document"),
    ],
)
def test_broken_files(name: str, raw: bytes | None, message: str) -> None:
    result = parse(name, raw=raw, **LAB)
    assert result.observations == []
    assert len(result.problems) == 1 and message in result.problems[0].message


def test_delimiter_and_decimal_comma_forced() -> None:
    raw = b'period,substance,value\n2026-01-05,kokain,"1,5"\n'
    assert parse("x.csv", raw=raw, delimiter=",", decimal_comma=True).observations[0].value == 1.5
    assert parse("x.csv", raw=raw, delimiter=",", decimal_comma=False).observations[0].value == 15.0


def test_date_format() -> None:
    raw = b"period;substance;value\n05/01/2026;ketamin;3\n"
    assert parse("x.csv", raw=raw, date_format="%d/%m/%Y").observations[0].period == date(
        2026, 1, 5
    )


def test_parse_twice_gives_identical_results() -> None:
    assert parse("lab_positives.csv", **LAB) == parse("lab_positives.csv", **LAB)


def test_unknown_option_rejected() -> None:
    with pytest.raises(ValidationError):
        CountTableOptions(colums={})  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CountTableOptions(columns={"periode": "x"})


def test_empty_region_cell_falls_back_to_source_region() -> None:
    raw = b"period;substance;value;city\n2026-01-05;kokain;3;\n2026-01-05;kokain;4;Oslo\n"
    result = parse("x.csv", raw=raw, columns={"region": "city"})
    assert sorted((o.region, o.value) for o in result.observations) == [("46", 3.0), ("Oslo", 4.0)]


def test_repeated_dates_and_numbers_each_row_on_its_own() -> None:
    """A date text seen before is not parsed again, but a bad one is reported on every
    row it is on; whole numbers, numbers with a thousands space and decimals all read."""
    raw = (b"period;substance;value\n2026-01-05;kokain;007\n2026-01-05;ketamin;1 234\n"
           b"2026-13-05;kokain;3\n2026-13-05;ketamin;4\n2026-01-12;kokain;2,5\n"
           b"2026-01-12;ketamin;99999999999999999999\n")
    result = parse("x.csv", raw=raw)
    assert sorted((o.substance, o.period.isoformat(), o.value) for o in result.observations) == [
        ("ketamin", "2026-01-05", 1234.0), ("ketamin", "2026-01-12", 1e20),
        ("kokain", "2026-01-05", 7.0), ("kokain", "2026-01-12", 2.5)]
    bad = [p for p in result.problems if "not a date" in p.message]
    assert [p.where for p in bad] == ["data/x.csv line 4", "data/x.csv line 5"]
