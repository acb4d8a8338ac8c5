"""Load run: thousands of series with five years of weekly history, three kinds of cycle.

Generated local data: count tables, one folder per source (20 substances × 2
regions = 40 series per source by default), a history file of 260 weeks, then one
file with the next week for every series (every 200th series jumps 4×, so alerts
are created and delivered to a local ``json://`` endpoint). Each size runs in its
own process and each phase in a process of its own, so every peak RSS
(``ru_maxrss``) is that phase's:

* **first cycle** (install): every source's history is ingested and judged, as
  the first ``warnd run --once`` or the daemon's start-up cycle after install;
* **steady cycle**: one new week for every series: the daemon's regular work;
* **idle detect**: a detect pass with nothing new (the start-up catch-up and the
  ``detect_interval`` job).

A cycle is what ``warnd run --once`` does (``Pipeline.poll`` per source, then
``detect``, then ``dispatch``, on one store connection), each stage timed.

    python -m benchmarks.load                           # 1,000 and 10,000 series
    python -m benchmarks.load --ladder 1000 --weeks 52  # smaller
    python -m benchmarks.load --ladder 100000           # 2,500 sources
    python -m benchmarks.load --ladder 10000 --store-only   # without the detectors
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
START = date(2021, 1, 4)  # a Monday; 260 weeks reach late 2025


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
        d = work / "data" / f"src{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        rows = ["period,substance,region,value"]
        for w in range(weeks):
            p = (START + timedelta(weeks=w)).isoformat()
            rows += [f"{p},{s},{r},{rnd.randint(15, 25)}" for s in subs for r in regs]
        (d / "hist.csv").write_text("\n".join(rows) + "\n")
        lines.append(
            f'[[sources]]\nname = "src{i:04d}"\nkind = "count_table"\n'
            f'location = "data/src{i:04d}"\ninterval = "1h"\ndimension = "use"\n'
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
        (work / "data" / f"src{i:04d}" / f"week{k:03d}.csv").write_text("\n".join(rows) + "\n")


def cycle(pipeline: Any, names: list[str], *, detect: bool = True) -> dict[str, Any]:
    """One ``run --once`` cycle (one store connection), each stage timed.

    Without ``detect`` the detectors are not run: the series are only marked judged
    (``--store-only``, to measure the store's side at sizes where detection would
    take hours on a shared machine).
    """
    with pipeline.session() as store:
        t0 = time.perf_counter()
        touched: set[Any] = set()
        failed = 0
        for name in names:
            res = pipeline.poll(name, store=store)
            touched |= res.series
            failed += not res.ok
        t1 = time.perf_counter()
        if detect:
            alerts = pipeline.detect(store=store)
        else:
            alerts = []
            store.mark_judged([(k, v.data_version, v.last_period)
                               for k, v in store.pending_series().items()])
        t2 = time.perf_counter()
        sent = pipeline.dispatch(store=store)
        t3 = time.perf_counter()
        from warnd.checkpointer import stats_of

        checkpoints = stats_of(store.path)  # the session's checkpointing thread
    t4 = time.perf_counter()  # closing the last connection checkpoints what is left
    return {"poll_s": round(t1 - t0, 2), "detect_s": round(t2 - t1, 2),
            "dispatch_s": round(t3 - t2, 2), "close_s": round(t4 - t3, 2),
            "total_s": round(t4 - t0, 2), "series_touched": len(touched),
            "failed_polls": failed, "alerts": len(alerts),
            "delivered": sent.get("delivered", 0), "checkpoints": checkpoints}


def phase(args: argparse.Namespace) -> dict[str, Any]:
    """One phase in this process (its peak RSS is its own)."""
    sys.path.insert(0, str(ROOT))
    from warnd.allocator import keep_freed_blocks
    from warnd.config import load_config
    from warnd.pipeline import Pipeline

    keep_freed_blocks()  # as every warnd command does first
    work = Path(args.work)
    os.chdir(work)
    cfg = load_config(work / "config.toml")
    pipeline = Pipeline(cfg)
    names = [s.name for s in cfg.sources]
    if args.phase == "first":
        out = cycle(pipeline, names, detect=not args.store_only)
    elif args.phase == "steady":
        add_week(work, len(names), 0)
        out = cycle(pipeline, names, detect=not args.store_only)
    else:  # idle: the start-up catch-up and the hourly detect job with nothing new
        t0 = time.perf_counter()
        with pipeline.session() as store:
            pipeline.detect(store=store)
        out = {"total_s": round(time.perf_counter() - t0, 3)}
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mib"] = round(ru.ru_maxrss / 1024, 1)
    # the whole phase process (start-up and reading the config included): user + system
    out["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
    out["load_average"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return out


def point(args: argparse.Namespace) -> dict[str, Any]:
    """One size: generate, then each phase in its own process."""
    sys.path.insert(0, str(ROOT))
    from tests.service_kit import JsonSink

    sink = JsonSink()
    with tempfile.TemporaryDirectory(prefix="warnd-load-") as d:
        work = Path(d)
        t0 = time.perf_counter()
        generate(work, sources=args.sources, substances=args.substances,
                 regions=args.regions, weeks=args.weeks, jump_every=args.jump_every,
                 seed=args.seed, sink_url=sink.url)
        gen_s = round(time.perf_counter() - t0, 1)
        phases = {}
        for name in ("first", "steady", "idle"):
            r = subprocess.run(
                [sys.executable, "-m", "benchmarks.load", "--phase", name, "--work", str(work),
                 *(["--store-only"] if args.store_only else [])],
                capture_output=True, text=True, cwd=str(ROOT), check=False,
                env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)})
            if r.returncode != 0:
                raise SystemExit(r.stderr[-3000:])
            phases[name] = json.loads(r.stdout.strip().splitlines()[-1])
        # `warnd status` on the store just made: a whole command, start-up included
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(work / "config.toml"),
                        "status", "--json"], capture_output=True, cwd=str(work), check=False,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        status_s = round(time.perf_counter() - t0, 2)
        db_bytes = (work / "state" / "warnd.sqlite").stat().st_size
    sink.close()
    n_series = args.sources * args.substances * args.regions
    return {
        "series": n_series, "sources": args.sources, "weeks": args.weeks,
        "detectors_run": not args.store_only,
        "observations": n_series * (args.weeks + 1), "generate_s": gen_s,
        "first": phases["first"], "steady": phases["steady"], "idle": phases["idle"],
        "status_s": status_s,
        "messages_received": len(sink.messages), "db_mib": round(db_bytes / 2**20, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=25)
    ap.add_argument("--substances", type=int, default=20)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--weeks", type=int, default=260, help="weeks of history per series "
                    "(default 260: five years)")
    ap.add_argument("--jump-every", type=int, default=200,
                    help="every Nth series jumps 4x in the new week (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ladder", default="1000,10000",
                    help="series counts to run (sources scale with it, at --substances x "
                    "--regions series per source)")
    ap.add_argument("--store-only", action="store_true",
                    help="do not run the detectors (mark series judged instead): the "
                    "store's side of each cycle alone")
    ap.add_argument("--point", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=["first", "steady", "idle"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return 0
    if args.point:
        print(json.dumps(point(args)))
        return 0
    per_source = args.substances * args.regions
    results = []
    for target in [int(x) for x in args.ladder.split(",") if x.strip()]:
        n_src = max(1, round(target / per_source))
        cmd = [sys.executable, "-m", "benchmarks.load", "--point", "--sources", str(n_src),
               "--substances", str(args.substances), "--regions", str(args.regions),
               "--weeks", str(args.weeks), "--jump-every", str(args.jump_every),
               "--seed", str(args.seed), *(["--store-only"] if args.store_only else [])]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT),
                           env={**os.environ, "MPLBACKEND": "Agg",
                                "PYTHONPATH": str(ROOT)}, check=False)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results.append(res)
        f, st, idle = res["first"], res["steady"], res["idle"]
        print(f"{res['series']:>7} series x {res['weeks']} weeks: "
              f"first cycle {f['total_s']:.1f} s (poll {f['poll_s']}, detect {f['detect_s']}; "
              f"CPU {f['cpu_s']} s), {f['peak_rss_mib']:.0f} MiB; steady cycle "
              f"{st['total_s']:.1f} s (poll {st['poll_s']}, detect {st['detect_s']}; CPU "
              f"{st['cpu_s']} s, load {st['load_average']}), {st['peak_rss_mib']:.0f} MiB; "
              f"idle detect {idle['total_s']} s, {idle['peak_rss_mib']:.0f} MiB; "
              f"warnd status {res['status_s']} s; "
              f"store {res['db_mib']} MiB; alerts delivered {res['messages_received']}",
              flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
