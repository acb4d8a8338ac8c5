
"""The half-year report: tables on a hand-worked example, periods, CLI errors, formats."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from xml.etree import ElementTree

import numpy as np
import pytest

from detectors.base import Series
from detectors.params import DetectionParams
from feeds.base import Observation
from tests.conftest import write_config
from tests.scenario import LAB_SOURCE
from warnd.cli import main
from warnd.config import load_config
from warnd.alerting.names import num, percent
from warnd.report.charts import trend_index
from warnd.report.render import CSV_COLUMNS, render_csv, render_html, render_markdown
from warnd.report.tables import (
    NO_DATA,
    NO_DATA_BEFORE,
    Report,
    ReportError,
    build_report,
    choose_periods,
    substance_table,
)
from warnd.store import Store

CUR = (date(2025, 10, 1), date(2026, 3, 31))
PREV = (date(2025, 4, 1), date(2025, 9, 30))
PARAMS = DetectionParams()


def weeks(first: date, n: int) -> tuple[date, ...]:
    return tuple(first + timedelta(days=7 * i) for i in range(n))


# 26 weekly periods in each half-year: 2025-04-07 … 2025-09-29 and 2025-10-06 … 2026-03-30
PREV_WEEKS, CUR_WEEKS = weeks(date(2025, 4, 7), 26), weeks(date(2025, 10, 6), 26)
MONTHS = tuple(date(2025 + (m > 12), (m - 1) % 12 + 1, 1) for m in range(4, 16))


def weekly(source: str, before: float, after: float, **kw) -> Series:
    return Series(source=source, substance="x", periods=PREV_WEEKS + CUR_WEEKS,
                  values=np.array([before] * 26 + [after] * 26), **kw)


def example() -> list[Series]:
    """Hand-worked: four sources of one substance plus one without data in the period."""
    return [
        weekly("lab", 10, 20, dimension="use"),  # 10 -> 20 a week: +100 %, p << 0.05: +2
        weekly("amk", 10, 11, dimension="use"),  # +10 %: below the +15 % cut-off: 0
        Series(source="toll", substance="x", periods=MONTHS, dimension="availability",
               values=np.array([20.0] * 6 + [10.0] * 6)),  # -50 %, 120 vs 60: -2
        Series(source="panel", substance="x", metric="score:use", dimension="use",
               periods=(date(2025, 9, 15), date(2026, 3, 15)),
               values=np.array([2.0, 30.0]), denominators=np.array([30.0, 34.0])),
        Series(source="media", substance="x", periods=PREV_WEEKS, dimension="interest",
               values=np.ones(26)),  # nothing after September
    ]


def test_hand_worked_tables():
    t = substance_table("x", example(), CUR, PREV, PARAMS, label="X")
    rows = {r.source: r for r in t.rows}
    assert (rows["lab"].level_before, rows["lab"].level_after) == (10.0, 20.0)
    assert rows["lab"].relative_change == pytest.approx(1.0)
    assert rows["lab"].p_value < 0.001 and rows["lab"].score == 2
    assert rows["amk"].relative_change == pytest.approx(0.1) and rows["amk"].score == 0
    assert rows["toll"].relative_change == pytest.approx(-0.5)
    # quasi-Poisson: z = ln(60/120) / sqrt(1/120 + 1/60) = -4.38 -> p = 1.2e-5
    assert rows["toll"].p_value == pytest.approx(1.18e-5, rel=0.05)
    assert rows["toll"].score == -2 and rows["toll"].words("en") == "strong decrease"
    # the panel adds the sum of its 34 answers; its mean answer 30/34 rounds to +1
    assert (rows["panel"].score, rows["panel"].category) == (30, 1)
    assert rows["panel"].level_before == 2
    assert rows["media"].status == NO_DATA and rows["media"].score == 0
    assert rows["media"].words("no") == "ingen data i perioden"
    assert rows["media"].words("en") == "no data in the period"

    assert t.aggregate.by_dimension == {"use": 32, "availability": -2, "interest": 0}
    assert t.aggregate.total == 30
    assert t.aggregate.n_sources == 4  # media has no data and is not counted
    assert t.aggregate.sources_by_dimension == {"use": 3, "availability": 1, "interest": 0}
    # use: lab and panel up, amk stable (2 of 3), lab strong -> strong increase
    assert t.dimension_verdicts["use"].category == 2
    # one strong source alone is only a small decrease (triangulation)
    assert t.dimension_verdicts["availability"].category == -1
    assert t.headline("no") == "X – sterk økning i bruk"
    assert t.headline("en") == "X – strong increase in use"


def test_one_source_of_four_is_not_a_change_and_stable_use_names_other_dimensions():
    s = [weekly("a", 10, 10), weekly("b", 10, 10), weekly("c", 10, 10),
         weekly("d", 20, 13),  # -35 %: strong decrease, but 1 of 4
         weekly("e", 10, 8.5, dimension="availability")]  # -15 %: small decrease
    t = substance_table("h", s, CUR, PREV, PARAMS, label="Heroin")
    assert t.aggregate.by_dimension["use"] == -2
    assert t.dimension_verdicts["use"].category == 0
    assert t.headline("no") == "Heroin – stabil bruk og liten nedgang i tilgjengelighet"
    assert t.headline("en") == "Heroin – stable use and small decrease in availability"


def test_panel_category_of_the_mean_answer():
    from warnd.report.tables import panel_category

    assert [panel_category(m) for m in (0.0, 0.2, -0.25, 0.35, 0.99, 1.0, -1.43)] == [
        0, 0, -1, 1, 1, 2, -2]


def test_from_nothing_is_an_infinite_increase():
    s = weekly("notices", 0, 2)
    (row,) = substance_table("x", [s], CUR, PREV, PARAMS).rows
    assert row.relative_change == float("inf") and row.score == 2
    rep = Report(CUR, PREV, (substance_table("x", [s], CUR, PREV, PARAMS),))
    (line,) = [x for x in render_csv(rep, "en").splitlines() if x.startswith("source,")]
    assert ",inf," in line
    assert "| notices:x | use | 0 | 2 | +∞ |" in render_markdown(rep, "en")


def test_a_campaign_a_half_year_is_scored_by_the_size_of_its_change():
    """Wastewater: one campaign's mean a half-year (mg per 1,000 inhabitants a day).
    With one value on each side the rank test cannot reach `alpha` whatever the values
    (its smallest p-value is 1), nor with three: no test applies (p shown as "–"), and
    the size of the change decides, as for a change of the mean. From four values on
    each side the test applies again. Before, cocaine in Bergen's wastewater up 172 %
    was scored a small increase, under "p 1,000"."""
    ww = Series(source="ww", substance="x", periods=(date(2025, 9, 22), date(2026, 3, 9)),
                values=np.array([200.7, 545.8]), dimension="use", metric="concentration")
    (row,) = substance_table("x", [ww], CUR, PREV, PARAMS).rows
    assert row.relative_change == pytest.approx(1.7195, abs=1e-4)
    assert (row.p_value, row.score) == (None, 2)
    rep = Report(CUR, PREV, (substance_table("x", [ww], CUR, PREV, PARAMS),))
    md = render_markdown(rep, "en")
    assert "| ww:x:concentration | use | 201 | 546 | +172% | – | +2 | strong increase |" in md
    # the months keep their capitals in English (before: "October 2025 – march 2026")
    assert "\n\nOctober 2025 – March 2026, compared with April 2025 – September 2025." in md
    small = Series(source="ww", substance="x", periods=(date(2025, 9, 22), date(2026, 3, 9)),
                   values=np.array([200.0, 216.0]), dimension="use", metric="concentration")
    assert substance_table("x", [small], CUR, PREV, PARAMS).rows[0].score == 0
    three = Series(
        source="idx", substance="x", periods=PREV_WEEKS[:3] + CUR_WEEKS[:3],
        values=np.array([1.0, 1.1, 0.9, 2.0, 2.1, 1.9]), metric="index")
    (row,) = substance_table("x", [three], CUR, PREV, PARAMS).rows
    assert (row.p_value, row.score) == (None, 2)
    four = Series(source="idx", substance="x", periods=PREV_WEEKS[:4] + CUR_WEEKS[:4],
                  values=np.array([1.0, 1.1, 0.9, 1.05, 2.0, 2.1, 1.9, 2.05]), metric="index")
    (row,) = substance_table("x", [four], CUR, PREV, PARAMS).rows
    assert row.p_value == pytest.approx(0.0286, abs=1e-4) and row.score == 2


def test_no_data_before_is_said_and_not_counted():
    s = Series(source="notices", substance="x", periods=CUR_WEEKS, values=np.ones(26),
               dimension="availability")
    t = substance_table("x", [s], CUR, PREV, PARAMS)
    (row,) = t.rows
    assert row.status == NO_DATA_BEFORE and not row.counted
    assert row.words("en") == "no data in the period before"
    assert t.aggregate.total == 0 and t.aggregate.n_sources == 0


# -- periods ------------------------------------------------------------------------------------
def test_default_period_is_latest_complete_half_year():
    # data up to the week of 23 March completes October-March
    assert choose_periods(date(2026, 3, 23), PARAMS) == (CUR, PREV)
    # data ending in February: October-March is not complete, so April-September
    assert choose_periods(date(2026, 2, 23), PARAMS) == (
        PREV, (date(2024, 10, 1), date(2025, 3, 31)))
    # half-years configured as January-June / July-December
    jan = PARAMS.merged({"half_year_start_months": (1, 7)})
    assert choose_periods(date(2026, 6, 1), jan) == (
        (date(2026, 1, 1), date(2026, 6, 30)), (date(2025, 7, 1), date(2025, 12, 31)))


def test_explicit_range_is_compared_with_equally_long_range_before():
    cur, prev = choose_periods(None, PARAMS, start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert cur == (date(2026, 1, 1), date(2026, 1, 31))
    assert prev == (date(2025, 12, 1), date(2025, 12, 31))
    # one end only: the half-year that contains it
    assert choose_periods(None, PARAMS, start=date(2025, 11, 15)) == (CUR, PREV)
    assert choose_periods(None, PARAMS, end=date(2025, 6, 30))[0] == PREV
    with pytest.raises(ReportError, match="after"):
        choose_periods(None, PARAMS, start=date(2026, 2, 1), end=date(2026, 1, 1))
    with pytest.raises(ReportError, match="no observations"):
        choose_periods(None, PARAMS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-31", "--to", "2025-10-01"], "--from 2026-03-31 is after --to"),
        (["--from", "2026-13-01", "--to", "2026-03-31"], "--from: '2026-13-01' is not a date"),
        (["--to", "31.03.2026"], "--to: '31.03.2026' is not a date"),
    ],
)
def test_bad_range_exits_2_with_one_line(args, message, capsys):
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# -- from the store ---------------------------------------------------------------------------
def fill_store(tmp_path):
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    rng = np.random.default_rng(7)
    obs = []
    first = date(2023, 1, 2)
    for i in range(169):  # weekly, 2023-01-02 … 2026-03-23
        d = first + timedelta(days=7 * i)
        late = d >= date(2025, 10, 6)
        obs.append(Observation(source="lab", substance="ketamin", period=d,
                               value=float(rng.poisson(24 if late else 8))))
        obs.append(Observation(source="lab", substance="heroin", period=d,
                               value=float(rng.poisson(10))))
    obs.append(Observation(source="trends", substance="ketamin", period=date(2025, 5, 5),
                           value=40.0, metric="index", dimension="interest"))
    store = Store.in_dir(cfg.state_dir)
    store.ingest("lab", location="test", sha256=None, observations=obs, items=(), problems=())
    with store.write() as db:
        db.execute(
            "INSERT INTO findings (key, series_key, source, substance, region, metric, "
            "dimension, kind, direction, onset, detected_at, last_seen_at, recorded_at) "
            "VALUES ('k1', 'lab:ketamin', 'lab', 'ketamin', '', 'count', 'use', 'spike', "
            "'increase', '2025-11-03', '2025-11-03', '2025-11-03', '2026-01-01')")
    store.add_alert({"dedupe_key": "a1", "substance": "ketamin", "kind": "trend",
                     "severity": "warning", "decision": "open",
                     "title": "Sterk økning: ketamin", "body": "…",
                     "data": {"detected_at": "2025-12-01", "onset": "2025-10-06"}}, [])
    store.add_alert({"dedupe_key": "a0", "substance": "ketamin", "kind": "trend",
                     "severity": "info", "decision": "open", "title": "Old alert",
                     "body": "…", "data": {"detected_at": "2024-12-01"}}, [])
    store.close()
    return cfg


@pytest.fixture
def small(tmp_path):
    cfg = fill_store(tmp_path)
    store = Store.in_dir(cfg.state_dir)
    try:
        yield cfg, build_report(store, cfg)
    finally:
        store.close()


def test_report_from_store(small):
    _, rep = small
    assert (rep.current, rep.previous) == (CUR, PREV)
    by = {t.substance: t for t in rep.substances}
    ket = by["ketamin"]
    lab = next(r for r in ket.rows if r.source == "lab")
    assert lab.score == 2 and lab.relative_change > 1.5
    trends = next(r for r in ket.rows if r.source == "trends")
    assert trends.status == NO_DATA and trends.dimension == "interest"
    assert [a["title"] for a in ket.alerts] == ["Sterk økning: ketamin"]  # not the 2024 one
    assert rep.spikes == {"lab:ketamin": [date(2025, 11, 3)]}
    assert by["heroin"].rows[0].score == 0


def test_markdown_and_csv_carry_the_same_numbers(small):
    _, rep = small
    md = render_markdown(rep, "en")
    rows = list(csv.DictReader(io.StringIO(render_csv(rep, "en"))))
    assert list(rows[0]) == CSV_COLUMNS
    src = [r for r in rows if r["row_type"] == "source"]
    assert {r["series"] for r in src} == {"lab:ketamin", "trends:ketamin:index", "lab:heroin"}
    # the tables name a series as people say it (the CSV keeps the key beside the name)
    assert {r["series_name"] for r in src} == {"Lab: count per period",
                                               "Trends: relative search index"}
    assert "lab:ketamin" not in md
    tables = {sec.splitlines()[0].split(" – ", 1)[1]: sec for sec in md.split("## Table ")[1:]}
    for r in src:
        line = next(x for x in tables[r["substance_label"]].splitlines()
                    if x.startswith(f"| {r['series_name']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[-1] == r["words"]
        if r["status"] == "ok":  # numbers written as the alert messages write them
            assert cells[2] == num(float(r["level_before"]), "en")
            assert cells[4] == percent(float(r["relative_change"]), "en")
            assert int(cells[6] or 0) == int(r["score"])
    lab = next(r for r in src if r["series"] == "lab:ketamin")
    assert (lab["category"], lab["words"]) == ("2", "strong increase")
    totals = {r["substance"]: r for r in rows if r["row_type"] == "total"}
    assert totals["ketamin"]["score"] == "2" and totals["ketamin"]["n_sources"] == "1"
    assert "| Aggregated difference | +2 | 1 |" in md
    dims = [r for r in rows if r["row_type"] == "dimension" and r["substance"] == "ketamin"]
    assert [(d["dimension"], d["score"]) for d in dims] == [
        ("use", "2"), ("availability", "0"), ("interest", "0")]


def test_english_and_norwegian_labels(small):
    _, rep = small
    en, no = render_markdown(rep, "en"), render_markdown(rep, "no")
    assert "## Main findings" in en and "**ketamin** – small increase in use" in en
    assert "no data in the period" in en and "sterk" not in en
    assert "## Hovedfunn" in no and "ingen data i perioden" in no
    assert "Aggregert differanse" in no and "Aggregated" not in no
    # an alert's severity in the report's language, as the messages say it
    assert "\\[advarsel\\] Sterk økning: ketamin" in no and "\\[warning\\]" in en


def test_cli_writes_report_files(tmp_path, capsys):
    fill_store(tmp_path)
    assert main(["--config", "config.toml", "report", "--format", "md", "--lang", "en",
                 "--out", "out"]) == 0
    path = tmp_path / "out" / "report-2025-10-01_2026-03-31-en.md"
    assert (tmp_path / capsys.readouterr().out.strip()) == path
    assert "| Lab: count per period | use |" in path.read_text()
    # a period without data: every source says so instead of printing zeros
    assert main(["--config", "config.toml", "report", "--format", "csv",
                 "--from", "2010-01-01", "--to", "2010-06-30"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    src = [r for r in rows if r["row_type"] == "source"]
    assert src and all(r["status"] == "no_data" and r["score"] == "" for r in src)
    assert all(r["words"] == "ingen data i perioden" for r in src)


def test_cli_without_store_is_an_error(tmp_path, capsys):
    write_config(tmp_path, LAB_SOURCE.format(interval="1h"))
    assert main(["--config", "config.toml", "report"]) == 1
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_html_is_self_contained(small):
    cfg, rep = small
    doc = render_html(rep, "no", params=cfg.detection_params(""))
    assert doc.count('src="data:image/svg+xml;base64,') == 2 * len(rep.substances)
    assert "http://" not in doc and "https://" not in doc and "<link" not in doc
    assert "@media print" in doc


def test_markdown_lists_an_alert_as_the_html_does_with_its_onset(small):
    cfg, rep = small
    for lang, since in (("no", "siden"), ("en", "since")):
        md = render_markdown(rep, lang)
        doc = render_html(rep, lang, params=cfg.detection_params(""))
        alert = next(a for a in rep.substances if a.substance == "ketamin").alerts[0]
        assert f"#{alert['id']} 2025-12-01 [" in doc and f"({since} 2025-10-06)" in doc
        line = next(ln for ln in md.splitlines() if ln.startswith(f"- #{alert['id']} "))
        assert line.startswith(f"- #{alert['id']} 2025-12-01 \\[")
        assert f"ketamin \\({since} 2025-10-06\\) \\(" in line  # then: sent to nobody


def test_trend_index_is_each_series_over_its_own_mean():
    per = (date(2024, 4, 1), date(2024, 10, 1), date(2025, 4, 1))
    a = Series(source="a", substance="x", periods=per, values=np.array([1.0, 2.0, 3.0]))
    b = Series(source="b", substance="x", periods=per, values=np.array([30.0, 20.0, 10.0]))
    p = Series(source="p", substance="x", periods=per, values=np.array([5.0, 5, 5]),
               metric="score")
    idx = trend_index([a, b, p], PARAMS)
    # a: 50, 100, 150; b: 150, 100, 50 -> mean 100 each; the panel is left out
    assert idx == {"use": [(per[0], 100.0), (per[1], 100.0), (per[2], 100.0)]}
    idx = trend_index([a], PARAMS)
    assert [v for _, v in idx["use"]] == pytest.approx([50, 100, 150])


def test_every_report_option_and_csv_column_is_documented(root):
    from warnd.cli import build_parser

    doc = (root / "docs" / "report.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices["report"]._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt not in ("--help", "--log-level"):
                assert f"`{opt}" in doc, f"{opt} missing from docs/report.md"
    for col in CSV_COLUMNS:
        assert f"`{col}`" in doc, f"CSV column {col} missing from docs/report.md"
    sample = (root / "docs" / "sample-report.md").read_text(encoding="utf-8")
    assert "- **Ketamin** – sterk økning i bruk" in sample


def test_config_option_before_the_command_is_kept(tmp_path, monkeypatch, capsys):
    fill_store(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    assert main(["--config", str(tmp_path / "config.toml"), "report", "--format", "csv"]) == 0
    assert "lab:ketamin" in capsys.readouterr().out


def test_source_chart_marks_change_points_and_spikes():
    from warnd.report.charts import series_marks, sources_chart

    rng = np.random.default_rng(3)
    per = weeks(date(2024, 1, 1), 120)
    y = np.concatenate([rng.poisson(10, 80), rng.poisson(30, 40)]).astype(float)
    s = Series(source="lab", substance="x", periods=per, values=y)
    m = series_marks(s, {"lab:x": [per[100]], "other:x": [per[5]]})
    assert m.spikes == [100]
    assert any(abs(cp - 80) <= 2 for cp in m.change_points), m.change_points
    assert m.segments[0][0] == 0 and m.segments[-1][1] == 119
    assert m.segments[-1][2] > 2 * m.segments[0][2]
    svg = sources_chart([s], {"lab:x": [per[100]]}, CUR, PREV, "en").decode()
    root = ElementTree.fromstring(svg)  # well-formed SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and int(root.get("width")) > 300
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "lab:x [use]" in texts and "count" in texts and "month" in texts  # axes labelled
    assert "2024-07" in texts  # a tick every half-year on a span of two years
    assert svg.count('stroke-dasharray="4 3"') >= 1 + len(m.change_points)  # legend + lines
    assert svg.count('fill="#c0392b"') == 2  # the legend's spike and the one spike


def test_chart_numbers_use_the_languages_decimal_mark():
    from warnd.report.charts import fmt_tick, longterm_chart, nice_ticks, sources_chart

    assert nice_ticks(0, 0.27, 4) == [0.0, 0.1, 0.2, 0.3]
    assert nice_ticks(60, 140) == [60, 80, 100, 120, 140]
    assert [fmt_tick(v, 0.1, "no") for v in (0.0, 0.1, 0.2)] == ["0,0", "0,1", "0,2"]
    assert fmt_tick(0.2, 0.1, "en") == "0.2" and fmt_tick(-10, 10, "en") == "\u221210"
    assert fmt_tick(20000, 10000, "no") == "20\u00a0000"
    assert fmt_tick(20000, 10000, "en") == "20,000"
    # ticks 2.5 apart keep their half (before: "−2" and "−8" for −2.5 and −7.5)
    assert nice_ticks(-7.2, 0, 4) == [-7.5, -5.0, -2.5, 0.0]
    assert [fmt_tick(v, 2.5, "no") for v in (-7.5, -5.0, -2.5, 0.0)] == [
        "\u22127,5", "\u22125,0", "\u22122,5", "0,0"]
    assert fmt_tick(250, 250, "en") == "250" and fmt_tick(0.25, 0.25, "en") == "0.25"
    per = weeks(date(2024, 1, 1), 60)
    share = Series(source="lab", substance="x", periods=per, values=np.full(60, 3.0),
                   denominators=np.full(60, 20.0))
    no = sources_chart([share], {}, CUR, PREV, "no").decode()
    assert ">0,1<" in no and ">andel positive<" in no and ">0.1<" not in no
    assert ">0.1<" in sources_chart([share], {}, CUR, PREV, "en").decode()
    lt = longterm_chart("Ketamin", {"use": [(date(2024, 1, 1), 80.5), (date(2024, 7, 1), 119.5)]},
                        CUR, "no").decode()
    assert ">Langtidstrend – Ketamin<" in lt and ">indeks (eget snitt = 100)<" in lt


def test_tables_name_series_and_show_shares_in_per_cent(tmp_path):
    """The report's source table speaks as the alert messages do: the source's label,
    the region's name, what is counted, a share of tests in per cent, the Norwegian
    decimal comma and minus sign; the CSV keeps the key beside the name."""
    cfg = load_config(write_config(tmp_path, """
[[sources]]
name = "lab-mbf"
label = "Lab MBF"
kind = "count_table"
location = "data/lab.csv"
dimension = "use"
"""))
    obs = []
    for i in range(80):  # weekly, 2024-10-07 … 2026-04-13: 5 % of tests, then 15 %
        d = date(2024, 10, 7) + timedelta(weeks=i)
        tests = 200.0
        share = 0.15 if d >= date(2025, 10, 6) else 0.05
        obs.append(Observation(source="lab-mbf", substance="ketamin", period=d, region="46",
                               value=tests * share, denominator=tests))
        obs.append(Observation(source="lab-mbf", substance="heroin", period=d, region="46",
                               value=2000.0 - i, metric="quantity"))
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest("lab-mbf", location="t", sha256=None, observations=obs, items=(),
                     problems=())
        rep = build_report(store, cfg, start=date(2025, 10, 1), end=date(2026, 3, 31))
    finally:
        store.close()
    no, en = render_markdown(rep, "no"), render_markdown(rep, "en")
    assert "| Lab MBF, Vestland: andel positive prøver | bruk | 5,0 % | 15,0 % | +200 % |" in no
    assert "| Lab MBF, Vestland: share of tests positive | use | 5.0% | 15.0% | +200% |" in en
    heroin = next(x for x in no.splitlines()
                  if x.startswith("| Lab MBF, Vestland: beslaglagt mengde (kg) |"))
    assert re.search(r"\| 1 9\d\d \| 1 9\d\d \| −1 % \|", heroin)  # thousands, true minus
    assert "lab-mbf:ketamin:46" not in no
    rows = [r for r in csv.DictReader(io.StringIO(render_csv(rep, "no")))
            if r["row_type"] == "source"]
    assert {(r["series"], r["series_name"]) for r in rows} == {
        ("lab-mbf:ketamin:46", "Lab MBF, Vestland: andel positive prøver"),
        ("lab-mbf:heroin:46:quantity", heroin.split(" | ")[0].removeprefix("| "))}
    # the charts' panels too: titled by source and region, the axis saying what is
    # measured in the report's language, a share in per cent as in the table (before:
    # "lab-mbf:ketamin:46 [bruk]" over "andel positive" from 0,00 to 0,20)
    from warnd.report.charts import ChartCache, sources_svg

    for lang, title, axis in (
            ("no", "Lab MBF, Vestland [bruk]", "andel positive prøver (%)"),
            ("en", "Lab MBF, Vestland [use]", "share of tests positive (%)")):
        svg = sources_svg(ChartCache(None), rep.series["ketamin"], rep.spikes, rep.current,
                          rep.previous, lang, rep.panels(lang)).decode()
        assert f">{title}<" in svg and f">{axis}<" in svg and "lab-mbf:" not in svg
        ticks = [float(t.replace("\u2212", "-").replace(",", "."))
                 for t in re.findall(r'text-anchor="end"[^>]*>([^<]+)<', svg)]
        assert 15 <= max(ticks) <= 20, ticks  # per cent, not 0.15 of one
    svg = sources_svg(ChartCache(None), rep.series["heroin"], rep.spikes, rep.current,
                      rep.previous, "no", rep.panels("no")).decode()
    assert ">beslaglagt mengde (kg)<" in svg and ">quantity<" not in svg
