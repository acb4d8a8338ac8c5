"""The half-year report over consecutive periods, from a store filled week by week."""

from __future__ import annotations

from datetime import date, timedelta

from feeds.base import Observation
from tests.conftest import write_config
from tests.scenario import LAB_SOURCE
from warnd.config import load_config
from warnd.report.tables import build_report
from warnd.store import Store


def _store(tmp_path):
    """A weekly and a monthly source of one substance, 2024-01 … 2026-09."""
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    obs = []
    d = date(2024, 1, 1)
    while d <= date(2026, 9, 28):
        obs.append(Observation(source="lab", substance="ketamin", period=d,
                               value=float(10 + d.month % 3)))
        d += timedelta(weeks=1)
    for y in (2024, 2025, 2026):
        for m in range(1, 13):
            if date(y, m, 1) <= date(2026, 9, 1):
                obs.append(Observation(source="toll", substance="ketamin", period=date(y, m, 1),
                                       value=float(20 + m), dimension="availability"))
    store = Store.in_dir(cfg.state_dir)
    store.ingest("lab", location="test", sha256=None, observations=obs, items=(), problems=())
    return cfg, store


def test_a_half_year_given_by_its_dates_is_the_half_years_report(tmp_path):
    """`--from` and `--to` on a half-year's first and last day give the same periods and
    numbers as the half-year's own report, for each of consecutive half-years: the period
    before is the half-year before, whole months, not a count of days that cuts off a
    month's first day or takes in the week before it."""
    cfg, store = _store(tmp_path)
    try:
        for start, end in [(date(2025, 4, 1), date(2025, 9, 30)),
                           (date(2025, 10, 1), date(2026, 3, 31)),
                           (date(2026, 4, 1), date(2026, 9, 30))]:
            own = build_report(store, cfg, start=start)
            given = build_report(store, cfg, start=start, end=end)
            assert (given.current, given.previous) == (own.current, own.previous), start
            rows = {r.key: r for t in given.substances for r in t.rows}
            for r in (r for t in own.substances for r in t.rows):
                assert (rows[r.key].n_before, rows[r.key].n_after) == (r.n_before, r.n_after)
                assert rows[r.key].level_before == r.level_before, (start, r.key)
            toll = rows["toll:ketamin"]
            assert toll.n_before == toll.n_after == 6, (start, toll)
        # the newest complete half-year is the default, and a month compares with a month
        assert build_report(store, cfg).current == (date(2026, 4, 1), date(2026, 9, 30))
        march = build_report(store, cfg, start=date(2026, 3, 1), end=date(2026, 3, 31))
        assert march.previous == (date(2026, 2, 1), date(2026, 2, 28))
    finally:
        store.close()


def test_a_report_made_after_a_source_revised_its_figures_says_which(tmp_path):
    """The customs table's July is revised from 27 to 54 seizures in August. The report
    made afterwards counts July as 54, and says under its table that the source revised
    one value of those two half-years after warnd first read it, and when; the CSV says
    it per series. The lab, never revised, is not named; nor is a revision of a period
    outside the two compared."""
    from warnd.report.render import render_csv, render_html, render_markdown

    cfg, store = _store(tmp_path)
    try:
        before = build_report(store, cfg, start=date(2026, 4, 1))
        assert before.revised == {}
        july = Observation(source="toll", substance="ketamin", period=date(2026, 7, 1),
                           value=54.0, dimension="availability")
        old = Observation(source="toll", substance="ketamin", period=date(2024, 2, 1),
                          value=1.0, dimension="availability")
        store.ingest("lab", location="test2", sha256=None, observations=[july, old],
                     items=(), problems=())
        rep = build_report(store, cfg, start=date(2026, 4, 1))
        then = {r.key: r.level_after for t in before.substances for r in t.rows}
        now = {r.key: r.level_after for t in rep.substances for r in t.rows}
        assert now["toll:ketamin"] == then["toll:ketamin"] + (54 - 27) / 6  # July revised
        (day,) = {d for _, d in rep.revised.values()}
        assert rep.revised == {"toll:ketamin": (1, day)}
        md = render_markdown(rep, "no")
        note = next(line for line in md.splitlines() if line.startswith("Reviderte tall"))
        assert rep.name("toll:ketamin", "no") in note and "1 verdi " in note and day in note
        assert rep.name("lab:ketamin", "no") not in note
        assert "Revised figures" in render_html(rep, "en", charts=False)
        csv_rows = {r.split(",")[4]: r for r in render_csv(rep, "no").splitlines()[1:]
                    if r.startswith("source,")}
        assert csv_rows["toll:ketamin"].endswith(f",1,{day},")  # data_to: the period is over
        assert csv_rows["lab:ketamin"].endswith(",0,,")
    finally:
        store.close()


def test_the_day_of_a_revision_is_the_local_day_it_was_read(tmp_path):
    """The customs table revised its July when read at 00:30 on 1 October in Oslo (22:30
    UTC on 30 September): the report's "Revised figures" and the CSV's `last_revised`
    say 2026-10-01, the day the analysts saw it change (before, 2026-09-30, its UTC
    day)."""
    from datetime import UTC, datetime

    from warnd.report.render import render_csv, render_markdown

    cfg, store = _store(tmp_path)
    try:
        july = Observation(source="toll", substance="ketamin", period=date(2026, 7, 1),
                           value=54.0, dimension="availability")
        store.ingest("lab", location="test2", sha256=None, observations=[july], items=(),
                     problems=(), now=datetime(2026, 9, 30, 22, 30, tzinfo=UTC))
        rep = build_report(store, cfg, start=date(2026, 4, 1))
        assert rep.revised == {"toll:ketamin": (1, "2026-10-01")}
        assert "(sist 2026-10-01)" in render_markdown(rep, "no").replace("\\", "")
        assert ",1,2026-10-01" in render_csv(rep, "no")
    finally:
        store.close()


def test_a_source_given_another_dimension_is_reported_in_it(tmp_path, capsys):
    """The lab's table was configured as ``dimension = "use"`` and read weekly through the
    pipeline for a year; in August 2025 the operator corrects it to ``"availability"``.
    The October–March report made with the corrected config scores the lab under
    availability, as the alerts and digests tell it since the reload, and its main
    finding does not speak of use. Before, the report kept the dimension of the rows
    first stored: the lab was summed, and its words given, under use for good."""
    import csv
    import io

    import numpy as np

    from tests.test_stream_config import LAB_IN, MAIL, START, _week_end
    from warnd.cli import main
    from warnd.pipeline import Pipeline

    (tmp_path / "data").mkdir()
    use = load_config(write_config(tmp_path, LAB_IN.format(region="NO") + MAIL,
                                   name="use.toml"))
    path = write_config(tmp_path, LAB_IN.format(region="NO").replace('"use"', '"availability"')
                        + MAIL)
    availability = load_config(path)
    weeks, corrected = 150, 113
    values = np.random.default_rng(3).poisson(5.0, weeks)
    for w in range(100, weeks):
        rows = ["period,substance,value"] + [
            f"{START + timedelta(weeks=i)},ketamin,{values[i]}" for i in range(w + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        Pipeline(use if w < corrected else availability,
                 clock=lambda w=w: _week_end(w)).run_once()
    capsys.readouterr()
    assert main(["--config", str(path), "report", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    (lab,) = [r for r in rows if r["row_type"] == "source"]
    assert (lab["period_from"], lab["dimension"]) == ("2025-10-01", "availability")
    n = {r["dimension"]: r["n_sources"] for r in rows if r["row_type"] == "dimension"}
    assert (n["use"], n["availability"]) == ("0", "1")
    (total,) = [r for r in rows if r["row_type"] == "total"]
    assert "bruk" not in total["words"] and "tilgjengelighet" in total["words"], total


def test_a_rise_revised_away_later_is_listed_as_corrected(tmp_path, smtp_server, capsys):
    """Lab and customs show ketamine rising from August 2025: the rise is told and
    escalated in the April–September half-year, by mail. In the autumn both revise those
    weeks down to the usual level and the mail gets a correction for each. The
    April–September report made afterwards lists the opening and the escalation as they
    were told, each marked with the corrections that withdrew it and their days
    ("rettet ved #…" / "corrected by #…"), as its table, made of the revised figures,
    shows no rise. Before, the report listed them as standing rises beside a stable
    table; the corrections, in the next half-year's report, were the only trace."""
    from tests.alerting_env import make_config, target
    from tests.test_stream_revisions import _put_each, _rising, _usual, _week_end
    from warnd.alerting import outbox
    from warnd.cli import main
    from warnd.pipeline import Pipeline

    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    weeks = 125  # revised, and judged again, on 3 November 2025
    usual = _usual(weeks)
    told = []
    for w, values in [*((w, _rising(usual, {"lab": 115, "customs": 117}))
                        for w in range(110, weeks)), (weeks, usual)]:
        _put_each(cfg, values, w + 1)
        told += [(a["id"], a["decision"]) for a in
                 Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect() if a["kind"] == "trend"]
        store = Store.in_dir(cfg.state_dir)
        try:
            outbox.dispatch_pending(cfg, store, now=_week_end(w))
        finally:
            store.close()
    assert [d for _, d in told] == ["open", "escalate", "correct", "correct"], told
    opened, escalated, first, last = (i for i, _ in told)
    subjects = [m["Subject"].split(":")[0] for m in smtp_server.messages]
    assert subjects.count("Rettelse") == 2, subjects

    def listed(lang: str, start: str) -> dict[int, str]:
        assert main(["--config", str(tmp_path / "config.toml"), "report", "--format", "md",
                     "--lang", lang, "--from", start]) == 0
        return {int(line.split()[1][1:]): line for line in
                capsys.readouterr().out.splitlines() if line.startswith("- #")}

    capsys.readouterr()
    autumn = listed("no", "2025-10-01")
    day = {i: autumn[i].split()[2] for i in (first, last)}
    assert not any("rettet" in line for line in autumn.values()), autumn
    for lang, mark in (("no", "rettet ved"), ("en", "corrected by")):
        spring = listed(lang, "2025-04-01")
        assert set(spring) >= {opened, escalated} and not set(spring) & {first, last}
        said = f"{mark} #{first} {day[first]}, #{last} {day[last]}"
        assert all(said in spring[i] for i in (opened, escalated)), spring


def test_a_half_year_without_data_is_not_called_stable(tmp_path, capsys):
    """The store holds two sources' weekly and monthly figures from January 2024 to
    September 2026. The report of a half-year before them, or after them, says in each
    language that there are no data: in its main finding, and in its table, whose
    aggregated difference over no sources gives no words ("–"), as the rows of the
    dimensions without sources and the CSV's total ("ingen data i perioden") do. Before,
    that row said "stabil" / "stable": a finding the report had no data for."""
    from warnd.cli import main

    cfg, store = _store(tmp_path)
    store.close()
    capsys.readouterr()
    for start in ("2023-04-01", "2027-04-01"):
        for lang, total, none in (("no", "Aggregert differanse", "ingen data i perioden"),
                                  ("en", "Aggregated difference", "no data in the period")):
            assert main(["--config", str(tmp_path / "config.toml"), "report", "--format", "md",
                         "--lang", lang, "--from", start]) == 0
            md = capsys.readouterr().out
            assert f"- **ketamin** – {none}" in md, md
            assert f"| {total} | 0 | 0 | – |" in md, md
    assert main(["--config", str(tmp_path / "config.toml"), "report", "--format", "md",
                 "--from", "2026-04-01"]) == 0
    assert "| Aggregert differanse | 0 | 2 | stabil |" in capsys.readouterr().out


def test_an_end_a_silence_held_back_and_told_later_is_listed_once_as_told(tmp_path, capsys):
    """The lab's one-off ketamine spike of August 2025 is told; ketamine is silenced from
    the next week to December, and the spike ends under the silence in September
    (recorded, sent to nobody). The first round after the silence, in December, its end
    is told. The April–September report lists the spike and its end once, as told, not
    also as "sendt til ingen" (before, the end was listed twice: held back, and told)."""
    from tests.alerting_env import SOURCES
    from tests.test_stream_config import MAIL, _weeks
    from tests.test_stream_silenced_ends import _lab_spike, _silence
    from warnd.cli import main

    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, spike, start, stop = 140, 115, 116, 130

    def configs(w: int):
        if w == start:
            _silence(cfg, at=w, until=stop)
        return cfg

    told = _weeks(configs, _lab_spike(weeks, spike), range(spike - 2, weeks))
    assert [(d, s) for _, k, d, s in told if k == "spike"] == [
        ("open", "open"), ("resolve", "silenced"), ("resolve", "open")]
    capsys.readouterr()
    for lang, ended in (("no", "Avsluttet: "), ("en", "Ended: ")):
        assert main(["--config", str(tmp_path / "config.toml"), "report", "--format", "md",
                     "--lang", lang, "--from", "2025-04-01"]) == 0
        listed = [line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("- #")]
        assert len(listed) == 2 and ended in listed[1], listed
        assert not any("ingen" in line or "no one" in line for line in listed), listed
