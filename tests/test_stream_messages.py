"""What recipients read, message after message: one substance's episode followed week
by week through the real decide and outbox on a real store, sent to a real SMTP server
and a Teams workflow stand-in, and read as each recipient gets it (subject, HTML, plain
text, card), in Norwegian and English."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.alerting_env import finding, make_config, seed_series, target
from tests.servers import wait_for
from tests.test_stream_delivery import D0, _period
from warnd.alerting import decide, outbox
from warnd.store import Store

#: Tuesdays at noon in Oslo
T0 = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)


def _language(cfg_path, lang: str):
    from warnd.config import load_config

    cfg_path.write_text(cfg_path.read_text().replace(
        'log_level = "DEBUG"', f'log_level = "DEBUG"\nlanguage = "{lang}"'))
    return load_config(cfg_path)


def _run(cfg, weeks) -> list[str]:
    """Week by week: ketamine's findings per source, each week's messages sent."""
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    told = []
    for k, per in enumerate(weeks):
        now = T0 + timedelta(weeks=k)
        told += [a["decision"] for a in _period(cfg, store, D0 + timedelta(weeks=k), per,
                                                 now=now)]
        outbox.dispatch_pending(cfg, store, now=now)
    return told


def _lab():
    return finding("lab", rel=0.5, category=1)


def _customs():
    return finding("customs", onset=date(2026, 6, 29), detected=date(2026, 7, 13), rel=1.8)


@pytest.mark.parametrize("lang", ["no", "en"])
def test_an_end_tells_the_rise_that_was_told(tmp_path, smtp_server, teams_server, lang):
    """The lab's small rise opens; customs agrees, and the substance's rise is told as a
    strong increase of two sources; the lab's episode ends first, then customs'. The end
    names what its recipients were told of — "Avsluttet: Sterk økning: ketamin — 2
    kilder", since the lab's onset, both sources as they were — and speaks of them in the
    past. Before, it told the end of customs' series alone: "Avsluttet: Liten økning:
    ketamin — 1 kilde", since customs' later onset, "1 av 1 kilde øker" in an end, and
    "ingen av kildene viser lenger liten økning" above customs' strong increase.
    The escalation says what grew beyond the opening (before, it did not: its reader
    had to compare it with the opening to find out). The end asks nothing of its reader:
    before, it said to acknowledge it (its alert is resolved at once: that does nothing)
    or to silence the substance for 14 days (which would hold back its next rise)."""
    make_config(tmp_path, target("mail", smtp_server.url())
                + target("teams", teams_server.url())
                + '\n[alerting]\nsend_resolved = true\n')
    cfg = _language(tmp_path / "config.toml", lang)
    both = {"lab": [_lab()], "customs": [_customs()]}
    weeks = [{"lab": [_lab()]}, both, {"customs": [_customs()]}] + [{}] * 8
    assert _run(cfg, weeks) == ["open", "escalate", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 3 and len(teams_server.payloads()) == 3,
             what="three emails and three cards")
    no = lang == "no"
    escalation, end = smtp_server.messages[1:]
    told = "Sterk økning: ketamin — 2 kilder" if no else "Strong increase: ketamin — 2 sources"
    assert escalation["Subject"] == ("Forverring: " if no else "Escalation: ") + told
    grew = ("Mer enn sist varslet: 2 kilder (før 1); sterk økning (før liten økning); "
            "største endring +180 % (før +50 %)." if no else
            "More than last told: 2 sources (before 1); strong increase (before small "
            "increase); largest change +180% (before +50%).")
    escalation_card = json.dumps(teams_server.payloads()[1], ensure_ascii=False)
    for body in (escalation.get_body(("plain",)).get_content(),
                 escalation.get_body(("html",)).get_content(), escalation_card):
        assert grew in " ".join(body.split())
    assert end["Subject"] == ("Avsluttet: " if no else "Ended: ") + told
    card = teams_server.payloads()[2]["attachments"][0]["content"]
    card_text = "\n".join(
        str(x.get("text", "")) for b in card["body"]
        for x in [b, *b.get("inlines", []), *b.get("facts", [])]) + json.dumps(
        [[f["title"], f["value"]] for b in card["body"] for f in b.get("facts", [])],
        ensure_ascii=False)
    for body in (end.get_body(("plain",)).get_content(),
                 end.get_body(("html",)).get_content(), card_text):
        if no:
            assert "2026-06-22" in body and "2 av 2 kilder økte" in body
            assert "ingen av kildene viser lenger sterk økning" in body
            assert "Kilder som viste økning" in body
            assert "øker" not in body and "Kilder som viser økning" not in body
        else:
            assert "2026-06-22" in body and "2 of 2 sources rose" in body
            assert "no source shows a strong increase any more" in body
            assert "Sources that showed an increase" in body
            assert "rise" not in body and "Sources showing" not in body
        for series in ("Lab: ", "Customs: "):
            assert series in body
        assert ("Ingenting å gjøre: episoden er over" if no else
                "Nothing to do: the episode is over") in body
        assert "silence add" not in body


def test_a_decrease_lists_its_sources_as_falling(tmp_path, smtp_server):
    """With ``alert_decreases`` the lab's fall is told and, months of quiet later, its end:
    the sources are headed "Kilder som viser nedgang", then "… viste nedgang". Before,
    a decrease listed its sources under "Kilder som viser økning"."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + '\n[detection]\nalert_decreases = true\n'
                      + '\n[alerting]\nsend_resolved = true\n')
    fall = finding("lab", rel=-0.6, category=-2, direction="decrease")
    assert _run(cfg, [{"lab": [fall]}] + [{}] * 6) == ["open", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    opened, ended = (m.get_body(("plain",)).get_content() for m in smtp_server.messages)
    assert "Kilder som viser nedgang:" in opened and "1 av 1 kilde synker" in opened
    assert "Kilder som viste nedgang:" in ended and "1 av 1 kilde sank" in ended
    assert "økning" not in opened + ended


def test_a_source_recovered_is_not_told_as_failing(tmp_path, smtp_server, teams_server):
    """The lab fails three polls in a row (told), then polls again an hour later (told,
    with ``send_resolved``). The recovery, by email and in Teams, says the source is
    well again and since when, not what the failure said. Before, its HTML and card
    repeated the failure — "0 mislykkede hentinger på rad. Siste feil …: HTTP 503" — and
    told the reader to check the source and the log, as if it still failed, at severity
    "advarsel", and said "Episoden er over: ingen av kildene viser lenger stabil"."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("teams", teams_server.url())
                      + '\n[alerting]\nsend_resolved = true\n')
    store = Store.in_dir(cfg.state_dir)
    for k in range(3):
        store.record_poll("lab", ok=False, error="HTTP 503", now=T0 + timedelta(minutes=k))
    assert decide.check_source_health(cfg, store, "lab", now=T0) is not None
    outbox.dispatch_pending(cfg, store, now=T0)
    later = T0 + timedelta(hours=1)
    store.record_poll("lab", ok=True, now=later)
    assert decide.check_source_health(cfg, store, "lab", now=later) is not None
    outbox.dispatch_pending(cfg, store, now=later)
    wait_for(lambda: len(smtp_server.messages) == 2 and len(teams_server.payloads()) == 2,
             what="two emails and two cards")
    failing, recovered = smtp_server.messages
    assert failing["Subject"] == "Kilde feiler: Lab"
    assert recovered["Subject"] == "Kilde i orden igjen: Lab"
    card = json.dumps(teams_server.payloads()[1], ensure_ascii=False)
    for body in (recovered.get_body(("plain",)).get_content(),
                 recovered.get_body(("html",)).get_content(), card):
        # since when, on the local clock (T0 + 1 h in Oslo), not the stored UTC time
        local = (later.astimezone(ZoneInfo("Europe/Oslo"))).strftime("%Y-%m-%d %H:%M %Z")
        assert f"Siste vellykkede henting: {local}" in body and later.isoformat() not in body
        assert "mislykkede hentinger" not in body and "HTTP 503" not in body
        assert "Sjekk kilden" not in body and "Episoden er over" not in body
        assert "advarsel" not in body
    failed_at = (T0 + timedelta(minutes=2)).astimezone(ZoneInfo("Europe/Oslo"))
    assert (f"3 mislykkede hentinger på rad. Siste feil ({failed_at:%Y-%m-%d %H:%M %Z}): "
            "HTTP 503") in failing.get_body(("plain",)).get_content()


def test_a_correction_withdraws_one_source_and_not_the_rise(tmp_path, smtp_server):
    """Week by week through the pipeline: the lab's rise opens, customs agrees (a
    strong increase of two sources), then customs revises its weeks back to the usual
    level. The correction says customs no longer shows an increase and to disregard what
    the alert said of customs — the lab's rise stands. Before, it said customs no longer
    showed a "liten økning" (it had been listed with a strong one) and "se bort fra det
    varselet": disregard the whole alert, the lab's rise with it."""
    import numpy as np

    from tests.scenario import noon_after_week, put_weekly
    from warnd.pipeline import Pipeline

    start, weeks = date(2023, 6, 5), 120
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    usual = {s: np.random.default_rng(i).poisson(5.0, weeks).astype(float)
             for i, s in enumerate(("lab", "customs"))}
    risen = {s: v.copy() for s, v in usual.items()}
    for i, v in enumerate(risen.values()):
        v[110:] = np.random.default_rng(10 + i).poisson(15.0, weeks - 110)
    told = []
    for w in range(109, weeks + 1):
        for source, v in (risen if w < weeks else {**risen, "customs": usual["customs"]}
                          ).items():
            put_weekly(cfg.state_dir, v[: min(w + 1, weeks)], start=start, source=source)
        pipe = Pipeline(cfg, clock=lambda w=w: noon_after_week(start, w))
        told += [(a["kind"], a["decision"]) for a in pipe.detect()]
        pipe.dispatch()
    assert [d for k, d in told if k == "trend"] == ["open", "escalate", "correct"]
    wait_for(lambda: len(smtp_server.messages) == len(told), what="every email")
    correction = smtp_server.messages[-1]
    assert correction["Subject"].startswith("Rettelse: ")
    # in the rise's thread: a reply to its opening (tests/test_stream_threads.py)
    opening = next(m for m, kd in zip(smtp_server.messages, told, strict=True)
                   if kd == ("trend", "open"))
    assert (correction["In-Reply-To"], correction["References"]) == (opening["Message-ID"],) * 2
    for body in (correction.get_body(("plain",)).get_content(),
                 correction.get_body(("html",)).get_content()):
        body = " ".join(body.split())
        assert ("viser Customs: antall per periode ikke lenger økning: se bort fra det "
                "varselet sa om denne kilden.") in body


def test_the_chart_shows_two_years_of_monthly_and_weekly_series_alike(tmp_path, smtp_server):
    """Ketamine rises at the monthly lab (nine years of months) and in customs' weekly
    table (three years of weeks); the email's chart shares one time axis. Each panel
    shows the last two years, so the weekly one is not squeezed into a corner. Before,
    each panel took its last 104 periods: two years of weeks, but more than eight years
    of months, and the shared axis spread over all of them."""
    from feeds.base import Observation
    from warnd.alerting.charts import WINDOW_DAYS, chart_panels

    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    months = [date(2017 + m // 12, 1 + m % 12, 1) for m in range(9 * 12 + 6)]  # to 2026-06
    store.ingest("lab", location="lab.csv", sha256=None, items=(), problems=(),
                 observations=[Observation(source="lab", substance="ketamin", period=p,
                                           value=float(20 + (i % 4) + (30 if i > 100 else 0)))
                               for i, p in enumerate(months)])
    seed_series(store, "customs", n=160, jump_at=150, start=date(2023, 8, 7))
    lab = finding("lab", onset=date(2026, 3, 1), detected=date(2026, 6, 1))
    customs = finding("customs", onset=date(2026, 6, 22), detected=date(2026, 7, 6))
    (alert,) = decide.enqueue_findings(cfg, store, "ketamin",
                                       [(lab, "open"), (customs, "open")], {}, now=T0)
    assert outbox.dispatch_pending(cfg, store, now=T0)["delivered"] == 1
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    (png,) = [p for p in smtp_server.messages[0].walk() if p.get_content_type() == "image/png"]
    assert png.get_content()[:4] == b"\x89PNG"
    panels = chart_panels(store, alert["data"], lang="no", config=cfg)
    names = [p[0] for p in panels]
    assert names == ["Customs: antall per periode", "Lab: antall per periode"]
    newest = max(p[1][-1] for p in panels)
    for _, periods, values, _, onset in panels:
        assert (newest - periods[0]).days <= WINDOW_DAYS and periods[0] < onset
        assert len(values) == len(periods)
    assert len(panels[0][1]) > 100 and 20 <= len(panels[1][1]) <= 25  # weeks, months


def test_an_end_leaves_out_a_source_taken_out_of_the_config(tmp_path, smtp_server):
    """As in the first test, but customs is taken out of the config after it agreed: the
    end, told when the lab's episode ends, does not list customs (its series is no
    longer judged), as no other message of the substance does once it is gone."""
    make_config(tmp_path, target("mail", smtp_server.url())
                + '\n[alerting]\nsend_resolved = true\n')
    cfg = _language(tmp_path / "config.toml", "no")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)
    both = {"lab": [_lab()], "customs": [_customs()]}
    told = []
    for k, per in enumerate([{"lab": [_lab()]}, both] + [{}] * 6):
        if k == 2:  # customs taken out: its episode no longer holds the rise open
            path = tmp_path / "config.toml"
            text = path.read_text()
            cut = text.index('[[sources]]\nname = "customs"')
            path.write_text(text[:cut] + text[text.index("[[sources]]", cut + 1):])
            from warnd.config import load_config

            cfg = load_config(path)
        now = T0 + timedelta(weeks=k)
        firing, states = [], {}
        for src in sorted(cfg.watched_sources() & {"lab", "customs"}):  # as the pipeline
            scope = f"series:{src}:ketamin"
            tr = decide.tracker_from_state(store.episode_state(scope),
                                           cfg.detection_params("ketamin", src))
            firing += [(f, a) for a, f in decide.tracker_update(
                tr, D0 + timedelta(weeks=k), per.get(src, [])) if a in decide.SEND_ACTIONS]
            states[scope] = decide.tracker_state(tr)
        told += [a["decision"] for a in decide.enqueue_findings(
            cfg, store, "ketamin", firing, states, now=now)]
        outbox.dispatch_pending(cfg, store, now=now)
    assert told == ["open", "escalate", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 3, what="three emails")
    end = smtp_server.messages[2]
    assert end["Subject"] == "Avsluttet: Sterk økning: ketamin — 1 kilde"
    assert "Customs" not in end.get_body(("plain",)).get_content()


def test_a_new_episode_months_later_ends_as_itself(tmp_path, smtp_server):
    """The rise of two sources is told and ends; half a year later the lab alone rises
    again and that ends too. The second episode's messages speak of it alone: opened as
    a small increase of one source since its own onset, and ended as such — not as the
    strong increase of two sources the first episode was."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + '\n[alerting]\nsend_resolved = true\n')
    both = {"lab": [_lab()], "customs": [_customs()]}
    again = finding("lab", rel=0.5, category=1, onset=date(2027, 1, 4),
                    detected=date(2027, 1, 18))
    weeks = [{"lab": [_lab()]}, both, {"customs": [_customs()]}] + [{}] * 24
    weeks += [{"lab": [again]}] * 2 + [{}] * 6
    assert _run(cfg, weeks) == ["open", "escalate", "resolve", "open", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 5, what="five emails")
    opened, ended = smtp_server.messages[3:]
    assert opened["Subject"] == "Liten økning: ketamin — 1 kilde"
    assert ended["Subject"] == "Avsluttet: Liten økning: ketamin — 1 kilde"
    body = ended.get_body(("plain",)).get_content()
    assert "Siden: 2027-01-04" in body and "1 av 1 kilde økte" in body
    assert "Customs" not in body and "2026-06-22" not in body


#: warnings go to the desk (email), everything to ops; one strong source is a warning
DESK_ROUTED = ('\n[[routes]]\nmin_severity = "warning"\ntargets = ["warn"]\n'
               '\n[[routes]]\ntargets = ["ops"]\n'
               '\n[alerting]\nchart = false\nsend_resolved = true\nexpire_after = "1h"\n'
               '\n[detection]\nmin_sources_for_strong = 1\n')
TOLD_ALL = "Avsluttet: Sterk økning: ketamin — 2 kilder"


def _by_to(messages) -> dict[str, list]:
    by: dict[str, list] = {}
    for m in messages:
        by.setdefault(m["To"], []).append(m)
    return by


def _bodies(msg) -> list[str]:
    return [" ".join(msg.get_body((part,)).get_content().split()) for part in ("plain", "html")]


def _desk_rise(cfg, store: Store) -> list[dict]:
    """Week by week, each week's messages sent: ketamine's rise opens small in the lab
    and customs (``info``), customs' episode ends, the lab alone grows strong
    (``warning``), then the lab's episode ends. The trend messages decided."""
    from tests.alerting_env import judge_period
    from tests.test_stream_first_messages import _lab

    for s in ("lab", "customs"):
        seed_series(store, s)
    told = []
    for k in range(12):
        now = T0 + timedelta(weeks=k)
        small = [_lab(k, rel=0.5, category=1)]
        found = ({"lab": small, "customs": [finding("customs", rel=0.4, category=1)]}
                 if k == 0 else {"lab": small} if k < 6 else {"lab": [_lab(k)]} if k < 8
                 else {})
        told += judge_period(cfg, store, D0 + timedelta(weeks=k), found, now=now)
        outbox.dispatch_pending(cfg, store, now=now)
    assert [(a["decision"], sorted(a["targets"])) for a in told] == [
        ("open", ["ops"]), ("escalate", ["desk", "ops"]), ("resolve", ["desk", "ops"])]
    return told


def test_a_desk_routed_warnings_only_is_told_the_end_of_the_rise_it_had(
        tmp_path, smtp_server):
    """The desk is routed warnings and above, ops everything. Ketamine's rise opens in
    the lab and customs, small (``info``): ops alone hears of it, "Liten økning: ketamin
    — 2 kilder". Customs' episode ends, and the lab alone grows strong (``warning``): the
    desk gets that escalation as the episode's opening, "Sterk økning: ketamin — 1
    kilde", naming the lab alone. The rise ends: ops hears the end of the rise it was
    told, both sources; the desk the end of the rise it was told, the lab alone, "1 av 1
    kilde økte". The alert is stored as decided (both sources). Before, the desk got
    "Avsluttet: Sterk økning: ketamin — 2 kilder", "2 av 2 kilder økte", naming customs,
    a source no message to it had named."""
    cfg = make_config(tmp_path, target("desk", smtp_server.url("desk@example.org"), '"warn"')
                      + target("ops", smtp_server.url("ops@example.org")), DESK_ROUTED)
    store = Store.in_dir(cfg.state_dir)
    _desk_rise(cfg, store)
    wait_for(lambda: len(smtp_server.messages) == 5, what="five emails")
    by = _by_to(smtp_server.messages)
    desk_first, desk_end = by["desk@example.org"]
    assert desk_first["Subject"] == "Sterk økning: ketamin — 1 kilde"
    assert desk_end["Subject"] == "Avsluttet: Sterk økning: ketamin — 1 kilde"
    for body in _bodies(desk_end):
        assert "1 av 1 kilde økte" in body and "Lab: " in body
        assert "Customs" not in body and "2 kilder" not in body
    ops_opening, _ops_esc, ops_end = by["ops@example.org"]
    assert ops_opening["Subject"] == "Liten økning: ketamin — 2 kilder"
    assert ops_end["Subject"] == TOLD_ALL
    for body in _bodies(ops_end):
        assert "2 av 2 kilder økte" in body and "Customs: " in body
    (stored,) = store.q("SELECT title, data FROM alerts WHERE decision='resolve'")
    assert stored["title"] == TOLD_ALL
    assert len(json.loads(stored["data"])["agree"]) == 2
    store.close()


def test_a_correction_is_no_more_severe_than_what_its_target_was_told():
    """A target had only the lab's small opening (``info``); the correction withdrawing
    the lab's series is stored as a ``warning`` (decided on what everyone was told). As
    that target was told the rise, the correction says "liten økning" and ``info``, the
    lab's figures as the opening gave them."""
    from warnd.alerting.render import as_told

    lab = {"series": "lab:k", "source": "lab", "category": 1, "detected_at": "2026-07-06"}
    opening = {"kind": "trend", "direction": "increase", "decision": "open",
               "severity": "info", "category": 1, "onset": "2026-06-22", "agree": [lab]}
    stored = {**opening, "decision": "correct", "severity": "warning", "category": 2,
              "agree": [{**lab, "category": 2, "detected_at": "2026-07-13"}]}
    told = as_told(stored, [opening])
    assert (told["severity"], told["category"], told["agree"]) == ("info", 1, [lab])
    assert stored["severity"] == "warning"
    assert as_told(stored, [opening, {**opening, "decision": "escalate",
                                      "severity": "critical", "category": 2}])[
        "severity"] == "warning"  # no stronger than the correction itself


def test_a_desk_s_digest_lists_the_end_as_the_desk_was_told_it(tmp_path, smtp_server):
    """As above, with a daily digest at 08:00 to the desk and to ops. The digest that
    lists the end lists it for the desk under the title the desk got, "Avsluttet: Sterk
    økning: ketamin — 1 kilde", and for ops as ops got it ("… — 2 kilder"). Before, the
    desk's digest listed the end as stored, naming two sources."""
    cfg = make_config(tmp_path, target("desk", smtp_server.url("desk@example.org"), '"warn"')
                      + target("ops", smtp_server.url("ops@example.org")), DESK_ROUTED
                      + '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\n'
                      'targets = ["desk", "ops"]\n')
    store = Store.in_dir(cfg.state_dir)
    end = _desk_rise(cfg, store)[-1]  # sent with the day's digest, which lists it
    n = len(store.q("SELECT 1 FROM deliveries WHERE status='delivered'"))
    wait_for(lambda: len(smtp_server.messages) == n, what="every email")
    listed = f"#{end['id']} {(T0 + timedelta(weeks=11)).date().isoformat()} "
    digests = {to: [m.get_body(("plain",)).get_content() for m in msgs
                    if m["Subject"].startswith("Dagsoversikt")]
               for to, msgs in _by_to(smtp_server.messages).items()}
    (desk,) = [t for t in digests["desk@example.org"] if listed in t]
    (ops,) = [t for t in digests["ops@example.org"] if listed in t]
    assert listed + "Avsluttet: Sterk økning: ketamin — 1 kilde" in desk
    assert listed + TOLD_ALL not in desk
    assert listed + TOLD_ALL in ops
    store.close()


def test_an_opening_queued_again_is_ended_as_it_was_told(tmp_path, smtp_server):
    """The mail relay is dead for the whole of ketamine's rise: the lab's small opening,
    customs' escalation to a strong rise of two sources and the end all fail to reach
    mail, while ops has each. The relay is back and an operator queues the opening again
    for mail: mail gets "Liten økning: ketamin — 1 kilde", then the end of that rise,
    "Avsluttet: Liten økning: ketamin — 1 kilde", the lab alone as told, "1 av 1 kilde
    økte", with the severity and the detection date of that opening ("Alvorlighet: info",
    "oppdaget 2026-07-06"). The relay defers the end's first attempt: the retry reads the
    same. Ops's end tells the rise it had, "Avsluttet: Sterk økning: ketamin — 2 kilder",
    "Alvorlighet: advarsel"; the end is stored as decided. Before, mail's end named
    customs and a strong rise, neither of which it was ever told, and then still showed
    the alert's own severity ("advarsel") and detection date (2026-07-13)."""
    from tests.alerting_env import judge_period
    from tests.servers import SmtpServer
    from tests.test_stream_first_messages import _DeferFirst, _lab

    ended = "Avsluttet: Liten økning: ketamin — 1 kilde"
    relay = SmtpServer()  # not started: nothing listens on its port
    relay.handler = _DeferFirst(ended)
    cfg = make_config(tmp_path, target("mail", relay.url("mail@example.org"))
                      + target("ops", smtp_server.url("ops@example.org")),
                      '\n[alerting]\nexpire_after = "1h"\nsend_resolved = true\n'
                      "chart = false\n")
    store = Store.in_dir(cfg.state_dir)
    try:
        for s in ("lab", "customs"):
            seed_series(store, s)
        told = []
        for k in range(9):  # opening, escalation, then weeks without a finding: the end
            now = T0 + timedelta(weeks=k)
            found = ({"lab": [_lab(0, rel=0.5, category=1)]} if k == 0 else
                     {"lab": [_lab(1)], "customs": [finding("customs")]} if k == 1 else {})
            told += judge_period(cfg, store, D0 + timedelta(weeks=k), found, now=now)
            outbox.dispatch_pending(cfg, store, now=now)
            outbox.dispatch_pending(cfg, store, now=now + timedelta(hours=2))
        opening, _esc, end_alert = told
        assert [a["decision"] for a in told] == ["open", "escalate", "resolve"]
        relay.start()
        later = now + timedelta(hours=3)
        assert outbox.retry_delivery(store, opening["id"], "mail", now=later) == 1
        counts = outbox.dispatch_pending(cfg, store, now=later)
        assert (counts["delivered"], counts["retrying"]) == (1, 1)  # the end deferred
        assert outbox.dispatch_pending(cfg, store, now=later + timedelta(minutes=2))[
            "delivered"] == 1
        wait_for(lambda: len(relay.messages) == 2 and len(smtp_server.messages) == 3,
                 what="two emails to mail, three to ops")
        first, end, retry = relay.handler.seen
        assert first["Subject"] == "Liten økning: ketamin — 1 kilde"
        assert (end["Subject"], retry["Subject"]) == (ended, ended)
        assert _bodies(end) == _bodies(retry)
        for body in _bodies(end):
            assert "1 av 1 kilde økte" in body and "Lab: " in body
            assert "Customs" not in body and "sterk økning" not in body
            assert "advarsel" not in body and "(oppdaget 2026-07-06)" in body
        plain, html = _bodies(end)
        assert "Alvorlighet: info" in plain and "Alvorlighet:</b> info" in html
        assert smtp_server.messages[-1]["Subject"] == TOLD_ALL
        plain, html = _bodies(smtp_server.messages[-1])
        assert "Alvorlighet: advarsel" in plain and "Alvorlighet:</b> advarsel" in html
        assert "(oppdaget 2026-07-13)" in plain and "(oppdaget 2026-07-13)" in html
        (row,) = store.q("SELECT data FROM alerts WHERE id=?", [end_alert["id"]])
        stored = json.loads(row["data"])
        assert (stored["severity"], stored["detected_at"]) == ("warning", "2026-07-13")
    finally:
        relay.stop()
        store.close()


def _told_weekly(cfg, store: Store, weeks: list[dict]) -> list[str]:
    """Week by week through decide and the outbox: each week's messages sent, the second
    week's (the escalation) dropped for mail before it goes; the decisions."""
    from tests.alerting_env import judge_period

    told = []
    for k, per in enumerate(weeks):
        now = T0 + timedelta(weeks=k)
        alerts = judge_period(cfg, store, D0 + timedelta(weeks=k), per, now=now)
        told += [a["decision"] for a in alerts]
        if k == 1:
            assert outbox.drop_delivery(store, alerts[0]["id"], "mail", now=now) == 1
        outbox.dispatch_pending(cfg, store, now=now)
    return told


#: how long the episodes below lasted: from the onset to the last week of the change
LASTED = "Varte 4 uker (2026-06-22 – 2026-07-20)"


def test_the_end_of_a_fall_tells_each_target_the_fall_it_was_told(tmp_path, smtp_server,
                                                                 teams_server):
    """With ``alert_decreases``: the lab's small fall opens (to mail and Teams), customs
    falls strongly too (an escalation, "advarsel"), which an operator drops for mail
    before it goes; the fall ends. Teams, which had both, is told "Avsluttet: Nedgang:
    ketamin — 2 kilder", a strong fall, "Alvorlighet: advarsel"; mail, which had the
    opening alone, "… — 1 kilde", the lab's small fall, "info", as a rise's end is told.
    Before, the end of a fall went as stored to both: the sources mail never heard of,
    and "Alvorlighet: info" under the strong fall Teams had been told as "advarsel".
    Each end says how long the fall lasted and how low it went as its reader was told
    it: mail the small fall of −30 % (week 28), Teams the strong one of −60 % (week 29).
    Before, an end said neither."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url())
                      + target("teams", teams_server.url()),
                      "\n[alerting]\nsend_resolved = true\nchart = false\n"
                      "\n[detection]\nalert_decreases = true\n")
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)

    def fall(src: str, w: int, rel: float, category: int) -> list:
        return [finding(src, detected=D0 + timedelta(weeks=w), direction="decrease",
                        rel=rel, category=category)]

    weeks = [{"lab": fall("lab", 0, -0.3, -1)},
             {"lab": fall("lab", 1, -0.6, -2), "customs": fall("customs", 1, -0.6, -2)},
             {"customs": fall("customs", 2, -0.6, -2)}] + [{}] * 8
    assert _told_weekly(cfg, store, weeks) == ["open", "escalate", "resolve"]
    wait_for(lambda: len(smtp_server.messages) == 2 and len(teams_server.payloads()) == 3,
             what="two emails and three cards")
    end = smtp_server.messages[1]
    assert end["Subject"] == "Avsluttet: Nedgang: ketamin — 1 kilde"
    for body in (end.get_body(("plain",)).get_content(),
                 end.get_body(("html",)).get_content()):
        assert "liten nedgang" in body and "1 av 1 kilde sank" in body
        assert "Customs" not in body and "sterk nedgang" not in body and "advarsel" not in body
        assert f"{LASTED}; lavest: liten nedgang, −30 % (uke 28)" in " ".join(body.split())
    card = json.dumps(teams_server.payloads()[2], ensure_ascii=False)
    assert f'"text": "{LASTED}; lavest: sterk nedgang, −60 % (uke 29)"' in card
    assert "Avsluttet: Nedgang: ketamin — 2 kilder" in card
    assert '"Vurdering", "value": "sterk nedgang"' in card
    assert '"Alvorlighet", "value": "advarsel"' in card
    store.close()


@pytest.mark.parametrize("lang", ["no", "en"])
def test_an_end_says_how_long_the_rise_lasted_and_how_high_it_went_as_told(
        tmp_path, smtp_server, teams_server, lang):
    """The lab's small rise opens (to mail and Teams); the lab and customs rise strongly
    the week after (an escalation, which an operator drops for mail before it goes);
    customs rises on a week more, then the rise ends. Each end says in one line how long
    the rise lasted, from its onset to its last rising week, and how high it went as its
    reader was told it: Teams the escalation's strong increase and +180 % (week 29),
    mail the opening's small increase and +50 % (week 28), never a figure it was not
    told; so does each target's daily digest that lists the end. The subjects are the
    ends' as before. Before, an end gave the onset and the figures last told, not how
    long the episode lasted nor its peak."""
    make_config(tmp_path, target("mail", smtp_server.url())
                + target("teams", teams_server.url()),
                "\n[alerting]\nsend_resolved = true\nchart = false\n"
                '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\n'
                'targets = ["mail", "teams"]\n')
    cfg = _language(tmp_path / "config.toml", lang)
    store = Store.in_dir(cfg.state_dir)
    for s in ("lab", "customs"):
        seed_series(store, s)

    def rise(src: str, w: int, rel: float, category: int) -> list:
        return [finding(src, detected=D0 + timedelta(weeks=w), rel=rel, category=category)]

    weeks = [{"lab": rise("lab", 0, 0.5, 1)},
             {"lab": rise("lab", 1, 1.8, 2), "customs": rise("customs", 1, 1.8, 2)},
             {"customs": rise("customs", 2, 1.2, 2)}] + [{}] * 8
    assert _told_weekly(cfg, store, weeks) == ["open", "escalate", "resolve"]
    no = lang == "no"
    digest = "Dagsoversikt" if no else "Daily digest"
    ended = "Avsluttet: " if no else "Ended: "

    def sent(to: list, subject: str) -> list:
        return [m for m in to if str(m["Subject"]).startswith(subject)]

    wait_for(lambda: len(sent(smtp_server.messages, ended)) == 1
             and any(ended in str(m) for m in sent(smtp_server.messages, digest)),
             what="the end and the digest listing it by email")
    told = ended + ("Sterk økning: ketamin — 2 kilder" if no else
                    "Strong increase: ketamin — 2 sources")

    def cards() -> list[str]:
        return [json.dumps(p, ensure_ascii=False) for p in teams_server.payloads()]

    wait_for(lambda: any(f'"text": "{told}"' in c for c in cards())
             and any(digest in c and told in c for c in cards()),
             what="the end and the digest listing it in Teams")
    lasted = (f"{LASTED}; høyest: " if no else
              "Lasted 4 weeks (2026-06-22 – 2026-07-20); at its highest: ")
    mail_peak = lasted + ("liten økning, +50 % (uke 28)" if no else
                          "small increase, +50% (week 28)")
    teams_peak = lasted + ("sterk økning, +180 % (uke 29)" if no else
                           "strong increase, +180% (week 29)")
    (end,) = sent(smtp_server.messages, ended)
    assert end["Subject"] == ended + ("Liten økning: ketamin — 1 kilde" if no else
                                      "Small increase: ketamin — 1 source")
    for body in _bodies(end):
        assert mail_peak in body and "180" not in body
    (listed,) = [m for m in sent(smtp_server.messages, digest) if ended in str(m)]
    text = listed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"{end['Subject']}\n    {mail_peak}\n" in text and "180" not in text
    (card,) = [c for c in cards() if f'"text": "{told}"' in c]
    assert f'"text": "{teams_peak}"' in card
    (listing,) = [c for c in cards() if digest in c and told in c]
    assert f"{told}\\n    {teams_peak}\\n" in listing
    store.close()
