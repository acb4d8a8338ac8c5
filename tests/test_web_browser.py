"""The console in a real browser: Debian's chromium (Playwright) against ``warnd web``."""

from __future__ import annotations

import re

import httpx

from tests.servers import wait_for
from tests.webkit import OPERATOR, VIEWER, demo_console, login  # noqa: F401
from warnd.alerting import links
from warnd.store import Store


def _store(state):
    return Store(state / "warnd.sqlite")


def test_login_overview_and_substance_charts(demo_console, browser):
    console, _, _, _ = demo_console
    page = login(browser, console, OPERATOR)
    row = page.locator("table.overview tr", has_text="Kokain (inkl. crack)")
    assert "sterk økning" in row.inner_text()
    assert row.locator("svg.spark polyline").count() >= 3
    heroin = page.locator("table.overview tr", has_text="Heroin").inner_text()
    assert "stabil" in heroin
    page.click("text=Kokain (inkl. crack)")
    page.wait_for_url(re.compile(r".*/substances/kokain$"))
    total = page.locator("figure.chart").count()
    assert total >= 5
    wait_for(lambda: page.locator("figure.chart.drawn, figure.chart.failed").count() == total,
             timeout=60, what="every chart drawn")
    assert page.locator("figure.chart.failed").count() == 0
    drawn = page.locator("figure.chart.drawn")
    pts = [int(drawn.nth(i).get_attribute("data-points")) for i in range(drawn.count())]
    assert min(pts) >= 10 and max(pts) > 150, pts
    assert page.locator("figure.chart canvas").count() == drawn.count()
    caption = page.locator("figure.chart figcaption").first.inner_text()
    assert "Vestland" in caption or "hele landet" in caption
    assert "kokain:46" not in page.content()  # no raw series keys
    # hovering shows a date and a value with a decimal comma in the legend
    plot = drawn.first.locator(".u-over")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] * 0.9, "y": box["height"] / 2})
    legend = drawn.first.locator(".u-legend")
    wait_for(lambda: re.search(r"20\d\d-\d\d-\d\d", legend.inner_text()), what="hover date")
    assert re.search(r"\d,\d", legend.inner_text()), legend.inner_text()
    assert page.errors == []


def test_operator_acks_and_silences_recorded_in_the_store(demo_console, browser):
    console, _, state, _ = demo_console
    page = login(browser, console, OPERATOR)
    page.goto("/alerts?state=open")
    row = page.locator("tr#alert-1")
    row.locator("button[name=ack]").click()
    page.wait_for_load_state()
    store = _store(state)
    try:
        a = store.q("SELECT status, acked_by, acked_at FROM alerts WHERE id=1")[0]
        assert a["status"] == "acked" and a["acked_by"] == OPERATOR[0] and a["acked_at"]
        act = store.q("SELECT who, via, action FROM actions WHERE alert_id=1")
        assert act == [{"who": "ola", "via": "web", "action": "ack"}]
        # silence a substance with duration and reason
        page.goto("/alerts")
        form = page.locator("form.silence-form")
        form.locator("select[name=substance]").select_option("heroin")
        form.locator("input[name=duration]").fill("3d")
        form.locator("input[name=reason]").fill("kjent <sak> hos politiet")
        form.locator("button").click()
        page.wait_for_load_state()
        s = store.q("SELECT * FROM silences WHERE substance='heroin'")
        assert len(s) == 1 and s[0]["created_by"] == "ola"
        assert s[0]["reason"] == "kjent <sak> hos politiet"
        assert "kjent <sak> hos politiet" in page.locator(f"tr#silence-{s[0]['id']}").inner_text()
        # and end it
        page.locator(f"tr#silence-{s[0]['id']} button").click()
        page.wait_for_load_state()
        assert store.q("SELECT expired_at FROM silences WHERE id=?", [s[0]["id"]])[0]["expired_at"]
        whats = [r["action"] for r in store.q("SELECT action FROM actions ORDER BY id")]
        assert whats[-2:] == ["silence", "expire_silence"]
    finally:
        store.close()
    assert page.errors == []


def test_signed_action_link_confirms_before_acting(demo_console, browser):
    console, _, state, _ = demo_console
    store = _store(state)
    try:
        urls = links.action_links(store, console.url, 2)
        assert store.q("SELECT status FROM alerts WHERE id=2")[0]["status"] == "open"
        # a mail scanner's GET (no session, no browser) acts on nothing
        r = httpx.get(urls["ack"], follow_redirects=True)
        assert r.status_code == 200 and "/login" in str(r.url)
        page = login(browser, console, OPERATOR)
        page.goto(urls["ack"])
        assert "Kvittere for varsel #2" in page.locator("p.question").inner_text()
        assert store.q("SELECT status FROM alerts WHERE id=2")[0]["status"] == "open"
        page.click("button.primary")
        page.wait_for_load_state()
        assert "kvittert av ola" in page.locator("p.message").inner_text()
        a = store.q("SELECT status, acked_by FROM alerts WHERE id=2")[0]
        assert a == {"status": "acked", "acked_by": "ola"}
        assert store.q("SELECT via FROM actions WHERE alert_id=2 AND action='ack'") == [
            {"via": "link"}]
        # the silence link: confirmation, then a 14-day silence of the substance
        page.goto(urls["silence"])
        assert "14 dager" in page.locator("p.question").inner_text()
        page.click("button.primary")
        page.wait_for_load_state()
        s = store.q("SELECT substance, created_by, created_at, until FROM silences "
                    "WHERE substance='kokain'")
        assert len(s) == 1 and s[0]["created_by"] == "ola"
        # a tampered link is refused
        page.goto(urls["ack"][:-3] + "xyz")
        assert "ugyldig" in page.locator("p.message").inner_text()
    finally:
        store.close()


def test_viewer_cannot_act(demo_console, browser):
    console, _, state, _ = demo_console
    page = login(browser, console, VIEWER)
    page.goto("/alerts")
    assert page.locator("button[name=ack]").count() == 0
    assert page.locator("form.silence-form").count() == 0
    csrf = page.locator("header form input[name=csrf]").get_attribute("value")
    store = _store(state)
    try:
        before = store.q("SELECT id, status FROM alerts ORDER BY id")
        n_sil = len(store.q("SELECT id FROM silences"))
        r = page.request.post(console.url + "/alerts/1/ack", form={"csrf": csrf})
        assert r.status == 403
        r = page.request.post(console.url + "/silences", form={
            "csrf": csrf, "substance": "xanor", "duration": "1d", "reason": "x"})
        assert r.status == 403
        url = links.action_links(store, console.url, 1)["ack"]
        page.goto(url)
        assert page.locator("button.primary").count() == 0
        r = page.request.post(url, form={"csrf": csrf})
        assert r.status == 403
        assert store.q("SELECT id, status FROM alerts ORDER BY id") == before
        assert len(store.q("SELECT id FROM silences")) == n_sil
    finally:
        store.close()


def test_post_without_csrf_token_is_refused(demo_console, browser):
    console, _, state, _ = demo_console
    page = login(browser, console, OPERATOR)
    r = page.request.post(console.url + "/silences", form={
        "substance": "xanor", "duration": "1d", "reason": "no token"})
    assert r.status == 403
    store = _store(state)
    try:
        assert not store.q("SELECT 1 FROM silences WHERE reason='no token'")
    finally:
        store.close()


def test_pages_render_and_escape_feed_text(demo_console, browser):
    console, _, state, _ = demo_console
    store = _store(state)
    try:
        with store.write() as db:
            db.execute("INSERT INTO items (key, source, kind, published_at, week, title, link, "
                       "first_seen_at) VALUES ('x1', 'media-bt', 'article', "
                       "'2026-03-30T10:00:00+00:00', '2026-03-30', "
                       "'<img src=x onerror=alert(1)>Kokain<script>alert(2)</script>', "
                       "'javascript:alert(3)', '2026-03-30T10:00:00+00:00')")
            db.execute("INSERT INTO item_substances VALUES ('x1', 'kokain')")
    finally:
        store.close()
    page = login(browser, console, OPERATOR)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/substances/kokain")
    li = page.locator("ul.headlines li", has_text="Kokain<script>")
    assert "<img src=x onerror=alert(1)>" in li.inner_text()
    assert li.locator("a").count() == 0  # a javascript: link is shown as text only
    for path, text in (("/sources", "Laboratoriet"),
                       ("/outbox", "Utboks"), ("/alerts/1", "#1")):
        page.goto(path)
        assert text.lower() in page.content().lower(), path
    assert dialogs == [] and page.errors == []


def test_api_tokens_and_roles(demo_console):
    console, _, state, tokens = demo_console
    api = console.url + "/api/v1"
    assert httpx.get(api + "/alerts").status_code == 401
    assert httpx.get(api + "/alerts", headers={"Authorization": "Bearer wt_nope"}
                     ).status_code == 401
    assert httpx.post(api + "/alerts/1/ack").status_code == 401
    assert httpx.get(api + "/substances").status_code == 401
    v = {"Authorization": f"Bearer {tokens['viewer']}"}
    o = {"Authorization": f"Bearer {tokens['operator']}"}
    r = httpx.get(api + "/alerts", headers=v)
    assert r.status_code == 200 and {a["id"] for a in r.json()} >= {1, 2}
    subs = httpx.get(api + "/substances", headers=v).json()
    kokain = next(s for s in subs["rows"] if s["substance"] == "kokain")
    assert kokain["category"] == 2 and kokain["by_dimension"]["use"] > 0
    assert httpx.post(api + "/alerts/1/ack", headers=v).status_code == 403
    assert httpx.post(api + "/silences", headers=v, json={}).status_code == 403
    r = httpx.post(api + "/silences", headers=o, json={
        "substance": "xanor", "duration": "2d", "reason": "script test"})
    assert r.status_code == 201 and r.json()["created_by"] == "token:script-operator"
    assert httpx.post(api + "/silences", headers=o, json={
        "substance": "nope", "duration": "2d", "reason": "x"}).status_code == 400
    listed = httpx.get(api + "/silences", headers=v).json()
    assert any(s["reason"] == "script test" for s in listed)
    store = _store(state)
    try:
        with store.write() as db:  # a fresh open alert to acknowledge
            db.execute("INSERT INTO alerts (dedupe_key, substance, kind, severity, decision, "
                       "title, body, data, created_at) VALUES ('api-test', 'xanor', 'trend', "
                       "'warning', 'open', 't', 'b', '{}', '2026-03-30T00:00:00+00:00')")
        aid = store.q("SELECT id FROM alerts WHERE dedupe_key='api-test'")[0]["id"]
        r = httpx.post(f"{api}/alerts/{aid}/ack", headers=o)
        assert r.status_code == 200 and r.json()["acked_by"] == "token:script-operator"
        assert store.q("SELECT via FROM actions WHERE alert_id=?", [aid]) == [{"via": "api"}]
    finally:
        store.close()


def test_login_is_rate_limited(demo_console):
    console, _, _, _ = demo_console
    with httpx.Client(base_url=console.url) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        codes = [c.post("/login", data={"user": "kari", "password": "wrong-password",
                                        "csrf": token}).status_code for _ in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429
        # now even the right password is refused for a while
        r = c.post("/login", data={"user": "kari", "password": VIEWER[1], "csrf": token})
        assert r.status_code == 429


def _http_login(console, user):
    c = httpx.Client(base_url=console.url)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"user": user[0], "password": user[1], "csrf": token})
    assert r.status_code == 303, r.text
    return c


def test_console_tells_a_share_of_tests_in_per_cent(demo_console):
    """The lab's positives of so many tests: the substance page's caption, its findings
    and the alert page speak of the share in per cent, as the messages do."""
    import html as html_lib

    console, _, state, _ = demo_console
    store = _store(state)
    try:
        alert = next(a for a in store.alerts(limit=50) if a["substance"] == "ketamin"
                     and a["kind"] == "trend")
        aid = alert["id"]
    finally:
        store.close()
    c = _http_login(console, OPERATOR)
    try:
        page = html_lib.unescape(c.get("/substances/ketamin").text)
        assert "Laboratoriet</strong>, Vestland\n      — <span class=\"unit\">andel positive " \
               "prøver (%)</span>" in page
        row = next(r for r in page.split("<tr>") if "Laboratoriet, Vestland: andel positive "
                   "prøver" in r)
        assert re.search(r"\d+,\d % → \d+,\d %", row), row
        # the figure behind the words, as every text writes a p-value (decimal comma)
        assert re.search(r'title="p = (<|&lt;)?\d,\d{3}, ', row), row
        n = next(i for i, part in enumerate(page.split('<figure class="chart"')[1:])
                 if "Laboratoriet" in part)
        chart = c.get(f"/substances/ketamin/charts/{n}.json").json()
        assert chart["unit"] == "andel positive prøver (%)"
        assert max(v for v in chart["y"] if v is not None) > 1  # per cent, not a fraction
        body = html_lib.unescape(c.get(f"/alerts/{aid}").text)
        assert re.search(r"Laboratoriet, Vestland: andel positive prøver: nivå før \d+,\d % → "
                         r"etter \d+,\d %", body)
        assert "warnd alerts ack" not in body  # the page has buttons, not commands
    finally:
        c.close()


def test_console_change_points_are_those_of_warnd_changepoints(demo_console, tmp_path):
    """Every chart of a substance page marks the change points `warnd changepoints`
    finds in the same series (with its dates: seasons handled the same way)."""
    import csv
    import json
    from datetime import UTC, datetime

    from tests.webkit import warnd

    console, cfg, state, _ = demo_console
    store = _store(state)
    try:
        rows = store.q("SELECT source, substance, region, metric, period, value, denominator "
                       "FROM observations WHERE substance='kokain' ORDER BY period")
    finally:
        store.close()
    obs = tmp_path / "kokain.csv"
    with obs.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "substance", "source", "region", "metric", "value", "denominator"])
        for r in rows:
            w.writerow([r["period"][:10], r["substance"], r["source"], r["region"], r["metric"],
                        repr(r["value"]), "" if r["denominator"] is None else r["denominator"]])
    out = warnd(cfg, state, "changepoints", "--observations", str(obs), "--json")
    assert out.returncode == 0, out.stderr
    cli = {(s["source"], s["region"], s["metric"]): s["change_points"]
           for s in json.loads(out.stdout)}
    assert sum(len(v) for v in cli.values()) >= 3  # the comparison has something to compare
    c = _http_login(console, OPERATOR)
    try:
        compared = 0
        page = c.get("/substances/kokain").text
        for n in range(page.count('<figure class="chart"')):
            chart = c.get(f"/substances/kokain/charts/{n}.json").json()
            key = (chart["source"], chart["region_code"], chart["metric"])
            first = datetime.fromtimestamp(chart["x"][0], UTC).date().isoformat()
            shown = [datetime.fromtimestamp(x, UTC).date().isoformat()
                     for x in chart["changepoints"]]
            assert shown == [d for d in cli[key] if d >= first], (key, shown, cli[key])
            compared += len(shown)
        assert compared >= 3
    finally:
        c.close()


def test_alerts_page_tells_severity_in_words(demo_console):
    console, _, _, _ = demo_console
    c = _http_login(console, OPERATOR)
    try:
        page = c.get("/alerts").text
    finally:
        c.close()
    row = page.split('<tr id="alert-1">')[1].split("</tr>")[0]
    assert "<td>kritisk</td>" in row and "critical" not in row


def test_sources_page_tells_the_schedule_in_its_language_and_flags_old_data(demo_console):
    """The sources page, in Norwegian: each source's schedule in words ("hver 6h", not
    the English of `warnd status`) and its newest data, flagged with its age where
    `warnd status` calls it old (the demo's data stopped in March 2026). Before, the
    page said "every 6h" and gave the date with nothing to tell that it was months
    old."""
    import json

    from tests.webkit import warnd

    import sqlite3

    console, cfg, state, _ = demo_console
    db = sqlite3.connect(state / "warnd.sqlite")  # a problem seen at a poll in the winter
    with db:
        db.execute("INSERT INTO problems (source, location, message, seen_at) VALUES "
                   "('lab-mbf', 'lab.csv line 9', 'not a number', "
                   "'2026-01-15T07:00:00+00:00')")
    db.close()
    c = _http_login(console, OPERATOR)
    try:
        page = c.get("/sources").text
    finally:
        c.close()
    st = json.loads(warnd(cfg, state, "status", "--json").stdout)
    lab = next(s for s in st["sources"] if s["name"] == "lab-mbf")
    row = page.split('<tr id="source-lab-mbf">')[1].split("</tr>")[0]
    # each problem with when it was seen (on the local clock), so an old one reads as old
    assert '<div class="note">2026-01-15 08:00 CET: lab.csv line 9: not a number</div>' in row
    assert "count_table, hver 6h" in row and "every" not in row
    assert lab["data_stale_days"] > 14 and lab["newest_data"] == lab["newest_period"]
    assert f"<td>{lab['newest_data']}<br>" in row
    assert f'<span class="badge bad">{lab["data_stale_days"]} dager gamle</span>' in row
    fresh = next(s for s in st["sources"] if s["data_stale_days"] is None
                 and s["newest_data"])  # newest data not unusually old: no flag
    row = page.split(f'<tr id="source-{fresh["name"]}">')[1].split("</tr>")[0]
    assert f"<td>{fresh['newest_data']}</td>" in row and "dager gamle" not in row


def test_console_in_english(demo_console, tmp_path):
    """The same store read by an English console: units, shares, plurals and severity
    in English, with the decimal point."""
    import sqlite3

    from tests.servers import free_port
    from tests.webkit import Console, demo_config

    console, _, state, _ = demo_console
    (tmp_path / "state").mkdir()
    src, dst = sqlite3.connect(state / "warnd.sqlite"), sqlite3.connect(
        tmp_path / "state" / "warnd.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    port = free_port()
    cfg = demo_config(tmp_path, base_url=f"http://127.0.0.1:{port}", lang="en")
    en = Console(cfg, tmp_path / "state", port).start()
    try:
        c = _http_login(en, OPERATOR)
        try:
            page = c.get("/substances/ketamin").text
            alerts = c.get("/alerts").text
            sources = c.get("/sources").text
        finally:
            c.close()
    finally:
        en.stop()
    assert "count_table, every 6h" in sources and " days old</span>" in sources
    assert '<span class="unit">share of tests positive (%)</span>' in page
    assert "· 1 finding</figcaption>" in page and " 1 findings" not in page
    # the source's English label, as the shipped config gives it
    row = next(r for r in page.split("<tr>") if "Drug-checking lab, Vestland: share of tests "
               "positive" in r)
    assert re.search(r"\d+\.\d% → \d+\.\d%", row), row
    assert "<td>critical</td>" in alerts
