"""Peak memory of ``warnd run --once`` over many hostile sources (local files, no network).

The sources take turns among: a 10 MB notice page of two million nested ``<div>``
elements; an RSS feed nested 100,000 levels deep; a billion-laughs feed; a folder of
five 4 MB files of garbage "counts"; a good count table. Every hostile one must end
as that source's problem or error, the good ones must be ingested, and the peak RSS
of the process (``ru_maxrss``) is reported next to a run over the good sources alone.

Usage: ``python benchmarks/hostile_memory.py [--sources 1000] [--workdir DIR]``;
prints JSON. The figures are in docs/operations.md ("Memory").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service_kit import (
    MEASURED,
    billion_laughs,
    child_env,
    counts_csv,
    write_service_config,
)


def make_inputs(work: Path) -> dict[str, tuple[str, str, str]]:
    """name → (kind, location, dimension) of each kind of input."""
    d = work / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    (d / "deep.html").write_bytes(b"<html><body>" + b"<div>" * 2_000_000 + b"</body></html>")
    (d / "deep.xml").write_bytes(b'<?xml version="1.0"?><rss version="2.0"><channel>'
                                 + b"<x>" * 100_000 + b"</x>" * 100_000 + b"</channel></rss>")
    (d / "laughs.xml").write_bytes(billion_laughs())
    big = d / "garbage"
    big.mkdir(exist_ok=True)
    for i in range(5):
        (big / f"part{i}.csv").write_bytes(b"period;substance;value\n"
                                           + b"x;\xff\xfe;" * 400_000)
    (d / "good.csv").write_bytes(counts_csv(["ketamin", "heroin"], weeks=30))
    return {
        "deep_html": ("overdosefare", str(d / "deep.html"), "availability"),
        "deep_xml": ("rss", str(d / "deep.xml"), "interest"),
        "laughs": ("overdosefare", str(d / "laughs.xml"), "availability"),
        "garbage_folder": ("count_table", str(big), "use"),
        "good": ("count_table", str(d / "good.csv"), "use"),
    }


def sources_toml(inputs: dict[str, tuple[str, str, str]], n: int, only: str | None = None
                 ) -> str:
    names = [only] if only else list(inputs)
    out = []
    for i in range(n):
        key = names[i % len(names)]
        kind, loc, dim = inputs[key]
        out.append(f'\n[[sources]]\nname = "{key}-{i}"\nkind = "{kind}"\nlocation = "{loc}"\n'
                   f'interval = "1h"\ndimension = "{dim}"\n')
    return "".join(out)


def measure(work: Path, name: str, sources: str) -> dict[str, object]:
    cfg = write_service_config(work / f"{name}.toml", sources=sources, state_dir=f"state-{name}",
                               general="fetch_max_bytes = 20000000\nlog_level = \"WARNING\"")
    rss = work / f"{name}.maxrss"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", MEASURED, str(rss), "--config", str(cfg), "run",
                        "--once", "--json"], env=child_env(), capture_output=True, text=True,
                       timeout=7200, cwd=str(work))
    took = time.monotonic() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError(r.stderr[-3000:])
    polls = json.loads(r.stdout)["polls"]
    return {
        "sources": len(polls),
        "peak_rss_mib": round(int(rss.read_text()) / 1024, 1),
        "seconds": round(took, 1),
        "ok_polls": sum(p["ok"] for p in polls),
        "with_problems": sum(1 for p in polls if p["problems"]),
        "failed": sum(1 for p in polls if not p["ok"]),
        "observations": sum(p["observations"] for p in polls),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="warnd-hostile-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        inputs = make_inputs(work)
        report = {
            "good_only": measure(work, "good", sources_toml(inputs, 20, only="good")),
            "hostile": measure(work, "hostile", sources_toml(inputs, args.sources)),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
