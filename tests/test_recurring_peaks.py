"""A peak that comes back every New Year, through the real pipeline week by week: the
daemon's cycles (poll → store → incremental detection → alerts) stay quiet at a New
Year of the usual size and alert on a week that is not usual."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from tests.conftest import write_config
from tests.scenario import LAB_SOURCE
from warnd.config import load_config
from warnd.pipeline import Pipeline

START = date(2021, 1, 4)  # a Monday
WEEKS = 261  # five years, to the New Year of week 260
NEW_YEARS = [i for i in range(WEEKS) if (START + timedelta(weeks=i)).isocalendar()[1] == 1]


def _ketamin(extra_at: int | None) -> list[int]:
    rng = np.random.default_rng(11)
    mu = np.full(WEEKS, 20.0)
    mu[NEW_YEARS] *= 2.5
    if extra_at is not None:
        mu[extra_at] *= 6.0
    return [int(x) for x in rng.poisson(mu)]


def _stream(tmp_path, extra: str, *, extra_at: int | None = None) -> dict[int, list[dict]]:
    """Weeks 0-199 judged at once, then one week a cycle to the end: the alerts each
    cycle raised, by week."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(tmp_path, extra + LAB_SOURCE.format(interval="1h")))
    ket = _ketamin(extra_at)
    csv = tmp_path / "data" / "lab.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    out: dict[int, list[dict]] = {}
    for last in range(199, WEEKS):
        rows = [f"{(START + timedelta(weeks=i)).isoformat()},ketamin,{ket[i]}"
                for i in range(last + 1)]
        csv.write_text("period,substance,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
        now = datetime.combine(START + timedelta(weeks=last, days=3), time(12), UTC)
        out[last] = Pipeline(cfg, clock=lambda n=now: n).run_once()["alerts"]
    return out


def test_the_usual_new_year_is_quiet_and_another_week_alerts(tmp_path):
    extra_at = 240
    sent = _stream(tmp_path / "on", "", extra_at=extra_at)
    weeks = sorted(w for w, alerts in sent.items() if alerts)
    assert [w for w in NEW_YEARS if w > 199] == [208, 260]  # the stream passes two
    assert weeks == [extra_at]
    assert [a["kind"] for a in sent[extra_at]] == ["spike"]


def test_without_the_earlier_years_the_new_year_alerts(tmp_path):
    sent = _stream(tmp_path / "off", "[detection]\nrecurring_years = 0\n")
    alerted = {w for w, alerts in sent.items() if alerts}
    assert alerted and alerted <= {208, 260}
    assert all(a["kind"] == "spike" for w in alerted for a in sent[w])
