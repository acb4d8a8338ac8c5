"""Detector states are stored packed (arrays as binary) and read back exactly; states
stored as compressed JSON by earlier versions are still read."""

from __future__ import annotations

import dataclasses
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


def _same(a, b) -> bool:
    """:func:`_identical`, with numpy arrays equal in dtype, shape and every bit."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    if isinstance(a, dict):
        return (type(b) is dict and list(a) == list(b)
                and all(_same(a[k], b[k]) for k in a))
    if isinstance(a, list):
        return (type(b) is list and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    return _identical(a, b)


def test_series_states_use_the_fixed_layout_and_read_back_as_before():
    """What the engine stores (``to_store``) is packed in the fixed layout; it unpacks
    to exactly what the generic layout gives, in both forms, and continues alike."""
    from warnd.statecodec import MAGIC2

    for st in _states():
        state = SeriesState.from_dict(st)
        stored = state.to_store()
        blob, generic = pack(stored), pack(st)
        assert blob.startswith(MAGIC2) and generic.startswith(MAGIC)
        assert _identical(unpack(blob), st)  # the JSON-able form, floats bit for bit
        assert _same(unpack(blob, arrays=True), unpack(generic, arrays=True))
        # the fits take one float block uncompressed and the tail zlib: bounded size
        assert len(blob) < 2 * len(generic)
        a, b = SeriesState.from_dict(unpack(generic, arrays=True)), SeriesState.from_dict(
            unpack(blob, arrays=True))
        nxt = date.fromisoformat(st["last_period"]) + timedelta(weeks=1)
        den = 250.0 if st["has_den"] else None
        fa = a.advance(nxt, 60.0, DetectionParams(), denominator=den)
        fb = b.advance(nxt, 60.0, DetectionParams(), denominator=den)
        assert [(f.key, f.strength) for f in fa] == [(f.key, f.strength) for f in fb]
        assert _same(a.to_store(), b.to_store())
        # the arrays handed out are the state's own: changing one changes no other
        got = unpack(blob, arrays=True)
        got["fits"]["beta"]["data"][:] = 0.0
        assert not np.array_equal(got["fits"]["ainv"]["data"], 0.0 * got["fits"]["ainv"]["data"])
        assert _same(unpack(blob, arrays=True)["fits"]["beta"],
                     unpack(generic, arrays=True)["fits"]["beta"])


def test_fixed_layout_keeps_flags_that_are_not_zero_or_one_and_empty_fits():
    from warnd.statecodec import MAGIC2

    stored = SeriesState.from_dict(_states()[0]).to_store()
    flags = stored["fits"]["flags"]
    odd = {**stored, "fits": {**stored["fits"], "flags": {**flags,
                                                          "data": flags["data"] * 0.5}}}
    odd["fits"]["flags"]["data"][0] = -0.0
    for st in (stored, odd):
        assert _same(unpack(pack(st), arrays=True), unpack(pack(_generic(st)), arrays=True))
    assert len(pack(odd)) > len(pack(stored))  # the flags as floats, not one byte each
    empty = {**stored, "fits": {"family": "counts", **{
        name: {**v, "shape": [0, *v["shape"][1:]], "data": v["data"][:0]}
        for name, v in stored["fits"].items() if name != "family"}}}
    blob = pack(empty)
    assert blob.startswith(MAGIC2)
    assert _same(unpack(blob, arrays=True), unpack(pack(_generic(empty)), arrays=True))


def _generic(st: dict) -> dict:
    """The same state in a form the fixed layout does not take (the tail as a list),
    so :func:`pack` writes the generic layout."""
    return {**st, "y": [None if x != x else x for x in st["y"].tolist()]}


def test_a_state_of_another_shape_is_packed_generically():
    stored = SeriesState.from_dict(_states()[0]).to_store()
    other = {**stored, "fits": {**stored["fits"], "extra": stored["fits"]["pos"]}}
    wrong = {**stored, "fits": {**stored["fits"], "pos": {
        **stored["fits"]["pos"], "dtype": "int32"}}}
    for st in (other, wrong, {**stored, "y": stored["y"].astype(np.float32)}):
        blob = pack(st)
        assert blob.startswith(MAGIC)
        assert unpack(blob, arrays=True).keys() == st.keys()


@pytest.mark.parametrize("cut", [5, 9, 40, -1])
def test_a_truncated_fixed_layout_blob_is_refused(cut):
    blob = pack(SeriesState.from_dict(_states()[2]).to_store())
    with pytest.raises((ValueError, zlib.error)):
        unpack(blob[:cut])


def test_a_series_state_packed_from_its_arrays_is_the_same_bytes_and_reads_back_as_fits():
    """What a cycle does per series: :func:`warnd.store.pack_series` writes the state
    from its arrays, byte for byte what packing :meth:`SeriesState.to_store`'s dict
    gives (with flags that need floats too); read back with ``make_fits`` the fits are
    a :class:`Fits` of the same arrays, and the state continues alike."""
    from detectors.baseline import Fits
    from warnd.statecodec import MAGIC2
    from warnd.store import pack_series

    for st in _states():
        state = SeriesState.from_dict(st)  # the fits as a dict of lists
        blob = pack_series(state)
        assert blob.startswith(MAGIC2) and blob == pack(state.to_store())
        back = unpack(blob, arrays=True, make_fits=Fits.from_arrays)
        fits = back["fits"]
        assert isinstance(fits, Fits)
        as_dict = unpack(blob, arrays=True)
        assert _same(fits.to_dict(arrays=True), as_dict["fits"])
        assert all(fits.arrays()[n].dtype == Fits.from_dict(as_dict["fits"]).arrays()[n].dtype
                   for n in fits.arrays())
        assert pack_series(SeriesState.from_dict(back)) == blob  # and once more
        a, b = SeriesState.from_dict(as_dict), SeriesState.from_dict(back)
        nxt = date.fromisoformat(st["last_period"]) + timedelta(weeks=1)
        den = 250.0 if st["has_den"] else None
        fa = a.advance(nxt, 60.0, DetectionParams(), denominator=den)
        fb = b.advance(nxt, 60.0, DetectionParams(), denominator=den)
        assert [(f.key, f.strength) for f in fa] == [(f.key, f.strength) for f in fb]
        assert pack_series(a) == pack_series(b)
    # flags that do not fit a byte, and a state whose fits the fixed layout cannot take
    state = SeriesState.from_dict(_states()[0])
    fits = Fits.from_dict(state.to_store()["fits"])
    flags = fits.flags * 0.5
    flags[0, 0] = -0.0
    state.d["fits"] = dataclasses.replace(fits, flags=flags)
    assert pack_series(state) == pack(state.to_store())
    state.d["fits"] = dataclasses.replace(fits, pos=fits.pos.astype(np.int32))
    blob = pack_series(state)
    assert blob.startswith(MAGIC) and blob == pack(state.to_store())
    # no rows: read back as a dict, as the engine makes empty fits of its family itself
    empty = SeriesState.from_dict(_states()[0])
    empty.d["fits"] = Fits.from_dict(empty.to_store()["fits"]).take(np.zeros(0, dtype=np.int64))
    blob = pack_series(empty)
    assert blob.startswith(MAGIC2) and blob == pack(empty.to_store())
    assert isinstance(unpack(blob, arrays=True, make_fits=Fits.from_arrays)["fits"], dict)


def test_states_read_and_packed_together_are_the_ones_read_and_packed_one_by_one():
    """:func:`read_many` gives, for each state in the fixed layout without
    denominators, what :func:`unpack` gives (values, dtypes, the other items), grouped
    by the fits' shape; other layouts, states with denominators and damaged bytes are
    left to :func:`unpack`. :func:`pack_many` writes each state's bytes exactly as
    :func:`warnd.store.pack_series` does, also where one state's flags need floats."""
    from detectors.baseline import Fits
    from warnd.statecodec import pack_many, read_many
    from warnd.store import pack_series

    states = [SeriesState.from_dict(st) for st in _states()]  # counts, gaps, denominators
    blobs = [pack_series(s) for s in states]
    damaged = blobs[0][:-9]
    blobs += [damaged, pack(states[0].to_dict()), blobs[0]]
    groups, rest = read_many(blobs)
    assert sorted(rest) == [2, 3, 4]  # denominators, damaged, the generic layout
    assert sorted(i for g in groups for i in g.index) == [0, 1, 5]
    for g in groups:
        k = g.fits["beta"].shape[1]
        for r, i in enumerate(g.index):
            one = unpack(blobs[i], arrays=True, make_fits=Fits.from_arrays)
            assert np.array_equal(one["y"], g.tails[r], equal_nan=True)
            assert g.tails[r].dtype == np.float64
            for name, a in one["fits"].arrays().items():
                assert a.dtype == g.fits[name].dtype and a.shape == g.fits[name][r].shape
                assert np.array_equal(a, g.fits[name][r], equal_nan=True), name
            assert {**one, "y": None, "den": None, "fits": None} == g.skeletons[r]
        again = pack_many(g.skeletons, g.tails, g.family, g.fits)
        assert again == [blobs[i] for i in g.index]
        assert k > 0
    # flags a byte cannot hold, next to ones it can: each packed as pack_series packs it
    g = next(g for g in groups if 5 in g.index)
    odd = {n: a.copy() for n, a in g.fits.items()}
    odd["flags"][1, 0, 0] = -0.0
    odd["flags"][1, 1, 1] = 0.5
    got = pack_many(g.skeletons, g.tails, g.family, odd)
    st = SeriesState.from_dict({**g.skeletons[1], "y": g.tails[1], "den": None,
                                "fits": Fits.from_arrays(g.family,
                                                         {n: a[1] for n, a in odd.items()})})
    assert got[1] == pack_series(st) and got[0] == blobs[g.index[0]]
    # fits of other dtypes: not this layout, the caller packs them one by one
    odd["pos"] = odd["pos"].astype(np.int32)
    assert pack_many(g.skeletons, g.tails, g.family, odd) is None
