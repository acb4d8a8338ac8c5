"""What the polls of a steady week cost in the observations table, clustered two ways.

warnd keeps ``observations`` as a WITHOUT ROWID table clustered by series (primary key
source, substance, region, metric, period), so a series' history is together for
replays, reports and charts, and a poll that gives each of a source's series its new
week writes one leaf page a series. This benchmark measures that against the same
table clustered by source and period first (a layout warnd does not have), where a
source's new week is a few adjacent pages: on a store of ``--series`` series with
``--weeks`` weeks of history each (``--per-source`` series a source), each layout gets
``--new-weeks`` new weeks, polled a source at a time (one transaction each, the rows
upserted as ingest's set-based statement does), and then ``--reads`` series' whole
histories are read, as a replay or a chart reads them. SQLite alone, no warnd code:

    python -m benchmarks.obs_layout                       # 20,000 series x 260 weeks
    python -m benchmarks.obs_layout --series 100000       # about 3 GB a layout
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

LAYOUTS = {
    "series": "source, substance, region, metric, period",  # as warnd keeps it
    "time": "source, period, substance, region, metric",
}
START = date(2021, 1, 4)


def _keys(n_series: int, per_source: int) -> list[tuple[str, str, str]]:
    return [(f"src{i // per_source:05d}", f"s{(i % per_source) // 2:03d}", f"r{i % 2}")
            for i in range(n_series)]


def _value(i: int, w: int) -> float:
    return float(15 + (i * 7919 + w * 13) % 11)


def run(layout: str, n_series: int, weeks: int, per_source: int, new_weeks: int,
        reads: int, folder: Path) -> dict[str, Any]:
    pk = LAYOUTS[layout]
    path = folder / f"obs-{layout}.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute(
        "CREATE TABLE observations (source TEXT NOT NULL, substance TEXT NOT NULL, "
        "region TEXT NOT NULL, metric TEXT NOT NULL, period TEXT NOT NULL, value REAL NOT NULL, "
        "denominator REAL, dimension TEXT, flag TEXT, ref TEXT, first_seen_at TEXT NOT NULL, "
        f"updated_at TEXT NOT NULL, PRIMARY KEY ({pk})) WITHOUT ROWID")
    keys = _keys(n_series, per_source)
    periods = [(START + timedelta(weeks=w)).isoformat() for w in range(weeks + new_weeks)]
    stamp = "2026-01-01T00:00:00+00:00"
    t0 = time.perf_counter()
    con.execute("BEGIN")
    rows = ((s, sub, reg, "count", periods[w], _value(i, w), "use", f"hist.csv line {w}", stamp,
             stamp) for i, (s, sub, reg) in enumerate(keys) for w in range(weeks))
    con.executemany("INSERT INTO observations (source, substance, region, metric, period, "
                    "value, dimension, ref, first_seen_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    build_s = time.perf_counter() - t0
    con.execute("CREATE TEMP TABLE incoming (source TEXT, substance TEXT, region TEXT, "
                "metric TEXT, period TEXT, value REAL, ref TEXT)")
    by_source: dict[str, list[int]] = {}
    for i, (s, _, _) in enumerate(keys):
        by_source.setdefault(s, []).append(i)
    r0, c0 = time.perf_counter(), time.process_time()
    for w in range(weeks, weeks + new_weeks):
        for src, members in by_source.items():
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM temp.incoming")
            con.executemany("INSERT INTO temp.incoming VALUES (?,?,?,?,?,?,?)",
                            [(src, keys[i][1], keys[i][2], "count", periods[w], _value(i, w),
                              f"week-{periods[w]}.csv line {j + 2}")
                             for j, i in enumerate(members)])
            con.execute(
                "INSERT INTO observations (source, substance, region, metric, period, value, "
                "ref, first_seen_at, updated_at) SELECT source, substance, region, metric, "
                f"period, value, ref, ?, ? FROM temp.incoming WHERE true ORDER BY {pk} "
                "ON CONFLICT DO UPDATE SET value = excluded.value, ref = excluded.ref, "
                "updated_at = excluded.updated_at", (stamp, stamp))
            con.execute("COMMIT")
    poll_wall, poll_cpu = time.perf_counter() - r0, time.process_time() - c0
    n_rows = n_series * new_weeks
    sample = random.Random(1).sample(keys, min(reads, len(keys)))
    r0 = time.perf_counter()
    got = 0
    for s, sub, reg in sample:
        got += len(con.execute(
            "SELECT period, value FROM observations WHERE source = ? AND substance = ? "
            "AND region = ? AND metric = 'count' ORDER BY period", (s, sub, reg)).fetchall())
    read_s = time.perf_counter() - r0
    assert got == len(sample) * (weeks + new_weeks)
    size = path.stat().st_size
    con.close()
    return {"layout": layout, "primary_key": pk, "series": n_series, "weeks": weeks,
            "build_s": round(build_s, 1), "db_mib": round(size / 2**20, 1),
            "polls": len(by_source) * new_weeks, "rows_polled": n_rows,
            "poll_wall_s": round(poll_wall, 2), "poll_cpu_s": round(poll_cpu, 2),
            "poll_us_a_row": round(poll_wall / n_rows * 1e6, 1),
            "history_reads": len(sample), "read_ms_a_series": round(read_s / len(sample) * 1e3, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--weeks", type=int, default=260)
    ap.add_argument("--per-source", type=int, default=40)
    ap.add_argument("--new-weeks", type=int, default=2)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--layouts", default="series,time")
    args = ap.parse_args()
    tmp_root = os.environ.get("TMPDIR")  # a layout of 100,000 series is about 3 GB
    with tempfile.TemporaryDirectory(prefix="warnd-obslayout-", dir=tmp_root) as tmp:
        for layout in args.layouts.split(","):
            res = run(layout, args.series, args.weeks, args.per_source, args.new_weeks,
                      args.reads, Path(tmp))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            res["peak_rss_mib"] = round(peak / 1024, 1)
            print(json.dumps(res), flush=True)
            (Path(tmp) / f"obs-{layout}.sqlite").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
