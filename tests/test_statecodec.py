"""Detector states are stored packed (arrays as binary) and read back exactly; states
stored as compressed JSON by earlier versions are still read."""

from __future__ import annotations

import json
import math
import zlib
from datetime import date, timedelta

import numpy as np
import pytest

from detectors.base import Series
from detectors.engine import SeriesState, replay_with_state
from detectors.params import DetectionParams
from warnd.statecodec import MAGIC, pack, unpack
from warnd.store import Store, pack_state


def _states() -> list[dict]:
    """Real engine states: counts, a series with gaps and one with denominators."""
    rng = np.random.default_rng(11)
    per = tuple(date(2021, 1, 4) + timedelta(weeks=i) for i in range(160))
    counts = rng.poisson(20, 160).astype(float)
    gappy = counts.copy()
    gappy[[5, 6, 70, 150]] = np.nan
    out = []
    for values, den in ((counts, None), (gappy, None), (counts, rng.poisson(200, 160) + 1.0)):
        s = Series(source="lab", substance="x", periods=per, values=values,
                   denominators=None if den is None else den.astype(float))
        _, st = replay_with_state(s, DetectionParams())
        out.append(st.to_dict())
    return out


def _identical(a, b) -> bool:
    """Equal, with floats equal bit for bit and types kept (int stays int)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()
    return a == b


def test_real_states_round_trip_exactly_and_continue_alike():
    states = _states()
    assert any(None in st["y"] for st in states)  # a gap is stored as None
    for st in states:
        blob = pack(st)
        assert blob.startswith(MAGIC)
        assert _identical(unpack(blob), st)
        old = zlib.compress(json.dumps(st, separators=(",", ":")).encode(), 1)
        assert len(blob) < len(old)  # smaller than the compressed JSON
        assert _identical(unpack(old), st)  # states stored by earlier versions
        # the unpacked state advances exactly as the original
        a, b = SeriesState.from_dict(json.loads(json.dumps(st))), SeriesState.from_dict(
            unpack(blob))
        nxt = date.fromisoformat(st["last_period"]) + timedelta(weeks=1)
        den = 250.0 if st["has_den"] else None
        fa = a.advance(nxt, 60.0, DetectionParams(), denominator=den)
        fb = b.advance(nxt, 60.0, DetectionParams(), denominator=den)
        assert [f.key for f in fa] == [f.key for f in fb]
        assert _identical(a.to_dict(), b.to_dict())


def test_what_is_not_a_plain_float_list_stays_as_it_is():
    st = {"ints": list(range(20)), "nan": [1.0] * 9 + [math.nan], "inf": [math.inf] * 9,
          "mixed": [1.0] * 9 + ["a"], "bools": [True] * 9, "short": [1.0, None],
          "nested": {"deep": [[0.5] * 10, None]},
          "arr": {"dtype": "int64", "shape": [2, 2], "data": [1, 2, 3, 4]},
          "odd": {"dtype": "<U3", "shape": [1], "data": ["abc"]}}
    back = unpack(pack(st))
    assert _identical({k: v for k, v in back.items() if k not in ("nan", "inf")},
                      {k: v for k, v in st.items() if k not in ("nan", "inf")})
    assert math.isnan(back["nan"][-1]) and back["inf"] == [math.inf] * 9


def test_store_reads_both_forms_and_a_damaged_state_means_a_replay(tmp_path):
    st = _states()[0]
    store = Store(tmp_path / "w.sqlite")
    try:
        store.db.execute(
            "INSERT INTO series (source, substance, region, metric, key, first_period, "
            "last_period, updated_at) VALUES ('a','x','','count','a:x','2021-01-04',"
            "'2024-01-01','now'), ('b','x','','count','b:x','2021-01-04','2024-01-01','now'), "
            "('c','x','','count','c:x','2021-01-04','2024-01-01','now')")
        store.mark_judged([(("a", "x", "", "count"), 1, "2024-01-01", pack_state(st)),
                           (("b", "x", "", "count"), 1, "2024-01-01",
                            zlib.compress(json.dumps(st).encode())),
                           (("c", "x", "", "count"), 1, "2024-01-01", MAGIC + b"garbage")])
        assert _identical(store.detector_state(("a", "x", "", "count")), st)
        assert _identical(store.detector_state(("b", "x", "", "count")), st)
        assert store.detector_state(("c", "x", "", "count")) is None
    finally:
        store.close()


@pytest.mark.parametrize("cut", [5, 9, 40])
def test_a_truncated_blob_is_refused(cut):
    blob = pack(_states()[0])
    with pytest.raises((ValueError, zlib.error)):
        unpack(blob[:cut])
