"""Shared types for source adapters.

Parsing is pure: a feed gets the raw bytes of one document (a file, an HTTP body) and
returns a :class:`ParseResult`. Fetching is done elsewhere (:mod:`feeds.fetch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

DIMENSIONS = ("use", "availability", "interest")


@dataclass(frozen=True)
class SubstanceSpec:
    """A monitored substance as the feeds see it (built from config).

    ``names`` match anywhere in a word (so compounds and inflections match:
    "kokain" finds "kokainen", "crackkokain"); ``slang`` words match only as whole
    words and, when ``slang_needs_context`` is true, only if a drug-context word
    appears in the same text.
    """

    id: str
    label: str
    names: tuple[str, ...]
    slang: tuple[str, ...] = ()
    slang_needs_context: bool = True
    exclude: tuple[str, ...] = ()
    #: Context words of this substance only (besides the shared drug-context words).
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """One value of one series for one period.

    The natural key is ``(source, substance, region, metric, period)``; storing the
    same key twice updates the value (and records a revision when it changed).
    """

    source: str
    substance: str
    period: date  # period start: the Monday of an ISO week, the 1st of a month, or a day
    value: float
    metric: str = "count"  # count | quantity | index | rate | concentration | score | ...
    region: str = ""  # "" means the source's whole area
    denominator: float | None = None
    dimension: str | None = None  # overrides the source's dimension (trend panel answers)
    flag: str | None = None  # e.g. "lt1" for a Google Trends "<1"
    ref: str | None = None  # where it came from: file name, line, URL
    #: how many rows of its document were combined into it, and how many of them had a
    #: denominator: the weights of a mean when several documents add to one period
    rows: int = 1
    denominator_rows: int = 1


@dataclass(frozen=True)
class Item:
    """A dated document that names substances: a media article or a warning notice.

    ``key`` is stable across polls and across feeds that syndicate the same article
    (the link without tracking parameters, else the guid, else a content hash): the
    item is stored under it when it is new. ``ids`` are all the identities the
    document has, strongest first (a feed's guid within its source, the normalised
    link): the store takes a document one of whose identities it knows for the item
    it holds, so an article whose link changed keeps its guid's item. Empty: the key.
    """

    key: str
    source: str
    published_at: datetime  # tz-aware UTC
    title: str
    link: str | None
    summary: str
    substances: tuple[str, ...]
    kind: str = "article"  # article | notice
    region: str = ""
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """Something in the input that could not be used; the rest still is."""

    where: str  # "file.csv line 12", "https://.../feed item 7"
    message: str
    #: Nothing of the document was read: it is not of its kind at all (a web page
    #: where a feed was expected, an empty or refused document).
    fatal: bool = False


@dataclass
class ParseResult:
    observations: list[Observation] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: how far a feed document reaches: its newest dated entry, matched or not (None
    #: when it has none, or for other documents)
    newest: datetime | None = None
    #: and from where: its oldest dated entry, matched or not (a feed showing only its
    #: latest entries begins there; None when it has none, or for other documents)
    oldest: datetime | None = None
    #: a table's periods some row of which could not be read (a value or denominator
    #: that is not a number): what the document does not give for them is not taken
    #: as withdrawn (a row naming no watched substance gives none of their series).
    #: None when a row's period itself could not be read (a bad date, too few cells,
    #: a table cut at its row limit): then nothing it leaves out is.
    unread_periods: set[date] | None = field(default_factory=set)


class FeedOptions(BaseModel):
    """Kind-specific keys of a ``[[sources]]`` entry. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseFeed:
    """Common constructor of the adapters: keyword arguments named like the config
    keys, stored as given (no work in the constructor)."""

    def __init__(
        self,
        *,
        name: str,
        options: FeedOptions,
        substances: Sequence[SubstanceSpec],
        region: str = "",
    ) -> None:
        self.name = name
        self.options = options
        self.substances = substances
        self.region = region


class Feed(Protocol):
    """A source adapter.

    ``Options`` is the pydantic model of the keys this kind accepts in a
    ``[[sources]]`` table besides the common ones (name, kind, location, schedule,
    dimension, region, weight, enabled). Constructors take keyword arguments and do
    no work.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[FeedOptions]]
    #: "items" when the adapter returns items whose weekly counts the store derives,
    #: "observations" when it returns values directly.
    produces: ClassVar[str]

    def __init__(
        self,
        *,
        name: str,
        options: FeedOptions,
        substances: Sequence[SubstanceSpec],
        region: str = "",
    ) -> None: ...

    def parse(self, raw: bytes, *, location: str, fetched_at: datetime) -> ParseResult: ...
