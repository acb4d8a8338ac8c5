"""Console page times on a large store: overview, substance page, one chart's data.

A generated store with ``substances × sources × regions`` weekly series (default
20 × 10 × 50 = 10,000 series of 156 weeks, 1.56 million observations), findings on
2 % of the series and an open alert per substance with findings. The console's ASGI
application runs in-process (Starlette's test client: the same code path as under
uvicorn, without the socket), logged in as an operator; each page is requested
``--repeat`` times and the median and maximum server times are printed.

    python -m benchmarks.web
    python -m benchmarks.web --substances 20 --sources 10 --regions 50 --weeks 156
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START = date(2023, 1, 2)


def build(work: Path, *, substances: int, sources: int, regions: int, weeks: int,
          seed: int) -> Path:
    from warnd.store import Store, iso

    rnd = random.Random(seed)
    subs = [f"s{i:02d}" for i in range(substances)]
    srcs = [f"src-{i:02d}" for i in range(sources)]
    regs = [f"{i:02d}" for i in range(regions)]
    cfg = ['[general]\nstate_dir = "state"\nlog_level = "WARNING"\nallow_empty = true\n',
           '[web]\nsecure_cookies = false\n']
    for s in subs:
        cfg.append(f'[substances.{s}]\nlabel = "Substance {s}"\nnames = ["{s}"]\n')
    dims = ("use", "availability", "interest")
    for i, s in enumerate(srcs):
        cfg.append(f'[[sources]]\nname = "{s}"\nkind = "count_table"\nlocation = "none.csv"\n'
                   f'dimension = "{dims[i % 3]}"\n')
    (work / "config.toml").write_text("\n".join(cfg), encoding="utf-8")
    store = Store(work / "state" / "warnd.sqlite")
    now = iso(datetime.now(UTC))
    periods = [(START + timedelta(days=7 * k)).isoformat() for k in range(weeks)]
    with store.write() as db:
        for src in srcs:
            rows = []
            for sub in subs:
                for reg in regs:
                    lam = rnd.uniform(2, 30)
                    rows += [(src, sub, reg, "count", p, float(rnd.randint(0, int(2 * lam))),
                              now, now) for p in periods]
            db.conn.executemany(
                "INSERT INTO observations (source, substance, region, metric, period, value, "
                "first_seen_at, updated_at) VALUES (?,?,?,?,?,?,?,?)", rows)
            # each series' row, as Store.ingest keeps it (judged: nothing pending)
            db.conn.executemany(
                "INSERT INTO series (source, substance, region, metric, key, first_period, "
                "last_period, n_observations, data_version, judged_version, judged_period, "
                "updated_at) VALUES (?,?,?,?,?,?,?,?,1,1,?,?)",
                [(src, sub, reg, "count", f"{src}:{sub}:{reg}", periods[0], periods[-1],
                  len(periods), periods[-1], now) for sub in subs for reg in regs])
        n = 0
        for sub in subs:
            for src in srcs:
                for reg in regs:
                    if rnd.random() < 0.02:
                        n += 1
                        onset = periods[-rnd.randint(4, 12)]
                        db.execute(
                            "INSERT INTO findings VALUES "
                            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (f"f{n}", f"{src}:{sub}:{reg}", src, sub, reg, "count", "use",
                             "trend", "increase", onset, periods[-1], periods[-1], 5.0, 11.0,
                             1.2, 2.0, 1e-6, 2, "bench", "{}", now))
            db.execute(
                "INSERT INTO alerts (dedupe_key, substance, kind, severity, decision, title, "
                "body, data, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (f"bench:{sub}", sub, "trend", "warning", "open", f"Sterk økning: {sub}", "-",
                 json.dumps({}), now))
    store.close()
    return work / "config.toml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--substances", type=int, default=20)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--regions", type=int, default=50)
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import os

    from starlette.testclient import TestClient

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        t0 = time.perf_counter()
        cfg_path = build(work, substances=args.substances, sources=args.sources,
                         regions=args.regions, weeks=args.weeks, seed=args.seed)
        n_series = args.substances * args.sources * args.regions
        print(f"store: {n_series} series x {args.weeks} weeks, built in "
              f"{time.perf_counter() - t0:.1f} s")
        os.environ["WARND_STATE_DIR"] = str(work / "state")
        from warnd.config import load_config
        from warnd.store import Store
        from warnd.web import auth
        from warnd.web.app import build_app

        cfg = load_config(cfg_path)
        store = Store.in_dir(cfg.state_dir)
        auth.add_user(store, "bench", "operator", "bench-password")
        store.close()
        client = TestClient(build_app(cfg), base_url="http://127.0.0.1")
        tok = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"user": "bench", "password": "bench-password",
                                    "csrf": tok})
        pages = [("overview", "/"), ("substance page", "/substances/s00"),
                 ("alerts", "/alerts"), ("API substances", None)]
        results = {}
        for name, path in pages:
            if path is None:
                continue
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                # a page, not the way to the login form: the times are of real pages
                assert r.status_code == 200 and r.url.path == path, (path, r.status_code)
            results[name] = times
            print(f"{name:18} {path:34} median {statistics.median(times):7.1f} ms, "
                  f"first {times[0]:7.1f} ms, max {max(times):7.1f} ms")
        charts = []
        for n in range(16):
            t = time.perf_counter()
            r = client.get(f"/substances/s00/charts/{n}.json")
            charts.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
        print(f"{'all 16 charts':18} {'(first view, one after another)':34} total "
              f"{sum(charts):7.1f} ms, median {statistics.median(charts):6.1f} ms per chart")
        again = []
        for n in range(16):
            t = time.perf_counter()
            client.get(f"/substances/s00/charts/{n}.json")
            again.append((time.perf_counter() - t) * 1000)
        print(f"{'all 16 charts':18} {'(again, data unchanged: cached)':34} total "
              f"{sum(again):7.1f} ms, median {statistics.median(again):6.1f} ms per chart")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
