#!/usr/bin/env python3
"""Kill the daemon with SIGKILL at random moments, many times in a row, then check the store.

Each round adds new input (count-table files to three folder sources, two more
notices to a notice feed), starts ``warnd run``, waits for its "started" line and
kills it after a random delay within the time a clean start needs to finish its
work (polls, detection, delivery to a local ``json://`` endpoint). The phase the
daemon was in is read from its log. After the last round the daemon runs until
its work is done and stops with SIGTERM.

Then:

* ``PRAGMA integrity_check`` is ``ok``;
* observations and items equal those of one clean ``warnd run --once`` over the
  same final inputs in a fresh state directory (nothing lost, nothing counted twice);
* the notice alerts equal the clean run's, and every delivery is ``delivered``;
* the endpoint received every alert at least once, and more than once only where
  a killed process had logged "sending" for it without a "delivered" after it (a
  send whose outcome died with the process: delivery is at-least-once by design,
  and each such case is counted).

Then the delivery faults one by one (:mod:`fault_scenarios`: a second daemon, a
locked store while outcomes are recorded, a relay down longer than the retry window
and back, a 429 with ``Retry-After``, a slow endpoint, a poisoned notice, a damaged
and a zero-byte store), against a real loopback SMTP relay and HTTPS endpoint, each
with alerts expected, delivered, lost and duplicated (and whether email repeats
kept their Message-ID). The report ends with the peak RSS of the warnd processes.

Usage: ``python scripts/fault_injection.py [--kills 50] [--seed 1] [--workdir DIR]
[--no-scenarios]``; prints a JSON report and exits 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service_kit import (
    DaemonProcess,
    JsonSink,
    child_env,
    counts_csv,
    notices_rss,
    wait_until,
    write_service_config,
)

LABS = ("lab1", "lab2", "lab3")
NOTICES_PER_ROUND = 2
WEEKS_PER_ROUND = 6


def make_config(work: Path, sink: JsonSink, state: str = "state") -> Path:
    sources = "".join(
        f'\n[[sources]]\nname = "{lab}"\nkind = "count_table"\nlocation = "data/{lab}"\n'
        f'interval = "1h"\ndimension = "use"\n'
        for lab in LABS
    )
    sources += ('\n[[sources]]\nname = "notices"\nkind = "overdosefare"\n'
                'location = "data/notices.xml"\ninterval = "1h"\ndimension = "availability"\n')
    targets = f'\n[[targets]]\nname = "hook"\nurl = "{sink.url}"\n'
    return write_service_config(work / f"config-{state}.toml", sources=sources, targets=targets,
                                state_dir=state,
                                general='stop_timeout = "20s"\nlog_level = "DEBUG"')


def add_round(work: Path, i: int) -> None:
    """Round ``i``'s new input: a new file per lab folder, two more notices."""
    for n, lab in enumerate(LABS):
        d = work / "data" / lab
        d.mkdir(parents=True, exist_ok=True)
        start = date(2020, 1, 6) + timedelta(weeks=WEEKS_PER_ROUND * i)
        (d / f"part{i:03d}.csv").write_bytes(
            counts_csv(["ketamin", "heroin"], weeks=WEEKS_PER_ROUND, seed=1000 * n + i,
                       start=start))
    (work / "data" / "notices.xml").write_bytes(
        notices_rss(NOTICES_PER_ROUND * (i + 1), "ketamin", tag="n"))


STAGES = {
    "poll": (re.compile(r"poll started"), re.compile(r"polled:|poll failed|poll not stored")),
    "detection": (re.compile(r"detection started"), re.compile(r"detection finished")),
    "delivery": (re.compile(r"dispatch started"), re.compile(r"dispatch finished|dispatch stopped")),
}


#: Kill moments, in turn: anywhere in the start-up's work, or just after a stage began.
AIMS = (
    ("any", None, None),
    ("enqueue", r"alert=\d+ substance=", 0.0),
    ("poll", r"poll started", 0.05),
    ("detection", r"detection started: [1-9]", 0.5),
    ("delivery", r"sending to", 0.01),
)


def phase_at(log: str) -> str:
    """The stages in progress when the log ends ("idle" when none, "startup" before any)."""
    if "warnd started" not in log:
        return "startup"
    running = []
    for name, (start, end) in STAGES.items():
        if len(start.findall(log)) > len(end.findall(log)):
            running.append(name)
    return "+".join(running) or "idle"


def done(db: Path, n_alerts: int) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(db, timeout=30)
    try:
        a = conn.execute("SELECT COUNT(*) FROM alerts WHERE kind='notice'").fetchone()[0]
        pending = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status != 'delivered'").fetchone()[0]
        return a >= n_alerts and pending == 0
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def run_until_done(work: Path, cfg: Path, log: Path, n_alerts: int) -> tuple[DaemonProcess, float]:
    d = DaemonProcess(cfg, log).start()
    d.wait_for(r"warnd started", timeout=120)
    t0 = time.monotonic()
    for lab in (*LABS, "notices"):
        d.wait_for(rf"source={lab} polled", timeout=120)
    wait_until(lambda: done(work / "state" / "warnd.sqlite", n_alerts), 120, "all deliveries")
    return d, time.monotonic() - t0


def snapshot(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
            "observations": sorted(conn.execute(
                "SELECT source, substance, region, metric, period, value FROM observations")),
            "items": sorted(r[0] for r in conn.execute("SELECT key FROM items")),
            "notice_alerts": sorted(r[0] for r in conn.execute(
                "SELECT dedupe_key FROM alerts WHERE kind='notice'")),
            "alerts": dict(conn.execute("SELECT id, title FROM alerts")),
            "deliveries": Counter(r[0] for r in conn.execute("SELECT status FROM deliveries")),
        }
    finally:
        conn.close()


def interrupted_sends(segments: list[str], titles: dict[int, str]) -> Counter[str]:
    """Per title: sends logged by a killed process with no "delivered" after them."""
    out: Counter[str] = Counter()
    for seg in segments:
        pending: Counter[str] = Counter()
        for ln in seg.splitlines():
            m = re.search(r"sending to \S+ (.*)$", ln)
            if m:
                pending[m.group(1)] += 1
                continue
            m = re.search(r"alert=(\d+) target=\S+ delivered", ln)
            if m and titles.get(int(m.group(1))) in pending:
                pending[titles[int(m.group(1))]] -= 1
        out.update(+pending)
    return out


def run(kills: int, seed: int, work: Path, quiet: bool = False) -> dict[str, Any]:
    rnd = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    sink = JsonSink()
    log = work / "daemon.log"
    try:
        cfg = make_config(work, sink)
        # calibration: a clean start on round 0's input, timed from "started" to done
        add_round(work, 0)
        d, window = run_until_done(work, cfg, log, NOTICES_PER_ROUND)
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=60) == 0
        window = max(window, 0.2)
        phases: Counter[str] = Counter()
        killed_segments: list[str] = []
        aims: list[str] = []
        for i in range(1, kills + 1):
            add_round(work, i)
            d = DaemonProcess(cfg, log).start()
            d.wait_for(r"warnd started", timeout=120)
            aim, pattern, spread = AIMS[i % len(AIMS)]
            if pattern is not None:
                try:
                    d.wait_for(pattern, timeout=30)
                except TimeoutError:
                    aim = "any (stage did not occur)"
            delay = rnd.uniform(0, spread if spread is not None else window * 1.2)
            time.sleep(delay)  # the fault's moment, chosen at random; not a synchronisation
            phase = phase_at(d.text())
            d.kill()
            phases[phase] += 1
            killed_segments.append(d.text())
            aims.append(aim.split(" ")[0])
            if not quiet:
                print(f"kill {i}/{kills} ({aim}) {delay:.3f} s later: {phase}", file=sys.stderr)
        # the last process runs to the end and stops cleanly
        n_alerts = NOTICES_PER_ROUND * (kills + 1)
        d, _ = run_until_done(work, cfg, log, n_alerts)
        d.signal(signal.SIGTERM)
        rc = d.wait(timeout=60)
        faulted = snapshot(work / "state" / "warnd.sqlite")

        # the reference: one clean run over the same final inputs
        clean_sink = JsonSink()
        try:
            clean_cfg = make_config(work, clean_sink, state="clean-state")
            r = subprocess.run(
                [sys.executable, "-m", "warnd.cli", "--config", str(clean_cfg), "run", "--once"],
                env=child_env(), capture_output=True, text=True, timeout=600, cwd=str(work))
            assert r.returncode == 0, r.stderr[-2000:]
            clean = snapshot(work / "clean-state" / "warnd.sqlite")
        finally:
            clean_sink.close()

        received = Counter(sink.titles())
        titles = faulted["alerts"]
        interrupted = interrupted_sends(killed_segments, titles)
        by_aim: dict[str, dict[str, int]] = {}
        for aim, seg in zip(aims, killed_segments, strict=True):
            row = by_aim.setdefault(aim, {"kills": 0, "with_interrupted_send": 0})
            row["kills"] += 1
            row["with_interrupted_send"] += bool(interrupted_sends([seg], titles))
        per_alert = Counter(titles.values())
        missing = [t for t in per_alert if received[t] < per_alert[t]]
        extra = {t: received[t] - per_alert[t] for t in received if received[t] > per_alert[t]}
        unexplained = {t: n for t, n in extra.items() if n > interrupted[t]}
        checks = {
            "exit_code_0": rc == 0,
            "integrity_ok": faulted["integrity"] == "ok",
            "observations_equal_clean_run": faulted["observations"] == clean["observations"],
            "items_equal_clean_run": faulted["items"] == clean["items"],
            "notice_alerts_equal_clean_run": faulted["notice_alerts"] == clean["notice_alerts"],
            "all_deliveries_delivered": set(faulted["deliveries"]) <= {"delivered"},
            "every_alert_received": not missing,
            "no_unexplained_duplicates": not unexplained,
        }
        return {
            "kills": kills,
            "seed": seed,
            "kill_window_s": round(window * 1.2, 3),
            "killed_during": dict(phases),
            "kills_by_aim": by_aim,
            "observations": len(faulted["observations"]),
            "items": len(faulted["items"]),
            "alerts": len(titles),
            "clean_run_alerts": len(clean["alerts"]),
            "messages_received": sum(received.values()),
            "truncated_requests_rejected": sink.rejected,
            "delivered_exactly_once": sum(1 for t in per_alert if received[t] == per_alert[t]),
            "duplicates_after_interrupted_send": sum(extra.values()),
            "interrupted_sends": sum(interrupted.values()),
            "missing": missing,
            "unexplained_duplicates": unexplained,
            "unexplained_messages": [
                {k: v for k, v in m.items() if k != "_auth"} for m in sink.messages
                if m.get("title", "") in unexplained][:5],
            "checks": checks,
            "ok": all(checks.values()),
        }
    finally:
        sink.close()


def peak_rss_mib() -> dict[str, float]:
    """Largest resident set of a warnd child process and of this process, in MiB."""
    import resource

    kib = 1024.0
    return {
        "warnd_processes": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib, 1),
        "in_process_scenarios": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
                                      1),
    }


def run_all(kills: int, seed: int, work: Path, scenarios: bool, quiet: bool = False
            ) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "scripts"))
    report = run(kills, seed, work / "kills", quiet=quiet)
    if scenarios:
        import fault_scenarios

        res = fault_scenarios.run_scenarios(work / "scenarios")
        report["scenarios"] = res
        report["scenario_checks"] = fault_scenarios.checks(res)
        report["ok"] = report["ok"] and all(report["scenario_checks"].values())
    report["peak_rss_mib"] = peak_rss_mib()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, help="keep the files here (default: a temp dir)")
    ap.add_argument("--no-scenarios", action="store_true",
                    help="only the SIGKILL rounds, not the delivery fault scenarios")
    args = ap.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = run_all(args.kills, args.seed, args.workdir, not args.no_scenarios)
    else:
        with tempfile.TemporaryDirectory(prefix="warnd-faults-") as d:
            report = run_all(args.kills, args.seed, Path(d), not args.no_scenarios)
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
