#!/usr/bin/env python3
"""Check systemd/warnd.service: ``systemd-analyze verify`` and the security exposure.

``verify`` needs ExecStart's binary to exist, so it runs against a copy whose
ExecStart points at this checkout's ``warnd`` (``--warnd PATH``, default
``.venv/bin/warnd``). The exposure score (``security --offline=yes``) must not
exceed ``--max-exposure`` (default 2.0). Exit 0 when both pass.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "warnd.service"


def exposure(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    if not m:
        raise SystemExit(f"cannot read the exposure level:\n{out.stdout}{out.stderr}")
    return float(m.group(1))


def verify(unit: Path, warnd: Path) -> tuple[bool, str]:
    text = unit.read_text(encoding="utf-8")
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={warnd}", text, flags=re.M)
    if n != 1:
        return False, "no ExecStart= line"
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / unit.name
        copy.write_text(text, encoding="utf-8")
        out = subprocess.run(["systemd-analyze", "verify", str(copy)],
                             capture_output=True, text=True, check=False)
    msg = (out.stdout + out.stderr).strip()
    return out.returncode == 0 and not msg, msg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit", type=Path, default=UNIT)
    ap.add_argument("--warnd", type=Path, default=ROOT / ".venv" / "bin" / "warnd")
    ap.add_argument("--max-exposure", type=float, default=2.0)
    args = ap.parse_args()
    if shutil.which("systemd-analyze") is None:
        print("check-unit: systemd-analyze not found (apt-get install systemd)", file=sys.stderr)
        return 2
    ok, msg = verify(args.unit, args.warnd.resolve())
    print(f"verify {args.unit.name}: {'OK' if ok else 'FAILED'}" + (f"\n{msg}" if msg else ""))
    score = exposure(args.unit)
    good = score <= args.max_exposure
    print(f"security exposure {args.unit.name}: {score:.1f} "
          f"({'OK' if good else 'FAILED'}, limit {args.max_exposure:.1f})")
    return 0 if ok and good else 1


if __name__ == "__main__":
    sys.exit(main())
