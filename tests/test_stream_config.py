"""Config changes over time: what a substance's recipients are told when the config
is reloaded (a new :class:`Pipeline` with another config between rounds, as SIGHUP
does) while an episode is open (week by week through detection, a real store)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np

from tests.alerting_env import SOURCES, target
from tests.conftest import SUBSTANCES, write_config
from tests.scenario import noon_after_week, put_weekly
from warnd.alerting import digest
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
MAIL = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org") + (
    "\n[alerting]\nsend_resolved = true\n")


def _week_end(w: int) -> datetime:
    return noon_after_week(START, w)


def _weeks(configs, values: np.ndarray, weeks: range,
           held: dict[int, list[str]] | None = None) -> list[tuple[int, str, str, str]]:
    """Week by week through detection with ``configs(week)``: the alerts, as ``(week,
    kind, decision, status)``; in ``held``, what `warnd status` lists each week as rises
    held back by a silence."""
    told = []
    for w in weeks:
        cfg = configs(w)
        put_weekly(cfg.state_dir, values[: w + 1], start=START)
        told += [(w, a["kind"], a["decision"], a["status"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
        if held is not None:
            store = Store.in_dir(cfg.state_dir)
            try:
                held[w] = store.rises_held_back()
            finally:
                store.close()
    return told


def _lab_rise(weeks: int, rise: int, calm: int) -> np.ndarray:
    """The lab's ketamine counts, tripled from week ``rise`` to before ``calm``."""
    lam = np.full(weeks, 5.0)
    lam[rise:calm] *= 3
    return np.random.default_rng(3).poisson(lam).astype(float)


def test_a_rise_held_for_corroboration_is_told_once_the_config_no_longer_asks_it(tmp_path):
    """With ``require_corroboration`` the lab's lone rise is held back; the config is
    then reloaded without it while the rise goes on. The first week after, the rise is
    told (an episode's first message), and its end when it comes. Before, a rise held
    back was never told unless a series' episode opened or grew again."""
    loose = load_config(write_config(tmp_path, SOURCES + MAIL))
    strict = load_config(write_config(
        tmp_path, SOURCES + MAIL + "\n[detection]\nrequire_corroboration = true\n",
        name="strict.toml"))
    weeks, rise, calm, loosened = 160, 110, 125, 116
    held: dict[int, list[str]] = {}
    told = _weeks(lambda w: strict if w < loosened else loose,
                  _lab_rise(weeks, rise, calm), range(rise - 2, weeks), held)
    assert not any(held.values())  # not said to wait for the end of a silence
    trend = [(w, d) for w, k, d, _ in told if k == "trend"]
    assert [d for _, d in trend] == ["open", "resolve"]
    assert trend[0][0] == loosened and trend[1][0] > calm


def test_a_rise_muted_when_it_opened_is_told_once_the_substance_is_unmuted(tmp_path):
    """Ketamine is muted (``[substances.ketamin] muted = true``) when its rise at the lab
    opens, and unmuted while the rise goes on. The first week it is unmuted, the rise is
    told as an episode's first message, and its end when it comes; the one-off spike
    seen while it was muted, told to nobody, gets no end. Before, nothing was told after
    the unmuting, and then the end of a rise (and of a spike) nobody had heard of."""
    loud = load_config(write_config(tmp_path, SOURCES + MAIL))
    muted = load_config(write_config(
        tmp_path, SOURCES + MAIL, name="muted.toml",
        substances=SUBSTANCES.replace('slang = ["ket"]', 'slang = ["ket"]\nmuted = true')))
    weeks, rise, calm, unmuted = 160, 110, 125, 116
    held: dict[int, list[str]] = {}
    told = _weeks(lambda w: muted if w < unmuted else loud, _lab_rise(weeks, rise, calm),
                  range(rise - 2, weeks), held)
    assert not any(held.values())  # not said to wait for the end of a silence
    assert told[0][0] < unmuted and {s for w, *_, s in told if w < unmuted} == {"muted"}
    sent = [(w, k, d) for w, k, d, s in told if s == "open"]
    assert [(k, d) for _, k, d in sent] == [("trend", "open"), ("trend", "resolve")]
    assert sent[0][0] == unmuted and sent[1][0] > calm


LAB_IN = """
[[sources]]
name = "lab"
kind = "count_table"
location = "data/lab.csv"
interval = "1h"
dimension = "use"
region = "{region}"
"""


def test_a_source_whose_region_changed_no_longer_holds_the_old_series_open(tmp_path):
    """The lab's region is corrected in the config (Vestland → the whole country) while
    its ketamine rise is open and told: its table now makes a new series, and the old
    one gets no more data. The rise's end is told when the new series' episode ends, and
    the next rise is told as a new one. Before, the old series' episode stayed open for
    good: no end was told, and the next rise was taken for the same episode and not told
    at all; and the digest listed the rise as open for good."""
    (tmp_path / "data").mkdir()
    vestland = load_config(write_config(tmp_path, LAB_IN.format(region="46") + MAIL))
    country = load_config(write_config(tmp_path, LAB_IN.format(region="NO") + MAIL,
                                       name="country.toml"))
    weeks, changed, again = 175, 118, 155
    lam = np.full(weeks, 5.0)
    lam[110:125] *= 3
    lam[again:] *= 3
    values = np.random.default_rng(3).poisson(lam)
    told = []
    for w in range(108, weeks):
        rows = ["period,substance,value"] + [
            f"{START + timedelta(weeks=i)},ketamin,{values[i]}" for i in range(w + 1)]
        (tmp_path / "data" / "lab.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        cfg = vestland if w < changed else country
        res = Pipeline(cfg, clock=lambda w=w: _week_end(w)).run_once()
        told += [(w, a["decision"]) for a in res["alerts"] if a["kind"] == "trend"]
        if w > changed + 8:  # the old series is neither agreeing nor disagreeing
            assert all("lab:ketamin:46" not in json.dumps(a["data"]) for a in res["alerts"])
        if w == again - 1:  # between the rises, the digest shows nothing open either
            store = Store.in_dir(cfg.state_dir)
            try:
                assert digest.build(cfg, store, end=_week_end(w))["open"] == []
            finally:
                store.close()
    assert told[0][1] == "open" and told[0][0] < changed
    ends = [w for w, d in told if d == "resolve"]
    assert len(ends) == 1 and ends[0] < again
    assert [d for w, d in told if w > ends[0]][:1] == ["open"]
    assert min(w for w, _ in told if w > ends[0]) >= again


def test_a_substance_taken_out_of_the_config_leaves_the_open_alerts(tmp_path):
    """Ketamine's rise is told and open; the config is then reloaded without ketamine.
    Nothing judges its data any more, so its episode never ends: the next whole
    detection pass resolves its open alerts, and `warnd status` no longer lists them as
    open. Before, the rise stayed open for good."""
    from tests.alerting_env import finding, make_config, seed_series
    from warnd.alerting import decide
    from warnd.service.health import collect_status

    cfg = make_config(tmp_path, MAIL)
    store = Store.in_dir(cfg.state_dir)
    seed_series(store, "lab")
    now = _week_end(10)
    (a,) = decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {},
                                   now=now)
    store.close()
    assert [r["id"] for r in collect_status(cfg, now=now)["open_alerts"]] == [a["id"]]
    without = load_config(write_config(tmp_path, SOURCES + MAIL, substances="""
[substances.heroin]
names = ["heroin"]
"""))
    Pipeline(without, clock=lambda: now + timedelta(hours=1)).detect()
    assert collect_status(without, now=now)["open_alerts"] == []
