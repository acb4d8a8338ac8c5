"""Deciding alerts: routing, episodes, silences, quiet hours, source health, first run."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.alerting_env import (
    SOURCES, finding, judge_period, make_config, seed_series, target,
)
from tests.servers import wait_for
from warnd.alerting import decide, outbox, quiet, routing
from warnd.alerting.commands import alerting_status, print_alerting_status
from warnd.cli import main
from warnd.store import Store

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # Tuesday 12:00 in Oslo

ROUTED = (
    target(
        "ops-mail",
        "mailto://127.0.0.1:2525?from=a@example.org&to=ops@example.org",
        '"email", "critical"',
    )
    + target(
        "analyst-mail",
        "mailto://127.0.0.1:2525?from=a@example.org&to=an@example.org",
        '"email", "digest"',
    )
    + target("teams", "workflows://127.0.0.1:4443/wf1/sig1/", '"teams"')
    + target("heroin-desk", "mailto://127.0.0.1:2525?from=a@example.org&to=h@example.org")
    + target("old", "mailto://127.0.0.1:2525?from=a@example.org&to=old@example.org")
    + "muted = true\n"
    + """
[[routes]]
substances = ["heroin"]
targets = ["heroin-desk", "old"]
stop = true

[[routes]]
kinds = ["notice"]
targets = ["analyst-mail"]

[[routes]]
min_severity = "critical"
targets = ["critical", "teams"]

[[routes]]
kinds = ["source_health"]
targets = ["ops-mail"]

[[routes]]
regions = ["NO-46"]
targets = ["teams"]

[alerting]
default_targets = ["digest"]
"""
)


def _alert(**kw):
    base = {
        "substance": "ketamin",
        "kind": "trend",
        "severity": "warning",
        "region": "",
        "status": "open",
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (_alert(), ["analyst-mail"]),  # no route matches → default_targets (tag digest)
        (_alert(severity="critical"), ["ops-mail", "teams"]),
        (_alert(kind="notice"), ["analyst-mail"]),
        (_alert(kind="notice", severity="critical"), ["analyst-mail", "ops-mail", "teams"]),
        (_alert(substance="heroin", severity="critical"), ["heroin-desk"]),  # stop; old muted
        (_alert(kind="source_health", substance=""), ["ops-mail"]),
        (_alert(region="NO-46"), ["teams"]),
        (_alert(region="NO-03"), ["analyst-mail"]),
        (_alert(status="muted", severity="critical"), []),
    ],
)
def test_route_picks_exactly_the_right_targets(tmp_path, alert, expected):
    cfg = make_config(tmp_path, ROUTED)
    assert routing.route(cfg, alert) == expected


def test_enqueue_writes_one_delivery_per_routed_target(tmp_path):
    cfg = make_config(tmp_path, ROUTED)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs", "media"):
        seed_series(store, s)
    firing = [(finding(s), "open") for s in ("lab", "customs", "media")]
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", firing, {}, now=NOW)
    assert a["severity"] == "critical"
    rows = store.q("SELECT target FROM deliveries WHERE alert_id=? ORDER BY target", [a["id"]])
    assert [r["target"] for r in rows] == ["ops-mail", "teams"]
    # heroin: only the heroin desk, the muted target gets nothing
    seed_series(store, "lab", substance="heroin")
    (h,) = decide.enqueue_findings(
        cfg, store, "heroin", [(finding("lab", substance="heroin"), "open")], {}, now=NOW
    )
    rows = store.q("SELECT target FROM deliveries WHERE alert_id=?", [h["id"]])
    assert [r["target"] for r in rows] == ["heroin-desk"]


def test_route_tag_matching_no_target_is_a_config_error(tmp_path):
    from warnd.errors import ConfigError

    with pytest.raises(ConfigError) as ei:
        make_config(
            tmp_path, ROUTED.replace('default_targets = ["digest"]', 'default_targets = ["nobody"]')
        )
    assert 'alerting.default_targets: "nobody" matches no target name or tag' in ei.value.messages


# -- episodes -------------------------------------------------------------------------
def _period(cfg, store, period, per_source, now=NOW):
    return judge_period(cfg, store, period, per_source, now=now)


def test_episode_sends_once_then_on_escalation_then_resolve(tmp_path, smtp_server):
    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()), "\n[alerting]\nsend_resolved = true\n"
    )
    for s in ("lab", "customs"):
        seed_series(Store.in_dir(cfg.state_dir), s)
    d0 = date(2026, 7, 6)
    sent = []
    for k, per in enumerate(
        [
            {"lab": [finding("lab", rel=1.0, category=1)]},  # open
            {"lab": [finding("lab", rel=1.0, category=1)]},  # ongoing
            {"lab": [finding("lab", rel=1.1, category=1)]},  # ongoing (not 1.5×)
            {
                "lab": [finding("lab", rel=1.1, category=1)],
                "customs": [finding("customs", rel=0.9, category=1)],
            },  # more sources agree
            {
                "lab": [finding("lab", rel=2.0, category=2)],
                "customs": [finding("customs", rel=0.9, category=1)],
            },  # the change grew
            {"customs": [finding("customs", rel=0.9, category=1)]},
            {},
            {},
            {},
            {},  # customs ends: resolve
        ]
    ):
        store = Store.in_dir(cfg.state_dir)  # a fresh store each period: state survives restarts
        sent.append(
            [
                (a["decision"], len(a["data"]["agree"]))
                for a in _period(cfg, store, d0 + timedelta(weeks=k), per)
            ]
        )
        store.close()
    assert sent == [
        [("open", 1)],
        [],
        [],
        [("escalate", 2)],
        [("escalate", 2)],
        [],
        [],
        [],
        [],
        [("resolve", 2)],  # the rise told ended: both sources it named
    ]
    store = Store.in_dir(cfg.state_dir)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 4
    wait_for(lambda: len(smtp_server.messages) == 4, what="four emails")
    subjects = sorted(m["Subject"] for m in smtp_server.messages)
    assert subjects == sorted(
        [
            "Liten økning: ketamin — 1 kilde",
            "Forverring: Liten økning: ketamin — 2 kilder",
            "Forverring: Sterk økning: ketamin — 2 kilder",
            "Avsluttet: Sterk økning: ketamin — 2 kilder",
        ]
    )


def test_a_source_taking_over_the_rise_as_another_ends_is_not_told_as_new(tmp_path):
    """The lab's episode ends in the very round customs' opens: the substance's rise goes
    on, so customs' is not a new episode (nothing is sent: no more evidence than told)."""
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org")
    )
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    quiet = cfg.detection_params("ketamin", "lab").resolve_after_periods
    d0 = date(2026, 7, 6)
    sent = [_period(cfg, store, d0, {"lab": [finding("lab")]})]
    for k in range(1, quiet + 1):
        # the lab quiet from week 1 on: its episode ends at week ``quiet``, as customs' opens
        per = {"customs": [finding("customs")]} if k == quiet else {}
        sent.append(_period(cfg, store, d0 + timedelta(weeks=k), per))
    assert [[a["decision"] for a in s] for s in sent] == [["open"]] + [[]] * quiet
    assert store.open_episode_scopes("ketamin", "trend:increase") == {"series:customs:ketamin"}


def test_resolve_not_sent_by_default_and_rerun_is_deduplicated(tmp_path):
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org")
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = date(2026, 7, 6)
    assert len(_period(cfg, store, d0, {"lab": [finding("lab")]})) == 1
    # the same round decided again from the states before it (a crash before its commit)
    firing = [(finding("lab"), "open")]
    told_before = {decide.substance_scope("ketamin"): {"open": False, "n": 0}}
    assert decide.enqueue_findings(cfg, store, "ketamin", firing, told_before, now=NOW) == []
    for k in range(1, 6):
        assert _period(cfg, store, d0 + timedelta(weeks=k), {}) == []
    assert store.q("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 1


def test_acknowledged_episode_gets_no_reminder(tmp_path):
    cfg = make_config(
        tmp_path,
        target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org"),
        "\n[detection]\nrepeat_after_periods = 2\n",
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = date(2026, 7, 6)
    (a,) = _period(cfg, store, d0, {"lab": [finding("lab")]})
    assert main(["--config", str(cfg.path), "alerts", "ack", str(a["id"]), "--by", "kari"]) == 0
    assert _period(cfg, store, d0 + timedelta(weeks=1), {"lab": [finding("lab")]}) == []
    assert _period(cfg, store, d0 + timedelta(weeks=2), {"lab": [finding("lab")]}) == []
    assert store.q("SELECT status, acked_by FROM alerts")[0] == {
        "status": "acked",
        "acked_by": "kari",
    }


def test_alerts_as_json_any_parser_reads_a_rise_from_nothing(tmp_path, capsys):
    """``warnd alerts --json`` for scripts: a rise from nothing (an infinite change) is
    ``null`` there, not Python's ``Infinity``, which is not JSON."""
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org")
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    (a,) = _period(cfg, store, date(2026, 7, 6), {"lab": [finding("lab", rel=float("inf"))]})
    capsys.readouterr()
    assert main(["--config", str(cfg.path), "alerts", "--json"]) == 0

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    rows = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert [r["id"] for r in rows] == [a["id"]]
    (told,) = rows[0]["data"]["agree"]
    assert told["relative_change"] is None and told["level_before"] == 6.0


# -- silences -------------------------------------------------------------------------
def test_silenced_alert_is_recorded_not_sent(tmp_path, smtp_server, capsys):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    cfgp = str(cfg.path)
    assert (
        main(
            [
                "--config",
                cfgp,
                "silence",
                "add",
                "--substance",
                "ketamin",
                "--for",
                "14d",
                "--reason",
                "known festival season",
            ]
        )
        == 0
    )
    assert "silence 1 added: substance=ketamin" in capsys.readouterr().out
    assert (
        main(
            [
                "--config",
                cfgp,
                "silence",
                "add",
                "--substance",
                "ketamine",
                "--for",
                "1d",
                "--reason",
                "typo",
            ]
        )
        == 2
    )
    assert '"ketamine" is not a configured substance' in capsys.readouterr().err
    assert main(["--config", cfgp, "silence", "list", "--json"]) == 0
    (sil,) = json.loads(capsys.readouterr().out)
    assert sil["substance"] == "ketamin" and sil["reason"] == "known festival season"
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    now = datetime.now(UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {}, now=now)
    row = store.q("SELECT status, silenced_by FROM alerts WHERE id=?", [a["id"]])[0]
    assert row == {"status": "silenced", "silenced_by": 1}
    assert store.q("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 0
    assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 0
    # another substance is not silenced; a kind-scoped silence does not touch it
    assert (
        main(
            ["--config", cfgp, "silence", "add", "--kind", "notice", "--for", "1d", "--reason", "x"]
        )
        == 0
    )
    seed_series(store, "lab", substance="heroin")
    (h,) = decide.enqueue_findings(
        cfg, store, "heroin", [(finding("lab", substance="heroin"), "open")], {}, now=now
    )
    assert store.q("SELECT status FROM alerts WHERE id=?", [h["id"]])[0]["status"] == "open"
    # expire the silence: the next ketamin alert goes out
    assert main(["--config", cfgp, "silence", "expire", "1"]) == 0
    decide.enqueue_findings(
        cfg,
        store,
        "ketamin",
        [(finding("lab", detected=date(2026, 7, 13), rel=5.0), "escalate")],  # grew
        {},
        now=now,
    )
    assert outbox.dispatch_pending(cfg, store, now=now)["delivered"] == 2
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    assert all("ketamin" in m["Subject"] or "heroin" in m["Subject"] for m in smtp_server.messages)


def _weeks_under_silence(tmp_path, findings_of, *, weeks: int, silence_from: int,
                         silence_for: timedelta, sources=("lab",), extra: str = ""):
    """Ketamine's weeks of episode rules (``findings_of(k, week)`` gives week ``k``'s
    findings by source), a silence of the substance added at week ``silence_from`` for
    ``silence_for``: every trend message as ``(week, decision, status)``, and the store."""
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:2525?from=a@example.org&to=o@example.org"),
        extra)
    store = Store.in_dir(cfg.state_dir)
    for s in sources:
        seed_series(store, s)
    d0 = date(2026, 7, 6)
    t0 = datetime(2026, 7, 7, 12, tzinfo=UTC)
    told = []
    for k in range(weeks):
        now = t0 + timedelta(weeks=k)
        if k == silence_from:
            store.add_silence(substance="ketamin", kind=None, source=None, reason="festival",
                              until=now + silence_for, now=now)
        week = d0 + timedelta(weeks=k)
        told += [(k, a["decision"], a.get("status", "open"))
                 for a in _period(cfg, store, week, findings_of(k, week), now=now)]
    return told, store


def test_a_rise_held_by_a_silence_is_listed_as_such_for_as_long_as_it_lasts(tmp_path):
    """Ketamine's rise opens under a silence of twelve weeks and goes on, week after
    week: `warnd status` lists it as held back by the silence each week the silence
    lasts, not only in the week its message was silenced."""
    told, store = _weeks_under_silence(
        tmp_path, lambda k, week: {"lab": [finding("lab", detected=week)]},
        weeks=6, silence_from=0, silence_for=timedelta(weeks=12))
    assert [d for _, d, s in told if s == "silenced"] == ["open"]
    sixth_week = datetime(2026, 7, 7, 12, tzinfo=UTC) + timedelta(weeks=5)
    assert alerting_status(store, now=sixth_week)["held_back_by_silence"] == ["ketamin"]
    store.close()


def test_a_rise_begun_and_ended_within_a_silence_is_told_nothing(tmp_path):
    """Its opening message is silenced; it ends before the silence does: no end is told
    of an episode nobody heard of, and after the silence nothing is told either."""
    told, store = _weeks_under_silence(
        tmp_path, lambda k, week: {"lab": [finding("lab", detected=week)]} if k < 3 else {},
        weeks=16, silence_from=0, silence_for=timedelta(weeks=12),
        extra="\n[alerting]\nsend_resolved = true\n")
    assert told == [(0, "open", "silenced")]
    assert not store.episode_state("substance:ketamin:trend:increase").get("silenced")


def test_a_rise_silenced_and_quiet_since_is_told_when_the_silence_ends(tmp_path):
    """The rise's only finding came under the silence; the weeks after bring none, but
    its episode is still open (it ends only after ``resolve_after_periods`` quiet
    weeks). Told when the silence ends, from that same finding: not taken for the
    silenced message again."""
    told, store = _weeks_under_silence(
        tmp_path, lambda k, week: {"lab": [finding("lab")]} if k == 0 else {},
        weeks=3, silence_from=0, silence_for=timedelta(days=10))
    assert told == [(0, "open", "silenced"), (2, "open", "open")]


def test_more_sources_agreeing_under_a_silence_are_told_when_it_ends(tmp_path):
    """The rise was told; a second source agrees while a silence covers the substance
    (the escalation recorded, sent to nobody): when the silence ends it is told as an
    escalation, once."""
    told, _ = _weeks_under_silence(
        tmp_path, lambda k, week: {src: [finding(src, detected=week)]
                                   for src in (("lab", "customs") if k >= 2 else ("lab",))},
        weeks=8, silence_from=1, silence_for=timedelta(weeks=3), sources=("lab", "customs"))
    assert told == [(0, "open", "open"), (2, "escalate", "silenced"), (4, "escalate", "open")]


def test_silence_added_while_waiting_stops_the_delivery(tmp_path):
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {}, now=NOW)
    store.add_silence(
        substance=None,
        kind=None,
        source="lab",
        reason="lab migration",
        until=NOW + timedelta(days=1),
        now=NOW,
    )
    sent = []
    counts = outbox.dispatch_pending(cfg, store, now=NOW, send=lambda *a, **k: sent.append(a))
    assert counts["silenced"] == 1 and sent == []
    assert store.q("SELECT status FROM deliveries")[0]["status"] == "silenced"
    assert store.q("SELECT status, silenced_by FROM alerts")[0] == {
        "status": "silenced",
        "silenced_by": 1,
    }


def test_an_opening_silenced_while_it_waited_is_told_when_the_silence_ends(tmp_path, capsys):
    """A rise's opening message waits for its delivery (quiet hours, a retry) and a
    silence is added meanwhile: nobody heard it, so when the silence has ended the
    rise, still on, is told, as an episode's first message."""
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = date(2026, 7, 6)
    t0 = datetime(2026, 7, 7, 12, tzinfo=UTC)
    (a,) = _period(cfg, store, d0, {"lab": [finding("lab")]}, now=t0)
    store.add_silence(substance="ketamin", kind=None, source=None, reason="festival",
                      until=t0 + timedelta(days=10), now=t0)
    sent = []
    counts = outbox.dispatch_pending(cfg, store, now=t0, send=lambda *x, **k: sent.append(x))
    assert counts["silenced"] == 1 and sent == []
    told = store.episode_state(decide.substance_scope("ketamin"))
    assert told["silenced"] and not told["open"]
    assert alerting_status(store, now=t0)["held_back_by_silence"] == ["ketamin"]
    # a substance taken out of the config is not listed: nothing will tell its rise
    assert alerting_status(store, now=t0, substances={"heroin": None}
                           )["held_back_by_silence"] == []
    capsys.readouterr()
    print_alerting_status(alerting_status(store, now=t0))
    assert "rises held back by a silence, told when it ends: ketamin" in capsys.readouterr().out
    # `warnd status` now, long after the silence ended: no silence holds it back any more
    assert main(["--config", str(cfg.path), "status"]) in (0, 1)
    assert "rises held back by a silence" not in capsys.readouterr().out
    later = []
    for k in (1, 2, 3):  # the rise goes on; the silence ends after the tenth day
        week = d0 + timedelta(weeks=k)
        got = _period(cfg, store, week, {"lab": [finding("lab", detected=week)]},
                      now=t0 + timedelta(weeks=k))
        later += [(k, b["decision"], b.get("status", "open")) for b in got]
    assert later == [(2, "open", "open")]
    assert alerting_status(store)["held_back_by_silence"] == []


# -- quiet hours ------------------------------------------------------------------------
QUIET = '\n[alerting]\nquiet_hours = "17:00-08:00"\nquiet_days = ["sat", "sun"]\n'


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-07-07T12:00", None),  # Tuesday noon: working time
        ("2026-07-07T18:30", "2026-07-08T08:00"),  # Tuesday evening → Wednesday 08:00
        ("2026-07-08T07:59", "2026-07-08T08:00"),  # early morning
        ("2026-07-10T17:00", "2026-07-13T08:00"),  # Friday 17:00 → Monday 08:00
        ("2026-07-11T12:00", "2026-07-13T08:00"),  # Saturday
        ("2026-10-24T20:00", "2026-10-26T08:00"),  # across the switch to winter time
    ],
)
def test_quiet_until(tmp_path, local, expected):
    from zoneinfo import ZoneInfo

    cfg = make_config(tmp_path, "", QUIET)
    oslo = ZoneInfo("Europe/Oslo")
    now = datetime.fromisoformat(local).replace(tzinfo=oslo)
    got = quiet.quiet_until(cfg, now)
    if expected is None:
        assert got is None
    else:
        assert got == datetime.fromisoformat(expected).replace(tzinfo=oslo)


def test_quiet_hours_hold_non_urgent_alerts_until_morning(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), QUIET)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs", "media"):
        seed_series(store, s)
    friday_evening = datetime(2026, 7, 10, 16, 30, tzinfo=UTC)  # 18:30 in Oslo
    (a,) = decide.enqueue_findings(
        cfg, store, "ketamin", [(finding("lab"), "open")], {}, now=friday_evening
    )
    # one source: not corroborated, so "info" (and below urgent in any case)
    assert a["severity"] == "info" and a["due_at"] == "2026-07-13T06:00:00+00:00"
    (c,) = decide.enqueue_findings(
        cfg,
        store,
        "heroin",
        [(finding(s, substance="heroin"), "open") for s in ("lab", "customs", "media")],
        {},
        now=friday_evening,
    )
    assert c["severity"] == "critical" and c["due_at"] is None
    assert outbox.dispatch_pending(cfg, store, now=friday_evening)["delivered"] == 1
    sunday = datetime(2026, 7, 12, 12, 0, tzinfo=UTC)
    assert outbox.dispatch_pending(cfg, store, now=sunday)["delivered"] == 0
    monday = datetime(2026, 7, 13, 6, 0, tzinfo=UTC)
    assert outbox.dispatch_pending(cfg, store, now=monday)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    assert [m["Subject"] for m in smtp_server.messages] == [
        "Sterk økning: heroin — 3 kilder",
        "Liten økning: ketamin — 1 kilde",
    ]


# -- source health ----------------------------------------------------------------------
RSS_SOURCE = """
[[sources]]
name = "media"
kind = "rss"
location = "feeds/ba.xml"
dimension = "interest"
"""


def test_source_health_alert_once_per_failure_episode(tmp_path, smtp_server, root):
    from warnd.pipeline import Pipeline

    cfg = make_config(
        tmp_path,
        target("mail", smtp_server.url()),
        "\n[alerting]\nsend_resolved = true\n",
        sources=RSS_SOURCE,
    )
    clock = {"t": NOW}
    pipe = Pipeline(cfg, clock=lambda: clock["t"])
    for k in range(5):
        clock["t"] = NOW + timedelta(hours=k)
        assert pipe.poll("media").ok is False
    store = Store.in_dir(cfg.state_dir)
    rows = store.q("SELECT kind, decision, source, title FROM alerts")
    assert rows == [
        {
            "kind": "source_health",
            "decision": "open",
            "source": "media",
            "title": "Kilde feiler: Media",
        }
    ]
    (tmp_path / "feeds").mkdir()
    shutil.copy(root / "tests/fixtures/rss/ba_2026-03.xml", tmp_path / "feeds/ba.xml")
    assert pipe.poll("media").ok is True
    assert pipe.poll("media").ok is True
    rows = store.q("SELECT decision, title FROM alerts WHERE kind='source_health' ORDER BY id")
    assert [r["decision"] for r in rows] == ["open", "resolve"]
    assert rows[1]["title"] == "Kilde i orden igjen: Media"
    # the failure is over: neither message is an open alert any more, and both are sent
    assert {r["status"] for r in store.q("SELECT status FROM alerts")} == {"resolved"}
    assert pipe.dispatch()["delivered"] == 2
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    failing = next(m for m in smtp_server.messages if m["Subject"] == "Kilde feiler: Media")
    assert "3 mislykkede hentinger på rad" in failing.get_body(("html",)).get_content()


# -- first run ------------------------------------------------------------------------
COUNTS = """
[[sources]]
name = "lab"
kind = "count_table"
location = "lab/"
dimension = "use"
period = "week"
"""


def test_a_failing_source_taken_out_and_added_again_is_told_when_it_fails_again(tmp_path):
    """The media feed fails (told); the source is taken out of the config and, months
    later, added again, and fails again: that failure is told, as a new episode. Before,
    the first failure's episode stayed open for good, and the second was told to
    nobody. The whole detection pass after the removal ends the old episode quietly."""
    from warnd.pipeline import Pipeline

    mail = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")
    cfg = make_config(tmp_path, mail, sources=RSS_SOURCE)
    lab_and_customs = SOURCES.split('\n[[sources]]\nname = "media"')[0]
    without = make_config(tmp_path, mail, sources=lab_and_customs)
    for k in range(3):
        assert Pipeline(cfg, clock=lambda k=k: NOW + timedelta(hours=k)).poll("media").ok is False
    Pipeline(without, clock=lambda: NOW + timedelta(days=1)).detect()
    later = NOW + timedelta(days=120)
    for k in range(3):
        assert Pipeline(cfg, clock=lambda k=k: later + timedelta(hours=k)).poll(
            "media").ok is False
    store = Store.in_dir(cfg.state_dir)
    rows = store.q("SELECT decision, status, created_at FROM alerts "
                   "WHERE kind='source_health' ORDER BY id")
    store.close()
    assert [(r["decision"], r["status"]) for r in rows] == [("open", "resolved"),
                                                            ("open", "open")]
    assert rows[1]["created_at"] >= later.isoformat()[:10]


def write_counts(
    dir_,
    n: int,
    jump_weeks: int,
    seed: int = 1,
    name: str = "lab",
    bump: tuple[int, int] | None = None,
) -> None:
    import random

    rnd = random.Random(seed)
    start = date(2025, 1, 6)
    lines = ["period,substance,value"]
    for i in range(n):
        lam = 6 if i < n - jump_weeks else 20
        if bump and bump[0] <= i < bump[1]:
            lam = 20
        lines.append(
            f"{(start + timedelta(weeks=i)).isoformat()},ketamin,"
            f"{max(0, round(rnd.gauss(lam, lam**0.5)))}"
        )
    (dir_ / name).mkdir(exist_ok=True)
    (dir_ / name / f"{name}.csv").write_text("\n".join(lines) + "\n")


def test_first_run_with_old_history_sends_nothing(tmp_path):
    from warnd.pipeline import Pipeline

    # a rise that came and went half a year ago
    write_counts(tmp_path, 60, jump_weeks=0, bump=(20, 32))
    cfg = make_config(
        tmp_path,
        target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        sources=COUNTS,
    )
    res = Pipeline(cfg, clock=lambda: NOW, send=lambda *a, **k: pytest.fail("sent")).run_once()
    assert res["alerts"] == []
    store = Store.in_dir(cfg.state_dir)
    assert store.q("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0
    assert store.q("SELECT COUNT(*) AS n FROM findings WHERE kind='trend'")[0]["n"] >= 1


def test_first_run_with_a_current_rise_alerts_once(tmp_path):
    from warnd.pipeline import Pipeline

    write_counts(tmp_path, 60, jump_weeks=5)
    cfg = make_config(
        tmp_path,
        target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        sources=COUNTS,
    )
    first = Pipeline(cfg, clock=lambda: NOW)
    first.poll("lab")
    assert [(a["kind"], a["decision"]) for a in first.detect()] == [("trend", "open")]
    assert first.detect() == []  # nothing new on the next round


# -- digest ---------------------------------------------------------------------------
def test_weekly_digest_sent_once_with_the_five_step_table(tmp_path, smtp_server, capsys):
    cfg = make_config(
        tmp_path,
        target("mail", smtp_server.url(), '"email"')
        + target("teams", "workflows://127.0.0.1:4443/wf1/sig1/", '"teams"'),
        '\n[alerting.digest]\nschedule = "weekly"\nweekday = "mon"\nat = "08:00"\n'
        'targets = ["email"]\n',
    )
    store = Store.in_dir(cfg.state_dir)
    store.record_finding(finding("lab", category=2, detected=date(2026, 7, 6)))
    store.record_finding(
        finding("customs", category=1, dimension="availability", detected=date(2026, 7, 6))
    )
    store.record_finding(
        finding(
            "lab",
            substance="heroin",
            category=-1,
            direction="decrease",
            rel=-0.4,
            detected=date(2026, 7, 6),
        )
    )
    store.record_finding(
        finding("lab", substance="heroin", category=2, detected=date(2026, 1, 5))
    )  # long ago: not in the digest
    sunday = datetime(2026, 7, 12, 10, 0, tzinfo=UTC)
    assert outbox.dispatch_pending(cfg, store, now=sunday)["delivered"] == 0
    monday = datetime(2026, 7, 13, 6, 30, tzinfo=UTC)  # 08:30 in Oslo
    assert outbox.dispatch_pending(cfg, store, now=monday)["delivered"] == 1
    assert outbox.dispatch_pending(cfg, store, now=monday + timedelta(hours=3))["delivered"] == 0
    wait_for(lambda: len(smtp_server.messages) == 1, what="the digest")
    msg = smtp_server.messages[0]
    # the week it is about (the first digest: one schedule period), in local dates;
    # its table also takes in findings on the data of the week before (late data)
    assert msg["Subject"] == "Ukeoversikt: 2026-07-06 – 2026-07-13"
    html = msg.get_body(("html",)).get_content()
    ket = next(line for line in html.splitlines() if line.startswith("ketamin"))
    assert ket.split()[1:6] == ["+2", "+1", "+0", "+3", "2"] and "sterk økning" in ket
    her = next(line for line in html.splitlines() if line.startswith("heroin"))
    assert her.split()[1:6] == ["-1", "+0", "+0", "-1", "1"]
    rows = store.q("SELECT kind, target FROM alerts JOIN deliveries ON alert_id = id")
    assert rows == [{"kind": "digest", "target": "mail"}]
    assert main(["--config", str(cfg.path), "digest", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["schedule"] == "weekly"
    # the next week's digest starts where this one ended: no two name the same days
    # (before, each weekly digest named two weeks, the week before its own included)
    assert outbox.dispatch_pending(cfg, store, now=monday + timedelta(weeks=1))[
        "delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 2, what="the second digest")
    assert smtp_server.messages[1]["Subject"] == "Ukeoversikt: 2026-07-13 – 2026-07-20"


TWO_COUNTS = (
    COUNTS
    + """
[[sources]]
name = "customs"
kind = "count_table"
location = "customs/"
dimension = "availability"
period = "week"
"""
)


def test_pipeline_second_source_agreeing_is_an_escalation(tmp_path):
    from warnd.pipeline import Pipeline

    write_counts(tmp_path, 60, jump_weeks=5, seed=1)
    write_counts(tmp_path, 60, jump_weeks=0, seed=2, name="customs")
    cfg = make_config(
        tmp_path,
        target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        sources=TWO_COUNTS,
    )
    first = Pipeline(cfg, clock=lambda: NOW, send=lambda *a, **k: pytest.fail("sent")).detect
    Pipeline(cfg, clock=lambda: NOW).poll("lab")
    Pipeline(cfg, clock=lambda: NOW).poll("customs")
    assert [(a["decision"], a["source"]) for a in first()] == [("open", "lab")]
    # two weeks later: lab still high, customs rises too
    write_counts(tmp_path, 62, jump_weeks=7, seed=1)
    write_counts(tmp_path, 62, jump_weeks=5, seed=2, name="customs")
    p = Pipeline(cfg, clock=lambda: NOW + timedelta(weeks=2))
    p.poll("lab")
    p.poll("customs")
    got = p.detect()
    assert [(a["decision"], a["source"], a["data"]["disagree"]) for a in got] == [
        ("escalate", "customs,lab", [])
    ]  # customs' simultaneous spike is left out
    assert p.detect() == []


def test_status_shows_waiting_deliveries_and_silences(tmp_path, capsys):
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"), QUIET
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    far = datetime.now(UTC) + timedelta(days=30)
    store.add_silence(substance="heroin", kind=None, source=None, reason="r", until=far)
    store.add_alert(
        {
            "dedupe_key": "k",
            "substance": "ketamin",
            "kind": "trend",
            "severity": "warning",
            "decision": "open",
            "title": "t",
            "body": "b",
        },
        ["mail"],
        due_at=far,
    )
    assert main(["--config", str(cfg.path), "status", "--json"]) in (0, 1)
    st = json.loads(capsys.readouterr().out)
    assert st["waiting_deliveries"]["n"] == 1
    assert [s["substance"] for s in st["active_silences"]] == ["heroin"]


def test_digest_silence_holds_back_the_digest(tmp_path):
    cfg = make_config(
        tmp_path,
        target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"),
        '\n[alerting.digest]\nschedule = "daily"\nat = "07:00"\ntargets = ["mail"]\n',
    )
    store = Store.in_dir(cfg.state_dir)
    monday = datetime(2026, 7, 13, 6, 30, tzinfo=UTC)
    store.add_silence(
        substance=None,
        kind="digest",
        source=None,
        reason="holiday",
        until=monday + timedelta(days=7),
        now=monday,
    )
    sent = []
    # running since the day before (a first start sends no digest for a time before it)
    outbox.dispatch_pending(cfg, store, now=monday - timedelta(days=1),
                            send=lambda *a, **k: sent.append(a))
    counts = outbox.dispatch_pending(cfg, store, now=monday, send=lambda *a, **k: sent.append(a))
    assert counts["silenced"] == 1 and sent == []
    assert store.q("SELECT kind, status FROM alerts") == [{"kind": "digest", "status": "silenced"}]


def test_spike_alone_after_the_rise_has_ended_is_sent(tmp_path):
    cfg = make_config(
        tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    d0 = date(2026, 7, 6)
    assert len(_period(cfg, store, d0, {"lab": [finding("lab")]})) == 1
    # a spike while the trend episode is open: told later in a trend message, not alone
    spike = finding("lab", kind="spike", detected=d0 + timedelta(weeks=1))
    assert _period(cfg, store, d0 + timedelta(weeks=1), {"lab": [finding("lab"), spike]}) == []
    for k in range(2, 7):  # the trend ends (no resolve message by default)
        _period(cfg, store, d0 + timedelta(weeks=k), {})
    later = finding("lab", kind="spike", onset=d0 + timedelta(weeks=8),
                    detected=d0 + timedelta(weeks=8))
    (a,) = _period(cfg, store, d0 + timedelta(weeks=8), {"lab": [later]})
    assert a["kind"] == "spike"


def test_a_round_without_spikes_does_not_read_the_substance_and_a_quiet_one_nothing(
        tmp_path, monkeypatch):
    """Whether a substance is rising (a read of every series of it with an episode
    open, which grows with the series watched) is asked only to fold a spike into a
    trend; a round with nothing to tell and nothing to save does not touch the store.
    The daemon runs a round per substance for every poll, so both are most rounds."""
    cfg = make_config(tmp_path, ROUTED)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    asked: list[str] = []
    real = store.open_episode_scopes
    monkeypatch.setattr(store, "open_episode_scopes",
                        lambda substance, episode, **kw: asked.append(substance)
                        or real(substance, episode, **kw))
    # a decrease alone: told, and the substance's other series never read
    (d,) = decide.enqueue_findings(
        cfg, store, "ketamin", [(finding("lab", direction="decrease", rel=-0.6), "open")], {},
        now=NOW)
    assert d["direction"] == "decrease" and asked == []
    # a spike: the question is asked (is it part of a rise?) and, with none, it is told
    (sp,) = decide.enqueue_findings(
        cfg, store, "ketamin", [(finding("customs", kind="spike"), "open")], {}, now=NOW)
    assert sp["kind"] == "spike" and asked == ["ketamin"]

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"a quiet round used the store: {name}")

    assert decide.enqueue_findings(cfg, Untouchable(), "ketamin", [], {}, now=NOW) == []


def test_open_episodes_of_a_substance_are_found_by_their_kind_and_direction(tmp_path):
    """``Store.open_episode_scopes`` names the series of a substance whose stored state
    has that episode open, and no others; a round's own states override the stored
    ones, the series ending now do not count, and nor does a source no longer in the
    config, whose series are no longer judged (``_episode_open``)."""
    cfg = make_config(tmp_path, ROUTED)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs", "media", "retired"):
        seed_series(store, s)
    seed_series(store, "lab", substance="heroin")
    up = {"trend:increase": {"kind": "trend", "direction": "increase"}}
    spike = {"spike:increase": {"kind": "spike", "direction": "increase"}}
    with store.write() as db:
        store.save_episode_state("series:lab:ketamin", {"tracker": {}, "active": up}, db)
        store.save_episode_state("series:customs:ketamin", {"tracker": {}, "active": spike}, db)
        store.save_episode_state("series:media:ketamin", {"tracker": {}, "active": {}}, db)
        store.save_episode_state("series:lab:heroin", {"tracker": {}, "active": up}, db)
        store.save_episode_state("series:retired:ketamin", {"tracker": {}, "active": up}, db)
    assert "retired" not in cfg.watched_sources()
    assert store.open_episode_scopes("ketamin", "trend:increase") == {
        "series:lab:ketamin", "series:retired:ketamin"}
    assert store.open_episode_scopes("ketamin", "trend:increase",
                                     sources=cfg.watched_sources()) == {"series:lab:ketamin"}
    assert store.open_episode_scopes("ketamin", "spike:increase") == {"series:customs:ketamin"}
    assert store.open_episode_scopes("ketamin", "trend:decrease") == set()
    assert decide._episode_open(cfg, store, "ketamin", "trend:increase", {}, done=set())
    assert not decide._episode_open(cfg, store, "ketamin", "trend:increase", {},
                                    done={"lab:ketamin"})
    # a paused source is not watched either
    (tmp_path / "paused").mkdir()
    paused = make_config(tmp_path / "paused", ROUTED, sources=SOURCES.replace(
        'location = "customs/"', 'location = "customs/"\nenabled = false'))
    assert paused.watched_sources() == {"lab", "media"}
    assert decide._episode_open(cfg, store, "ketamin", "spike:increase", {}, done=set())
    assert not decide._episode_open(paused, store, "ketamin", "spike:increase", {}, done=set())
    # this round's state of lab says the rise is over; media's says it opened
    assert not decide._episode_open(
        cfg, store, "ketamin", "trend:increase",
        {"series:lab:ketamin": {"tracker": {}, "active": {}}}, done=set())
    assert decide._episode_open(
        cfg, store, "ketamin", "trend:increase",
        {"series:lab:ketamin": {"tracker": {}, "active": {}},
         "series:media:ketamin": {"tracker": {}, "active": up}}, done=set())
