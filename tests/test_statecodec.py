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


def _fixed(blob: bytes) -> bool:
    """Whether ``blob`` is a state in the fixed layout (its first part compressed or
    stored as is)."""
    return blob[:4] in (b"WSB2", b"WSB3")


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
    for st in _states():
        state = SeriesState.from_dict(st)
        stored = state.to_store()
        blob, generic = pack(stored), pack(st)
        assert _fixed(blob) and generic.startswith(MAGIC)
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
    assert _fixed(blob)
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
    from warnd.store import pack_series

    for st in _states():
        state = SeriesState.from_dict(st)  # the fits as a dict of lists
        blob = pack_series(state)
        assert _fixed(blob) and blob == pack(state.to_store())
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
    assert _fixed(blob) and blob == pack(empty.to_store())
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


def _head(blob: bytes) -> dict:
    """The header of a state in the fixed layout."""
    import struct

    (zlen,) = struct.unpack_from("<I", blob, 4)
    body = blob[8 : 8 + zlen] if blob.startswith(b"WSB3") else zlib.decompress(blob[8 : 8 + zlen])
    (n,) = struct.unpack_from("<I", body, 0)
    return json.loads(body[4 : 4 + n])


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


@pytest.mark.parametrize(("change", "code"), [
    (lambda y: y, "u1"),  # counts with gaps
    (lambda y: np.where(np.isnan(y), y, 254.0), "u1"),  # the largest a byte holds
    (lambda y: np.where(np.isnan(y), y, 255.0), "u2"),  # 255 stands for a missing value
    (lambda y: y * 300.0, "u2"),
    (lambda y: np.where(np.isnan(y), y, 65534.0), "u2"),
    (lambda y: np.where(np.isnan(y), y, 65535.0), None),
    (lambda y: np.full_like(y, np.nan), "u1"),
    (lambda y: y + 0.5, None),  # not whole numbers
    (lambda y: np.where(np.isnan(y), y, -y), None),  # below zero (and -0.0)
    (lambda y: np.where(np.arange(len(y)) == 3, -0.0, y), None),  # -0.0 would read as 0.0
])
def test_whole_number_tails_take_a_byte_or_two_a_period_and_read_back_bit_for_bit(change, code):
    """A tail of whole numbers from 0 to 254 (65,534) is stored as one (two) bytes a
    period, a missing value as the largest; any tail that would not read back bit for
    bit stays float64. One by one and together, the same bytes and the same values."""
    from detectors.baseline import Fits
    from warnd.statecodec import pack_many, read_many
    from warnd.store import pack_series

    state = SeriesState.from_dict(_states()[1])  # counts with gaps
    y = change(np.asarray(state.to_store()["y"], dtype=np.float64))
    state.d["y"] = y
    blob = pack_series(state)
    assert _head(blob).get("yt") == code
    # whole numbers: the first part as is (no zlib); a float64 tail: compressed
    assert blob[:4] == (b"WSB3" if code else b"WSB2")
    assert _bits(unpack(blob, arrays=True)["y"]) == _bits(y)
    back = unpack(blob)["y"]  # the JSON-able form: None for a missing value
    assert [x is None for x in back] == np.isnan(y).tolist()
    groups, rest = read_many([blob])
    assert rest == [] and _bits(groups[0].tails[0]) == _bits(y)
    g = groups[0]
    assert pack_many(g.skeletons, g.tails, g.family, g.fits) == [blob]
    fits = unpack(blob, arrays=True, make_fits=Fits.from_arrays)["fits"]
    assert pack_series(SeriesState.from_dict({**g.skeletons[0], "y": g.tails[0],
                                              "den": None, "fits": fits})) == blob


def test_symmetric_fits_keep_one_triangle_and_others_the_whole_matrix():
    """The baseline's fits are exactly symmetric and stored as one triangle: the state
    is over a kilobyte smaller and reads back bit for bit. A state whose matrices are
    not (fits made before they were) keeps them whole, also next to symmetric ones."""
    from detectors.baseline import Fits
    from warnd.statecodec import AS_IS_MAX, pack_many, read_many
    from warnd.store import pack_series

    state = SeriesState.from_dict(_states()[0])
    fits = Fits.from_dict(state.to_store()["fits"])
    k, p = fits.beta.shape
    assert k > 0 and np.array_equal(fits.ainv, fits.ainv.transpose(0, 2, 1))
    blob = pack_series(state)
    assert _head(blob)["f"].get("ainv") == "tri"
    skewed = fits.ainv.copy()
    skewed[0, 0, 1] = np.nextafter(skewed[0, 0, 1], np.inf)
    old = SeriesState.from_dict(state.to_dict())
    old.d["fits"] = dataclasses.replace(fits, ainv=skewed)
    old_blob = pack_series(old)
    assert "ainv" not in _head(old_blob)["f"]
    # the other triangle's floats left out, the state fits a page with its first part
    # as is; with the whole matrices it would not, so that part stays compressed
    assert blob[:4] == b"WSB3" and old_blob[:4] == b"WSB2"
    assert len(blob) <= AS_IS_MAX < len(old_blob)
    assert len(old_blob) - len(blob) >= 0.5 * k * (p * p - p * (p + 1) // 2) * 8
    for b, ainv in ((blob, fits.ainv), (old_blob, skewed)):
        got = unpack(b, arrays=True, make_fits=Fits.from_arrays)["fits"]
        assert _bits(got.ainv) == _bits(ainv)
        assert np.array_equal(unpack(b, arrays=True)["fits"]["ainv"]["data"], ainv.ravel())
    groups, rest = read_many([blob, old_blob, blob])
    assert rest == [] and sorted(len(g.index) for g in groups) == [1, 2]
    for g in groups:
        for r, i in enumerate(g.index):
            assert _bits(g.fits["ainv"][r]) == _bits(fits.ainv if i != 1 else skewed)
    # packed together: each as it is packed alone
    both = {n: np.stack([a, b]) for (n, a), b in zip(fits.arrays().items(),
                                                     old.d["fits"].arrays().values(),
                                                     strict=True)}
    skeleton = {**state.to_store(), "y": None, "den": None, "fits": None}
    tail = np.asarray(state.to_store()["y"], dtype=np.float64)
    assert pack_many([skeleton, skeleton], [tail, tail], "counts", both) == [blob, old_blob]


def test_a_tail_with_a_nan_of_another_payload_stays_float64():
    """Packed together, tails are taken as given: a missing value whose NaN has
    another payload than the one a byte's missing value reads back as keeps float64."""
    from warnd.statecodec import pack_many, read_many
    from warnd.store import pack_series

    blob = pack_series(SeriesState.from_dict(_states()[1]))
    g = read_many([blob])[0][0]
    odd = g.tails[0].copy()
    odd.view(np.uint64)[np.isnan(odd)] |= np.uint64(1)
    assert np.isnan(odd).any() and _bits(odd) != _bits(g.tails[0])
    plain, other = pack_many(g.skeletons * 2, [g.tails[0], odd], g.family,
                             {n: np.concatenate([a, a]) for n, a in g.fits.items()})
    assert plain == blob and _head(plain)["yt"] == "u1" and "yt" not in _head(other)
    assert _bits(read_many([other])[0][0].tails[0]) == _bits(odd)


@pytest.mark.parametrize(("scale", "code", "magic"), [(3.0, "u2", b"WSB3"),
                                                      (0.5, None, b"WSB2")])
def test_denominators_are_stored_as_the_tail_is(scale, code, magic):
    """Tests counted in whole numbers take two bytes a period (the first part then
    stored as is); other denominators keep float64 and the first part is compressed.
    Either reads back bit for bit."""
    from warnd.store import pack_series

    state = SeriesState.from_dict(_states()[2])
    den = np.asarray(state.to_store()["den"], dtype=np.float64) * scale
    state.d["den"] = den
    blob = pack_series(state)
    assert blob[:4] == magic and _head(blob).get("dt") == code
    assert _head(blob)["yt"] == "u1"
    assert _bits(unpack(blob, arrays=True)["den"]) == _bits(den)
    assert _bits(unpack(blob, arrays=True)["y"]) == _bits(np.asarray(state.to_store()["y"]))
