"""Config changes while a substance's episode is open, week by week through detection
with a real store (a new :class:`Pipeline` with another config between rounds, as a
reload does): what its recipients are told afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.alerting_env import SOURCES, target
from tests.conftest import SUBSTANCES, write_config
from tests.test_stream_config import MAIL, _lab_rise, _week_end, _weeks
from warnd.config import load_config
from warnd.store import Store

MUTED = SUBSTANCES.replace('slang = ["ket"]', 'slang = ["ket"]\nmuted = true')


def test_the_end_of_a_told_rise_held_back_by_a_silence_is_told_by_the_first_pass_after(
        tmp_path):
    """Ketamine's rise at the lab is told; a silence covers ketamine from week 118 to
    just before week 160, and the rise ends under it (week 147: recorded, sent to
    nobody). The lab goes on bringing a quiet week each week. The first whole pass after
    the silence (``run --once`` at week 160) tells the end. Before, a pass that judged
    ketamine's new, quiet week left the end to a later round with a decision of its
    own: it was told eleven weeks late, by the next round with a finding."""
    from warnd.alerting import actions

    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, rise, calm = 175, 110, 125
    silenced, ends = 118, 160

    def configs(w: int):
        if w == silenced:
            store = Store.in_dir(cfg.state_dir)
            try:
                actions.add_silence(store, substance="ketamin", reason="festival", who="kari",
                                    via="cli", until=_week_end(ends) - timedelta(hours=1),
                                    now=_week_end(w) - timedelta(hours=1))
            finally:
                store.close()
        return cfg

    told = _weeks(configs, _lab_rise(weeks, rise, calm), range(rise - 2, weeks))
    trend = [(w, d, s) for w, k, d, s in told if k == "trend"]
    assert [(d, s) for _, d, s in trend] == [
        ("open", "open"), ("resolve", "silenced"), ("resolve", "open")]
    assert trend[0][0] < silenced < trend[1][0] < ends == trend[2][0]


def test_the_end_of_a_told_rise_held_back_by_a_mute_is_told_once_unmuted(tmp_path):
    """Ketamine's rise at the lab is told; the substance is then muted (week 118), the
    rise ends while it is muted (week 147: recorded as muted, sent to nobody), and the
    config is reloaded without the mute (week 160). The recipients, told of the rise, are
    told it ended by the first round after the unmuting, as the end of a told rise held
    back by a silence is. Before, the end was never told: they were left believing the
    rise went on."""
    loud = load_config(write_config(tmp_path, SOURCES + MAIL))
    muted = load_config(write_config(tmp_path, SOURCES + MAIL, name="muted.toml",
                                     substances=MUTED))
    weeks, rise, calm = 175, 110, 125
    mute, unmute = 118, 160
    told = _weeks(lambda w: muted if mute <= w < unmute else loud,
                  _lab_rise(weeks, rise, calm), range(rise - 2, weeks))
    trend = [(w, d, s) for w, k, d, s in told if k == "trend"]
    assert [(d, s) for _, d, s in trend] == [
        ("open", "open"), ("resolve", "muted"), ("resolve", "open")]
    assert trend[0][0] < mute < trend[1][0] < unmute == trend[2][0]


DEAD = "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"
DAILY = '\n[alerting.digest]\nschedule = "daily"\nat = "08:00"\ntargets = ["mail"]\n'


def _digests_across_reload(tmp_path, before: str, after: str, reload_at: datetime,
                           days: int) -> list[str]:
    """Dispatch every 10 minutes for ``days`` days from Monday 2 March 2026, 00:00 UTC,
    with a daily digest at 08:00 and the ``[general]`` lines ``before``, then ``after``
    from ``reload_at`` on (a reload); when each digest was made (UTC)."""
    from warnd.alerting import outbox
    from warnd.alerting.send import SendResult

    def config(general: str, name: str):
        return load_config(write_config(
            tmp_path, SOURCES + target("mail", DEAD) + DAILY, name=name,
            substances=general + SUBSTANCES, state_dir=str(tmp_path / "state")))

    tmp_path.mkdir()
    old, new = config(before, "before.toml"), config(after, "after.toml")
    store = Store.in_dir(old.state_dir)
    try:
        t = datetime(2026, 3, 2, tzinfo=UTC)
        while t < datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=days):
            outbox.dispatch_pending(old if t < reload_at else new, store, now=t,
                                    send=lambda url, **kw: SendResult(True, "SUCCESS"))
            t += timedelta(minutes=10)
        return [r["created_at"][:16] for r in store.q(
            "SELECT created_at FROM alerts WHERE kind='digest' ORDER BY id")]
    finally:
        store.close()


def test_a_daily_digest_goes_once_on_the_day_the_time_zone_changes(tmp_path):
    """A daily digest at 08:00 in Oslo (07:00 UTC in winter); on Wednesday at 07:30 UTC,
    after that day's digest, the config is reloaded with ``timezone = "Europe/London"``
    (08:00 there is 08:00 UTC). Wednesday has its one digest, and the digests go at
    08:00 London time from Thursday; so too the other way, London to Oslo after London's
    digest. Before, Wednesday had three: at the reload one for Tuesday's 08:00 by the new
    clock (less than a day before, never sent), and at 08:00 another; a time of the new
    clock not sent yet counted as a digest due."""
    west = _digests_across_reload(
        tmp_path / "west", 'timezone = "Europe/Oslo"\n', 'timezone = "Europe/London"\n',
        datetime(2026, 3, 4, 7, 30, tzinfo=UTC), days=5)
    assert west == ["2026-03-02T07:00", "2026-03-03T07:00", "2026-03-04T07:00",
                    "2026-03-05T08:00", "2026-03-06T08:00"]
    east = _digests_across_reload(
        tmp_path / "east", 'timezone = "Europe/London"\n', 'timezone = "Europe/Oslo"\n',
        datetime(2026, 3, 4, 8, 30, tzinfo=UTC), days=5)
    assert east == ["2026-03-02T08:00", "2026-03-03T08:00", "2026-03-04T08:00",
                    "2026-03-05T07:00", "2026-03-06T07:00"]



@pytest.mark.parametrize("how", ["removed", "paused"])
def test_a_rise_whose_source_was_taken_out_of_the_config_is_no_longer_listed_open(
        tmp_path, how):
    """Ketamine's rise at the lab is told (with a spike of the lab's before it); the lab
    is then taken out of the config (week 118) while the rise goes on, customs and the
    media staying. Nothing judges the lab's series any more, so nothing ends its
    episodes (and no end is told): the next whole pass resolves their open alerts, and
    `warnd status` no longer lists them. Before, it listed the rise and the spike as
    open for as long as warnd ran, as it did a substance taken out of the config. A lab
    paused instead (``enabled = false``) keeps them listed: resumed, its rise goes on."""
    from warnd.pipeline import Pipeline
    from warnd.service.health import collect_status

    parts = SOURCES.split("[[sources]]")
    without_lab = ("[[sources]]".join([parts[0], *parts[2:]]) if how == "removed" else
                   SOURCES.replace('location = "lab/"\n', 'location = "lab/"\nenabled = false\n'))
    assert without_lab != SOURCES
    full = load_config(write_config(tmp_path, SOURCES + MAIL))
    cut = load_config(write_config(tmp_path, without_lab + MAIL, name="cut.toml"))
    weeks, rise, calm, removed = 150, 110, 125, 118
    lab = _lab_rise(weeks, rise, calm)
    told = _weeks(lambda w: full if w < removed else cut, lab, range(rise - 2, removed))
    assert [(k, d) for _, k, d, _ in told] == [("spike", "open"), ("trend", "open")]
    assert len(collect_status(full, now=_week_end(removed - 1))["open_alerts"]) == 2
    for w in range(removed, weeks):  # the lab no longer polled
        assert Pipeline(cut, clock=lambda w=w: _week_end(w)).detect() == []
        listed = collect_status(cut, now=_week_end(w))["open_alerts"]
        assert len(listed) == (0 if how == "removed" else 2)



QUIET_NOON = '\n[alerting]\nsend_resolved = true\nquiet_hours = "12:00-18:00"\n'


@pytest.mark.parametrize("held", ["muted", "silenced"])
def test_the_end_of_a_told_rise_held_back_while_it_waited_is_told_after(tmp_path, held):
    """Ketamine's rise at the lab is told. Its end is decided at noon, in quiet hours
    (until 18:00 in Oslo), and waits; before it goes, the config is reloaded with
    ketamine muted (or an operator silences ketamine for three days), so it is not sent.
    The next week, the mute lifted (the silence over), the end is told to the target
    that had the rise, once. Before, it was never told: the recipients were left
    believing the rise went on, as with an end held back when it was decided."""
    from tests.scenario import START, put_weekly
    from warnd.alerting import actions, outbox
    from warnd.alerting.send import SendResult
    from warnd.pipeline import Pipeline

    mail = target("mail", DEAD)
    loud = load_config(write_config(tmp_path, SOURCES + mail + QUIET_NOON))
    muted = load_config(write_config(tmp_path, SOURCES + mail + QUIET_NOON,
                                     name="muted.toml", substances=MUTED))
    weeks, rise, calm = 155, 110, 125
    lab = _lab_rise(weeks, rise, calm)
    store = Store.in_dir(loud.state_dir)
    ended = None
    try:
        for w in range(rise - 2, weeks):
            put_weekly(loud.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            for a in Pipeline(loud, clock=lambda t=noon: t).detect():
                if (a["kind"], a["decision"]) == ("trend", "resolve") and ended is None:
                    ended = w
                    if held == "silenced":
                        actions.add_silence(store, substance="ketamin", reason="x", who="kari",
                                            via="cli", duration=timedelta(days=3),
                                            now=noon + timedelta(hours=1))
            outbox.dispatch_pending(muted if w == ended and held == "muted" else loud, store,
                                    now=noon + timedelta(hours=6),
                                    send=lambda url, **kw: SendResult(True, "SUCCESS"))
        rows = store.q("SELECT a.decision, d.status, d.delivered_at FROM alerts a JOIN "
                       "deliveries d ON d.alert_id = a.id WHERE a.kind = 'trend' "
                       "ORDER BY a.id")
    finally:
        store.close()
    assert [(r["decision"], r["status"]) for r in rows] == [
        ("open", "delivered"), ("resolve", "dropped" if held == "muted" else "silenced"),
        ("resolve", "delivered")]
    assert rows[2]["delivered_at"] == (_week_end(ended + 1) + timedelta(hours=6)).isoformat()


def test_a_target_taken_out_while_the_opening_waits_gets_the_end_after_it_when_back(
        tmp_path):
    """Ketamine's rise is told: ops has the opening, while mail's relay is down and the
    opening waits for it. The operator takes mail out of the config (a reload); its
    opening is kept waiting, as for any target taken out. The rise ends (ops is told),
    and mail is configured again with its relay repaired: it gets the opening it waited
    for, and then the end, replying to it. Before, it got the opening alone, weeks
    late, and never heard that the rise had ended."""
    from tests.scenario import START, put_weekly
    from warnd.alerting import outbox
    from warnd.alerting.send import SendResult
    from warnd.pipeline import Pipeline

    ops = target("ops", "mailto://127.0.0.1:1?from=a@example.org&to=ops@example.org")
    mail = target("mail", "mailto://127.0.0.2:1?from=a@example.org&to=o@example.org")
    extra = "\n[alerting]\nsend_resolved = true\n"
    both = load_config(write_config(tmp_path, SOURCES + ops + mail + extra))
    no_mail = load_config(write_config(tmp_path, SOURCES + ops + extra, name="ops.toml"))
    weeks, rise, calm, out, back = 155, 110, 125, 113, 150
    lab = _lab_rise(weeks, rise, calm)
    store = Store.in_dir(both.state_dir)

    got: list[tuple[int, str, str | None]] = []  # mail's messages: week, title, thread

    def send(url, *, title, thread=None, message_id=None, **kw):
        if "127.0.0.2" not in url:
            return SendResult(True, "SUCCESS")
        if w < back:
            return SendResult(False, "ERROR", "refused: relay down", kind="refused")
        got.append((w, title, thread, message_id))
        return SendResult(True, "SUCCESS")

    try:
        for w in range(rise - 2, weeks):
            cfg = no_mail if out <= w < back else both
            put_weekly(cfg.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            Pipeline(cfg, clock=lambda t=noon: t).detect()
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=1), send=send)
        to_ops = [r["decision"] for r in store.q(
            "SELECT a.decision FROM alerts a JOIN deliveries d ON d.alert_id = a.id WHERE "
            "a.kind = 'trend' AND d.target = 'ops' AND d.status = 'delivered' ORDER BY a.id")]
    finally:
        store.close()
    assert to_ops == ["open", "resolve"]
    assert [(w, t.split(":")[0]) for w, t, _, _ in got] == [(back, "Liten økning"),
                                                             (back, "Avsluttet")]
    assert got[0][2] is None and got[1][2] == got[0][3]  # the end replies to the opening


NO_KETAMINE = '\n[substances.heroin]\nlabel = "heroin"\nnames = ["heroin"]\n'


@pytest.mark.parametrize("what", ["substance", "source"])
def test_a_rise_taken_out_of_the_config_and_put_back_while_it_goes_on_is_listed_open(
        tmp_path, what):
    """Ketamine's rise at the lab is told (with a spike of the lab's before it); ketamine
    (or the lab) is taken out of the config in week 114, and the next whole pass
    resolves its open alerts; it is put back in week 117 while the rise goes on. From
    then, `warnd status` lists the rise (and the spike, until its end) as open again,
    nothing is told anew, and the end is told when it comes. Before, nothing was listed
    open from the removal to the end, though the recipients were told the rise goes
    on."""
    from warnd.service.health import collect_status

    parts = SOURCES.split("[[sources]]")
    full = load_config(write_config(tmp_path, SOURCES + MAIL))
    cut = load_config(write_config(
        tmp_path, ("[[sources]]".join([parts[0], *parts[2:]]) if what == "source"
                   else SOURCES) + MAIL, name="cut.toml",
        substances=NO_KETAMINE if what == "substance" else SUBSTANCES))
    weeks, rise, calm, out, back = 150, 110, 125, 114, 117
    lab = _lab_rise(weeks, rise, calm)
    told, listed = [], {}
    for w in range(rise - 2, weeks):
        cfg = cut if out <= w < back else full
        told += _weeks(lambda _, cfg=cfg: cfg, lab, range(w, w + 1))
        listed[w] = sorted(a["kind"] for a in collect_status(cfg, now=_week_end(w))[
            "open_alerts"])
    assert [(k, d, s) for _, k, d, s in told] == [
        ("spike", "open", "open"), ("trend", "open", "open"),
        ("spike", "resolve", "open"), ("trend", "resolve", "open")]
    spike_end, end = (w for w, _, d, _ in told if d == "resolve")
    assert back < spike_end < end
    assert listed[out] == []
    assert all(listed[w] == ["spike", "trend"] for w in range(back, spike_end))
    assert all(listed[w] == ["trend"] for w in range(spike_end, end))
    assert listed[end] == []


def test_an_earlier_spike_is_not_listed_open_again_by_a_later_one(tmp_path):
    """Without ``send_resolved``: the lab's spike of ketamine in week 115 is told and
    ends (no message); another in week 135 is told. `warnd status` lists the second
    alone: an alert resolved as its episode ended stays resolved while a later episode
    of its kind is open (only those resolved as their substance or source was taken
    out of the config are opened again)."""
    from warnd.service.health import collect_status

    cfg = load_config(write_config(tmp_path, SOURCES + target("mail", DEAD)))
    weeks = 137
    lab = np.random.default_rng(3).poisson(np.full(weeks, 5.0)).astype(float)
    lab[[115, 135]] = 40
    told = _weeks(lambda _: cfg, lab, range(113, weeks))
    assert [(w, k, d) for w, k, d, _ in told] == [(115, "spike", "open"),
                                                  (135, "spike", "open")]
    listed = collect_status(cfg, now=_week_end(weeks - 1))["open_alerts"]
    assert [a["id"] for a in listed] == [2]


def test_a_substance_taken_out_while_its_opening_waits_is_not_told_until_put_back(
        tmp_path, smtp_server, capsys):
    """Ketamine's rise at the lab opens at noon, in quiet hours (until 18:00 in Oslo), and
    its opening waits; before it goes, ketamine is taken out of the config (a reload).
    The opening is not sent: it is dropped, and `warnd outbox` says why; nothing more of
    the rise is sent while ketamine is out, no end that would never come. Put back in
    week 117 while the rise goes on, the rise is told then, as its first message, as
    after a mute, and its end when it comes. Before, the opening went at 18:00 all the
    same, the opening of a rise whose end was never told, as nothing judged it any more;
    and, put back, nothing was told anew."""
    from tests.scenario import START, put_weekly
    from warnd.alerting import outbox
    from warnd.cli import main
    from warnd.pipeline import Pipeline

    mail = target("mail", smtp_server.url())
    full = load_config(write_config(tmp_path, SOURCES + mail + QUIET_NOON))
    cut = load_config(write_config(tmp_path, SOURCES + mail + QUIET_NOON, name="cut.toml",
                                   substances=NO_KETAMINE))
    weeks, rise, calm, back = 150, 110, 125, 117
    lab = _lab_rise(weeks, rise, calm)
    store = Store.in_dir(full.state_dir)
    told, out = [], None
    try:
        for w in range(rise - 2, weeks):
            cfg = full if out is None or w >= back else cut
            if cfg is full:  # (no source reads ketamine while it is out of the config)
                put_weekly(cfg.state_dir, lab[: w + 1], start=START)
            noon = _week_end(w)
            made = [a for a in Pipeline(cfg, clock=lambda t=noon: t).detect()
                    if a["kind"] == "trend"]
            told += [(w, a["decision"]) for a in made]
            if out is None and made:
                out, cfg = w, cut  # taken out while the opening waits
            outbox.dispatch_pending(cfg, store, now=noon + timedelta(hours=6))
            if w == out:
                assert main(["--config", str(cut.path), "outbox", "list", "--status",
                             "dropped"]) == 0
                listed = capsys.readouterr().out
        sent = [(r["decision"], r["status"], r["last_error"]) for r in store.q(
            "SELECT a.decision, d.status, d.last_error FROM alerts a JOIN deliveries d ON "
            "d.alert_id = a.id WHERE a.kind = 'trend' ORDER BY a.id")]
    finally:
        store.close()
    why = 'not sent: substance "ketamin" is no longer in the configuration'
    assert why in listed
    assert [d for w, d in told if w < back] == ["open"]
    assert [d for w, d in told if w >= back] == ["open", "resolve"]
    assert [d for w, d in told if w == back] == ["open"]  # told the week it is back
    assert sent == [("open", "dropped", why), ("open", "delivered", None),
                    ("resolve", "delivered", None)]
    subjects = [str(m["Subject"]) for m in smtp_server.messages if "topp" not in m["Subject"]]
    assert [s.split(":")[0] for s in subjects] == ["Liten økning", "Avsluttet"]
