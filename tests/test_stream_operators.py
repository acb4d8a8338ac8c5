"""Operators' commands over time: `warnd outbox retry|drop` on deliveries that waited,
failed and expired, followed by the dispatches that come after them (the real CLI,
the real outbox and a real SMTP server; the clock is passed in)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.alerting_env import make_config, target
from tests.servers import wait_for
from warnd.alerting import decide, outbox
from warnd.cli import main
from warnd.service.health import collect_status
from warnd.store import Store

DEAD = "mailto://127.0.0.1:9?from=a@example.org&to=b@example.org&mode=insecure"
SHORT = '\n[alerting]\nexpire_after = "2h"\n'


def _notice(cfg, store, key: str, now: datetime) -> int:
    src = SimpleNamespace(name="overdosefare", region="")
    item = SimpleNamespace(key=key, title=f"Advarsel {key}",
                           link="https://overdosefare.example/" + key,
                           published_at=now - timedelta(hours=1), region="", summary="")
    aid = decide.enqueue_notice(cfg, store, src, item, "ketamin", now=now)
    assert aid is not None
    return aid


def _dispatch_until_settled(cfg, store, start: datetime, end: datetime) -> None:
    """Dispatch at each next attempt of the waiting deliveries, as the daemon would."""
    now = start
    while now < end:
        outbox.dispatch_pending(cfg, store, now=now)
        nxt = store.q("SELECT MIN(next_attempt_at) AS t FROM deliveries "
                      "WHERE status='pending'")[0]["t"]
        if nxt is None:
            return
        now = max(now + timedelta(seconds=1), datetime.fromisoformat(nxt))


def test_a_retry_after_the_target_is_repaired_goes_at_the_next_dispatch(
        tmp_path, smtp_server, capsys):
    """A relay that refused every attempt until the message expired; the operator
    repairs the target's address (a reload) and runs `warnd outbox retry`. The message
    goes with the next dispatch, not after the back-off the dead relay earned."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=150)
    dead = make_config(tmp_path, target("mail", DEAD), SHORT)
    store = Store.in_dir(dead.state_dir)
    aid = _notice(dead, store, "n1", start)
    _dispatch_until_settled(dead, store, start, start + timedelta(hours=3))
    [row] = store.q("SELECT status FROM deliveries")
    assert row["status"] == "expired"
    assert not collect_status(dead)["healthy"]
    # the relay's address is corrected in the config, and the message re-queued
    fixed = make_config(tmp_path, target("mail", smtp_server.url()), SHORT)
    conf = ["--config", str(fixed.path)]
    assert main([*conf, "outbox", "retry", str(aid)]) == 0
    assert "1 delivery queued again" in capsys.readouterr().out
    counts = outbox.dispatch_pending(fixed, store, now=datetime.now(UTC))
    assert counts["delivered"] == 1, (counts, store.q("SELECT * FROM deliveries"))
    wait_for(lambda: len(smtp_server.messages) == 1, what="the re-queued notice")
    assert store.q("SELECT status FROM deliveries") == [{"status": "delivered"}]
    st = collect_status(fixed)
    assert st["healthy"], st["problems"]


@pytest.mark.parametrize("action", ["drop", "retry"])
def test_an_escalation_held_behind_its_opening_goes_when_the_operator_acts(
        tmp_path, capsys, action):
    """The relay keeps deferring a rise's opening (451); the escalation decided meanwhile
    waits behind it, held until the opening's next attempt, up to an hour away. The
    operator gives the opening up (`warnd outbox drop`), or has the relay let it through
    and re-queues it (`warnd outbox retry`): the escalation goes with the next dispatch
    (after the opening, when that goes), not at the time the opening would have been
    tried again; after a drop, as the first message of the episode the target gets, it
    reads as the opening."""
    from tests.alerting_env import finding, seed_series
    from tests.servers import SmtpServer
    from tests.test_stream_delivery import _Deferring, _period

    srv = SmtpServer()
    srv.handler = _Deferring(0, subject="Liten")
    srv.start()
    try:
        cfg = make_config(tmp_path, target("mail", srv.url()))
        store = Store.in_dir(cfg.state_dir)
        for s in ("lab", "customs"):
            seed_series(store, s)
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=70)
        lab = [finding("lab", category=1, rel=1.0)]
        (a,) = _period(cfg, store, date(2026, 7, 6), {"lab": lab}, now=t0)
        _dispatch_until_settled(cfg, store, t0, t0 + timedelta(minutes=64))
        t1 = t0 + timedelta(minutes=65)
        (b,) = _period(cfg, store, date(2026, 7, 13),
                       {"lab": lab, "customs": [finding("customs")]}, now=t1)
        assert b["decision"] == "escalate"
        counts = outbox.dispatch_pending(cfg, store, now=t1)
        assert (counts["retrying"], counts["held"]) == (1, 1), counts
        assert srv.messages == []
        if action == "retry":
            srv.handler.subject = None  # the relay's postmaster let it through
        assert main(["--config", str(cfg.path), "outbox", action, str(a["id"])]) == 0
        capsys.readouterr()
        counts = outbox.dispatch_pending(cfg, store, now=datetime.now(UTC))
        # dropped, the opening never reached the target: the escalation reads as it
        subjects = ["Sterk økning: ketamin — 2 kilder"]
        if action == "retry":
            subjects = ["Liten økning: ketamin — 1 kilde",
                        "Forverring: Sterk økning: ketamin — 2 kilder"]
        assert counts["delivered"] == len(subjects), (
            counts, store.q("SELECT * FROM deliveries"))
        wait_for(lambda: len(srv.messages) == len(subjects), what="the messages")
        assert [m["Subject"] for m in srv.messages] == subjects
    finally:
        srv.stop()


def test_status_counts_every_open_alert_after_months_of_notices(tmp_path, capsys):
    """A warning notice a week for half a year, none acknowledged (a notice stays open
    until it is): a script reading `warnd status --json` every week, and the operator
    reading its text, learn how many alerts are open — not 20, the most it lists."""
    cfg = make_config(tmp_path, target("mail", DEAD))
    store = Store.in_dir(cfg.state_dir)
    conf = ["--config", str(cfg.path)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(weeks=26)
    for week in range(26):
        _notice(cfg, store, f"n{week}", start + timedelta(weeks=week))
        main([*conf, "status", "--json"])
        st = json.loads(capsys.readouterr().out)
        assert st["open_alerts_count"] == week + 1
        assert len(st["open_alerts"]) == min(week + 1, 20)
    main([*conf, "status"])
    out = capsys.readouterr().out
    assert "open alerts: 26 (the newest 20 listed)" in out
    assert out.count("Ny advarsel: ketamin — Advarsel") == 20, out
    # acknowledged ones are no longer open
    assert main([*conf, "alerts", "ack", "1"]) == 0
    capsys.readouterr()
    main([*conf, "status", "--json"])
    assert json.loads(capsys.readouterr().out)["open_alerts_count"] == 25


def test_a_message_re_queued_after_a_digest_is_listed_by_the_next_one(tmp_path, smtp_server):
    """A notice to a dead relay expires before Tuesday's digest, which rightly does not
    list it as sent. On Tuesday the relay is repaired and the notice re-queued and
    delivered: Wednesday's digest lists it under "sent since the last digest" (it was
    sent in that time), and Thursday's does not list it again."""
    from warnd.alerting import actions

    digest = ('\n[alerting.digest]\nschedule = "daily"\nat = "07:00"\ntargets = ["mail"]\n'
              '\n[alerting]\nexpire_after = "2h"\ndefault_targets = ["desk"]\n')
    dead = make_config(tmp_path, target("desk", DEAD) + target("mail", smtp_server.url()),
                       digest)
    store = Store.in_dir(dead.state_dir)
    monday = datetime(2026, 7, 13, 8, tzinfo=UTC)  # 10:00 in Oslo
    outbox.dispatch_pending(dead, store, now=monday)  # running since: digests from now on
    aid = _notice(dead, store, "n1", monday)
    _dispatch_until_settled(dead, store, monday, monday + timedelta(hours=3))
    assert store.q("SELECT status FROM deliveries WHERE alert_id=?", [aid]) == [
        {"status": "expired"}]

    def digest_lists(day: datetime) -> list[int]:
        outbox.dispatch_pending(fixed, store, now=day)
        rows = store.q("SELECT data FROM alerts WHERE kind='digest' ORDER BY id DESC LIMIT 1")
        return [a["id"] for a in json.loads(rows[0]["data"])["changed"]]

    fixed = make_config(tmp_path, target("desk", smtp_server.url())
                        + target("mail", smtp_server.url()), digest)
    tuesday = monday + timedelta(days=1, hours=-3)  # 07:00 in Oslo
    assert digest_lists(tuesday) == []
    later = tuesday + timedelta(hours=4)
    assert actions.retry_delivery(store, aid, "desk", who="kari", via="cli", now=later)
    assert outbox.dispatch_pending(fixed, store, now=later)["delivered"] == 1
    assert digest_lists(tuesday + timedelta(days=1)) == [aid]
    assert digest_lists(tuesday + timedelta(days=2)) == []


def test_the_console_does_not_show_digests_as_open_alerts(tmp_path, smtp_server):
    """A daily digest for a week, and one warning notice nobody acknowledged: the
    console's open alerts (its page and the API a script reads every day) are that
    notice alone, as `warnd status` says — not the notice and every digest sent,
    piling up day by day."""
    import httpx

    from tests.servers import free_port
    from tests.webkit import Console
    from warnd.web.auth import create_token

    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()),
        '\n[alerting.digest]\nschedule = "daily"\nat = "07:00"\ntargets = ["mail"]\n'
        "\n[web]\nsecure_cookies = false\n")
    store = Store.in_dir(cfg.state_dir)
    monday = datetime(2026, 7, 13, 8, tzinfo=UTC)  # 10:00 in Oslo
    outbox.dispatch_pending(cfg, store, now=monday)  # running since: digests from now on
    aid = _notice(cfg, store, "n1", monday)
    token = create_token(store, "nightly", "viewer")
    bearer = {"Authorization": f"Bearer {token}"}
    console = Console(cfg.path, cfg.state_dir, free_port()).start()
    try:
        with httpx.Client(base_url=console.url, timeout=30) as web:
            for day in range(1, 8):
                outbox.dispatch_pending(cfg, store, now=monday + timedelta(days=day, hours=-3))
                assert store.q("SELECT COUNT(*) AS n FROM alerts "
                               "WHERE kind='digest'")[0]["n"] == day
                r = web.get("/api/v1/alerts?state=open", headers=bearer)
                assert r.status_code == 200
                assert [a["id"] for a in r.json()] == [aid]
                assert [a["id"] for a in collect_status(cfg)["open_alerts"]] == [aid]
            # the digests are still there to read, under all alerts
            every = web.get("/api/v1/alerts", headers=bearer).json()
            assert sorted(a["kind"] for a in every) == ["digest"] * 7 + ["notice"]
    finally:
        console.stop()


def _counters(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter sample a scrape of the real ``/metrics`` answers, by name and labels."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) if fam.type == "counter"
            for s in fam.samples if s.name.endswith("_total")}


def _went_down(scrapes: list[tuple[str, dict[Any, float]]]) -> list[str]:
    """The counters that are lower in a scrape than in the one before it (a series that
    is not there any more is not lower: Prometheus no longer has it)."""
    down = []
    for (_, before), (step, after) in itertools.pairwise(scrapes):
        down += [f"{name}{dict(labels)} {v} -> {after[name, labels]} after {step}"
                 for (name, labels), v in before.items()
                 if (name, labels) in after and after[name, labels] < v]
    return down


def test_counters_on_metrics_never_go_down_when_an_operator_retries_or_drops(
        tmp_path, smtp_server, capsys):
    """Two notices to a dead relay expire after a few attempts each. The operator repairs
    the relay, re-queues one (`warnd outbox retry`), which goes, and gives the other up
    (`warnd outbox drop`). Prometheus scrapes /metrics after each step: no counter
    goes down (a decrease is read as a restart, and `increase()` would count every
    attempt and every expiry again), and they count what happened: every attempt made,
    each message given up when it expired, the one delivered."""
    from warnd.service.health import HealthServer

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    dead = make_config(tmp_path, target("mail", DEAD), SHORT)
    store = Store.in_dir(dead.state_dir)
    first, second = (_notice(dead, store, key, start) for key in ("n1", "n2"))
    _dispatch_until_settled(dead, store, start, start + timedelta(hours=5))
    rows = store.q("SELECT status, attempts FROM deliveries")
    assert [r["status"] for r in rows] == ["expired", "expired"], store.q(
        "SELECT * FROM deliveries")
    tried = sum(r["attempts"] for r in rows)
    assert tried >= 4
    fixed = make_config(tmp_path, target("mail", smtp_server.url()), SHORT)
    conf = ["--config", str(fixed.path)]
    srv = HealthServer("127.0.0.1:0", lambda: fixed, lambda: {"alive": True}).start()
    url = "http://{}:{}".format(*srv.address)
    try:
        scrapes = [("both expired", _counters(url))]
        assert scrapes[0][1]["warnd_delivery_attempts_total", ()] == tried
        assert scrapes[0][1]["warnd_alerts_failed_total", ()] == 2
        assert main([*conf, "outbox", "retry", str(first)]) == 0
        scrapes.append(("outbox retry", _counters(url)))
        counts = outbox.dispatch_pending(fixed, store, now=datetime.now(UTC))
        assert counts["delivered"] == 1, (counts, store.q("SELECT * FROM deliveries"))
        wait_for(lambda: len(smtp_server.messages) == 1, what="the re-queued notice")
        scrapes.append(("the dispatch", _counters(url)))
        assert main([*conf, "outbox", "drop", str(second)]) == 0
        scrapes.append(("outbox drop", _counters(url)))
        capsys.readouterr()
    finally:
        srv.stop()
    assert _went_down(scrapes) == []
    last = scrapes[-1][1]
    assert last["warnd_delivery_attempts_total", ()] == tried + 1
    assert last["warnd_alerts_failed_total", ()] == 2  # each expired once
    assert last["warnd_alerts_sent_total", ()] == 1


def test_the_outbox_list_says_how_many_it_leaves_out(tmp_path, capsys):
    """A relay dead for a long while and a notice every hour: 203 deliveries wait. `warnd
    outbox` lists the newest 200, as it always did, and its last line says 3 more are not
    listed; with `--json` the output is still the list scripts read, and stderr says
    how many there are. With `--limit` covering them all, nothing is said."""
    cfg = make_config(tmp_path, target("mail", DEAD))
    store = Store.in_dir(cfg.state_dir)
    conf = ["--config", str(cfg.path)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=203)
    for hour in range(203):
        _notice(cfg, store, f"n{hour}", start + timedelta(hours=hour))
    assert main([*conf, "outbox"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("#") for line in out) == 200
    assert out[-1] == ("3 more not listed: the newest 200 of 203 deliveries listed; "
                       "`--limit 203` lists them all")
    assert main([*conf, "outbox", "--json"]) == 0
    got = capsys.readouterr()
    rows = json.loads(got.out)
    assert isinstance(rows, list) and len(rows) == 200 and rows[0]["alert_id"] == 203
    assert "the newest 200 of 203 deliveries listed" in got.err
    assert main([*conf, "outbox", "list", "--limit", "203", "--json"]) == 0
    got = capsys.readouterr()
    assert len(json.loads(got.out)) == 203 and got.err == ""
    assert main([*conf, "outbox", "--limit", "203"]) == 0
    assert "more not listed" not in capsys.readouterr().out


def test_status_counts_what_waits_for_a_target_apart_from_what_expired(tmp_path, capsys):
    """A relay dead for hours (expire_after 2 h): three notices wait for it, one tried and
    two held behind its back-off; then all three expire, and a fourth notice is tried and
    waits. `warnd status` says how many wait and how many expired, each on its own — an
    expired delivery no longer waits (before, the line said "1 waiting" for three that
    waited, and "4 waiting" for three expired and one waiting)."""
    cfg = make_config(tmp_path, target("mail", DEAD), SHORT)
    store = Store.in_dir(cfg.state_dir)
    conf = ["--config", str(cfg.path)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def line() -> tuple[str, dict[str, Any]]:
        main([*conf, "status"])
        out = capsys.readouterr().out
        lines = [x for x in out.splitlines() if x.startswith("  target mail:")]
        assert len(lines) == 1, out
        text = lines[0]
        main([*conf, "status", "--json"])
        [row] = json.loads(capsys.readouterr().out)["failing_targets"]
        return text.split(", last error")[0].strip(), row

    for key in ("n1", "n2", "n3"):
        _notice(cfg, store, key, start)
    outbox.dispatch_pending(cfg, store, now=start)
    text, row = line()
    assert text == "target mail: 3 waiting"
    assert (row["n"], row["n_waiting"], row["n_expired"]) == (1, 3, 0)
    _dispatch_until_settled(cfg, store, start, start + timedelta(hours=3))
    assert {r["status"] for r in store.q("SELECT status FROM deliveries")} == {"expired"}
    text, row = line()
    assert text == "target mail: 3 expired"
    assert (row["n_waiting"], row["n_expired"]) == (0, 3)
    later = start + timedelta(hours=3)
    _notice(cfg, store, "n4", later)
    outbox.dispatch_pending(cfg, store, now=later)
    text, row = line()
    assert text == "target mail: 1 waiting, 3 expired"
    assert (row["n_waiting"], row["n_expired"]) == (1, 3)


def test_a_digest_printed_by_hand_before_any_was_sent_covers_one_period(
        tmp_path, smtp_server, capsys):
    """`warnd digest` with no digest sent yet covers one schedule period, as the first
    scheduled digest does: a notice delivered three weeks before is not listed as sent
    in it, one delivered two days before is (before, it listed every alert since
    warnd's start, and its title named a week)."""
    cfg = make_config(tmp_path, target("desk", smtp_server.url()),
                      '\n[alerting]\ndefault_targets = ["desk"]\n')
    store = Store.in_dir(cfg.state_dir)
    old_day = datetime(2026, 6, 22, 8, tzinfo=UTC)
    new_day = datetime(2026, 7, 11, 8, tzinfo=UTC)
    old = _notice(cfg, store, "old", old_day)
    outbox.dispatch_pending(cfg, store, now=old_day)
    new = _notice(cfg, store, "new", new_day)
    outbox.dispatch_pending(cfg, store, now=new_day)
    wait_for(lambda: len(smtp_server.messages) == 2, what="both notices")
    assert main(["--config", str(cfg.path), "digest", "--end", "2026-07-12", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [a["id"] for a in got["changed"]] == [new] and old != new
    assert (got["covers_from"], got["covers_until"]) == ("2026-07-06", "2026-07-13")
