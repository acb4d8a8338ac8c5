"""Digests over time through the real pipeline: the notices page read from a file, a
real SMTP server on localhost, the clock moved on from poll to poll."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.alerting_env import notice_config, target
from tests.test_stream_notices import _inbox, _page, _round
from warnd.store import Store

OSLO = ZoneInfo("Europe/Oslo")


def _config(tmp_path, smtp, digest: str = 'schedule = "daily"'):
    return notice_config(tmp_path, target("ops", smtp.url("ops@example.org")), f'''
[alerting]
default_targets = ["ops"]

[alerting.digest]
{digest}
at = "08:00"
targets = ["ops"]
''')


def _digests(cfg) -> list[dict]:
    store = Store.in_dir(cfg.state_dir)
    try:
        return [{**r, "data": json.loads(r["data"])} for r in store.q(
            "SELECT id, title, body, data FROM alerts WHERE kind='digest' ORDER BY id")]
    finally:
        store.close()


def test_a_digest_dates_what_it_lists_by_the_local_day_it_was_sent(tmp_path, smtp_server):
    """A warning told at 00:10 on 1 April in Oslo (22:10 UTC on 31 March) is listed by
    the daily digest of 1 April 08:00 as sent on 1 April, the day its recipients got
    it, as the digest's title names local days (before, it was listed under its UTC
    day, 31 March)."""
    cfg = _config(tmp_path, smtp_server)
    told = datetime(2026, 4, 1, 0, 10, tzinfo=OSLO)
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     told - timedelta(minutes=5)))
    _round(cfg, told.astimezone(UTC))
    _round(cfg, datetime(2026, 4, 1, 8, 5, tzinfo=OSLO).astimezone(UTC))
    assert _inbox(smtp_server) == {"ops@example.org": [
        "Ny advarsel: Heroin — Heroin med høy styrke",
        "Dagsoversikt: 2026-03-31 – 2026-04-01"]}
    (dg,) = _digests(cfg)
    (listed,) = dg["data"]["changed"]
    assert f"  - #{listed['id']} 2026-04-01 Ny advarsel: Heroin" in dg["body"], dg["body"]
    assert "2026-03-31 Ny advarsel" not in str(smtp_server.messages[-1])


def test_the_digest_after_a_silenced_one_covers_since_the_last_that_went_out(
        tmp_path, smtp_server):
    """Daily digests at 08:00; the digests are silenced for Wednesday (an operator away
    for a day). The warning told on Tuesday at noon, after Tuesday's digest, is listed
    by Thursday's, which covers Tuesday to Thursday, since the digest its recipients
    last had (before, it covered Wednesday to Thursday, since the silenced digest no one
    got, and the warning was in no digest anyone received)."""
    from warnd.alerting import actions

    cfg = _config(tmp_path, smtp_server)

    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 4, day, hour, 5, tzinfo=OSLO).astimezone(UTC)

    _page(tmp_path)
    _round(cfg, at(6, 7))  # Monday: installed
    _round(cfg, at(7, 8))  # Tuesday's digest
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance=None, kind="digest", until=at(9, 7),
                            reason="borte", who="kari", via="cli", now=at(7, 10))
    finally:
        store.close()
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     at(7, 11)))
    _round(cfg, at(7, 12))  # the warning
    _round(cfg, at(8, 8))  # Wednesday's digest, silenced
    _round(cfg, at(9, 8))  # Thursday's
    assert _inbox(smtp_server) == {"ops@example.org": [
        "Dagsoversikt: 2026-04-06 – 2026-04-07",
        "Ny advarsel: Heroin — Heroin med høy styrke",
        "Dagsoversikt: 2026-04-07 – 2026-04-09"]}
    tuesday, _, thursday = _digests(cfg)
    (warning,) = thursday["data"]["changed"]
    assert warning["title"] == "Ny advarsel: Heroin — Heroin med høy styrke"
    assert tuesday["data"]["changed"] == []


def test_a_rise_a_silence_holds_back_is_not_in_the_digest_until_it_is_told(
        tmp_path, smtp_server):
    """Ketamine is silenced for a week when its rise is found: no one is told, and the
    daily digests of that week do not name it either, in their table or among the open
    episodes (before, each listed "Ketamin: siden 2026-06-22", telling the rise the
    silence held back, and a revision that then withdrew it left readers with a rise
    never corrected). Once the silence has ended the rise is told, and the next digest
    lists it. The console's overview shows the rise throughout."""
    from datetime import date

    from tests.alerting_env import finding, judge_period, make_config, seed_series, target
    from warnd.alerting import actions, outbox
    from warnd.web.data import overview

    cfg = make_config(tmp_path, target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\n'
                      'targets = ["ops"]\n')
    store = Store.in_dir(cfg.state_dir)
    try:
        seed_series(store, "lab")
        seed_series(store, "customs")
        monday = datetime(2026, 7, 6, 10, tzinfo=OSLO).astimezone(UTC)
        outbox.dispatch_pending(cfg, store, now=monday)  # running since Monday
        actions.add_silence(store, substance="ketamin", duration=timedelta(days=7),
                            reason="kjent", who="kari", via="cli", now=monday)
        both = {"lab": [finding("lab")], "customs": [finding("customs")]}
        store.record_findings([f for fs in both.values() for f in fs], now=monday)
        (held,) = judge_period(cfg, store, date(2026, 7, 6), both, now=monday)
        assert held["status"] == "silenced"
        # the console's overview, for those who run warnd, shows the rise all the same
        rows = {r["substance"]: r for r in overview(cfg, store)["rows"]}
        assert rows["ketamin"]["category"] == 2, rows["ketamin"]
        for day in range(7, 16):
            now = datetime(2026, 7, day, 8, 5, tzinfo=OSLO).astimezone(UTC)
            judge_period(cfg, store, date(2026, 7, 6), both, now=now)
            outbox.dispatch_pending(cfg, store, now=now)
    finally:
        store.close()
    digests = _digests(cfg)
    assert [d["title"] for d in digests] == [
        f"Dagsoversikt: 2026-07-{d - 1:02d} – 2026-07-{d:02d}" for d in range(7, 16)]
    told = next(i for i, d in enumerate(digests) if d["data"]["changed"])
    assert [a["title"] for a in digests[told]["data"]["changed"]] == [
        "Sterk økning: ketamin — 2 kilder"]
    for d in digests[:told]:
        assert (d["data"]["open"], d["data"]["substances"]) == ([], []), d["body"]
        assert "ketamin" not in d["body"].lower()
    for d in digests[told + 1:]:
        assert [e["substance"] for e in d["data"]["open"]] == ["ketamin"], d["body"]


def test_the_first_digest_that_goes_out_after_silenced_ones_covers_their_time_too(
        tmp_path, smtp_server):
    """Installed on Monday at 07:05 with the digests silenced until Wednesday noon:
    Monday's (made at noon), Tuesday's and Wednesday's are held back, and Thursday's,
    the first anyone gets, covers from where the first digest began, Sunday 08:00, and
    lists the warning told on Monday at noon (before, it covered Wednesday to Thursday
    only, and the warning was in no digest anyone received)."""
    from warnd.alerting import actions

    cfg = _config(tmp_path, smtp_server)

    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 4, day, hour, 5, tzinfo=OSLO).astimezone(UTC)

    _page(tmp_path)
    _round(cfg, at(6, 7))  # Monday: installed
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance=None, kind="digest", until=at(8, 12),
                            reason="ny", who="kari", via="cli", now=at(6, 7))
    finally:
        store.close()
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     at(6, 11)))
    for day, hour in ((6, 12), (7, 8), (8, 8), (9, 8)):
        _round(cfg, at(day, hour))
    assert _inbox(smtp_server) == {"ops@example.org": [
        "Ny advarsel: Heroin — Heroin med høy styrke",
        "Dagsoversikt: 2026-04-05 – 2026-04-09"]}
    *_, thursday = _digests(cfg)
    assert [a["title"] for a in thursday["data"]["changed"]] == [
        "Ny advarsel: Heroin — Heroin med høy styrke"]


def _two_desks(tmp_path, ops, desk, *, desk_muted: bool = False, name: str = "config.toml"):
    """Daily digests at 08:00 to ops and the desk, each behind its own mail relay; the
    warnings go to ops only. A delivery is given up 12 hours after it was due."""
    muted = "muted = true\n" if desk_muted else ""
    return notice_config(
        tmp_path, target("ops", ops.url("ops@example.org"))
        + target("desk", desk.url("desk@example.org")) + muted, '''
[alerting]
default_targets = ["ops"]
expire_after = "12h"

[alerting.digest]
schedule = "daily"
at = "08:00"
targets = ["ops", "desk"]
''', name=name)


def _digest_texts(smtp) -> list[tuple[str, str]]:
    """Each digest a relay received: its subject and its plain text."""
    return [(str(m["Subject"]), m.get_body(("plain",)).get_content()) for m in smtp.messages
            if str(m["Subject"]).startswith("Dagsoversikt")]


W1 = ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.")
W2 = ("v/2", "Heroin blandet med nitazener", "Heroin blandet med nitazener i omløp.")


def test_a_digest_a_desk_did_not_get_is_in_its_next_one(tmp_path, smtp_server):
    """Daily digests to ops and a desk, each through its own relay. The desk's relay is
    down on Wednesday until that day's digest to it is given up; ops has it. Thursday's
    digest to the desk covers Tuesday to Thursday, since the last digest it had, and
    lists the warning Wednesday's told ops of as well as the one told since; ops's covers
    Wednesday to Thursday (before, the desk's covered Wednesday to Thursday too, as the
    digest had gone out to ops, and the desk never heard of the first warning). Friday's
    is the same for both again. One digest alert per day."""
    from tests.servers import SmtpServer

    desk = SmtpServer().start()
    try:
        cfg = _two_desks(tmp_path, smtp_server, desk)

        def at(day: int, hour: int) -> datetime:
            return datetime(2026, 4, day, hour, 5, tzinfo=OSLO).astimezone(UTC)

        _page(tmp_path)
        _round(cfg, at(6, 7))  # Monday: installed
        _round(cfg, at(7, 8))  # Tuesday's digest, to both
        _page(tmp_path, (*W1, at(7, 11)))
        _round(cfg, at(7, 12))  # the first warning, to ops
        desk.stop()  # the desk's relay is down
        _round(cfg, at(8, 8))  # Wednesday's digest: ops has it, the desk's is retried
        _round(cfg, at(8, 21))  # … and given up
        desk.start()
        _page(tmp_path, (*W1, at(7, 11)), (*W2, at(8, 22)))
        _round(cfg, at(8, 23))  # the second warning, to ops
        _round(cfg, at(9, 8))  # Thursday's digest
        _round(cfg, at(10, 8))  # Friday's
        ops_got = _digest_texts(smtp_server)
        desk_got = _digest_texts(desk)
    finally:
        desk.stop()
    assert [s for s, _ in ops_got] == [
        "Dagsoversikt: 2026-04-06 – 2026-04-07", "Dagsoversikt: 2026-04-07 – 2026-04-08",
        "Dagsoversikt: 2026-04-08 – 2026-04-09", "Dagsoversikt: 2026-04-09 – 2026-04-10"]
    assert [s for s, _ in desk_got] == [
        "Dagsoversikt: 2026-04-06 – 2026-04-07", "Dagsoversikt: 2026-04-07 – 2026-04-09",
        "Dagsoversikt: 2026-04-09 – 2026-04-10"]
    first, second = (f"Ny advarsel: Heroin — {w[1]}" for w in (W1, W2))
    # Wednesday's, to ops: the first warning; Thursday's: the second only
    assert first in ops_got[1][1] and second not in ops_got[1][1]
    assert second in ops_got[2][1] and first not in ops_got[2][1]
    # Thursday's, to the desk: both; Friday's: neither, for either
    assert first in desk_got[1][1] and second in desk_got[1][1]
    assert desk_got[2][1] == ops_got[3][1] and first not in desk_got[2][1]
    digests = _digests(cfg)
    assert len(digests) == 4  # one per scheduled time, Tuesday to Friday
    store = Store.in_dir(cfg.state_dir)
    try:
        status = {(r["alert_id"], r["target"]): r["status"] for r in store.q(
            "SELECT alert_id, target, status FROM deliveries WHERE alert_id IN "
            f"({','.join(str(d['id']) for d in digests)})")}
    finally:
        store.close()
    assert status[(digests[1]["id"], "desk")] == "expired"
    # the digest as stored (and `warnd digest --json`) is ops's: since Wednesday's
    thursday = digests[2]["data"]
    assert (thursday["covers_from"], thursday["previous_id"]) == ("2026-04-08", digests[1]["id"])


def test_a_digest_held_back_from_a_muted_desk_is_in_its_next_one(tmp_path, smtp_server):
    """The desk is muted in the configuration for Wednesday (a reload), so Wednesday's
    digest is dropped for it while ops has it; unmuted, its Thursday digest covers
    Tuesday to Thursday and lists the warning Wednesday's told ops of (before, it
    covered Wednesday to Thursday and left it out)."""
    from tests.servers import SmtpServer

    desk = SmtpServer().start()
    try:
        cfg = _two_desks(tmp_path, smtp_server, desk)
        muted = _two_desks(tmp_path, smtp_server, desk, desk_muted=True, name="muted.toml")

        def at(day: int, hour: int) -> datetime:
            return datetime(2026, 4, day, hour, 5, tzinfo=OSLO).astimezone(UTC)

        _page(tmp_path)
        _round(cfg, at(6, 7))
        _round(cfg, at(7, 8))
        _page(tmp_path, (*W1, at(7, 11)))
        _round(cfg, at(7, 12))
        _round(muted, at(8, 8))  # Wednesday's digest: not to the muted desk
        _round(cfg, at(9, 8))
        desk_got = _digest_texts(desk)
    finally:
        desk.stop()
    assert [s for s, _ in desk_got] == [
        "Dagsoversikt: 2026-04-06 – 2026-04-07", "Dagsoversikt: 2026-04-07 – 2026-04-09"]
    assert f"Ny advarsel: Heroin — {W1[1]}" in desk_got[1][1]
    assert [s for s, _ in _digest_texts(smtp_server)][-1] == (
        "Dagsoversikt: 2026-04-08 – 2026-04-09")


def test_a_digest_carries_no_acknowledge_or_silence_link(tmp_path, smtp_server):
    """The console's address is configured, so messages carry its links. The warning
    told on Tuesday has "Kvitter" and "Demp 14 dager"; Wednesday's digest, a summary
    that is no open alert, has only "Åpne", which opens it in the console. Before, the
    digest had all three: "Kvitter" acknowledged nothing anyone waits on, and "Demp 14
    dager", confirmed, silenced every desk's digests for two weeks."""
    from tests.servers import free_port
    from tests.test_stream_console import KARI, _login
    from tests.webkit import Console, warnd

    port = free_port()
    cfg = notice_config(tmp_path, target("ops", smtp_server.url("ops@example.org")), f'''
[alerting]
default_targets = ["ops"]

[alerting.digest]
schedule = "daily"
at = "08:00"
targets = ["ops"]

[web]
secure_cookies = false
base_url = "http://127.0.0.1:{port}"
''')

    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 4, day, hour, 5, tzinfo=OSLO).astimezone(UTC)

    _page(tmp_path)
    _round(cfg, at(7, 9))  # Tuesday: installed
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     at(7, 11)))
    _round(cfg, at(7, 12))  # the warning
    _round(cfg, at(8, 8))  # Wednesday's digest
    assert _inbox(smtp_server) == {"ops@example.org": [
        "Ny advarsel: Heroin — Heroin med høy styrke",
        "Dagsoversikt: 2026-04-07 – 2026-04-08"]}
    warning, dg = smtp_server.messages
    assert ["Åpne", "Kvitter", "Demp 14 dager"] == [
        line.split(":")[0] for line in warning.get_body(("plain",)).get_content().splitlines()
        if line.startswith(("Åpne:", "Kvitter:", "Demp 14 dager:"))]
    text = dg.get_body(("plain",)).get_content()
    html = dg.get_body(("html",)).get_content()
    (digest,) = _digests(cfg)
    (opens,) = [line.removeprefix("Åpne: ") for line in text.splitlines()
                if line.startswith("Åpne: ")]
    assert opens == f"http://127.0.0.1:{port}/alerts/{digest['id']}"
    assert "/a/" not in text and "/a/" not in html
    assert "Kvitter" not in text + html and "Demp 14 dager" not in text + html
    r = warnd(cfg.path, cfg.state_dir, "user", "add", KARI[0], "--role", "operator",
              "--password-stdin", stdin=KARI[1] + "\n")
    assert r.returncode == 0, r.stderr
    console = Console(cfg.path, cfg.state_dir, port).start()
    console.browsers = []
    try:
        page = _login(console, KARI).get(opens.removeprefix(console.url))
        assert page.status_code == 200 and "Dagsoversikt: 2026-04-07" in page.text
    finally:
        for c in console.browsers:
            c.close()
        console.stop()
