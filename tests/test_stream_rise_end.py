"""A rise that stops: its end told through the real pipeline (``tests/timetravel.py``:
the world served as files, a real store, a loopback SMTP server, the clock moved week by
week). The scenario, ``tests/scenarios/rise_falls_back.toml``: cocaine triples for
eight weeks in a weekly count table and in weekly Google Trends exports, then is back at
its usual level for good."""

from __future__ import annotations

from datetime import date, timedelta

from tests.conftest import ROOT
from tests.timetravel import Scenario, run

SCENARIO = ROOT / "tests" / "scenarios" / "rise_falls_back.toml"
FALL_BACK = date(2025, 12, 8)  # the first week back at the usual level


def test_a_rise_whose_level_is_back_is_told_ended_within_weeks(tmp_path, smtp_server):
    """The rise is told once it is found, and its end once: within 12 weeks (three times
    ``resolve_after_periods``) of the first week back, in the week the last series' rise
    ended. Nothing else is told of the fall-back (no decrease, no new opening), and at the
    end no series holds an episode. Before, both series' rises stayed current trends for
    months after the fall-back (their windows from the onset still held the excess), so
    each week's finding kept the episode open: no end was told by March, and the rise was
    still listed as open."""
    r = run(Scenario.load(SCENARIO), tmp_path, smtp_server)
    trend = [(m.sent_on, m.direction, m.decision) for m in r.about("kokain", "trend")]
    assert [(d, dec) for _, d, dec in trend] == [("increase", "open"), ("increase", "resolve")]
    opened, ended = trend[0][0], trend[1][0]
    assert opened < FALL_BACK < ended <= FALL_BACK + timedelta(weeks=12)
    # after the end, nothing more about cocaine: the fall-back is no fall of its own
    assert not [m for m in r.about("kokain") if m.sent_on > ended]
    series = {k: v for k, v in r.states.items() if k.startswith("series:")}
    assert series and not any(v["tracker"]["open"] for v in series.values())
    assert not [k for k, v in r.states.items()
                if k.startswith("substance:") and v.get("open")]



def test_the_end_says_in_weeks_how_long_the_rise_lasted_and_how_high_it_went(
        tmp_path, smtp_server):
    """The end's email says how long the rise lasted, in weeks (its weekly Trends
    exports' periods are Sundays, the count table's Mondays: both weekly), from its
    onset to its last rising week, and how high it went: the strongest words and the
    largest change its messages told, with that change's week. Before, it said neither."""
    r = run(Scenario.load(SCENARIO), tmp_path, smtp_server)
    opening, end = r.about("kokain", "trend")
    onset, last = (date.fromisoformat(end.data[k]) for k in ("onset", "last_at"))
    assert end.decision == "resolve" and onset < last < end.sent_on
    # the opening is the only message before the end
    peak = max(opening.data["agree"], key=lambda a: abs(a["relative_change"]))
    week = date.fromisoformat(peak["detected_at"]).isocalendar().week
    (mail,) = [m for m in smtp_server.messages if m["Subject"] == end.title]
    body = " ".join(mail.get_body(("plain",)).get_content().split())
    assert (f"Varte {(last - onset).days // 7} uker ({onset} – {last}); høyest: "
            f"{opening.data['category_words'][0]}, "
            f"+{round(peak['relative_change'] * 100)} % (uke {week})") in body, body


def test_the_digest_of_the_week_the_end_is_told_does_not_score_the_rise(
        tmp_path, smtp_server, capsys):
    """The week the rise's end is told, the digest's table does not call cocaine a strong
    increase: the findings whose level is back are not scored, as they keep no episode
    open. Before, the digest listed "kokain: sterk økning" beside the end."""
    import json

    from warnd.cli import main

    r = run(Scenario.load(SCENARIO), tmp_path, smtp_server)
    ended = [m.sent_on for m in r.about("kokain", "trend") if m.decision == "resolve"][0]
    assert main(["--config", str(r.config_path), "digest", "--end", ended.isoformat(),
                 "--json"]) == 0
    digest = json.loads(capsys.readouterr().out)
    kokain = [s for s in digest["substances"] if s["substance"] == "kokain"]
    assert not digest["open"] and all(s["category"] < 1 for s in kokain), kokain
