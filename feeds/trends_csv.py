"""Google Trends CSV exports ("Interest over time").

Layouts read (see ``docs/sources.md``):

* classic ``multiTimeline.csv``: a preamble ("Category: All categories" or its
  translation), a blank line, then ``Week|Month|Day,<term>: (<geo>),...``;
* the newer quoted layout: ``"Time","<term>"`` without a preamble or a geo suffix;
* spreadsheet re-saves: ``M/D/YYYY`` dates, CRLF, no preamble; cells separated by
  semicolons (a Norwegian Excel) or tabs (Excel's UTF-16 "Unicode text").

An hourly export (several rows a day) is a problem and not read.

Values are 0–100 relative to the export's own peak. ``<1`` is stored as 0.5 with flag
``lt1``; an empty cell is missing (no observation). Weekly rows (Google's weeks start on
Sunday) are stored on the ISO-week Monday: a Sunday moves to the next day, any other
weekday to its week's Monday. Monthly rows are stored on the 1st. A row of a period
still running when the file is read (Google's partial data, or a row an ``isPartial``
column marks ``True``) is left out.

Because each export has its own scale, :func:`rescale_to_overlap` puts a new export on
the scale of what is stored, using the periods both cover. Each value's ``ref`` names
the export's geography (:func:`geo_of`), so that the runner keeps a series to one.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import ClassVar

from feeds.base import BaseFeed, FeedOptions, Observation, ParseResult, Problem
from feeds.matching import SubstanceMatcher
from feeds.text import decode_bytes, looks_binary, parse_date, period_end

_TERM = re.compile(r"^(?P<term>.*):\s*\((?P<paren>[^()]*)\)\s*$")
_RANGE = re.compile(r"\d.*[-–].*\d")  # "(4/21/23 - 4/21/24)": a geoMap date range, not a geo
_GEO_HEADERS = {"region", "country", "city", "metro", "subregion", "dma", "fylke", "land", "by"}
_MAX_ROWS = 100_000
_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}")
_REF_GEO = re.compile(r" line \d+ \((.+)\)$")
#: A geography's names in the Trends page's other languages, by its English name.
_GEO_NAMES = {"norge": "norway", "noreg": "norway", "hele verden": "worldwide"}


class TrendsCsvOptions(FeedOptions):
    #: Column term -> substance id (case-insensitive). Terms not listed are matched
    #: against the substances' names and slang; columns naming none are reported.
    terms: dict[str, str] = {}
    #: Use the export's geo ("Norway", "Vestland") as the observation's region instead of
    #: the source's region.
    geo_as_region: bool = False
    #: Store a new series' daily rows ("past 90 days") as days: a daily series. By
    #: default they are read as Google's whole weeks, and the series is weekly.
    daily: bool = False


class TrendsCsvFeed(BaseFeed):
    """Search interest per substance from a Google Trends export (metric ``index``).

    Several columns that map to the same substance (e.g. "kokain" and "crack") are added
    up: all columns of one export share one scale.
    """

    kind: ClassVar[str] = "google_trends"
    Options: ClassVar[type[FeedOptions]] = TrendsCsvOptions
    produces: ClassVar[str] = "observations"

    options: TrendsCsvOptions

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime) -> ParseResult:
        result = ParseResult()
        problems = result.problems
        if not raw.strip():
            problems.append(Problem(location, "empty document"))
            return result
        if looks_binary(raw):
            problems.append(Problem(location, "binary data, not a CSV export"))
            return result
        text = decode_bytes(raw)[0].lstrip("\ufeff")
        # Google's commas, else a spreadsheet's own separator: a Norwegian Excel saves
        # with semicolons (and decimal commas), its "Unicode text" with tabs
        for delimiter in (",", ";", "\t"):
            try:
                rows = _limited(csv.reader(io.StringIO(text), delimiter=delimiter, strict=False))
            except csv.Error as err:
                problems.append(Problem(location, f"not CSV: {err}"))
                return result
            if (found := _find_header(rows)) is not None:
                break
        else:
            problems.append(Problem(location, "no header row with a period column and terms "
                                    "found (cells separated by commas, semicolons or tabs)"))
            return result
        hi, header = found
        if header[0].strip().casefold() in _GEO_HEADERS or any(
            (m := _TERM.match(h)) and _RANGE.search(m["paren"]) for h in header[1:]
        ):
            problems.append(
                Problem(location, "values by region (geoMap export), not over time; not read")
            )
            return result

        matcher = SubstanceMatcher(self.substances)
        terms = {k.strip().casefold(): v for k, v in self.options.terms.items()}
        columns: list[tuple[int, str, str, str]] = []  # (index, term, substance, region)
        geos: dict[tuple[str, str], tuple[str, int]] = {}  # a series' geo, first column
        partial = None  # the column marking rows of partial data ("isPartial", pytrends)
        for ci, cell in enumerate(header[1:], start=1):
            m = _TERM.match(cell)
            term, geo = (m["term"].strip(), m["paren"].strip()) if m else (cell.strip(), "")
            if term.casefold() == "ispartial":
                partial = ci
                continue
            sid = terms.get(term.casefold())
            if sid is None:
                ids = matcher.match(term)
                sid = ids[0] if len(ids) == 1 else None
            if sid is None:
                problems.append(
                    Problem(
                        f"{location} column {ci + 1}",
                        f"term {term!r} names no monitored substance; ignored",
                    )
                )
                continue
            region = geo if self.options.geo_as_region and geo else self.region
            first = geos.setdefault((sid, region), (geo, ci))
            if not same_geo(first[0], geo):  # a term compared across geographies
                problems.append(Problem(
                    f"{location} column {ci + 1}",
                    f"term {term!r} of {geo or 'no geography'}, but column {first[1] + 1} "
                    f"is of {first[0] or 'none'}: ignored, lest the two be mixed "
                    "(geo_as_region = true keeps each geography as a region)"))
                continue
            columns.append((ci, term, sid, region))
        if not columns:
            return result

        body = [
            (hi + 2 + n, r) for n, r in enumerate(rows[hi + 1 :]) if r and any(c.strip() for c in r)
        ]
        dated: list[tuple[int, date, list[str]]] = []
        for line, r in body:
            try:
                dated.append((line, parse_date(r[0]), r))
            except ValueError:
                problems.append(Problem(f"{location} line {line}", f"not a date: {r[0][:40]!r}"))
        if hourly := _hourly(dated):
            problems.append(Problem(
                f"{location} line {hourly}", "several rows a day (an hourly export, a range "
                "of 7 days or less): not read; export a range of more than 7 days for daily "
                "values, of about 9 months to 5 years for weekly ones"))
            return result
        granularity = _granularity(header[0], [d for _, d, _ in dated])

        sums: dict[tuple[str, str, date], list[tuple[float, bool, int]]] = {}
        for line, day, r in dated:
            if (period_end(day, granularity) or day) > fetched_at.date() or (
                    partial is not None and partial < len(r)
                    and r[partial].strip().casefold() == "true"):
                continue  # Google's count of a period still running: partial data
            period = _period(day, granularity)
            for ci, term, sid, region in columns:
                cell = r[ci].strip() if ci < len(r) else ""
                if cell == "":
                    continue
                if cell.replace(" ", "") == "<1":
                    value, lt1 = 0.5, True
                else:
                    try:
                        value, lt1 = float(cell.replace(",", ".")), False
                    except ValueError:
                        problems.append(
                            Problem(
                                f"{location} line {line}", f"{term}: not a number: {cell[:20]!r}"
                            )
                        )
                        continue
                    if not 0 <= value <= 100:
                        problems.append(
                            Problem(f"{location} line {line}", f"{term}: {cell} outside 0-100")
                        )
                        continue
                sums.setdefault((sid, region, period), []).append((value, lt1, line))
        name = location.rsplit("/", 1)[-1]
        for (sid, region, period), parts in sums.items():
            geo = geos[sid, region][0]
            result.observations.append(
                Observation(
                    source=self.name,
                    substance=sid,
                    period=period,
                    value=sum(v for v, _, _ in parts),
                    metric="index",
                    region=region,
                    flag="lt1" if all(lt for _, lt, _ in parts) else None,
                    ref=f"{name} line {parts[0][2]}" + (f" ({geo})" if geo else ""),
                )
            )
        result.observations.sort(key=lambda o: (o.substance, o.region, o.period))
        return result


def _limited(reader: Iterator[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for n, row in enumerate(reader):
        if n >= _MAX_ROWS:
            break
        out.append(row)
    return out


def _find_header(rows: list[list[str]]) -> tuple[int, list[str]] | None:
    """The first row of >= 2 cells whose next non-empty row has as many cells and a date."""
    for i, row in enumerate(rows[:50]):
        if len(row) < 2 or not row[0].strip():
            continue
        nxt = next((r for r in rows[i + 1 :] if r and any(c.strip() for c in r)), None)
        if nxt is None or len(nxt) != len(row):
            continue
        try:
            parse_date(row[0])
            continue  # a data row, not a header
        except ValueError:
            pass
        return i, row
    return None


def _hourly(dated: list[tuple[int, date, list[str]]]) -> int | None:
    """The line of the first row of an hourly export ("2025-03-16T14") whose day a row
    before it has; None when no two rows with an hour share a day."""
    seen: set[date] = set()
    for line, day, r in dated:
        if _HOUR.match(r[0].strip().strip('"')):
            if day in seen:
                return line
            seen.add(day)
    return None


def _granularity(label: str, days: list[date]) -> str:
    low = label.strip().casefold()
    if low in ("week", "uke", "woche", "semaine", "semana", "vecka", "uge"):
        return "week"
    if low in ("month", "måned", "monat", "mois", "mes", "månad", "tháng", "月份"):
        return "month"
    if low in ("day", "dag", "tag", "jour", "día"):
        return "day"
    steps = sorted((b - a).days for a, b in pairwise(days) if b > a)
    if not steps:
        return "day"
    step = steps[len(steps) // 2]
    if step == 7:
        return "week"
    if 28 <= step <= 31:
        return "month"
    return "day"


def _period(day: date, granularity: str) -> date:
    if granularity == "week":
        if day.weekday() == 6:  # Google's weeks start on Sunday: store the ISO Monday after
            return day + timedelta(days=1)
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def rescale_to_overlap(
    new: dict[date, float], old: dict[date, float], *, min_overlap: int = 4
) -> dict[date, float]:
    """Put a new export on the scale of stored values.

    Each export is scaled to its own peak (100), so the same week can read 40 in one
    export and 80 in the next. The factor is the median of ``old / new`` over the periods
    both have, counting only values of at least 1 (``<1`` cells carry no scale). The
    median resists a few weeks Google revised. With fewer than ``min_overlap`` such
    periods there is no trustworthy factor and ``new`` is returned unchanged.

    Returns a new dict with every value of ``new`` multiplied by the factor.
    """
    ratios = [old[d] / new[d] for d in new.keys() & old.keys() if new[d] >= 1 and old[d] >= 1]
    if len(ratios) < min_overlap:
        return dict(new)
    factor = statistics.median(ratios)
    return {d: v * factor for d, v in new.items()}


#: The words for a step in a problem: an export's rows and the range Google gives them for.
STEP_WORDS = {
    "day": ("daily", "a range under about 9 months"),
    "week": ("weekly", "a range of about 9 months to 5 years"),
    "month": ("monthly", "a range over 5 years"),
}


def step_of(periods: Iterable[date]) -> str | None:
    """``day``, ``week`` or ``month``: the spacing of most of a series' periods (None for
    fewer than two)."""
    days = sorted(set(periods))
    return _granularity("", days) if len(days) > 1 else None


def whole_weeks(days: Iterable[date]) -> dict[date, list[date]]:
    """The days of each of Google's weeks that ``days`` cover whole (all seven), by the
    period its weekly row is stored on; a week the days only partly cover (the first
    and the last of an export, the running one) is left out."""
    weeks: dict[date, list[date]] = {}
    for day in sorted(set(days)):
        weeks.setdefault(_period(day, "week"), []).append(day)
    return {w: ds for w, ds in weeks.items() if len(ds) == 7}


def geo_of(ref: str | None) -> str | None:
    """The geography an observation's ``ref`` names ("multiTimeline.csv line 4 (Norway)":
    Norway); None when it names none (an export without geos, or stored before refs
    named them)."""
    m = _REF_GEO.search(ref or "")
    return m[1] if m else None


def same_geo(a: str, b: str) -> bool:
    """Whether two exports' geographies are one, whichever language the Trends page
    named them in ("Norway", "Norge")."""
    a, b = a.strip().casefold(), b.strip().casefold()
    return _GEO_NAMES.get(a, a) == _GEO_NAMES.get(b, b)
