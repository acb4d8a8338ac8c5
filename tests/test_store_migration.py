"""Schema 5: the ``series`` table, clustered observations, and the way up from schema 2;
schema 9: the detector states in a table of their own, and the way up from schema 8;
schema 10: the index of open episodes; schema 11: the counters of /metrics an operator's
action would lower; schema 12: every identity of each item; schema 13: each file's share
of a period (sources whose files add up), empty at first;
schema 14: the matching terms of the substances; schema 15: whether a later message
of an episode read as its opening; schema 16: the terms a substance counted afresh was
counted with before; schema 17: the file a file whose share is kept is a copy of;
schema 19: whether an attempt of a message read as its target's opening may have reached
it; schema 20: the weeks of a news feed's articles no poll read.

The schema-2 store is the one ``make demo`` left behind before schema 5
(``tests/fixtures/stores/demo-v2.sqlite.gz``), the schema-8 store the one it left
behind before schema 9 (``demo-v8.sqlite.gz``, every series with its detector state),
each opened by this version.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from detectors.base import series_key
from feeds.base import Observation
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "stores" / "demo-v2.sqlite.gz"
#: the clock of the demo run that made the fixture
MADE_AT = datetime(2026, 11, 30, 2, 14, tzinfo=UTC)


#: where the checkout lay when the fixture was made (documents are kept by absolute path)
MADE_IN = "/work/h15/"
FIXTURE_V8 = ROOT / "tests" / "fixtures" / "stores" / "demo-v8.sqlite.gz"
MADE_IN_V8 = "/tmp/headrev/"


def _unpack(dest: Path, fixture: Path = FIXTURE, made_in: str = MADE_IN) -> Path:
    """A copy of the fixture, its documents' paths moved to this checkout (as if the
    demo had been run here)."""
    dest.mkdir(parents=True, exist_ok=True)
    db = dest / "warnd.sqlite"
    with gzip.open(fixture, "rb") as src, open(db, "wb") as out:
        shutil.copyfileobj(src, out)
    conn = sqlite3.connect(db)
    try:
        conn.execute("UPDATE documents SET location = ? || substr(location, ?) "
                     "WHERE location LIKE ? || '%'", (f"{ROOT}/", len(made_in) + 1, made_in))
        conn.commit()
    finally:
        conn.close()
    return db


def _rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _judge_a_late_week(pipeline: Pipeline, store: Store, key: tuple, last: date) -> date:
    """One new week for one series (``key``, whose last period is ``last``), ingested
    and judged: only that series is pending, and then none. Returns the week."""
    new = date.fromordinal(last.toordinal() + 7)
    store.ingest(key[0], location="late.csv", sha256="late", items=(), problems=(),
                 observations=[Observation(source=key[0], substance=key[1], region=key[2],
                                           metric=key[3], period=new, value=30.0)])
    assert list(store.pending_series()) == [key]
    pipeline.detect(store=store)
    assert store.pending_series() == {}
    return new


def test_schema_2_store_is_upgraded_without_losing_a_row(tmp_path):
    db = _unpack(tmp_path / "state")
    assert _rows(db, "PRAGMA user_version") == [(2,)]
    # a state as Python's JSON writes a rise from nothing (Infinity: not JSON to SQLite
    # before 3.42), which the upgrade reads for the series' judged period all the same
    scope, state = _rows(db, "SELECT scope, state FROM episodes WHERE scope LIKE 'series:%' "
                             "ORDER BY scope LIMIT 1")[0]
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE episodes SET state = ? WHERE scope = ?",
                    [json.dumps({**json.loads(state), "change": float("inf")}), scope])
    con.close()
    obs_sql = "SELECT * FROM observations ORDER BY source, substance, region, metric, period"
    before = {t: _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2")
              for t in ("revisions", "items", "findings", "episodes", "alerts", "deliveries")}
    opened = {r[0] for r in _rows(db, "SELECT scope FROM episodes")
              if json.loads(_rows(db, f"SELECT state FROM episodes WHERE scope = '{r[0]}'")[0][0])
              .get("active")}
    assert opened
    obs_before = _rows(db, obs_sql)
    distinct = _rows(db, "SELECT DISTINCT source, substance, region, metric FROM observations "
                         "ORDER BY 1, 2, 3, 4")
    assert len(obs_before) > 6000 and len(distinct) > 40

    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS) == 20
        table_sql = store.db.execute(
            "SELECT sql FROM sqlite_master WHERE name='observations'").fetchone()[0]
        assert "WITHOUT ROWID" in table_sql
        assert store.series_keys() == distinct
        assert sum(c["observations"] for c in store.series_counts().values()) == len(obs_before)
        # the per-source figures are read from a covering index, not the series' rows
        seen: list[str] = []
        store.db.conn.set_trace_callback(seen.append)
        counts, newest = store.series_counts(), store.newest_period_by_source()
        store.db.conn.set_trace_callback(None)
        assert len(seen) == 2
        assert {src: c["newest_period"] for src, c in counts.items()} == newest
        for sql in seen:
            plan = " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + sql))
            assert "COVERING INDEX series_source" in plan, (sql, plan)
        # the demo judged every period: nothing is pending after the upgrade
        assert store.pending_series() == {}
        # schema 18: no edit of a notice is known from before (each names its
        # substances from the start), and the notices keep them
        assert store.q("SELECT COUNT(*) AS n FROM notice_edits") == [{"n": 0}]
    finally:
        store.close()
    assert _rows(db, obs_sql) == obs_before
    for t, rows in before.items():  # episodes: with schema 10's mark of the open ones
        cols = "scope, state, updated_at" if t == "episodes" else "*"
        assert _rows(db, f"SELECT {cols} FROM {t} ORDER BY 1, 2") == rows, t
    assert {r[0] for r in _rows(db, "SELECT scope FROM episodes WHERE is_open")} == opened
    again = Store(db)  # re-opening runs no migration again
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_upgraded_store_continues_where_it_stopped(tmp_path, monkeypatch):
    _unpack(tmp_path / "state")
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    cfg = load_config(ROOT / "config.toml")
    pipeline = Pipeline(cfg, clock=lambda: MADE_AT)
    db = tmp_path / "state" / "warnd.sqlite"
    n_alerts = len(_rows(db, "SELECT id FROM alerts"))
    matched = _rows(db, "SELECT * FROM item_substances ORDER BY 1, 2")
    assert matched

    res = pipeline.run_once()
    assert all(p.ok for p in res["polls"]), [p.error for p in res["polls"]]
    assert all(p.documents == 0 for p in res["polls"])  # every document was seen before
    assert res["alerts"] == []
    assert len(_rows(db, "SELECT id FROM alerts")) == n_alerts
    # the terms are recorded at the first poll of a source of items, as they are now;
    # nothing is matched again (they are not known to have changed)
    assert _rows(db, "SELECT substance, changed_at, counted_from, counted_before FROM "
                     "substance_terms ORDER BY 1") == [(s, None, None, None)
                                                       for s in sorted(cfg.substances)]
    assert _rows(db, "SELECT * FROM item_substances ORDER BY 1, 2") == matched

    # one new week for one series: only that series is pending and judged
    store = pipeline.open_store()
    try:
        key = ("amk-bergen", "ketamin", "46", "count")
        assert key in store.series_keys("ketamin")
        last = date.fromisoformat(store.q(
            "SELECT last_period FROM series WHERE source=? AND substance=? AND region=? "
            "AND metric=?", key)[0]["last_period"])
        new = _judge_a_late_week(pipeline, store, key, last)
        assert store.q("SELECT judged_period FROM series WHERE key=?",
                       ["amk-bergen:ketamin:46"])[0]["judged_period"] == new.isoformat()
    finally:
        store.close()


def _columns(db: Path, table: str) -> list[str]:
    return [r[1] for r in _rows(db, f"PRAGMA table_info({table})")]


def test_schema_8_states_move_to_their_own_table_unchanged(tmp_path, monkeypatch):
    """Upgrading a store that kept each series' detector state in its ``series`` row:
    every state is in ``series_states`` with the same bytes, the column is gone, every
    other column of every series is as it was, and the states read back. The
    migration sorts in temporary files (``temp_store`` FILE: in memory it held 470 MB
    at 100,000 series), the store afterwards keeps its staging table in memory."""
    import warnd.store

    db = _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    temp_store: list[int] = []
    real_m9 = warnd.store.MIGRATIONS[8]

    def m9(sdb):
        temp_store.append(sdb.execute("PRAGMA temp_store").fetchone()[0])
        real_m9(sdb)

    monkeypatch.setattr(warnd.store, "MIGRATIONS", [*MIGRATIONS[:8], m9, *MIGRATIONS[9:]])
    assert _rows(db, "PRAGMA user_version") == [(8,)]
    key = "source, substance, region, metric"
    states = dict((tuple(r[:4]), r[4]) for r in _rows(
        db, f"SELECT {key}, detector_state FROM series WHERE detector_state IS NOT NULL"))
    others = [c for c in _columns(db, "series") if c != "detector_state"]
    series_before = _rows(db, f"SELECT {', '.join(others)} FROM series ORDER BY {key}")
    assert len(states) >= 40 and all(len(b) > 1000 for b in states.values())

    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS) == 20
        assert temp_store == [1]  # FILE while migrating
        assert store.db.execute("PRAGMA temp_store").fetchone()[0] == 2  # then MEMORY
        assert "detector_state" not in _columns(db, "series")
        moved = dict((tuple(r[:4]), r[4]) for r in _rows(
            db, f"SELECT {key}, state FROM series_states"))
        assert moved == states
        assert _rows(db, f"SELECT {', '.join(others)} FROM series ORDER BY {key}") == \
            series_before
        read = store.detector_states(list(states), arrays=True)
        assert read.keys() == states.keys()
        assert all(st["version"] >= 1 and len(st["y"]) > 0 for st in read.values())
        assert store.pending_series() == {}
    finally:
        store.close()


def test_schema_10_answers_open_episodes_from_an_index_of_them(tmp_path):
    """The demo store of schema 8 (its ketamine and cocaine rises open) upgraded through
    schema 10 and on: the open episodes of a substance's series are found in the index of open
    episodes, not by reading every series' state, and they are the ones a read of every
    state finds; a state that is not JSON counts as none open and breaks nothing."""
    import json

    db = _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert "episodes_open" in {r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'episodes'")}
        keys = {}
        for source, substance, region, metric in store.series_keys():
            keys[f"series:{series_key(source, substance, region, metric)}"] = substance
        closed = next(sc for sc, st in store.db.execute("SELECT scope, state FROM episodes")
                      if sc in keys and not json.loads(st).get("active"))
        with store.write():  # a damaged state among them
            store.db.execute("UPDATE episodes SET state = '{not json' WHERE scope = ?", [closed])
        every = {scope: json.loads(state) for scope, state in store.db.execute(
            "SELECT scope, state FROM episodes ORDER BY rowid")
            if scope in keys and scope != closed}
        seen: list[str] = []
        store.db.conn.set_trace_callback(seen.append)
        assert list(store.open_episode_states().items()) == [  # in the order stored
            (sc, st) for sc, st in every.items() if st.get("active")]
        store.db.conn.set_trace_callback(None)
        assert "SCAN episodes USING INDEX episodes_open" in " ".join(
            r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + seen[-1]))
        rising = set()
        for substance in sorted(set(keys.values())):
            seen: list[str] = []
            store.db.conn.set_trace_callback(seen.append)
            active = store.active_episode_states(substance)
            scopes = store.open_episode_scopes(substance, "trend:increase")
            store.db.conn.set_trace_callback(None)
            assert active == {sc: st for sc, st in every.items()
                              if keys[sc] == substance and st.get("active")}
            assert scopes == {sc for sc, st in active.items()
                              if "trend:increase" in st["active"]}
            rising |= {substance} if scopes else set()
            for sql in seen:
                plan = " ".join(r[3] for r in store.db.execute(
                    "EXPLAIN QUERY PLAN " + sql, [substance, "$.x"][:sql.count("?")]))
                assert "SCAN e USING INDEX episodes_open" in plan, (sql, plan)
                assert "series_substance" not in plan, plan
        assert rising == {"ketamin", "kokain"}
    finally:
        store.close()


def _config_without_new_rules(tmp_path):
    """The shipped config with the rules added since the fixture's version switched
    off (``recurring_years`` 0, ``rate_min_variation`` 0): the engine then judges as
    that version did, so its states keep their fingerprint."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    assert "\n[detection]\n" in text
    text = text.replace('include = ["examples/config.sources.toml"]',
                        f'include = ["{ROOT / "examples" / "config.sources.toml"}"]')
    path = tmp_path / "config.toml"
    path.write_text(text.replace("\n[detection]\n", "\n[detection]\nrecurring_years = 0\n"
                                 "rate_min_variation = 0.0\n", 1), encoding="utf-8")
    return load_config(path)


def _upgraded(tmp_path, monkeypatch, cfg) -> tuple[Pipeline, list[tuple[str, ...]]]:
    """A pipeline on the schema-8 fixture's state, and the series it replays whole."""
    from detectors import engine

    _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    pipeline = Pipeline(cfg, clock=lambda: datetime(2026, 11, 30, 20, tzinfo=UTC))
    replayed: list[tuple[str, ...]] = []
    real = engine._replay

    def replaying(series, params, with_state, *a, **kw):
        replayed.append((series.source, series.substance, series.region))
        return real(series, params, with_state, *a, **kw)

    monkeypatch.setattr(engine, "_replay", replaying)
    return pipeline, replayed


def test_schema_8_store_continues_incrementally(tmp_path, monkeypatch):
    """After the upgrade a new week is judged from the moved state (an advance, not a
    replay of the series' history), and only that series' state is rewritten. (With
    the rules added since switched off; with them on, every series is replayed once,
    below.)"""
    pipeline, replayed = _upgraded(tmp_path, monkeypatch, _config_without_new_rules(tmp_path))
    store = pipeline.open_store()
    try:
        key = ("amk-bergen", "ketamin", "46", "count")
        before = store.detector_states(store.series_keys())
        blobs_before = dict(store.state_blobs(list(before)))
        last = date.fromisoformat(before[key]["last_period"])
        new = _judge_a_late_week(pipeline, store, key, last)
        assert replayed == []
        after = store.detector_states(list(before), arrays=False)
        assert after[key]["last_period"] == new.isoformat()
        assert after[key]["n_periods"] == before[key]["n_periods"] + 1
        # the other series' states are not written again (their stored bytes)
        assert {k: b for k, b in store.state_blobs(list(before)) if k != key} == \
            {k: b for k, b in blobs_before.items() if k != key}
    finally:
        store.close()


@pytest.mark.parametrize("key", [("lab-mbf", "ketamin", "46", "count"),
                                 ("amk-bergen", "ketamin", "46", "count"),
                                 ("google-trends", "ketamin", "NO", "index")])
def test_schema_8_store_replays_every_series_once(tmp_path, monkeypatch, key):
    """The version that added ``rate_min_variation`` (positives with tests) and the
    recurring-peak rule judges differently, so with the shipped config each series is
    replayed once on its next period (the test above: with both off, none is)."""
    pipeline, replayed = _upgraded(tmp_path, monkeypatch, load_config(ROOT / "config.toml"))
    store = pipeline.open_store()
    try:
        before = store.detector_states([key])
        assert before[key]["has_den"] == (key[0] == "lab-mbf")
        new = _judge_a_late_week(pipeline, store, key, date.fromisoformat(
            before[key]["last_period"]))
        assert replayed == [key[:3]]
        after = store.detector_states([key], arrays=False)[key]
        assert after["last_period"] == new.isoformat()
        assert after["params"] != before[key]["params"]
    finally:
        store.close()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "w.sqlite")
    yield s
    s.close()


def _obs(period: str, value: float, substance: str = "ketamin") -> Observation:
    return Observation(source="lab", substance=substance, period=date.fromisoformat(period),
                       value=value)


def _row(store: Store, substance: str = "ketamin") -> dict:
    return store.q("SELECT * FROM series WHERE source='lab' AND substance=?", [substance])[0]


def test_schema_12_items_stored_before_keep_counting_once(tmp_path):
    """The demo store of schema 8, with an article stored as the version before stored
    one without a link (``guid:<guid>``), upgraded: every article of the demo's feeds
    read again is the one stored (none new, no count changed); the linkless article is
    found by its guid within its source; an article stored by its link, read with its
    guid and then with a new link, is still the one stored."""
    from feeds.base import SubstanceSpec
    from feeds.rss import RssFeed, RssOptions

    db = _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO items (key, source, kind, published_at, week, title, link, "
                    "summary, region, first_seen_at) VALUES ('guid:bt-beslag-7', 'media-bt', "
                    "'article', '2026-03-03T09:00:00+00:00', '2026-03-02', 'Ketamin i posten', "
                    "NULL, '', '', '2026-03-03T10:00:00+00:00')")
        con.execute("INSERT INTO item_substances VALUES ('guid:bt-beslag-7', 'ketamin')")
    con.close()
    count_sql = ("SELECT i.source, s.substance, i.week, COUNT(*) FROM items i JOIN "
                 "item_substances s ON s.key = i.key GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    counts = _rows(db, count_sql)
    subs = [SubstanceSpec(id=r[0], label=r[0], names=(r[0],)) for r in _rows(
        db, "SELECT DISTINCT substance FROM item_substances")]
    subs += [SubstanceSpec(id="xanor", label="xanor", names=("xanor", "alprazolam", "ksalol"))]
    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS)
        n_read = 0
        for name in ("ba", "bt"):
            feed = RssFeed(name=f"media-{name}", options=RssOptions(), substances=subs)
            for path in sorted((ROOT / "examples" / "data" / "media" / name).glob("*.xml")):
                res = feed.parse(path.read_bytes(), location=str(path), fetched_at=MADE_AT)
                n_read += len(res.items)
                got = store.ingest(feed.name, location="again", sha256=None, observations=(),
                                   items=res.items, problems=())
                assert got["items_new"] == 0, path
        assert n_read > 1000
        bt = RssFeed(name="media-bt", options=RssOptions(), substances=subs)
        stored = "https://www.bt.no/nyheter/lokalt/i/000002/heroin"
        assert _rows(db, f"SELECT COUNT(*) FROM items WHERE link = '{stored}'") == [(1,)]
        for guid, link in (("bt-beslag-7", None), ("bt-2", stored),
                           ("bt-2", "https://bt.no/nyheter/2021/heroin-lar?utm_source=rss")):
            raw = ("<rss version='2.0'><channel><title>t</title><item><title>ketamin "
                   f"heroin</title><guid>{guid}</guid>" + (f"<link>{link}</link>" if link else "")
                   + "<pubDate>Tue, 03 Mar 2026 09:00:00 +0000</pubDate></item></channel></rss>")
            res = bt.parse(raw.encode(), location="x", fetched_at=MADE_AT)
            got = store.ingest("media-bt", location="x", sha256=None, observations=(),
                               items=res.items, problems=())
            assert got["items_new"] == 0, (guid, link)
    finally:
        store.close()
    assert _rows(db, count_sql) == counts


def test_series_row_follows_ingest(store):
    store.ingest("lab", location="a", sha256="a", items=(), problems=(),
                 observations=[_obs("2026-01-05", 3), _obs("2026-01-12", 4),
                               _obs("2026-01-05", 2, "heroin")])
    r = _row(store)
    assert (r["first_period"], r["last_period"], r["n_observations"]) == (
        "2026-01-05", "2026-01-12", 2)
    assert r["key"] == "lab:ketamin" and r["data_version"] == 1 and r["judged_version"] == 0
    assert set(store.pending_series()) == {("lab", "ketamin", "", "count"),
                                           ("lab", "heroin", "", "count")}
    store.mark_judged([(k, v.data_version, v.last_period)
                       for k, v in store.pending_series().items()])
    assert store.pending_series() == {}
    assert _row(store)["judged_period"] == "2026-01-12"

    # the same document again changes nothing; a revision and a new week do
    res = store.ingest("lab", location="a", sha256="a", items=(), problems=(),
                       observations=[_obs("2026-01-05", 3), _obs("2026-01-12", 4)])
    assert res["series_touched"] == [] and store.pending_series() == {}
    res = store.ingest("lab", location="b", sha256="b", items=(), problems=(),
                       observations=[_obs("2026-01-05", 5), _obs("2026-01-19", 6)])
    assert (res["observations_new"], res["observations_revised"]) == (1, 1)
    assert res["series_touched"] == [("lab", "ketamin", "", "count")]
    r = _row(store)
    assert (r["last_period"], r["n_observations"], r["data_version"]) == ("2026-01-19", 3, 2)
    assert r["changed_from"] == "2026-01-05"  # the revised period, for re-judging from it
    assert store.q("SELECT period, old_value, new_value FROM revisions") == [
        {"period": "2026-01-05", "old_value": 3.0, "new_value": 5.0}]


def test_a_change_while_judging_keeps_the_series_pending(store):
    store.ingest("lab", location="a", sha256="a", items=(), problems=(),
                 observations=[_obs("2026-01-05", 3)])
    seen = store.pending_series()[("lab", "ketamin", "", "count")]
    # a poll in another thread stores a new week after detection read the series
    store.ingest("lab", location="b", sha256="b", items=(), problems=(),
                 observations=[_obs("2026-01-12", 4)])
    store.mark_judged([(("lab", "ketamin", "", "count"), seen.data_version, "2026-01-05")])
    pending = store.pending_series()
    assert list(pending) == [("lab", "ketamin", "", "count")]
    assert pending[("lab", "ketamin", "", "count")].changed_from == "2026-01-05"


def test_detect_with_nothing_new_reads_no_history(tmp_path, monkeypatch):
    from tests.conftest import write_config
    from tests.scenario import LAB_SOURCE, write_lab_csv

    write_lab_csv(tmp_path / "data" / "lab.csv")
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    pipeline = Pipeline(cfg, clock=lambda: now)
    pipeline.run_once()
    loads: list[tuple] = []
    real = Store.load_series

    def counting(self, *a, **kw):
        loads.append(a)
        return real(self, *a, **kw)

    monkeypatch.setattr(Store, "load_series", counting)
    assert pipeline.detect() == []
    assert loads == []
    # a revision makes exactly that series pending again
    store = pipeline.open_store()
    try:
        store.ingest("lab", location="fix", sha256="fix", items=(), problems=(),
                     observations=[Observation(source="lab", substance="heroin",
                                               period=date(2023, 1, 2), value=99.0)])
    finally:
        store.close()
    pipeline.detect()
    assert [a[:2] for a in loads] == [("lab", "heroin")]


def test_hot_queries_use_their_indexes(store):
    """The plans behind load_series, pending_series, series_keys and the alert look-ups."""
    def plan(sql: str, n: int) -> str:
        return " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + sql, ["x"] * n))

    load = plan("SELECT period, value, denominator, dimension FROM observations WHERE source=? "
                "AND substance=? AND region=? AND metric=? ORDER BY period", 4)
    assert "USING PRIMARY KEY" in load and "TEMP B-TREE" not in load  # one range, in order
    assert "series_pending" in plan(
        "SELECT source, substance, region, metric, data_version, judged_period, "
        "changed_from, last_period FROM series WHERE data_version > judged_version", 0)
    assert "COVERING INDEX series_substance" in plan(
        "SELECT source, substance, region, metric FROM series WHERE substance=? "
        "ORDER BY 1,2,3,4", 1)
    assert "alerts_substance" in plan(
        "SELECT decision FROM alerts WHERE substance=? AND kind=? AND direction=? "
        "ORDER BY id DESC LIMIT 1", 3)
    assert "item_substances_substance" in plan(
        "SELECT i.title FROM items i JOIN item_substances s ON s.key = i.key "
        "WHERE s.substance=? AND i.week >= ?", 2)


def _delivery_counters(cfg) -> dict[str, float]:
    """The delivery counters a scrape of ``/metrics`` reads (the listener's collector)."""
    from prometheus_client.registry import CollectorRegistry

    from warnd.service.health import StoreCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(lambda: cfg, lambda: {"alive": True}))
    wanted = ("warnd_delivery_attempts", "warnd_alerts_failed", "warnd_alerts_sent")
    return {fam.name: fam.samples[0].value for fam in reg.collect() if fam.name in wanted}


def test_schema_11_delivery_counters_go_on_from_what_the_rows_showed(tmp_path):
    """A store from before schema 11 whose outbox sent one message, gave two up (one
    expired after five attempts, one failed) and has one waiting: after the upgrade
    /metrics reads the counters it read before (its first scrape does not drop), and an
    operator's retry and drop, which took them down before, leave them where they are."""
    from tests.service_kit import write_service_config
    from warnd.alerting.outbox import drop_delivery, retry_delivery

    db = _unpack(tmp_path / "state", FIXTURE_V8, MADE_IN_V8)
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO deliveries (alert_id, target, status, attempts, next_attempt_at, "
            "created_at, due_at) VALUES (?, ?, ?, ?, '2026-11-30', '2026-11-30', '2026-11-30')",
            [(1, "mail", "delivered", 1), (1, "desk", "expired", 5), (2, "mail", "failed", 1),
             (2, "desk", "pending", 2)])
    conn.close()
    # what /metrics read from these rows before schema 11
    before = {"warnd_delivery_attempts": 9, "warnd_alerts_failed": 2, "warnd_alerts_sent": 1}
    cfg = load_config(write_service_config(tmp_path / "config.toml", sources=""))
    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert _delivery_counters(cfg) == before
        assert retry_delivery(store, 1) == 1  # the expired one
        assert retry_delivery(store, 2) == 2  # the failed and the waiting one
        assert drop_delivery(store, 1, "desk") == 1
        assert store.q("SELECT status, attempts FROM deliveries ORDER BY alert_id, target") == [
            {"status": "dropped", "attempts": 0}, {"status": "delivered", "attempts": 1},
            {"status": "pending", "attempts": 0}, {"status": "pending", "attempts": 0}]
        assert _delivery_counters(cfg) == before
    finally:
        store.close()


def test_schema_17_keeps_the_shares_and_finds_copies_of_their_files(tmp_path, monkeypatch):
    """A store of schema 16 whose source adds its files up (one file's share kept): after
    the upgrade its file's version kept is still known as read, and a copy of it under
    another name is found as one, standing for its share."""
    import warnd.store

    db = tmp_path / "warnd.sqlite"
    monkeypatch.setattr(warnd.store, "MIGRATIONS", MIGRATIONS[:16])
    old = Store(db)
    try:
        assert old.schema_version == 16
        old.db.execute("INSERT INTO share_documents VALUES ('amk', '/d/amk_1.csv', 'abc')")
        old.db.conn.commit()
    finally:
        old.close()
    monkeypatch.setattr(warnd.store, "MIGRATIONS", MIGRATIONS)
    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS) == 20
        assert store.shares_read("amk", "/d/amk_1.csv", "abc")
        assert store.kept_copy("amk", "/d/amk_1 (1).csv", "abc") == ("/d/amk_1.csv",) * 2
        assert store.kept_copy("amk", "/d/amk_1.csv", "abc") is None
    finally:
        store.close()
    again = Store(db)  # re-opening runs no migration again
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_schema_19_counts_an_opening_sent_before_as_possibly_received(tmp_path, monkeypatch):
    """A store of schema 18 with an escalation that read as a target's opening and
    expired, and another that read as decided: after the upgrade the first counts as
    possibly received (its attempts were not recorded), so queuing it again keeps its
    reading; the other has no such record."""
    import warnd.store

    db = tmp_path / "warnd.sqlite"
    monkeypatch.setattr(warnd.store, "MIGRATIONS", MIGRATIONS[:18])
    old = Store(db)
    try:
        assert old.schema_version == 18
        old.db.conn.executemany(
            "INSERT INTO deliveries (alert_id, target, status, attempts, next_attempt_at, "
            "created_at, opens) VALUES (?, ?, 'expired', 3, '2026-07-14T10:00:00+00:00', "
            "'2026-07-14T10:00:00+00:00', ?)", [(2, "mail", 1), (2, "ops", 0)])
        old.db.conn.commit()
    finally:
        old.close()
    monkeypatch.setattr(warnd.store, "MIGRATIONS", MIGRATIONS)
    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS) == 20
        assert store.q("SELECT target, opens, maybe_sent FROM deliveries ORDER BY target") == [
            {"target": "mail", "opens": 1, "maybe_sent": 1},
            {"target": "ops", "opens": 0, "maybe_sent": None}]
    finally:
        store.close()
    again = Store(db)  # re-opening runs no migration again
    assert again.schema_version == len(MIGRATIONS)
    again.close()
