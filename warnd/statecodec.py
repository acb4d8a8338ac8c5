"""The stored form of a series' detector state: numbers packed as arrays, not JSON text.

A detector state (:class:`detectors.engine.SeriesState`) is a dict whose bulk is
numbers: the tail of the series (a float array with NaN for a missing value, or in
the JSON-able form a list of floats with ``None``) and the baseline fits
(``{"dtype", "shape", "data"}`` arrays, ``data`` a numpy array or a list). Writing and
reading it as compressed JSON cost about a sixth of a steady cycle (every float
printed and parsed as text). Here the dict's skeleton stays JSON and every such
array goes into one binary block, written and read by numpy without a Python
loop per number:

``b"WSB1"`` · zlib (level 1) of: header length (4 bytes, little-endian) · header
(JSON: the skeleton with ``{"$": i}`` in place of array ``i``, and per array its
kind, dtype and shape) · the arrays' bytes, one after another, each in its dtype's
little-endian layout. Compressed, a five-year weekly state takes about 3.6 kB with
its next fit made ahead (2.9 kB without it, against 3.8 kB as compressed JSON);
packing and unpacking take about half the time JSON took.

A series' detector state (the shape :meth:`detectors.engine.SeriesState.to_store`
gives: a float tail, optionally a float denominator tail, and the baseline fits as the
twelve arrays of :class:`detectors.baseline.Fits`) is packed in a fixed layout
instead, ``b"WSB2"``, which needs neither a walk over the dict nor a spec per array:

``b"WSB2"`` · length of the compressed part (4 bytes, little-endian) · zlib (level 1)
of: header length (4 bytes) · header (JSON: the dict's other items, with ``null`` in
place of the tail, the denominators and the fits; the tails' lengths; the fits' family,
rows ``k`` and parameters ``p``) · the tail's float64 bytes · the denominators' ·
then, uncompressed, the fits: ``beta`` (k·p), ``ainv`` (k·p·p), ``flags`` (k·p),
``centre``, ``scale``, ``shift``, ``window_max``, ``trend_kept`` (k each) as float64;
``pos``, ``n_obs`` as int64; ``ok``, ``uselog`` as one byte each; all little-endian.
``flags`` are one byte each when they are all exactly 0 or 1 (the header says which).
The fits are left uncompressed because their floats hardly compress (3.4 kB to 2.4 kB
for five years of weekly data) while zlib spent most of a state's packing on them:
a state takes about 4.2 kB instead of 3.6 kB, packing it about a third of the time
``WSB1`` took and unpacking it about half (``benchmarks/batch.py``, numbers in
``docs/load-history.md``). Any other dict is packed as ``WSB1``.

Two parts of that layout are smaller when they can be, each said in the header, and
read back bit for bit either way:

* ``ainv`` is the inverse of a symmetric matrix, and the baseline makes it exactly
  symmetric (``_fit_block`` in :mod:`detectors.baseline`), so when every row's is, only its
  upper triangle is stored, row by row (``"ainv": "tri"`` among the fits' items:
  ``p (p + 1) / 2`` floats a row instead of ``p²``, 1,080 bytes less for nine fits of
  six parameters). States whose fits were made before keep the whole matrices.
* A tail (and the denominators) of whole numbers from 0 to 254 (65,534) with NaN for
  a missing value is stored as one (two) unsigned bytes a period, the largest value
  standing for a missing one (``"yt"`` / ``"dt"``: ``"u1"`` or ``"u2"``); -0.0 or a
  NaN of another payload keeps float64.

When every tail is stored so and the state then takes at most :data:`AS_IS_MAX`
bytes (within one page of the store), the first part (about 0.9 kB) is not compressed
at all: ``b"WSB3"`` in place of ``b"WSB2"``, the length word then the first part's
length. (A state whose fits keep their whole matrices would take about 4.3 kB so,
more than compressed; it stays ``WSB2``.) zlib's set-up alone cost about as much as
compressing the whole float64 tail (about 24 µs a state here, whatever its size),
more than the 0.4 kB it saved.
A five-year weekly state of counts then takes about 3.0 kB instead of 3.4–3.8
(less than one page of the store; before, most took a page of their own), and
reading and packing the 10,000-series store's states took 0.21 and 0.20 s instead
of 0.24 and 0.35 s (fastest of ten rounds in one process, taking turns).

:func:`read_many` reads the fixed-layout states of many series at once, grouped by
their fits' shape (a group's fits in a few numpy calls over the joined bytes), and
:func:`pack_many` writes many, the same bytes as one by one: what a steady detect
pass uses for most series (``Pipeline._advance_blocks``).

Unpacking gives the JSON-able dict (``None`` for a missing value; floats bit for bit)
or, with ``arrays``, the arrays themselves, so the engine sees no difference; both
layouts unpack to the same dict. :func:`unpack` also reads the older zlib-compressed
JSON, so stores written before keep their states.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"WSB1"
#: The fixed layout of a series' detector state (see the module docstring).
MAGIC2 = b"WSB2"
#: The same layout with its first part stored as is (see the module docstring).
MAGIC3 = b"WSB3"
#: A fixed-layout state whose tails are stored as whole numbers is written as ``WSB3``
#: when it then takes at most this many bytes (with its key, within a 4 kB page).
AS_IS_MAX = 3500
#: A list of floats (``None`` allowed) at least this long is packed as an array.
MIN_LIST = 8
_ARRAY_KEYS = {"dtype", "shape", "data"}
#: The headers' JSON, with one encoder and decoder made once (``json.dumps`` with
#: separators makes an encoder each call, about a third of a header's time).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode
#: Makes a state's fits from their family and arrays by name (:func:`unpack`).
MakeFits = Callable[[str, dict[str, Any]], Any]


_NONE = type(None)


def pack(state: dict[str, Any]) -> bytes:
    """``state`` as stored (see the module docstring)."""
    fixed = _pack_series_state(state)
    if fixed is not None:
        return fixed
    import numpy as np

    specs: list[list[Any]] = []
    blobs: list[bytes] = []
    _NESTED = (dict, list, np.ndarray)  # what may hold an array (the rest is kept as is)

    def walk(v: Any) -> Any:
        if isinstance(v, np.ndarray):  # a tail of floats (NaN: missing) as an array
            a = np.ascontiguousarray(v, dtype="<f8").ravel()
            specs.append(["floats", "<f8", [len(a)], None])
            blobs.append(a.tobytes())
            return {"$": len(specs) - 1}
        if isinstance(v, dict):
            data = v.get("data")
            # an array: its data a numpy array or a list of numbers
            if isinstance(data, (np.ndarray, list)) and v.keys() == _ARRAY_KEYS:
                name = v["dtype"]
                if _dtype(name) is not None:
                    shape = v["shape"]
                    size = data.size if type(data) is np.ndarray else np.size(data)
                    if size == math.prod(shape):
                        little, little_str = _LITTLE_OF[name]
                        a = np.asarray(data, dtype=little)
                        specs.append(["array", little_str, list(shape), name])
                        blobs.append(a.tobytes())
                        return {"$": len(specs) - 1}
            return {k: (walk(x) if type(x) in _NESTED else x) for k, x in v.items()}
        if isinstance(v, list):
            # floats and None only (numpy reads None as NaN); no NaN or infinity of
            # their own, which could not come back told apart from None
            if len(v) >= MIN_LIST and set(map(type, v)) <= {float, _NONE}:
                a = np.array(v, dtype="<f8")
                if np.count_nonzero(~np.isfinite(a)) == v.count(None):
                    specs.append(["floats", "<f8", [len(v)], None])
                    blobs.append(a.tobytes())
                    return {"$": len(specs) - 1}
            return [walk(x) if type(x) in _NESTED else x for x in v]
        return v

    skeleton = walk(state)
    header = json.dumps({"state": skeleton, "arrays": specs}, separators=(",", ":")).encode()
    return MAGIC + zlib.compress(b"".join([struct.pack("<I", len(header)), header, *blobs]), 1)


#: The fits' arrays in the fixed layout: name, dtype name, shape after the row axis
#: ("p": the number of parameters), in the order they are stored.
_FIT_FLOATS = (("beta", ("p",)), ("ainv", ("p", "p")), ("flags", ("p",)), ("centre", ()),
               ("scale", ()), ("shift", ()), ("window_max", ()), ("trend_kept", ()))
_FIT_INTS = ("pos", "n_obs")
_FIT_BOOLS = ("ok", "uselog")
_FIT_NAMES = frozenset(["family", *(n for n, _ in _FIT_FLOATS), *_FIT_INTS, *_FIT_BOOLS])


def _pack_series_state(state: dict[str, Any]) -> bytes | None:
    """``state`` in the fixed layout ``WSB2``, or None when it does not have that shape."""
    import numpy as np

    y, den, fits = state.get("y"), state.get("den", 0), state.get("fits")
    if type(fits) is not dict or fits.keys() != _FIT_NAMES or not isinstance(fits["family"], str):
        return None
    beta = fits["beta"]
    if type(beta) is not dict or len(beta.get("shape") or ()) != 2:
        return None
    k, p = beta["shape"]
    if type(k) is not int or type(p) is not int:
        return None
    parts = {}
    for name, dtype, shape, _ in _layout(k, p, False)[0]:
        v = fits[name]
        if (type(v) is not dict or v.keys() != _ARRAY_KEYS or v["dtype"] != dtype
                or tuple(v["shape"]) != shape):
            return None
        a = np.asarray(v["data"], dtype=dtype)
        if a.size != math.prod(shape):
            return None
        parts[name] = a.reshape(shape)
    return pack_series_state(state, y, den, fits["family"], parts)


def pack_series_state(skeleton: dict[str, Any], y: Any, den: Any, family: str,
                      fits: dict[str, Any]) -> bytes | None:
    """A series' state in the fixed layout ``WSB2`` from its parts: ``skeleton`` (the
    state's other items; its ``y``, ``den`` and ``fits`` are written as ``null``), the
    tail ``y`` and denominators ``den`` (float64 arrays, ``den`` may be None) and the
    fits' twelve arrays by name (``fits["beta"]`` of shape ``(k, p)``, the others of
    the shape and dtype :func:`_layout` says). The same bytes as
    :func:`pack` of the whole dict; None when a part does not have that shape.

    Lets a caller that holds the arrays pack them without building the dict."""
    import numpy as np

    if (type(y) is not np.ndarray or y.dtype != np.float64 or y.ndim != 1
            or not (den is None or (type(den) is np.ndarray and den.dtype == np.float64
                                    and den.ndim == 1))):
        return None
    beta = fits.get("beta")
    if type(beta) is not np.ndarray or beta.ndim != 2:
        return None
    k, p = beta.shape
    parts = {}
    for name, dtype, shape, _ in _layout(k, p, False)[0]:
        a = fits.get(name)
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
            return None
        parts[name] = a.ravel()
    flags = parts["flags"]
    small = None
    if ((flags == 0.0) | (flags == 1.0)).all():  # one byte each unless that loses a bit (-0.0)
        small = flags.astype(np.uint8)
    flag_bytes = small is not None and small.astype(np.float64).tobytes() == flags.tobytes()
    ainv = parts["ainv"].reshape(k, p, p)
    tri = bool(_symmetric(ainv[None]).all())
    order, _ = _layout(k, p, flag_bytes, tri)
    if tri:
        parts["ainv"] = _triangle_of(ainv).ravel()
    (code, tail), = _encode_tails([y])
    dcode, dtail = _encode_tails([den])[0] if den is not None else (None, b"")
    header = _header(skeleton, _fits_head(family, k, p, flag_bytes, tri), len(y),
                     None if den is None else len(den), code, dcode)
    if flag_bytes:
        parts["flags"] = small
    ints = np.concatenate([parts[n] for n, _, _, block in order if block == "i"])
    small_ones = np.concatenate([parts[n].astype(np.uint8, copy=False)
                                 for n, _, _, block in order if block == "b"])
    first = b"".join([struct.pack("<I", len(header)), header, tail, dtail,
                      ints.astype("<i8", copy=False).tobytes(), small_ones.tobytes()])
    floats = np.concatenate([parts[n] for n, _, _, block in order if block == "f"])
    return _sealed(first, code is not None and (den is None or dcode is not None),
                   floats.astype("<f8", copy=False).tobytes())


def _fits_head(family: str, k: int, p: int, flag_bytes: bool, tri: bool) -> dict[str, Any]:
    """The header's item for the fits: family, rows, parameters and how the flags and
    ``ainv`` are stored."""
    f = {"family": family, "k": k, "p": p, "flags": "u1" if flag_bytes else "f8"}
    if tri:
        f["ainv"] = "tri"
    return f


def _header(skeleton: dict[str, Any], f: dict[str, Any], ny: int, nd: int | None,
            code: str | None, dcode: str | None) -> bytes:
    """A fixed-layout state's header: the state's other items (its tail, denominators
    and fits ``null``), the fits' item ``f``, the tails' lengths and how they are stored
    (``"yt"``/``"dt"`` only when not float64)."""
    head = {"s": {**skeleton, "y": None, "den": None, "fits": None}, "y": ny, "d": nd,
            "f": f}
    if code is not None:
        head["yt"] = code
    if dcode is not None:
        head["dt"] = dcode
    return _ENCODE(head).encode()


def _sealed(first: bytes, coded: bool, floats: bytes) -> bytes:
    """A state in the fixed layout from its first part (header, tails, the fits'
    integers and bytes) and its fits' floats: the first part as is (``WSB3``) when
    its tails are ``coded`` as whole numbers and the state stays within
    :data:`AS_IS_MAX` bytes, else compressed (``WSB2``)."""
    as_is = coded and 8 + len(first) + len(floats) <= AS_IS_MAX
    part = first if as_is else zlib.compress(first, 1)
    return b"".join([MAGIC3 if as_is else MAGIC2, struct.pack("<I", len(part)), part, floats])


def _first_part(blob: bytes) -> tuple[bytes, int]:
    """A fixed-layout state's first part (decompressed for ``WSB2``) and its stored
    length (the fits' floats follow it)."""
    if len(blob) < 8:
        raise ValueError("detector state: too short")
    (zlen,) = struct.unpack_from("<I", blob, 4)
    if blob.startswith(MAGIC3):
        if len(blob) < 8 + zlen:
            raise ValueError("detector state: too short")
        return blob[8 : 8 + zlen], zlen
    if not blob.startswith(MAGIC2):
        raise ValueError("not the fixed layout")
    return zlib.decompress(memoryview(blob)[8 : 8 + zlen]), zlen


@functools.lru_cache(maxsize=64)
def _layout(k: int, p: int, flag_bytes: bool, tri: bool = False) -> tuple[
        tuple[tuple[str, str, tuple[int, ...], str], ...], tuple[int, int, int]]:
    """The fits' arrays in the order stored, each ``(name, dtype, shape, block)``: the
    float64 block ``f``, the int64 block ``i``, then the one-byte block ``b`` (the
    flags when ``flag_bytes``, and the bools); and the number of floats, ints and
    bytes. With ``tri``, ``ainv`` is stored as its upper triangle, shape ``(k, t)``
    with ``t = p (p + 1) / 2`` (:func:`_triangle`)."""
    dims = {"p": p}
    floats = [(n, "float64", (k, p * (p + 1) // 2) if tri and n == "ainv"
               else (k, *(dims[t] for t in tail)), "f") for n, tail in _FIT_FLOATS
              if not (flag_bytes and n == "flags")]
    ints = [(n, "int64", (k,), "i") for n in _FIT_INTS]
    small = [("flags", "float64", (k, p), "b")] if flag_bytes else []
    small += [(n, "bool", (k,), "b") for n in _FIT_BOOLS]
    return (*floats, *ints, *small), (sum(math.prod(s) for _, _, s, _ in floats), 2 * k,
                                      sum(math.prod(s) for _, _, s, _ in small))


@functools.lru_cache(maxsize=64)
def _slices(order: tuple[tuple[str, str, tuple[int, ...], str], ...]) -> tuple[
        tuple[str, str, tuple[int, ...], str, int, int], ...]:
    """:func:`_layout`'s arrays with where each lies in its block."""
    at = {"f": 0, "i": 0, "b": 0}
    out = []
    for name, dtype, shape, block in order:
        lo = at[block]
        at[block] = lo + math.prod(shape)
        out.append((name, dtype, shape, block, lo, at[block]))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _triangle(p: int) -> tuple[Any, Any]:
    """The row and column indices of a ``p × p`` matrix's upper triangle, row by row."""
    import numpy as np

    return np.triu_indices(p)


def _symmetric(ainv: Any) -> Any:
    """For fits stacked ``(S, k, p, p)``: whether each state's ``ainv`` is symmetric
    bit for bit (so its upper triangle gives it back exactly)."""
    import numpy as np

    bits = np.ascontiguousarray(ainv, dtype=np.float64).view(np.uint64)
    return (bits == bits.swapaxes(-1, -2)).all(axis=(-3, -2, -1))


def _triangle_of(ainv: Any) -> Any:
    """The upper triangles of ``ainv`` (``(..., p, p)``) as ``(..., t)``."""
    iu0, iu1 = _triangle(ainv.shape[-1])
    return ainv[..., iu0, iu1]


def _from_triangle(tri: Any, p: int) -> Any:
    """Symmetric ``(..., p, p)`` matrices from their upper triangles ``(..., t)``."""
    import numpy as np

    iu0, iu1 = _triangle(p)
    full = np.empty((*tri.shape[:-1], p, p))
    full[..., iu0, iu1] = tri
    full[..., iu1, iu0] = tri
    return full


#: A tail of whole numbers is stored as one or two bytes a period (a missing value as
#: the largest one), the header's ``"yt"`` naming which; any other tail as float64.
_TAIL_CODES = {"u1": ("u1", 255.0, 1), "u2": ("<u2", 65535.0, 2)}


def _encode_tails(tails: list[Any]) -> list[tuple[str | None, bytes]]:
    """Each float64 tail's code and stored bytes: ``u1`` or ``u2`` when its values are
    whole numbers (or NaN) that read back from it bit for bit (not -0.0, not another
    NaN), else ``None`` and its float64 bytes. Tails of one length are checked together."""
    import numpy as np

    out: list[tuple[str | None, bytes]] = [(None, b"")] * len(tails)
    by_len: dict[int, list[int]] = {}
    for j, y in enumerate(tails):
        by_len.setdefault(len(y), []).append(j)
    for n, idx in by_len.items():
        Y = np.array([tails[j] for j in idx], dtype=np.float64).reshape(len(idx), n)
        nan = np.isnan(Y)
        hi = np.where(nan, 0.0, Y).max(axis=1, initial=0.0)
        lo = np.where(nan, 0.0, Y).min(axis=1, initial=0.0)
        code = np.where(lo < 0, "", np.where(hi < 255, "u1", np.where(hi < 65535, "u2", "")))
        for name, (dt, top, _) in _TAIL_CODES.items():
            rows = np.flatnonzero(code == name)
            if not len(rows):
                continue
            enc = np.where(nan[rows], top, Y[rows]).astype(dt)
            back = np.where(enc == top, np.nan, enc.astype(np.float64))
            exact = (back.view(np.uint64) == Y[rows].view(np.uint64)).all(axis=1)
            code[rows[~exact]] = ""
            for r in np.flatnonzero(exact).tolist():
                out[idx[rows[r]]] = (name, enc[r].tobytes())
        for r in np.flatnonzero(code == "").tolist():
            out[idx[r]] = (None, Y[r].astype("<f8", copy=False).tobytes())
    return out


def _tail_size(code: Any, n: int) -> int:
    """The bytes a tail of ``n`` periods stored under ``code`` takes (ValueError for
    a code this version does not know)."""
    if code is None:
        return 8 * n
    if code not in _TAIL_CODES:
        raise ValueError(f"detector state: tail of unknown kind {code!r}")
    return n * _TAIL_CODES[code][2]


def _decode_tail(buf: Any, code: str | None, n: int, offset: int) -> Any:
    """A tail stored under ``code`` as float64 (NaN for a missing value)."""
    import numpy as np

    if code is None:
        return np.frombuffer(buf, "<f8", n, offset).astype(np.float64)
    dt, top, _ = _TAIL_CODES[code]
    a = np.frombuffer(buf, dt, n, offset)
    y = a.astype(np.float64)
    y[a == top] = np.nan
    return y


def _fixed(blob: bytes) -> tuple[dict[str, Any], bytes, int, int, int, int, bool, bool, int,
                                 int]:
    """A state in the fixed layout read as far as its header: ``(head, body, zlen, at,
    k, p, flag_bytes, tri, ysize, dsize)``, the header, the first part (decompressed,
    :func:`_first_part`; the fits' floats follow ``zlen`` bytes of it in the blob), where
    the tail starts in it, the fits' rows and parameters, how the flags and ``ainv`` are
    stored, and the bytes of the tail and the denominators. ``ValueError`` when the
    tails, the fits' integers and bytes do not fill the first part or the fits' floats
    the rest."""
    body, zlen = _first_part(blob)
    (n,) = struct.unpack_from("<I", body, 0)
    head = _DECODE(body[4 : 4 + n].decode())
    ny, nd, f = head["y"], head["d"], head["f"]
    k, p, flag_bytes, tri = int(f["k"]), int(f["p"]), f["flags"] == "u1", f.get("ainv") == "tri"
    _, (nf, ni, nb) = _layout(k, p, flag_bytes, tri)
    ysize = _tail_size(head.get("yt"), ny)
    dsize = 0 if nd is None else _tail_size(head.get("dt"), nd)
    if 4 + n + ysize + dsize + 8 * ni + nb != len(body):
        raise ValueError("detector state: the tails and fits' integers do not fill their block")
    if len(blob) - 8 - zlen != 8 * nf:
        raise ValueError(f"detector state: fits of {len(blob) - 8 - zlen} bytes, "
                         f"{8 * nf} expected")
    return head, body, zlen, 4 + n, k, p, flag_bytes, tri, ysize, dsize


def _unpack_series_state(blob: bytes, arrays: bool,
                         make_fits: MakeFits | None = None) -> dict[str, Any]:
    """The state dict from the fixed layout (:func:`_pack_series_state`); with
    ``make_fits`` (and ``arrays``) its fits are ``make_fits(family, arrays by name)``."""
    import numpy as np

    head, body, zlen, offset, k, p, flag_bytes, tri, ysize, dsize = _fixed(blob)
    ny, nd, f = head["y"], head["d"], head["f"]
    order, (nf, ni, nb) = _layout(k, p, flag_bytes, tri)
    y = _decode_tail(body, head.get("yt"), ny, offset)
    offset += ysize
    den = None
    if nd is not None:
        den = _decode_tail(body, head.get("dt"), nd, offset)
        offset += dsize
    at = 8 + zlen
    blocks = {"f": np.frombuffer(blob, "<f8", nf, at).astype(np.float64),
              "i": np.frombuffer(body, "<i8", ni, offset).astype(np.int64),
              "b": np.frombuffer(body, np.uint8, nb, offset + 8 * ni)}
    got: dict[str, Any] = {}
    shaped = arrays and make_fits is not None and k > 0
    for name, dtype, shape, block, lo, hi in _slices(order):  # views of one copy a block
        a = blocks[block][lo:hi]
        if block == "b":
            a = a.astype(dtype)
        elif tri and name == "ainv":
            shape = (k, p, p)
            a = _from_triangle(a.reshape(k, p * (p + 1) // 2), p).ravel()
        if shaped:
            got[name] = a.reshape(shape)
        else:
            got[name] = {"dtype": dtype, "shape": list(shape),
                         "data": a if arrays else a.tolist()}
    if shaped:
        fits = make_fits(f["family"], got)
    else:
        fits = {"family": f["family"], **{name: got[name] for name in _ORDER}}
    state = head["s"]
    state["y"] = y if arrays else _float_list(y)
    state["den"] = den if arrays or den is None else _float_list(den)
    state["fits"] = fits
    return state  # type: ignore[no-any-return]



@dataclass
class StateGroup:
    """States in the fixed layout whose fits have the same shape, read together by
    :func:`read_many`: ``index`` their places in the list read, ``skeletons`` each
    state's other items (its tail, denominators and fits ``None``), ``tails`` each
    state's tail (float64), and the fits' twelve arrays by name with the states stacked
    first (``beta`` of shape ``(S, k, p)``, and so on)."""

    index: list[int]
    skeletons: list[dict[str, Any]]
    tails: list[Any]
    family: str
    fits: dict[str, Any]


def read_many(blobs: list[bytes]) -> tuple[list[StateGroup], list[int]]:
    """The states of ``blobs`` that are in the fixed layout, without denominators and
    with at least one fit, grouped by their fits' shape, each group's fits read in a
    few numpy calls for all of its states (what :func:`unpack` gives one by one, value
    for value); and the places of the other blobs (another layout, denominators, or
    bytes that do not hold together), which :func:`unpack` reads or refuses."""
    import numpy as np

    found: dict[tuple[str, int, int, bool], list[tuple[int, Any, bytes, int, int, bytes, int]]] = {}
    rest = []
    for i, blob in enumerate(blobs):
        try:
            head, body, zlen, at, k, p, flag_bytes, tri, size, _ = _fixed(blob)
            ny = head["y"]
            if (head["d"] is not None or k <= 0 or type(ny) is not int
                    or type(head["s"]) is not dict):
                raise ValueError("denominators or no fits")
        except (zlib.error, ValueError, struct.error, KeyError, TypeError):
            rest.append(i)
            continue
        found.setdefault((head["f"]["family"], k, p, flag_bytes, tri), []).append(
            (i, head["s"], body, at, (ny, head.get("yt"), size), blob, zlen))
    groups = []
    for (family, k, p, flag_bytes, tri), members in found.items():
        order, (nf, ni, nb) = _layout(k, p, flag_bytes, tri)
        S = len(members)
        tails = [_decode_tail(body, code, ny, at)
                 for _, _, body, at, (ny, code, _), _, _ in members]
        ints = np.frombuffer(b"".join(body[at + size : at + size + 8 * ni]
                                      for _, _, body, at, (_, _, size), _, _ in members), "<i8")
        small = np.frombuffer(b"".join(body[at + size + 8 * ni :]
                                       for _, _, body, at, (_, _, size), _, _ in members),
                              np.uint8)
        floats = np.frombuffer(b"".join(memoryview(blob)[8 + zlen :]
                                        for *_, blob, zlen in members), "<f8")
        blocks = {"f": floats.astype(np.float64).reshape(S, nf),
                  "i": ints.astype(np.int64).reshape(S, ni), "b": small.reshape(S, nb)}
        fits = {}
        for name, dtype, shape, block, lo, hi in _slices(order):
            a = blocks[block][:, lo:hi]
            if block == "b":
                a = a.astype(dtype)
            elif tri and name == "ainv":
                a, shape = _from_triangle(a.reshape(S, k, -1), p), (k, p, p)
            fits[name] = a.reshape((S, *shape))
        groups.append(StateGroup([m[0] for m in members], [m[1] for m in members], tails,
                                 family, fits))
    return groups, rest


def pack_many(skeletons: list[dict[str, Any]], tails: list[Any], family: str,
              fits: dict[str, Any]) -> list[bytes] | None:
    """:func:`pack_series_state` of many states without denominators whose fits have
    the same shape (``fits`` as :class:`StateGroup` holds them: the states stacked
    first), the same bytes for each, with the fits' blocks made in a few numpy calls
    for all of them. None when the fits are not of the layout's dtypes (the caller
    packs them one by one)."""
    import numpy as np

    beta = fits.get("beta")
    if type(beta) is not np.ndarray or beta.ndim != 3:
        return None
    S, k, p = beta.shape
    for name, dtype, shape, _ in _layout(k, p, False)[0]:
        a = fits.get(name)
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != (S, *shape):
            return None
    if S != len(skeletons) or S != len(tails) or k == 0:
        return None
    F = fits["flags"].reshape(S, -1)
    # one byte each unless that loses a bit (-0.0), as pack_series_state decides
    byte_ok = ((F == 1.0) | ((F == 0.0) & ~np.signbit(F))).all(axis=1)
    tri_ok = _symmetric(fits["ainv"])
    coded = _encode_tails(tails)
    out: list[bytes] = [b""] * S
    for flag_bytes, tri in ((True, True), (True, False), (False, True), (False, False)):
        rows = np.flatnonzero((byte_ok == flag_bytes) & (tri_ok == tri))
        if not len(rows):
            continue
        order, _ = _layout(k, p, flag_bytes, tri)
        part = {n: (_triangle_of(fits[n][rows]) if tri and n == "ainv" else fits[n][rows])
                .reshape(len(rows), -1) for n, _, _, _ in order}
        fl = np.concatenate([part[n] for n, _, _, b in order if b == "f"],
                            axis=1).astype("<f8", copy=False)
        ints = np.concatenate([part[n] for n, _, _, b in order if b == "i"],
                              axis=1).astype("<i8", copy=False)
        small = np.concatenate([part[n].astype(np.uint8, copy=False)
                                for n, _, _, b in order if b == "b"], axis=1)
        f = _fits_head(family, k, p, flag_bytes, tri)
        for r, j in enumerate(rows.tolist()):
            code, tail = coded[j]
            header = _header(skeletons[j], f, len(tails[j]), None, code, None)
            out[j] = _sealed(b"".join([struct.pack("<I", len(header)), header, tail,
                                       ints[r].tobytes(), small[r].tobytes()]),
                             code is not None, fl[r].tobytes())
    return out

#: The fits' arrays in :class:`detectors.baseline.Fits` order (as ``Fits.to_dict`` gives).
_ORDER = ("pos", "ok", "beta", "ainv", "flags", "centre", "scale", "shift", "uselog",
          "window_max", "n_obs", "trend_kept")


def _float_list(a: Any) -> list[float | None]:
    """A float array as JSON-able floats, None for NaN (both layouts' list form)."""
    import numpy as np

    floats = a.tolist()
    return [None if x != x else x for x in floats] if np.isnan(a).any() else floats


_DTYPES: dict[str, Any] = {}
#: The little-endian form of each dtype :func:`_dtype` accepts, and its name.
_LITTLE_OF: dict[str, Any] = {}


def _dtype(name: Any) -> Any:
    """The numpy dtype named ``name`` when it is a plain number or bool type, else None."""
    if name not in _DTYPES:
        import numpy as np

        try:
            dt = np.dtype(name)
        except TypeError:
            dt = None
        _DTYPES[name] = dt if dt is not None and dt.kind in "biuf" else None
        if _DTYPES[name] is not None:
            little = dt.newbyteorder("<")
            _LITTLE_OF[name] = (little, little.str)
    return _DTYPES[name]


_STORED: dict[str, Any] = {}


def _stored(dtype: str) -> tuple[Any, Any]:
    """A stored array's dtype and its native-order form (looked up once each)."""
    got = _STORED.get(dtype)
    if got is None:
        import numpy as np

        dt = np.dtype(dtype)
        got = _STORED[dtype] = (dt, dt.newbyteorder("="))
    return got


def unpack(blob: bytes, *, arrays: bool = False,
           make_fits: MakeFits | None = None) -> dict[str, Any]:
    """The state dict from :func:`pack`'s bytes, or from the older compressed JSON.

    With ``arrays`` the packed arrays come back as numpy arrays: a list of floats as a
    float array with NaN for None, an array's ``data`` flat (what the engine reads,
    without a Python object per number). With ``make_fits`` too, the fits of a state
    in the fixed layout (with at least one row) come back as ``make_fits(family,
    {name: array of its shape})`` instead of a dict of arrays (the engine's
    :meth:`detectors.baseline.Fits.from_arrays`: no dict built and read again).

    Raises ``ValueError`` (or ``zlib.error``) when ``blob`` is neither.
    """
    if blob.startswith(MAGIC2) or blob.startswith(MAGIC3):
        return _unpack_series_state(blob, arrays, make_fits)
    if not blob.startswith(MAGIC):
        return json.loads(zlib.decompress(blob))  # type: ignore[no-any-return]
    import numpy as np

    body = zlib.decompress(memoryview(blob)[len(MAGIC):])
    (n,) = struct.unpack_from("<I", body, 0)
    head = json.loads(body[4 : 4 + n])
    offset = 4 + n
    found: list[Any] = []
    for kind, dtype, shape, name in head["arrays"]:
        dt, native = _stored(dtype)
        count = math.prod(shape)
        a = np.frombuffer(body, dtype=dt, count=count, offset=offset)
        offset += count * dt.itemsize
        if arrays:
            a = a.astype(native)  # a copy: the state may be changed in place
            found.append(a if kind == "floats" else {"dtype": name, "shape": shape, "data": a})
        elif kind == "floats":
            found.append(_float_list(a))
        else:
            found.append({"dtype": name, "shape": shape,
                           "data": a.astype(native, copy=False).tolist()})
    if offset != len(body):
        raise ValueError(f"detector state: {len(body) - offset} bytes left over")

    def filled(v: Any) -> Any:
        # the header was parsed here, so its dicts and lists are filled in place
        if type(v) is dict:
            if len(v) == 1 and "$" in v:
                return found[v["$"]]
            for k, x in v.items():
                if type(x) is dict or type(x) is list:
                    v[k] = filled(x)
        elif type(v) is list:
            for i, x in enumerate(v):
                if type(x) is dict or type(x) is list:
                    v[i] = filled(x)
        return v

    return filled(head["state"])  # type: ignore[no-any-return]
