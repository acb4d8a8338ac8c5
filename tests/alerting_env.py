"""Building blocks for alerting tests: a config with targets, a store with series."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from detectors.base import Finding
from feeds.base import Item, Observation
from tests.conftest import write_config
from warnd.config import load_config
from warnd.store import Store

HOSTILE = (
    '<script>alert(1)</script><a href="http://evil.example/x">Klikk</a> '
    "[bad](http://evil.example/md) {{app_title}}"
)

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

[[sources]]
name = "media"
kind = "rss"
location = "media/"
dimension = "interest"
"""


def make_config(tmp: Path, targets: str, extra: str = "", *, sources: str = SOURCES):
    return load_config(write_config(tmp, sources + targets + extra))


#: the warnings page (overdosefare) as a source of its own
NOTICES = """
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "od/varsler.html"
dimension = "availability"
"""


def notice_config(tmp: Path, targets: str, extra: str = "", *,
                  heroin: str = '"Heroin"', name: str = "config.toml"):
    """A config of the warnings page alone, watching heroin (its ``label``: ``heroin``),
    with ``targets`` (:func:`target`) and ``extra`` sections (``[alerting]`` …)."""
    return load_config(write_config(tmp, NOTICES + targets + extra, name=name, substances=(
        f'\n[substances.heroin]\nlabel = {heroin}\nnames = ["heroin"]\n')))


def target(name: str, url: str, tags: str = "") -> str:
    t = f'\n[[targets]]\nname = "{name}"\nurl = "{url}"\n'
    if tags:
        t += f"tags = [{tags}]\n"
    return t


def seed_series(
    store: Store,
    source: str,
    substance: str = "ketamin",
    *,
    n: int = 30,
    jump_at: int = 24,
    start: date = date(2026, 1, 5),
) -> None:
    obs = [
        Observation(
            source=source,
            substance=substance,
            period=start + timedelta(weeks=i),
            value=float(5 + (i % 3) + (12 if i >= jump_at else 0)),
        )
        for i in range(n)
    ]
    store.ingest(
        source, location=f"{source}.csv", sha256=None, observations=obs, items=(), problems=()
    )


def seed_headline(
    store: Store,
    title: str,
    link: str,
    substance: str = "ketamin",
    when: datetime = datetime(2026, 7, 1, 9, 0, tzinfo=UTC),
) -> None:
    it = Item(
        key=f"k-{abs(hash(title))}",
        source="media",
        published_at=when,
        title=title,
        link=link,
        summary="",
        substances=(substance,),
    )
    store.ingest(
        "media", location="media.xml", sha256=None, observations=(), items=[it], problems=()
    )


def finding(
    source: str,
    *,
    substance: str = "ketamin",
    onset: date = date(2026, 6, 22),
    detected: date = date(2026, 7, 6),
    rel: float = 1.8,
    category: int = 2,
    kind: str = "trend",
    direction: str = "increase",
    dimension: str = "use",
) -> Finding:
    return Finding(
        source=source,
        substance=substance,
        kind=kind,
        direction=direction,
        onset=onset,
        detected_at=detected,
        level_before=6.0,
        level_after=6.0 * (1 + rel),
        relative_change=rel,
        strength=7.5,
        p_value=0.0004,
        category=category,
        dimension=dimension,
        method="test",
    )


def judge_period(cfg, store: Store, period: date, per_source: dict, *, now: datetime,
                 ) -> list[dict]:
    """What ``Pipeline._detect_substance`` does for one period of ketamine's lab and
    customs series: each series' episode rules on its findings (``per_source``), then
    the substance's messages."""
    from warnd.alerting import decide

    firing, states = [], {}
    for src in ("lab", "customs"):
        scope = f"series:{src}:ketamin"
        tr = decide.tracker_from_state(
            store.episode_state(scope), cfg.detection_params("ketamin", src))
        for action, f in decide.tracker_update(tr, period, per_source.get(src, [])):
            if action in decide.SEND_ACTIONS:
                firing.append((f, action))
        states[scope] = decide.tracker_state(tr)
    return decide.enqueue_findings(cfg, store, "ketamin", firing, states, now=now)
