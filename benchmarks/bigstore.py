"""Light commands on a big store: ``warnd status`` at 10,000 and 100,000 series.

Ingesting five years of weekly history for 100,000 series through the pipeline
takes hours on a small machine (``benchmarks/load.py --store-only`` measures that
part), so this benchmark writes the store directly, in the shape ingest leaves it:
count-table sources of 40 series each (20 substances × 2 regions; ``--substances``,
``--regions`` change it), 260 weeks of observations ending this week in the
clustered ``observations`` table, one ``series`` row per series marked judged,
each source's poll state. The store is written once by SQL (a few minutes at
100,000 series) and reused with ``--keep``.

With ``--steady`` it also times the store's side of a steady cycle on it: one new
week for every series (a file per source) polled, ingested and the series marked
judged, as ``benchmarks/load.py --store-only`` does, in a process of its own.

With ``--detect`` the detectors run too, each phase in a process of its own: first
every series is judged from its whole history (the first detect pass after an
install: every series replayed, its detector state stored), then a steady cycle
with one new week for every series, polled, ingested and judged incrementally (what
the daemon does each week). Each phase reports its time, CPU and peak RSS.

Then each command runs ``--repeat`` times in a fresh process (interpreter start
included); the report gives the median and lowest wall time and the CPU time
(user + system) of the median run, with the load average at the time, since the
machine may be shared.

    python -m benchmarks.bigstore --series 10000
    python -m benchmarks.bigstore --series 100000 --keep /var/tmp/warnd-100k
    python -m benchmarks.bigstore --keep /var/tmp/warnd-100k --steady   # + a store-only week
    python -m benchmarks.bigstore --series 100000 --keep /var/tmp/warnd-100k-d --detect
    python -m benchmarks.bigstore --series 10000 --detect --burst   # + the daemon's way

With ``--burst`` one more week is taken as the daemon takes it when every source is
due at once (each source's poll job on the scheduler's four threads), with the number
of detect passes that judged it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _start(weeks: int) -> date:
    """The first week of a history that ends this week (a store that is kept current)."""
    today = date.today()
    return today - timedelta(days=today.weekday(), weeks=weeks - 1)


def build(work: Path, *, sources: int, substances: int, regions: int, weeks: int) -> None:
    """Config and store for ``sources`` count tables, written directly by SQL."""
    sys.path.insert(0, str(ROOT))
    from warnd.store import DB_NAME, Store, iso

    subs = [f"s{i:03d}" for i in range(substances)]
    lines = ['[general]\nstate_dir = "state"\nlog_level = "WARNING"\n']
    for s in subs:
        lines.append(f'[substances.{s}]\nnames = ["{s}"]\n')
    for i in range(sources):
        lines.append(f'[[sources]]\nname = "src{i:05d}"\nkind = "count_table"\n'
                     f'location = "data/src{i:05d}"\ninterval = "1w"\ndimension = "use"\n'
                     'columns = { region = "region" }\n')
    lines.append('[[targets]]\nname = "hook"\nurl = "json://127.0.0.1:9/hook"\n')
    (work / "config.toml").write_text("\n".join(lines))
    (work / "data").mkdir(exist_ok=True)
    Store(work / "state" / DB_NAME).close()  # the schema, as warnd makes it
    now = datetime.now(UTC)
    start = _start(weeks)
    last = start + timedelta(weeks=weeks - 1)
    con = sqlite3.connect(work / "state" / DB_NAME)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    con.executescript(
        "CREATE TEMP TABLE src (i INTEGER, name TEXT);"
        "CREATE TEMP TABLE sub (j INTEGER, name TEXT);"
        "CREATE TEMP TABLE reg (k INTEGER, name TEXT);"
        "CREATE TEMP TABLE wk (w INTEGER, period TEXT);")
    con.executemany("INSERT INTO src VALUES (?,?)", [(i, f"src{i:05d}") for i in range(sources)])
    con.executemany("INSERT INTO sub VALUES (?,?)", list(enumerate(subs)))
    con.executemany("INSERT INTO reg VALUES (?,?)", [(k, f"r{k}") for k in range(regions)])
    con.executemany("INSERT INTO wk VALUES (?,?)",
                    [(w, (start + timedelta(weeks=w)).isoformat()) for w in range(weeks)])
    stamp = iso(now)
    with con:
        # in key order, as the clustered table stores it; values 15-25, reproducible
        con.execute(
            "INSERT INTO observations (source, substance, region, metric, period, value, "
            "dimension, first_seen_at, updated_at) "
            "SELECT src.name, sub.name, reg.name, 'count', wk.period, "
            "15 + (src.i * 7919 + sub.j * 104729 + reg.k * 31 + wk.w * 13) % 11, 'use', ?, ? "
            "FROM src, sub, reg, wk ORDER BY src.name, sub.name, reg.name, wk.period",
            (stamp, stamp))
        con.execute(
            "INSERT INTO series (source, substance, region, metric, key, dimension, "
            "first_period, last_period, n_observations, data_version, judged_version, "
            "judged_period, updated_at) "
            "SELECT src.name, sub.name, reg.name, 'count', "
            "src.name || ':' || sub.name || ':' || reg.name, 'use', ?, ?, ?, 1, 1, ?, ? "
            "FROM src, sub, reg",
            (start.isoformat(), last.isoformat(), weeks, last.isoformat(), stamp))
        con.execute(
            "INSERT INTO source_state (source, last_poll_at, last_success_at, "
            "consecutive_failures, n_polls, n_failures) SELECT name, ?, ?, 0, ?, 0 FROM src",
            (stamp, stamp, weeks))
        con.execute(
            "INSERT INTO documents SELECT name, 'data/' || name || '/hist.csv', "
            "hex(randomblob(32)), ?, ?, 0 FROM src",
            (stamp, substances * regions * weeks))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def judge_all(work: Path, workers: int = 1) -> dict[str, Any]:
    """The first detect pass over the kept store: every series pending (as after an
    install's first polls), judged from its whole history, its state stored; in this
    process (and ``workers - 1`` worker processes), whose CPU time and peak RSS are the
    pass's."""
    sys.path.insert(0, str(ROOT))
    from warnd.allocator import keep_freed_blocks
    from warnd.config import load_config
    from warnd.pipeline import Pipeline

    keep_freed_blocks()  # as every warnd command does first
    os.chdir(work)
    con = sqlite3.connect(work / "state" / "warnd.sqlite")
    with con:
        con.execute("UPDATE series SET judged_version = 0, judged_period = NULL")
        con.execute("DELETE FROM series_states")
    con.close()
    pipeline = Pipeline(load_config(_config_path(work, workers)))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with pipeline.session() as store:
        alerts = pipeline.detect(store=store)
    out: dict[str, Any] = {"detect_s": round(time.perf_counter() - t0, 1),
                           "alerts": len(alerts), "detect_workers": workers}
    return {**out, **_usage_since(r0, digits=1), "children": _children(workers)}


def _value(i: int, j: int, k: int, w: int) -> int:
    """Series (source ``i``, substance ``j``, region ``k``)'s value in week ``w`` of its
    history: 15-25, a pattern that repeats every eleven weeks, each series at its own
    phase (:func:`build` writes the same by SQL)."""
    return 15 + (i * 7919 + j * 104729 + k * 31 + w * 13) % 11


def _new_week(work: Path, cfg: Any) -> str:
    """One new week for every series, in a file of its own per source; the week. Each
    series goes on with its own pattern (:func:`_value`), so every new week is as quiet
    as the history and a kept store can be taken on week after week in the same steady
    state."""
    shape = json.loads((work / "shape.json").read_text())
    per_source = shape["series"] // shape["sources"]
    con = sqlite3.connect(work / "state" / "warnd.sqlite")
    first, last = con.execute("SELECT MIN(first_period), MAX(last_period) FROM series").fetchone()
    keys = con.execute("SELECT substance, region FROM series WHERE source = "
                       "(SELECT MIN(source) FROM series)").fetchall()
    con.close()
    new_day = date.fromisoformat(last) + timedelta(weeks=1)
    w = (new_day - date.fromisoformat(first)).days // 7
    new = new_day.isoformat()
    for src in cfg.sources:
        i = int(src.name.removeprefix("src"))
        d = work / "data" / src.name
        d.mkdir(parents=True, exist_ok=True)
        rows = ["period,substance,region,value"] + [
            f"{new},{sub},{reg},{_value(i, int(sub[1:]), int(reg[1:]), w)}" for sub, reg in keys]
        (d / f"week-{new}.csv").write_text("\n".join(rows) + "\n")
    assert len(keys) == per_source
    return new


def _week_ready(work: Path, workers: int = 1) -> tuple[Any, str]:
    """In this process, as a warnd command starts: the kept store's config (with
    ``general.detect_workers`` set to ``workers``, in a copy of the file beside it), and
    one new week written for every series (:func:`_new_week`)."""
    sys.path.insert(0, str(ROOT))
    from warnd.allocator import keep_freed_blocks
    from warnd.config import load_config

    keep_freed_blocks()
    os.chdir(work)
    cfg = load_config(_config_path(work, workers))
    return cfg, _new_week(work, cfg)


def _config_path(work: Path, workers: int) -> Path:
    """The kept store's config, or a copy beside it with ``general.detect_workers``."""
    path = work / "config.toml"
    if workers == 1:
        return path
    text = path.read_text().replace("[general]\n", f"[general]\ndetect_workers = {workers}\n", 1)
    copy = work / f"config-{workers}-workers.toml"
    copy.write_text(text)
    return copy


def steady(work: Path, detect: bool = False, workers: int = 1) -> dict[str, Any]:
    """A steady cycle: one new week for every series in a file of its own per source,
    polled, ingested and marked judged (without ``detect``: the store's side only)
    or judged by the detectors, in this process (and ``workers - 1`` worker processes
    of the detect pass); CPU time and peak RSS are this process's and, after
    ``children``, its workers' (their sum and the largest)."""
    cfg, new = _week_ready(work, workers)
    from benchmarks.load import cycle
    from warnd.pipeline import Pipeline

    pipeline = Pipeline(cfg)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    out = cycle(pipeline, [s.name for s in cfg.sources], detect=detect)
    return {**out, **_usage_since(r0, digits=2), "detect_workers": workers,
            "children": _children(workers), "week": new}


def burst(work: Path, threads: int = 4, sources: int | None = None,
          workers: int = 1) -> dict[str, Any]:
    """The same week as the daemon takes it when every source is due at once: each
    source's poll job (:meth:`warnd.service.daemon.Daemon.poll_job`: the poll, then the
    detection of its series) on a pool of ``threads``, as the scheduler's executor runs
    jobs due together, with a store connection held open as the daemon holds one (so a
    job closing its own connection does not checkpoint the WAL); how many detect passes
    judged the week, and the series left unjudged (none expected). With ``threads`` 1
    the jobs run one after another, as when sources come due one at a time, each job's
    pass judging its own source's series; ``sources`` takes only the first so many
    sources' jobs (their series are the ones judged; the others stay pending);
    ``workers`` is the config's ``general.detect_workers``."""
    cfg, new = _week_ready(work, workers)
    from concurrent.futures import ThreadPoolExecutor

    from warnd.service.daemon import Daemon

    daemon = Daemon(cfg)
    daemon._hold_store()  # as the running daemon does: a job's close is no checkpoint
    passes: list[int | None] = []
    judge = daemon.pipeline.detect

    def counted(series: Any = None, **kw: Any) -> Any:
        passes.append(None if series is None else len(series))
        return judge(series, **kw)

    daemon.pipeline.detect = counted  # type: ignore[method-assign]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    names = [s.name for s in cfg.sources][:sources]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(daemon.poll_job, names))
    wall = time.perf_counter() - t0
    usage = _usage_since(r0, digits=2)
    with daemon.pipeline.session() as store:
        left = sum(1 for k in store.pending_series() if k[0] in set(names))
    if daemon._anchor is not None:
        daemon._anchor.close()
    return {"total_s": round(wall, 2), **usage, "jobs": len(names), "threads": threads,
            "detect_passes": len(passes),
            "largest_pass": max((n or 0 for n in passes), default=0),
            "series_left_unjudged": left, "week": new}


def _children(workers: int) -> dict[str, Any] | None:
    """The worker processes' CPU time (in all) and the largest one's peak RSS (this
    process's children: a phase runs in a process of its own)."""
    if workers == 1:
        return None
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round(c.ru_utime + c.ru_stime, 2),
            "peak_rss_mib": round(c.ru_maxrss / 1024, 1)}


def _usage_since(r0: Any, *, digits: int) -> dict[str, Any]:
    """This process's CPU time (user + system) since ``r0``, its peak RSS and the load."""
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, digits),
            "peak_rss_mib": round(r1.ru_maxrss / 1024, 1), "load_average": _loadavg()}


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str], repeat: int) -> dict[str, Any]:
    """Wall and CPU (user + system) time of ``cmd``, each run a fresh process."""
    runs = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = _loadavg()
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "load": load,
                     "peak_rss_mib": round(after.ru_maxrss / 1024, 1)})
    runs.sort(key=lambda x: x["wall_s"])
    med = runs[len(runs) // 2]
    return {"median_wall_s": med["wall_s"], "min_wall_s": runs[0]["wall_s"],
            "median_cpu_s": med["cpu_s"], "load_average": med["load"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--substances", type=int, default=20)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--weeks", type=int, default=260)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", help="build the store in this folder (reused when it exists)")
    ap.add_argument("--steady", action="store_true",
                    help="also time the store's side of a steady cycle (one new week for "
                    "every series; the kept store grows by that week)")
    ap.add_argument("--detect", action="store_true",
                    help="run the detectors: judge every series from its history, then a "
                    "steady cycle with one new week judged (hours at 100,000 series on a "
                    "small machine)")
    ap.add_argument("--burst", action="store_true",
                    help="with --detect, one more week taken as the daemon takes it when "
                    "every source is due at once: each source's poll job (poll, then "
                    "detection) on the scheduler's four threads")
    ap.add_argument("--burst-threads", type=int, default=4,
                    help="the burst's poll jobs on this many threads (1: one source at a "
                    "time, each job's detect pass judging its own source's series)")
    ap.add_argument("--burst-sources", type=int,
                    help="the burst with only the first this many sources' jobs")
    ap.add_argument("--detect-workers", type=int, default=1,
                    help="general.detect_workers for the detect phases (processes a large "
                    "detect pass is split over)")
    ap.add_argument("--steady-phase", help=argparse.SUPPRESS)
    ap.add_argument("--burst-phase", help=argparse.SUPPRESS)
    ap.add_argument("--judge-phase", help=argparse.SUPPRESS)
    ap.add_argument("--detect-phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steady_phase:
        print(json.dumps(steady(Path(args.steady_phase))))
        return 0
    if args.judge_phase:
        print(json.dumps(judge_all(Path(args.judge_phase), workers=args.detect_workers)))
        return 0
    if args.detect_phase:
        print(json.dumps(steady(Path(args.detect_phase), detect=True,
                                workers=args.detect_workers)))
        return 0
    if args.burst_phase:
        print(json.dumps(burst(Path(args.burst_phase), threads=args.burst_threads,
                               sources=args.burst_sources, workers=args.detect_workers)))
        return 0
    n_src = max(1, round(args.series / (args.substances * args.regions)))
    with tempfile.TemporaryDirectory(prefix="warnd-bigstore-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        build_s = None
        if not (work / "config.toml").exists():
            t0 = time.perf_counter()
            build(work, sources=n_src, substances=args.substances, regions=args.regions,
                  weeks=args.weeks)
            build_s = round(time.perf_counter() - t0, 1)
            (work / "shape.json").write_text(json.dumps(
                {"sources": n_src, "series": n_src * args.substances * args.regions,
                 "weeks": args.weeks}))
        shape = json.loads((work / "shape.json").read_text())  # a kept store's own
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("WARND_STATE_DIR", None)
        cli = [sys.executable, "-m", "warnd.cli", "--config", str(work / "config.toml")]
        # the first run after building reads a cold file; the rest are warm
        first = timed([*cli, "status"], cwd=work, env=env, repeat=1)
        res = {
            **shape, "build_s": build_s,
            "db_mib": round((work / "state" / "warnd.sqlite").stat().st_size / 2**20, 1),
            "status_first": first,
            "status": timed([*cli, "status"], cwd=work, env=env, repeat=args.repeat),
            "status_json": timed([*cli, "status", "--json"], cwd=work, env=env,
                                 repeat=args.repeat),
        }
        phases = [("steady_store_only", "--steady-phase")] if args.steady else []
        if args.detect:
            phases += [("first_detect", "--judge-phase"), ("steady_detect", "--detect-phase")]
            if args.burst:
                phases.append(("burst_detect", "--burst-phase"))
        burst_opts = ["--burst-threads", str(args.burst_threads),
                      "--detect-workers", str(args.detect_workers)]
        if args.burst_sources:
            burst_opts += ["--burst-sources", str(args.burst_sources)]
        for name, flag in phases:
            extra = (burst_opts if flag == "--burst-phase" else
                     ["--detect-workers", str(args.detect_workers)]
                     if flag in ("--detect-phase", "--judge-phase") else [])
            r = subprocess.run([sys.executable, "-m", "benchmarks.bigstore", flag, str(work),
                                *extra],
                               cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-3000:])
            res[name] = json.loads(r.stdout.strip().splitlines()[-1])
            print(json.dumps({name: res[name]}), file=sys.stderr, flush=True)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
