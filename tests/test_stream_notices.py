"""Warning notices through the real pipeline: the notices page read from a file, a real
SMTP server on localhost, the clock moved on from poll to poll. A notice naming two
substances is one message to each recipient, naming both, and is never told again."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from tests.conftest import write_config
from warnd.cli import main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

SUBSTANCES = """
[substances.kokain]
label = "kokain"
names = ["kokain"]

[substances.fentanyl]
label = "fentanyl"
names = ["fentanyl"]

[substances.heroin]
label = "heroin"
names = ["heroin"]
"""

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # a Tuesday, working hours


def _config(tmp_path, smtp, *, fentanyl_muted: bool = False, alerting: str = "",
            without_fentanyl: bool = False):
    """Four desks: ops hears of cocaine and fentanyl (and what no route takes), the
    cocaine desk of cocaine, the opioid desk of fentanyl, the heroin desk of heroin.
    ``alerting``: more lines of ``[alerting]``. ``without_fentanyl``: fentanyl taken out
    of the config (and of the routes), written as ``cut.toml``."""
    subs = SUBSTANCES.replace('names = ["fentanyl"]\n', 'names = ["fentanyl"]\nmuted = true\n'
                              ) if fentanyl_muted else SUBSTANCES
    body = f'''
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "od/varsler.html"
dimension = "availability"

[[targets]]
name = "ops"
url = "{smtp.url("ops@example.org")}"

[[targets]]
name = "cocaine-desk"
url = "{smtp.url("kokain@example.org")}"

[[targets]]
name = "opioid-desk"
url = "{smtp.url("opioid@example.org")}"

[[targets]]
name = "heroin-desk"
url = "{smtp.url("heroin@example.org")}"

[[routes]]
substances = ["kokain", "fentanyl"]
targets = ["ops"]

[[routes]]
substances = ["kokain"]
targets = ["cocaine-desk"]

[[routes]]
substances = ["fentanyl"]
targets = ["opioid-desk"]

[[routes]]
substances = ["heroin"]
targets = ["heroin-desk"]

[alerting]
default_targets = ["ops"]
{alerting}
'''
    if without_fentanyl:
        subs = subs.replace('[substances.fentanyl]\nlabel = "fentanyl"\nnames = ["fentanyl"]\n',
                            "")
        body = body.replace('["kokain", "fentanyl"]', '["kokain"]').replace(
            '[[routes]]\nsubstances = ["fentanyl"]\ntargets = ["opioid-desk"]\n\n', "")
        return write_config(tmp_path, body, substances=subs, name="cut.toml")
    return write_config(tmp_path, body, substances=subs)


def _page(tmp_path, *notices: tuple[str, str, str, datetime]) -> None:
    """The notices page: (path, title, text, published) per notice."""
    arts = "".join(
        f'<article><h2><a href="https://overdosefare.example/{path}">{title}</a></h2>'
        f'<time datetime="{when.isoformat()}">{when:%d.%m.%Y}</time><p>{text}</p></article>'
        for path, title, text, when in notices)
    d = tmp_path / "od"
    d.mkdir(exist_ok=True)
    (d / "varsler.html").write_text(f"<html><body>{arts}</body></html>", encoding="utf-8")


def _inbox(smtp) -> dict[str, list[str]]:
    """Subjects received, per recipient."""
    out: dict[str, list[str]] = {}
    for env, msg in zip(smtp.handler.envelopes, smtp.messages, strict=True):
        for rcpt in env.rcpt_tos:
            out.setdefault(rcpt, []).append(str(msg["Subject"]))
    return out


def _round(cfg, now: datetime) -> Pipeline:
    """One poll of the notices page and one dispatch at ``now`` (a fresh pipeline, as
    after a restart)."""
    p = Pipeline(cfg, clock=lambda: now)
    assert p.poll("overdosefare").ok
    p.dispatch()
    return p


MIXED = ("v/1", "Kokain blandet med fentanyl",
         "Det er funnet kokain blandet med fentanyl i Oslo.", T0 - timedelta(hours=2))


def test_a_notice_naming_two_substances_is_one_message_to_each_recipient(tmp_path,
                                                                         smtp_server):
    """A notice naming cocaine and fentanyl is one message to each desk either routes
    to, naming both ("kokain og fentanyl"): ops, routed by both, has it once (before,
    twice: one alert per substance). Seen again at later polls it is not told again.
    Its text edited to name heroin too, it is told once to the heroin desk, naming all
    three, and to no desk that had it; after a restart, nothing is told again."""
    cfg = load_config(_config(tmp_path, smtp_server))
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    inbox = _inbox(smtp_server)
    assert inbox == {
        "ops@example.org": ["Ny advarsel: kokain og fentanyl — Kokain blandet med fentanyl"],
        "kokain@example.org": ["Ny advarsel: kokain og fentanyl — Kokain blandet med fentanyl"],
        "opioid@example.org": ["Ny advarsel: kokain og fentanyl — Kokain blandet med fentanyl"],
    }, inbox
    store = Store.in_dir(cfg.state_dir)
    try:
        (a,) = store.alerts()
        assert (a["kind"], a["substance"], a["substances"]) == (
            "notice", "kokain", ["kokain", "fentanyl"])
    finally:
        store.close()

    _round(cfg, T0 + timedelta(minutes=30))  # the same page again
    heroin = ("v/2", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
              T0 + timedelta(minutes=40))
    _page(tmp_path, MIXED, heroin)
    _round(cfg, T0 + timedelta(hours=1))
    edited = (MIXED[0], MIXED[1], "Det er funnet kokain blandet med fentanyl og heroin.",
              MIXED[3])
    news = ("v/3", "Ukjent tablett", "Ukjente tabletter i omløp.", T0 + timedelta(hours=2))
    _page(tmp_path, edited, heroin, news)
    _round(cfg, T0 + timedelta(hours=3))
    _round(cfg, T0 + timedelta(hours=4))  # a restart: nothing left to tell
    _page(tmp_path, edited, heroin, news, ("v/5", "Nytt varsel", "Ingenting kjent.",
                                           T0 + timedelta(hours=4)))
    _round(cfg, T0 + timedelta(hours=5))  # read again: nothing left to tell
    told = "Ny advarsel: kokain og fentanyl — Kokain blandet med fentanyl"
    assert _inbox(smtp_server) == {
        "ops@example.org": [told], "kokain@example.org": [told],
        "opioid@example.org": [told],
        "heroin@example.org": [
            "Ny advarsel: heroin — Heroin med høy styrke",
            "Ny advarsel: kokain, fentanyl og heroin — Kokain blandet med fentanyl"],
    }, _inbox(smtp_server)
    store = Store.in_dir(cfg.state_dir)
    try:
        assert [(a["substance"], a["substances"]) for a in store.alerts()] == [
            ("heroin", ["heroin"]), ("kokain", ["kokain", "fentanyl", "heroin"])]
    finally:
        store.close()


def test_a_notice_from_a_feed_is_dated_by_the_local_day_it_was_published(tmp_path,
                                                                          smtp_server):
    """A warning in the notices' feed published at 00:30 on 1 April in Oslo (22:30 UTC
    on 31 March) is dated 1 April in its message, as the report and the rest of the
    message date things (before, its UTC day: 31 March)."""
    from tests.scenario import write_rss

    cfg = load_config(_config(tmp_path, smtp_server))
    write_rss(tmp_path / "od" / "varsler.html",
              [(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), "Sterk kokain i omløp")],
              base="https://overdosefare.example")
    _round(cfg, datetime(2026, 4, 1, 7, 0, tzinfo=UTC))
    texts = [m.get_body(("plain",)).get_content() for m in smtp_server.messages]
    assert len(texts) == 2, texts  # ops and the cocaine desk
    assert all("Sterk kokain i omløp (2026-04-01)" in t for t in texts), texts
    assert not any("2026-03-31" in t for t in texts)


def test_a_notice_is_held_back_from_a_desk_only_when_every_substance_routing_it_is(
        tmp_path, smtp_server):
    """Cocaine silenced: a notice naming cocaine and fentanyl still reaches ops (fentanyl
    routes it there too) and the opioid desk, not the cocaine desk, which hears of cocaine
    alone; the silence is judged again when the message goes. Both silenced: the notice
    is recorded, silenced, and sent to nobody."""
    cfg = load_config(_config(tmp_path, smtp_server))
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="kokain", kind=None, source=None, reason="festival",
                          until=T0 + timedelta(days=14), now=T0 - timedelta(days=1))
    finally:
        store.close()
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    inbox = _inbox(smtp_server)
    assert sorted(inbox) == ["opioid@example.org", "ops@example.org"], inbox
    assert all(len(v) == 1 for v in inbox.values()), inbox

    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="fentanyl", kind=None, source=None, reason="festival",
                          until=T0 + timedelta(days=14), now=T0)
    finally:
        store.close()
    both = ("v/4", "Fentanyl i kokain", "Fentanyl funnet i kokain.", T0 + timedelta(hours=1))
    _page(tmp_path, MIXED, both)
    _round(cfg, T0 + timedelta(hours=2))
    assert _inbox(smtp_server) == inbox
    store = Store.in_dir(cfg.state_dir)
    try:
        newest = store.alerts()[0]
        assert (newest["substances"], newest["status"], newest["deliveries"]) == (
            ["kokain", "fentanyl"], "silenced", []), newest
    finally:
        store.close()


def test_a_notice_silenced_for_one_desk_while_it_waits_stays_open_for_the_others(
        tmp_path, smtp_server):
    """A notice naming cocaine and fentanyl decided in quiet hours waits for the morning;
    cocaine is silenced in the night. In the morning ops and the opioid desk have it, the
    cocaine desk not, and the alert stays open: told, to be acknowledged, in `warnd
    status` and the console's open alerts (before, the cocaine desk's delivery, judged
    first, marked the whole alert silenced while the other desks still waited for it)."""
    from warnd.alerting import actions

    cfg = load_config(_config(tmp_path, smtp_server, alerting='quiet_hours = "17:00-08:00"'))
    night = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
    _page(tmp_path, (*MIXED[:3], night - timedelta(hours=1)))
    _round(cfg, night)
    assert _inbox(smtp_server) == {}
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="kokain", kind=None, source=None, reason="festival",
                          until=night + timedelta(days=14), now=night + timedelta(hours=1))
    finally:
        store.close()
    _round(cfg, datetime(2026, 3, 11, 7, 30, tzinfo=UTC))  # 08:30 in Oslo
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "opioid@example.org": 1}, inbox
    store = Store.in_dir(cfg.state_dir)
    try:
        (a,) = store.alerts()
        assert a["status"] == "open", a
        assert {d["target"]: d["status"] for d in a["deliveries"]} == {
            "ops": "delivered", "opioid-desk": "delivered", "cocaine-desk": "silenced"}
        assert actions.ack_alert(store, a["id"], who="kari", via="cli")
        assert store.alerts()[0]["status"] == "acked"
    finally:
        store.close()


def test_a_notice_naming_only_a_substance_taken_out_while_it_waits_is_not_sent(
        tmp_path, smtp_server, capsys):
    """Two notices decided in quiet hours wait for the morning: one naming fentanyl
    alone, one naming cocaine and fentanyl. Fentanyl is taken out of the config in the
    night (a reload). In the morning the fentanyl notice is sent to nobody, as for a mute
    of fentanyl: dropped, and `warnd outbox` says why; the other still goes to ops and
    the cocaine desk (not to the opioid desk, which only fentanyl routed it to). Put back
    the next day, fentanyl does not bring the notice held back after all, as after a
    mute. Before, the fentanyl notice went to ops and the opioid desk in the morning."""
    full = load_config(_config(tmp_path, smtp_server, alerting='quiet_hours = "17:00-08:00"'))
    cut = load_config(_config(tmp_path, smtp_server, alerting='quiet_hours = "17:00-08:00"',
                              without_fentanyl=True))
    assert "fentanyl" not in cut.substances
    night = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
    alone = ("v/2", "Fentanyl i omløp", "Det er funnet fentanyl i Bergen.",
             night - timedelta(hours=1))
    _page(tmp_path, alone, (*MIXED[:3], night - timedelta(hours=1)))
    _round(full, night)
    assert _inbox(smtp_server) == {}
    _round(cut, datetime(2026, 3, 11, 7, 30, tzinfo=UTC))  # 08:30 in Oslo
    inbox = _inbox(smtp_server)
    assert sorted(inbox) == ["kokain@example.org", "ops@example.org"], inbox
    assert all(len(v) == 1 and "kokain og fentanyl" in v[0] for v in inbox.values()), inbox
    assert main(["--config", str(cut.path), "outbox", "list", "--status", "dropped"]) == 0
    listed = capsys.readouterr().out
    why = 'not sent: substance "fentanyl" is no longer in the configuration'
    assert listed.count(why) == 2, listed  # ops and the opioid desk
    _round(full, datetime(2026, 3, 12, 7, 30, tzinfo=UTC))  # put back
    assert _inbox(smtp_server) == inbox
    store = Store.in_dir(full.state_dir)
    try:
        held = {(a["title"], d["target"]): d["status"] for a in store.alerts()
                for d in a["deliveries"]}
    finally:
        store.close()
    fentanyl = [s for (title, _), s in held.items() if "kokain" not in title]
    assert fentanyl == ["dropped", "dropped"], held


def test_an_edit_after_a_silence_ended_tells_only_the_desk_the_new_substance_brings(
        tmp_path, smtp_server):
    """Cocaine silenced for a day: the notice naming cocaine and fentanyl reaches ops and
    the opioid desk, not the cocaine desk. Two days later the silence has ended and the
    notice is edited to name heroin: the heroin desk is told, and no other desk. The
    cocaine desk, which a silence kept from the notice, is not told it because of an
    edit about heroin (before, it was, two days late, as news)."""
    cfg = load_config(_config(tmp_path, smtp_server))
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="kokain", kind=None, source=None, reason="festival",
                          until=T0 + timedelta(days=1), now=T0 - timedelta(hours=1))
    finally:
        store.close()
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    assert sorted(_inbox(smtp_server)) == ["opioid@example.org", "ops@example.org"]
    _page(tmp_path, (*MIXED[:2], "Det er funnet kokain blandet med fentanyl og heroin.",
                     MIXED[3]))
    _round(cfg, T0 + timedelta(days=2))
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "opioid@example.org": 1, "heroin@example.org": 1}, inbox
    assert "kokain, fentanyl og heroin" in inbox["heroin@example.org"][0]


def test_an_edit_tells_a_desk_the_new_substance_brings_that_a_silence_kept_it_from(
        tmp_path, smtp_server):
    """The cocaine desk hears of cocaine and of heroin. A notice naming cocaine and
    fentanyl waits out the night; cocaine is silenced, so in the morning it is held back
    from the cocaine desk. Edited at noon to name heroin, it is told to the heroin desk
    and to the cocaine desk, which heroin brings it to, naming all three (before, the
    desk counted as one that had the notice, and was not told)."""
    path = _config(tmp_path, smtp_server, alerting='quiet_hours = "17:00-08:00"')
    path.write_text(path.read_text(encoding="utf-8").replace(
        'substances = ["heroin"]\ntargets = ["heroin-desk"]',
        'substances = ["heroin"]\ntargets = ["heroin-desk", "cocaine-desk"]'),
        encoding="utf-8")
    cfg = load_config(path)
    night = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
    _page(tmp_path, (*MIXED[:3], night - timedelta(hours=1)))
    _round(cfg, night)
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="kokain", kind=None, source=None, reason="festival",
                          until=night + timedelta(days=14), now=night + timedelta(hours=1))
    finally:
        store.close()
    morning = datetime(2026, 3, 11, 7, 30, tzinfo=UTC)  # 08:30 in Oslo
    _round(cfg, morning)
    assert sorted(_inbox(smtp_server)) == ["opioid@example.org", "ops@example.org"]
    _page(tmp_path, (*MIXED[:2], "Det er funnet kokain blandet med fentanyl og heroin.",
                     night - timedelta(hours=1)))
    _round(cfg, morning + timedelta(hours=4))
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "opioid@example.org": 1, "heroin@example.org": 1,
        "kokain@example.org": 1}, inbox
    assert "kokain, fentanyl og heroin" in inbox["kokain@example.org"][0]


def test_a_muted_substance_holds_back_only_the_desks_it_alone_routes_to(tmp_path,
                                                                        smtp_server):
    """Fentanyl muted: the notice naming cocaine and fentanyl goes to ops and the cocaine
    desk, not to the opioid desk (only fentanyl routes there)."""
    cfg = load_config(_config(tmp_path, smtp_server, fentanyl_muted=True))
    assert cfg.substances["fentanyl"].muted
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    inbox = _inbox(smtp_server)
    assert sorted(inbox) == ["kokain@example.org", "ops@example.org"], inbox
    assert "kokain og fentanyl" in inbox["ops@example.org"][0]


def test_a_notice_stored_before_a_crash_is_told_once_naming_both(tmp_path, smtp_server):
    """A notice committed without its alert (a crash between the two commits) is told
    at the next poll, as one message naming both substances."""
    from feeds.base import Item

    cfg = load_config(_config(tmp_path, smtp_server))
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest("overdosefare", location="earlier", sha256=None, observations=(),
                     problems=(), now=T0 - timedelta(hours=1), items=[Item(
                         key="url:https://overdosefare.example/v/1", source="overdosefare",
                         published_at=MIXED[3], title=MIXED[1], link="https://overdosefare"
                         ".example/v/1", summary=MIXED[2], substances=("kokain", "fentanyl"),
                         kind="notice")])
    finally:
        store.close()
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "kokain@example.org": 1, "opioid@example.org": 1}, inbox
    assert "kokain og fentanyl" in inbox["ops@example.org"][0]


def test_an_edit_stored_before_a_crash_is_told_to_the_desk_it_brings(tmp_path, smtp_server):
    """A notice's edit naming heroin committed, then a crash before it was told: the
    next poll tells the heroin desk, once, and no desk that had the notice."""
    from feeds.base import Item

    cfg = load_config(_config(tmp_path, smtp_server))
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    text = "Det er funnet kokain blandet med fentanyl og heroin."
    store = Store.in_dir(cfg.state_dir)
    try:
        r = store.ingest("overdosefare", location="earlier", sha256=None, observations=(),
                         problems=(), now=T0 + timedelta(minutes=30), items=[Item(
                             key="url:https://overdosefare.example/v/1", source="overdosefare",
                             published_at=MIXED[3], title=MIXED[1],
                             link="https://overdosefare.example/v/1", summary=text,
                             substances=("kokain", "fentanyl", "heroin"), kind="notice")])
        key = "url:https://overdosefare.example/v/1"
        assert r["notices_renamed"] == [(key, key)]  # as parsed, as stored
    finally:
        store.close()
    _page(tmp_path, (*MIXED[:2], text, MIXED[3]))
    _round(cfg, T0 + timedelta(hours=1))
    _round(cfg, T0 + timedelta(hours=2))
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "kokain@example.org": 1, "opioid@example.org": 1,
        "heroin@example.org": 1}, inbox
    assert "kokain, fentanyl og heroin" in inbox["heroin@example.org"][0]


def test_a_store_with_notices_told_per_substance_tells_none_again(tmp_path, smtp_server):
    """A store made by a warnd that told a notice as one alert per substance it names:
    after the upgrade, that notice is not told again (read again with a new notice on
    the page, and by the catch-up of notices stored without an alert); the new one is."""
    from feeds.base import Item

    cfg = load_config(_config(tmp_path, smtp_server))
    key = "url:https://overdosefare.example/v/1"
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest("overdosefare", location="earlier", sha256=None, observations=(),
                     problems=(), now=T0 - timedelta(hours=1), items=[Item(
                         key=key, source="overdosefare", published_at=MIXED[3],
                         title=MIXED[1], link="https://overdosefare.example/v/1",
                         summary=MIXED[2], substances=("kokain", "fentanyl"), kind="notice")])
        for sub in ("kokain", "fentanyl"):  # as the older warnd wrote them
            store.add_alert({"dedupe_key": f"{sub}:notice:{key}", "substance": sub,
                             "source": "overdosefare", "kind": "notice",
                             "direction": "increase", "severity": "warning",
                             "decision": "open", "title": f"Ny advarsel: {sub} — {MIXED[1]}",
                             "body": "", "data": {"substance": sub, "kind": "notice"}},
                            [], now=T0 - timedelta(hours=1))
    finally:
        store.close()
    heroin = ("v/2", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
              T0 - timedelta(minutes=30))
    _page(tmp_path, MIXED, heroin)
    _round(cfg, T0)
    _round(cfg, T0 + timedelta(hours=1))
    assert _inbox(smtp_server) == {
        "heroin@example.org": ["Ny advarsel: heroin — Heroin med høy styrke"]}


def test_one_notice_is_read_under_each_substance_it_names(tmp_path, smtp_server, capsys):
    """The notice's one alert is listed under both substances (the console's substance
    pages and open counts, the report's "Alerts and warnings"), once in the digest, with
    both in `warnd alerts --json` (`substance` as before, `substances` beside it);
    acknowledged once, it is no longer open under either."""
    from warnd.alerting import actions, digest
    from warnd.report.tables import _period_alerts
    from warnd.web import data

    path = _config(tmp_path, smtp_server)
    cfg = load_config(path)
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    assert main(["--config", str(path), "alerts", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["substance"], row["substances"]) == ("kokain", ["kokain", "fentanyl"])
    aid = row["id"]
    store = Store.in_dir(cfg.state_dir)
    try:
        for sub in ("kokain", "fentanyl"):
            page = data.substance_page(cfg, store, sub)
            assert [m["id"] for m in page["messages"]] == [aid], sub
            period = (date(2026, 1, 1), date(2026, 6, 30))
            assert [a["id"] for a in _period_alerts(store, sub, period)] == [aid], sub
        assert _period_alerts(store, "heroin", period) == []
        counts = {r["substance"]: r["open_alerts"] for r in data.overview(cfg, store)["rows"]}
        assert (counts["kokain"], counts["fentanyl"], counts["heroin"]) == (1, 1, 0), counts
        dg = digest.build(cfg, store, end=T0 + timedelta(days=1), since=T0 - timedelta(days=1))
        assert [a["id"] for a in dg["changed"]] == [aid]
        assert actions.ack_alert(store, aid, who="kari", via="cli")
        counts = {r["substance"]: r["open_alerts"] for r in data.overview(cfg, store)["rows"]}
        assert (counts["kokain"], counts["fentanyl"]) == (0, 0), counts
    finally:
        store.close()


def test_the_console_names_both_and_its_silence_link_silences_both(tmp_path, smtp_server):
    """In the console (a real `warnd web` on loopback, httpx as the browser) the notice's
    alert links both substances in the list and on its page, whose silence form offers
    either; the message's "silence 14 days" link, confirmed, silences both (one alone
    would not hold the next such notice back)."""
    import re

    import httpx

    from tests.servers import free_port
    from tests.webkit import Console, warnd
    from warnd.alerting import links

    port = free_port()
    path = _config(tmp_path, smtp_server)
    path.write_text(path.read_text(encoding="utf-8") + f'\n[web]\nsecure_cookies = false\n'
                    f'base_url = "http://127.0.0.1:{port}"\n', encoding="utf-8")
    cfg = load_config(path)
    _page(tmp_path, MIXED)
    _round(cfg, T0)
    r = warnd(path, cfg.state_dir, "user", "add", "ola", "--role", "operator",
              "--password-stdin", stdin="ola-password-12\n")
    assert r.returncode == 0, r.stderr
    store = Store.in_dir(cfg.state_dir)
    try:
        (a,) = store.alerts()
        urls = links.action_links(store, f"http://127.0.0.1:{port}", a["id"])
    finally:
        store.close()
    console = Console(path, cfg.state_dir, port).start()
    try:
        def csrf(html: str) -> str:
            return re.search(r'name="csrf" value="([^"]+)"', html).group(1)

        with httpx.Client(base_url=console.url) as c:
            r = c.post("/login", data={"user": "ola", "password": "ola-password-12",
                                       "csrf": csrf(c.get("/login").text)})
            assert r.status_code == 303, r.text
            both = ('<a href="/substances/kokain">kokain</a>, '
                    '<a href="/substances/fentanyl">fentanyl</a>')
            assert both in c.get("/alerts").text
            page = c.get(f"/alerts/{a['id']}").text
            assert both in page
            assert ('<option value="kokain">kokain</option><option value="fentanyl">fentanyl'
                    '</option>') in page
            confirm = c.get(urls["silence"]).text
            assert "«kokain og fentanyl»" in confirm
            r = c.post(urls["silence"], data={"csrf": csrf(confirm)})
            assert r.status_code == 200, r.text
            c.post(urls["silence"], data={"csrf": csrf(confirm)})  # the link followed again
    finally:
        console.stop()
    store = Store.in_dir(cfg.state_dir)
    try:
        assert sorted(s["substance"] for s in store.silences(active_only=True)) == [
            "fentanyl", "kokain"]
    finally:
        store.close()


def test_a_word_added_to_a_substance_does_not_tell_a_notice_told_before_again(
        tmp_path, smtp_server):
    """A warning naming cocaine and "dop" was told to the cocaine desks. Heroin gets the
    slang word "dop" (a reload): the notices kept are matched again, and this one now
    names heroin too. It is counted under heroin, but the heroin desk is not told a
    warning of last week as news, as it is not told any other warning matched again."""
    text = "Det er funnet kokain i dop solgt i Bergen."
    notice = ("v/2", "Farlig kokain i omløp", text, T0 - timedelta(days=1))
    path = _config(tmp_path, smtp_server)
    _page(tmp_path, notice)
    _round(load_config(path), T0)
    assert {k: len(v) for k, v in _inbox(smtp_server).items()} == {
        "ops@example.org": 1, "kokain@example.org": 1}
    path.write_text(path.read_text(encoding="utf-8").replace(
        'names = ["heroin"]\n', 'names = ["heroin"]\nslang = ["dop"]\n'
        'slang_needs_context = false\n'), encoding="utf-8")
    cfg = load_config(path)
    for hours in (1, 2):
        _round(cfg, T0 + timedelta(hours=hours))
    assert {k: len(v) for k, v in _inbox(smtp_server).items()} == {
        "ops@example.org": 1, "kokain@example.org": 1}
    store = Store.in_dir(cfg.state_dir)
    try:
        assert {r["substance"] for r in store.q("SELECT substance FROM item_substances")} == {
            "kokain", "heroin"}
    finally:
        store.close()


def test_an_edit_a_silence_kept_from_a_desk_is_not_told_there_when_it_ends(tmp_path,
                                                                          smtp_server):
    """A notice naming cocaine at night waits for the morning for ops and the cocaine
    desk. Heroin is silenced for an hour; in that hour the notice is edited to name
    heroin, so the heroin desk is not told. The silence ends in the night: in the morning
    ops and the cocaine desk have the notice, and the heroin desk still not, as no
    reload changed the routes (before, the morning's dispatch added the heroin desk, as
    if the routes had been changed, and the silence's notice reached it after all)."""
    cfg = load_config(_config(tmp_path, smtp_server, alerting='quiet_hours = "17:00-08:00"'))
    night = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
    notice = ("v/2", "Kokain i omløp", "Det er funnet sterk kokain i Oslo.",
              night - timedelta(hours=1))
    _page(tmp_path, notice)
    _round(cfg, night)
    store = Store.in_dir(cfg.state_dir)
    try:
        store.add_silence(substance="heroin", kind=None, source=None, reason="festival",
                          until=night + timedelta(hours=2), now=night + timedelta(minutes=30))
    finally:
        store.close()
    _page(tmp_path, (*notice[:2], "Det er funnet sterk kokain og heroin i Oslo.", notice[3]))
    _round(cfg, night + timedelta(hours=1))
    assert _inbox(smtp_server) == {}
    _round(cfg, datetime(2026, 3, 11, 7, 30, tzinfo=UTC))  # 08:30 in Oslo
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {
        "ops@example.org": 1, "kokain@example.org": 1}, inbox
    assert "kokain og heroin" in inbox["ops@example.org"][0]
    store = Store.in_dir(cfg.state_dir)
    try:
        (a,) = store.alerts()
        assert "heroin-desk" not in {d["target"] for d in a["deliveries"]}, a["deliveries"]
    finally:
        store.close()


def test_an_edit_does_not_tell_the_desks_a_mute_kept_the_notice_from(tmp_path, smtp_server):
    """Fentanyl muted: a notice naming fentanyl is held back, told to nobody. The config
    is reloaded without the mute, and the notice is edited the next day to name heroin:
    the heroin desk is told, and neither ops nor the opioid desk, which the mute kept the
    notice from (before, the dispatch that sent the edit to the heroin desk added both,
    as if the routes had changed while it waited, and they had the day-old notice)."""
    cfg = load_config(_config(tmp_path, smtp_server, fentanyl_muted=True))
    notice = ("v/3", "Fentanyl i omløp", "Det er funnet fentanyl i Oslo.",
              T0 - timedelta(hours=2))
    _page(tmp_path, notice)
    _round(cfg, T0)
    assert _inbox(smtp_server) == {}
    cfg = load_config(_config(tmp_path, smtp_server))
    assert not cfg.substances["fentanyl"].muted
    _page(tmp_path, (*notice[:2], "Det er funnet fentanyl og heroin i Oslo.", notice[3]))
    _round(cfg, T0 + timedelta(days=1))
    inbox = _inbox(smtp_server)
    assert {k: len(v) for k, v in inbox.items()} == {"heroin@example.org": 1}, inbox
    assert "fentanyl og heroin" in inbox["heroin@example.org"][0]
