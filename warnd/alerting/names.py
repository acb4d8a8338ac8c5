"""Names and numbers for people: sources, regions, metrics with units, decimal marks.

Nothing a person reads shows a raw series key: a series is "AMK Bergen (ambulanse),
Vestland: utrykninger per uke". Region codes are Norway's county numbers (2024);
other region texts (a city) are shown as they are.
"""

from __future__ import annotations

import math
from typing import Any

#: County numbers (fylkesnummer, from 2024) and the country.
REGIONS = {
    "03": "Oslo", "11": "Rogaland", "15": "Møre og Romsdal", "18": "Nordland",
    "31": "Østfold", "32": "Akershus", "33": "Buskerud", "34": "Innlandet",
    "39": "Vestfold", "40": "Telemark", "42": "Agder", "46": "Vestland",
    "50": "Trøndelag", "55": "Troms", "56": "Finnmark",
}
COUNTRY = {"no": "hele landet", "en": "Norway"}

#: Each metric in words with its unit (Norwegian, English).
METRICS: dict[str, tuple[str, str]] = {
    "count": ("antall per periode", "count per period"),
    "visits": ("besøk per uke", "visits per week"),
    # relative to an export's peak week (100), but above 100 once the terms of one
    # substance are added up or a later export is put on the stored scale
    "index": ("relativ søkeindeks", "relative search index"),
    "concentration": ("mg per 1 000 innbyggere per dag", "mg per 1,000 inhabitants per day"),
    "quantity": ("beslaglagt mengde (kg)", "quantity seized (kg)"),
    "notices": ("varsler per uke", "warnings per week"),
    "score": ("trendpanel, sum av svar", "trend panel, sum of answers"),
    "share": ("andel positive prøver", "share of tests positive"),
    "articles": ("saker per uke", "articles per week"),
}


def region_name(code: str | None, lang: str = "no") -> str:
    if not code:
        return ""
    if code.upper() == "NO":
        return COUNTRY.get(lang, COUNTRY["en"])
    return REGIONS.get(code, code)


def metric_words(metric: str | None, lang: str = "no", *, share: bool = False) -> str:
    if share:
        metric = "share"
    base = (metric or "count").split(":")[0]
    pair = METRICS.get(base)
    if pair is None:
        return base
    return pair[0] if lang == "no" else pair[1]


def unit_words(config: Any, source: str, metric: str | None, lang: str = "no", *,
               share: bool = False) -> str:
    """What a series measures, in words: the source's ``unit`` for its counts when the
    config gives one ("utrykninger per uke"), else the metric's words."""
    if not share and (metric or "count") == "count" and config is not None:
        unit = config.source_unit(source, lang) if hasattr(config, "source_unit") else None
        if unit:
            return str(unit)
        if _counts_items(config, source):
            metric = "articles"  # a media source's count: its articles per week
    return metric_words(metric, lang, share=share)


def _counts_items(config: Any, source: str) -> bool:
    """True for a source of articles or notices (its counts are items per week)."""
    from feeds.registry import FEEDS

    try:
        kind = config.source(source).kind
    except (KeyError, AttributeError):
        return False
    return getattr(FEEDS.get(kind), "produces", "") == "items"


def axis_unit(metric: str | None, lang: str = "no", *, share: bool = False,
              config: Any = None, source: str = "") -> str:
    """What a chart's axis shows: what the series measures, ``(%)`` for a share."""
    words = unit_words(config, source, metric, lang, share=share)
    return f"{words} (%)" if share else words


def source_name(config: Any, source: str, lang: str | None = None) -> str:
    """A source's label in ``lang`` (by default the configured language; its name
    without a configuration)."""
    return config.source_label(source, lang) if config is not None else source


def series_head(config: Any, source: str, region: str | None, lang: str = "no") -> str:
    """``"AMK Bergen, Vestland"``: a series' source and region as people say them."""
    label = source_name(config, source, lang)
    reg = region_name(region, lang)
    return f"{label}, {reg}" if reg else label


def series_name(config: Any, source: str, region: str | None, metric: str | None,
                lang: str = "no", *, share: bool = False) -> str:
    """``"AMK Bergen, Vestland: antall per periode"`` — a series as people say it."""
    return (f"{series_head(config, source, region, lang)}: "
            f"{unit_words(config, source, metric, lang, share=share)}")


def num(x: float | int | None, lang: str = "no", digits: int = 1) -> str:
    """A number with the language's decimal mark and thousands separator ("1 234,5")."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if abs(x) >= 100:
        digits = 0
    elif 0 < abs(x) < 1:  # small shares and rates: three significant digits
        digits = max(digits, 2 - math.floor(math.log10(abs(x))))
    text = f"{x:,.{digits}f}"
    if lang == "no":
        text = text.replace(",", " ").replace(".", ",").replace("-", "−")
    return text


def level(x: float | int | None, lang: str = "no", *, share: bool = False) -> str:
    """A level as people read it: a share of tests as per cent ("5,3 %", "5.3%"),
    anything else as a number in the series' own unit."""
    if not share or x is None:
        return num(x, lang)
    x = float(x)
    if not math.isfinite(x):
        return "–"
    text = num(x * 100, lang, 1)
    return f"{text} %" if lang == "no" else f"{text}%"


def percent(x: float | None, lang: str = "no", digits: int = 0) -> str:
    """A relative change as ``"+110 %"`` (Norwegian) or ``"+110%"``, rounded to
    ``digits`` decimals ("+1 %" for 0.7 %; a change that rounds to nothing is "0 %");
    a rise from nothing (infinite) as "+∞", in messages as in the report."""
    if x is not None and math.isinf(float(x)):
        return "+∞" if x > 0 else ("−∞" if lang == "no" else "-∞")
    if x is None or not math.isfinite(float(x)):
        return "–"
    pc = round(abs(float(x)) * 100, digits)
    v = f"{pc:,.{digits}f}"
    if lang == "no":
        v = v.replace(",", " ").replace(".", ",")
    if pc == 0:
        return "0 %" if lang == "no" else "0%"
    sign = "+" if x >= 0 else ("−" if lang == "no" else "-")
    return f"{sign}{v} %" if lang == "no" else f"{sign}{v}%"


def p_value(p: float | None, lang: str = "no") -> str:
    """A p-value as every text writes it: three decimals, "<0,001" / "<0.001" below that."""
    if p is None or not math.isfinite(float(p)):
        return "–"
    text = "<0.001" if p < 0.001 else f"{float(p):.3f}"
    return text.replace(".", ",") if lang == "no" else text


def certainty(p_value: float | None, lang: str = "no") -> str:
    """The p-value of a finding in words: "svært sikker", "sikker" or "usikker"."""
    if p_value is None or not math.isfinite(float(p_value)):
        return "usikker" if lang == "no" else "uncertain"
    if p_value < 1e-4:
        return "svært sikker" if lang == "no" else "very certain"
    if p_value < 0.01:
        return "sikker" if lang == "no" else "certain"
    return "usikker" if lang == "no" else "uncertain"


def agreement(n_agree: int, n_all: int, lang: str = "no", direction: str = "increase", *,
              past: bool = False) -> str:
    """``"4 av 9 kilder øker"``; ``past`` (an end, a correction): ``"4 av 9 kilder økte"``."""
    up = direction == "increase"
    if lang == "no":
        verb = ("økte" if up else "sank") if past else ("øker" if up else "synker")
        return f"{n_agree} av {n_all} {'kilde' if n_all == 1 else 'kilder'} {verb}"
    if past:
        verb = "rose" if up else "fell"
    else:
        verb = ("rise" if up else "fall") + ("s" if n_agree == 1 else "")
    return f"{n_agree} of {n_all} {'source' if n_all == 1 else 'sources'} {verb}"
