"""Google Trends exports over time: what staff drop into the folder week after week.

Each test writes real export files into a real folder, moves the clock through the
real pipeline's `run --once` cycle (poll, store, detect, alert to a local ``json://``
target) and checks what warnd stored and told. Staff export what the Trends page gives
that day: "past 12 months" one week, "past 90 days" (daily rows) or "past 5 years"
(monthly rows) another, saved from Excel now and then.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.service_kit import JsonSink, write_service_config
from tests.test_service import source
from warnd.cli import collect_status, main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.replay import replay
from warnd.store import Store

#: the Sunday Google's first week of the history starts on
FIRST = date(2024, 1, 7)
#: weekly search interest for ketamin over three years: a steady level with some noise
LEVEL = [50 + (w * 37) % 11 - 5 for w in range(160)]
# searches rising a quarter more each week from week 62, up to twice the level
RISE = [v if w < 62 else round(v * (1 + 0.25 * min(w - 61, 4))) for w, v in enumerate(LEVEL)]


def week_start(w: int) -> date:
    return FIRST + timedelta(weeks=w)


def scaled(values: dict[date, float]) -> dict[date, int]:
    """An export's values: each relative to the export's own peak (100)."""
    peak = max(values.values())
    return {d: round(100 * v / peak) for d, v in values.items()}


def write_export(path: Path, period: str, values: dict[date, int | str]) -> None:
    rows = "".join(f"{d.isoformat()},{v}\n" for d, v in sorted(values.items()))
    path.write_text(f"Category: All categories\n\n{period},ketamin: (Norway)\n{rows}",
                    encoding="utf-8")


def weekly(last: int, weeks: int = 52, level: list[int] = LEVEL) -> dict[date, int | str]:
    """A "past 12 months" export whose last row is the week ``last`` (ended), of the
    weekly search interest ``level``."""
    return dict(scaled({week_start(w): level[w] for w in range(last - weeks + 1, last + 1)}))


def daily(last: int, level: list[int] = LEVEL) -> dict[date, int | str]:
    """A "past 90 days" export to the Saturday ending week ``last`` (of the weekly search
    interest ``level``): more searches at weekends than on weekdays, each day a seventh of
    its week and a bit."""
    end = week_start(last) + timedelta(days=6)
    days = [end - timedelta(days=n) for n in range(90)]
    weekend = {5: 1.3, 6: 1.3}
    raw = {d: level[(d - FIRST).days // 7] * weekend.get(d.weekday(), 0.88) for d in days}
    return dict(scaled(raw))


def monthly(last: int) -> dict[date, int | str]:
    """A "past 5 years" export: one row a month, the months the history has."""
    months: dict[date, list[float]] = {}
    for w in range(last + 1):
        months.setdefault(week_start(w).replace(day=1), []).append(LEVEL[w])
    return dict(scaled({m: sum(v) / len(v) for m, v in months.items()}))


class Desk:
    """A trends source reading ``drop/``, told to a local ``json://`` target (``detection``:
    keys of its ``[detection]``; ``keys``: more keys of the source, named ``name``); the
    clock is the Monday after the week a poll's newest export ends with, at noon."""

    def __init__(self, tmp: Path, sink: JsonSink, detection: str = "", keys: str = "",
                 name: str = "trends") -> None:
        self.drop, self.name = tmp / "drop", name
        self.drop.mkdir(parents=True, exist_ok=True)
        self.cfg = load_config(write_service_config(
            tmp / "config.toml", state_dir=str(tmp / "state"),
            sources=source(name, str(self.drop / "*.csv"), kind="google_trends",
                           dimension="interest") + f"{keys}\n[detection]\n{detection}\n",
            targets=f'\n[[targets]]\nname = "desk"\nurl = "{sink.url}"\n'))

    def now(self, last: int) -> datetime:
        return datetime.combine(week_start(last) + timedelta(days=8), datetime.min.time(),
                                tzinfo=UTC) + timedelta(hours=12)

    def cycle(self, last: int) -> list[str]:
        res = Pipeline(self.cfg, clock=lambda: self.now(last)).run_once()
        return [a["title"] for a in res["alerts"]]

    def stored(self) -> dict[date, float]:
        st = Store.in_dir(self.cfg.state_dir)
        try:
            return {date.fromisoformat(r["period"]): r["value"] for r in st.q(
                "SELECT period, value FROM observations WHERE substance='ketamin' "
                "AND metric='index' AND source=?", [self.name])}
        finally:
            st.close()

    def problems(self, last: int) -> list[str]:
        status = collect_status(self.cfg, now=self.now(last))
        src = next(s for s in status["sources"] if s["name"] == self.name)
        return [f"{p['location']}: {p['message']}" for p in src["recent_problems"]]


@pytest.fixture
def sink() -> Iterator[JsonSink]:
    s = JsonSink()
    yield s
    s.close()


def test_exports_of_another_range_keep_the_series_weekly(tmp_path, sink):
    """Staff export "past 12 months" (weekly rows) most weeks, "past 90 days" (daily rows)
    one week and "past 5 years" (monthly rows) once. The series stays weekly: the daily
    rows are read as the mean of each week they cover whole, put on the stored scale, and
    the monthly rows are not read into it, with a problem naming the file and what to
    export instead. Nothing is told of a steady search interest. (Before, each day was
    stored as a period of its own among the weeks, put on the weekly scale by the Mondays
    the two shared, and the months' firsts likewise: one series of weeks, days and
    months, its level judged from a mix of them.)"""
    desk = Desk(tmp_path, sink)
    told = []
    for k in range(60, 72):
        if k == 64:
            write_export(desk.drop / f"week {k}.csv", "Day", daily(k))
        else:
            write_export(desk.drop / f"week {k}.csv", "Week", weekly(k))
        if k == 68:
            write_export(desk.drop / "five years.csv", "Month", monthly(k))
        told += desk.cycle(k)
    stored = desk.stored()
    assert told == [] and sink.messages == []
    # weeks only, each stored on the Monday after its Sunday, none missing
    assert sorted(stored) == [week_start(w) + timedelta(days=1) for w in range(9, 72)]
    # the daily export's new week is its days' mean on the stored scale: the week's
    # level as the weekly exports have it, give or take the rounding of the days
    week64 = week_start(64) + timedelta(days=1)
    assert stored[week64] == pytest.approx(LEVEL[64] * stored[week64 - timedelta(weeks=1)]
                                           / LEVEL[63], rel=0.03)
    problems = desk.problems(71)
    assert [p for p in problems if "five years.csv" in p] == [
        f"{desk.drop / 'five years.csv'}: monthly values (a range over 5 years), but the "
        "stored series of ketamin is weekly: its values not read, lest the two be "
        "mixed; export a range of about 9 months to 5 years for weekly values"]


def test_a_series_first_fed_a_past_90_days_export_is_weekly(tmp_path, sink):
    """warnd is installed, and the first export an analyst drops into the folder is a
    "past 90 days" one (daily rows); from the next week on, the "past 12 months" exports
    the docs recommend. Searches for ketamin rise from week 62. The series is weekly from
    the start: the daily rows are read as Google's whole weeks, the weekly exports are
    read into the same series with no problem, and the rise and its growth are told
    when exports dropped weekly from the start tell them. (Before, the series was stored
    daily for ever: every weekly export was refused with a problem, and the rise was
    never told.)"""
    runs = []
    for first in ("Week", "Day"):
        desk = Desk(tmp_path / first, sink)
        told = []
        for k in range(60, 70):
            if k == 60 and first == "Day":
                write_export(desk.drop / f"week {k}.csv", "Day", daily(k, RISE))
            else:
                values = weekly(k, level=RISE)
                write_export(desk.drop / f"week {k}.csv", "Week", values)
            told += [(k, title) for title in desk.cycle(k)]
        runs.append((told, desk.stored(), desk.problems(69)))
    (weekly_told, weekly_stored, _), (told, stored, problems) = runs
    assert [k for k, _ in weekly_told] == [63, 69]  # the rise, and its growth
    assert told == weekly_told
    # weeks only: those the exports read cover (the first weekly one from week 10)
    assert sorted(stored) == [week_start(w) + timedelta(days=1) for w in range(10, 70)]
    # the weekly run's values on the scale of the daily export read first
    scale = statistics.median(v / weekly_stored[p] for p, v in stored.items())
    assert stored == pytest.approx({p: scale * weekly_stored[p] for p in stored}, rel=0.03)
    assert problems == []


def test_a_daily_series_stored_before_is_kept_and_the_problem_says_how_to_go_weekly(
        tmp_path, sink, capsys):
    """A store from before holds a daily Trends series: its source was first fed a "past
    90 days" export, whose days were kept (as they are now with ``daily = true``).
    Upgraded, `warnd check-config` warns of it, and its history is not rewritten: the
    "past 90 days" exports are still read into it as days, and a weekly export is not
    read into it, its problem saying how to go weekly. The operator gives the source a
    new name: its exports, all of them read afresh, make a weekly series, and the rise of
    searches for ketamin is told; the daily series is kept as it was, and `backtest
    --replay store` tells what the daemon told."""
    desk = Desk(tmp_path, sink, keys="daily = true\n")
    write_export(desk.drop / "week 60.csv", "Day", daily(60))
    assert desk.cycle(60) == []
    before = desk.stored()
    assert len(before) == 90  # days
    assert main(["check-config", str(desk.cfg.path)]) == 0
    assert "is daily" not in capsys.readouterr().err  # asked for
    desk = Desk(tmp_path, sink)  # upgraded: the source does not ask for days
    assert main(["check-config", str(desk.cfg.path)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{desk.cfg.path}: warning: sources.trends: its stored series of ketamin is daily "
        "(its first export was read as days), and weekly exports are not read into it; "
        "set daily = true to keep it daily, or give the source a new name to read its "
        "exports afresh into a weekly series")
    write_export(desk.drop / "week 61.csv", "Week", weekly(61))
    assert desk.cycle(61) == []
    assert desk.problems(61) == [
        f"{desk.drop / 'week 61.csv'}: weekly values (a range of about 9 months to 5 "
        "years), but the stored series of ketamin is daily: its values not read, lest the "
        "two be mixed; give the source a new name to read its exports afresh into a weekly "
        "series (the daily one is kept), or set daily = true and export a range under about "
        "9 months for daily values"]
    write_export(desk.drop / "week 62.csv", "Day", daily(62))
    desk.cycle(62)
    kept = desk.stored()
    assert {d: kept[d] for d in before} == before and len(kept) == len(before) + 14
    desk = Desk(tmp_path, sink, name="trends-weekly")
    told = []
    for k in range(63, 70):
        values = weekly(k, level=RISE)
        write_export(desk.drop / f"week {k}.csv", "Week", values)
        told += [(k, title) for title in desk.cycle(k)]
    assert [k for k, _ in told] == [63, 69], told  # the rise, and its growth
    weeks = desk.stored()
    assert sorted(weeks) == [week_start(w) + timedelta(days=1) for w in range(10, 70)]
    assert desk.problems(69) == []
    # `backtest --replay store` on such a store gives what the daemon sent, on its days
    msgs = replay(desk.cfg, start=desk.now(60).date(), end=desk.now(69).date(), every=7)
    assert [(m["date"], m["title"]) for m in msgs] == [
        (desk.now(k).date().isoformat(), title) for k, title in told]


def excel_save(path: Path, values: dict[date, int | str], how: str) -> None:
    """A weekly export opened in a Norwegian Excel and saved again: as "CSV
    (semikolondelt)" (semicolons, dates as 04.01.2026, Windows-1252), as "Unicode-tekst"
    (UTF-16 with a BOM, tabs) or as "CSV UTF-8" (commas, a BOM); lines end in CRLF."""
    sep, enc, day = {"semicolon": (";", "cp1252", "%d.%m.%Y"),
                     "unicode": ("\t", "utf-16", "%d.%m.%Y"),
                     "utf-8": (",", "utf-8-sig", "%Y-%m-%d")}[how]
    lines = ["Kategori: Alle kategorier", "", f"Uke{sep}ketamin: (Norge)",
             *(f"{d.strftime(day)}{sep}{v}" for d, v in sorted(values.items()))]
    path.write_bytes("\r\n".join(lines).encode(enc))


def test_exports_saved_again_from_excel_are_read_as_google_wrote_them(tmp_path, sink):
    """Searches for ketamin rise; staff open three of the weekly exports in a Norwegian
    Excel before dropping them: one saved with semicolons, one as Unicode text (UTF-16,
    tabs), one as CSV UTF-8 (a BOM). warnd stores and tells exactly what it does when
    every export is dropped as Google wrote it. (Before, a file with semicolons or tabs
    had "no header row" and none of its weeks was read, and the rise was told two weeks
    late.)"""
    rise = RISE
    runs = []
    for saved in (False, True):
        desk = Desk(tmp_path / f"saved-{saved}", sink)
        told = []
        for k in range(60, 70):
            values = weekly(k, level=rise)
            how = {63: "semicolon", 64: "unicode", 65: "utf-8"}.get(k) if saved else None
            if how:
                excel_save(desk.drop / f"week {k}.csv", values, how)
            else:
                write_export(desk.drop / f"week {k}.csv", "Week", values)
            told += [(k, title) for title in desk.cycle(k)]
        runs.append((told, desk.stored(), desk.problems(69)))
    (plain_told, plain, _), (told, stored, problems) = runs
    assert any(k == 63 for k, _ in plain_told)  # the rise is told as the export shows it
    assert told == plain_told
    assert stored == pytest.approx(plain)
    assert problems == []


def test_the_running_week_an_export_ends_with_is_left_out(tmp_path, sink):
    """Searches for ketamin rise, and go on rising. Staff export "past 12 months" on
    Mondays: the export's last row is the week that began the day before, Google's count
    of its first day (its chart draws it dotted, as partial data). That row is left out
    until the week has ended, when a later export gives the whole week: what is told is
    what exports of ended weeks only tell, and no value is stored for a week still
    running. (Before, the running week was stored each Monday as a fall to a seventh of
    the level, revised the week after, and the rise's growth was not told.)"""
    rise = RISE
    runs = []
    for partial in (False, True):
        desk = Desk(tmp_path / f"partial-{partial}", sink)
        told, running = [], []
        for k in range(60, 70):
            values = {week_start(w): float(rise[w]) for w in range(k - 51, k + 1)}
            if partial:  # the Sunday before the poll
                values[week_start(k + 1)] = rise[k + 1] / 7
            write_export(desk.drop / f"week {k}.csv", "Week", dict(scaled(values)))
            told += [(k, title) for title in desk.cycle(k)]
            running += [p for p in desk.stored() if p >= desk.now(k).date()]
        runs.append((told, running, desk.stored()))
    (whole_told, _, whole), (told, running, stored) = runs
    assert [k for k, _ in whole_told] == [63, 69]  # the rise, and its growth
    assert told == whole_told
    assert running == []
    assert stored == pytest.approx(whole)


def test_rows_pytrends_marks_partial_are_left_out(tmp_path, sink):
    """An export written by pytrends (``date,<term>,isPartial``) marks the running week's
    row ``True``: the row is left out, and the column is no term of a substance."""
    desk = Desk(tmp_path, sink)
    rows = "".join(f"{week_start(w).isoformat()},{LEVEL[w]},False\n" for w in range(8, 60))
    (desk.drop / "pytrends.csv").write_text(
        f"date,ketamin,isPartial\n{rows}{week_start(60).isoformat()},9,True\n")
    assert desk.cycle(61) == []
    stored = desk.stored()
    assert sorted(stored) == [week_start(w) + timedelta(days=1) for w in range(8, 60)]
    assert desk.problems(61) == []


def test_an_export_of_another_geography_is_not_mixed_into_the_series(tmp_path, sink):
    """The source reads exports for Norway. One week, beside its weekly export, staff drop
    an export for Oslo, where searches for ketamin rose in the last weeks (a local
    event): the country's steady interest is not told as a rise, the stored values stay
    those of the exports for Norway, and the Oslo file's problem says why it was not read
    and what to do. (Before, the Oslo export was put on the country's scale and stored
    over its weeks, a rise in Oslo told as one in Norway.)"""
    oslo = [v if w < 61 else v * 2.5 for w, v in enumerate(LEVEL)]
    runs = []
    for dropped in (False, True):
        desk = Desk(tmp_path / f"oslo-{dropped}", sink)
        told = []
        for k in range(60, 66):
            write_export(desk.drop / f"week {k}.csv", "Week", weekly(k))
            if dropped and k == 63:
                values = weekly(k, level=oslo)
                (desk.drop / "oslo.csv").write_text(
                    "Category: All categories\n\nWeek,ketamin: (Oslo)\n" + "".join(
                        f"{d.isoformat()},{v}\n" for d, v in sorted(values.items())))
            told += [(k, title) for title in desk.cycle(k)]
        runs.append((told, desk.stored(), desk.problems(65)))
    (_, country, _), (told, stored, problems) = runs
    assert told == []
    assert stored == pytest.approx(country)
    assert [p for p in problems if "oslo.csv" in p] == [
        f"{tmp_path / 'oslo-True' / 'drop' / 'oslo.csv'}: an export of Oslo, but the stored "
        "series of ketamin is read from exports of Norway: its values not read, lest the two "
        "be mixed; drop it into the folder of a source of its own, or set geo_as_region = "
        "true to keep each geography as a region"]


def test_a_week_google_counts_as_zero_is_no_fall_nor_rise(tmp_path, sink):
    """From one week on, every export shows a week as 0 (Google's data collection changed
    that week). The week is stored as 0, not missing, and the steady weeks around it are
    no rise nor fall: nothing is told, also with falls told (``alert_decreases``)."""
    desk = Desk(tmp_path, sink, detection="alert_decreases = true")
    told = []
    for k in range(60, 72):
        values = weekly(k)
        if k >= 63:
            values[week_start(63)] = 0
        write_export(desk.drop / f"week {k}.csv", "Week", values)
        told += desk.cycle(k)
    assert told == [] and sink.messages == []
    assert desk.stored()[week_start(63) + timedelta(days=1)] == 0


def test_an_export_dropped_twice_is_told_once(tmp_path, sink):
    """Searches for ketamin rise; each week's export is dropped twice, the second time
    under the name a browser gives a second download ("week 63 (1).csv"), now at the
    same poll, now a poll later. The copies store and revise nothing: what is stored and
    told is what the exports dropped once give, the rise and its growth told once each."""
    rise = RISE
    runs = []
    for twice in (False, True):
        desk = Desk(tmp_path / f"twice-{twice}", sink)
        told = []
        for k in range(60, 70):
            values = weekly(k, level=rise)
            write_export(desk.drop / f"week {k}.csv", "Week", values)
            if twice and k % 2:
                write_export(desk.drop / f"week {k} (1).csv", "Week", values)
            told += [(k, title) for title in desk.cycle(k)]
            if twice and not k % 2:
                write_export(desk.drop / f"week {k} (1).csv", "Week", values)
        st = Store.in_dir(desk.cfg.state_dir)
        try:
            revisions = st.q("SELECT count(*) AS n FROM revisions")[0]["n"]
        finally:
            st.close()
        runs.append((told, desk.stored(), revisions))
    assert [k for k, _ in runs[0][0]] == [63, 69]
    assert runs[1] == runs[0]
    assert len(sink.messages) == 4  # two of each run


def test_searches_below_one_are_no_rise(tmp_path, sink):
    """A term searched for too little to count: its weeks are "<1", 1 or 2 on the scale
    of the export's other term. They are stored as 0.5 flagged ``lt1`` and as read, and
    nothing is told of them."""
    low = ["<1", "1", "<1", "2", "1", "<1", "1", "1", "<1", "2", "<1"]
    desk = Desk(tmp_path, sink)
    told = []
    for k in range(60, 72):
        rows = "".join(f"{week_start(w).isoformat()},{low[w * 7 % 11]},{LEVEL[w]}\n"
                       for w in range(k - 51, k + 1))
        (desk.drop / f"week {k}.csv").write_text(
            "Category: All categories\n\nWeek,ketamin: (Norway),heroin: (Norway)\n" + rows)
        told += desk.cycle(k)
    assert told == [] and sink.messages == []
    stored = desk.stored()
    assert {v for v in stored.values()} == {0.5, 1.0, 2.0}
    st = Store.in_dir(desk.cfg.state_dir)
    try:
        flags = {r["flag"] for r in st.q(
            "SELECT flag FROM observations WHERE substance='ketamin' AND value=0.5")}
    finally:
        st.close()
    assert flags == {"lt1"}


@pytest.mark.parametrize(("revised", "then"), [
    (lambda w, v: LEVEL[w], "Rettelse: Liten økning: ketamin — 1 kilde"),
    (lambda w, v: v * 1.3 if 62 <= w <= 65 else v,
     "Forverring: Liten økning: ketamin — 1 kilde"),
], ids=["back at the level", "higher still"])
def test_weeks_told_and_revised_by_a_later_export_are_told_as_a_revision(
        tmp_path, sink, revised, then):
    """A rise is told; three weeks later Google's exports show its weeks otherwise: back
    at the level (searches it no longer counts), or higher still. Put on the stored scale,
    the revised weeks are a correction of what was told, or its growth: told once, never
    as a new rise."""
    rise = RISE
    desk = Desk(tmp_path, sink)
    told = []
    for k in range(60, 74):
        src = rise if k < 66 else [revised(w, v) for w, v in enumerate(rise)]
        values = weekly(k, level=src)
        write_export(desk.drop / f"week {k}.csv", "Week", values)
        told += [(k, title) for title in desk.cycle(k)]
    assert told == [(63, "Liten økning: ketamin — 1 kilde"), (66, then)]
    assert [m["title"] for m in sink.messages] == [title for _, title in told]


def test_an_hourly_export_is_not_read_as_days(tmp_path, sink):
    """One week staff export "past 7 days": Google gives a row an hour (``Time`` and
    ``2025-03-16T14``), relative to the export's peak hour. Its hours are not added up
    into days (24 hours would read as a day of 24 times the searches) nor stored: the
    file's problem names it and says which range to export; the weekly exports around
    it are read as usual and nothing is told."""
    runs = []
    for hourly in (False, True):
        desk = Desk(tmp_path / f"hourly-{hourly}", sink)
        told = []
        for k in range(60, 66):
            write_export(desk.drop / f"week {k}.csv", "Week", weekly(k))
            if hourly and k == 62:  # the seven days to the Saturday ending week 62
                end = datetime.combine(week_start(63), datetime.min.time())
                hours = [end - timedelta(hours=h) for h in range(1, 7 * 24 + 1)]
                rows = "".join(f"{h:%Y-%m-%dT%H},{40 + h.hour}\n" for h in sorted(hours))
                (desk.drop / "past 7 days.csv").write_text(
                    f"Category: All categories\n\nTime,ketamin: (Norway)\n{rows}")
            told += desk.cycle(k)
        runs.append((told, desk.stored(), desk.problems(65)))
    (_, plain, _), (told, stored, problems) = runs
    assert told == [] and sink.messages == []
    assert stored == pytest.approx(plain)
    assert [p for p in problems if "past 7 days.csv" in p] == [
        f"{tmp_path / 'hourly-True' / 'drop' / 'past 7 days.csv'} line 5: several rows a "
        "day (an hourly export, a range of 7 days or less): not read; export a range of "
        "more than 7 days for daily values, of about 9 months to 5 years for weekly ones"]


def test_an_export_caught_half_written_is_no_problem_once_read_whole(tmp_path, sink, capsys):
    """Week 61's export is caught half written by the poll (Excel still saving it): its
    problem is listed by `warnd status`. The next week's poll reads it whole: its problem
    is no longer listed, and its week is stored. A file still bad ("notes.csv", not an
    export) stays listed, poll after poll. Before, the half-written export's problem was
    listed for as long as fewer than five newer problems came, as if it still were one."""
    import json

    desk = Desk(tmp_path, sink)
    half = desk.drop / "week 61.csv"

    def listed(k: int) -> list[str]:
        desk.cycle(k)
        # (1: stale, as the wall clock has the exports' weeks long gone)
        assert main(["--config", str(desk.cfg.path), "status", "--json"]) in (0, 1)
        src = next(s for s in json.loads(capsys.readouterr().out)["sources"]
                   if s["name"] == "trends")
        return [Path(p["location"]).name for p in src["recent_problems"]]

    seen = {}
    for k in range(60, 66):
        write_export(desk.drop / f"week {k}.csv", "Week", weekly(k))
        if k == 61:
            half.write_text(half.read_text(encoding="utf-8")[:30], encoding="utf-8")
            (desk.drop / "notes.csv").write_text("ring Kari om tallene\n", encoding="utf-8")
        if k == 62:
            write_export(half, "Week", weekly(61))  # saved whole now
        seen[k] = listed(k)
    assert seen == {60: [], 61: ["week 61.csv", "notes.csv"], 62: ["notes.csv"],
                    63: ["notes.csv"], 64: ["notes.csv"], 65: ["notes.csv"]}, seen
    assert week_start(61) + timedelta(days=1) in desk.stored()
