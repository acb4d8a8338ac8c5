"""A source whose newest data is weeks old, week by week through detection with a real
store: it has said nothing new, so a rise's message does not count it as a source
without an increase; it notes how old its data is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.alerting_env import SOURCES
from tests.conftest import write_config
from tests.scenario import put_weekly
from tests.test_stream_config import MAIL, START, _lab_rise, _week_end
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store


@pytest.mark.parametrize("customs_until", [None, 100, "late"])
def test_a_source_with_old_data_is_not_listed_as_without_an_increase(tmp_path,
                                                                     customs_until):
    """The lab's ketamine counts triple from week 110; customs' stay steady. While
    customs reports week by week, the rise's opening lists it as a source without an
    increase ("1 av 2 kilder øker"). When customs' newest week is week 100, ten weeks
    before, it is not listed there nor counted ("1 av 1"): the message notes instead
    that its newest data are from week 100. Before, a source that had said nothing new
    for ten weeks was listed as not agreeing, as if its data showed no rise. When every
    source's weeks are read six weeks late, customs' old data still cover the weeks the
    lab rose, and it is listed as not agreeing, as its data say."""
    cfg = load_config(write_config(tmp_path, SOURCES + MAIL))
    weeks, rise, calm = 130, 110, 125
    lab = _lab_rise(weeks, rise, calm)
    customs = np.random.default_rng(5).poisson(np.full(weeks, 5.0)).astype(float)
    opened = []
    for w in range(rise - 2, rise + 6):
        last = w if customs_until in (None, "late") else min(w, customs_until)
        put_weekly(cfg.state_dir, customs[: last + 1], start=START, source="customs")
        put_weekly(cfg.state_dir, lab[: w + 1], start=START)
        read = w + (6 if customs_until == "late" else 0)
        opened += [a["id"] for a in Pipeline(cfg, clock=lambda r=read: _week_end(r)).detect()
                   if a["kind"] == "trend" and a["decision"] == "open"]
    store = Store.in_dir(cfg.state_dir)
    try:
        row = store.q("SELECT data, body FROM alerts WHERE id=?", opened)[0]
    finally:
        store.close()
    data, body = json.loads(row["data"]), row["body"]
    assert len(opened) == 1 and [a["source"] for a in data["agree"]] == ["lab"]
    if customs_until is None:
        assert data["disagree"] == ["customs:ketamin"]
        assert "Kilder uten økning" in body and "1 av 2 kilder" in body
        assert data["stale"] == []
    elif customs_until == "late":
        assert data["disagree"] == ["customs:ketamin"]
        assert "Kilder uten økning" in body and "1 av 2 kilder" in body
        assert [s["source"] for s in data["stale"]] == ["lab"]
    else:
        assert data["disagree"] == []
        assert "Kilder uten økning" not in body and "1 av 1 kilde" in body
        assert [s["source"] for s in data["stale"]] == ["customs"]
        assert "Merk: nyeste data fra" in body
