"""A substance's spikes week by week through detection with a real store: a told spike's
end while others are only recorded within its rise."""

from __future__ import annotations

import numpy as np

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.scenario import START, put_weekly
from tests.test_stream_config import MAIL, _lab_rise, _week_end
from warnd.config import load_config
from warnd.pipeline import Pipeline


def test_a_told_spike_ends_when_another_source_spikes_within_the_rise_that_week(tmp_path):
    """The lab's one-off spike of ketamine is told, then its rise. The week the lab's
    spike ends, customs shows a spike of its own, within the rise: only recorded, not
    told (no message goes that week). The lab's spike is told ended that week. Before,
    the spike recorded that week was taken for one that keeps the spike episode open,
    and then forgotten (recorded only, it leaves no episode behind): the end was never
    told."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, rise, calm, ends = 150, 110, 125, 122
    lab = _lab_rise(weeks, rise, calm)
    customs = np.random.default_rng(5).poisson(np.full(weeks, 8.0)).astype(float)
    customs[ends] = 40
    told = []
    for w in range(rise - 2, weeks):
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        put_weekly(cfg.state_dir, customs[: w + 1], start=START, source="customs")
        told += [(w, a["kind"], a["decision"], a["status"])
                 for a in Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect()]
    spikes = [(w, d, s) for w, k, d, s in told if k == "spike"]
    assert spikes == [(rise + 1, "open", "open"), (ends, "resolve", "open")]
