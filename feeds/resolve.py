"""Resolve a table cell or column header ("Kokain", "cocaine", "Alprazolam") to a substance id."""

from __future__ import annotations

from collections.abc import Sequence

from feeds.base import SubstanceSpec
from feeds.matching import SubstanceMatcher
from feeds.text import normalise


class SubstanceResolver:
    """Cell text -> substance id: aliases, then ids and labels, then the matcher."""

    def __init__(self, substances: Sequence[SubstanceSpec], aliases: dict[str, str]) -> None:
        self.table = {normalise(s.id): s.id for s in substances}
        self.table.update({normalise(s.label): s.id for s in substances})
        self.table.update({normalise(k): v for k, v in aliases.items()})
        self.matcher = SubstanceMatcher(substances)
        self.cache: dict[str, str | None] = {}

    def resolve(self, text: str) -> str | None:
        if text not in self.cache:
            key = normalise(text)
            sid = self.table.get(key)
            if sid is None and key:
                ids = self.matcher.match(text)
                sid = ids[0] if len(ids) == 1 else None
            self.cache[text] = sid
        return self.cache[text]
