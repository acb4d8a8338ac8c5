"""A peak that comes back every New Year, through the real pipeline week by week: the
daemon's cycles (poll → store → incremental detection → alerts) stay quiet at a New
Year of the usual size and alert on a week that is not usual."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from tests.conftest import write_config
from tests.scenario import LAB_SOURCE
from tests.servers import free_port
from tests.webkit import VIEWER, Console, login, warnd
from warnd.alerting.wording import render_text
from warnd.config import load_config
from warnd.pipeline import Pipeline

START = date(2021, 1, 4)  # a Monday
WEEKS = 261  # five years, to the New Year of week 260
NEW_YEARS = [i for i in range(WEEKS) if (START + timedelta(weeks=i)).isocalendar()[1] == 1]


def _ketamin(extra_at: int | None, times: float = 6.0) -> list[int]:
    rng = np.random.default_rng(11)
    mu = np.full(WEEKS, 20.0)
    mu[NEW_YEARS] *= 2.5
    if extra_at is not None:
        mu[extra_at] *= times
    return [int(x) for x in rng.poisson(mu)]


def _stream(tmp_path, extra: str, *, extra_at: int | None = None,
            times: float = 6.0) -> dict[int, list[dict]]:
    """Weeks 0-199 judged at once, then one week a cycle to the end: the alerts each
    cycle raised, by week."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(tmp_path, extra + LAB_SOURCE.format(interval="1h")))
    ket = _ketamin(extra_at, times)
    csv = tmp_path / "data" / "lab.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    out: dict[int, list[dict]] = {}
    for last in range(199, WEEKS):
        rows = [f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{ket[i]}"
                for i in range(last + 1)]
        csv.write_text("period,substance,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
        now = datetime.combine(START + timedelta(weeks=last, days=3), time(12), UTC)
        out[last] = Pipeline(cfg, clock=lambda n=now: n).run_once()["alerts"]
    return out


def test_the_usual_new_year_is_quiet_and_another_week_alerts(tmp_path):
    extra_at = 240
    sent = _stream(tmp_path / "on", "", extra_at=extra_at)
    weeks = sorted(w for w, alerts in sent.items() if alerts)
    assert [w for w in NEW_YEARS if w > 199] == [208, 260]  # the stream passes two
    assert weeks == [extra_at]
    assert [a["kind"] for a in sent[extra_at]] == ["spike"]


def test_without_the_earlier_years_the_new_year_alerts(tmp_path):
    sent = _stream(tmp_path / "off", "[detection]\nrecurring_years = 0\n")
    alerted = {w for w, alerts in sent.items() if alerts}
    assert alerted and alerted <= {208, 260}
    assert all(a["kind"] == "spike" for w in alerted for a in sent[w])


def test_a_larger_new_year_alerts_and_the_message_says_the_usual_peak(tmp_path, browser):
    # the last New Year at three times its usual peak: a spike, judged against the
    # usual New Year (not the rest of the year), and the message and the console say so
    sent = _stream(tmp_path, "[web]\nlisten = \"127.0.0.1:0\"\n", extra_at=260, times=3.0)
    assert [w for w, alerts in sent.items() if alerts] == [260]
    (alert,) = sent[260]
    assert alert["kind"] == "spike"
    (lab,) = alert["data"]["agree"]
    assert 1.8 < lab["usual_peak"] < 3.5 and lab["level_before"] > 35
    _, body = render_text(alert["data"], "en", alert["id"])
    x = f"{lab['usual_peak']:.1f}"
    assert f"expected with this time of year's usual peak ({x} × the baseline)" in body
    # the console's page of the substance shows it beside the finding's levels
    cfg, state = tmp_path / "config.toml", tmp_path / "state"
    r = warnd(cfg, state, "user", "add", VIEWER[0], "--role", "viewer", "--password-stdin",
              stdin=VIEWER[1] + "\n")
    assert r.returncode == 0, r.stderr
    console = Console(cfg, state, free_port()).start()
    try:
        page = login(browser, console, VIEWER)
        page.goto("/substances/ketamin")
        row = page.locator("table tr", has_text="2025-12-29").first.inner_text()
    finally:
        console.stop()
    said = f"forventet med den vanlige toppen på denne tiden av året ({x.replace('.', ',')} × "
    assert said in row and "Enkeltstående topp" in row
