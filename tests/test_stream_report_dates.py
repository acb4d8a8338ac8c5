"""The half-year report's dates over a half-year's edge: a warning published and told
just after midnight on the first day of a half-year (local time) belongs to that
half-year, in its alerts and its warnings, as the message that told it dated it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from feeds.base import Observation
from tests.test_stream_notices import _config, _inbox, _page, _round
from warnd.config import load_config
from warnd.report.render import render_markdown
from warnd.report.tables import build_report
from warnd.store import Store

# 00:30 in Oslo on 1 April 2026 (summer time): still 31 March in UTC
PUBLISHED = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)


def test_a_warning_told_just_after_midnight_on_a_half_years_first_day_is_in_that_half_year(
        tmp_path, smtp_server):
    """The notice published at 00:30 on 1 April and told ten minutes later ("published
    2026-04-01" in its message) is listed, alert and warning, in the April–September
    report, dated 1 April, and not in the October–March report (before, both were
    dated 31 March by their UTC day and listed in the half-year before)."""
    cfg = load_config(_config(tmp_path, smtp_server))
    _page(tmp_path, ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
                     PUBLISHED.astimezone(ZoneInfo("Europe/Oslo"))))
    _round(cfg, PUBLISHED + timedelta(minutes=10))
    (msg,) = smtp_server.messages
    assert "(2026-04-01)" in str(msg), str(msg)
    assert _inbox(smtp_server) == {"heroin@example.org": [
        "Ny advarsel: heroin — Heroin med høy styrke"]}
    store = Store.in_dir(cfg.state_dir)
    try:
        # a year and a half of weekly figures, so heroin has its table
        weeks = [date(2025, 4, 7) + timedelta(weeks=i) for i in range(78)]
        store.ingest("overdosefare", location="t", sha256=None, items=(), problems=(),
                     observations=[Observation(source="overdosefare", substance="heroin",
                                               period=d, value=5.0) for d in weeks])
        spring = build_report(store, cfg, start=date(2026, 4, 1))
        autumn = build_report(store, cfg, start=date(2026, 3, 1))
    finally:
        store.close()
    assert spring.current == (date(2026, 4, 1), date(2026, 9, 30))
    assert autumn.current == (date(2025, 10, 1), date(2026, 3, 31))
    (heroin,) = [t for t in spring.substances if t.substance == "heroin"]
    assert [a["detected_at"] for a in heroin.alerts] == ["2026-04-01"]
    assert [str(n["published_at"])[:10] for n in heroin.notices] == ["2026-04-01"]
    md = render_markdown(spring, "no")
    assert "2026-04-01 Heroin med høy styrke" in md, md
    assert "2026-03-31" not in md
    for t in autumn.substances:
        assert (t.alerts, t.notices) == ((), ()), t.substance

