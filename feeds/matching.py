"""Find which monitored substances a Norwegian (or English) text names.

Rules, applied to the text after :func:`feeds.text.normalise` (HTML tags and entities
stripped, Unicode NFKC, case-folded):

* ``exclude`` phrases of a substance are blanked out first, so "Coca-Cola" cannot count
  as "cola" while "cola og kokain" still counts.
* ``names`` match anywhere inside a word: inflections and compounds are found
  ("kokainen", "kokainbruk", "crackkokain", "ketaminbeslag", "Xanor-tablettene").
* ``slang`` matches whole words only ("ket" never matches "raket", "pakket", "market").
  A slang word next to a number is not counted ("minus 12 grader", "20 cm snø").
  When ``slang_needs_context`` is true, slang counts only if the text also has one of
  the drug-context words in :data:`CONTEXT_PATTERNS` (the drug vocabulary and the
  common verbs of the trade: buying, selling, mixing, "påvirket") or one of the
  substance's own ``context`` words (matched at the start of a word, so "sniff" finds
  "sniffet").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from feeds.base import SubstanceSpec
from feeds.text import normalise

#: Drug-context words (regular expressions over the normalised text). Slang that needs
#: context counts only when one of these appears. Chosen to avoid everyday homographs:
#: "politi" but not "politikk"/"politisk", "dop" but not "doping",
#: "solgt" but not "utsolgt" or "mest solgte".
CONTEXT_PATTERNS: tuple[str, ...] = (
    r"\brus(?:et|en|a)?\b",  # rus, ruset, rusen
    r"\w-rus(?:en|et)?\b",  # ket-rusen (not "brus", "rusk")
    r"\brus(?:midl|middel|misbruk|bruk|påvirk|avhengig|problem|miljø|felt|omsorg|behandl)\w*",
    r"\w*narko\w*",  # narkotika, narkoman, narkotikabeslag
    r"\bknark\w*",
    r"\bdop(?:et|a|en|selger\w*|handel\w*|salg\w*|langer\w*|bruk\w*|hode\w*)?\b",
    r"\w*beslag\w*",  # beslag, beslagla, kokainbeslag
    r"\w*overdos\w*",
    r"\w*politi(?!k|s)\w*",  # politiet, uropolitiet, politibetjent; not politikk, politisk
    r"\bkripos\b",
    r"\btoll(?:et|etaten|vesenet|beslag\w*)\b",
    r"\bselge(?:r|re|rne|s)?\b",
    r"\bselg(?:es|er)\b",
    r"\bkjøp(?:e|er|es|te|t|ere|erne)?\b",  # buying: kjøpe, kjøpes, kjøpte
    r"\bbland(?:e|er|es|et|a|ing|inger|ingen)\b",  # mixing: blander, blandes, blanding
    r"\bpåvirke?t\b",  # "påvirket av" (under the influence)
    r"\bhasj\w*",
    r"\bcannabis\b",
    r"\bamfetamin\w*",
    r"\bmdma\b",
    r"\w+dop(?:en|et|a)?\b",  # festdop, partydopen
    r"\brusmidl\w*",
    # solgt, solgte; not "mest solgte" (best-selling), not "solgt for <price>" (property news)
    r"(?<!mest )\bsolgte?\b(?!\s+for\b)",
    r"\blang(?:er|ere|et|ing|ingen)\b",  # dealing
    r"\bpusher\w*",
    r"\bdealer\w*",
    r"\bpågrep\w*",
    r"\barrest\w*",
    r"\bsiktet\b",
    r"\btiltal\w*",
    r"\bbrukerrom\w*",
    r"\bsprøyterom\w*",
    r"\bmisbruk\w*",
    r"\bavhengig\w*",
    r"\bpiller?\b",
    r"\btablett\w*",
    r"\bsnort\w*",
    r"\binjiser\w*",
    r"\bgram\b",
    r"\bdrugs?\b",
    r"\bpolice\b",
    r"\bseiz\w*",
    r"\boverdose\w*",
)

_CONTEXT = re.compile("|".join(f"(?:{p})" for p in CONTEXT_PATTERNS))
_MAX_CHARS = 200_000


def _phrase(text: str) -> str:
    """Normalised phrase with runs of whitespace as ``\\s+``."""
    return r"\s+".join(re.escape(part) for part in normalise(text).split())


class SubstanceMatcher:
    """Which substances a text names.

    Args:
        substances: the monitored substances (names, slang, context rule, excludes).
    """

    def __init__(self, substances: Sequence[SubstanceSpec]) -> None:
        self.substances = tuple(substances)
        self._rules: list[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None, bool,
                                re.Pattern[str] | None, re.Pattern[str] | None]] = []
        for spec in self.substances:
            names = [_phrase(n) for n in spec.names if n.strip()]
            slang = [_phrase(s) for s in spec.slang if s.strip()]
            exclude = [_phrase(e) for e in spec.exclude if e.strip()]
            name_re = re.compile("|".join(names)) if names else None
            slang_re = (
                re.compile(r"(?<![\w])(?<!\d\s)(?:" + "|".join(slang) + r")(?![\w])(?!\s\d)")
                if slang
                else None
            )
            exclude_re = re.compile("|".join(exclude)) if exclude else None
            own = [_phrase(c) for c in getattr(spec, "context", ()) if c.strip()]
            own_re = re.compile(r"(?<![\w])(?:" + "|".join(own) + ")") if own else None
            self._rules.append((spec.id, name_re, slang_re, spec.slang_needs_context, exclude_re,
                                own_re))

    def match(self, text: str) -> tuple[str, ...]:
        """Ids of the substances named in ``text``, in the order they were configured."""
        norm = normalise(text[:_MAX_CHARS])
        if not norm:
            return ()
        has_context: bool | None = None
        found: list[str] = []
        for sid, name_re, slang_re, needs_context, exclude_re, own_re in self._rules:
            t = exclude_re.sub(" ", norm) if exclude_re else norm
            if name_re and name_re.search(t):
                found.append(sid)
                continue
            if slang_re and slang_re.search(t):
                if needs_context:
                    if has_context is None:
                        has_context = _CONTEXT.search(norm) is not None
                    if not has_context and not (own_re and own_re.search(t)):
                        continue
                found.append(sid)
        return tuple(found)

    @staticmethod
    def has_context(text: str) -> bool:
        """True when ``text`` has a drug-context word (see :data:`CONTEXT_PATTERNS`)."""
        return _CONTEXT.search(normalise(text)) is not None


@lru_cache(maxsize=4096)
def terms_of(spec: SubstanceSpec) -> str:
    """A substance's matching terms as one text (JSON, normalised and sorted): two specs
    with the same text name the same substance in every text. Kept per spec (a spec is
    immutable): every source watching a substance reads it with the same text, and
    normalising its terms anew for each of 2,500 sources took about 0.7 s of a run."""

    def words(terms: Sequence[str]) -> list[str]:
        return sorted({" ".join(normalise(t).split()) for t in terms if t.strip()})

    return json.dumps({"names": words(spec.names), "slang": words(spec.slang),
                       "exclude": words(spec.exclude), "context": words(spec.context),
                       "slang_needs_context": bool(spec.slang_needs_context)},
                      ensure_ascii=False, sort_keys=True)


def widened(old: str, new: str) -> bool:
    """Whether a text may name the substance with the terms ``new`` (:func:`terms_of`)
    and not with ``old``: a name, slang or context word added, an exclude taken away,
    slang no longer needing context. Otherwise every text named with ``new`` was named
    with ``old`` too (terms only taken away, excludes only added; but for an exclude
    whose blanking leaves a slang word standing alone, as "x" does in "xket")."""
    was, now = json.loads(old), json.loads(new)
    return (not set(now["names"]) <= set(was["names"])
            or not set(now["slang"]) <= set(was["slang"])
            or not set(now["context"]) <= set(was["context"])
            or not set(was["exclude"]) <= set(now["exclude"])
            or (was["slang_needs_context"] and not now["slang_needs_context"]))


def read_with(kind: str, options: Mapping[str, Any], substances: Sequence[SubstanceSpec]) -> str:
    """What a source of tables or exports is read with, as one text: its kind, its kind's
    options (aliases, columns, Trends terms ...) and its substances' ids, labels and
    terms (:func:`terms_of`)."""
    return json.dumps({"kind": kind, "options": dict(options), "substances": {
        s.id: [s.label, terms_of(s)] for s in substances}},
        sort_keys=True, ensure_ascii=False, default=str)


def same_reading(kept: str, now: str) -> bool:
    """Whether a source read with ``kept`` (:func:`read_with`) reads each of its documents
    as it does with ``now``. ``files`` (whether a count table's files add up) is left
    out: it says how a file's values make up a period, not what a file gives, and each
    way keeps what it needs (a source switched to adding reads each file once more by
    itself, one switched back reads nothing again)."""
    was, new = json.loads(kept), json.loads(now)
    for terms in (was, new):
        terms["options"].pop("files", None)
    return bool(was == new)


def option_change(options: Any, kept: str, name: str) -> tuple[str, str]:
    """An option (``period``, ``aggregate``) as a source of tables was read with it
    (``kept``: :func:`read_with`) and as it reads with it now (``options``: its kind's
    options); both empty for a kind without it."""
    field = type(options).model_fields.get(name)
    if field is None:
        return "", ""
    return str(json.loads(kept)["options"].get(name, field.default)), str(getattr(options, name))


def with_option(kept: str, name: str, value: Any) -> str:
    """``kept`` (:func:`read_with`) with one option as it is given now (None: not given)."""
    terms = json.loads(kept)
    if value is None:
        terms["options"].pop(name, None)
    else:
        terms["options"][name] = value
    return json.dumps(terms, sort_keys=True, ensure_ascii=False, default=str)
