"""The detectors' steady step for many series: one new week, per series or in a batch.

Builds detector states for ``--distinct`` simulated weekly count series of five years
(levels 2–40 a week, seasonal, some with a step), copies them up to each size, then
times one new week three ways, each on a fresh set of states:

* ``advance``: :meth:`detectors.engine.SeriesState.advance`, one series at a time;
* ``advance_many``: :func:`detectors.engine.advance_many` on all of them;
* the store's round trip of a state: :func:`warnd.statecodec.unpack` of the packed
  state with arrays and its fits made as :class:`detectors.baseline.Fits`,
  :meth:`SeriesState.from_dict`, then :func:`warnd.store.pack_series` (what a cycle
  does per series besides the step).

Two weeks are timed: the week of a refit point (the series started together; their
fits for it were made ahead of time, and a quarter of them make the next one) and
the week after. Findings are checked equal between the two ways.

    python -m benchmarks.batch                      # 1,000 and 10,000 series, seeds 1 and 2
    python -m benchmarks.batch --sizes 100000 --seeds 1
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from datetime import date, timedelta

import numpy as np

from detectors.base import Series
from detectors.baseline import Fits
from detectors.engine import SeriesState, advance_many, replay_with_state
from detectors.params import DetectionParams
from warnd.statecodec import pack, unpack
from warnd.store import pack_series

START = date(2021, 1, 4)


def states(n_distinct: int, weeks: int, seed: int) -> tuple[list[SeriesState], np.ndarray]:
    """States after ``weeks`` weeks and the next two weeks' values, per series."""
    rng = np.random.default_rng(seed)
    params = DetectionParams()
    out, nxt = [], []
    t = np.arange(weeks + 2)
    for i in range(n_distinct):
        level = float(rng.uniform(2, 40))
        mu = level * np.exp(0.3 * np.sin(2 * np.pi * t / 52.18 + rng.uniform(0, 6)))
        if i % 5 == 0:
            mu[weeks - 6 :] *= 2.0
        y = rng.negative_binomial(10, 10 / (10 + mu)).astype(float)
        per = tuple(START + timedelta(weeks=w) for w in range(weeks))
        s = Series(source=f"src{i % 25}", substance=f"s{i}", periods=per, values=y[:weeks])
        out.append(replay_with_state(s, params)[1])
        nxt.append(y[weeks:])
    return out, np.array(nxt)


def run(size: int, n_distinct: int, weeks: int, seed: int) -> dict[str, float]:
    params = DetectionParams()
    base, nxt = states(n_distinct, weeks, seed)
    blobs = [pack(s.to_store()) for s in base]
    reps = [i % n_distinct for i in range(size)]
    per = [START + timedelta(weeks=weeks + k) for k in range(2)]
    res: dict[str, float] = {"series": size, "seed": seed}
    for k, label in enumerate(("refit_week", "next_week")):
        one = [SeriesState.from_dict(copy.deepcopy(unpack(blobs[r], arrays=True)))
               for r in reps]
        many = [SeriesState.from_dict(copy.deepcopy(unpack(blobs[r], arrays=True)))
                for r in reps]
        for j in range(k):  # bring both sets to week k
            for st, r in zip(one, reps, strict=True):
                st.advance(per[j], float(nxt[r, j]), params)
            advance_many([(st, per[j], float(nxt[r, j]), None)
                          for st, r in zip(many, reps, strict=True)], params)
        t0 = time.perf_counter()
        a = [st.advance(per[k], float(nxt[r, k]), params) for st, r in zip(one, reps, strict=True)]
        t1 = time.perf_counter()
        b = advance_many([(st, per[k], float(nxt[r, k]), None)
                          for st, r in zip(many, reps, strict=True)], params)
        t2 = time.perf_counter()
        assert a == b, "advance_many differs from advance"
        res[f"{label}_advance_us"] = round(1e6 * (t1 - t0) / size, 1)
        res[f"{label}_advance_many_us"] = round(1e6 * (t2 - t1) / size, 1)
        res[f"{label}_findings"] = sum(len(f) for f in a)
    packed = [blobs[r] for r in reps]
    t0 = time.perf_counter()
    loaded = [SeriesState.from_dict(unpack(bl, arrays=True, make_fits=Fits.from_arrays))
              for bl in packed]
    t1 = time.perf_counter()
    for st in loaded:
        pack_series(st)
    t2 = time.perf_counter()
    res["state_unpack_us"] = round(1e6 * (t1 - t0) / size, 1)
    res["state_pack_us"] = round(1e6 * (t2 - t1) / size, 1)
    res["state_bytes"] = int(np.mean([len(b) for b in blobs]))
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--distinct", type=int, default=200,
                    help="distinct simulated series (copied up to each size)")
    ap.add_argument("--weeks", type=int, default=260)
    args = ap.parse_args()
    for seed in [int(x) for x in args.seeds.split(",")]:
        for size in [int(x) for x in args.sizes.split(",")]:
            print(json.dumps(run(size, args.distinct, args.weeks, seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
