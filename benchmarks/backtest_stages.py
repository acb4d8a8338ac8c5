"""Where ``warnd backtest --observations FILE --json`` spends its time, stage by stage.

Writes the detection benchmark's 256 simulated weekly series x 260 weeks
(:func:`benchmarks.detection.simulate`, the recipe of ``backtest_speed``) for each seed,
then measures

* the whole command in a child process: user + sys CPU seconds (``getrusage``), imports,
  CSV, detection and JSON output included;
* in this process, CPU seconds of each stage: reading the CSV
  (:func:`warnd.backtest.read_versions`), the detectors' replay of every series
  (:func:`warnd.backtest.replay_all`, as the command does; of it, the baseline fits
  and the change-time tables), the
  cross-source agreement and the episode rules (:func:`warnd.backtest.backtest_series`),
  and writing the JSON and the table.

The command's output is checked equal to the alerts computed here stage by stage.

With ``--as-of`` the file holds the first 16 series only, with an ``as_of`` column: each row
published a week after its period, 5 % of them revised (value + 3) three weeks later;
the replay stage then replays each series once per run of arrivals (see
:func:`warnd.backtest.replay_as_arrived`).

    python -m benchmarks.backtest_stages                  # seeds 7 and 8, each run twice
    python -m benchmarks.backtest_stages --seeds 7 --runs 3
    python -m benchmarks.backtest_stages --as-of --seeds 7
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from benchmarks.detection import EVENTS, LEVELS, PERIODS, simulate

COMMAND = "import sys; from warnd.cli import main; raise SystemExit(main(sys.argv[1:]))"


def write_csv(path: Path, seed: int, n_series: int = 256, as_of: bool = False) -> None:
    rng = np.random.default_rng(seed)
    revise = np.random.default_rng(seed + 1000)
    n_series = 16 if as_of else n_series
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "substance", "source", "value"] + (["as_of"] if as_of else []))
        for i in range(n_series):
            event, size = EVENTS[i % len(EVENTS)]
            y = simulate(rng, LEVELS[i % len(LEVELS)], 0.4 * (i % 2), 0.1 * (i // 2 % 2),
                         1.0 + (i // 4 % 2), event, size, int(rng.integers(164, 235)))
            for p, v in zip(PERIODS, y, strict=True):
                row = [p.isoformat(), f"s{i // 8}", f"src{i % 8}", int(v)]
                if not as_of:
                    w.writerow(row)
                    continue
                w.writerow([*row, (p + timedelta(weeks=1)).isoformat()])
                if revise.random() < 0.05:
                    w.writerow([*row[:3], int(v) + 3, (p + timedelta(weeks=4)).isoformat()])


def command_seconds(path: Path, cwd: Path) -> tuple[float, str]:
    """User + sys CPU seconds of the whole command, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", COMMAND, "backtest", "--observations", str(path), "--json"],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


@contextlib.contextmanager
def _timed(module: str, names: dict[str, str]):
    """CPU seconds spent in functions of ``module`` while the block runs (by label)."""
    import importlib

    mod = importlib.import_module(module)
    spent = {label: 0.0 for label in names.values()}
    saved = {name: getattr(mod, name) for name in names}

    def timed(fn, label):
        def run(*a, **k):
            c = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[label] += time.process_time() - c
        return run

    for name, label in names.items():
        setattr(mod, name, timed(saved[name], label))
    try:
        yield spent
    finally:
        for name, fn in saved.items():
            setattr(mod, name, fn)


def stages(path: Path) -> tuple[dict[str, float], list[dict]]:
    """CPU seconds of each stage in this process, and the alerts."""
    from warnd.backtest import (
        _agreement,
        _default_params,
        backtest_series,
        format_backtest_table,
        read_versions,
        replay_all,
    )

    t = {}
    c = time.process_time()
    series, versions = read_versions(path)
    t["read CSV"] = time.process_time() - c
    c = time.process_time()
    params = [_default_params(s.substance, s.source) for s in series]
    runs = list(zip(series, params, strict=True))
    with _timed("detectors.engine", {"fit_windows": "  of it: baseline fits",
                                      "_table_core": "  of it: change-time tables"}) as parts:
        found = replay_all(series, versions, params)
    t["replay (detectors)"] = time.process_time() - c
    t.update(parts)
    c = time.process_time()
    agree = _agreement(list(zip(series, params, found, strict=True)))
    alerts = []
    for (s, p), f in zip(runs, found, strict=True):
        alerts.extend(backtest_series(s, p, findings=f, agreeing=agree[s.substance]))
    alerts.sort(key=lambda a: (a["fired_at"], a["substance"], a["source"], a["region"], a["kind"]))
    t["agreement + episodes"] = time.process_time() - c
    c = time.process_time()
    json.dumps(alerts, indent=2, ensure_ascii=False, default=str)
    t["JSON"] = time.process_time() - c
    c = time.process_time()
    format_backtest_table(alerts)
    t["table"] = time.process_time() - c
    return t, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--runs", type=int, default=2, help="runs of the whole command per seed")
    ap.add_argument("--as-of", action="store_true",
                    help="16 series published a week late, 5 %% of the rows revised")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)  # no config.toml here: the default detection settings
        for seed in args.seeds:
            path = tmp / f"obs{seed}.csv"
            write_csv(path, seed, as_of=args.as_of)
            whole = []
            for _ in range(args.runs):
                secs, out = command_seconds(path, tmp)
                whole.append(secs)
            t, alerts = stages(path)
            same = json.loads(out) == json.loads(json.dumps(alerts, default=str))
            print(f"seed {seed}: whole command {', '.join(f'{s:.2f}' for s in whole)} "
                  f"CPU-s (user + sys); {len(alerts)} alerts; output equal to the stages': {same}")
            for name, secs in t.items():
                print(f"  {name:28s} {secs:6.3f} s")
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
