"""The two nights a year the clock changes (Europe/Oslo 2026: Sunday 29 March 02:00 →
03:00, Sunday 25 October 03:00 → 02:00), with the clock moved through the real decide
and outbox on a real store and sent to a real SMTP server: when quiet hours end, when
a silence given in days ends, when digests go out, how the console shows the times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.alerting_env import finding, make_config, seed_series, target
from tests.alerting_env import judge_period as _period
from tests.servers import wait_for
from warnd.alerting import decide, outbox
from warnd.store import Store

OSLO = ZoneInfo("Europe/Oslo")
NIGHT_QUIET = '\n[alerting]\nquiet_hours = "22:00-02:30"\n'


def _local(t: datetime) -> str:
    """An instant as the clock in Oslo shows it, with the zone's name (CET, CEST)."""
    return t.astimezone(OSLO).strftime("%a %d %H:%M %Z")


def _delivered(store: Store) -> dict[str, str]:
    """Each delivered alert's title → when it was delivered, on the clock in Oslo."""
    return {r["title"]: _local(datetime.fromisoformat(r["delivered_at"])) for r in store.q(
        "SELECT a.title, d.delivered_at FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
        "WHERE d.status='delivered' ORDER BY d.delivered_at")}


def _night(cfg, store: Store, start: datetime, end: datetime, every: int = 10) -> None:
    """Dispatch every ``every`` minutes (elapsed time) from ``start`` until ``end``."""
    t = start
    while t < end:
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(minutes=every)


# -- quiet hours --------------------------------------------------------------------------
def test_quiet_hours_ending_in_the_skipped_hour_end_when_the_clock_jumps(tmp_path,
                                                                       smtp_server):
    """Quiet hours "22:00-02:30"; on the spring night the clock goes from 02:00 straight
    to 03:00, so 02:30 never comes: a rise decided at 23:00 goes out at 03:00, the
    first moment the clock is past the end — not at 03:30 (Python's own reading of
    02:30 that night, an hour after 01:30, and half an hour after a rise decided at
    03:10, which is working time, would go)."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), NIGHT_QUIET)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    evening = datetime(2026, 3, 28, 23, 0, tzinfo=OSLO).astimezone(UTC)
    (a,) = _period(cfg, store, date(2026, 3, 23),
                   {"lab": [finding("lab", category=1, rel=1.0)]}, now=evening)
    assert a["severity"] == "info"
    assert _local(datetime.fromisoformat(a["due_at"])) == "Sun 29 03:00 CEST"
    _night(cfg, store, evening, evening + timedelta(hours=6))
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    assert _delivered(store) == {a["title"]: "Sun 29 03:00 CEST"}


def test_quiet_hours_ending_in_the_repeated_hour_end_at_its_first_pass(tmp_path,
                                                                      smtp_server):
    """Quiet hours "22:00-02:30"; on the autumn night the clock runs through 02:00-03:00
    twice. The quiet time ends the first time the clock shows 02:30 (a rise decided at
    23:00 goes then), and the second run through 02:00-02:30 is working time: a rise
    decided at 02:10 the second time goes at once — not held, dispatch after dispatch,
    until the clock shows 02:30 again, while its due time said it was due already."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()), NIGHT_QUIET)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    seed_series(store, "lab", "heroin")
    evening = datetime(2026, 10, 24, 23, 0, tzinfo=OSLO).astimezone(UTC)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin",
                                   [(finding("lab", category=1, rel=1.0), "open")], {},
                                   now=evening)
    assert _local(datetime.fromisoformat(a["due_at"])) == "Sun 25 02:30 CEST"
    second = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=OSLO).astimezone(UTC)
    _night(cfg, store, evening, second)
    assert _local(second) == "Sun 25 02:10 CET"
    (b,) = decide.enqueue_findings(cfg, store, "heroin",
                                   [(finding("lab", substance="heroin", category=1, rel=1.0),
                                     "open")], {}, now=second)
    assert b["due_at"] is None  # working time
    _night(cfg, store, second, second + timedelta(hours=2))
    wait_for(lambda: len(smtp_server.messages) == 2, what="two emails")
    assert _delivered(store) == {a["title"]: "Sun 25 02:30 CEST",
                                 b["title"]: "Sun 25 02:10 CET"}
