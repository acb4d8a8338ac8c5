"""Change-point benchmark on real annotated series (TCPDBench metrics).

Run: ``python -m benchmarks.changepoints`` (the series, the Nile among them, are stored in
``benchmarks/data/``). Metrics as in van den Burg & Williams 2020 (arXiv:2003.06222):
F1 with a margin of 5 periods (precision against the union of the annotators' points,
recall averaged over annotators; index 0 counts as a change point for every set) and
the covering metric averaged over annotators.

Methods: ``warnd`` (:func:`detectors.changepoints.segment`), ``ruptures textbook``
(``KernelCPD(kernel="linear")`` with the BIC penalty ``2·s²·ln n``, ``s`` the sample
standard deviation, min_size 2) and ``zero`` (no change point).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import ruptures as rpt

from detectors.changepoints import segment

DATA = Path(__file__).parent / "data" / "tcpd_subset.json"
MARGIN = 5


def load() -> dict[str, tuple[np.ndarray, list[list[int]]]]:
    raw = json.loads(DATA.read_text())["series"]
    out = {}
    for name, item in raw.items():
        values = np.array([np.nan if v is None else v for v in item["values"]], dtype=float)
        out[name] = (values, [list(v) for v in item["annotations"].values()])
    return out


def _true_positives(truth: list[int], pred: list[int], margin: int) -> int:
    used: set[int] = set()
    hits = 0
    for t in truth:
        best = None
        for p in pred:
            if (
                p not in used
                and abs(p - t) <= margin
                and (best is None or abs(p - t) < abs(best - t))
            ):
                best = p
        if best is not None:
            used.add(best)
            hits += 1
    return hits


def f1(annotations: list[list[int]], pred: list[int], margin: int = MARGIN) -> float:
    """TCPDBench F1: index 0 is added to every set."""
    pred = sorted({0, *pred})
    anns = [sorted({0, *a}) for a in annotations]
    union = sorted(set().union(*anns))
    precision = _true_positives(union, pred, margin) / len(pred)
    recall = float(np.mean([_true_positives(a, pred, margin) / len(a) for a in anns]))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _partition(cps: list[int], n: int) -> list[set[int]]:
    b = [0, *sorted(c for c in set(cps) if 0 < c < n), n]
    return [set(range(b[i], b[i + 1])) for i in range(len(b) - 1)]


def covering(annotations: list[list[int]], pred: list[int], n: int) -> float:
    """TCPDBench covering: mean over annotators of C(annotation, prediction)."""
    parts = _partition(pred, n)
    out = []
    for a in annotations:
        total = 0.0
        for seg in _partition(a, n):
            total += len(seg) * max(len(seg & p) / len(seg | p) for p in parts)
        out.append(total / n)
    return float(np.mean(out))


def textbook(values: np.ndarray) -> list[int]:
    idx = np.flatnonzero(np.isfinite(values))  # missing values dropped, indices mapped back
    x = values[idx]
    s2 = float(np.var(x)) or 1.0
    bk = (
        rpt.KernelCPD(kernel="linear", min_size=2)
        .fit(x.reshape(-1, 1))
        .predict(pen=2 * s2 * np.log(len(x)))
    )
    return [int(idx[b]) for b in bk[:-1]]


METHODS = {
    "warnd": lambda v: segment(v).change_points,
    "ruptures textbook": textbook,
    "zero": lambda v: [],
}


def run() -> str:
    data = load()
    rows = []
    totals: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    for name, (values, anns) in data.items():
        cells = [name, str(len(values))]
        for m, fn in METHODS.items():
            t0 = time.perf_counter()
            cps = fn(values)
            seconds[m] += time.perf_counter() - t0
            f, c = f1(anns, cps), covering(anns, cps, len(values))
            totals[m].append((f, c))
            cells.append(f"{f:.3f} / {c:.3f} ({','.join(map(str, cps)) or '-'})")
        rows.append(cells)
    head = ["series", "n", *[f"{m}: F1 / cover (points)" for m in METHODS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    mean = ["**mean**", ""]
    for m in METHODS:
        f = np.mean([x[0] for x in totals[m]])
        c = np.mean([x[1] for x in totals[m]])
        mean.append(f"**{f:.3f} / {c:.3f}** ({seconds[m] * 1000:.1f} ms)")
    lines.append("| " + " | ".join(mean) + " |")
    return "\n".join(lines)


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
