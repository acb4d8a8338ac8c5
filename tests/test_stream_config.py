"""Config changes over time: what a substance's recipients are told when the config
is reloaded (a new :class:`Pipeline` with another config between rounds, as SIGHUP
does) while an episode is open (week by week through detection, a real store)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from feeds.base import Observation
from tests.alerting_env import SOURCES, target
from tests.conftest import SUBSTANCES, write_config
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
MAIL = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org") + (
    "\n[alerting]\nsend_resolved = true\n")


def _week_end(w: int) -> datetime:
    return datetime.combine(START + timedelta(weeks=w + 1), datetime.min.time(),
                            UTC) + timedelta(hours=12)


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
    lam = np.full(weeks, 5.0)
    lam[rise:calm] *= 3
    values = np.random.default_rng(3).poisson(lam).astype(float)
    told = []
    for w in range(rise - 2, weeks):
        store = Store.in_dir(loud.state_dir)
        try:
            store.ingest("lab", location="lab.csv", sha256=None, problems=(), items=(),
                         observations=[Observation(source="lab", substance="ketamin",
                                                   period=START + timedelta(weeks=i),
                                                   value=float(v))
                                       for i, v in enumerate(values[: w + 1])])
        finally:
            store.close()
        cfg = muted if w < unmuted else loud
        told += [(w, a["kind"], a["decision"], a["status"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    assert told[0][0] < unmuted and {s for w, *_, s in told if w < unmuted} == {"muted"}
    sent = [(w, k, d) for w, k, d, s in told if s == "open"]
    assert [(k, d) for _, k, d in sent] == [("trend", "open"), ("trend", "resolve")]
    assert sent[0][0] == unmuted and sent[1][0] > calm
