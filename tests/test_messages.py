"""Messages for people: names and units, certainty in words, console links, the chart inline."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from PIL import Image

from tests.alerting_env import finding, make_config, seed_series, target
from tests.servers import wait_for
from warnd.alerting import decide, links, outbox
from warnd.alerting.names import (
    agreement,
    certainty,
    level,
    metric_words,
    num,
    p_value,
    percent,
    region_name,
)
from warnd.store import Store

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)
LABELS = """
[[sources]]
name = "lab"
label = "Laboratoriet"
kind = "count_table"
location = "lab/"
dimension = "use"
"""
WEB = '\n[web]\nbase_url = "https://warnd.example.org"\n'


def test_names_numbers_and_words():
    assert region_name("46") == "Vestland" and region_name("NO", "en") == "Norway"
    assert num(12.345, "no") == "12,3" and num(12.345, "en") == "12.3"
    assert num(1234.5, "no") == "1 234" and num(1234.5, "en") == "1,234"
    assert num(0.0578, "no") == "0,0578" and num(3.0, "en") == "3.0"
    assert percent(1.097, "no") == "+110 %" and percent(-0.25, "en") == "-25%"
    # a change rounds to whole per cent; one that rounds to nothing has no sign
    assert percent(0.00708, "no") == "+1 %" and percent(-0.004, "en") == "0%"
    assert percent(-12.5, "no") == "−1 250 %"
    # a rise from nothing, and a change not known
    assert percent(float("inf"), "no") == "+∞" and percent(float("nan"), "en") == "–"
    # one way to write a p-value, in messages, report and console
    assert p_value(0.0123, "no") == "0,012" and p_value(3e-8, "en") == "<0.001"
    assert p_value(None) == "–"
    assert certainty(3e-8) == "svært sikker" and certainty(0.004) == "sikker"
    assert certainty(0.2, "en") == "uncertain"
    assert agreement(4, 9) == "4 av 9 kilder øker"
    assert agreement(1, 3, "en") == "1 of 3 sources rises"
    # a share of tests in per cent, with each language's decimal mark and sign spacing
    assert level(0.0534, "no", share=True) == "5,3 %" and level(0.189, "en", share=True) == "18.9%"
    assert level(0.0534, "no") == "0,0534" and level(None, "en", share=True) == "–"
    assert metric_words("count", "en", share=True) == "share of tests positive"


def _sources(n):
    out = ""
    for i in range(n):
        out += (f'\n[[sources]]\nname = "src{i}"\nlabel = "Kilde nummer {i}"\n'
                f'kind = "count_table"\nlocation = "s{i}/"\ndimension = "use"\n'
                f'region = "46"\n')
    return out


def test_email_with_links_inline_chart_of_every_source_and_words(tmp_path, smtp_server):
    n = 6
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), WEB, sources=_sources(n))
    store = Store.in_dir(cfg.state_dir)
    for i in range(n):
        seed_series(store, f"src{i}")
    firing = [(finding(f"src{i}"), "open") for i in range(n)]
    created = decide.enqueue_findings(cfg, store, "ketamin", firing, {}, now=NOW)
    assert len(created) == 1
    aid = created[0]["id"]
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    msg = smtp_server.messages[0]
    related = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
    assert related, "the chart is inline (multipart/related), not only an attachment"
    parts = {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}
    png = parts["image/png"]
    cid = png["Content-ID"].strip("<>")
    assert png["Content-Disposition"].startswith("inline")
    html = parts["text/html"].get_content()
    assert f'src="cid:{cid}"' in html
    # every agreeing source has a panel: the picture grows with their number, 2x sharp
    with Image.open(store.path.parent / "charts" / f"alert-{aid}.png") as img:
        assert img.width == 1280 and img.height >= 200 * (0.9 + 1.45 * n) - 2
    # names, regions and units; certainty in words; no raw series keys
    assert "Kilde nummer 5: antall per periode" in html
    assert "src0:ketamin" not in html and "svært sikker" not in html
    assert "sikker" in html and f"{n} av {n} kilder øker" in html
    # action links, signed, to the console
    secret = store.secret_key(links.KEY_NAME)
    hrefs = [h.split('"')[0] for h in html.split('href="')[1:]]
    assert f"https://warnd.example.org/alerts/{aid}" in hrefs
    acts = [h for h in hrefs if h.startswith("https://warnd.example.org/a/")]
    read = [links.read(secret, h.rsplit("/", 1)[1], 3600)[0] for h in acts]
    assert {r["do"] for r in read} == {"ack", "silence"} and {r["a"] for r in read} == {aid}
    # the plain-text part carries the links too
    text = parts["text/plain"].get_content()
    assert f"https://warnd.example.org/alerts/{aid}" in text


def test_teams_card_has_open_ack_silence_buttons(tmp_path, teams_server):
    cfg = make_config(tmp_path, target("teams", teams_server.url()), WEB, sources=LABELS)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    created = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                      now=NOW)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(teams_server.payloads()) == 1, what="one card")
    card = teams_server.payloads()[0]["attachments"][0]["content"]
    acts = card["actions"]
    assert [a["type"] for a in acts] == ["Action.OpenUrl"] * 3
    assert [a["title"] for a in acts] == ["Åpne", "Kvitter", "Demp 14 dager"]
    assert acts[0]["url"] == f"https://warnd.example.org/alerts/{created[0]['id']}"
    text = json.dumps(card, ensure_ascii=False)
    assert "Laboratoriet: antall per periode" in text and "lab:ketamin" not in text


def test_an_end_carries_only_the_link_that_opens_it(tmp_path, teams_server):
    """The end of a rise (with ``send_resolved``): its Teams card has one button, to open
    it, and neither "Kvitter" (its alert is resolved: nothing to acknowledge) nor "Demp
    14 dager" (a silence from it would hold back the substance's next rise); the
    opening before it had all three."""
    cfg = make_config(tmp_path, target("teams", teams_server.url()),
                      WEB + "\n[alerting]\nsend_resolved = true\n", sources=LABELS)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    (opened,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")],
                                        {}, now=NOW)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    later = NOW + timedelta(weeks=20)
    (ended,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "resolve")],
                                       {}, now=later)
    assert ended["decision"] == "resolve"
    assert outbox.dispatch_pending(cfg, store, now=later)["delivered"] == 1
    wait_for(lambda: len(teams_server.payloads()) == 2, what="two cards")
    acts = [[a["title"] for a in p["attachments"][0]["content"]["actions"]]
            for p in teams_server.payloads()]
    assert acts == [["Åpne", "Kvitter", "Demp 14 dager"], ["Åpne"]]
    end = teams_server.payloads()[1]["attachments"][0]["content"]
    assert end["actions"][0]["url"] == f"https://warnd.example.org/alerts/{ended['id']}"


def test_title_and_body_agree_for_a_single_source(tmp_path, smtp_server):
    """One source with a strong rise: the title says a small increase, and the body says why."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), sources=LABELS)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    created = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                      now=NOW)
    a = created[0]
    assert a["title"].startswith("Liten økning")
    body = store.q("SELECT body FROM alerts WHERE id=?", [a["id"]])[0]["body"]
    assert "Samlet vurdering: liten økning — 1 av 1 kilde øker." in body
    assert "sterk økning for denne kilden" in body
    assert "en sterk økning samlet krever flere kilder som er enige" in body


def _seed_shares(store, source="lab", substance="ketamin", region="46"):
    """Weekly positives of 100 tests: about 5 % before, 19 % from week 24."""
    from datetime import date, timedelta

    from feeds.base import Observation

    start = date(2026, 1, 5)
    obs = [Observation(source=source, substance=substance, region=region,
                       period=start + timedelta(weeks=i), denominator=100.0,
                       value=float(5 + (i % 2) + (13 if i >= 24 else 0)))
           for i in range(27)]
    store.ingest(source, location=f"{source}.csv", sha256=None, observations=obs, items=(),
                 problems=())


def _share_finding(source="lab"):
    from dataclasses import replace

    return replace(finding(source), region="46", level_before=0.0534, level_after=0.189,
                   relative_change=0.189 / 0.0534 - 1)


def test_plain_text_part_is_written_by_warnd(tmp_path, smtp_server):
    """The text/plain alternative is warnd's own (email.txt.j2), not apprise's flattened
    HTML: title, words, names and units, the detection date, the links as bare URLs;
    the HTML part and the inline chart are still there. Fails if apprise stops letting
    us set the text part (send._install_hooks)."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), WEB, sources=LABELS
                      + _sources(1))
    store = Store.in_dir(cfg.state_dir)
    _seed_shares(store)
    seed_series(store, "src0")
    created = decide.enqueue_findings(
        cfg, store, "ketamin", [(_share_finding(), "open"), (finding("src0"), "open")], {},
        now=NOW)
    aid = created[0]["id"]
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    msg = smtp_server.messages[0]
    alt = [p for p in msg.walk() if p.get_content_type() == "multipart/alternative"]
    assert len(alt) == 1
    kinds = [p.get_content_type() for p in alt[0].iter_parts()]
    assert kinds == ["text/plain", "text/html"]  # plain first: the least preferred
    parts = {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}
    assert parts["image/png"]["Content-Disposition"].startswith("inline")
    html = parts["text/html"].get_content()
    assert "andel positive prøver" in html and "5,3 % → 18,9 %" in html
    text = parts["text/plain"].get_content()
    lines = text.splitlines()
    assert lines[0] == created[0]["title"] and set(lines[1]) == {"="}
    assert "Siden: 2026-06-22 (oppdaget 2026-07-06)" in lines
    assert "Kilder: 2 av 2 kilder øker" in lines
    # the links as bare URLs, one per line, with their words
    secret = store.secret_key(links.KEY_NAME)
    assert f"Åpne: https://warnd.example.org/alerts/{aid}" in lines
    ack = next(x for x in lines if x.startswith("Kvitter: "))
    silence = next(x for x in lines if x.startswith("Demp 14 dager: "))
    assert links.read(secret, ack.rsplit("/", 1)[1], 3600)[0] == {"a": aid, "do": "ack"}
    assert links.read(secret, silence.rsplit("/", 1)[1], 3600)[0]["do"] == "silence"
    # names with units, the share in per cent with a decimal comma, certainty in words
    assert "  - Laboratoriet, Vestland: andel positive prøver [bruk]" in lines
    assert ("    Siden 2026-06-22: 5,3 % → 18,9 % (+254 %); sterk økning for denne kilden; "
            "sikker") in lines
    assert "  - Kilde nummer 0: antall per periode [bruk]" in lines
    assert "lab:ketamin" not in text and "src0:ketamin" not in text
    assert "<" not in text.replace("<1", "")  # no markup left in the text part
    assert "warnd alerts ack" not in text  # the links, not a shell command
    assert lines[-1] == f"warnd alert #{aid}"


def test_plain_text_template_can_be_overridden(tmp_path, smtp_server):
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "email.txt.j2").write_text("Eget oppsett: {{ title }} ({{ agree | length }})\n",
                                      encoding="utf-8")
    cfg = make_config(tmp_path, target("mail", smtp_server.url()),
                      f'\n[alerting]\ntemplates_dir = "{tpl}"\n', sources=LABELS)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    created = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                      now=NOW)
    assert outbox.dispatch_pending(cfg, store, now=NOW)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    parts = {p.get_content_type(): p for p in smtp_server.messages[0].walk()
             if not p.is_multipart()}
    assert parts["text/plain"].get_content().strip() == f"Eget oppsett: {created[0]['title']} (1)"
    assert "Laboratoriet" in parts["text/html"].get_content()


def test_share_of_tests_in_per_cent_through_the_pipeline(tmp_path, smtp_server, teams_server,
                                                          monkeypatch):
    """The demo's lab source counts positives of so many tests: a run of the real
    pipeline tells its levels as a share in per cent, in the stored body, the email's
    two parts and the Teams card, never as a raw fraction or "antall per periode"."""
    import re

    from tests.webkit import demo_config
    from warnd.config import load_config
    from warnd.pipeline import Pipeline

    path = demo_config(tmp_path, base_url="https://warnd.example.org")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(target("mail", smtp_server.url()) + target("teams", teams_server.url()))
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    cfg = load_config(path)
    # the week after the demo's data end: its sources' data are not old then (a source with
    # old data is noted as such, not listed as without an increase)
    res = Pipeline(cfg, clock=lambda: datetime(2026, 3, 31, 10, tzinfo=UTC)).run_once()
    ketamin = next(a for a in res["alerts"] if a["substance"] == "ketamin"
                   and a["kind"] == "trend")
    lab = next(a for a in ketamin["data"]["agree"] if a["source"] == "lab-mbf")
    assert lab["share"] is True and 0 < lab["level_before"] < lab["level_after"] < 1
    before = f"{lab['level_before'] * 100:.1f}".replace(".", ",") + " %"
    after = f"{lab['level_after'] * 100:.1f}".replace(".", ",") + " %"
    said = f"{before} → {after}"
    name = "Laboratoriet, Vestland: andel positive prøver"
    assert f"{name}: nivå før {before} → etter {after}" in ketamin["body"]
    # a source's own unit for its counts ([[sources]] unit)
    assert "AMK Bergen (ambulanse), Vestland: utrykninger per uke" in ketamin["body"]
    # a media source's counts are its articles per week
    assert "Bergens Tidende, Vestland: saker per uke" in ketamin["body"]
    title = ketamin["title"]
    wait_for(lambda: any(title in str(m["Subject"]) for m in smtp_server.messages) and any(
        title in json.dumps(p, ensure_ascii=False) for p in teams_server.payloads()),
             what="the demo's alerts sent")
    mail = next(m for m in smtp_server.messages if title in str(m["Subject"]))
    parts = {p.get_content_type(): p for p in mail.walk() if not p.is_multipart()}
    for kind in ("text/plain", "text/html"):
        body = parts[kind].get_content()
        assert name in body and said in body, kind
        without_p = re.sub(r"p = (<|&lt;)?[\d,]+", "p = ", body)  # p-values are figures
        assert not re.search(r"0,0\d{2,}", without_p), kind  # no share as a raw fraction
    card = next(json.dumps(p, ensure_ascii=False) for p in teams_server.payloads()
                if title in json.dumps(p, ensure_ascii=False))
    assert name in card and said in card
    # the digest names the sources of open episodes by their labels, substances in full
    from datetime import time as dtime

    from warnd.alerting import digest

    st = Store.in_dir(cfg.state_dir)
    try:
        end = datetime.combine(date.fromisoformat(ketamin["data"]["detected_at"]),
                               dtime(23, 59), tzinfo=UTC)
        _, text = digest.render(digest.build(cfg, st, end=end), "no")
    finally:
        st.close()
    assert "Kokain (inkl. crack) " in text
    ket = next(x for x in text.splitlines() if x.startswith("  - Ketamin: siden"))
    assert "Laboratoriet" in ket and "lab-mbf" not in ket


def test_plain_text_lists_each_spike_on_a_line_of_its_own(tmp_path):
    """A rise told with one-off spikes of other sources: the plain-text part gives each
    spike a line of its own and keeps the next heading apart. Before, the spikes ran
    together on one line and the headlines' heading was glued to them (a block tag at
    the end of a template line took its line break)."""
    from warnd.alerting.render import email_text

    cfg = make_config(tmp_path, target(
        "mail", "mailto://127.0.0.1:1?from=w@example.org&to=a@example.org"),
        sources=_sources(3))
    store = Store.in_dir(cfg.state_dir)
    for s in ("src0", "src1", "src2"):
        seed_series(store, s)
    created = decide.enqueue_findings(
        cfg, store, "ketamin",
        [(finding("src0"), "open"),
         (finding("src1", kind="spike", onset=date(2026, 7, 6)), "open"),
         (finding("src2", kind="spike", onset=date(2026, 7, 6)), "open")], {}, now=NOW)
    alert = next(a for a in created if a["kind"] == "trend")
    data = json.loads(store.q("SELECT data FROM alerts WHERE id=?", [alert["id"]])[0]["data"])
    assert len(data["spikes"]) == 2
    lines = email_text(data, cfg, alert_id=alert["id"], title=alert["title"]).splitlines()
    at = lines.index("Enkeltstående topper (ikke regnet som trend):")
    spikes = lines[at + 1 : at + 3]
    assert [x.split(":")[0] for x in spikes] == ["  - Kilde nummer 1", "  - Kilde nummer 2"]
    assert all(x.endswith("6,0 → 16,8") for x in spikes), spikes
    assert lines[at + 3] == ""  # the next part starts on a line of its own


def test_sources_with_old_data_of_one_day_share_a_line(tmp_path):
    """The note on old data names the sources whose newest data is of one day in one
    line ("… fra Laboratoriet og Kilde nummer 0 er fra …"), and a source with data of
    another day in a line of its own. Before, a rise of five sources whose data had all
    stopped the same day opened with five notes alike but for the name."""
    from warnd.alerting.wording import stale_lines

    cfg = make_config(tmp_path, "", sources=LABELS + _sources(2))
    data = {"stale": [
        {"source": "lab", "period": "2026-03-23", "days": 254},
        {"source": "src1", "period": "2026-03-01", "days": 276},
        {"source": "src0", "period": "2026-03-23", "days": 254}]}
    assert stale_lines(data, cfg, "no") == [
        "Merk: nyeste data fra Laboratoriet og Kilde nummer 0 er fra 2026-03-23 "
        "(254 dager gamle).",
        "Merk: nyeste data fra Kilde nummer 1 er fra 2026-03-01 (276 dager gamle)."]
    three = {"stale": [{**s, "period": "2026-03-23", "days": 254} for s in data["stale"]]}
    assert stale_lines(three, cfg, "en") == [
        "Note: the newest data from Laboratoriet, Kilde nummer 1 and Kilde nummer 0 is "
        "from 2026-03-23 (254 days old)."]
