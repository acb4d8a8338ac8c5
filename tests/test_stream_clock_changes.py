"""The two nights a year the clock changes (Europe/Oslo 2026: Sunday 29 March 02:00 →
03:00, Sunday 25 October 03:00 → 02:00), with the clock moved through the real decide
and outbox on a real store and sent to a real SMTP server: when quiet hours end, when
a silence given in days ends, when digests go out, how the console shows the times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

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


# -- silences -----------------------------------------------------------------------------
def _silence(cfg, store: Store, now: datetime, substance: str, duration: str) -> str:
    """``warnd silence add --substance S --for DURATION`` at ``now``; what it printed."""
    import contextlib
    import io

    from warnd.alerting.commands import cmd_silence
    from warnd.cli import build_parser

    args = build_parser().parse_args(["--config", str(cfg.path), "silence", "add",
                                      "--substance", substance, "--for", duration,
                                      "--reason", "festival", "--by", "kari"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cmd_silence(args, store, config=cfg, now=now) == 0
    return out.getvalue()


def test_a_silence_in_days_ends_at_the_clock_time_it_began(tmp_path, smtp_server):
    """``warnd silence add --for 14d`` on Monday 19 October at 09:00 ends Monday 2
    November at 09:00, though the autumn change makes those 14 days 337 hours: a rise
    decided at 08:30 that morning is still held back. A silence in hours is elapsed
    time: ``--for 336h`` from the same moment ends at 08:00 by the clock, and a rise
    then goes out. In spring, 7 days from Monday 09:00 winter time end Monday 09:00
    summer time (before, a silence was days × 24 hours: 08:00 in autumn, 10:00 in
    spring)."""
    cfg = make_config(tmp_path, target("mail", smtp_server.url()))
    store = Store.in_dir(cfg.state_dir)
    for sub in ("ketamin", "heroin"):
        seed_series(store, "lab", sub)
    monday = datetime(2026, 10, 19, 9, 0, tzinfo=OSLO).astimezone(UTC)
    said = _silence(cfg, store, monday, "ketamin", "14d")
    assert "until 2026-11-02T08:00+00:00" in said  # 09:00 CET
    _silence(cfg, store, monday, "heroin", "336h")
    ends = {s["substance"]: _local(datetime.fromisoformat(s["until"]))
            for s in store.silences(now=monday, active_only=True)}
    assert ends == {"ketamin": "Mon 02 09:00 CET", "heroin": "Mon 02 08:00 CET"}
    morning = datetime(2026, 11, 2, 8, 30, tzinfo=OSLO).astimezone(UTC)
    for sub in ("ketamin", "heroin"):
        decide.enqueue_findings(cfg, store, sub,
                                [(finding("lab", substance=sub), "open")], {}, now=morning)
    outbox.dispatch_pending(cfg, store, now=morning)
    wait_for(lambda: len(smtp_server.messages) == 1, what="one email")
    assert {r["substance"]: r["status"] for r in store.q(
        "SELECT substance, status FROM alerts")} == {"ketamin": "silenced", "heroin": "open"}
    assert [m["Subject"] for m in smtp_server.messages] == ["Liten økning: heroin — 1 kilde"]
    spring = datetime(2026, 3, 23, 9, 0, tzinfo=OSLO).astimezone(UTC)
    assert "until 2026-03-30T07:00+00:00" in _silence(cfg, store, spring, "heroin", "7d")


def test_a_silence_in_days_from_the_console_ends_at_the_clock_time_it_began(tmp_path):
    """A script adds a silence through the console's API (the console's form and a
    message's "silence 14 days" link work out its end the same way) for as many days
    as reach past the next change of the clock from today: it ends at the clock time
    it was added, not an hour off."""
    import httpx

    from tests.servers import free_port
    from tests.webkit import Console
    from warnd.web.auth import create_token

    cfg = make_config(tmp_path, "", "\n[web]\nsecure_cookies = false\n")
    today = datetime.now(OSLO)

    def across(n: int) -> bool:  # n days on, at this clock time: the other offset, a time
        later = today + timedelta(days=n)  # that exists (not in the hour skipped)
        back = later.astimezone(UTC).astimezone(OSLO)
        return later.utcoffset() != today.utcoffset() and back.hour == later.hour

    days = next(n for n in range(1, 366) if across(n))
    store = Store.in_dir(cfg.state_dir)
    token = create_token(store, "nightly", "operator")
    console = Console(cfg.path, cfg.state_dir, free_port()).start()
    try:
        r = httpx.post(console.url + "/api/v1/silences", timeout=30,
                       headers={"Authorization": f"Bearer {token}"},
                       json={"substance": "ketamin", "duration": f"{days}d",
                             "reason": "festival"})
    finally:
        console.stop()
    assert r.status_code == 201, r.text
    began = datetime.fromisoformat(r.json()["created_at"]).astimezone(OSLO)
    ends = datetime.fromisoformat(r.json()["until"]).astimezone(OSLO)
    assert ends.utcoffset() != began.utcoffset()  # a change of the clock between
    assert ends.replace(tzinfo=None) == began.replace(tzinfo=None) + timedelta(days=days)


# -- digests ------------------------------------------------------------------------------
DEAD = "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"


def _own_config(tmp_path, extra: str):
    """A config with a target nobody listens on and ``extra``, with its own state
    directory in ``tmp_path`` (made): several in one test."""
    from tests.alerting_env import SOURCES
    from tests.conftest import write_config
    from warnd.config import load_config

    tmp_path.mkdir()
    return load_config(write_config(tmp_path, SOURCES + target("mail", DEAD) + extra,
                                    state_dir=str(tmp_path / "state")))


def _digests_made(tmp_path, digest: str, start: datetime, end: datetime) -> list[str]:
    """Dispatch every 10 minutes (elapsed time) from ``start`` to ``end`` with the
    ``[alerting.digest]`` ``digest``; when each digest was made, on the clock in Oslo."""
    from warnd.alerting.send import SendResult

    cfg = _own_config(tmp_path, f'\n[alerting.digest]\n{digest}\ntargets = ["mail"]\n')
    store = Store.in_dir(cfg.state_dir)
    t = start.astimezone(UTC)
    while t < end:
        outbox.dispatch_pending(cfg, store, now=t,
                                send=lambda url, **kw: SendResult(True, "SUCCESS"))
        t += timedelta(minutes=10)
    return [_local(datetime.fromisoformat(r["created_at"])) for r in store.q(
        "SELECT created_at FROM alerts WHERE kind='digest' ORDER BY id")]


def test_a_daily_digest_in_the_hour_the_clock_changes_goes_once_a_day(tmp_path):
    """A daily digest at 02:30 goes once each day across both changes: on the spring
    Sunday, when 02:30 never comes, at 03:00 (the jump); on the autumn Sunday once, at
    the first 02:30, not again when the clock shows 02:30 a second time. The day's
    time is that instant, also for the rule that skips a time before the first start."""
    made = _digests_made(tmp_path / "spring", 'schedule = "daily"\nat = "02:30"',
                         datetime(2026, 3, 27, 12, tzinfo=OSLO),
                         datetime(2026, 3, 31, 12, tzinfo=OSLO))
    assert made == ["Sat 28 02:30 CET", "Sun 29 03:00 CEST", "Mon 30 02:30 CEST",
                    "Tue 31 02:30 CEST"]
    made = _digests_made(tmp_path / "autumn", 'schedule = "daily"\nat = "02:30"',
                         datetime(2026, 10, 23, 12, tzinfo=OSLO),
                         datetime(2026, 10, 27, 12, tzinfo=OSLO))
    assert made == ["Sat 24 02:30 CEST", "Sun 25 02:30 CEST", "Mon 26 02:30 CET",
                    "Tue 27 02:30 CET"]
    # warnd first started at 03:10 that spring Sunday: its 02:30 (the jump at 03:00)
    # came before the start, and a time before the first start is skipped (before, the
    # day's time was taken as 03:30, after the start, and a digest went out at 03:10)
    made = _digests_made(tmp_path / "started", 'schedule = "daily"\nat = "02:30"',
                         datetime(2026, 3, 29, 3, 10, tzinfo=OSLO),
                         datetime(2026, 3, 30, 12, tzinfo=OSLO))
    assert made == ["Mon 30 02:30 CEST"]


def test_daily_and_weekly_digests_keep_their_clock_time_across_the_autumn_change(tmp_path):
    """A daily digest at 08:00 and a weekly one on Sundays at 08:00 across the autumn
    change (the spring one: tests/test_stream_delivery.py): each once per day or week,
    at 08:00 by the clock before and after it, none skipped, none twice."""
    made = _digests_made(tmp_path / "daily", 'schedule = "daily"\nat = "08:00"',
                         datetime(2026, 10, 23, 12, tzinfo=OSLO),
                         datetime(2026, 10, 27, 12, tzinfo=OSLO))
    assert made == ["Sat 24 08:00 CEST", "Sun 25 08:00 CET", "Mon 26 08:00 CET",
                    "Tue 27 08:00 CET"]
    made = _digests_made(tmp_path / "weekly",
                         'schedule = "weekly"\nweekday = "sun"\nat = "08:00"',
                         datetime(2026, 10, 17, 12, tzinfo=OSLO),
                         datetime(2026, 11, 2, 12, tzinfo=OSLO))
    assert made == ["Sun 18 08:00 CEST", "Sun 25 08:00 CET", "Sun 01 08:00 CET"]


# -- delivery expiry ----------------------------------------------------------------------
def _attempts_to_a_dead_relay(tmp_path, due: datetime) -> tuple[list[str], str]:
    """A rise decided at ``due`` (working time) for a relay nobody listens on, quiet hours
    "17:00-08:00", dispatched each time it is due again, for up to three days: when each
    attempt was made and when the delivery expired, on the clock in Oslo."""
    cfg = _own_config(tmp_path, '\n[alerting]\nquiet_hours = "17:00-08:00"\n')
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=due)
    assert a["due_at"] is None
    attempts, expired, t, n = [], "", due, 0
    while t < due + timedelta(days=3) and not expired:
        outbox.dispatch_pending(cfg, store, now=t)
        (d,) = store.q("SELECT status, attempts, next_attempt_at FROM deliveries")
        if d["attempts"] > n:
            attempts.append(_local(t))
            n = d["attempts"]
        expired = _local(t) if d["status"] == "expired" else ""
        # the next dispatch when the delivery is due again (a retry, the end of quiet time)
        t = max(t + timedelta(seconds=1), datetime.fromisoformat(d["next_attempt_at"]))
    return attempts, expired


@pytest.mark.parametrize(("due", "ends"), [
    (datetime(2026, 3, 28, 10, tzinfo=OSLO), "Mon 30 11:00 CEST"),
    (datetime(2026, 10, 24, 10, tzinfo=OSLO), "Mon 26 09:00 CET"),
], ids=["spring", "autumn"])
def test_retries_keep_to_quiet_hours_and_expire_by_elapsed_time_across_a_change(
        tmp_path, due, ends):
    """Retries to a dead relay wait for the end of the quiet hours at 08:00 by the clock
    on the Sunday of the change (not 07:00 or 09:00), and the delivery expires
    ``expire_after`` (2 days: elapsed time, 48 hours) after it became due, at the first
    attempt after that — never in quiet time."""
    attempts, expired = _attempts_to_a_dead_relay(tmp_path / "run", due.astimezone(UTC))
    mornings = [a for a in attempts if " 08:00 " in a]
    assert [m[:3] for m in mornings] == ["Sun", "Mon"], attempts
    assert all(8 <= int(a.split()[2][:2]) < 17 for a in attempts), attempts
    assert expired == ends and attempts[-1] == ends


# -- the console's times ------------------------------------------------------------------
def test_the_console_tells_the_two_runs_through_the_repeated_hour_apart(tmp_path):
    """Stored times are UTC; the console shows them on the clock in Oslo with the zone's
    name, so the two moments the autumn clock shows 02:30 read apart (CEST, then CET)
    and the spring night goes from 01:59 CET to 03:00 CEST."""
    from warnd.web.app import Web

    cfg = make_config(tmp_path, "", "\n[web]\nsecure_cookies = false\n")
    when = Web(cfg, secure_cookies=False).env.from_string("{{ t|when }}")
    assert [when.render(t=t) for t in ("2026-10-25T00:30:00+00:00",
                                       "2026-10-25T01:30:00+00:00")] == [
        "2026-10-25 02:30 CEST", "2026-10-25 02:30 CET"]
    assert [when.render(t=t) for t in ("2026-03-29T00:59:00+00:00",
                                       "2026-03-29T01:00:00+00:00")] == [
        "2026-03-29 01:59 CET", "2026-03-29 03:00 CEST"]
