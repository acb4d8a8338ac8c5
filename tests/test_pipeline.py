"""One source to one alert: poll → store → detect → alert, idempotent, failure-isolated."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np

from tests.conftest import write_config
from tests.scenario import (
    LAB_SOURCE,
    MEDIA_SOURCE,
    START,
    WASTEWATER_SOURCE,
    media_titles,
    write_lab_csv,
    write_rss,
)
from warnd.cli import collect_status, main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def make_config(tmp_path, extra: str = ""):
    write_lab_csv(tmp_path / "data" / "lab.csv")
    write_rss(tmp_path / "data" / "media" / "feed.xml", media_titles())
    body = LAB_SOURCE.format(interval="1h") + MEDIA_SOURCE.format(interval="1h") + extra
    return load_config(write_config(tmp_path, body))


def counts(cfg) -> dict[str, int]:
    st = Store.in_dir(cfg.state_dir)
    try:
        return {t: st.q(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]
                for t in ("observations", "items", "alerts", "deliveries", "findings")}
    finally:
        st.close()


def test_rising_substance_alerts_and_stable_one_does_not(tmp_path):
    cfg = make_config(tmp_path)
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    assert all(p.ok for p in res["polls"]), [p.error for p in res["polls"]]
    alerted = {a["substance"] for a in res["alerts"]}
    assert "ketamin" in alerted
    assert "heroin" not in alerted
    ket = next(a for a in res["alerts"] if a["substance"] == "ketamin")
    assert ket["kind"] == "trend" and ket["direction"] == "increase"
    assert {x["source"] for x in ket["data"]["agree"]} == {"lab", "media"}
    assert "ketamin" in ket["title"] and "2 kilder" in ket["title"]
    # the headlines behind it are cited; the weather articles were not counted
    assert any("ketamin" in h["title"] for h in ket["data"]["headlines"])


def test_a_messages_headlines_are_dated_by_their_local_day(tmp_path):
    """An article published at 00:30 on 28 December in Oslo (23:30 UTC the day before) is
    listed under "Siste saker og varsler" as of 28 December, the day its readers saw it
    (before, its UTC day: 27 December)."""
    write_lab_csv(tmp_path / "data" / "lab.csv")
    late = (datetime(2025, 12, 27, 23, 30, tzinfo=UTC), "Ketamin funnet i festlokale")
    write_rss(tmp_path / "data" / "media" / "feed.xml", [*media_titles(), late])
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                   + MEDIA_SOURCE.format(interval="1h")))
    assert cfg.general.timezone == "Europe/Oslo"
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    ket = next(a for a in res["alerts"] if a["substance"] == "ketamin")
    first = ket["data"]["headlines"][0]
    assert (first["title"], first["published_at"]) == (late[1], "2025-12-28")
    assert f"2025-12-28 {late[1]}" in ket["body"]
    assert "2025-12-27" not in ket["body"]


def test_a_source_feed_is_made_once_and_anew_with_a_new_config(tmp_path):
    """A pipeline makes each source's feed on its first poll and keeps it (the
    substances, when the same, shared between sources); the pipeline of a changed
    (reloaded) config makes its own, with the new options."""
    cfg = make_config(tmp_path)
    pipeline = Pipeline(cfg, clock=lambda: NOW)
    feed = pipeline.build_feed("lab")
    assert pipeline.poll("lab").ok and pipeline.poll("lab").ok
    assert pipeline.build_feed("lab") is feed and feed.options.metric == "count"
    # sources watching the same substances share one list of them
    assert pipeline.build_feed("media").substances is feed.substances
    changed = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                       + 'metric = "positives"\n', name="changed.toml"))
    other = Pipeline(changed).build_feed("lab")
    assert other is not feed and other.options.metric == "positives"


def test_second_run_is_idempotent_and_sends_nothing_new(tmp_path):
    cfg = make_config(tmp_path)
    Pipeline(cfg, clock=lambda: NOW).run_once()
    before = counts(cfg)
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    assert res["alerts"] == []
    assert all(p.documents == 0 and p.skipped >= 1 for p in res["polls"])
    assert counts(cfg) == before


def test_reingesting_a_changed_file_adds_only_the_new_period(tmp_path):
    cfg = make_config(tmp_path)
    Pipeline(cfg, clock=lambda: NOW).run_once()
    n_obs = counts(cfg)["observations"]
    lab = tmp_path / "data" / "lab.csv"
    lab.write_text(lab.read_text() + "2026-01-01,heroin,5\n")
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    lab_poll = next(p for p in res["polls"] if p.source == "lab")
    assert lab_poll.documents == 1
    assert counts(cfg)["observations"] == n_obs + 1


def test_failing_source_does_not_stop_the_others(tmp_path):
    broken = """
[[sources]]
name = "gone"
kind = "rss"
location = "data/does-not-exist.xml"
interval = "1h"
dimension = "interest"
"""
    cfg = make_config(tmp_path, broken)
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    by = {p.source: p for p in res["polls"]}
    assert not by["gone"].ok and "does-not-exist.xml" in by["gone"].error
    assert by["lab"].ok and by["media"].ok
    st = collect_status(cfg)
    gone = next(s for s in st["sources"] if s["name"] == "gone")
    assert gone["consecutive_failures"] == 1 and "does-not-exist.xml" in gone["last_error"]


def test_malformed_feed_is_reported_and_rest_ingested(tmp_path):
    cfg = make_config(tmp_path)
    (tmp_path / "data" / "media" / "broken.xml").write_bytes(b"\x00\x01 this is not xml")
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    media = next(p for p in res["polls"] if p.source == "media")
    assert media.ok and media.problems >= 1 and media.items > 0
    st = collect_status(cfg)
    probs = next(s for s in st["sources"] if s["name"] == "media")["recent_problems"]
    assert any("broken.xml" in p["location"] for p in probs)


def test_old_history_is_recorded_but_not_alerted(tmp_path):
    # ketamin rose two years ago and came back down: findings, but no alert now
    write_lab_csv(tmp_path / "data" / "lab.csv", rise_from=None)
    lab = tmp_path / "data" / "lab.csv"
    lines = lab.read_text().splitlines()
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        d, sub, v = line.split(",")
        week = i // 2
        if sub == "ketamin" and 40 <= week < 60:
            v = str(int(v) * 4 + 10)
        out.append(f"{d},{sub},{v}")
    lab.write_text("\n".join(out) + "\n")
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    res = Pipeline(cfg, clock=lambda: NOW).run_once()
    assert res["alerts"] == []
    assert counts(cfg)["findings"] > 0


def test_run_once_command_prints_the_alert(tmp_path, capsys):
    cfg = make_config(tmp_path)
    assert main(["--config", str(cfg.path), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "ALERT #" in out and "ketamin" in out
    assert main(["--config", str(cfg.path), "alerts", "--json"]) == 0
    assert '"substance": "ketamin"' in capsys.readouterr().out


def test_demo_scenario_alerts_rising_substances_only(root, tmp_path, monkeypatch):
    """`make demo`: the shipped config on the sample data, no network, no accounts."""
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "demo-state"))
    cfg = load_config(root / "config.toml")
    res = Pipeline(cfg).run_once()
    assert all(p.ok for p in res["polls"]), [(p.source, p.error) for p in res["polls"]]
    trends = {a["substance"] for a in res["alerts"]
              if a["kind"] == "trend" and a["direction"] == "increase"}
    assert trends == {"kokain", "ketamin"}
    # panel answers on use and on availability are separate series, neither overwrites
    st = Store.in_dir(cfg.state_dir)
    metrics = {r["metric"]: r["n"] for r in st.q(
        "SELECT metric, COUNT(*) AS n FROM observations WHERE source='trendpanel' GROUP BY 1")}
    assert st.q("SELECT COUNT(*) AS n FROM revisions WHERE source='trendpanel'")[0]["n"] == 0
    st.close()
    assert set(metrics) == {"score:use", "score:availability"}
    assert metrics["score:use"] == metrics["score:availability"] > 0
    for a in res["alerts"]:
        if a["substance"] in ("kokain", "ketamin") and a["kind"] == "trend":
            assert a["severity"] == "critical"  # several independent sources agree
            assert len({x["source"] for x in a["data"]["agree"]}) >= 3


def test_require_corroboration_holds_a_lone_source_back(tmp_path):
    write_lab_csv(tmp_path / "data" / "lab.csv")
    strict = '\n[substances.ketamin.detection]\nrequire_corroboration = true\n'
    subs = __import__("tests.conftest", fromlist=["SUBSTANCES"]).SUBSTANCES
    lone = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h"),
                                    substances=subs + strict, name="lone.toml"))
    assert Pipeline(lone, clock=lambda: NOW).run_once()["alerts"] == []
    # the default lets one strong source alert, at a lower severity
    default = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h"),
                                       state_dir="state2", name="default.toml"))
    alerts = Pipeline(default, clock=lambda: NOW).run_once()["alerts"]
    assert [(a["substance"], a["severity"]) for a in alerts] == [("ketamin", "info")]


def test_raw_notice_pages_are_kept(root, tmp_path, monkeypatch):
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "s"))
    cfg = load_config(root / "config.toml")
    assert Pipeline(cfg).poll("overdosefare").ok
    kept = list((tmp_path / "s" / "raw" / "overdosefare").glob("*.raw"))
    assert len(kept) == 1 and b"<" in kept[0].read_bytes()


def test_daemon_and_backtest_find_the_same_changes(tmp_path):
    """The daemon's stored findings are those of the one-pass replay and of the
    incremental state on the same data, and `warnd backtest` on that data fires the
    trends the daemon recorded."""
    from detectors.engine import SeriesState, replay, replay_with_state
    from warnd.backtest import run_backtest

    cfg = make_config(tmp_path)
    Pipeline(cfg, clock=lambda: NOW).run_once()
    st = Store.in_dir(cfg.state_dir)
    try:
        stored = {r["key"]: r for r in st.q(
            "SELECT key, kind, detected_at, last_seen_at FROM findings WHERE source='lab'")}
        series = {sub: st.load_series("lab", sub) for sub in ("ketamin", "heroin")}
    finally:
        st.close()
    params = cfg.detection_params("ketamin", "lab")
    keys, lines = set(), ["date,substance,source,value"]
    for sub, s in series.items():
        per_period = replay(s, params)
        keys |= {f.key for fs in per_period for f in fs}
        _, state = replay_with_state(s.upto(60), params)
        for i in range(60, len(s.periods)):
            state = SeriesState.from_dict(json.loads(json.dumps(state.to_dict())))
            assert state.advance(s.periods[i], float(s.values[i]), params) == per_period[i]
        lines += [f"{p.isoformat()},{sub},lab,{v:g}" for p, v in zip(s.periods, s.values)]
    assert keys == set(stored) and any(r["kind"] == "trend" for r in stored.values())
    (tmp_path / "obs.csv").write_text("\n".join(lines) + "\n")
    fired = run_backtest(tmp_path / "obs.csv", lambda sub, src: cfg.detection_params(sub, src))
    trend_keys = {f"lab:{a['substance']}:trend:increase:{a['onset']}" for a in fired
                  if a["kind"] == "trend"}
    assert trend_keys and trend_keys <= set(stored)


def test_a_substance_rising_from_nothing_is_told_and_every_later_round_judged(tmp_path, caplog,
                                                                             capsys):
    """Wastewater that held no ketamine until it appears (its change infinite: nothing
    before) and, while that rise is open, a spike in the lab's ketamine counts: week by
    week through the pipeline, every week's series are judged (none left pending, no
    detection error; SQLite before 3.42 does not read the ``Infinity`` Python writes for
    that change as JSON, which stalled the substance), the rise is told within two weeks,
    and ``alerts --json`` stays JSON."""
    weeks, appears, spike = 112, 100, 108
    rng = np.random.default_rng(5)
    ww = [0.0 if i < appears else round(3.0 + 0.4 * (i - appears) + rng.uniform(0, 1), 1)
          for i in range(weeks)]
    lab = [int(x) for x in rng.poisson(5.0, weeks)]
    lab[spike] = 40
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                   + WASTEWATER_SOURCE.format(metric="concentration")))
    (tmp_path / "data").mkdir()

    def write(upto: int) -> None:
        for name, vals in (("lab", lab), ("ww", ww)):
            rows = ["period,substance,value"] + [
                f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{vals[i]}"
                for i in range(upto + 1)]
            (tmp_path / "data" / f"{name}.csv").write_text("\n".join(rows) + "\n")

    told = []
    for w in range(appears - 2, weeks):
        write(w)
        now = datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(), UTC)
        res = Pipeline(cfg, clock=lambda now=now: now + timedelta(hours=12)).run_once()
        assert all(p.ok for p in res["polls"]), [p.error for p in res["polls"]]
        told += [(w, a["kind"], a["decision"]) for a in res["alerts"]]
        store = Store.in_dir(cfg.state_dir)
        try:
            assert store.pending_series() == {}, w  # every series judged this week
            rise = store.episode_state("series:ww:ketamin:concentration")
        finally:
            store.close()
        if w > appears:
            assert math.isinf(rise["active"]["trend:increase"]["relative_change"]), w
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == []
    first = [(w, d) for w, k, d in told if k == "trend"][0]
    assert first[1] == "open" and appears <= first[0] <= appears + 2
    capsys.readouterr()
    assert main(["--config", str(cfg.path), "alerts", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out, parse_constant=lambda c: 1 / 0)
    assert {a["substance"] for a in listed} == {"ketamin"}


CUSTOMS_SOURCE = """
[[sources]]
name = "customs"
kind = "count_table"
location = "data/customs.csv"
interval = "1h"
dimension = "availability"
"""


def _weeks_with_customs_taken_out(tmp_path, lab: list[float], customs: list[float],
                                  first: int, removed: int) -> list[tuple[int, str]]:
    """Weeks ``first`` … of ketamine counts drawn around ``lab`` and ``customs`` (weekly
    means), each week's data written and a ``run --once`` cycle run at the week's end;
    customs is taken out of the config from week ``removed`` on (its data stops there).
    The substance's trend messages, as ``(week, decision)``."""
    rng = np.random.default_rng(7)
    data = {"lab": [int(x) for x in rng.poisson(lab)],
            "customs": [int(x) for x in rng.poisson(customs)]}
    (tmp_path / "data").mkdir()
    extra = "\n[alerting]\nsend_resolved = true\n"
    both = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h") + CUSTOMS_SOURCE
                                    + extra))
    lab_only = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h") + extra,
                                        name="lab-only.toml"))
    told = []
    for w in range(first, len(lab)):
        for name, vals in data.items():
            rows = ["period,substance,value"] + [
                f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{vals[i]}"
                for i in range(min(w, removed - 1 if name == "customs" else w) + 1)]
            (tmp_path / "data" / f"{name}.csv").write_text("\n".join(rows) + "\n")
        now = datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(), UTC)
        cfg = both if w < removed else lab_only
        res = Pipeline(cfg, clock=lambda now=now: now + timedelta(hours=12)).run_once()
        assert all(p.ok for p in res["polls"]), [p.error for p in res["polls"]]
        told += [(w, a["decision"]) for a in res["alerts"]
                 if a["kind"] == "trend" and a["substance"] == "ketamin"]
    return told


def _level(weeks: int, *rises: tuple[int, int]) -> list[float]:
    """Weekly means: 5, three times that over each ``(from, to)`` week range."""
    lam = np.full(weeks, 5.0)
    for lo, hi in rises:
        lam[lo:hi] *= 3.0
    return lam.tolist()


def test_a_source_taken_out_of_the_config_no_longer_holds_its_substance_open(tmp_path):
    """Lab and customs both see ketamine rise, and customs is then taken out of the
    config while its rise is on (its series stay in the store, no longer judged, their
    episode left open). Week by week through the pipeline: when the lab's rise ends the
    substance's episode ends (told, as ``send_resolved`` asks), and the lab's next rise
    months later is told as a new one. Before, the removed source's episode held the
    substance open for good: no end was told and the next rise was not told at all."""
    weeks, rise, calm, again, removed = 160, 100, 112, 140, 106
    told = _weeks_with_customs_taken_out(
        tmp_path, _level(weeks, (rise, calm), (again, weeks)),
        _level(weeks, (rise, removed)), rise - 4, removed)
    assert told[0][1] == "open" and told[0][0] < removed  # both sources' rise
    ends = [w for w, d in told if d == "resolve"]
    assert ends and calm <= ends[0] < again  # the lab's rise ended: the episode ends
    assert [d for w, d in told if w > ends[0]][:1] == ["open"]  # the next rise: news
    assert min(w for w, d in told if w > ends[0]) >= again


def test_a_rise_after_the_last_open_source_was_taken_out_is_told_anew(tmp_path):
    """The lab's rise ends while customs' goes on (no end told: customs still rises);
    customs is then taken out of the config with its episode open. The lab's next rise
    is a new episode, told as one, though no end was ever told for the last."""
    weeks, rise, calm, removed, again = 175, 100, 112, 135, 150
    told = _weeks_with_customs_taken_out(
        tmp_path, _level(weeks, (rise, calm), (again, weeks)),
        _level(weeks, (rise, weeks)), rise - 4, removed)
    assert told[0][1] == "open" and told[0][0] < calm
    assert [d for w, d in told if calm <= w < again] == []  # customs kept it open
    assert [d for w, d in told if w >= again][:1] == ["open"]


def test_a_rise_whose_message_was_silenced_is_told_when_the_silence_ends(tmp_path):
    """Week by week through the pipeline: ketamine's rise opens under a silence of eight
    weeks (its message recorded, sent to nobody). The first week no silence covers it,
    the rise, still on, is told, once, as an episode's first message; its end is told
    when it comes. Before, nobody heard of it unless it grew."""
    weeks, rise, silence_from, silence_days = 165, 100, 99, 56
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, 125)))]
    (tmp_path / "data").mkdir()
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                   + "\n[alerting]\nsend_resolved = true\n"))

    def week_end(w: int) -> datetime:
        return datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(),
                                UTC) + timedelta(hours=12)

    until = week_end(silence_from) + timedelta(days=silence_days)
    told = []
    for w in range(rise - 2, weeks):
        if w == silence_from:
            store = Store.in_dir(cfg.state_dir)
            store.add_silence(substance="ketamin", kind=None, source=None, reason="festival",
                              until=until, now=week_end(w))
            store.close()
        rows = ["period,substance,value"] + [
            f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{lab[i]}" for i in range(w + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n")
        res = Pipeline(cfg, clock=lambda w=w: week_end(w)).run_once()
        told += [(w, a["decision"], a.get("status", "open")) for a in res["alerts"]
                 if a["kind"] == "trend" and a["substance"] == "ketamin"]
    silenced = [w for w, _, s in told if s == "silenced"]
    sent = [(w, d) for w, d, s in told if s == "open"]
    assert silenced and all(week_end(w) < until for w in silenced)  # under the silence
    first_free = min(w for w in range(rise, weeks) if week_end(w) >= until)
    assert sent[0] == (first_free, "open")  # told the first week no silence covers it
    assert [d for _, d in sent] == ["open", "resolve"]  # once, then its end


def test_a_rise_held_by_a_silence_is_told_when_it_ends_without_waiting_for_new_data(
        tmp_path):
    """Ketamine's rise opens under a silence. The lab publishes no more weeks for a while
    (as a monthly table would not), and the silence ends meanwhile: the daemon's hourly
    pass over all series (``detect()``, nothing new to judge) tells the rise within the
    hour, once, as the episode's first message, and the next data add no second
    opening. Before, it waited for the substance's next data: weeks, or a month."""
    weeks, rise = 106, 100
    lab = [int(x) for x in np.random.default_rng(3).poisson(_level(weeks, (rise, weeks)))]
    (tmp_path / "data").mkdir()
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))

    def week_end(w: int) -> datetime:
        return datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(),
                                UTC) + timedelta(hours=12)

    def publish(upto: int) -> None:
        rows = ["period,substance,value"] + [
            f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{lab[i]}"
            for i in range(upto + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n")

    def trends(alerts: list[dict]) -> list[tuple[str, str]]:
        return [(a["decision"], a.get("status", "open")) for a in alerts
                if a["kind"] == "trend" and a["substance"] == "ketamin"]

    until = week_end(weeks - 2) + timedelta(days=3)  # the silence ends between two weeks
    store = Store.in_dir(cfg.state_dir)
    store.add_silence(substance="ketamin", kind=None, source=None, reason="festival",
                      until=until, now=week_end(rise - 3))
    store.close()
    told = []
    for w in range(rise - 2, weeks - 1):
        publish(w)
        told += trends(Pipeline(cfg, clock=lambda w=w: week_end(w)).run_once()["alerts"])
    assert told and {s for _, s in told} == {"silenced"}  # the rise, held back
    assert trends(Pipeline(cfg, clock=lambda: until - timedelta(hours=1)).detect()) == []
    hour = until + timedelta(minutes=30)
    assert trends(Pipeline(cfg, clock=lambda: hour).detect()) == [("open", "open")]
    assert trends(Pipeline(cfg, clock=lambda: hour + timedelta(hours=1)).detect()) == []
    publish(weeks - 1)  # the lab's next week
    later = Pipeline(cfg, clock=lambda: week_end(weeks - 1)).run_once()["alerts"]
    assert ("open", "open") not in trends(later)
