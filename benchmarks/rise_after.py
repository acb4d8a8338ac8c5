"""How long a rise that has ended stays a current trend, and how soon a second one is
found after it: weekly counts at 5 a week, three times that for 12 weeks (the first
rise), then again from ``gap`` weeks after its start on, replayed one series at a time
(:func:`detectors.engine.replay`, the default parameters).

For each gap and seed: the last week of the first rise's run of trend findings (weeks
after its onset), and the weeks from the second rise's start to its first trend
finding. A gap of 52 weeks puts the second rise where the baseline's seasonal terms
expect the first again.

    python -m benchmarks.rise_after                 # gaps 40, 52, 70; seeds 1–10
    python -m benchmarks.rise_after --gaps 52 --seeds 11-30
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import date, timedelta

import numpy as np

from detectors.base import Series
from detectors.engine import replay
from detectors.params import DetectionParams

START = date(2021, 1, 4)
#: weeks of history before the first rise, its length and its factor
FIRST, LENGTH, FACTOR, LEVEL = 200, 12, 3.0, 5.0


def run(gap: int, seed: int) -> tuple[int | None, int | None]:
    """(weeks from the first rise's onset to its last trend finding, weeks from the
    second rise's start to its first trend finding); None for none."""
    weeks = FIRST + gap + 30
    lam = np.full(weeks, LEVEL)
    lam[FIRST:FIRST + LENGTH] *= FACTOR
    lam[FIRST + gap:] *= FACTOR
    y = np.random.default_rng(seed).poisson(lam).astype(float)
    periods = tuple(START + timedelta(weeks=i) for i in range(weeks))
    found = replay(Series(source="lab", substance="x", periods=periods, values=y),
                   DetectionParams())
    up = [any(f.kind == "trend" and f.direction == "increase" for f in fs) for fs in found]
    first = [i for i in range(FIRST, FIRST + gap) if up[i]]
    second = [i for i in range(FIRST + gap, weeks) if up[i]]
    return (first[-1] - FIRST if first else None,
            second[0] - FIRST - gap if second else None)


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", default="40,52,70")
    ap.add_argument("--seeds", default="1-10")
    args = ap.parse_args()
    out = []
    for gap in (int(g) for g in args.gaps.split(",")):
        runs = [run(gap, s) for s in _seeds(args.seeds)]
        lasts = [a for a, _ in runs if a is not None]
        delays = [b for _, b in runs if b is not None]
        out.append({"gap_weeks": gap, "seeds": len(runs),
                    "first_current_until": [min(lasts), max(lasts)] if lasts else None,
                    "second_found_after": [min(delays), max(delays)] if delays else None,
                    "second_found_after_median": statistics.median(delays) if delays else None,
                    "second_not_found": sum(b is None for _, b in runs)})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
