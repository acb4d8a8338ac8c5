"""Change-point benchmark on real annotated series (TCPDBench metrics).

Run: ``python -m benchmarks.changepoints`` (the series, the Nile among them, are stored in
``benchmarks/data/``). Metrics as in van den Burg & Williams 2020 (arXiv:2003.06222):
F1 with a margin of 5 periods (precision against the union of the annotators' points,
recall averaged over annotators; index 0 counts as a change point for every set) and
the covering metric averaged over annotators.

Data: every univariate series of TCPD whose data the dataset's repository redistributes
(31 series, ``benchmarks/data/tcpd.json``, built by ``python -m benchmarks.tcpd_import``);
means are reported over all of them and over the 26 real ones (without the five
synthetic ``quality_control`` series). ``segment`` gets the series' dates where TCPD
gives them, as ``warnd changepoints`` does.

Synthetic: 40 seeds of series with known truth (no change: noise, correlated noise,
quantised and seasonal series, smooth growth; one change: steps in noise and in weekly
counts) — how often points appear where there is none, how often the change is found.

Scaling: seconds of ``segment`` on one series of 10k, 100k, 300k and 1M points (white noise,
seed 0, with and without two steps).

Methods: ``warnd`` (:func:`detectors.changepoints.segment`), ``ruptures textbook``
(``KernelCPD(kernel="linear")`` with the BIC penalty ``2·s²·ln n``, ``s`` the sample
standard deviation, min_size 2) and ``zero`` (no change point).
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import ruptures as rpt

from detectors.changepoints import segment

DATA = Path(__file__).parent / "data" / "tcpd.json"
MARGIN = 5


def _dates(item: dict) -> list[date] | None:
    fmt = item.get("time_format")
    if fmt not in ("%Y", "%Y-%m", "%Y-%m-%d"):
        return None
    return [datetime.strptime(t, fmt).date() for t in item["time"]]


def load() -> dict[str, tuple[np.ndarray, list[list[int]], list[date] | None]]:
    raw = json.loads(DATA.read_text())["series"]
    out = {}
    for name, item in raw.items():
        values = np.array([np.nan if v is None else v for v in item["values"]], dtype=float)
        out[name] = (values, [list(v) for v in item["annotations"].values()], _dates(item))
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


def textbook(values: np.ndarray, periods: object = None) -> list[int]:
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
    "warnd": lambda v, p: segment(v, p).change_points,
    "ruptures textbook": textbook,
    "zero": lambda v, p: [],
}


def run() -> str:
    data = load()
    rows = []
    scores: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    for name, (values, anns, periods) in data.items():
        cells = [name, str(len(values))]
        for m, fn in METHODS.items():
            t0 = time.perf_counter()
            cps = fn(values, periods)
            seconds[m] += time.perf_counter() - t0
            f, c = f1(anns, cps), covering(anns, cps, len(values))
            scores[m][name] = (f, c)
            cells.append(f"{f:.3f} / {c:.3f} ({','.join(map(str, cps)) or '-'})")
        rows.append(cells)
    head = ["series", "n", *[f"{m}: F1 / cover (points)" for m in METHODS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    real = [n for n in data if not n.startswith("quality_control")]
    for label, names in ((f"all {len(data)}", list(data)), (f"{len(real)} real", real)):
        mean = [f"**mean, {label}**", ""]
        for m in METHODS:
            f = np.mean([scores[m][n][0] for n in names])
            c = np.mean([scores[m][n][1] for n in names])
            mean.append(f"**{f:.3f} / {c:.3f}**")
        lines.append("| " + " | ".join(mean) + " |")
    lines.append("")
    lines.append(
        "| method | F1 better / equal / worse than zero"
        " | covering better / equal / worse | seconds, all series |"
    )
    lines.append("|---|---|---|---|")
    for m in METHODS:
        if m == "zero":
            continue
        cells = [m]
        for k in (0, 1):
            diff = np.array([scores[m][n][k] - scores["zero"][n][k] for n in data])
            cells.append(
                f"{(diff > 1e-9).sum()} / {(abs(diff) <= 1e-9).sum()} / {(diff < -1e-9).sum()}"
            )
        cells.append(f"{seconds[m]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _weekly(n: int) -> list[date]:
    return [date.fromordinal(date(2020, 1, 6).toordinal() + 7 * i) for i in range(n)]


def _monthly(n: int) -> list[date]:
    return [date(2005 + i // 12, i % 12 + 1, 1) for i in range(n)]


def _ar(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(0, 1, n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def _synthetic(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, list[date] | None]:
    n = 260
    t = np.arange(n)
    season = np.sin(2 * np.pi * t / 52)
    if kind == "white noise":
        return rng.normal(0, 1, n), None
    if kind == "AR(1) 0.7":
        return _ar(rng, n, 0.7), None
    if kind == "random walk":
        return np.cumsum(rng.normal(0, 1, n)), None
    if kind == "counts, Poisson 3 a week":
        return rng.poisson(3, n).astype(float), _weekly(n)
    if kind == "index quantised to 1, weekly season":
        return np.round(3 + 0.5 * season + rng.normal(0, 0.4, n)), _weekly(n)
    if kind == "quantised to 0.5":
        return np.round(2 * (1 + rng.normal(0, 0.3, n))) / 2, None
    if kind == "logistic growth + monthly season":
        m = np.arange(180)
        y = 100 / (1 + np.exp(-(m - 90) / 30)) + 50 + 8 * np.sin(2 * np.pi * m / 12)
        return y + rng.normal(0, 2, 180), _monthly(180)
    if kind == "exponential growth × monthly season":
        m = np.arange(180)
        y = 50 * np.exp(0.01 * m) * (1 + 0.3 * np.sin(2 * np.pi * m / 12))
        return y * np.exp(rng.normal(0, 0.05, 180)), _monthly(180)
    if kind.startswith("step of"):
        size = float(kind.split()[2])
        return rng.normal(0, 1, n) + np.where(t >= 150, size, 0.0), None
    if kind.startswith("weekly counts ×"):
        ratio = float(kind.split("×")[1].split()[0])
        mu = np.where(t >= 150, 10 * ratio, 10.0) * (1 + 0.3 * season)
        return rng.poisson(mu).astype(float), _weekly(n)
    raise ValueError(kind)


NO_CHANGE = (
    "white noise",
    "AR(1) 0.7",
    "random walk",
    "counts, Poisson 3 a week",
    "index quantised to 1, weekly season",
    "quantised to 0.5",
    "logistic growth + monthly season",
    "exponential growth × monthly season",
)
ONE_CHANGE = (
    "step of 0.5 sd at 150",
    "step of 1 sd at 150",
    "weekly counts ×1.5 at 150 (10 a week, season ±30 %)",
    "weekly counts ×2 at 150 (10 a week, season ±30 %)",
)


def synthetic(seeds: int = 40) -> str:
    """Series with known truth: how often change points appear where there is none, and
    how often one change is found within 5 periods (seeds 0 … ``seeds``−1)."""
    lines = [
        "| series (260 points unless monthly: 180) | any point found | mean points | max |",
        "|---|---|---|---|",
    ]
    for kind in NO_CHANGE:
        found = []
        for seed in range(seeds):
            y, p = _synthetic(kind, np.random.default_rng(seed))
            found.append(len(segment(y, p).change_points))
        k = np.array(found)
        lines.append(f"| {kind} | {(k > 0).mean():.0%} | {k.mean():.2f} | {k.max()} |")
    lines += ["", "| series | change found within 5 | extra points (mean) |", "|---|---|---|"]
    for kind in ONE_CHANGE:
        hit, extra = 0, []
        for seed in range(seeds):
            y, p = _synthetic(kind, np.random.default_rng(seed))
            cps = segment(y, p).change_points
            near = [c for c in cps if abs(c - 150) <= 5]
            hit += bool(near)
            extra.append(len(cps) - min(len(near), 1))
        lines.append(f"| {kind} | {hit / seeds:.0%} | {np.mean(extra):.2f} |")
    return "\n".join(lines)


SCALING_SIZES = (10_000, 100_000, 300_000, 1_000_000)


def scaling(sizes: tuple[int, ...] = SCALING_SIZES, seed: int = 0) -> str:
    """Seconds of :func:`segment` on one long series: white noise, and with two steps."""
    rng = np.random.default_rng(seed)
    lines = [
        "| points | no change: seconds (points found)"
        " | two steps of +1 and -2 sd: seconds (points found) |",
        "|---|---|---|",
    ]
    segment(rng.normal(0, 1, 1000))  # warm-up: imports and first-call costs
    for n in sizes:
        flat = rng.normal(0, 1, n)
        steps = flat + np.where(np.arange(n) >= n // 3, 1.0, 0.0)
        steps -= np.where(np.arange(n) >= 2 * n // 3, 2.0, 0.0)
        cells = [f"{n:,}"]
        for y in (flat, steps):
            t0 = time.perf_counter()
            cps = segment(y).change_points
            cells.append(f"{time.perf_counter() - t0:.2f} ({','.join(map(str, cps)) or '-'})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    print(run())
    print()
    print(synthetic())
    print()
    print(scaling())


if __name__ == "__main__":
    main()
