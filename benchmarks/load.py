"""Load run: hundreds of sources, tens of thousands of series, poll → detect → alert cycles.

Generated local data (count tables in one folder per source: a history file, then
one new file per cycle holding one more week for every series; a few series jump
in the last weeks, so alerts are created and delivered to a local ``json://``
endpoint). Each size runs in its own process, so its peak memory is its own:

* **initial cycle**: the whole history is ingested and judged;
* **steady cycles**: one new week per series: the daemon's regular work;
* **idle detect**: detection over every series with nothing new (the start-up
  cycle's catch-up and the ``detect_interval`` job);
* **peak RSS**: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end;
  ``--tracemalloc`` adds the peak of Python allocations (slower).

The stages are the ones the daemon's jobs call (``Pipeline.poll`` per source, then
``detect`` on the series touched, then ``dispatch``), run in order in one thread.

    python -m benchmarks.load                       # the default ladder (a few minutes)
    python -m benchmarks.load --sources 300 --substances 40 --regions 2 --weeks 40
    python -m benchmarks.load --ladder 2000,8000,24000 --cycles 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START = date(2024, 1, 1)


def generate(work: Path, *, sources: int, substances: int, regions: int, weeks: int,
             jump_every: int, seed: int, sink_url: str) -> Path:
    rnd = random.Random(seed)
    subs = [f"s{i:03d}" for i in range(substances)]
    regs = [f"r{i}" for i in range(regions)]
    lines = ['[general]\nstate_dir = "state"\nlog_level = "WARNING"\n'
             'detect_interval = "1h"\nbackfill_current_periods = 2\n']
    for s in subs:
        lines.append(f'[substances.{s}]\nnames = ["{s}"]\n')
    for i in range(sources):
        d = work / "data" / f"src{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        rows = ["period,substance,region,value"]
        for w in range(weeks):
            p = (START + timedelta(weeks=w)).isoformat()
            rows += [f"{p},{s},{r},{rnd.randint(15, 25)}" for s in subs for r in regs]
        (d / "hist.csv").write_text("\n".join(rows) + "\n")
        lines.append(
            f'[[sources]]\nname = "src{i:03d}"\nkind = "count_table"\n'
            f'location = "data/src{i:03d}"\ninterval = "1h"\ndimension = "use"\n'
            f'columns = {{ region = "region" }}\n'
        )
    lines.append(f'[[targets]]\nname = "hook"\nurl = "{sink_url}"\n')
    cfg = work / "config.toml"
    cfg.write_text("\n".join(lines))
    (work / "meta.json").write_text(json.dumps(
        {"subs": subs, "regs": regs, "weeks": weeks, "jump_every": jump_every, "seed": seed}))
    return cfg


def add_week(work: Path, n_sources: int, k: int) -> None:
    """Week ``weeks + k`` for every series; every ``jump_every``-th series jumps 4x."""
    meta = json.loads((work / "meta.json").read_text())
    rnd = random.Random(meta["seed"] * 1000 + k)
    p = (START + timedelta(weeks=meta["weeks"] + k)).isoformat()
    n = 0
    for i in range(n_sources):
        rows = ["period,substance,region,value"]
        for s in meta["subs"]:
            for r in meta["regs"]:
                jump = meta["jump_every"] and n % meta["jump_every"] == 0
                rows.append(f"{p},{s},{r},{rnd.randint(15, 25) * (4 if jump else 1)}")
                n += 1
        (work / "data" / f"src{i:03d}" / f"week{k:03d}.csv").write_text("\n".join(rows) + "\n")


def cycle(pipeline: Any, names: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    touched: set[Any] = set()
    failed = 0
    for name in names:
        res = pipeline.poll(name)
        touched |= res.series
        failed += not res.ok
    t1 = time.perf_counter()
    alerts = pipeline.detect(touched)
    t2 = time.perf_counter()
    sent = pipeline.dispatch()
    t3 = time.perf_counter()
    return {"poll_s": round(t1 - t0, 2), "detect_s": round(t2 - t1, 2),
            "dispatch_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
            "series_touched": len(touched), "failed_polls": failed, "alerts": len(alerts),
            "delivered": sent.get("delivered", 0)}


def point(args: argparse.Namespace) -> dict[str, Any]:
    """One size, in this process."""
    sys.path.insert(0, str(ROOT))
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    from tests.service_kit import JsonSink
    from warnd.config import load_config
    from warnd.pipeline import Pipeline

    sink = JsonSink()
    with tempfile.TemporaryDirectory(prefix="warnd-load-") as d:
        work = Path(d)
        cfg_path = generate(work, sources=args.sources, substances=args.substances,
                            regions=args.regions, weeks=args.weeks, jump_every=args.jump_every,
                            seed=args.seed, sink_url=sink.url)
        os.chdir(work)
        cfg = load_config(cfg_path)
        pipeline = Pipeline(cfg)
        names = [s.name for s in cfg.sources]
        initial = cycle(pipeline, names)
        steady = []
        for k in range(args.cycles):
            add_week(work, args.sources, k)
            steady.append(cycle(pipeline, names))
        # what the start-up cycle and the hourly detect job cost when nothing is new
        t0 = time.perf_counter()
        pipeline.detect()
        idle_detect = round(time.perf_counter() - t0, 2)
        db_bytes = (work / "state" / "warnd.sqlite").stat().st_size
    sink.close()
    out: dict[str, Any] = {
        "sources": args.sources,
        "series": args.sources * args.substances * args.regions,
        "weeks": args.weeks,
        "observations": args.sources * args.substances * args.regions * (args.weeks + args.cycles),
        "initial": initial,
        "steady": steady,
        "steady_mean_s": round(sum(c["total_s"] for c in steady) / max(len(steady), 1), 2),
        "idle_detect_s": idle_detect,
        "messages_received": len(sink.messages),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "db_mib": round(db_bytes / 2**20, 1),
    }
    if args.tracemalloc:
        import tracemalloc

        out["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--substances", type=int, default=40)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--weeks", type=int, default=30, help="weeks of history per series")
    ap.add_argument("--cycles", type=int, default=1, help="steady cycles (one new week each)")
    ap.add_argument("--jump-every", type=int, default=200,
                    help="every Nth series jumps 4x in the steady weeks (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--ladder", default="3000,6000,12000,24000",
                    help="series counts to run (each in its own process; sources scale "
                    "with it, at --substances x --regions series per source)")
    ap.add_argument("--point", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        print(json.dumps(point(args)))
        return 0
    per_source = args.substances * args.regions
    results = []
    for target in [int(x) for x in args.ladder.split(",") if x.strip()]:
        n_src = max(1, round(target / per_source))
        cmd = [sys.executable, "-m", "benchmarks.load", "--point", "--sources", str(n_src),
               "--substances", str(args.substances), "--regions", str(args.regions),
               "--weeks", str(args.weeks), "--cycles", str(args.cycles),
               "--jump-every", str(args.jump_every), "--seed", str(args.seed)]
        if args.tracemalloc:
            cmd.append("--tracemalloc")
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT),
                           env={**os.environ, "MPLBACKEND": "Agg",
                                "PYTHONPATH": str(ROOT)}, check=False)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results.append(res)
        print(f"{res['series']:>6} series, {res['sources']:>3} sources: initial "
              f"{res['initial']['total_s']:>7.1f} s (poll {res['initial']['poll_s']}, detect "
              f"{res['initial']['detect_s']}), steady cycle {res['steady_mean_s']:>6.1f} s, "
              f"idle detect {res['idle_detect_s']} s, "
              f"peak RSS {res['peak_rss_mib']:>6.0f} MiB, store {res['db_mib']} MiB, "
              f"alerts delivered {res['messages_received']}", flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
