"""The daemon's incremental detection gives the findings a whole replay gives.

A lab source grows one week per cycle through the real pipeline (poll → store →
detect with the stored detector state); its stored findings must equal those of
:func:`detectors.engine.replay` over the final data (what ``warnd backtest``
runs). A revised week makes the series be replayed from the store and its
findings from that week on be stored again.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from detectors.engine import replay
from tests.conftest import write_config
from tests.scenario import LAB_SOURCE, START, WASTEWATER_SOURCE, WEEKS, write_lab_csv
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store


def _expected(store: Store, cfg, substance: str, source: str = "lab",
              metric: str = "count") -> dict[str, tuple]:
    series = store.load_series(source, substance, metric=metric, dimension="use")
    out: dict[str, tuple] = {}
    for per in replay(series, cfg.detection_params(substance, source)):
        for f in per:  # a later sighting of the same finding updates its figures
            out[f.key] = (f.category, f.detected_at.isoformat(), f.level_after,
                          f.relative_change)
    return out


def _stored(store: Store, substance: str, source: str | None = None) -> dict[str, tuple]:
    return {r["key"]: (r["category"], r["last_seen_at"], r["level_after"], r["relative_change"])
            for r in store.q("SELECT * FROM findings WHERE substance=?", [substance])
            if source is None or r["source"] == source}


def _same(a: dict[str, tuple], b: dict[str, tuple]) -> bool:
    def eq(x, y):
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None:
                return x is None and (y is None or not math.isfinite(y)) or \
                    y is None and not math.isfinite(x)
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
        return x == y
    return a.keys() == b.keys() and all(
        all(eq(x, y) for x, y in zip(a[k], b[k], strict=True)) for k in a)


def _judged_week(cfg) -> dict[str, list]:
    """One cycle (a week's data written), then what the store holds of detection: the
    states, findings, episodes, alerts and series rows, row by row."""
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    store = Store.in_dir(cfg.state_dir)
    try:
        return {t: [tuple(r.values()) for r in store.q(f"SELECT * FROM {t} ORDER BY 1, 2")]
                for t in ("series_states", "findings", "episodes", "alerts", "series")}
    finally:
        store.close()


def _lab_without_last_week(tmp_path):
    """A lab source with all but its last week, judged once: (config, csv, all lines)."""
    csv = tmp_path / "data" / "lab.csv"
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    write_lab_csv(csv, weeks=WEEKS)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-2]) + "\n")
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).run_once()
    return cfg, csv, lines


@pytest.fixture
def replays(monkeypatch) -> list[str]:
    """The substances of the series replayed whole from now on."""
    from detectors import engine

    seen: list[str] = []
    real = engine._replay  # under replay_with_state and replay_many

    def replaying(series, params, with_state, *a, **kw):
        if with_state:
            seen.append(series.substance)
        return real(series, params, with_state, *a, **kw)

    monkeypatch.setattr(engine, "_replay", replaying)
    return seen


def test_week_by_week_equals_a_replay_and_a_revision_is_rejudged(tmp_path, monkeypatch,
                                                                  replays):
    csv = tmp_path / "data" / "lab.csv"
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    first = WEEKS - 12
    write_lab_csv(csv, weeks=WEEKS)
    lines = csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]  # two rows (ketamin, heroin) per week

    advanced: list[int] = []
    from detectors import engine

    real_check = engine._check  # every period a state takes: alone, batched or as arrays

    def counting(*a, **kw):
        advanced.append(1)
        return real_check(*a, **kw)

    monkeypatch.setattr(engine, "_check", counting)
    as_arrays: list[int] = []  # a pass of one series a substance: too few for the arrays
    real_block = engine.advance_block
    monkeypatch.setattr(engine, "advance_block",
                        lambda states, *a, **kw: as_arrays.append(len(states))
                        or real_block(states, *a, **kw))
    rows_seen: dict[str, list[tuple]] = {"heroin": [], "ketamin": []}
    for week in range(first, WEEKS + 1):
        csv.write_text("\n".join([header, *rows[: 2 * week]]) + "\n")
        now = datetime.combine(START + timedelta(weeks=week), datetime.min.time(), UTC)
        Pipeline(cfg, clock=lambda now=now: now).run_once()
        store = Store.in_dir(cfg.state_dir)
        try:
            for sub in rows_seen:
                ep = store.q("SELECT state, updated_at FROM episodes WHERE scope=?",
                             [f"series:lab:{sub}"])[0]
                judged = store.q("SELECT judged_period FROM series WHERE substance=?",
                                 [sub])[0]["judged_period"]
                rows_seen[sub].append((ep["state"], ep["updated_at"], judged))
        finally:
            store.close()
    # the first cycle replayed the history; every later week was one advance per series
    assert len(advanced) == 2 * (WEEKS - first)
    assert as_arrays == []
    assert sorted(replays) == ["heroin", "ketamin"]
    # every week judged; the quiet series' episode row written once, not each week
    for sub, seen in rows_seen.items():
        assert [r[2] for r in seen] == [(START + timedelta(weeks=w - 1)).isoformat()
                                        for w in range(first, WEEKS + 1)], sub
    assert not any(json.loads(r[0])["active"] for r in rows_seen["heroin"])
    assert len({r[:2] for r in rows_seen["heroin"]}) == 1
    ket = [json.loads(r[0]) for r in rows_seen["ketamin"]]
    assert any(k["active"] for k in ket)  # its rise opened an episode: that row moves
    assert len({r[:2] for r in rows_seen["ketamin"]}) > 1

    store = Store.in_dir(cfg.state_dir)
    try:
        assert store.detector_state(("lab", "ketamin", "", "count")) is not None
        for sub in ("ketamin", "heroin"):
            assert _same(_stored(store, sub), _expected(store, cfg, sub)), sub
        assert any(v[0] >= 1 for v in _stored(store, "ketamin").values())  # it does rise

        # a late correction of a week already judged: replayed, findings stored again
        revised = START + timedelta(weeks=WEEKS - 6)
        bumped = [r if not r.startswith(f"{revised.isoformat()},ketamin,") else
                  f"{revised.isoformat()},ketamin,{int(r.rsplit(',', 1)[1]) + 40}" for r in rows]
        csv.write_text("\n".join([header, *bumped]) + "\n")
        n_adv = len(advanced)
        Pipeline(cfg, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC)).run_once()
        assert len(advanced) == n_adv  # no advance: a replay
        assert sorted(replays) == ["heroin", "ketamin", "ketamin"]
        assert store.q("SELECT changed_from FROM series WHERE substance='ketamin'") == [
            {"changed_from": None}]
        stored, expected = _stored(store, "ketamin"), _expected(store, cfg, "ketamin")
        # every finding a replay of the corrected data gives at or after the revised week
        later = {k: v for k, v in expected.items() if v[1] >= revised.isoformat()}
        assert later and all(_same({k: stored[k]}, {k: v}) for k, v in later.items())
    finally:
        store.close()


def test_incremental_state_survives_a_new_process(tmp_path):
    """The state is in the store: a fresh Pipeline (a restarted daemon) continues it."""
    cfg, csv, lines = _lab_without_last_week(tmp_path)
    store = Store.in_dir(cfg.state_dir)
    try:
        before = store.detector_state(("lab", "heroin", "", "count"))
        assert date.fromisoformat(before["last_period"]) == START + timedelta(weeks=WEEKS - 2)
        csv.write_text("\n".join(lines) + "\n")
        Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
        after = store.detector_state(("lab", "heroin", "", "count"))
        assert date.fromisoformat(after["last_period"]) == START + timedelta(weeks=WEEKS - 1)
        assert _same(_stored(store, "heroin"), _expected(store, cfg, "heroin"))
    finally:
        store.close()


def test_states_stored_by_earlier_versions_continue_in_the_batch(tmp_path, monkeypatch, replays):
    """A state kept as compressed JSON (stores before the binary form) and one packed
    from lists (before states held arrays) are both taken up by the batch step: the
    next week is an advance, not a replay, and the findings are a replay's."""
    import json
    import zlib

    from detectors import engine
    from warnd.statecodec import pack

    cfg, csv, lines = _lab_without_last_week(tmp_path)
    replays.clear()
    store = Store.in_dir(cfg.state_dir)
    try:
        old = {"heroin": lambda d: zlib.compress(json.dumps(d).encode()),
               "ketamin": pack}
        for sub, write in old.items():
            key = ("lab", sub, "", "count")
            as_lists = engine.SeriesState.from_dict(store.detector_state(key)).to_dict()
            assert isinstance(as_lists["y"], list)
            with store.write() as db:
                db.execute("UPDATE series_states SET state=? WHERE source=? AND "
                           "substance=? AND region=? AND metric=?", [write(as_lists), *key])
        import warnd.pipeline

        monkeypatch.setattr(warnd.pipeline, "ADVANCE_CHUNK", 1)  # one series a chunk
        csv.write_text("\n".join(lines) + "\n")
        Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
        assert replays == []
        for sub in old:
            after = store.detector_state(("lab", sub, "", "count"))
            assert date.fromisoformat(after["last_period"]) == START + timedelta(weeks=WEEKS - 1)
            assert _same(_stored(store, sub), _expected(store, cfg, sub))
    finally:
        store.close()


def test_after_an_engine_version_change_only_the_changed_family_is_replayed(tmp_path,
                                                                            replays, caplog):
    """States stored by version 1 of the engine: the lab's counts continue in the
    batch (their baselines did not change), the wastewater quantities (another
    family, whose residual scale did) are replayed once and stored as the current
    version, which the log says once for the pass; every series ends with a replay's
    findings."""
    from warnd.statecodec import pack

    lab = tmp_path / "data" / "lab.csv"
    ww = tmp_path / "data" / "ww.csv"
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")
                                   + WASTEWATER_SOURCE.format(metric="quantity")))
    write_lab_csv(lab, weeks=WEEKS)
    lines = lab.read_text().splitlines()
    for path in (lab, ww):
        path.write_text("\n".join(lines[:-2]) + "\n")
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).run_once()
    replays.clear()
    store = Store.in_dir(cfg.state_dir)
    try:
        keys = [(src, sub, "", metric) for src, metric in (("lab", "count"), ("ww", "quantity"))
                for sub in ("ketamin", "heroin")]
        for key in keys:
            state = store.detector_state(key)
            assert state["version"] == 2
            with store.write() as db:
                db.execute("UPDATE series_states SET state=? WHERE source=? AND "
                           "substance=? AND region=? AND metric=?",
                           [pack({**state, "version": 1}), *key])
        for path in (lab, ww):
            path.write_text("\n".join(lines) + "\n")
        with caplog.at_level("INFO", logger="warnd.pipeline"):
            Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
        assert sorted(replays) == ["heroin", "ketamin"]  # the two ww series, once each
        told = [r.getMessage() for r in caplog.records if "replayed whole" in r.getMessage()]
        assert told == ["2 series replayed whole: state from another engine version"]
        for src, sub, _, metric in keys:
            state = store.detector_state((src, sub, "", metric))
            assert state["version"] == (1 if src == "lab" else 2)
            assert date.fromisoformat(state["last_period"]) == START + timedelta(weeks=WEEKS - 1)
            assert _same(_stored(store, sub, src), _expected(store, cfg, sub, src, metric))
    finally:
        store.close()


def test_changed_detection_params_replay_every_series_and_say_so_once(tmp_path, replays,
                                                                      caplog):
    """A config change of the detection params makes every stored state unusable: the
    next cycle replays both series (told once for the pass, not per series at the
    default level) and ends with a replay's findings under the new params."""
    cfg, csv, lines = _lab_without_last_week(tmp_path)
    replays.clear()
    changed = load_config(write_config(tmp_path, "[detection]\nglr_h = 7.0\n"
                                       + LAB_SOURCE.format(interval="1h")))
    csv.write_text("\n".join(lines) + "\n")
    with caplog.at_level("INFO", logger="warnd.pipeline"):
        Pipeline(changed, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert sorted(replays) == ["heroin", "ketamin"]
    told = [r.getMessage() for r in caplog.records if "replayed whole" in r.getMessage()]
    assert told == ["2 series replayed whole: detection params changed"]
    store = Store.in_dir(changed.state_dir)
    try:
        for sub in ("ketamin", "heroin"):
            assert _same(_stored(store, sub), _expected(store, changed, sub))
    finally:
        store.close()


def test_changed_spike_params_replay_nothing(tmp_path, replays):
    """A state holds no spike decision: other spike thresholds continue every stored
    state. The new week is judged as a replay under them
    judges it; the findings of earlier weeks stay as they were judged."""
    cfg, csv, lines = _lab_without_last_week(tmp_path)
    store = Store.in_dir(cfg.state_dir)
    try:
        earlier = {sub: _stored(store, sub) for sub in ("ketamin", "heroin")}
    finally:
        store.close()
    replays.clear()
    changed = load_config(write_config(
        tmp_path, "[detection]\nspike_alpha = 1e-9\nspike_min_ratio = 5.0\n"
        + LAB_SOURCE.format(interval="1h")))
    csv.write_text("\n".join(lines) + "\n")
    Pipeline(changed, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert replays == []
    store = Store.in_dir(changed.state_dir)
    try:
        for sub in ("ketamin", "heroin"):
            series = store.load_series("lab", sub, metric="count", dimension="use")
            last = series.periods[-1].isoformat()
            now = {f.key: (f.category, last, f.level_after, f.relative_change)
                   for f in replay(series, changed.detection_params(sub, "lab"))[-1]}
            stored = _stored(store, sub)
            assert _same({k: v for k, v in stored.items() if v[1] == last}, now)
            assert {k: v for k, v in stored.items() if v[1] != last} == \
                {k: v for k, v in earlier[sub].items() if k not in now}
            if sub == "ketamin":  # a spike under the old thresholds, not the new
                assert now and not any(":spike:" in k for k in now)
                assert any(f.kind == "spike" for f in
                           replay(series, cfg.detection_params(sub, "lab"))[-1])
    finally:
        store.close()


def test_sources_with_other_spike_params_are_judged_with_their_own(tmp_path):
    """Two sources whose states share a fingerprint (they differ only in spike
    thresholds) are advanced in one pass, each with its own params."""
    two = LAB_SOURCE.format(interval="1h") + LAB_SOURCE.format(interval="1h").replace(
        'name = "lab"', 'name = "lab2"').replace(
        'dimension = "use"', 'dimension = "use"\ndetection = { spike_alpha = 0.05, '
        'spike_min_ratio = 1.2, spike_min_excess = 0.0 }')
    csv = tmp_path / "data" / "lab.csv"
    cfg = load_config(write_config(tmp_path, two))
    write_lab_csv(csv, weeks=WEEKS)
    lines = csv.read_text().splitlines()
    for cut in (8, 6, 4, 2, 0):  # the last weeks one cycle at a time
        csv.write_text("\n".join(lines[:len(lines) - cut]) + "\n")
        Pipeline(cfg, clock=lambda c=cut: datetime(2026, 1, 10 - c, tzinfo=UTC)).run_once()
    store = Store.in_dir(cfg.state_dir)
    try:
        own = {src: _stored(store, "ketamin", src) for src in ("lab", "lab2")}
        for src in ("lab", "lab2"):
            assert _same(own[src], _expected(store, cfg, "ketamin", source=src))
        spikes = {src: {k for k in own[src] if ":spike:" in k} for src in own}
        assert len(spikes["lab2"]) > len(spikes["lab"])
    finally:
        store.close()


def test_a_state_that_cannot_take_a_later_period_is_replayed_alone(tmp_path, replays):
    """Two weeks arrive at once; for ketamin the second is a day after the first (the
    period length changes), so its state cannot take it: ketamin alone is replayed,
    heroin advances both weeks in the batch, and both end with a replay's findings."""
    csv = tmp_path / "data" / "lab.csv"
    cfg = load_config(write_config(tmp_path, LAB_SOURCE.format(interval="1h")))
    write_lab_csv(csv, weeks=WEEKS)
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).run_once()
    replays.clear()
    nxt = START + timedelta(weeks=WEEKS)
    with csv.open("a") as fh:
        fh.write(f"{nxt},ketamin,30\n{nxt + timedelta(days=1)},ketamin,31\n"
                 f"{nxt},heroin,5\n{nxt + timedelta(weeks=1)},heroin,6\n")
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert replays == ["ketamin"]
    store = Store.in_dir(cfg.state_dir)
    try:
        for sub, last in (("ketamin", nxt + timedelta(days=1)),
                          ("heroin", nxt + timedelta(weeks=1))):
            state = store.detector_state(("lab", sub, "", "count"))
            assert date.fromisoformat(state["last_period"]) == last
            assert _same(_stored(store, sub), _expected(store, cfg, sub))
        assert store.detector_state(("lab", "ketamin", "", "count"))["step"] == "day"
    finally:
        store.close()


def test_a_damaged_state_is_replayed_and_the_others_go_on(tmp_path, replays, caplog):
    """A stored state that unpacks but does not hold together (its alarm runs lost) is
    said in the log with its series and replayed; the substance's other series are
    still judged from their states, and both end with a replay's findings."""
    from warnd.statecodec import pack

    cfg, csv, lines = _lab_without_last_week(tmp_path)
    replays.clear()
    store = Store.in_dir(cfg.state_dir)
    try:
        key = ("lab", "ketamin", "", "count")
        damaged = store.detector_state(key)
        del damaged["run"]
        with store.write() as db:
            db.execute("UPDATE series_states SET state=? WHERE source=? AND substance=? "
                       "AND region=? AND metric=?", [pack(damaged), *key])
        csv.write_text("\n".join(lines) + "\n")
        with caplog.at_level("WARNING", logger="warnd.pipeline"):
            Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
        assert replays == ["ketamin"]
        assert "series=lab:ketamin detector state unusable" in caplog.text
        for sub in ("ketamin", "heroin"):
            state = store.detector_state(("lab", sub, "", "count"))
            assert date.fromisoformat(state["last_period"]) == START + timedelta(weeks=WEEKS - 1)
            assert "run" in state
            assert _same(_stored(store, sub), _expected(store, cfg, sub))
    finally:
        store.close()


def test_a_first_cycle_replays_many_series_a_batch_at_a_time(tmp_path, monkeypatch):
    """A first cycle replays a substance's series together (``replay_many``), loading
    them from the store only as the batch reaches them: with batches of about two
    series, never more than a batch is loaded and not yet judged. Each series gets the
    state and the findings a replay of it alone gives."""
    import random

    from detectors import engine
    from tests.service_kit import write_service_config
    from tests.test_service import source

    rnd = random.Random(4)
    regions = [f"r{i:02d}" for i in range(12)]
    rows = ["period,substance,region,value"]
    for w in range(60):
        day = (date(2024, 1, 1) + timedelta(weeks=w)).isoformat()
        rows += [f"{day},ketamin,{r},{rnd.randint(8, 14) * (3 if w >= 50 and i % 4 == 0 else 1)}"
                 for i, r in enumerate(regions)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tab.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(write_service_config(
        tmp_path / "config.toml",
        sources=source("tab", "data") + 'columns = { region = "region" }\n'))
    monkeypatch.chdir(tmp_path)
    loaded, judged, most = [], [], [0]
    real_load, real_replay = Store.load_series, engine._replay

    def load(self, *a, **kw):
        loaded.append(a)
        most[0] = max(most[0], len(loaded) - len(judged))
        return real_load(self, *a, **kw)

    def replaying(series, params, with_state, *a, **kw):
        judged.append(series.region)
        return real_replay(series, params, with_state, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(engine, "MANY_ROWS", 20)  # 60 weeks: 15-16 windows a series
        m.setattr(Store, "load_series", load)
        m.setattr(engine, "_replay", replaying)
        Pipeline(cfg, clock=lambda: datetime(2025, 3, 1, tzinfo=UTC)).run_once()
    assert sorted(judged) == regions and len(loaded) == len(regions)
    assert most[0] == 2
    store = Store.in_dir(cfg.state_dir)
    try:
        params = cfg.detection_params("ketamin", "tab")
        keys = set()
        for r in regions:
            series = store.load_series("tab", "ketamin", r, "count", dimension="use")
            found, state = engine.replay_with_state(series, params)
            keys |= {f.key for per in found for f in per}
            key = ("tab", "ketamin", r, "count")
            assert store.detector_state(key) == json.loads(json.dumps(state.to_dict())), r
        rows = store.q("SELECT key, region FROM findings WHERE substance='ketamin'")
        assert {row["key"] for row in rows} == keys
        assert {row["region"] for row in rows} >= {r for i, r in enumerate(regions)
                                                   if i % 4 == 0}
    finally:
        store.close()


def test_a_detect_pass_leaves_older_objects_to_the_end_and_frees_them_after(
        tmp_path, monkeypatch):
    """While a pass judges, the objects that existed before it are frozen (the cycle
    collector's full collections skip them), after it they are not, and an object
    cycle that became garbage during the pass is freed by the next collection, and
    the week is judged as without the freeze (the findings a replay gives)."""
    import gc
    import weakref

    cfg, csv, lines = _lab_without_last_week(tmp_path)

    class Node:
        pass

    old = Node()
    old.me = old  # a cycle: only the collector frees it
    gone = weakref.ref(old)
    frozen_while: list[int] = []
    real = Pipeline._decide_substance  # every substance's, one at a time or together

    def judging(self, *a, **kw):
        nonlocal old
        frozen_while.append(gc.get_freeze_count())
        old = None  # garbage now, made before the pass: frozen until it ends
        return real(self, *a, **kw)

    monkeypatch.setattr(Pipeline, "_decide_substance", judging)
    assert gc.get_freeze_count() == 0
    csv.write_text("\n".join(lines) + "\n")
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert frozen_while and all(n > 1000 for n in frozen_while)
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None
    store = Store.in_dir(cfg.state_dir)
    try:
        for sub in ("ketamin", "heroin"):
            assert _same(_stored(store, sub), _expected(store, cfg, sub)), sub
    finally:
        store.close()


def test_states_stepped_as_arrays_give_what_series_states_give():
    """:func:`detectors.engine.advance_block` (what a steady pass runs for most series)
    against :func:`detectors.engine.advance_many` on the same stored states: the same
    findings (trends opening and going on, a spike, quiet series; counts and an index)
    and, packed, the same bytes; a state of other params is replayed, and a period after a gap, a
    series too short for the batch step and one with denominators are left to the
    per-state path."""
    import dataclasses

    import numpy as np

    from detectors.base import Series
    from detectors.baseline import Fits
    from detectors.engine import (NeedsReplay, SeriesState, advance_block, advance_many,
                                  replay_with_state)
    from detectors.params import DetectionParams
    from warnd.statecodec import read_many, unpack
    from warnd.store import pack_series

    params = DetectionParams()
    rng = np.random.default_rng(5)
    n = 200
    per = tuple(START + timedelta(weeks=i) for i in range(n + 1))
    cases = []  # (values, next value, next period, denominators)
    for i in range(40):
        mean = np.full(n + 1, 12.0 + i % 5)
        if i % 4 == 1:  # a doubling ramp under way: the trend goes on from its onset
            mean *= 1 + np.clip(np.arange(n + 1) - (n - 14), 0, 14) / 14.0
        y = rng.poisson(mean).astype(float)
        if i % 4 == 2:
            y[n] = 90.0  # a spike in the new week
        if i % 7 == 3:
            y[n - 30] = np.nan  # a missing week in the tail
        if i % 9 == 4:
            y[n] = np.nan  # the new week itself missing
        if i % 5 == 3:
            y = y * 0.5  # an index (other values): judged on the log scale
        cases.append((y[:n], y[n], per[n], None))
    # monthly and daily series (other grids, other change-time windows), one rising
    months = tuple(date(2015 + m // 12, m % 12 + 1, 1) for m in range(121))
    days = tuple(START + timedelta(days=d) for d in range(401))
    for j, grid in enumerate((months, months, days, days)):
        y = rng.poisson(40.0, len(grid)).astype(float)
        if j % 2:
            y[-5:] *= 2.5
        cases.append((y[:-1], y[-1], grid[-1], None, grid[:-1]))
    short = rng.poisson(10, 21).astype(float)
    cases.append((short[:20], short[20], per[20], None))  # too short for the batch step
    cases.append((rng.poisson(10, n).astype(float), 11.0, per[n] + timedelta(weeks=1), None))
    cases.append((rng.poisson(10, n).astype(float), 11.0, per[n], rng.poisson(200, n) + 1.0))
    blobs, starts = [], []
    for i, (y, _, _, den, *grid) in enumerate(cases):
        s = Series(source="lab", substance=f"s{i}", periods=grid[0] if grid else per[: len(y)],
                   values=y,
                   denominators=None if den is None else den.astype(float),
                   metric="interest" if i < 40 and i % 5 == 3 else "count")
        _, st = replay_with_state(s, params)
        if i == 0:
            st.d["params"] = "another"
        if i == 6:
            del st.d["run"]  # a damaged state: left to the per-state path, which says so
        blobs.append(pack_series(st))
    # one by one (the per-state path)
    one = [None] + [SeriesState.from_dict(unpack(b, arrays=True, make_fits=Fits.from_arrays))
                    for b in blobs[1:]]
    one[6] = None
    want = advance_many([(st, c[2], float(c[1]), None if c[3] is None else 210.0)
                         for st, c in zip(one, cases, strict=True) if st is not None], params)
    want.insert(0, NeedsReplay("detection params changed"))
    want.insert(6, None)
    # as arrays
    groups, rest = read_many(blobs)
    assert rest == [len(cases) - 1]  # the denominators: another layout of the tail
    taken = 0
    for g in groups:
        k = g.fits["beta"].shape[1]
        fits = Fits.from_arrays(g.family, {n_: a.reshape((len(g.index) * k, *a.shape[2:]))
                                           for n_, a in g.fits.items()})
        step = advance_block(g.skeletons, g.tails, fits, np.full(len(g.index), k),
                             [(cases[i][2], float(cases[i][1])) for i in g.index], params)
        packed = Pipeline._pack_block(g.skeletons, step, g.family)
        for r, i in enumerate(g.index):
            got = step.found[r]
            if i == 0:
                assert isinstance(got, NeedsReplay) and str(got) == "detection params changed"
            elif i in (6, len(cases) - 3, len(cases) - 2):  # damaged, short, gap: not here
                assert got is None and step.tails[r] is None
            else:
                taken += 1
                assert [repr(dataclasses.asdict(f)) for f in got] == [
                    repr(dataclasses.asdict(f)) for f in want[i]], i
                assert packed[r] == pack_series(one[i]), i
    assert taken == 42
    kinds = [f.kind for fs in want[1:40] if fs for f in fs]
    assert "trend" in kinds and "spike" in kinds  # busy series among them, not only quiet
    assert {g.family for g in groups} == {"continuous", "counts"}
    assert any(want[i] for i in range(40) if i % 5 == 3)  # an index with findings too
    assert all(want[i] for i in (41, 43))  # the rising monthly and daily ones


def test_states_with_and_without_a_fit_made_ahead_step_together(tmp_path, monkeypatch):
    """Stored states with a fit made ahead of time (nine fits) and without (eight) are
    read in two groups and judged in one batch step (a poll's own pass then takes one
    step, not two; :func:`warnd.pipeline.joined_fits`), which finds and packs for each
    series what :func:`detectors.engine.advance_many` gives it one by one."""
    import dataclasses

    import numpy as np

    from detectors import engine
    from detectors.base import Series
    from detectors.baseline import Fits
    from detectors.engine import SeriesState, advance_many, replay_with_state
    from detectors.params import DetectionParams
    from warnd.statecodec import read_many, unpack
    from warnd.store import pack_series

    params = DetectionParams()
    rng = np.random.default_rng(11)
    cases = []  # (key, values, next period, next value)
    for i in range(24):
        n = 196 + i % 8  # the series stand at different places between refit points
        mean = np.full(n + 1, 10.0 + i % 3)
        if i % 3 == 1:  # a doubling under way
            mean[n - 6 :] *= 2
        y = rng.poisson(mean).astype(float)
        cases.append((("lab", f"s{i}", "", "count"), y[:n], START + timedelta(weeks=n), y[n]))
    blobs = []
    for key, y, _, _ in cases:
        s = Series(source=key[0], substance=key[1],
                   periods=tuple(START + timedelta(weeks=w) for w in range(len(y))), values=y)
        blobs.append(pack_series(replay_with_state(s, params)[1]))
    groups, rest = read_many(blobs)
    assert rest == [] and sorted(g.fits["beta"].shape[1] for g in groups) == [8, 9]

    steps: list[list[int]] = []
    real_block = engine.advance_block

    def spying(states, tails, fits, counts, *a, **kw):
        steps.append(sorted(set(counts.tolist())))
        return real_block(states, tails, fits, counts, *a, **kw)

    monkeypatch.setattr(engine, "advance_block", spying)
    pipeline = Pipeline(load_config(write_config(tmp_path, "")))
    entries = [(key, None, params, nxt - timedelta(weeks=1)) for key, _, nxt, _ in cases]
    got = {key: (blob, [(nxt.isoformat(), float(v), None)])
           for (key, _, nxt, v), blob in zip(cases, blobs, strict=True)}
    out, left = pipeline._advance_blocks(entries, got)
    assert left == set() and steps == [[8, 9]]  # one step for all of them
    chunks: list[int] = []
    real_chunk = engine._advance_chunk

    def chunk(*a, **kw):
        chunks.append(len(a[7]))
        return real_chunk(*a, **kw)

    monkeypatch.setattr(engine, "_advance_chunk", chunk)
    monkeypatch.setattr(engine, "BATCH", 5)  # the same in batches of five series
    assert pipeline._advance_blocks(entries, got) == (out, left)
    assert chunks == [5, 5, 5, 5, 4]

    one = [SeriesState.from_dict(unpack(b, arrays=True, make_fits=Fits.from_arrays))
           for b in blobs]
    want = advance_many([(st, nxt, float(v), None)
                         for st, (_, _, nxt, v) in zip(one, cases, strict=True)], params)
    for (key, _, nxt, _), st, found in zip(cases, one, want, strict=True):
        periods, findings, packed, last = out[key]
        assert periods == [nxt] and last == nxt - timedelta(weeks=1)
        assert [repr(dataclasses.asdict(f)) for f in findings[0]] == [
            repr(dataclasses.asdict(f)) for f in found], key
        assert packed == pack_series(st), key
    assert any(want)  # a rise among them, not only quiet series


def test_a_steady_week_judged_as_arrays_stores_what_one_by_one_stores(tmp_path, monkeypatch):
    """Through the real pipeline: the new week of a store's series is judged as arrays
    (:func:`detectors.engine.advance_block`, every series of it), and the store after
    it (states, findings, episodes, alerts) is byte for byte the store the per-state
    path leaves from the same start."""
    import shutil

    import warnd.pipeline
    import warnd.statecodec
    from detectors import engine

    # the array path from one series on (a pass of fewer than ARRAY_MIN takes the other)
    monkeypatch.setattr(warnd.pipeline, "ARRAY_MIN", 1)
    cfg, csv, lines = _lab_without_last_week(tmp_path)
    shutil.copytree(cfg.state_dir, tmp_path / "before")
    csv.write_text("\n".join(lines) + "\n")
    taken: list[str] = []
    real_block = engine.advance_block

    def spying(states, *a, **kw):
        step = real_block(states, *a, **kw)
        taken.extend(d["meta"][1] for d, f in zip(states, step.found, strict=True)
                     if isinstance(f, list))
        return step

    monkeypatch.setattr(engine, "advance_block", spying)

    def week() -> dict[str, list]:
        return _judged_week(cfg)

    as_arrays = week()
    assert sorted(taken) == ["heroin", "ketamin"]
    assert as_arrays["findings"] and as_arrays["alerts"]  # the rise: found and told
    shutil.rmtree(cfg.state_dir)
    shutil.copytree(tmp_path / "before", cfg.state_dir)
    taken.clear()
    monkeypatch.setattr(warnd.statecodec, "read_many",
                        lambda blobs: ([], list(range(len(blobs)))))
    one_by_one = week()
    assert taken == []
    assert one_by_one == as_arrays


def test_a_small_pass_advances_every_substance_together_and_stores_the_same(
        tmp_path, monkeypatch, caplog):
    """A pass over a few series of several substances (a poll's own) advances them in
    one step, then decides substance by substance and marks them all judged in one
    transaction; the store after it is the one a substance-at-a-time pass leaves. When
    advancing them together fails, each substance is judged on its own and the week is
    still judged; when marking them fails, they stay pending and the next pass judges
    them, to the same store, nothing told twice."""
    import shutil
    import sqlite3

    import warnd.pipeline

    cfg, csv, lines = _lab_without_last_week(tmp_path)
    shutil.copytree(cfg.state_dir, tmp_path / "before")
    csv.write_text("\n".join(lines) + "\n")
    steps: list[list[str]] = []
    real = Pipeline._advance_all

    def spying(self, store, entries):
        steps.append(sorted(e[0][1] for e in entries))
        return real(self, store, entries)

    monkeypatch.setattr(Pipeline, "_advance_all", spying)
    marks: list[list[str]] = []
    real_mark = Store.mark_judged

    def marking(self, judged):
        judged = list(judged)
        marks.append(sorted({j[0][1] for j in judged}))
        return real_mark(self, judged)

    monkeypatch.setattr(Store, "mark_judged", marking)
    reads: list[list[str]] = []
    real_episodes = Store.episode_states

    def reading(self, scopes):
        scopes = list(scopes)
        reads.append(sorted({s.split(":")[2] for s in scopes if s.startswith("series:")}))
        return real_episodes(self, scopes)

    monkeypatch.setattr(Store, "episode_states", reading)

    def week() -> dict[str, list]:
        return _judged_week(cfg)

    def again() -> None:
        shutil.rmtree(cfg.state_dir)
        shutil.copytree(tmp_path / "before", cfg.state_dir)
        steps.clear()

    together = week()
    assert steps == [["heroin", "ketamin"]]  # one step for both substances
    assert marks == [["heroin", "ketamin"]]  # and one transaction marking them judged
    assert reads[0] == ["heroin", "ketamin"], reads  # their episode states in one query
    assert not any(r == ["heroin"] or r == ["ketamin"] for r in reads[1:]), reads
    # episode rows are stamped by the pass's clock (so two passes compare equal)
    assert together["episodes"] and {r[2] for r in together["episodes"]} <= {
        "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"}
    again()
    monkeypatch.setattr(warnd.pipeline, "TOGETHER_MAX", 0)
    one_at_a_time = week()
    assert steps == [["heroin"], ["ketamin"]]
    assert one_at_a_time == together
    # advancing together fails: a substance at a time, with the same result
    again()
    monkeypatch.setattr(warnd.pipeline, "TOGETHER_MAX", 512)
    calls = {"n": 0}

    def failing_once(self, store, entries):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("advance broke")
        return spying(self, store, entries)

    monkeypatch.setattr(Pipeline, "_advance_all", failing_once)
    with caplog.at_level("WARNING", logger="warnd.pipeline"):
        assert week() == together
    assert "2 substances judged one at a time: RuntimeError: advance broke" in caplog.text
    assert steps == [["heroin"], ["ketamin"]]
    # marking them judged fails once: pending still, judged again by the next pass
    again()
    monkeypatch.setattr(Pipeline, "_advance_all", spying)
    failed = {"n": 0}

    def mark_failing_once(self, judged):
        if not failed["n"]:
            failed["n"] += 1
            raise sqlite3.OperationalError("disk I/O error")
        return marking(self, judged)

    monkeypatch.setattr(Store, "mark_judged", mark_failing_once)
    caplog.clear()
    with caplog.at_level("ERROR", logger="warnd.pipeline"):
        Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert "substance=heroin,ketamin detection not stored" in caplog.text
    store = Store.in_dir(cfg.state_dir)
    try:
        assert {k[1] for k in store.pending_series()} == {"heroin", "ketamin"}
    finally:
        store.close()
    assert week() == together  # the same states, episodes and alerts: nothing told twice


def test_a_large_pass_says_how_far_it_is_and_a_small_one_keeps_quiet(tmp_path, monkeypatch,
                                                                      caplog):
    """A pass over PROGRESS_MIN series or more logs at INFO when it starts and ends and,
    every PROGRESS_EVERY seconds between, how many series and substances it has judged;
    a smaller one (a poll's own) says nothing at INFO about itself."""
    import shutil

    import warnd.pipeline

    cfg, csv, lines = _lab_without_last_week(tmp_path)
    shutil.copytree(cfg.state_dir, tmp_path / "before")
    csv.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(warnd.pipeline, "TOGETHER_MAX", 0)  # a substance at a time
    with caplog.at_level("INFO", logger="warnd.pipeline"):
        Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    assert "detection" not in " ".join(r.getMessage() for r in caplog.records
                                       if r.levelname == "INFO")
    shutil.rmtree(cfg.state_dir)
    shutil.copytree(tmp_path / "before", cfg.state_dir)
    caplog.clear()
    monkeypatch.setattr(warnd.pipeline, "PROGRESS_MIN", 2)
    monkeypatch.setattr(warnd.pipeline, "PROGRESS_EVERY", 0.0)
    with caplog.at_level("INFO", logger="warnd.pipeline"):
        Pipeline(cfg, clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)).run_once()
    said = [r.getMessage() for r in caplog.records if r.levelname == "INFO"
            and r.getMessage().startswith("detection")]
    assert said[0] == "detection started: 2 series with something new"
    assert said[1].startswith("detection under way: 1 of 2 series judged (1 of 2 substances) in ")
    assert said[2].startswith("detection finished: ") and "(2 series in " in said[2]
    assert len(said) == 3  # nothing "under way" once every series is judged
