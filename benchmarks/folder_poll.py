"""A folder source that grows by a file a week: what one poll costs once it holds years.

Writes ``--files`` weekly count tables (40 series each: 20 substances × 2 regions) into
a folder, polls it once (every file ingested), then ``--polls`` times adds one new file
and polls again, each in the same store connection, as the daemon's poll job does.
Reports the CPU and wall time of each of those polls (milliseconds), the files read
and skipped, and the median.

    python -m benchmarks.folder_poll                  # 260 files, 5 polls
    python -m benchmarks.folder_poll --files 520 --polls 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START = date(2021, 1, 4)


def _week(folder: Path, i: int, rnd: random.Random) -> None:
    day = (START + timedelta(weeks=i)).isoformat()
    rows = ["period,substance,region,value"] + [
        f"{day},s{s:03d},r{r},{rnd.randint(15, 25)}" for s in range(20) for r in range(2)]
    (folder / f"week{i:03d}.csv").write_text("\n".join(rows) + "\n")


def run(files: int, polls: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from warnd.config import load_config
    from warnd.pipeline import Pipeline

    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        for i in range(files):
            _week(work / "data", i, rnd)
        subs = "".join(f'[substances.s{s:03d}]\nnames = ["s{s:03d}"]\n' for s in range(20))
        (work / "config.toml").write_text(
            '[general]\nstate_dir = "state"\nlog_level = "WARNING"\nallow_empty = true\n'
            f'{subs}[[sources]]\nname = "lab"\nkind = "count_table"\nlocation = "data"\n'
            'interval = "1w"\ndimension = "use"\ncolumns = { region = "region" }\n')
        cwd = os.getcwd()
        os.chdir(work)
        try:
            pipeline = Pipeline(load_config(work / "config.toml"))
            out = []
            with pipeline.session() as store:
                pipeline.poll("lab", store=store)  # the history, once
                for k in range(polls):
                    _week(work / "data", files + k, rnd)
                    c, w = time.process_time(), time.perf_counter()
                    res = pipeline.poll("lab", store=store)
                    out.append({"cpu_ms": round(1e3 * (time.process_time() - c), 1),
                                "wall_ms": round(1e3 * (time.perf_counter() - w), 1),
                                "read": res.documents, "skipped": res.skipped})
        finally:
            os.chdir(cwd)
    return {"files": files, "seed": seed, "polls": out,
            "median_cpu_ms": statistics.median(p["cpu_ms"] for p in out),
            "median_wall_ms": statistics.median(p["wall_ms"] for p in out)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=260)
    ap.add_argument("--polls", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(json.dumps(run(args.files, args.polls, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
