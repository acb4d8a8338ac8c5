"""Config changes while a substance's episode is open, week by week through detection
with a real store (a new :class:`Pipeline` with another config between rounds, as a
reload does): what its recipients are told afterwards."""

from __future__ import annotations

from datetime import timedelta

from tests.alerting_env import SOURCES
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
