import json
from datetime import date, timedelta

import numpy as np
import pytest

from detectors.params import DetectionParams
from warnd.backtest import (
    _FIELDS,
    CsvFormatError,
    _parse_row,
    _row_parser,
    format_backtest_table,
    format_changepoints_table,
    read_observations_csv,
    run_backtest,
    run_changepoints,
)

START = date(2021, 1, 4)


def write_csv(path, n=200, step_at=170, extra_rows=()):
    rng = np.random.default_rng(12)
    mu_up = np.full(n, 6.0)
    mu_up[step_at:] = 18.0
    mu_down = np.full(n, 30.0)
    mu_down[step_at:] = 10.0
    lines = ["date,substance,source,value,denominator,region,dimension,metric"]
    for i in range(n):
        d = (START + timedelta(weeks=i)).isoformat()
        lines.append(f"{d},cocaine,lab,{rng.poisson(mu_up[i])},,Bergen,use,count")
        lines.append(f"{d},heroin,customs,{rng.poisson(mu_down[i])},,,availability,")
    lines[5:5] = list(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


BAD = [
    "2021-13-01,cocaine,lab,3,,Bergen,use,count",
    "2021-02-01,cocaine,lab,three,,Bergen,use,count",
    "2021-02-01,,lab,3,,,,",
]


def test_bad_rows_reported_with_line_numbers_and_skipped(tmp_path, capsys):
    path = write_csv(tmp_path / "obs.csv", extra_rows=BAD)
    series = read_observations_csv(path)
    err = capsys.readouterr().err
    assert "line 6: date '2021-13-01' is not an ISO date" in err
    assert "line 7: value 'three' is not a number" in err
    assert "line 8: substance and source must not be empty" in err
    assert {(s.substance, s.source, s.region) for s in series} == {
        ("cocaine", "lab", "Bergen"),
        ("heroin", "customs", ""),
    }
    assert all(len(s.periods) == 200 for s in series)
    heroin = next(s for s in series if s.substance == "heroin")
    assert heroin.dimension == "availability" and heroin.metric == "count"


def test_missing_column_is_one_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("date,substance,value\n2021-01-04,x,1\n")
    with pytest.raises(CsvFormatError, match="line 1: missing column"):
        read_observations_csv(p)


def test_backtest_alerts_increase_only_and_no_look_ahead(tmp_path):
    path = write_csv(tmp_path / "obs.csv")
    alerts = run_backtest(path)
    assert alerts, "the step up must alert"
    json.dumps(alerts)
    assert all(a["direction"] == "increase" for a in alerts)
    first = alerts[0]
    for key in (
        "substance",
        "source",
        "region",
        "fired_at",
        "kind",
        "direction",
        "onset",
        "level_before",
        "level_after",
        "relative_change",
        "strength",
        "p_value",
        "category",
        "category_words",
        "decision",
        "evidence",
    ):
        assert key in first
    trend = [a for a in alerts if a["kind"] == "trend" and a["decision"] == "open"]
    assert [a["substance"] for a in trend] == ["cocaine"]
    fired = date.fromisoformat(trend[0]["fired_at"])
    assert START + timedelta(weeks=170) <= fired <= START + timedelta(weeks=178)
    # the same file cut at week 185: identical alerts up to the cut
    cut = write_csv(tmp_path / "cut.csv", n=185)
    early = run_backtest(cut)
    limit = (START + timedelta(weeks=184)).isoformat()
    assert early == [a for a in alerts if a["fired_at"] <= limit]
    assert "cocaine" in format_backtest_table(alerts)
    loud = run_backtest(path, lambda sub, src: DetectionParams(alert_decreases=True))
    assert any(a["direction"] == "decrease" and a["substance"] == "heroin" for a in loud)


def test_changepoints_per_series(tmp_path):
    path = write_csv(tmp_path / "obs.csv")
    res = run_changepoints(path)
    by = {r["substance"]: r for r in res}
    cps = [date.fromisoformat(d) for d in by["cocaine"]["change_points"]]
    assert len(cps) == 1 and abs((cps[0] - (START + timedelta(weeks=170))).days) <= 14
    assert by["cocaine"]["segments"][0]["start"] == START.isoformat()
    assert by["heroin"]["segments"][-1]["level"] == pytest.approx(10, abs=2)
    json.dumps(res)
    assert "heroin" in format_changepoints_table(res)


def test_changepoint_and_backtest_tables_tell_a_source_s_metrics_apart():
    """A trend panel's answers on use and on availability are two series of one source,
    substance and region: the text tables name each row's metric (before, two rows read
    alike but for their numbers)."""
    seg = {"start": "2021-03-15", "end": "2026-03-15", "level": 0.1}
    res = [{"substance": "heroin", "source": "trendpanel", "region": "46", "metric": m,
            "change_points": [], "segments": [seg]} for m in ("score:use", "score:availability")]
    lines = format_changepoints_table(res).splitlines()
    assert lines[0].split()[:4] == ["substance", "source", "region", "metric"]
    assert [line.split()[3] for line in lines[2:]] == ["score:use", "score:availability"]
    alert = {"fired_at": "2026-03-16", "substance": "heroin", "source": "toll-beslag",
             "region": None, "kind": "trend", "decision": "open", "onset": "2026-01-05",
             "level_before": 2.0, "level_after": 4.0, "relative_change": 1.0,
             "p_value": 0.001, "category_words": "strong increase"}
    rows = format_backtest_table([{**alert, "metric": "quantity"}, alert]).splitlines()
    assert rows[0].split()[4] == "metric"
    assert [r.split()[4] for r in rows[2:]] == ["quantity", "count"]


def write_two_sources(path, customs_steps: bool):
    rng = np.random.default_rng(5)
    lines = ["date,substance,source,value"]
    for i in range(200):
        d = (START + timedelta(weeks=i)).isoformat()
        lab = rng.poisson(18.0 if i >= 170 else 6.0)
        customs = rng.poisson(30.0 if (customs_steps and i >= 182) else 10.0)
        lines += [f"{d},cocaine,lab,{lab}", f"{d},cocaine,customs,{customs}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_corroboration_across_sources(tmp_path):
    strict = DetectionParams(require_corroboration=True)
    lone = write_two_sources(tmp_path / "lone.csv", customs_steps=False)
    assert [a for a in run_backtest(lone) if a["kind"] == "trend"]
    assert not [a for a in run_backtest(lone, lambda s, src: strict) if a["kind"] == "trend"]
    both = write_two_sources(tmp_path / "both.csv", customs_steps=True)
    alerts = [a for a in run_backtest(both, lambda s, src: strict) if a["kind"] == "trend"]
    assert {a["source"] for a in alerts} == {"lab", "customs"}
    assert all(a["n_sources"] >= 2 for a in alerts)
    # without the requirement the second source agreeing escalates the first one's episode
    default = run_backtest(both)
    lab = [a for a in default if a["source"] == "lab" and a["kind"] == "trend"]
    assert lab[0]["decision"] == "open" and lab[0]["n_sources"] == 1
    assert any(a["decision"] == "escalate" and a["n_sources"] == 2 for a in lab)


def test_lt1_in_an_index_series_is_read_as_half(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("date,substance,source,value,metric\n2026-01-04,ketamin,trends,<1,index\n"
                 "2026-01-11,ketamin,trends,< 1,index\n2026-01-18,ketamin,trends,3,index\n")
    (s,) = read_observations_csv(p)
    assert list(s.values) == [0.5, 0.5, 3.0]
    assert capsys.readouterr().err == ""


def test_as_of_replays_a_revision_as_it_arrived(tmp_path):
    """A wrong ×4 week, published and corrected three weeks later: judged as published
    it alerts; the same file without as_of (only the corrected figures) does not."""
    rng = np.random.default_rng(5)
    n, wrong = 120, 110
    vals = rng.poisson(10.0, n)
    lines = ["date,substance,source,value,as_of"]
    plain = ["date,substance,source,value"]
    for i in range(n):
        d = START + timedelta(weeks=i)
        pub = d + timedelta(days=7)
        if i == wrong:
            lines.append(f"{d},ketamin,lab,{vals[i] * 4},{pub}")
            lines.append(f"{d},ketamin,lab,{vals[i]},{pub + timedelta(weeks=3)}")
        else:
            lines.append(f"{d},ketamin,lab,{vals[i]},{pub}")
        plain.append(f"{d},ketamin,lab,{vals[i]}")
    (tmp_path / "asof.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "plain.csv").write_text("\n".join(plain) + "\n")
    (s,) = read_observations_csv(tmp_path / "asof.csv")
    assert s.values[wrong] == vals[wrong]  # the series holds the latest version
    as_arrived = run_backtest(tmp_path / "asof.csv")
    corrected = run_backtest(tmp_path / "plain.csv")
    when = (START + timedelta(weeks=wrong)).isoformat()
    assert any(a["fired_at"] == when for a in as_arrived), as_arrived
    assert not any(a["fired_at"] == when for a in corrected), corrected
    bad = tmp_path / "bad.csv"
    bad.write_text("date,substance,source,value,as_of\n2026-01-05,k,lab,3,soon\n")
    assert read_observations_csv(bad) == []


def test_overlapping_index_exports_are_put_on_one_scale(tmp_path, capsys):
    # two exports of one Trends series, the second on half the scale of the first: the
    # backtest rescales it by the overlap, as the daemon does, instead of reading a halving
    lines = ["date,substance,source,value,metric"]
    first = [40 + (i % 5) for i in range(120)]
    for i, v in enumerate(first):
        lines.append(f"{(START + timedelta(weeks=i)).isoformat()},ketamin,trends,{v},index")
    for i in range(60, 160):
        v = (40 + (i % 5)) / 2
        lines.append(f"{(START + timedelta(weeks=i)).isoformat()},ketamin,trends,{v:g},index")
    path = tmp_path / "obs.csv"
    path.write_text("\n".join(lines) + "\n")
    (s,) = read_observations_csv(path)
    assert "duplicate" not in capsys.readouterr().err
    assert len(s.periods) == 160
    assert s.values[:120].tolist() == [float(v) for v in first]
    assert s.values[120:].tolist() == [float(40 + (i % 5)) for i in range(120, 160)]


# rows of every shape: the short path for well-formed rows and the careful path that names
# what is wrong must read a row the same way
ODD_ROWS = [
    ["2021-01-04", "coke", "lab", "3", "", "Oslo", "use", "count", ""],
    [" 2021-01-04 ", " coke ", " lab ", " 3 ", "  ", " Oslo ", " use ", " index ", " "],
    ["20210104", "coke", "lab", "1e1", "100", "", "", "", "2021-01-11"],
    ["2021-01-04", "coke", "lab", "<1", "0", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "< 1", " 5.5", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "1_000", "", "", "", "", ""],
    ["2021-13-01", "coke", "lab", "3", "", "", "", "", ""],
    ["2021-01-04", "", "lab", "3", "", "", "", "", ""],
    ["2021-01-04", "coke", " ", "3", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "three", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "nan", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "-inf", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "<2", "", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "3", "x", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "3", "-1", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "3", "inf", "", "", "", ""],
    ["2021-01-04", "coke", "lab", "3", "", "", "", "", "2021-02-30"],
    ["2021-01-04", "coke", "lab", "3", "", "", "", "", "", "extra"],
    ["2021-01-04", "coke", "lab", "3"],
    ["2021-01-04", "coke", "lab"],
]


def test_every_row_is_read_alike_on_both_paths():
    header = ["date", "substance", "source", "value", "denominator", "region", "dimension",
              "metric", "as_of"]
    parse = _row_parser(header)
    for row in ODD_ROWS * 2:  # the second round meets dates and numbers already seen
        as_dict = dict(zip(header, row))
        if len(row) > len(header):
            as_dict[None] = row[len(header):]
        as_dict.update({h: None for h in header[len(row):]})
        try:
            want = _parse_row(as_dict)
        except ValueError as exc:
            with pytest.raises(ValueError) as got:
                parse(row)
            assert str(got.value) == str(exc), row
            continue
        assert parse(row) == tuple(want[f] for f in _FIELDS), row


def test_bad_rows_amid_well_formed_rows_keep_their_line_numbers(tmp_path, capsys):
    good = write_csv(tmp_path / "good.csv")
    bad = [
        "2021-13-01,cocaine,lab,3,,Bergen,use,count",
        "2021-02-01,cocaine,lab,nan,,Bergen,use,count",
        "2021-02-01,cocaine,lab,3,-2,Bergen,use,count",
        "2021-02-01,cocaine,lab,3,,Bergen,use,count,surplus",
        "2021-02-01,cocaine,lab",
    ]
    lines = good.read_text().splitlines()
    for j, row in enumerate(bad):  # far into the file, among rows read on the short path
        lines.insert(150 + 40 * j, row)
    (tmp_path / "bad.csv").write_text("\n\n".join(lines[:2]) + "\n" + "\n".join(lines[2:]) + "\n")
    series = read_observations_csv(tmp_path / "bad.csv")
    err = capsys.readouterr().err.splitlines()
    # one blank line after the header: every later row is one line further down
    assert [e.split(": ", 1)[0].rsplit(" ", 1)[1] for e in err] == [
        str(150 + 40 * j + 2) for j in range(len(bad))
    ]
    assert "date '2021-13-01' is not an ISO date" in err[0]
    assert "value 'nan' is not a finite number" in err[1]
    assert "denominator '-2' must be a non-negative number" in err[2]
    assert "more fields than the header" in err[3]
    assert "value '' is not a finite number" in err[4]
    assert all(e.endswith("; row skipped") for e in err)
    want = read_observations_csv(good)
    assert [(s.key, s.periods, s.values.tolist(), s.dimension) for s in series] == [
        (s.key, s.periods, s.values.tolist(), s.dimension) for s in want
    ]


def _as_arrived_by_definition(series, versions, params):
    """Each period judged on its own snapshot: the periods arrived by its arrival day,
    each at its latest version by then (one replay per arrival day)."""
    from dataclasses import replace as dc_replace

    from detectors.engine import replay

    arrive = {p: (versions[p][0][0] if p in versions else p) for p in series.periods}
    out = []
    for i, p in enumerate(series.periods):
        a = arrive[p]
        idx = [j for j, q in enumerate(series.periods) if arrive[q] <= a]
        vals, dens = [], []
        for j in idx:
            known = [v for v in versions.get(series.periods[j], []) if v[0] <= a]
            vals.append(known[-1][1] if known else float(series.values[j]))
            if series.denominators is not None:
                d = known[-1][2] if known else float(series.denominators[j])
                dens.append(np.nan if d is None else d)
        snap = dc_replace(series, periods=tuple(series.periods[j] for j in idx),
                          values=np.array(vals, dtype=float),
                          denominators=None if series.denominators is None else np.array(dens))
        out.append(replay(snap, params)[snap.periods.index(p)])
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_as_arrived_replays_once_per_run_of_arrivals_with_the_same_findings(tmp_path, seed):
    """Revisions, late and out-of-order arrivals, periods without as_of: the findings
    equal those of judging every period on its own snapshot."""
    from warnd.backtest import read_versions, replay_as_arrived

    rng = np.random.default_rng(seed)
    n = 90
    level = np.where(np.arange(n) >= 60, 30.0, 10.0)
    lines = ["date,substance,source,value,denominator,as_of"]
    for i in range(n):
        d = START + timedelta(weeks=i)
        v, den = rng.poisson(level[i]), 200 + int(rng.integers(0, 50))
        r = rng.random()
        if r < 0.1:
            lines.append(f"{d},k,lab,{v},{den},")  # no as_of: arrives on its own date
            continue
        pub = d + timedelta(days=7 * int(rng.choice([1, 1, 1, 2, 5])))  # some arrive late
        lines.append(f"{d},k,lab,{v * (4 if r > 0.9 else 1)},{den},{pub}")
        if r > 0.8:  # revised later (a week to two months)
            when = pub + timedelta(days=7 * int(rng.integers(1, 9)))
            lines.append(f"{d},k,lab,{v},{den},{when}")
    (tmp_path / "obs.csv").write_text("\n".join(lines) + "\n")
    (s,), versions = read_versions(tmp_path / "obs.csv")
    params = DetectionParams()
    got = replay_as_arrived(s, versions[s.key], params)
    assert got == _as_arrived_by_definition(s, versions[s.key], params)
    assert any(got), "the data must give findings to compare"


def test_series_with_and_without_versions_replayed_in_one_batch(tmp_path):
    """A file mixing series with versions and without: each series' alerts equal those
    from its own findings (replayed alone, or judged period by period as it arrived)."""
    from detectors.engine import replay
    from warnd.backtest import _agreement, backtest_series, read_versions

    rng = np.random.default_rng(4)
    n = 80
    lines = ["date,substance,source,value,as_of"]
    for i in range(n):
        d = START + timedelta(weeks=i)
        for src, mu in (("lab", 8.0), ("customs", 20.0), ("police", 5.0)):
            v = rng.poisson(mu * (3 if i >= 60 else 1))
            if src == "customs":
                lines.append(f"{d},k,{src},{v},")
                continue
            late = 3 if src == "police" and i % 11 == 0 else 1
            lines.append(f"{d},k,{src},{v * (5 if i % 13 == 0 else 1)},{d + timedelta(weeks=late)}")
            if i % 13 == 0:
                lines.append(f"{d},k,{src},{v},{d + timedelta(weeks=late + 2)}")
    path = tmp_path / "obs.csv"
    path.write_text("\n".join(lines) + "\n")
    series, versions = read_versions(path)
    assert sorted(versions) == ["lab:k", "police:k"]
    params = DetectionParams()
    found = [(s, _as_arrived_by_definition(s, versions[s.key], params) if s.key in versions
              else replay(s, params)) for s in series]
    agree = _agreement([(s, params, f) for s, f in found])
    want = [a for s, f in found for a in backtest_series(s, params, findings=f,
                                                          agreeing=agree[s.substance])]
    want.sort(key=lambda a: (a["fired_at"], a["substance"], a["source"], a["region"], a["kind"]))
    got = run_backtest(path)
    assert got == want
    assert {a["source"] for a in got} == {"lab", "customs", "police"}


def test_a_source_whose_rise_is_back_does_not_agree_with_a_new_one(tmp_path):
    """Cocaine ×3 for eight weeks in one source, back since; ×3 in another from ten
    weeks after. The first source's trend is still current (its window from the onset
    holds the excess) but its level is back, so its episode was told ended the week
    before: the second source's rise opens alone, as the daemon tells it (a source whose
    rise has ended does not agree). Before, the first source counted as agreeing, the
    opening said two sources, and with ``require_corroboration`` it alerted where the
    daemon held it back."""
    rng = np.random.default_rng(12)
    lab, customs = np.full(150, 6.0), np.full(150, 6.0)
    lab[120:128] *= 3
    customs[138:] *= 3
    lines = ["date,substance,source,value"]
    for i in range(150):
        d = (START + timedelta(weeks=i)).isoformat()
        lines.append(f"{d},cocaine,lab,{rng.poisson(lab[i])}")
        lines.append(f"{d},cocaine,customs,{rng.poisson(customs[i])}")
    path = tmp_path / "obs.csv"
    path.write_text("\n".join(lines) + "\n")
    params = DetectionParams().merged({"send_resolve": True})
    trend = [(a["source"], a["decision"], a["n_sources"], a["evidence"]["agreeing_sources"])
             for a in run_backtest(path, lambda *_: params) if a["kind"] == "trend"]
    assert trend == [("lab", "open", 1, ["lab"]), ("lab", "resolve", 1, ["lab"]),
                     ("customs", "open", 1, ["customs"])]
    strict = params.merged({"require_corroboration": True})
    assert not [a for a in run_backtest(path, lambda *_: strict) if a["kind"] == "trend"]
