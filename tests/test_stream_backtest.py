"""`warnd backtest` against the daemon: the sources it counts as agreeing with a rise are
those the daemon names, on the same data moved week by week through the real pipeline."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.test_stream_config import MAIL, START
from tests.test_stream_replay_spikes import _daemon
from warnd.cli import main
from warnd.config import Config, load_config
from warnd.store import Store


def _counts(seed: int, weeks: int, level: float, rise: int, factor: float,
            until: int | None = None) -> np.ndarray:
    """Weekly counts at ``level``, ``factor`` times as many from week ``rise`` on (to
    before week ``until``)."""
    lam = np.full(weeks, level)
    lam[rise:until] *= factor
    return np.random.default_rng(seed).poisson(lam).astype(float)


def _told(cfg: Config) -> list[tuple[int, str, list[str]]]:
    """The daemon's trend messages of a rise: (week, decision, the sources it names)."""
    store = Store.in_dir(cfg.state_dir)
    try:
        rows = store.q("SELECT created_at, decision, data FROM alerts WHERE kind='trend' "
                       "AND direction='increase' ORDER BY id")
    finally:
        store.close()
    return [((date.fromisoformat(r["created_at"][:10]) - START).days // 7 - 1, r["decision"],
             sorted({a["source"] for a in json.loads(r["data"])["agree"]})) for r in rows]


def _backtest(cfg: Config, series: dict[str, np.ndarray], weeks: range, capsys,
              ) -> list[tuple[int, str, str, list[str]]]:
    """`warnd backtest --json` of the same counts, with the daemon's config: its trend
    messages of the weeks the daemon ran, as (week, source, decision, agreeing sources)."""
    path = cfg.path.parent / "observations.csv"
    n = len(next(iter(series.values())))
    path.write_text("\n".join(["date,substance,source,value", *(
        f"{(START + timedelta(weeks=w)).isoformat()},ketamin,{source},{int(values[w])}"
        for w in range(n) for source, values in series.items())]) + "\n")
    capsys.readouterr()
    assert main(["--config", str(cfg.path), "backtest", "--observations", str(path),
                 "--json"]) == 0
    out = []
    for a in json.loads(capsys.readouterr().out):
        w = (date.fromisoformat(a["fired_at"]) - START).days // 7
        if a["kind"] == "trend" and w in weeks:
            assert a["n_sources"] == len(a["evidence"]["agreeing_sources"])
            out.append((w, a["source"], a["decision"], a["evidence"]["agreeing_sources"]))
    return out


def test_a_source_with_a_change_too_small_to_alert_does_not_agree(tmp_path, capsys):
    """Customs' ketamine seizures grow by 10 % at 300 a week: a significant change, but
    one the five-step scale calls stable, below ``min_alert_category``, so it opens no
    episode. Weeks later the lab's counts triple. The daemon told the lab's rise as
    one source's ("1 av 2 kilder øker"); `warnd backtest` on the same counts says the
    same. Before, it counted customs' small change as agreeing and told two sources."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks = range(104, 124)
    series = {"lab": _counts(3, weeks.stop, 5.0, 112, 3.0),
              "customs": _counts(3, weeks.stop, 300.0, 100, 1.1)}
    _daemon(cfg, series, weeks, apart=timedelta(0))
    told = _told(cfg)
    assert told == [(113, "open", ["lab"])], told
    assert _backtest(cfg, series, weeks, capsys) == [(113, "lab", "open", ["lab"])]


def _back_and_rising(tmp_path, capsys):
    """The lab's ketamine counts tripled for eight weeks (108-115), then back; customs'
    seizures tripled from week 119: the daemon's messages (:func:`_told`) and the
    backtest's (:func:`_backtest`)."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks = range(104, 128)
    series = {"lab": _counts(2, weeks.stop, 5.0, 108, 3.0, until=116),
              "customs": _counts(2, weeks.stop, 8.0, 119, 3.0)}
    _daemon(cfg, series, weeks, apart=timedelta(0))
    return _told(cfg), _backtest(cfg, series, weeks, capsys)


def test_a_source_agrees_while_its_episode_stays_open(tmp_path, capsys):
    """The lab's ketamine counts triple for eight weeks, then are back. Its trend stays
    current, but from week 120 its latest weeks are back at the usual level: those
    findings keep no episode open, and the episode ends four weeks after the last one
    that did (week 123). In week 120 customs' seizures, tripled since week 119, open a
    rise. The daemon told it as an escalation naming both sources (the lab's episode
    still open); `warnd backtest` on the same counts names both too. Before, it counted
    only the sources with a finding that week and told customs' rise as one source's."""
    told, got = _back_and_rising(tmp_path, capsys)
    assert told == [(110, "open", ["lab"]), (120, "escalate", ["customs", "lab"])], told
    assert (120, "customs", "open", ["customs", "lab"]) in got, got


def test_a_spike_does_not_agree_with_a_rise(tmp_path, capsys):
    """In the same weeks, customs' first tripled week (119) is a spike; its rise is a
    trend from the week after. The daemon names as agreeing with a rise only the sources
    whose rise is open, so nothing more was told that week; `warnd backtest` tells the
    same weeks, naming the same sources. Before, it counted customs' spike as agreeing
    with the lab's rise and told an escalation ("2 sources") the daemon did not."""
    told, got = _back_and_rising(tmp_path, capsys)
    assert [(w, src) for w, _, _, src in got] == [(w, src) for w, _, src in told], (
        got, told)
