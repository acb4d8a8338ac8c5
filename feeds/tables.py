"""Reading tables (CSV with any common delimiter, XLSX) into rows of strings."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime

from feeds.text import decode_bytes, looks_binary

MAX_ROWS = 500_000


def is_xlsx(raw: bytes) -> bool:
    return raw[:4] == b"PK\x03\x04"


def read_table(raw: bytes, *, delimiter: str = "auto", sheet: str | None = None) -> list[list[str]]:
    """All rows of a CSV or XLSX document as strings (dates as ISO ``YYYY-MM-DD``).

    Raises ``ValueError`` with a short reason when the document is not a table.
    """
    if not raw.strip():
        raise ValueError("empty document")
    if is_xlsx(raw):
        return _read_xlsx(raw, sheet)
    if looks_binary(raw):
        raise ValueError("binary data, not CSV or XLSX")
    text, _ = decode_bytes(raw)
    text = text.lstrip("\ufeff")
    if delimiter == "auto":
        delimiter = sniff_delimiter(text)
    rows: list[list[str]] = []
    try:
        for n, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter, strict=False)):
            if n >= MAX_ROWS:
                break
            rows.append(row)
    except csv.Error as err:
        raise ValueError(f"not CSV: {err}") from err
    return rows


def sniff_delimiter(text: str) -> str:
    """The delimiter (``,`` ``;`` or tab) splitting the first lines most consistently."""
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    best, best_score = ",", -1
    for cand in (";", "\t", ","):
        counts = [ln.count(cand) for ln in lines]
        if not counts or counts[0] == 0:
            continue
        score = sum(1 for c in counts if c == counts[0]) * 100 + counts[0]
        if score > best_score:
            best, best_score = cand, score
    return best


def _read_xlsx(raw: bytes, sheet: str | None) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise ValueError(f"not a readable XLSX workbook: {type(err).__name__}") from err
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise ValueError(f"no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows: list[list[str]] = []
        for n, row in enumerate(ws.iter_rows(values_only=True)):
            if n >= MAX_ROWS:
                break
            rows.append([_cell(v) for v in row])
        return rows
    finally:
        wb.close()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
