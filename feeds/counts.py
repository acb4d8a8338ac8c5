"""Tables of counts per substance and period: lab positives, ambulance call-outs, seizures,
consumption-room visits, pharmacy sales, treatment intake, distribution, wastewater.

Long layout: one row per period × substance (× region), columns named in ``columns``.
Wide layout (``wide = true``): one row per period, one column per substance.
A bad row is reported with its file and line and skipped; the rest is read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from feeds.base import BaseFeed, FeedOptions, Observation, ParseResult, Problem
from feeds.resolve import resolver_for
from feeds.tables import MAX_ROWS, read_table
from feeds.text import parse_date, parse_number, to_period


class CountColumns(BaseModel):
    """Header names of the columns (matched case-insensitively)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str = "period"
    substance: str = "substance"
    #: The value column; or use ``values`` for several metrics per row.
    value: str | None = "value"
    #: Column -> metric, e.g. {"Antall" = "count", "Mengde (g)" = "quantity"}.
    values: dict[str, str] = {}
    denominator: str | None = None
    region: str | None = None
    #: A column holding the metric name per row (overrides the ``metric`` option).
    metric: str | None = None


class CountTableOptions(FeedOptions):
    columns: CountColumns = CountColumns()
    #: One column per substance instead of a substance column.
    wide: bool = False
    #: Wide layout: column header -> substance id (default: resolve headers like names).
    substance_columns: dict[str, str] = {}
    metric: str = "count"
    #: Period of the observations: rows are moved to the week's Monday, the month's 1st,
    #: the day, or kept ``as_is``. Rows landing on the same period are combined.
    period: Literal["week", "month", "day", "as_is"] = "as_is"
    #: How rows landing on one period combine: ``sum`` (counts) or ``mean`` (concentrations).
    aggregate: Literal["sum", "mean"] = "sum"
    #: What a later file giving a period already read means: ``replace``, the period's
    #: whole new value (a correction file); ``add``, one more share of it (one file a day
    #: summed into weeks): a period's value is then aggregated over the latest version
    #: of every file giving it (kept per file by the store).
    files: Literal["replace", "add"] = "replace"
    #: A source read from one file or address (not a folder or glob) whose new version no
    #: longer gives a period inside the span it gives for a series (between its first and
    #: last period): ``withdraw``, the stored value is withdrawn (a revision to missing);
    #: ``keep``, it stays. Periods outside that span (a table showing a window) stay.
    removed_rows: Literal["withdraw", "keep"] = "withdraw"
    #: strptime format of the period column; default: ISO dates, ISO weeks, DD.MM.YYYY, ...
    date_format: str | None = None
    delimiter: Literal["auto", ",", ";", "\t"] = "auto"
    #: Numbers use a decimal comma ("3,5"); default: guessed per cell.
    decimal_comma: bool | None = None
    #: Cell text -> substance id ("Kokain" = "kokain"); default: ids, labels, then names.
    substance_aliases: dict[str, str] = {}
    #: XLSX sheet name (default: the first sheet).
    sheet: str | None = None
    #: 1-based row holding the headers (rows above it are a preamble).
    header_row: int = Field(default=1, ge=1)


class CountTableFeed(BaseFeed):
    """Observations from a CSV or XLSX table of counts per substance per period."""

    kind: ClassVar[str] = "count_table"
    Options: ClassVar[type[FeedOptions]] = CountTableOptions
    produces: ClassVar[str] = "observations"

    options: CountTableOptions

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime) -> ParseResult:
        result = ParseResult()
        opts = self.options
        fname = location.rsplit("/", 1)[-1]
        try:
            rows = read_table(raw, delimiter=opts.delimiter, sheet=opts.sheet)
        except ValueError as err:
            result.problems.append(Problem(location, str(err)))
            return result
        if len(rows) < opts.header_row:
            result.problems.append(Problem(location, "no header row"))
            return result
        header = [h.strip().casefold() for h in rows[opts.header_row - 1]]
        col = {h: i for i, h in reversed(list(enumerate(header))) if h}
        cols = opts.columns

        def index(name: str | None, what: str, required: bool) -> int | None:
            if name is None:
                return None
            i = col.get(name.strip().casefold())
            if i is None and required:
                raise KeyError(
                    f"no {what} column {name!r} (headers: {', '.join(h for h in header if h)})"
                )
            return i

        resolver = resolver_for(self.substances, opts.substance_aliases)
        try:
            i_period = index(cols.period, "period", True)
            i_den = index(cols.denominator, "denominator", True)
            i_region = index(cols.region, "region", True)
            i_metric = index(cols.metric, "metric", True)
            value_cols: list[tuple[int, str, str | None]] = []  # (index, metric, substance)
            i_sub: int | None = None
            if opts.wide:
                used = {i_period, i_den, i_region, i_metric}
                wanted = {k.strip().casefold(): v for k, v in opts.substance_columns.items()}
                for i, h in enumerate(header):
                    if i in used or not h:
                        continue
                    sid = wanted.get(h) if wanted else resolver.resolve(h)
                    if sid is None:
                        if not wanted:
                            result.problems.append(
                                Problem(
                                    f"{location} column {i + 1}",
                                    f"{rows[opts.header_row - 1][i]!r} names no monitored substance; "
                                    "ignored",
                                )
                            )
                        continue
                    value_cols.append((i, opts.metric, sid))
                missing = [k for k in wanted if k not in col]
                if missing:
                    raise KeyError(f"no substance column {missing[0]!r}")
            else:
                i_sub = index(cols.substance, "substance", True)
                if cols.values:
                    value_cols = [
                        (index(c, "value", True), m, None) for c, m in cols.values.items()
                    ]  # type: ignore[misc]
                else:
                    value_cols = [(index(cols.value, "value", True), opts.metric, None)]  # type: ignore[list-item]
        except KeyError as err:
            result.problems.append(Problem(location, str(err.args[0])))
            return result

        groups: dict[tuple[str, str, str, date], list[tuple[float, float | None, int]]] = {}
        need = max([i for i in (i_period, i_sub, *(c[0] for c in value_cols)) if i is not None])
        # a table repeats its dates row after row: each distinct text is parsed once
        # (a failure is not kept, so each bad row says so)
        periods: dict[str, date] = {}
        unread: set[date] | None = result.unread_periods
        if len(rows) >= MAX_ROWS:
            unread = None  # cut short: the periods of its rows left unread are not known
        for n, row in enumerate(rows[opts.header_row :], start=opts.header_row + 1):
            if not "".join(row).strip():
                continue
            where = f"{location} line {n}"
            if len(row) <= need:
                result.problems.append(
                    Problem(where, f"{len(row)} cells, expected at least {need + 1}")
                )
                unread = None
                continue
            text = row[i_period]  # type: ignore[index]
            period = periods.get(text)  # type: ignore[assignment]
            if period is None:
                try:
                    day = parse_date(text, opts.date_format)
                except ValueError:
                    result.problems.append(Problem(where, f"not a date: {text[:40]!r}"))
                    unread = None
                    continue
                period = periods[text] = to_period(day, opts.period)
            in_row = row[i_region].strip() if i_region is not None and i_region < len(row) else ""
            region = in_row or self.region
            if i_sub is not None:
                cell = row[i_sub].strip()
                sid_row = resolver.resolve(cell)  # (it keeps what it resolved)
                if sid_row is None:
                    result.problems.append(
                        Problem(where, f"unknown substance {cell[:40]!r}; row skipped")
                    )
                    continue
            denominator = None
            if i_den is not None and i_den < len(row) and row[i_den].strip():
                try:
                    denominator = parse_number(row[i_den], decimal_comma=opts.decimal_comma)
                except ValueError:
                    result.problems.append(
                        Problem(where, f"denominator not a number: {row[i_den][:20]!r}")
                    )
                    if unread is not None:
                        unread.add(period)
                    continue
            row_metric = (
                row[i_metric].strip() if i_metric is not None and i_metric < len(row) else ""
            )
            for i, metric, sid in value_cols:
                cell = row[i].strip()
                if not cell or cell in ("-", "..", "NA", "na", "n/a"):
                    continue
                try:
                    value = parse_number(cell, decimal_comma=opts.decimal_comma)
                except ValueError:
                    result.problems.append(Problem(where, f"not a number: {cell[:20]!r}"))
                    if unread is not None:
                        unread.add(period)
                    continue
                key = (sid or sid_row, region, row_metric or metric, period)
                groups.setdefault(key, []).append((value, denominator, n))

        result.unread_periods = unread
        for (sid, region, metric, period), parts in sorted(groups.items()):
            values = [v for v, _, _ in parts]
            dens = [d for _, d, _ in parts if d is not None]
            if opts.aggregate == "mean":
                value = sum(values) / len(values)
                den = sum(dens) / len(dens) if dens else None
            else:
                value = sum(values)
                den = sum(dens) if dens else None
            lines = (
                f"line {parts[0][2]}" if len(parts) == 1 else f"lines {parts[0][2]}-{parts[-1][2]}"
            )
            result.observations.append(
                Observation(
                    source=self.name,
                    substance=sid,
                    period=period,
                    value=value,
                    metric=metric,
                    region=region,
                    denominator=den,
                    ref=f"{fname} {lines}",
                    rows=len(values),
                    denominator_rows=len(dens),
                )
            )
        return result
