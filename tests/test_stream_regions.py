"""One substance's rise that starts in one region and spreads, week by week through
detection on a real store and out to a real SMTP server, read per desk: a regional desk
routed by `regions`, a national desk, and ops for everything."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from feeds.base import Observation
from tests.alerting_env import make_config
from tests.scenario import noon_after_week
from tests.servers import wait_for
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2023, 6, 5)  # a Monday
WEEKS = 150

SOURCES = """
[[sources]]
name = "lab"
kind = "count_table"
location = "lab/"
dimension = "use"

[[sources]]
name = "customs"
kind = "count_table"
location = "customs/"
dimension = "availability"
"""

ROUTES = """
[[routes]]
regions = ["46"]
targets = ["vestland"]

[[routes]]
regions = ["03"]
targets = ["oslo"]

[[routes]]
regions = ["NO"]
targets = ["national"]

[[routes]]
targets = ["ops"]

[alerting]
send_resolved = true
chart = false
"""

#: reminders every four weeks
REMIND = "\n[detection]\nrepeat_after_periods = 4\n"


def _desks(smtp) -> str:
    """Vestland's desk, Oslo's, the national desk (national sources: region "NO") and
    ops for everything, all on one SMTP server (told apart by their addresses)."""
    out = ""
    for name, to in (("vestland", "v@example.org"), ("oslo", "o@example.org"),
                     ("national", "n@example.org"), ("ops", "ops@example.org")):
        out += f'\n[[targets]]\nname = "{name}"\nurl = "{smtp.url(to)}"\n'
    return out + ROUTES


def _series(seed: int, rise: int | None, *, base: float = 5.0, factor: float = 4.0,
            until: int | None = None) -> np.ndarray:
    lam = np.full(WEEKS, base)
    if rise is not None:
        lam[rise:until] *= factor
    return np.random.default_rng(seed).poisson(lam).astype(float)


def _put(cfg, source: str, region: str, values, upto: int) -> None:
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest(source, location=f"{source}.csv", sha256=None, problems=(), items=(),
                     observations=[Observation(source=source, substance="ketamin",
                                               region=region, period=START + timedelta(weeks=i),
                                               value=float(v))
                                   for i, v in enumerate(values[:upto])])
    finally:
        store.close()


def _by_desk(smtp) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in smtp.messages:
        out.setdefault(str(m["To"]).split("@")[0], []).append(str(m["Subject"]))
    return out


def _run(cfg, smtp, series: dict[tuple[str, str], np.ndarray], weeks: range) -> list:
    """Week by week: each ``(source, region)`` series as published to the week's end,
    detection and dispatch at noon the day after; what each round decided."""
    stream = []
    sent = 0
    for w in weeks:
        for (source, region), values in series.items():
            _put(cfg, source, region, values, w + 1)
        p = Pipeline(cfg, clock=lambda w=w: noon_after_week(START, w))
        made = p.detect()
        stream += [(w, a["kind"], a["decision"], a.get("targets")) for a in made]
        res = p.dispatch()
        sent += res.get("delivered", 0)
        wait_for(lambda: len(smtp.messages) == sent, what=f"{sent} emails")
    return stream


def _trend(desk: list[str]) -> list[str]:
    """A desk's trend messages, by their first words."""
    return [s.split(":")[0] for s in desk if "topp" not in s]


def test_a_rise_spreading_from_a_region_escalates_and_reminds_each_desk_it_names(
        tmp_path, smtp_server):
    """Ketamine rises at the lab's Vestland series (week 90); from week 100 customs,
    a national source, sees it too, and more strongly; reminders every four weeks.
    Vestland's desk and ops have the opening. When customs agrees, both hear
    "Forverring" that week, and the national desk has it as its opening; the reminders
    that follow name Vestland's rise and reach Vestland's desk as they reach the others.
    Before, the week customs' rise opened was also a week the lab's spike was reminded
    of: the lab's series was left out of the rising sources, customs was judged alone,
    no more than told, and the escalation was lost (ops heard of the strong rise only in
    a reminder); and every message whose strongest series was customs' went only where
    region "NO" routes: Vestland's desk never heard that the rise it had been told of
    grew, nor any reminder of it."""
    cfg = make_config(tmp_path, _desks(smtp_server) + REMIND, sources=SOURCES)
    series = {("lab", "46"): _series(1, 90), ("customs", "NO"): _series(3, 100, factor=8.0)}
    stream = _run(cfg, smtp_server, series, range(88, 110))
    assert [(w, d) for w, k, d, _ in stream if k == "trend"] == [
        (92, "open"), (96, "repeat"), (100, "repeat"), (101, "escalate"), (105, "repeat"),
        (109, "repeat")]
    desks = _by_desk(smtp_server)
    for desk in ("v", "ops"):
        assert _trend(desks[desk]) == ["Liten økning", "Påminnelse", "Påminnelse",
                                       "Forverring", "Påminnelse", "Påminnelse"]
    assert _trend(desks["n"]) == ["Sterk økning", "Påminnelse", "Påminnelse"]
    assert "o" not in desks  # Oslo's series never rose: its desk hears nothing


def test_a_rise_opening_in_two_regions_at_once_reaches_both_desks(tmp_path, smtp_server):
    """Customs (national) and the lab's Vestland series rise the same week; customs'
    rise is the stronger. The opening names both, and reaches Vestland's desk as well as
    the national desk; customs' spike alone, the week before, goes only where "NO"
    routes. Before, the opening went only where its strongest series' region routed:
    Vestland's desk never heard of a rise in its own region."""
    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    series = {("lab", "46"): _series(1, 100), ("customs", "NO"): _series(3, 100, factor=8.0)}
    stream = _run(cfg, smtp_server, series, range(98, 104))
    assert stream == [(100, "spike", "open", ["national", "ops"]),
                      (101, "trend", "open", ["national", "ops", "vestland"])]
    assert _by_desk(smtp_server)["v"] == ["Sterk økning: ketamin — 2 kilder"]


def test_a_second_region_of_one_source_is_told_to_its_desk_with_the_escalation(
        tmp_path, smtp_server):
    """The lab's Vestland series rises from week 90, its Oslo series from week 98, and
    customs (national) from week 102; all fall back at week 112. The lab's second region
    is no second source (nothing is sent for it alone); the escalation customs brings
    names both of the lab's regions, and Oslo's desk has it as its opening. The end goes
    to every desk that had the rise, once no series holds it open."""
    cfg = make_config(tmp_path, _desks(smtp_server), sources=SOURCES)
    series = {
        ("lab", "46"): _series(1, 90, until=112),
        ("lab", "03"): _series(2, 98, until=112),
        ("customs", "NO"): _series(3, 102, until=112),
    }
    stream = _run(cfg, smtp_server, series, range(88, 140))
    assert [(w, d, t) for w, k, d, t in stream if k == "trend"] == [
        (92, "open", ["vestland", "ops"]),
        (103, "escalate", ["national", "ops", "oslo", "vestland"]),
        (136, "resolve", ["national", "ops", "oslo", "vestland"])]
    desks = _by_desk(smtp_server)
    assert _trend(desks["o"]) == ["Sterk økning", "Avsluttet"]
    assert _trend(desks["v"]) == ["Liten økning", "Forverring", "Avsluttet"]
