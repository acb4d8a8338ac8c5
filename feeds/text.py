"""Text helpers for the adapters: decoding bytes, stripping HTML, parsing numbers and dates."""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from datetime import date, datetime, timedelta

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_bytes(raw: bytes) -> tuple[str, str]:
    """Decode a document: BOM first, then strict UTF-8, then cp1252, then latin-1.

    Returns ``(text, encoding)``. latin-1 never fails, so this always returns text;
    bytes that are not text at all come out as garbage the parsers then reject.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError:
                break
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def looks_binary(raw: bytes, sample: int = 4096) -> bool:
    """True when the start of ``raw`` has NUL bytes or many control characters (not text)."""
    head = raw[:sample]
    if not head:
        return False
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls > len(head) // 20


_TAG = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")


#: Most elements a page or feed may have before parsing (a parser keeps one object per
#: element: 200,000 of them take about 150 MB; real notice pages and feeds have a few
#: thousand).
MAX_ELEMENTS = 200_000
#: Deepest element nesting an XML feed may have (real feeds: under 20).
MAX_XML_DEPTH = 256
_START_TAG = re.compile(rb"<[A-Za-z]")
_XML_TAG = re.compile(rb"<(/?)[A-Za-z][^>]*?(/?)>")
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.S)


def markup_too_big(raw: bytes, *, xml: bool = False) -> str | None:
    """Why a page or feed is refused before parsing (memory bound), or None.

    Counts start tags without building anything; for XML also the nesting depth (an
    XML element is always closed, so the depth is exact).
    """
    n = 0
    for _ in _START_TAG.finditer(raw):
        n += 1
        if n > MAX_ELEMENTS:
            return f"more than {MAX_ELEMENTS:,} elements; refused (memory bound)"
    if xml:
        depth = 0
        # HTML inside CDATA (unclosed <br>, <p>) is text, not elements
        for m in _XML_TAG.finditer(_CDATA.sub(b"", raw)):
            if m.group(2):
                continue  # <empty/>
            depth += -1 if m.group(1) else 1
            if depth > MAX_XML_DEPTH:
                return f"elements nested deeper than {MAX_XML_DEPTH}; refused (memory bound)"
    return None


def strip_html(text: str) -> str:
    """Plain text from an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    text = _TAG.sub(" ", text or "")
    text = html.unescape(text)
    text = text.replace("\u00ad", "")  # soft hyphen
    return _SPACE.sub(" ", text).strip()


def normalise(text: str) -> str:
    """Matching form: HTML stripped, Unicode NFKC, case-folded."""
    return unicodedata.normalize("NFKC", strip_html(text)).casefold()


def parse_number(cell: str, *, decimal_comma: bool | None = None) -> float:
    """Parse "12", "1 234", "3,5" (decimal comma), "1.234,5", "1,234.5".

    ``decimal_comma=None`` guesses: a comma is a decimal comma unless a dot follows it.
    Raises ``ValueError`` for anything else.
    """
    if cell.isdigit() and len(cell) < 16:  # the common case, a whole number: at once
        return float(cell)
    s = cell.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if not s:
        raise ValueError("empty")
    if decimal_comma is None:
        decimal_comma = "," in s and ("." not in s or s.rfind(",") > s.rfind("."))
    s = s.replace(".", "").replace(",", ".") if decimal_comma else s.replace(",", "")
    value = float(s)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    return value


NORWEGIAN_MONTHS = {
    "januar": 1, "jan": 1, "februar": 2, "feb": 2, "mars": 3, "mar": 3, "april": 4, "apr": 4,
    "mai": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "oktober": 10, "okt": 10, "november": 11, "nov": 11,
    "desember": 12, "des": 12,
}  # fmt: skip

_NO_DATE = re.compile(
    r"\b(\d{1,2})\.\s*("
    + "|".join(sorted(NORWEGIAN_MONTHS, key=len, reverse=True))
    + r")\.?\s+(\d{4})\b"
)
_DOTTED = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def find_date(text: str) -> date | None:
    """The first date in free text: "12. mars 2026", "12.03.2026" or "2026-03-12"."""
    low = text.casefold()
    found: list[tuple[int, date]] = []
    for m in _NO_DATE.finditer(low):
        try:
            found.append((m.start(), date(int(m[3]), NORWEGIAN_MONTHS[m[2]], int(m[1]))))
            break
        except ValueError:
            continue
    for m in _DOTTED.finditer(low):
        try:
            found.append((m.start(), date(int(m[3]), int(m[2]), int(m[1]))))
            break
        except ValueError:
            continue
    for m in _ISO.finditer(low):
        try:
            found.append((m.start(), date(int(m[1]), int(m[2]), int(m[3]))))
            break
        except ValueError:
            continue
    return min(found)[1] if found else None


_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


def parse_date(cell: str, date_format: str | None = None) -> date:
    """Parse a period cell.

    With ``date_format`` (strptime syntax) only that format is tried. Otherwise, in order:
    ``YYYY-MM-DD`` (also with a time part), ``YYYY-MM``, ISO week ``YYYY-Www``,
    ``DD.MM.YYYY``, ``M/D/YYYY`` (spreadsheet re-saves), Norwegian "12. mars 2026".
    Raises ``ValueError``.
    """
    s = cell.strip().strip('"')
    if date_format:
        return datetime.strptime(s, date_format).date()
    if len(s) == 10 and s[4] == "-" and s[7] == "-":  # the common case, without strptime
        try:
            return date.fromisoformat(s)
        except ValueError:
            pass
    m = _ISO_WEEK.match(s)
    if m:
        return date.fromisocalendar(int(m[1]), int(m[2]), 1)
    for fmt in ("%Y-%m-%d", "%Y-%m", "%d.%m.%Y", "%m/%d/%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    if len(s) > 10 and s[4] == "-" and s[10] in "T ":
        return datetime.strptime(s[:10], "%Y-%m-%d").date()
    found = find_date(s)
    if found and len(s) <= 20:
        return found
    raise ValueError(f"not a date: {s[:40]!r}")


def week_start(d: date) -> date:
    """The Monday of the ISO week that holds ``d``."""
    return d - timedelta(days=d.weekday())


def month_start(d: date) -> date:
    return d.replace(day=1)


def to_period(d: date, granularity: str) -> date:
    """Normalise a date to its period start: ``week`` (ISO Monday), ``month``, ``day``/``as_is``."""
    if granularity == "week":
        return week_start(d)
    if granularity == "month":
        return month_start(d)
    return d


def period_end(start: date, granularity: str) -> date | None:
    """The day after a period that starts on ``start`` (a ``week``, ``month`` or ``day``);
    None for ``as_is``, whose length is not known."""
    if granularity == "week":
        return start + timedelta(days=7)
    if granularity == "month":
        return month_start(start + timedelta(days=31))
    if granularity == "day":
        return start + timedelta(days=1)
    return None


def normalise_space(text: str) -> str:
    return _SPACE.sub(" ", text.replace("\u00ad", "")).strip()
