"""Start-up time and memory of the processes an operator runs.

Builds the demo store (``warnd run --once`` on the sample scenario) in a temporary
state directory, then measures, each in a fresh process:

* ``warnd check-config`` and ``warnd status`` wall time (median of ``--repeat``);
* the daemon (``warnd run``), restarted on that store and started on an empty
  one (its first cycle ingests and judges all history): time to the end of its
  start-up cycle, and its resident memory once idle after it (VmRSS, and the peak
  VmHWM, from ``/proc``);
* ``warnd report --format html`` wall time and peak RSS.

    python -m benchmarks.footprint
    python -m benchmarks.footprint --state /path/to/state   # an existing store
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _warnd() -> list[str]:
    return [sys.executable, "-m", "warnd.cli"] if not shutil.which("warnd") else [
        str(Path(sys.executable).parent / "warnd")]


def _timed(cmd: list[str], env: dict[str, str], repeat: int) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if r.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return {"median_s": round(statistics.median(times), 2), "min_s": round(min(times), 2)}


def _proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def daemon(env: dict[str, str], config: Path, timeout: float = 600) -> dict[str, Any]:
    log = tempfile.NamedTemporaryFile(prefix="warnd-footprint-", suffix=".log", delete=False)
    t0 = time.perf_counter()
    p = subprocess.Popen([*_warnd(), "--config", str(config), "run"], env=env, cwd=ROOT,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        done = None
        while time.perf_counter() - t0 < timeout:
            if "startup cycle done" in Path(log.name).read_text(errors="replace"):
                done = time.perf_counter() - t0
                break
            if p.poll() is not None:
                raise SystemExit(Path(log.name).read_text()[-3000:])
            time.sleep(0.1)
        if done is None:
            raise SystemExit("the daemon did not finish its start-up cycle")
        time.sleep(2.0)  # let the dispatch after the start-up cycle settle
        out = {"startup_cycle_s": round(done, 2),
               "idle_rss_mib": round(_proc_kib(p.pid, "VmRSS") / 1024, 1),
               "peak_rss_mib": round(_proc_kib(p.pid, "VmHWM") / 1024, 1)}
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        os.unlink(log.name)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", help="an existing state directory (default: build the demo's)")
    ap.add_argument("--config", default=str(ROOT / "config.toml"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="warnd-footprint-") as tmp:
        state = Path(args.state) if args.state else Path(tmp) / "state"
        env = {**os.environ, "WARND_STATE_DIR": str(state), "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": str(Path(tmp) / "mpl"), "PYTHONPATH": str(ROOT)}
        cfg = ["--config", args.config]
        if not args.state:
            subprocess.run([*_warnd(), *cfg, "run", "--once"], env=env, cwd=ROOT, check=True,
                           capture_output=True)
        res: dict[str, Any] = {
            "check_config": _timed([*_warnd(), *cfg, "check-config"], env, args.repeat),
            "status": _timed([*_warnd(), *cfg, "status"], env, args.repeat),
            "report_html": _timed([*_warnd(), *cfg, "report", "--format", "html", "--out",
                                   str(Path(tmp) / "report")], env, max(1, args.repeat // 2)),
            "daemon_restart": daemon(env, Path(args.config)),
            "daemon_first_start": daemon({**env, "WARND_STATE_DIR": str(Path(tmp) / "fresh")},
                                         Path(args.config)),
        }
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
