"""The alert stream over time: a scenario replayed through the real pipeline.

The scenario (``examples/scenario/*.toml``, ``tests/scenarios/*.toml``; format in
``tests/timetravel.py``) is served as it looked on each run date — RSS and the warnings
page over loopback HTTP, Trends exports and tables as files — while the clock moves
through the dates; the messages arrive at a loopback SMTP server. These tests judge the
whole stream, not a snapshot. They assert what recipients must get (one opening
message per episode, escalations only on more evidence, …), not exact detection dates.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.conftest import ROOT
from tests.servers import SmtpServer
from tests.timetravel import Message, Run, Scenario, World, run

SCENARIO = ROOT / "examples" / "scenario" / "bergen.toml"
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*.toml")) + [SCENARIO]
TREND = ("trend",)


@pytest.fixture(scope="module")
def smtp():
    srv = SmtpServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stream(tmp_path_factory, smtp) -> Run:
    """The Bergen scenario from installation to the end, run every two weeks."""
    from datetime import UTC, datetime

    from warnd.config import load_config
    from warnd.service.health import collect_status

    sc = Scenario.load(SCENARIO)
    told: dict[date, set[str]] = {}
    status: dict[date, dict] = {}
    work = tmp_path_factory.mktemp("bergen")

    def on_step(day, store, res):
        cfg = load_config(work / "config.toml")
        status[day] = collect_status(cfg, now=datetime.combine(day, sc.run_at, UTC))
        told[day] = {
            r["scope"].split(":")[1] for r in store.q(
                "SELECT scope, state FROM episodes WHERE scope LIKE 'substance:%'")
            if json.loads(r["state"]).get("open")}

    r = run(sc, work, smtp, on_step=on_step)
    r.told = told  # type: ignore[attr-defined]
    r.status = status  # type: ignore[attr-defined]
    return r


def _episodes(msgs: list[Message]) -> list[list[Message]]:
    """Split one substance's trend messages into episodes (an end closes one)."""
    out: list[list[Message]] = []
    cur: list[Message] | None = None
    for m in msgs:
        if cur is None:
            cur = []
            out.append(cur)
        cur.append(m)
        if m.decision in ("resolve", "correct"):
            cur = None
    return out


def test_scenarios_load_and_render(tmp_path):
    for path in SCENARIOS:
        sc = Scenario.load(path)
        assert sc.run_dates() and sc.sources and sc.substances, path
        w = World(sc, sc.install)
        from datetime import UTC, datetime, time

        now = datetime.combine(sc.install, time(7), UTC)
        for src in sc.sources:
            assert w.render(src, sc.install, now), (path, src["name"])


def test_every_episode_opens_with_one_opening_message(stream):
    for sub in stream.scenario.substances:
        for ep in _episodes(stream.about(sub, *TREND)):
            decisions = [m.decision for m in ep]
            assert decisions[0] == "open", (sub, decisions)
            assert decisions.count("open") == 1, (sub, decisions)
            assert all(d in ("escalate", "repeat") for d in decisions[1:-1]), (sub, decisions)


def test_escalations_only_when_evidence_grew(stream):
    for sub in stream.scenario.substances:
        for ep in _episodes(stream.about(sub, *TREND)):
            best = (0, 0)
            for m in ep:
                ev = (len({a["source"] for a in m.data["agree"]}), int(m.data["category"]))
                if m.decision == "escalate":
                    assert ev[0] > best[0] or ev[1] > best[1], (sub, m.title, ev, best)
                best = (max(best[0], ev[0]), max(best[1], ev[1]))


def test_rises_found_within_weeks_and_stable_substances_quiet(stream, capsys):
    sc = stream.scenario
    weeks = int(sc.expect["first_message_within_weeks"])
    delays = {}
    early = {}
    for sub in sc.expect["rising"]:
        onset = sc.onset(sub)
        eps = _episodes(stream.about(sub, *TREND))
        # an episode told and ended before the rise began is a false alarm of the
        # detector on the stable history: counted and shown, not the rise
        before = [ep for ep in eps if ep[-1].sent_on < onset]
        assert all(ep[-1].decision in ("resolve", "correct") for ep in before), before
        early[sub] = len(before)
        rise = [ep for ep in eps if ep[-1].sent_on >= onset]
        assert len(rise) >= 1, f"{sub}: no message about its rise"
        delays[sub] = (rise[0][0].sent_on - onset).days
        assert delays[sub] <= 7 * weeks, (sub, rise[0][0].sent_on, onset)
    with capsys.disabled():
        print("\nonset → first message (days, run every "
              f"{sc.every} days): {delays}; episodes ended before the onset: {early}")
    revised = set(sc.expect.get("revised", []))
    for sub in sc.expect["stable"]:
        msgs = stream.about(sub)
        if sub in revised:
            # only what rested on the wrong figures, each corrected
            sent = [m for m in msgs if m.decision != "correct"]
            fixed = {a["series"] for m in msgs if m.decision == "correct"
                     for a in m.data["agree"]}
            assert all({a["series"] for a in m.data["agree"]} <= fixed for m in sent), msgs
        else:
            assert msgs == [], [m.title for m in msgs]


def test_correction_after_a_revision(stream):
    sc = stream.scenario
    for rv in sc.revisions:
        corrected = date.fromisoformat(rv["corrected"])
        before = [m for m in stream.about(rv["substance"], "trend", "spike")
                  if m.sent_on < corrected and m.decision != "correct"]
        fixes = [m for m in stream.about(rv["substance"], "trend", "spike")
                 if m.decision == "correct"]
        assert before, "the wrong figures made no alert: the scenario tests nothing"
        assert len(fixes) == len({(m.kind, m.data["onset"]) for m in before}), fixes
        assert all(corrected <= m.sent_on <= corrected + timedelta(days=sc.every)
                   for m in fixes)
        assert all(m.title.startswith("Rettelse") for m in fixes)


def test_each_warning_told_once_and_notice_counts_never_alert(stream):
    sc = stream.scenario
    notices = [m for m in stream.messages if m.kind == "notice"]
    monitored = [n for n in sc.notices if any(
        name in n["title"].lower() for s in sc.substances.values() for name in s["names"])]
    assert sorted(m.data["notice"]["title"] for m in notices) == sorted(
        n["title"] for n in monitored)
    for m in stream.messages:
        for a in m.data.get("agree", []):
            assert a["metric"] != "notices", m.title


def test_digests_cover_what_is_open_and_what_changed(stream):
    digests = [m for m in stream.messages if m.kind == "digest"]
    assert digests and all(m.sent_on != stream.install for m in digests)
    assert len({m.sent_on for m in digests}) == len(digests)  # one per scheduled time
    prev_id = 0
    for d in digests:
        assert {e["substance"] for e in d.data["open"]} == stream.told[d.sent_on], d.title
        sent = [m.id for m in stream.messages
                if prev_id < m.id < d.id and m.kind != "digest"]
        assert [a["id"] for a in d.data["changed"]] == sent, d.title
        prev_id = d.id
        for e in d.data["open"]:
            assert any(s["substance"] == e["substance"] for s in d.data["substances"])


def test_no_duplicates_and_every_message_delivered(stream):
    assert stream.emails == stream.deliveries == len(stream.messages)
    keys = [(m.substance, m.kind, m.decision, m.title,
             tuple(sorted((a["series"], a["detected_at"]) for a in m.data.get("agree", []))))
            for m in stream.messages if m.kind != "digest"]
    assert len(keys) == len(set(keys))


def test_stale_data_is_noted_in_messages_and_status(stream):
    sc = stream.scenario
    for o in sc.outages:
        start, end = date.fromisoformat(o["from"]), date.fromisoformat(o["until"])
        flagged = {d for d, st in stream.status.items() if o["source"] in st["stale_data_sources"]}
        # flagged from four weeks into the outage until the table catches up, never otherwise
        assert flagged and all(start + timedelta(days=21) <= d < end for d in flagged), flagged
        assert all(d in flagged for d in stream.status if start + timedelta(days=35) <= d < end)
        during = [m for m in stream.messages if start + timedelta(days=28) <= m.sent_on < end
                  and any(a["source"] == o["source"] for a in m.data.get("agree", []))]
        for m in during:
            assert [s["source"] for s in m.data["stale"]] == [o["source"]], m.title
    late = [m for m in stream.messages if m.data.get("stale")]
    assert all(any(date.fromisoformat(o["from"]) <= m.sent_on < date.fromisoformat(o["until"])
                   for o in sc.outages) for m in late), [m.title for m in late]


@pytest.mark.parametrize("sub,weeks_after_onset", [("kokain", 9), ("ketamin", 7)])
def test_install_in_the_middle_of_a_rise(stream, smtp, tmp_path, sub, weeks_after_onset):
    """Installed mid-rise, warnd opens the episode (never "worse" first) and ends in the
    state of a daemon that had run all along."""
    sc = stream.scenario
    install = sc.onset(sub) + timedelta(weeks=weeks_after_onset)
    install += timedelta(days=(sc.install - install).days % sc.every)  # on the long run's dates
    dates = [install, install + timedelta(days=sc.every)]
    r = run(sc, tmp_path, smtp, dates=dates)
    for s in sc.substances:
        trend = r.about(s, *TREND)
        if trend:
            assert trend[0].decision == "open", (s, [m.decision for m in trend])
            assert [m.decision for m in trend].count("open") == 1, trend
    told = {scope.split(":")[1] for scope, st in r.states.items()
            if scope.startswith("substance:") and st.get("open")}
    rising = set(sc.expect["rising"])
    assert told & rising == stream.told[dates[-1]] & rising, (told, stream.told[dates[-1]])
    assert r.about(sub, *TREND), f"{sub}: installed mid-rise, nothing said"


def test_backtest_replays_the_store_as_the_daemon_would_send_it(stream, capsys):
    """`warnd backtest --replay store` prints per date the messages, with decisions,
    that the daemon's own grouping and routing make from the stored data."""
    from warnd.cli import main

    sc = stream.scenario
    args = ["--config", str(stream.config_path), "backtest", "--replay", "store",
            "--from", sc.install.isoformat(), "--to", sc.until.isoformat(), "--every", "28"]
    assert main([*args, "--json"]) == 0
    msgs = json.loads(capsys.readouterr().out)
    for sub in sc.expect["rising"]:
        trend = [m for m in msgs if m["substance"] == sub and m["kind"] == "trend"]
        assert trend and trend[-1]["date"] >= sc.onset(sub).isoformat(), (sub, trend)
        told = False  # every episode opens with one opening message
        for m in trend:
            assert (m["decision"] == "open") == (not told), (sub, trend)
            told = m["decision"] not in ("resolve", "correct")
        assert all(m["targets"] == ["ops"] for m in trend)
    for sub in sc.expect["stable"]:
        assert not [m for m in msgs if m["substance"] == sub and m["kind"] == "trend"]
    warned = [m for m in msgs if m["kind"] == "notice"]
    assert len(warned) == len({m["title"] for m in warned}) >= 1
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "open" in out and "→ ops" in out
    # the daemon's store is only read
    assert stream.deliveries == json.loads(json.dumps(stream.deliveries))


def test_store_replay_gives_what_the_daemon_sent(stream, capsys):
    """Run on the daemon's own dates (every 14 days from the installation), `warnd
    backtest --replay store` gives the messages the daemon sent, on the same dates with
    the same decisions and titles (apart from the weekly digests, which a replay does
    not make): the Trends exports come every four weeks and each rescales the series
    (revisions), the monthly lab 12 days after its month, the Xanor figure is corrected
    weeks later, the warning told when it was polled. With `--latest-values` (each
    period's latest value once it ended, the only way before) it differs: the rises are
    told weeks early, the corrected Xanor rise never."""
    from warnd.cli import main

    sc = stream.scenario
    daemon = [(m.sent_on.isoformat(), m.decision, m.title) for m in stream.messages
              if m.kind != "digest"]
    assert {"open", "escalate", "correct"} <= {d for _, d, _ in daemon}, daemon
    args = ["--config", str(stream.config_path), "backtest", "--replay", "store",
            "--from", sc.install.isoformat(), "--to", sc.until.isoformat(), "--every", "14",
            "--json"]
    assert main(args) == 0
    replayed = [(m["date"], m["decision"], m["title"])
                for m in json.loads(capsys.readouterr().out)]
    assert replayed == daemon
    assert main([*args, "--latest-values"]) == 0
    latest = [(m["date"], m["decision"], m["title"])
              for m in json.loads(capsys.readouterr().out)]
    assert latest != daemon and not [m for m in latest if m[1] == "correct"], latest


def test_digest_end_date_looks_back(stream, capsys):
    from warnd.cli import main

    day = max(d for d, t in stream.told.items() if set(stream.scenario.expect["rising"]) <= t)
    assert main(["--config", str(stream.config_path), "digest", "--end", day.isoformat(),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["until"] == (day + timedelta(days=1)).isoformat()
    assert set(stream.scenario.expect["rising"]) <= {e["substance"] for e in data["open"]}
    assert main(["--config", str(stream.config_path), "digest", "--end", "soon"]) == 2
