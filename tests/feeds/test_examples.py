"""The sample scenario: every example source parses cleanly with its configured options,
and the data show what the scenario promises (crack cocaine and ketamine up, heroin and
Xanor stable), in several independent sources."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import statistics
import sys
import tomllib
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from feeds.base import Observation, ParseResult, SubstanceSpec
from feeds.fetch import Fetcher
from feeds.registry import feed_class

from .conftest import FETCHED_AT

ROOT = Path(__file__).resolve().parents[2]
COMMON = {"name", "kind", "location", "label", "interval", "cron", "dimension", "region",
          "weight", "enabled", "substances", "detection", "unit"}  # fmt: skip
BEFORE = (date(2025, 4, 1), date(2025, 9, 30))  # the half year before
LATE = (date(2026, 1, 5), date(2026, 3, 29))  # after the ramp
SPRING = (date(2025, 10, 1), date(2026, 3, 29))  # the report's half year


def load_config() -> dict:
    with (ROOT / "examples" / "config.sources.toml").open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def parsed() -> dict[str, ParseResult]:
    import os

    config = load_config()
    substances = [
        SubstanceSpec(
            id=sid,
            label=sid,  # the label (one text or one per language) plays no part in parsing
            names=tuple(s["names"]),
            slang=tuple(s.get("slang", ())),
            slang_needs_context=s.get("slang_needs_context", True),
            exclude=tuple(s.get("exclude", ())),
        )
        for sid, s in config["substances"].items()
    ]
    out: dict[str, ParseResult] = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for src in config["sources"]:
            cls = feed_class(src["kind"])
            options = cls.Options(**{k: v for k, v in src.items() if k not in COMMON})
            feed = cls(
                name=src["name"],
                options=options,
                substances=substances,
                region=src.get("region", ""),
            )
            total = ParseResult()
            for doc in Fetcher().fetch(src["location"]):
                r = feed.parse(doc.content, location=doc.location, fetched_at=FETCHED_AT)
                total.observations += r.observations
                total.items += r.items
                total.problems += r.problems
            out[src["name"]] = total
    finally:
        os.chdir(cwd)
    return out


def latest(observations: list[Observation]) -> dict[tuple, Observation]:
    """As the store keeps them: the last value per natural key wins (a revision)."""
    return {(o.substance, o.region, o.metric, o.period): o for o in observations}


def mean_in(values: dict[date, float], span: tuple[date, date]) -> float:
    return statistics.mean(v for d, v in values.items() if span[0] <= d <= span[1])


def ratio(values: dict[date, float], span: tuple[date, date] = LATE) -> float:
    return mean_in(values, span) / mean_in(values, BEFORE)


def weekly_items(result: ParseResult, substance: str) -> dict[date, float]:
    counts: dict[date, float] = {}
    monday = date(2021, 1, 4)
    while monday <= date(2026, 3, 23):
        counts[monday] = 0.0
        monday += timedelta(weeks=1)
    for item in result.items:
        if substance in item.substances:
            d = item.published_at.date()
            counts[date.fromisocalendar(*d.isocalendar()[:2], 1)] += 1
    return counts


def test_every_source_parses_without_problems(parsed: dict[str, ParseResult]) -> None:
    assert set(parsed) == {s["name"] for s in load_config()["sources"]}
    for name, result in parsed.items():
        assert result.problems == [], name
        assert result.observations or result.items, name


def test_media_false_hits_dropped_and_syndication_shares_keys(
    parsed: dict[str, ParseResult],
) -> None:
    items = parsed["media-bt"].items + parsed["media-ba"].items
    titles = {i.title for i in items}
    assert not any("Coca-Cola" in t or "stolpen" in t or "rakett" in t for t in titles)
    by_title = {i.title: i.substances for i in items}
    assert by_title["Politiet: minus selges åpent ved Nygårdsparken"] == ("heroin",)  # slang
    assert any(t.startswith("Ungdom tar ket i helgene") for t in titles)
    keys = [i.key for i in items]
    assert len(keys) - len(set(keys)) >= 3  # syndicated copies: one item each in the store


@pytest.mark.parametrize("substance", ["kokain", "ketamin"])
def test_rising_substances_rise_in_independent_sources(
    parsed: dict[str, ParseResult], substance: str
) -> None:
    lab = {
        o.period: o.value / o.denominator
        for o in latest(parsed["lab-mbf"].observations).values()
        if o.substance == substance
    }
    room = {o.period: o.value for o in parsed["brukerrom"].observations if o.substance == substance}
    media = weekly_items(
        ParseResult(items=parsed["media-bt"].items + parsed["media-ba"].items), substance
    )
    assert ratio(lab) > 1.8
    assert ratio(room) > 1.8
    assert ratio(media) > 1.5
    panel = {
        o.period: o
        for o in parsed["trendpanel"].observations
        if o.substance == substance and o.dimension == "use"
    }
    last = panel[date(2026, 3, 15)]
    assert last.value / last.denominator > 1.0  # most informants report an increase
    assert abs(panel[date(2025, 9, 15)].value / panel[date(2025, 9, 15)].denominator) < 0.5


@pytest.mark.parametrize("substance", ["heroin", "xanor"])
def test_stable_substances_stay_stable(parsed: dict[str, ParseResult], substance: str) -> None:
    lab = {
        o.period: o.value / o.denominator
        for o in latest(parsed["lab-mbf"].observations).values()
        if o.substance == substance
    }
    media = weekly_items(
        ParseResult(items=parsed["media-bt"].items + parsed["media-ba"].items), substance
    )
    assert 0.75 < ratio(lab, SPRING) < 1.3
    assert 0.6 < ratio(media, SPRING) < 1.6  # a few articles a week: media are noisy


def test_lab_revision_file_gives_later_values(parsed: dict[str, ParseResult]) -> None:
    obs = parsed["lab-mbf"].observations
    key = ("kokain", "46", "count", date(2026, 3, 23))
    values = [o for o in obs if (o.substance, o.region, o.metric, o.period) == key]
    assert len(values) == 2 and values[1].value > values[0].value
    assert values[1].ref.startswith("mbf_positive_revisjon_2026-03.csv")


def test_wastewater_dumping_spike_is_one_campaign_only(parsed: dict[str, ParseResult]) -> None:
    oslo = {
        o.period: o.value
        for o in parsed["avlopsvann"].observations
        if o.substance == "ketamin" and o.region == "Oslo"
    }
    spike = oslo[date(2024, 9, 23)]
    others = [v for d, v in oslo.items() if d != date(2024, 9, 23)]
    assert spike > 4 * statistics.median(others)
    assert len(oslo) == 11


def test_trends_exports_overlap_and_weeks_are_mondays(parsed: dict[str, ParseResult]) -> None:
    obs = parsed["google-trends"].observations
    assert all(o.period.weekday() == 0 for o in obs)
    refs = defaultdict(set)
    for o in obs:
        refs[(o.substance, o.period)].add(o.ref.split(" ")[0])
    assert any(len(files) == 2 for files in refs.values())


def test_observations_csv_matches_the_lab_files(parsed: dict[str, ParseResult]) -> None:
    lab = latest(parsed["lab-mbf"].observations)
    with (ROOT / "examples" / "observations.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "lab-mbf"]
    assert len(rows) == len(lab)
    for r in rows:
        o = lab[(r["substance"], r["region"], "count", date.fromisoformat(r["date"]))]
        assert (float(r["value"]), float(r["denominator"])) == (o.value, o.denominator)
        assert r["dimension"] == "use"


def test_generator_reproduces_committed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location(
        "examples_generate", ROOT / "examples" / "generate.py"
    )
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "examples_generate", gen)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "HERE", tmp_path)
    monkeypatch.setattr(gen, "DATA", tmp_path / "data")
    gen.main()

    def digest(base: Path) -> dict[str, str]:
        files = [p for p in sorted(base.rglob("*")) if p.is_file()]
        return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    assert digest(tmp_path / "data") == digest(ROOT / "examples" / "data")
    assert (tmp_path / "observations.csv").read_bytes() == (
        ROOT / "examples" / "observations.csv"
    ).read_bytes()
    size = sum(p.stat().st_size for p in (ROOT / "examples" / "data").rglob("*") if p.is_file())
    assert size < 3_000_000
