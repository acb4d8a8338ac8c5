"""Delivery to real servers: email through aiosmtpd, Teams through a local HTTPS workflow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.alerting_env import HOSTILE, finding, make_config, seed_headline, seed_series, target
from tests.servers import free_port, wait_for
from warnd.alerting import decide, outbox
from warnd.alerting.wording import render_text
from warnd.store import Store

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # a Tuesday, working hours


def _enqueue(cfg, store, sources=("lab", "customs"), now=NOW):
    firing = [(finding(s), "open") for s in sources]
    return decide.enqueue_findings(cfg, store, "ketamin", firing, {}, now=now)


def _parts(msg):
    return {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}


def test_email_has_subject_html_text_and_chart(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    seed_headline(store, HOSTILE, "javascript:alert(1)")
    seed_headline(store, "Mer ketamin i byen", "https://news.example/ketamin?a=1&b=2")
    created = _enqueue(cfg, store)
    assert len(created) == 1
    counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert counts["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    msg = smtp_server.messages[0]
    assert msg["Subject"] == "Sterk økning: ketamin — 2 kilder"
    parts = _parts(msg)
    assert "text/html" in parts and "text/plain" in parts and "image/png" in parts
    png = parts["image/png"].get_content()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    html = parts["text/html"].get_content()
    # evidence: sources by name (no raw series keys), change, onset, what next
    assert "lab:ketamin" not in html and "customs:ketamin" not in html
    for needle in (
        "Lab: antall per periode",
        "Customs: antall per periode",
        "+180 %",
        "2026-06-22",
        "sterk økning",
        f"warnd alerts ack {created[0]['id']}",
        "warnd silence add",
    ):
        assert needle in html, needle
    # the hostile headline is text, never markup or a link
    assert "<script>" not in html and 'evil.example/x">' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    assert 'href="https://news.example/ketamin?a=1&amp;b=2"' in html
    row = store.q("SELECT status, attempts FROM deliveries")[0]
    assert row == {"status": "delivered", "attempts": 1}


def test_teams_card_is_valid_escaped_and_has_no_chart(tmp_path, teams_server):
    cfg = make_config(tmp_path, target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    seed_headline(store, HOSTILE, "https://news.example/a")
    _enqueue(cfg, store)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(teams_server.requests) == 1, what="one workflow POST")
    req = teams_server.requests[0]
    assert "/workflows/wf0123abcd/triggers/manual/paths/invoke" in req["path"]
    assert len(req["body"]) < 28_000
    payload = json.loads(req["body"])
    assert payload["type"] == "message"
    att = payload["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    blocks = card["body"]
    assert blocks[0]["inlines"][0]["text"] == "Sterk økning: ketamin — 2 kilder"
    assert not any(b["type"] == "Image" for b in blocks)
    text = json.dumps(payload, ensure_ascii=False)
    assert "image/png" not in text and "base64" not in text
    # the hostile headline travels only as a TextRun (no Markdown, no links), verbatim
    runs = [i for b in blocks if b["type"] == "RichTextBlock" for i in b["inlines"]]
    hostile = [r for r in runs if "evil.example" in r["text"]]
    assert hostile and all(r["type"] == "TextRun" for r in hostile)
    assert "{{app_title}}" not in text  # apprise's template tokens cannot be injected
    assert not any("evil.example" in b.get("text", "") for b in blocks if b["type"] == "TextBlock")
    facts = next(b for b in blocks if b["type"] == "FactSet")["facts"]
    assert any(f["value"] == "sterk økning" for f in facts)


def test_dead_target_does_not_hold_back_live_one(tmp_path, teams_server):
    dead = f"mailto://127.0.0.1:{free_port()}?from=alerts@example.org&to=ops@example.org&mode=insecure&cto=2"
    cfg = make_config(tmp_path, target("mail", dead) + target("teams", teams_server.url()))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    counts = outbox.dispatch_pending(cfg, store, now=NOW)
    assert counts == {**counts, "delivered": 1, "retrying": 1}
    assert len(teams_server.requests) == 1
    rows = {r["target"]: r for r in store.q("SELECT * FROM deliveries")}
    assert rows["teams"]["status"] == "delivered"
    assert rows["mail"]["status"] == "pending" and rows["mail"]["attempts"] == 1
    assert "E-Mail: FAILURE" in rows["mail"]["last_error"]
    assert "refused" in rows["mail"]["last_error"]  # the reason, told apart
    # the next round only retries the failed target, once it is due
    assert outbox.dispatch_pending(cfg, store, now=NOW)["retrying"] == 0
    counts = outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=2))
    assert counts["retrying"] == 1 and counts["delivered"] == 0
    assert len(teams_server.requests) == 1


def test_smtp_down_then_back_delivers_exactly_once(tmp_path):
    from tests.servers import SmtpServer

    srv = SmtpServer()  # not started: connection refused
    cfg = make_config(tmp_path, target("mail", srv.url()))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    assert outbox.dispatch_pending(cfg, store, now=NOW)["retrying"] == 1
    row = store.q("SELECT * FROM deliveries")[0]
    assert row["status"] == "pending" and row["next_attempt_at"] == "2026-07-07T10:01:00+00:00"
    assert outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=1))["retrying"] == 1
    srv.start()
    try:
        t = NOW + timedelta(minutes=4)
        assert outbox.dispatch_pending(cfg, store, now=t)["delivered"] == 1
        wait_for(lambda: len(srv.messages) == 1, what="the email")
        for k in range(1, 4):  # later rounds send nothing more
            assert (
                outbox.dispatch_pending(cfg, store, now=t + timedelta(hours=k))["delivered"] == 0
            )
        assert len(srv.messages) == 1
        assert store.q("SELECT status, attempts FROM deliveries")[0] == {
            "status": "delivered",
            "attempts": 3,
        }
    finally:
        srv.stop()


def test_delivery_expires_and_is_reported(tmp_path, caplog):
    from warnd.cli import collect_status

    url = (
        f"mailto://127.0.0.1:{free_port()}?from=alerts@example.org&to=ops@example.org&mode=insecure"
    )
    cfg = make_config(tmp_path, target("mail", url), '\n[alerting]\nexpire_after = "1h"\n')
    store = Store.in_dir(cfg.state_dir)
    _enqueue(cfg, store, sources=("lab",))
    outbox.dispatch_pending(cfg, store, now=NOW)
    with caplog.at_level("ERROR", logger="warnd.alerting"):
        counts = outbox.dispatch_pending(cfg, store, now=NOW + timedelta(hours=2))
    assert counts["expired"] == 1
    assert any("expired after 2 attempts" in r.getMessage() for r in caplog.records)
    st = collect_status(cfg)
    assert st["healthy"] is False
    assert st["expired_deliveries"][0]["target"] == "mail"


def test_password_from_env_and_credentials_dir(tmp_path, monkeypatch):
    from warnd.alerting.send import target_url

    body = (
        target("env", "mailtos://alerts:{password}@smtp.example.org?to=ops@example.org")
        + 'password_env = "WARND_SMTP_PW"\n'
        + target("cred", "mailtos://alerts@smtp.example.org?to=ops@example.org&mode=ssl")
        + 'password_file = "smtp-password"\n'
    )
    cfg = make_config(tmp_path, body)
    monkeypatch.setenv("WARND_SMTP_PW", "s3cr/t&x")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    env_t, cred_t = cfg.targets
    assert target_url(env_t) == "mailtos://alerts:s3cr%2Ft%26x@smtp.example.org?to=ops@example.org"
    assert target_url(cred_t).startswith("mailtos://alerts:from-file@smtp.example.org")
    text = (tmp_path / "config.toml").read_text()
    assert "s3cr" not in text and "from-file" not in text


def test_test_notify_reports_each_target(tmp_path, smtp_server, teams_server, capsys):
    from warnd.cli import main

    dead = f"mailto://127.0.0.1:{free_port()}?from=a@example.org&to=o@example.org&cto=2"
    cfg = make_config(
        tmp_path,
        target("mail", smtp_server.url())
        + target("teams", teams_server.url())
        + target("dead", dead),
    )
    p = str(cfg.path)
    assert main(["--config", p, "test-notify", "--target", "mail", "--target", "teams"]) == 0
    out = capsys.readouterr().out
    assert "mail: accepted" in out and "teams: accepted" in out
    wait_for(lambda: len(smtp_server.messages) == 1, what="the test email")
    assert smtp_server.messages[0]["Subject"] == "warnd: testmelding"
    assert len(teams_server.requests) == 1
    assert main(["--config", p, "test-notify", "--json"]) == 1
    res = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert res["mail"]["accepted"] and res["teams"]["accepted"]
    assert not res["dead"]["accepted"] and res["dead"]["status"] == "FAILURE"
    assert main(["--config", p, "test-notify", smtp_server.url("x@example.org")]) == 0
    wait_for(lambda: len(smtp_server.messages) == 3, what="the URL test email")
    assert main(["--config", p, "test-notify", "--target", "nobody"]) == 78
    # without a store in the state directory nothing is recorded, and none is made
    assert not (cfg.state_dir / "warnd.sqlite").exists()


def test_pasted_https_workflow_url_gets_the_card(tmp_path, teams_server, microsoft_host):
    # the URL as Teams gives it, on a Microsoft host (resolved to the loopback sink)
    url = (
        f"https://{microsoft_host}:{teams_server.port}/powerautomate/automations/direct/"
        "workflows/abc123def/triggers/manual/paths/invoke?api-version=2022-03-01-preview"
        "&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Sig_1"
    )
    cfg = make_config(tmp_path, target("teams", url))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    (payload,) = teams_server.payloads()
    title = payload["attachments"][0]["content"]["body"][0]["inlines"][0]["text"]
    assert title == "Liten økning: ketamin — 1 kilde"  # one source: not corroborated
    (req,) = teams_server.requests
    assert req["path"].startswith("/powerautomate/automations/direct/workflows/abc123def/")
    assert req["headers"]["Host"].startswith(microsoft_host)


def test_one_target_with_two_recipients_is_one_delivery(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url("a@example.org,b@example.org")))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    assert store.q("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 1
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(smtp_server.handler.envelopes) == 2, what="two envelopes")
    assert sorted(e.rcpt_tos[0] for e in smtp_server.handler.envelopes) == [
        "a@example.org",
        "b@example.org",
    ]


def test_english_wording_and_template_override(tmp_path, smtp_server):
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "email.html.j2").write_text(
        "<p>CUSTOM {{ title }} {% for h in headlines %}{{ h.title }}{% endfor %}</p>"
    )
    cfg = make_config(
        tmp_path,
        target("mail", smtp_server.url()),
        '\n[alerting]\ntemplates_dir = "tpl"\nchart = false\n',
    )
    import tomllib

    data = tomllib.loads((tmp_path / "config.toml").read_text())
    assert data["alerting"]["templates_dir"] == "tpl"
    (tmp_path / "config.toml").write_text(
        (tmp_path / "config.toml")
        .read_text()
        .replace('log_level = "DEBUG"', 'log_level = "DEBUG"\nlanguage = "en"')
    )
    from warnd.config import load_config

    cfg = load_config(tmp_path / "config.toml")
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    seed_headline(store, "<b>bold</b>", "https://x.example/")
    _enqueue(cfg, store, sources=("lab",))
    outbox.dispatch_pending(cfg, store, now=NOW)
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    msg = smtp_server.messages[0]
    assert msg["Subject"] == "Small increase: ketamin — 1 source"
    assert not any(p.get_content_type() == "image/png" for p in msg.walk())
    html = msg.get_body(("html",)).get_content()
    assert "CUSTOM Small increase: ketamin" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_hostile_notice_and_source_health_reach_both_targets_escaped(
    tmp_path, smtp_server, teams_server
):
    from types import SimpleNamespace

    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()) + target("teams", teams_server.url())
    )
    store = Store.in_dir(cfg.state_dir)
    src = SimpleNamespace(name="overdosefare", region="")
    item = SimpleNamespace(
        key="n1",
        title=HOSTILE,
        link="https://overdosefare.example/varsel/1",
        published_at=datetime(2026, 7, 6, 9, 0, tzinfo=UTC),
        region="",
        summary='Piller <img src=x onerror="steal()"> selges som Xanor. [se her](http://evil.example/s)',
    )
    assert decide.enqueue_notice(cfg, store, src, item, "ketamin", now=NOW) is not None
    for _ in range(3):
        store.record_poll("lab", ok=False, error="HTTP 503 <b>down</b>", now=NOW)
    assert decide.check_source_health(cfg, store, "lab", now=NOW) is not None
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 4
    wait_for(
        lambda: len(smtp_server.messages) == 2 and len(teams_server.requests) == 2,
        what="two emails and two cards",
    )
    htmls = [m.get_body(("html",)).get_content() for m in smtp_server.messages]
    for html in htmls:
        assert "<script>" not in html and "<img" not in html and "<b>down" not in html
        assert 'href="http://evil' not in html
    assert any('href="https://overdosefare.example/varsel/1"' in h for h in htmls)
    assert any("&lt;img src=x onerror=" in h for h in htmls)
    for p in teams_server.payloads():
        blocks = p["attachments"][0]["content"]["body"]
        for b in blocks:
            if b["type"] == "TextBlock":
                assert "evil" not in b["text"] and "<" not in b["text"]
    titles = sorted(
        p["attachments"][0]["content"]["body"][0]["inlines"][0]["text"]
        for p in teams_server.payloads()
    )
    assert titles[0] == "Kilde feiler: Lab"
    assert titles[1].startswith("Ny advarsel: ketamin — ")


def test_resolve_message_wording(tmp_path, smtp_server):
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "resolve")], {}, now=NOW)
    rows = store.q("SELECT decision FROM alerts ORDER BY id")
    assert [r["decision"] for r in rows] == ["open"]  # send_resolved is off
    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()), "\n[alerting]\nsend_resolved = true\n"
    )
    decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "resolve")], {}, now=NOW)
    outbox.dispatch_pending(cfg, store, now=NOW)
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    ended = next(m for m in smtp_server.messages if m["Subject"].startswith("Avsluttet"))
    assert "ingen av kildene viser lenger liten økning" in ended.get_body(("html",)).get_content()


def test_hung_mail_relay_does_not_delay_teams(tmp_path, teams_server):
    import threading

    from tests.servers import BlackHole

    hole = BlackHole()
    url = f"mailto://127.0.0.1:{hole.port}?from=a@example.org&to=o@example.org&mode=insecure"
    cfg = make_config(tmp_path, target("a-mail", url) + target("teams", teams_server.url()))
    store_path = cfg.state_dir
    store = Store.in_dir(store_path)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    store.close()
    result = {}

    def run():
        s = Store.in_dir(store_path)
        result["counts"] = outbox.dispatch_pending(cfg, s, now=NOW)
        s.close()

    th = threading.Thread(target=run)
    th.start()
    try:
        assert hole.accepted.wait(20), "the mail relay was never contacted"
        # the mail send is hanging right now; Teams must get its card anyway
        wait_for(lambda: len(teams_server.requests) == 1, what="the card while mail hangs")
        assert th.is_alive()
    finally:
        hole.release()
        th.join(60)
    assert result["counts"]["delivered"] == 1 and result["counts"]["retrying"] == 1


def test_broken_template_override_falls_back_to_plain_text(tmp_path, smtp_server):
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "email.html.j2").write_text("{{ no_such_variable }}")
    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()), '\n[alerting]\ntemplates_dir = "tpl"\n'
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    _enqueue(cfg, store, sources=("lab",))
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "Kilder som viser økning:" in body and "Lab: antall per periode" in body


def test_teams_card_stays_under_the_size_limit(tmp_path):
    from warnd.alerting import render

    cfg = make_config(tmp_path, target("teams", "workflows://h/a/b/"))
    agree = [
        {
            "series": f"src{i}:ketamin",
            "source": f"src{i}",
            "dimension": "use",
            "onset": "2026-06-22",
            "level_before": 1,
            "level_after": 2,
            "relative_change": 1.0,
            "category": 2,
            "strength": 1,
            "p_value": 0.01,
        }
        for i in range(40)
    ]
    data = {
        "substance": "ketamin",
        "label": "ketamin",
        "kind": "trend",
        "decision": "open",
        "severity": "critical",
        "category": 2,
        "onset": "2026-06-22",
        "agree": agree,
        "disagree": [f"other{i}:ketamin:" + "x" * 200 for i in range(100)],
        "headlines": [
            {
                "title": "Æ" * 3000,
                "link": "https://x.example/" + "y" * 2000,
                "published_at": "2026-07-01",
            }
        ]
        * 5,
    }
    card = render.teams_card(data, cfg, alert_id=1, title="t")
    assert len(card.encode()) <= render.MAX_CARD_BYTES
    body = json.loads(card)["attachments"][0]["content"]["body"]
    assert body[0]["inlines"][0]["text"] == "t"


def test_spike_during_a_rise_is_told_in_the_trend_message(tmp_path, smtp_server, teams_server):
    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()) + target("teams", teams_server.url())
    )
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    firing = [(finding("lab"), "open"), (finding("customs", kind="spike", rel=3.0), "open")]
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", firing, {}, now=NOW)
    assert a["kind"] == "trend" and [s["series"] for s in a["data"]["spikes"]] == [
        "customs:ketamin"
    ]
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 2
    wait_for(
        lambda: len(smtp_server.messages) == 1 and len(teams_server.requests) == 1,
        what="one email and one card",
    )
    html = smtp_server.messages[0].get_body(("html",)).get_content()
    assert "Enkeltstående topper" in html and "Customs: antall per periode 2026-07-06" in html
    card = json.dumps(teams_server.payloads()[0], ensure_ascii=False)
    assert "Enkeltstående topper" in card


def test_backtest_never_sends(tmp_path, smtp_server, root):
    from warnd.cli import main

    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    rc = main(["--config", str(cfg.path), "backtest", "--observations",
               str(root / "examples" / "observations.csv"), "--json"])
    assert rc == 0
    assert smtp_server.messages == []
    assert not (cfg.state_dir / "warnd.sqlite").exists()  # no outbox either


def test_a_peak_usual_for_the_time_of_year_is_said(tmp_path, smtp_server, teams_server):
    # a spike judged against the peak its week shows every year (New Year): the
    # expected level holds that peak, and the message says so, with its size
    from dataclasses import replace

    cfg = make_config(
        tmp_path, target("mail", smtp_server.url()) + target("teams", teams_server.url())
    )
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    spike = replace(finding("lab", kind="spike", rel=3.0), evidence={"recurring_factor": 2.4})
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(spike, "open")], {}, now=NOW)
    assert a["kind"] == "spike" and a["data"]["agree"][0]["usual_peak"] == 2.4
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 2
    wait_for(
        lambda: len(smtp_server.messages) == 1 and len(teams_server.requests) == 1,
        what="one email and one card",
    )
    said = "forventet med den vanlige toppen på denne tiden av året (2,4 × grunnlinjen)"
    msg = smtp_server.messages[0]
    assert said in msg.get_body(("html",)).get_content()
    assert said in msg.get_body(("plain",)).get_content()
    assert said in json.dumps(teams_server.payloads()[0], ensure_ascii=False)
    # a spike in any other week says nothing of the kind
    plain = decide._finding_dict(finding("lab", kind="spike", rel=3.0))
    assert "usual_peak" not in plain
    # an open episode's finding, stored as a dict and read back, keeps it
    back = decide.finding_from_dict(decide._finding_dict(spike))
    assert back.evidence == {"recurring_factor": 2.4}
    assert decide.finding_from_dict(plain).evidence == {}
    # a trend says in how many periods of its window the usual peak was expected
    trend = replace(finding("lab"), evidence={"usual_peak_periods": 3, "observed_periods": 8})
    data = {**a["data"], "kind": "trend", "agree": [decide._finding_dict(trend)]}
    _, text = render_text(data, "en", 1)
    assert "expected with this time of year's usual peak in 3 of its 8 periods" in text
    assert decide.finding_from_dict(decide._finding_dict(trend)).evidence == trend.evidence


def test_a_failed_send_tells_whether_the_message_can_have_reached_the_target(teams_server):
    """Sent to real servers: a failure shows that the message did not reach the target
    (``unsent``) only when the connection was refused, or the server refused it (an SMTP
    error reply for a message to one address, an HTTP 4xx); not after a timeout, a
    connection dropped once the message was read, an HTTP 5xx, nor an SMTP refusal of
    the second of two addresses (the first took it)."""
    from tests.servers import BlackHole, SmtpServer, _Handler
    from warnd.alerting.send import send

    class Relay(_Handler):
        def __init__(self, reply: str) -> None:
            super().__init__()
            self.reply = reply

        async def handle_RCPT(self, server, session, envelope, address, options):
            if self.reply.startswith("550") and address.startswith("b@"):
                return self.reply
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            if self.reply == "drop":
                server.transport.close()
            elif not self.reply.startswith("550"):
                return self.reply
            return await super().handle_DATA(server, session, envelope)

    def mail(reply: str | None, to: str = "a@example.org") -> object:
        relay = SmtpServer()
        if reply is None:  # nothing listens on its port
            return send(relay.url(to), title="t", body="b", timeout=5)
        relay.handler = Relay(reply)
        relay.start()
        try:
            return send(relay.url(to), title="t", body="b", timeout=5)
        finally:
            relay.stop()

    def card(status: int) -> object:
        teams_server.status = status
        return send(teams_server.url(), title="t", body="b", timeout=5)

    hole = BlackHole()
    try:
        hung = send(f"mailto://127.0.0.1:{hole.port}?from=a@example.org&to=o@example.org"
                    "&mode=insecure&cto=1", title="t", body="b", timeout=5)
    finally:
        hole.release()
    outcomes = {
        "refused": mail(None), "451": mail("451 4.3.0 try again later"),
        "dropped": mail("drop"), "second refused": mail("550 no such user",
                                                        "a@example.org,b@example.org"),
        "hung": hung, "HTTP 400": card(400), "HTTP 429": card(429), "HTTP 502": card(502),
    }
    assert not any(r.ok for r in outcomes.values())
    assert {k: r.unsent for k, r in outcomes.items()} == {
        "refused": True, "451": True, "dropped": False, "second refused": False,
        "hung": False, "HTTP 400": True, "HTTP 429": True, "HTTP 502": False}
