"""The store: migrations, idempotent ingestion, revisions, item dedupe, outbox."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta

import pytest

from feeds.base import Item, Observation, Problem
from warnd.errors import StoreError
from warnd.store import MIGRATIONS, Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "w.sqlite")
    yield s
    s.close()


def obs(period: str, value: float, **kw) -> Observation:
    return Observation(source="lab", substance="ketamin", period=date.fromisoformat(period),
                       value=value, **kw)


def item(key: str, when: str, subs=("ketamin",), source="media") -> Item:
    return Item(key=key, source=source, published_at=datetime.fromisoformat(when).replace(tzinfo=UTC),
                title=f"title {key}", link=f"https://x/{key}", summary="", substances=subs)


def test_wal_and_schema_version(store, tmp_path):
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = Store(tmp_path / "w.sqlite")  # re-running migrations is a no-op
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "new.sqlite"
    sqlite3.connect(p).execute("PRAGMA user_version = 999").connection.close()
    with pytest.raises(StoreError, match="newer than this warnd"):
        Store(p)


def test_unusable_state_dir_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(f / "sub" / "w.sqlite")


def test_ingest_twice_is_idempotent(store):
    batch = [obs("2026-01-05", 3), obs("2026-01-12", 5, denominator=40)]
    r1 = store.ingest("lab", location="f.csv", sha256="a", observations=batch, items=(),
                      problems=())
    snapshot = store.q("SELECT * FROM observations ORDER BY period")
    r2 = store.ingest("lab", location="f.csv", sha256="a", observations=batch, items=(),
                      problems=())
    assert r1["observations_new"] == 2
    assert r2["observations_new"] == 0 and r2["observations_revised"] == 0
    assert store.q("SELECT * FROM observations ORDER BY period") == snapshot
    assert store.document_seen("lab", "f.csv", "a")


def test_revision_replaces_value_and_keeps_history(store):
    store.ingest("lab", location="a.csv", sha256="a", observations=[obs("2026-01-05", 3)],
                 items=(), problems=())
    r = store.ingest("lab", location="b.csv", sha256="b",
                     observations=[obs("2026-01-05", 7, ref="late results")], items=(), problems=())
    assert r["observations_revised"] == 1
    assert store.q("SELECT value FROM observations")[0]["value"] == 7
    rev = store.q("SELECT old_value, new_value, ref FROM revisions")
    assert rev == [{"old_value": 3.0, "new_value": 7.0, "ref": "late results"}]


def test_items_count_once_across_polls_and_feeds(store, fixed_now):
    a = [item("k1", "2026-03-02T10:00:00"), item("k2", "2026-03-03T10:00:00")]
    store.ingest("media", location="feed1", sha256="1", observations=(), items=a, problems=())
    # the same article syndicated by another feed of the source, plus one new
    b = [item("k1", "2026-03-02T10:00:00"), item("k3", "2026-03-10T10:00:00")]
    r = store.ingest("media", location="feed2", sha256="2", observations=(), items=b, problems=())
    assert r["items_new"] == 1
    store.derive_item_counts("media", ["ketamin", "heroin"], now=fixed_now)
    counts = {(r["substance"], r["period"]): r["value"] for r in store.q(
        "SELECT substance, period, value FROM observations WHERE source='media'")}
    assert counts[("ketamin", "2026-03-02")] == 2
    assert counts[("ketamin", "2026-03-09")] == 1
    assert counts[("heroin", "2026-03-02")] == 0
    again = store.derive_item_counts("media", ["ketamin", "heroin"], now=fixed_now)
    assert again == []  # nothing changed


def test_current_incomplete_week_is_left_out(store):
    now = datetime(2026, 3, 11, 12, tzinfo=UTC)  # a Wednesday
    store.ingest("media", location="f", sha256="1", observations=(),
                 items=[item("a", "2026-03-02T10:00:00"), item("b", "2026-03-10T10:00:00")],
                 problems=())
    store.derive_item_counts("media", ["ketamin"], now=now)
    periods = [r["period"] for r in store.q("SELECT period FROM observations")]
    assert periods == ["2026-03-02"]


def test_problems_are_recorded_once_per_place(store):
    p = [Problem("f.csv line 3", "not a number: 'x'")]
    for _ in range(2):
        store.ingest("lab", location="f.csv", sha256=None, observations=(), items=(), problems=p)
    assert len(store.q("SELECT * FROM problems")) == 1


def test_alert_dedupe_and_outbox(store, fixed_now):
    alert = {"dedupe_key": "ketamin:trend:x", "substance": "ketamin", "kind": "trend",
             "severity": "warning", "decision": "open", "title": "t", "body": "b", "data": {}}
    aid = store.add_alert(alert, ["mail", "teams"], episodes={"series:a": {"x": 1}}, now=fixed_now)
    assert aid is not None
    assert store.add_alert(alert, ["mail", "teams"], now=fixed_now) is None
    due = store.due_deliveries(fixed_now)
    assert [(d["alert_id"], d["target"]) for d in due] == [(aid, "mail"), (aid, "teams")]
    store.mark_delivery(aid, "mail", status="delivered", now=fixed_now)
    store.mark_delivery(aid, "teams", status="pending", error="FAILURE",
                        next_attempt_at=fixed_now + timedelta(minutes=1), now=fixed_now)
    assert store.due_deliveries(fixed_now) == []
    assert [d["target"] for d in store.due_deliveries(fixed_now + timedelta(minutes=2))] == ["teams"]
    assert store.episode_state("series:a") == {"x": 1}


def test_many_series_tails_and_states_read_together_equal_one_by_one(store):
    """series_tails/detector_states (a cycle's reads, a few hundred series per query)
    give what load_series/detector_state give per series; a series without a state or
    with an unreadable one is left out."""
    subs = [f"s{i:03d}" for i in range(420)]  # more than one query's worth
    rows = []
    for i, sub in enumerate(subs):
        for w in range(i % 7 + 1):
            p = (date(2026, 1, 5) + timedelta(weeks=w)).isoformat()
            rows.append(Observation(source="lab", substance=sub, period=date.fromisoformat(p),
                                    value=float(i + w),
                                    denominator=float(100 + w) if i % 3 == 0 else None))
    store.ingest("lab", location="t.csv", sha256="t", observations=rows, items=(),
                 problems=())
    keys = [("lab", sub, "", "count") for sub in subs]
    after = {k: date(2026, 1, 5) + timedelta(weeks=i % 3) for i, k in enumerate(keys)}
    tails = store.series_tails((k, after[k], "use") for k in keys)
    for k in keys:
        one = store.load_series(*k, dimension="use", after=after[k])
        got = tails[k]
        assert got.periods == one.periods and list(got.values) == list(one.values)
        assert (got.denominators is None) == (one.denominators is None)
        if one.denominators is not None:
            assert list(got.denominators) == list(one.denominators)
    assert sum(len(t.periods) for t in tails.values()) > 0
    states = {k: {"version": 1, "i": i, "y": [float(i)] * 9} for i, k in enumerate(keys[:300])}
    store.mark_judged([(k, 1, None, st) for k, st in states.items()])
    store.db.execute("UPDATE series_states SET state=x'00' WHERE substance='s005'")
    got = store.detector_states(keys)
    assert got == {k: v for k, v in states.items() if k[1] != "s005"}
    assert store.detector_state(keys[7]) == got[keys[7]]
    # a state and the rows after a period in one read: the states as stored (an
    # unreadable one too), the rows as load_series has them, none after the last
    both = store.states_with_rows((k, after[k]) for k in keys)
    blobs = dict(store.state_blobs(keys))
    assert both.keys() == blobs.keys() == set(keys[:300])
    for k, (blob, new_rows) in both.items():
        assert blob == blobs[k]
        one = store.load_series(*k, dimension="use", after=after[k])
        assert [date.fromisoformat(r[0]) for r in new_rows] == list(one.periods)
        assert [r[1] for r in new_rows] == list(one.values)
        assert [r[2] for r in new_rows] == (
            [None] * len(one.periods) if one.denominators is None else list(one.denominators))
    assert any(not r for _, r in both.values()) and any(len(r) > 1 for _, r in both.values())


def test_the_store_loads_without_numpy_which_still_imports_after():
    """sqlite_utils is imported without numpy (a light command never loads it); numpy
    and the store both work afterwards in the same process."""
    import subprocess
    import sys

    probe = ("import sys; import warnd.store as s; assert 'numpy' not in sys.modules; "
             "import numpy; st = s.Store(':memory:'); "
             "print(numpy.float64(2.5) * 2, st.q('SELECT 1 AS one')[0]['one'])")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5.0", "1"]


def test_open_episodes_are_read_from_their_mark_whatever_floats_they_hold(store):
    """Episode states are marked open when they have an episode open and found by that
    mark (an index), not by reading JSON in SQL: a rise from nothing (an infinite
    change, written ``Infinity``) and an unknown p-value (``NaN``) are found like any,
    and closing an episode takes it out."""
    import math

    from detectors.base import series_key

    for sub, region in (("ketamin", "46"), ("ketamin", "03"), ("kokain", "46")):
        store.ingest("lab", location=f"{sub}{region}", sha256=None, items=(), problems=(),
                     observations=[Observation(source="lab", substance=sub, region=region,
                                               period=date(2026, 1, 5), value=3.0)])
    a, b, c = (f"series:{series_key('lab', s, r, 'count')}"
               for s, r in (("ketamin", "46"), ("ketamin", "03"), ("kokain", "46")))
    rise = {"source": "lab", "relative_change": math.inf, "p_value": math.nan, "category": 2}
    with store.write() as db:
        store.save_episode_state(a, {"tracker": {}, "active": {"trend:increase": rise}}, db)
        store.save_episode_state(b, {"tracker": {}, "active": {}}, db)
        store.save_episode_state(c, {"tracker": {}, "active": {"trend:decrease": rise}}, db)
        store.save_episode_state("digest", {"since": "2026-01-01"}, db)
    assert store.open_episode_scopes("ketamin", "trend:increase") == {a}
    assert store.open_episode_scopes("ketamin", "trend:decrease") == set()
    assert store.open_episode_scopes("kokain", "trend:decrease") == {c}
    got = store.active_episode_states("ketamin")
    assert list(got) == [a] and math.isinf(got[a]["active"]["trend:increase"]["relative_change"])
    assert list(store.open_episode_states()) == [a, c]  # in the order first stored
    with store.write() as db:  # the rise ends
        store.save_episode_state(a, {"tracker": {}, "active": {}}, db)
    assert store.active_episode_states("ketamin") == {}
    assert list(store.open_episode_states()) == [c]
