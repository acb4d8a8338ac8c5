"""Trend-panel questionnaires: informants' answers on the five-step scale.

Each answer scores −2 … +2 ("sterk nedgang"/"strong decrease"/-2, "liten nedgang"/-1,
"stabil"/0, "liten økning"/+1, "sterk økning"/+2). "vet ikke"/"don't know"/blank is no
answer. Per survey round, substance and dimension the feed emits one observation with
metric ``score:<dimension>`` (so use and availability answers are separate series): the sum of the answer scores, with the number of answers as denominator.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from feeds.base import (
    DIMENSIONS,
    BaseFeed,
    FeedOptions,
    Observation,
    ParseResult,
    Problem,
)
from feeds.resolve import resolver_for
from feeds.tables import read_table
from feeds.text import normalise, parse_date

#: Answer words (normalised) -> score.
SCALE: dict[str, int] = {
    "sterk nedgang": -2, "stor nedgang": -2, "strong decrease": -2, "large decrease": -2,
    "liten nedgang": -1, "noe nedgang": -1, "small decrease": -1, "slight decrease": -1,
    "stabil": 0, "uendret": 0, "stable": 0, "unchanged": 0, "no change": 0,
    "liten økning": 1, "noe økning": 1, "small increase": 1, "slight increase": 1,
    "sterk økning": 2, "stor økning": 2, "strong increase": 2, "large increase": 2,
}  # fmt: skip
NO_ANSWER = frozenset(
    {
        "",
        "vet ikke",
        "vet ikkje",
        "don't know",
        "dont know",
        "do not know",
        "ikke svart",
        "n/a",
        "na",
        "-",
    }
)
#: Dimension words -> dimension.
DIMENSION_WORDS: dict[str, str] = {
    "use": "use", "bruk": "use",
    "availability": "availability", "tilgjengelighet": "availability", "tilgang": "availability",
    "interest": "interest", "interesse": "interest",
}  # fmt: skip


class PanelColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    substance: str = "substance"
    dimension: str = "dimension"
    answer: str = "answer"
    #: The survey round's date; or set ``round_date``.
    period: str | None = "round"


class TrendPanelOptions(FeedOptions):
    columns: PanelColumns = PanelColumns()
    #: Date of the survey round when the file has no period column.
    round_date: date | None = None
    #: One column per substance × dimension, headed "<substance>:<dimension>" unless
    #: ``answer_columns`` maps headers to "<substance id>:<dimension>".
    wide: bool = False
    answer_columns: dict[str, str] = {}
    delimiter: Literal["auto", ",", ";", "\t"] = "auto"
    substance_aliases: dict[str, str] = {}


class TrendPanelFeed(BaseFeed):
    """Observations (metric ``score``, dimension from the answer) from a trend-panel CSV."""

    kind: ClassVar[str] = "trend_panel"
    Options: ClassVar[type[FeedOptions]] = TrendPanelOptions
    produces: ClassVar[str] = "observations"

    options: TrendPanelOptions

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime) -> ParseResult:
        result = ParseResult()
        opts = self.options
        fname = location.rsplit("/", 1)[-1]
        try:
            rows = read_table(raw, delimiter=opts.delimiter)
        except ValueError as err:
            result.problems.append(Problem(location, str(err)))
            return result
        if not rows:
            result.problems.append(Problem(location, "no header row"))
            return result
        header = [h.strip().casefold() for h in rows[0]]
        col = {h: i for i, h in reversed(list(enumerate(header))) if h}
        resolver = resolver_for(self.substances, opts.substance_aliases)
        cols = opts.columns
        i_period = col.get(cols.period.casefold()) if cols.period else None
        if i_period is None and opts.round_date is None:
            result.problems.append(
                Problem(location, f"no period column {cols.period!r} and no round_date")
            )
            return result

        # (column index, substance id or None, dimension or None)
        answer_cols: list[tuple[int, str | None, str | None]] = []
        if opts.wide:
            mapping = {k.strip().casefold(): v for k, v in opts.answer_columns.items()}
            for i, h in enumerate(header):
                if i == i_period or not h:
                    continue
                spec = mapping.get(h, h if not mapping else None)
                if spec is None:
                    continue
                sub_txt, _, dim_txt = spec.rpartition(":")
                sid = resolver.resolve(sub_txt) if sub_txt else None
                dim = DIMENSION_WORDS.get(normalise(dim_txt))
                if sid is None or dim is None:
                    if ":" in spec:
                        result.problems.append(
                            Problem(
                                f"{location} column {i + 1}",
                                f"{rows[0][i]!r}: not <substance>:<dimension>; ignored",
                            )
                        )
                    continue
                answer_cols.append((i, sid, dim))
            i_sub = i_dim = None
        else:
            missing = [
                c for c in (cols.substance, cols.dimension, cols.answer) if c.casefold() not in col
            ]
            if missing:
                result.problems.append(
                    Problem(
                        location,
                        f"no column {missing[0]!r} (headers: {', '.join(h for h in header if h)})",
                    )
                )
                return result
            i_sub, i_dim = col[cols.substance.casefold()], col[cols.dimension.casefold()]
            answer_cols = [(col[cols.answer.casefold()], None, None)]

        sums: dict[tuple[str, str, date], tuple[int, int, int]] = {}
        for n, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            where = f"{location} line {n}"
            if i_period is not None and _cell(row, i_period):
                try:
                    period = parse_date(_cell(row, i_period))
                except ValueError:
                    result.problems.append(
                        Problem(where, f"not a date: {_cell(row, i_period)[:40]!r}")
                    )
                    continue
            elif opts.round_date is not None:
                period = opts.round_date
            else:
                result.problems.append(Problem(where, "no round date"))
                continue
            for i, sid, dim in answer_cols:
                if sid is None:
                    sid = resolver.resolve(_cell(row, i_sub))
                    if sid is None:
                        result.problems.append(
                            Problem(where, f"unknown substance {_cell(row, i_sub)[:40]!r}; skipped")
                        )
                        continue
                    dim = DIMENSION_WORDS.get(normalise(_cell(row, i_dim)))
                    if dim is None:
                        result.problems.append(
                            Problem(
                                where,
                                f"unknown dimension {_cell(row, i_dim)[:40]!r} "
                                f"(use one of {', '.join(DIMENSIONS)})",
                            )
                        )
                        continue
                try:
                    score = _score(_cell(row, i))
                except ValueError:
                    result.problems.append(
                        Problem(
                            where, f"not an answer on the five-step scale: {_cell(row, i)[:40]!r}"
                        )
                    )
                    continue
                if score is None or sid is None or dim is None:
                    continue
                total, count, first = sums.get((sid, dim, period), (0, 0, n))
                sums[(sid, dim, period)] = (total + score, count + 1, first)

        for (sid, dim, period), (total, count, first) in sorted(sums.items()):
            result.observations.append(
                Observation(
                    source=self.name,
                    substance=sid,
                    period=period,
                    value=float(total),
                    metric=f"score:{dim}",
                    region=self.region,
                    denominator=float(count),
                    dimension=dim,
                    ref=f"{fname} from line {first}",
                )
            )
        return result


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _score(text: str) -> int | None:
    """-2 … 2 for an answer, None for no answer; ``ValueError`` when it is not an answer."""
    t = normalise(text)
    if t in NO_ANSWER:
        return None
    if t in SCALE:
        return SCALE[t]
    value = float(t.replace(",", ".").replace("\u2212", "-"))  # also a minus sign
    if value.is_integer() and -2 <= value <= 2:
        return int(value)
    raise ValueError(text)
