"""The store's floor for a steady week: reading and writing every series' detector state.

A steady cycle's polls bump the counters of each series row they touch (one
transaction a source), then detection reads each series' packed state
(:meth:`warnd.store.Store.state_blobs`, a few hundred series a query on the key) and
writes it back with the series' judgement (:meth:`warnd.store.Store.mark_judged`).
This benchmark does only that, on
a real store with ``--series`` rows and states of random bytes of each ``--sizes``
(4,100 bytes: a five-year weekly state of counts as stored before ``WSB3``; about
3,000 in ``WSB3``, ``warnd/statecodec.py``; 800: its tail, counters and alarm runs
without the baseline fits), for ``--weeks`` weeks, and reports the CPU
and wall time a series: what any detection that keeps one state a series in the
store pays before it computes anything.

With ``--group N`` the same bytes are kept ``N`` states to a row instead, in a table
of its own (a layout warnd does not have), read and written back a row at a time in
the same transactions: whether fewer, larger rows would make the week cheaper. With
``--inline`` the states are kept in a column of the ``series`` rows, as before schema
9 (``warnd/store.py`` ``_m9``).

With ``--fits-apart`` three layouts take turns week by week in one process (this
machine's speed changes by more than their differences within minutes): one row a
series of ``--sizes`` bytes as warnd keeps it; and each state's first part (980 bytes:
header, tail, the fits' integers) in one row and its fits' floats (the rest, which
change only in the weeks a fit is made or dropped: a quarter of the series) in a
second table, the floats either sent for every series and compared in SQL
(``... WHERE fits IS NOT ?``) or sent only for the series whose floats changed.

    python -m benchmarks.state_io                          # 100,000 series
    python -m benchmarks.state_io --series 10000 --sizes 4100,3000,800
    python -m benchmarks.state_io --group 40 --sizes 4100
    python -m benchmarks.state_io --inline --sizes 4100     # the layout before schema 9
    python -m benchmarks.state_io --fits-apart --sizes 3200 --weeks 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(n_series: int, size: int, weeks: int, per_source: int = 40,
        inline: bool = False) -> list[dict[str, Any]]:
    """``weeks`` rounds of a poll's update of every series row (one transaction a
    source of ``per_source`` series, as ingest bumps their counters) and of reading and
    writing ``n_series`` states of ``size`` bytes. ``inline``: the states kept in a
    column of the ``series`` rows, as before schema 9."""
    sys.path.insert(0, str(ROOT))
    from warnd.store import Store

    out = []
    with tempfile.TemporaryDirectory(prefix="warnd-stateio-") as tmp:
        store = Store(Path(tmp) / "warnd.sqlite")
        keys = [(f"src{i // per_source:05d}", f"s{(i % per_source) // 2:03d}", f"r{i % 2}",
                 "count") for i in range(n_series)]
        with store.write() as db:
            if inline:
                db.conn.execute("ALTER TABLE series ADD COLUMN detector_state BLOB")
            db.conn.executemany(
                "INSERT INTO series (source, substance, region, metric, key, dimension, "
                "first_period, last_period, n_observations, data_version, judged_version, "
                "judged_period, updated_at) VALUES (?,?,?,?,?,'use','2021-01-04',"
                "'2025-12-22',260,1,1,'2025-12-22','2025-12-22T00:00:00Z')",
                [(*k, "|".join(k)) for k in keys])
            db.conn.executemany(
                "UPDATE series SET detector_state=? WHERE source=? AND substance=? AND "
                "region=? AND metric=?" if inline else
                "INSERT INTO series_states (state, source, substance, region, metric) "
                "VALUES (?,?,?,?,?)", [(os.urandom(size), *k) for k in keys])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for week in range(weeks):
            new = os.urandom(size)  # the same bytes for all: the write is measured, not urandom
            period = (date(2025, 12, 29) + timedelta(weeks=week)).isoformat()
            p0 = time.process_time()
            for lo in range(0, n_series, per_source):  # the polls: a source at a time
                with store.write() as db:
                    db.conn.executemany(
                        "UPDATE series SET data_version=data_version + 1, last_period=?, "
                        "n_observations=n_observations + 1, updated_at=? WHERE source=? AND "
                        "substance=? AND region=? AND metric=?",
                        [(period, period, *k) for k in keys[lo : lo + per_source]])
            t0, c0 = time.perf_counter(), time.process_time()
            if inline:
                got = 0
                for lo in range(0, n_series, 190):  # as Store.state_blobs reads them
                    part = keys[lo : lo + 190]
                    got += len(store.db.execute(
                        f"WITH k(a, b, c, d) AS (VALUES {','.join(['(?,?,?,?)'] * len(part))}) "
                        "SELECT s.detector_state FROM k JOIN series s ON s.source=k.a AND "
                        "s.substance=k.b AND s.region=k.c AND s.metric=k.d",
                        [x for k in part for x in k]).fetchall())
                c1 = time.process_time()
                with store.write() as db:
                    db.conn.executemany(
                        "UPDATE series SET judged_version=data_version, judged_period=?, "
                        "detector_state=? WHERE source=? AND substance=? AND region=? "
                        "AND metric=?", [(period, new, *k) for k in keys])
            else:
                got = sum(1 for _ in store.state_blobs(keys))
                c1 = time.process_time()
                store.mark_judged([(k, 2 + week, period, new) for k in keys])
            c2, t2 = time.process_time(), time.perf_counter()
            assert got == n_series
            out.append({"series": n_series, "bytes": size, "week": week + 1,
                        "layout": "inline" if inline else "series_states",
                        "poll_update_cpu_us": round(1e6 * (c0 - p0) / n_series, 1),
                        **_timing(n_series, t0, c0, c1, c2, t2)})
        store.close()
    return out


def _timing(n_series: int, t0: float, c0: float, c1: float, c2: float,
            t2: float) -> dict[str, Any]:
    """A week's figures: CPU a series reading, and reading and writing; wall time."""
    return {"read_cpu_us": round(1e6 * (c1 - c0) / n_series, 1),
            "read_write_cpu_us": round(1e6 * (c2 - c0) / n_series, 1),
            "wall_s": round(t2 - t0, 2),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def run_grouped(n_series: int, size: int, weeks: int, group: int) -> list[dict[str, Any]]:
    """:func:`run` with ``group`` states side by side in one row of a table of its own."""
    sys.path.insert(0, str(ROOT))
    from warnd.store import Store

    out = []
    n_rows = -(-n_series // group)
    with tempfile.TemporaryDirectory(prefix="warnd-stateio-") as tmp:
        store = Store(Path(tmp) / "warnd.sqlite")
        with store.write() as db:
            db.conn.execute("CREATE TABLE state_groups (grp INTEGER PRIMARY KEY, states BLOB)")
            db.conn.executemany("INSERT INTO state_groups VALUES (?, ?)",
                                [(g, os.urandom(size * group)) for g in range(n_rows)])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for week in range(weeks):
            new = os.urandom(size * group)
            t0, c0 = time.perf_counter(), time.process_time()
            got = 0
            for lo in range(0, n_rows, 190):
                ids = list(range(lo, min(lo + 190, n_rows)))
                got += len(store.db.execute(
                    f"SELECT states FROM state_groups WHERE grp IN ({','.join('?' * len(ids))})",
                    ids).fetchall())
            c1 = time.process_time()
            with store.write() as db:
                db.conn.executemany("UPDATE state_groups SET states=? WHERE grp=?",
                                    [(new, g) for g in range(n_rows)])
            c2, t2 = time.process_time(), time.perf_counter()
            assert got == n_rows
            out.append({"series": n_series, "bytes": size, "group": group, "week": week + 1,
                        **_timing(n_series, t0, c0, c1, c2, t2)})
        store.close()
    return out


#: ``--fits-apart``: a state's first part (header, tail, the fits' integers and bytes),
#: and the share of the series whose fits' floats change a week.
FIRST_PART = 980
FITS_CHANGED = 0.25


def run_fits_apart(n_series: int, size: int, weeks: int,
                   per_source: int = 40) -> list[dict[str, Any]]:
    """``weeks`` rounds of reading and writing ``n_series`` states, the three layouts of
    ``--fits-apart`` taking turns within each round, each in a store of its own."""
    sys.path.insert(0, str(ROOT))
    from warnd.store import Store, _chunks

    keys = [(f"src{i // per_source:05d}", f"s{(i % per_source) // 2:03d}", f"r{i % 2}",
             "count") for i in range(n_series)]
    where = "source=?1 AND substance=?2 AND region=?3 AND metric=?4"
    on = "{t}.source=k.a AND {t}.substance=k.b AND {t}.region=k.c AND {t}.metric=k.d"
    n_floats = size - FIRST_PART
    every = round(1 / FITS_CHANGED)
    floats = [os.urandom(n_floats) for _ in range(16)]
    fits = [floats[i % 16] for i in range(n_series)]  # each series' floats as stored
    out = []
    with tempfile.TemporaryDirectory(prefix="warnd-stateio-") as tmp:
        stores = {}
        for layout in ("one row", "apart, compared in SQL", "apart, changed ones sent"):
            store = stores[layout] = Store(Path(tmp) / f"{len(stores)}.sqlite")
            with store.write() as db:
                db.conn.execute("CREATE TABLE series_fits (source TEXT NOT NULL, substance "
                                "TEXT NOT NULL, region TEXT NOT NULL, metric TEXT NOT NULL, "
                                "fits BLOB NOT NULL, UNIQUE (source, substance, region, metric))")
                whole = layout == "one row"
                db.conn.executemany(
                    "INSERT INTO series_states (source, substance, region, metric, state) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)",
                    [(*k, os.urandom(size if whole else FIRST_PART)) for k in keys])
                if not whole:
                    db.conn.executemany(
                        "INSERT INTO series_fits (source, substance, region, metric, fits) "
                        "VALUES (?, ?, ?, ?, ?)", [(*k, fits[i]) for i, k in enumerate(keys)])
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for week in range(weeks):
            fresh = os.urandom(n_floats)  # the floats of the series whose fits changed
            changed = list(range(week % every, n_series, every))
            for i in changed:
                fits[i] = fresh
            for layout, store in stores.items():
                whole = layout == "one row"
                t0, c0 = time.perf_counter(), time.process_time()
                got = 0
                for part in _chunks(keys, 190):  # as Store.state_blobs reads them
                    got += len(store.db.execute(
                        f"WITH k(a, b, c, d) AS (VALUES {','.join(['(?,?,?,?)'] * len(part))}) "
                        + ("SELECT s.state FROM k JOIN series_states s ON " + on.format(t="s")
                           if whole else
                           "SELECT s.state, f.fits FROM k JOIN series_states s ON "
                           + on.format(t="s") + " LEFT JOIN series_fits f ON "
                           + on.format(t="f")),
                        [x for k in part for x in k]).fetchall())
                c1 = time.process_time()
                new = os.urandom(size if whole else FIRST_PART)
                with store.write() as db:
                    db.conn.executemany(f"UPDATE series_states SET state=?5 WHERE {where}",
                                        [(*k, new) for k in keys])
                    if layout == "apart, compared in SQL":
                        db.conn.executemany(
                            f"UPDATE series_fits SET fits=?5 WHERE {where} AND fits IS NOT ?5",
                            [(*k, fits[i]) for i, k in enumerate(keys)])
                    elif layout == "apart, changed ones sent":
                        db.conn.executemany(f"UPDATE series_fits SET fits=?5 WHERE {where}",
                                            [(*keys[i], fresh) for i in changed])
                c2, t2 = time.process_time(), time.perf_counter()
                assert got == n_series
                out.append({"series": n_series, "bytes": size, "layout": layout,
                            "week": week + 1, **_timing(n_series, t0, c0, c1, c2, t2)})
        for store in stores.values():
            store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--sizes", default="3000,800", help="state sizes in bytes, comma-separated")
    ap.add_argument("--weeks", type=int, default=2)
    ap.add_argument("--group", type=int, default=1, help="states to a row (1: warnd's layout)")
    ap.add_argument("--inline", action="store_true",
                    help="the states in a column of the series rows (the layout before schema 9)")
    ap.add_argument("--fits-apart", action="store_true",
                    help="one row a series against the fits' floats in rows of their own, "
                         "taking turns")
    args = ap.parse_args()
    for size in (int(x) for x in args.sizes.split(",")):
        rows = (run_fits_apart(args.series, size, args.weeks) if args.fits_apart
                else run(args.series, size, args.weeks, inline=args.inline) if args.group == 1
                else run_grouped(args.series, size, args.weeks, args.group))
        for row in rows:
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
